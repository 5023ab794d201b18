// Fakes of every system the drain steers, for tests of the drain (and of what drives
// it): each appends "call@phase" to one World log -- the call and the journal's last
// phase when it happened -- so the order and the journal-before-side-effect rule are
// visible, and each can be told to fail once.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "driver/drain_systems.h"
#include "driver/journal.h"

namespace skopos::driver::fakes {

using namespace std::chrono_literals;

// Every fake appends "call@phase" to one log: the call and the journal's last phase
// when it happened, so the order and the journal-before-side-effect rule are visible.
struct World {
  std::string journal_path;
  std::vector<std::string> calls;
  std::string boot_id = "boot-1";
  std::map<std::string, DrainError> fail;  // call -> the error it returns (once)
  std::atomic<bool> stop{false};

  std::string phase() const {
    auto journal = Journal::open(journal_path);
    return journal && journal->last() ? journal->last()->phase : "-";
  }
  // Records the call; returns the error it should fail with, if any.
  std::optional<DrainError> call(const std::string& name) {
    calls.push_back(name + "@" + phase());
    const auto it = fail.find(name);
    if (it == fail.end()) return std::nullopt;
    DrainError error = it->second;
    fail.erase(it);
    return error;
  }
  bool called(const std::string& name) const {
    return std::any_of(calls.begin(), calls.end(), [&](const std::string& c) { return c.rfind(name + "@", 0) == 0; });
  }
  std::vector<std::string> side_effects() const {
    std::vector<std::string> out;
    for (const std::string& c : calls) {
      for (const char* name : {"host_lock", "acquire", "announce", "abdicate", "scale", "apply", "stop",
                               "release_tasks", "release_tasks scaled", "take_down", "reboot", "remove",
                               "bring_up", "release", "host_unlock"}) {
        if (c.rfind(std::string(name) + "@", 0) == 0) out.push_back(c);
      }
    }
    return out;
  }
};

#define SKOPOS_FAKE_FAIL(world, name)                           \
  if (auto error_ = (world).call(name)) return unexpected(*error_)

class FakeLocks : public DrainLocks {
 public:
  explicit FakeLocks(World& world) : w_(world) {}
  Result<HostLockInfo, DrainError> host_status() override {
    w_.call("host_status");
    return host_;
  }
  Result<HostLockInfo, DrainError> host_lock(const std::string& token) override {
    SKOPOS_FAKE_FAIL(w_, "host_lock");
    if (host_.locked && host_.token != token)
      return drain_error(DrainError::Kind::kRefused, "locked for " + host_.token);
    if (!host_.locked) host_ = HostLockInfo{true, token, 42};
    return host_;
  }
  Result<bool, DrainError> host_unlock(const std::string& token) override {
    SKOPOS_FAKE_FAIL(w_, "host_unlock");
    if (!host_.locked) return false;
    if (host_.token != token) return drain_error(DrainError::Kind::kRefused, "not " + token);
    host_ = {};
    return true;
  }
  Result<std::int64_t, DrainError> acquire(const std::string&, const std::string&, const std::string&,
                                           std::chrono::steady_clock::time_point deadline,
                                           const std::atomic<bool>& stop) override {
    SKOPOS_FAKE_FAIL(w_, "acquire");
    if (timeouts_before_grant > 0) {  // the slot stays taken past the caller's deadline, this many times
      --timeouts_before_grant;
      if (stop_at_timeout) w_.stop = true;  // SIGTERM while the wait's slice runs out
      std::this_thread::sleep_until(std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(1)));
      return drain_error(DrainError::Kind::kTimedOut, "no slot before the deadline");
    }
    if (slot_busy_) {
      // Another host holds the only slot: wait (bounded) for the stop.
      waiting_ = true;
      for (int i = 0; i < 5000 && !stop.load(); ++i) std::this_thread::sleep_for(1ms);
      return drain_error(DrainError::Kind::kInterrupted, "stopped while waiting for the slot");
    }
    held_ = true;
    if (stop_after_grant_) w_.stop = true;  // SIGTERM right after the slot was granted
    return std::int64_t{77};
  }
  Result<bool, DrainError> release(const std::string&, const std::string&, std::int64_t) override {
    SKOPOS_FAKE_FAIL(w_, "release");
    const bool was = held_;
    held_ = false;
    return was;
  }
  Result<void, DrainError> guard(const std::string&, const std::string&, std::int64_t token,
                                 const std::string& phase) override {
    SKOPOS_FAKE_FAIL(w_, "guard:" + phase);
    if (!held_ || token != 77) return drain_error(DrainError::Kind::kRefused, "slot lost");
    return {};
  }
  Result<std::string, DrainError> describe(const std::string&, const std::string&) override {
    return std::string(timeouts_before_grant > 0 || slot_busy_
                           ? "max 1, held by: host-b (REBOOT, phase reboot, 25 min, heartbeat stale)"
                           : "free");
  }
  int timeouts_before_grant = 0;
  bool stop_at_timeout = false;
  Result<int, DrainError> leave_lines() override {
    w_.call("leave_lines");
    return 0;
  }
  Result<DrainingHosts, DrainError> budget_claims() override {
    SKOPOS_FAKE_FAIL(w_, "budget_claims");
    DrainingHosts out;
    out.revision = 10;
    out.hostnames = draining_;
    out.ours = claimed_;
    return out;
  }
  Result<bool, DrainError> claim_budget(const DrainingHosts&, const std::string&, const std::string&) override {
    SKOPOS_FAKE_FAIL(w_, "claim");
    if (claims_lost_ > 0) {  // another host claimed meanwhile
      --claims_lost_;
      return false;
    }
    claimed_ = true;
    return true;
  }
  Result<bool, DrainError> release_budget_claim() override {
    SKOPOS_FAKE_FAIL(w_, "unclaim");
    const bool was = claimed_;
    claimed_ = false;
    return was;
  }

