// Marathon: apps and tasks with their health, leadership, task kills and deployments, as
// Marathon 1.x behaves (../shared/fixtures/marathon):
//
//  * every instance answers for the leader; with none, 503 (and GET /v2/leader 404
//    "There is no leader"), which is waited out within `leader_wait`;
//  * DELETE /v2/leader answers 200 and the leader steps down ~0.5 s later: abdicate()
//    waits until a DIFFERENT leader answers;
//  * /v2/tasks/delete never combines `scale` with `wipe` (Marathon refuses it), and a 200
//    on a kill is not proof: wait_tasks_gone() reads the task list back;
//  * errors are {"message": ...} and become the error's message.
//
// The disruption budget (disruption_budget()) is computed from apps with their tasks.
// Not thread-safe: one client per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "skopos/http_client.h"
#include "skopos/outside_error.h"
#include "skopos/result.h"

namespace simdjson::dom {
class parser;
}

namespace skopos::driver {

struct MarathonTask {
  std::string id;
  std::string app_id;
  std::string host;      // the Mesos agent's host name
  std::string slave_id;
  std::string state;     // TASK_RUNNING, TASK_STAGING, ...
  bool health_reported = false;  // healthCheckResults present and not empty
  bool alive = false;            // every health result alive
};

struct MarathonApp {
  std::string id;
  std::int64_t instances = 0;
  std::map<std::string, std::string> labels;
  bool health_checks = false;
  std::vector<MarathonTask> tasks;         // with ?embed=apps.tasks
  std::vector<std::string> deployments;    // ids of deployments in progress

  // Running, and healthy if the app has health checks.
  bool healthy(const MarathonTask& task) const;
};

struct MarathonInfo {
  std::string version;
  std::string leader;  // host:port
  bool elected = false;
  std::string framework_id;
};

struct MarathonDeployment {
  std::string id;
  std::vector<std::string> affected_apps;
};

struct MarathonOptions {
  HttpOptions http;
  std::chrono::milliseconds leader_wait{30000};
  std::chrono::milliseconds poll_interval{200};  // Marathon has no watch: leader and kill checks poll
};

class Marathon {
 public:
  static Result<std::unique_ptr<Marathon>, OutsideError> create(MarathonOptions options);
  ~Marathon();

  Result<MarathonInfo, OutsideError> info();
  // GET /v2/leader: "host:port"; kNoLeader when there is none.
  Result<std::string, OutsideError> leader();
  // DELETE /v2/leader, then waits until a leader other than the one that abdicated
  // answers; returns it. kTimedOut when none did by `until`.
  Result<std::string, OutsideError> abdicate(std::chrono::steady_clock::time_point until);
  // Every app with its tasks (GET /v2/apps?embed=apps.tasks).
  Result<std::vector<MarathonApp>, OutsideError> apps();
  Result<std::vector<MarathonTask>, OutsideError> tasks();
  Result<std::vector<MarathonDeployment>, OutsideError> deployments();
  // One app with its tasks (GET /v2/apps/{id}?embed=app.tasks); kNotFound when Marathon
  // has no such app.
  Result<MarathonApp, OutsideError> app(const std::string& app_id);
  // PUT /v2/apps/{id}?force= {"instances": N}: the app scales through a deployment, whose
  // id comes back. While a deployment holds the app Marathon refuses it with 409 ("App is
  // locked by one or more deployments") unless `force`, which replaces that deployment.
  // Idempotent: the same count again changes nothing.
  Result<std::string, OutsideError> scale(const std::string& app_id, std::int64_t instances, bool force);
  // POST /v2/tasks/delete: kill `task_ids`, with `scale` shrinking their apps (never
  // with wipe). A 200 is not proof: follow with wait_tasks_gone(). With scale, the
  // deployment's id.
  Result<std::string, OutsideError> kill_tasks(const std::vector<std::string>& task_ids, bool scale);
  // Reads the task list until none of `task_ids` is in it; kTimedOut naming the ones
  // still there at `until`.
  Result<void, OutsideError> wait_tasks_gone(const std::vector<std::string>& task_ids,
                                              std::chrono::steady_clock::time_point until);

 private:
  explicit Marathon(MarathonOptions options, std::unique_ptr<HttpClient> http);
  Result<HttpResponse, OutsideError> send(const std::string& method, const std::string& target,
                                           const std::string& body, bool idempotent);

  MarathonOptions options_;
  std::unique_ptr<HttpClient> http_;
  std::unique_ptr<simdjson::dom::parser> parser_;
};

// Apps that would fall short if `host` went away: for every app with a task on `host`,
// its healthy tasks on other hosts against the minimum (the app's `label`, a count;
// else `default_minimum`). Tasks on `unavailable` hosts (draining now: see
// LockService's budget claims) do not count: they are going away too. A label that is
// not a count is a shortfall with a problem: we do not guess. Host names compare
// without case.
struct BudgetShortfall {
  std::string app_id;
  std::int64_t on_host = 0;
  std::int64_t healthy_elsewhere = 0;
  std::int64_t healthy_unavailable = 0;  // healthy, but on a host that is draining
  std::int64_t required = 0;
  std::string problem;
};
std::vector<BudgetShortfall> disruption_budget(const std::vector<MarathonApp>& apps, const std::string& host,
                                               const std::string& label = "skopos.min-healthy",
                                               std::int64_t default_minimum = 1,
                                               const std::vector<std::string>& unavailable = {});

// Parsers, exposed for the fixture tests: {"apps": [...]} or {"app": {...}}; {"tasks":
// [...]} or {"task": {...}}; a deployment list. Errors name the field.
Result<std::vector<MarathonApp>, std::string> parse_marathon_apps(simdjson::dom::parser& parser, std::string_view json);
Result<std::vector<MarathonTask>, std::string> parse_marathon_tasks(simdjson::dom::parser& parser,
                                                                    std::string_view json);
Result<std::vector<MarathonDeployment>, std::string> parse_marathon_deployments(simdjson::dom::parser& parser,
                                                                                std::string_view json);
Result<MarathonInfo, std::string> parse_marathon_info(simdjson::dom::parser& parser, std::string_view json);
// GET /v2/leader: "host:port".
Result<std::string, std::string> parse_marathon_leader(simdjson::dom::parser& parser, std::string_view json);
// The "message" of an error body, or the body's text.
std::string marathon_error_text(simdjson::dom::parser& parser, const std::string& body);
// The /v2/tasks/delete request body.
std::string kill_tasks_json(const std::vector<std::string>& task_ids);
// The "deploymentId" of a deploying call's answer (examples/deployments_result.json).
Result<std::string, std::string> parse_marathon_deployment_id(simdjson::dom::parser& parser, std::string_view json);

}  // namespace skopos::driver
