// The outside systems a drain steers, as the drain sees them: one small interface per
// system, at the level of the drain's steps ("announce this machine to Mesos", "fence
// these ports"), so the state machine (drain.h) reads as the procedure it is and can be
// tested without a cluster. The implementations that talk to the real systems are in
// drain_systems_impl.h; unit tests use fakes.
//
// Every call has a deadline inside it (the clients' own) and returns a DrainError that
// says whether retrying may help. None of these interfaces is thread-safe.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "skopos/function_ref.h"
#include "skopos/outside_error.h"
#include "skopos/result.h"

namespace skopos::driver {

struct DrainError {
  enum class Kind : std::uint8_t {
    kFailed,       // a system failed, or its answer stayed unknown: nothing more was done
    kRefused,      // the state forbids it (budget, another holder, a lost lock, a bad label)
    kTimedOut,     // a bounded wait ran out
    kInterrupted,  // SIGTERM/SIGINT: stopped at a safe point, the journal says where
    kUsage,        // bad options or journal contents that need a person
    kGated,        // a start gate is closed (outside a maintenance window): nothing kept
  };
  Kind kind = Kind::kFailed;
  std::string message;
};

const char* drain_error_kind_name(DrainError::Kind kind);
// A step's error from an outside system's, made in this one place: refused when the
// system refused the request as wrong for its state (a 4xx), timed out when our wait
// for it ran out, else failed. The message names the system and what the step did:
// "Marathon kill tasks of '/web': ...".
DrainError drain_error_from(const OutsideError& error, std::string_view what);
inline Unexpected<DrainError> drain_error(DrainError::Kind kind, std::string message) {
  return unexpected(DrainError{kind, std::move(message)});
}

// ---- locks -----------------------------------------------------------------------------

struct HostLockInfo {
  bool locked = false;
  std::string token;          // REBOOT, DRAIN, BOOSTER
  std::int64_t revision = 0;  // the host key's create revision
};

// Host names as Mesos and Marathon compare them: without case.
bool same_host(const std::string& a, const std::string& b);

// The hosts whose drains hold a claim on the disruption budget, read at `revision`.
struct DrainingHosts {
  std::int64_t revision = 0;
  std::vector<std::string> hostnames;  // of other machines
  bool ours = false;                   // this machine holds a claim already
};

// The surge ledger of one Marathon app, kept in etcd beside the locks: the instance
// count the drains last set, and what each draining host added for its surge. Drains of
// several hosts scale the same app; the ledger is how each knows which part of the
// count is whose, and whether the operator changed it since (Marathon's count is not
// the ledger's). See Drain's surge phase.
struct SurgeLedger {
  std::int64_t expected = 0;                  // the count the drains set, scale-backs in flight included
  std::map<std::string, std::int64_t> hosts;  // hostname -> instances added for it
  // The one scale-back in flight (at most one per app: its decrements and the PUTs of
  // the others could not be told apart): hostname -> instances it takes away, still in
  // `expected` until done; `back_to`, the count Marathon had then less those.
  std::map<std::string, std::int64_t> leaving;
  std::int64_t back_to = 0;
  std::int64_t revision = 0;  // the record's mod revision; 0: none
  static std::int64_t sum(const std::map<std::string, std::int64_t>& parts) {
    std::int64_t total = 0;
    for (const auto& [host, n] : parts) total += n;
    return total;
  }
  // Marathon's count as the drains' changes explain it: each part's PUT or kill may not
  // have landed yet. Any other count was set by someone else.
  bool explains(std::int64_t instances) const {
    return instances <= expected && instances >= expected - sum(hosts) - sum(leaving);
  }
  bool empty() const { return hosts.empty() && leaving.empty(); }
};

class DrainLocks {
 public:
  virtual ~DrainLocks() = default;
  virtual Result<HostLockInfo, DrainError> host_status() = 0;
  // Idempotent for the same token; another token is kRefused.
  virtual Result<HostLockInfo, DrainError> host_lock(const std::string& token) = 0;
  virtual Result<bool, DrainError> host_unlock(const std::string& token) = 0;
  // A slot of lock/group, waiting until `until`; idempotent (the same fencing token back).
  // Once `stop` is true the wait ends within a fraction of a second with kInterrupted.
  virtual Result<std::int64_t, DrainError> acquire(const std::string& lock, const std::string& group,
                                                   const std::string& token,
                                                   std::chrono::steady_clock::time_point until,
                                                   const std::atomic<bool>& stop) = 0;
  virtual Result<bool, DrainError> release(const std::string& lock, const std::string& group,
                                           std::int64_t fencing_token) = 0;
  // One etcd transaction: still the holder with this fencing token; records the phase
  // and boot id. kRefused when the slot was lost.
  virtual Result<void, DrainError> guard(const std::string& lock, const std::string& group,
                                         std::int64_t fencing_token, const std::string& phase) = 0;
  // The cluster-wide disruption budget (LockService's budget claims): the hosts that hold
  // a claim now and the revision they were read at; a claim for this host that succeeds
  // only if no claim was added since (false: read again, check again); its withdrawal.
  virtual Result<DrainingHosts, DrainError> budget_claims() = 0;
  virtual Result<bool, DrainError> claim_budget(const DrainingHosts& seen, const std::string& hostname,
                                                const std::string& kind) = 0;
  virtual Result<bool, DrainError> release_budget_claim() = 0;
  // One line about the group for --dry-run and a stuck lock wait: "max 1, held by: web-3
  // (REBOOT, phase reboot, 25 min, heartbeat stale)".
  virtual Result<std::string, DrainError> describe(const std::string& lock, const std::string& group) = 0;
  // The surge ledger of `app` (revision 0: none), and its change: written only if the
  // record is still the one `seen` was read as; false when it changed meanwhile (read
  // again, decide again). A ledger with no part left is removed.
  virtual Result<SurgeLedger, DrainError> surge_ledger(const std::string& app) = 0;
  virtual Result<bool, DrainError> write_surge_ledger(const std::string& app, const SurgeLedger& seen,
                                                      const SurgeLedger& next) = 0;
  // Gives up every place in line this process kept (a wait for a slot that timed out
  // keeps it for the next try): an agent with no request calls it. The number left.
  virtual Result<int, DrainError> leave_lines() = 0;
};

// ---- Mesos -----------------------------------------------------------------------------

// This host as Mesos knows it, and how the drain tells Mesos.
struct MesosMachine {
  enum class Mode : std::uint8_t {
    kNone,      // no Mesos configured, or no agent on this host (control/proxy tiers)
    kSchedule,  // maintenance schedule: window (DRAINING), /machine/down, /machine/up
    kDrainApi,  // Mesos 1.9+ with AGENT_DRAINING: DEACTIVATE_AGENT, DRAIN_AGENT, REACTIVATE_AGENT
  };
  Mode mode = Mode::kNone;
  std::string hostname;
  std::string ip;
  std::string agent_id;
};
const char* mesos_mode_name(MesosMachine::Mode mode);  // "none", "schedule", "drain-api"
bool parse_mesos_mode(const std::string& text, MesosMachine::Mode& mode);

class DrainMesos {
 public:
  virtual ~DrainMesos() = default;
  virtual bool configured() const = 0;
  // Finds this machine (its agent's hostname and ip, or a DOWN machine of that name)
  // and picks the mode. Mode kNone when Mesos is not configured.
  virtual Result<MesosMachine, DrainError> locate(const std::string& hostname) = 0;
  // No more tasks here: a maintenance window starting now (DRAINING), or
  // DEACTIVATE_AGENT. Idempotent.
  virtual Result<void, DrainError> announce(const MesosMachine& machine) = 0;
  // The machine leaves: /machine/down, or DRAIN_AGENT (with mark_gone for good).
  // Idempotent: a machine already down is fine.
  virtual Result<void, DrainError> take_down(const MesosMachine& machine, bool gone) = 0;
  // Back in service from whatever state the machine is in (DOWN: up; DRAINING: out of
  // the schedule; deactivated or draining: REACTIVATE_AGENT). Idempotent.
  virtual Result<void, DrainError> bring_up(const MesosMachine& machine) = 0;
  // The agent is registered and active (not deactivated, not draining).
  virtual Result<bool, DrainError> agent_active(const MesosMachine& machine) = 0;
  // One line per call announce/take_down would make, for --dry-run.
  virtual std::vector<std::string> describe(const MesosMachine& machine, bool gone) const = 0;
  // The hostnames Mesos has going away, whoever put them there: machines DRAINING or
  // DOWN in the maintenance schedule, agents deactivated or draining. Their tasks do not
  // count for the disruption budget. Empty when Mesos is not configured.
  virtual Result<std::vector<std::string>, DrainError> unavailable_hosts() = 0;
};

// ---- Marathon --------------------------------------------------------------------------

struct HostTasks {
  struct App {
    std::string id;
    std::int64_t instances = 0;
    std::map<std::string, std::string> labels;
    std::vector<std::string> task_ids;  // on this host
  };
  std::vector<App> apps;  // apps with at least one task on this host
};

struct AppShortfall {
  std::string app_id;
  std::int64_t on_host = 0;
  std::int64_t healthy_elsewhere = 0;
  std::int64_t required = 0;
  std::string problem;  // a label that is not a count
  std::int64_t healthy_draining = 0;  // healthy, but on hosts that are draining too
};

// One app as a surge sees it (DrainMarathon::surge_app).
struct SurgeApp {
  bool exists = false;
  std::int64_t instances = 0;
  std::vector<std::string> here;      // its tasks on this host
  std::int64_t on_draining = 0;       // its tasks on hosts draining now
  std::int64_t healthy_elsewhere = 0;  // healthy, on hosts neither this one nor draining
};

class DrainMarathon {
 public:
  virtual ~DrainMarathon() = default;
  virtual bool configured() const = 0;
  virtual Result<HostTasks, DrainError> on_host(const std::string& hostname) = 0;
  // Apps that would fall short of their minimum healthy instances without this host and
  // the `draining` hosts (whose tasks are going away too).
  virtual Result<std::vector<AppShortfall>, DrainError> budget(const std::string& hostname,
                                                               const std::vector<std::string>& draining) = 0;
  // The leader ("host:port"), "" when none.
  virtual Result<std::string, DrainError> leader() = 0;
  // Abdicates and waits until a different leader answers; the new leader.
  virtual Result<std::string, DrainError> abdicate(std::chrono::steady_clock::time_point until) = 0;
  // Kills the tasks and reads the task list back until they are gone: without `scale`
  // Marathon replaces them elsewhere; with it their apps shrink by as many (a surge's
  // scale-back).
  virtual Result<void, DrainError> release_tasks(const std::vector<std::string>& task_ids,
                                                 std::chrono::steady_clock::time_point until, bool scale) = 0;
  // The app as a surge sees it from `hostname`, not counting tasks on `draining` hosts.
  virtual Result<SurgeApp, DrainError> surge_app(const std::string& app_id, const std::string& hostname,
                                                 const std::vector<std::string>& draining) = 0;
  // Sets the app's instance count. false: a deployment holds the app (Marathon's 409),
  // nothing changed -- unless `force`, which replaces that deployment. true: asked (an
  // answer lost too): the caller reads the count back, which is the proof.
  virtual Result<bool, DrainError> scale(const std::string& app_id, std::int64_t instances, bool force) = 0;
  // Of `app_ids`, those below full strength (healthy tasks < instances), as
  // "id healthy/instances"; apps that no longer exist are not listed.
  virtual Result<std::vector<std::string>, DrainError> below_strength(const std::vector<std::string>& app_ids) = 0;
};

// ---- containers ------------------------------------------------------------------------

// A container the drain takes out, with its settings after per-app overrides.
struct DrainContainer {
  std::string id;
  std::string name;
  std::string app_id;   // MARATHON_APP_ID
  std::string task_id;  // MESOS_TASK_ID
  bool host_network = false;
  pid_t pid = 0;
  std::map<std::string, std::string> labels;
  std::vector<std::uint16_t> fence_ports;   // host ports whose new connections are refused
  std::vector<std::uint16_t> listen_ports;  // ports it accepts on, in its own namespace
  std::vector<std::uint16_t> ignore_ports;  // inbound connections on these are not waited for
  std::chrono::seconds deadline{300};       // for its inbound connections to close
  std::chrono::seconds grace{300};          // docker stop's SIGTERM -> SIGKILL
};

class DrainContainers {
 public:
  virtual ~DrainContainers() = default;
  // The running task containers of this host (Mesos/Marathon tasks, or every container
  // when so configured), with ports and labels; overrides are not applied yet.
  virtual Result<std::vector<DrainContainer>, DrainError> running() = 0;
  // docker stop (grace) then kill, for every container at once; returns when each is
  // no longer running, or fails naming the ones that still run.
  virtual Result<void, DrainError> stop(const std::vector<DrainContainer>& containers) = 0;
};

// ---- connections (the tracker) ---------------------------------------------------------

struct ContainerCount {
  std::string id;
  std::string name;
  std::int64_t inbound = -1;  // waited-for inbound connections; -1 unknown
  bool deadline_passed = false;
  bool gone = false;          // no longer running: nothing left to wait for
};

struct WaitProgress {
  std::vector<ContainerCount> containers;
  std::int64_t total = 0;        // known inbound connections left
  std::int64_t unknown = 0;      // containers whose count is unknown
  double closing_per_second = 0;  // over the last few seconds
  std::optional<std::chrono::seconds> eta;
  std::string oldest_peer;       // "10.0.0.7:51234 -> web (31 s)", "" when none known
  std::chrono::milliseconds elapsed{0};
  bool connected = false;        // the tracker stream is up

