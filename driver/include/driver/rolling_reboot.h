// RollingReboot: a tier-wide reboot request in etcd that every host's agent watches
// (replacing the first generation's fleet units). One request per tier; each host takes
// its turn through the tier's reboot lock (at most `max` at a time) and records that it
// did, so a host reboots once per request.
//
// Keys under the prefix P:
//   P/rolling-reboot/<tier>/request          {"id", "requested_at", "requested_by", "hosts": [...]}
//   P/rolling-reboot/<tier>/done/<machine>   {"id", "at", "hostname"}
//   P/rolling-reboot/<tier>/failed/<machine> {"id", "at", "first_at", "tries", "hostname",
//                                            "error"}: its tries failed (it tries again;
//                                            done clears it)
//   P/rolling-reboot/<tier>/hosts/<machine>  {"hostname", "since"}: the tier's members, as
//                                            each agent records itself when it starts (not
//                                            on a lease: a host that is down is still one)
// An empty "hosts" means every host of the tier: those there when it was asked, those
// down then (they take their turn when their agent is back) and those that join while
// it runs. A request stays until it is cancelled; a host retired for good leaves the
// tier with forget().
//
// Not thread-safe: one per EtcdClient.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "driver/etcd_client.h"
#include "driver/lock_service.h"

namespace simdjson::dom {
class parser;
}

namespace skopos::driver {

struct RollingRequest {
  std::string id;
  std::int64_t requested_at = 0;  // unix seconds
  std::string requested_by;
  std::vector<std::string> hosts;  // machine ids or host names; empty: all
  std::int64_t revision = 0;       // the key's mod revision

  bool includes(const std::string& machine_id, const std::string& hostname) const;
};

struct RollingDone {
  std::string machine_id;
  std::string id;  // the request it did
  std::int64_t at = 0;
  std::string hostname;
};

struct RollingFailure {
  std::string machine_id;
  std::string id;             // the request it tried
  std::int64_t at = 0;        // the last failed try
  std::int64_t first_at = 0;  // the first failed try of this request
  std::int64_t tries = 1;     // failed tries of this request
  std::string hostname;
  std::string error;          // the last one's, one line
};

struct RollingMember {
  std::string machine_id;
  std::string hostname;
  std::int64_t since = 0;  // unix seconds: when its agent first recorded it
};

struct RollingStatus {
  std::optional<RollingRequest> request;
  std::vector<RollingDone> done;        // every host's last turn
  std::vector<RollingFailure> failed;   // hosts whose last try failed
  std::vector<RollingMember> members;   // by machine id
  std::int64_t revision = 0;
};

// Where one host of a roll stands.
enum class HostTurn : std::uint8_t {
  kDone,        // rebooted for this request and back
  kInProgress,  // holds a slot of the tier's reboot lock (`phase` says where it is)
  kStuck,       // holds a slot, without a heartbeat for longer than the stuck limit:
                // it keeps its slot (never reclaimed) and the roll goes on with one fewer
  kFailed,      // its last try failed (`phase` says why, `since` when); it tries again
  kWaiting,     // in line for a slot (`position`, from 1)
  kGated,       // alive, not in line: its start gate is closed (outside its maintenance
                // window; `phase` says why and when it opens)
  kDown,        // a member without a heartbeat: takes its turn when its agent is back
  kPending,     // alive, not in line yet (its agent has not looked, or is busy)
};
inline constexpr std::pair<HostTurn, const char*> kHostTurnNames[] = {
    {HostTurn::kDone, "done"},       {HostTurn::kInProgress, "in-progress"}, {HostTurn::kStuck, "stuck"},
    {HostTurn::kFailed, "failed"},   {HostTurn::kWaiting, "waiting"},        {HostTurn::kGated, "gated"},
    {HostTurn::kDown, "down"},       {HostTurn::kPending, "pending"}};
static_assert(static_cast<int>(HostTurn::kPending) + 1 == static_cast<int>(std::size(kHostTurnNames)));

struct HostProgress {
  std::string machine_id;
  std::string hostname;
  HostTurn turn = HostTurn::kPending;
  std::string phase;          // in progress or stuck: the holder's phase; failed: why
  std::int64_t position = 0;  // waiting: 1 is next
  std::int64_t since = 0;     // unix seconds: done at, holding since, waiting since, failing since
  std::int64_t failing_since = 0;  // its first failed try of this request, whatever it does now
  std::int64_t failed_tries = 0;
};

// A roll at a glance: every host of the request and the tier's reboot lock, with an ETA
// from the roll's own pace so far.
struct RollingProgress {
  std::vector<HostProgress> hosts;     // in order: done, in progress, stuck, failed, waiting, down, pending
  std::int64_t counts[std::size(kHostTurnNames)] = {};  // by HostTurn
  std::int64_t failing = 0;            // hosts not done whose tries of this request failed, in any state
  std::int64_t max = 1;                // the reboot lock's max for the tier
  std::int64_t usable_slots = 1;       // max less the slots stuck hosts keep
  std::int64_t elapsed_seconds = 0;    // since the request
  std::int64_t eta_seconds = -1;       // -1: unknown (nothing done yet, or no slot usable)
  bool complete = false;               // a request, and every host of it done
  std::int64_t count(HostTurn turn) const { return counts[static_cast<int>(turn)]; }
};

// Puts the roll's state together (a pure function: tested on its own). `alive` are the
// machines with a live heartbeat; a holder without one longer than `stuck_after` seconds
// (since it took its slot) is stuck.
RollingProgress rolling_progress(const RollingStatus& status, const GroupState& reboot_lock,
                                 const std::vector<std::string>& alive, std::int64_t now, std::int64_t stuck_after);

// Pending hosts whose start gate is closed become gated, with the gate's reason as their
// `phase`: `closed` maps a host name to why its gate is closed (the caller evaluates the
// windows: rolling-reboot --status reads them from etcd). Counts and order follow.
void apply_gates(RollingProgress& progress, const std::map<std::string, std::string>& closed);

class RollingReboot;

// The roll of `tier` read now, as `skopos rolling-reboot --status` shows it: the request
// and the marks, the tier's group of `lock` and the machines alive, put together.
struct RollingView {
  RollingStatus status;
  RollingProgress progress;
};
Result<RollingView, LockError> read_rolling_view(RollingReboot& rolling, LockService& locks, const std::string& tier,
                                                 const std::string& lock, std::int64_t stuck_after);

// The agent's trigger for a rolling request ("rolling:<request id>"), and back: the
// request id, or nullopt for another trigger (the trigger file).
std::string rolling_trigger(const std::string& request_id);
std::optional<std::string> rolling_request_id(const std::string& trigger);

class RollingReboot {
 public:
  RollingReboot(EtcdClient& etcd, std::string prefix);
  ~RollingReboot();

