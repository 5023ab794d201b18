// skopos drain | undrain | booster: taking this host out of service and bringing it back.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "commands.h"
#include "drain_reporter.h"
#include "drain_runtime.h"
#include "driver/local_drain_lock.h"
#include "stop_signals.h"
#include "skopos/json_writer.h"
#include "skopos/log.h"

namespace skopos::driver::cli {

namespace {

constexpr const char* kDrainUsage =
    "usage: skopos drain [--reboot] [--dry-run] [options]\n"
    "       skopos drain --abort | skopos undrain [--no-wait-apps]\n"
    "       skopos drain --status\n"
    "       skopos booster [--mark-gone] [--notify URL] [options]\n"
    "\n"
    "drain     takes this host out of service without failing a request: host lock (and,\n"
    "          with --reboot, a slot of the tier's reboot lock), the disruption budget,\n"
    "          Mesos maintenance (or DEACTIVATE_AGENT), the control tier's Marathon leader\n"
    "          moved away, the fence (new connections reset, established ones flow), a wait\n"
    "          until every container has 0 inbound connections (or its deadline), docker\n"
    "          stop then kill, the tasks handed back to Marathon, the machine down in Mesos.\n"
    "          The host stays out until 'skopos undrain'. With --reboot it then reboots,\n"
    "          holding the lock; 'skopos agent' (or 'skopos drain --reboot' run again)\n"
    "          recovers after boot. Run again after a crash or Ctrl-C: it resumes where the\n"
    "          journal says it was.\n"
    "undrain   (= drain --abort) brings the host back from wherever it is, in order:\n"
    "          unfence, Mesos up/reactivate, the agent registered, the apps that were here\n"
    "          at full strength (unless --no-wait-apps), locks released. A running drain is\n"
    "          stopped first.\n"
    "booster   the end-of-life drain: no reboot, its own cluster lock (booster/<tier>),\n"
    "          released when drained; --mark-gone tells Mesos the agent is gone for good.\n"
    "\n"
    "flags:\n"
    "%s"
    "\n"
    "%s\n%s"
    "\n"
    "Exit status: 0 drained (or back, or planned); 1 a bounded wait ran out (lock, recovery);\n"
    "2 usage; 3 a system failed (the journal says where; run again to resume); 4 refused\n"
    "(budget, another drain or token, a lost lock, a bad label); 5 interrupted by a signal at\n"
    "a safe point (run again to resume, or undrain).\n";

// Everything a drain command's options set.
struct DrainCommandConfig {
  GlobalConfig global;
  DrainConfig drain = DrainConfig::from_environment();
  bool reboot = false;
  bool abort = false;
  bool status = false;
  bool no_wait_apps = false;
  bool no_live = false;
};

// The command's own flags; the table() adds the drain and global options.
const OptionTable<DrainCommandConfig>& own_flags_table() {
  static const OptionTable<DrainCommandConfig> table = [] {
    using C = DrainCommandConfig;
    OptionTable<C> t("skopos drain");
    t.flag("reboot", "drain: then reboot, holding the tier's reboot lock", &C::reboot);
    t.flag("dry-run",
           "print the whole plan (locks, Mesos calls, fence rules,\ncontainers, current counts) and change nothing",
           [](auto& c) -> auto& { return c.drain.drain.dry_run; });
    t.flag("abort", "= undrain", &C::abort);
    t.flag("no-wait-apps", "undrain: do not wait for the apps to be back at full\nstrength", &C::no_wait_apps);
    t.flag("mark-gone", "booster: tell Mesos the agent is gone for good",
           [](auto& c) -> auto& { return c.drain.drain.mark_gone; });
    t.flag("status", "what the journal says: the drain in progress and its phase", &C::status);
    t.flag("no-live", "progress as lines even on a terminal (--json: one JSON\nobject per event and tick)",
           &C::no_live);
    return t;
  }();
  return table;
}

const OptionTable<DrainCommandConfig>& table() {
  static const OptionTable<DrainCommandConfig> table = with_drain_and_global_options(own_flags_table());
  return table;
}

void print_usage(std::FILE* out) {
  std::fprintf(out, kDrainUsage, own_flags_table().help().c_str(), drain_options_help().c_str(),
               global_options_help().c_str());
}

int print_status(const std::string& journal_path, bool json_output) {
  // Read only: a running driver may be writing it.
  auto journal = Journal::inspect(journal_path);
  if (!journal) {
    std::fprintf(stderr, "skopos: %s\n", journal.error().message().c_str());
    return kExitFailed;
  }
  std::string problem;
  const auto progress = Drain::in_progress(*journal, &problem);
  if (!problem.empty()) {
    std::fprintf(stderr, "skopos: %s\n", problem.c_str());
    return kExitFailed;
  }
  if (json_output) {
    std::string out;
    JsonWriter json(out);
    json.begin_object().key("in_progress").value(progress.has_value());
    if (progress) {
      json.key("drain_id").value(journal->last()->drain_id).key("phase").value(drain_phase_name(progress->first));
      json.key("since").value(journal->last()->at).key("boot_id").value(journal->last()->boot_id);
      json.key("fencing_token").value(journal->last()->fencing_token).key("facts").begin_object();
      for (const auto& [key, value] : progress->second.to_map()) json.key(key).value(value);
      json.end_object();
    }
    json.end_object();
    std::printf("%s\n", out.c_str());
    return kExitOk;
  }
  if (!progress) {
    std::printf("no drain in progress (journal %s)\n", journal_path.c_str());
    return kExitOk;
  }
  const DrainFacts& facts = progress->second;
  std::printf("drain '%s': %s, tier %s, phase %s since %s\n", journal->last()->drain_id.c_str(),
              drain_kind_token(facts.kind), facts.tier.c_str(), drain_phase_name(progress->first),
              utc_time(journal->last()->at).c_str());
  std::printf("  %-20s %s\n  %-20s %lld\n", "boot_id", journal->last()->boot_id.c_str(), "fencing_token",
              static_cast<long long>(journal->last()->fencing_token));
  for (const auto& [key, value] : facts.to_map()) {
    if (value.empty() || key == "containers") continue;
    std::printf("  %-20s %s\n", key.c_str(), value.c_str());
  }
  for (const std::string& container : facts.containers) {
    // "id:name": the name, and the id as docker ps shows it.
    const auto colon = container.find(':');
    std::printf("  %-20s %s (%s)\n", "container", container.substr(colon + 1).c_str(), container.substr(0, 12).c_str());
  }
  return kExitOk;
}

}  // namespace

std::string drain_flags_markdown() { return own_flags_table().markdown(); }

int drain_command(int argc, char** argv) {
  const std::string name = argv[1];  // drain, undrain or booster
  const std::string command = "skopos " + name;
  if (argc >= 3 && (std::string_view(argv[2]) == "--help" || std::string_view(argv[2]) == "-h")) {
    print_usage(stdout);
    return kExitOk;
  }
  DrainCommandConfig config;
  const auto parsed = parse_command(table(), argc, argv, config, 2, command, [] { print_usage(stdout); });
  if (!parsed) return kExitOk;
  const CliArgs& args = parsed->args;
  const GlobalOptions& global = parsed->global;
  if (!args.positional().empty()) throw FatalError(command + ": takes no arguments ('" + args.positional()[0] + "')");
  const bool dry_run = config.drain.drain.dry_run;
  const bool abort = name == "undrain" || config.abort;
  if (abort && (dry_run || config.reboot)) {
    throw FatalError(command + ": --abort/undrain cannot be combined with --dry-run or --reboot");
  }
  if (name != "booster" && config.drain.drain.mark_gone) {
    throw FatalError(command + ": --mark-gone is for 'skopos booster'");
  }
  if (name == "booster" && config.reboot) throw FatalError(command + ": a booster drain does not reboot");
  const DrainKind kind = name == "booster" ? DrainKind::kBooster : config.reboot ? DrainKind::kReboot : DrainKind::kDrain;

  // --status reads the journal and nothing else: no client is built for it.
  if (config.status) return print_status(config.drain.journal, global.json);
  DrainRuntime runtime(global, config.drain, command, kind);

  const std::atomic<bool>& stop = install_stop_signals();
  // A dry run changes nothing, so it neither waits for nor stops a running drain.
  std::optional<LocalDrainLock> local;
  if (!dry_run) {
    auto taken = LocalDrainLock::take(runtime.journal_path(), abort, std::chrono::seconds(60));
    if (!taken) {
      std::fprintf(stderr, "%s: %s\n", command.c_str(), taken.error().message().c_str());
      return kExitRefused;
    }
    local.emplace(std::move(*taken));
  }
  auto journal = Journal::open(runtime.journal_path());
  if (!journal) {
    std::fprintf(stderr, "%s: %s\n", command.c_str(), journal.error().message().c_str());
    return kExitFailed;
  }
  if (!journal->damage().empty()) log_warning("journal repaired: " + journal->damage());

  DrainReporter reporter(global.json, ::isatty(STDOUT_FILENO) == 1 && !config.no_live,
                         runtime.options().progress_interval, config.drain.events, config.drain.metrics_file,
                         runtime.options().hostname);
  if (!dry_run) reporter.notify_to(runtime.notifier(), runtime.notification_context());
  std::unique_ptr<HeartbeatThread> heartbeat;
  if (!dry_run) heartbeat = runtime.start_heartbeat();
  Drain drain(runtime.systems(), *journal, runtime.options(), [&](const DrainEvent& event) { reporter(event); }, stop);
  auto result = abort ? drain.recover(!config.no_wait_apps) : drain.run();
  reporter.result(command, result);
  // Rebooting: the lease ends with this boot; otherwise the key goes now.
  if (heartbeat) heartbeat->stop(!(result && result->rebooting));
  return result ? kExitOk : drain_exit_code(result.error());
}

}  // namespace skopos::driver::cli
