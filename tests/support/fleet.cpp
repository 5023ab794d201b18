#include "fleet.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <set>

#include "driver/agent.h"
#include "driver/drain_systems_impl.h"
#include "driver/heartbeat.h"
#include "driver/lock_service.h"
#include "driver/rolling_reboot.h"

namespace skopos::testing {

using namespace skopos::driver;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// What the stand-ins of the cluster's systems share: Marathon's placement, Mesos's
// maintenance state, and each tier's "the request changed" signal.
struct Fleet::Cluster {
  std::mutex mutex;
  std::map<std::string, std::vector<const FleetApp*>> apps_on;  // host name -> its apps
  std::map<std::string, std::string> maintenance;                // host name -> window | down
  std::map<std::string, std::uint64_t> generation;               // tier -> request changes seen
  // Each agent's wait, by tier: woken one by one (a thousand threads on one condition
  // variable would all wake for any change).
  std::map<std::string, std::set<std::condition_variable*>> waiting;
  void wake_tier(const std::string& tier) {
    for (std::condition_variable* waiter : waiting[tier]) waiter->notify_one();
  }
};

// When slots were released and taken, per group, to measure handoffs.
struct Fleet::Slots {
  mutable std::mutex mutex;
  std::map<std::string, int> waiting;                                // group -> acquires in flight
  std::map<std::string, std::vector<Clock::time_point>> released;    // group -> releases not yet taken
  std::map<std::string, std::vector<Fleet::Handoff>> handoffs;
  std::map<std::string, Clock::time_point> taken;       // "<group> <machine>" -> when its slot was taken
  std::map<std::string, std::vector<double>> held_ms;   // group -> how long each slot was held
};

std::unique_ptr<EtcdClient> fleet_etcd_client(const std::vector<std::string>& endpoints) {
  EtcdOptions options;
  for (const std::string& text : endpoints) {
    if (auto parsed = HttpEndpoint::parse(text)) options.http.endpoints.push_back(*parsed);
  }
  options.http.timeout = 5s;
  options.http.backoff = 20ms;
  auto created = EtcdClient::create(std::move(options));
  return created ? std::move(*created) : nullptr;
}

namespace {

class SimMesos final : public DrainMesos {
 public:
  explicit SimMesos(Fleet::Cluster& cluster) : cluster_(cluster) {}
  bool configured() const override { return true; }
  Result<MesosMachine, DrainError> locate(const std::string& hostname) override {
    return MesosMachine{MesosMachine::Mode::kSchedule, hostname, "10.0.0.1", "agent-" + hostname};
  }
  Result<void, DrainError> announce(const MesosMachine& machine) override { return set(machine.hostname, "window"); }
  Result<void, DrainError> take_down(const MesosMachine& machine, bool) override { return set(machine.hostname, "down"); }
  Result<void, DrainError> bring_up(const MesosMachine& machine) override { return set(machine.hostname, ""); }
  Result<bool, DrainError> agent_active(const MesosMachine&) override { return true; }
  std::vector<std::string> describe(const MesosMachine&, bool) const override { return {}; }
  Result<std::vector<std::string>, DrainError> unavailable_hosts() override {
    const std::lock_guard<std::mutex> lock(cluster_.mutex);
    std::vector<std::string> out;
    for (const auto& [host, state] : cluster_.maintenance) out.push_back(host);
    return out;
  }

