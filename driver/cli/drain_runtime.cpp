#include "drain_runtime.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "skopos/json_writer.h"
#include "skopos/log.h"

namespace skopos::driver::cli {

namespace {

using Clock = std::chrono::steady_clock;

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

std::string ms_text(std::chrono::milliseconds ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(ms.count()) / 1000.0);
  return text;
}

// CLOCK_REALTIME in nanoseconds: JSON events carry it so other processes (tests,
// benchmarks, log pipelines) can line them up with their own clocks.
std::int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
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

DrainSystems DrainRuntime::systems() {
  return DrainSystems{*drain_locks_, *mesos_, *marathon_steps_, *containers_, *connections_, *fence_, *host_};
}

// ---- the local lock ------------------------------------------------------------------

Result<LocalDrainLock> LocalDrainLock::take(const std::string& journal_path, bool take_over,
                                            std::chrono::milliseconds wait) {
  const std::string path = journal_path + ".lock";
  std::error_code ec;
  if (const auto dir = std::filesystem::path(journal_path).parent_path(); !dir.empty()) {
    std::filesystem::create_directories(dir, ec);
    if (ec) return unexpected(Error::invalid("create directory", dir.string(), ec.message()));
  }
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return unexpected(Error::from_errno(errno, "open", path));
  const auto deadline = Clock::now() + wait;
  bool signalled = false;
  while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return unexpected(Error::from_errno(errno, "flock", path));
    char text[32] = {};
    (void)::pread(fd.get(), text, sizeof text - 1, 0);
    const long pid = std::strtol(text, nullptr, 10);
    if (!take_over) {
      return unexpected(Error::invalid("lock", path, "another skopos drain (pid " + std::to_string(pid) +
                                                         ") is running on this host; 'skopos drain --abort' stops it"));
    }
    if (!signalled && pid > 0) {
      log_notice("asking the running drain (pid " + std::to_string(pid) + ") to stop");
      ::kill(static_cast<pid_t>(pid), SIGTERM);
      signalled = true;
    }
    if (Clock::now() >= deadline) {
      return unexpected(Error::invalid("lock", path, "the running drain (pid " + std::to_string(pid) +
                                                         ") did not stop within " + ms_text(wait)));
    }
    ::usleep(100000);
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd.get(), 0) != 0 || ::pwrite(fd.get(), pid.data(), pid.size(), 0) < 0) {
    return unexpected(Error::from_errno(errno, "write", path));
  }
  return LocalDrainLock(std::move(fd));
}

// ---- heartbeat -----------------------------------------------------------------------

HeartbeatThread::HeartbeatThread(const EtcdOptions& etcd, const HostIdentity& self, const std::string& prefix,
                                 std::chrono::seconds ttl) {
  auto client = EtcdClient::create(etcd);
  if (!client) throw FatalError("heartbeat: etcd client: " + client.error().message);
  etcd_ = std::move(*client);
  heartbeat_ = std::make_unique<Heartbeat>(*etcd_, self, prefix, ttl);
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mutex_);
    std::string last_error;
    while (!stopping_) {
      lock.unlock();
      auto beat = heartbeat_->beat();
      lock.lock();
      // One line when it starts failing and one when it recovers, not one per beat.
      const std::string error = beat ? std::string() : beat.error().message;
      if (error != last_error) {
        if (!error.empty()) log_warning("heartbeat: " + error);
        if (error.empty()) log_info("heartbeat: alive again");
        last_error = error;
      }
      wake_.wait_for(lock, heartbeat_->interval(), [this] { return stopping_; });
    }
    if (revoke_) (void)heartbeat_->stop();
  });
}

void HeartbeatThread::stop(bool revoke) {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    revoke_ = revoke;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

HeartbeatThread::~HeartbeatThread() { stop(true); }

// ---- signals -------------------------------------------------------------------------

namespace {
std::atomic<bool> g_stop{false};
void on_stop_signal(int) { g_stop.store(true); }
}  // namespace

const std::atomic<bool>& install_stop_signals() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  return g_stop;
}

// ---- reporting -----------------------------------------------------------------------

DrainReporter::DrainReporter(bool json, bool live, std::chrono::milliseconds interval, const std::string& events_file,
                             const std::string& metrics_file, const std::string& host)
    : json_(json), live_(live && !json), interval_(interval) {
  if (!events_file.empty()) {
    events_ = std::fopen(events_file.c_str(), "ae");
    if (events_ == nullptr) {
      throw FatalError("--events: cannot open '" + events_file + "' for appending: " + std::strerror(errno));
    }
  }
  if (!metrics_file.empty()) {
    metrics_.emplace(metrics_file, host);
    // Written once now, so a directory that refuses it is a usage error before anything
    // is done, not a warning in the middle of the drain.
    if (auto written = metrics_->write(); !written) throw FatalError("--metrics-file: " + written.error());
  }
}

