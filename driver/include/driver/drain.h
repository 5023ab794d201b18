// Drain: taking this host out of service without failing a request, and bringing it
// back -- the state machine of ../shared/BRIEF.md, "The drain":
//
//   host-lock       this host's lock, token REBOOT, DRAIN or BOOSTER
//   cluster-lock    reboot and booster drains: a slot of the tier's semaphore (its
//                   fencing token is checked by guard() before every later side effect)
//   budget          every Marathon app on this host keeps enough healthy instances on
//                   other hosts that are not draining themselves, or the drain is
//                   refused; the check and this host's claim on the budget are one
//                   atomic decision in etcd (LockService's budget claims), so two
//                   drivers never both spend an app's last healthy instance. The claim
//                   is withdrawn with the locks (booster: once drained). An app that
//                   surges (below) is not refused: its replacements come first
//   announce        Mesos: a maintenance window or DEACTIVATE_AGENT; control tier: the
//                   Marathon leader moved away from this host
//   surge           apps with surge on (label skopos.surge, or the driver's default):
//                   each is scaled up by its tasks on this host, and the drain waits
//                   (up to surge_timeout) until they are healthy on other hosts and the
//                   budget holds without this host; else every surge is taken back and
//                   the drain is refused, having given everything back. release-tasks
//                   scales each back by exactly what it added (its tasks here killed
//                   with scale) -- unless the operator set another count meanwhile,
//                   which then stands. Drains of several hosts share an app's count
//                   through its surge ledger in etcd (SurgeLedger): who added what, and
//                   the count they last set, so each scales back only its own part and
//                   a change by anyone else is seen
//   fence           new connections to the task ports are reset; established ones flow
//   wait            until every container's inbound count is 0, or its deadline
//   stop            docker stop with grace, then kill
//   release-tasks   Marathon kills the (stopped) tasks without scaling, so it replaces
//                   them elsewhere, verified by reading back
//   take-down       Mesos /machine/down (or DRAIN_AGENT; mark_gone for booster)
//   drained         DRAIN and BOOSTER end here (booster releases its cluster lock and
//                   calls the notification URL); REBOOT goes on:
//   reboot          the boot id is recorded, then the reboot command runs
//
// and recovery, after the reboot or for `skopos undrain` / `--abort`, in order: health
// checks (ZooKeeper quorum on the control tier), unfence, Mesos up/reactivate, the agent
// registered again, the apps that were here back at full strength, locks (and the
// budget claim) released.
//
// Crash safety: before each phase's side effect the phase and everything undoing needs
// (the facts) are appended to the journal and fdatasync'ed, then the lock guard runs.
// A drain started again with a journal in progress resumes at the recorded phase: every
// step is idempotent (the same lock token comes back, a fence is applied again without
// duplicates, stopping a stopped container is a no-op, Mesos states already reached are
// accepted). Recovery reads the real state (the fence, the machine's Mesos mode) rather
// than trusting the journal alone.
//
// Not thread-safe. `stop` (set by a signal handler) makes waits return at a safe point.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "driver/drain_systems.h"
#include "driver/journal.h"
#include "skopos/function_ref.h"
#include "skopos/result.h"

