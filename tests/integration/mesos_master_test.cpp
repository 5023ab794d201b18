// MesosMaster against tools/mesos-sim: every call, leader redirects (with the POST body
// sent again), no leader, a master still recovering, failover between schedule and
// down, the maintenance state machine's refusals with the master's own texts, the
// operator API's drain, and injected 5xx, hangs and latency.
#include <gtest/gtest.h>

#include <thread>

#include "driver/mesos_master.h"
#include "simulators.h"

namespace skopos::driver {
namespace {

using namespace std::chrono_literals;
using skopos::testing::Simulator;

constexpr const char* kCluster = R"({
  "masters": 3, "leader": 0, "version": "1.11.0", "drain_seconds": 0.3,
  "agents": [
    {"id": "S0", "hostname": "agent1", "ip": "127.0.0.2",
     "tasks": [{"id": "web.1", "name": "web", "container_id": "c-web-1"}]},
    {"id": "S1", "hostname": "agent2", "ip": "127.0.0.3"},
    {"id": "S2", "hostname": "old-agent", "ip": "127.0.0.4", "capabilities": []}
  ]})";

class MesosMasterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sim_ = Simulator::start(std::string(SKOPOS_SOURCE_DIR) + "/tools", "mesos-sim", kCluster);
    masters_ = sim_->list("masters");
    ASSERT_EQ(masters_.size(), 3u);
  }
  std::unique_ptr<MesosMaster> client(const std::vector<std::string>& endpoints,
                                      std::chrono::milliseconds leader_wait = 5s,
                                      std::chrono::milliseconds timeout = 2s) {
    MesosMasterOptions options;
    for (const std::string& text : endpoints) options.http.endpoints.push_back(*HttpEndpoint::parse(text));
    options.http.timeout = timeout;
    options.http.backoff = 20ms;
    options.leader_wait = leader_wait;
    auto master = MesosMaster::create(std::move(options));
    EXPECT_TRUE(master);
    return std::move(*master);
  }
  void control(const std::string& json) { ASSERT_NE(Simulator::control(masters_[0], json), ""); }

  std::unique_ptr<Simulator> sim_;
  std::vector<std::string> masters_;
  const MachineId agent1_{"agent1", "127.0.0.2"};
  const MachineId agent2_{"agent2", "127.0.0.3"};
};

TEST_F(MesosMasterTest, AgentsComeWithTheirMachineIdentityAndVersion) {
  auto master = client({masters_[0]});
  auto version = master->version();
  ASSERT_TRUE(version) << version.error().message;
  EXPECT_EQ(*version, "1.11.0");
  auto agents = master->agents();
  ASSERT_TRUE(agents) << agents.error().message;
  ASSERT_EQ(agents->size(), 3u);
  EXPECT_EQ((*agents)[0].machine(), agent1_) << "hostname and the ip of the pid";
  EXPECT_GT((*agents)[0].registered_ns, 1700000000000000000) << "int64 nanoseconds, exact";
}

TEST_F(MesosMasterTest, APostToAFollowerIsSentAgainToTheLeaderWithItsBody) {
  auto master = client({masters_[2]});  // a follower only
  auto scheduled = master->update_schedule(with_window({}, agent1_, 1000, 3600000000000));
  ASSERT_TRUE(scheduled) << scheduled.error().message;
  EXPECT_EQ(master->leader(), masters_[0]);
  auto schedule = master->schedule();
  ASSERT_TRUE(schedule) << schedule.error().message;
  ASSERT_NE(schedule->find(agent1_), nullptr) << "the body reached the leader";
  EXPECT_EQ(schedule->find(agent1_)->duration_ns, 3600000000000);
}