  // Writes a new request (a new id) for `tier`, replacing any earlier one.
  Result<RollingRequest, LockError> request(const std::string& tier, const std::string& requested_by,
                                            const std::vector<std::string>& hosts);
  // Deletes the request; whether there was one.
  Result<bool, LockError> cancel(const std::string& tier);
  Result<RollingStatus, LockError> status(const std::string& tier);
  // The request this machine still has to do, if any.
  Result<std::optional<RollingRequest>, LockError> pending(const std::string& tier, const std::string& machine_id,
                                                           const std::string& hostname);
  // Records this machine's turn as done (and clears a failure of an earlier try).
  Result<void, LockError> mark_done(const std::string& tier, const std::string& machine_id,
                                    const std::string& hostname, const std::string& request_id);
  // Records that this machine's last try at `request_id` failed, and why.
  Result<void, LockError> mark_failed(const std::string& tier, const std::string& machine_id,
                                      const std::string& hostname, const std::string& request_id,
                                      const std::string& error);
  // Records this machine as a member of the tier (idempotent; keeps `since`).
  Result<void, LockError> join_tier(const std::string& tier, const std::string& machine_id,
                                    const std::string& hostname);
  // Removes a member retired for good (by machine id or host name) and its done mark;
  // whether there was one.
  Result<bool, LockError> forget(const std::string& tier, const std::string& host);
  // Waits (etcd watch) until the tier's request key changes after `revision`, `until`,
  // or `stop` is set (checked within 100 ms; no request is sent meanwhile).
  Result<bool, LockError> wait_for_change(const std::string& tier, std::int64_t revision,
                                          std::chrono::steady_clock::time_point until,
                                          const std::atomic<bool>* stop = nullptr);

  std::string request_key(const std::string& tier) const;
  std::string done_prefix(const std::string& tier) const;
  std::string failed_prefix(const std::string& tier) const;
  std::string members_prefix(const std::string& tier) const;

 private:
  Result<RollingStatus, LockError> parse_status(const std::string& tier, const std::vector<KeyValue>& kvs,
                                                std::int64_t revision);

  EtcdClient& etcd_;
  std::string prefix_;
  std::unique_ptr<simdjson::dom::parser> parser_;
};

}  // namespace skopos::driver