namespace skopos::driver {

enum class DrainKind : std::uint8_t { kReboot, kDrain, kBooster };
const char* drain_kind_token(DrainKind kind);  // "REBOOT", "DRAIN", "BOOSTER"
bool parse_drain_kind(const std::string& token, DrainKind& kind);

// The host's tier: the cluster lock's group, and what the drain checks besides. The
// control tier moves Marathon's leader away and keeps ZooKeeper's quorum; the worker
// tier holds the apps' disruption budget.
enum class Tier : std::uint8_t { kControl, kProxy, kWorker };
// The tiers' names, which are the lock groups' names.
inline constexpr std::pair<Tier, const char*> kTierNames[] = {
    {Tier::kControl, "control"}, {Tier::kProxy, "proxy"}, {Tier::kWorker, "worker"}};
const char* tier_name(Tier tier);  // "control", "proxy", "worker"
std::optional<Tier> parse_tier(std::string_view name);

enum class DrainPhase : std::uint8_t {
  kHostLock,
  kClusterLock,
  kBudget,
  kAnnounce,
  kSurge,
  kFence,
  kWait,
  kStop,
  kReleaseTasks,
  kTakeDown,
  kDrained,
  kReboot,
  // Recovery.
  kRecoverChecks,
  kUnfence,
  kSurgeBack,  // a surge not scaled back yet (the drain stopped before release-tasks)
  kBringUp,
  kAgentBack,
  kAppsHealthy,
  kReleaseLocks,
  kDone,
};
const char* drain_phase_name(DrainPhase phase);  // "host-lock", "cluster-lock", ...
bool parse_drain_phase(const std::string& name, DrainPhase& phase);

// What the drain has learned and done, carried in every journal entry's facts so a
// restarted driver (or recovery after the reboot) knows it without asking anyone. The
// fencing token and the boot id are the journal entry's own fields, not facts: the
// entry that recorded the reboot says which boot it was written in.
struct DrainFacts {
  DrainKind kind = DrainKind::kDrain;
  std::string tier;
  std::string lock;                 // the cluster lock ("" for DRAIN)
  std::int64_t fencing_token = 0;   // its fencing token (JournalEntry::fencing_token)
  std::int64_t host_lock_revision = 0;
  MesosMachine machine;
  std::vector<std::uint16_t> fenced_ports;
  std::vector<std::string> containers;  // "id:name" of the containers taken out
  std::vector<std::string> apps;        // Marathon apps that had tasks here
  std::vector<std::string> tasks;       // their tasks on this host
  bool leader_moved = false;
  bool connections_zero = false;        // the wait ended because every count was 0
  std::string trigger;                  // what started it: "cli", "file", "rolling:<request id>"
  // Each hook point's state in this drain: "started" (journaled before it runs),
  // "done", "failed".
  std::map<std::string, std::string> hooks;
  // The apps this drain surges, each with the instances it adds (its tasks here) and
  // where it is: "planned" (decided at the budget), "up" (in the ledger, and Marathon
  // asked), "killing" (this host's tasks killed with scale: sent), "down" (scaled back,
  // or the count was left to the operator).
  struct Surge {
    std::string app;
    std::int64_t added = 0;
    std::string state = "planned";
  };
  std::vector<Surge> surges;
  // A REBOOT drain's post-boot hook as configured when it began (argv, space-joined; "-"
  // none): the recovery runs this one, whoever recovers the host ("": a journal from
  // before hooks; the recovering host's own then).
  std::string post_boot_hook;

