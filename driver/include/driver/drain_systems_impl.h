// The real systems behind drain_systems.h: etcd locks (LockService), the Mesos master
// (MesosMaster + MaintenanceScheduler), Marathon, the Docker Engine API, the tracker's
// stream, iptables (Fence) and this host (boot id, reboot command, ZooKeeper, the
// notification URL). Each adapter turns its client's errors into DrainErrors and holds
// the small decisions that belong to that system (which Mesos mode, which containers
// are task containers). Not thread-safe, except where a method says otherwise.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "skopos/docker_engine.h"
#include "driver/drain_systems.h"
#include "driver/fence.h"
#include "driver/lock_service.h"
#include "driver/maintenance_scheduler.h"
#include "driver/marathon.h"
#include "driver/mesos_master.h"

namespace skopos::driver {

class EtcdDrainLocks final : public DrainLocks {
 public:
  explicit EtcdDrainLocks(LockService& locks) : locks_(locks) {}
  Result<HostLockInfo, DrainError> host_status() override;
  Result<HostLockInfo, DrainError> host_lock(const std::string& token) override;
  Result<bool, DrainError> host_unlock(const std::string& token) override;
  Result<std::int64_t, DrainError> acquire(const std::string& lock, const std::string& group, const std::string& token,
                                           std::chrono::steady_clock::time_point until,
                                           const std::atomic<bool>& stop) override;
  Result<bool, DrainError> release(const std::string& lock, const std::string& group, std::int64_t fencing_token) override;
  Result<void, DrainError> guard(const std::string& lock, const std::string& group, std::int64_t fencing_token,
                                 const std::string& phase) override;
  Result<std::string, DrainError> describe(const std::string& lock, const std::string& group) override;
  Result<int, DrainError> leave_lines() override;
  Result<DrainingHosts, DrainError> budget_claims() override;
  Result<bool, DrainError> claim_budget(const DrainingHosts& seen, const std::string& hostname,
                                        const std::string& kind) override;
  Result<bool, DrainError> release_budget_claim() override;
  Result<SurgeLedger, DrainError> surge_ledger(const std::string& app) override;
  Result<bool, DrainError> write_surge_ledger(const std::string& app, const SurgeLedger& seen,
                                              const SurgeLedger& next) override;

 private:
  LockService& locks_;
};

struct MesosStepsOptions {
  std::optional<MesosMachine::Mode> mode;      // forced; otherwise detected per master version and agent
  std::chrono::seconds window{2 * 3600};       // the maintenance window's length
  std::chrono::seconds drain_grace{0};         // DRAIN_AGENT's max_grace_period (tasks are stopped by then)
  std::chrono::seconds drain_settle{120};      // bring_up: how long an agent may stay DRAINING
};

class MesosDrainSteps final : public DrainMesos {
 public:
  // `master` null: Mesos is not configured (every machine is mode kNone).
  MesosDrainSteps(MesosMaster* master, MaintenanceScheduler* scheduler, MesosStepsOptions options)
      : master_(master), scheduler_(scheduler), options_(options) {}
  bool configured() const override { return master_ != nullptr; }
  Result<MesosMachine, DrainError> locate(const std::string& hostname) override;
  Result<void, DrainError> announce(const MesosMachine& machine) override;
  Result<void, DrainError> take_down(const MesosMachine& machine, bool gone) override;
  Result<void, DrainError> bring_up(const MesosMachine& machine) override;
  Result<bool, DrainError> agent_active(const MesosMachine& machine) override;
  std::vector<std::string> describe(const MesosMachine& machine, bool gone) const override;
  Result<std::vector<std::string>, DrainError> unavailable_hosts() override;

 private:
  Result<MaintenanceStatus, DrainError> status();

  MesosMaster* master_;
  MaintenanceScheduler* scheduler_;
  MesosStepsOptions options_;
};

class MarathonDrainSteps final : public DrainMarathon {
 public:
  // `marathon` null: not configured.
  MarathonDrainSteps(Marathon* marathon, std::string min_healthy_label = "skopos.min-healthy",
                     std::int64_t default_min_healthy = 1)
      : marathon_(marathon), label_(std::move(min_healthy_label)), default_min_(default_min_healthy) {}
  bool configured() const override { return marathon_ != nullptr; }
  Result<HostTasks, DrainError> on_host(const std::string& hostname) override;
  Result<std::vector<AppShortfall>, DrainError> budget(const std::string& hostname,
                                                       const std::vector<std::string>& draining) override;
  Result<std::string, DrainError> leader() override;
  Result<std::string, DrainError> abdicate(std::chrono::steady_clock::time_point until) override;
  Result<void, DrainError> release_tasks(const std::vector<std::string>& task_ids,
                                         std::chrono::steady_clock::time_point until, bool scale) override;
  Result<SurgeApp, DrainError> surge_app(const std::string& app_id, const std::string& hostname,
                                         const std::vector<std::string>& draining) override;
  Result<bool, DrainError> scale(const std::string& app_id, std::int64_t instances, bool force) override;
  Result<std::vector<std::string>, DrainError> below_strength(const std::vector<std::string>& app_ids) override;

