// Marathon against tools/marathon-sim: apps with tasks and health, every instance
// answering for the leader, no leader waited out, abdication waited until ANOTHER leader
// answers, kills verified by reading the task list back (also when Marathon's 200 was a
// lie), scale kills through a deployment, scaling an app (deployments that lock it, a
// placement that waits for a host, force), the disruption budget from live data,
// injected faults; and the simulator's answers have the shape of the upstream examples.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "driver/marathon.h"
#include "json_shapes.h"
#include "simulators.h"

namespace skopos::driver {
namespace {

using namespace std::chrono_literals;
using skopos::testing::Simulator;
using Clock = std::chrono::steady_clock;

constexpr const char* kCluster = R"({
  "instances": 3, "kill_seconds": 0.3, "health_grace_seconds": 0.4,
  "hosts": ["agent1", "agent2", "agent3", "agent4"],
  "apps": [
    {"id": "/web", "instances": 2, "tasks": [{"id": "web.1", "host": "agent1"}, {"id": "web.2", "host": "agent2"}]},
    {"id": "/api", "instances": 2, "tasks": [{"id": "api.1", "host": "agent1"},
                                             {"id": "api.2", "host": "agent3", "healthy": false}]},
    {"id": "/tools/cron", "instances": 1, "healthChecks": false, "labels": {"skopos.min-healthy": "0"},
     "tasks": [{"id": "tools_cron.1", "host": "agent1"}]}
  ]})";

class MarathonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sim_ = Simulator::start(std::string(SKOPOS_SOURCE_DIR) + "/tools", "marathon-sim", kCluster);
    instances_ = sim_->list("instances");
    ASSERT_EQ(instances_.size(), 3u);
  }
  std::unique_ptr<Marathon> client(const std::string& endpoint, std::chrono::milliseconds leader_wait = 5s,
                                   std::chrono::milliseconds timeout = 2s) {
    MarathonOptions options;
    options.http.endpoints.push_back(*HttpEndpoint::parse(endpoint));
    options.http.timeout = timeout;
    options.leader_wait = leader_wait;
    options.poll_interval = 50ms;
    auto marathon = Marathon::create(options);
    EXPECT_TRUE(marathon);
    return std::move(*marathon);
  }
  void control(const std::string& json) { ASSERT_NE(Simulator::control(instances_[0], json), ""); }

  std::unique_ptr<Simulator> sim_;
  std::vector<std::string> instances_;
};

TEST_F(MarathonTest, AnyInstanceAnswersForTheLeaderWithAppsTasksAndHealth) {
  auto marathon = client(instances_[2]);
  auto info = marathon->info();
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_FALSE(info->elected) << "instance 2 is not the leader";
  EXPECT_EQ("http://" + info->leader, instances_[0]);
  auto apps = marathon->apps();
  ASSERT_TRUE(apps) << apps.error().message;
  ASSERT_EQ(apps->size(), 3u);
  const MarathonApp& api = (*apps)[1];
  EXPECT_EQ(api.id, "/api");
  ASSERT_EQ(api.tasks.size(), 2u);
  EXPECT_TRUE(api.healthy(api.tasks[0]));
  EXPECT_FALSE(api.healthy(api.tasks[1])) << "its health check fails";
  EXPECT_TRUE((*apps)[2].healthy((*apps)[2].tasks[0])) << "no health checks: running is healthy";

  const auto short_on_agent1 = disruption_budget(*apps, "agent1");
  ASSERT_EQ(short_on_agent1.size(), 1u) << "/web has a healthy task elsewhere; /api has none; cron opts out";
  EXPECT_EQ(short_on_agent1[0].app_id, "/api");
  EXPECT_TRUE(disruption_budget(*apps, "agent2").empty());
}

TEST_F(MarathonTest, NoLeaderIsWaitedOutThenReported) {
  control(R"({"leader": null})");
  auto impatient = client(instances_[1], 500ms);
  auto none = impatient->apps();
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().kind, OutsideError::Kind::kNoLeader);
  auto leader = impatient->leader();
  ASSERT_FALSE(leader);
  EXPECT_EQ(leader.error().kind, OutsideError::Kind::kNoLeader);
  EXPECT_NE(leader.error().message.find("There is no leader"), std::string::npos) << leader.error().message;

  auto patient = client(instances_[1], 10s);
  std::thread elect([&] {
    std::this_thread::sleep_for(400ms);
    control(R"({"leader": 1})");
  });
  auto apps = patient->apps();
  elect.join();
  ASSERT_TRUE(apps) << apps.error().message;
}