 private:
  Result<void, DrainError> set(const std::string& host, const std::string& state) {
    const std::lock_guard<std::mutex> lock(cluster_.mutex);
    if (state.empty()) {
      cluster_.maintenance.erase(host);
    } else {
      cluster_.maintenance[host] = state;
    }
    return {};
  }
  Fleet::Cluster& cluster_;
};

// Marathon as driver/marathon.cpp reads it: an app on this host falls short when its
// instances on hosts that are neither this one nor draining are fewer than it needs.
class SimMarathon final : public DrainMarathon {
 public:
  explicit SimMarathon(Fleet::Cluster& cluster) : cluster_(cluster) {}
  bool configured() const override { return true; }
  Result<HostTasks, DrainError> on_host(const std::string& hostname) override {
    HostTasks tasks;
    const std::lock_guard<std::mutex> lock(cluster_.mutex);
    for (const FleetApp* app : apps_on(hostname)) {
      tasks.apps.push_back({app->id, static_cast<std::int64_t>(app->hostnames.size()), {}, {app->id + "." + hostname}});
    }
    return tasks;
  }
  Result<std::vector<AppShortfall>, DrainError> budget(const std::string& hostname,
                                                       const std::vector<std::string>& draining) override {
    std::vector<AppShortfall> out;
    const std::lock_guard<std::mutex> lock(cluster_.mutex);
    for (const FleetApp* app : apps_on(hostname)) {
      AppShortfall s;
      s.app_id = app->id;
      s.on_host = 1;
      s.required = app->required;
      for (const std::string& host : app->hostnames) {
        if (host == hostname) continue;
        const bool away = std::find(draining.begin(), draining.end(), host) != draining.end();
        (away ? s.healthy_draining : s.healthy_elsewhere) += 1;
      }
      if (s.healthy_elsewhere < s.required) out.push_back(s);
    }
    return out;
  }
  Result<std::string, DrainError> leader() override { return std::string("marathon-leader:8080"); }
  Result<std::string, DrainError> abdicate(Clock::time_point) override { return std::string("marathon-leader:8080"); }
  Result<void, DrainError> release_tasks(const std::vector<std::string>&, Clock::time_point, bool) override { return {}; }
  // The fleet's drains do not surge.
  Result<SurgeApp, DrainError> surge_app(const std::string&, const std::string&, const std::vector<std::string>&) override {
    return SurgeApp{};
  }
  Result<bool, DrainError> scale(const std::string& app_id, std::int64_t, bool) override {
    return drain_error(DrainError::Kind::kUsage, "the fleet's Marathon does not scale '" + app_id + "'");
  }
  Result<std::vector<std::string>, DrainError> below_strength(const std::vector<std::string>&) override {
    return std::vector<std::string>{};
  }

 private:
  const std::vector<const FleetApp*>& apps_on(const std::string& hostname) {
    static const std::vector<const FleetApp*> kNone;
    const auto it = cluster_.apps_on.find(hostname);
    return it == cluster_.apps_on.end() ? kNone : it->second;
  }
  Fleet::Cluster& cluster_;
};

// The host's containers: one per app task on it, until the drain stops them; a boot
// starts them again.
class SimContainers final : public DrainContainers {
 public:
  SimContainers(Fleet::Cluster& cluster, std::string hostname) : cluster_(cluster), hostname_(std::move(hostname)) {}
  Result<std::vector<DrainContainer>, DrainError> running() override {
    std::vector<DrainContainer> out;
    if (stopped_) return out;
    // Every host runs a service of its own besides Marathon's tasks, so every drain
    // waits for connections.
    DrainContainer own;
    own.id = "c-local";
    own.name = "local-service";
    own.fence_ports = {30000};
    own.listen_ports = {9000};
    out.push_back(own);
    const std::lock_guard<std::mutex> lock(cluster_.mutex);
    const auto it = cluster_.apps_on.find(hostname_);
    if (it == cluster_.apps_on.end()) return out;
    std::uint16_t port = 31000;
    for (const FleetApp* app : it->second) {
      DrainContainer c;
      c.id = "c-" + app->id.substr(1);
      c.name = "mesos-" + app->id.substr(1);
      c.app_id = app->id;
      c.task_id = app->id + "." + hostname_;
      c.fence_ports = {port++};
      c.listen_ports = {8080};
      out.push_back(std::move(c));
    }
    return out;
  }
  Result<void, DrainError> stop(const std::vector<DrainContainer>&) override {
    stopped_ = true;
    return {};
  }

