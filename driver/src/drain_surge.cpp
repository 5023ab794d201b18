// The drain's surge: an app's replacements started before its tasks here stop, and
// exactly what was added taken back once they are gone (see drain.h, "surge").
//
// Marathon's count of an app is shared: the operator sets it, and the drains of several
// hosts may each add to it at once. The surge ledger (etcd, SurgeLedger) says which part
// is whose: `expected`, the count the drains set, what each host added (`hosts`), and
// what each host's scale-back is taking away (`leaving`). Every change is a
// compare-and-swap on the ledger first, then Marathon:
//
//  * up: this host's part goes into `hosts` and `expected`, then the PUT of `expected`.
//    PUTs are absolute, so the last writer's carries every part, and a drain that finds
//    Marathon below the ledger (a PUT not made yet: another's in flight, or its own
//    before a crash) sends `expected` again. A PUT waits while a scale-back is in flight
//    (it would undo that one's decrement);
//  * back: one host at a time, and only while Marathon is at `expected` (no PUT in
//    flight), this host's part moves to `leaving` with the count it ends at; its tasks
//    here (those the drain journaled) are killed with scale, the rest of the part (tasks
//    Marathon no longer lists) goes by a PUT, and once Marathon is at that count the part
//    leaves `leaving` and `expected`.
//
// Marathon at a count the ledger does not explain was set by someone else: the
// operator's count stands, every host's part in it becomes 0 (none scales back).
//
// Journal: the surges are facts, journaled with the budget ("planned") before any
// change; "up" once this host's part is in the ledger and in Marathon; "killing" before
// the kill with scale is sent; "down" once it is out of both. A drain resumed in either
// phase reads the ledger and Marathon, never guesses, so a crash anywhere gives one
// scale-up and one scale-back.
#include <algorithm>
#include <thread>

#include "driver/drain.h"

namespace skopos::driver {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kSurgePoll = 250ms;

std::string count_text(std::int64_t n) { return std::to_string(n) + (n == 1 ? " instance" : " instances"); }

// The operator's count stands: every part in it is 0 (nobody scales it back); the
// scale-backs in flight finish by themselves.
SurgeLedger absorbed(const SurgeLedger& ledger, std::int64_t instances) {
  SurgeLedger next = ledger;
  for (auto& [host, added] : next.hosts) added = 0;
  next.expected = instances + SurgeLedger::sum(ledger.leaving);
  return next;
}

}  // namespace

Result<std::vector<DrainFacts::Surge>, std::string> Drain::surge_plan(const HostTasks& tasks) const {
  std::vector<DrainFacts::Surge> out;
  for (const HostTasks::App& app : tasks.apps) {
    bool on = options_.surge;
    if (const auto label = app.labels.find(options_.surge_label); label != app.labels.end()) {
      if (label->second == "true") {
        on = true;
      } else if (label->second == "false") {
        on = false;
      } else {
        return unexpected("app '" + app.id + "': label " + options_.surge_label + "='" + label->second +
                          "' is neither true nor false");
      }
    }
    if (on && !app.task_ids.empty()) {
      out.push_back(DrainFacts::Surge{app.id, static_cast<std::int64_t>(app.task_ids.size()), "planned"});
    }
  }
  return out;
}

Result<void, DrainError> Drain::surge() {
  if (facts_.surges.empty() || !systems_.marathon.configured()) return {};
  const auto deadline = Clock::now() + options_.surge_timeout;
  for (DrainFacts::Surge& s : facts_.surges) {
    if (s.state != "planned") continue;
    if (auto up = surge_up(s, deadline); !up) return up;
    if (auto recorded = record(DrainPhase::kSurge); !recorded) return recorded;
  }
  return surge_wait(deadline);
}

Result<void, DrainError> Drain::surge_pause(const std::string& why, Clock::time_point deadline) {
  if (Clock::now() + kSurgePoll >= deadline) return drain_error(DrainError::Kind::kTimedOut, "surge: " + why);
  std::this_thread::sleep_for(kSurgePoll);
  return {};
}

