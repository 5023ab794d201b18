#include "driver/maintenance_scheduler.h"

#include "skopos/log.h"

namespace skopos::driver {

namespace {

MaintenanceError mesos_error(const char* what, const OutsideError& error) {
  return MaintenanceError{MaintenanceError::Kind::kMesos, error.status, std::string(what) + ": " + error.message};
}

}  // namespace

MaintenanceScheduler::MaintenanceScheduler(MesosMaster& master, LockService& locks,
                                           MaintenanceSchedulerOptions options)
    : master_(master), locks_(locks), options_(std::move(options)) {}

Result<MaintenanceSchedule, MaintenanceError> MaintenanceScheduler::schedule(const std::vector<MachineId>& machines,
                                                                             std::int64_t start_ns,
                                                                             std::optional<std::int64_t> duration_ns) {
  const auto change = [&](const MaintenanceSchedule& current) {
    MaintenanceSchedule next = current;
    for (const MachineId& machine : machines) next = without_machine(next, machine);
    next.windows.push_back(MaintenanceWindow{machines, start_ns, duration_ns});
    return next;
  };
  const auto applied = [&](const MaintenanceSchedule& read) {
    for (const MachineId& machine : machines) {
      const MaintenanceWindow* window = read.find(machine);
      if (window == nullptr || window->start_ns != start_ns || window->duration_ns != duration_ns) return false;
    }
    return true;
  };
  return edit("schedule maintenance", change, applied);
}

Result<MaintenanceSchedule, MaintenanceError> MaintenanceScheduler::cancel(const std::vector<MachineId>& machines) {
  const auto change = [&](const MaintenanceSchedule& current) {
    MaintenanceSchedule next = current;
    for (const MachineId& machine : machines) next = without_machine(next, machine);
    return next;
  };
  const auto applied = [&](const MaintenanceSchedule& read) {
    for (const MachineId& machine : machines) {
      if (read.find(machine) != nullptr) return false;
    }
    return true;
  };
  return edit("cancel maintenance", change, applied);
}

Result<MaintenanceSchedule, MaintenanceError> MaintenanceScheduler::edit(
    const char* what, FunctionRef<MaintenanceSchedule(const MaintenanceSchedule&)> change,
    FunctionRef<bool(const MaintenanceSchedule&)> applied) {
  auto held = locks_.acquire(options_.lock, options_.group, "SCHEDULE",
                             std::chrono::steady_clock::now() + options_.lock_wait);
  if (!held) {
    return unexpected(MaintenanceError{MaintenanceError::Kind::kLock, 0,
                                       std::string(what) + ": the schedule lock: " + held.error().message});
  }
  // Whatever happens below, the lock goes back (a failed release is logged: the slot is
  // this machine's and the next edit re-acquires it as a no-op).
  struct Release {
    LockService& locks;
    const MaintenanceSchedulerOptions& options;
    std::int64_t fencing;
    ~Release() {
      if (auto released = locks.release(options.lock, options.group, fencing); !released) {
        log_warning("could not release the maintenance schedule lock: " + released.error().message);
      }
    }
  } release{locks_, options_, held->fencing_token};

  for (int attempt = 1; attempt <= options_.attempts; ++attempt) {
    auto current = master_.schedule();
    if (!current) return unexpected(mesos_error(what, current.error()));
    if (applied(*current)) return std::move(*current);
    // The guard before the side effect: we still hold the schedule lock.
    if (auto guarded = locks_.guard(options_.lock, options_.group, held->fencing_token, "posting"); !guarded) {
      return unexpected(MaintenanceError{MaintenanceError::Kind::kLock, 0,
                                         std::string(what) + ": lost the schedule lock: " + guarded.error().message});
    }
    auto posted = master_.update_schedule(change(*current));
    if (!posted && !posted.error().maybe_applied()) {
      return unexpected(mesos_error(what, posted.error()));
    }
    // Posted, or perhaps posted: the read-back decides.
    auto read = master_.schedule();
    if (!read) return unexpected(mesos_error(what, read.error()));
    if (applied(*read)) return std::move(*read);
    log_warning(std::string(what) + ": the schedule read back lacks the change (attempt " + std::to_string(attempt) +
                "); someone outside skopos edited it; trying again");
  }
  return unexpected(MaintenanceError{MaintenanceError::Kind::kNotApplied, 0,
                                     std::string(what) + ": the schedule never showed the change after " +
                                         std::to_string(options_.attempts) + " attempts"});
}

}  // namespace skopos::driver