  Result<SurgeLedger, DrainError> surge_ledger(const std::string& app) override {
    SKOPOS_FAKE_FAIL(w_, "surge_ledger");
    const auto it = ledgers_.find(app);
    return it == ledgers_.end() ? SurgeLedger{} : it->second;
  }
  Result<bool, DrainError> write_surge_ledger(const std::string& app, const SurgeLedger& seen,
                                              const SurgeLedger& next) override {
    SKOPOS_FAKE_FAIL(w_, "ledger");
    const auto it = ledgers_.find(app);
    if ((it == ledgers_.end() ? 0 : it->second.revision) != seen.revision) return false;
    if (next.empty()) {
      ledgers_.erase(app);
      return true;
    }
    SurgeLedger stored = next;
    stored.revision = ++ledger_revision_;
    ledgers_[app] = stored;
    return true;
  }

  HostLockInfo host_;
  std::map<std::string, SurgeLedger> ledgers_;  // the surge ledgers, by app
  std::int64_t ledger_revision_ = 100;
  std::vector<std::string> draining_;  // other hosts with a budget claim
  bool claimed_ = false;
  int claims_lost_ = 0;
  bool held_ = false;
  bool slot_busy_ = false;
  std::atomic<bool> waiting_{false};  // acquire() is waiting for the busy slot
  bool stop_after_grant_ = false;

 private:
  World& w_;
};

class FakeMesos : public DrainMesos {
 public:
  explicit FakeMesos(World& world) : w_(world) {}
  bool configured() const override { return true; }
  Result<MesosMachine, DrainError> locate(const std::string& hostname) override {
    SKOPOS_FAKE_FAIL(w_, "locate");
    if (!knows_machine) return MesosMachine{};
    return MesosMachine{MesosMachine::Mode::kSchedule, hostname, "10.0.0.5", "S1"};
  }
  Result<void, DrainError> announce(const MesosMachine&) override {
    SKOPOS_FAKE_FAIL(w_, "announce");
    return {};
  }
  Result<void, DrainError> take_down(const MesosMachine&, bool) override {
    SKOPOS_FAKE_FAIL(w_, "take_down");
    return {};
  }
  Result<void, DrainError> bring_up(const MesosMachine&) override {
    SKOPOS_FAKE_FAIL(w_, "bring_up");
    return {};
  }
  Result<bool, DrainError> agent_active(const MesosMachine&) override {
    w_.call("agent_active");
    return true;
  }
  std::vector<std::string> describe(const MesosMachine&, bool) const override { return {"window", "down"}; }
  Result<std::vector<std::string>, DrainError> unavailable_hosts() override {
    SKOPOS_FAKE_FAIL(w_, "unavailable_hosts");
    return unavailable;
  }
  std::vector<std::string> unavailable;  // hosts Mesos has in maintenance or draining
  bool knows_machine = true;             // false: no agent or machine of that name

