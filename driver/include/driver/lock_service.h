// LockService: the cluster's locks on etcd v3. Cluster-wide semaphores per lock name and
// group (tier), host locks with a reason token, and the guard the driver runs before
// each side effect.
//
// Keys under the prefix P (default "/skopos"):
//   P/locks/<lock>/<group>/max                decimal holder limit; absent means 1
//   P/locks/<lock>/<group>/holders/<machine>  holder record (JSON), NOT on a lease: it
//                                             survives the holder's reboot; its
//                                             create_revision is the fencing token
//   P/locks/<lock>/<group>/queue/<machine>    a waiter's place (JSON), on the waiter's
//                                             liveness lease; its create_revision is
//                                             its place in the line
//   P/heartbeats/<machine>/<instance>         liveness, one per process, on a lease
//                                             (see heartbeat.h)
//   P/hosts/<machine>                         host lock record (JSON), not on a lease
//   P/budget/<machine>                        a drain's claim on the disruption budget
//                                             (JSON), not on a lease (see BudgetClaims)
//   P/surge<app id>                           a Marathon app's surge ledger (JSON; see
//                                             SurgeRecord), not on a lease
//
// Taking a slot is one transaction that compares: no holder key was created in the group
// after the revision we counted at (a range comparison, so a concurrent taker makes it
// fail), our own holder key is absent, and the max key is unchanged. Releases only lower
// the count, so they never invalidate a decision.
//
// Waiting is first come, first served, and quiet. A taker that cannot have a slot at
// once (or finds others waiting) puts its queue entry; entries are served in
// create_revision order, and a waiter with k entries ahead of it may take a slot only
// while k < max - holders, so nobody that came later overtakes it. Only the waiters
// fewer than max from the front watch the holders (and the max), and only for
// deletions: a holder recording its phase, or a new waiter, wakes nobody, and a release
// wakes only the waiters it leaves room for, however long the line: each takes its slot
// from it, and the others count it on the watch they are in (releases - those ahead take
// the first ones) and send nothing until enough have come. Every waiter watches the
// two entries right ahead of it: when one takes a slot (or dies) the waiter moves up.
// So a take moves the next two up -- the third in line reads the line and becomes
// second, and the second, which watches the holders too, reads the line without
// leaving its watch and becomes the head already listening (a head that opened its
// watch after its read missed a release in between for up to 100 ms). Slots freed at
// once are taken at once by the waiters they leave room for, and an entry that does
// not move (a waiter that died, until its lease ends) holds up no waiter near the
// front right behind it; one further ahead of a waiter than two still does, until its
// lease ends. Concurrent takes
// make each other's comparison fail, and the loser reads and takes again. Taking a slot
// deletes the taker's entry in the same transaction. An entry lives on its waiter's
// lease (the process's heartbeat lease, or one of its own): a waiter that dies loses its
// place when its lease expires, and one that comes back while its entry is still there
// keeps it (a put keeps a key's create_revision).
//
// Every decision reads linearizably;
// after a write whose outcome is unknown (timeout, reset, leader change) the next step
// re-reads before deciding. A holder whose heartbeat is gone is reported stale, never
// reclaimed: only `unlock` removes another machine's record.
//
// Not thread-safe: one LockService (and one EtcdClient) per thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "driver/etcd_client.h"
#include "driver/host_identity.h"
#include "skopos/result.h"
#include "skopos/utc_time.h"

namespace simdjson::dom {
class parser;
}

