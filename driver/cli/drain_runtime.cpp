#include "drain_runtime.h"

#include <array>
#include <string>

#include "skopos/enum_names.h"

namespace skopos::driver::cli {

namespace {

// The defaults of the per-app overrides obey the labels' ceiling.
void check_override_default(const std::string& command, const std::string& name, std::chrono::seconds value) {
  if (value > kMaxOverrideDuration) {
    throw FatalError(command + ": --" + name + " '" + format_duration(value) + "' is above the ceiling of " +
                     std::to_string(kMaxOverrideDuration.count() / 3600) + "h");
  }
}

}  // namespace

DrainConfig DrainConfig::from_environment() {
  DrainConfig config;
  config.marathon = env_or("SKOPOS_MARATHON", config.marathon);
  config.tracker_socket = env_or("SKOPOS_TRACKER_SOCKET", config.tracker_socket);
  config.notify = env_or("NOTIFY", config.notify);
  return config;
}

const OptionTable<DrainConfig>& drain_options_table() {
  static const OptionTable<DrainConfig> table = [] {
    using C = DrainConfig;
    OptionTable<C> t("skopos");
    t.choice("tier",
             "the cluster lock's group, and what the control tier also\nchecks (Marathon's leader, ZooKeeper's quorum)",
             [](auto& c) -> auto& { return c.drain.tier; }, enum_choices(kTierNames));
    t.text("hostname", "H", "this host as Mesos and Marathon name it (default: the\nhost name)",
           [](auto& c) -> auto& { return c.drain.hostname; });
    t.duration("connection-deadline",
               "how long to wait for inbound connections to close\n(label skopos.drain-deadline per app)",
               [](auto& c) -> auto& { return c.drain.connection_deadline; });
    t.duration("stop-grace",
               "docker stop's SIGTERM-to-SIGKILL grace (label\nskopos.stop-grace per app; skopos.ignore-ports lists\n"
               "ports whose connections are not waited for)",
               [](auto& c) -> auto& { return c.drain.stop_grace; });
    t.duration("lock-wait", "how long to wait for the tier's lock", [](auto& c) -> auto& { return c.drain.lock_wait; });
    t.duration("recover-timeout",
               "how long recovery waits for the agent and the apps\n(on timeout the locks are kept)",
               [](auto& c) -> auto& { return c.drain.recover_timeout; });
    t.text("journal", "FILE", "the drain's journal", &C::journal);
    t.text("tracker-socket", "PATH", "skopos-tracker's stream ($SKOPOS_TRACKER_SOCKET)", &C::tracker_socket);
    t.text("docker-socket", "URL", "the Docker Engine API", &C::docker_socket);
    t.flag("all-containers", "take every running container out, not only Mesos and\nMarathon tasks",
           &C::all_containers);
    t.text("marathon", "URLS",
           "Marathon (any instance); without it, no budget check\nand no task release ($SKOPOS_MARATHON)", &C::marathon);
    t.text("marathon-user", "U", "basic auth user ($SKOPOS_MARATHON_USER)", &C::marathon_user);
    t.text("marathon-password-file", "F",
           "basic auth password, first line of F\n($SKOPOS_MARATHON_PASSWORD holds it directly)",
           &C::marathon_password_file);
    t.duration("marathon-timeout", "deadline of each Marathon request", &C::marathon_timeout);
    t.flag("surge",
           "start each app's replacements first: scale it up by its\ntasks here, wait until they are healthy "
           "elsewhere, scale\nit back by as many once they are gone (Marathon label\nskopos.surge=true|false per app "
           "wins)",
           [](auto& c) -> auto& { return c.drain.surge; });
    t.duration("surge-timeout",
               "how long a surge waits for its replacements; then every\nsurge is taken back and the drain refused",
               [](auto& c) -> auto& { return c.drain.surge_timeout; });
    t.text("marathon-self", "HOST:PORT",
           "control tier: this host's Marathon as /v2/leader names it;\nif it leads, it abdicates and the drain waits "
           "for a new one",
           [](auto& c) -> auto& { return c.drain.marathon_self; });
    t.duration("leader-move-wait", "how long to wait for that", [](auto& c) -> auto& { return c.drain.leader_wait; });
    t.choice("mesos-mode", "how Mesos is told: per master version and agent (auto),\nmaintenance schedule or drain API",
             &C::mesos_mode,
             std::vector<std::pair<std::string, std::optional<MesosMachine::Mode>>>{
                 {"auto", std::nullopt},
                 {"schedule", MesosMachine::Mode::kSchedule},
                 {"drain-api", MesosMachine::Mode::kDrainApi}});
    t.duration("maintenance-window", "length of the Mesos maintenance window", &C::maintenance_window);
    t.include(mesos_options_table(), &C::mesos);
    t.text("zookeeper", "HOST:PORT,...", "control tier: the ensemble that must keep its quorum", &C::zookeeper);
    t.include(fence_options_table("fence-"), &C::fence);
    t.text("reboot-command", "CMD", "run to reboot (split on spaces, no shell)", &C::reboot_command);
    t.text("notify", "URL",
           "POSTed {machine_id, hostname, kind, outcome, drain_id} at\nthe end ($NOTIFY; {machine_id} in the URL is "
           "replaced)",
           &C::notify);
    t.text("hook-pre-drain", "CMD",
           "run after the budget check, before anything is taken away\n(split on spaces, no shell): a non-zero exit "
           "refuses the\ndrain and gives the locks back",
           &C::hook_pre_drain);
    t.text("hook-drained", "CMD", "run once the host is drained, before the reboot (e.g.\napply updates); a failure "
           "stops the drain there",
           &C::hook_drained);
    t.text("hook-pre-reboot", "CMD", "run just before the reboot command", &C::hook_pre_reboot);
    t.text("hook-post-boot", "CMD",
           "run after the reboot, before the slot goes back: a failure\nkeeps the slot and the recovery is tried "
           "again",
           &C::hook_post_boot);
    t.duration("hook-timeout", "each hook's limit; later is a failure", &C::hook_timeout);
    t.text("hook-idempotent", "POINTS",
           "hooks that may run again after the driver stopped in their\nmiddle (e.g. pre-drain,post-boot); others "
           "then stop the\ndrain for a person",
           &C::hook_idempotent);
    t.text("notify-to", "DESTS",
           "tell what happens around the drain: 'TYPE EVENTS TARGET',\nseveral separated by ';'. TYPE webhook (JSON "
           "POST),\nslack (incoming webhook) or command (JSON on stdin); EVENTS\n'*' or some of started,waiting,"
           "fenced,deadline,drained,\nrebooting,recovered,failed,stuck. Delivery is retried and\nnever holds up "
           "or fails a drain",
           &C::notify_to);
    t.duration(
        "stuck-after",
        "a wait (the slot, connections, recovery) this long is\nreported stuck -- a warning and a "
        "'stuck' notification --\nand again at twice, four times that (0: never)",
        [](auto& c) -> auto& { return c.drain.stuck_after; });
    t.duration("heartbeat-ttl", "this driver's liveness lease", &C::heartbeat_ttl);
    t.duration("progress-interval", "progress lines under systemd",
               [](auto& c) -> auto& { return c.drain.progress_interval; });
    t.text("events", "FILE",
           "also append every event and the result to FILE as JSON\nlines (an audit trail for automation)", &C::events);
    t.text("metrics-file", "FILE",
           "keep FILE up to date as Prometheus text: phase, time in\nit, connections left, fence re-applied (for "
           "node_exporter's\ntextfile collector: FILE in its directory, ending in .prom)",
           &C::metrics_file);
    return t;
  }();
  return table;
}

const std::string& drain_options_help() {
  static const std::string help =
      "drain options (each may also be set in the config file as 'name = value'):\n" + drain_options_table().help();
  return help;
}

// ---- the runtime ---------------------------------------------------------------------

DrainRuntime::DrainRuntime(const GlobalOptions& global, const DrainConfig& config, const std::string& command,
                           DrainKind kind) {
  // Checks first: a bad value is a usage error before any client exists.
  check_override_default(command, "connection-deadline", config.drain.connection_deadline);
  check_override_default(command, "stop-grace", config.drain.stop_grace);
  if (config.drain.progress_interval.count() <= 0) throw FatalError(command + ": --progress-interval must be positive");
  const FenceOptions fence = config.fence.options(command, "fence-");
  MesosMasterOptions mesos = mesos_master_options(config.mesos, command, "");
  auto docker_endpoint = HttpEndpoint::parse(config.docker_socket);
  if (!docker_endpoint) throw FatalError(command + ": --docker-socket: " + docker_endpoint.error().message());

  if (config.hook_timeout.count() <= 0) throw FatalError(command + ": --hook-timeout must be positive");
  if (config.drain.surge_timeout.count() <= 0) throw FatalError(command + ": --surge-timeout must be positive");
  std::array<DrainHook, kHookPoints> hooks;
  for (const auto& [point, text] : {std::pair{HookPoint::kPreDrain, &config.hook_pre_drain},
                                    {HookPoint::kDrained, &config.hook_drained},
                                    {HookPoint::kPreReboot, &config.hook_pre_reboot},
                                    {HookPoint::kPostBoot, &config.hook_post_boot}}) {
    DrainHook& hook = hooks[static_cast<std::size_t>(point)];
    hook.argv = split_list(*text, ' ');
    hook.timeout = config.hook_timeout;
  }
  for (const std::string& name : split_list(config.hook_idempotent)) {
    const auto point = parse_hook_point(name);
    if (!point) {
      throw FatalError(command + ": --hook-idempotent: '" + name +
                       "' is not a hook point (pre-drain, drained, pre-reboot, post-boot)");
    }
    hooks[static_cast<std::size_t>(*point)].idempotent = true;
  }

  auto destinations = parse_notify_destinations(config.notify_to);
  if (!destinations) throw FatalError(command + ": --notify-to: " + destinations.error());

  // etcd and the locks (always: every drain takes the host lock), and who this host is.
  etcd_options_ = global.etcd;
  prefix_ = global.prefix;
  LockContext context = connect_locks(global, heartbeat_lease_);
  etcd_ = std::move(context.etcd);
  locks_ = std::move(context.locks);
  drain_locks_ = std::make_unique<EtcdDrainLocks>(*locks_);

  options_ = config.drain;
  options_.kind = kind;
  if (options_.hostname.empty()) options_.hostname = identity().hostname;
  options_.machine_id = identity().machine_id;
  options_.hooks = hooks;
  journal_path_ = config.journal;
  heartbeat_ttl_ = config.heartbeat_ttl;

  // Mesos, when masters are given.
  MesosStepsOptions steps;
  steps.mode = config.mesos_mode;
  steps.window = config.maintenance_window;
  if (!mesos.http.endpoints.empty()) {
    auto master = MesosMaster::create(mesos);
    if (!master) throw FatalError(command + ": Mesos client: " + master.error().message);
    master_ = std::move(*master);
    scheduler_ = std::make_unique<MaintenanceScheduler>(*master_, *locks_);
  }
  mesos_ = std::make_unique<MesosDrainSteps>(master_.get(), scheduler_.get(), steps);

  // Marathon, when given.
  if (!config.marathon.empty()) {
    MarathonOptions marathon;
    marathon.http.endpoints = parse_url_list(config.marathon, command + ": --marathon");
    marathon.http.timeout = config.marathon_timeout;
    basic_auth(config.marathon_user, config.marathon_password_file, command, "marathon", "SKOPOS_MARATHON",
               marathon.http);
    auto client = Marathon::create(marathon);
    if (!client) throw FatalError(command + ": Marathon client: " + client.error().message);
    marathon_ = std::move(*client);
  }
  marathon_steps_ = std::make_unique<MarathonDrainSteps>(marathon_.get());

  // Docker.
  DockerContainersOptions docker;
  docker.engine.http.endpoints.push_back(std::move(*docker_endpoint));
  docker.engine.http.timeout = std::chrono::seconds(10);
  docker.all_containers = config.all_containers;
  containers_ = std::make_unique<DockerDrainContainers>(docker);

  // The tracker.
  TrackerConnectionsOptions tracker;
  tracker.socket = config.tracker_socket;
  connections_ = std::make_unique<TrackerDrainConnections>(tracker);

  // The fence.
  fence_ = std::make_unique<IptablesDrainFence>(fence, config.fence.ipv6_on());

  // This host.
  LocalHostOptions host;
  host.reboot_command = split_list(config.reboot_command, ' ');
  host.boot_id_path = global.boot_id_file;
  host.zookeeper = split_list(config.zookeeper);
  host.notify_url = config.notify;
  host.machine_id = identity().machine_id;
  host.hostname = options_.hostname;
  host_ = std::make_unique<LocalDrainHost>(host);

  if (!destinations->empty()) notifier_ = std::make_unique<Notifier>(std::move(*destinations), NotifierOptions{});
}

Notification DrainRuntime::notification_context() const {
  Notification n;
  n.machine_id = identity().machine_id;
  n.hostname = options_.hostname;
  n.tier = tier_name(options_.tier);
  n.kind = drain_kind_token(options_.kind);
  return n;
}

DrainRuntime::~DrainRuntime() = default;

std::unique_ptr<EtcdClient> DrainRuntime::new_etcd_client() const {
  auto client = EtcdClient::create(etcd_options_);
  if (!client) throw FatalError("etcd client: " + client.error().message);
  return std::move(*client);
}

std::unique_ptr<HeartbeatThread> DrainRuntime::start_heartbeat() const {
  return std::make_unique<HeartbeatThread>(new_etcd_client(), identity(), prefix_, heartbeat_ttl_, heartbeat_lease_);
}

DrainSystems DrainRuntime::systems() {
  return DrainSystems{*drain_locks_, *mesos_, *marathon_steps_, *containers_, *connections_, *fence_, *host_};
}

}  // namespace skopos::driver::cli
