// Times as records, JSON and logs write them: RFC 3339 in UTC.
#pragma once

#include <cstdint>
#include <string>

namespace skopos {

// "2026-11-21T12:50:09Z" (how lock records, pauses and notifications store times).
std::string utc_time(std::int64_t unix_seconds);
// "2026-11-21T12:50:09.123Z" (log lines).
std::string utc_time_millis(std::int64_t unix_millis);

}  // namespace skopos
