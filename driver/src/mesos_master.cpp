#include "driver/mesos_master.h"

#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <thread>

#include "skopos/json_writer.h"
#include "skopos/log.h"

namespace skopos::driver {

namespace dom = simdjson::dom;
using Clock = std::chrono::steady_clock;

namespace {

OutsideError mesos_error(OutsideError::Kind kind, unsigned status, std::string message) {
  return OutsideError::answered("mesos", kind, status, std::move(message));
}

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

OutsideError bad(std::string message) { return mesos_error(OutsideError::Kind::kBadResponse, 0, std::move(message)); }

// A string field; absent gives "" (the master omits empty strings).
bool optional_string(dom::object object, std::string_view key, std::string& out) {
  dom::element value;
  if (object[key].get(value) != simdjson::SUCCESS) return true;
  std::string_view text;
  if (value.get(text) != simdjson::SUCCESS) return false;
  out.assign(text);
  return true;
}

// {"nanoseconds": N}: an integer, never a double (N exceeds 2^53).
bool nanoseconds(dom::element element, std::int64_t& out) {
  dom::object object;
  if (element.get(object) != simdjson::SUCCESS) return false;
  dom::element value;
  if (object["nanoseconds"].get(value) != simdjson::SUCCESS) return false;
  if (value.type() != dom::element_type::INT64 && value.type() != dom::element_type::UINT64) return false;
  return value.get(out) == simdjson::SUCCESS;
}

Result<MachineId, std::string> parse_machine(dom::element element, const std::string& where) {
  dom::object object;
  if (element.get(object) != simdjson::SUCCESS) return unexpected(where + " is not an object");
  MachineId machine;
  if (!optional_string(object, "hostname", machine.hostname) || !optional_string(object, "ip", machine.ip)) {
    return unexpected(where + ": hostname and ip must be strings");
  }
  if (machine.hostname.empty() && machine.ip.empty()) return unexpected(where + " has neither hostname nor ip");
  return machine;
}

Result<std::vector<MachineId>, std::string> parse_machines(dom::object object, std::string_view key,
                                                           const std::string& where, bool wrapped_in_id) {
  std::vector<MachineId> out;
  dom::element value;
  if (object[key].get(value) != simdjson::SUCCESS) return out;  // omitted: empty
  dom::array array;
  if (value.get(array) != simdjson::SUCCESS) return unexpected(where + "." + std::string(key) + " is not an array");
  std::size_t index = 0;
  for (dom::element item : array) {
    const std::string at = where + "." + std::string(key) + "[" + std::to_string(index++) + "]";
    dom::element machine_element = item;
    if (wrapped_in_id && item["id"].get(machine_element) != simdjson::SUCCESS) return unexpected(at + " has no id");
    auto machine = parse_machine(machine_element, at);
    if (!machine) return unexpected(std::move(machine).error());
    out.push_back(std::move(*machine));
  }
  return out;
}

// The object itself, or the one inside a v1 response {"type": T, "<t>": {"<inner>": ...}}.
Result<dom::object, std::string> unwrap(dom::parser& parser, std::string_view json, const char* v1_field,
                                        const char* inner) {
  dom::object object;
  if (parser.parse(json.data(), json.size(), true).get(object) != simdjson::SUCCESS) {
    return unexpected(std::string("not a JSON object"));
  }
  dom::object wrapper;
  if (object["type"].error() == simdjson::SUCCESS && object[v1_field].get(wrapper) == simdjson::SUCCESS) {
    dom::object content;
    if (wrapper[inner].get(content) != simdjson::SUCCESS) return dom::object(wrapper);
    return content;
  }
  return object;
}

void write_machine(JsonWriter& json, const MachineId& machine) {
  json.begin_object();
  if (!machine.hostname.empty()) json.key("hostname").value(machine.hostname);
  if (!machine.ip.empty()) json.key("ip").value(machine.ip);
  json.end_object();
}

// "//host:port/path" (scheme-less, as the master sends it) or "http(s)://host:port/path".
bool parse_location(const std::string& location, HttpEndpoint::Scheme scheme, HttpEndpoint& endpoint,
                    std::string& target) {
  std::string rest;
  if (location.rfind("//", 0) == 0) {
    rest = location.substr(2);
  } else if (auto pos = location.find("://"); pos != std::string::npos) {
    scheme = location.compare(0, pos, "https") == 0 ? HttpEndpoint::Scheme::kHttps : HttpEndpoint::Scheme::kHttp;
    rest = location.substr(pos + 3);
  } else {
    return false;
  }
  const auto slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  target = slash == std::string::npos ? "/" : rest.substr(slash);
  auto parsed = HttpEndpoint::parse((scheme == HttpEndpoint::Scheme::kHttps ? "https://" : "http://") + authority);
  if (!parsed) return false;
  endpoint = std::move(*parsed);
  return true;
}

std::string trimmed(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text.substr(0, 500);
}

}  // namespace

std::string machines_json(const std::vector<MachineId>& machines) {
  std::string out;
  JsonWriter json(out);
  json.begin_array();
  for (const MachineId& machine : machines) write_machine(json, machine);
  json.end_array();
  return out;
}

std::string agent_call_json(const char* type, const char* field, const std::string& agent_id) {
  std::string out;
  JsonWriter json(out);
  json.begin_object().key("type").value(type).key(field).begin_object().key("agent_id").begin_object();
  json.key("value").value(agent_id).end_object().end_object().end_object();
  return out;
}

std::string drain_agent_json(const std::string& agent_id, std::optional<std::chrono::seconds> max_grace_period,
                             bool mark_gone) {
  std::string body;
  JsonWriter json(body);
  json.begin_object().key("type").value("DRAIN_AGENT").key("drain_agent").begin_object();
  json.key("agent_id").begin_object().key("value").value(agent_id).end_object();
  // A google.protobuf.Duration that Mesos parses as a plain message: {"seconds": N}.
  if (max_grace_period) {
    json.key("max_grace_period").begin_object().key("seconds").value(static_cast<std::int64_t>(max_grace_period->count()));
    json.end_object();
  }
  json.key("mark_gone").value(mark_gone).end_object().end_object();
  return body;
}

bool MachineId::operator==(const MachineId& other) const { return iequal(hostname, other.hostname) && ip == other.ip; }

std::string MachineId::text() const {
  std::string out;
  JsonWriter json(out);
  write_machine(json, *this);
  return out;
}

const MaintenanceWindow* MaintenanceSchedule::find(const MachineId& machine) const {
  for (const MaintenanceWindow& window : windows) {
    if (std::find(window.machines.begin(), window.machines.end(), machine) != window.machines.end()) return &window;
  }
  return nullptr;
}

MaintenanceSchedule without_machine(const MaintenanceSchedule& schedule, const MachineId& machine) {
  MaintenanceSchedule out;
  for (const MaintenanceWindow& window : schedule.windows) {
    MaintenanceWindow kept = window;
    std::erase(kept.machines, machine);
    if (!kept.machines.empty()) out.windows.push_back(std::move(kept));
  }
  return out;
}

MaintenanceSchedule with_window(const MaintenanceSchedule& schedule, const MachineId& machine, std::int64_t start_ns,
                                std::optional<std::int64_t> duration_ns) {
  MaintenanceSchedule out = without_machine(schedule, machine);
  out.windows.push_back(MaintenanceWindow{{machine}, start_ns, duration_ns});
  return out;
}

std::string schedule_json(const MaintenanceSchedule& schedule) {
  std::string out;
  JsonWriter json(out);
  json.begin_object().key("windows").begin_array();
  for (const MaintenanceWindow& window : schedule.windows) {
    json.begin_object().key("machine_ids").begin_array();
    for (const MachineId& machine : window.machines) write_machine(json, machine);
    json.end_array().key("unavailability").begin_object();
    json.key("start").begin_object().key("nanoseconds").value(window.start_ns).end_object();
    if (window.duration_ns) json.key("duration").begin_object().key("nanoseconds").value(*window.duration_ns).end_object();
    json.end_object().end_object();
  }
  json.end_array().end_object();
  return out;
}

Result<MaintenanceSchedule, std::string> parse_schedule(dom::parser& parser, std::string_view json) {
  auto object = unwrap(parser, json, "get_maintenance_schedule", "schedule");
  if (!object) return unexpected("maintenance schedule: " + object.error());
  MaintenanceSchedule schedule;
  dom::element windows_element;
  if ((*object)["windows"].get(windows_element) != simdjson::SUCCESS) return schedule;  // {}: no schedule
  dom::array windows;
  if (windows_element.get(windows) != simdjson::SUCCESS) return unexpected(std::string("schedule.windows is not an array"));
  std::size_t index = 0;
  for (dom::element window_element : windows) {
    const std::string where = "schedule.windows[" + std::to_string(index++) + "]";
    dom::object window;
    if (window_element.get(window) != simdjson::SUCCESS) return unexpected(where + " is not an object");
    MaintenanceWindow out;
    auto machines = parse_machines(window, "machine_ids", where, false);
    if (!machines) return unexpected(std::move(machines).error());
    out.machines = std::move(*machines);
    dom::object unavailability;
    dom::element start;
    if (window["unavailability"].get(unavailability) != simdjson::SUCCESS ||
        unavailability["start"].get(start) != simdjson::SUCCESS || !nanoseconds(start, out.start_ns)) {
      return unexpected(where + ".unavailability.start.nanoseconds is missing or not an integer");
    }
    dom::element duration;
    if (unavailability["duration"].get(duration) == simdjson::SUCCESS) {
      std::int64_t value = 0;
      if (!nanoseconds(duration, value)) return unexpected(where + ".unavailability.duration.nanoseconds is not an integer");
      out.duration_ns = value;
    }
    schedule.windows.push_back(std::move(out));
  }
  return schedule;
}

Result<MaintenanceStatus, std::string> parse_maintenance_status(dom::parser& parser, std::string_view json) {
  auto object = unwrap(parser, json, "get_maintenance_status", "status");
  if (!object) return unexpected("maintenance status: " + object.error());
  MaintenanceStatus status;
  auto draining = parse_machines(*object, "draining_machines", "status", true);
  if (!draining) return unexpected(std::move(draining).error());
  auto down = parse_machines(*object, "down_machines", "status", false);
  if (!down) return unexpected(std::move(down).error());
  status.draining = std::move(*draining);
  status.down = std::move(*down);
  return status;
}

Result<std::vector<MesosAgentInfo>, std::string> parse_get_agents(dom::parser& parser, std::string_view json) {
  auto object = unwrap(parser, json, "get_agents", "get_agents");
  if (!object) return unexpected("GET_AGENTS: " + object.error());
  std::vector<MesosAgentInfo> agents;
  dom::element agents_element;
  if ((*object)["agents"].get(agents_element) != simdjson::SUCCESS) return agents;  // none: omitted
  dom::array array;
  if (agents_element.get(array) != simdjson::SUCCESS) return unexpected(std::string("get_agents.agents is not an array"));
  std::size_t index = 0;
  for (dom::element element : array) {
    const std::string where = "get_agents.agents[" + std::to_string(index++) + "]";
    dom::object agent_object;
    dom::object info;
    if (element.get(agent_object) != simdjson::SUCCESS || agent_object["agent_info"].get(info) != simdjson::SUCCESS) {
      return unexpected(where + " has no agent_info");
    }
    MesosAgentInfo agent;
    std::string_view text;
    if (info["hostname"].get(text) != simdjson::SUCCESS) return unexpected(where + ".agent_info.hostname is missing");
    agent.hostname.assign(text);
    if (info["id"]["value"].get(text) != simdjson::SUCCESS) return unexpected(where + ".agent_info.id.value is missing");
    agent.id.assign(text);
    std::uint64_t port = 0;
    if (info["port"].get(port) == simdjson::SUCCESS && port <= 65535) agent.port = static_cast<std::uint16_t>(port);
    // "slave(1)@10.0.0.5:5051": the ip the agent registered with.
    if (agent_object["pid"].get(text) == simdjson::SUCCESS) {
      const auto at = text.find('@');
      const auto colon = text.rfind(':');
      if (at == std::string_view::npos || colon == std::string_view::npos || colon < at) {
        return unexpected(where + ".pid '" + std::string(text) + "' is not name@ip:port");
      }
      agent.ip.assign(text.substr(at + 1, colon - at - 1));
    }
    bool flag = false;
    if (agent_object["active"].get(flag) == simdjson::SUCCESS) agent.active = flag;
    if (agent_object["deactivated"].get(flag) == simdjson::SUCCESS) agent.deactivated = flag;
    if (agent_object["version"].get(text) == simdjson::SUCCESS) agent.version.assign(text);
    dom::element registered;
    if (agent_object["registered_time"].get(registered) == simdjson::SUCCESS &&
        !nanoseconds(registered, agent.registered_ns)) {
      return unexpected(where + ".registered_time.nanoseconds is not an integer");
    }
    dom::array capabilities;
    if (agent_object["capabilities"].get(capabilities) == simdjson::SUCCESS) {
      for (dom::element capability : capabilities) {
        if (capability["type"].get(text) == simdjson::SUCCESS) agent.capabilities.emplace_back(text);
      }
    }
    if (agent_object["drain_info"]["state"].get(text) == simdjson::SUCCESS) {
      if (text == "DRAINING") {
        agent.drain = MesosAgentInfo::DrainState::kDraining;
      } else if (text == "DRAINED") {
        agent.drain = MesosAgentInfo::DrainState::kDrained;
      } else {
        return unexpected(where + ".drain_info.state '" + std::string(text) + "' is unknown");
      }
    }
    agents.push_back(std::move(agent));
  }
  return agents;
}

MesosMaster::MesosMaster(MesosMasterOptions options, std::unique_ptr<HttpClient> http)
    : options_(std::move(options)), http_(std::move(http)), parser_(std::make_unique<dom::parser>()) {}
MesosMaster::~MesosMaster() = default;

Result<std::unique_ptr<MesosMaster>, OutsideError> MesosMaster::create(MesosMasterOptions options) {
  auto http = HttpClient::create(options.http);
  if (!http) return unexpected(mesos_error(OutsideError::Kind::kUnavailable, 0, http.error().message()));
  return std::unique_ptr<MesosMaster>(new MesosMaster(std::move(options), std::move(*http)));
}

std::string MesosMaster::leader() const { return leader_ ? leader_->text : std::string(); }

Result<HttpResponse, OutsideError> MesosMaster::send(const std::string& method, const std::string& path,
                                                   const std::string& body, bool idempotent) {
  HttpRequest request = json_request(method, path, body, idempotent);
  DeadlineBackoff backoff(std::chrono::milliseconds(100), std::chrono::seconds(2), Clock::now() + options_.leader_wait);
  int redirects = 0;
  for (;;) {
    auto response = leader_ ? http_->request_at(*leader_, request) : http_->request(request);
    if (!response) {
      const HttpError& error = response.error();
      if (leader_ && error.kind == HttpError::Kind::kConnect) {
        // The master we followed is gone: start again from the configured ones.
        log_warning("mesos master '" + leader_->text + "' is unreachable; asking the configured masters again");
        leader_.reset();
        request.target = path;
        continue;
      }
      return unexpected(OutsideError::from_http("mesos", error, "mesos "));
    }
    HttpEndpoint answered;
    if (leader_) {
      answered = *leader_;
    } else if (auto parsed = HttpEndpoint::parse(response->endpoint)) {
      answered = *parsed;
    }
    if (response->status == 307 || response->status == 302) {
      // Not the leader: it did not act on the request, so sending it again is safe.
      const std::string location = response->header("location");
      HttpEndpoint next;
      std::string target;
      if (!parse_location(location, answered.scheme, next, target)) {
        return unexpected(bad("mesos " + answered.text + path + ": redirect to '" + location + "' is not a URL"));
      }
      if (++redirects > options_.max_redirects) {
        return unexpected(bad("mesos " + path + ": more than " + std::to_string(options_.max_redirects) +
                              " redirects (last to '" + location + "')"));
      }
      log_debug("mesos master '" + answered.text + "' is not the leader; following to '" + next.text + "'");
      leader_ = std::move(next);
      request.target = target;
      continue;
    }
    const std::string text = trimmed(response->body);
    if (response->status == 503 && (text.starts_with("No leader elected") ||
                                    text.starts_with("Master has not finished recovery"))) {
      log_info("mesos: " + text + "; retrying in " + std::to_string(backoff.next().count()) + " ms");
      if (!backoff.sleep()) {
        return unexpected(mesos_error(OutsideError::Kind::kNoLeader, 503,
                                     "mesos " + path + ": " + text + " (waited " +
                                         std::to_string(options_.leader_wait.count()) + " ms)"));
      }
      leader_.reset();
      request.target = path;
      redirects = 0;
      continue;
    }
    leader_ = answered;
    if (response->status >= 400) {
      return unexpected(mesos_error(OutsideError::Kind::kRefused, response->status,
                                   "mesos " + method + " " + path + ": HTTP " + std::to_string(response->status) +
                                       (text.empty() ? std::string() : ": " + text)));
    }
    return std::move(*response);
  }
}

Result<std::string, OutsideError> MesosMaster::call_api(const std::string& body, bool idempotent) {
  auto response = send("POST", "/api/v1", body, idempotent);
  if (!response) return unexpected(std::move(response).error());
  return std::move(response->body);
}

Result<std::string, OutsideError> MesosMaster::version() {
  auto response = send("GET", "/version", {}, true);
  if (!response) return unexpected(std::move(response).error());
  dom::object object;
  std::string_view version;
  if (parser_->parse(response->body).get(object) != simdjson::SUCCESS ||
      object["version"].get(version) != simdjson::SUCCESS) {
    return unexpected(bad("mesos /version: no \"version\" in the answer"));
  }
  return std::string(version);
}

Result<std::vector<MesosAgentInfo>, OutsideError> MesosMaster::agents() {
  auto body = call_api(R"({"type":"GET_AGENTS"})", true);
  if (!body) return unexpected(std::move(body).error());
  auto agents = parse_get_agents(*parser_, *body);
  if (!agents) return unexpected(bad("mesos " + agents.error()));
  return std::move(*agents);
}

Result<MaintenanceSchedule, OutsideError> MesosMaster::schedule() {
  auto response = send("GET", "/maintenance/schedule", {}, true);
  if (!response) return unexpected(std::move(response).error());
  auto schedule = parse_schedule(*parser_, response->body);
  if (!schedule) return unexpected(bad("mesos " + schedule.error()));
  return std::move(*schedule);
}

Result<void, OutsideError> MesosMaster::update_schedule(const MaintenanceSchedule& schedule) {
  auto response = send("POST", "/maintenance/schedule", schedule_json(schedule), false);
  if (!response) return unexpected(std::move(response).error());
  return {};
}

Result<MaintenanceStatus, OutsideError> MesosMaster::maintenance_status() {
  auto response = send("GET", "/maintenance/status", {}, true);
  if (!response) return unexpected(std::move(response).error());
  auto status = parse_maintenance_status(*parser_, response->body);
  if (!status) return unexpected(bad("mesos " + status.error()));
  return std::move(*status);
}

Result<void, OutsideError> MesosMaster::machines_down(const std::vector<MachineId>& machines) {
  auto response = send("POST", "/machine/down", machines_json(machines), false);
  if (!response) return unexpected(std::move(response).error());
  return {};
}

Result<void, OutsideError> MesosMaster::machines_up(const std::vector<MachineId>& machines) {
  auto response = send("POST", "/machine/up", machines_json(machines), false);
  if (!response) return unexpected(std::move(response).error());
  return {};
}

Result<void, OutsideError> MesosMaster::drain_agent(const std::string& agent_id,
                                                  std::optional<std::chrono::seconds> max_grace_period,
                                                  bool mark_gone) {
  // DRAIN_AGENT on a draining agent is accepted again: safe to repeat.
  auto response = call_api(drain_agent_json(agent_id, max_grace_period, mark_gone), true);
  if (!response) return unexpected(std::move(response).error());
  return {};
}

Result<void, OutsideError> MesosMaster::deactivate_agent(const std::string& agent_id) {
  auto response = call_api(agent_call_json("DEACTIVATE_AGENT", "deactivate_agent", agent_id), true);
  if (!response) return unexpected(std::move(response).error());
  return {};
}

Result<void, OutsideError> MesosMaster::reactivate_agent(const std::string& agent_id) {
  auto response = call_api(agent_call_json("REACTIVATE_AGENT", "reactivate_agent", agent_id), false);
  if (!response) return unexpected(std::move(response).error());
  return {};
}

}  // namespace skopos::driver
