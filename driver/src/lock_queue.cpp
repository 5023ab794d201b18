// LockService::acquire: the fair and quiet line for a slot (see lock_service.h).
#include <simdjson.h>

#include <algorithm>
#include <functional>
#include <iterator>
#include <optional>
#include <set>

#include "driver/lock_service.h"
#include "lock_detail.h"
#include "skopos/json_writer.h"
#include "skopos/log.h"

namespace skopos::driver {

using namespace lock_detail;

namespace {

// How many entries ahead a waiter reads at most, to start with; raised to the group's max
// when that is larger (it may take a slot while fewer than max - holders are ahead).
constexpr std::int64_t kFirstWindow = 16;

OutsideError bad_answer(const std::string& what) {
  return OutsideError::answered("etcd", OutsideError::Kind::kBadResponse, 0, what);
}

}  // namespace

// What one waiter reads before each decision, at one revision.
struct LockService::LineView {
  std::int64_t revision = 0;
  GroupState group;                // holders and max (not the line)
  std::optional<KeyValue> entry;   // this machine's queue entry
  std::vector<std::string> ahead;  // machine ids of the entries ahead, nearest first
  bool more_ahead = false;         // more than `window` entries are ahead
  bool line_empty = false;         // (read without a place) nobody waits at all
};

Result<LockService::LineView, OutsideError> LockService::read_line(const std::string& lock, const std::string& group,
                                                                   std::int64_t place, std::int64_t window) {
  const std::string prefix = group_prefix(lock, group);
  const std::string holders = prefix + "holders/";
  const std::string line = prefix + "queue/";
  TxnOp ahead{TxnOp::Kind::kRange, line, {}, 0, EtcdClient::prefix_end(line)};
  ahead.keys_only = true;
  if (place > 0) {
    ahead.max_create_revision = place - 1;  // those that came before us, the nearest first
    ahead.newest_first = true;
    ahead.limit = window;
  } else {
    ahead.limit = 1;  // is anyone waiting?
  }
  auto txn = etcd_.txn({},
                       {TxnOp{TxnOp::Kind::kRange, holders, {}, 0, EtcdClient::prefix_end(holders)},
                        TxnOp{TxnOp::Kind::kRange, prefix + "max", {}, 0, {}},
                        TxnOp{TxnOp::Kind::kRange, queue_key(lock, group, self_.machine_id), {}, 0, {}}, ahead},
                       {});
  if (!txn) return unexpected(std::move(txn).error());
  if (txn->ranges.size() != 4) return unexpected(bad_answer("read the line: etcd answered without the four ranges"));
  LineView view;
  view.revision = txn->revision;
  std::vector<KeyValue> keys = std::move(txn->ranges[0].kvs);
  for (KeyValue& kv : txn->ranges[1].kvs) keys.push_back(std::move(kv));
  std::vector<GroupState> groups;
  std::vector<std::string> unrecognized;
  parse_locks(*parser_, options_.prefix + "/locks/", keys, groups, unrecognized);
  if (groups.empty()) {
    view.group.lock = lock;
    view.group.group = group;
  } else {
    view.group = std::move(groups.front());
  }
  if (!txn->ranges[2].kvs.empty()) view.entry = std::move(txn->ranges[2].kvs.front());
  for (const KeyValue& kv : txn->ranges[3].kvs) {
    if (place > 0) view.ahead.push_back(kv.key.substr(line.size()));
  }
  view.more_ahead = place > 0 && txn->ranges[3].more;
  view.line_empty = place == 0 && txn->ranges[3].kvs.empty();
  return view;
}

// The lease a queue entry lives on: the process's heartbeat lease when it has one, else
// one of the waiter's own, kept alive while it waits and revoked when it is done.
class LockService::WaiterLease {
 public:
  WaiterLease(EtcdClient& etcd, std::shared_ptr<const std::atomic<std::int64_t>> shared, std::chrono::seconds ttl)
      : etcd_(etcd), shared_(std::move(shared)), ttl_(std::max<std::chrono::seconds>(ttl, std::chrono::seconds(2))) {}
  WaiterLease(const WaiterLease&) = delete;
  WaiterLease& operator=(const WaiterLease&) = delete;
  ~WaiterLease() {
    if (own_ != 0) (void)etcd_.lease_revoke(own_);
  }

