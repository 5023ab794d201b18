// Watchdog: pings systemd's watchdog (WatchdogSec=) from a thread of its own while its
// owner shows signs of life. An owner inside a drain is "busy": the drain's waits are
// bounded by their own deadlines, so busy counts as alive. Without a watchdog period
// in the environment it does nothing and starts no thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace skopos::driver {

class Watchdog {
 public:
  Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog();

  void alive() { last_ = Clock::now().time_since_epoch().count(); }
  void busy(bool value) {
    busy_ = value;
    alive();
  }

 private:
  using Clock = std::chrono::steady_clock;
  std::atomic<Clock::rep> last_{Clock::now().time_since_epoch().count()};
  std::atomic<bool> busy_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace skopos::driver
