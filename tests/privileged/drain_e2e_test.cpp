// The proof that matters: `skopos drain` takes a host out of a (miniature) cluster under
// load without one failed request, and brings it back leaving nothing behind -- with
// real parts (podman containers, haproxy, etcd, skopos-tracker on BPF, iptables) and the
// Mesos and Marathon simulators (tools/drain-sandbox). Then the same with the driver
// SIGKILLed at every phase and started again; the reboot agent on its triggers; the
// control tier; and the booster drain.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <poll.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "drain_sandbox.h"
#include "load.h"
#include "privileged_support.h"
#include "prometheus_stack.h"
#include "skopos/http_server.h"
#include "simulators.h"
#include "skopos/subprocess.h"
#include "zookeeper_server.h"

namespace skopos::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ---- helpers -------------------------------------------------------------------------

// The load through one frontend, with this build's load generator.
class Load : public skopos::testing::Load {
 public:
  Load(const std::string& target, long requests) : skopos::testing::Load(SKOPOS_LOAD, target, requests) {}
};

// The JSON event lines a `skopos ... --json` printed.
struct Events {
  std::vector<std::string> phases;
  std::map<std::string, std::string> result;  // the "result" event's fields
  std::vector<std::string> messages;
};

Events parse_events(const std::string& out) {
  Events events;
  simdjson::dom::parser parser;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    simdjson::dom::object object;
    if (parser.parse(line).get(object) != simdjson::SUCCESS) continue;
    const std::string type{std::string_view(object["event"])};
    if (type == "phase") events.phases.emplace_back(std::string_view(object["phase"]));
    std::string_view message;
    if (object["message"].get(message) == simdjson::SUCCESS) events.messages.emplace_back(message);
    if (type == "result") {
      for (auto [key, value] : object) {
        std::string text;
        if (value.is_string()) {
          text = std::string(std::string_view(value));
        } else {
          text = simdjson::to_string(value);
        }
        events.result[std::string(key)] = text;
      }
    }
  }
  return events;
}

ProcessResult run(const std::vector<std::string>& argv) { return run_process(argv); }

// A driver started in the background, output to a file, that can be SIGKILLed.
class Driver {
 public:
  explicit Driver(const std::vector<std::string>& argv, const std::string& log) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
      std::vector<char*> args;
      for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Driver() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  // The exit status once it ended, or nullopt while it runs.
  std::optional<int> poll() {
    if (exited_) return status_;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return std::nullopt;
    exited_ = true;
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return status_;
  }
  int wait(std::chrono::seconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (auto status = poll()) return *status;
      std::this_thread::sleep_for(20ms);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    exited_ = true;
    return -1;
  }
  void signal(int number) { ::kill(pid_, number); }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = -1;
};

// Runs the driver until the journal's last phase is `phase`, then SIGKILLs it. Returns
// the phase it was killed in, or "" when it ended before reaching it (exit status in
// `status`).
std::string kill_at_phase(const DrainSandbox& sandbox, const std::vector<std::string>& argv, const std::string& phase,
                          const std::string& log, int& status) {
  Driver driver(argv, log);
  const auto deadline = Clock::now() + 180s;
  while (Clock::now() < deadline) {
    if (sandbox.journal_phase() == phase) {
      driver.signal(SIGKILL);
      status = driver.wait(10s);
      return phase;
    }
    if (auto ended = driver.poll()) {
      status = *ended;
      return {};
    }
    std::this_thread::sleep_for(1ms);
  }
  status = driver.wait(1s);
  return {};
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : "; ") + item;
  return out;
}

std::unique_ptr<DrainSandbox> start_sandbox(int apps) {
  auto sandbox = DrainSandbox::up(SKOPOS_SOURCE_DIR, SKOPOS_BIN_DIR, apps);
  if (!sandbox) {
    ADD_FAILURE() << "sandbox: " << sandbox.error().message();
    return nullptr;
  }
  return std::move(*sandbox);
}

// ---- the drain under load ------------------------------------------------------------

TEST(PrivilegedDrainEndToEnd, DrainsUnderLoadWithoutOneFailedRequestAndLeavesNothing) {
  SKOPOS_REQUIRE_ROOT();
  auto sandbox = start_sandbox(2);
  ASSERT_TRUE(sandbox);
  // 2 x 10,000 requests, keep-alive and fresh connections, every 100th one 2 s long.
  Load web(sandbox->apps()[0].frontend, 10000);
  Load api(sandbox->apps()[1].frontend, 10000);
  std::this_thread::sleep_for(2s);  // both replicas of both apps serve

  const ProcessResult drained = run(sandbox->skopos("drain", {"--json", "--log-level", "warning", "--connection-deadline", "60s"}));
  ASSERT_EQ(drained.exit_code, 0) << drained.err << drained.out;
  const Events events = parse_events(drained.out);
  std::printf("drain result: connections at fence %s, waited %s ms, took %s ms\n",
              events.result.at("connections_at_fence").c_str(), events.result.at("waited_ms").c_str(),
              events.result.at("took_ms").c_str());
  EXPECT_EQ(events.phases, (std::vector<std::string>{"host-lock", "cluster-lock", "budget", "announce", "fence", "wait",
                                                    "stop", "release-tasks", "take-down", "drained"}));
  EXPECT_EQ(events.result.at("outcome"), "drained") << drained.out;
  // It ended because the connections reached zero, not by the deadline.
  EXPECT_EQ(events.result.at("connections_zero"), "true") << drained.out;
  EXPECT_LT(std::stol(events.result.at("waited_ms")), 60000);
  // Drained: fenced, DOWN in Mesos, the containers stopped, Marathon's tasks moved.
  EXPECT_EQ(run({"iptables", "-S", sandbox->chain()}).exit_code, 0);
  EXPECT_NE(sandbox->mesos_get("/maintenance/status").find("sandbox-a"), std::string::npos);
  const std::string tasks = sandbox->marathon_get("/v2/tasks");
  EXPECT_EQ(tasks.find("sandbox-a"), std::string::npos) << tasks;
  EXPECT_EQ(sandbox->journal_phase(), "drained");

  const ProcessResult back = run(sandbox->skopos("undrain", {"--json", "--log-level", "warning"}));
  ASSERT_EQ(back.exit_code, 0) << back.err << back.out;
  EXPECT_EQ(parse_events(back.out).result.at("outcome"), "recovered") << back.out;

  for (Load* load : {&web, &api}) {
    const Load::Totals totals = load->wait();
    std::printf("load: %s\n", totals.text.c_str());
    EXPECT_EQ(totals.requests, 10000) << totals.text;
    EXPECT_EQ(totals.failed, 0) << totals.text;
    EXPECT_EQ(totals.served, 10000) << totals.text;
    long on_a = 0;
    for (const auto& [instance, count] : totals.by_instance) on_a += instance.ends_with("-a") ? count : 0;
    EXPECT_GT(on_a, 0) << "the drained host served before the drain: " << totals.text;
  }
  EXPECT_EQ(join(sandbox->leftovers()), "");
}

