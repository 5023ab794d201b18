// MesosMaster: the Mesos master's maintenance endpoints and operator API v1, as the
// upstream master behaves (../shared/fixtures/mesos-master):
//
//  * Leader finding: a non-leading master answers 307 with a scheme-less
//    `Location: //host:port/path`; the request (POST body included) is sent again there
//    with the original scheme, and that master is used from then on. 503
//    "No leader elected" (and "Master has not finished recovery") is retried with backoff
//    until `leader_wait` passes.
//  * Error bodies are plain text and become the error's message; state-changing calls
//    answer 200 with an empty body.
//  * int64 nanoseconds are read as integers, never through a double (they exceed 2^53).
//  * Empty lists are omitted by the master: absent means empty.
//  * A machine is hostname AND ip exactly as the agent registered; the ip comes from the
//    agent's pid ("slave(1)@10.0.0.5:5051").
//
// Not thread-safe: one client per thread.
#pragma once

#include <chrono>
#include <cstdint>
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

struct MachineId {
  std::string hostname;
  std::string ip;
  // Mesos compares host names case-insensitively.
  bool operator==(const MachineId& other) const;
  std::string text() const;  // {"hostname":"a","ip":"10.0.0.1"}, as the master prints it
};

struct MaintenanceWindow {
  std::vector<MachineId> machines;
  std::int64_t start_ns = 0;                // unix time in nanoseconds
  std::optional<std::int64_t> duration_ns;  // absent: open-ended
};

struct MaintenanceSchedule {
  std::vector<MaintenanceWindow> windows;
  // The window that holds `machine`, or nullptr.
  const MaintenanceWindow* find(const MachineId& machine) const;
};

struct MaintenanceStatus {
  std::vector<MachineId> draining;
  std::vector<MachineId> down;
};

struct MesosAgentInfo {
  enum class DrainState : std::uint8_t { kNone, kDraining, kDrained };
  std::string id;
  std::string hostname;
  std::string ip;  // from the pid
  std::uint16_t port = 0;
  bool active = false;
  bool deactivated = false;
  DrainState drain = DrainState::kNone;
  std::string version;
  std::vector<std::string> capabilities;
  std::int64_t registered_ns = 0;

  MachineId machine() const { return MachineId{hostname, ip}; }
};

struct MesosMasterOptions {
  HttpOptions http;  // the masters (any of them), deadlines, TLS, credentials
  std::chrono::milliseconds leader_wait{30000};
  int max_redirects = 4;
};

class MesosMaster {
 public:
  static Result<std::unique_ptr<MesosMaster>, OutsideError> create(MesosMasterOptions options);
  ~MesosMaster();

  // GET /version: "1.11.0".
  Result<std::string, OutsideError> version();
  // Operator API GET_AGENTS.
  Result<std::vector<MesosAgentInfo>, OutsideError> agents();
  // GET /maintenance/schedule (the one cluster-wide schedule).
  Result<MaintenanceSchedule, OutsideError> schedule();
  // POST /maintenance/schedule: REPLACES the whole schedule.
  Result<void, OutsideError> update_schedule(const MaintenanceSchedule& schedule);
  // GET /maintenance/status.
  Result<MaintenanceStatus, OutsideError> maintenance_status();
  // POST /machine/down (only from DRAINING) and /machine/up (only from DOWN).
  Result<void, OutsideError> machines_down(const std::vector<MachineId>& machines);
  Result<void, OutsideError> machines_up(const std::vector<MachineId>& machines);
  // Operator API (Mesos 1.9+).
  Result<void, OutsideError> drain_agent(const std::string& agent_id, std::optional<std::chrono::seconds> max_grace_period,
                                       bool mark_gone);
  Result<void, OutsideError> deactivate_agent(const std::string& agent_id);
  Result<void, OutsideError> reactivate_agent(const std::string& agent_id);

  // The master that answered last (the leader, once found).
  std::string leader() const;

 private:
  explicit MesosMaster(MesosMasterOptions options, std::unique_ptr<HttpClient> http);
  // Sends to the leader, following redirects and waiting out "no leader".
  Result<HttpResponse, OutsideError> send(const std::string& method, const std::string& path, const std::string& body,
                                        bool idempotent);
  Result<std::string, OutsideError> call_api(const std::string& body, bool idempotent);

  MesosMasterOptions options_;
  std::unique_ptr<HttpClient> http_;
  std::optional<HttpEndpoint> leader_;
  std::unique_ptr<simdjson::dom::parser> parser_;
};

// Pure schedule edits, for read-modify-write of the one cluster-wide schedule.
// `machine` in its own window [start, start + duration), removed from any other.
MaintenanceSchedule with_window(const MaintenanceSchedule& schedule, const MachineId& machine, std::int64_t start_ns,
                                std::optional<std::int64_t> duration_ns);
// `machine` removed; windows left empty are dropped.
MaintenanceSchedule without_machine(const MaintenanceSchedule& schedule, const MachineId& machine);

// Parsers, exposed for the fixture tests. Errors name the field.
Result<MaintenanceSchedule, std::string> parse_schedule(simdjson::dom::parser& parser, std::string_view json);
Result<MaintenanceStatus, std::string> parse_maintenance_status(simdjson::dom::parser& parser, std::string_view json);
Result<std::vector<MesosAgentInfo>, std::string> parse_get_agents(simdjson::dom::parser& parser, std::string_view json);
std::string schedule_json(const MaintenanceSchedule& schedule);
// The request bodies we send, exposed to compare with the documented requests.
std::string machines_json(const std::vector<MachineId>& machines);
std::string drain_agent_json(const std::string& agent_id, std::optional<std::chrono::seconds> max_grace_period,
                             bool mark_gone);
std::string agent_call_json(const char* type, const char* field, const std::string& agent_id);

}  // namespace skopos::driver