 private:
  World& w_;
};

class FakeMarathon : public DrainMarathon {
 public:
  explicit FakeMarathon(World& world) : w_(world) {}
  bool configured() const override { return true; }
  Result<HostTasks, DrainError> on_host(const std::string&) override {
    w_.call("on_host");
    HostTasks tasks;
    if (!here.empty()) tasks.apps.push_back({"/web", instances, app_labels, here});
    return tasks;
  }
  Result<std::vector<AppShortfall>, DrainError> budget(const std::string&,
                                                       const std::vector<std::string>& draining) override {
    SKOPOS_FAKE_FAIL(w_, "budget");
    budget_without = draining;
    // With `budget_follows`, /web's shortfall ends once its healthy instances elsewhere
    // are enough (a surge's); else the shortfalls are as set.
    std::vector<AppShortfall> out;
    for (const AppShortfall& s : shortfalls) {
      const std::int64_t elsewhere = places ? instances - static_cast<std::int64_t>(here.size()) : healthy_elsewhere;
      if (!budget_follows || s.app_id != "/web" || !s.problem.empty() || elsewhere < s.required) out.push_back(s);
    }
    return out;
  }
  Result<std::string, DrainError> leader() override {
    SKOPOS_FAKE_FAIL(w_, "leader");
    return leader_;
  }
  Result<std::string, DrainError> abdicate(std::chrono::steady_clock::time_point) override {
    SKOPOS_FAKE_FAIL(w_, "abdicate");
    leader_ = "other:8080";
    return leader_;
  }
  Result<void, DrainError> release_tasks(const std::vector<std::string>& ids, std::chrono::steady_clock::time_point,
                                         bool scale) override {
    SKOPOS_FAKE_FAIL(w_, scale ? "release_tasks scaled" : "release_tasks");
    if (scale && lose_kill_answer) {
      // Marathon took the kill (the count drops at once), the answer was lost, and the
      // tasks go a moment later (by the next surge_app()).
      lose_kill_answer = false;
      instances -= static_cast<std::int64_t>(ids.size());
      going = ids;
      return drain_error(DrainError::Kind::kFailed, "Marathon: connection reset after the kill");
    }
    if (scale) {
      for (const std::string& id : ids) {
        const auto it = std::find(here.begin(), here.end(), id);
        if (it == here.end()) continue;
        here.erase(it);
        --instances;
      }
    }
    return {};
  }
  // /web as a surge sees it: `instances`, the tasks `here`, and as many healthy
  // elsewhere as Marathon could place (all of them while `places`).
  Result<SurgeApp, DrainError> surge_app(const std::string& app_id, const std::string&,
                                         const std::vector<std::string>&) override {
    SKOPOS_FAKE_FAIL(w_, "surge_app");
    for (const std::string& id : going) here.erase(std::remove(here.begin(), here.end(), id), here.end());
    going.clear();
    SurgeApp out;
    out.exists = app_id == "/web" && exists;
    out.instances = instances;
    out.here = here;
    out.healthy_elsewhere = places ? instances - static_cast<std::int64_t>(here.size()) : healthy_elsewhere;
    return out;
  }
  Result<bool, DrainError> scale(const std::string& app_id, std::int64_t count, bool force) override {
    SKOPOS_FAKE_FAIL(w_, "scale");
    scales.push_back(app_id + " " + std::to_string(count) + (force ? " force" : ""));
    if (locked > 0 && !force) {
      --locked;
      return false;
    }
    instances = count;
    return true;
  }
  std::int64_t instances = 2;
  std::vector<std::string> here = {"web.1"};
  std::int64_t healthy_elsewhere = 1;  // when Marathon cannot place (!places)
  bool places = true;
  bool exists = true;
  int locked = 0;  // the next scale()s refused: a deployment holds the app
  bool budget_follows = false;
  bool lose_kill_answer = false;  // the next kill with scale is taken, its answer lost
  std::vector<std::string> going;  // tasks killed, gone by the next surge_app()
  std::vector<std::string> scales;
  Result<std::vector<std::string>, DrainError> below_strength(const std::vector<std::string>&) override {
    w_.call("below_strength");
    return below;
  }
  std::vector<std::string> below;  // apps not back at strength (recovery waits for them)