Result<void, DrainError> Drain::surge_up(DrainFacts::Surge& s, Clock::time_point deadline) {
  const std::string& host = options_.hostname;
  const auto changed = [&](std::int64_t instances, std::int64_t expected) {
    emit(DrainEvent::Type::kWarning, "surge: '" + s.app + "' is at " + count_text(instances) + ", not the " +
                                         std::to_string(expected) +
                                         " the drains set: the operator's count stands, no host scales it back");
  };
  for (;;) {
    if (stopping()) return drain_error(DrainError::Kind::kInterrupted, "stopped while scaling '" + s.app + "' up");
    auto ledger = systems_.locks.surge_ledger(s.app);
    if (!ledger) return unexpected(std::move(ledger).error());
    auto app = systems_.marathon.surge_app(s.app, host, {});
    if (!app) return unexpected(std::move(app).error());
    if (!app->exists) {
      emit(DrainEvent::Type::kWarning, "surge: app '" + s.app + "' no longer exists: nothing to scale");
      s.state = "down";
      return {};
    }
    const auto mine = ledger->hosts.find(host);
    if (mine == ledger->hosts.end()) {
      // This host's part goes into the ledger first, on top of the count in force.
      SurgeLedger next = *ledger;
      if (ledger->empty()) {
        next.expected = app->instances;
      } else if (!ledger->explains(app->instances)) {
        changed(app->instances, ledger->expected);
        next = absorbed(*ledger, app->instances);
      }
      next.hosts[host] = s.added;
      next.expected += s.added;
      auto written = systems_.locks.write_surge_ledger(s.app, *ledger, next);
      if (!written) return unexpected(std::move(written).error());
      continue;  // read again: written, or changed meanwhile
    }
    if (app->instances == ledger->expected) {
      s.state = "up";
      emit(DrainEvent::Type::kInfo, "surge: '" + s.app + "' at " + count_text(app->instances) + " (" +
                                        std::to_string(mine->second) + " for this host)");
      return {};
    }
    if (!ledger->explains(app->instances)) {
      // Changed by someone else after this host's part was written.
      changed(app->instances, ledger->expected);
      auto written = systems_.locks.write_surge_ledger(s.app, *ledger, absorbed(*ledger, app->instances));
      if (!written) return unexpected(std::move(written).error());
      continue;
    }
    if (!ledger->leaving.empty()) {
      // A PUT now would undo the decrement of a scale-back in flight.
      if (auto paused = surge_pause("'" + s.app + "': another host's scale-back did not finish", deadline); !paused) {
        return paused;
      }
      continue;
    }
    emit(DrainEvent::Type::kInfo, "surge: scaling '" + s.app + "' from " + std::to_string(app->instances) + " to " +
                                      std::to_string(ledger->expected) + " (" + std::to_string(s.added) +
                                      " for this host's tasks)");
    auto scaled = systems_.marathon.scale(s.app, ledger->expected, false);
    if (!scaled) return unexpected(std::move(scaled).error());
    if (!*scaled) {
      // A deployment holds the app (another's restart, another host's surge): it ends by
      // itself, or the surge's deadline does.
      if (auto paused = surge_pause("app '" + s.app + "' stayed locked by a deployment; not scaled", deadline);
          !paused) {
        return paused;
      }
    }
    // Read back: the PUT is proven by the count, not by its answer.
  }
}

