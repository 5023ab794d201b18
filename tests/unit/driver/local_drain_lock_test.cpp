// One drain driver per host: the lock beside the journal names its holder's pid; a second
// driver is refused naming it; taking over asks the holder to stop (SIGTERM) and waits,
// within a deadline.
#include "driver/local_drain_lock.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

namespace skopos::driver {
namespace {

using namespace std::chrono_literals;

class LocalDrainLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/skopos-local-lock-test-" + std::to_string(::getpid());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override {
    if (child_ > 0) {
      ::kill(child_, SIGKILL);
      ::waitpid(child_, nullptr, 0);
    }
    std::filesystem::remove_all(dir_);
  }
  // A child process that holds the lock until it gets `signal`-ed (it ignores SIGTERM
  // when `stubborn`).
  void hold_in_child(bool stubborn) {
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    child_ = ::fork();
    ASSERT_GE(child_, 0);
    if (child_ == 0) {
      if (stubborn) ::signal(SIGTERM, SIG_IGN);
      auto held = LocalDrainLock::take(journal(), false, 0ms);
      const char byte = held ? 'y' : 'n';
      (void)::write(ready[1], &byte, 1);
      for (;;) ::pause();
    }
    ::close(ready[1]);
    char byte = 0;
    ASSERT_EQ(::read(ready[0], &byte, 1), 1);
    ::close(ready[0]);
    ASSERT_EQ(byte, 'y');
  }
  std::string journal() const { return dir_ + "/journal"; }

  std::string dir_;
  pid_t child_ = -1;
};

TEST_F(LocalDrainLockTest, TheSecondDriverIsRefusedNamingTheFirst) {
  hold_in_child(false);
  auto second = LocalDrainLock::take(journal(), false, 0ms);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message().find("another skopos drain (pid " + std::to_string(child_) + ") is running"),
            std::string::npos)
      << second.error().message();
}

TEST_F(LocalDrainLockTest, TakingOverStopsTheHolderAndWaitsForIt) {
  hold_in_child(false);
  auto taken = LocalDrainLock::take(journal(), true, 10s);
  ASSERT_TRUE(taken) << taken.error().message();
  int status = 0;
  ASSERT_EQ(::waitpid(child_, &status, 0), child_);
  child_ = -1;
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << "asked with SIGTERM";
}

TEST_F(LocalDrainLockTest, AHolderThatDoesNotStopIsWaitedForOnlyUntilTheDeadline) {
  hold_in_child(true);
  const auto started = std::chrono::steady_clock::now();
  auto taken = LocalDrainLock::take(journal(), true, 500ms);
  ASSERT_FALSE(taken);
  EXPECT_NE(taken.error().message().find("did not stop within 0.5 s"), std::string::npos) << taken.error().message();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

TEST_F(LocalDrainLockTest, ReleasedWhenItsOwnerGoes) {
  {
    auto first = LocalDrainLock::take(journal(), false, 0ms);
    ASSERT_TRUE(first) << first.error().message();
  }
  EXPECT_TRUE(LocalDrainLock::take(journal(), false, 0ms)) << "the flock went with the value";
}

}  // namespace
}  // namespace skopos::driver
