// The test harness leaves nothing behind. ChildProcess: a child (an etcd member, an
// agent) dies with the test process however that process dies -- a ctest timeout's
// SIGKILL, a crash, Ctrl-C on a benchmark -- and lives on when the thread that started
// it ends (a fault injector restarting an etcd member from a thread of its own).
// EtcdServer: the data directory of a test process that died is removed by the next.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include "etcd_server.h"
#include "process.h"
#include "skopos/unique_fd.h"

namespace {

using namespace std::chrono_literals;
using skopos::testing::ChildProcess;

// Field 3 (state) and field 22 (start time) of /proc/PID/stat; state '?' when gone.
std::pair<char, std::string> state_and_start(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(stat, text)) return {'?', ""};
  const auto close = text.rfind(')');
  if (close == std::string::npos || close + 2 >= text.size()) return {'?', ""};
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  char state = '?';
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 3) state = field[0];
    if (i == 22) return {state, field};
  }
  return {'?', ""};
}

// Whether the process `pid` that started at `start` still runs: it exists, is the same
// process (not a new one given its pid) and is not a zombie waiting to be reaped.
bool running(pid_t pid, const std::string& start) {
  const auto [state, started] = state_and_start(pid);
  return state != '?' && state != 'Z' && started == start;
}

bool stops_within(pid_t pid, const std::string& start, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (running(pid, start)) {
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
  EXPECT_TRUE(running(child->pid(), state_and_start(child->pid()).second))
      << "the child died with the thread that started it";
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
  const std::string start = n == sizeof grandchild ? state_and_start(grandchild).second : "";
  ::kill(helper, SIGKILL);
  int status = 0;
  ::waitpid(helper, &status, 0);
  ASSERT_EQ(n, static_cast<ssize_t>(sizeof grandchild));
  ASSERT_GT(grandchild, 0);
  ASSERT_FALSE(start.empty());
  const bool stopped = stops_within(grandchild, start, 5s);
  if (!stopped) ::kill(grandchild, SIGKILL);  // leave nothing behind either way
  EXPECT_TRUE(stopped) << "the child of a SIGKILLed test process still runs (pid " << grandchild << ")";
}

// A test binary killed mid-run leaves its etcd's data directory; the next EtcdServer
// removes it -- and only it: a directory whose owner still holds its lock stays.
TEST(EtcdServer, RemovesTheDataDirectoriesOfDeadOwnersOnly) {
  const std::string dead = "/tmp/skopos-etcd-test-dead-" + std::to_string(::getpid());
  const std::string alive = "/tmp/skopos-etcd-test-alive-" + std::to_string(::getpid());
  for (const std::string& dir : {dead, alive}) {
    std::filesystem::create_directories(dir + "/member0");
    std::ofstream(dir + "/owner.lock") << "";
  }
  const skopos::UniqueFd held(::open((alive + "/owner.lock").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(held);
  ASSERT_EQ(::flock(held.get(), LOCK_EX), 0);
  { auto etcd = skopos::testing::EtcdServer::start(); }
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_TRUE(std::filesystem::exists(alive + "/member0"));
  std::filesystem::remove_all(alive);
}

}  // namespace
