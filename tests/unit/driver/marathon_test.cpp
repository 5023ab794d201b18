// The Marathon parsers against every upstream example under
// tests/fixtures/upstream/marathon, the disruption budget on top of them, and malformed
// and truncated input.
#include <gtest/gtest.h>
#include <simdjson.h>

#include "json_shapes.h"

#include "driver/marathon.h"

namespace skopos::driver {
namespace {

std::string fixture(const std::string& name) {
  return skopos::testing::read_fixture(std::string(SKOPOS_FIXTURES_DIR) + "/marathon", name);
}

TEST(MarathonFixtures, AppsAndTheirEmbeddedTasksParse) {
  simdjson::dom::parser parser;
  auto apps = parse_marathon_apps(parser, fixture("v2-apps.response.json"));
  ASSERT_TRUE(apps) << apps.error();
  ASSERT_FALSE(apps->empty());
  EXPECT_FALSE(apps->front().id.empty());
  auto embedded = parse_marathon_apps(parser, fixture("v2-apps-id.embed-tasks.response.json"));
  ASSERT_TRUE(embedded) << embedded.error();
  ASSERT_EQ(embedded->size(), 1u);
  const MarathonApp& toggle = embedded->front();
  EXPECT_EQ(toggle.id, "/toggle");
  EXPECT_EQ(toggle.instances, 2);
  EXPECT_TRUE(toggle.health_checks);
  ASSERT_FALSE(toggle.tasks.empty());
  EXPECT_EQ(toggle.tasks[0].host, "10.141.141.10");
  EXPECT_TRUE(toggle.tasks[0].alive) << "pre-1.5 results (taskId key) are read the same";
  EXPECT_EQ(toggle.tasks[0].state, "TASK_RUNNING") << "no state field but startedAt: running";
  EXPECT_TRUE(toggle.healthy(toggle.tasks[0]));
}

TEST(MarathonFixtures, TasksInEveryUpstreamShapeParse) {
  simdjson::dom::parser parser;
  auto tasks = parse_marathon_tasks(parser, fixture("v2-tasks.response.json"));
  ASSERT_TRUE(tasks) << tasks.error();
  ASSERT_EQ(tasks->size(), 2u);
  EXPECT_EQ((*tasks)[0].host, "srv4.example.com");
  EXPECT_EQ((*tasks)[0].app_id, "/frontend-foosball");
  EXPECT_EQ((*tasks)[1].app_id, "/tools/docker/registry");
  EXPECT_FALSE((*tasks)[0].health_reported);
  auto with_health = parse_marathon_tasks(parser, fixture("v2-tasks.with-health.response.json"));
  ASSERT_TRUE(with_health) << with_health.error();
  EXPECT_TRUE(with_health->front().health_reported);
  EXPECT_TRUE(with_health->front().alive);
  auto app_tasks = parse_marathon_tasks(parser, fixture("v2-apps-id-tasks.response.json"));
  ASSERT_TRUE(app_tasks) << app_tasks.error();
  EXPECT_EQ(app_tasks->front().state, "TASK_STAGING");
  auto deleted = parse_marathon_tasks(parser, fixture("v2-apps-id-tasks-id.delete.response.json"));
  ASSERT_TRUE(deleted) << deleted.error();
  EXPECT_EQ(deleted->front().id, "minecraft_survival-world.instance-564bd685-4c30-11e5-98c1-be5b2935a987");
  // The current (1.10/1.11) shape: ipAddresses, an empty healthCheckResults.
  auto current = parse_marathon_tasks(parser, "{\"tasks\":[" + fixture("task.with-ip-addresses.json") + "]}");
  ASSERT_TRUE(current) << current.error();
  EXPECT_EQ(current->front().host, "agent1.mesos");
  EXPECT_FALSE(current->front().health_reported) << "an empty result list is no health";
  auto deployments = parse_marathon_deployments(parser, fixture("v2-deployments.response.json"));
  ASSERT_TRUE(deployments) << deployments.error();
  ASSERT_EQ(deployments->size(), 1u);
  EXPECT_EQ(deployments->front().affected_apps, std::vector<std::string>{"/foo"});
}

MarathonApp app(const std::string& id, bool checks, std::vector<std::pair<std::string, bool>> tasks,
                std::map<std::string, std::string> labels = {}) {
  MarathonApp out;
  out.id = id;
  out.instances = static_cast<std::int64_t>(tasks.size());
  out.health_checks = checks;
  out.labels = std::move(labels);
  int n = 0;
  for (const auto& [host, alive] : tasks) {
    MarathonTask task;
    task.id = id + "." + std::to_string(n++);
    task.app_id = id;
    task.host = host;
    task.state = "TASK_RUNNING";
    task.health_reported = checks;
    task.alive = alive;
    out.tasks.push_back(task);
  }
  return out;
}

TEST(DisruptionBudget, CountsHealthyTasksOnOtherHostsAgainstTheMinimum) {
  const std::vector<MarathonApp> apps = {
      app("/web", true, {{"agent1", true}, {"agent2", true}}),               // fine
      app("/api", true, {{"agent1", true}, {"agent2", false}}),              // the other is unhealthy
      app("/solo", false, {{"AGENT1", true}}),                               // only here (host case differs)
      app("/big", true, {{"agent1", true}, {"agent2", true}, {"agent3", true}}, {{"skopos.min-healthy", "3"}}),
      app("/odd", true, {{"agent1", true}, {"agent2", true}}, {{"skopos.min-healthy", "most"}}),
      app("/elsewhere", true, {{"agent2", false}}),                          // nothing on this host
      app("/zero", true, {{"agent1", true}}, {{"skopos.min-healthy", "0"}}),
  };
  const auto shortfalls = disruption_budget(apps, "agent1");
  std::map<std::string, BudgetShortfall> by_app;
  for (const BudgetShortfall& s : shortfalls) by_app[s.app_id] = s;
  EXPECT_EQ(by_app.size(), 4u);
  EXPECT_EQ(by_app.count("/web"), 0u);
  EXPECT_EQ(by_app["/api"].healthy_elsewhere, 0);
  EXPECT_EQ(by_app["/api"].required, 1);
  EXPECT_EQ(by_app["/solo"].on_host, 1);
  EXPECT_EQ(by_app["/big"].healthy_elsewhere, 2);
  EXPECT_EQ(by_app["/big"].required, 3);
  EXPECT_NE(by_app["/odd"].problem.find("'most'"), std::string::npos) << "a bad label is not guessed at";
  EXPECT_EQ(by_app.count("/elsewhere"), 0u);
  EXPECT_EQ(by_app.count("/zero"), 0u) << "an app may opt out with 0";
}

TEST(MarathonFixtures, MalformedAndTruncatedAnswersAreErrorsThatNameTheField) {
  simdjson::dom::parser parser;
  for (const char* name : {"v2-apps.response.json", "v2-tasks.response.json", "v2-apps-id.embed-tasks.response.json"}) {
    const std::string text = fixture(name);
    for (std::size_t cut = 0; cut + 2 < text.size(); cut += 13) {
      EXPECT_FALSE(parse_marathon_apps(parser, text.substr(0, cut))) << name << " cut at " << cut;
      EXPECT_FALSE(parse_marathon_tasks(parser, text.substr(0, cut))) << name << " cut at " << cut;
    }
  }
  const auto error_of = [](auto result) { return result ? std::string("(parsed)") : result.error(); };
  EXPECT_NE(error_of(parse_marathon_tasks(parser, R"({"tasks":[{"id":"a.1","appId":"/a"}]})")).find("host"),
            std::string::npos);
  EXPECT_NE(error_of(parse_marathon_apps(parser, R"({"apps":[{"id":"/a","instances":"2"}]})")).find("instances"),
            std::string::npos);
  EXPECT_NE(error_of(parse_marathon_apps(parser, R"({"apps":[{"id":"/a","instances":1,"labels":{"x":1}}]})"))
                .find("labels.x"),
            std::string::npos);
  EXPECT_NE(error_of(parse_marathon_tasks(parser, R"({"tasks":[{"id":"a.1","appId":"/a","host":"h",
      "healthCheckResults":[{"consecutiveFailures":1}]}]})")).find("alive"),
            std::string::npos);
  EXPECT_FALSE(parse_marathon_deployments(parser, fixture("error-404-app-not-found.response.json")));
}

}  // namespace
}  // namespace skopos::driver