 private:
  Fleet::Cluster& cluster_;
  std::string hostname_;
  bool stopped_ = false;
};

// The tracker: the host's connections close after `drain_time`.
class SimConnections final : public DrainConnections {
 public:
  explicit SimConnections(std::chrono::milliseconds drain_time) : drain_time_(drain_time) {}
  Result<WaitOutcome, DrainError> wait_zero(const std::vector<DrainContainer>&, std::chrono::milliseconds,
                                            FunctionRef<void(const WaitProgress&)> on_progress,
                                            const std::atomic<bool>& stop) override {
    const auto until = Clock::now() + drain_time_;
    while (Clock::now() < until) {
      if (stop.load()) return drain_error(DrainError::Kind::kInterrupted, "stopped while connections drain");
      std::this_thread::sleep_for(std::min<Clock::duration>(50ms, until - Clock::now()));
    }
    WaitOutcome outcome;
    outcome.all_zero = true;
    outcome.waited = std::chrono::duration_cast<std::chrono::milliseconds>(drain_time_);
    on_progress(outcome.last);
    return outcome;
  }
  Result<WaitProgress, DrainError> counts(const std::vector<DrainContainer>&) override { return WaitProgress{}; }

 private:
  std::chrono::milliseconds drain_time_;
};

// The real locks, timed: a waiter that takes a slot after a release is a handoff.
class TimedLocks final : public DrainLocks {
 public:
  TimedLocks(DrainLocks& locks, Fleet::Slots& slots, std::string machine)
      : locks_(locks), slots_(slots), machine_(std::move(machine)) {}
  Result<HostLockInfo, DrainError> host_status() override { return locks_.host_status(); }
  Result<HostLockInfo, DrainError> host_lock(const std::string& token) override { return locks_.host_lock(token); }
  Result<bool, DrainError> host_unlock(const std::string& token) override { return locks_.host_unlock(token); }
  Result<std::int64_t, DrainError> acquire(const std::string& lock, const std::string& group, const std::string& token,
                                           Clock::time_point until, const std::atomic<bool>& stop) override {
    const std::string key = lock + "/" + group;
    const auto started = Clock::now();
    int waiting = 0;
    {
      const std::lock_guard<std::mutex> guard(slots_.mutex);
      waiting = slots_.waiting[key]++;
    }
    auto got = locks_.acquire(lock, group, token, until, stop);
    const auto now = Clock::now();
    const std::lock_guard<std::mutex> guard(slots_.mutex);
    --slots_.waiting[key];
    auto& released = slots_.released[key];
    if (got) slots_.taken.emplace(key + " " + machine_, now);  // kept when taken again (idempotent)
    if (got && !released.empty() && released.front() > started) {
      slots_.handoffs[key].push_back(
          {std::chrono::duration<double, std::milli>(now - released.front()).count(), waiting, released.front(), machine_});
      released.erase(released.begin());
    }
    return got;
  }
  Result<bool, DrainError> release(const std::string& lock, const std::string& group, std::int64_t token) override {
    // Timed from the start of the release, so a handoff includes the release's own
    // transaction, and noted before it is sent: the next holder's acquire may return
    // before this thread runs again. (Noted after the release, such a release waited for
    // the next taker, and every later taker of the group was paired with the release
    // before its own: under faults, when a loaded machine lets the taker finish first
    // more often, the handoffs measured a release interval too long, p50 78 ms where the
    // releases each taker heard were 10 ms before its take.) Withdrawn if nothing was
    // released.
    const auto started = Clock::now();
    const std::string key = lock + "/" + group;
    bool noted = false;
    {
      const std::lock_guard<std::mutex> guard(slots_.mutex);
      if (slots_.waiting[key] > 0) {
        auto& pending = slots_.released[key];
        pending.insert(std::upper_bound(pending.begin(), pending.end(), started), started);
        noted = true;
      }
    }
    auto released = locks_.release(lock, group, token);
    const std::lock_guard<std::mutex> guard(slots_.mutex);
    if (noted && !(released && *released)) {
      auto& pending = slots_.released[key];
      if (const auto it = std::find(pending.begin(), pending.end(), started); it != pending.end()) pending.erase(it);
    }
    if (released && *released) {
      if (const auto it = slots_.taken.find(key + " " + machine_); it != slots_.taken.end()) {
        slots_.held_ms[key].push_back(std::chrono::duration<double, std::milli>(Clock::now() - it->second).count());
        slots_.taken.erase(it);
      }
    }
    return released;
  }
  Result<void, DrainError> guard(const std::string& lock, const std::string& group, std::int64_t token,
                                 const std::string& phase) override {
    return locks_.guard(lock, group, token, phase);
  }
  Result<DrainingHosts, DrainError> budget_claims() override { return locks_.budget_claims(); }
  Result<bool, DrainError> claim_budget(const DrainingHosts& seen, const std::string& hostname,
                                        const std::string& token) override {
    return locks_.claim_budget(seen, hostname, token);
  }
  Result<bool, DrainError> release_budget_claim() override { return locks_.release_budget_claim(); }
  Result<std::string, DrainError> describe(const std::string& lock, const std::string& group) override {
    return locks_.describe(lock, group);
  }
  Result<int, DrainError> leave_lines() override { return locks_.leave_lines(); }
  Result<SurgeLedger, DrainError> surge_ledger(const std::string& app) override { return locks_.surge_ledger(app); }
  Result<bool, DrainError> write_surge_ledger(const std::string& app, const SurgeLedger& seen,
                                              const SurgeLedger& next) override {
    return locks_.write_surge_ledger(app, seen, next);
  }

