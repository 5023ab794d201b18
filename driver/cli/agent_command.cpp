// skopos agent: the reboot daemon under systemd. This file reads the options and puts
// the pieces together; the decision loop is driver/agent.h (Agent), the requests it
// watches driver/reboot_triggers.h, the systemd watchdog driver/watchdog.h.
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <functional>
#include <thread>
#include <tuple>
#include <memory>
#include <string>

#include "commands.h"
#include "drain_reporter.h"
#include "drain_runtime.h"
#include "driver/agent.h"
#include "driver/agent_metrics.h"
#include "driver/fleetlock.h"
#include "driver/health_gates.h"
#include "driver/pauses.h"
#include "driver/reboot_triggers.h"
#include "driver/reboot_windows.h"
#include "driver/watchdog.h"
#include "skopos/http_server.h"
#include "skopos/log.h"
#include "skopos/sd_notify.h"
#include "stop_signals.h"

namespace skopos::driver::cli {

namespace {

constexpr const char* kAgentUsage =
    "usage: skopos agent [options]\n"
    "\n"
    "       skopos agent pause|resume|pauses ...   (see 'skopos agent pause --help')\n"
    "\n"
    "The reboot daemon (run it under systemd: driver/systemd/skopos-agent.service). It\n"
    "waits for a trigger -- the trigger file, or a rolling reboot request for its tier\n"
    "('skopos rolling-reboot') -- then drains this host with the REBOOT token, holding a\n"
    "slot of the tier's reboot lock, reboots through --reboot-command, and after boot:\n"
    "checks that the boot id changed, ZooKeeper's quorum (control tier), removes the fence,\n"
    "brings the machine up in Mesos, waits for the agent to register and the apps that\n"
    "were here to be back at full strength, then releases the lock. A drain interrupted by\n"
    "a crash is resumed when it starts.\n"
    "\n"
    "agent options:\n"
    "%s"
    "\n"
    "%s\n%s";

// What the agent does, as systemd and people see it: log lines, STATUS, the watchdog,
// and each drain rendered as `skopos drain` renders it under systemd.
class AgentLog : public AgentObserver {
 public:
  // `agent_metrics`: the agent's own metrics (may be null).
  AgentLog(std::string events_file, std::string metrics_file, AgentMetrics* agent_metrics)
      : events_file_(std::move(events_file)), metrics_file_(std::move(metrics_file)), agent_metrics_(agent_metrics) {}
  void count_sentinel_failures(std::function<std::uint64_t()> read) { sentinel_failures_ = std::move(read); }

  void status(const std::string& text) override {
    log_notice(text);
    (void)sd_notify("STATUS=" + text);
  }
  void warning(const std::string& text) override { log_warning(text); }
  void error(const std::string& text) override { log_error(text); }
  void alive() override { watchdog_.alive(); }
  void drain_started(const DrainOptions& options) override {
    watchdog_.busy(true);
    reporter_.emplace(false, false, options.progress_interval, events_file_, metrics_file_, options.hostname);
    reporter_->notify_to(notifier_, context_);
  }
  void waiting(const std::string& reason) override {
    if (notifier_ == nullptr) return;
    Notification n = context_;
    n.event = "waiting";
    n.at = now_seconds();
    n.message = "reboot requested, waiting: " + reason;
    notifier_->publish(n);
  }
  // Where the drains' milestones and the waits are told (may be null), and as whom.
  void notify_to(Notifier* notifier, Notification context) {
    notifier_ = notifier;
    context_ = std::move(context);
  }
  void drain_event(const DrainEvent& event) override {
    (*reporter_)(event);
    if (event.type == DrainEvent::Type::kPhase) (void)sd_notify("STATUS=phase " + event.message);
  }
  void drain_finished(const Result<DrainResult, DrainError>& result) override {
    watchdog_.busy(false);
    reporter_->result("skopos agent", result);
    reporter_.reset();
  }
  void turn(AgentTurn turn) override {
    if (agent_metrics_ == nullptr) return;
    agent_metrics_->turn(turn, now_seconds());
    if (sentinel_failures_) agent_metrics_->sentinel_failures(sentinel_failures_());
    if (notifier_ != nullptr) {
      for (std::size_t i = 0; i < notifier_->destinations().size(); ++i) {
        const Notifier::Counts counts = notifier_->counts(i);
        // Numbered: two destinations may look alike once their secrets are left out.
        agent_metrics_->notifications(std::to_string(i + 1) + " " + notifier_->destinations()[i].describe(),
                                      counts.delivered, counts.undelivered, counts.dropped);
      }
    }
    flush_metrics();
  }
  void fence_without_drain(const std::optional<std::vector<std::uint16_t>>& ports) override {
    // Said when it changes: a fence nothing accounts for refuses new connections to
    // these ports until a person removes it.
    if (ports && !ports->empty() && *ports != fence_told_) {
      std::string list;
      for (const std::uint16_t port : *ports) list += (list.empty() ? "" : ",") + std::to_string(port);
      log_warning("fenced with no drain in progress: new connections to ports " + list +
                  " are refused; if no drain of this host is wanted, 'skopos fence remove' (or 'skopos undrain')");
    }
    if (ports) fence_told_ = *ports;
    if (agent_metrics_ == nullptr) return;
    agent_metrics_->fence_without_drain(ports ? std::optional<bool>(!ports->empty()) : std::nullopt);
  }
  // Each gate's state from a check at `point` ("start", "release").
  void gates(std::string_view point, const std::vector<GateState>& gates) {
    if (agent_metrics_ == nullptr) return;
    agent_metrics_->gates(point, gates, now_seconds());
    flush_metrics();
  }

