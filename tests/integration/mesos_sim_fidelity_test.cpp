// tools/mesos-sim against the upstream examples: what the simulator answers has the
// shape of what the real master and agent answer (same field names with the same JSON
// types wherever both have a field, and every field our clients read), so tests against
// it mean something.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <map>
#include <set>

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

namespace {

// Every error text the upstream master uses (transcribed in
// error-responses.from-source.json) is one the simulator gives: the fixed texts are
// found in its source, and the ones it composes at run time are asked for live and must
// equal the transcription exactly. Conditions it does not simulate are named.
TEST(MesosSimErrorTexts, TheSimulatorSpeaksTheMastersErrorTexts) {
  const std::string tools = std::string(SKOPOS_SOURCE_DIR) + "/tools";
  const std::string source = skopos::testing::read_fixture(tools, "mesos-sim") + skopos::testing::read_fixture(tools, "simlib.py");
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_EQ(parser.parse(fixture("mesos-master/error-responses.from-source.json")).get(root), simdjson::SUCCESS);
  std::set<std::string> bodies;
  for (simdjson::dom::element response : root["responses"].get_array()) {
    std::string_view body;
    if (response["body"].get(body) == simdjson::SUCCESS && !body.empty() && body.front() != '<') bodies.emplace(body);
  }
  const std::set<std::string> not_simulated = {
      "Agent is currently being marked gone",     // mark-gone in flight: a race the simulator does not have
      "Agent removed while processing the call",  // a registry race likewise
  };
  // Composed at run time: ask for them.
  auto sim = Simulator::start(tools, "mesos-sim", R"({"agents": [{"id": "S0", "hostname": "machine1", "ip": "10.0.0.1"}]})");
  const std::string master = sim->list("masters").at(0);
  const auto raw = [&](const std::string& method, const std::string& path, const std::string& body) {
    return skopos::testing::Simulator::request(master, method, path, body);
  };
  std::map<std::string, std::string> live = {
      {"405 Method Not Allowed. Expecting one of { 'GET', 'POST' }, but received 'PUT'.", raw("PUT", "/maintenance/schedule", "")},
      {"405 Method Not Allowed. Expecting one of { 'POST' }, but received 'GET'.", raw("GET", "/machine/down", "")},
      {"405 Method Not Allowed. Expecting one of { 'GET' }, but received 'POST'.", raw("POST", "/maintenance/status", "")},
      {"Failed to validate master::Call: Expecting 'update_maintenance_schedule' to be present",
       raw("POST", "/api/v1", R"({"type":"UPDATE_MAINTENANCE_SCHEDULE"})")},
      {R"(Machine '{"hostname":"machine1","ip":"10.0.0.1"}' is not in DRAINING mode and cannot be brought down)",
       raw("POST", "/machine/down", R"([{"hostname":"machine1","ip":"10.0.0.1"}])")},
      {R"(Machine '{"hostname":"machine1","ip":"10.0.0.1"}' is not in DOWN mode and cannot be brought up)",
       raw("POST", "/machine/up", R"([{"hostname":"machine1","ip":"10.0.0.1"}])")},
      {R"(Machine '{"hostname":"machine1","ip":"10.0.0.1"}' appears more than once in the schedule)",
       raw("POST", "/machine/down", R"([{"hostname":"machine1","ip":"10.0.0.1"},{"hostname":"machine1","ip":"10.0.0.1"}])")},
      // (machine1 is registered here, so an unknown machine stands in for it.)
      {R"(Machine '{"hostname":"machine1","ip":"10.0.0.1"}' is not part of a maintenance schedule)",
       raw("POST", "/machine/down", R"([{"hostname":"machine9","ip":"10.0.0.9"}])")},
  };
  int checked = 0;
  for (const std::string& body : bodies) {
    if (not_simulated.count(body) > 0) continue;
    ++checked;
    if (const auto it = live.find(body); it != live.end()) {
      std::string expected = body;
      if (body.find("is not part of a maintenance schedule") != std::string::npos) {
        expected = R"(Machine '{"hostname":"machine9","ip":"10.0.0.9"}' is not part of a maintenance schedule)";
      }
      EXPECT_EQ(it->second, expected) << "mesos-sim answers differently";
      continue;
    }
    // Fixed texts, around <placeholders> and quoted machine ids (composed at run time;
    // the deactivated-machine one is checked by MesosMasterTest).
    std::string text = body;
    if (const auto quote = text.find("'{"); quote != std::string::npos) text = text.substr(text.find("}'") + 2);
    for (std::size_t start = 0; start < text.size();) {
      const std::size_t open = text.find('<', start);
      const std::string piece = text.substr(start, open == std::string::npos ? std::string::npos : open - start);
      if (piece.size() > 4) {
        EXPECT_NE(source.find(piece), std::string::npos) << "mesos-sim never says: '" << piece << "'";
      }
      if (open == std::string::npos) break;
      start = text.find('>', open) + 1;
    }
  }
  EXPECT_GT(checked, 20);
}

}  // namespace