 private:
  DrainLocks& locks_;
  Fleet::Slots& slots_;
  std::string machine_;
};

class SimFence final : public DrainFence {
 public:
  Result<std::vector<std::uint16_t>, DrainError> fenced() override { return ports_; }
  Result<void, DrainError> apply(const std::vector<std::uint16_t>& ports) override {
    ports_ = ports;
    return {};
  }
  Result<bool, DrainError> remove() override {
    const bool was = !ports_.empty();
    ports_.clear();
    return was;
  }
  Result<std::string, DrainError> plan(const std::vector<std::uint16_t>&) override { return std::string(); }
  Result<bool, DrainError> ensure(const std::vector<std::uint16_t>& ports) override {
    ports_ = ports;
    return false;
  }

 private:
  std::vector<std::uint16_t> ports_;
};

}  // namespace

// One simulated host: what lasts across its boots, and the agent of the current one.
struct Fleet::Host {
  std::size_t index = 0;
  FleetHostView view;
  Tier tier = Tier::kWorker;
  std::string journal;
  std::vector<std::string> endpoints;
  int boot = 0;
  std::atomic<int> reboots{0};
  bool hold = false;  // (Fleet::mutex_) the next reboot does not come back on its own
  bool held = false;  // (Fleet::mutex_) a held reboot is down now
  // (Fleet::mutex_) its reboot command ran and the shutdown is coming: a second command
  // in this boot (a restarted agent resuming at the reboot phase runs it again, at least
  // once being the rule) reboots it no more than `systemctl reboot` twice would, and an
  // agent crash now changes nothing.
  bool going_down = false;
  std::atomic<std::uint64_t> requests_before{0};  // etcd requests of its earlier boots