  // The lease to put the entry on now.
  Result<std::int64_t, OutsideError> current() {
    if (shared_ != nullptr) {
      const std::int64_t id = shared_->load(std::memory_order_relaxed);
      if (id != 0 && id != distrusted_) return id;
    }
    if (own_ == 0) {
      auto granted = etcd_.lease_grant(ttl_.count());
      if (!granted) return unexpected(std::move(granted).error());
      own_ = *granted;
      due_ = Clock::now() + ttl_ / 3;
    }
    return own_;
  }
  // Whether the lease current() gives is the process's heartbeat lease.
  bool shared() const { return own_ == 0 && shared_ != nullptr && shared_->load(std::memory_order_relaxed) != 0; }
  // etcd no longer knows `id` (it expired before the heartbeat renewed it): use a lease
  // of our own until the heartbeat has a new one.
  void forget(std::int64_t id) {
    if (id == own_) own_ = 0;
    if (shared_ != nullptr && shared_->load(std::memory_order_relaxed) == id) distrusted_ = id;
  }
  // When the own lease needs refreshing (never, without one).
  Clock::time_point due() const { return own_ == 0 ? Clock::time_point::max() : due_; }
  // Refreshes the own lease. One that had expired is forgotten (the entry went with it;
  // the next read finds it gone and queues again).
  void keepalive() {
    if (own_ == 0) return;
    auto ttl = etcd_.lease_keepalive(own_);
    if (ttl && *ttl == 0) own_ = 0;
    due_ = Clock::now() + (ttl ? ttl_ / 3 : std::chrono::seconds(1));
  }

 private:
  EtcdClient& etcd_;
  std::shared_ptr<const std::atomic<std::int64_t>> shared_;
  std::chrono::seconds ttl_;
  std::int64_t own_ = 0;
  std::int64_t distrusted_ = 0;
  Clock::time_point due_{};
};

namespace {

// Removes this machine's queue entry when a wait ends without a slot: nobody waits on a
// place its owner gave up. Taking a slot removes the entry in the same transaction. A
// place kept on purpose (a wait that timed out on the process's heartbeat lease, to be
// taken up again) or one that could not be removed is parked: leave_lines() removes it.
class LeaveLine {
 public:
  LeaveLine(EtcdClient& etcd, std::string key, std::string what, const LockServiceOptions& options,
            std::set<std::string>& parked)
      : etcd_(etcd), key_(std::move(key)), what_(std::move(what)), options_(options), parked_(parked) {}
  LeaveLine(const LeaveLine&) = delete;
  LeaveLine& operator=(const LeaveLine&) = delete;
  void queued() { queued_ = true; }
  void served() { queued_ = false; }
  void keep() { keep_ = true; }
  ~LeaveLine() {
    if (!queued_) {
      parked_.erase(key_);
      return;
    }
    if (keep_) {
      parked_.insert(key_);
      log_info("keeping this machine's place in line for " + what_ + ": the next try takes it up again");
      return;
    }
    DeadlineBackoff backoff(options_.retry_backoff, std::chrono::seconds(1), Clock::now() + options_.operation_timeout);
    for (;;) {
      auto deleted = etcd_.delete_range(key_);
      if (deleted) {
        parked_.erase(key_);
        return;
      }
      if (!transient(deleted.error()) || !backoff.sleep()) {
        parked_.insert(key_);
        log_warning("could not leave the line for " + what_ + " (" + deleted.error().message +
                    "); this process tries again when idle, or 'skopos lock unlock' removes it");
        return;
      }
    }
  }

