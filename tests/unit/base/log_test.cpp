// Log lines as operators read them: one line per event (a message's newlines flattened),
// the level named, or as a journald priority under systemd; lines below the level
// dropped; level names read back exactly; with the JSON format, one object per line that
// a JSON parser reads back whatever the message holds.
#include "skopos/log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <simdjson.h>

#include <string>
#include <vector>

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

TEST(Log, TheJsonFormatWritesOneObjectPerLineWhateverTheMessageHolds) {
  if (std::getenv("JOURNAL_STREAM") != nullptr) GTEST_SKIP() << "run under journald: lines carry priorities";
  const std::string hostile = "quote \" backslash \\ newline\ntab\t bell\a invalid \xff\xfe end";
  const std::string out = captured_stderr([&] {
    set_log_format(LogFormat::kJson);
    log_warning(hostile);
    log_debug("dropped at info");
    log_error("plain");
    set_log_format(LogFormat::kText);
  });
  std::vector<std::string> lines;
  for (std::size_t at = 0; at < out.size();) {
    const std::size_t end = out.find('\n', at);
    ASSERT_NE(end, std::string::npos) << "every line ends: " << out;
    lines.push_back(out.substr(at, end - at));
    at = end + 1;
  }
  ASSERT_EQ(lines.size(), 2u) << out;
  simdjson::dom::parser parser;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    simdjson::dom::element line;
    ASSERT_EQ(parser.parse(lines[i]).get(line), simdjson::SUCCESS) << lines[i];
    std::string_view time;
    ASSERT_EQ(line["time"].get(time), simdjson::SUCCESS) << lines[i];
    EXPECT_EQ(time.size(), 24u) << "2026-12-06T05:20:01.123Z, not " << time;
    EXPECT_EQ(time.back(), 'Z');
    EXPECT_EQ(std::string_view(line["level"]), i == 0 ? "warning" : "error");
    EXPECT_EQ(std::string_view(line["program"]), program_invocation_short_name);
    EXPECT_EQ(std::int64_t(line["pid"]), ::getpid());
  }
  simdjson::dom::element first;
  ASSERT_EQ(parser.parse(lines[0]).get(first), simdjson::SUCCESS);
  EXPECT_EQ(std::string_view(first["message"]),
            "quote \" backslash \\ newline\ntab\t bell\a invalid \xef\xbf\xbd\xef\xbf\xbd end")
      << "the message whole, invalid UTF-8 replaced";
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
