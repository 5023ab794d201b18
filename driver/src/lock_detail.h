// Inside the lock service (not installed): what lock_service.cpp and lock_queue.cpp
// share -- the error helpers, the retry of one operation, the record parsers.
#pragma once

#include <simdjson.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "driver/lock_service.h"
#include "skopos/log.h"

namespace skopos::driver::lock_detail {

namespace dom = simdjson::dom;
using Clock = std::chrono::steady_clock;


inline LockError etcd_error(const std::string& what, const OutsideError& error) {
  return LockError{LockError::Kind::kEtcd, what + ": " + error.message};
}

inline LockError make_error(LockError::Kind kind, std::string message) { return LockError{kind, std::move(message)}; }

inline std::string quoted_group(const std::string& lock, const std::string& group) {
  return "lock '" + lock + "' group '" + group + "'";
}

// Errors worth another try: nothing was applied, or we will re-read before deciding.
inline bool transient(const OutsideError& error) {
  switch (error.kind) {
    case OutsideError::Kind::kUnavailable:
    case OutsideError::Kind::kUnknownOutcome: return true;
    // UNAVAILABLE ("no leader", "leader changed"), DEADLINE_EXCEEDED.
    case OutsideError::Kind::kRefused: return error.code == 14 || error.code == 4;
    case OutsideError::Kind::kBadResponse: return false;
    // etcd's client never gives these.
    case OutsideError::Kind::kNoLeader:
    case OutsideError::Kind::kNotFound:
    case OutsideError::Kind::kTimedOut: return false;
  }
  return false;
}

// Backoff between tries of one operation, bounded by its deadline.
class Retry {
 public:
  Retry(std::chrono::milliseconds backoff, Clock::time_point until) : backoff_(backoff, std::chrono::seconds(1), until) {}
  // After a transient error: sleeps and returns true while the deadline allows.
  bool again(const OutsideError& error) {
    if (!transient(error)) return false;
    // The first failure of an operation is worth a line; the retries after it are not.
    log(tries_++ == 0 ? LogLevel::kWarning : LogLevel::kDebug,
        error.message + "; retrying in " + std::to_string(backoff_.next().count()) + " ms");
    return backoff_.sleep();
  }

 private:
  DeadlineBackoff backoff_;
  int tries_ = 0;
};

inline std::string printable(const std::string& raw) {
  std::string out;
  for (const char c : raw.substr(0, 60)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return raw.size() > 60 ? out + "..." : out;
}

inline std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

// kInvalid naming the first of `names` that cannot be part of a key, if any.
inline std::optional<LockError> invalid_name(std::initializer_list<std::pair<const char*, const std::string*>> names) {
  for (const auto& [what, name] : names) {
    if (!valid_key_name(*name)) {
      return LockError{LockError::Kind::kInvalid, std::string("invalid ") + what + " '" + printable(*name) +
                                                      "': use 1-128 of letters, digits, '_', '.' and '-'"};
    }
  }
  return std::nullopt;
}


bool parse_utc_time(std::string_view text, std::int64_t& out);
// Reads string fields of a JSON object; false names the first one missing or mistyped.
bool read_strings(dom::object object, std::initializer_list<std::pair<const char*, std::string*>> fields,
                  std::string& problem);
// Fills a holder from its key's value.
void parse_holder(dom::parser& parser, const KeyValue& kv, const std::string& machine_id, Holder& holder);
// Groups from a range over P/locks/ (sorted by key, so one group's keys are adjacent);
// keys that are not ours go to `unrecognized`.
void parse_locks(dom::parser& parser, const std::string& locks_prefix, const std::vector<KeyValue>& kvs,
                 std::vector<GroupState>& groups, std::vector<std::string>& unrecognized);
// Fills a waiter from its queue key's value.
void parse_waiter(dom::parser& parser, const KeyValue& kv, const std::string& machine_id, Waiter& waiter);

}  // namespace skopos::driver::lock_detail