 private:
  EtcdClient& etcd_;
  std::string key_;
  std::string what_;
  const LockServiceOptions& options_;
  std::set<std::string>& parked_;
  bool queued_ = false;
  bool keep_ = false;
};

std::string entry_json(const HostIdentity& self, const std::string& token, std::int64_t since) {
  std::string out;
  JsonWriter json(out);
  json.begin_object()
      .key("machine_id").value(self.machine_id)
      .key("token").value(token)
      .key("hostname").value(self.hostname)
      .key("boot_id").value(self.boot_id)
      .key("since").value(utc_time(since))
      .end_object();
  return out;
}

// etcd refused a put on a lease it no longer knows (NOT_FOUND).
bool lease_gone(const OutsideError& error) { return error.kind == OutsideError::Kind::kRefused && error.code == 5; }

// When an entry's waiter first queued, from its value; `fallback` when unreadable.
std::int64_t entry_since(simdjson::dom::parser& parser, const std::string& value, std::int64_t fallback) {
  simdjson::dom::object object;
  std::string_view text;
  std::int64_t since = 0;
  if (parser.parse(value).get(object) != simdjson::SUCCESS || object["since"].get(text) != simdjson::SUCCESS ||
      !parse_utc_time(text, since)) {
    return fallback;
  }
  return since;
}

std::string holder_names(const std::vector<Holder>& holders) {
  std::string names;
  for (const Holder& holder : holders) names += (names.empty() ? "'" : ", '") + holder.machine_id + "'";
  return names;
}

}  // namespace

Result<Acquired, LockError> LockService::acquire(const std::string& lock, const std::string& group,
                                                 const std::string& token, Clock::time_point until,
                                                 const std::atomic<bool>* stop) {
  const auto stopped = [stop] { return stop != nullptr && stop->load(std::memory_order_relaxed); };
  if (auto bad = invalid_name({{"lock", &lock}, {"group", &group}, {"token", &token}})) return unexpected(*bad);
  const std::string what = quoted_group(lock, group);
  const std::string prefix = group_prefix(lock, group);
  const std::string holders_prefix = prefix + "holders/";
  const std::string line_prefix = prefix + "queue/";
  const std::string my_key = holder_key(lock, group, self_.machine_id);
  const std::string my_entry = queue_key(lock, group, self_.machine_id);
  Retry retry(options_.retry_backoff, until);
  WaiterLease lease(etcd_, options_.waiter_lease, options_.own_lease_ttl);
  LeaveLine leave(etcd_, my_entry, what, options_, parked_);
  std::int64_t place = 0;  // our entry's create_revision, once queued
  std::int64_t window = kFirstWindow;
  std::int64_t since = unix_now();
  bool sent_unknown = false;  // a taking txn whose outcome we never heard
  bool told = false;          // the "waiting" line was logged
  bool lost_race = false;     // a take without a place in line failed: queue from now on
  // What a waiter near the front knows without reading again: the view it waited on, less
  // the holders whose release it watched (see the watch below).
  std::optional<LineView> known;
  for (;;) {
    Result<LineView, OutsideError> view = known ? Result<LineView, OutsideError>(std::move(*known))
                                                : read_line(lock, group, place, window);
    known.reset();
    if (!view) {
      if (retry.again(view.error())) continue;  // a bad response never retries
      return unexpected(etcd_error("read " + what, view.error()));
    }
    if (view->entry) leave.queued();
    GroupState& state = view->group;
    for (const Holder& holder : state.holders) {
      if (holder.machine_id != self_.machine_id) continue;
      if (!holder.valid) {
        return unexpected(make_error(LockError::Kind::kBadData, "this machine's record in " + what +
                                                                    " is unreadable (" + holder.problem +
                                                                    "); remove it with 'skopos lock unlock " + lock +
                                                                    " " + group + " " + self_.machine_id + "'"));
      }
      if (auto clone = another_host("the slot of " + what, holder.record.hostname, holder.record.boot_id)) {
        return unexpected(*clone);
      }
      if (holder.record.token != token) {
        return unexpected(make_error(LockError::Kind::kConflict, "this machine holds " + what + " with token '" +
                                                                     holder.record.token + "', not '" + token + "'"));
      }
      // After a lost answer the record we find is this call's own (we had read our key absent).
      return Acquired{holder.fencing_token, !sent_unknown, holder.record};
    }
    if (!state.max_problem.empty()) {
      return unexpected(make_error(LockError::Kind::kBadData, what + ": " + state.max_problem +
                                                                  "; fix it with 'skopos lock set-max " + lock + " " +
                                                                  group + " N'"));
    }
    const auto held = static_cast<std::int64_t>(state.holders.size());

    // Where we stand: not in line (and may take a free slot only if nobody waits), or in
    // line with `ahead` entries before us.
    std::int64_t ahead = 0;
    if (!view->entry) {
      if (place != 0) {
        log_warning("lost this machine's place in line for " + what +
                    ": its lease ended (etcd unreachable for longer than its TTL?); queueing again at the end");
        place = 0;
        window = kFirstWindow;
        continue;
      }
      if (!view->line_empty || held >= state.max || lost_race) {
        // Join the line: one put (it keeps an entry's place if ours is already there).
        auto lease_id = lease.current();
        if (!lease_id) {
          if (retry.again(lease_id.error())) continue;
          return unexpected(etcd_error("lease for a place in line for " + what, lease_id.error()));
        }
        leave.queued();
        auto txn = etcd_.txn({}, {TxnOp{TxnOp::Kind::kPut, my_entry, entry_json(self_, token, since), *lease_id, {}},
                                  TxnOp{TxnOp::Kind::kRange, my_entry, {}, 0, {}}},
                             {});
        if (!txn && lease_gone(txn.error())) {
          lease.forget(*lease_id);  // expired before the heartbeat renewed it
          continue;
        }
        if (!txn) {
          if (retry.again(txn.error())) continue;
          return unexpected(etcd_error("join the line for " + what, txn.error()));
        }
        if (txn->ranges.size() == 1 && !txn->ranges[0].kvs.empty()) place = txn->ranges[0].kvs.front().create_revision;
        continue;
      }
    } else {
      if (view->entry->create_revision != place) {
        // A place we already had (an earlier try, this process before a restart, or
        // another process of this machine): keep it, and look again knowing it. Its
        // `since` stays what it was.
        if (place == 0) {
          log_info("this machine has a place in line for " + what + " (since revision " +
                   std::to_string(view->entry->create_revision) + "): keeping it");
        }
        place = view->entry->create_revision;
        since = entry_since(*parser_, view->entry->value, since);
        continue;
      }
      auto lease_id = lease.current();
      if (!lease_id) {
        if (retry.again(lease_id.error())) continue;
        return unexpected(etcd_error("lease for a place in line for " + what, lease_id.error()));
      }
      if (view->entry->lease != *lease_id) {
        // Move the entry onto the lease that is alive now; a put keeps its place.
        auto txn = etcd_.txn(
            {Compare{my_entry, Compare::Target::kCreateRevision, Compare::Result::kEqual, place, {}, {}}},
            {TxnOp{TxnOp::Kind::kPut, my_entry, entry_json(self_, token, since), *lease_id, {}}}, {});
        if (!txn && lease_gone(txn.error())) {
          lease.forget(*lease_id);
          continue;
        }
        if (!txn && !retry.again(txn.error())) {
          return unexpected(etcd_error("renew the place in line for " + what, txn.error()));
        }
        continue;
      }
      if (view->more_ahead && window < state.max) {
        window = state.max;  // to count those ahead up to the max
        continue;
      }
      ahead = static_cast<std::int64_t>(view->ahead.size()) + (view->more_ahead ? 1 : 0);
    }

    // Those ahead take the free slots first: we may take one only if one is left for us.
    if (ahead < state.max - held) {
      HolderRecord record{self_.machine_id, token, self_.boot_id, "acquired", self_.hostname, unix_now()};
      Compare no_new_holder;  // every holder key was created at or before what we read
      no_new_holder.key = holders_prefix;
      no_new_holder.range_end = EtcdClient::prefix_end(holders_prefix);
      no_new_holder.target = Compare::Target::kCreateRevision;
      no_new_holder.result = Compare::Result::kLess;
      no_new_holder.number = view->revision + 1;
      std::vector<Compare> compares{
          no_new_holder, Compare{my_key, Compare::Target::kCreateRevision, Compare::Result::kEqual, 0, {}, {}},
          Compare{prefix + "max", Compare::Target::kModRevision, Compare::Result::kEqual, state.max_mod_revision, {}, {}}};
      std::vector<TxnOp> take{TxnOp{TxnOp::Kind::kPut, my_key, holder_json(record), 0, {}}};
      if (view->entry) {
        // Still our place; it goes in the same transaction.
        compares.push_back(Compare{my_entry, Compare::Target::kCreateRevision, Compare::Result::kEqual, place, {}, {}});
        take.push_back(TxnOp{TxnOp::Kind::kDelete, my_entry, {}, 0, {}});
      } else {
        // Still nobody waiting.
        compares.push_back(Compare{line_prefix, Compare::Target::kCreateRevision, Compare::Result::kEqual, 0, {},
                                   EtcdClient::prefix_end(line_prefix)});
      }
      auto txn = etcd_.txn(compares, take, {});
      if (!txn) {
        sent_unknown = sent_unknown || txn.error().maybe_applied();
        if (retry.again(txn.error())) continue;
        return unexpected(etcd_error("take a slot of " + what, txn.error()));
      }
      if (txn->succeeded) {
        leave.served();
        records_[my_key] = {txn->revision, record};
        log_info("acquired " + what + " with token '" + token + "' (fencing token " + std::to_string(txn->revision) +
                 (view->entry ? ") after waiting " + std::to_string(unix_now() - since) + " s" : std::string(")")));
        return Acquired{txn->revision, false, record};
      }
      // A holder or a waiter came, or the max changed: look again. One that raced for a
      // free slot without a place and lost joins the line rather than racing again: when
      // a whole tier hears a rolling reboot at once and finds the line empty, each races
      // once and the line orders the rest (racing on cost every loser a read and a take
      // per slot taken).
      if (!view->entry) lost_race = true;
      continue;
    }
    const std::string standing = std::to_string(held) + " of max " + std::to_string(state.max) + " held" +
                                 (state.holders.empty() ? std::string() : " by " + holder_names(state.holders)) +
                                 ", " + std::to_string(ahead) + (view->more_ahead ? " or more" : "");
    if (Clock::now() >= until) {
      // On the process's heartbeat lease the place outlives this call: an agent tries
      // again and should not start at the back of the line.
      if (lease.shared()) leave.keep();
      return unexpected(make_error(LockError::Kind::kTimedOut, "timed out waiting for " + what + ": " + standing +
                                                                   " waiting ahead of this machine"));
    }
    if (!told) {
      told = true;
      log_info("waiting in line for " + what + ": " + standing + " ahead");
      if (auto stale = live_heartbeats(state.holders)) {
        for (const std::string& machine : *stale) {
          log_warning("holder '" + machine + "' of " + what +
                      " is stale: no heartbeat; it keeps its slot until it releases or an admin unlocks it");
        }
      }
    }
    // A waiter that releases alone can make room for -- fewer than max entries ahead of
    // it -- watches the holders for a release (deletions only: a holder recording its
    // phase wakes nobody) and the max, and takes its slot from the release it hears. Any
    // waiter with one ahead also watches that entry, which moves it up when it goes
    // (takes a slot, or dies); all watch their own entry, to notice a place lost with
    // its lease. So slots freed at once go to every waiter near the front with room at
    // once, not down the line one take after another, and an entry right ahead that
    // does not move (a waiter that died, until its lease ends) no longer holds up one
    // with room behind it. (One further ahead still can, until its lease ends: a waiter
    // watches only the two entries right ahead of it.)
    // (The first in line always: with max 0 -- a closed group -- it waits for the max.)
    // The watch is wait_for_news: etcd had mostly moved on since the view, and a watch from
    // the view's revision alone heard each release up to 100 ms late.
    // The second in line watches as if near the front too, and every waiter further back
    // also watches the entry two ahead of it: so each becomes second (and reads the line)
    // while the head still waits, and is already listening, in step with etcd, when the
    // head takes its slot (see `enough`).
    const bool near_front = ahead <= 1 || ahead < state.max;
    std::vector<WatchSpec> watches{WatchSpec{my_entry, {}, true}};
    if (near_front) {
      watches.push_back(WatchSpec{holders_prefix, EtcdClient::prefix_end(holders_prefix), true});
      watches.push_back(WatchSpec{prefix + "max", {}, false});
    }
    if (ahead > 0) watches.push_back(WatchSpec{line_prefix + view->ahead.front(), {}, true});
    if (ahead > 1 && view->ahead.size() > 1) watches.push_back(WatchSpec{line_prefix + view->ahead[1], {}, true});
    // Releases it must hear before a slot is left for it: those ahead take the first ones.
    // Each release frees a slot, whoever held it (one taken since the view too); a take by
    // one ahead uses a slot and leaves one fewer ahead, which changes nothing. So until
    // then it counts releases on the stream it has, in step with etcd, and sends nothing:
    // a release wakes the waiters it makes room for, not every waiter near the front (each
    // of which read the line again, and opened a new watch -- and with it a gap in which
    // the next release could wait for etcd's sync, up to 100 ms). Anything else it hears
    // (its entry, the one ahead, the max) ends the wait at once, as does a compaction --
    // but for the second in line, whose one ahead went (took its slot, most often): it
    // reads the line without leaving the stream, and when that shows it first in line it
    // goes on listening from that read, so the head of the line never waits with a watch
    // younger than its view. (Opening the watch after its read, a new head missed for up
    // to 100 ms a release that came in between, and the slot waited.)
    std::int64_t short_by = ahead - (state.max - held);
    std::optional<LineView> fresh;  // that read, as the second in line became the first
    // Whether an event came after that read (every event, before it).
    const auto after_read = [&](const WatchEvent& event) { return !fresh || event.kv.mod_revision > fresh->revision; };
    const std::string ahead_entry = ahead == 1 ? line_prefix + view->ahead.front() : std::string();
    // What the events not in `fresh` say: releases, the entry ahead going (the second in
    // line's, before its read), or something else.
    struct Heard {
      std::int64_t releases = 0;
      bool ahead_went = false;
      bool other = false;
    };
    const auto sort_out = [&](const WatchResult& heard) {
      Heard out;
      for (const WatchEvent& event : heard.events) {
        if (!after_read(event)) continue;  // the read has it
        if (event.type == WatchEvent::Type::kDelete && event.kv.key.starts_with(holders_prefix)) {
          ++out.releases;
        } else if (!fresh && event.type == WatchEvent::Type::kDelete && event.kv.key == ahead_entry) {
          out.ahead_went = true;
        } else {
          out.other = true;
        }
      }
      return out;
    };
    const auto enough = [&](const WatchResult& heard) {
      Heard now = sort_out(heard);
      if (now.other) return true;
      if (now.ahead_went) {
        if (stopped() || Clock::now() >= until) return true;  // no read past the caller's bounds
        auto first = read_line(lock, group, place, window);
        if (!first || !first->entry || first->entry->create_revision != place || !first->ahead.empty() ||
            first->more_ahead || !first->group.max_problem.empty()) {
          return true;  // not simply first in line now: look again the usual way
        }
        fresh = std::move(*first);
        short_by = -(fresh->group.max - static_cast<std::int64_t>(fresh->group.holders.size()));
        now = sort_out(heard);  // the releases after the read
      }
      return now.releases > short_by;
    };
    for (;;) {
      if (stopped()) {
        return unexpected(
            make_error(LockError::Kind::kInterrupted, "stopped while waiting for " + what + "; no slot was taken"));
      }
      if (Clock::now() >= lease.due()) lease.keepalive();
      auto change = etcd_.wait_for_news(watches, view->revision + 1, std::min(until, lease.due()), stop,
                                        near_front ? std::function<bool(const WatchResult&)>(enough) : nullptr);
      if (!change) {
        if (!retry.again(change.error())) return unexpected(etcd_error("watch " + what, change.error()));
        break;
      }
      if (near_front && !change->compacted) {
        if (fresh) {
          // From the read as first in line, less the releases heard after it.
          std::vector<WatchEvent> later;
          std::copy_if(change->events.begin(), change->events.end(), std::back_inserter(later), after_read);
          known = later.empty() ? std::optional<LineView>(std::move(*fresh))
                                : after_releases(*fresh, 0, holders_prefix, later);
          break;
        }
        known = after_releases(*view, ahead, holders_prefix, change->events);
      }
      if (!change->events.empty() || change->compacted || Clock::now() >= until) break;
    }
  }
}

std::optional<LockService::LineView> LockService::after_releases(const LineView& view, std::int64_t ahead,
                                                                 const std::string& holders_prefix,
                                                                 const std::vector<WatchEvent>& events) {
  // Only releases of holders we had read: then the view less them is the line as it
  // stands, or one a take by another has changed since, and a slot it shows free for
  // this waiter (with `ahead` entries before it) is taken at once. The take compares
  // that no holder was created since the view and that the max is unchanged, so a
  // holder it did not see (a put is not watched), another waiter's take, or a new max
  // fails it and sends it back to read the line. Anything else -- its own entry, the
  // one ahead, the max, a key it did not know -- is read again.
  if (events.empty()) return std::nullopt;
  LineView known = view;
  for (const WatchEvent& event : events) {
    if (event.type != WatchEvent::Type::kDelete || !event.kv.key.starts_with(holders_prefix)) return std::nullopt;
    const std::string machine = event.kv.key.substr(holders_prefix.size());
    auto& holders = known.group.holders;
    const auto it =
        std::find_if(holders.begin(), holders.end(), [&](const Holder& holder) { return holder.machine_id == machine; });
    if (it == holders.end()) return std::nullopt;
    holders.erase(it);
  }
  // Still no slot for it (those ahead take the ones freed first, or the max was lowered
  // below the holders): read the line again, which also moves the revision it waits
  // from past these events -- and sees any event on its other watches that the stream
  // had not delivered yet (each watch catches up on its own). (Waiting from the view
  // it had would hear the same releases once more first.)
  if (ahead >= known.group.max - static_cast<std::int64_t>(known.group.holders.size())) return std::nullopt;
  return known;
}

Result<int, LockError> LockService::leave_lines() {
  int left = 0;
  for (auto it = parked_.begin(); it != parked_.end();) {
    Retry retry(options_.retry_backoff, Clock::now() + options_.operation_timeout);
    for (;;) {
      auto deleted = etcd_.delete_range(*it);
      if (deleted) {
        if (*deleted > 0) log_info("left the line: " + *it);
        left += *deleted > 0 ? 1 : 0;
        it = parked_.erase(it);
        break;
      }
      if (!retry.again(deleted.error())) return unexpected(etcd_error("leave the line " + *it, deleted.error()));
    }
  }
  return left;
}

}  // namespace skopos::driver