  // The facts as a journal entry carries them (without the fencing token): one JSON
  // object, each fact with its own type -- ports and ids as arrays, revisions as
  // numbers, flags as booleans.
  std::string to_json() const;
  // Reads what to_json() writes, and the facts of journals written before it (every
  // value a string, lists comma-joined), so a drain interrupted by an upgrade resumes.
  // Errors name the fact that is wrong. The fencing token is left 0: it comes from the
  // entry (see Drain::in_progress).
  static Result<DrainFacts, std::string> from_json(std::string_view object);
  // The facts as text, one string per fact (lists comma-joined): for people (skopos
  // drain --status) and for the older journal format.
  std::map<std::string, std::string> to_map() const;
  static Result<DrainFacts, std::string> from_map(const std::map<std::string, std::string>& facts);
};

// A condition a drain must meet: the agent's maintenance windows and health gates. The
// start gate is checked before the host joins the line for its tier slot and again once
// it holds the slot; a closed gate ends the drain with DrainError::kGated, having given
// back what it took. A drain past that point finishes whatever the gate says. Called on
// the drain's thread; it may block on the network (bounded by its own timeouts) and
// must not throw. Unknown is closed: the gate's own reading errors come back as a
// closed verdict.
struct StartGateVerdict {
  bool open = false;
  std::string reason;  // for people, open or closed
  // When the verdict may change (the window opens or closes); nullopt: not known.
  std::optional<std::chrono::system_clock::time_point> next_change;
  std::string gate;  // closed: the gate that decided ("pause", "alerts", ...; "" if not known)
};
using StartGate = std::function<StartGateVerdict()>;

// Hooks: the operator's programs at fixed points of the drain.
//   pre-drain   after the budget check, before anything is taken away: a non-zero exit
//               (or no answer) refuses the drain, and the locks are given back
//   drained     the host is drained, before the reboot (e.g. apply updates)
//   pre-reboot  just before the reboot command (REBOOT drains only)
//   post-boot   back from the reboot, before the slot goes back: a failure keeps the
//               slot (no other host of the tier goes down) and the recovery is tried
//               again
// Each runs without a shell, bounded by its timeout, with the drain's context in its
// environment (SKOPOS_HOOK, SKOPOS_MACHINE_ID, SKOPOS_HOSTNAME, SKOPOS_TIER,
// SKOPOS_KIND, SKOPOS_PHASE, SKOPOS_DRAIN_ID, SKOPOS_JOURNAL, SKOPOS_TRIGGER) and as one
// JSON object on its standard input (the same, and the drain's facts). Its start and
// its result are journaled: after a crash in its middle it runs again only when
// declared idempotent -- otherwise the drain stops and says so.
enum class HookPoint : std::uint8_t { kPreDrain, kDrained, kPreReboot, kPostBoot };
inline constexpr std::size_t kHookPoints = 4;
const char* hook_point_name(HookPoint point);  // "pre-drain", "drained", "pre-reboot", "post-boot"
std::optional<HookPoint> parse_hook_point(std::string_view name);

struct DrainHook {
  std::vector<std::string> argv;  // empty: none
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  bool idempotent = false;  // may run again after the driver stopped in its middle
};

struct DrainOptions {
  DrainKind kind = DrainKind::kDrain;
  Tier tier = Tier::kWorker;
  std::string hostname;              // as Mesos and Marathon name this host
  std::string reboot_lock = "reboot";
  std::string booster_lock = "booster";
  std::chrono::milliseconds lock_wait{std::chrono::hours(1)};
  std::chrono::seconds connection_deadline{300};
  std::chrono::seconds stop_grace{300};
  std::chrono::milliseconds recover_timeout{std::chrono::minutes(15)};
  std::chrono::milliseconds leader_wait{std::chrono::seconds(60)};
  std::chrono::milliseconds progress_interval{std::chrono::seconds(5)};
  std::string marathon_self;  // control tier: "host:port" of this host's Marathon
  bool mark_gone = false;     // booster: DRAIN_AGENT with mark_gone
  std::string trigger = "cli";
  bool dry_run = false;
  StartGate start_gate;  // empty: none (only reboot and booster drains take a slot)
  // After the host came back, before it gives its slot back: the health gates (and the
  // start of the tier's soak time). Waited for up to recover_timeout; empty: none.
  StartGate release_gate;
  // The reboot phase only journals: something else reboots the host (the OS's updater,
  // through FleetLock), and recovery follows the boot as after any reboot.
  bool external_reboot = false;
  // A wait (for the tier's slot, the connections, the host's recovery) that lasts this
  // long is reported stuck -- a warning with the reason and a "stuck" notification --
  // and again at twice, four times... that long; 0: never.
  std::chrono::milliseconds stuck_after{std::chrono::minutes(10)};
  std::string machine_id;  // for the hooks' context
  std::array<DrainHook, kHookPoints> hooks;  // by HookPoint
  // Surge: start an app's replacements before its tasks here stop. Per app by its
  // Marathon label (`surge_label`: "true" or "false"), else this default.
  bool surge = false;
  std::string surge_label = "skopos.surge";
  // How long the surge waits for the replacements to be healthy elsewhere (and for a
  // deployment holding the app to end) before it takes every surge back and refuses.
  std::chrono::milliseconds surge_timeout{std::chrono::minutes(10)};
};

// What the drain reports as it goes: one event per phase and per progress tick. The
// CLI renders them as log lines, a live view on a terminal, or JSON lines.
struct DrainEvent {
  enum class Type : std::uint8_t { kPhase, kInfo, kWarning, kProgress, kPlan, kDone };
  Type type = Type::kInfo;
  DrainPhase phase = DrainPhase::kHostLock;
  std::string message;
  const WaitProgress* progress = nullptr;  // kProgress
  std::map<std::string, std::string> fields;
};

struct DrainSystems {
  DrainLocks& locks;
  DrainMesos& mesos;
  DrainMarathon& marathon;
  DrainContainers& containers;
  DrainConnections& connections;
  DrainFence& fence;
  DrainHost& host;
};

struct DrainResult {
  DrainPhase reached = DrainPhase::kHostLock;
  DrainFacts facts;
  std::optional<WaitOutcome> wait;
  std::chrono::milliseconds took{0};
  bool rebooting = false;  // the reboot command ran: this process should end quietly
  // A recovery: the drain it finished had journaled its reboot phase. False for a drain
  // wound up before it went down (its locks given back after a refusal, a timeout or a
  // closed gate, when giving them back failed the first time).
  bool rebooted = false;
  int fence_reapplied = 0;  // times the wait found the fence pushed down and applied it again
};

// The ceiling of skopos.drain-deadline and skopos.stop-grace (and of the matching
// command-line defaults): one day.
inline constexpr std::chrono::seconds kMaxOverrideDuration{24 * 3600};

class Drain {
 public:
  Drain(DrainSystems systems, Journal& journal, DrainOptions options, std::function<void(const DrainEvent&)> on_event,
        const std::atomic<bool>& stop);