Result<void, DrainError> Drain::surge_wait(Clock::time_point deadline) {
  // Ready when every surging app has all its instances that are not on this host (nor on
  // a host draining now) healthy, and the budget holds without this host.
  const auto since = Clock::now();
  auto next_report = since;
  std::chrono::milliseconds next_stuck = options_.stuck_after;
  bool told = false;
  for (;;) {
    if (stopping()) {
      return drain_error(DrainError::Kind::kInterrupted,
                         "stopped while waiting for the surge's replacements; run again to resume, or undrain");
    }
    auto draining = draining_now();
    if (!draining) return unexpected(std::move(draining).error());
    std::string waiting;
    for (const DrainFacts::Surge& s : facts_.surges) {
      if (s.state != "up") continue;
      auto app = systems_.marathon.surge_app(s.app, options_.hostname, draining->hostnames);
      if (!app) return unexpected(std::move(app).error());
      if (!app->exists) continue;
      const std::int64_t needed = app->instances - static_cast<std::int64_t>(app->here.size()) - app->on_draining;
      if (app->healthy_elsewhere < needed) {
        waiting += (waiting.empty() ? "" : ", ") + s.app + " " + std::to_string(app->healthy_elsewhere) + "/" +
                   std::to_string(needed) + " healthy elsewhere";
      }
    }
    if (waiting.empty()) {
      auto shortfalls = systems_.marathon.budget(options_.hostname, draining->hostnames);
      if (!shortfalls) return unexpected(std::move(shortfalls).error());
      for (const AppShortfall& s : *shortfalls) {
        const bool surged = std::any_of(facts_.surges.begin(), facts_.surges.end(),
                                        [&](const DrainFacts::Surge& f) { return f.app == s.app_id; });
        if (surged) {
          waiting += (waiting.empty() ? "" : ", ") + s.app_id + " " + std::to_string(s.healthy_elsewhere) +
                     " healthy elsewhere, needs " + std::to_string(s.required);
        }
      }
    }
    if (waiting.empty()) {
      emit(DrainEvent::Type::kInfo,
           "surge: the replacements are healthy on other hosts (" +
               std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count()) +
               " ms)");
      return {};
    }
    if (!told || Clock::now() >= next_report) {
      emit(DrainEvent::Type::kInfo, "surge: waiting for the replacements: " + waiting,
           told ? std::map<std::string, std::string>{} : std::map<std::string, std::string>{{"notify", "waiting"}});
      told = true;
      next_report = Clock::now() + options_.progress_interval;
    }
    stuck_check(since, next_stuck, "waiting for the surge's replacements", waiting);
    if (auto paused = surge_pause("the replacements were not healthy elsewhere within the surge timeout (" + waiting +
                                      "; no host could take them?)",
                                  deadline);
        !paused) {
      return paused;
    }
  }
}

Result<Drain::SurgeDown, DrainError> Drain::surge_down(const DrainFacts::Surge& s, bool may_kill_here,
                                                       std::vector<std::string>& here, Clock::time_point deadline) {
  const std::string& host = options_.hostname;
  const auto wait = [&](const std::string& why) { return surge_pause("'" + s.app + "': " + why, deadline); };
  for (;;) {
    if (stopping()) return drain_error(DrainError::Kind::kInterrupted, "stopped while scaling '" + s.app + "' back");
    auto ledger = systems_.locks.surge_ledger(s.app);
    if (!ledger) return unexpected(std::move(ledger).error());
    auto app = systems_.marathon.surge_app(s.app, host, {});
    if (!app) return unexpected(std::move(app).error());
    if (!app->exists) return SurgeDown::kDone;
    if (const auto mine = ledger->hosts.find(host); mine != ledger->hosts.end()) {
      SurgeLedger next = *ledger;
      next.hosts.erase(host);
      if (mine->second > 0) {
        if (!ledger->leaving.empty()) {
          // One scale-back at a time: another's decrements and ours could not be told apart.
          if (auto paused = wait("another host's scale-back is in flight"); !paused) return unexpected(paused.error());
          continue;
        }
        if (app->instances == ledger->expected) {
          next.leaving[host] = mine->second;  // from now on nobody PUTs until it is done
          next.back_to = app->instances - mine->second;
        } else if (ledger->explains(app->instances)) {
          // A scale-up that did not land (this host's own before a crash, or another's):
          // landed first, so the count is what the ledger says.
          auto scaled = systems_.marathon.scale(s.app, ledger->expected, false);
          if (!scaled) return unexpected(std::move(scaled).error());
          if (!*scaled) {
            if (auto paused = wait("stayed locked by a deployment"); !paused) return unexpected(paused.error());
          }
          continue;
        } else {
          emit(DrainEvent::Type::kWarning, "surge: '" + s.app + "' is at " + count_text(app->instances) +
                                               ", not the " + std::to_string(ledger->expected) +
                                               " the drains set: the operator's count stands, not scaled back");
          next = absorbed(*ledger, app->instances);
          next.hosts.erase(host);
        }
      }
      auto written = systems_.locks.write_surge_ledger(s.app, *ledger, next);
      if (!written) return unexpected(std::move(written).error());
      continue;
    }
    const auto leaving = ledger->leaving.find(host);
    if (leaving == ledger->leaving.end()) {
      emit(DrainEvent::Type::kInfo, "surge: '" + s.app + "' at " + count_text(app->instances));
      return SurgeDown::kDone;
    }
    const std::int64_t part = leaving->second;
    const std::int64_t target = ledger->back_to;
    if (app->instances <= target) {
      // Landed: out of the ledger; the PUTs it held back may go.
      SurgeLedger next = *ledger;
      next.leaving.clear();
      next.back_to = 0;
      next.expected -= part;
      auto written = systems_.locks.write_surge_ledger(s.app, *ledger, next);
      if (!written) return unexpected(std::move(written).error());
      continue;
    }
    // This host's tasks the drain took out (journaled at the budget) that Marathon still
    // lists: killed with scale, the app shrinks with them and nothing serving elsewhere
    // is killed. Marathon lowers the count the moment it takes the kill.
    std::vector<std::string> listed;
    for (const std::string& id : app->here) {
      if (std::find(facts_.tasks.begin(), facts_.tasks.end(), id) != facts_.tasks.end()) listed.push_back(id);
    }
    if (may_kill_here && !listed.empty()) {
      if (s.state == "killing" && app->instances < target + part) {
        // Our kill (journaled before it was sent) reached Marathon: its tasks go by
        // themselves; a second kill would shrink the app twice.
        if (auto paused = wait("this host's tasks killed with scale are still listed"); !paused) {
          return unexpected(paused.error());
        }
        continue;
      }
      const auto n = std::min<std::size_t>(static_cast<std::size_t>(app->instances - target), listed.size());
      here.assign(listed.begin(), listed.begin() + static_cast<std::ptrdiff_t>(n));
      return SurgeDown::kKillHere;
    }
    // Nothing of this host's to kill (gone, or serving: an undrain): a PUT of the count it
    // ends at -- nothing else changes the count while a scale-back is in flight.
    emit(DrainEvent::Type::kInfo, "surge: scaling '" + s.app + "' back from " + std::to_string(app->instances) +
                                      " to " + std::to_string(target));
    // force on an undrain: the surge's own deployment may still wait for a host.
    auto scaled = systems_.marathon.scale(s.app, target, !may_kill_here);
    if (!scaled) return unexpected(std::move(scaled).error());
    if (!*scaled) {
      if (auto paused = wait("stayed locked by a deployment; not scaled back"); !paused) {
        return unexpected(paused.error());
      }
    }
  }
}

