// The test harness's ChildProcess leaves nothing behind: a child (an etcd member, an
// agent) dies with the test process however that process dies -- a ctest timeout's
// SIGKILL, a crash, Ctrl-C on a benchmark -- and lives on when the thread that started
// it ends (a fault injector restarting an etcd member from a thread of its own).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "process.h"

namespace {

using namespace std::chrono_literals;
using skopos::testing::ChildProcess;

// Whether `pid` still runs: it exists and is not a zombie waiting to be reaped.
bool running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(stat, text)) return false;
  const auto close = text.rfind(')');
  return close != std::string::npos && close + 2 < text.size() && text[close + 2] != 'Z';
}

bool stops_within(pid_t pid, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (running(pid)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

TEST(ChildProcess, OutlivesTheThreadThatStartedIt) {
  std::unique_ptr<ChildProcess> child;
  std::thread([&] {
    child = std::make_unique<ChildProcess>(std::vector<std::string>{"sleep", "30"});
    std::this_thread::sleep_for(200ms);  // the child is past its exec when the thread ends
  }).join();
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(running(child->pid())) << "the child died with the thread that started it";
  EXPECT_EQ(child->stop(SIGTERM, 5s), 128 + SIGTERM);
}

TEST(ChildProcess, DiesWithTheProcessThatStartedItEvenOnSigkill) {
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  const pid_t helper = ::fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    // A test process in miniature: it starts a child, says which, and waits to be killed.
    ::close(report[0]);
    auto* child = new ChildProcess({"sleep", "30"});
    const pid_t pid = child->pid();
    (void)!::write(report[1], &pid, sizeof pid);
    ::pause();
    ::_exit(0);
  }
  ::close(report[1]);
  pid_t grandchild = -1;
  const ssize_t n = ::read(report[0], &grandchild, sizeof grandchild);
  ::close(report[0]);
  ::kill(helper, SIGKILL);
  int status = 0;
  ::waitpid(helper, &status, 0);
  ASSERT_EQ(n, static_cast<ssize_t>(sizeof grandchild));
  ASSERT_GT(grandchild, 0);
  const bool stopped = stops_within(grandchild, 5s);
  if (!stopped) ::kill(grandchild, SIGKILL);  // leave nothing behind either way
  EXPECT_TRUE(stopped) << "the child of a SIGKILLed test process still runs (pid " << grandchild << ")";
}

}  // namespace