// ---- SIGKILL at every phase ----------------------------------------------------------

// Another host of the worker tier draining beside this one: it holds a slot of
// reboot/worker (max 2), its host lock and a budget claim, all as machine sandbox-c
// (hostname sandbox-c, which has no task of the sandbox's apps).
class HostBeside {
 public:
  explicit HostBeside(const DrainSandbox& sandbox) : etcd_(sandbox.etcd()) {}
  void take() const {
    ASSERT_EQ(lock({"set-max", "reboot", "worker", "2"}).exit_code, 0);
    ASSERT_EQ(lock({"acquire", "reboot", "worker", "--token", "REBOOT"}).exit_code, 0);
    ASSERT_EQ(lock({"host-lock", "REBOOT"}).exit_code, 0);
    ASSERT_EQ(run({"etcdctl", "--endpoints", etcd_, "put", "/skopos/budget/sandbox-c",
                   R"({"hostname":"sandbox-c","kind":"REBOOT"})"})
                  .exit_code,
              0);
  }
  // The slot's holders now, from `skopos lock status --json`.
  int holders() const {
    const std::string out = lock({"status", "--json"}).out;
    int count = 0;
    for (auto at = out.find("\"machine_id\""); at != std::string::npos; at = out.find("\"machine_id\"", at + 1)) ++count;
    return count;
  }
  void give_back() const {
    EXPECT_EQ(lock({"release", "reboot", "worker"}).exit_code, 0);
    EXPECT_EQ(lock({"host-unlock", "REBOOT"}).exit_code, 0);
    EXPECT_EQ(run({"etcdctl", "--endpoints", etcd_, "del", "/skopos/budget/sandbox-c"}).exit_code, 0);
    EXPECT_EQ(run({"etcdctl", "--endpoints", etcd_, "del", "/skopos/locks/reboot/worker/max"}).exit_code, 0);
  }