  std::vector<AppShortfall> shortfalls;
  std::vector<std::string> budget_without;  // the draining hosts the last check left out
  std::map<std::string, std::string> app_labels;
  std::string leader_ = "self:8080";

 private:
  World& w_;
};

class FakeContainers : public DrainContainers {
 public:
  explicit FakeContainers(World& world) : w_(world) {
    DrainContainer web;
    web.id = "c1";
    web.name = "mesos-1";
    web.app_id = "/web";
    web.fence_ports = {31000};
    web.listen_ports = {8080};
    running_.push_back(web);
  }
  Result<std::vector<DrainContainer>, DrainError> running() override {
    SKOPOS_FAKE_FAIL(w_, "running");
    return running_;
  }
  Result<void, DrainError> stop(const std::vector<DrainContainer>& containers) override {
    SKOPOS_FAKE_FAIL(w_, "stop");
    stopped = containers;
    running_.clear();
    return {};
  }
  std::vector<DrainContainer> running_;
  std::vector<DrainContainer> stopped;

 private:
  World& w_;
};

class FakeConnections : public DrainConnections {
 public:
  explicit FakeConnections(World& world) : w_(world) {}
  Result<WaitOutcome, DrainError> wait_zero(const std::vector<DrainContainer>& containers, std::chrono::milliseconds,
                                            FunctionRef<void(const WaitProgress&)> on_progress,
                                            const std::atomic<bool>& stop) override {
    SKOPOS_FAKE_FAIL(w_, "wait");
    waited_for = containers;
    waiting = true;
    // Connections still open: wait (bounded) until the test lets them close.
    for (int i = 0; i < 30000 && hold.load() && !stop.load(); ++i) std::this_thread::sleep_for(1ms);
    waiting = false;
    // Progress ticks for a while, as a real wait gives them (the drain checks the fence
    // at its ticks).
    for (auto left = ticks_for; left > 0ms && !stop.load(); left -= 100ms) {
      std::this_thread::sleep_for(100ms);
      WaitProgress progress;
      progress.total = 1;
      on_progress(progress);
    }
    if (stop_during_wait) w_.stop = true;
    if (stop.load()) return drain_error(DrainError::Kind::kInterrupted, "stopped");
    WaitOutcome outcome;
    outcome.all_zero = reach_zero;
    outcome.last.total = reach_zero ? 0 : 3;
    outcome.waited = 1500ms;
    on_progress(outcome.last);
    return outcome;
  }
  Result<WaitProgress, DrainError> counts(const std::vector<DrainContainer>&) override {
    WaitProgress progress;
    progress.total = 5;
    return progress;
  }
  bool reach_zero = true;
  bool stop_during_wait = false;
  std::chrono::milliseconds ticks_for{0};  // progress ticks every 100 ms this long
  std::atomic<bool> hold{false};     // true: the wait blocks until it is false again
  std::atomic<bool> waiting{false};  // inside wait_zero now
  std::vector<DrainContainer> waited_for;

 private:
  World& w_;
};

