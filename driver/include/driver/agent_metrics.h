// AgentMetrics: why the reboot agent waits, as Prometheus text in a file for
// node_exporter's textfile collector (`skopos agent --agent-metrics-file`), beside the
// drain's own file (drain_metrics.h: what a drain in progress does). Every series is
// labelled host="...":
//
//   skopos_agent_info{tier}                      1
//   skopos_agent_gate_open{point,gate}           1 when the gate let the host go at its last
//                                                check, 0 when it held it
//   skopos_agent_gate_unknown{point,gate}        1 when it held it because it could not be
//                                                evaluated (unreachable, an error, a bad
//                                                answer): unknown is closed
//   skopos_agent_gate_checked_timestamp_seconds{point,gate}
//   skopos_agent_gate_unknown_checks_total{point,gate}  checks that could not evaluate it
//   skopos_agent_turn{turn}                      1 for what the last turn did (idle, gated,
//                                                blocked, ...), 0 for the others
//   skopos_agent_turns_total{turn}
//   skopos_agent_last_turn_timestamp_seconds
//   skopos_agent_notifications_total{destination,result}  notifications delivered,
//                                                undelivered (given up after every try)
//                                                or dropped (a full queue)
//   skopos_agent_sentinel_failures_total         runs of the reboot sentinel that gave no
//                                                answer (missing, failed, timed out, an exit
//                                                status other than 0 and 1) or asked again
//                                                after the reboot it asked for
//
// point: "start" (checked before the host takes its tier slot) or "release" (before a
// host back from its reboot gives the slot back). gate: "pause", "window", "soak",
// "query", "alerts" (gate_state.h). The gate series are there while the agent checks
// gates: a turn that checked none (no request; the journal or another driver holds
// the host) removes them, or a gate once unknown would look unknown for good.
//
// The file is written (whole, replacing the old one) at a check or a turn: at once when
// a value other than a time changed, otherwise when 15 s passed since the last write --
// no disk write per check. Not thread-safe: the agent's thread only.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "driver/agent.h"
#include "driver/gate_state.h"
#include "skopos/result.h"

namespace skopos::driver {

// "idle", "blocked", "busy", "failed", "rebooting", "recovered", "stopped", "gated".
std::string_view agent_turn_name(AgentTurn turn);

class AgentMetrics {
 public:
  AgentMetrics(std::string path, std::string host, std::string tier);

  // Each gate's state from a check at `point` ("start", "release").
  void gates(std::string_view point, const std::vector<GateState>& gates, std::int64_t now_seconds);
  void turn(AgentTurn turn, std::int64_t now_seconds);
  void sentinel_failures(std::uint64_t total);
  // What a turn without a drain in progress found fenced (agent.h): the gauge is 1 for a
  // fence nothing accounts for, 0 for none; absent while unknown or not yet looked at.
  void fence_without_drain(std::optional<bool> fenced);
  // A notification destination's totals (notifier.h): delivered, given up, dropped.
  void notifications(const std::string& destination, std::uint64_t delivered, std::uint64_t undelivered,
                     std::uint64_t dropped);

  std::string text() const;
  // Writes the file if a value changed since the last write, or 15 s passed; the error
  // names the file (the agent warns and goes on: metrics are how people watch it).
  Result<void, std::string> flush(std::int64_t now_seconds);

 private:
  struct Gate {
    bool open = false;
    bool unknown = false;
    std::int64_t checked = 0;
  };

  std::string path_;
  std::string host_;
  std::string tier_;
  std::map<std::pair<std::string, std::string>, Gate> gates_;  // (point, gate)
  std::map<std::pair<std::string, std::string>, std::uint64_t> unknown_checks_;
  std::map<AgentTurn, std::uint64_t> turns_;
  AgentTurn last_turn_ = AgentTurn::kIdle;
  bool turned_ = false;
  std::int64_t last_turn_at_ = 0;
  std::uint64_t sentinel_failures_ = 0;
  std::optional<bool> fence_without_drain_;
  std::map<std::string, std::array<std::uint64_t, 3>> notifications_;  // destination -> the three totals
  bool changed_ = true;
  std::int64_t written_ = 0;
};

}  // namespace skopos::driver