TEST_F(MarathonTest, AbdicationWaitsUntilADifferentLeaderAnswers) {
  auto marathon = client(instances_[0]);
  const auto start = Clock::now();
  auto next = marathon->abdicate(Clock::now() + 10s);
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_EQ("http://" + *next, instances_[1]);
  EXPECT_GE(Clock::now() - start, 500ms) << "the old leader answers as leader for ~0.5 s after DELETE";
  auto again = marathon->leader();
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *next);
  control(R"({"leader": null})");
  auto stuck = client(instances_[0], 300ms)->abdicate(Clock::now() + 1s);
  ASSERT_FALSE(stuck);
  EXPECT_EQ(stuck.error().kind, OutsideError::Kind::kNoLeader) << "no leader to abdicate";
}

TEST_F(MarathonTest, KillsAreVerifiedByReadingTheTaskListBack) {
  auto marathon = client(instances_[0]);
  ASSERT_TRUE(marathon->kill_tasks({"web.1"}, false));
  ASSERT_TRUE(marathon->wait_tasks_gone({"web.1"}, Clock::now() + 5s));
  auto apps = marathon->apps();
  ASSERT_TRUE(apps);
  ASSERT_EQ((*apps)[0].tasks.size(), 2u) << "without scale the task is replaced";
  bool on_new_host = false;
  for (const MarathonTask& task : (*apps)[0].tasks) on_new_host = on_new_host || (task.host != "agent1" && task.host != "agent2");
  EXPECT_TRUE(on_new_host) << "hostname UNIQUE: the replacement runs on a host without /web";

  // A 200 that killed nothing: only the read-back notices.
  control(R"({"kill_lies": 1})");
  ASSERT_TRUE(marathon->kill_tasks({"api.1"}, false)) << "Marathon said 200";
  auto lied = marathon->wait_tasks_gone({"api.1"}, Clock::now() + 1s);
  ASSERT_FALSE(lied);
  EXPECT_EQ(lied.error().kind, OutsideError::Kind::kTimedOut);
  EXPECT_NE(lied.error().message.find("'api.1'"), std::string::npos) << lied.error().message;

  auto deployment = marathon->kill_tasks({"tools_cron.1"}, true);
  ASSERT_TRUE(deployment) << deployment.error().message;
  EXPECT_FALSE(deployment->empty());
  auto deployments = marathon->deployments();
  ASSERT_TRUE(deployments);
  ASSERT_EQ(deployments->size(), 1u) << "scaling down is a deployment";
  EXPECT_EQ(deployments->front().affected_apps, std::vector<std::string>{"/tools/cron"});
  ASSERT_TRUE(marathon->wait_tasks_gone({"tools_cron.1"}, Clock::now() + 5s));
  apps = marathon->apps();
  ASSERT_TRUE(apps);
  EXPECT_EQ((*apps)[2].instances, 0) << "with scale the app shrank";
  EXPECT_TRUE((*apps)[2].tasks.empty());

  auto malformed = marathon->kill_tasks({"not_known"}, false);
  ASSERT_FALSE(malformed);
  EXPECT_EQ(malformed.error().status, 400u);
  EXPECT_NE(malformed.error().message.find("Invalid task id not_known"), std::string::npos);
}

// Scaling: a PUT of the count is a deployment that ends once the new instances are placed
// (hostname UNIQUE) and healthy; while one holds the app a PUT is 409 unless forced; an
// instance no host can take keeps its deployment waiting; scaling down kills the
// youngest.
TEST_F(MarathonTest, ScalingIsADeploymentThatLocksTheAppUntilTheNewInstancesAreHealthy) {
  auto marathon = client(instances_[0]);
  auto deployment = marathon->scale("/web", 3, false);
  ASSERT_TRUE(deployment) << deployment.error().message;
  EXPECT_FALSE(deployment->empty());
  auto locked = marathon->scale("/web", 4, false);
  ASSERT_FALSE(locked) << "the first deployment still holds /web";
  EXPECT_EQ(locked.error().status, 409u);
  EXPECT_NE(locked.error().message.find("App is locked by one or more deployments"), std::string::npos);
  MarathonApp web;
  for (int i = 0; i < 100; ++i) {
    auto app = marathon->app("/web");
    ASSERT_TRUE(app) << app.error().message;
    web = *app;
    if (web.deployments.empty()) break;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(web.deployments.empty()) << "the deployment ended";
  EXPECT_EQ(web.instances, 3);
  ASSERT_EQ(web.tasks.size(), 3u);
  std::set<std::string> hosts;
  for (const MarathonTask& task : web.tasks) {
    hosts.insert(task.host);
    EXPECT_TRUE(web.healthy(task)) << task.id;
  }
  EXPECT_EQ(hosts.size(), 3u) << "hostname UNIQUE";

  // One more than there are free hosts: the deployment waits for a host, and a forced
  // PUT replaces it.
  ASSERT_TRUE(marathon->scale("/web", 5, false));
  std::this_thread::sleep_for(300ms);
  auto waiting = marathon->app("/web");
  ASSERT_TRUE(waiting);
  EXPECT_EQ(waiting->tasks.size(), 4u) << "4 hosts";
  EXPECT_EQ(waiting->deployments.size(), 1u) << "a placement failure waits, it does not fail";
  ASSERT_FALSE(marathon->scale("/web", 2, false));
  ASSERT_TRUE(marathon->scale("/web", 2, true)) << "force replaces the waiting deployment";
  for (int i = 0; i < 100; ++i) {
    auto app = marathon->app("/web");
    ASSERT_TRUE(app);
    web = *app;
    if (web.deployments.empty() && web.tasks.size() == 2) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(web.tasks.size(), 2u);
  std::set<std::string> kept;
  for (const MarathonTask& task : web.tasks) kept.insert(task.id);
  EXPECT_EQ(kept, (std::set<std::string>{"web.1", "web.2"})) << "scaling down killed the youngest";

  auto missing = marathon->app("/nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, OutsideError::Kind::kNotFound);
  auto bad = marathon->scale("/web", -1, false);
  ASSERT_FALSE(bad);
  const std::string log = Simulator::get(instances_[0], "/__sim/state");
  EXPECT_NE(log.find(R"({"app": "/web", "from": 2, "to": 3, "via": "put"})"), std::string::npos) << log;
}

TEST_F(MarathonTest, FaultsGiveTypedErrors) {
  auto marathon = client(instances_[0], 2s, 500ms);
  control(R"({"fail": {"status": 500, "count": 1, "body": "{\"message\": \"boom\"}"}})");
  auto failed = marathon->apps();
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().status, 500u);
  EXPECT_NE(failed.error().message.find("boom"), std::string::npos);
  control(R"({"hang": 1})");
  auto hung = marathon->kill_tasks({"web.2"}, false);
  ASSERT_FALSE(hung);
  EXPECT_EQ(hung.error().kind, OutsideError::Kind::kUnknownOutcome);
  control(R"({"fail": {"status": 200, "count": 1, "body": "{\"apps\": 7}"}})");
  auto garbage = marathon->apps();
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error().kind, OutsideError::Kind::kBadResponse);
}

