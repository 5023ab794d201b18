// MesosAgent: the tasks running on this host's Mesos agent, with the container id of
// each (the Docker containerizer names its containers "mesos-<ContainerID>"), from the
// agent's operator API (GET_TASKS) or, for agents without it, /state.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "driver/http_client.h"
#include "driver/mesos_master.h"
#include "skopos/result.h"

namespace skopos::driver {

struct AgentTask {
  std::string id;
  std::string name;
  std::string framework_id;
  std::string state;
  std::string container_id;  // "" when the agent did not say

  // The Docker container's name, or "" without a container id.
  std::string docker_name() const { return container_id.empty() ? std::string() : "mesos-" + container_id; }
};

class MesosAgent {
 public:
  // `options.endpoints`: the agent, usually http://127.0.0.1:5051.
  static Result<std::unique_ptr<MesosAgent>, MesosError> create(HttpOptions options);
  ~MesosAgent();

  // Launched (not completed) tasks, from POST /api/v1 GET_TASKS.
  Result<std::vector<AgentTask>, MesosError> tasks();
  // The same from GET /state (frameworks → executors → tasks, container per executor).
  Result<std::vector<AgentTask>, MesosError> tasks_from_state();

 private:
  explicit MesosAgent(std::unique_ptr<HttpClient> http);
  Result<std::string, MesosError> exchange(const std::string& method, const std::string& path, const std::string& body);

  std::unique_ptr<HttpClient> http_;
  std::unique_ptr<simdjson::dom::parser> parser_;
};

// Parsers, exposed for the fixture tests.
Result<std::vector<AgentTask>, std::string> parse_agent_get_tasks(simdjson::dom::parser& parser, std::string_view json);
Result<std::vector<AgentTask>, std::string> parse_agent_state(simdjson::dom::parser& parser, std::string_view json);

}  // namespace skopos::driver
