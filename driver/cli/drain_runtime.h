// What `skopos drain`, `undrain`, `booster` and `agent` share: the drain's options and
// the clients built from them (DrainRuntime). How a drain is shown is in
// drain_reporter.h, the stop signals in stop_signals.h; the local drain lock and the
// heartbeat thread are the driver library's (driver/local_drain_lock.h, heartbeat.h).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "driver/drain.h"
#include "driver/notifier.h"
#include "driver/drain_systems_impl.h"
#include "driver/heartbeat.h"
#include "global_options.h"

namespace skopos::driver::cli {

// Where the drain's journal lives unless --journal says otherwise.
inline constexpr const char* kDefaultJournal = "/var/lib/skopos/journal";

// The options of every drain command (drain, undrain, booster, agent) as given: the
// command line, the config file, and the environment where noted. DrainRuntime checks
// them and builds the systems from them, in one place.
struct DrainConfig {
  DrainOptions drain;  // tier, hostname ("": this host's name), deadlines, waits
  std::string journal = kDefaultJournal;
  std::chrono::seconds heartbeat_ttl{15};
  MesosConfig mesos;
  std::optional<MesosMachine::Mode> mesos_mode;  // auto: per master version and agent
  std::chrono::seconds maintenance_window{2 * 3600};
  std::string marathon;  // URLs; "" : no budget check, no task release
  std::string marathon_user;
  std::string marathon_password_file;
  std::chrono::milliseconds marathon_timeout{std::chrono::seconds(10)};
  std::string docker_socket = "unix:///var/run/docker.sock";
  bool all_containers = false;
  std::string tracker_socket = TrackerConnectionsOptions{}.socket;
  FenceConfig fence;
  std::string zookeeper;
  std::string reboot_command = "systemctl reboot";
  std::string notify;
  std::string notify_to;  // destinations (notifier.h): "TYPE EVENTS TARGET; ..."
  std::string events;
  std::string metrics_file;
  // Hooks (drain.h), as given: each a command split on spaces; checked in DrainRuntime.
  std::string hook_pre_drain;
  std::string hook_drained;
  std::string hook_pre_reboot;
  std::string hook_post_boot;
  std::chrono::milliseconds hook_timeout{std::chrono::minutes(5)};
  std::string hook_idempotent;  // hook points, comma-separated

  // The defaults, with what the environment sets: $SKOPOS_MARATHON,
  // $SKOPOS_TRACKER_SOCKET, $NOTIFY (options given win).
  static DrainConfig from_environment();
};

// The drain options, each declared once; the drain commands' tables include them.
const OptionTable<DrainConfig>& drain_options_table();
// Their help: a heading and the table's lines.
const std::string& drain_options_help();

// A drain command's whole table: its own options (`own`), then the drain options
// (into Config::drain) and the global ones (into Config::global).
template <class Config>
OptionTable<Config> with_drain_and_global_options(OptionTable<Config> own) {
  own.include(drain_options_table(), &Config::drain);
  return with_global_options(std::move(own));
}

// Every client a drain needs, built from the options; owns them.
class DrainRuntime {
 public:
  // Throws FatalError for bad options (before anything is contacted).
  DrainRuntime(const GlobalOptions& global, const DrainConfig& config, const std::string& command, DrainKind kind);
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
  // The notifications' destinations (--notify-to); null when none. Its context: this
  // machine, host and tier.
  Notifier* notifier() { return notifier_.get(); }
  Notification notification_context() const;

 private:
  DrainOptions options_;
  std::string journal_path_;
  std::chrono::seconds heartbeat_ttl_{15};
  EtcdOptions etcd_options_;
  std::string prefix_;
  // The heartbeat's lease, published by its thread: lock waiters queue on it.
  std::shared_ptr<std::atomic<std::int64_t>> heartbeat_lease_ = std::make_shared<std::atomic<std::int64_t>>(0);
  std::unique_ptr<Notifier> notifier_;  // before the clients: it goes last, its queues flushed
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
