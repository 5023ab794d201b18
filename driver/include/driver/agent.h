// Agent: the reboot agent's decision loop (`skopos agent`), apart from where reboot
// requests come from and how the agent shows what it does -- so the loop is tested with
// fakes (tests/unit/driver/agent_test.cpp) and many agents can run in one process.
//
// One turn (run_once):
//   1. look at the journal (only a look: a `skopos drain` run by hand may be writing
//      it). A journal that cannot be read, or holds a drain that cannot be resumed,
//      blocks the agent until a person looks at it;
//   2. a DRAIN or BOOSTER drain in progress blocks reboots until it is undrained; a
//      REBOOT drain in progress is resumed -- or recovered, after the boot -- with the
//      trigger it recorded;
//   3. otherwise a request ("file", "rolling:<id>") from the triggers starts one, if the
//      start gate (DrainOptions::start_gate: maintenance windows) is open. While it is
//      closed the host stays out of the tier's line and says why; the drain checks the
//      gate again once it holds its slot;
//   4. the drain runs holding this host's local drain lock. When its reboot phase is
//      journaled the request is consumed, before the reboot command runs, so the host
//      does not reboot twice for it; after recovery the triggers hear that the host is
//      back.
// run() takes turns until `stop`: after a turn that did nothing it waits `recheck` (or
// less, when the triggers see a change), after a failed one `retry`, doubling up to
// `recheck` while it keeps failing; after the reboot command it waits `reboot_wait` for
// the shutdown; while the start gate is closed, until the gate's next change (at most
// `recheck`).
//
// Owns no thread, no signal handler and no global state: the systems, the triggers, the
// observer and the stop flag are given to it. Not thread-safe; one per host.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "driver/drain.h"
#include "skopos/function_ref.h"
#include "skopos/result.h"

