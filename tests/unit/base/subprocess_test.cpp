// run_program: argv without a shell, standard input in, output and exit status out, a
// deadline that kills, and a clear error for a program that is not there.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "skopos/subprocess.h"

namespace skopos {
namespace {

using namespace std::chrono_literals;

TEST(RunProgram, PassesInputAndReturnsOutputAndExitStatus) {
  auto cat = run_program({"cat"}, "line one\nline two\n", 5s);
  ASSERT_TRUE(cat) << cat.error().message();
  EXPECT_EQ(cat->exit_code, 0);
  EXPECT_EQ(cat->out, "line one\nline two\n");
  auto failing = run_program({"sh", "-c", "echo oops >&2; exit 3"}, {}, 5s);
  ASSERT_TRUE(failing);
  EXPECT_EQ(failing->exit_code, 3) << "a non-zero exit is a result, not an error";
  EXPECT_EQ(failing->err, "oops\n");
  // Arguments are not interpreted by a shell.
  auto literal = run_program({"echo", "$HOME; rm -rf /"}, {}, 5s);
  ASSERT_TRUE(literal);
  EXPECT_EQ(literal->out, "$HOME; rm -rf /\n");
  // Large input and output do not deadlock on full pipes.
  const std::string big(1 << 20, 'x');
  auto copied = run_program({"cat"}, big, 10s);
  ASSERT_TRUE(copied);
  EXPECT_EQ(copied->out.size(), big.size());
  // A program that exits without reading its input does not take us down (SIGPIPE).
  auto ignoring = run_program({"true"}, big, 5s);
  ASSERT_TRUE(ignoring) << ignoring.error().message();
  EXPECT_EQ(ignoring->exit_code, 0);
}

TEST(RunProgram, ADeadlineKillsAndAMissingProgramIsNamed) {
  const auto start = std::chrono::steady_clock::now();
  auto slow = run_program({"sleep", "30"}, {}, 300ms);
  ASSERT_FALSE(slow);
  EXPECT_NE(slow.error().message().find("killed"), std::string::npos) << slow.error().message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  auto missing = run_program({"/nonexistent/skopos-tool"}, {}, 5s);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("/nonexistent/skopos-tool"), std::string::npos) << missing.error().message();
  EXPECT_FALSE(run_program({}, {}, 1s));
}

TEST(RunProgram, AChildThatClosedItsOutputAndRunsOnIsKilledAtTheDeadline) {
  // Failed before: with both pipes at EOF the output loop ended and waitpid() waited
  // for the child without a deadline (30 s here; for ever for a daemon).
  const auto start = std::chrono::steady_clock::now();
  auto detached = run_program({"sh", "-c", "exec >&- 2>&-; sleep 30"}, {}, 300ms);
  ASSERT_FALSE(detached) << "exit " << detached->exit_code;
  EXPECT_NE(detached.error().message().find("still running after 300 ms; killed"), std::string::npos)
      << detached.error().message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  // One that closes its output and then exits in time is waited for, with its status.
  auto quick = run_program({"sh", "-c", "exec >&- 2>&-; sleep 0.1; exit 3"}, {}, 5s);
  ASSERT_TRUE(quick) << quick.error().message();
  EXPECT_EQ(quick->exit_code, 3);
}

// run_program_until keeps what the program printed when it is killed (before, a hook
// that hung left nothing but "killed"), and a stop ends it within the grace: SIGTERM,
// then SIGKILL for one that ignores it (before, a SIGTERM to the driver waited out the
// hook's whole timeout).
TEST(RunProgramUntil, AKilledProgramsOutputIsKeptAndAStopEndsItWithinTheGrace) {
  auto timed_out = run_program_until({"sh", "-c", "echo checking the database; sleep 30"}, {}, 500ms, {}, nullptr);
  ASSERT_TRUE(timed_out) << timed_out.error().message();
  EXPECT_EQ(timed_out->end, ProgramRun::End::kTimedOut);
  EXPECT_EQ(timed_out->output.out, "checking the database\n");

  for (const char* script : {"echo started; sleep 30", "trap '' TERM; echo started; sleep 30"}) {
    SCOPED_TRACE(script);
    std::atomic<bool> stop{false};
    std::thread stopper([&] {
      std::this_thread::sleep_for(300ms);
      stop = true;
    });
    const auto start = std::chrono::steady_clock::now();
    auto stopped = run_program_until({"sh", "-c", script}, {}, 30s, {}, &stop, 500ms);
    stopper.join();
    ASSERT_TRUE(stopped) << stopped.error().message();
    EXPECT_EQ(stopped->end, ProgramRun::End::kStopped);
    EXPECT_EQ(stopped->output.out, "started\n");
    EXPECT_LT(std::chrono::steady_clock::now() - start, 3s) << "not the 30 s timeout";
  }
  std::atomic<bool> never{false};
  auto exited = run_program_until({"sh", "-c", "echo ok; exit 4"}, {}, 5s, {}, &never);
  ASSERT_TRUE(exited);
  EXPECT_EQ(exited->end, ProgramRun::End::kExited);
  EXPECT_EQ(exited->output.exit_code, 4);
}

}  // namespace
}  // namespace skopos
