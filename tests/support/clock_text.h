// Wall-clock times as the tests and bench_gates write them into commands (maintenance
// windows): header-only.
#pragma once

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

namespace skopos::testing {

// HH:MM in UTC, `offset` from now.
inline std::string utc_clock(std::chrono::minutes offset) {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() + offset);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[8];
  std::snprintf(text, sizeof text, "%02d:%02d", tm.tm_hour, tm.tm_min);
  return text;
}

}  // namespace skopos::testing
