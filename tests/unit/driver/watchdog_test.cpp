// systemd's watchdog as the agent keeps it: WATCHDOG=1 at half the period while the
// owner shows signs of life or is busy in a drain; silence once it stops showing them
// (so systemd restarts a hung agent); nothing at all without WATCHDOG_USEC.
#include "driver/watchdog.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <thread>

#include "systemd_support.h"

namespace skopos::driver {
namespace {

using namespace std::chrono_literals;

class WatchdogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("NOTIFY_SOCKET", socket_.path().c_str(), 1);
    ::setenv("WATCHDOG_USEC", "100000", 1);  // 100 ms: pings every 50 ms
    ::unsetenv("WATCHDOG_PID");
  }
  void TearDown() override {
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
  }
  // The WATCHDOG=1 datagrams that arrive within `window`.
  int pings_within(std::chrono::milliseconds window) {
    int pings = 0;
    const auto until = std::chrono::steady_clock::now() + window;
    while (std::chrono::steady_clock::now() < until) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (socket_.next(std::max(left, 1ms)) == "WATCHDOG=1") ++pings;
    }
    return pings;
  }
  testing::NotifySocket socket_{"/tmp/skopos-watchdog-test-" + std::to_string(::getpid()) + ".sock"};
};

TEST_F(WatchdogTest, PingsWhileTheOwnerIsAliveAndFallsSilentWhenItStops) {
  Watchdog watchdog;
  for (int i = 0; i < 6; ++i) {
    watchdog.alive();
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_GE(pings_within(100ms), 1) << "alive: pinged";
  // No sign of life for longer than four periods: silent.
  std::this_thread::sleep_for(300ms);
  while (!socket_.next(1ms).empty()) {
  }
  EXPECT_EQ(pings_within(300ms), 0) << "a hung owner must let systemd restart it";
}

TEST_F(WatchdogTest, BusyInADrainCountsAsAlive) {
  Watchdog watchdog;
  watchdog.busy(true);
  std::this_thread::sleep_for(400ms);  // no alive() calls: the drain's own deadlines bound it
  EXPECT_GE(pings_within(200ms), 2);
  watchdog.busy(false);
}

TEST_F(WatchdogTest, WithoutAWatchdogPeriodNothingIsSent) {
  ::unsetenv("WATCHDOG_USEC");
  Watchdog watchdog;
  watchdog.alive();
  EXPECT_EQ(pings_within(200ms), 0);
}

}  // namespace
}  // namespace skopos::driver