 private:
  ProcessResult lock(std::vector<std::string> args) const {
    std::vector<std::string> argv{SKOPOS_BIN_DIR "/skopos", "lock"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--etcd-endpoints", etcd_, "--machine-id", "sandbox-c"});
    return run(argv);
  }
  std::string etcd_;
};

void kill_at_every_phase(bool host_beside) {
  auto sandbox = start_sandbox(1);
  ASSERT_TRUE(sandbox);
  // Every phase, a reboot drain's and its recovery's. The simulators answer after 150
  // ms, so the phases that call them last long enough to be caught in.
  const std::vector<std::string> drain_phases = {"host-lock", "cluster-lock", "budget", "announce", "fence",
                                                 "wait",      "stop",         "release-tasks", "take-down", "drained",
                                                 "reboot"};
  const std::vector<std::string> recover_phases = {"recover-checks", "unfence", "bring-up", "agent-back",
                                                   "apps-healthy",   "release-locks"};
  std::vector<std::string> targets = drain_phases;
  targets.insert(targets.end(), recover_phases.begin(), recover_phases.end());
  const std::vector<std::string> reboot = {"--reboot", "--reboot-command", "true", "--log-level", "warning",
                                           "--connection-deadline", "60s", "--recover-timeout", "60s"};
  std::map<std::string, int> hit;
  long total_requests = 0;
  for (const std::string& target : targets) {
    SCOPED_TRACE("killed at " + target);
    if (target != targets.front()) {
      ASSERT_TRUE(sandbox->reset());
    }
    sandbox->new_boot();
    const HostBeside beside(*sandbox);
    if (host_beside) beside.take();
    Simulator::control(sandbox->mesos(), R"({"latency_ms": 150})");
    Simulator::control(sandbox->marathon(), R"({"latency_ms": 150})");
    Load load(sandbox->apps()[0].frontend, 4000);
    std::this_thread::sleep_for(1s);
    const std::string log = sandbox->dir() + "/driver-" + target + ".log";
    int status = -1;
    const bool in_drain = std::find(drain_phases.begin(), drain_phases.end(), target) != drain_phases.end();
    if (in_drain) {
      const std::string killed = kill_at_phase(*sandbox, sandbox->skopos("drain", reboot), target, log, status);
      if (!killed.empty()) ++hit[killed];
    }
    // Started again, the drain resumes and "reboots" (the reboot command is `true`).
    Driver resumed(sandbox->skopos("drain", reboot), log);
    ASSERT_EQ(resumed.wait(180s), 0) << read_file(log);
    ASSERT_EQ(sandbox->journal_phase(), "reboot") << read_file(log);
    if (host_beside) {
      EXPECT_EQ(beside.holders(), 2) << "both hosts hold a slot of max 2";
    }
    // The reboot: a new boot id. The same command now recovers.
    sandbox->new_boot();
    bool recovered_already = false;
    if (!in_drain) {
      const std::string killed = kill_at_phase(*sandbox, sandbox->skopos("drain", reboot), target, log, status);
      if (!killed.empty()) ++hit[killed];
      // A short phase may be passed before the test sees it: the recovery then ran to
      // its end, and the same command again would start a new drain (and reboot) of
      // its own, which this run never asked for.
      recovered_already = killed.empty();
      if (recovered_already) {
        ASSERT_EQ(status, 0) << read_file(log);
        ASSERT_EQ(sandbox->journal_phase(), "") << read_file(log);
      }
    }
    if (!recovered_already) {
      Driver recovered(sandbox->skopos("drain", reboot), log);
      ASSERT_EQ(recovered.wait(180s), 0) << read_file(log);
    }
    const Load::Totals totals = load.wait();
    total_requests += totals.served;
    EXPECT_EQ(totals.failed, 0) << totals.text;
    EXPECT_EQ(totals.served, 4000) << totals.text;
    if (host_beside) {
      EXPECT_EQ(beside.holders(), 1) << "this host gave its slot back, the other keeps its own";
      beside.give_back();
    }
    EXPECT_EQ(join(sandbox->leftovers()), "") << read_file(log);
  }
  std::string summary;
  for (const auto& [phase, count] : hit) summary += phase + " ";
  std::printf("killed at: %s\nrequests served over all runs: %ld, failed: 0 expected\n", summary.c_str(), total_requests);
  // Phases shorter than a millisecond may be passed before the test sees them; the
  // ones with a side effect that takes time must all have been hit.
  for (const char* phase : {"announce", "fence", "wait", "stop", "release-tasks", "take-down", "reboot", "unfence",
                            "bring-up", "agent-back", "apps-healthy"}) {
    EXPECT_GT(hit[phase], 0) << "never killed at " << phase << " (hit: " << summary << ")";
  }
}

TEST(PrivilegedDrainEndToEnd, KilledAtEveryPhaseAndRestartedItConvergesWithoutAFailedRequest) {
  SKOPOS_REQUIRE_ROOT();
  kill_at_every_phase(false);
}

// The same with the tier's max at 2 and another host holding the other slot, its host
// lock and a budget claim throughout: the fencing-token guards, the budget check and
// every release are per host.
TEST(PrivilegedDrainEndToEnd, KilledAtEveryPhaseBesideASecondHostDrainingInATierOfMaxTwo) {
  SKOPOS_REQUIRE_ROOT();
  kill_at_every_phase(true);
}

// ---- the reboot agent ----------------------------------------------------------------

bool wait_until(std::chrono::seconds timeout, const std::function<bool()>& done) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return done();
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// ---- surge: the replacement first ----------------------------------------------------

// haproxy's admin socket: one command, its answer.
std::string haproxy_command(const DrainSandbox& sandbox, const std::string& command) {
  return run({"python3", "-c",
              "import socket, sys\n"
              "s = socket.socket(socket.AF_UNIX)\n"
              "s.connect(sys.argv[1])\n"
              "s.sendall(sys.argv[2].encode() + b'\\n')\n"
              "print(s.recv(65536).decode())\n",
              sandbox.dir() + "/haproxy.sock", command})
      .out;
}

// marathon-sim's log of every change of an app's count.
std::string scale_log(const DrainSandbox& sandbox) {
  const std::string state = sandbox.marathon_get("/__sim/state");
  const auto at = state.find("\"scale_log\": [");
  return at == std::string::npos ? state : state.substr(at + 14, state.find(']', at) - at - 14);
}

// The app as a single instance on sandbox-a: its other instance (on sandbox-b) killed
// with scale through Marathon's API, and out of haproxy. A balancer sync, as marathon-lb
// would be, puts sandbox-b's server back the moment Marathon starts a task there.
class SingleInstance {
 public:
  explicit SingleInstance(const DrainSandbox& sandbox) : sandbox_(sandbox), app_(sandbox.apps()[0].name) {
    haproxy_command(sandbox_, "disable server be_" + app_ + "/b");
    Simulator::post(sandbox_.marathon(), "/v2/tasks/delete?scale=true", R"({"ids": [")" + app_ + R"(.b"]})");
    for (int i = 0; i < 200 && tasks_on("sandbox-b"); ++i) std::this_thread::sleep_for(25ms);
    // Marathon says healthy well after haproxy's checks (rise 2 x 250 ms) pass.
    Simulator::control(sandbox_.marathon(), R"({"health_grace_seconds": 2, "unavailable_hosts": ["sandbox-c"]})");
    sync_ = std::thread([this] {
      while (!stop_.load()) {
        if (!enabled_ && tasks_on("sandbox-b")) {
          haproxy_command(sandbox_, "enable server be_" + app_ + "/b");
          enabled_ = true;
        }
        std::this_thread::sleep_for(20ms);
      }
    });
  }
  ~SingleInstance() {
    stop_ = true;
    sync_.join();
    haproxy_command(sandbox_, "enable server be_" + app_ + "/b");
  }
  bool tasks_on(const std::string& host) const {
    return sandbox_.marathon_get("/v2/apps/" + app_ + "?embed=app.tasks").find("\"host\": \"" + host + "\"") !=
           std::string::npos;
  }
  std::string app_json() const { return sandbox_.marathon_get("/v2/apps/" + app_); }