  // The current boot.
  struct Boot;
  std::unique_ptr<Boot> current;
};

namespace {

class SimTriggers;

}  // namespace

struct Fleet::Host::Boot {
  std::atomic<bool> stop{false};
  std::unique_ptr<EtcdClient> etcd;
  std::unique_ptr<LockService> locks;
  std::unique_ptr<EtcdDrainLocks> drain_locks;
  std::unique_ptr<TimedLocks> timed_locks;
  std::shared_ptr<std::atomic<std::int64_t>> lease = std::make_shared<std::atomic<std::int64_t>>(0);
  std::unique_ptr<HeartbeatThread> heartbeat;
  std::unique_ptr<SimMesos> mesos;
  std::unique_ptr<SimMarathon> marathon;
  std::unique_ptr<SimContainers> containers;
  std::unique_ptr<SimConnections> connections;
  std::unique_ptr<SimFence> fence;
  std::unique_ptr<DrainHost> host;
  std::unique_ptr<SimTriggers> triggers;
  std::unique_ptr<AgentObserver> observer;
  std::unique_ptr<Agent> agent;
  std::thread thread;
};

namespace {

// The agent's reboot requests: the real RollingReboot on the host's own client; the wait
// is on the tier's shared watch.
class SimTriggers final : public RebootTriggers {
 public:
  SimTriggers(EtcdClient& etcd, const std::string& prefix, const FleetHostView& view, Fleet::Cluster& cluster)
      : rolling_(etcd, prefix), view_(view), cluster_(cluster) {
    (void)rolling_.join_tier(view_.tier, view_.machine_id, view_.hostname);
  }
  Result<std::string, std::string> requested() override {
    {
      const std::lock_guard<std::mutex> lock(cluster_.mutex);
      seen_ = cluster_.generation[view_.tier];
    }
    auto pending = rolling_.pending(view_.tier, view_.machine_id, view_.hostname);
    if (!pending) return unexpected(pending.error().message);
    return *pending ? rolling_trigger((*pending)->id) : std::string();
  }
  Result<void, std::string> consumed(const std::string& trigger) override { return mark(trigger); }
  Result<void, std::string> completed(const std::string& trigger) override { return mark(trigger); }
  Result<void, std::string> failed(const std::string& trigger, const std::string& why) override {
    const auto id = rolling_request_id(trigger);
    if (!id) return {};
    auto noted = rolling_.mark_failed(view_.tier, view_.machine_id, view_.hostname, *id, why);
    if (!noted) return unexpected(noted.error().message);
    return {};
  }
  // Until the tier's request changes, `timeout`, or wake() (the stop). The simulation's
  // observer needs no sign of life, so `alive` is called once, not every 200 ms.
  void wait(std::chrono::milliseconds timeout, const std::atomic<bool>& stop, FunctionRef<void()> alive) override {
    alive();
    const auto until = Clock::now() + timeout;
    std::unique_lock<std::mutex> lock(cluster_.mutex);
    cluster_.waiting[view_.tier].insert(&wake_);
    while (!stop.load() && Clock::now() < until && cluster_.generation[view_.tier] == seen_) {
      wake_.wait_until(lock, until);
    }
    cluster_.waiting[view_.tier].erase(&wake_);
  }
  // The agent's stop was set: end its wait now.
  void wake() {
    const std::lock_guard<std::mutex> lock(cluster_.mutex);
    wake_.notify_one();
  }
  std::string describe() const override { return "the fleet's rolling reboot of " + view_.tier; }

 private:
  Result<void, std::string> mark(const std::string& trigger) {
    const auto id = rolling_request_id(trigger);
    if (!id) return {};
    auto done = rolling_.mark_done(view_.tier, view_.machine_id, view_.hostname, *id);
    if (!done) return unexpected(done.error().message);
    return {};
  }
  RollingReboot rolling_;
  FleetHostView view_;
  Fleet::Cluster& cluster_;
  std::uint64_t seen_ = 0;
  std::condition_variable wake_;
};

class SimObserver final : public AgentObserver {
 public:
  SimObserver(std::atomic<int>& errors, std::function<void(const std::string&)> on_error)
      : errors_(errors), on_error_(std::move(on_error)) {}
  void status(const std::string&) override {}
  void warning(const std::string&) override {}
  void error(const std::string& text) override {
    ++errors_;
    on_error_(text);
  }
  void alive() override {}
  void drain_started(const DrainOptions&) override {}
  void drain_event(const DrainEvent&) override {}
  void drain_finished(const Result<DrainResult, DrainError>& result) override {
    if (!result && result.error().kind != DrainError::Kind::kInterrupted) on_error_(result.error().message);
  }

 private:
  std::atomic<int>& errors_;
  std::function<void(const std::string&)> on_error_;
};

class SimHost final : public DrainHost {
 public:
  SimHost(std::string boot_id, std::function<void()> on_reboot)
      : boot_id_(std::move(boot_id)), on_reboot_(std::move(on_reboot)) {}
  std::string boot_id() override { return boot_id_; }
  Result<void, DrainError> reboot() override {
    on_reboot_();
    return {};
  }
  Result<bool, DrainError> zookeeper_healthy(std::string& summary) override {
    summary = "3 of 3 serving";
    return true;
  }
  void notify(const std::string&, const std::string&, const std::string&) override {}
  Result<HookRun, DrainError> run_hook(const std::vector<std::string>&, const std::vector<std::string>&,
                                       const std::string&, std::chrono::milliseconds,
                                       const std::atomic<bool>&) override {
    return drain_error(DrainError::Kind::kUsage, "the simulated hosts run no hooks");
  }