namespace skopos::driver {

struct LockError {
  enum class Kind : std::uint8_t {
    kEtcd,      // etcd could not be reached, refused, or the outcome stayed unknown
    kTimedOut,  // the deadline passed while waiting for a free slot
    kConflict,  // the state forbids it: another token, a live holder, a lost slot
    kBadData,   // a key we rely on holds something we cannot read; nothing was written
    kInvalid,   // a bad argument (name, token, number)
    kInterrupted,  // a stop was asked for while waiting; no slot was taken
  };
  Kind kind = Kind::kEtcd;
  std::string message;
};

// The record a holder writes into its slot.
struct HolderRecord {
  std::string machine_id;
  std::string token;     // what the slot is for ("REBOOT", a change ticket, ...)
  std::string boot_id;   // the boot that acquired, or that last ran guard()
  std::string phase;     // the driver's phase, recorded by guard()
  std::string hostname;
  std::int64_t acquired_at = 0;  // unix seconds
};

struct Holder {
  std::string machine_id;         // from the key
  std::int64_t fencing_token = 0; // the key's create_revision
  std::int64_t updated_revision = 0;
  bool valid = false;             // false: `problem` says what is wrong with the record
  std::string problem;
  HolderRecord record;
  bool heartbeat = false;         // false: stale (no live heartbeat)
  std::string heartbeat_boot_id;  // the boot id the live heartbeat reports
};

// A machine waiting for a slot.
struct Waiter {
  std::string machine_id;       // from the key
  std::int64_t place = 0;       // the key's create_revision: the order of arrival
  std::int64_t lease = 0;       // the liveness its place lives on
  bool valid = false;           // false: `problem` says what is wrong with the record
  std::string problem;
  std::string token;
  std::string hostname;
  std::string boot_id;
  std::int64_t since = 0;       // unix seconds: when it first queued
};

struct GroupState {
  std::string lock;
  std::string group;
  std::int64_t max = 1;
  bool max_set = false;        // false: no max key, the default 1 applies
  std::string max_problem;     // non-empty: the max key holds garbage (blocks acquire)
  std::int64_t max_mod_revision = 0;
  std::vector<Holder> holders;  // by machine id
  std::vector<Waiter> queue;    // by place: the first is served first
};

struct LockStatus {
  std::int64_t revision = 0;
  std::vector<GroupState> groups;            // by lock, then group
  std::vector<std::string> unrecognized_keys;  // under P/locks/ but not ours
};

struct Acquired {
  std::int64_t fencing_token = 0;
  bool already_held = false;  // this machine held it before the call (idempotent no-op)
  HolderRecord record;
};

struct HostLockState {
  bool locked = false;
  std::string machine_id;
  std::string token;  // REBOOT, DRAIN or BOOSTER
  std::string hostname;
  std::string boot_id;
  std::int64_t locked_at = 0;  // unix seconds
  std::int64_t revision = 0;   // the key's create_revision
  bool already = false;        // host_lock: this token held it before the call
};

// The cluster-wide disruption budget: a drain that passed its budget check holds a claim
// until its host is back (or, for a booster, until its tasks are gone). A host with a
// claim is draining: its tasks count as unavailable in every other host's check. The
// check and the claim it justifies are one decision: claim_budget() succeeds only if no
// claim was added since the claims the check excluded were read, so two drivers can
// never both spend an app's last healthy instance.
struct BudgetClaim {
  std::string machine_id;
  std::string hostname;  // as Marathon and Mesos name the host
  std::string kind;      // REBOOT, DRAIN, BOOSTER
  std::int64_t claimed_at = 0;  // unix seconds
};
struct BudgetClaims {
  std::int64_t revision = 0;  // read at
  std::vector<BudgetClaim> claims;
};

// A Marathon app's surge ledger: the instance count the drains last set, and what each
// draining host added to it (see Drain's surge phase). Changed only by compare-and-swap
// on its mod revision.
struct SurgeRecord {
  std::int64_t expected = 0;
  std::map<std::string, std::int64_t> hosts;    // hostname -> instances added for it
  std::map<std::string, std::int64_t> leaving;  // hostname -> instances its scale-back takes away
  std::int64_t back_to = 0;                     // the count that scale-back ends at
  std::int64_t revision = 0;                    // mod revision; 0: no record
};

struct LockServiceOptions {
  std::string prefix = "/skopos";
  // How long a single operation (release, guard, unlock, ...) keeps retrying while etcd
  // is unavailable or an outcome is unknown, before it reports the error.
  std::chrono::milliseconds operation_timeout{20000};
  std::chrono::milliseconds retry_backoff{50};  // doubles up to 1 s
  // The lease a waiter's queue entry lives on: this process's heartbeat lease, as the
  // heartbeat thread publishes it (0 while it has none). Without one (or while it is 0)
  // a waiter grants a lease of its own and keeps it alive while it waits.
  std::shared_ptr<const std::atomic<std::int64_t>> waiter_lease;
  std::chrono::seconds own_lease_ttl{10};
};

class LockService {
 public:
  LockService(EtcdClient& etcd, HostIdentity self, LockServiceOptions options);
  ~LockService();
  LockService(const LockService&) = delete;
  LockService& operator=(const LockService&) = delete;

