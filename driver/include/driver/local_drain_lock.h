// LocalDrainLock: at most one drain driver per host -- an flock on `<journal>.lock`
// holding the owner's pid. The etcd host lock cannot tell two drivers of the same
// machine apart (an operator's `skopos drain` beside the agent).
#pragma once

#include <chrono>
#include <string>

#include "skopos/result.h"
#include "skopos/unique_fd.h"

namespace skopos::driver {

class LocalDrainLock {
 public:
  // Fails naming the pid of the driver that holds it. With `take_over`, that driver is
  // sent SIGTERM (it stops at a safe point) and waited for up to `wait`.
  static Result<LocalDrainLock> take(const std::string& journal_path, bool take_over, std::chrono::milliseconds wait);

 private:
  explicit LocalDrainLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace skopos::driver