TEST_F(MarathonTest, TheSimulatorAnswersInTheShapeOfTheUpstreamExamples) {
  const std::string fixtures = std::string(SKOPOS_FIXTURES_DIR) + "/marathon";
  const auto check = [&](const std::string& ours, const std::string& name, const std::vector<std::string>& needed) {
    for (const std::string& difference :
         skopos::testing::shape_differences(ours, skopos::testing::read_fixture(fixtures, name), needed)) {
      ADD_FAILURE() << name << ": " << difference;
    }
  };
  check(Simulator::get(instances_[0], "/v2/tasks"), "v2-tasks.with-health.response.json",
        {"/tasks/0/id", "/tasks/0/appId", "/tasks/0/host", "/tasks/0/healthCheckResults/0/alive"});
  check(Simulator::get(instances_[0], "/v2/tasks"), "v2-tasks.response.json", {"/tasks/0/state", "/tasks/0/slaveId"});
  check(Simulator::get(instances_[0], "/v2/apps?embed=apps.tasks"), "v2-apps.response.json",
        {"/apps/0/id", "/apps/0/instances", "/apps/0/labels", "/apps/0/healthChecks", "/apps/0/tasksHealthy"});
  check(Simulator::get(instances_[0], "/v2/apps/web?embed=app.tasks"), "v2-apps-id.embed-tasks.response.json",
        {"/app/id", "/app/tasks/0/host"});
  check(Simulator::get(instances_[0], "/v2/leader"), "v2-leader.response.json", {"/leader"});
  check(Simulator::get(instances_[0], "/v2/info"), "v2-info.response.json", {"/version", "/leader", "/elected"});
  check(Simulator::get(instances_[0], "/v2/apps/nope"), "error-404-app-not-found.response.json", {"/message"});
  check(Simulator::post(instances_[0], "/v2/tasks/delete?scale=true", R"({"ids":["web.2"]})"),
        "deployment-result.response.json", {"/deploymentId", "/version"});
  check(Simulator::get(instances_[0], "/v2/deployments"), "v2-deployments.response.json",
        {"/0/id", "/0/affectedApps"});
  check(Simulator::post(instances_[0], "/v2/tasks/delete", R"({"ids":["bad"]})"),
        "v2-tasks-delete.error-400.response.json", {"/message"});
  check(Simulator::request(instances_[0], "PUT", "/v2/apps/api", R"({"instances": 3})"),
        "deployment-result.response.json", {"/deploymentId", "/version"});
  check(Simulator::request(instances_[0], "PUT", "/v2/apps/api", R"({"instances": 4})"),
        "error-409-app-locked.response.json", {"/message", "/deployments/0/id"});
  check(Simulator::get(instances_[0], "/v2/deployments"), "v2-deployments.response.json",
        {"/0/id", "/0/affectedApps", "/0/steps/0/actions/0/action", "/0/currentActions/0/app", "/0/currentStep"});
}

}  // namespace
}  // namespace skopos::driver
