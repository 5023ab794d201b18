// The Mesos master parsers against every upstream example under
// tests/fixtures/upstream/mesos-master (see its README for provenance), against the
// shapes the master really sends (omitted empty lists, int64 nanoseconds beyond 2^53),
// and against malformed and truncated input, which must give an error naming the field.
#include <gtest/gtest.h>
#include <simdjson.h>

#include "json_shapes.h"

#include "driver/mesos_master.h"

namespace skopos::driver {
namespace {

std::string fixture(const std::string& name) {
  return skopos::testing::read_fixture(std::string(SKOPOS_FIXTURES_DIR) + "/mesos-master", name);
}

TEST(MesosFixtures, GetAgentsGivesIdHostnameAndTheIpOfThePid) {
  simdjson::dom::parser parser;
  auto agents = parse_get_agents(parser, fixture("api-v1-GET_AGENTS.response.json"));
  ASSERT_TRUE(agents) << agents.error();
  ASSERT_EQ(agents->size(), 1u);
  const MesosAgentInfo& agent = agents->front();
  EXPECT_EQ(agent.id, "3669ea49-c3c4-4b13-adee-05b8f9cb2562-S0");
  EXPECT_EQ(agent.hostname, "host");
  EXPECT_EQ(agent.ip, "127.0.1.1") << "from pid slave(1)@127.0.1.1:34626";
  EXPECT_EQ(agent.port, 34626);
  EXPECT_TRUE(agent.active);
  EXPECT_FALSE(agent.deactivated) << "1.1-era answer: no deactivated field means false";
  EXPECT_EQ(agent.drain, MesosAgentInfo::DrainState::kNone);
  EXPECT_EQ(agent.version, "1.1.0");
  EXPECT_EQ(agent.registered_ns, 1470820171393027072) << "exact, not through a double";
}

TEST(MesosFixtures, SchedulesInBothTheLegacyAndTheV1ShapeParse) {
  simdjson::dom::parser parser;
  auto legacy = parse_schedule(parser, fixture("maintenance-schedule.request.json"));
  ASSERT_TRUE(legacy) << legacy.error();
  ASSERT_EQ(legacy->windows.size(), 2u);
  EXPECT_EQ(legacy->windows[0].machines.size(), 2u);
  EXPECT_EQ(legacy->windows[0].machines[1].hostname, "machine2");
  EXPECT_EQ(legacy->windows[0].machines[1].ip, "10.0.0.2");
  EXPECT_EQ(legacy->windows[1].start_ns, 1443834000000000000);
  ASSERT_TRUE(legacy->windows[1].duration_ns);
  EXPECT_EQ(*legacy->windows[1].duration_ns, 3600000000000);

  for (const char* name : {"api-v1-GET_MAINTENANCE_SCHEDULE.response.json"}) {
    auto v1 = parse_schedule(parser, fixture(name));
    ASSERT_TRUE(v1) << name << ": " << v1.error();
    ASSERT_EQ(v1->windows.size(), 1u);
    EXPECT_EQ(v1->windows[0].machines[0].hostname, "myhost");
    EXPECT_EQ(v1->windows[0].machines[1].ip, "0.0.0.2");
    EXPECT_FALSE(v1->windows[0].duration_ns) << "an open-ended window has no duration";
    EXPECT_EQ(v1->windows[0].start_ns, 1470849373150643200);
  }
  // The request bodies of UPDATE_MAINTENANCE_SCHEDULE carry the same schedule.
  simdjson::dom::element update;
  ASSERT_EQ(parser.parse(fixture("api-v1-UPDATE_MAINTENANCE_SCHEDULE.request.json")).get(update), simdjson::SUCCESS);
  const std::string inner = simdjson::minify(update["update_maintenance_schedule"]["schedule"]);
  auto from_update = parse_schedule(parser, inner);
  ASSERT_TRUE(from_update) << from_update.error();
  EXPECT_EQ(from_update->windows[0].start_ns, 1470820233192017920);
}

TEST(MesosFixtures, MaintenanceStatusOmitsWhatIsEmpty) {
  simdjson::dom::parser parser;
  auto status = parse_maintenance_status(parser, fixture("api-v1-GET_MAINTENANCE_STATUS.response.json"));
  ASSERT_TRUE(status) << status.error();
  ASSERT_EQ(status->draining.size(), 2u);
  EXPECT_EQ(status->draining[0].ip, "0.0.0.2");
  EXPECT_EQ(status->draining[1].hostname, "myhost");
  EXPECT_TRUE(status->down.empty()) << "no down_machines field";
  auto legacy = parse_maintenance_status(
      parser, R"({"down_machines":[{"hostname":"a","ip":"10.0.0.1"}],"draining_machines":[{"id":{"hostname":"b"},
      "statuses":[{"id":{"hostname":"b"},"framework_id":{"value":"f"},"timestamp":1.5}]}]})");
  ASSERT_TRUE(legacy) << legacy.error();
  EXPECT_EQ(legacy->down.size(), 1u);
  EXPECT_EQ(legacy->draining.size(), 1u);
  auto empty = parse_maintenance_status(parser, "{}");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->draining.empty());
}

