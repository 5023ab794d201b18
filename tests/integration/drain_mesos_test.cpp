// MesosDrainSteps against tools/mesos-sim and a real etcd: how the drain tells Mesos, in
// both ways. The schedule way (window -> DRAINING, down, up; another machine's window
// kept), the drain API (DEACTIVATE, DRAIN_AGENT, REACTIVATE once DRAINED), the mode
// picked from the master's version and the agent's capabilities, and every step
// repeated after it took effect (a restarted driver does that) is accepted.
#include <gtest/gtest.h>

#include <algorithm>

#include "driver/drain_systems_impl.h"
#include "etcd_server.h"
#include "lock_test_support.h"
#include "simulators.h"

namespace skopos::driver {
namespace {

using namespace std::chrono_literals;
using skopos::testing::Simulator;

std::string cluster(const std::string& version) {
  return R"({"version": ")" + version + R"(", "drain_seconds": 0.3, "reregister_seconds": 0.2, "agents": [
    {"id": "S0", "hostname": "worker-1", "ip": "127.0.0.2", "capabilities": ["MULTI_ROLE", "AGENT_DRAINING"]},
    {"id": "S1", "hostname": "worker-2", "ip": "127.0.0.3", "capabilities": ["MULTI_ROLE"]}]})";
}

class DrainMesosTest : public ::testing::Test {
 protected:
  void start(const std::string& version, std::optional<MesosMachine::Mode> mode = std::nullopt) {
    etcd_ = skopos::testing::EtcdServer::start();
    sim_ = Simulator::start(std::string(SKOPOS_SOURCE_DIR) + "/tools", "mesos-sim", cluster(version));
    url_ = sim_->list("masters").at(0);
    machine_ = testing::machine({etcd_->endpoint()}, "/skopos", "driver-1");
    MesosMasterOptions options;
    options.http.endpoints.push_back(*HttpEndpoint::parse(url_));
    auto master = MesosMaster::create(options);
    ASSERT_TRUE(master);
    master_ = std::move(*master);
    scheduler_ = std::make_unique<MaintenanceScheduler>(*master_, *machine_.locks);
    MesosStepsOptions steps;
    steps.mode = mode;
    steps.drain_settle = 10s;
    steps_ = std::make_unique<MesosDrainSteps>(master_.get(), scheduler_.get(), steps);
  }
  std::string status() const { return Simulator::get(url_, "/maintenance/status"); }
  std::string schedule() const { return Simulator::get(url_, "/maintenance/schedule"); }

  std::unique_ptr<skopos::testing::EtcdServer> etcd_;
  std::unique_ptr<Simulator> sim_;
  std::string url_;
  testing::Machine machine_;
  std::unique_ptr<MesosMaster> master_;
  std::unique_ptr<MaintenanceScheduler> scheduler_;
  std::unique_ptr<MesosDrainSteps> steps_;
};

TEST_F(DrainMesosTest, ScheduleModeWindowDownAndUpEachRepeatable) {
  start("1.8.0");
  // Another machine's window must survive our edits.
  ASSERT_TRUE(scheduler_->schedule({{"worker-2", "127.0.0.3"}}, 2000000000000000000, 3600000000000));
  auto machine = steps_->locate("WORKER-1");
  ASSERT_TRUE(machine) << machine.error().message;
  EXPECT_EQ(machine->mode, MesosMachine::Mode::kSchedule) << "1.8 has no drain API";
  EXPECT_EQ(machine->hostname, "worker-1");
  EXPECT_EQ(machine->ip, "127.0.0.2");
  EXPECT_EQ(machine->agent_id, "S0");

  ASSERT_TRUE(steps_->announce(*machine));
  ASSERT_TRUE(steps_->announce(*machine)) << "again: already DRAINING";
  EXPECT_NE(status().find("\"draining_machines\""), std::string::npos) << status();
  ASSERT_TRUE(steps_->take_down(*machine, false));
  ASSERT_TRUE(steps_->take_down(*machine, false)) << "again: already DOWN";
  EXPECT_NE(status().find("\"down_machines\""), std::string::npos) << status();
  // DOWN: the agent is gone from the agent list; locate still finds the machine.
  auto down = steps_->locate("worker-1");
  ASSERT_TRUE(down);
  EXPECT_EQ(down->mode, MesosMachine::Mode::kSchedule);
  EXPECT_EQ(down->ip, "127.0.0.2");
  auto active = steps_->agent_active(*machine);
  ASSERT_TRUE(active);
  EXPECT_FALSE(*active);

  ASSERT_TRUE(steps_->bring_up(*machine));
  ASSERT_TRUE(steps_->bring_up(*machine)) << "again: already up";
  // (A scheduled machine is DRAINING as soon as it is in the schedule, as in Mesos.)
  EXPECT_EQ(status().find("worker-1"), std::string::npos) << status();
  EXPECT_NE(schedule().find("worker-2"), std::string::npos) << "the other window is kept: " << schedule();
  EXPECT_EQ(schedule().find("worker-1"), std::string::npos) << schedule();
  bool back = false;
  for (int i = 0; i < 50 && !back; ++i) {
    std::this_thread::sleep_for(100ms);
    back = steps_->agent_active(*machine).value_or(false);
  }
  EXPECT_TRUE(back) << "the agent registered again";
}