TEST_F(MesosMasterTest, NoLeaderIsWaitedOutWithinTheDeadlineThenReported) {
  control(R"({"leader": null})");
  auto master = client({masters_[1]}, 600ms);
  auto none = master->schedule();
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().kind, OutsideError::Kind::kNoLeader);
  EXPECT_NE(none.error().message.find("No leader elected"), std::string::npos) << none.error().message;

  // A leader is elected while we wait.
  auto patient = client({masters_[1]}, 10s);
  std::thread elect([&] {
    std::this_thread::sleep_for(400ms);
    control(R"({"leader": 2})");
  });
  auto schedule = patient->schedule();
  elect.join();
  ASSERT_TRUE(schedule) << schedule.error().message;
  EXPECT_EQ(patient->leader(), masters_[2]);

  control(R"({"recovering": true})");
  auto recovering = client({masters_[2]}, 500ms);
  auto agents = recovering->agents();
  ASSERT_FALSE(agents);
  EXPECT_NE(agents.error().message.find("Master has not finished recovery"), std::string::npos);
}

TEST_F(MesosMasterTest, AFailoverBetweenScheduleAndDownIsFollowed) {
  auto master = client(masters_);
  ASSERT_TRUE(master->update_schedule(with_window({}, agent1_, 1000, std::nullopt)));
  EXPECT_EQ(master->leader(), masters_[0]);
  control(R"({"leader": 1})");
  auto down = master->machines_down({agent1_});
  ASSERT_TRUE(down) << down.error().message;
  EXPECT_EQ(master->leader(), masters_[1]) << "the old leader redirected us to the new one";
  auto status = master->maintenance_status();
  ASSERT_TRUE(status);
  ASSERT_EQ(status->down.size(), 1u);
  EXPECT_EQ(status->down[0], agent1_);

  // A leader that dies: back to the configured list, which redirects to the new one.
  // (The simulator's masters share one process; "dies" is a 3-master leader change.)
  control(R"({"leader": 2})");
  auto up = master->machines_up({agent1_});
  ASSERT_TRUE(up) << up.error().message;
  EXPECT_EQ(master->leader(), masters_[2]);
}

TEST_F(MesosMasterTest, TheMaintenanceStateMachineRefusesWithTheMastersOwnWords) {
  auto master = client({masters_[0]});
  const auto refused = [](const Result<void, OutsideError>& result) {
    return result ? std::string("(accepted)") : std::to_string(result.error().status) + " " + result.error().message;
  };
  EXPECT_NE(refused(master->machines_down({agent1_})).find(
                "400 mesos POST /machine/down: HTTP 400: Machine '{\"hostname\":\"agent1\",\"ip\":\"127.0.0.2\"}' is "
                "not in DRAINING mode and cannot be brought down"),
            std::string::npos);
  EXPECT_NE(refused(master->machines_down({{"nowhere", "127.0.0.9"}})).find("is not part of a maintenance schedule"),
            std::string::npos);
  EXPECT_NE(refused(master->machines_up({agent1_})).find("is not in DOWN mode and cannot be brought up"),
            std::string::npos);
  EXPECT_NE(refused(master->machines_down({})).find("List of machines is empty"), std::string::npos);

  MaintenanceSchedule twice = with_window({}, agent1_, 1, std::nullopt);
  twice.windows.push_back(MaintenanceWindow{{MachineId{"AGENT1", "127.0.0.2"}}, 2, std::nullopt});
  EXPECT_NE(refused(master->update_schedule(twice)).find("appears more than once in the schedule"), std::string::npos);
  EXPECT_NE(refused(master->update_schedule(with_window({}, {"", ""}, 1, std::nullopt)))
                .find("Both 'hostname' and 'ip' for a machine are empty"),
            std::string::npos);
  EXPECT_NE(refused(master->update_schedule(with_window({}, agent1_, 1, -5))).find("'duration' is negative"),
            std::string::npos);

  ASSERT_TRUE(master->update_schedule(with_window({}, agent1_, 1, std::nullopt)));
  ASSERT_TRUE(master->machines_down({agent1_}));
  EXPECT_NE(refused(master->update_schedule({})).find("is deactivated and cannot be removed from the schedule"),
            std::string::npos)
      << "a DOWN machine must stay in any new schedule";
  auto agents = master->agents();
  ASSERT_TRUE(agents);
  EXPECT_EQ(agents->size(), 2u) << "the agent on a DOWN machine is shut down";
  ASSERT_TRUE(master->machines_up({agent1_}));
  auto schedule = master->schedule();
  ASSERT_TRUE(schedule);
  EXPECT_EQ(schedule->find(agent1_), nullptr) << "up removes the machine from the schedule";
  auto status = master->maintenance_status();
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->down.empty());
  EXPECT_TRUE(status->draining.empty());
}

