#include "driver/fleetlock.h"

#include <simdjson.h>

#include <algorithm>

#include "driver/agent.h"
#include "driver/drain.h"
#include "driver/journal.h"
#include "skopos/json_writer.h"

namespace skopos::driver {

namespace {

bool valid_group(std::string_view group) {
  return !group.empty() && std::all_of(group.begin(), group.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
  });
}

HttpServerResponse ok() { return {200, "application/json", "{}\n"}; }

}  // namespace

HttpServerResponse fleetlock_error(unsigned status, const std::string& kind, const std::string& value) {
  std::string body;
  JsonWriter(body).begin_object().key("kind").value(kind).key("value").value(value).end_object();
  return {status, "application/json", body + "\n"};
}

Result<FleetLockCall, HttpServerResponse> parse_fleetlock(const HttpServerRequest& request) {
  FleetLockCall call;
  if (request.target == "/v1/pre-reboot") {
    call.op = FleetLockCall::Op::kPreReboot;
  } else if (request.target == "/v1/steady-state") {
    call.op = FleetLockCall::Op::kSteadyState;
  } else {
    return unexpected(fleetlock_error(404, "not_found", "'" + request.target.substr(0, 100) +
                                                            "' is not a FleetLock endpoint (/v1/pre-reboot, "
                                                            "/v1/steady-state)"));
  }
  if (request.method != "POST") return unexpected(fleetlock_error(405, "method_not_allowed", "FleetLock calls are POST"));
  const auto header = request.headers.find("fleet-lock-protocol");
  if (header == request.headers.end() || header->second != "true") {
    return unexpected(fleetlock_error(400, "missing_header", "the header 'fleet-lock-protocol: true' is required"));
  }
  simdjson::dom::parser parser;
  simdjson::dom::object params;
  std::string_view id;
  std::string_view group;
  if (parser.parse(request.body).get(params) != simdjson::SUCCESS) {
    return unexpected(fleetlock_error(400, "invalid_body", "the body is not a JSON object"));
  }
  simdjson::dom::object client;
  if (params["client_params"].get(client) != simdjson::SUCCESS || client["id"].get(id) != simdjson::SUCCESS ||
      client["group"].get(group) != simdjson::SUCCESS) {
    return unexpected(fleetlock_error(400, "invalid_body", "the body needs client_params.id and client_params.group"));
  }
  if (id.empty() || id.size() > 256) return unexpected(fleetlock_error(400, "invalid_body", "client_params.id: 1 to 256 characters"));
  if (!valid_group(group)) {
    return unexpected(fleetlock_error(400, "invalid_body", "client_params.group must match ^[a-zA-Z0-9.-]+$"));
  }
  call.id = std::string(id);
  call.group = std::string(group);
  return call;
}

FleetLockService::FleetLockService(Options options, std::function<void()> wake)
    : options_(std::move(options)), wake_(std::move(wake)) {}

std::string FleetLockService::requested() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return requested_;
}

void FleetLockService::taken(const std::string& trigger) {
  const std::lock_guard<std::mutex> lock(mutex_);
  if (requested_ == trigger) requested_.clear();
}

HttpServerResponse FleetLockService::handle(const HttpServerRequest& request) {
  auto call = parse_fleetlock(request);
  if (!call) return call.error();
  if (call->group != options_.group) {
    return fleetlock_error(409, "wrong_group", "this host's agent serves group '" + options_.group + "', not '" +
                                                   call->group + "' (the updater's fleet-lock group)");
  }
  const std::string mine = std::string(kFleetLockTrigger) + call->id;
  // What the drain has done, as the journal says (a read: the agent may be writing it).
  auto seen = Journal::inspect(options_.journal_path);
  if (!seen) return fleetlock_error(503, "journal_unreadable", "the agent's journal: " + seen.error().message());
  std::string problem;
  const auto progress = Drain::in_progress(*seen, &problem);
  if (!problem.empty()) return fleetlock_error(503, "journal_unreadable", problem);
  const bool pre = call->op == FleetLockCall::Op::kPreReboot;
  if (!progress) {
    if (!pre) {
      taken(mine);  // nothing held: unlocked, and a request not taken up is withdrawn
      return ok();
    }
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      if (!requested_.empty() && requested_ != mine) {
        return fleetlock_error(409, "failed_lock_owned",
                               "a drain was asked for by client '" + requested_.substr(kFleetLockTrigger.size()) + "'");
      }
      requested_ = mine;
    }
    wake_();
    return fleetlock_error(503, "draining", "drain requested: this host is drained before it may reboot");
  }
  const auto& [phase, facts] = *progress;
  if (!facts.trigger.starts_with(kFleetLockTrigger)) {
    if (!pre) return ok();  // this client holds nothing
    return fleetlock_error(409, "failed_lock_busy", std::string("a ") + drain_kind_token(facts.kind) + " drain for '" +
                                                        facts.trigger + "' is in progress (phase " +
                                                        drain_phase_name(phase) + ")");
  }
  if (facts.trigger != mine) {
    return fleetlock_error(409, "failed_lock_owned",
                           "the drain is held by client '" + facts.trigger.substr(kFleetLockTrigger.size()) + "'");
  }
  const bool rebooted = phase > DrainPhase::kReboot ||
                        (phase == DrainPhase::kReboot && seen->last()->boot_id != options_.boot_id);
  if (rebooted) return fleetlock_error(503, "recovering", std::string("recovering after the reboot: phase ") + drain_phase_name(phase));
  if (phase == DrainPhase::kReboot) {
    if (pre) return ok();  // drained, holding the slot: reboot now
    return fleetlock_error(409, "reboot_pending",
                           "drained and waiting for the reboot; reboot, or run 'skopos undrain' to bring it back");
  }
  return fleetlock_error(503, "draining", std::string("draining: phase ") + drain_phase_name(phase));
}

}  // namespace skopos::driver