  // Takes a slot of `lock`/`group` for this machine, waiting in line (see above) until
  // its turn comes or `until` passes (kTimedOut). If this machine already holds it with
  // the same token, returns the existing fencing token (already_held); with another
  // token, kConflict. Never writes when the max key or this machine's record is
  // unreadable. `stop` (optional), once true, ends the wait within kStopLatency with
  // kInterrupted; a slot granted before the stop was seen is returned as usual (the
  // caller records it). It leaves its queue entry behind only when it timed out on the
  // heartbeat lease (the next acquire takes the place up again) or could not remove
  // it; leave_lines() removes those.
  Result<Acquired, LockError> acquire(const std::string& lock, const std::string& group, const std::string& token,
                                      std::chrono::steady_clock::time_point until,
                                      const std::atomic<bool>* stop = nullptr);
  // Leaves every line this process kept a place in: a wait that timed out on the
  // process's heartbeat lease keeps its place for the next try (an agent's), and a place
  // that could not be removed is kept too. An idle agent calls it; no request when
  // there is none. The number of places left.
  Result<int, LockError> leave_lines();
  // How long a waiting acquire takes at most to notice its stop flag (the open watch
  // looks at it; no request is sent).
  static constexpr std::chrono::milliseconds kStopLatency{250};

  // Gives this machine's slot back. `fencing_token` != 0: only if it is still that
  // holding (else kConflict), in one transaction. Returns whether a slot was held;
  // releasing nothing is ok. (A holding found gone after a delete whose answer was lost
  // counts as released by it.)
  Result<bool, LockError> release(const std::string& lock, const std::string& group, std::int64_t fencing_token = 0);

  // One transaction before each side effect: succeeds only while this machine still
  // holds the slot with `fencing_token`, and records `phase` and this boot id. kConflict
  // when the slot is gone or is another holding. The first guard of a holding in this
  // process reads the record first; later ones are the transaction alone.
  Result<void, LockError> guard(const std::string& lock, const std::string& group, std::int64_t fencing_token,
                                const std::string& phase);

  // The admin's break: removes `machine_id`'s record. A holder with a live heartbeat is
  // refused (kConflict) unless `force`. Returns whether there was a record.
  Result<std::optional<Holder>, LockError> unlock(const std::string& lock, const std::string& group,
                                                  const std::string& machine_id, bool force);

  // The admin's removal of `machine_id`'s place in line (a live waiter notices and
  // lines up again at the end). Whether there was one.
  Result<bool, LockError> remove_waiter(const std::string& lock, const std::string& group,
                                        const std::string& machine_id);

  // Sets the holder limit (0 closes the group). Never evicts: holders above the new max
  // keep their slots and only new takers wait. Returns the group as it is now.
  Result<GroupState, LockError> set_max(const std::string& lock, const std::string& group, std::int64_t max);

  // Every lock group with its holders and their heartbeats, from one consistent read.
  Result<LockStatus, LockError> status();
  // The machines with a live heartbeat, sorted.
  Result<std::vector<std::string>, LockError> live_machines();
  // One group (also when it has no keys yet: max 1, no holders).
  Result<GroupState, LockError> group_status(const std::string& lock, const std::string& group);

  // Every claim on the disruption budget, read at one revision. kBadData names a claim
  // that cannot be read (a host whose claim we cannot read cannot be left out).
  Result<BudgetClaims, LockError> budget_claims();
  // Claims the budget for this machine as `hostname`, if no claim was added since
  // `seen_revision` (when the claims the check left out were read); false when one was
  // (read again, check again). Idempotent: a claim this machine already holds is kept,
  // and true.
  Result<bool, LockError> claim_budget(std::int64_t seen_revision, const std::string& hostname, const std::string& kind);
  // Withdraws this machine's claim; false when there was none.
  Result<bool, LockError> release_budget_claim();

