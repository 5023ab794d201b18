// Fleet: many simulated hosts in one process, each running the real reboot agent and
// drain (Agent, Drain, Journal, LockService, EtcdClient, HeartbeatThread, RollingReboot)
// against a real etcd. What is local to a host -- Docker, the tracker, the fence, the
// reboot and the boot id -- and the cluster's Mesos and Marathon are in-process
// stand-ins: Marathon's apps are spread over a tier's hosts, and its budget check counts
// an app's instances on hosts that are neither this one nor draining (the same rule as
// driver/marathon.h); Mesos keeps each host's maintenance state. A host's reboot stops
// its agent (as a shutdown does: the heartbeat is withdrawn), keeps it down for
// `reboot_time`, and starts it again with a new boot id on the same journal.
//
// The rolling reboot request of each tier is watched by one watch per tier (not one per
// host): a shortcut of the simulation, like sharing the process. The small run of real
// `skopos agent` processes has none of these shortcuts.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace skopos::driver {
class EtcdClient;
}

namespace skopos::testing {

// A client of the fleet's etcd (5 s deadline per request), nullptr when the endpoints
// are unusable; the fleet, its tests and bench_fleet talk to etcd through it.
std::unique_ptr<driver::EtcdClient> fleet_etcd_client(const std::vector<std::string>& endpoints);

struct FleetTier {
  std::string name;  // control, proxy or worker
  int hosts = 0;
  int max = 1;
};

struct FleetOptions {
  std::vector<FleetTier> tiers;
  std::vector<std::string> endpoints;  // etcd
  // Every `slow_every`-th host (0: none) talks to etcd through these instead (a fault
  // proxy that delays).
  std::vector<std::string> slow_endpoints;
  int slow_every = 0;
  std::string prefix = "/skopos";
  std::string dir;  // each host's journal lives in DIR/<machine>/
  std::chrono::milliseconds drain_time{200};   // a host's connections take this long to close
  std::chrono::milliseconds reboot_time{300};  // down between the reboot command and the agent's start
  std::chrono::seconds heartbeat_ttl{4};
  std::chrono::milliseconds recheck{std::chrono::seconds(2)};  // an idle agent looks again this often
  std::chrono::milliseconds retry{std::chrono::seconds(1)};    // a failed turn is tried again after this
  std::chrono::milliseconds restart_delay{500};                 // restart_agent(): down this long
  // Marathon apps spread over `apps_tier`: `apps` apps of `instances` each, on distinct
  // hosts, that need ceil(instances * min_healthy) healthy.
  std::string apps_tier = "worker";
  int apps = 0;
  int instances = 3;
  double min_healthy = 0.5;
  unsigned seed = 1;
  // Called on the agent's thread when a host's reboot command runs, before the command
  // takes effect, with the agent's stop flag (set once the agent is being stopped): a
  // test puts a fault at that moment.
  std::function<void(std::size_t host, const std::atomic<bool>& agent_stop)> on_reboot_command;
};

struct FleetApp {
  std::string id;
  int required = 0;
  std::vector<std::string> hostnames;
};

struct FleetHostView {
  std::string tier;
  std::string machine_id;
  std::string hostname;
  bool behind_proxy = false;  // reaches etcd through FleetOptions::slow_endpoints
};

class Fleet {
 public:
  explicit Fleet(FleetOptions options);
  ~Fleet();  // stops every agent and the reboots in flight
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  // Starts every host's agent (and sets each tier's max). Returns an error text or "".
  std::string start();

  const std::vector<FleetHostView>& hosts() const { return views_; }
  const std::vector<FleetApp>& apps() const { return apps_; }
  const FleetOptions& options() const { return options_; }

  // Faults. An agent stopped at its next safe point (its heartbeat lease is left to
  // expire, as after a crash) and started again after `restart_delay`, with the same
  // boot id. In one process an agent cannot be killed mid-step; the run of real
  // `skopos agent` processes SIGKILLs them.
  void restart_agent(std::size_t host);
  // The host's next reboot does not come back until release_reboot().
  void hold_reboot(std::size_t host);
  void release_reboot(std::size_t host);

  // The simulation's own counts (the checker does not use them: it reads etcd).
  int reboots(std::size_t host) const;
  int agent_errors() const { return errors_.load(); }
  std::string last_error() const;
  // Hosts in Mesos maintenance now (a window or down), by host name.
  std::vector<std::string> in_maintenance() const;
  // etcd requests every host's agent sent so far (its locks, its drain, its rolling
  // reboot; not its heartbeat, which costs the same per host and minute whatever happens).
  std::uint64_t etcd_requests() const;

  // Slot handoffs of a tier's reboot lock: from the start of a holder's release to the
  // next waiter holding the slot (its acquire returned), in ms, with how many hosts were
  // waiting then.
  struct Handoff {
    double ms = 0;
    int waiting = 0;
    std::chrono::steady_clock::time_point released;  // when the release began
    std::string taker;                                // the machine id that took the slot
  };
  std::vector<Handoff> handoffs(const std::string& tier) const;
  // How long each host held its slot of the tier's reboot lock (taken -> released), ms.
  std::vector<double> held_ms(const std::string& tier) const;
  struct Slots;

  struct Host;
  struct Cluster;

 private:
  enum class Action : std::uint8_t { kReboot, kCrash, kBoot };
  void boot(Host& host);
  void shut_down(Host& host, bool revoke);
  void schedule(std::chrono::steady_clock::time_point when, Action action, std::size_t host);
  void reboot_loop();
  void watch_loop(std::size_t tier);

  FleetOptions options_;
  std::vector<FleetHostView> views_;
  std::vector<FleetApp> apps_;
  std::vector<std::unique_ptr<Host>> hosts_;
  std::unique_ptr<Cluster> cluster_;
  std::unique_ptr<Slots> slots_;
  std::atomic<int> errors_{0};
  mutable std::mutex mutex_;  // guards what follows
  std::condition_variable wake_;
  bool stopping_ = false;
  std::string last_error_;
  // What the reboot thread does next to which host, and when.
  std::multimap<std::chrono::steady_clock::time_point, std::pair<Action, std::size_t>> actions_;
  std::atomic<bool> watch_stop_{false};
  std::thread reboots_;
  std::vector<std::thread> watchers_;
};

}  // namespace skopos::testing
