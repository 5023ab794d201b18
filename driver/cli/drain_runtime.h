// What `skopos drain`, `undrain`, `booster` and `agent` share: the drain's options and
// the clients built from them, this host's exclusive drain lock, the heartbeat thread,
// signal handling, and the rendering of the drain's events (log lines under systemd, a
// live view on a terminal, JSON lines with --json).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "driver/drain.h"
#include "driver/drain_metrics.h"
#include "driver/drain_systems_impl.h"
#include "driver/heartbeat.h"
#include "driver/journal.h"
#include "global_options.h"
#include "skopos/unique_fd.h"

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
  std::chrono::seconds heartbeat_ttl() const { return heartbeat_ttl_; }

 private:
  DrainOptions options_;
  std::string journal_path_;
  std::chrono::seconds heartbeat_ttl_{15};
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

// At most one drain driver per host: an flock on `<journal>.lock` holding the owner's
// pid. The etcd host lock cannot tell two drivers of the same machine apart.
class LocalDrainLock {
 public:
  // Fails naming the pid of the driver that holds it. With `take_over`, that driver is
  // sent SIGTERM (it stops at a safe point) and waited for up to `wait`.
  static Result<LocalDrainLock> take(const std::string& journal_path, bool take_over, std::chrono::milliseconds wait);

 private:
  explicit LocalDrainLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// Keeps this machine's heartbeat key alive on a thread of its own (its own etcd
// client), so lock holders see this driver alive while it waits or stops containers.
class HeartbeatThread {
 public:
  HeartbeatThread(const EtcdOptions& etcd, const HostIdentity& self, const std::string& prefix, std::chrono::seconds ttl);
  // Stops beating; `revoke`: the key goes at once (else it expires with its lease).
  void stop(bool revoke);
  ~HeartbeatThread();

 private:
  std::unique_ptr<EtcdClient> etcd_;
  std::unique_ptr<Heartbeat> heartbeat_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool revoke_ = true;
  std::thread thread_;
};

// SIGINT and SIGTERM set the returned flag (the drain stops at its next safe point).
const std::atomic<bool>& install_stop_signals();

// Renders drain events for people (log lines, or a live view on a terminal) or programs
// (JSON lines on stdout with --json), and appends them as JSON lines to `events_file`
// when given (an audit trail and a machine-readable result next to the human view).
// With `metrics_file`, keeps it up to date as Prometheus text (see DrainMetrics).
class DrainReporter {
 public:
  DrainReporter(bool json, bool live, std::chrono::milliseconds interval, const std::string& events_file = {},
                const std::string& metrics_file = {}, const std::string& host = {});
  ~DrainReporter();
  DrainReporter(const DrainReporter&) = delete;
  DrainReporter& operator=(const DrainReporter&) = delete;
  void operator()(const DrainEvent& event);
  // The closing line (stdout): what happened, with the figures.
  void result(const std::string& command, const Result<DrainResult, DrainError>& result);

 private:
  void progress(const WaitProgress& progress);
  void clear_live();
  void json_line(const std::string& line);
  void write_metrics();

  bool json_;
  bool live_;
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point last_line_{};
  int live_lines_ = 0;
  std::string at_fence_ = "?";
  std::FILE* events_ = nullptr;
  std::optional<DrainMetrics> metrics_;
  std::chrono::steady_clock::time_point metrics_written_{};
  bool metrics_pending_ = false;  // a change not written yet
  bool metrics_failed_ = false;  // warned once
};

// Exit status for a drain error.
int drain_exit_code(const DrainError& error);

}  // namespace skopos::driver::cli