 private:
  std::string boot_id_;
  std::function<void()> on_reboot_;
};

}  // namespace

Fleet::Fleet(FleetOptions options)
    : options_(std::move(options)), cluster_(std::make_unique<Cluster>()), slots_(std::make_unique<Slots>()) {
  std::size_t index = 0;
  for (const FleetTier& tier : options_.tiers) {
    for (int i = 0; i < tier.hosts; ++i) {
      auto host = std::make_unique<Host>();
      host->index = index++;
      char name[64];
      std::snprintf(name, sizeof name, "%s-%04d", tier.name.c_str(), i);
      host->view = FleetHostView{tier.name, std::string("m-") + name, name};
      host->tier = parse_tier(tier.name).value_or(Tier::kWorker);
      host->journal = options_.dir + "/" + host->view.machine_id + "/journal";
      host->view.behind_proxy =
          options_.slow_every > 0 && host->index % static_cast<std::size_t>(options_.slow_every) == 0;
      host->endpoints = host->view.behind_proxy ? options_.slow_endpoints : options_.endpoints;
      views_.push_back(host->view);
      hosts_.push_back(std::move(host));
    }
  }
  // Apps on distinct hosts of their tier, spread at random.
  std::vector<std::string> candidates;
  for (const FleetHostView& view : views_) {
    if (view.tier == options_.apps_tier) candidates.push_back(view.hostname);
  }
  std::mt19937 random(options_.seed);
  for (int a = 0; a < options_.apps && static_cast<int>(candidates.size()) >= options_.instances; ++a) {
    FleetApp app;
    char id[32];
    std::snprintf(id, sizeof id, "/app-%04d", a);
    app.id = id;
    app.required = static_cast<int>(std::ceil(options_.instances * options_.min_healthy));
    std::vector<std::string> pool = candidates;
    std::shuffle(pool.begin(), pool.end(), random);
    app.hostnames.assign(pool.begin(), pool.begin() + options_.instances);
    apps_.push_back(std::move(app));
  }
  for (const FleetApp& app : apps_) {
    for (const std::string& host : app.hostnames) cluster_->apps_on[host].push_back(&app);
  }
}

Fleet::~Fleet() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (reboots_.joinable()) reboots_.join();
  watch_stop_ = true;
  for (std::thread& watcher : watchers_) watcher.join();
  // Every agent told first, then each waited for: they stop together.
  for (auto& host : hosts_) {
    if (!host->current) continue;
    host->current->stop = true;
    host->current->triggers->wake();
  }
  for (auto& host : hosts_) shut_down(*host, true);
}

std::string Fleet::start() {
  auto admin = fleet_etcd_client(options_.endpoints);
  if (!admin) return "no etcd client";
  LockServiceOptions lock_options;
  lock_options.prefix = options_.prefix;
  LockService locks(*admin, HostIdentity{"fleet-admin", "boot", "fleet-admin"}, lock_options);
  for (const FleetTier& tier : options_.tiers) {
    if (auto set = locks.set_max("reboot", tier.name, tier.max); !set) return set.error().message;
  }
  for (std::size_t t = 0; t < options_.tiers.size(); ++t) watchers_.emplace_back([this, t] { watch_loop(t); });
  for (auto& host : hosts_) {
    std::filesystem::create_directories(std::filesystem::path(host->journal).parent_path());
    boot(*host);
  }
  reboots_ = std::thread([this] { reboot_loop(); });
  return {};
}