TEST_F(DrainMesosTest, HostsInMaintenanceOrDeactivatedAreUnavailable) {
  start("1.9.0");
  auto none = steps_->unavailable_hosts();
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_TRUE(none->empty());
  // worker-2 in a window (DRAINING), worker-1 deactivated through the drain API.
  ASSERT_TRUE(scheduler_->schedule({{"worker-2", "127.0.0.3"}}, 2000000000000000000, 3600000000000));
  auto machine = steps_->locate("worker-1");
  ASSERT_TRUE(machine);
  ASSERT_EQ(machine->mode, MesosMachine::Mode::kDrainApi);
  ASSERT_TRUE(steps_->announce(*machine));
  auto both = steps_->unavailable_hosts();
  ASSERT_TRUE(both) << both.error().message;
  std::sort(both->begin(), both->end());
  both->erase(std::unique(both->begin(), both->end()), both->end());
  EXPECT_EQ(*both, (std::vector<std::string>{"worker-1", "worker-2"}));
  ASSERT_TRUE(steps_->bring_up(*machine));
}

TEST_F(DrainMesosTest, AWindowThatWasNeverDownIsCancelledOnBringUp) {
  start("1.8.0");
  auto machine = steps_->locate("worker-1");
  ASSERT_TRUE(machine);
  ASSERT_TRUE(steps_->announce(*machine));
  ASSERT_TRUE(steps_->bring_up(*machine));
  EXPECT_EQ(schedule(), "{}");
  EXPECT_EQ(status(), "{}");
}

TEST_F(DrainMesosTest, DrainApiModeDeactivatesDrainsAndReactivatesOnceDrained) {
  start("1.11.0");
  auto machine = steps_->locate("worker-1");
  ASSERT_TRUE(machine) << machine.error().message;
  EXPECT_EQ(machine->mode, MesosMachine::Mode::kDrainApi) << "1.11 and an agent with AGENT_DRAINING";
  auto other = steps_->locate("worker-2");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->mode, MesosMachine::Mode::kSchedule) << "an agent without AGENT_DRAINING";

  ASSERT_TRUE(steps_->announce(*machine));
  auto active = steps_->agent_active(*machine);
  ASSERT_TRUE(active);
  EXPECT_FALSE(*active) << "deactivated";
  ASSERT_TRUE(steps_->take_down(*machine, false));
  // Right away the agent is still DRAINING, which Mesos refuses to reactivate: bring_up
  // waits for DRAINED.
  ASSERT_TRUE(steps_->bring_up(*machine));
  active = steps_->agent_active(*machine);
  ASSERT_TRUE(active);
  EXPECT_TRUE(*active);
  ASSERT_TRUE(steps_->bring_up(*machine)) << "again: nothing to do";
}

TEST_F(DrainMesosTest, UnknownHostsAreModeNoneAndAForcedModeIsKept) {
  start("1.11.0", MesosMachine::Mode::kSchedule);
  auto nobody = steps_->locate("worker-9");
  ASSERT_TRUE(nobody);
  EXPECT_EQ(nobody->mode, MesosMachine::Mode::kNone);
  auto forced = steps_->locate("worker-1");
  ASSERT_TRUE(forced);
  EXPECT_EQ(forced->mode, MesosMachine::Mode::kSchedule);

  MesosDrainSteps unconfigured(nullptr, nullptr, {});
  EXPECT_FALSE(unconfigured.configured());
  EXPECT_EQ(unconfigured.locate("worker-1")->mode, MesosMachine::Mode::kNone);
}

TEST_F(DrainMesosTest, RefusalsAndOutagesAreErrorsThatSayWhat) {
  start("1.11.0");
  auto machine = steps_->locate("worker-2");
  ASSERT_TRUE(machine);
  MesosMachine wrong = *machine;
  wrong.mode = MesosMachine::Mode::kDrainApi;  // worker-2 cannot drain
  auto refused = steps_->take_down(wrong, true);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, DrainError::Kind::kRefused);
  EXPECT_NE(refused.error().message.find("not capable of draining"), std::string::npos) << refused.error().message;
  sim_.reset();  // the master is gone
  auto gone = steps_->announce(*machine);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().kind, DrainError::Kind::kFailed);
}

}  // namespace
}  // namespace skopos::driver
