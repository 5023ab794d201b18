// The agent's requests as `skopos agent` watches them, with etcd out of reach: the
// trigger file is a request by itself; without it the rolling reboot's etcd error is
// reported, not taken for "no request"; the file goes once the reboot is journaled; a
// new file wakes a waiting agent at once (inotify), long before its recheck.
#include "driver/reboot_triggers.h"

#include <gtest/gtest.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

namespace skopos::driver {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::unique_ptr<EtcdClient> unreachable_etcd() {
  EtcdOptions options;
  options.http.endpoints.push_back(*HttpEndpoint::parse("http://127.0.0.1:1"));
  options.http.timeout = 200ms;
  options.http.attempts = 1;
  auto client = EtcdClient::create(std::move(options));
  EXPECT_TRUE(client);
  return std::move(*client);
}

class RebootTriggersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/skopos-triggers-test-" + std::to_string(::getpid());
    fs::remove_all(dir_);
    options_.trigger_file = dir_ + "/needs_reboot";  // its directory does not exist yet
    options_.reboot_required_file = dir_ + "/reboot-required";
    options_.boot_id = "boot-1";
    options_.prefix = "/skopos";
    options_.tier = Tier::kProxy;
    options_.machine_id = "m1";
    options_.hostname = "host-1";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string dir_;
  WatchedRebootTriggers::Options options_;
  std::unique_ptr<EtcdClient> etcd_ = unreachable_etcd();
};

TEST_F(RebootTriggersTest, TheFileIsARequestAndWithoutItAnEtcdErrorIsReportedNotTakenForNone) {
  WatchedRebootTriggers triggers(options_, *etcd_, unreachable_etcd());
  EXPECT_TRUE(fs::is_directory(dir_)) << "the file's directory is made, for inotify";
  auto none = triggers.requested();
  ASSERT_FALSE(none) << "etcd unreachable is not 'no rolling reboot'";
  EXPECT_NE(none.error().find("rolling reboot"), std::string::npos) << none.error();
  std::ofstream(options_.trigger_file) << "\n";
  auto file = triggers.requested();
  ASSERT_TRUE(file) << file.error();
  EXPECT_EQ(*file, "file");
  EXPECT_EQ(triggers.describe(),
            "'" + options_.trigger_file + "', '" + options_.reboot_required_file + "' and rolling reboots of proxy");
}

TEST_F(RebootTriggersTest, TheOsRebootRequiredFileAsksAndOneOlderThanThisBootDoesNot) {
  WatchedRebootTriggers triggers(options_, *etcd_, unreachable_etcd());
  std::ofstream(options_.reboot_required_file) << "*** System restart required ***\n";
  auto asked = triggers.requested();
  ASSERT_TRUE(asked) << asked.error();
  EXPECT_EQ(*asked, "reboot-required");
  // A file from before this boot survived the reboot it asked for (on /run it could
  // not): no second reboot for it, and the reason is reported, once.
  const struct timeval old_times[2] = {{1000000000, 0}, {1000000000, 0}};
  ASSERT_EQ(::utimes(options_.reboot_required_file.c_str(), old_times), 0);
  asked = triggers.requested();
  ASSERT_FALSE(asked) << "etcd is out of reach here: its error, and no request";
  EXPECT_NE(asked.error().find("'" + options_.reboot_required_file + "' is older than this boot"), std::string::npos)
      << asked.error();
  asked = triggers.requested();
  ASSERT_FALSE(asked);
  EXPECT_EQ(asked.error().find("older than this boot"), std::string::npos) << "reported once: " << asked.error();
  // Touched again (a new upgrade asks): a request.
  std::ofstream(options_.reboot_required_file) << "\n";
  EXPECT_EQ(triggers.requested().value_or(""), "reboot-required");
}

TEST_F(RebootTriggersTest, ASentinelAsksWithExitZeroAndOneThatCannotAnswerNeverAsksAndIsReported) {
  fs::create_directories(dir_);
  const std::string answer = dir_ + "/answer";
  const std::string script = dir_ + "/sentinel.sh";
  std::ofstream(script) << "#!/bin/sh\nread code < " << answer << "\n[ \"$code\" = sleep ] && sleep 5\nexit $code\n";
  fs::permissions(script, fs::perms::owner_all);
  options_.sentinel = {script};
  options_.sentinel_timeout = 10s;  // a loaded machine still answers in time
  WatchedRebootTriggers triggers(options_, *etcd_, unreachable_etcd());
  const auto ask = [&](WatchedRebootTriggers& t, const std::string& code) {
    std::ofstream(answer) << code << "\n";
    return t.requested();
  };
  EXPECT_EQ(ask(triggers, "0").value_or("error"), "sentinel");
  auto none = ask(triggers, "1");
  ASSERT_FALSE(none) << "etcd is out of reach here: its error, and no request";
  EXPECT_EQ(none.error().find("sentinel"), std::string::npos) << none.error();
  none = ask(triggers, "3");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().find("reboot sentinel '" + script + "' exited 3, neither 0 (reboot needed) nor 1"),
            std::string::npos)
      << none.error();
  EXPECT_EQ(triggers.sentinel_failures(), 1U) << "counted for the agent's metrics; exit 0 and 1 are answers";
  {
    WatchedRebootTriggers::Options hurried = options_;
    hurried.sentinel_timeout = 300ms;
    WatchedRebootTriggers slow(hurried, *etcd_, unreachable_etcd());
    none = ask(slow, "sleep");
    ASSERT_FALSE(none);
    EXPECT_NE(none.error().find("did not answer"), std::string::npos) << none.error();
    EXPECT_EQ(slow.sentinel_failures(), 1U);
  }
  // A sentinel that is not there never asks.
  WatchedRebootTriggers::Options missing_options = options_;
  missing_options.sentinel = {dir_ + "/missing-sentinel"};
  WatchedRebootTriggers missing(missing_options, *etcd_, unreachable_etcd());
  none = missing.requested();
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().find("reboot sentinel '" + dir_ + "/missing-sentinel' did not answer"), std::string::npos)
      << none.error();
  EXPECT_EQ(missing.sentinel_failures(), 1U);
  // Its reboot is journaled in boot-1; in the next boot (a new agent process) it still
  // says 0: a loop, reported, not rebooted -- until it has said 1 once.
  std::ofstream(answer) << "0\n";
  (void)triggers.consumed("sentinel");  // etcd is out of reach: the roll's mark fails, the record is written
  WatchedRebootTriggers::Options next_boot = options_;
  next_boot.boot_id = "boot-2";
  WatchedRebootTriggers after(next_boot, *etcd_, unreachable_etcd());
  none = ask(after, "0");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().find("still asks for a reboot after the one it asked for"), std::string::npos) << none.error();
  EXPECT_EQ(after.sentinel_failures(), 1U);
  (void)ask(after, "1");
  EXPECT_EQ(ask(after, "0").value_or("error"), "sentinel");
}

