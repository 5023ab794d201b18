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
  if (request.method != "POST") {
    return unexpected(fleetlock_error(405, "method_not_allowed", "FleetLock calls are POST"));
  }
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
  if (id.empty() || id.size() > 256) {
    return unexpected(fleetlock_error(400, "invalid_body", "client_params.id: 1 to 256 characters"));
  }
  if (!valid_group(group)) {
    return unexpected(fleetlock_error(400, "invalid_body", "client_params.group must match ^[a-zA-Z0-9.-]+$"));
  }
  call.id = std::string(id);
  call.group = std::string(group);
  return call;
}

FleetLockService::FleetLockService(Options options) : options_(std::move(options)) {}

void FleetLockService::set_wake(std::function<void()> wake) {
  const std::lock_guard<std::mutex> lock(mutex_);
  wake_ = std::move(wake);
}

std::string FleetLockService::requested() {
  const std::lock_guard<std::mutex> lock(mutex_);
  if (!requested_.empty()) taken_up_ = true;
  return requested_;
}

void FleetLockService::taken(const std::string& trigger) {
  const std::lock_guard<std::mutex> lock(mutex_);
  if (requested_ == trigger) {
    requested_.clear();
    taken_up_ = false;
  }
}

void FleetLockService::ready(const std::string& trigger) {
  const std::lock_guard<std::mutex> lock(mutex_);
  if (trigger.starts_with(kFleetLockTrigger)) ready_ = trigger;
}

HttpServerResponse FleetLockService::handle(const HttpServerRequest& request) {
  auto call = parse_fleetlock(request);
  if (!call) return call.error();
  if (call->group != options_.group) {
    return fleetlock_error(409, "wrong_group", "this host's agent serves group '" + options_.group + "', not '" +
                                                   call->group + "' (the updater's fleet-lock group)");
  }
  const std::string mine = std::string(kFleetLockTrigger) + call->id;
  const bool pre = call->op == FleetLockCall::Op::kPreReboot;
  // The journal is read and the request decided under one lock, so a request the agent
  // is taking up cannot be withdrawn or made twice in between.
  const std::lock_guard<std::mutex> lock(mutex_);
  auto seen = Journal::inspect(options_.journal_path);
  if (!seen) return fleetlock_error(503, "journal_unreadable", "the agent's journal: " + seen.error().message());
  std::string problem;
  const auto progress = Drain::in_progress(*seen, &problem);
  if (!problem.empty()) return fleetlock_error(503, "journal_unreadable", problem);
  if (!progress) {
    if (!pre) {
      if (requested_ == mine && taken_up_) {
        return fleetlock_error(503, "draining", "the agent is starting the drain this client asked for");
      }
      if (requested_ == mine) requested_.clear();  // nothing held: a request not taken up is withdrawn
      return ok();
    }
    if (!requested_.empty() && requested_ != mine) {
      return fleetlock_error(409, "failed_lock_owned",
                             "a drain was asked for by client '" + requested_.substr(kFleetLockTrigger.size()) + "'");
    }
    if (requested_.empty()) {
      requested_ = mine;
      taken_up_ = false;
      if (wake_) wake_();  // once per request: the updater's polling does not rush the agent
    }
    return fleetlock_error(503, "draining", "drain requested: this host is drained before it may reboot");
  }
  const auto& [phase, facts] = *progress;
  if (!facts.trigger.starts_with(kFleetLockTrigger) || facts.trigger != mine) {
    if (!pre) return ok();  // this client holds nothing: unlocked
    if (!facts.trigger.starts_with(kFleetLockTrigger)) {
      return fleetlock_error(409, "failed_lock_busy", std::string("a ") + drain_kind_token(facts.kind) +
                                                          " drain for '" + facts.trigger + "' is in progress (phase " +
                                                          drain_phase_name(phase) + ")");
    }
    return fleetlock_error(409, "failed_lock_owned",
                           "the drain is held by client '" + facts.trigger.substr(kFleetLockTrigger.size()) + "'");
  }
  const JournalEntry& last = *seen->last();
  const bool rebooted =
      phase > DrainPhase::kReboot || (phase == DrainPhase::kReboot && last.boot_id != options_.boot_id);
  if (rebooted) {
    return fleetlock_error(503, "recovering",
                           std::string("recovering after the reboot: phase ") + drain_phase_name(phase));
  }
  // Ready: the reboot is journaled in this boot for a REBOOT drain holding its slot, and
  // the agent says its reboot step passed (the slot checked under its fencing token).
  const bool holds = facts.kind == DrainKind::kReboot && !facts.lock.empty() && last.fencing_token != 0;
  if (phase == DrainPhase::kReboot && holds && ready_ == mine) {
    if (pre) return ok();  // drained, holding the slot: reboot now
    return fleetlock_error(409, "reboot_pending",
                           "drained and waiting for the reboot; reboot, or run 'skopos undrain' to bring it back");
  }
  return fleetlock_error(503, "draining", std::string("draining: phase ") + drain_phase_name(phase));
}

}  // namespace skopos::driver
