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
#include "skopos/unique_fd.h"

namespace {

using namespace std::chrono_literals;
using skopos::UniqueFd;
using skopos::testing::ChildProcess;
using skopos::testing::run_process;
using Clock = std::chrono::steady_clock;

TEST(TrackerSystemd, TheUnitFilePassesSystemdAnalyzeVerify) {
  std::ifstream in(std::string(SKOPOS_SOURCE_DIR) + "/tracker/systemd/skopos-tracker.service");
  ASSERT_TRUE(in);
  std::stringstream text;
  text << in.rdbuf();
  std::string unit = text.str();
  // verify checks that ExecStart exists: point it at the binary we built.
  const std::string installed = "ExecStart=/usr/local/bin/skopos-tracker";
  const auto at = unit.find(installed);
  ASSERT_NE(at, std::string::npos);
  unit.replace(at, installed.size(), std::string("ExecStart=") + SKOPOS_TRACKER);
  const std::string dir = "/tmp/skopos-unit-" + std::to_string(::getpid());
  ::mkdir(dir.c_str(), 0700);
  const std::string path = dir + "/skopos-tracker.service";
  std::ofstream(path) << unit;
  const auto result = run_process({"systemd-analyze", "verify", path});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.err, "") << "warnings are mistakes too";
  EXPECT_NE(unit.find("Type=notify"), std::string::npos);
  EXPECT_NE(unit.find("WatchdogSec="), std::string::npos);
  EXPECT_NE(unit.find("Restart=on-failure"), std::string::npos);
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}

// A datagram socket where the daemon sends its notifications.
class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)) {
    ::unlink(path_.c_str());
    fd_ = UniqueFd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path_.copy(address.sun_path, sizeof address.sun_path - 1);
    EXPECT_EQ(::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  }
  ~NotifySocket() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }
  // The next datagram, or "" after `timeout`.
  std::string next(std::chrono::milliseconds timeout) {
    pollfd pfd{fd_.get(), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(timeout.count())) <= 0) return "";
    char buffer[4096];
    const ssize_t n = ::recv(fd_.get(), buffer, sizeof buffer, 0);
    return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : "";
  }

 private:
  std::string path_;
  UniqueFd fd_;
};

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