// A closed health gate makes the agent look every second: the sentinel (a process to
// start) answers once per --recheck, and afresh after the reboot it asked for is taken.
TEST_F(RebootTriggersTest, TheSentinelsAnswerIsUsedAgainForItsIntervalNotRunAtEveryLook) {
  fs::create_directories(dir_);
  const std::string runs = dir_ + "/runs";
  const std::string script = dir_ + "/sentinel.sh";
  std::ofstream(script) << "#!/bin/sh\necho run >> " << runs << "\nexit 0\n";
  fs::permissions(script, fs::perms::owner_all);
  options_.sentinel = {script};
  options_.sentinel_every = 1h;
  WatchedRebootTriggers triggers(options_, *etcd_, unreachable_etcd());
  const auto count_runs = [&] {
    std::ifstream in(runs);
    return std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n');
  };
  for (int i = 0; i < 3; ++i) EXPECT_EQ(triggers.requested().value_or("error"), "sentinel");
  EXPECT_EQ(count_runs(), 1);
  (void)triggers.consumed("sentinel");  // etcd is out of reach: the roll's mark fails
  EXPECT_EQ(triggers.requested().value_or("error"), "sentinel");
  EXPECT_EQ(count_runs(), 2) << "asked afresh once its reboot was taken";
}

TEST_F(RebootTriggersTest, TheFileGoesWhenTheRebootIsJournaled) {
  WatchedRebootTriggers triggers(options_, *etcd_, unreachable_etcd());
  std::ofstream(options_.trigger_file) << "\n";
  // One reboot answers every request there was: the file goes, and a rolling request
  // waiting for this host is marked done -- in etcd, out of reach here: an error to
  // report, after the file went.
  EXPECT_FALSE(triggers.consumed("file"));
  EXPECT_FALSE(fs::exists(options_.trigger_file));
  std::ofstream(options_.trigger_file) << "\n";
  auto rolling = triggers.consumed("rolling:r-1");
  EXPECT_FALSE(rolling);
  EXPECT_FALSE(fs::exists(options_.trigger_file)) << "one reboot answers every request: the file goes too";
  EXPECT_TRUE(triggers.completed("file")) << "back after the reboot: only the trigger's own roll is marked";
}

TEST_F(RebootTriggersTest, ANewFileWakesAWaitingAgentAtOnceAndOtherFilesThereDoNot) {
  WatchedRebootTriggers triggers(options_, *etcd_, unreachable_etcd());
  std::atomic<bool> stop{false};
  int alive = 0;
  // Another file in the watched directory (/run sees pid files all day): no wake.
  std::thread other([&] {
    std::this_thread::sleep_for(100ms);
    std::ofstream(dir_ + "/some.pid") << "1\n";
  });
  auto started = std::chrono::steady_clock::now();
  triggers.wait(1s, stop, [&] { ++alive; });
  other.join();
  EXPECT_GE(std::chrono::steady_clock::now() - started, 950ms) << "an unrelated file woke the agent";
  std::thread writer([&] {
    std::this_thread::sleep_for(300ms);
    std::ofstream(options_.trigger_file) << "\n";
  });
  started = std::chrono::steady_clock::now();
  triggers.wait(30s, stop, [&] { ++alive; });
  const auto waited = std::chrono::steady_clock::now() - started;
  writer.join();
  EXPECT_LT(waited, 10s) << "woken by inotify, not by the 30 s recheck";
  EXPECT_GE(waited, 250ms);
  EXPECT_GE(alive, 1) << "signs of life while waiting";
}

TEST_F(RebootTriggersTest, AStopEndsTheWait) {
  WatchedRebootTriggers triggers(options_, *etcd_, unreachable_etcd());
  std::atomic<bool> stop{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(200ms);
    stop = true;
  });
  const auto started = std::chrono::steady_clock::now();
  triggers.wait(30s, stop, [] {});
  stopper.join();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

}  // namespace
}  // namespace skopos::driver
