#include "driver/rolling_reboot.h"

#include <simdjson.h>

#include <algorithm>
#include <ctime>
#include <random>

#include "skopos/json_writer.h"

namespace skopos::driver {

namespace {

LockError etcd_failure(const std::string& what, const OutsideError& error) {
  return LockError{LockError::Kind::kEtcd, what + ": " + error.message};
}

std::string new_request_id() {
  std::random_device random;
  char text[24];
  std::snprintf(text, sizeof text, "r-%08x%08x", random(), random());
  return text;
}

}  // namespace

bool RollingRequest::includes(const std::string& machine_id, const std::string& hostname) const {
  return hosts.empty() || std::find(hosts.begin(), hosts.end(), machine_id) != hosts.end() ||
         std::find(hosts.begin(), hosts.end(), hostname) != hosts.end();
}

RollingReboot::RollingReboot(EtcdClient& etcd, std::string prefix)
    : etcd_(etcd), prefix_(std::move(prefix)), parser_(std::make_unique<simdjson::dom::parser>()) {}
RollingReboot::~RollingReboot() = default;

std::string RollingReboot::request_key(const std::string& tier) const {
  return prefix_ + "/rolling-reboot/" + tier + "/request";
}
std::string RollingReboot::done_prefix(const std::string& tier) const { return prefix_ + "/rolling-reboot/" + tier + "/done/"; }
std::string RollingReboot::failed_prefix(const std::string& tier) const {
  return prefix_ + "/rolling-reboot/" + tier + "/failed/";
}
std::string RollingReboot::members_prefix(const std::string& tier) const {
  return prefix_ + "/rolling-reboot/" + tier + "/hosts/";
}

Result<RollingRequest, LockError> RollingReboot::request(const std::string& tier, const std::string& requested_by,
                                                         const std::vector<std::string>& hosts) {
  if (!valid_key_name(tier)) return unexpected(LockError{LockError::Kind::kInvalid, "tier '" + tier + "' is not a valid name"});
  RollingRequest out;
  out.id = new_request_id();
  out.requested_at = static_cast<std::int64_t>(std::time(nullptr));
  out.requested_by = requested_by;
  out.hosts = hosts;
  std::string value;
  JsonWriter json(value);
  json.begin_object().key("id").value(out.id).key("requested_at").value(out.requested_at);
  json.key("requested_by").value(requested_by).key("hosts").begin_array();
  for (const std::string& host : hosts) json.value(host);
  json.end_array().end_object();
  auto put = etcd_.put(request_key(tier), value);
  if (!put) return unexpected(etcd_failure("write the rolling reboot request", put.error()));
  out.revision = *put;
  return out;
}

Result<bool, LockError> RollingReboot::cancel(const std::string& tier) {
  auto deleted = etcd_.delete_range(request_key(tier));
  if (!deleted) return unexpected(etcd_failure("delete the rolling reboot request", deleted.error()));
  return *deleted > 0;
}

Result<RollingStatus, LockError> RollingReboot::status(const std::string& tier) {
  const std::string base = prefix_ + "/rolling-reboot/" + tier + "/";
  auto range = etcd_.range(base, EtcdClient::prefix_end(base));
  if (!range) return unexpected(etcd_failure("read the rolling reboot of tier '" + tier + "'", range.error()));
  return parse_status(tier, range->kvs, range->revision);
}

Result<RollingStatus, LockError> RollingReboot::parse_status(const std::string& tier, const std::vector<KeyValue>& kvs,
                                                             std::int64_t revision) {
  RollingStatus out;
  out.revision = revision;
  const std::string done = done_prefix(tier);
  const std::string failed = failed_prefix(tier);
  const std::string members = members_prefix(tier);
  for (const KeyValue& kv : kvs) {
    simdjson::dom::object object;
    if (parser_->parse(kv.value).get(object) != simdjson::SUCCESS) {
      return unexpected(LockError{LockError::Kind::kBadData, "'" + kv.key + "' is not a JSON object"});
    }
    std::string_view text;
    if (kv.key == request_key(tier)) {
      RollingRequest request;
      if (object["id"].get(text) != simdjson::SUCCESS || text.empty()) {
        return unexpected(LockError{LockError::Kind::kBadData, "'" + kv.key + "' has no id"});
      }
      request.id.assign(text);
      if (object["requested_at"].get(request.requested_at) != simdjson::SUCCESS) request.requested_at = 0;
      if (object["requested_by"].get(text) == simdjson::SUCCESS) request.requested_by.assign(text);
      simdjson::dom::array hosts;
      if (object["hosts"].get(hosts) == simdjson::SUCCESS) {
        for (auto host : hosts) {
          if (host.get(text) == simdjson::SUCCESS) request.hosts.emplace_back(text);
        }
      }
      request.revision = kv.mod_revision;
      out.request = std::move(request);
    } else if (kv.key.rfind(done, 0) == 0) {
      RollingDone entry;
      entry.machine_id = kv.key.substr(done.size());
      if (object["id"].get(text) == simdjson::SUCCESS) entry.id.assign(text);
      if (object["at"].get(entry.at) != simdjson::SUCCESS) entry.at = 0;
      if (object["hostname"].get(text) == simdjson::SUCCESS) entry.hostname.assign(text);
      out.done.push_back(std::move(entry));
    } else if (kv.key.rfind(failed, 0) == 0) {
      RollingFailure entry;
      entry.machine_id = kv.key.substr(failed.size());
      if (object["id"].get(text) == simdjson::SUCCESS) entry.id.assign(text);
      if (object["at"].get(entry.at) != simdjson::SUCCESS) entry.at = 0;
      if (object["hostname"].get(text) == simdjson::SUCCESS) entry.hostname.assign(text);
      if (object["error"].get(text) == simdjson::SUCCESS) entry.error.assign(text);
      if (object["first_at"].get(entry.first_at) != simdjson::SUCCESS) entry.first_at = entry.at;
      if (object["tries"].get(entry.tries) != simdjson::SUCCESS) entry.tries = 1;
      out.failed.push_back(std::move(entry));
    } else if (kv.key.rfind(members, 0) == 0) {
      RollingMember member;
      member.machine_id = kv.key.substr(members.size());
      if (object["hostname"].get(text) == simdjson::SUCCESS) member.hostname.assign(text);
      if (object["since"].get(member.since) != simdjson::SUCCESS) member.since = 0;
      out.members.push_back(std::move(member));
    }
  }
  return out;
}

Result<std::optional<RollingRequest>, LockError> RollingReboot::pending(const std::string& tier,
                                                                        const std::string& machine_id,
                                                                        const std::string& hostname) {
  // The request and this machine's own mark only, not every host's: one small read
  // whatever the size of the tier.
  auto txn = etcd_.txn({},
                       {TxnOp{TxnOp::Kind::kRange, request_key(tier), {}, 0, {}},
                        TxnOp{TxnOp::Kind::kRange, done_prefix(tier) + machine_id, {}, 0, {}}},
                       {});
  if (!txn) return unexpected(etcd_failure("read the rolling reboot of tier '" + tier + "'", txn.error()));
  if (txn->ranges.size() != 2) {
    return unexpected(LockError{LockError::Kind::kEtcd, "read the rolling reboot: etcd answered without the two ranges"});
  }
  std::vector<KeyValue> kvs;
  for (RangeResult& range : txn->ranges) {
    for (KeyValue& kv : range.kvs) kvs.push_back(std::move(kv));
  }
  auto current = parse_status(tier, kvs, txn->revision);
  if (!current) return unexpected(std::move(current).error());
  if (!current->request || !current->request->includes(machine_id, hostname)) return std::optional<RollingRequest>();
  for (const RollingDone& done : current->done) {
    if (done.machine_id == machine_id && done.id == current->request->id) return std::optional<RollingRequest>();
  }
  return current->request;
}

Result<void, LockError> RollingReboot::join_tier(const std::string& tier, const std::string& machine_id,
                                                 const std::string& hostname) {
  const std::string key = members_prefix(tier) + machine_id;
  std::string value;
  JsonWriter json(value);
  json.begin_object().key("hostname").value(hostname).key("since").value(static_cast<std::int64_t>(std::time(nullptr)));
  json.end_object();
  // Only when absent: a member keeps its `since` (a retry after an unknown outcome finds
  // the key there and is done).
  auto txn = etcd_.txn({Compare{key, Compare::Target::kCreateRevision, Compare::Result::kEqual, 0, {}, {}}},
                       {TxnOp{TxnOp::Kind::kPut, key, value, 0, {}}}, {});
  if (!txn) return unexpected(etcd_failure("record this host as a member of tier '" + tier + "'", txn.error()));
  return {};
}

Result<bool, LockError> RollingReboot::forget(const std::string& tier, const std::string& host) {
  auto current = status(tier);
  if (!current) return unexpected(std::move(current).error());
  std::string machine;
  for (const RollingMember& member : current->members) {
    if (member.machine_id == host || member.hostname == host) machine = member.machine_id;
  }
  for (const RollingDone& done : current->done) {
    if (machine.empty() && (done.machine_id == host || done.hostname == host)) machine = done.machine_id;
  }
  for (const RollingFailure& failure : current->failed) {
    if (machine.empty() && (failure.machine_id == host || failure.hostname == host)) machine = failure.machine_id;
  }
  if (machine.empty()) return false;
  auto txn = etcd_.txn({},
                       {TxnOp{TxnOp::Kind::kDelete, members_prefix(tier) + machine, {}, 0, {}},
                        TxnOp{TxnOp::Kind::kDelete, done_prefix(tier) + machine, {}, 0, {}},
                        TxnOp{TxnOp::Kind::kDelete, failed_prefix(tier) + machine, {}, 0, {}}},
                       {});
  if (!txn) return unexpected(etcd_failure("forget host '" + host + "' of tier '" + tier + "'", txn.error()));
  return true;
}

Result<void, LockError> RollingReboot::mark_done(const std::string& tier, const std::string& machine_id,
                                                 const std::string& hostname, const std::string& request_id) {
  std::string value;
  JsonWriter json(value);
  json.begin_object().key("id").value(request_id).key("at").value(static_cast<std::int64_t>(std::time(nullptr)));
  json.key("hostname").value(hostname).end_object();
  auto txn = etcd_.txn({},
                       {TxnOp{TxnOp::Kind::kPut, done_prefix(tier) + machine_id, value, 0, {}},
                        TxnOp{TxnOp::Kind::kDelete, failed_prefix(tier) + machine_id, {}, 0, {}}},
                       {});
  if (!txn) return unexpected(etcd_failure("record the rolling reboot as done", txn.error()));
  return {};
}

namespace {

// A failure as one readable line of bounded length: it comes from a drain's error, which
// may carry a command's whole standard error.
std::string one_line(const std::string& text) {
  constexpr std::size_t kMax = 300;
  std::string out;
  for (const char c : text.substr(0, kMax)) out += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c;
  return text.size() > kMax ? out + "..." : out;
}

}  // namespace

Result<void, LockError> RollingReboot::mark_failed(const std::string& tier, const std::string& machine_id,
                                                   const std::string& hostname, const std::string& request_id,
                                                   const std::string& error) {
  // The first failure of this request and how many tries failed stay across tries: a host
  // refused again and again is failing since its first refusal, whatever it does between.
  const std::string key = failed_prefix(tier) + machine_id;
  auto read = etcd_.range(key);
  if (!read) return unexpected(etcd_failure("read the rolling reboot's failed tries", read.error()));
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  std::int64_t first_at = now;
  std::int64_t tries = 1;
  if (!read->kvs.empty()) {
    simdjson::dom::object object;
    std::string_view id;
    if (parser_->parse(read->kvs.front().value).get(object) == simdjson::SUCCESS &&
        object["id"].get(id) == simdjson::SUCCESS && id == request_id) {
      std::int64_t before = 0;
      if (object["first_at"].get(before) == simdjson::SUCCESS && before > 0) first_at = before;
      if (object["tries"].get(before) == simdjson::SUCCESS && before > 0) tries = before + 1;
    }
  }
  std::string value;
  JsonWriter json(value);
  json.begin_object().key("id").value(request_id).key("at").value(now).key("first_at").value(first_at);
  json.key("tries").value(tries).key("hostname").value(hostname).key("error").value(one_line(error)).end_object();
  auto put = etcd_.put(key, value);
  if (!put) return unexpected(etcd_failure("record the rolling reboot's failed try", put.error()));
  return {};
}

Result<bool, LockError> RollingReboot::wait_for_change(const std::string& tier, std::int64_t revision,
                                                       std::chrono::steady_clock::time_point until,
                                                       const std::atomic<bool>* stop) {
  auto watched = etcd_.wait_for_news({WatchSpec{request_key(tier), {}, false}}, revision + 1, until, stop);
  if (!watched) return unexpected(etcd_failure("watch the rolling reboot request", watched.error()));
  return !watched->events.empty() || watched->compacted;
}

namespace {
constexpr std::string_view kRollingTrigger = "rolling:";
}  // namespace

std::string rolling_trigger(const std::string& request_id) { return std::string(kRollingTrigger) + request_id; }

std::optional<std::string> rolling_request_id(const std::string& trigger) {
  if (!trigger.starts_with(kRollingTrigger)) return std::nullopt;
  return trigger.substr(kRollingTrigger.size());
}

namespace {

// Hosts in the order of their turns (the line by position), and the counts by turn.
void order_and_count(RollingProgress& out) {
  std::stable_sort(out.hosts.begin(), out.hosts.end(), [](const HostProgress& a, const HostProgress& b) {
    if (a.turn != b.turn) return a.turn < b.turn;
    if (a.turn == HostTurn::kWaiting) return a.position < b.position;
    return a.machine_id < b.machine_id;
  });
  std::fill(std::begin(out.counts), std::end(out.counts), 0);
  out.failing = 0;
  for (const HostProgress& host : out.hosts) {
    ++out.counts[static_cast<int>(host.turn)];
    if (host.failed_tries > 0 && host.turn != HostTurn::kDone) ++out.failing;
  }
}

}  // namespace

void apply_gates(RollingProgress& progress, const std::map<std::string, std::string>& closed) {
  for (HostProgress& host : progress.hosts) {
    if (host.turn != HostTurn::kPending) continue;
    const auto it = closed.find(host.hostname);
    if (it == closed.end()) continue;
    host.turn = HostTurn::kGated;
    host.phase = it->second;
  }
  order_and_count(progress);
}

RollingProgress rolling_progress(const RollingStatus& status, const GroupState& reboot_lock,
                                 const std::vector<std::string>& alive, std::int64_t now, std::int64_t stuck_after) {
  RollingProgress out;
  out.max = reboot_lock.max;
  if (!status.request) return out;
  const RollingRequest& request = *status.request;
  const auto is_alive = [&](const std::string& machine) {
    return std::find(alive.begin(), alive.end(), machine) != alive.end();
  };
  // Every host the request concerns: the members it includes, and any other host that
  // did its turn or holds or waits for a slot (an agent that has not recorded itself).
  std::vector<HostProgress> hosts;
  const auto find = [&](const std::string& machine) -> HostProgress* {
    for (HostProgress& host : hosts) {
      if (host.machine_id == machine) return &host;
    }
    return nullptr;
  };
  const auto add = [&](const std::string& machine, const std::string& hostname) -> HostProgress& {
    if (HostProgress* known = find(machine)) {
      if (known->hostname.empty()) known->hostname = hostname;
      return *known;
    }
    hosts.push_back(HostProgress{machine, hostname, is_alive(machine) ? HostTurn::kPending : HostTurn::kDown, {}, 0, 0});
    return hosts.back();
  };
  for (const RollingMember& member : status.members) {
    if (request.includes(member.machine_id, member.hostname)) add(member.machine_id, member.hostname);
  }
  std::int64_t position = 0;
  for (const Waiter& waiter : reboot_lock.queue) {
    ++position;
    if (!request.includes(waiter.machine_id, waiter.hostname)) continue;
    HostProgress& host = add(waiter.machine_id, waiter.hostname);
    host.turn = HostTurn::kWaiting;
    host.position = position;
    host.since = waiter.since;
  }
  for (const Holder& holder : reboot_lock.holders) {
    if (!request.includes(holder.machine_id, holder.record.hostname)) continue;
    HostProgress& host = add(holder.machine_id, holder.record.hostname);
    host.phase = holder.valid ? holder.record.phase : "unreadable record";
    host.since = holder.record.acquired_at;
    host.turn = !holder.heartbeat && now - holder.record.acquired_at > stuck_after ? HostTurn::kStuck
                                                                                   : HostTurn::kInProgress;
    host.position = 0;
  }
  // A failed last try shows while the host is alive and neither holds a slot nor waits
  // in line (it tries again after its retry pause); one that is down shows as down.
  for (const RollingFailure& failure : status.failed) {
    if (failure.id != request.id || !request.includes(failure.machine_id, failure.hostname)) continue;
    HostProgress& host = add(failure.machine_id, failure.hostname);
    host.failing_since = failure.first_at;
    host.failed_tries = failure.tries;
    if (host.turn != HostTurn::kPending) continue;
    host.turn = HostTurn::kFailed;
    host.phase = failure.error;
    host.since = failure.first_at;
  }
  for (const RollingDone& done : status.done) {
    if (done.id != request.id) continue;
    HostProgress& host = add(done.machine_id, done.hostname);
    // The mark is written when the reboot is journaled and again once the host is back:
    // it is done when it no longer holds its slot.
    if (host.turn == HostTurn::kInProgress || host.turn == HostTurn::kStuck) continue;
    host.turn = HostTurn::kDone;
    host.since = done.at;
    host.position = 0;
  }
  out.hosts = std::move(hosts);
  order_and_count(out);
  out.usable_slots = std::max<std::int64_t>(0, out.max - out.count(HostTurn::kStuck));
  out.elapsed_seconds = std::max<std::int64_t>(0, now - request.requested_at);
  // The pace so far (which already reflects how many slots work at once), applied to
  // what is left; stuck and down hosts are left too.
  const std::int64_t done = out.count(HostTurn::kDone);
  const std::int64_t left = static_cast<std::int64_t>(out.hosts.size()) - done;
  if (left == 0) {
    out.complete = true;
    out.eta_seconds = 0;
  } else if (done > 0 && out.usable_slots > 0) {
    out.eta_seconds = out.elapsed_seconds * left / done;
  }
  return out;
}

Result<RollingView, LockError> read_rolling_view(RollingReboot& rolling, LockService& locks, const std::string& tier,
                                                 const std::string& lock, std::int64_t stuck_after) {
  auto status = rolling.status(tier);
  if (!status) return unexpected(std::move(status).error());
  auto group = locks.group_status(lock, tier);
  if (!group) return unexpected(std::move(group).error());
  auto alive = locks.live_machines();
  if (!alive) return unexpected(std::move(alive).error());
  RollingView view{std::move(*status), {}};
  view.progress =
      rolling_progress(view.status, *group, *alive, static_cast<std::int64_t>(std::time(nullptr)), stuck_after);
  return view;
}

}  // namespace skopos::driver
