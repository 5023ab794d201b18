// The fleet with no shortcuts: 30 real `skopos agent` processes, each a host of its own
// (machine id, boot id file, journal, fence chain), rolled by `skopos rolling-reboot`
// through a real 3-member etcd, max 5 at a time. The test plays the machines: when an
// agent runs its reboot command (a mark), the test stops it as a shutdown would, gives
// the host a new boot id and starts the agent again. Meanwhile agents are SIGKILLed at
// random moments and started again on the same boot, and the etcd leader is killed. The
// run is proven from etcd's history (FleetChecker): never above the max, every host
// rebooted exactly once, nothing left. Root: the drains run iptables (each agent its own
// chain; with no task ports nothing is fenced).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "etcd_server.h"
#include "fake_docker.h"
#include "fleet_checker.h"
#include "privileged_support.h"
#include "process.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using skopos::testing::ChildProcess;
using skopos::testing::run_process;

constexpr int kHosts = 30;
constexpr int kMax = 5;

struct Host {
  std::string id;
  std::string dir;
  int boot = 0;
  std::unique_ptr<ChildProcess> agent;
};

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

std::string tail_of(const std::string& path) {
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.size() > 3000 ? text.substr(text.size() - 3000) : text;
}

TEST(PrivilegedFleetAgents, ThirtyRealAgentsRollOnceEachThroughSigkillsAndALeaderKill) {
  SKOPOS_REQUIRE_ROOT();
  auto etcd = skopos::testing::EtcdServer::start(3);
  const std::string dir = "/tmp/skopos-fleet-agents-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  struct RemoveDir {
    std::string path;
    ~RemoveDir() { std::filesystem::remove_all(path); }
  } remove_dir{dir};
  skopos::testing::FakeDocker docker(dir + "/docker.sock");  // no containers: nothing to stop
  const std::string log = dir + "/agents.log";
  const auto skopos = [&](std::vector<std::string> args) {
    args.insert(args.begin(), SKOPOS_BIN_DIR "/skopos");
    for (const std::string& option : {std::string("--etcd-endpoints"), etcd->endpoint_list()}) args.push_back(option);
    return args;
  };
  std::vector<Host> hosts(kHosts);
  const auto start = [&](Host& host) {
    {
      std::ofstream(host.dir + "/boot_id") << host.id << "-boot-" << host.boot << "\n";
    }
    host.agent = std::make_unique<ChildProcess>(
        skopos({"agent", "--tier", "worker", "--machine-id", host.id, "--hostname", host.id, "--boot-id-file",
                host.dir + "/boot_id", "--journal", host.dir + "/journal", "--trigger-file", host.dir + "/needs_reboot",
                "--reboot-required-file", host.dir + "/reboot-required",
                "--reboot-command", "touch " + host.dir + "/rebooted", "--docker-socket", "unix://" + docker.socket(),
                "--fence-chain", "SKF-" + host.id, "--recheck", "5s", "--retry", "1s", "--heartbeat-ttl", "3s",
                "--reboot-wait", "10m", "--log-level", "warning"}),
        log);
  };
  for (int i = 0; i < kHosts; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "real-%02d", i);
    hosts[static_cast<std::size_t>(i)].id = id;
    hosts[static_cast<std::size_t>(i)].dir = dir + "/" + id;
    std::filesystem::create_directories(hosts[static_cast<std::size_t>(i)].dir);
  }
  const auto before = run_process({"etcdctl", "--endpoints", etcd->endpoint(), "get", "/skopos", "--prefix",
                                   "--keys-only", "--limit", "1", "-w", "json"});
  // The revision to replay from: etcdctl's header, "revision":N.
  const auto at = before.out.find("\"revision\":");
  ASSERT_NE(at, std::string::npos) << before.out;
  const std::int64_t from = std::stoll(before.out.substr(at + 11));
  skopos::testing::FleetChecker checker(etcd->endpoints(), "/skopos", from + 1, {});
  // After the replay's start, so the checker knows the max from the history.
  ASSERT_EQ(run_process(skopos({"lock", "set-max", "reboot", "worker", std::to_string(kMax), "--machine-id", "admin"}))
                .exit_code,
            0);
  for (Host& host : hosts) start(host);
  std::this_thread::sleep_for(2s);

  ASSERT_EQ(run_process(skopos({"rolling-reboot", "--tier", "worker", "--machine-id", "admin"})).exit_code, 0);
  std::mt19937 random(3);
  int reboots = 0;
  int kills = 0;
  auto next_kill = Clock::now();
  bool leader_killed = false;
  // A crash at whatever an agent is doing, one every 250 ms; it starts again on the
  // same boot.
  const auto crash_one = [&] {
    if (kills >= 12 || Clock::now() < next_kill) return;
    Host& host = hosts[random() % kHosts];
    if (exists(host.dir + "/rebooted")) return;  // its reboot is the test's to play
    host.agent->stop(SIGKILL, 5s);
    ++kills;
    start(host);
    next_kill = Clock::now() + 250ms;
  };
  const auto deadline = Clock::now() + 5min;
  while (reboots < kHosts && Clock::now() < deadline) {
    for (Host& host : hosts) {
      if (!exists(host.dir + "/rebooted")) continue;
      // The reboot: a shutdown stops the agent, the next boot has another boot id.
      EXPECT_EQ(host.agent->stop(SIGTERM, 20s), 0) << host.id;
      std::filesystem::remove(host.dir + "/rebooted");
      ++host.boot;
      ++reboots;
      start(host);
      crash_one();
    }
    crash_one();
    if (!leader_killed && reboots >= kHosts / 3) {
      leader_killed = true;
      const int leader = etcd->leader();
      ASSERT_GE(leader, 0);
      etcd->kill(leader);
      std::this_thread::sleep_for(2s);
      etcd->restart(leader);
    }
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(reboots, kHosts) << "the roll did not finish; the agents' log ends:\n" << tail_of(log);
  EXPECT_GE(kills, 6);
  std::printf("fleet of real agents: %d hosts rebooted, %d agents SIGKILLed and restarted, the etcd leader killed\n",
              reboots, kills);
  // Every host recovered and released: the roll is complete.
  std::string status;
  for (const auto until = Clock::now() + 60s; Clock::now() < until; std::this_thread::sleep_for(500ms)) {
    status = run_process(skopos({"rolling-reboot", "--tier", "worker", "--status", "--json", "--machine-id", "admin"})).out;
    if (status.find("\"complete\":true") != std::string::npos) break;
  }
  EXPECT_NE(status.find("\"complete\":true"), std::string::npos) << status;
  for (Host& host : hosts) EXPECT_EQ(host.agent->stop(SIGTERM, 20s), 0) << host.id;

  const auto end = run_process({"etcdctl", "--endpoints", etcd->endpoint(), "get", "/skopos", "--prefix", "--keys-only",
                                "--limit", "1", "-w", "json"});
  const auto end_at = end.out.find("\"revision\":");
  ASSERT_NE(end_at, std::string::npos) << end.out;
  checker.finish(std::stoll(end.out.substr(end_at + 11)));
  EXPECT_TRUE(checker.violations().empty()) << checker.violations().front();
  EXPECT_EQ(checker.peak_holders().at("reboot/worker"), kMax);
  for (const Host& host : hosts) EXPECT_EQ(checker.reboots("reboot/worker", host.id), 1) << host.id;
  EXPECT_TRUE(checker.left_over().empty()) << checker.left_over().front();
  // No fence chain left behind.
  const std::string rules = run_process({"iptables-save"}).out;
  EXPECT_EQ(rules.find("SKF-real"), std::string::npos);
}

}  // namespace
