// Logging to stderr in a form journald understands: under systemd (JOURNAL_STREAM set)
// each line starts with a syslog priority "<N>", which journald turns into the entry's
// priority; on a terminal it starts with the level's name instead. One line per event a
// person would act on; no trailing period; quote IDs. Thread-safe (one write per line).
//
// With LogFormat::kJson (--log-format json), for log shippers, the rest of each line is
// one JSON object instead: {"time":"2026-12-06T05:20:01.123Z","level":"warning",
// "program":"skopos-tracker","pid":42,"message":"..."} (time in UTC, RFC 3339 with
// milliseconds); under journald the "<N>" prefix stays, so the entry keeps its priority
// and its MESSAGE is the object.
#pragma once

#include <string_view>
#include <utility>

namespace skopos {

enum class LogLevel : int { kError = 3, kWarning = 4, kNotice = 5, kInfo = 6, kDebug = 7 };
// The levels' names (enum_names.h): "error", "warning", "notice", "info", "debug".
inline constexpr std::pair<LogLevel, const char*> kLogLevelNames[] = {{LogLevel::kError, "error"},
                                                                      {LogLevel::kWarning, "warning"},
                                                                      {LogLevel::kNotice, "notice"},
                                                                      {LogLevel::kInfo, "info"},
                                                                      {LogLevel::kDebug, "debug"}};

enum class LogFormat : int { kText, kJson };
inline constexpr std::pair<LogFormat, const char*> kLogFormatNames[] = {{LogFormat::kText, "text"},
                                                                        {LogFormat::kJson, "json"}};
// Default: kText.
void set_log_format(LogFormat format);

// Lines above `level` (less important) are dropped. Default: kInfo.
void set_log_level(LogLevel level);
// Parses "error", "warning", "notice", "info", "debug"; false if unknown.
bool parse_log_level(std::string_view text, LogLevel& level);

void log(LogLevel level, std::string_view message);
inline void log_error(std::string_view message) { log(LogLevel::kError, message); }
inline void log_warning(std::string_view message) { log(LogLevel::kWarning, message); }
inline void log_notice(std::string_view message) { log(LogLevel::kNotice, message); }
inline void log_info(std::string_view message) { log(LogLevel::kInfo, message); }
inline void log_debug(std::string_view message) { log(LogLevel::kDebug, message); }

}  // namespace skopos