void DrainReporter::write_metrics() {
  metrics_written_ = std::chrono::steady_clock::now();
  metrics_pending_ = false;
  auto written = metrics_->write();
  if (written) {
    metrics_failed_ = false;
  } else if (!metrics_failed_) {
    // The drain goes on: the metrics are how people watch it, not part of it.
    log_warning(written.error() + " (the drain goes on; the file is tried again at the next event)");
    metrics_failed_ = true;
  }
}

DrainReporter::~DrainReporter() {
  if (events_ != nullptr) std::fclose(events_);
}

void DrainReporter::json_line(const std::string& line) {
  if (json_) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
  if (events_ != nullptr) {
    std::fprintf(events_, "%s\n", line.c_str());
    std::fflush(events_);
  }
}

void DrainReporter::clear_live() {
  if (live_lines_ > 0) {
    std::printf("\033[%dA\033[J", live_lines_);
    live_lines_ = 0;
  }
}

void DrainReporter::operator()(const DrainEvent& event) {
  if (metrics_) {
    // Progress comes with every change of a count: written at most once a second, and a
    // change held back goes out with the next event a second later (the next tick at
    // the latest).
    metrics_pending_ = metrics_->observe(event, static_cast<std::int64_t>(std::time(nullptr))) || metrics_pending_;
    const bool due = std::chrono::steady_clock::now() - metrics_written_ >= std::chrono::seconds(1);
    const bool urgent = event.type != DrainEvent::Type::kProgress && event.type != DrainEvent::Type::kInfo;
    if (metrics_pending_ && (urgent || due)) write_metrics();
  }
  if (event.type == DrainEvent::Type::kProgress) {
    progress(*event.progress);
    return;
  }
  if (event.type == DrainEvent::Type::kInfo && event.phase == DrainPhase::kFence) {
    if (const auto it = event.fields.find("connections"); it != event.fields.end()) at_fence_ = it->second;
  }
  if (json_ || events_ != nullptr) {
    std::string out;
    JsonWriter json(out);
    const char* type = event.type == DrainEvent::Type::kPhase     ? "phase"
                       : event.type == DrainEvent::Type::kWarning ? "warning"
                       : event.type == DrainEvent::Type::kPlan    ? "plan"
                       : event.type == DrainEvent::Type::kDone    ? "done"
                                                                  : "info";
    json.begin_object().key("event").value(type).key("phase").value(drain_phase_name(event.phase));
    json.key("time_ns").value(wall_ns());
    json.key("message").value(event.message);
    for (const auto& [key, value] : event.fields) json.key(key).value(value);
    json.end_object();
    json_line(out);
    if (json_) return;
  }
  clear_live();
  switch (event.type) {
    case DrainEvent::Type::kPhase: log_notice("phase " + event.message); break;
    case DrainEvent::Type::kWarning: log_warning(event.message); break;
    case DrainEvent::Type::kPlan: std::printf("%s\n", event.message.c_str()); break;
    default: log_info(event.message); break;
  }
  std::fflush(stdout);
}

// How many containers a progress line or screen lists by name.
constexpr std::size_t kProgressContainers = 8;

