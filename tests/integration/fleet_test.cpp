// A fleet rolled through a real 3-member etcd, tier after tier, with faults: an etcd
// member killed and restarted, the leader killed, agents stopped and restarted at random
// moments, one host whose reboot does not come back until the rest of its tier is done,
// and a slow network in front of some hosts. The run is proven from etcd's own history
// (FleetChecker): never above a tier's max, no host holding two slots, no fencing token
// used twice, every app kept at its minimum on hosts not draining, every host rebooted
// exactly once, and nothing left behind.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <thread>

#include "driver/lock_service.h"
#include "driver/rolling_reboot.h"
#include "etcd_server.h"
#include "fault_proxy.h"
#include "fleet.h"
#include "fleet_checker.h"
#include "lock_test_support.h"

namespace skopos::driver {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using skopos::testing::Fleet;
using skopos::testing::FleetChecker;
using skopos::testing::FleetOptions;

class FleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/skopos-fleet-" + std::to_string(::getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // The tier's progress, as `skopos rolling-reboot --status` computes it.
  static RollingProgress progress(EtcdClient& etcd, LockService& locks, const std::string& tier,
                                  std::int64_t stuck_after = 3600) {
    RollingReboot rolling(etcd, "/skopos");
    auto view = read_rolling_view(rolling, locks, tier, "reboot", stuck_after);
    return view ? view->progress : RollingProgress{};
  }

  std::string dir_;
};