  // The surge ledger of a Marathon app ("/web"); revision 0 when there is none. kBadData
  // names a record that cannot be read.
  Result<SurgeRecord, LockError> surge_record(const std::string& app);
  // Writes `next` if the record is still at `seen_revision` (0: still absent); false when
  // it changed meanwhile. A record with no host part left is removed. An outcome not
  // known is settled by reading the record back.
  Result<bool, LockError> write_surge_record(const std::string& app, std::int64_t seen_revision,
                                             const SurgeRecord& next);

  // Host locks of this machine (host_status: of any machine).
  Result<HostLockState, LockError> host_status(const std::string& machine_id);
  // Takes the host lock for `token` (REBOOT, DRAIN, BOOSTER). The same token again is a
  // no-op (already); another token holding it is kConflict.
  Result<HostLockState, LockError> host_lock(const std::string& token);
  // Releases it; only the token that holds it may (else kConflict). Unlocked: ok, false.
  Result<bool, LockError> host_unlock(const std::string& token);

  const HostIdentity& self() const { return self_; }
  const std::string& prefix() const { return options_.prefix; }
  std::string group_prefix(const std::string& lock, const std::string& group) const;
  std::string holder_key(const std::string& lock, const std::string& group, const std::string& machine_id) const;
  std::string queue_key(const std::string& lock, const std::string& group, const std::string& machine_id) const;
  std::string host_key(const std::string& machine_id) const;
  std::string budget_key(const std::string& machine_id) const;
  std::string surge_key(const std::string& app) const;
  // A conflict when a record of this machine id (`what`) was written by another live
  // host (another hostname, or another boot id that still beats); see lock_service.cpp.
  std::optional<LockError> another_host(const std::string& what, const std::string& hostname,
                                        const std::string& boot_id);

  static bool valid_host_token(const std::string& token);

 private:
  // The group's keys, parsed. Holder records that cannot be read still count as
  // holders (they occupy a slot); `valid` and `problem` say what is wrong.
  Result<GroupState, OutsideError> read_group(const std::string& lock, const std::string& group, std::int64_t& revision);
  Result<std::vector<std::string>, LockError> live_heartbeats(std::vector<Holder>& holders);
  Result<std::optional<HostLockState>, OutsideError> read_host(const std::string& machine_id, std::string& problem);
  // One machine's holder record in the group, if there is one (parsed; see `valid`).
  Result<std::optional<Holder>, OutsideError> read_holder(const std::string& lock, const std::string& group,
                                                       const std::string& machine_id);
  std::string holder_json(const HolderRecord& record) const;
  // What a waiter reads before each decision, in one transaction (lock_queue.cpp).
  struct LineView;
  Result<LineView, OutsideError> read_line(const std::string& lock, const std::string& group, std::int64_t place,
                                           std::int64_t window);
  // The view of a waiter with `ahead` entries before it after the watched `events`,
  // when they are only releases of holders it had read and leave a slot for it; nullopt
  // when it must read the line again.
  static std::optional<LineView> after_releases(const LineView& view, std::int64_t ahead,
                                                const std::string& holders_prefix,
                                                const std::vector<WatchEvent>& events);
  // The liveness lease a queue entry is put on now (lock_queue.cpp).
  class WaiterLease;

  EtcdClient& etcd_;
  HostIdentity self_;
  LockServiceOptions options_;
  // Holder key -> (fencing token, record) as this process last wrote or read it, so
  // guard() records a phase in one transaction.
  std::map<std::string, std::pair<std::int64_t, HolderRecord>> records_;
  std::set<std::string> parked_;  // queue keys of places kept (see leave_lines())
  std::unique_ptr<simdjson::dom::parser> parser_;
};

// Records store times as skopos::utc_time writes them ("2026-11-21T12:50:09Z").
using skopos::utc_time;

// Human-readable kind names for messages and JSON ("etcd", "timed-out", ...).
const char* lock_error_kind_name(LockError::Kind kind);

}  // namespace skopos::driver
