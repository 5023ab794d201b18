#include "drain_runtime.h"

#include <string>

namespace skopos::driver::cli {

namespace {

std::chrono::seconds whole_seconds(const CliArgs& args, const std::string& name, std::chrono::seconds fallback) {
  return std::chrono::duration_cast<std::chrono::seconds>(args.duration(name, fallback));
}

// The defaults of the per-app overrides obey the labels' ceiling.
std::chrono::seconds override_default(const CliArgs& args, const std::string& command, const std::string& name,
                                      std::chrono::seconds fallback) {
  const std::chrono::seconds value = whole_seconds(args, name, fallback);
  if (value > kMaxOverrideDuration) {
    throw FatalError(command + ": --" + name + " '" + args.option(name) + "' is above the ceiling of " +
                     std::to_string(kMaxOverrideDuration.count() / 3600) + "h");
  }
  return value;
}

}  // namespace

const std::set<std::string> kDrainOptions = {
    "tier",           "hostname",         "mesos-mode",         "maintenance-window", "marathon",
    "marathon-user",  "marathon-password-file", "marathon-timeout", "marathon-self",    "docker-socket",
    "tracker-socket", "connection-deadline", "stop-grace",       "lock-wait",          "recover-timeout",
    "leader-move-wait", "fence-chain",    "health-check-port",  "health-check-match", "zookeeper",
    "reboot-command", "journal",          "notify",             "heartbeat-ttl",      "progress-interval",
    "events",         "metrics-file",     "fence-ipv6",         "fence-allow",
    "mesos-master",   "mesos-user",       "mesos-password-file", "mesos-cacert",      "mesos-cert",
    "mesos-key",      "mesos-timeout",    "leader-wait"};

const char* const kDrainOptionsHelp =
    "drain options (each may also be set in the config file as 'name = value'):\n"
    "  --tier T                  control, proxy or worker (default worker): the cluster\n"
    "                            lock's group, and what the control tier also checks\n"
    "  --hostname H              this host as Mesos and Marathon name it (default: the\n"
    "                            host name)\n"
    "  --connection-deadline D   how long to wait for inbound connections to close\n"
    "                            (default 300s; label skopos.drain-deadline per app)\n"
    "  --stop-grace D            docker stop's SIGTERM-to-SIGKILL grace (default 300s;\n"
    "                            label skopos.stop-grace per app; skopos.ignore-ports\n"
    "                            lists ports whose connections are not waited for)\n"
    "  --lock-wait D             how long to wait for the tier's lock (default 1h)\n"
    "  --recover-timeout D       how long recovery waits for the agent and the apps\n"
    "                            (default 15m; on timeout the locks are kept)\n"
    "  --journal FILE            the drain's journal (default /var/lib/skopos/journal)\n"
    "  --tracker-socket PATH     skopos-tracker's stream (default /run/skopos/tracker.sock)\n"
    "  --docker-socket URL       the Docker Engine API (default unix:///var/run/docker.sock)\n"
    "  --all-containers          take every running container out, not only Mesos and\n"
    "                            Marathon tasks\n"
    "  --marathon URLS           Marathon (any instance); without it, no budget check\n"
    "                            and no task release ($SKOPOS_MARATHON)\n"
    "  --marathon-user U, --marathon-password-file F, --marathon-timeout D\n"
    "  --marathon-self HOST:PORT control tier: this host's Marathon as /v2/leader names it;\n"
    "                            if it leads, it abdicates and the drain waits for a new one\n"
    "  --leader-move-wait D      how long to wait for that (default 60s)\n"
    "  --mesos-mode M            auto (default), schedule or drain-api\n"
    "  --maintenance-window D    length of the Mesos maintenance window (default 2h)\n"
    "  --zookeeper HOST:PORT,... control tier: the ensemble that must keep its quorum\n"
    "  --fence-chain NAME        the iptables chain (default SKOPOS)\n"
    "  --fence-ipv6 on|off       fence IPv6 too, with ip6tables (default on where the kernel\n"
    "                            has IPv6); an ip6tables failure fails the step\n"
    "  --fence-allow CIDR,...    sources whose new connections pass the fence: the hosts\n"
    "                            of health checkers that must keep seeing a fenced task\n"
    "                            alive (Marathon's own HTTP/TCP checks come from the\n"
    "                            Marathon hosts; failing, they make Marathon kill it)\n"
    "  --health-check-port P, --health-check-match TEXT\n"
    "                            also reset the cloud balancer's health check; off by\n"
    "                            default: an autoscaler may terminate a host whose health\n"
    "                            check fails, even one holding the reboot lock\n"
    "  --reboot-command CMD      run to reboot (default 'systemctl reboot'; split on\n"
    "                            spaces, no shell)\n"
    "  --notify URL              POSTed {machine_id, hostname, kind, outcome, drain_id} at\n"
    "                            the end ($NOTIFY; {machine_id} in the URL is replaced)\n"
    "  --heartbeat-ttl D         this driver's liveness lease (default 15s)\n"
    "  --progress-interval D     progress lines under systemd (default 5s)\n"
    "  --events FILE             also append every event and the result to FILE as JSON\n"
    "                            lines (an audit trail for automation)\n"
    "  --metrics-file FILE       keep FILE up to date as Prometheus text: phase, time in\n"
    "                            it, connections left, fence re-applied (for node_exporter's\n"
    "                            textfile collector: FILE in its directory, ending in .prom)\n"
    "  --mesos-master URLS ...   as for 'skopos maintenance'; without it, Mesos is not\n"
    "                            told ($SKOPOS_MESOS_MASTER)\n";

// ---- the runtime ---------------------------------------------------------------------

DrainRuntime::DrainRuntime(const GlobalOptions& global, const CliArgs& args, const std::string& command, DrainKind kind) {
  // etcd and the locks (always: every drain takes the host lock), and who this host is.
  etcd_options_ = global.etcd;
  prefix_ = global.prefix;
  LockContext context = connect_locks(global);
  etcd_ = std::move(context.etcd);
  locks_ = std::move(context.locks);
  drain_locks_ = std::make_unique<EtcdDrainLocks>(*locks_);

  options_.kind = kind;
  const std::string tier = args.option("tier", "worker");
  const auto parsed_tier = parse_tier(tier);
  if (!parsed_tier) throw FatalError(command + ": --tier '" + tier + "' is not control, proxy or worker");
  options_.tier = *parsed_tier;
  options_.hostname = args.option("hostname", identity().hostname);
  options_.connection_deadline = override_default(args, command, "connection-deadline", options_.connection_deadline);
  options_.stop_grace = override_default(args, command, "stop-grace", options_.stop_grace);
  options_.lock_wait = args.duration("lock-wait", options_.lock_wait);
  options_.recover_timeout = args.duration("recover-timeout", options_.recover_timeout);
  options_.leader_wait = args.duration("leader-move-wait", options_.leader_wait);
  options_.progress_interval = args.duration("progress-interval", options_.progress_interval);
  if (options_.progress_interval.count() <= 0) throw FatalError(command + ": --progress-interval must be positive");
  options_.marathon_self = args.option("marathon-self");
  options_.mark_gone = args.flag("mark-gone");
  options_.dry_run = args.flag("dry-run");
  journal_path_ = args.option("journal", kDefaultJournal);
  heartbeat_ttl_ = whole_seconds(args, "heartbeat-ttl", heartbeat_ttl_);

  // Mesos, when masters are given.
  MesosMasterOptions mesos = mesos_options(args, command, "");
  MesosStepsOptions steps;
  if (args.has("mesos-mode") && args.option("mesos-mode") != "auto") {
    MesosMachine::Mode mode = MesosMachine::Mode::kNone;
    if (!parse_mesos_mode(args.option("mesos-mode"), mode) || mode == MesosMachine::Mode::kNone) {
      throw FatalError(command + ": --mesos-mode '" + args.option("mesos-mode") + "' is not auto, schedule or drain-api");
    }
    steps.mode = mode;
  }
  steps.window = whole_seconds(args, "maintenance-window", steps.window);
  if (!mesos.http.endpoints.empty()) {
    auto master = MesosMaster::create(mesos);
    if (!master) throw FatalError(command + ": Mesos client: " + master.error().message);
    master_ = std::move(*master);
    scheduler_ = std::make_unique<MaintenanceScheduler>(*master_, *locks_);
  }
  mesos_ = std::make_unique<MesosDrainSteps>(master_.get(), scheduler_.get(), steps);

  // Marathon, when given.
  const std::string marathon_urls = args.option("marathon", env_or("SKOPOS_MARATHON", ""));
  if (!marathon_urls.empty()) {
    MarathonOptions marathon;
    marathon.http.endpoints = parse_url_list(marathon_urls, command + ": --marathon");
    marathon.http.timeout = args.duration("marathon-timeout", std::chrono::seconds(10));
    read_basic_auth(args, command, "marathon", "SKOPOS_MARATHON", marathon.http);
    auto client = Marathon::create(marathon);
    if (!client) throw FatalError(command + ": Marathon client: " + client.error().message);
    marathon_ = std::move(*client);
  }
  marathon_steps_ = std::make_unique<MarathonDrainSteps>(marathon_.get());

  // Docker.
  DockerContainersOptions docker;
  auto endpoint = HttpEndpoint::parse(args.option("docker-socket", "unix:///var/run/docker.sock"));
  if (!endpoint) throw FatalError(command + ": --docker-socket: " + endpoint.error().message());
  docker.engine.http.endpoints.push_back(std::move(*endpoint));
  docker.engine.http.timeout = std::chrono::seconds(10);
  docker.all_containers = args.flag("all-containers");
  containers_ = std::make_unique<DockerDrainContainers>(docker);

  // The tracker.
  TrackerConnectionsOptions tracker;
  tracker.socket = args.option("tracker-socket", env_or("SKOPOS_TRACKER_SOCKET", tracker.socket));
  connections_ = std::make_unique<TrackerDrainConnections>(tracker);

  // The fence.
  FenceOptions fence;
  fence.chain = args.option("fence-chain", "SKOPOS");
  if (fence.chain.empty() || fence.chain.size() > 28) throw FatalError(command + ": --fence-chain must be 1-28 characters");
  if (args.has("health-check-port") != args.has("health-check-match")) {
    throw FatalError(command + ": --health-check-port and --health-check-match go together");
  }
  if (args.has("health-check-port")) {
    fence.health_check = HealthCheckFence{port_value(command + ": --health-check-port", args.option("health-check-port")),
                                          args.option("health-check-match")};
  }
  fence.allow_sources = allow_list(command + ": --fence-allow", args.option("fence-allow"));
  const std::string ipv6 = args.option("fence-ipv6", kernel_has_ipv6() ? "on" : "off");
  if (ipv6 != "on" && ipv6 != "off") throw FatalError(command + ": --fence-ipv6 '" + ipv6 + "' is not on or off");
  fence_ = std::make_unique<IptablesDrainFence>(fence, ipv6 == "on");

  // This host.
  LocalHostOptions host;
  if (args.has("reboot-command")) host.reboot_command = split_list(args.option("reboot-command"), ' ');
  host.boot_id_path = global.boot_id_file;
  if (args.has("zookeeper")) host.zookeeper = split_list(args.option("zookeeper"));
  host.notify_url = args.option("notify", env_or("NOTIFY", ""));
  host.machine_id = identity().machine_id;
  host.hostname = options_.hostname;
  host_ = std::make_unique<LocalDrainHost>(host);
}

DrainRuntime::~DrainRuntime() = default;

std::unique_ptr<EtcdClient> DrainRuntime::new_etcd_client() const {
  auto client = EtcdClient::create(etcd_options_);
  if (!client) throw FatalError("etcd client: " + client.error().message);
  return std::move(*client);
}

std::unique_ptr<HeartbeatThread> DrainRuntime::start_heartbeat() const {
  return std::make_unique<HeartbeatThread>(new_etcd_client(), identity(), prefix_, heartbeat_ttl_);
}

DrainSystems DrainRuntime::systems() {
  return DrainSystems{*drain_locks_, *mesos_, *marathon_steps_, *containers_, *connections_, *fence_, *host_};
}

}  // namespace skopos::driver::cli