 private:
  const DrainSandbox& sandbox_;
  std::string app_;
  std::atomic<bool> stop_{false};
  bool enabled_ = false;
  std::thread sync_;
};

// A single-instance app drained (a reboot) with surge under load: its replacement starts
// on sandbox-b first, then the host is fenced, waited for and stopped, and the app is
// scaled back to one -- 0 failed requests. Then the same with the driver SIGKILLed in
// each phase of the surge and started again: exactly one scale-up and one scale-back.
TEST(PrivilegedDrainEndToEnd, ASingleInstanceAppSurgesUnderLoadAndKilledInEachSurgePhaseItScalesUpAndBackOnce) {
  SKOPOS_REQUIRE_ROOT();
  auto sandbox = start_sandbox(1);
  ASSERT_TRUE(sandbox);
  const std::string app = "/" + sandbox->apps()[0].name;
  const std::vector<std::string> reboot = {"--reboot", "--reboot-command", "true", "--surge", "--log-level", "warning",
                                           "--connection-deadline", "60s", "--recover-timeout", "60s"};
  // "" : not killed; "surge": at once; "surge-up": once Marathon holds the new count,
  // while the drain waits for the replacement; "release-tasks": in the scale-back.
  const std::vector<std::string> kills = {"", "surge", "surge-up", "release-tasks"};
  std::vector<std::string> hit;
  for (const std::string& kill : kills) {
    SCOPED_TRACE("killed at '" + kill + "'");
    if (kill != kills.front()) {
      ASSERT_TRUE(sandbox->reset());
    }
    sandbox->new_boot();
    SingleInstance single(*sandbox);
    ASSERT_FALSE(single.tasks_on("sandbox-b"));
    ASSERT_NE(single.app_json().find("\"instances\": 1"), std::string::npos) << single.app_json();
    Simulator::control(sandbox->marathon(), R"({"latency_ms": 150})");
    Load load(sandbox->apps()[0].frontend, 4000);
    std::this_thread::sleep_for(1s);
    const std::string log = sandbox->dir() + "/driver-surge-" + (kill.empty() ? "none" : kill) + ".log";
    if (!kill.empty()) {
      Driver driver(sandbox->skopos("drain", reboot), log);
      const auto deadline = Clock::now() + 120s;
      bool killed = false;
      while (!killed && Clock::now() < deadline && !driver.poll()) {
        const std::string phase = sandbox->journal_phase();
        const bool now = kill == "surge-up" ? phase == "surge" && single.app_json().find("\"instances\": 2") !=
                                                                       std::string::npos
                                            : phase == kill;
        if (now) {
          driver.signal(SIGKILL);
          driver.wait(10s);
          killed = true;
        }
        std::this_thread::sleep_for(1ms);
      }
      if (killed) hit.push_back(kill);
    }
    Driver resumed(sandbox->skopos("drain", reboot), log);
    ASSERT_EQ(resumed.wait(180s), 0) << read_file(log);
    ASSERT_EQ(sandbox->journal_phase(), "reboot") << read_file(log);
    sandbox->new_boot();
    Driver recovered(sandbox->skopos("drain", reboot), log);
    ASSERT_EQ(recovered.wait(180s), 0) << read_file(log);
    const Load::Totals totals = load.wait();
    std::printf("surge, killed at '%s': %s\n", kill.c_str(), totals.text.c_str());
    EXPECT_EQ(totals.failed, 0) << totals.text;
    EXPECT_EQ(totals.served, 4000) << totals.text;
    // After the set-up's 2 -> 1: one scale-up by the host's one task, one scale-back by
    // killing it with scale. The app at its count, its one instance on sandbox-b.
    const std::string entry = R"({"app": ")" + app + R"(", "from": )";
    EXPECT_EQ(scale_log(*sandbox), entry + R"(2, "to": 1, "via": "kill"}, )" + entry +
                                       R"(1, "to": 2, "via": "put"}, )" + entry + R"(2, "to": 1, "via": "kill"})")
        << read_file(log);
    EXPECT_NE(single.app_json().find("\"instances\": 1"), std::string::npos) << single.app_json();
    EXPECT_TRUE(single.tasks_on("sandbox-b"));
    EXPECT_FALSE(single.tasks_on("sandbox-a"));
    EXPECT_EQ(join(sandbox->leftovers()), "") << read_file(log);
  }
  EXPECT_EQ(hit, (std::vector<std::string>{"surge", "surge-up", "release-tasks"})) << "every surge phase was hit";
}

TEST(PrivilegedDrainEndToEnd, AgentRebootsOnItsTriggersOnceEachAndRecoversAfterBoot) {
  SKOPOS_REQUIRE_ROOT();
  auto sandbox = start_sandbox(1);
  ASSERT_TRUE(sandbox);
  const std::string trigger = sandbox->dir() + "/needs_reboot";
  const std::string rebooted = sandbox->dir() + "/rebooted";
  const std::string log = sandbox->dir() + "/agent.log";
  // The "reboot" only leaves a mark; the test then plays the machine: it stops the agent
  // as a shutdown would, changes the boot id and starts the agent again.
  const auto agent_argv = sandbox->skopos(
      "agent", {"--trigger-file", trigger, "--reboot-required-file", trigger + ".os", "--reboot-command",
                "touch " + rebooted, "--recheck", "2s", "--recover-timeout", "60s", "--heartbeat-ttl", "3s"});
  const std::string holder = "/skopos/locks/reboot/worker/holders/sandbox-a";
  const auto etcd_has = [&](const std::string& key) {
    return run({"etcdctl", "--endpoints", sandbox->etcd(), "get", key, "--keys-only"}).out.find(key) != std::string::npos;
  };
  // The machine's side of a reboot: the shutdown stops the agent (cleanly), the next
  // boot has another boot id.
  const auto reboot_machine = [&](Driver& agent) {
    agent.signal(SIGTERM);
    EXPECT_EQ(agent.wait(20s), 0) << read_file(log);
    sandbox->new_boot();
    std::filesystem::remove(rebooted);
  };
  const auto rolling_reboot = [&](const std::string& flag) {
    std::vector<std::string> argv{SKOPOS_BIN_DIR "/skopos", "rolling-reboot", "--tier", "worker", "--etcd-endpoints",
                                  sandbox->etcd(), "--machine-id", "operator", "--json"};
    if (!flag.empty()) argv.push_back(flag);
    return run(argv);
  };
  Load load(sandbox->apps()[0].frontend, 4000);
  {
    Driver agent(agent_argv, log);
    std::this_thread::sleep_for(1s);
    ASSERT_FALSE(exists(rebooted)) << "no reboot without a trigger";
    std::ofstream(trigger) << "kernel update\n";
    ASSERT_TRUE(wait_until(90s, [&] { return exists(rebooted); })) << read_file(log);
    EXPECT_FALSE(exists(trigger)) << "the trigger is consumed when the reboot is journaled";
    EXPECT_EQ(sandbox->journal_phase(), "reboot");
    EXPECT_TRUE(etcd_has(holder)) << "the reboot lock is held through the reboot";
    reboot_machine(agent);
  }
  {
    Driver agent(agent_argv, log);
    ASSERT_TRUE(wait_until(90s, [&] { return sandbox->journal_phase().empty(); })) << read_file(log);
    EXPECT_FALSE(etcd_has(holder)) << "released after recovery";
    EXPECT_EQ(join(sandbox->leftovers()), "");

    // A rolling reboot of the tier: this agent takes its turn.
    const ProcessResult requested = rolling_reboot("");
    ASSERT_EQ(requested.exit_code, 0) << requested.err;
    ASSERT_TRUE(wait_until(90s, [&] { return exists(rebooted); })) << read_file(log);
    EXPECT_EQ(sandbox->journal_phase(), "reboot");
    reboot_machine(agent);
  }
  {
    Driver agent(agent_argv, log);
    ASSERT_TRUE(wait_until(90s, [&] { return sandbox->journal_phase().empty(); })) << read_file(log);
    // Once per request: the same request does not reboot it again.
    std::this_thread::sleep_for(5s);
    EXPECT_FALSE(exists(rebooted)) << read_file(log);
    const ProcessResult status = rolling_reboot("--status");
    EXPECT_NE(status.out.find("\"machine_id\":\"sandbox-a\""), std::string::npos) << status.out;
    agent.signal(SIGTERM);
    EXPECT_EQ(agent.wait(20s), 0) << read_file(log);
  }
  ASSERT_EQ(rolling_reboot("--cancel").exit_code, 0);
  const Load::Totals totals = load.wait();
  EXPECT_EQ(totals.failed, 0) << totals.text;
  EXPECT_EQ(totals.served, 4000) << totals.text;
  EXPECT_EQ(join(sandbox->leftovers()), "");
}

// ---- a health gate holds the agent's reboot; hooks around it -------------------------
//
// A real Prometheus and Alertmanager (tests/support/prometheus_stack.h) with a rule of
// the test's own: while its alert fires, the agent's requested reboot waits -- nothing
// taken, nothing fenced, no hook run, the gate's state in the agent's metrics; the
// alert resolves, and the drain runs under load, its hooks (a script at every point)
// with the drain's context, and reboots with 0 failed requests; after the boot the
// post-boot hook, then the release gate (the same alert) let the slot go back.
TEST(PrivilegedDrainEndToEnd, AFiringAlertHoldsTheAgentsRebootAndItsResolutionLetsTheDrainRunWithoutAFailedRequest) {
  SKOPOS_REQUIRE_ROOT();
  auto sandbox = start_sandbox(1);
  ASSERT_TRUE(sandbox);
  auto stack = PrometheusStack::start(
      "      - alert: ClusterUnhealthy\n"
      "        expr: sandbox_unhealthy > 0\n"
      "        labels: {severity: critical}\n");
  stack->set_metrics("sandbox_unhealthy 1\n");
  ASSERT_TRUE(stack->wait_alert("ClusterUnhealthy", true, 60s));
  const std::string trigger = sandbox->dir() + "/needs_reboot";
  const std::string rebooted = sandbox->dir() + "/rebooted";
  const std::string log = sandbox->dir() + "/agent.log";
  const std::string metrics = sandbox->dir() + "/agent.prom";
  // A hook at every point, leaving its context where the test can read it.
  const std::string hook = sandbox->dir() + "/hook.sh";
  std::ofstream(hook) << "#!/bin/sh\nenv | grep '^SKOPOS_' | sort > " << sandbox->dir()
                      << "/hook-$SKOPOS_HOOK.env\ncat > " << sandbox->dir() << "/hook-$SKOPOS_HOOK.json\n";
  std::filesystem::permissions(hook, std::filesystem::perms::owner_all);
  auto agent_argv = sandbox->skopos(
      "agent", {"--trigger-file", trigger, "--reboot-required-file", trigger + ".os", "--reboot-command",
                "touch " + rebooted, "--recheck", "10m", "--recover-timeout", "60s", "--heartbeat-ttl", "3s",
                "--health-alertmanager", stack->alertmanager_url(), "--health-alerts", "severity=critical",
                "--health-interval", "1s", "--agent-metrics-file", metrics, "--hook-pre-drain", hook,
                "--hook-drained", hook, "--hook-pre-reboot", hook, "--hook-post-boot", hook});
  const auto hook_ran = [&](const std::string& point) { return exists(sandbox->dir() + "/hook-" + point + ".env"); };
  const std::string holder = "/skopos/locks/reboot/worker/holders/sandbox-a";
  const auto etcd_has = [&](const std::string& key) {
    return run({"etcdctl", "--endpoints", sandbox->etcd(), "get", key, "--keys-only"}).out.find(key) !=
           std::string::npos;
  };
  // A webhook receiver: the notifications' events, in the order they came.
  std::mutex received_mutex;
  std::vector<std::string> received;
  boost::asio::io_context receiver_io;
  LoopbackHttpServer receiver(receiver_io, "test", "test", [&](const HttpServerRequest& request) {
    simdjson::dom::parser parser;
    std::string_view event;
    if (parser.parse(request.body).get_object()["event"].get(event) == simdjson::SUCCESS) {
      std::lock_guard<std::mutex> lock(received_mutex);
      if (received.empty() || received.back() != event) received.emplace_back(event);  // one "waiting" per change
    }
    return HttpServerResponse{200, "text/plain", "ok"};
  });
  ASSERT_TRUE(receiver.start("127.0.0.1:0"));
  std::thread receiver_thread([&] { receiver_io.run(); });
  struct StopReceiver {
    boost::asio::io_context& io;
    std::thread& thread;
    ~StopReceiver() {
      io.stop();
      thread.join();
    }
  } stop_receiver{receiver_io, receiver_thread};
  agent_argv.push_back("--notify-to");
  agent_argv.push_back("webhook * http://127.0.0.1:" + std::to_string(receiver.port()) + "/skopos");
  std::optional<Load> load;
  {
    Driver agent(agent_argv, log);
    std::ofstream(trigger) << "kernel update\n";
    ASSERT_TRUE(wait_until(30s, [&] {
      return read_file(log).find("reboot requested, waiting: firing alert ClusterUnhealthy{") != std::string::npos;
    })) << read_file(log);
    std::this_thread::sleep_for(3s);  // three more looks at the gate
    EXPECT_FALSE(exists(rebooted));
    EXPECT_EQ(sandbox->journal_phase(), "") << "no drain while the alert fires";
    EXPECT_FALSE(etcd_has(holder)) << "no slot taken";
    EXPECT_TRUE(exists(trigger)) << "the request waits";
    EXPECT_FALSE(hook_ran("pre-drain")) << "no hook before the gate opens";
    EXPECT_NE(read_file(metrics).find("skopos_agent_gate_open{host=\"sandbox-a\",point=\"start\",gate=\"alerts\"} 0"),
              std::string::npos)
        << read_file(metrics);

    // The alert resolves while the apps are under load: the drain runs and reboots.
    load.emplace(sandbox->apps()[0].frontend, 4000);
    stack->set_metrics("sandbox_unhealthy 0\n");
    ASSERT_TRUE(stack->wait_alert("ClusterUnhealthy", false, 60s));
    ASSERT_TRUE(wait_until(90s, [&] { return exists(rebooted); })) << read_file(log);
    EXPECT_TRUE(load->running()) << "the load spans the whole drain";
    for (const std::string point : {"pre-drain", "drained", "pre-reboot"}) EXPECT_TRUE(hook_ran(point)) << point;
    EXPECT_FALSE(hook_ran("post-boot"));
    const std::string drained_env = read_file(sandbox->dir() + "/hook-drained.env");
    EXPECT_NE(drained_env.find("SKOPOS_KIND=REBOOT\n"), std::string::npos) << drained_env;
    EXPECT_NE(drained_env.find("SKOPOS_PHASE=drained\n"), std::string::npos) << drained_env;
    EXPECT_NE(drained_env.find("SKOPOS_TRIGGER=file\n"), std::string::npos) << drained_env;
    EXPECT_EQ(sandbox->journal_phase(), "reboot");
    EXPECT_TRUE(etcd_has(holder)) << "the reboot lock is held through the reboot";
    agent.signal(SIGTERM);
    EXPECT_EQ(agent.wait(20s), 0) << read_file(log);
    sandbox->new_boot();
    std::filesystem::remove(rebooted);
  }
  {
    Driver agent(agent_argv, log);
    ASSERT_TRUE(wait_until(90s, [&] { return sandbox->journal_phase().empty(); })) << read_file(log);
    EXPECT_FALSE(etcd_has(holder)) << "released after recovery, the release gate open";
    EXPECT_NE(read_file(log).find("health gates open: no firing alerts matching the selector"), std::string::npos)
        << read_file(log);
    const std::string post_boot = read_file(sandbox->dir() + "/hook-post-boot.json");
    EXPECT_EQ(post_boot.rfind(R"({"hook":"post-boot","machine_id":"sandbox-a",)", 0), 0U) << post_boot;
    agent.signal(SIGTERM);
    EXPECT_EQ(agent.wait(20s), 0) << read_file(log);
  }
  const Load::Totals totals = load->wait();
  EXPECT_EQ(totals.failed, 0) << totals.text;
  EXPECT_EQ(totals.served, 4000) << totals.text;
  EXPECT_EQ(join(sandbox->leftovers()), "");
  // Every milestone told, in order (delivery is asynchronous: the last may still be on
  // its way when the agent stops -- it waits for its queue up to 5 s).
  std::lock_guard<std::mutex> lock(received_mutex);
  EXPECT_EQ(join(received), "waiting; started; fenced; drained; rebooting; recovered");
}

// ---- FleetLock: the OS's updater asks ----------------------------------------------
//
// The agent serves FleetLock; the test is the updater (Zincati): it asks /v1/pre-reboot
// until the answer is 200 -- the host drained, holding its slot, and no reboot command
// run -- then "reboots" the machine, and asks /v1/steady-state until the agent has
// recovered the host and given its slot back. Requests as the protocol document writes
// them, error cases included; the apps' load sees no failed request.

// One FleetLock call as the updater sends it: the status and the body.
std::pair<int, std::string> fleetlock_call(std::uint16_t port, const std::string& path, const std::string& id,
                                           const std::string& group = "worker", bool header = true) {
  const std::string body = R"({"client_params":{"group":")" + group + R"(","id":")" + id + R"("}})";
  const std::string request = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
                              (header ? std::string("fleet-lock-protocol: true\r\n") : std::string()) +
                              "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  const std::string answer = loopback_exchange(port, request);
  if (answer.size() < 12) return {0, answer};
  const auto blank = answer.find("\r\n\r\n");
  return {std::atoi(answer.substr(9, 3).c_str()), blank == std::string::npos ? "" : answer.substr(blank + 4)};
}

TEST(PrivilegedDrainEndToEnd, TheUpdatersFleetLockCallsDrainTheHostBeforeItsRebootAndReleaseItAfter) {
  SKOPOS_REQUIRE_ROOT();
  auto sandbox = start_sandbox(1);
  ASSERT_TRUE(sandbox);
  const std::string rebooted = sandbox->dir() + "/rebooted";
  const std::string log = sandbox->dir() + "/agent.log";
  const std::uint16_t port = free_loopback_port();
  const auto agent_argv = sandbox->skopos(
      "agent", {"--trigger-file", sandbox->dir() + "/needs_reboot", "--reboot-required-file",
                sandbox->dir() + "/reboot-required", "--reboot-command", "touch " + rebooted, "--fleetlock-listen",
                "127.0.0.1:" + std::to_string(port), "--recheck", "2s", "--recover-timeout", "60s",
                "--heartbeat-ttl", "3s"});
  const std::string holder = "/skopos/locks/reboot/worker/holders/sandbox-a";
  const auto etcd_has = [&](const std::string& key) {
    return run({"etcdctl", "--endpoints", sandbox->etcd(), "get", key, "--keys-only"}).out.find(key) !=
           std::string::npos;
  };
  Load load(sandbox->apps()[0].frontend, 4000);
  {
    Driver agent(agent_argv, log);
    ASSERT_TRUE(wait_until(20s, [&] { return fleetlock_call(port, "/v1/steady-state", "zincati-1").first == 200; }))
        << "at start the updater unlocks: nothing is held" << read_file(log);
    // The protocol's error cases, on the live endpoint.
    auto answer = fleetlock_call(port, "/v1/pre-reboot", "zincati-1", "worker", false);
    EXPECT_EQ(answer.first, 400);
    EXPECT_NE(answer.second.find("\"kind\":\"missing_header\""), std::string::npos) << answer.second;
    answer = fleetlock_call(port, "/v1/pre-reboot", "zincati-1", "default");
    EXPECT_EQ(answer.first, 409);
    EXPECT_NE(answer.second.find("\"kind\":\"wrong_group\""), std::string::npos) << answer.second;
    // The updater asks until it may reboot; meanwhile the host drains.
    answer = fleetlock_call(port, "/v1/pre-reboot", "zincati-1");
    EXPECT_EQ(answer.first, 503) << answer.second;
    EXPECT_NE(answer.second.find("\"kind\":\"draining\""), std::string::npos) << answer.second;
    EXPECT_EQ(fleetlock_call(port, "/v1/pre-reboot", "other-node").first, 409) << "the lock is the first client's";
    ASSERT_TRUE(wait_until(90s, [&] { return fleetlock_call(port, "/v1/pre-reboot", "zincati-1").first == 200; }))
        << read_file(log);
    EXPECT_EQ(sandbox->journal_phase(), "reboot");
    EXPECT_TRUE(etcd_has(holder)) << "the slot is held through the updater's reboot";
    EXPECT_FALSE(exists(rebooted)) << "the updater reboots, not the reboot command";
    EXPECT_EQ(fleetlock_call(port, "/v1/steady-state", "zincati-1").first, 409) << "drained, waiting for the reboot";
    // The updater reboots the machine.
    agent.signal(SIGTERM);
    EXPECT_EQ(agent.wait(20s), 0) << read_file(log);
    sandbox->new_boot();
  }
  {
    Driver agent(agent_argv, log);
    // After the boot the updater unlocks, and keeps asking until the host is back.
    ASSERT_TRUE(wait_until(90s, [&] { return fleetlock_call(port, "/v1/steady-state", "zincati-1").first == 200; }))
        << read_file(log);
    EXPECT_EQ(sandbox->journal_phase(), "");
    EXPECT_FALSE(etcd_has(holder)) << "released after recovery";
    EXPECT_FALSE(exists(rebooted));
    agent.signal(SIGTERM);
    EXPECT_EQ(agent.wait(20s), 0) << read_file(log);
  }
  const Load::Totals totals = load.wait();
  EXPECT_EQ(totals.failed, 0) << totals.text;
  EXPECT_EQ(totals.served, 4000) << totals.text;
  EXPECT_EQ(join(sandbox->leftovers()), "");
}

// ---- the control tier ----------------------------------------------------------------

TEST(PrivilegedDrainEndToEnd, ControlTierMovesTheMarathonLeaderAwayAndRefusesToBreakZooKeeperQuorum) {
  SKOPOS_REQUIRE_ROOT();
  auto sandbox = start_sandbox(1);
  ASSERT_TRUE(sandbox);
  auto zookeeper = ZooKeeperEnsemble::start(3);
  ASSERT_TRUE(zookeeper);
  std::string zk;
  for (const std::string& endpoint : zookeeper->endpoints()) zk += (zk.empty() ? "" : ",") + endpoint;
  // Two Marathon instances; the leader is "this host's".
  auto marathon = Simulator::start(SKOPOS_SOURCE_DIR "/tools", "marathon-sim",
                                   R"({"instances": 2, "hosts": ["sandbox-a", "sandbox-b"], "apps": []})");
  const auto instances = marathon->list("instances");
  ASSERT_EQ(instances.size(), 2U);
  const auto leader_of = [&] {
    const std::string body = Simulator::get(instances[1], "/v2/leader");
    simdjson::dom::parser parser;
    std::string_view value;
    if (parser.parse(body)["leader"].get(value) != simdjson::SUCCESS) return std::string();
    return std::string(value);
  };
  const std::string leader = leader_of();
  ASSERT_FALSE(leader.empty());
  const std::vector<std::string> control = {"--tier", "control", "--marathon", instances[0] + "," + instances[1],
                                            "--marathon-self", leader, "--zookeeper", zk, "--json",
                                            "--log-level", "warning"};
  const ProcessResult drained = run(sandbox->skopos("drain", control));
  ASSERT_EQ(drained.exit_code, 0) << drained.err << drained.out;
  const Events events = parse_events(drained.out);
  EXPECT_NE(join(events.messages).find("abdicating"), std::string::npos) << drained.out;
  const std::string new_leader = leader_of();
  EXPECT_FALSE(new_leader.empty());
  EXPECT_NE(new_leader, leader) << "the leader moved off this host";
  ASSERT_EQ(run(sandbox->skopos("undrain", control)).exit_code, 0);
  EXPECT_EQ(join(sandbox->leftovers()), "");

  // With one of three ZooKeeper servers left, taking a control host down would lose the
  // quorum for good: refused, and nothing is left behind.
  ASSERT_TRUE(sandbox->reset());
  zookeeper->kill(0);
  zookeeper->kill(1);
  const ProcessResult refused = run(sandbox->skopos("drain", control));
  EXPECT_EQ(refused.exit_code, 4) << refused.err << refused.out;
  EXPECT_NE(refused.err.find("ZooKeeper is not healthy"), std::string::npos) << refused.err;
  EXPECT_EQ(join(sandbox->leftovers()), "");
}

// ---- the booster drain ---------------------------------------------------------------

// Accepts one HTTP request on 127.0.0.1 and answers 200; the request as received.
class NotificationReceiver {
 public:
  NotificationReceiver() {
    listener_ = tcp_listen("127.0.0.1", 0, true, 4);
    port_ = local_port(listener_.get());
    thread_ = std::thread([this] {
      pollfd pfd{listener_.get(), POLLIN, 0};
      if (::poll(&pfd, 1, 120000) != 1) return;
      UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      std::string text;
      char buffer[4096];
      for (;;) {
        const auto end = text.find("\r\n\r\n");
        if (end != std::string::npos) {
          const auto length_at = text.find("Content-Length: ");
          const std::size_t length = length_at == std::string::npos ? 0 : std::stoul(text.substr(length_at + 16));
          if (text.size() >= end + 4 + length) break;
        }
        const ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, 0);
        if (n <= 0) break;
        text.append(buffer, static_cast<std::size_t>(n));
      }
      const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      (void)::send(fd.get(), ok.data(), ok.size(), MSG_NOSIGNAL);
      const std::lock_guard<std::mutex> lock(mutex_);
      request_ = text;
    });
  }
  ~NotificationReceiver() {
    if (thread_.joinable()) thread_.join();
  }
  std::uint16_t port() const { return port_; }
  std::string request() {
    if (thread_.joinable()) thread_.join();
    const std::lock_guard<std::mutex> lock(mutex_);
    return request_;
  }

