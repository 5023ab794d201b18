#include "driver/lock_service.h"

#include <simdjson.h>

#include "lock_detail.h"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <thread>

#include "skopos/json_writer.h"
#include "skopos/log.h"

namespace skopos::driver {

namespace dom = simdjson::dom;
using Clock = std::chrono::steady_clock;

using namespace lock_detail;


namespace lock_detail {

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
std::string LockService::queue_key(const std::string& lock, const std::string& group,
                                   const std::string& machine_id) const {
  return group_prefix(lock, group) + "queue/" + machine_id;
}
std::string LockService::budget_key(const std::string& machine_id) const {
  return options_.prefix + "/budget/" + machine_id;
}

std::string LockService::surge_key(const std::string& app) const { return options_.prefix + "/surge" + app; }

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

namespace lock_detail {

namespace {

// The record's JSON object; false, saying so in `problem`, when the value is not one.
bool record_object(dom::parser& parser, const KeyValue& kv, dom::object& object, std::string& problem) {
  if (parser.parse(kv.value).get(object) == simdjson::SUCCESS) return true;
  problem = "not a JSON object: '" + printable(kv.value) + "'";
  return false;
}

}  // namespace

void parse_holder(dom::parser& parser, const KeyValue& kv, const std::string& machine_id, Holder& holder) {
  holder.machine_id = machine_id;
  holder.fencing_token = kv.create_revision;
  holder.updated_revision = kv.mod_revision;
  dom::object object;
  if (!record_object(parser, kv, object, holder.problem)) return;
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

void parse_waiter(dom::parser& parser, const KeyValue& kv, const std::string& machine_id, Waiter& waiter) {
  waiter.machine_id = machine_id;
  waiter.place = kv.create_revision;
  waiter.lease = kv.lease;
  dom::object object;
  if (!record_object(parser, kv, object, waiter.problem)) return;
  std::string since;
  if (!read_strings(object, {{"token", &waiter.token}, {"hostname", &waiter.hostname}, {"boot_id", &waiter.boot_id},
                             {"since", &since}},
                    waiter.problem)) {
    return;
  }
  if (!parse_utc_time(since, waiter.since)) {
    waiter.problem = "since '" + printable(since) + "' is not a UTC time";
    return;
  }
  waiter.valid = true;
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
  const bool is_waiter = tail.starts_with("queue/") && valid_key_name(tail.substr(6));
  if (!is_max && !is_holder && !is_waiter) return false;
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
  } else if (is_holder) {
    Holder holder;
    parse_holder(parser, kv, std::string(tail.substr(8)), holder);
    state.holders.push_back(std::move(holder));
  } else {
    Waiter waiter;
    parse_waiter(parser, kv, std::string(tail.substr(6)), waiter);
    // In order of arrival: the first is served first.
    const auto at = std::upper_bound(state.queue.begin(), state.queue.end(), waiter.place,
                                     [](std::int64_t place, const Waiter& other) { return place < other.place; });
    state.queue.insert(at, std::move(waiter));
  }
  return true;
}

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
  // Only these machines' keys (an older version's P/heartbeats/<machine> and this one's
  // P/heartbeats/<machine>/<instance>), not every machine's: one request whatever the
  // size of the fleet.
  const std::string prefix = options_.prefix + "/heartbeats/";
  std::vector<TxnOp> reads;
  for (const Holder& holder : holders) {
    const std::string key = prefix + holder.machine_id;
    reads.push_back(TxnOp{TxnOp::Kind::kRange, key, {}, 0, {}});
    reads.push_back(TxnOp{TxnOp::Kind::kRange, key + "/", {}, 0, EtcdClient::prefix_end(key + "/")});
  }
  // etcd takes at most 128 operations in one transaction (--max-txn-ops).
  constexpr std::size_t kMaxOps = 128;
  std::vector<KeyValue> beats;
  for (std::size_t first = 0; first < reads.size(); first += kMaxOps) {
    const std::vector<TxnOp> chunk(reads.begin() + static_cast<std::ptrdiff_t>(first),
                                   reads.begin() + static_cast<std::ptrdiff_t>(std::min(reads.size(), first + kMaxOps)));
    auto txn = etcd_.txn({}, chunk, {});
    if (!txn) return unexpected(etcd_error("read heartbeats", txn.error()));
    for (RangeResult& range : txn->ranges) {
      for (KeyValue& kv : range.kvs) beats.push_back(std::move(kv));
    }
  }
  join_heartbeats(*parser_, prefix, beats, holders);
  std::vector<std::string> stale;
  for (const Holder& holder : holders) {
    if (!holder.heartbeat) stale.push_back(holder.machine_id);
  }
  return stale;
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
  // A named holding is deleted in one transaction: its key's create revision is the
  // fencing token, so the compare says whether it is still that holding. Only a failed
  // compare or an unknown outcome reads what is there (and says why). Without a token,
  // the holding is read first.
  bool read_first = fencing_token == 0;
  for (;;) {
    std::int64_t token = fencing_token;
    if (read_first) {
      auto holder = read_holder(lock, group, self_.machine_id);
      if (!holder) {
        if (retry.again(holder.error())) continue;
        return unexpected(etcd_error("read " + quoted_group(lock, group), holder.error()));
      }
      if (!holder->has_value()) return released;
      token = (*holder)->fencing_token;
      if (fencing_token != 0 && token != fencing_token) {
        return unexpected(make_error(LockError::Kind::kConflict, quoted_group(lock, group) +
                                                                     ": this machine's slot is fencing token " +
                                                                     std::to_string(token) + ", not " +
                                                                     std::to_string(fencing_token)));
      }
    }
    auto txn = etcd_.txn({Compare{my_key, Compare::Target::kCreateRevision, Compare::Result::kEqual, token, {}, {}}},
                         {TxnOp{TxnOp::Kind::kDelete, my_key, {}, 0, {}}}, {});
    const bool seen = read_first;  // the holding was read before this delete
    read_first = true;
    if (!txn) {
      if (retry.again(txn.error())) {
        // Found gone on the next read, it was ours only if it was there: read before the
        // delete, or a delete that may have been applied.
        released = released || seen || txn.error().maybe_applied();
        continue;
      }
      return unexpected(etcd_error("release " + quoted_group(lock, group), txn.error()));
    }
    if (txn->succeeded) {
      records_.erase(my_key);
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
  // The record of this holding as this process last wrote or read it: then one
  // transaction records the phase (its compare says whether the holding is still ours).
  std::optional<HolderRecord> known;
  if (const auto it = records_.find(my_key); it != records_.end() && it->second.first == fencing_token) {
    known = it->second.second;
  }
  for (;;) {
    if (!known) {
      auto holder = read_holder(lock, group, self_.machine_id);
      if (!holder) {
        if (retry.again(holder.error())) continue;
        return unexpected(etcd_error("read " + quoted_group(lock, group), holder.error()));
      }
      if (!holder->has_value() || (*holder)->fencing_token != fencing_token) {
        records_.erase(my_key);
        return unexpected(make_error(
            LockError::Kind::kConflict,
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
      known = (*holder)->record;
      if (known->phase == phase && known->boot_id == self_.boot_id) {  // recorded (perhaps by a retried txn)
        records_[my_key] = {fencing_token, *known};
        return {};
      }
    }
    HolderRecord record = *known;
    record.phase = phase;
    record.boot_id = self_.boot_id;
    auto txn = etcd_.txn(
        {Compare{my_key, Compare::Target::kCreateRevision, Compare::Result::kEqual, fencing_token, {}, {}}},
        {TxnOp{TxnOp::Kind::kPut, my_key, holder_json(record), 0, {}}}, {});
    if (!txn) {
      if (retry.again(txn.error())) continue;  // the same put again is harmless
      return unexpected(etcd_error("guard " + quoted_group(lock, group), txn.error()));
    }
    if (txn->succeeded) {
      records_[my_key] = {fencing_token, record};
      log_debug("guard " + quoted_group(lock, group) + ": phase '" + phase + "' (fencing token " +
                std::to_string(fencing_token) + ")");
      return {};
    }
    known.reset();  // the compare failed: the next read says how (gone, or another holding)
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

Result<bool, LockError> LockService::remove_waiter(const std::string& lock, const std::string& group,
                                                   const std::string& machine_id) {
  if (auto bad = invalid_name({{"lock", &lock}, {"group", &group}, {"machine id", &machine_id}})) {
    return unexpected(*bad);
  }
  Retry retry(options_.retry_backoff, Clock::now() + options_.operation_timeout);
  for (;;) {
    auto deleted = etcd_.delete_range(queue_key(lock, group, machine_id));
    if (deleted) {
      if (*deleted > 0) log_warning("removed '" + machine_id + "' from the line of " + quoted_group(lock, group));
      return *deleted > 0;
    }
    if (!retry.again(deleted.error())) {
      return unexpected(etcd_error("remove '" + machine_id + "' from the line", deleted.error()));
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

Result<std::vector<std::string>, LockError> LockService::live_machines() {
  const std::string prefix = options_.prefix + "/heartbeats/";
  Retry retry(options_.retry_backoff, Clock::now() + options_.operation_timeout);
  for (;;) {
    auto txn = etcd_.txn({}, {TxnOp{TxnOp::Kind::kRange, prefix, {}, 0, EtcdClient::prefix_end(prefix), 0, 0, false, true}},
                         {});
    if (!txn) {
      if (retry.again(txn.error())) continue;
      return unexpected(etcd_error("read heartbeats", txn.error()));
    }
    std::vector<std::string> machines;
    for (const RangeResult& range : txn->ranges) {
      for (const KeyValue& kv : range.kvs) {
        const std::string machine(heartbeat_machine(std::string_view(kv.key).substr(prefix.size())));
        if (machines.empty() || machines.back() != machine) machines.push_back(machine);
      }
    }
    return machines;
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

// ---- the surge ledger -------------------------------------------------------------

namespace {

std::string surge_json(const SurgeRecord& record, const std::string& by, std::uint64_t nonce) {
  std::string out;
  JsonWriter json(out);
  json.begin_object().key("expected").value(record.expected).key("hosts").begin_object();
  for (const auto& [host, added] : record.hosts) json.key(host).value(added);
  json.end_object().key("leaving").begin_object();
  for (const auto& [host, taken] : record.leaving) json.key(host).value(taken);
  json.end_object().key("back_to").value(record.back_to);
  // Who wrote it, and a number of that write's own: an unknown outcome is settled by
  // finding exactly this value.
  json.key("by").value(by).key("write").value(nonce).end_object();
  return out;
}

}  // namespace

Result<SurgeRecord, LockError> LockService::surge_record(const std::string& app) {
  const std::string key = surge_key(app);
  Retry retry(options_.retry_backoff, Clock::now() + options_.operation_timeout);
  for (;;) {
    auto range = etcd_.range(key);
    if (!range) {
      if (retry.again(range.error())) continue;
      return unexpected(etcd_error("read the surge ledger of '" + app + "'", range.error()));
    }
    SurgeRecord out;
    if (range->kvs.empty()) return out;
    const KeyValue& kv = range->kvs.front();
    const auto unreadable = [&](const std::string& why) {
      return unexpected(make_error(LockError::Kind::kBadData, "surge ledger '" + key + "' is unreadable (" + why +
                                                                  "); no app is scaled for a surge until it is fixed"));
    };
    dom::object object;
    if (parser_->parse(kv.value).get(object) != simdjson::SUCCESS) return unreadable("not a JSON object");
    if (object["expected"].get(out.expected) != simdjson::SUCCESS || out.expected < 0) {
      return unreadable("no count in \"expected\"");
    }
    for (const auto& [field, parts] : {std::pair{"hosts", &out.hosts}, {"leaving", &out.leaving}}) {
      dom::object object_parts;
      if (object[field].get(object_parts) != simdjson::SUCCESS) {
        return unreadable("no \"" + std::string(field) + "\" object");
      }
      for (auto [host, value] : object_parts) {
        std::int64_t count = 0;
        if (value.get(count) != simdjson::SUCCESS || count < 0) {
          return unreadable(std::string(field) + ": host '" + std::string(host) + "' has no count");
        }
        parts->emplace(std::string(host), count);
      }
    }
    if (object["back_to"].get(out.back_to) != simdjson::SUCCESS) out.back_to = 0;
    out.revision = kv.mod_revision;
    return out;
  }
}

Result<bool, LockError> LockService::write_surge_record(const std::string& app, std::int64_t seen_revision,
                                                        const SurgeRecord& next) {
  const std::string key = surge_key(app);
  static std::atomic<std::uint64_t> writes{0};
  const std::uint64_t nonce = (static_cast<std::uint64_t>(unix_now()) << 20) ^ ++writes;
  const std::string value = surge_json(next, self_.machine_id, nonce);
  const Compare unchanged{key, Compare::Target::kModRevision, Compare::Result::kEqual, seen_revision, {}, {}};
  // A ledger with no part left is gone: the next surge starts from Marathon's count.
  const bool remove = next.hosts.empty() && next.leaving.empty();
  const TxnOp op = remove ? TxnOp{TxnOp::Kind::kDelete, key, {}, 0, {}} : TxnOp{TxnOp::Kind::kPut, key, value, 0, {}};
  Retry retry(options_.retry_backoff, Clock::now() + options_.operation_timeout);
  for (;;) {
    auto txn = etcd_.txn({unchanged}, {op}, {});
    if (txn) return txn->succeeded;
    if (txn.error().maybe_applied()) {
      // Applied or not: the record says -- ours is the value with our write's number (or,
      // for a removal, no record).
      auto now = etcd_.range(key);
      if (now) {
        if (remove ? now->kvs.empty() : !now->kvs.empty() && now->kvs.front().value == value) return true;
        if (now->kvs.empty() ? seen_revision != 0 : now->kvs.front().mod_revision != seen_revision) return false;
        // Not applied, and the record is as seen: try again, within the retry's deadline.
      }
    }
    if (!retry.again(txn.error())) {
      return unexpected(etcd_error("write the surge ledger of '" + app + "'", txn.error()));
    }
  }
}

}  // namespace skopos::driver
