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
  EXPECT_EQ(triggers.describe(), "'" + options_.trigger_file + "' and rolling reboots of proxy");
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
