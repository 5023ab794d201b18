// tools/mesos-sim against the upstream examples: what the simulator answers has the
// shape of what the real master and agent answer (same field names with the same JSON
// types wherever both have a field, and every field our clients read), so tests against
// it mean something.
#include <gtest/gtest.h>

#include "json_shapes.h"
#include "simulators.h"

namespace {

using skopos::testing::Simulator;

std::string fixture(const std::string& name) {
  return skopos::testing::read_fixture(SKOPOS_FIXTURES_DIR, name);
}

class MesosSimFidelity : public ::testing::Test {
 protected:
  void SetUp() override {
    sim_ = Simulator::start(std::string(SKOPOS_SOURCE_DIR) + "/tools", "mesos-sim", R"({"agents": [
      {"id": "S0", "hostname": "agent1", "ip": "127.0.0.2",
       "tasks": [{"id": "web.1", "name": "web", "container_id": "c-web-1"}]}]})");
    master_ = sim_->list("masters").at(0);
    agent_ = sim_->map("agents").at("S0");
  }
  void check(const std::string& ours, const std::string& fixture_name, const std::vector<std::string>& needed) {
    for (const std::string& difference : skopos::testing::shape_differences(ours, fixture(fixture_name), needed)) {
      ADD_FAILURE() << fixture_name << ": " << difference;
    }
  }

  std::unique_ptr<Simulator> sim_;
  std::string master_;
  std::string agent_;
};

TEST_F(MesosSimFidelity, GetAgentsHasTheShapeOfTheMasters) {
  const std::string ours = Simulator::post(master_, "/api/v1", R"({"type":"GET_AGENTS"})");
  check(ours, "mesos-master/api-v1-GET_AGENTS.response.json",
        {"/type", "/get_agents/agents/0/agent_info/hostname", "/get_agents/agents/0/agent_info/id/value",
         "/get_agents/agents/0/agent_info/port", "/get_agents/agents/0/pid", "/get_agents/agents/0/active",
         "/get_agents/agents/0/registered_time/nanoseconds", "/get_agents/agents/0/version"});
}

TEST_F(MesosSimFidelity, SchedulesAndStatusHaveTheShapeOfTheMasters) {
  const std::string schedule = fixture("mesos-master/maintenance-schedule.request.json");
  // The documented two-window schedule needs machines the simulator accepts as they are.
  EXPECT_EQ(Simulator::post(master_, "/maintenance/schedule", schedule), "") << "200 with an empty body";
  check(Simulator::get(master_, "/maintenance/schedule"), "mesos-master/maintenance-schedule.request.json",
        {"/windows/0/machine_ids/0/hostname", "/windows/0/machine_ids/0/ip",
         "/windows/0/unavailability/start/nanoseconds", "/windows/1/unavailability/duration/nanoseconds"});
  check(Simulator::post(master_, "/api/v1", R"({"type":"GET_MAINTENANCE_SCHEDULE"})"),
        "mesos-master/api-v1-GET_MAINTENANCE_SCHEDULE.response.json",
        {"/type", "/get_maintenance_schedule/schedule/windows/0/machine_ids/0"});
  check(Simulator::post(master_, "/api/v1", R"({"type":"GET_MAINTENANCE_STATUS"})"),
        "mesos-master/api-v1-GET_MAINTENANCE_STATUS.response.json",
        {"/type", "/get_maintenance_status/status/draining_machines/0/id/hostname"});
  EXPECT_EQ(Simulator::post(master_, "/maintenance/schedule", "{}"), "");
  EXPECT_EQ(Simulator::get(master_, "/maintenance/schedule"), "{}") << "no schedule: an empty object";
  EXPECT_EQ(Simulator::get(master_, "/maintenance/status"), "{}") << "empty lists are omitted";
}

TEST_F(MesosSimFidelity, TheAgentsTasksAndStateHaveTheShapeOfTheAgents) {
  check(Simulator::post(agent_, "/api/v1", R"({"type":"GET_TASKS"})"), "mesos-agent/api-v1-GET_TASKS.response.json",
        {"/type", "/get_tasks/launched_tasks/0/task_id/value", "/get_tasks/launched_tasks/0/state",
         "/get_tasks/launched_tasks/0/statuses/0/container_status"});
  check(Simulator::get(agent_, "/state"), "mesos-agent/state.response.json",
        {"/id", "/hostname", "/pid", "/version", "/frameworks"});
}

}  // namespace