  // The containers a person should see first, at most `n`: unknown counts, then the
  // most connections, then passed deadlines; containers at a known 0 only when there is
  // room. A host with hundreds of containers stays readable: the rest is summed up by
  // the caller ("and 57 more at 0").
  std::vector<const ContainerCount*> busiest(std::size_t n) const;
};

struct WaitOutcome {
  bool all_zero = false;  // every container reached zero inbound before its deadline
  WaitProgress last;
  std::chrono::milliseconds waited{0};
};

class DrainConnections {
 public:
  virtual ~DrainConnections() = default;
  // Waits until every container's inbound count (without its ignored ports) is 0 -- a
  // known 0: unknown is never 0 -- or its deadline passed. `on_progress` gets every
  // change, and a tick at least every `tick`. Returns early (kInterrupted) when `stop`
  // becomes true.
  virtual Result<WaitOutcome, DrainError> wait_zero(const std::vector<DrainContainer>& containers,
                                                    std::chrono::milliseconds tick,
                                                    FunctionRef<void(const WaitProgress&)> on_progress,
                                                    const std::atomic<bool>& stop) = 0;
  // One reading of the counts (no peers, no rate), for --dry-run and the fence report.
  virtual Result<WaitProgress, DrainError> counts(const std::vector<DrainContainer>& containers) = 0;
};

// ---- the fence -------------------------------------------------------------------------

class DrainFence {
 public:
  virtual ~DrainFence() = default;
  virtual Result<std::vector<std::uint16_t>, DrainError> fenced() = 0;  // empty: no fence
  virtual Result<void, DrainError> apply(const std::vector<std::uint16_t>& ports) = 0;
  virtual Result<bool, DrainError> remove() = 0;
  virtual Result<std::string, DrainError> plan(const std::vector<std::uint16_t>& ports) = 0;
  // Checks that exactly `ports` are fenced with every jump first in its hook, and
  // applies the fence again where not; true when it had to (another program, e.g.
  // Docker restarting, put rules above ours: new connections were getting through).
  virtual Result<bool, DrainError> ensure(const std::vector<std::uint16_t>& ports) = 0;
};

// ---- this host -------------------------------------------------------------------------

class DrainHost {
 public:
  virtual ~DrainHost() = default;
  virtual std::string boot_id() = 0;
  // Runs the configured reboot command; ok when it was started and exited 0.
  virtual Result<void, DrainError> reboot() = 0;
  // Control tier: the ZooKeeper ensemble serves with a majority (not just imok). True
  // when none is configured.
  virtual Result<bool, DrainError> zookeeper_healthy(std::string& summary) = 0;
  // The notification URL, if configured, with the outcome; failures are logged.
  virtual void notify(const std::string& kind, const std::string& outcome, const std::string& drain_id) = 0;
  // Runs a hook (drain.h): `environment` ("NAME=value") added to this process's, `input`
  // on its standard input, killed after `timeout`, or (SIGTERM, then SIGKILL) once
  // `stop` is set. Its output is kept however it ended. An error: it could not be
  // started; a non-zero exit, a timeout or a stop is the caller's to judge.
  struct HookRun {
    int exit_code = -1;
    std::string out;
    std::string err;
    bool timed_out = false;
    bool stopped = false;
  };
  virtual Result<HookRun, DrainError> run_hook(const std::vector<std::string>& argv,
                                               const std::vector<std::string>& environment, const std::string& input,
                                               std::chrono::milliseconds timeout, const std::atomic<bool>& stop) = 0;
};

}  // namespace skopos::driver
