#include "driver/agent_metrics.h"

#include "driver/drain_metrics.h"
#include "skopos/prometheus_text.h"

namespace skopos::driver {

using prometheus::append_header;
using prometheus::append_label;

namespace {

constexpr AgentTurn kTurns[] = {AgentTurn::kIdle,      AgentTurn::kGated,     AgentTurn::kBlocked,
                                AgentTurn::kBusy,      AgentTurn::kFailed,    AgentTurn::kRebooting,
                                AgentTurn::kRecovered, AgentTurn::kStopped};

}  // namespace

std::string_view agent_turn_name(AgentTurn turn) {
  switch (turn) {
    case AgentTurn::kIdle: return "idle";
    case AgentTurn::kBlocked: return "blocked";
    case AgentTurn::kBusy: return "busy";
    case AgentTurn::kFailed: return "failed";
    case AgentTurn::kRebooting: return "rebooting";
    case AgentTurn::kRecovered: return "recovered";
    case AgentTurn::kStopped: return "stopped";
    case AgentTurn::kGated: return "gated";
  }
  return "?";
}

AgentMetrics::AgentMetrics(std::string path, std::string host, std::string tier)
    : path_(std::move(path)), host_(std::move(host)), tier_(std::move(tier)) {}

void AgentMetrics::gates(std::string_view point, const std::vector<GateState>& gates, std::int64_t now_seconds) {
  for (const GateState& state : gates) {
    Gate& gate = gates_[{std::string(point), state.gate}];
    changed_ = changed_ || gate.checked == 0 || gate.open != state.open || gate.unknown != state.unknown;
    gate.open = state.open;
    gate.unknown = state.unknown;
    gate.checked = now_seconds;
    std::uint64_t& unknown_checks = unknown_checks_[{std::string(point), state.gate}];
    if (state.unknown) ++unknown_checks;
  }
}

void AgentMetrics::turn(AgentTurn turn, std::int64_t now_seconds) {
  changed_ = changed_ || !turned_ || turn != last_turn_;
  // No gate was checked in this turn (no request, or something else holds the host):
  // their last states would be stale -- a gate left unknown would look unknown forever.
  if (turn == AgentTurn::kIdle || turn == AgentTurn::kBlocked || turn == AgentTurn::kBusy) {
    changed_ = changed_ || !gates_.empty();
    gates_.clear();
  }
  ++turns_[turn];
  last_turn_ = turn;
  turned_ = true;
  last_turn_at_ = now_seconds;
}

void AgentMetrics::notifications(const std::string& destination, std::uint64_t delivered, std::uint64_t undelivered,
                                 std::uint64_t dropped) {
  const std::array<std::uint64_t, 3> now{delivered, undelivered, dropped};
  auto& kept = notifications_[destination];
  changed_ = changed_ || kept != now;
  kept = now;
}

void AgentMetrics::sentinel_failures(std::uint64_t total) {
  changed_ = changed_ || total != sentinel_failures_;
  sentinel_failures_ = total;
}

void AgentMetrics::fence_without_drain(std::optional<bool> fenced) {
  changed_ = changed_ || fenced != fence_without_drain_;
  fence_without_drain_ = fenced;
}

std::string AgentMetrics::text() const {
  std::string out;
  // name{host="..",<labels>} value
  const auto sample = [&](std::string_view name,
                          std::initializer_list<std::pair<std::string_view, std::string_view>> labels, auto value) {
    out += name;
    out += '{';
    append_label(out, "host", host_, true);
    for (const auto& [label, text] : labels) append_label(out, label, text, false);
    out += "} ";
    out += std::to_string(value);
    out += '\n';
  };
  append_header(out, "skopos_agent_info", "gauge", "The reboot agent this file describes (its labels); always 1.");
  sample("skopos_agent_info", {{"tier", tier_}}, 1);

  const auto per_gate = [&](std::string_view name, std::string_view type, std::string_view help, auto value) {
    if (gates_.empty()) return;
    append_header(out, name, type, help);
    for (const auto& [key, gate] : gates_) sample(name, {{"point", key.first}, {"gate", key.second}}, value(gate));
  };
  per_gate("skopos_agent_gate_open", "gauge",
           "1 when the gate let the host go at its last check, 0 when it held it (point: start, before the host takes "
           "its slot; release, before it gives it back).",
           [](const Gate& g) { return g.open ? 1 : 0; });
  per_gate("skopos_agent_gate_unknown", "gauge",
           "1 when the gate held the host because it could not be evaluated (unreachable, an error, a bad answer).",
           [](const Gate& g) { return g.unknown ? 1 : 0; });
  per_gate("skopos_agent_gate_checked_timestamp_seconds", "gauge", "When the gate was last checked (Unix time).",
           [](const Gate& g) { return g.checked; });
  if (!unknown_checks_.empty()) {  // a counter: kept while the gate series come and go
    append_header(out, "skopos_agent_gate_unknown_checks_total", "counter", "Checks that could not evaluate the gate.");
    for (const auto& [key, count] : unknown_checks_) {
      sample("skopos_agent_gate_unknown_checks_total", {{"point", key.first}, {"gate", key.second}}, count);
    }
  }

  if (turned_) {
    append_header(out, "skopos_agent_turn", "gauge", "1 for what the agent's last turn did, 0 for the others.");
    for (const AgentTurn turn : kTurns)
      sample("skopos_agent_turn", {{"turn", agent_turn_name(turn)}}, turn == last_turn_ ? 1 : 0);
    append_header(out, "skopos_agent_turns_total", "counter", "Turns of the agent's loop, by what they did.");
    for (const AgentTurn turn : kTurns) {
      const auto it = turns_.find(turn);
      sample("skopos_agent_turns_total", {{"turn", agent_turn_name(turn)}}, it == turns_.end() ? 0 : it->second);
    }
    append_header(out, "skopos_agent_last_turn_timestamp_seconds", "gauge",
                  "When the agent last took a turn (Unix time).");
    sample("skopos_agent_last_turn_timestamp_seconds", {}, last_turn_at_);
  }
  if (!notifications_.empty()) {
    append_header(out, "skopos_agent_notifications_total", "counter",
                  "Notifications by destination: delivered, undelivered (given up after every try) or dropped (a "
                  "full queue).");
    for (const auto& [destination, totals] : notifications_) {
      std::size_t i = 0;
      for (const char* result : {"delivered", "undelivered", "dropped"}) {
        sample("skopos_agent_notifications_total", {{"destination", destination}, {"result", result}}, totals[i++]);
      }
    }
  }
  if (fence_without_drain_) {
    append_header(out, "skopos_agent_fence_without_drain", "gauge",
                  "1 when the host is fenced (new connections to its ports refused) while no drain holds it out: "
                  "a fence left behind or applied by hand; 0 when not. Absent while it cannot be read.");
    sample("skopos_agent_fence_without_drain", {}, *fence_without_drain_ ? 1 : 0);
  }
  append_header(out, "skopos_agent_sentinel_failures_total", "counter",
                "Runs of the reboot sentinel that gave no answer (missing, failed, timed out, an exit status other "
                "than 0 and 1) or asked again after the reboot it asked for; none of them asks for a reboot.");
  sample("skopos_agent_sentinel_failures_total", {}, sentinel_failures_);
  return out;
}

Result<void, std::string> AgentMetrics::flush(std::int64_t now_seconds) {
  if (!changed_ && now_seconds - written_ < 15) return {};
  if (auto written = write_metrics_file(path_, text()); !written) return written;
  changed_ = false;
  written_ = now_seconds;
  return {};
}

}  // namespace skopos::driver
