#include "skopos/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "skopos/enum_names.h"

namespace skopos {

namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

std::string_view level_name(LogLevel level) { return enum_name(kLogLevelNames, level, "info"); }

bool under_journal() {
  static const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
  return journal;
}

}  // namespace

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }

bool parse_log_level(std::string_view text, LogLevel& level) {
  const auto parsed = enum_value(kLogLevelNames, text);
  if (parsed) level = *parsed;
  return parsed.has_value();
}

void log(LogLevel level, std::string_view message) {
  if (static_cast<int>(level) > g_level.load(std::memory_order_relaxed)) return;
  std::string line;
  line.reserve(message.size() + 16);
  if (under_journal()) {
    line += '<';
    line += static_cast<char>('0' + static_cast<int>(level));
    line += '>';
  } else {
    line += level_name(level);
    line += ": ";
  }
  for (char c : message) line += c == '\n' ? ' ' : c;  // one event, one line
  line += '\n';
  // One write() per line, so lines from different threads never interleave.
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(STDERR_FILENO, line.data() + done, line.size() - done);
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace skopos
