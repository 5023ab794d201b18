#include "driver/lock_service.h"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <thread>

#include "skopos/json_writer.h"
#include "skopos/log.h"

namespace skopos::driver {

namespace dom = simdjson::dom;
using Clock = std::chrono::steady_clock;

namespace {

LockError etcd_error(const std::string& what, const OutsideError& error) {
  return LockError{LockError::Kind::kEtcd, what + ": " + error.message};
}

LockError make_error(LockError::Kind kind, std::string message) { return LockError{kind, std::move(message)}; }

std::string quoted_group(const std::string& lock, const std::string& group) {
  return "lock '" + lock + "' group '" + group + "'";
}

// Errors worth another try: nothing was applied, or we will re-read before deciding.
bool transient(const OutsideError& error) {
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

std::string printable(const std::string& raw) {
  std::string out;
  for (const char c : raw.substr(0, 60)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return raw.size() > 60 ? out + "..." : out;
}

std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

// kInvalid naming the first of `names` that cannot be part of a key, if any.
std::optional<LockError> invalid_name(std::initializer_list<std::pair<const char*, const std::string*>> names) {
  for (const auto& [what, name] : names) {
    if (!valid_key_name(*name)) {
      return LockError{LockError::Kind::kInvalid, std::string("invalid ") + what + " '" + printable(*name) +
                                                      "': use 1-128 of letters, digits, '_', '.' and '-'"};
    }
  }
  return std::nullopt;
}

}  // namespace

std::string utc_time(std::int64_t seconds) {
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

namespace {

bool parse_utc_time(std::string_view text, std::int64_t& out) {
  std::tm tm{};
  const std::string copy(text);
  const char* end = ::strptime(copy.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (end == nullptr || *end != '\0') return false;
  out = static_cast<std::int64_t>(::timegm(&tm));
  return true;
}

bool parse_count(std::string_view text, std::int64_t& out) {
  if (text.empty() || text.size() > 7) return false;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && ptr == text.data() + text.size() && out >= 0;
}

// Reads string fields of a JSON object; false names the first one missing or mistyped.
bool read_strings(dom::object object, std::initializer_list<std::pair<const char*, std::string*>> fields,
                  std::string& problem) {
  for (const auto& [name, out] : fields) {
    std::string_view value;
    if (object[name].get(value) != simdjson::SUCCESS) {
      problem = std::string("field \"") + name + "\" is missing or not a string";
      return false;
    }
    out->assign(value);
  }
  return true;
}


}  // namespace

const char* lock_error_kind_name(LockError::Kind kind) {
  switch (kind) {
    case LockError::Kind::kEtcd: return "etcd";
    case LockError::Kind::kTimedOut: return "timed-out";
    case LockError::Kind::kConflict: return "conflict";
    case LockError::Kind::kBadData: return "bad-data";
    case LockError::Kind::kInvalid: return "invalid";
    case LockError::Kind::kInterrupted: return "interrupted";
  }
  return "etcd";
}

bool LockService::valid_host_token(const std::string& token) {
  return token == "REBOOT" || token == "DRAIN" || token == "BOOSTER";
}

LockService::LockService(EtcdClient& etcd, HostIdentity self, LockServiceOptions options)
    : etcd_(etcd), self_(std::move(self)), options_(std::move(options)), parser_(std::make_unique<dom::parser>()) {
  while (options_.prefix.size() > 1 && options_.prefix.back() == '/') options_.prefix.pop_back();
}
LockService::~LockService() = default;

std::string LockService::group_prefix(const std::string& lock, const std::string& group) const {
  return options_.prefix + "/locks/" + lock + "/" + group + "/";
}
std::string LockService::holder_key(const std::string& lock, const std::string& group,
                                    const std::string& machine_id) const {
  return group_prefix(lock, group) + "holders/" + machine_id;
}
std::string LockService::budget_key(const std::string& machine_id) const {
  return options_.prefix + "/budget/" + machine_id;
}

std::string LockService::host_key(const std::string& machine_id) const {
  return options_.prefix + "/hosts/" + machine_id;
}

std::string LockService::holder_json(const HolderRecord& record) const {
  std::string out;
  JsonWriter json(out);
  json.begin_object()
      .key("machine_id").value(record.machine_id)
      .key("token").value(record.token)
      .key("boot_id").value(record.boot_id)
      .key("phase").value(record.phase)
      .key("hostname").value(record.hostname)
      .key("acquired_at").value(utc_time(record.acquired_at))
      .end_object();
  return out;
}

namespace {

// Fills a holder from its key's value.
void parse_holder(dom::parser& parser, const KeyValue& kv, const std::string& machine_id, Holder& holder) {
  holder.machine_id = machine_id;
  holder.fencing_token = kv.create_revision;
  holder.updated_revision = kv.mod_revision;
  dom::object object;
  if (parser.parse(kv.value).get(object) != simdjson::SUCCESS) {
    holder.problem = "not a JSON object: '" + printable(kv.value) + "'";
    return;
  }
  HolderRecord& r = holder.record;
  std::string acquired;
  if (!read_strings(object,
                    {{"machine_id", &r.machine_id}, {"token", &r.token}, {"boot_id", &r.boot_id}, {"phase", &r.phase},
                     {"hostname", &r.hostname}, {"acquired_at", &acquired}},
                    holder.problem)) {
    return;
  }
  if (!parse_utc_time(acquired, r.acquired_at)) {
    holder.problem = "acquired_at '" + printable(acquired) + "' is not a UTC time";
    return;
  }
  if (r.machine_id != machine_id) {
    holder.problem = "record names machine '" + printable(r.machine_id) + "' under the key of '" + machine_id + "'";
    return;
  }
  holder.valid = true;
}

// Adds one key under P/locks/ to the group it belongs to. `rest` is "<lock>/<group>/...".
bool add_lock_key(dom::parser& parser, const KeyValue& kv, std::string_view rest, std::vector<GroupState>& groups) {
  const auto slash1 = rest.find('/');
  if (slash1 == std::string_view::npos) return false;
  const auto slash2 = rest.find('/', slash1 + 1);
  if (slash2 == std::string_view::npos) return false;
  const std::string lock(rest.substr(0, slash1));
  const std::string group(rest.substr(slash1 + 1, slash2 - slash1 - 1));
  const std::string_view tail = rest.substr(slash2 + 1);
  if (!valid_key_name(lock) || !valid_key_name(group)) return false;
  const bool is_max = tail == "max";
  const bool is_holder = tail.starts_with("holders/") && valid_key_name(tail.substr(8));
  if (!is_max && !is_holder) return false;
  if (groups.empty() || groups.back().lock != lock || groups.back().group != group) {
    groups.push_back(GroupState{});
    groups.back().lock = lock;
    groups.back().group = group;
  }
  GroupState& state = groups.back();
  if (is_max) {
    state.max_set = true;
    state.max_mod_revision = kv.mod_revision;
    if (!parse_count(kv.value, state.max)) {
      state.max = 0;
      state.max_problem = "the max key holds '" + printable(kv.value) + "', not a count";
    }
  } else {
    Holder holder;
    parse_holder(parser, kv, std::string(tail.substr(8)), holder);
    state.holders.push_back(std::move(holder));
  }
  return true;
}

// Groups from a range over P/locks/ (sorted by key, so one group's keys are adjacent).
void parse_locks(dom::parser& parser, const std::string& locks_prefix, const std::vector<KeyValue>& kvs,
                 std::vector<GroupState>& groups, std::vector<std::string>& unrecognized) {
  for (const KeyValue& kv : kvs) {
    const std::string_view rest = std::string_view(kv.key).substr(locks_prefix.size());
    if (!add_lock_key(parser, kv, rest, groups)) unrecognized.push_back(kv.key);
  }
}

// The machine a key under P/heartbeats/ beats for: "<machine>/<instance>" (one key per
// process), or "<machine>" as an older version wrote it.
std::string_view heartbeat_machine(std::string_view rest) { return rest.substr(0, rest.find('/')); }

// Marks holders with a live heartbeat key, from a range over P/heartbeats/.
void join_heartbeats(dom::parser& parser, const std::string& heartbeats_prefix, const std::vector<KeyValue>& kvs,
                     std::vector<Holder>& holders) {
  for (Holder& holder : holders) {
    holder.heartbeat = false;
    holder.heartbeat_boot_id.clear();
    for (const KeyValue& kv : kvs) {
      if (heartbeat_machine(std::string_view(kv.key).substr(heartbeats_prefix.size())) != holder.machine_id) continue;
      holder.heartbeat = true;
      dom::object object;
      std::string_view boot;
      if (parser.parse(kv.value).get(object) == simdjson::SUCCESS && object["boot_id"].get(boot) == simdjson::SUCCESS) {
        holder.heartbeat_boot_id.assign(boot);
      }
    }
  }
}

}  // namespace

Result<GroupState, OutsideError> LockService::read_group(const std::string& lock, const std::string& group,
                                                      std::int64_t& revision) {
  const std::string prefix = group_prefix(lock, group);
  auto range = etcd_.range(prefix, EtcdClient::prefix_end(prefix));
  if (!range) return unexpected(std::move(range).error());
  revision = range->revision;
  std::vector<GroupState> groups;
  std::vector<std::string> unrecognized;
  parse_locks(*parser_, options_.prefix + "/locks/", range->kvs, groups, unrecognized);
  if (groups.empty()) {
    GroupState empty;
    empty.lock = lock;
    empty.group = group;
    return empty;
  }
  return std::move(groups.front());
}

Result<std::vector<std::string>, LockError> LockService::live_heartbeats(std::vector<Holder>& holders) {
  const std::string prefix = options_.prefix + "/heartbeats/";
  auto range = etcd_.range(prefix, EtcdClient::prefix_end(prefix));
  if (!range) return unexpected(etcd_error("read heartbeats", range.error()));
  join_heartbeats(*parser_, prefix, range->kvs, holders);
  std::vector<std::string> stale;
  for (const Holder& holder : holders) {
    if (!holder.heartbeat) stale.push_back(holder.machine_id);
  }
  return stale;
}

Result<Acquired, LockError> LockService::acquire(const std::string& lock, const std::string& group,
                                                 const std::string& token, Clock::time_point until,
                                                 const std::atomic<bool>* stop) {
  const auto stopped = [stop] { return stop != nullptr && stop->load(std::memory_order_relaxed); };
  if (auto bad = invalid_name({{"lock", &lock}, {"group", &group}, {"token", &token}})) return unexpected(*bad);
  const std::string my_key = holder_key(lock, group, self_.machine_id);
  const std::string prefix = group_prefix(lock, group);
  const std::string holders_prefix = prefix + "holders/";
  Retry retry(options_.retry_backoff, until);
  std::string waiting_for;  // the holder set we last logged waiting on
  bool sent_unknown = false;  // a taking txn whose outcome we never heard
  for (;;) {
    std::int64_t revision = 0;
    auto state = read_group(lock, group, revision);
    if (!state) {
      if (retry.again(state.error())) continue;  // a bad response never retries
      return unexpected(etcd_error("read " + quoted_group(lock, group), state.error()));
    }
    for (const Holder& holder : state->holders) {
      if (holder.machine_id != self_.machine_id) continue;
      if (!holder.valid) {
        return unexpected(make_error(LockError::Kind::kBadData, "this machine's record in " + quoted_group(lock, group) +
                                                                    " is unreadable (" + holder.problem +
                                                                    "); remove it with 'skopos lock unlock " + lock +
                                                                    " " + group + " " + self_.machine_id + "'"));
      }
      if (auto clone = another_host("the slot of " + quoted_group(lock, group), holder.record.hostname,
                                    holder.record.boot_id)) {
        return unexpected(*clone);
      }
      if (holder.record.token != token) {
        return unexpected(make_error(LockError::Kind::kConflict, "this machine holds " + quoted_group(lock, group) +
                                                                     " with token '" + holder.record.token +
                                                                     "', not '" + token + "'"));
      }
      // After a lost answer the record we find is this call's own (we had read our key absent).
      return Acquired{holder.fencing_token, !sent_unknown, holder.record};
    }
    if (!state->max_problem.empty()) {
      return unexpected(make_error(LockError::Kind::kBadData, quoted_group(lock, group) + ": " + state->max_problem +
                                                                  "; fix it with 'skopos lock set-max " + lock + " " +
                                                                  group + " N'"));
    }
    const auto held = static_cast<std::int64_t>(state->holders.size());
    if (held < state->max) {
      HolderRecord record{self_.machine_id, token, self_.boot_id, "acquired", self_.hostname, unix_now()};
      std::vector<Compare> compares;
      Compare no_new_holder;  // every holder key was created at or before `revision`
      no_new_holder.key = holders_prefix;
      no_new_holder.range_end = EtcdClient::prefix_end(holders_prefix);
      no_new_holder.target = Compare::Target::kCreateRevision;
      no_new_holder.result = Compare::Result::kLess;
      no_new_holder.number = revision + 1;
      compares.push_back(no_new_holder);
      compares.push_back(Compare{my_key, Compare::Target::kCreateRevision, Compare::Result::kEqual, 0, {}, {}});
      compares.push_back(Compare{prefix + "max", Compare::Target::kModRevision, Compare::Result::kEqual,
                                 state->max_mod_revision, {}, {}});
      auto txn = etcd_.txn(compares, {TxnOp{TxnOp::Kind::kPut, my_key, holder_json(record), 0, {}}}, {});
      if (!txn) {
        // Unknown outcome: the next read finds our record if it was applied.
        sent_unknown = sent_unknown || txn.error().maybe_applied();
        if (retry.again(txn.error())) continue;
        return unexpected(etcd_error("take a slot of " + quoted_group(lock, group), txn.error()));
      }
      if (txn->succeeded) {
        log_info("acquired " + quoted_group(lock, group) + " with token '" + token + "' (fencing token " +
                 std::to_string(txn->revision) + ")");
        return Acquired{txn->revision, false, record};
      }
      continue;  // someone else moved first: count again
    }
    if (Clock::now() >= until) {
      std::string names;
      for (const Holder& holder : state->holders) names += (names.empty() ? "'" : ", '") + holder.machine_id + "'";
      return unexpected(make_error(LockError::Kind::kTimedOut,
                                   "timed out waiting for " + quoted_group(lock, group) + ": " + std::to_string(held) +
                                       " of max " + std::to_string(state->max) + " held" +
                                       (names.empty() ? std::string() : " by " + names)));
    }
    std::string names;
    for (const Holder& holder : state->holders) names += (names.empty() ? "'" : ", '") + holder.machine_id + "'";
    if (names != waiting_for) {
      waiting_for = names;
      log_info("waiting for " + quoted_group(lock, group) + ": " + std::to_string(held) + " of max " +
               std::to_string(state->max) + " held by " + names);
      auto stale = live_heartbeats(state->holders);
      if (stale) {
        for (const std::string& machine : *stale) {
          log_warning("holder '" + machine + "' of " + quoted_group(lock, group) +
                      " is stale: no heartbeat; it keeps its slot until it releases or an admin unlocks it");
        }
      }
    }
    // Wait for any change in the group since the read. With a stop flag, the watch is
    // re-armed every kStopLatency from the same revision: nothing is missed, nothing is
    // re-read, and a stop ends the wait at once.
    for (;;) {
      if (stopped()) {
        return unexpected(make_error(LockError::Kind::kInterrupted,
                                     "stopped while waiting for " + quoted_group(lock, group) + "; no slot was taken"));
      }
      const auto slice_end = stop == nullptr ? until : std::min(until, Clock::now() + kStopLatency);
      auto change = etcd_.wait_for_change(prefix, EtcdClient::prefix_end(prefix), revision + 1, slice_end);
      if (!change) {
        if (!retry.again(change.error())) return unexpected(etcd_error("watch " + quoted_group(lock, group), change.error()));
        break;
      }
      if (!change->events.empty() || change->compacted || Clock::now() >= until) break;
    }
  }
}

Result<std::optional<Holder>, OutsideError> LockService::read_holder(const std::string& lock, const std::string& group,
                                                                  const std::string& machine_id) {
  auto range = etcd_.range(holder_key(lock, group, machine_id));
  if (!range) return unexpected(std::move(range).error());
  if (range->kvs.empty()) return std::optional<Holder>();
  Holder holder;
  parse_holder(*parser_, range->kvs.front(), machine_id, holder);
  return std::optional<Holder>(std::move(holder));
}

Result<bool, LockError> LockService::release(const std::string& lock, const std::string& group,
                                             std::int64_t fencing_token) {
  if (auto bad = invalid_name({{"lock", &lock}, {"group", &group}})) return unexpected(*bad);
  const std::string my_key = holder_key(lock, group, self_.machine_id);
  Retry retry(options_.retry_backoff, Clock::now() + options_.operation_timeout);
  bool released = false;  // a delete of ours whose outcome was unknown, then found gone
  for (;;) {
    auto holder = read_holder(lock, group, self_.machine_id);
    if (!holder) {
      if (retry.again(holder.error())) continue;
      return unexpected(etcd_error("read " + quoted_group(lock, group), holder.error()));
    }
    if (!holder->has_value()) return released;
    const std::int64_t token = (*holder)->fencing_token;
    if (fencing_token != 0 && token != fencing_token) {
      return unexpected(make_error(LockError::Kind::kConflict, quoted_group(lock, group) + ": this machine's slot is " +
                                                                   "fencing token " + std::to_string(token) +
                                                                   ", not " + std::to_string(fencing_token)));
    }
    auto txn = etcd_.txn({Compare{my_key, Compare::Target::kCreateRevision, Compare::Result::kEqual, token, {}, {}}},
                         {TxnOp{TxnOp::Kind::kDelete, my_key, {}, 0, {}}}, {});
    if (!txn) {
      if (retry.again(txn.error())) {
        released = true;
        continue;
      }
      return unexpected(etcd_error("release " + quoted_group(lock, group), txn.error()));
    }
    if (txn->succeeded) {
      log_info("released " + quoted_group(lock, group) + " (fencing token " + std::to_string(token) + ")");
      return true;
    }
  }
}

Result<void, LockError> LockService::guard(const std::string& lock, const std::string& group,
                                           std::int64_t fencing_token, const std::string& phase) {
  if (auto bad = invalid_name({{"lock", &lock}, {"group", &group}, {"phase", &phase}})) return unexpected(*bad);
  const std::string my_key = holder_key(lock, group, self_.machine_id);
  Retry retry(options_.retry_backoff, Clock::now() + options_.operation_timeout);
  for (;;) {
    auto holder = read_holder(lock, group, self_.machine_id);
    if (!holder) {
      if (retry.again(holder.error())) continue;
      return unexpected(etcd_error("read " + quoted_group(lock, group), holder.error()));
    }
    if (!holder->has_value() || (*holder)->fencing_token != fencing_token) {
      return unexpected(make_error(LockError::Kind::kConflict,
                                   "this machine no longer holds " + quoted_group(lock, group) + " with fencing token " +
                                       std::to_string(fencing_token) +
                                       (holder->has_value() ? " (it holds " + std::to_string((*holder)->fencing_token) + ")"
                                                            : std::string(" (no slot)"))));
    }
    if (!(*holder)->valid) {
      return unexpected(make_error(LockError::Kind::kBadData,
                                   "this machine's record in " + quoted_group(lock, group) + " is unreadable (" +
                                       (*holder)->problem + ")"));
    }
    HolderRecord record = (*holder)->record;
    if (record.phase == phase && record.boot_id == self_.boot_id) return {};  // recorded (perhaps by a retried txn)
    record.phase = phase;
    record.boot_id = self_.boot_id;
    auto txn = etcd_.txn(
        {Compare{my_key, Compare::Target::kCreateRevision, Compare::Result::kEqual, fencing_token, {}, {}}},
        {TxnOp{TxnOp::Kind::kPut, my_key, holder_json(record), 0, {}}}, {});
    if (!txn) {
      if (retry.again(txn.error())) continue;
      return unexpected(etcd_error("guard " + quoted_group(lock, group), txn.error()));
    }
    if (txn->succeeded) {
      log_debug("guard " + quoted_group(lock, group) + ": phase '" + phase + "' (fencing token " +
                std::to_string(fencing_token) + ")");
      return {};
    }
    // The compare failed: the next read says how (gone, or another holding).
  }
}

Result<std::optional<Holder>, LockError> LockService::unlock(const std::string& lock, const std::string& group,
                                                             const std::string& machine_id, bool force) {
  if (auto bad = invalid_name({{"lock", &lock}, {"group", &group}, {"machine id", &machine_id}})) {
    return unexpected(*bad);
  }
  const std::string key = holder_key(lock, group, machine_id);
  Retry retry(options_.retry_backoff, Clock::now() + options_.operation_timeout);
  std::optional<Holder> removed;  // set once our delete may have been applied
  for (;;) {
    auto holder = read_holder(lock, group, machine_id);
    if (!holder) {
      if (retry.again(holder.error())) continue;
      return unexpected(etcd_error("read " + quoted_group(lock, group), holder.error()));
    }
    if (!holder->has_value()) return removed;
    std::vector<Holder> one{**holder};
    auto stale = live_heartbeats(one);
    if (!stale) return unexpected(std::move(stale).error());
    if (one.front().heartbeat && !force) {
      return unexpected(make_error(LockError::Kind::kConflict,
                                   "holder '" + machine_id + "' of " + quoted_group(lock, group) +
                                       " is alive (its heartbeat is fresh); breaking a live holder's lock needs "
                                       "--force --confirm " + machine_id));
    }
    const std::int64_t token = (*holder)->fencing_token;
    auto txn = etcd_.txn({Compare{key, Compare::Target::kCreateRevision, Compare::Result::kEqual, token, {}, {}}},
                         {TxnOp{TxnOp::Kind::kDelete, key, {}, 0, {}}}, {});
    if (!txn) {
      if (retry.again(txn.error())) {
        removed = one.front();
        continue;
      }
      return unexpected(etcd_error("unlock " + quoted_group(lock, group), txn.error()));
    }
    if (txn->succeeded) {
      log_warning("unlocked " + quoted_group(lock, group) + ": removed holder '" + machine_id + "' (fencing token " +
                  std::to_string(token) + (one.front().heartbeat ? ", heartbeat fresh, forced)" : ", stale)"));
      return std::optional<Holder>(one.front());
    }
  }
}

Result<GroupState, LockError> LockService::set_max(const std::string& lock, const std::string& group,
                                                   std::int64_t max) {
  if (auto bad = invalid_name({{"lock", &lock}, {"group", &group}})) return unexpected(*bad);
  if (max < 0 || max > 1000000) {
    return unexpected(make_error(LockError::Kind::kInvalid, "max must be between 0 and 1000000"));
  }
  Retry retry(options_.retry_backoff, Clock::now() + options_.operation_timeout);
  for (;;) {
    // Putting the same value twice is harmless, so an unknown outcome is simply retried.
    auto put = etcd_.put(group_prefix(lock, group) + "max", std::to_string(max));
    if (!put) {
      if (retry.again(put.error())) continue;
      return unexpected(etcd_error("set max of " + quoted_group(lock, group), put.error()));
    }
    break;
  }
  auto state = group_status(lock, group);
  if (!state) return state;
  const auto held = static_cast<std::int64_t>(state->holders.size());
  log_notice("max of " + quoted_group(lock, group) + " is now " + std::to_string(max) +
             (held > max ? "; " + std::to_string(held) + " hold it, so no new holder until some release" : ""));
  return state;
}

Result<GroupState, LockError> LockService::group_status(const std::string& lock, const std::string& group) {
  if (auto bad = invalid_name({{"lock", &lock}, {"group", &group}})) return unexpected(*bad);
  Retry retry(options_.retry_backoff, Clock::now() + options_.operation_timeout);
  for (;;) {
    std::int64_t revision = 0;
    auto state = read_group(lock, group, revision);
    if (!state) {
      if (retry.again(state.error())) continue;
      return unexpected(etcd_error("read " + quoted_group(lock, group), state.error()));
    }
    auto stale = live_heartbeats(state->holders);
    if (!stale) return unexpected(std::move(stale).error());
    return std::move(*state);
  }
}

Result<LockStatus, LockError> LockService::status() {
  const std::string locks_prefix = options_.prefix + "/locks/";
  const std::string heartbeats_prefix = options_.prefix + "/heartbeats/";
  Retry retry(options_.retry_backoff, Clock::now() + options_.operation_timeout);
  for (;;) {
    // One read-only transaction: locks and heartbeats at the same revision.
    auto txn = etcd_.txn({},
                         {TxnOp{TxnOp::Kind::kRange, locks_prefix, {}, 0, EtcdClient::prefix_end(locks_prefix)},
                          TxnOp{TxnOp::Kind::kRange, heartbeats_prefix, {}, 0, EtcdClient::prefix_end(heartbeats_prefix)}},
                         {});
    if (!txn) {
      if (retry.again(txn.error())) continue;
      return unexpected(etcd_error("read lock status", txn.error()));
    }
    if (txn->ranges.size() != 2) {
      return unexpected(make_error(LockError::Kind::kEtcd, "read lock status: etcd answered without the two ranges"));
    }
    LockStatus status;
    status.revision = txn->revision;
    parse_locks(*parser_, locks_prefix, txn->ranges[0].kvs, status.groups, status.unrecognized_keys);
    for (GroupState& group : status.groups) join_heartbeats(*parser_, heartbeats_prefix, txn->ranges[1].kvs, group.holders);
    return status;
  }
}

namespace {

bool parse_host_record(dom::parser& parser, const KeyValue& kv, HostLockState& state, std::string& problem) {
  dom::object object;
  if (parser.parse(kv.value).get(object) != simdjson::SUCCESS) {
    problem = "not a JSON object: '" + printable(kv.value) + "'";
    return false;
  }
  std::string since;
  if (!read_strings(object, {{"token", &state.token}, {"hostname", &state.hostname}, {"boot_id", &state.boot_id},
                             {"locked_at", &since}},
                    problem)) {
    return false;
  }
  if (!LockService::valid_host_token(state.token)) {
    problem = "token '" + printable(state.token) + "' is not REBOOT, DRAIN or BOOSTER";
    return false;
  }
  if (!parse_utc_time(since, state.locked_at)) {
    problem = "locked_at '" + printable(since) + "' is not a UTC time";
    return false;
  }
  state.locked = true;
  state.revision = kv.create_revision;
  return true;
}

}  // namespace

Result<std::optional<HostLockState>, OutsideError> LockService::read_host(const std::string& machine_id,
                                                                       std::string& problem) {
  problem.clear();
  auto range = etcd_.range(host_key(machine_id));
  if (!range) return unexpected(std::move(range).error());
  if (range->kvs.empty()) return std::optional<HostLockState>();
  HostLockState state;
  state.machine_id = machine_id;
  parse_host_record(*parser_, range->kvs.front(), state, problem);
  state.revision = range->kvs.front().create_revision;
  return std::optional<HostLockState>(std::move(state));
}

Result<HostLockState, LockError> LockService::host_status(const std::string& machine_id) {
  if (auto bad = invalid_name({{"machine id", &machine_id}})) return unexpected(*bad);
  Retry retry(options_.retry_backoff, Clock::now() + options_.operation_timeout);
  for (;;) {
    std::string problem;
    auto host = read_host(machine_id, problem);
    if (!host) {
      if (retry.again(host.error())) continue;
      return unexpected(etcd_error("read host lock of '" + machine_id + "'", host.error()));
    }
    if (!problem.empty()) {
      return unexpected(make_error(LockError::Kind::kBadData, "host lock '" + host_key(machine_id) +
                                                                  "' is unreadable: " + problem));
    }
    if (!host->has_value()) {
      HostLockState unlocked;
      unlocked.machine_id = machine_id;
      return unlocked;
    }
    return std::move(**host);
  }
}

std::optional<LockError> LockService::another_host(const std::string& what, const std::string& hostname,
                                                  const std::string& boot_id) {
  // A record of this machine id written by another host: two hosts cloned from one image
  // share /etc/machine-id, and would share one slot. Another hostname says so at once;
  // another boot id says so when that boot is alive (it still beats), since our own
  // earlier boot (before a reboot) is not.
  const std::string fix = "; two hosts share machine id '" + self_.machine_id +
                          "' (cloned from one image?): give each its own (systemd-machine-id-setup, or --machine-id)";
  if (!hostname.empty() && !self_.hostname.empty() && hostname != self_.hostname) {
    return make_error(LockError::Kind::kConflict, what + " of this machine id was written by host '" + hostname +
                                                      "', and this is '" + self_.hostname + "'" + fix);
  }
  if (boot_id.empty() || boot_id == self_.boot_id) return std::nullopt;
  const std::string prefix = options_.prefix + "/heartbeats/" + self_.machine_id + "/";
  auto beats = etcd_.range(prefix, EtcdClient::prefix_end(prefix));
  if (!beats) return std::nullopt;  // cannot tell: the other checks still hold
  for (const KeyValue& kv : beats->kvs) {
    dom::object object;
    std::string_view boot;
    if (parser_->parse(kv.value).get(object) == simdjson::SUCCESS && object["boot_id"].get(boot) == simdjson::SUCCESS &&
        boot == boot_id) {
      return make_error(LockError::Kind::kConflict, what + " of this machine id belongs to boot '" + boot_id +
                                                        "', which is alive (it beats), and this is boot '" +
                                                        self_.boot_id + "'" + fix);
    }
  }
  return std::nullopt;
}

Result<HostLockState, LockError> LockService::host_lock(const std::string& token) {
  if (!valid_host_token(token)) {
    return unexpected(make_error(LockError::Kind::kInvalid,
                                 "host lock token '" + printable(token) + "' is not REBOOT, DRAIN or BOOSTER"));
  }
  const std::string key = host_key(self_.machine_id);
  Retry retry(options_.retry_backoff, Clock::now() + options_.operation_timeout);
  bool maybe_ours = false;  // a create whose outcome was unknown
  for (;;) {
    auto current = host_status(self_.machine_id);
    if (!current) return current;
    if (current->locked) {
      if (auto clone = another_host("the host lock", current->hostname, current->boot_id)) return unexpected(*clone);
      if (current->token != token) {
        return unexpected(make_error(LockError::Kind::kConflict,
                                     "host '" + self_.machine_id + "' is locked for " + current->token + " since " +
                                         utc_time(current->locked_at) + ", not " + token));
      }
      current->already = !maybe_ours;
      return current;
    }
    std::string value;
    JsonWriter json(value);
    const std::int64_t now = unix_now();
    json.begin_object()
        .key("token").value(token)
        .key("hostname").value(self_.hostname)
        .key("boot_id").value(self_.boot_id)
        .key("locked_at").value(utc_time(now))
        .end_object();
    auto txn = etcd_.txn({Compare{key, Compare::Target::kCreateRevision, Compare::Result::kEqual, 0, {}, {}}},
                         {TxnOp{TxnOp::Kind::kPut, key, value, 0, {}}}, {});
    if (!txn) {
      if (retry.again(txn.error())) {
        maybe_ours = true;
        continue;
      }
      return unexpected(etcd_error("lock host '" + self_.machine_id + "'", txn.error()));
    }
    if (txn->succeeded) {
      log_notice("host '" + self_.machine_id + "' locked for " + token);
      return HostLockState{true, self_.machine_id, token, self_.hostname, self_.boot_id, now, txn->revision, false};
    }
  }
}

Result<bool, LockError> LockService::host_unlock(const std::string& token) {
  if (!valid_host_token(token)) {
    return unexpected(make_error(LockError::Kind::kInvalid,
                                 "host lock token '" + printable(token) + "' is not REBOOT, DRAIN or BOOSTER"));
  }
  const std::string key = host_key(self_.machine_id);
  Retry retry(options_.retry_backoff, Clock::now() + options_.operation_timeout);
  bool removed = false;
  for (;;) {
    std::string problem;
    auto host = read_host(self_.machine_id, problem);
    if (!host) {
      if (retry.again(host.error())) continue;
      return unexpected(etcd_error("read host lock of '" + self_.machine_id + "'", host.error()));
    }
    if (!host->has_value()) return removed;
    if (!problem.empty()) {
      return unexpected(make_error(LockError::Kind::kBadData, "host lock '" + key + "' is unreadable: " + problem +
                                                                  "; nothing was removed"));
    }
    if ((*host)->token != token) {
      return unexpected(make_error(LockError::Kind::kConflict, "host '" + self_.machine_id + "' is locked for " +
                                                                   (*host)->token + ", not " + token +
                                                                   "; only that token may unlock it"));
    }
    auto txn = etcd_.txn(
        {Compare{key, Compare::Target::kCreateRevision, Compare::Result::kEqual, (*host)->revision, {}, {}}},
        {TxnOp{TxnOp::Kind::kDelete, key, {}, 0, {}}}, {});
    if (!txn) {
      if (retry.again(txn.error())) {
        removed = true;
        continue;
      }
      return unexpected(etcd_error("unlock host '" + self_.machine_id + "'", txn.error()));
    }
    if (txn->succeeded) {
      log_notice("host '" + self_.machine_id + "' unlocked (" + token + ")");
      return true;
    }
  }
}

Result<BudgetClaims, LockError> LockService::budget_claims() {
  const std::string prefix = options_.prefix + "/budget/";
  Retry retry(options_.retry_backoff, Clock::now() + options_.operation_timeout);
  for (;;) {
    auto range = etcd_.range(prefix, EtcdClient::prefix_end(prefix));
    if (!range) {
      if (retry.again(range.error())) continue;
      return unexpected(etcd_error("read the disruption budget's claims", range.error()));
    }
    BudgetClaims out;
    out.revision = range->revision;
    for (const KeyValue& kv : range->kvs) {
      BudgetClaim claim;
      claim.machine_id = kv.key.substr(prefix.size());
      dom::object object;
      std::string_view text;
      if (parser_->parse(kv.value).get(object) != simdjson::SUCCESS ||
          object["hostname"].get(text) != simdjson::SUCCESS || text.empty()) {
        return unexpected(make_error(LockError::Kind::kBadData,
                                     "budget claim '" + kv.key + "' is unreadable (no hostname); remove it only once "
                                     "that host is back in service"));
      }
      claim.hostname.assign(text);
      if (object["kind"].get(text) == simdjson::SUCCESS) claim.kind.assign(text);
      std::int64_t at = 0;
      if (object["claimed_at"].get(at) == simdjson::SUCCESS) claim.claimed_at = at;
      out.claims.push_back(std::move(claim));
    }
    return out;
  }
}

Result<bool, LockError> LockService::claim_budget(std::int64_t seen_revision, const std::string& hostname,
                                                  const std::string& kind) {
  const std::string prefix = options_.prefix + "/budget/";
  const std::string key = budget_key(self_.machine_id);
  std::string value;
  JsonWriter json(value);
  json.begin_object()
      .key("hostname").value(hostname)
      .key("kind").value(kind)
      .key("boot_id").value(self_.boot_id)
      .key("claimed_at").value(unix_now())
      .end_object();
  Compare no_new_claim;  // every claim was created at or before what the check saw
  no_new_claim.key = prefix;
  no_new_claim.range_end = EtcdClient::prefix_end(prefix);
  no_new_claim.target = Compare::Target::kCreateRevision;
  no_new_claim.result = Compare::Result::kLess;
  no_new_claim.number = seen_revision + 1;
  Retry retry(options_.retry_backoff, Clock::now() + options_.operation_timeout);
  for (;;) {
    auto txn = etcd_.txn({no_new_claim, Compare{key, Compare::Target::kCreateRevision, Compare::Result::kEqual, 0, {}, {}}},
                         {TxnOp{TxnOp::Kind::kPut, key, value, 0, {}}}, {});
    if (txn && txn->succeeded) {
      log_notice("disruption budget claimed for '" + hostname + "' (" + kind + ")");
      return true;
    }
    if (txn) {
      // Refused: another claim came, or this machine holds one already (idempotent).
      auto mine = etcd_.range(key);
      if (mine) return !mine->kvs.empty();
      if (!retry.again(mine.error())) return unexpected(etcd_error("read the budget claim", mine.error()));
      continue;
    }
    if (txn.error().maybe_applied()) {
      // Applied or not: our key says. If it is there, the claim is ours; if not, the
      // caller reads again and decides again.
      auto mine = etcd_.range(key);
      if (mine) return !mine->kvs.empty();
    }
    if (!retry.again(txn.error())) return unexpected(etcd_error("claim the disruption budget", txn.error()));
  }
}

Result<bool, LockError> LockService::release_budget_claim() {
  const std::string key = budget_key(self_.machine_id);
  Retry retry(options_.retry_backoff, Clock::now() + options_.operation_timeout);
  for (;;) {
    auto deleted = etcd_.delete_range(key);
    if (deleted) {
      if (*deleted > 0) log_notice("disruption budget claim of '" + self_.machine_id + "' withdrawn");
      return *deleted > 0;
    }
    if (!retry.again(deleted.error())) return unexpected(etcd_error("withdraw the budget claim", deleted.error()));
  }
}

}  // namespace skopos::driver
