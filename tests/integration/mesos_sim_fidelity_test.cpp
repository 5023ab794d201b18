// tools/mesos-sim against the upstream examples: what the simulator answers has the
// shape of what the real master and agent answer (same field names with the same JSON
// types wherever both have a field, and every field our clients read), so tests against
// it mean something.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <fstream>
#include <sstream>

#include "simulators.h"

namespace {

using skopos::testing::Simulator;

std::string fixture(const std::string& name) {
  std::ifstream in(std::string(SKOPOS_FIXTURES_DIR) + "/" + name);
  EXPECT_TRUE(in) << name;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

const char* type_name(simdjson::dom::element_type type) {
  switch (type) {
    case simdjson::dom::element_type::ARRAY: return "array";
    case simdjson::dom::element_type::OBJECT: return "object";
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64: return "integer";
    case simdjson::dom::element_type::DOUBLE: return "double";
    case simdjson::dom::element_type::STRING: return "string";
    case simdjson::dom::element_type::BOOL: return "bool";
    case simdjson::dom::element_type::NULL_VALUE: return "null";
  }
  return "?";
}

// Fields present in both with different JSON types, as "path: ours vs upstream".
void compare_shapes(simdjson::dom::element ours, simdjson::dom::element upstream, const std::string& path,
                    std::vector<std::string>& mismatches) {
  if (std::string(type_name(ours.type())) != type_name(upstream.type())) {
    mismatches.push_back(path + ": " + type_name(ours.type()) + " vs upstream " + type_name(upstream.type()));
    return;
  }
  if (ours.type() == simdjson::dom::element_type::OBJECT) {
    for (auto [key, value] : simdjson::dom::object(ours)) {
      simdjson::dom::element other;
      if (upstream[key].get(other) == simdjson::SUCCESS) {
        compare_shapes(value, other, path + "." + std::string(key), mismatches);
      }
    }
  } else if (ours.type() == simdjson::dom::element_type::ARRAY) {
    simdjson::dom::array mine = ours;
    simdjson::dom::array theirs = upstream;
    if (mine.size() > 0 && theirs.size() > 0) compare_shapes(mine.at(0), theirs.at(0), path + "[0]", mismatches);
  }
}

// Every field path of the upstream example that our answer lacks, among `required`.
void expect_fields(simdjson::dom::element ours, const std::vector<std::string>& pointers, const std::string& what) {
  for (const std::string& pointer : pointers) {
    EXPECT_EQ(ours.at_pointer(pointer).error(), simdjson::SUCCESS) << what << " lacks " << pointer;
  }
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
  void check(const std::string& ours_text, const std::string& fixture_name, const std::vector<std::string>& needed) {
    simdjson::dom::parser a;
    simdjson::dom::parser b;
    simdjson::dom::element ours;
    simdjson::dom::element upstream;
    ASSERT_EQ(a.parse(ours_text).get(ours), simdjson::SUCCESS) << ours_text;
    ASSERT_EQ(b.parse(fixture(fixture_name)).get(upstream), simdjson::SUCCESS) << fixture_name;
    std::vector<std::string> mismatches;
    compare_shapes(ours, upstream, "", mismatches);
    for (const std::string& mismatch : mismatches) ADD_FAILURE() << fixture_name << ": " << mismatch;
    expect_fields(ours, needed, fixture_name);
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