 private:
  UniqueFd listener_;
  std::uint16_t port_ = 0;
  std::mutex mutex_;
  std::string request_;
  std::thread thread_;
};

TEST(PrivilegedDrainEndToEnd, BoosterDrainsForGoodMarksTheAgentGoneAndNotifies) {
  SKOPOS_REQUIRE_ROOT();
  auto sandbox = start_sandbox(1);
  ASSERT_TRUE(sandbox);
  NotificationReceiver receiver;
  Load load(sandbox->apps()[0].frontend, 3000);
  std::this_thread::sleep_for(1s);
  const ProcessResult drained = run(sandbox->skopos(
      "booster", {"--mesos-mode", "drain-api", "--mark-gone", "--json", "--log-level", "warning", "--notify",
                  "http://127.0.0.1:" + std::to_string(receiver.port()) + "/retired/{machine_id}"}));
  ASSERT_EQ(drained.exit_code, 0) << drained.err << drained.out;
  const Events events = parse_events(drained.out);
  EXPECT_EQ(events.result.at("outcome"), "drained");
  EXPECT_EQ(events.result.at("connections_zero"), "true");
  const std::string request = receiver.request();
  EXPECT_EQ(request.rfind("POST /retired/sandbox-a ", 0), 0U) << request;
  EXPECT_NE(request.find("\"kind\":\"BOOSTER\""), std::string::npos) << request;
  EXPECT_NE(request.find("\"outcome\":\"drained\""), std::string::npos) << request;
  // Mesos drained the agent and forgot it (mark_gone).
  EXPECT_TRUE(wait_until(10s, [&] { return sandbox->mesos_get("/__sim/state").find("\"S-a\"") == std::string::npos; }))
      << sandbox->mesos_get("/__sim/state");
  // The booster slot is given back; the host keeps its BOOSTER lock and its fence: it
  // is on its way out.
  const ProcessResult keys = run({"etcdctl", "--endpoints", sandbox->etcd(), "get", "--prefix", "/skopos", "--keys-only"});
  EXPECT_EQ(keys.out.find("/skopos/locks/booster/worker/holders/"), std::string::npos) << keys.out;
  EXPECT_NE(keys.out.find("/skopos/hosts/sandbox-a"), std::string::npos) << keys.out;
  EXPECT_EQ(run({"iptables", "-S", sandbox->chain()}).exit_code, 0);
  const Load::Totals totals = load.wait();
  EXPECT_EQ(totals.failed, 0) << totals.text;
  EXPECT_EQ(totals.served, 3000) << totals.text;
}

}  // namespace
}  // namespace skopos::testing
