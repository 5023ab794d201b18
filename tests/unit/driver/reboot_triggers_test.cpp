// The agent's requests as `skopos agent` watches them, with etcd out of reach: the
// trigger file is a request by itself; without it the rolling reboot's etcd error is
// reported, not taken for "no request"; the file goes once the reboot is journaled; a
// new file wakes a waiting agent at once (inotify), long before its recheck.
#include "driver/reboot_triggers.h"

#include <gtest/gtest.h>
#include <unistd.h>

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

TEST_F(RebootTriggersTest, TheOsRebootRequiredFileAsksOnceAndAFileStillThereAfterItsRebootAsksNoMore) {
  WatchedRebootTriggers triggers(options_, *etcd_, unreachable_etcd());
  std::ofstream(options_.reboot_required_file) << "*** System restart required ***\n";
  auto asked = triggers.requested();
  ASSERT_TRUE(asked) << asked.error();
  EXPECT_EQ(*asked, "reboot-required");
  // The reboot it asked for is done, and the file is still there (not on /run, say):
  // no second reboot for it, and the reason is reported.
  ASSERT_TRUE(triggers.completed("reboot-required"));
  asked = triggers.requested();
  ASSERT_FALSE(asked);
  EXPECT_NE(asked.error().find("'" + options_.reboot_required_file +
                               "' still asks for a reboot after the one it asked for: not rebooting again"),
            std::string::npos)
      << asked.error();
  asked = triggers.requested();
  ASSERT_FALSE(asked);
  EXPECT_EQ(asked.error().find("still asks"), std::string::npos) << "reported once: " << asked.error();
  // Gone once, it may ask again.
  fs::remove(options_.reboot_required_file);
  (void)triggers.requested();
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
  options_.sentinel_timeout = 500ms;
  WatchedRebootTriggers triggers(options_, *etcd_, unreachable_etcd());
  const auto ask = [&](const std::string& code) {
    std::ofstream(answer) << code << "\n";
    return triggers.requested();
  };
  EXPECT_EQ(ask("0").value_or("error"), "sentinel");
  auto none = ask("1");
  ASSERT_FALSE(none) << "etcd is out of reach here: its error, and no request";
  EXPECT_EQ(none.error().find("sentinel"), std::string::npos) << none.error();
  none = ask("3");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().find("reboot sentinel '" + script + "' exited 3, neither 0 (reboot needed) nor 1"),
            std::string::npos)
      << none.error();
  none = ask("sleep");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().find("did not answer"), std::string::npos) << none.error();
  // A sentinel that is not there never asks.
  options_.sentinel = {dir_ + "/missing-sentinel"};
  WatchedRebootTriggers missing(options_, *etcd_, unreachable_etcd());
  none = missing.requested();
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().find("reboot sentinel '" + dir_ + "/missing-sentinel' did not answer"), std::string::npos)
      << none.error();
  // After the reboot it asked for, a sentinel still saying 0 asks no more until it said 1.
  ASSERT_TRUE(triggers.completed("sentinel"));
  none = ask("0");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().find("still asks for a reboot after the one it asked for"), std::string::npos) << none.error();
  (void)ask("1");
  EXPECT_EQ(ask("0").value_or("error"), "sentinel");
}

TEST_F(RebootTriggersTest, TheFileGoesWhenTheRebootIsJournaled) {
  WatchedRebootTriggers triggers(options_, *etcd_, unreachable_etcd());
  std::ofstream(options_.trigger_file) << "\n";
  EXPECT_TRUE(triggers.consumed("file"));
  EXPECT_FALSE(fs::exists(options_.trigger_file));
  // A rolling request is marked done in etcd: unreachable, that is an error to report.
  std::ofstream(options_.trigger_file) << "\n";
  auto rolling = triggers.consumed("rolling:r-1");
  EXPECT_FALSE(rolling);
  EXPECT_FALSE(fs::exists(options_.trigger_file)) << "one reboot answers every request: the file goes too";
  EXPECT_TRUE(triggers.completed("file")) << "nothing to mark for the file";
}

TEST_F(RebootTriggersTest, ANewFileWakesAWaitingAgentAtOnce) {
  WatchedRebootTriggers triggers(options_, *etcd_, unreachable_etcd());
  std::atomic<bool> stop{false};
  int alive = 0;
  std::thread writer([&] {
    std::this_thread::sleep_for(300ms);
    std::ofstream(options_.trigger_file) << "\n";
  });
  const auto started = std::chrono::steady_clock::now();
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