TEST_F(MesosMasterTest, DrainAgentDrainsAndIsRefusedForScheduledMachines) {
  auto master = client({masters_[0]});
  ASSERT_TRUE(master->drain_agent("S1", 600s, false));
  auto agents = master->agents();
  ASSERT_TRUE(agents);
  const auto find = [](const std::vector<MesosAgentInfo>& list, const std::string& id) {
    for (const MesosAgentInfo& agent : list) {
      if (agent.id == id) return agent;
    }
    return MesosAgentInfo{};
  };
  EXPECT_TRUE(find(*agents, "S1").deactivated);
  EXPECT_EQ(find(*agents, "S1").drain, MesosAgentInfo::DrainState::kDraining);
  EXPECT_TRUE(master->drain_agent("S1", 600s, false)) << "draining again is accepted";
  auto early = master->reactivate_agent("S1");
  ASSERT_FALSE(early);
  EXPECT_NE(early.error().message.find("Agent is still in the DRAINING state"), std::string::npos);
  std::this_thread::sleep_for(600ms);
  agents = master->agents();
  ASSERT_TRUE(agents);
  EXPECT_EQ(find(*agents, "S1").drain, MesosAgentInfo::DrainState::kDrained);
  ASSERT_TRUE(master->reactivate_agent("S1"));
  auto again = master->reactivate_agent("S1");
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("Agent is not deactivated"), std::string::npos);

  ASSERT_TRUE(master->update_schedule(with_window({}, agent1_, 1, std::nullopt)));
  auto scheduled = master->drain_agent("S0", std::nullopt, false);
  ASSERT_FALSE(scheduled);
  EXPECT_NE(scheduled.error().message.find("Agent S0 is part of a maintenance schedule under Machine"),
            std::string::npos)
      << scheduled.error().message;
  auto incapable = master->drain_agent("S2", std::nullopt, false);
  ASSERT_FALSE(incapable);
  EXPECT_NE(incapable.error().message.find("is not capable of draining"), std::string::npos);
  auto unknown = master->deactivate_agent("S9");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().message.substr(unknown.error().message.size() - 13), "Unknown agent");
}

TEST_F(MesosMasterTest, ServerErrorsHangsAndLatencyGiveTypedErrorsAndNoSilentRetryOfWrites) {
  auto master = client({masters_[0]}, 2s, 500ms);
  control(R"({"fail": {"status": 500, "count": 1, "body": "Internal Server Error"}})");
  auto failed = master->schedule();
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().kind, OutsideError::Kind::kRefused);
  EXPECT_EQ(failed.error().status, 500u);

  control(R"({"hang": 1})");
  auto hung = master->update_schedule(with_window({}, agent2_, 1, std::nullopt));
  ASSERT_FALSE(hung);
  EXPECT_EQ(hung.error().kind, OutsideError::Kind::kUnknownOutcome) << "a POST that timed out may have been applied";

  control(R"({"latency_ms": 100})");
  auto slow = master->schedule();
  ASSERT_TRUE(slow) << "100 ms is within the 500 ms deadline";
  control(R"({"latency_ms": 0})");

  auto garbage = client({masters_[0]});
  control(R"({"fail": {"status": 200, "count": 1, "body": "<html>not json</html>"}})");
  auto bad = garbage->maintenance_status();
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, OutsideError::Kind::kBadResponse);
}

}  // namespace
}  // namespace skopos::driver
