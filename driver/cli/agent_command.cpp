// skopos agent: the reboot daemon under systemd. This file reads the options and puts
// the pieces together; the decision loop is driver/agent.h (Agent), the requests it
// watches driver/reboot_triggers.h, the systemd watchdog driver/watchdog.h.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "drain_reporter.h"
#include "drain_runtime.h"
#include "driver/agent.h"
#include "driver/reboot_triggers.h"
#include "driver/reboot_windows.h"
#include "driver/watchdog.h"
#include "skopos/log.h"
#include "skopos/sd_notify.h"
#include "stop_signals.h"

namespace skopos::driver::cli {

namespace {

constexpr const char* kAgentUsage =
    "usage: skopos agent [options]\n"
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
  AgentLog(std::string events_file, std::string metrics_file)
      : events_file_(std::move(events_file)), metrics_file_(std::move(metrics_file)) {}

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

 private:
  std::string events_file_;
  std::string metrics_file_;
  Watchdog watchdog_;
  std::optional<DrainReporter> reporter_;
};

// Everything the agent's options set.
struct AgentConfig {
  GlobalConfig global;
  DrainConfig drain = DrainConfig::from_environment();
  AgentOptions agent;
  WatchedRebootTriggers::Options triggers;
  std::string windows;  // this host's own maintenance windows (--window)
};

const OptionTable<AgentConfig>& own_options_table() {
  static const OptionTable<AgentConfig> table = [] {
    OptionTable<AgentConfig> t("skopos agent");
    t.text("trigger-file", "PATH",
           "the file whose existence asks for a reboot; removed when\nthe reboot is recorded, before the reboot command "
           "runs",
           [](auto& c) -> auto& { return c.triggers.trigger_file; });
    t.duration("recheck", "look at the triggers (and try a failed drain again) at\nleast this often",
               [](auto& c) -> auto& { return c.agent.recheck; });
    t.duration("retry", "after a failed drain, try again this soon (doubling up to\n--recheck while it keeps failing)",
               [](auto& c) -> auto& { return c.agent.retry; });
    t.duration("reboot-wait", "after the reboot command, how long to wait for the\nshutdown before trying again",
               [](auto& c) -> auto& { return c.agent.reboot_wait; });
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

int agent_command(int argc, char** argv) {
  if (argc >= 3 && (std::string_view(argv[2]) == "--help" || std::string_view(argv[2]) == "-h")) {
    print_usage();
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
  DrainRuntime runtime(global, config.drain, "skopos agent", DrainKind::kReboot);
  AgentOptions options = config.agent;
  options.journal_path = runtime.journal_path();
  options.drain = runtime.options();
  // The maintenance windows, read from etcd at every check (on the agent's thread, with
  // its client): those of its tier and its host there, and its own --window. Unknown is
  // closed: a read that fails closes the gate and says why.
  WindowStore windows(runtime.etcd(), global.prefix);
  options.drain.start_gate = [&windows, &local = *local_windows, tier = std::string(tier_name(options.drain.tier)),
                              hostname = options.drain.hostname]() -> StartGateVerdict {
    auto set = windows.for_host(tier, hostname);
    if (!set) return {false, "maintenance windows cannot be read: " + set.error(), std::nullopt};
    set->local = local;
    const WindowVerdict verdict =
        evaluate_windows(*set, std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()));
    return {verdict.open, verdict.reason, verdict.next_change};
  };
  WatchedRebootTriggers::Options watched = config.triggers;
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

  const std::atomic<bool>& stop = install_stop_signals();
  const std::unique_ptr<HeartbeatThread> heartbeat = runtime.start_heartbeat();
  WatchedRebootTriggers triggers(watched, runtime.etcd(), runtime.new_etcd_client());
  AgentLog log(config.drain.events, config.drain.metrics_file);
  Agent agent(runtime.systems(), options, triggers, log, stop);
  (void)sd_notify("READY=1");
  const HostIdentity& self = runtime.identity();
  log.status("agent of '" + self.hostname + "' (tier " + tier_name(watched.tier) + ", boot " + self.boot_id +
             ") watching " + triggers.describe());
  agent.run();
  (void)sd_notify("STOPPING=1");
  // The key goes now, in our own reboot's shutdown too: this machine's locks show a
  // stale holder until the agent beats again after the boot.
  heartbeat->stop(true);
  return kExitOk;
}

}  // namespace skopos::driver::cli
