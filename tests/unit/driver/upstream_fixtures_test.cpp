// Every file under tests/fixtures/upstream/{mesos-master,mesos-agent,marathon,docker}
// is either parsed into our types, or compared with the request we send, or named
// here with the reason no client of ours reads it. A new fixture without an entry
// fails this test: someone has to decide what it checks.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "driver/marathon.h"
#include "driver/mesos_master.h"
#include "skopos/docker_api.h"

namespace skopos::driver {
namespace {

std::string read(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The same JSON, whitespace aside.
std::string canonical(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(json).get(root) != simdjson::SUCCESS) return "(not JSON) " + json;
  return simdjson::minify(root);
}

using Check = std::function<std::string(const std::string& text)>;  // "" = fine, else what failed

template <class R>
std::string ok_or_error(const R& result) {
  if (result) return {};
  if constexpr (std::is_same_v<std::decay_t<decltype(result.error())>, std::string>) {
    return result.error();
  } else {
    return result.error().message();
  }
}

std::string same_json(const std::string& ours, const std::string& documented) {
  return canonical(ours) == canonical(documented) ? std::string()
                                                   : "ours " + canonical(ours) + " vs documented " + canonical(documented);
}

// {"message": "..."} -> a non-empty text.
std::string marathon_error(const std::string& text) {
  simdjson::dom::parser parser;
  return marathon_error_text(parser, text).empty() ? "no message" : std::string();
}

std::map<std::string, Check> checks() {
  static simdjson::dom::parser parser;
  std::map<std::string, Check> c;
  // --- Mesos master ---
  c["mesos-master/api-v1-GET_AGENTS.response.json"] = [](const std::string& t) { return ok_or_error(parse_get_agents(parser, t)); };
  c["mesos-master/api-v1-GET_MAINTENANCE_SCHEDULE.response.json"] = [](const std::string& t) { return ok_or_error(parse_schedule(parser, t)); };
  c["mesos-master/api-v1-GET_MAINTENANCE_STATUS.response.json"] = [](const std::string& t) { return ok_or_error(parse_maintenance_status(parser, t)); };
  c["mesos-master/maintenance-schedule.request.json"] = [](const std::string& t) {
    auto schedule = parse_schedule(parser, t);
    return schedule ? same_json(schedule_json(*schedule), t) : schedule.error();
  };
  c["mesos-master/api-v1-UPDATE_MAINTENANCE_SCHEDULE.request.json"] = [](const std::string& t) {
    simdjson::dom::element root;
    if (parser.parse(t).get(root) != simdjson::SUCCESS) return std::string("not JSON");
    auto schedule = parse_schedule(parser, simdjson::minify(root["update_maintenance_schedule"]["schedule"]));
    return ok_or_error(schedule);
  };
  c["mesos-master/machine-down.request.json"] = [](const std::string& t) {
    return same_json(machines_json({{"machine1", "10.0.0.1"}, {"machine2", "10.0.0.2"}}), t);
  };
  c["mesos-master/machine-up.request.json"] = c["mesos-master/machine-down.request.json"];
  c["mesos-master/api-v1-DRAIN_AGENT.request.json"] = [](const std::string& t) {
    return same_json(drain_agent_json("3192b9d1-db71-4699-ae25-e28dfbf42de1", std::chrono::seconds(600), false), t);
  };
  c["mesos-master/api-v1-DEACTIVATE_AGENT.request.json"] = [](const std::string& t) {
    return same_json(agent_call_json("DEACTIVATE_AGENT", "deactivate_agent", "3192b9d1-db71-4699-ae25-e28dfbf42de1"), t);
  };
  c["mesos-master/api-v1-REACTIVATE_AGENT.request.json"] = [](const std::string& t) {
    return same_json(agent_call_json("REACTIVATE_AGENT", "reactivate_agent", "3192b9d1-db71-4699-ae25-e28dfbf42de1"), t);
  };
  c["mesos-master/api-v1-GET_AGENTS.request.json"] = [](const std::string& t) { return same_json(R"({"type":"GET_AGENTS"})", t); };
  const Check not_read = [](const std::string&) { return std::string(); };
  // Not read by any client of ours (checked against the simulator elsewhere, or unused):
  c["mesos-master/api-v1-GET_MAINTENANCE_SCHEDULE.request.json"] = not_read;  // we GET /maintenance/schedule
  c["mesos-master/api-v1-GET_MAINTENANCE_STATUS.request.json"] = not_read;    // we GET /maintenance/status
  c["mesos-master/api-v1-START_MAINTENANCE.request.json"] = not_read;         // we POST /machine/down
  c["mesos-master/api-v1-STOP_MAINTENANCE.request.json"] = not_read;          // we POST /machine/up
  c["mesos-master/api-v1-GET_STATE.request.json"] = not_read;                 // no client reads master state
  c["mesos-master/api-v1-GET_STATE.response.json"] = not_read;
  c["mesos-master/state.response.json"] = not_read;
  c["mesos-master/error-responses.from-source.json"] = not_read;  // texts checked in mesos-sim (MesosSimFidelity)
  // --- Mesos agent ---
  // No client of ours asks the agent: a task's containers are found by their Docker
  // labels (MESOS_TASK_ID), which the tracker and the drain read from Docker itself.
  c["mesos-agent/api-v1-GET_TASKS.response.json"] = not_read;
  c["mesos-agent/state.response.json"] = not_read;
  c["mesos-agent/api-v1-GET_TASKS.request.json"] = not_read;
  // --- Marathon ---
  for (const char* name : {"v2-apps.response.json", "v2-apps-id.embed-tasks.response.json"}) {
    c[std::string("marathon/") + name] = [](const std::string& t) { return ok_or_error(parse_marathon_apps(parser, t)); };
  }
  for (const char* name : {"v2-tasks.response.json", "v2-tasks.with-health.response.json", "v2-apps-id-tasks.response.json",
                           "v2-apps-id-tasks-id.delete.response.json"}) {
    c[std::string("marathon/") + name] = [](const std::string& t) { return ok_or_error(parse_marathon_tasks(parser, t)); };
  }
  c["marathon/task.with-ip-addresses.json"] = [](const std::string& t) {
    return ok_or_error(parse_marathon_tasks(parser, "{\"tasks\":[" + t + "]}"));
  };
  c["marathon/v2-deployments.response.json"] = [](const std::string& t) { return ok_or_error(parse_marathon_deployments(parser, t)); };
  c["marathon/v2-info.response.json"] = [](const std::string& t) { return ok_or_error(parse_marathon_info(parser, t)); };
  c["marathon/v2-leader.response.json"] = [](const std::string& t) { return ok_or_error(parse_marathon_leader(parser, t)); };
  c["marathon/deployment-result.response.json"] = [](const std::string& t) {
    simdjson::dom::element root;
    std::string_view id;
    return parser.parse(t).get(root) == simdjson::SUCCESS && root["deploymentId"].get(id) == simdjson::SUCCESS
               ? std::string()
               : std::string("no deploymentId");
  };
  c["marathon/v2-tasks-delete.request.json"] = [](const std::string& t) {
    return same_json(kill_tasks_json({"task.25ab260e-b5ec-11e4-a4f4-685b35c8a22e", "task.5e7b39d4-b5f0-11e4-8021-685b35c8a22e",
                                      "task.a21cb64a-b5eb-11e4-a4f4-685b35c8a22e"}),
                     t);
  };
  c["marathon/v2-tasks-delete.raml.request.json"] = [](const std::string& t) { return same_json(kill_tasks_json({"task1", "task2"}), t); };
  for (const char* name : {"error-400-invalid-json.response.json", "error-401-unauthorized.response.json",
                           "error-403-forbidden.response.json", "error-404-app-not-found.response.json",
                           "error-409-already-exists.response.json", "error-409-app-locked.response.json",
                           "error-422-validation.response.json", "v2-tasks-delete.error-400.response.json",
                           "v2-leader.no-leader.response.json", "v2-leader.delete.response.json"}) {
    c[std::string("marathon/") + name] = marathon_error;
  }
  c["marathon/v2-apps.create.request.json"] = not_read;  // we never create apps
  // --- Docker (the tracker's parsers, which the driver's DockerEngine uses) ---
  c["docker/containers-json.response.json"] = [](const std::string& t) { return ok_or_error(parse_container_list(t)); };
  for (const char* name : {"container-inspect.response.json", "container-inspect.mesos-bridge.derived.json",
                           "container-inspect.mesos-host.derived.json"}) {
    c[std::string("docker/") + name] = [](const std::string& t) { return ok_or_error(parse_container_inspect(t)); };
  }
  for (const char* name : {"container-kill.error-409-not-running.response.json", "error-404-no-such-container.response.json",
                           "error-response.example.json"}) {
    c[std::string("docker/") + name] = [](const std::string& t) {
      return parse_docker_error(t).empty() ? std::string("no message") : std::string();
    };
  }
  c["docker/events.stream.json"] = [](const std::string& t) {
    simdjson::dom::element root;
    if (parser.parse(t).get(root) != simdjson::SUCCESS) return std::string("not JSON");
    for (simdjson::dom::element event : root.get_array()) {
      if (auto parsed = parse_docker_event(simdjson::minify(event)); !parsed) return parsed.error().message();
    }
    return std::string();
  };
  c["docker/port-map.example.json"] = not_read;  // a fragment of inspect, covered by the inspect examples
  return c;
}

TEST(UpstreamFixtures, EveryFileIsParsedComparedOrExplained) {
  const auto all = checks();
  int checked = 0;
  for (const char* directory : {"mesos-master", "mesos-agent", "marathon", "docker"}) {
    for (const auto& entry : std::filesystem::directory_iterator(std::string(SKOPOS_FIXTURES_DIR) + "/" + directory)) {
      const std::string name = std::string(directory) + "/" + entry.path().filename().string();
      const auto check = all.find(name);
      if (check == all.end()) {
        ADD_FAILURE() << name << " has no check: parse it, compare it, or say why no client reads it";
        continue;
      }
      EXPECT_EQ(check->second(read(entry.path())), "") << name;
      ++checked;
    }
  }
  EXPECT_EQ(checked, static_cast<int>(all.size())) << "a check names a file that is not there";
}

}  // namespace
}  // namespace skopos::driver