// An agent stopped (a crash, a restart) in the moment its reboot command runs: the host
// goes down and comes back with a new boot once, whichever finished first. The crash is
// ordered, not timed: the command waits until the agent is being stopped.
TEST_F(FleetTest, AnAgentStoppedAsItsRebootCommandRunsRebootsItsHostOnce) {
  auto etcd = skopos::testing::EtcdServer::start(1);
  FleetOptions options;
  options.tiers = {{"worker", 1, 1}};
  options.endpoints = etcd->endpoints();
  options.dir = dir_;
  options.drain_time = 50ms;
  options.reboot_time = 100ms;
  options.restart_delay = 200ms;
  options.heartbeat_ttl = 3s;
  Fleet* running = nullptr;
  std::atomic<int> commands{0};
  std::atomic<bool> saw_stop{false};  // written on the agent's thread
  options.on_reboot_command = [&](std::size_t host, const std::atomic<bool>& agent_stop) {
    if (commands++ != 0) return;
    running->restart_agent(host);
    for (const auto give_up = Clock::now() + 20s; !agent_stop && Clock::now() < give_up;) {
      std::this_thread::sleep_for(1ms);
    }
    saw_stop = agent_stop.load();
  };
  auto admin_etcd = testing::etcd_client(etcd->endpoints());
  auto before = admin_etcd->range("/skopos/", EtcdClient::prefix_end("/skopos/"), 1);
  ASSERT_TRUE(before);
  Fleet fleet(options);
  running = &fleet;
  FleetChecker checker(etcd->endpoints(), "/skopos", before->revision + 1, fleet.apps());
  ASSERT_EQ(fleet.start(), "");
  LockService admin(*admin_etcd, HostIdentity{"operator", "boot", "operator"}, LockServiceOptions{});
  RollingReboot rolling(*admin_etcd, "/skopos");
  ASSERT_TRUE(rolling.request("worker", "operator", {}));
  const auto settled = [&] {
    auto status = admin.status();
    return progress(*admin_etcd, admin, "worker").count(HostTurn::kDone) == 1 && status &&
           std::none_of(status->groups.begin(), status->groups.end(),
                        [](const GroupState& g) { return !g.holders.empty() || !g.queue.empty(); });
  };
  for (const auto deadline = Clock::now() + 60s; !settled() && Clock::now() < deadline;) {
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(settled()) << "the roll did not finish; last agent error: " << fleet.last_error();
  EXPECT_TRUE(saw_stop) << "the agent was not stopped while its reboot command ran";
  // A second reboot, had the stopped agent come back in its old boot, comes within a
  // restart delay and a reboot of the first; the roll is done long after both.
  std::this_thread::sleep_for(options.restart_delay + options.reboot_time + 500ms);
  EXPECT_EQ(fleet.reboots(0), 1) << "reboot commands run: " << commands;
  auto end = admin_etcd->range("/skopos/", EtcdClient::prefix_end("/skopos/"), 1);
  ASSERT_TRUE(end);
  checker.finish(end->revision);
  EXPECT_TRUE(checker.violations().empty()) << checker.violations().front();
  EXPECT_EQ(checker.reboots("reboot/worker", fleet.hosts()[0].machine_id), 1);
}

TEST_F(FleetTest, TwoHundredHostsInThreeTiersRollOnceEachThroughFaultsAndTheHistoryProvesIt) {
  auto etcd = skopos::testing::EtcdServer::start(3);
  // Two members behind delaying proxies: a slow host reaches etcd only through them,
  // whichever member its client starts at.
  skopos::testing::FaultProxy slow(etcd->port(1));
  skopos::testing::FaultProxy slow_too(etcd->port(2));
  slow.set_delay(15ms);
  slow_too.set_delay(15ms);
  FleetOptions options;
  options.tiers = {{"control", 10, 1}, {"proxy", 30, 3}, {"worker", 160, 10}};
  options.endpoints = etcd->endpoints();
  options.slow_endpoints = {slow.endpoint(), slow_too.endpoint()};
  options.slow_every = 10;
  options.dir = dir_;
  options.drain_time = 100ms;
  options.reboot_time = 200ms;
  options.heartbeat_ttl = 3s;
  options.apps = 60;
  options.instances = 3;
  options.min_healthy = 0.5;
  auto admin_etcd = testing::etcd_client(etcd->endpoints());
  LockServiceOptions admin_options;
  LockService admin(*admin_etcd, HostIdentity{"operator", "boot", "operator"}, admin_options);
  auto before = admin_etcd->range("/skopos/", EtcdClient::prefix_end("/skopos/"), 1);
  ASSERT_TRUE(before);
  Fleet fleet(options);
  FleetChecker checker(etcd->endpoints(), "/skopos", before->revision + 1, fleet.apps());
  ASSERT_EQ(fleet.start(), "");

  RollingReboot rolling(*admin_etcd, "/skopos");
  std::mt19937 random(7);
  const auto roll = [&](const std::string& tier, int hosts, const std::function<void(int done)>& faults) {
    ASSERT_TRUE(rolling.request(tier, "operator", {}));
    const auto deadline = Clock::now() + 8min;
    int done = 0;
    for (;;) {
      const RollingProgress p = progress(*admin_etcd, admin, tier);
      done = static_cast<int>(p.count(HostTurn::kDone));
      if (done == hosts || Clock::now() > deadline) break;
      faults(done);
      std::this_thread::sleep_for(200ms);
    }
    ASSERT_EQ(done, hosts) << tier << " did not finish; last agent error: " << fleet.last_error();
    std::printf("fleet: tier %s (%d hosts) rolled in %.1f s\n", tier.c_str(), hosts,
                std::chrono::duration<double>(Clock::now() - (deadline - 8min)).count());
  };

  roll("control", 10, [](int) {});
  roll("proxy", 30, [&](int done) {
    static bool killed = false;
    if (done >= 10 && !killed) {  // a member that is not the leader goes away and comes back
      killed = true;
      const int leader = etcd->leader();
      const int victim = (leader + 1) % 3;
      etcd->kill(victim);
      std::this_thread::sleep_for(2s);
      etcd->restart(victim);
    }
  });
  // The worker tier: the leader killed, agents restarted at random moments, and one host
  // whose reboot does not come back until the others are done.
  // The host that does not come back runs no app: one that did would keep its apps'
  // other hosts from passing the budget until it is back.
  const std::size_t first_worker = 40;
  std::size_t held = first_worker;
  const auto runs_an_app = [&](const std::string& hostname) {
    return std::any_of(fleet.apps().begin(), fleet.apps().end(), [&](const skopos::testing::FleetApp& app) {
      return std::find(app.hostnames.begin(), app.hostnames.end(), hostname) != app.hostnames.end();
    });
  };
  while (runs_an_app(fleet.hosts()[held].hostname)) ++held;
  fleet.hold_reboot(held);
  bool leader_killed = false;
  bool saw_stuck = false;
  Clock::time_point last_one_since{};  // when only the held host was left
  int restarts = 0;
  roll("worker", 160, [&](int done) {
    if (done >= 40 && !leader_killed) {
      leader_killed = true;
      const int leader = etcd->leader();
      ASSERT_GE(leader, 0);
      etcd->kill(leader);
      std::this_thread::sleep_for(3s);
      etcd->restart(leader);
    }
    if (restarts < 12 && done >= 10 && random() % 3 == 0) {
      ++restarts;
      fleet.restart_agent(first_worker + random() % 160);
    }
    // Stuck: it holds its slot with no heartbeat for longer than 5 s; the others go on.
    const RollingProgress p = progress(*admin_etcd, admin, "worker", 5);
    for (const HostProgress& host : p.hosts) {
      if (host.turn == HostTurn::kStuck && host.machine_id == fleet.hosts()[held].machine_id) {
        saw_stuck = true;
        EXPECT_LE(p.usable_slots, 9) << "the roll goes on with one slot fewer";
      }
    }
    // Back once it was seen stuck (or after a bounded wait: the test then fails): a roll
    // fast enough to finish the rest before the held host's heartbeat expired must not
    // hide the stuck state.
    if (done == 159) {
      if (last_one_since == Clock::time_point{}) last_one_since = Clock::now();
      if (saw_stuck || Clock::now() - last_one_since > 30s) fleet.release_reboot(held);
    }
  });
  EXPECT_TRUE(saw_stuck) << "the host that did not come back was never reported stuck";
  EXPECT_GE(restarts, 6);

  // Every host is back; wait for the last holder to let go, then prove the run.
  const auto settled = [&] {
    auto status = admin.status();
    return status && std::none_of(status->groups.begin(), status->groups.end(), [](const GroupState& g) {
             return !g.holders.empty() || !g.queue.empty();
           });
  };
  for (const auto quiet = Clock::now() + 60s; !settled() && Clock::now() < quiet;) std::this_thread::sleep_for(200ms);
  auto end = admin_etcd->range("/skopos/", EtcdClient::prefix_end("/skopos/"), 1);
  ASSERT_TRUE(end);
  checker.finish(end->revision);
  EXPECT_TRUE(checker.violations().empty()) << checker.violations().front();
  EXPECT_GT(checker.revisions(), 1000);
  int retaken = 0;  // slots given back after a refusal (the budget) and taken again later
  for (const skopos::testing::FleetHostView& host : fleet.hosts()) {
    EXPECT_EQ(checker.reboots("reboot/" + host.tier, host.machine_id), 1) << host.machine_id;
    retaken += checker.taken().at("reboot/" + host.tier).at(host.machine_id) - 1;
  }
  std::printf("fleet: %zu hosts, %lld revisions replayed, %d slots taken again after a refusal, %d agents restarted\n",
              fleet.hosts().size(), static_cast<long long>(checker.revisions()), retaken, restarts);
  for (std::size_t i = 0; i < fleet.hosts().size(); ++i) EXPECT_EQ(fleet.reboots(i), 1) << fleet.hosts()[i].hostname;
  EXPECT_EQ(checker.peak_holders().at("reboot/worker"), 10) << "the worker tier used its slots";
  EXPECT_TRUE(checker.left_over().empty()) << checker.left_over().front();
  EXPECT_TRUE(fleet.in_maintenance().empty()) << fleet.in_maintenance().front();
  // Refused tries were recorded as failed (the status shows them); every host done, none
  // is left.
  for (const char* tier : {"control", "proxy", "worker"}) {
    auto rolled = rolling.status(tier);
    ASSERT_TRUE(rolled) << rolled.error().message;
    EXPECT_TRUE(rolled->failed.empty()) << tier << ": " << rolled->failed.front().machine_id
                                        << "'s failed try outlived its turn";
  }
}

}  // namespace
}  // namespace skopos::driver