void Fleet::boot(Host& host) {
  auto b = std::make_unique<Host::Boot>();
  const std::string boot_id = "boot-" + std::to_string(++host.boot);
  b->etcd = fleet_etcd_client(host.endpoints);
  LockServiceOptions lock_options;
  lock_options.prefix = options_.prefix;
  lock_options.waiter_lease = b->lease;
  const HostIdentity self{host.view.machine_id, boot_id, host.view.hostname};
  b->locks = std::make_unique<LockService>(*b->etcd, self, lock_options);
  b->drain_locks = std::make_unique<EtcdDrainLocks>(*b->locks);
  b->timed_locks = std::make_unique<TimedLocks>(*b->drain_locks, *slots_, host.view.machine_id);
  b->heartbeat = std::make_unique<HeartbeatThread>(fleet_etcd_client(host.endpoints), self, options_.prefix,
                                                   options_.heartbeat_ttl, b->lease);
  b->mesos = std::make_unique<SimMesos>(*cluster_);
  b->marathon = std::make_unique<SimMarathon>(*cluster_);
  b->containers = std::make_unique<SimContainers>(*cluster_, host.view.hostname);
  b->connections = std::make_unique<SimConnections>(options_.drain_time);
  b->fence = std::make_unique<SimFence>();
  const std::size_t index = host.index;
  const std::atomic<bool>& agent_stop = b->stop;  // lives until the agent's thread is joined
  b->host = std::make_unique<SimHost>(boot_id, [this, index, &agent_stop] {
    if (options_.on_reboot_command) options_.on_reboot_command(index, agent_stop);
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      if (hosts_[index]->going_down) return;
      hosts_[index]->going_down = true;
    }
    ++hosts_[index]->reboots;
    // The shutdown: at once, on the reboot thread (this is the agent's own thread).
    schedule(Clock::now(), Action::kReboot, index);
  });
  b->triggers = std::make_unique<SimTriggers>(*b->etcd, options_.prefix, host.view, *cluster_);
  b->observer = std::make_unique<SimObserver>(errors_, [this, &host](const std::string& text) {
    const std::lock_guard<std::mutex> lock(mutex_);
    last_error_ = host.view.hostname + ": " + text;
  });
  AgentOptions agent;
  agent.journal_path = host.journal;
  agent.recheck = options_.recheck;
  agent.retry = options_.retry;
  agent.reboot_wait = std::chrono::minutes(10);
  agent.drain.tier = host.tier;
  agent.drain.hostname = host.view.hostname;
  agent.drain.lock_wait = std::chrono::hours(6);
  agent.drain.progress_interval = std::chrono::seconds(30);
  agent.drain.trigger = "rolling";
  b->agent = std::make_unique<Agent>(DrainSystems{*b->timed_locks, *b->mesos, *b->marathon, *b->containers,
                                                  *b->connections, *b->fence, *b->host},
                                     agent, *b->triggers, *b->observer, b->stop);
  Agent& running = *b->agent;
  b->thread = std::thread([&running] { running.run(); });
  const std::lock_guard<std::mutex> lock(mutex_);
  host.current = std::move(b);
}

void Fleet::shut_down(Host& host, bool revoke) {
  std::unique_ptr<Host::Boot> b;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    b = std::move(host.current);
    if (!b) return;
    host.requests_before += b->etcd ? b->etcd->requests() : 0;
  }
  b->stop = true;
  b->triggers->wake();  // an agent waiting for its triggers hears the stop at once
  if (b->thread.joinable()) b->thread.join();
  b->heartbeat->stop(revoke);
}

void Fleet::schedule(Clock::time_point when, Action action, std::size_t index) {
  const std::lock_guard<std::mutex> lock(mutex_);
  actions_.emplace(when, std::make_pair(action, index));
  wake_.notify_all();
}