  // Runs the drain (or resumes the one in the journal) up to `drained`, and for REBOOT
  // through the reboot. A journal whose drain already rebooted (another boot id) is
  // recovered instead. With dry_run: reports the plan and changes nothing.
  Result<DrainResult, DrainError> run();

  // Brings the host back from wherever the journal (and the real state) says it is:
  // unfence, Mesos up, agent and apps back, locks released, journal finished. With no
  // journal: removes a fence left behind and releases this host's lock if ours.
  // `wait_apps`: wait for the apps that were here to be back at full strength.
  Result<DrainResult, DrainError> recover(bool wait_apps = true);

  // What the journal holds, for status output: the facts and the phase, if any drain
  // is in progress.
  static std::optional<std::pair<DrainPhase, DrainFacts>> in_progress(const Journal& journal, std::string* problem);

  // Per-app overrides (labels on the container, then on its Marathon app; then the
  // defaults): skopos.drain-deadline, skopos.stop-grace (durations), skopos.ignore-ports
  // (comma-separated ports). A label that cannot be read is an error naming it, and so
  // is a duration above kMaxOverrideDuration (a deadline that far out is a typo, and
  // one past what a clock can add would wrap into the past and stop the container at
  // once).
  static Result<void, std::string> apply_overrides(DrainContainer& container,
                                                   const std::map<std::string, std::string>& app_labels,
                                                   std::chrono::seconds default_deadline,
                                                   std::chrono::seconds default_grace);

 private:
  // What is on this host and what the drain would do with it: read-only, shared by the
  // budget phase and the dry run.
  struct Survey {
    std::optional<std::vector<AppShortfall>> shortfalls;  // nullopt: Marathon not configured
    HostTasks tasks;
    MesosMachine machine;
    std::vector<DrainContainer> containers;  // overrides applied
    std::vector<std::uint16_t> ports;        // to fence: every container's, sorted, unique
    std::vector<DrainFacts::Surge> surges;   // the apps that surge (label or default)
    std::vector<AppShortfall> surged;        // shortfalls their surges will cover
  };
  // `draining`: hosts whose tasks do not count for the budget (they are going away too).
  Result<Survey, DrainError> survey(const std::vector<std::string>& draining);
  // The budget phase's survey, its check and its claim, as one decision (see LockService's
  // budget claims); kRefused naming the apps that would fall short.
  Result<Survey, DrainError> budget_decision(const std::string& token);
  // The hosts whose tasks do not count for the budget: those with a claim (read at a
  // revision, for the claim), and those Mesos has going away; never this host.
  Result<DrainingHosts, DrainError> draining_now();
  static constexpr int kBudgetAttempts = 20;
  // Appends `phase` with the current facts to the journal (durable when it returns).
  Result<void, DrainError> record(DrainPhase phase);
  Result<void, DrainError> enter(DrainPhase phase);
  Result<void, DrainError> guard(DrainPhase phase);
  // One function per phase; step() picks the drain's, recovery_step() recovery's.
  Result<void, DrainError> step(DrainPhase phase);
  Result<void, DrainError> take_host_lock();
  Result<void, DrainError> take_cluster_lock();
  Result<void, DrainError> check_start_gate();
  Result<void, DrainError> check_budget();
  Result<void, DrainError> announce();
  Result<void, DrainError> fence();
  Result<void, DrainError> wait_for_connections();
  Result<void, DrainError> stop_containers();
  Result<void, DrainError> release_tasks();
  Result<void, DrainError> take_down();
  Result<void, DrainError> drained();
  Result<void, DrainError> reboot();
  // Surge (drain_surge.cpp): the phase; one app up; the wait for its replacements;
  // one app's scale-back, as far as the count goes (kKillHere: its tasks here are to be
  // killed with scale by the caller, then asked again); recovery's phase.
  Result<void, DrainError> surge();
  Result<void, DrainError> surge_up(DrainFacts::Surge& surge, std::chrono::steady_clock::time_point deadline);
  Result<void, DrainError> surge_wait(std::chrono::steady_clock::time_point deadline);
  enum class SurgeDown : std::uint8_t { kDone, kKillHere };
  Result<SurgeDown, DrainError> surge_down(const DrainFacts::Surge& surge, bool may_kill_here,
                                           std::vector<std::string>& here,
                                           std::chrono::steady_clock::time_point deadline);
  Result<void, DrainError> surge_back();
  // A short pause in a surge's loop; kTimedOut saying `why` once `deadline` is near.
  Result<void, DrainError> surge_pause(const std::string& why, std::chrono::steady_clock::time_point deadline);
  // Scales every surge not yet back (the release-tasks phase: this host's tasks killed
  // with scale; recovery: `may_kill_here` only when they no longer serve).
  Result<void, DrainError> surges_down(bool may_kill_here);
  // Which apps surge (the label, else the default); an unreadable label is an error.
  Result<std::vector<DrainFacts::Surge>, std::string> surge_plan(const HostTasks& tasks) const;
  Result<void, DrainError> recovery_step(DrainPhase phase, bool wait_apps);
  Result<void, DrainError> recover_checks();
  Result<void, DrainError> unfence();
  Result<void, DrainError> bring_up();
  Result<void, DrainError> agent_back();
  Result<void, DrainError> apps_healthy();
  Result<void, DrainError> release_locks();
  // Whether a wait that began at `since` is stuck now (past options_.stuck_after, then
  // twice, four times... that: `next` keeps the count); says so with `what` and `why`.
  void stuck_check(std::chrono::steady_clock::time_point since, std::chrono::milliseconds& next,
                   const std::string& what, const std::string& why);
  // Runs the hook configured at `point`, if any (see HookPoint), journaling its start and
  // its result; a pre-drain failure is kRefused, any other kFailed.
  Result<void, DrainError> run_hook(HookPoint point);
  // A bounded wait (--recover-timeout) for `ready`, polled; kTimedOut naming `what`.
  Result<void, DrainError> wait_until(const std::string& what,
                                      FunctionRef<Result<bool, DrainError>(std::string& last)> ready);

