#include "driver/watchdog.h"

#include "skopos/sd_notify.h"

namespace skopos::driver {

Watchdog::Watchdog() {
  const auto interval = sd_watchdog_interval();
  if (!interval) return;
  const auto period = std::max(std::chrono::duration_cast<std::chrono::milliseconds>(*interval) / 2,
                               std::chrono::milliseconds(1));
  thread_ = std::thread([this, period] {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!wake_.wait_for(lock, period, [this] { return stopping_; })) {
      const auto idle_for = Clock::now() - Clock::time_point(Clock::duration(last_.load()));
      // Silent when the owner stopped showing signs of life: systemd restarts it.
      if (busy_.load() || idle_for < period * 4) (void)sd_notify("WATCHDOG=1");
    }
  });
}

Watchdog::~Watchdog() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace skopos::driver