namespace skopos::driver {

// The trigger of a reboot the OS's updater asked for through FleetLock
// ("fleetlock:<client id>", fleetlock.h): its drain does not run the reboot command, the
// updater reboots once it hears the host is ready.
inline constexpr std::string_view kFleetLockTrigger = "fleetlock:";

// Where reboot requests come from: the trigger file and the tier's rolling reboot in
// `skopos agent` (WatchedRebootTriggers), a script in tests.
class RebootTriggers {
 public:
  virtual ~RebootTriggers() = default;
  // The request waiting for this host: "file", "rolling:<request id>", or "" for none.
  // An error (etcd away) is reported and counts as no request this turn.
  virtual Result<std::string, std::string> requested() = 0;
  // The drain journaled its reboot phase: the request is used up now, before the reboot
  // command runs.
  virtual Result<void, std::string> consumed(const std::string& trigger) = 0;
  // The host is back in service after the reboot `trigger` asked for.
  virtual Result<void, std::string> completed(const std::string& trigger) = 0;
  // A try at `trigger` failed (`why`); the agent tries again after its retry pause. For
  // `skopos rolling-reboot --status`, which shows the host as failed meanwhile.
  virtual Result<void, std::string> failed(const std::string& trigger, const std::string& why) = 0;
  // The drain's reboot step is done -- the slot checked, the reboot command run, or for
  // an external reboot the host ready for it (FleetLock answers 200 only from here on).
  virtual void rebooting(const std::string& /*trigger*/) {}
  // Returns when a request may have changed, after `timeout`, or soon after `stop` is
  // set; calls `alive` at least every 200 ms meanwhile.
  virtual void wait(std::chrono::milliseconds timeout, const std::atomic<bool>& stop, FunctionRef<void()> alive) = 0;
  // What is watched, for the agent's first status line.
  virtual std::string describe() const = 0;
};

// What one turn did.
enum class AgentTurn : std::uint8_t {
  kIdle,       // no request
  kBlocked,    // the journal, or a drain started by hand, holds reboots back
  kBusy,       // another driver holds this host's drain lock
  kFailed,     // the drain failed; the request stays and is tried again
  kRebooting,  // the reboot command ran: the host is going down
  kRecovered,  // back in service after the reboot
  kStopped,    // `stop` ended the drain at a safe point
  kGated,      // a request waits: the start gate is closed (a pause, a window, a health gate)
};

// How the agent shows what it does: log lines and systemd's STATUS and watchdog in
// `skopos agent`, a record in tests.
class AgentObserver {
 public:
  virtual ~AgentObserver() = default;
  // What the agent does now, for people.
  virtual void status(const std::string& text) = 0;
  // Passing trouble (the turn goes on or is tried again) and trouble that needs a person.
  virtual void warning(const std::string& text) = 0;
  virtual void error(const std::string& text) = 0;
  // A sign of life, at least every 200 ms while the agent waits.
  virtual void alive() = 0;
  // A drain starts (for `trigger`), reports, and ends. Its waits are bounded by its own
  // deadlines: busy, not hung.
  virtual void drain_started(const DrainOptions& options) = 0;
  virtual void drain_event(const DrainEvent& event) = 0;
  virtual void drain_finished(const Result<DrainResult, DrainError>& result) = 0;
  // What a turn of run() did.
  virtual void turn(AgentTurn /*turn*/) {}
  // A requested reboot waits on a closed start gate, for `reason` (said when it changes,
  // as status() is).
  virtual void waiting(const std::string& /*reason*/) {}
  // What a turn without a drain in progress found fenced: the ports of a fence nothing
  // accounts for (left behind by a drain whose journal is gone, or applied by hand), an
  // empty list for none, or nullopt when it could not be read (unknown: never "none").
  virtual void fence_without_drain(const std::optional<std::vector<std::uint16_t>>& /*ports*/) {}
};

struct AgentOptions {
  std::string journal_path;
  std::chrono::milliseconds recheck{std::chrono::seconds(60)};
  // After a failed drain (or another driver holding the host): the first retry, doubling
  // up to `recheck` while it keeps failing.
  std::chrono::milliseconds retry{std::chrono::seconds(10)};
  std::chrono::milliseconds reboot_wait{std::chrono::minutes(10)};
  DrainOptions drain;  // every drain's options; the kind is always REBOOT
};

class Agent {
 public:
  Agent(DrainSystems systems, AgentOptions options, RebootTriggers& triggers, AgentObserver& observer,
        const std::atomic<bool>& stop);

  // Takes turns until `stop`.
  void run();
  // One turn; never waits for a trigger (a drain it runs waits as drains do).
  AgentTurn run_once();

 private:
  AgentTurn drain(const std::string& trigger);
  // A closed gate: says why (once per reason), leaves the tier's line, and remembers when
  // to look again.
  AgentTurn gated(const StartGateVerdict& verdict);
  std::chrono::milliseconds gate_wait() const;
  // Reports a fence no drain accounts for (AgentObserver::fence_without_drain).
  void look_for_a_fence();
  void wait(std::chrono::milliseconds timeout);
  bool stopping() const { return stop_.load(std::memory_order_relaxed); }

  DrainSystems systems_;
  AgentOptions options_;
  RebootTriggers& triggers_;
  AgentObserver& observer_;
  const std::atomic<bool>& stop_;
  bool told_manual_ = false;  // the "drain in progress" status was given
  std::chrono::milliseconds retry_wait_ = options_.retry;  // the next wait after a failed turn
  static constexpr std::chrono::seconds kRetell{10};
  std::string gate_told_;  // the closed gate's reason last given, without its countdown
  std::string gate_told_gate_;  // and the gate that gave it
  std::chrono::steady_clock::time_point gate_told_at_{};
  std::optional<std::chrono::system_clock::time_point> gate_changes_;  // when the gate may open
  std::optional<std::chrono::steady_clock::time_point> fence_looked_at_;  // iptables last read
  bool fence_unreadable_told_ = false;
};

}  // namespace skopos::driver