  // The decisions a phase and the dry run share: the phase acts on them, plan() reports
  // them. A verdict's text is "" when there is nothing to say.
  struct Verdict {
    bool refused = false;
    std::string text;
  };
  // Control tier: refused while ZooKeeper's quorum is at risk.
  Result<Verdict, DrainError> zookeeper_verdict();
  // Mesos configured but knowing no machine by this name: refused for a worker, a
  // warning (Mesos is not told) for other tiers.
  Verdict mesos_verdict(const MesosMachine& machine) const;
  // Control tier with --marathon-self: Marathon's leader, when it is this host.
  Result<std::optional<std::string>, DrainError> leader_here();
  // Booster with mark_gone: Mesos is told the agent is gone for good.
  bool marks_gone() const;
  Result<void, DrainError> plan();
  Result<std::vector<DrainContainer>, DrainError> targets(const HostTasks& tasks);
  // After a restart past the budget phase: the containers it chose that still run.
  Result<void, DrainError> resume_containers();
  Result<void, DrainError> journal_finish();
  // `announce`: the end says "back in service" and notifies "recovered"; a drain that
  // ended before it took anything away only gives its locks back, quietly.
  Result<void, DrainError> recover_steps(DrainPhase from, bool wait_apps, bool announce = true);
  void emit(DrainEvent::Type type, std::string message, std::map<std::string, std::string> fields = {});
  bool stopping() const { return stop_.load(std::memory_order_relaxed); }
  std::string lock_name() const;

  DrainSystems systems_;
  Journal& journal_;
  DrainOptions options_;
  std::function<void(const DrainEvent&)> on_event_;
  const std::atomic<bool>& stop_;
  std::string drain_id_;
  DrainPhase phase_ = DrainPhase::kHostLock;
  DrainFacts facts_;
  std::vector<DrainContainer> containers_;  // computed in this run (fence..stop)
  HostTasks host_tasks_;
  std::optional<WaitOutcome> wait_;
  int fence_reapplied_ = 0;
  bool announce_ = true;  // recover_steps(): the host went out and comes back (see there)
  bool rebooted_ = false;  // recover(): the drain it finishes journaled its reboot
  // How often the wait checks that the fence is still first in its hooks.
  static constexpr std::chrono::seconds kFenceCheckInterval{2};
};

// A new random drain id ("d-" + 16 hex digits).
std::string new_drain_id();

}  // namespace skopos::driver