void Fleet::reboot_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    if (actions_.empty()) {
      wake_.wait(lock);
      continue;
    }
    const auto [when, what] = *actions_.begin();
    if (when > Clock::now()) {
      wake_.wait_until(lock, when);
      continue;
    }
    actions_.erase(actions_.begin());
    const auto [action, index] = what;
    Host& host = *hosts_[index];
    lock.unlock();
    switch (action) {
      case Action::kReboot:
        shut_down(host, true);  // a shutdown withdraws the heartbeat
        lock.lock();
        if (host.hold) {
          host.held = true;  // down until release_reboot()
        } else {
          actions_.emplace(Clock::now() + options_.reboot_time, std::make_pair(Action::kBoot, index));
        }
        continue;
      case Action::kCrash: {
        lock.lock();
        const bool down = host.current == nullptr || host.going_down;  // or going down (rebooting)
        lock.unlock();
        if (down) break;
        shut_down(host, false);  // its lease is left to expire, as after a crash
        lock.lock();
        // The reboot command may have run while the agent was being stopped: the host
        // then goes down with a new boot when it comes back (the reboot action has it),
        // not the same boot after a process restart. Restarting it here as well gave it
        // its old boot id back, and its agent ran the reboot again (the fleet test saw
        // a host rebooted twice).
        if (host.going_down) continue;
        --host.boot;  // the same boot when it starts again: a process restart
        actions_.emplace(Clock::now() + options_.restart_delay, std::make_pair(Action::kBoot, index));
        continue;
      }
      case Action::kBoot:
        if (host.current == nullptr) {
          lock.lock();
          host.going_down = false;
          lock.unlock();
          boot(host);
        }
        break;
    }
    lock.lock();
  }
}

void Fleet::restart_agent(std::size_t index) { schedule(Clock::now(), Action::kCrash, index); }

void Fleet::hold_reboot(std::size_t index) {
  const std::lock_guard<std::mutex> lock(mutex_);
  hosts_[index]->hold = true;
}

void Fleet::release_reboot(std::size_t index) {
  const std::lock_guard<std::mutex> lock(mutex_);
  Host& host = *hosts_[index];
  host.hold = false;
  if (host.held) {
    host.held = false;
    actions_.emplace(Clock::now(), std::make_pair(Action::kBoot, index));
    wake_.notify_all();
  }
}

int Fleet::reboots(std::size_t index) const { return hosts_[index]->reboots.load(); }

std::string Fleet::last_error() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return last_error_;
}

std::vector<std::string> Fleet::in_maintenance() const {
  const std::lock_guard<std::mutex> lock(cluster_->mutex);
  std::vector<std::string> out;
  for (const auto& [host, state] : cluster_->maintenance) out.push_back(host + " " + state);
  return out;
}

std::uint64_t Fleet::etcd_requests() const {
  std::uint64_t total = 0;
  const std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& host : hosts_) {
    total += host->requests_before.load();
    if (host->current && host->current->etcd) total += host->current->etcd->requests();
  }
  return total;
}

std::vector<Fleet::Handoff> Fleet::handoffs(const std::string& tier) const {
  const std::lock_guard<std::mutex> lock(slots_->mutex);
  const auto it = slots_->handoffs.find("reboot/" + tier);
  return it == slots_->handoffs.end() ? std::vector<Handoff>{} : it->second;
}

std::vector<double> Fleet::held_ms(const std::string& tier) const {
  const std::lock_guard<std::mutex> lock(slots_->mutex);
  const auto it = slots_->held_ms.find("reboot/" + tier);
  return it == slots_->held_ms.end() ? std::vector<double>{} : it->second;
}

void Fleet::watch_loop(std::size_t t) {
  const std::string tier = options_.tiers[t].name;
  auto etcd = fleet_etcd_client(options_.endpoints);
  RollingReboot rolling(*etcd, options_.prefix);
  std::int64_t revision = 0;
  while (!watch_stop_) {
    if (revision == 0) {
      auto status = rolling.status(tier);
      if (!status) {
        std::this_thread::sleep_for(200ms);
        continue;
      }
      revision = status->revision;
    }
    auto changed = rolling.wait_for_change(tier, revision, Clock::now() + 5min, &watch_stop_);
    if (!changed || *changed) {
      revision = 0;
      const std::lock_guard<std::mutex> lock(cluster_->mutex);
      ++cluster_->generation[tier];
      cluster_->wake_tier(tier);
      if (!changed) std::this_thread::sleep_for(200ms);
    }
  }
}

}  // namespace skopos::testing