 private:
  Marathon* marathon_;
  std::string label_;
  std::int64_t default_min_;
};

struct DockerContainersOptions {
  DockerEngineOptions engine;
  bool all_containers = false;  // false: only Mesos/Marathon task containers
  std::chrono::seconds kill_wait{30};  // after SIGKILL, for the container to be gone
};

class DockerDrainContainers final : public DrainContainers {
 public:
  explicit DockerDrainContainers(DockerContainersOptions options) : options_(std::move(options)) {}
  Result<std::vector<DrainContainer>, DrainError> running() override;
  // Thread-safe in itself: every container is stopped on a thread with its own client.
  Result<void, DrainError> stop(const std::vector<DrainContainer>& containers) override;

  // A task container: Marathon or Mesos put it there (MESOS_TASK_ID, MARATHON_APP_ID,
  // or Mesos's "mesos-" name).
  static bool is_task_container(const ContainerInfo& info);
  // The drain's view of an inspected container: the ports to fence (published TCP host
  // ports; host networking: the task's ports) and to count inbound connections on.
  static DrainContainer from_inspect(const ContainerInfo& info);

 private:
  DockerContainersOptions options_;
};

struct TrackerConnectionsOptions {
  std::string socket = "/run/skopos/tracker.sock";
  std::chrono::milliseconds timeout{5000};  // connect, hello and snapshot
};

class TrackerDrainConnections final : public DrainConnections {
 public:
  explicit TrackerDrainConnections(TrackerConnectionsOptions options);
  ~TrackerDrainConnections() override;
  Result<WaitOutcome, DrainError> wait_zero(const std::vector<DrainContainer>& containers,
                                            std::chrono::milliseconds tick,
                                            FunctionRef<void(const WaitProgress&)> on_progress,
                                            const std::atomic<bool>& stop) override;
  Result<WaitProgress, DrainError> counts(const std::vector<DrainContainer>& containers) override;

 private:
  struct Peers;
  TrackerConnectionsOptions options_;
  std::unique_ptr<Peers> peers_;
};

// The fence for both families: iptables, and (when `ipv6`) ip6tables with the same rules
// (a balancer or client reaching a task over IPv6 must be refused too). A failure of
// either family is the step's error: the drain keeps its journal and resumes later, the
// undrain keeps it and removes both when run again.
class IptablesDrainFence final : public DrainFence {
 public:
  IptablesDrainFence(const FenceOptions& options, bool ipv6) : families_(fence_families(options, ipv6)) {}
  Result<std::vector<std::uint16_t>, DrainError> fenced() override;
  Result<void, DrainError> apply(const std::vector<std::uint16_t>& ports) override;
  Result<bool, DrainError> remove() override;
  Result<std::string, DrainError> plan(const std::vector<std::uint16_t>& ports) override;
  Result<bool, DrainError> ensure(const std::vector<std::uint16_t>& ports) override;

 private:
  std::vector<FamilyFence> families_;
};

struct LocalHostOptions {
  std::vector<std::string> reboot_command{"systemctl", "reboot"};
  std::chrono::milliseconds reboot_timeout{60000};
  std::string boot_id_path = "/proc/sys/kernel/random/boot_id";
  std::vector<std::string> zookeeper;  // host:port of every server of the ensemble
  std::chrono::milliseconds zookeeper_timeout{3000};
  std::string notify_url;  // "{machine_id}" in it is replaced
  std::string machine_id;
  std::string hostname;
};

class LocalDrainHost final : public DrainHost {
 public:
  explicit LocalDrainHost(LocalHostOptions options) : options_(std::move(options)) {}
  std::string boot_id() override;
  Result<void, DrainError> reboot() override;
  Result<bool, DrainError> zookeeper_healthy(std::string& summary) override;
  void notify(const std::string& kind, const std::string& outcome, const std::string& drain_id) override;
  Result<HookRun, DrainError> run_hook(const std::vector<std::string>& argv,
                                       const std::vector<std::string>& environment, const std::string& input,
                                       std::chrono::milliseconds timeout,
                                       const std::atomic<bool>& stop) override;

 private:
  LocalHostOptions options_;
};

}  // namespace skopos::driver
