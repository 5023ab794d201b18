// The systemd notification protocol spoken directly: a datagram to $NOTIFY_SOCKET, a
// no-op without it, and a watchdog period only for the process it is meant for.
#include "skopos/sd_notify.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include "systemd_support.h"

namespace skopos {
namespace {

using namespace std::chrono_literals;

class SdNotifyTest : public ::testing::Test {
 protected:
  void TearDown() override {
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
  }
};

TEST_F(SdNotifyTest, StatesGoToTheSocketAndNowhereWithoutOne) {
  testing::NotifySocket socket("/tmp/skopos-sd-notify-test-" + std::to_string(::getpid()) + ".sock");
  ::setenv("NOTIFY_SOCKET", socket.path().c_str(), 1);
  ASSERT_TRUE(sd_notify("READY=1"));
  ASSERT_TRUE(sd_notify("STATUS=phase fence"));
  EXPECT_EQ(socket.next(2s), "READY=1");
  EXPECT_EQ(socket.next(2s), "STATUS=phase fence");
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_TRUE(sd_notify("READY=1")) << "not under systemd: nothing to do, not an error";
  ::setenv("NOTIFY_SOCKET", "relative/path", 1);
  EXPECT_FALSE(sd_notify("READY=1")) << "a socket path that cannot be one is an error";
}

TEST_F(SdNotifyTest, TheWatchdogPeriodIsOnlyForTheProcessItNames) {
  EXPECT_FALSE(sd_watchdog_interval());
  ::setenv("WATCHDOG_USEC", "3000000", 1);
  EXPECT_EQ(sd_watchdog_interval(), std::chrono::microseconds(3000000));
  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  EXPECT_EQ(sd_watchdog_interval(), std::chrono::microseconds(3000000));
  ::setenv("WATCHDOG_PID", std::to_string(::getpid() + 1).c_str(), 1);
  EXPECT_FALSE(sd_watchdog_interval()) << "another process's watchdog";
  ::unsetenv("WATCHDOG_PID");
  ::setenv("WATCHDOG_USEC", "0", 1);
  EXPECT_FALSE(sd_watchdog_interval());
}

}  // namespace
}  // namespace skopos
