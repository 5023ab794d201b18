// MaintenanceScheduler: edits of Mesos's ONE cluster-wide maintenance schedule that never
// lose another machine's window. Mesos has no compare-and-swap on the schedule (a POST
// replaces it whole), so every skopos edit is a read-modify-write done while holding an
// etcd lock (LockService, lock "mesos-maintenance", group "schedule", max 1), and is
// verified by reading the schedule back; a read-back that lacks our change is retried.
//
// Not thread-safe; the MesosMaster and LockService it uses are not either.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "driver/lock_service.h"
#include "driver/mesos_master.h"
#include "skopos/function_ref.h"
#include "skopos/result.h"

namespace skopos::driver {

struct MaintenanceError {
  enum class Kind : std::uint8_t {
    kLock,      // the schedule lock could not be taken in time, or etcd failed
    kMesos,     // the master refused or failed (its text is in the message)
    kNotApplied,  // the read-back never showed our change
  };
  Kind kind = Kind::kMesos;
  unsigned status = 0;  // the master's HTTP status, for kMesos refusals
  std::string message;
};

struct MaintenanceSchedulerOptions {
  std::string lock = "mesos-maintenance";
  std::string group = "schedule";
  std::chrono::milliseconds lock_wait{120000};
  int attempts = 3;  // edits whose read-back lacks the change
};

class MaintenanceScheduler {
 public:
  MaintenanceScheduler(MesosMaster& master, LockService& locks, MaintenanceSchedulerOptions options = {});

  // Puts `machines` into one window [start, start + duration) (open-ended without a
  // duration), out of any window they were in; every other window is kept. Returns the
  // schedule as read back.
  Result<MaintenanceSchedule, MaintenanceError> schedule(const std::vector<MachineId>& machines, std::int64_t start_ns,
                                                         std::optional<std::int64_t> duration_ns);
  // Takes `machines` out of the schedule (Mesos refuses this for DOWN machines: bring
  // them up first). Machines not in the schedule are fine.
  Result<MaintenanceSchedule, MaintenanceError> cancel(const std::vector<MachineId>& machines);

 private:
  // Under the lock: read, change, post (unless unchanged), read back until `applied`.
  Result<MaintenanceSchedule, MaintenanceError> edit(
      const char* what, FunctionRef<MaintenanceSchedule(const MaintenanceSchedule&)> change,
      FunctionRef<bool(const MaintenanceSchedule&)> applied);

  MesosMaster& master_;
  LockService& locks_;
  MaintenanceSchedulerOptions options_;
};

}  // namespace skopos::driver
