// skopos rolling-reboot: asks every agent of a tier to take its turn (a request in etcd,
// driver/rolling_reboot.h), shows the request and each host's turn, or withdraws it.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>
#include <string>

#include "commands.h"
#include "driver/drain.h"
#include "driver/pauses.h"
#include "driver/reboot_windows.h"
#include "driver/rolling_reboot.h"
#include "global_options.h"
#include "skopos/enum_names.h"
#include "skopos/json_writer.h"
#include "skopos/prometheus_text.h"
#include "skopos/text_table.h"

namespace skopos::driver::cli {

namespace {

constexpr const char* kRollingUsage =
    "usage: skopos rolling-reboot --tier T [--hosts H,...]   ask every host (or these) to reboot\n"
    "       skopos rolling-reboot --tier T --status          where every host of the roll stands, and an ETA\n"
    "       skopos rolling-reboot --tier T --cancel          withdraw the request\n"
    "       skopos rolling-reboot --tier T --forget HOST     a host retired for good leaves the tier\n"
    "\n"
    "Every 'skopos agent' of the tier watches the request; each reboots once for it, at\n"
    "most the tier's reboot-lock max at a time ('skopos lock set-max reboot T N'), in the\n"
    "order they line up for a slot. A host that is down takes its turn when its agent is\n"
    "back; one that joins the tier while the roll runs takes its turn in it too. A host\n"
    "that holds a slot without a heartbeat for longer than --stuck-after is stuck: it\n"
    "keeps its slot (nothing is reclaimed) and the roll goes on with one slot fewer.\n"
    "\n"
    "options:\n"
    "%s"
    "\n"
    "%s";

// Everything `skopos rolling-reboot`'s options set.
struct RollingConfig {
  GlobalConfig global;
  std::optional<Tier> tier;
  std::string hosts;
  bool status = false;
  bool cancel = false;
  bool metrics = false;
  std::string forget;
  std::string lock = "reboot";
  std::chrono::milliseconds stuck_after{std::chrono::hours(1)};
};

const OptionTable<RollingConfig>& own_options_table() {
  static const OptionTable<RollingConfig> table = [] {
    using C = RollingConfig;
    OptionTable<C> t("skopos rolling-reboot");
    t.choice("tier", "the tier to roll (required)", &C::tier, enum_choices(kTierNames));
    t.text("hosts", "H,...", "only these hosts (machine ids or host names); default: all", &C::hosts);
    t.flag("status", "show the request and each host's turn", &C::status);
    t.flag("cancel", "withdraw the request", &C::cancel);
    t.flag("metrics", "--status: Prometheus text instead of the table", &C::metrics);
    t.text("forget", "HOST", "remove a host retired for good from the tier (machine id or host name)", &C::forget);
    t.text("lock", "NAME", "the reboot lock the agents take (their --reboot-lock)", &C::lock);
    t.duration("stuck-after", "--status: a holder without a heartbeat this long is stuck", &C::stuck_after);
    return t;
  }();
  return table;
}

void print_usage() {
  std::printf(kRollingUsage, own_options_table().help().c_str(), global_options_help().c_str());
}

std::string age(std::int64_t seconds) { return format_seconds(std::chrono::seconds(std::max<std::int64_t>(0, seconds))); }

void print_progress_json(const std::string& tier, const RollingStatus& status, const RollingProgress& progress) {
  std::string out;
  JsonWriter json(out);
  json.begin_object().key("tier").value(tier).key("request");
  if (status.request) {
    json.begin_object().key("id").value(status.request->id).key("requested_at").value(status.request->requested_at);
    json.key("requested_by").value(status.request->requested_by).end_object();
  } else {
    json.null();
  }
  json.key("counts").begin_object();
  for (const auto& [turn, name] : kHostTurnNames) json.key(name).value(progress.count(turn));
  json.end_object();
  json.key("max").value(progress.max).key("usable_slots").value(progress.usable_slots);
  json.key("complete").value(progress.complete);
  json.key("elapsed_seconds").value(progress.elapsed_seconds).key("eta_seconds");
  if (progress.eta_seconds >= 0) {
    json.value(progress.eta_seconds);
  } else {
    json.null();
  }
  json.key("hosts").begin_array();
  for (const HostProgress& host : progress.hosts) {
    json.begin_object().key("machine_id").value(host.machine_id).key("hostname").value(host.hostname);
    json.key("state").value(enum_name(kHostTurnNames, host.turn));
    if (!host.phase.empty()) {
      const char* what = host.turn == HostTurn::kFailed ? "error" : host.turn == HostTurn::kGated ? "gate" : "phase";
      json.key(what).value(host.phase);
    }
    if (host.position > 0) json.key("position").value(host.position);
    if (host.since > 0) json.key("since").value(host.since);
    if (host.failed_tries > 0) {
      json.key("failed_tries").value(host.failed_tries).key("failing_since").value(host.failing_since);
    }
    json.end_object();
  }
  // As earlier versions wrote it.
  json.end_array().key("done").begin_array();
  for (const RollingDone& done : status.done) {
    if (!status.request || done.id != status.request->id) continue;
    json.begin_object().key("machine_id").value(done.machine_id).key("hostname").value(done.hostname);
    json.key("at").value(done.at).end_object();
  }
  json.end_array().end_object();
  std::printf("%s\n", out.c_str());
}

void print_progress_metrics(const std::string& tier, const RollingProgress& progress) {
  std::string labels = "{";
  prometheus::append_label(labels, "tier", tier, true);
  std::string out =
      "# HELP skopos_rolling_reboot_hosts Hosts of the tier's rolling reboot, by where they stand.\n"
      "# TYPE skopos_rolling_reboot_hosts gauge\n";
  for (const auto& [turn, name] : kHostTurnNames) {
    std::string with_state = labels;
    prometheus::append_label(with_state, "state", name, false);
    out += "skopos_rolling_reboot_hosts" + with_state + "} " + std::to_string(progress.count(turn)) + "\n";
  }
  out += "# HELP skopos_rolling_reboot_usable_slots Reboot slots the roll can use (max less those stuck hosts keep).\n"
         "# TYPE skopos_rolling_reboot_usable_slots gauge\n"
         "skopos_rolling_reboot_usable_slots" + labels + "} " + std::to_string(progress.usable_slots) + "\n";
  out += "# HELP skopos_rolling_reboot_failing_hosts Hosts not done whose tries of this request failed, whatever "
         "they do now.\n"
         "# TYPE skopos_rolling_reboot_failing_hosts gauge\n"
         "skopos_rolling_reboot_failing_hosts" + labels + "} " + std::to_string(progress.failing) + "\n";
  out += "# HELP skopos_rolling_reboot_eta_seconds Time left at the pace so far (-1: unknown).\n"
         "# TYPE skopos_rolling_reboot_eta_seconds gauge\n"
         "skopos_rolling_reboot_eta_seconds" + labels + "} " + std::to_string(progress.eta_seconds) + "\n";
  std::fputs(out.c_str(), stdout);
}

void print_progress_text(const std::string& tier, const RollingStatus& status, const RollingProgress& progress) {
  if (!status.request) {
    std::printf("no rolling reboot requested for tier %s\n", tier.c_str());
    return;
  }
  const RollingRequest& request = *status.request;
  std::string counts;
  for (const auto& [turn, name] : kHostTurnNames) {
    if (progress.count(turn) == 0 && turn != HostTurn::kDone) continue;
    counts += (counts.empty() ? "" : ", ") + std::to_string(progress.count(turn)) + " " + name;
  }
  std::printf("rolling reboot '%s' of tier %s, requested %s by %s, %s ago\n", request.id.c_str(), tier.c_str(),
              utc_time(request.requested_at).c_str(), request.requested_by.c_str(),
              age(progress.elapsed_seconds).c_str());
  std::printf("hosts: %zu (%s)\n", progress.hosts.size(), counts.c_str());
  const std::int64_t stuck = progress.count(HostTurn::kStuck);
  std::printf("slots: max %lld%s\n", static_cast<long long>(progress.max),
              stuck == 0 ? ""
                         : (", " + std::to_string(stuck) + " kept by stuck hosts: the roll goes on with " +
                            std::to_string(progress.usable_slots)).c_str());
  if (progress.complete) {
    std::printf("complete\n");
  } else if (progress.eta_seconds > 0) {
    std::printf("ETA: %s (at the pace so far: %lld done in %s)\n", age(progress.eta_seconds).c_str(),
                static_cast<long long>(progress.count(HostTurn::kDone)), age(progress.elapsed_seconds).c_str());
  } else {
    std::printf("ETA: unknown until a host is done%s\n", progress.usable_slots == 0 ? " and a slot is usable" : "");
  }
  TextTable table({"HOST", "MACHINE", "STATE", "WHERE", "SINCE"}, {false, false, false, false, true});
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  for (const HostProgress& host : progress.hosts) {
    std::string where = host.phase;
    if (host.turn == HostTurn::kWaiting) where = "position " + std::to_string(host.position);
    if (host.turn == HostTurn::kDown) where = "no heartbeat: takes its turn when its agent is back";
    if (host.turn == HostTurn::kGated) where = host.phase;
    if (host.turn == HostTurn::kStuck) where = host.phase + " (no heartbeat; keeps its slot)";
    if (host.turn == HostTurn::kFailed) {
      where = std::to_string(host.failed_tries) + (host.failed_tries == 1 ? " try" : " tries") +
              " failed, the last: " + host.phase + " (tries again)";
    }
    table.add_row({host.hostname.empty() ? "?" : host.hostname, host.machine_id,
                   enum_name(kHostTurnNames, host.turn), where, host.since > 0 ? age(now - host.since) : ""});
  }
  std::fputs(table.render().c_str(), stdout);
}

int status_command(RollingReboot& rolling, LockService& locks, EtcdClient& etcd, const GlobalOptions& global,
                   const std::string& tier, const RollingConfig& config) {
  const auto stuck_after = std::chrono::duration_cast<std::chrono::seconds>(config.stuck_after).count();
  auto view = read_rolling_view(rolling, locks, tier, config.lock, stuck_after);
  if (!view) return report(view.error(), global.json);
  // Hosts that wait for their maintenance window show as gated, with when it opens; as
  // the agents do, windows that cannot be read count as closed.
  WindowStore windows(etcd, global.prefix);
  auto stored = windows.list();
  auto pauses = PauseStore(etcd, global.prefix).list();
  std::map<std::string, std::string> closed;
  const SysSeconds now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  for (const HostProgress& host : view->progress.hosts) {
    if (host.turn != HostTurn::kPending) continue;
    const WindowVerdict verdict = pauses_and_windows(pauses, stored, {}, tier, host.hostname, now);
    if (!verdict.open) closed[host.hostname] = verdict.reason;
  }
  apply_gates(view->progress, closed);
  const RollingStatus& status = view->status;
  const RollingProgress& progress = view->progress;
  if (config.metrics) {
    print_progress_metrics(tier, progress);
  } else if (global.json) {
    print_progress_json(tier, status, progress);
  } else {
    print_progress_text(tier, status, progress);
  }
  return kExitOk;
}

}  // namespace

int rolling_reboot_command(int argc, char** argv) {
  if (argc >= 3 && (std::string_view(argv[2]) == "--help" || std::string_view(argv[2]) == "-h")) {
    print_usage();
    return kExitOk;
  }
  RollingConfig config;
  const auto parsed = parse_command(with_global_options(own_options_table()), argc, argv, config, 2,
                                    "skopos rolling-reboot", [] { print_usage(); });
  if (!parsed) return kExitOk;
  const CliArgs& args = parsed->args;
  const GlobalOptions& global = parsed->global;
  if (!args.positional().empty()) throw FatalError("skopos rolling-reboot: takes no arguments");
  if (!config.tier) throw FatalError("skopos rolling-reboot: which --tier?", "control, proxy or worker");
  const std::string tier = tier_name(*config.tier);
  if (config.status && config.cancel) throw FatalError("skopos rolling-reboot: --status or --cancel, not both");
  LockContext context = connect_locks(global);
  RollingReboot rolling(*context.etcd, global.prefix);
  if (config.cancel) {
    auto cancelled = rolling.cancel(tier);
    if (!cancelled) return report(cancelled.error(), global.json);
    std::printf(global.json ? "{\"cancelled\":%s}\n" : "%s\n",
                global.json ? (*cancelled ? "true" : "false") : (*cancelled ? "request cancelled" : "no request"));
    return kExitOk;
  }
  if (!config.forget.empty()) {
    auto forgotten = rolling.forget(tier, config.forget);
    if (!forgotten) return report(forgotten.error(), global.json);
    std::printf(global.json ? "{\"forgotten\":%s}\n" : "%s\n",
                global.json ? (*forgotten ? "true" : "false")
                            : (*forgotten ? "host removed from the tier" : "no such host in the tier"));
    return kExitOk;
  }
  if (config.status) return status_command(rolling, *context.locks, *context.etcd, global, tier, config);
  auto request = rolling.request(tier, context.locks->self().hostname, split_list(config.hosts));
  if (!request) return report(request.error(), global.json);
  if (global.json) {
    std::printf("{\"id\":\"%s\",\"tier\":\"%s\"}\n", request->id.c_str(), tier.c_str());
  } else {
    std::printf("rolling reboot '%s' requested for tier %s\n", request->id.c_str(), tier.c_str());
  }
  return kExitOk;
}

}  // namespace skopos::driver::cli