TEST(MesosFixtures, WhatWeSendIsWhatTheDocumentedRequestsSay) {
  simdjson::dom::parser parser;
  auto documented = parse_schedule(parser, fixture("maintenance-schedule.request.json"));
  ASSERT_TRUE(documented);
  // Our JSON for the same schedule parses back to the same schedule, and has the shape
  // of the documented request, field for field.
  const std::string ours = schedule_json(*documented);
  simdjson::dom::parser other;
  simdjson::dom::element mine;
  simdjson::dom::element theirs;
  ASSERT_EQ(parser.parse(ours).get(mine), simdjson::SUCCESS);
  ASSERT_EQ(other.parse(fixture("maintenance-schedule.request.json")).get(theirs), simdjson::SUCCESS);
  EXPECT_EQ(simdjson::minify(mine), simdjson::minify(theirs));
}

TEST(MesosFixtures, EditsKeepEveryOtherMachinesWindow) {
  simdjson::dom::parser parser;
  auto schedule = parse_schedule(parser, fixture("maintenance-schedule.request.json"));
  ASSERT_TRUE(schedule);
  const MachineId machine2{"MACHINE2", "10.0.0.2"};  // host names compare case-insensitively
  auto moved = with_window(*schedule, machine2, 5, 10);
  ASSERT_EQ(moved.windows.size(), 3u);
  EXPECT_EQ(moved.windows[0].machines.size(), 1u) << "machine1 keeps its window";
  EXPECT_EQ(moved.windows[1].machines[0].hostname, "machine3");
  ASSERT_NE(moved.find(machine2), nullptr);
  EXPECT_EQ(moved.find(machine2)->start_ns, 5);
  auto removed = without_machine(moved, MachineId{"machine3", "10.0.0.3"});
  EXPECT_EQ(removed.windows.size(), 2u) << "a window left empty is dropped";
  EXPECT_EQ(removed.find(MachineId{"machine3", "10.0.0.3"}), nullptr);
  EXPECT_EQ(removed.find(MachineId{"machine1", "10.0.0.2"}), nullptr) << "both hostname and ip must match";
  EXPECT_NE(removed.find(MachineId{"machine1", "10.0.0.1"}), nullptr);
}

TEST(MesosFixtures, MalformedAndTruncatedAnswersAreErrorsThatNameTheField) {
  simdjson::dom::parser parser;
  for (const char* name : {"api-v1-GET_AGENTS.response.json", "api-v1-GET_MAINTENANCE_SCHEDULE.response.json",
                           "api-v1-GET_MAINTENANCE_STATUS.response.json", "maintenance-schedule.request.json"}) {
    const std::string text = fixture(name);
    for (std::size_t cut = 0; cut < text.size() - 2; cut += 7) {
      const std::string truncated = text.substr(0, cut);
      EXPECT_FALSE(parse_get_agents(parser, truncated)) << name << " cut at " << cut;
      EXPECT_FALSE(parse_schedule(parser, truncated)) << name << " cut at " << cut;
      EXPECT_FALSE(parse_maintenance_status(parser, truncated)) << name << " cut at " << cut;
    }
  }
  const auto error_of = [&](auto result) { return result ? std::string("(parsed)") : result.error(); };
  EXPECT_NE(error_of(parse_schedule(parser, R"({"windows":[{"machine_ids":[{"hostname":"a"}],
      "unavailability":{"start":{"nanoseconds":1.4e18}}}]})")).find("start.nanoseconds"), std::string::npos)
      << "a double is not an int64";
  EXPECT_NE(error_of(parse_schedule(parser, R"({"windows":[{"machine_ids":[{}],
      "unavailability":{"start":{"nanoseconds":1}}}]})")).find("neither hostname nor ip"), std::string::npos);
  EXPECT_NE(error_of(parse_schedule(parser, R"({"windows":{}})")).find("windows"), std::string::npos);
  EXPECT_NE(error_of(parse_get_agents(parser, R"({"type":"GET_AGENTS","get_agents":{"agents":[{"agent_info":
      {"hostname":"h","id":{"value":"S1"}},"pid":"nonsense"}]}})")).find("pid"), std::string::npos);
  EXPECT_NE(error_of(parse_get_agents(parser, R"({"type":"GET_AGENTS","get_agents":{"agents":[{"agent_info":
      {"id":{"value":"S1"}}}]}})")).find("hostname"), std::string::npos);
  EXPECT_NE(error_of(parse_get_agents(parser, R"({"type":"GET_AGENTS","get_agents":{"agents":[{"agent_info":
      {"hostname":"h","id":{"value":"S1"}},"drain_info":{"state":"SLEEPING"}}]}})")).find("SLEEPING"),
            std::string::npos);
  auto none = parse_get_agents(parser, R"({"type":"GET_AGENTS","get_agents":{}})");
  ASSERT_TRUE(none) << "no agents: the list is omitted";
  EXPECT_TRUE(none->empty());
}

}  // namespace
}  // namespace skopos::driver
