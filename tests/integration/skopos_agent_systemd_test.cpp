// skopos agent under systemd: its unit file passes `systemd-analyze verify`, and the
// agent speaks the notification protocol -- READY=1 once it watches its triggers, a
// STATUS= line saying what it waits for, WATCHDOG=1 while idle at half of WatchdogSec,
// STOPPING=1 and exit 0 on SIGTERM -- checked by listening on NOTIFY_SOCKET as systemd
// would. (Its drains and reboots are tested end to end in privileged/drain_e2e_test.)
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "etcd_server.h"
#include "process.h"
#include "systemd_support.h"
#include "unit_file_checks.h"

namespace {

using namespace std::chrono_literals;
using skopos::testing::ChildProcess;
using skopos::testing::NotifySocket;
using skopos::testing::run_process;
using Clock = std::chrono::steady_clock;

TEST(SkoposAgentSystemd, TheUnitFilePassesSystemdAnalyzeVerify) {
  const auto unit = skopos::testing::verify_unit(std::string(SKOPOS_SOURCE_DIR) + "/driver/systemd/skopos-agent.service",
                                                 "/usr/local/sbin/skopos", SKOPOS_CLI);
  skopos::testing::expect_notify_unit(unit, "/usr/local/sbin/skopos agent", "Restart=always");
}

// The lock metrics timer and its service: both pass systemd-analyze verify together
// (the timer's unit exists), the service writes the textfile the alert rules read, and
// the timer runs it every minute.
TEST(SkoposAgentSystemd, TheLockMetricsTimerAndServicePassSystemdAnalyzeVerify) {
  const std::string source = std::string(SKOPOS_SOURCE_DIR) + "/driver/systemd/";
  const std::string dir = ::testing::TempDir() + "skopos-lock-metrics-units-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::string service = skopos::testing::read_file(source + "skopos-lock-metrics.service");
  const std::string installed = "ExecStart=/usr/local/sbin/skopos lock status --metrics-file "
                                "/var/lib/prometheus/node-exporter/skopos-locks.prom\n";
  const auto at = service.find(installed);
  ASSERT_NE(at, std::string::npos) << service;
  service.replace(at, installed.size(),
                  std::string("ExecStart=") + SKOPOS_CLI + " lock status --metrics-file /tmp/skopos-locks.prom\n");
  std::ofstream(dir + "/skopos-lock-metrics.service") << service;
  const std::string timer = skopos::testing::read_file(source + "skopos-lock-metrics.timer");
  EXPECT_NE(timer.find("\nOnUnitActiveSec=1min\n"), std::string::npos) << timer;
  EXPECT_NE(timer.find("\nWantedBy=timers.target\n"), std::string::npos) << timer;
  std::ofstream(dir + "/skopos-lock-metrics.timer") << timer;
  const auto verify = run_process({"systemd-analyze", "verify", dir + "/skopos-lock-metrics.service",
                                   dir + "/skopos-lock-metrics.timer"});
  std::filesystem::remove_all(dir);
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_TRUE(verify.err.empty()) << verify.err;
  EXPECT_NE(service.find("\nType=oneshot\n"), std::string::npos);
  EXPECT_NE(service.find("\nReadWritePaths=/var/lib/prometheus/node-exporter\n"), std::string::npos)
      << "ProtectSystem=strict leaves only the collector's directory writable";
}

TEST(SkoposAgentSystemd, NotifiesReadyStatusWatchdogAndStopping) {
  auto etcd = skopos::testing::EtcdServer::start();
  const std::string dir = "/tmp/skopos-agent-notify-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  NotifySocket notify(dir + "/notify.sock");
  ::setenv("NOTIFY_SOCKET", notify.path().c_str(), 1);
  ::setenv("WATCHDOG_USEC", "400000", 1);
  ChildProcess agent({SKOPOS_CLI, "agent", "--etcd-endpoints", etcd->endpoint(), "--machine-id", "agent-test",
                      "--journal", dir + "/journal", "--trigger-file", dir + "/needs_reboot", "--reboot-required-file",
                      dir + "/reboot-required", "--docker-socket",
                      "unix://" + dir + "/no-docker.sock", "--tracker-socket", dir + "/no-tracker.sock"});
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");

  std::string first;
  for (auto deadline = Clock::now() + 10s; first.empty() && Clock::now() < deadline;) first = notify.next(1s);
  ASSERT_EQ(first, "READY=1");
  std::string status = notify.next(2s);
  EXPECT_EQ(status.rfind("STATUS=agent of ", 0), 0U) << status;
  EXPECT_NE(status.find(dir + "/needs_reboot"), std::string::npos) << status;

  // Idle, it still tells the watchdog it lives: a WATCHDOG=1 every 200 ms.
  int watchdogs = 0;
  for (auto deadline = Clock::now() + 3s; watchdogs < 5 && Clock::now() < deadline;) {
    if (notify.next(500ms) == "WATCHDOG=1") ++watchdogs;
  }
  EXPECT_EQ(watchdogs, 5);

  ::kill(agent.pid(), SIGTERM);
  std::string stopping;
  for (auto deadline = Clock::now() + 5s; stopping != "STOPPING=1" && Clock::now() < deadline;) {
    stopping = notify.next(1s);
  }
  EXPECT_EQ(stopping, "STOPPING=1");
  EXPECT_EQ(agent.stop(0, 10s), 0);
  // Its heartbeat is revoked at once on a clean stop; what stays is its record as a
  // member of its tier (not on a lease: a host that is down is still one).
  const auto keys = run_process({"etcdctl", "--endpoints", etcd->endpoint(), "get", "--prefix", "/skopos", "--keys-only"});
  EXPECT_EQ(keys.out, "/skopos/rolling-reboot/worker/hosts/agent-test\n\n") << keys.out;
  std::filesystem::remove_all(dir);
}

}  // namespace
