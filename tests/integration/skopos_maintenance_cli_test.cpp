// `skopos maintenance` as an operator runs it against tools/mesos-sim (3 masters, the
// CLI told only a follower) and a real etcd: host globs resolve to the exact
// hostname+ip pairs, the schedule keeps other machines' windows, Mesos's refusals come
// through with its text and exit 4, a pattern matching nothing is exit 2.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <thread>

#include "etcd_server.h"
#include "process.h"
#include "simulators.h"

namespace {

using skopos::testing::ProcessResult;
using skopos::testing::run_process;
using skopos::testing::Simulator;

class SkoposMaintenanceCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    etcd_ = skopos::testing::EtcdServer::start();
    sim_ = Simulator::start(std::string(SKOPOS_SOURCE_DIR) + "/tools", "mesos-sim", R"({"masters": 3, "drain_seconds": 1.5, "agents": [
      {"id": "S0", "hostname": "worker-1", "ip": "127.0.0.2"},
      {"id": "S1", "hostname": "worker-2", "ip": "127.0.0.3"},
      {"id": "S2", "hostname": "proxy-1", "ip": "127.0.0.4"}]})");
    follower_ = sim_->list("masters").at(2);
  }
  ProcessResult run(std::vector<std::string> args) {
    std::vector<std::string> argv = {SKOPOS_CLI, "maintenance"};
    argv.insert(argv.end(), args.begin(), args.end());
    for (const std::string& option : {std::string("--mesos-master"), follower_, std::string("--etcd-endpoints"),
                                      etcd_->endpoint(), std::string("--machine-id"), std::string("operator-box"),
                                      std::string("--log-level"), std::string("warning")}) {
      argv.push_back(option);
    }
    return run_process(argv);
  }
  simdjson::dom::element status() {
    auto result = run({"status", "--json"});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    status_text_ = result.out;
    simdjson::dom::element root;
    EXPECT_EQ(parser_.parse(status_text_).get(root), simdjson::SUCCESS) << status_text_;
    return root;
  }
  std::string mode_of(const std::string& host) {
    for (simdjson::dom::element machine : status()["machines"].get_array()) {
      if (std::string_view(machine["hostname"]) == host) return std::string(std::string_view(machine["mode"]));
    }
    return "absent";
  }

  std::unique_ptr<skopos::testing::EtcdServer> etcd_;
  std::unique_ptr<Simulator> sim_;
  std::string follower_;
  std::string status_text_;
  simdjson::dom::parser parser_;
};

TEST_F(SkoposMaintenanceCliTest, AGlobSchedulesExactMachinesAndKeepsOtherWindows) {
  auto proxy = run({"schedule", "proxy-1", "--start", "2030-01-01T00:00:00Z", "--duration", "30m"});
  ASSERT_EQ(proxy.exit_code, 0) << proxy.err;
  auto workers = run({"schedule", "worker-*", "--duration", "2h", "--json"});
  ASSERT_EQ(workers.exit_code, 0) << workers.err;
  EXPECT_NE(workers.out.find(R"({"hostname":"worker-1","ip":"127.0.0.2"})"), std::string::npos) << workers.out;
  EXPECT_NE(workers.out.find(R"({"hostname":"worker-2","ip":"127.0.0.3"})"), std::string::npos) << workers.out;
  simdjson::dom::element root = status();
  int windows = 0;
  for (simdjson::dom::element machine : root["machines"].get_array()) {
    simdjson::dom::element window;
    if (machine["window"].get(window) != simdjson::SUCCESS) continue;
    ++windows;
    if (std::string_view(machine["hostname"]) == "proxy-1") {
      EXPECT_EQ(std::string_view(window["start"]), "2030-01-01T00:00:00Z");
      EXPECT_EQ(window["duration_seconds"].get_int64().value(), 1800);
    } else {
      EXPECT_EQ(window["duration_seconds"].get_int64().value(), 7200);
    }
  }
  EXPECT_EQ(windows, 3) << "the proxy's window survived the workers' edit: " << status_text_;
  EXPECT_EQ(mode_of("worker-1"), "DRAINING");

  auto cancelled = run({"cancel", "worker-2"});
  ASSERT_EQ(cancelled.exit_code, 0) << cancelled.err;
  EXPECT_EQ(mode_of("worker-2"), "UP");
  EXPECT_EQ(mode_of("proxy-1"), "DRAINING");
}

TEST_F(SkoposMaintenanceCliTest, DownAndUpFollowTheMaintenanceStateMachine) {
  auto early = run({"down", "worker-1"});
  EXPECT_EQ(early.exit_code, 4) << "down only from DRAINING";
  EXPECT_NE(early.err.find("is not in DRAINING mode and cannot be brought down"), std::string::npos) << early.err;
  ASSERT_EQ(run({"schedule", "worker-1"}).exit_code, 0);
  ASSERT_EQ(run({"down", "worker-1"}).exit_code, 0);
  EXPECT_EQ(mode_of("worker-1"), "DOWN");
  auto keep = run({"cancel", "worker-1"});
  EXPECT_EQ(keep.exit_code, 4) << "a DOWN machine stays in the schedule";
  EXPECT_NE(keep.err.find("cannot be removed from the schedule"), std::string::npos) << keep.err;
  // Its agent is gone from the agent list, but the machine is still found by name.
  auto up = run({"up", "worker-1"});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  EXPECT_NE(mode_of("worker-1"), "DOWN");
}

TEST_F(SkoposMaintenanceCliTest, DrainAgentAndReactivate) {
  auto drained = run({"drain-agent", "proxy-*", "--grace", "10m"});
  ASSERT_EQ(drained.exit_code, 0) << drained.err;
  auto early = run({"reactivate-agent", "proxy-1"});
  EXPECT_EQ(early.exit_code, 4) << "its tasks are still draining";
  EXPECT_NE(early.err.find("Agent is still in the DRAINING state"), std::string::npos) << early.err;
  std::this_thread::sleep_for(std::chrono::seconds(2));  // the simulator drains in 1.5 s
  auto reactivated = run({"reactivate-agent", "proxy-1"});
  EXPECT_EQ(reactivated.exit_code, 0) << reactivated.err;
  ASSERT_EQ(run({"schedule", "worker-2"}).exit_code, 0);
  auto refused = run({"drain-agent", "worker-2"});
  EXPECT_EQ(refused.exit_code, 4);
  EXPECT_NE(refused.err.find("is part of a maintenance schedule"), std::string::npos) << refused.err;
}

TEST_F(SkoposMaintenanceCliTest, BadInputSaysWhatIsWrong) {
  auto nothing = run({"schedule", "db-*"});
  EXPECT_EQ(nothing.exit_code, 2);
  EXPECT_NE(nothing.err.find("'db-*'"), std::string::npos) << nothing.err;
  EXPECT_EQ(run({"schedule"}).exit_code, 2);
  EXPECT_EQ(run({"schedule", "worker-1", "--start", "tomorrow"}).exit_code, 2);
  EXPECT_EQ(run({"schedule", "worker-1", "--duration", "soon"}).exit_code, 2);
  EXPECT_EQ(run({"frobnicate"}).exit_code, 2);
  const std::string dead = "http://127.0.0.1:" + std::to_string(skopos::testing::free_loopback_port());
  auto unreachable = run_process({SKOPOS_CLI, "maintenance", "status", "--mesos-master", dead, "--mesos-timeout", "1s"});
  EXPECT_EQ(unreachable.exit_code, 3);
  EXPECT_NE(unreachable.err.find(dead), std::string::npos) << unreachable.err;
}

}  // namespace