 private:
  static std::int64_t now_seconds() { return static_cast<std::int64_t>(std::time(nullptr)); }
  void flush_metrics() {
    auto flushed = agent_metrics_->flush(now_seconds());
    // The agent goes on: the metrics are how people watch it, not part of it.
    if (!flushed && !metrics_failed_) log_warning("--agent-metrics-file: " + flushed.error());
    metrics_failed_ = !flushed;
  }

  std::string events_file_;
  std::string metrics_file_;
  AgentMetrics* agent_metrics_;
  std::function<std::uint64_t()> sentinel_failures_;
  bool metrics_failed_ = false;  // warned
  std::vector<std::uint16_t> fence_told_;  // the fence without a drain last warned about
  Notifier* notifier_ = nullptr;
  Notification context_;
  Watchdog watchdog_;
  std::optional<DrainReporter> reporter_;
};

// The FleetLock server on a thread of its own; stopped and joined when it goes.
class FleetLockEndpoint {
 public:
  FleetLockEndpoint(FleetLockService& service, const std::string& listen)
      : server_(io_, "fleetlock", "FleetLock starts this host's drain",
                [&service](const HttpServerRequest& request) { return service.handle(request); }) {
    if (auto started = server_.start(listen); !started) {
      throw FatalError("skopos agent: --fleetlock-listen: " + started.error().message());
    }
    thread_ = std::thread([this] { io_.run(); });
  }
  ~FleetLockEndpoint() {
    io_.stop();
    thread_.join();
    server_.stop();  // the io thread has ended: nothing else touches the server now
  }
  FleetLockEndpoint(const FleetLockEndpoint&) = delete;
  FleetLockEndpoint& operator=(const FleetLockEndpoint&) = delete;

