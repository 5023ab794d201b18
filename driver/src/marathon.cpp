#include "driver/marathon.h"

#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <thread>

#include "skopos/json_writer.h"
#include "skopos/log.h"

namespace skopos::driver {

namespace dom = simdjson::dom;
using Clock = std::chrono::steady_clock;

namespace {

OutsideError marathon_error(OutsideError::Kind kind, unsigned status, std::string message) {
  return OutsideError::answered("marathon", kind, status, std::move(message));
}

OutsideError bad(std::string message) {
  return marathon_error(OutsideError::Kind::kBadResponse, 0, std::move(message));
}

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

// The text of {"message": ...}, or the body itself.
std::string marathon_error_text(dom::parser& parser, const std::string& body) {
  dom::object object;
  std::string_view message;
  if (parser.parse(body).get(object) == simdjson::SUCCESS && object["message"].get(message) == simdjson::SUCCESS) {
    return std::string(message);
  }
  std::string text = body.substr(0, 300);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

namespace {

Result<MarathonTask, std::string> parse_task(dom::element element, const std::string& where) {
  dom::object object;
  if (element.get(object) != simdjson::SUCCESS) return unexpected(where + " is not an object");
  MarathonTask task;
  std::string_view text;
  if (object["id"].get(text) != simdjson::SUCCESS) return unexpected(where + ".id is missing");
  task.id.assign(text);
  if (object["appId"].get(text) != simdjson::SUCCESS) return unexpected(where + ".appId is missing");
  task.app_id.assign(text);
  if (object["host"].get(text) != simdjson::SUCCESS) return unexpected(where + ".host is missing");
  task.host.assign(text);
  if (object["slaveId"].get(text) == simdjson::SUCCESS) task.slave_id.assign(text);
  // Marathon before 1.x wrote no state for running tasks; startedAt says it runs.
  if (object["state"].get(text) == simdjson::SUCCESS) {
    task.state.assign(text);
  } else {
    task.state = object["startedAt"].error() == simdjson::SUCCESS ? "TASK_RUNNING" : "TASK_STAGING";
  }
  dom::array results;
  if (object["healthCheckResults"].get(results) == simdjson::SUCCESS && results.size() > 0) {
    task.health_reported = true;
    task.alive = true;
    for (dom::element result : results) {
      bool alive = false;
      if (result["alive"].get(alive) != simdjson::SUCCESS) return unexpected(where + ".healthCheckResults[].alive is missing");
      task.alive = task.alive && alive;
    }
  }
  return task;
}

Result<MarathonApp, std::string> parse_app(dom::element element, const std::string& where) {
  dom::object object;
  if (element.get(object) != simdjson::SUCCESS) return unexpected(where + " is not an object");
  MarathonApp app;
  std::string_view text;
  if (object["id"].get(text) != simdjson::SUCCESS) return unexpected(where + ".id is missing");
  app.id.assign(text);
  if (object["instances"].get(app.instances) != simdjson::SUCCESS) return unexpected(where + ".instances is not an integer");
  dom::object labels;
  if (object["labels"].get(labels) == simdjson::SUCCESS) {
    for (auto [key, value] : labels) {
      if (value.get(text) != simdjson::SUCCESS) return unexpected(where + ".labels." + std::string(key) + " is not a string");
      app.labels.emplace(std::string(key), std::string(text));
    }
  }
  dom::array checks;
  app.health_checks = object["healthChecks"].get(checks) == simdjson::SUCCESS && checks.size() > 0;
  dom::array tasks;
  if (object["tasks"].get(tasks) == simdjson::SUCCESS) {
    std::size_t index = 0;
    for (dom::element task_element : tasks) {
      auto task = parse_task(task_element, where + ".tasks[" + std::to_string(index++) + "]");
      if (!task) return unexpected(std::move(task).error());
      app.tasks.push_back(std::move(*task));
    }
  }
  dom::array deployments;
  if (object["deployments"].get(deployments) == simdjson::SUCCESS) {
    for (dom::element deployment : deployments) {
      if (deployment["id"].get(text) == simdjson::SUCCESS) app.deployments.emplace_back(text);
    }
  }
  return app;
}

}  // namespace

bool MarathonApp::healthy(const MarathonTask& task) const {
  if (task.state != "TASK_RUNNING") return false;
  if (!health_checks) return true;
  return task.health_reported && task.alive;
}

Result<std::vector<MarathonApp>, std::string> parse_marathon_apps(dom::parser& parser, std::string_view json) {
  dom::object object;
  if (parser.parse(json.data(), json.size(), true).get(object) != simdjson::SUCCESS) {
    return unexpected(std::string("apps: not a JSON object"));
  }
  std::vector<MarathonApp> apps;
  dom::element single;
  if (object["app"].get(single) == simdjson::SUCCESS) {
    auto app = parse_app(single, "app");
    if (!app) return unexpected(std::move(app).error());
    apps.push_back(std::move(*app));
    return apps;
  }
  dom::array array;
  if (object["apps"].get(array) != simdjson::SUCCESS) return unexpected(std::string("apps: no \"apps\" array"));
  std::size_t index = 0;
  for (dom::element element : array) {
    auto app = parse_app(element, "apps[" + std::to_string(index++) + "]");
    if (!app) return unexpected(std::move(app).error());
    apps.push_back(std::move(*app));
  }
  return apps;
}

Result<std::vector<MarathonTask>, std::string> parse_marathon_tasks(dom::parser& parser, std::string_view json) {
  dom::element root;
  if (parser.parse(json.data(), json.size(), true).get(root) != simdjson::SUCCESS) {
    return unexpected(std::string("tasks: not JSON"));
  }
  std::vector<MarathonTask> tasks;
  dom::element single;
  if (root.type() == dom::element_type::OBJECT && root["task"].get(single) == simdjson::SUCCESS) {
    auto task = parse_task(single, "task");
    if (!task) return unexpected(std::move(task).error());
    tasks.push_back(std::move(*task));
    return tasks;
  }
  dom::array array;
  if (root.type() != dom::element_type::OBJECT || root["tasks"].get(array) != simdjson::SUCCESS) {
    return unexpected(std::string("tasks: no \"tasks\" array"));
  }
  std::size_t index = 0;
  for (dom::element element : array) {
    auto task = parse_task(element, "tasks[" + std::to_string(index++) + "]");
    if (!task) return unexpected(std::move(task).error());
    tasks.push_back(std::move(*task));
  }
  return tasks;
}

Result<std::vector<MarathonDeployment>, std::string> parse_marathon_deployments(dom::parser& parser,
                                                                                std::string_view json) {
  dom::array array;
  if (parser.parse(json.data(), json.size(), true).get(array) != simdjson::SUCCESS) {
    return unexpected(std::string("deployments: not a JSON array"));
  }
  std::vector<MarathonDeployment> out;
  std::size_t index = 0;
  for (dom::element element : array) {
    const std::string where = "deployments[" + std::to_string(index++) + "]";
    MarathonDeployment deployment;
    std::string_view text;
    if (element["id"].get(text) != simdjson::SUCCESS) return unexpected(where + ".id is missing");
    deployment.id.assign(text);
    dom::array apps;
    if (element["affectedApps"].get(apps) == simdjson::SUCCESS) {
      for (dom::element app : apps) {
        if (app.get(text) == simdjson::SUCCESS) deployment.affected_apps.emplace_back(text);
      }
    }
    out.push_back(std::move(deployment));
  }
  return out;
}

std::vector<BudgetShortfall> disruption_budget(const std::vector<MarathonApp>& apps, const std::string& host,
                                               const std::string& label, std::int64_t default_minimum,
                                               const std::vector<std::string>& unavailable) {
  const auto draining = [&](const std::string& name) {
    return std::any_of(unavailable.begin(), unavailable.end(), [&](const std::string& u) { return iequal(u, name); });
  };
  std::vector<BudgetShortfall> out;
  for (const MarathonApp& app : apps) {
    BudgetShortfall entry;
    entry.app_id = app.id;
    for (const MarathonTask& task : app.tasks) {
      if (iequal(task.host, host)) {
        ++entry.on_host;
      } else if (app.healthy(task)) {
        ++(draining(task.host) ? entry.healthy_unavailable : entry.healthy_elsewhere);
      }
    }
    if (entry.on_host == 0) continue;
    entry.required = default_minimum;
    if (const auto it = app.labels.find(label); it != app.labels.end()) {
      const std::string& text = it->second;
      std::int64_t value = -1;
      const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (ec != std::errc{} || ptr != text.data() + text.size() || value < 0) {
        entry.problem = "label " + label + "='" + text + "' is not a count";
        out.push_back(std::move(entry));
        continue;
      }
      entry.required = value;
    }
    if (entry.healthy_elsewhere < entry.required) out.push_back(std::move(entry));
  }
  return out;
}

Marathon::Marathon(MarathonOptions options, std::unique_ptr<HttpClient> http)
    : options_(std::move(options)), http_(std::move(http)), parser_(std::make_unique<dom::parser>()) {}
Marathon::~Marathon() = default;

Result<std::unique_ptr<Marathon>, OutsideError> Marathon::create(MarathonOptions options) {
  auto http = HttpClient::create(options.http);
  if (!http) return unexpected(marathon_error(OutsideError::Kind::kUnavailable, 0, http.error().message()));
  return std::unique_ptr<Marathon>(new Marathon(std::move(options), std::move(*http)));
}

Result<HttpResponse, OutsideError> Marathon::send(const std::string& method, const std::string& target,
                                                   const std::string& body, bool idempotent) {
  const HttpRequest request = json_request(method, target, body, idempotent);
  DeadlineBackoff backoff(std::chrono::milliseconds(100), std::chrono::seconds(2), Clock::now() + options_.leader_wait);
  for (;;) {
    auto response = http_->request(request);
    if (!response) {
      return unexpected(OutsideError::from_http("marathon", response.error(), "marathon "));
    }
    // 503: no leader to proxy to; nothing was done, so asking again is safe.
    if (response->status == 503) {
      const std::string text = marathon_error_text(*parser_, response->body);
      log_info("marathon: " + text + "; retrying in " + std::to_string(backoff.next().count()) + " ms");
      if (!backoff.sleep()) {
        return unexpected(marathon_error(OutsideError::Kind::kNoLeader, 503,
                                        "marathon " + method + " " + target + ": HTTP 503: " + text));
      }
      continue;
    }
    if (response->status >= 400) {
      return unexpected(marathon_error(OutsideError::Kind::kRefused, response->status,
                                      "marathon " + method + " " + target + ": HTTP " +
                                          std::to_string(response->status) + ": " +
                                          marathon_error_text(*parser_, response->body)));
    }
    return std::move(*response);
  }
}

Result<MarathonInfo, std::string> parse_marathon_info(dom::parser& parser, std::string_view json) {
  dom::object object;
  if (parser.parse(json.data(), json.size(), true).get(object) != simdjson::SUCCESS) {
    return unexpected(std::string("/v2/info: not a JSON object"));
  }
  MarathonInfo info;
  std::string_view text;
  if (object["version"].get(text) != simdjson::SUCCESS) return unexpected(std::string("/v2/info: no version"));
  info.version.assign(text);
  if (object["leader"].get(text) == simdjson::SUCCESS) info.leader.assign(text);
  if (object["frameworkId"].get(text) == simdjson::SUCCESS) info.framework_id.assign(text);
  bool elected = false;
  if (object["elected"].get(elected) == simdjson::SUCCESS) info.elected = elected;
  return info;
}

Result<std::string, std::string> parse_marathon_leader(dom::parser& parser, std::string_view json) {
  dom::object object;
  std::string_view leader;
  if (parser.parse(json.data(), json.size(), true).get(object) != simdjson::SUCCESS ||
      object["leader"].get(leader) != simdjson::SUCCESS) {
    return unexpected(std::string("/v2/leader: no \"leader\" in the answer"));
  }
  return std::string(leader);
}

std::string kill_tasks_json(const std::vector<std::string>& task_ids) {
  std::string body;
  JsonWriter json(body);
  json.begin_object().key("ids").begin_array();
  for (const std::string& id : task_ids) json.value(id);
  json.end_array().end_object();
  return body;
}

Result<MarathonInfo, OutsideError> Marathon::info() {
  auto response = send("GET", "/v2/info", {}, true);
  if (!response) return unexpected(std::move(response).error());
  auto info = parse_marathon_info(*parser_, response->body);
  if (!info) return unexpected(bad("marathon " + info.error()));
  return std::move(*info);
}

Result<std::string, OutsideError> Marathon::leader() {
  auto response = send("GET", "/v2/leader", {}, true);
  if (!response) {
    OutsideError error = std::move(response).error();
    if (error.kind == OutsideError::Kind::kRefused && error.status == 404) error.kind = OutsideError::Kind::kNoLeader;
    return unexpected(std::move(error));
  }
  auto parsed = parse_marathon_leader(*parser_, response->body);
  if (!parsed) return unexpected(bad("marathon " + parsed.error()));
  return std::move(*parsed);
}

Result<std::string, OutsideError> Marathon::abdicate(Clock::time_point until) {
  auto old_leader = leader();
  if (!old_leader) return unexpected(std::move(old_leader).error());
  auto response = send("DELETE", "/v2/leader", {}, false);
  if (!response && response.error().kind != OutsideError::Kind::kUnknownOutcome) {
    return unexpected(std::move(response).error());
  }
  log_info("marathon leader '" + *old_leader + "' abdicated; waiting for another to lead");
  // The old leader keeps answering for ~0.5 s, then there is none for a moment.
  for (;;) {
    auto current = leader();
    if (current && *current != *old_leader) {
      log_info("marathon leader is now '" + *current + "'");
      return std::move(*current);
    }
    if (!current && current.error().kind != OutsideError::Kind::kNoLeader &&
        current.error().kind != OutsideError::Kind::kUnavailable) {
      return unexpected(std::move(current).error());
    }
    if (Clock::now() + options_.poll_interval >= until) {
      return unexpected(marathon_error(OutsideError::Kind::kTimedOut, 0,
                                      "marathon: no leader other than '" + *old_leader + "' by the deadline"));
    }
    std::this_thread::sleep_for(options_.poll_interval);
  }
}

Result<std::vector<MarathonApp>, OutsideError> Marathon::apps() {
  auto response = send("GET", "/v2/apps?embed=apps.tasks", {}, true);
  if (!response) return unexpected(std::move(response).error());
  auto apps = parse_marathon_apps(*parser_, response->body);
  if (!apps) return unexpected(bad("marathon " + apps.error()));
  return std::move(*apps);
}

Result<std::vector<MarathonTask>, OutsideError> Marathon::tasks() {
  auto response = send("GET", "/v2/tasks", {}, true);
  if (!response) return unexpected(std::move(response).error());
  auto tasks = parse_marathon_tasks(*parser_, response->body);
  if (!tasks) return unexpected(bad("marathon " + tasks.error()));
  return std::move(*tasks);
}

Result<std::vector<MarathonDeployment>, OutsideError> Marathon::deployments() {
  auto response = send("GET", "/v2/deployments", {}, true);
  if (!response) return unexpected(std::move(response).error());
  auto deployments = parse_marathon_deployments(*parser_, response->body);
  if (!deployments) return unexpected(bad("marathon " + deployments.error()));
  return std::move(*deployments);
}

Result<std::string, std::string> parse_marathon_deployment_id(dom::parser& parser, std::string_view json) {
  dom::object object;
  std::string_view deployment;
  if (parser.parse(json.data(), json.size(), true).get(object) != simdjson::SUCCESS ||
      object["deploymentId"].get(deployment) != simdjson::SUCCESS || deployment.empty()) {
    return unexpected(std::string("no deploymentId in the answer"));
  }
  return std::string(deployment);
}

Result<std::string, OutsideError> Marathon::kill_tasks(const std::vector<std::string>& task_ids, bool scale) {
  const std::string body = kill_tasks_json(task_ids);
  // Never `wipe`: Marathon refuses it with scale, and without scale it forgets the
  // instance's reservation, which a drain must not do.
  auto response = send("POST", std::string("/v2/tasks/delete?scale=") + (scale ? "true" : "false"), body, false);
  if (!response) return unexpected(std::move(response).error());
  if (!scale) return std::string();
  auto deployment = parse_marathon_deployment_id(*parser_, response->body);
  if (!deployment) return unexpected(bad("marathon /v2/tasks/delete?scale=true: " + deployment.error()));
  return std::move(*deployment);
}

Result<MarathonApp, OutsideError> Marathon::app(const std::string& app_id) {
  auto response = send("GET", "/v2/apps" + app_id + "?embed=app.tasks", {}, true);
  if (!response) {
    OutsideError error = std::move(response).error();
    if (error.kind == OutsideError::Kind::kRefused && error.status == 404) error.kind = OutsideError::Kind::kNotFound;
    return unexpected(std::move(error));
  }
  auto apps = parse_marathon_apps(*parser_, response->body);
  if (!apps) return unexpected(bad("marathon " + apps.error()));
  if (apps->size() != 1 || (*apps)[0].id != app_id) {
    return unexpected(bad("marathon /v2/apps" + app_id + ": the answer is not that app"));
  }
  return std::move(apps->front());
}

Result<std::string, OutsideError> Marathon::scale(const std::string& app_id, std::int64_t instances, bool force) {
  if (app_id.empty() || app_id.front() != '/' || instances < 0) {
    return unexpected(marathon_error(OutsideError::Kind::kRefused, 0,
                                    "marathon: will not scale app '" + app_id + "' to " + std::to_string(instances)));
  }
  std::string body;
  JsonWriter json(body);
  json.begin_object().key("instances").value(instances).end_object();
  // Not sent again blindly when its answer is lost: each PUT is a deployment of its own.
  // The caller reads the count back (kUnknownOutcome) and decides.
  auto response = send("PUT", "/v2/apps" + app_id + (force ? "?force=true" : "?force=false"), body, false);
  if (!response) return unexpected(std::move(response).error());
  auto deployment = parse_marathon_deployment_id(*parser_, response->body);
  if (!deployment) return unexpected(bad("marathon PUT /v2/apps" + app_id + ": " + deployment.error()));
  return std::move(*deployment);
}

Result<void, OutsideError> Marathon::wait_tasks_gone(const std::vector<std::string>& task_ids, Clock::time_point until) {
  for (;;) {
    auto tasks = this->tasks();
    if (!tasks) return unexpected(std::move(tasks).error());
    std::vector<std::string> left;
    for (const MarathonTask& task : *tasks) {
      if (std::find(task_ids.begin(), task_ids.end(), task.id) != task_ids.end()) left.push_back(task.id);
    }
    if (left.empty()) return {};
    if (Clock::now() + options_.poll_interval >= until) {
      std::string names;
      for (const std::string& id : left) names += (names.empty() ? "'" : ", '") + id + "'";
      return unexpected(marathon_error(OutsideError::Kind::kTimedOut, 0,
                                      "marathon: tasks still listed after the kill: " + names));
    }
    std::this_thread::sleep_for(options_.poll_interval);
  }
}

}  // namespace skopos::driver
