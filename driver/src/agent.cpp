#include "driver/agent.h"

#include <algorithm>

#include "driver/local_drain_lock.h"
#include "skopos/cli_args.h"

namespace skopos::driver {

using Clock = std::chrono::steady_clock;

Agent::Agent(DrainSystems systems, AgentOptions options, RebootTriggers& triggers, AgentObserver& observer,
             const std::atomic<bool>& stop)
    : systems_(systems), options_(std::move(options)), triggers_(triggers), observer_(observer), stop_(stop) {
  options_.drain.kind = DrainKind::kReboot;
}

void Agent::run() {
  while (!stopping()) {
    observer_.alive();
    const AgentTurn turn = run_once();
    observer_.turn(turn);
    if (turn != AgentTurn::kFailed && turn != AgentTurn::kBusy) retry_wait_ = options_.retry;
    switch (turn) {
      case AgentTurn::kStopped: return;
      case AgentTurn::kRecovered: continue;  // look again at once: another request may wait
      case AgentTurn::kRebooting: {
        // The whole reboot wait, however often the triggers wake it: a request that
        // changes meanwhile (or a watch that is re-armed) must not run the reboot again.
        const auto until = Clock::now() + options_.reboot_wait;
        for (auto left = options_.reboot_wait; !stopping() && left > std::chrono::milliseconds::zero();
             left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now())) {
          wait(left);
        }
        if (!stopping()) {
          observer_.error("still running " + format_seconds(options_.reboot_wait) + " after the reboot command");
        }
        continue;
      }
      case AgentTurn::kGated: wait(gate_wait()); continue;
      case AgentTurn::kFailed:
      case AgentTurn::kBusy:
        // Soon at first (a budget refusal ends when other hosts are back), then less
        // often, up to the recheck.
        wait(std::min(retry_wait_, options_.recheck));
        retry_wait_ = std::min(retry_wait_ * 2, options_.recheck);
        continue;
      default: wait(options_.recheck);
    }
  }
}

std::chrono::milliseconds Agent::gate_wait() const {
  if (!gate_changes_) return options_.recheck;
  // A little past the change, so the gate's own clock is past it too.
  const auto until = std::chrono::ceil<std::chrono::milliseconds>(*gate_changes_ - std::chrono::system_clock::now()) +
                     std::chrono::milliseconds(100);
  return std::min(std::max(until, std::chrono::milliseconds(100)), options_.recheck);
}

AgentTurn Agent::gated(const StartGateVerdict& verdict) {
  gate_changes_ = verdict.next_change;
  // "outside window nights (tier): opens Tue 01:00 Europe/Berlin, in 3 h 12 min": said
  // again when it says something new, not every minute for its countdown -- and while
  // the same gate holds, at most every kRetell (a query's value may change at every
  // check, each second).
  const std::string told = verdict.reason.substr(0, verdict.reason.rfind(", in "));
  const auto now = Clock::now();
  if (told != gate_told_ && (verdict.gate != gate_told_gate_ || now - gate_told_at_ >= kRetell)) {
    observer_.status("reboot requested, waiting: " + verdict.reason);
    observer_.waiting(verdict.reason);
    gate_told_ = told;
    gate_told_gate_ = verdict.gate;
    gate_told_at_ = now;
  }
  // Out of the line while the gate is closed, or this host would hold up those behind.
  if (auto left = systems_.locks.leave_lines(); !left) observer_.warning("leave the line: " + left.error().message);
  return AgentTurn::kGated;
}

// No drain holds this host out, so no fence should be in place: one that is refuses new
// connections to its ports for no reason anyone tracks. iptables is read at most once
// per recheck (turns come sooner while a gate is closed or a drain is retried).
void Agent::look_for_a_fence() {
  const auto now = std::chrono::steady_clock::now();
  if (fence_looked_at_ && now - *fence_looked_at_ < options_.recheck) return;
  fence_looked_at_ = now;
  auto fenced = systems_.fence.fenced();
  if (!fenced) {
    if (!fence_unreadable_told_) observer_.warning("fence: cannot read it: " + fenced.error().message);
    fence_unreadable_told_ = true;
    observer_.fence_without_drain(std::nullopt);
    return;
  }
  fence_unreadable_told_ = false;
  if (!fenced->empty()) {
    // A `skopos drain` started by hand since this turn read the journal owns it.
    auto seen = Journal::inspect(options_.journal_path);
    std::string problem;
    if (!seen) {
      observer_.fence_without_drain(std::nullopt);
      return;
    }
    const bool draining = Drain::in_progress(*seen, &problem).has_value();
    if (draining || !problem.empty()) {
      observer_.fence_without_drain(problem.empty() ? std::optional(std::vector<std::uint16_t>{}) : std::nullopt);
      fence_looked_at_.reset();  // look again next turn
      return;
    }
  }
  observer_.fence_without_drain(*fenced);
}

void Agent::wait(std::chrono::milliseconds timeout) {
  triggers_.wait(timeout, stop_, [this] { observer_.alive(); });
}