void DrainReporter::progress(const WaitProgress& p) {
  const std::string eta = p.eta ? std::to_string(p.eta->count()) + " s" : std::string("-");
  char rate[32];
  std::snprintf(rate, sizeof rate, "%.1f/s", p.closing_per_second);
  if (json_ || events_ != nullptr) {
    std::string out;
    JsonWriter json(out);
    json.begin_object().key("event").value("progress").key("time_ns").value(wall_ns());
    json.key("elapsed_ms").value(static_cast<std::int64_t>(p.elapsed.count()));
    json.key("inbound").value(p.total).key("unknown").value(p.unknown).key("connected").value(p.connected);
    char number[32];
    std::snprintf(number, sizeof number, "%.2f", p.closing_per_second);
    json.key("closing_per_second").raw_value(number).key("oldest_peer").value(p.oldest_peer);
    if (p.eta) {
      json.key("eta_seconds").value(static_cast<std::int64_t>(p.eta->count()));
    }
    json.key("containers").begin_array();
    for (const ContainerCount& c : p.containers) {
      json.begin_object().key("id").value(c.id).key("name").value(c.name);
      json.key("inbound");
      if (c.inbound < 0) {
        json.null();
      } else {
        json.value(c.inbound);
      }
      json.key("deadline_passed").value(c.deadline_passed).key("gone").value(c.gone).end_object();
    }
    json.end_array().end_object();
    json_line(out);
    if (json_) return;
  }
  // Totals, the unknowns and the few containers holding the most connections: a host
  // with hundreds of containers still gets one readable line (or screen).
  const std::vector<const ContainerCount*> shown = p.busiest(kProgressContainers);
  const std::size_t rest = p.containers.size() - shown.size();
  std::string per_container;
  for (const ContainerCount* c : shown) {
    if (!per_container.empty()) per_container += ", ";
    per_container += c->name + " " + (c->inbound < 0 ? std::string("?") : std::to_string(c->inbound)) +
                     (c->gone ? " (gone)" : c->deadline_passed ? " (deadline)" : "");
  }
  const std::string rest_text = rest == 0 ? std::string() : "and " + std::to_string(rest) + " more, none of them holding a connection";
  if (rest != 0) per_container += ", " + rest_text;
  const std::string head = std::to_string(p.total) + " inbound connection(s)" +
                           (p.unknown ? " + " + std::to_string(p.unknown) + " unknown" : "") + " in " +
                           std::to_string(p.containers.size()) + " container(s), closing " + rate + ", ETA " + eta +
                           ", waited " + ms_text(p.elapsed) + (p.connected ? "" : " [tracker not connected]");
  if (live_) {
    clear_live();
    std::printf("waiting: %s\n", head.c_str());
    live_lines_ = 1;
    for (const ContainerCount* c : shown) {
      std::printf("  %-44s %6s%s\n", c->name.c_str(), c->inbound < 0 ? "?" : std::to_string(c->inbound).c_str(),
                  c->gone ? "  gone" : c->deadline_passed ? "  deadline passed" : "");
      ++live_lines_;
    }
    if (rest != 0) {
      std::printf("  %s\n", rest_text.c_str());
      ++live_lines_;
    }
    std::printf("  oldest: %s\n", p.oldest_peer.empty() ? "-" : p.oldest_peer.c_str());
    ++live_lines_;
    std::fflush(stdout);
    return;
  }
  // Lines (under systemd): one per interval, and the one that says it reached zero.
  const auto now = Clock::now();
  if (p.total != 0 && now - last_line_ < interval_) return;
  last_line_ = now;
  log_info("waiting: " + head + " [" + per_container + "]" + (p.oldest_peer.empty() ? "" : "; oldest " + p.oldest_peer));
}

void DrainReporter::result(const std::string& command, const Result<DrainResult, DrainError>& result) {
  clear_live();
  if (!result) {
    const DrainError& error = result.error();
    if (metrics_) {
      metrics_->finish(drain_error_kind_name(error.kind), static_cast<std::int64_t>(std::time(nullptr)));
      write_metrics();
    }
    std::fprintf(stderr, "%s: %s\n", command.c_str(), error.message.c_str());
    std::string out;
    JsonWriter json(out);
    json.begin_object().key("event").value("result").key("time_ns").value(wall_ns());
    json.key("outcome").value(drain_error_kind_name(error.kind)).key("message").value(error.message).end_object();
    json_line(out);
    return;
  }
  const DrainResult& r = *result;
  const char* outcome = r.reached == DrainPhase::kDone     ? "recovered"
                        : r.reached == DrainPhase::kReboot ? "rebooting"
                        : r.reached == DrainPhase::kDrained ? "drained"
                                                            : "planned";
  if (metrics_) {
    metrics_->finish(outcome, static_cast<std::int64_t>(std::time(nullptr)));
    write_metrics();
  }
  std::string out;
  JsonWriter json(out);
  json.begin_object().key("event").value("result").key("time_ns").value(wall_ns()).key("outcome").value(outcome);
  json.key("phase").value(drain_phase_name(r.reached)).key("took_ms").value(static_cast<std::int64_t>(r.took.count()));
  json.key("containers").value(static_cast<std::uint64_t>(r.facts.containers.size()));
  if (r.reached != DrainPhase::kDone) json.key("connections_at_fence").value(at_fence_);
  json.key("connections_zero").value(r.facts.connections_zero);
  if (r.wait) json.key("waited_ms").value(static_cast<std::int64_t>(r.wait->waited.count()));
  json.end_object();
  json_line(out);
  if (json_ || std::string_view(outcome) == "planned") return;  // a dry run printed its plan
  std::string line = std::string(outcome) + " in " + ms_text(r.took);
  if (r.reached != DrainPhase::kDone) {
    line += ": " + std::to_string(r.facts.containers.size()) + " container(s), " + at_fence_ +
            " inbound connection(s) when fenced";
    if (r.wait) {
      line += r.wait->all_zero ? ", all closed after " + ms_text(r.wait->waited)
                               : ", deadline reached after " + ms_text(r.wait->waited) + " with " +
                                     std::to_string(r.wait->last.total) + " left";
    }
  }
  std::printf("%s\n", line.c_str());
}

int drain_exit_code(const DrainError& error) {
  switch (error.kind) {
    case DrainError::Kind::kFailed: return kExitFailed;
    case DrainError::Kind::kRefused: return kExitRefused;
    case DrainError::Kind::kTimedOut: return kExitTimedOut;
    case DrainError::Kind::kInterrupted: return kExitInterrupted;
    case DrainError::Kind::kUsage: return kExitUsage;
  }
  return kExitFailed;
}

}  // namespace skopos::driver::cli
