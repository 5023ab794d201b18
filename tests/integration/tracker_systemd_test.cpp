// skopos-tracker under systemd: the unit file in the repo passes `systemd-analyze
// verify`, and the daemon speaks the notification protocol -- READY=1 once it serves the
// stream, WATCHDOG=1 at half of WatchdogSec, STOPPING=1 on SIGTERM -- checked by
// listening on NOTIFY_SOCKET as systemd would.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

#include "process.h"
#include "systemd_support.h"
#include "unit_file_checks.h"
#include "skopos/unique_fd.h"

namespace {

using namespace std::chrono_literals;
using skopos::UniqueFd;
using skopos::testing::ChildProcess;
using skopos::testing::NotifySocket;
using Clock = std::chrono::steady_clock;

TEST(TrackerSystemd, TheUnitFilePassesSystemdAnalyzeVerify) {
  const auto unit = skopos::testing::verify_unit(std::string(SKOPOS_SOURCE_DIR) + "/tracker/systemd/skopos-tracker.service",
                                                 "/usr/local/sbin/skopos-tracker", SKOPOS_TRACKER);
  skopos::testing::expect_notify_unit(unit, "/usr/local/sbin/skopos-tracker", "Restart=on-failure");
}

bool connects(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  path.copy(address.sun_path, sizeof address.sun_path - 1);
  return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
}

TEST(TrackerSystemd, NotifiesReadyWatchdogAndStopping) {
  const std::string tag = std::to_string(::getpid());
  NotifySocket notify("/tmp/skopos-notify-" + tag + ".sock");
  const std::string stream = "/tmp/skopos-notify-stream-" + tag + ".sock";
  // The child inherits these, as from systemd.
  ::setenv("NOTIFY_SOCKET", notify.path().c_str(), 1);
  ::setenv("WATCHDOG_USEC", "200000", 1);
  ChildProcess tracker({SKOPOS_TRACKER, "--source", "proc", "--docker-socket", "none", "--conntrack", "off",
                        "--stream-socket", stream});
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");

  std::string first;
  for (auto deadline = Clock::now() + 10s; first.empty() && Clock::now() < deadline;) first = notify.next(1s);
  ASSERT_EQ(first, "READY=1");
  EXPECT_TRUE(connects(stream)) << "READY=1 before the stream socket serves";

  int watchdogs = 0;
  for (auto deadline = Clock::now() + 2s; watchdogs < 3 && Clock::now() < deadline;) {
    const std::string message = notify.next(500ms);
    if (message == "WATCHDOG=1") ++watchdogs;
  }
  EXPECT_EQ(watchdogs, 3) << "WatchdogSec=200ms wants a WATCHDOG=1 every 100 ms";

  ::kill(tracker.pid(), SIGTERM);
  std::string stopping;
  for (auto deadline = Clock::now() + 5s; stopping != "STOPPING=1" && Clock::now() < deadline;) {
    stopping = notify.next(1s);
  }
  EXPECT_EQ(stopping, "STOPPING=1");
  EXPECT_EQ(tracker.stop(0, 10s), 0) << "the exit status after SIGTERM";
  EXPECT_FALSE(connects(stream));
}

}  // namespace
