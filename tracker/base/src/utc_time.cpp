#include "skopos/utc_time.h"

#include <cstdio>
#include <ctime>

namespace skopos {

std::string utc_time(std::int64_t unix_seconds) {
  const auto t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char text[32];
  const std::size_t length = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(text, length);
}

std::string utc_time_millis(std::int64_t unix_millis) {
  std::string text = utc_time(unix_millis / 1000);
  char fraction[8];
  std::snprintf(fraction, sizeof fraction, ".%03d", static_cast<int>(unix_millis % 1000));
  return text.insert(text.size() - 1, fraction);  // before the 'Z'
}

}  // namespace skopos
