// Log lines as operators read them: one line per event (a message's newlines flattened),
// the level named, or as a journald priority under systemd; lines below the level
// dropped; level names read back exactly.
#include "skopos/log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

namespace skopos {
namespace {

// What log lines reach stderr while `body` runs.
template <class Body>
std::string captured_stderr(Body body) {
  int pipe_fds[2];
  EXPECT_EQ(::pipe(pipe_fds), 0);
  const int saved = ::dup(STDERR_FILENO);
  ::dup2(pipe_fds[1], STDERR_FILENO);
  body();
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(pipe_fds[1]);
  std::string out;
  char buffer[4096];
  ssize_t n = 0;
  while ((n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0) out.append(buffer, static_cast<std::size_t>(n));
  ::close(pipe_fds[0]);
  return out;
}

TEST(Log, OneLinePerEventAndLinesBelowTheLevelDropped) {
  if (std::getenv("JOURNAL_STREAM") != nullptr) GTEST_SKIP() << "run under journald: lines carry priorities";
  const std::string out = captured_stderr([] {
    set_log_level(LogLevel::kNotice);
    log_warning("fence re-applied\nby the wait");
    log_info("not shown at notice");
    log_notice("phase fence");
    set_log_level(LogLevel::kInfo);
  });
  EXPECT_EQ(out, "warning: fence re-applied by the wait\nnotice: phase fence\n");
}

TEST(Log, LevelNamesAreReadBackExactly) {
  for (const auto& [text, level] : {std::pair{"error", LogLevel::kError}, std::pair{"warning", LogLevel::kWarning},
                                    std::pair{"notice", LogLevel::kNotice}, std::pair{"info", LogLevel::kInfo},
                                    std::pair{"debug", LogLevel::kDebug}}) {
    LogLevel parsed = LogLevel::kError;
    ASSERT_TRUE(parse_log_level(text, parsed)) << text;
    EXPECT_EQ(parsed, level);
  }
  LogLevel untouched = LogLevel::kNotice;
  EXPECT_FALSE(parse_log_level("Warning", untouched));
  EXPECT_FALSE(parse_log_level("", untouched));
  EXPECT_EQ(untouched, LogLevel::kNotice);
}

}  // namespace
}  // namespace skopos
