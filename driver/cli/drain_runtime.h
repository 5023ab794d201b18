// What `skopos drain`, `undrain`, `booster` and `agent` share: the drain's options and
// the clients built from them (DrainRuntime). How a drain is shown is in
// drain_reporter.h, the stop signals in stop_signals.h; the local drain lock and the
// heartbeat thread are the driver library's (driver/local_drain_lock.h, heartbeat.h).
#pragma once

#include <chrono>
#include <memory>
#include <set>
#include <string>

#include "driver/drain.h"
#include "driver/drain_systems_impl.h"
#include "driver/heartbeat.h"
#include "global_options.h"

namespace skopos::driver::cli {

// Where the drain's journal lives unless --journal says otherwise.
inline constexpr const char* kDefaultJournal = "/var/lib/skopos/journal";

// The options of every drain command (added to the global ones), and their help.
extern const std::set<std::string> kDrainOptions;
extern const char* const kDrainOptionsHelp;

// Every client a drain needs, built from the options; owns them.
class DrainRuntime {
 public:
  // Throws FatalError for bad options (before anything is contacted).
  DrainRuntime(const GlobalOptions& global, const CliArgs& args, const std::string& command, DrainKind kind);
  ~DrainRuntime();

  DrainSystems systems();
  const DrainOptions& options() const { return options_; }
  DrainOptions& options() { return options_; }
  const std::string& journal_path() const { return journal_path_; }
  const HostIdentity& identity() const { return locks_->self(); }
  EtcdClient& etcd() { return *etcd_; }
  const std::string& prefix() const { return prefix_; }
  // Another client of the same etcd, for a thread of its own.
  std::unique_ptr<EtcdClient> new_etcd_client() const;
  // This process's heartbeat (--heartbeat-ttl), beating on a thread of its own.
  std::unique_ptr<HeartbeatThread> start_heartbeat() const;

 private:
  DrainOptions options_;
  std::string journal_path_;
  std::chrono::seconds heartbeat_ttl_{15};
  EtcdOptions etcd_options_;
  std::string prefix_;
  std::unique_ptr<EtcdClient> etcd_;
  std::unique_ptr<LockService> locks_;
  std::unique_ptr<MesosMaster> master_;
  std::unique_ptr<MaintenanceScheduler> scheduler_;
  std::unique_ptr<Marathon> marathon_;
  std::unique_ptr<EtcdDrainLocks> drain_locks_;
  std::unique_ptr<MesosDrainSteps> mesos_;
  std::unique_ptr<MarathonDrainSteps> marathon_steps_;
  std::unique_ptr<DockerDrainContainers> containers_;
  std::unique_ptr<TrackerDrainConnections> connections_;
  std::unique_ptr<IptablesDrainFence> fence_;
  std::unique_ptr<LocalDrainHost> host_;
};

}  // namespace skopos::driver::cli