 private:
  boost::asio::io_context io_;
  LoopbackHttpServer server_;
  std::thread thread_;
};

// Everything the agent's options set.
struct AgentConfig {
  GlobalConfig global;
  DrainConfig drain = DrainConfig::from_environment();
  AgentOptions agent;
  WatchedRebootTriggers::Options triggers;
  std::string windows;  // this host's own maintenance windows (--window)
  std::string sentinel;  // --reboot-sentinel, split into argv in agent_command()
  std::string fleetlock_listen;  // FleetLock's address; "": not served
  std::string fleetlock_group;   // "": the tier's name
  // Health gates, as given (checked in agent_command()).
  std::string health_prometheus;
  std::string health_query;
  std::string health_query_max;
  std::string health_alertmanager;
  std::string health_alerts;
  std::string health_ignore_alerts;
  std::chrono::milliseconds health_timeout{std::chrono::seconds(10)};
  std::chrono::milliseconds health_interval{std::chrono::seconds(1)};
  std::chrono::milliseconds soak{0};
  std::string agent_metrics_file;  // "": none
};

// The health gates from the options; FatalError naming the option that is wrong.
HealthGateOptions health_options(const AgentConfig& config) {
  HealthGateOptions options;
  const auto endpoint = [](const std::string& option, const std::string& text) -> std::optional<HttpEndpoint> {
    if (text.empty()) return std::nullopt;
    auto parsed = HttpEndpoint::parse(text);
    if (!parsed) throw FatalError("skopos agent: --" + option + ": " + parsed.error().message());
    return *parsed;
  };
  options.prometheus = endpoint("health-prometheus", config.health_prometheus);
  options.alertmanager = endpoint("health-alertmanager", config.health_alertmanager);
  options.query = config.health_query;
  if (!options.query.empty() && !options.prometheus) {
    throw FatalError("skopos agent: --health-query needs --health-prometheus URL");
  }
  if (!config.health_query_max.empty()) {
    double bound = 0;
    const auto& text = config.health_query_max;
    const auto parsed = std::from_chars(text.data(), text.data() + text.size(), bound);
    if (parsed.ec != std::errc{} || parsed.ptr != text.data() + text.size() || !std::isfinite(bound)) {
      throw FatalError("skopos agent: --health-query-max '" + text + "' is not a number");
    }
    if (options.query.empty()) throw FatalError("skopos agent: --health-query-max needs --health-query");
    options.query_max = bound;
  }
  for (const auto& [option, text, out] :
       {std::tuple{"health-alerts", &config.health_alerts, &options.alerts},
        std::tuple{"health-ignore-alerts", &config.health_ignore_alerts, &options.ignore}}) {
    auto matchers = parse_alert_selector(*text);
    if (!matchers) throw FatalError(std::string("skopos agent: --") + option + ": " + matchers.error());
    if (!matchers->empty() && !options.alertmanager) {
      throw FatalError(std::string("skopos agent: --") + option + " needs --health-alertmanager URL");
    }
    *out = std::move(matchers).value();
  }
  if (config.health_timeout.count() <= 0 || config.health_timeout > std::chrono::seconds(30)) {
    throw FatalError("skopos agent: --health-timeout must be more than 0 and at most 30s");
  }
  if (config.health_interval < std::chrono::milliseconds(100)) {
    throw FatalError("skopos agent: --health-interval must be at least 100ms");
  }
  if (options.prometheus && options.query.empty()) {
    throw FatalError("skopos agent: --health-prometheus without --health-query checks nothing");
  }
  options.timeout = config.health_timeout;
  options.soak = std::chrono::duration_cast<std::chrono::seconds>(config.soak);
  return options;
}

const OptionTable<AgentConfig>& own_options_table() {
  static const OptionTable<AgentConfig> table = [] {
    OptionTable<AgentConfig> t("skopos agent");
    t.text(
        "trigger-file", "PATH",
        "the file whose existence asks for a reboot; removed when\nthe reboot is recorded, before the reboot command "
        "runs",
        [](auto& c) -> auto& { return c.triggers.trigger_file; });
    t.text("reboot-required-file", "PATH",
           "the OS's sign that a reboot is needed (Debian, Ubuntu);\n'' ignores it",
           [](auto& c) -> auto& { return c.triggers.reboot_required_file; });
    t.text(
        "reboot-sentinel", "CMD",
        "a command run once per --recheck (no shell; words split on\nspaces): exit 0 asks for a reboot, 1 does not, "
        "anything\nelse is reported and asks for none",
        [](auto& c) -> auto& { return c.sentinel; });
    t.duration("reboot-sentinel-timeout", "how long the sentinel may take; later is no answer",
               [](auto& c) -> auto& { return c.triggers.sentinel_timeout; });
    t.text("fleetlock-listen", "ADDR",
           "serve FleetLock (the OS updater's reboot lock, e.g. Zincati's\nfleet_lock.base_url) on this loopback "
           "address:port",
           [](auto& c) -> auto& { return c.fleetlock_listen; });
    t.text("fleetlock-group", "G", "the FleetLock group served (default: the tier's name)",
           [](auto& c) -> auto& { return c.fleetlock_group; });
    t.duration("recheck", "look at the triggers (and try a failed drain again) at\nleast this often",
               [](auto& c) -> auto& { return c.agent.recheck; });
    t.duration("retry", "after a failed drain, try again this soon (doubling up to\n--recheck while it keeps failing)",
               [](auto& c) -> auto& { return c.agent.retry; });
    t.duration("reboot-wait", "after the reboot command, how long to wait for the\nshutdown before trying again",
               [](auto& c) -> auto& { return c.agent.reboot_wait; });
    t.text(
        "health-prometheus", "URL", "Prometheus for --health-query",
        [](auto& c) -> auto& { return c.health_prometheus; });
    t.text("health-query", "PROMQL",
           "a health gate: no host starts, and none gives its slot back\nafter its reboot, while this returns a series "
           "(or one\nabove --health-query-max)",
           [](auto& c) -> auto& { return c.health_query; });
    t.text("health-query-max", "N", "--health-query: values up to N are healthy",
           [](auto& c) -> auto& { return c.health_query_max; });
    t.text(
        "health-alertmanager", "URL",
        "a health gate: no host starts, and none gives its slot back,\nwhile Alertmanager has a firing alert (active: "
        "not\nsilenced, inhibited or pending) matching --health-alerts",
        [](auto& c) -> auto& { return c.health_alertmanager; });
    t.text(
        "health-alerts", "MATCHERS",
        "which alerts hold the roll (default: all), e.g.\nseverity=\"critical\",team=~\"db|web\"",
        [](auto& c) -> auto& { return c.health_alerts; });
    t.text("health-ignore-alerts", "MATCHERS", "alerts that never hold it (those a drain itself causes)",
           [](auto& c) -> auto& { return c.health_ignore_alerts; });
    t.duration("health-timeout", "each health gate's request; no answer in time is a closed\ngate",
               [](auto& c) -> auto& { return c.health_timeout; });
    t.duration("health-interval",
               "while a Prometheus or Alertmanager gate holds a requested\nreboot, check it again this often (each "
               "gated agent asks\nonce per interval: raise it for fleets of thousands)",
               [](auto& c) -> auto& { return c.health_interval; });
    t.text("agent-metrics-file", "FILE",
           "keep FILE up to date as Prometheus text: each gate's state,\nwhat the agent's turns did, sentinel failures "
           "(for\nnode_exporter's textfile collector, beside --metrics-file)",
           [](auto& c) -> auto& { return c.agent_metrics_file; });
    t.duration("soak", "after a host of the tier is back from its reboot, the next\nmay start only this long after (0: "
               "none)",
               [](auto& c) -> auto& { return c.soak; });
    t.text("window", "SPEC",
           "this host's own maintenance windows, narrowing those in\netcd ('skopos window', whose status does not see "
           "these):\n'DAYS HH:MM DURATION [ZONE]', several separated by ';'\n(e.g. 'mon-fri 01:00 4h Europe/Berlin')",
           [](auto& c) -> auto& { return c.windows; });
    return t;
  }();
  return table;
}

const OptionTable<AgentConfig>& table() {
  static const OptionTable<AgentConfig> table = with_drain_and_global_options(own_options_table());
  return table;
}

void print_usage() {
  std::printf(kAgentUsage, own_options_table().help().c_str(), drain_options_help().c_str(),
              global_options_help().c_str());
}

}  // namespace

std::string agent_options_markdown() { return own_options_table().markdown(); }

std::set<std::string> agent_setting_names() {
  const CliSpec spec = table().spec();
  std::set<std::string> names = spec.options;
  names.insert(spec.flags.begin(), spec.flags.end());
  return names;
}

std::string agent_example_config() {
  return table().config_example(
      "/etc/skopos/skopos.conf: the settings of `skopos agent --config` (skopos-agent.service).\n"
      "One 'name = value' per line: the long options of 'skopos agent --help' without\n"
      "the dashes; the command line wins over this file. Every line below is commented\n"
      "out at its default. Generated by 'skopos agent --example-config'.",
      {"config", "help"});
}

int agent_command(int argc, char** argv) {
  if (argc >= 3) {
    const std::string_view sub = argv[2];
    if (sub == "pause" || sub == "resume" || sub == "pauses") return pause_command(argc, argv);
  }
  if (argc >= 3 && (std::string_view(argv[2]) == "--help" || std::string_view(argv[2]) == "-h")) {
    print_usage();
    return kExitOk;
  }
  if (argc == 3 && std::string_view(argv[2]) == "--example-config") {
    std::fputs(agent_example_config().c_str(), stdout);
    return kExitOk;
  }
  AgentConfig config;
  const auto parsed = parse_command(table(), argc, argv, config, 2, "skopos agent", [] { print_usage(); });
  if (!parsed) return kExitOk;
  const CliArgs& args = parsed->args;
  const GlobalOptions& global = parsed->global;
  if (!args.positional().empty()) throw FatalError("skopos agent: takes no arguments");
  for (const auto& [name, value] : {std::pair<const char*, std::chrono::milliseconds>{"recheck", config.agent.recheck},
                                    {"retry", config.agent.retry},
                                    {"reboot-wait", config.agent.reboot_wait}}) {
    if (value.count() <= 0) throw FatalError(std::string("skopos agent: --") + name + " must be positive");
  }
  auto local_windows = parse_window_specs(config.windows);
  if (!local_windows) throw FatalError("skopos agent: --window: " + local_windows.error());
  HealthGateOptions health = health_options(config);
  DrainRuntime runtime(global, config.drain, "skopos agent", DrainKind::kReboot);
  AgentOptions options = config.agent;
  options.journal_path = runtime.journal_path();
  options.drain = runtime.options();
  // The maintenance windows, read from etcd at every check (on the agent's thread, with
  // its client): those of its tier and its host there, and its own --window. Unknown is
  // closed: a read that fails closes the gate and says why.
  // Then the health gates (the soak, a Prometheus query, Alertmanager's firing alerts),
  // which are also checked before a host that came back gives its slot back; that is
  // when the tier's soak starts.
  const std::string tier = tier_name(options.drain.tier);
  const std::string hostname = options.drain.hostname;
  WindowStore windows(runtime.etcd(), global.prefix);
  SoakRecord soak(runtime.etcd(), global.prefix);
  HealthGateOptions release_health = health;
  release_health.soak = std::chrono::seconds(0);  // the soak holds the next host, not this one
  auto start_health = HealthGates::create(health, &soak, tier);
  auto release_gates = HealthGates::create(release_health, &soak, tier);
  if (!start_health || !release_gates) {
    throw FatalError("skopos agent: health gates: " + (!start_health ? start_health.error() : release_gates.error()));
  }
  PauseStore pauses(runtime.etcd(), global.prefix);
  std::optional<AgentMetrics> agent_metrics;
  if (!config.agent_metrics_file.empty()) {
    agent_metrics.emplace(config.agent_metrics_file, hostname, tier);
    // A directory that refuses the file stops the agent now, not in the middle of a drain.
    if (auto written = agent_metrics->flush(0); !written) {
      throw FatalError("skopos agent: --agent-metrics-file: " + written.error());
    }
  }
  AgentLog log(config.drain.events, config.drain.metrics_file, agent_metrics ? &*agent_metrics : nullptr);
  log.notify_to(runtime.notifier(), runtime.notification_context());
  // Every gate is checked each time, so the metrics show each one's state; the first
  // closed one decides. A closed health gate (other than the soak, whose end is known)
  // is asked again every --health-interval: Prometheus and Alertmanager have no watch.
  options.drain.start_gate = [&, local = *local_windows]() -> StartGateVerdict {
    const auto now = std::chrono::system_clock::now();
    const WindowVerdict window = pauses_and_windows(pauses.list(), windows.list(), local, tier, hostname,
                                                    std::chrono::floor<std::chrono::seconds>(now));
    std::vector<GateState> gates = window.gates;
    HealthVerdict healthy;
    healthy.open = true;
    if (health.any()) {
      healthy = (*start_health)->check(now, [&log] { log.alive(); });
      gates.insert(gates.end(), healthy.gates.begin(), healthy.gates.end());
    }
    log.gates("start", gates);
    const auto closed = std::find_if(gates.begin(), gates.end(), [](const GateState& g) { return !g.open; });
    const std::string decided = closed == gates.end() ? "" : closed->gate;
    if (!window.open) return {false, window.reason, window.next_change, decided};
    if (!health.any()) return {true, window.reason, window.next_change, ""};
    if (!healthy.open) {
      return {false, healthy.reason, healthy.opens_at.value_or(now + config.health_interval), decided};
    }
    return {true, window.reason + "; " + healthy.reason, window.next_change, ""};
  };
  if (health.any()) {
    options.drain.release_gate = [&]() -> StartGateVerdict {
      const auto now = std::chrono::system_clock::now();
      const HealthVerdict healthy = (*release_gates)->check(now, [&log] { log.alive(); });
      log.gates("release", healthy.gates);
      if (!healthy.open || health.soak.count() == 0) return {healthy.open, healthy.reason, std::nullopt, ""};
      // The next host of the tier soaks from now: recorded before the slot goes back, so
      // the host that takes it sees it.
      const auto at = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
      if (auto recorded = soak.back(tier, hostname, at); !recorded)
        return {false, recorded.error(), std::nullopt, "soak"};
      return {true, healthy.reason + "; the tier soaks " + format_duration(health.soak) + " from now", std::nullopt,
              ""};
    };
  }
  WatchedRebootTriggers::Options watched = config.triggers;
  watched.sentinel = split_list(config.sentinel, ' ');
  watched.sentinel_every = config.agent.recheck;  // not at every turn of a gate's interval
  watched.boot_id = runtime.identity().boot_id;
  // Both run on the agent's thread between its watchdog pings (every 30 s): bounded.
  if (watched.sentinel_timeout.count() <= 0 || watched.sentinel_timeout > std::chrono::seconds(30)) {
    throw FatalError("skopos agent: --reboot-sentinel-timeout must be more than 0 and at most 30s");
  }
  watched.prefix = global.prefix;
  watched.tier = options.drain.tier;
  watched.machine_id = runtime.identity().machine_id;
  watched.hostname = options.drain.hostname;
  if (!config.drain.metrics_file.empty()) {
    // Idle until a drain starts (its labels only); a directory that refuses the file
    // stops the agent now, not in the middle of a drain.
    if (auto written = DrainMetrics(config.drain.metrics_file, options.drain.hostname).write(); !written) {
      throw FatalError("skopos agent: --metrics-file: " + written.error());
    }
  }

  // FleetLock: the service answers from the journal; its server (below, once the
  // triggers it wakes exist) runs on a thread of its own.
  FleetLockService fleetlock({config.fleetlock_group.empty() ? tier : config.fleetlock_group, options.journal_path,
                              runtime.identity().boot_id});
  if (!config.fleetlock_listen.empty()) watched.fleetlock = &fleetlock;

  const std::atomic<bool>& stop = install_stop_signals();
  const std::unique_ptr<HeartbeatThread> heartbeat = runtime.start_heartbeat();
  WatchedRebootTriggers triggers(watched, runtime.etcd(), runtime.new_etcd_client());
  fleetlock.set_wake([&triggers] { triggers.wake(); });
  // Declared after the triggers, so it is stopped and joined before they go, on every
  // path out of here.
  std::optional<FleetLockEndpoint> fleetlock_endpoint;
  if (!config.fleetlock_listen.empty()) fleetlock_endpoint.emplace(fleetlock, config.fleetlock_listen);
  log.count_sentinel_failures([&triggers] { return triggers.sentinel_failures(); });
  Agent agent(runtime.systems(), options, triggers, log, stop);
  (void)sd_notify("READY=1");
  const HostIdentity& self = runtime.identity();
  log.status("agent of '" + self.hostname + "' (tier " + tier_name(watched.tier) + ", boot " + self.boot_id +
             ") watching " + triggers.describe());
  agent.run();
  (void)sd_notify("STOPPING=1");
  fleetlock_endpoint.reset();
  // The key goes now, in our own reboot's shutdown too: this machine's locks show a
  // stale holder until the agent beats again after the boot.
  heartbeat->stop(true);
  return kExitOk;
}

}  // namespace skopos::driver::cli
