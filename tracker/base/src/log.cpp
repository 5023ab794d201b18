#include "skopos/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "skopos/enum_names.h"
#include "skopos/json_writer.h"
#include "skopos/utc_time.h"

namespace skopos {

namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_format{static_cast<int>(LogFormat::kText)};

std::string_view level_name(LogLevel level) { return enum_name(kLogLevelNames, level, "info"); }

// Whether stderr is the journal's stream: JOURNAL_STREAM ("<dev>:<inode>") names the
// stream systemd connected, and a child that inherited the variable with its stderr
// sent elsewhere (a pipe, a file) must not write priority prefixes there.
bool under_journal() {
  static const bool journal = [] {
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (stream == nullptr) return false;
    unsigned long long device = 0;
    unsigned long long inode = 0;
    struct stat st {};
    return std::sscanf(stream, "%llu:%llu", &device, &inode) == 2 && ::fstat(STDERR_FILENO, &st) == 0 &&
           static_cast<unsigned long long>(st.st_dev) == device && static_cast<unsigned long long>(st.st_ino) == inode;
  }();
  return journal;
}


}  // namespace

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }
void set_log_format(LogFormat format) { g_format = static_cast<int>(format); }

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
  }
  if (g_format.load(std::memory_order_relaxed) == static_cast<int>(LogFormat::kJson)) {
    // The writer escapes newlines and control characters: still one event, one line.
    JsonWriter json(line);
    json.begin_object()
        .key("time")
        .value(utc_time_millis(std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count()))
        .key("level")
        .value(level_name(level))
        .key("program")
        .value(program_invocation_short_name)
        .key("pid")
        .value(static_cast<std::int64_t>(::getpid()))
        .key("message")
        .value(message)
        .end_object();
  } else {
    if (!under_journal()) {
      line += level_name(level);
      line += ": ";
    }
    for (char c : message) line += c == '\n' ? ' ' : c;  // one event, one line
  }
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