Result<void, DrainError> Drain::surges_down(bool may_kill_here) {
  const auto deadline =
      Clock::now() + std::max<std::chrono::milliseconds>(options_.surge_timeout, options_.leader_wait);
  for (DrainFacts::Surge& s : facts_.surges) {
    if (s.state == "down") continue;
    for (int round = 0;; ++round) {
      std::vector<std::string> here;
      auto down = surge_down(s, may_kill_here, here, deadline);
      if (!down) return unexpected(std::move(down).error());
      if (*down == SurgeDown::kDone) break;
      if (round == 3) {
        return drain_error(DrainError::Kind::kFailed, "surge: killing this host's tasks of '" + s.app +
                                                          "' with scale did not bring it back to its count");
      }
      emit(DrainEvent::Type::kInfo, "surge: killing this host's " + std::to_string(here.size()) + " task(s) of '" +
                                        s.app + "' with scale");
      // Journaled first: a drain resumed while the kill is in flight waits for it rather
      // than sending a second one (Marathon would shrink the app twice).
      s.state = "killing";
      if (auto recorded = record(phase_); !recorded) return recorded;
      auto killed = systems_.marathon.release_tasks(here, deadline, true);
      if (!killed) return unexpected(std::move(killed).error());
      // Gone from Marathon's list: the kill, and with it the decrement, landed; the next
      // round takes the part out of the ledger.
    }
    s.state = "down";
    if (auto recorded = record(phase_); !recorded) return recorded;
  }
  return {};
}

Result<void, DrainError> Drain::surge_back() {
  if (!systems_.marathon.configured()) return {};
  // The drain stopped before its release-tasks finished: its tasks here may serve again
  // (unfenced just before), unless it got as far as stopping them.
  bool stopped_here = false;
  for (const JournalEntry& entry : journal_.entries()) {
    DrainPhase phase = DrainPhase::kHostLock;
    if (entry.drain_id == drain_id_ && parse_drain_phase(entry.phase, phase) && phase >= DrainPhase::kStop &&
        phase <= DrainPhase::kReboot) {
      stopped_here = true;
    }
  }
  return surges_down(stopped_here);
}

}  // namespace skopos::driver
