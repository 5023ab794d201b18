#include "driver/mesos_agent.h"

#include <simdjson.h>

namespace skopos::driver {

namespace dom = simdjson::dom;

namespace {

bool string_at(dom::element element, std::string_view pointer, std::string& out) {
  std::string_view text;
  if (element.at_pointer(pointer).get(text) != simdjson::SUCCESS) return false;
  out.assign(text);
  return true;
}

}  // namespace

Result<std::vector<AgentTask>, std::string> parse_agent_get_tasks(dom::parser& parser, std::string_view json) {
  dom::element root;
  if (parser.parse(json.data(), json.size(), true).get(root) != simdjson::SUCCESS ||
      root.type() != dom::element_type::OBJECT) {
    return unexpected(std::string("GET_TASKS: not a JSON object"));
  }
  std::vector<AgentTask> tasks;
  dom::element list;
  if (root.at_pointer("/get_tasks/launched_tasks").get(list) != simdjson::SUCCESS) {
    if (root["get_tasks"].error() != simdjson::SUCCESS) return unexpected(std::string("GET_TASKS: no get_tasks"));
    return tasks;  // none launched: omitted
  }
  dom::array array;
  if (list.get(array) != simdjson::SUCCESS) return unexpected(std::string("get_tasks.launched_tasks is not an array"));
  std::size_t index = 0;
  for (dom::element element : array) {
    const std::string where = "get_tasks.launched_tasks[" + std::to_string(index++) + "]";
    AgentTask task;
    if (!string_at(element, "/task_id/value", task.id)) return unexpected(where + ".task_id.value is missing");
    if (!string_at(element, "/state", task.state)) return unexpected(where + ".state is missing");
    string_at(element, "/name", task.name);
    string_at(element, "/framework_id/value", task.framework_id);
    // The latest status that names the container.
    dom::array statuses;
    if (element["statuses"].get(statuses) == simdjson::SUCCESS) {
      for (dom::element status : statuses) {
        std::string container;
        if (string_at(status, "/container_status/container_id/value", container)) task.container_id = container;
      }
    }
    tasks.push_back(std::move(task));
  }
  return tasks;
}

Result<std::vector<AgentTask>, std::string> parse_agent_state(dom::parser& parser, std::string_view json) {
  dom::object root;
  if (parser.parse(json.data(), json.size(), true).get(root) != simdjson::SUCCESS) {
    return unexpected(std::string("agent /state: not a JSON object"));
  }
  std::vector<AgentTask> tasks;
  dom::array frameworks;
  if (root["frameworks"].get(frameworks) != simdjson::SUCCESS) return unexpected(std::string("agent /state: no frameworks"));
  for (dom::element framework : frameworks) {
    std::string framework_id;
    string_at(framework, "/id", framework_id);
    dom::array executors;
    if (framework["executors"].get(executors) != simdjson::SUCCESS) continue;
    for (dom::element executor : executors) {
      std::string container;
      string_at(executor, "/container", container);
      dom::array executor_tasks;
      if (executor["tasks"].get(executor_tasks) != simdjson::SUCCESS) continue;
      for (dom::element element : executor_tasks) {
        AgentTask task;
        if (!string_at(element, "/id", task.id)) return unexpected(std::string("agent /state: a task without id"));
        string_at(element, "/name", task.name);
        string_at(element, "/state", task.state);
        task.framework_id = framework_id;
        task.container_id = container;
        tasks.push_back(std::move(task));
      }
    }
  }
  return tasks;
}

MesosAgent::MesosAgent(std::unique_ptr<HttpClient> http)
    : http_(std::move(http)), parser_(std::make_unique<dom::parser>()) {}
MesosAgent::~MesosAgent() = default;

Result<std::unique_ptr<MesosAgent>, MesosError> MesosAgent::create(HttpOptions options) {
  auto http = HttpClient::create(std::move(options));
  if (!http) return unexpected(MesosError{MesosError::Kind::kUnavailable, 0, http.error().message()});
  return std::unique_ptr<MesosAgent>(new MesosAgent(std::move(*http)));
}

Result<std::string, MesosError> MesosAgent::exchange(const std::string& method, const std::string& path,
                                                     const std::string& body) {
  auto response = http_->request(json_request(method, path, body, true));  // reads only: idempotent
  if (!response) {
    return unexpected(MesosError{MesosError::Kind::kUnavailable, 0, "mesos agent " + response.error().message()});
  }
  if (response->status != 200) {
    return unexpected(MesosError{MesosError::Kind::kRefused, response->status,
                                 "mesos agent " + method + " " + path + ": HTTP " + std::to_string(response->status) +
                                     ": " + response->body.substr(0, 300)});
  }
  return std::move(response->body);
}

Result<std::vector<AgentTask>, MesosError> MesosAgent::tasks() {
  auto body = exchange("POST", "/api/v1", R"({"type":"GET_TASKS"})");
  if (!body) return unexpected(std::move(body).error());
  auto tasks = parse_agent_get_tasks(*parser_, *body);
  if (!tasks) return unexpected(MesosError{MesosError::Kind::kBadResponse, 0, "mesos agent " + tasks.error()});
  return std::move(*tasks);
}

Result<std::vector<AgentTask>, MesosError> MesosAgent::tasks_from_state() {
  auto body = exchange("GET", "/state", {});
  if (!body) return unexpected(std::move(body).error());
  auto tasks = parse_agent_state(*parser_, *body);
  if (!tasks) return unexpected(MesosError{MesosError::Kind::kBadResponse, 0, "mesos agent " + tasks.error()});
  return std::move(*tasks);
}

}  // namespace skopos::driver