class FakeFence : public DrainFence {
 public:
  explicit FakeFence(World& world) : w_(world) {}
  // A look, not a side effect: not recorded in `calls`, but it fails once when asked to.
  Result<std::vector<std::uint16_t>, DrainError> fenced() override {
    if (const auto it = w_.fail.find("fenced"); it != w_.fail.end()) {
      const DrainError error = it->second;
      w_.fail.erase(it);
      return unexpected(error);
    }
    return ports;
  }
  Result<void, DrainError> apply(const std::vector<std::uint16_t>& p) override {
    SKOPOS_FAKE_FAIL(w_, "apply");
    ports = p;
    return {};
  }
  Result<bool, DrainError> remove() override {
    SKOPOS_FAKE_FAIL(w_, "remove");
    const bool was = !ports.empty();
    ports.clear();
    return was;
  }
  Result<std::string, DrainError> plan(const std::vector<std::uint16_t>&) override { return std::string("*filter\n"); }
  Result<bool, DrainError> ensure(const std::vector<std::uint16_t>& p) override {
    SKOPOS_FAKE_FAIL(w_, "ensure");
    const bool pushed = pushed_down;
    pushed_down = false;
    ports = p;
    return pushed;
  }
  std::vector<std::uint16_t> ports;
  bool pushed_down = false;  // the next ensure() finds the fence pushed down

 private:
  World& w_;
};

class FakeHost : public DrainHost {
 public:
  explicit FakeHost(World& world) : w_(world) {}
  std::string boot_id() override { return w_.boot_id; }
  Result<void, DrainError> reboot() override {
    SKOPOS_FAKE_FAIL(w_, "reboot");
    return {};
  }
  Result<bool, DrainError> zookeeper_healthy(std::string& summary) override {
    summary = zookeeper_ok ? "leader, 3 of 3 serving" : "1 of 3 serving";
    return zookeeper_ok;
  }
  void notify(const std::string& kind, const std::string& outcome, const std::string&) override {
    notified.push_back(kind + " " + outcome);
  }
  // A hook: the call "hook:<point>" (SKOPOS_HOOK) in the world's calls, its environment
  // and input kept; it exits as `hook_exit` says (0 when not there); `on_hook` runs
  // first (a test copies the journal there: the state of a crash in the hook's middle).
  Result<HookRun, DrainError> run_hook(const std::vector<std::string>& argv,
                                       const std::vector<std::string>& environment, const std::string& input,
                                       std::chrono::milliseconds, const std::atomic<bool>&) override {
    std::string point;
    for (const std::string& entry : environment) {
      if (entry.rfind("SKOPOS_HOOK=", 0) == 0) point = entry.substr(12);
    }
    hook_argv.push_back(argv);
    hook_environments.push_back(environment);
    hook_inputs.push_back(input);
    if (on_hook) on_hook(point);
    SKOPOS_FAKE_FAIL(w_, "hook:" + point);
    const auto exit = hook_exit.find(point);
    HookRun run;
    run.exit_code = exit == hook_exit.end() ? 0 : exit->second;
    run.out = "checked " + point + "\n";
    if (run.exit_code != 0) run.err = point + " says no\nsecond line\n";
    run.timed_out = hook_ends == "timeout";
    run.stopped = hook_ends == "stop";
    return run;
  }
  bool zookeeper_ok = true;
  std::vector<std::string> notified;
  std::map<std::string, int> hook_exit;
  std::string hook_ends;  // "timeout" or "stop": how the next hooks end (killed, output kept)
  std::function<void(const std::string& point)> on_hook;
  std::vector<std::vector<std::string>> hook_argv;
  std::vector<std::vector<std::string>> hook_environments;
  std::vector<std::string> hook_inputs;

 private:
  World& w_;
};

// A test on the fakes: a World with its own journal in a fresh directory, every fake,
// and the systems as the drain takes them. The drain's and the agent's tests derive
// from it.
class FakeWorldTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/skopos-fake-world-" + std::to_string(::getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    world_.journal_path = dir_ + "/journal";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  DrainSystems systems() { return DrainSystems{locks_, mesos_, marathon_, containers_, connections_, fence_, host_}; }
  // No drain in progress: the journal is finished (or was never written).
  bool journal_done() const {
    auto journal = Journal::open(world_.journal_path);
    return journal && !journal->last();
  }

  std::string dir_;
  World world_;
  FakeLocks locks_{world_};
  FakeMesos mesos_{world_};
  FakeMarathon marathon_{world_};
  FakeContainers containers_{world_};
  FakeConnections connections_{world_};
  FakeFence fence_{world_};
  FakeHost host_{world_};
};

}  // namespace skopos::driver::fakes