AgentTurn Agent::run_once() {
  if (stopping()) return AgentTurn::kStopped;
  // Only a look: a `skopos drain` run by hand may be writing the journal right now.
  auto seen = Journal::inspect(options_.journal_path);
  if (!seen) {
    observer_.error("journal: " + seen.error().message());
    return AgentTurn::kBlocked;
  }
  std::string problem;
  const auto progress = Drain::in_progress(*seen, &problem);
  if (!problem.empty()) {
    observer_.error(problem + "; not draining until a person looks at it");
    observer_.fence_without_drain(std::nullopt);  // whether a drain owns a fence: unknown
    return AgentTurn::kBlocked;
  }
  // A drain in progress owns whatever fence there is; the first turn after it looks at
  // once.
  if (progress) {
    observer_.fence_without_drain(std::vector<std::uint16_t>{});
    fence_looked_at_.reset();
  }
  if (progress && progress->second.kind != DrainKind::kReboot) {
    if (!told_manual_) {
      observer_.status(std::string("a ") + drain_kind_token(progress->second.kind) +
                       " drain is in progress: no reboots until it is undrained");
    }
    told_manual_ = true;
    return AgentTurn::kBlocked;
  }
  told_manual_ = false;
  if (progress) return drain(progress->second.trigger);  // resume it, or recover after the boot

  look_for_a_fence();

  auto requested = triggers_.requested();
  if (!requested) {
    observer_.warning(requested.error());
    return AgentTurn::kIdle;
  }
  if (requested->empty()) {
    if (!gate_told_.empty()) observer_.status("no reboot requested any more");
    gate_told_.clear();
    gate_told_gate_.clear();
    // No request (cancelled while this host waited for its turn?): give up a place in
    // line an earlier try kept, or it would hold up those behind it.
    if (auto left = systems_.locks.leave_lines(); !left) {
      observer_.warning("leave the line: " + left.error().message);
    } else if (*left > 0) {
      observer_.status("no reboot requested any more: left the line for the reboot lock");
    }
    return AgentTurn::kIdle;
  }
  if (options_.drain.start_gate) {
    const StartGateVerdict gate = options_.drain.start_gate();
    if (!gate.open) return gated(gate);
  }
  gate_told_.clear();
  gate_told_gate_.clear();
  observer_.status("reboot requested (" + *requested + ")");
  return drain(*requested);
}

AgentTurn Agent::drain(const std::string& trigger) {
  // This host's drain lock for the whole drain: an operator's `skopos drain` waits.
  auto local = LocalDrainLock::take(options_.journal_path, false, std::chrono::milliseconds(0));
  if (!local) {
    observer_.warning(local.error().message());
    return AgentTurn::kBusy;
  }
  auto journal = Journal::open(options_.journal_path);  // ours now: repairs a torn line
  if (!journal) {
    observer_.error("journal: " + journal.error().message());
    return AgentTurn::kBlocked;
  }
  DrainOptions options = options_.drain;
  options.trigger = trigger;
  options.external_reboot = trigger.starts_with(kFleetLockTrigger);
  observer_.drain_started(options);
  Drain drain(systems_, *journal, options,
              [&](const DrainEvent& event) {
                observer_.drain_event(event);
                // The reboot is journaled: the request is used up before the command runs.
                if (event.type == DrainEvent::Type::kPhase && event.phase == DrainPhase::kReboot) {
                  if (auto consumed = triggers_.consumed(trigger); !consumed) observer_.warning(consumed.error());
                }
              },
              stop_);
  auto result = drain.run();
  observer_.drain_finished(result);
  if (!result) {
    if (result.error().kind == DrainError::Kind::kInterrupted) return AgentTurn::kStopped;
    if (result.error().kind == DrainError::Kind::kGated) {
      // The gate closed while this host waited for its slot: not a failure, a wait.
      StartGateVerdict now = options_.drain.start_gate ? options_.drain.start_gate() : StartGateVerdict{};
      if (now.open) now = {false, result.error().message, std::chrono::system_clock::now(), ""};  // look again soon
      return gated(now);
    }
    if (auto noted = triggers_.failed(trigger, result.error().message); !noted) observer_.warning(noted.error());
    observer_.status(
        "drain failed: " + result.error().message + "; trying again in " +
        std::to_string(
            std::chrono::duration_cast<std::chrono::seconds>(std::min(retry_wait_, options_.recheck)).count()) +
        " s");
    return AgentTurn::kFailed;
  }
  if (result->rebooting) {
    triggers_.rebooting(trigger);
    if (options.external_reboot) {
      observer_.status("drained and holding the slot: ready for the updater's reboot");
      return AgentTurn::kRebooting;
    }
    observer_.status("reboot command ran; waiting for the shutdown");
    return AgentTurn::kRebooting;
  }
  if (result->reached != DrainPhase::kDone) {
    // A REBOOT drain ends rebooting or recovered; anything else is a fault to look at.
    const std::string why = std::string("the drain ended in phase ") + drain_phase_name(result->reached) +
                            " without rebooting";
    if (auto noted = triggers_.failed(trigger, why); !noted) observer_.warning(noted.error());
    observer_.error(why);
    return AgentTurn::kFailed;
  }
  if (!result->rebooted) {
    // A drain that ended before its reboot (refused, timed out, or its gate closed) and
    // could not give its locks back then has given them back now. The host did not
    // reboot: the request stays, and its turn is not done.
    observer_.status("gave back the locks of a drain that ended before its reboot; the request stays");
    return AgentTurn::kFailed;
  }
  if (auto completed = triggers_.completed(result->facts.trigger); !completed) observer_.warning(completed.error());
  observer_.status("back in service after the reboot");
  return AgentTurn::kRecovered;
}

}  // namespace skopos::driver
