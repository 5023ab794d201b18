// skopos lock: the cluster's semaphores and this host's lock, by hand.
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <set>
#include <string>

#include "commands.h"
#include "driver/drain_metrics.h"
#include "driver/drain_systems.h"
#include "driver/heartbeat.h"
#include "driver/mesos_master.h"
#include "driver/pauses.h"
#include "global_options.h"
#include "stop_signals.h"
#include "skopos/json_writer.h"
#include "skopos/log.h"
#include "skopos/prometheus_text.h"
#include "skopos/text_table.h"

namespace skopos::driver::cli {

namespace {

constexpr const char* kLockUsage =
    "usage: skopos lock <command> [arguments] [options]\n"
    "\n"
    "commands:\n"
    "  status [--metrics | --metrics-file FILE] [--mesos-master URLS]\n"
    "                                  every lock and group: max, holders with phase, age,\n"
    "                                  fencing token and heartbeat (fresh or stale), the\n"
    "                                  line, and the start gates in etcd (pauses,\n"
    "                                  maintenance windows) with why each is closed;\n"
    "                                  with Mesos masters, holders whose machine Mesos\n"
    "                                  no longer knows are flagged (never unlocked);\n"
    "                                  --metrics prints Prometheus text instead\n"
    "  acquire LOCK GROUP [--token T] [--timeout D]\n"
    "                                  take a slot for this machine, waiting up to D\n"
    "                                  (default 0: do not wait); already holding it with\n"
    "                                  the same token is a no-op that prints its fencing\n"
    "                                  token (default token: manual)\n"
    "  release LOCK GROUP [--fencing-token N]\n"
    "                                  give this machine's slot back (no slot: ok)\n"
    "  guard LOCK GROUP --fencing-token N --phase P\n"
    "                                  succeed only while this machine holds the slot with\n"
    "                                  fencing token N, recording phase P\n"
    "  unlock LOCK GROUP MACHINE-ID [--force --confirm MACHINE-ID]\n"
    "                                  break another machine's slot; a holder whose\n"
    "                                  heartbeat is fresh needs --force, and --force needs\n"
    "                                  the machine id repeated in --confirm\n"
    "  set-max LOCK GROUP N            holder limit (0 closes the group); never evicts\n"
    "  host-status                     this machine's host lock\n"
    "  host-lock TOKEN                 lock this host for REBOOT, DRAIN or BOOSTER\n"
    "  host-unlock TOKEN               unlock it; only the token that holds it may\n"
    "  heartbeat [--ttl D] [--for D]   keep this machine's heartbeat alive until SIGTERM\n"
    "                                  or SIGINT (or for D), then withdraw it\n"
    "\n"
    "options (each where the command above shows it):\n"
    "%s"
    "\n"
    "%s"
    "\n"
    "Exit status: 0 done (also: nothing to release or unlock); 1 timed out waiting for a\n"
    "slot; 2 usage or configuration error; 3 etcd unreachable, an outcome that stayed\n"
    "unknown, or unreadable data (nothing was written on it); 4 refused: held by another\n"
    "token, a live holder without --force, a slot that is no longer ours.\n";

// Everything `skopos lock`'s options set.
struct LockConfig {
  GlobalConfig global;
  std::string token = "manual";
  std::chrono::milliseconds timeout{0};
  std::string fencing_token = "0";  // a number, checked with the other arguments
  std::string phase;
  bool force = false;
  std::string confirm;
  std::chrono::milliseconds ttl{std::chrono::seconds(15)};
  std::chrono::milliseconds run_for{0};
  bool metrics = false;
  std::string metrics_file;
  MesosConfig mesos;  // status: with masters, each holder is looked up in Mesos
};

// Every option of every lock command, each declared once; a command takes the ones its
// shape names.
const OptionTable<LockConfig>& lock_options_table() {
  static const OptionTable<LockConfig> table = [] {
    using C = LockConfig;
    OptionTable<C> t("skopos lock");
    t.flag("metrics", "status: Prometheus text instead of the table", &C::metrics);
    t.text("metrics-file", "FILE",
           "status: write the Prometheus text to FILE instead, replaced\nwhole (node_exporter's textfile collector; the\n"
           "skopos-lock-metrics timer); etcd unreadable: the file\nholds skopos_lock_status_up 0 and nothing stale",
           &C::metrics_file);
    t.text("token", "T", "acquire: what this holder is for", &C::token);
    t.duration("timeout", "acquire: how long to wait for a slot (0: do not wait)", &C::timeout);
    t.text("fencing-token", "N", "release, guard: the slot's fencing token", &C::fencing_token);
    t.text("phase", "P", "guard: the phase to record", &C::phase);
    t.flag("force", "unlock: break a holder whose heartbeat is fresh", &C::force);
    t.text("confirm", "MACHINE-ID", "unlock --force: the holder's machine id again", &C::confirm);
    t.duration("ttl", "heartbeat: the lease's time to live", &C::ttl);
    t.duration("for", "heartbeat: stop after D (0: run until SIGTERM or SIGINT)", &C::run_for);
    t.include(mesos_options_table(), &C::mesos);
    return t;
  }();
  return table;
}

void print_usage(std::FILE* out) {
  std::fprintf(out, kLockUsage, lock_options_table().help().c_str(), global_options_help().c_str());
}

std::string age_text(std::int64_t seconds) {
  if (seconds < 0) seconds = 0;
  if (seconds < 120) return std::to_string(seconds) + "s";
  if (seconds < 7200) return std::to_string(seconds / 60) + "m";
  if (seconds < 172800) return std::to_string(seconds / 3600) + "h" + std::to_string(seconds % 3600 / 60) + "m";
  return std::to_string(seconds / 86400) + "d";
}

std::int64_t now_seconds() { return static_cast<std::int64_t>(std::time(nullptr)); }

// "fresh", "stale", or "fresh (rebooted)" when the live heartbeat has another boot id.
std::string heartbeat_text(const Holder& holder) {
  if (!holder.heartbeat) return "stale";
  if (holder.valid && !holder.heartbeat_boot_id.empty() && holder.heartbeat_boot_id != holder.record.boot_id) {
    return "fresh (rebooted)";
  }
  return "fresh";
}

// Whether Mesos still knows each holder's machine (`skopos lock status --mesos-master`):
// a holder whose machine Mesos no longer knows is flagged -- never unlocked for it.
// Known: an agent of that name (as Mesos compares names: same_host), or a machine in
// its maintenance schedule -- a host a drain took down has no agent then, and is not
// gone.
struct MesosView {
  bool asked = false;
  std::string problem;  // asked, no answer
  std::vector<std::string> hostnames;
  // "known", "unknown", "?" (no answer, or a record without a host name) or "" (not asked).
  std::string of(const Holder& holder) const {
    if (!asked) return "";
    if (!problem.empty() || !holder.valid || holder.record.hostname.empty()) return "?";
    const bool known = std::any_of(hostnames.begin(), hostnames.end(),
                                   [&](const std::string& name) { return same_host(name, holder.record.hostname); });
    return known ? "known" : "unknown";
  }
};

// Asks Mesos (only when --mesos-master or the config file names masters): agents, and
// the machines of the maintenance schedule. A problem -- bad options included -- is
// said, never the end of the lock view.
MesosView ask_mesos(const MesosConfig& config) {
  MesosView view;
  if (config.masters.empty()) return view;
  view.asked = true;
  try {
    auto master = MesosMaster::create(mesos_master_options(config, "skopos lock status", ""));
    if (!master) {
      view.problem = master.error().message;
      return view;
    }
    auto agents = (*master)->agents();
    if (!agents) {
      view.problem = agents.error().message;
      return view;
    }
    for (const MesosAgentInfo& agent : *agents) view.hostnames.push_back(agent.hostname);
    auto maintenance = (*master)->maintenance_status();
    if (!maintenance) {
      view.problem = "maintenance status: " + maintenance.error().message;
      return view;
    }
    for (const auto* list : {&maintenance->draining, &maintenance->down}) {
      for (const MachineId& machine : *list) view.hostnames.push_back(machine.hostname);
    }
  } catch (const FatalError& error) {
    view.problem = error.message();
  }
  return view;
}

// `mesos`: status's view of Mesos, when it asked.
void write_holder(JsonWriter& json, const Holder& holder, const MesosView* mesos = nullptr) {
  json.begin_object().key("machine_id").value(holder.machine_id).key("fencing_token").value(holder.fencing_token);
  json.key("valid").value(holder.valid);
  if (!holder.valid) json.key("problem").value(holder.problem);
  if (holder.valid) {
    const HolderRecord& r = holder.record;
    json.key("token").value(r.token).key("phase").value(r.phase).key("hostname").value(r.hostname);
    json.key("boot_id").value(r.boot_id).key("acquired_at").value(utc_time(r.acquired_at));
    json.key("age_seconds").value(std::max<std::int64_t>(0, now_seconds() - r.acquired_at));
  }
  json.key("heartbeat").value(holder.heartbeat ? "fresh" : "stale");
  json.key("heartbeat_boot_id").value(holder.heartbeat_boot_id);
  if (mesos != nullptr && mesos->asked) json.key("mesos").value(mesos->of(holder));
  json.end_object();
}

void write_group(JsonWriter& json, const GroupState& group, const MesosView* mesos = nullptr) {
  std::int64_t stale = 0;
  for (const Holder& holder : group.holders) stale += holder.heartbeat ? 0 : 1;
  json.begin_object().key("lock").value(group.lock).key("group").value(group.group);
  json.key("max").value(group.max).key("max_set").value(group.max_set);
  if (!group.max_problem.empty()) json.key("max_problem").value(group.max_problem);
  json.key("held").value(static_cast<std::int64_t>(group.holders.size())).key("stale").value(stale);
  json.key("holders").begin_array();
  for (const Holder& holder : group.holders) write_holder(json, holder, mesos);
  json.end_array();
  json.key("waiting").value(static_cast<std::int64_t>(group.queue.size()));
  json.key("queue").begin_array();
  std::int64_t position = 0;
  for (const Waiter& waiter : group.queue) {
    json.begin_object().key("position").value(++position).key("machine_id").value(waiter.machine_id);
    json.key("place_revision").value(waiter.place).key("valid").value(waiter.valid);
    if (!waiter.valid) json.key("problem").value(waiter.problem);
    if (waiter.valid) {
      json.key("token").value(waiter.token).key("hostname").value(waiter.hostname).key("boot_id").value(waiter.boot_id);
      json.key("since").value(utc_time(waiter.since));
      json.key("waiting_seconds").value(std::max<std::int64_t>(0, now_seconds() - waiter.since));
    }
    json.end_object();
  }
  json.end_array().end_object();
}

// The line of every group, first served first.
void print_queues(const LockStatus& status) {
  TextTable table({"LOCK", "GROUP", "POSITION", "WAITER", "HOST", "TOKEN", "WAITING"},
                  {false, false, true, false, false, false, true});
  bool any = false;
  for (const GroupState& group : status.groups) {
    std::int64_t position = 0;
    for (const Waiter& waiter : group.queue) {
      any = true;
      table.add_row({group.lock, group.group, std::to_string(++position), waiter.machine_id,
                     waiter.valid ? waiter.hostname : "?", waiter.valid ? waiter.token : "unreadable entry",
                     waiter.valid ? age_text(now_seconds() - waiter.since) : "?"});
    }
  }
  if (!any) return;
  std::printf("\nwaiting (first come, first served; a place goes when its waiter's liveness does):\n");
  std::fputs(table.render().c_str(), stdout);
}

void add_holder_rows(TextTable& table, const GroupState& group) {
  const std::string max = group.max_problem.empty() ? std::to_string(group.max) + (group.max_set ? "" : " (default)")
                                                    : "unreadable";
  const std::string held = std::to_string(group.holders.size());
  if (group.holders.empty()) table.add_row({group.lock, group.group, max, held, "-", "", "", "", "", "", ""});
  for (const Holder& holder : group.holders) {
    const HolderRecord& r = holder.record;
    table.add_row({group.lock, group.group, max, held, holder.machine_id, holder.valid ? r.hostname : "?",
                   holder.valid ? r.token : "?", holder.valid ? r.phase : "unreadable record",
                   holder.valid ? age_text(now_seconds() - r.acquired_at) : "?", heartbeat_text(holder),
                   std::to_string(holder.fencing_token)});
  }
}

// The start gates etcd holds (pauses, maintenance windows): why a host with a reboot
// requested may be in no line. An agent's own --window and its health gates are in its
// STATUS, log and metrics.
std::vector<OwnerGate> read_gates(EtcdClient& etcd, const std::string& prefix) {
  return stored_gates(PauseStore(etcd, prefix).list(), WindowStore(etcd, prefix).list(),
                      std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()));
}

std::string_view scope_name(WindowStore::Scope scope) { return scope == WindowStore::Scope::kTier ? "tier" : "host"; }

void print_gates(const std::vector<OwnerGate>& gates) {
  if (gates.empty()) return;
  TextTable table({"SCOPE", "OWNER", "GATE", "STATE", "WHY"}, {false, false, false, false, false});
  for (const OwnerGate& g : gates) {
    table.add_row({std::string(scope_name(g.scope)), g.owner, g.state.gate,
                   g.state.open ? "open" : g.state.unknown ? "unknown" : "closed", g.state.reason});
  }
  std::printf("\nstart gates in etcd (a closed one keeps its hosts out of the line; agents' own windows and health "
              "gates: their status):\n");
  std::fputs(table.render().c_str(), stdout);
}

// The holders Mesos does not know, a line each.
void print_mesos_flags(const LockStatus& status, const MesosView& mesos) {
  if (!mesos.asked) return;
  if (!mesos.problem.empty()) {
    std::printf("\nMesos could not be asked whether it knows the holders: %s\n", mesos.problem.c_str());
    return;
  }
  for (const GroupState& group : status.groups) {
    for (const Holder& holder : group.holders) {
      if (mesos.of(holder) != "unknown") continue;
      std::printf("\nflagged: %s holds %s/%s, and Mesos knows no agent '%s' (gone for good? it is never unlocked "
                  "for that: 'skopos lock unlock %s %s %s' once you know)\n",
                  holder.machine_id.c_str(), group.lock.c_str(), group.group.c_str(), holder.record.hostname.c_str(),
                  group.lock.c_str(), group.group.c_str(), holder.machine_id.c_str());
    }
  }
}

// `skopos_lock_status_up`: whether the rest of the text is the cluster's state now.
void append_status_up(std::string& out, bool up) {
  prometheus::append_header(out, "skopos_lock_status_up", "gauge",
                            "1 when the lock status was read from etcd, 0 when it could not be (no other lock "
                            "series then: nothing stale).");
  out += std::string("skopos_lock_status_up ") + (up ? "1" : "0") + "\n";
}

int status_command(LockService& locks, EtcdClient& etcd, const GlobalOptions& options, bool metrics,
                   const std::string& metrics_file, const MesosConfig& mesos_config) {
  auto status = locks.status();
  if (!status) {
    if (!metrics_file.empty()) {
      // The file a collector serves must not keep the last good numbers as if current.
      std::string out;
      append_status_up(out, false);
      if (auto written = write_metrics_file(metrics_file, out); !written) log_error("--metrics-file: " + written.error());
    }
    return report(status.error(), options.json);
  }
  const MesosView mesos = ask_mesos(mesos_config);
  const std::vector<OwnerGate> gates = read_gates(etcd, locks.prefix());
  if (metrics || !metrics_file.empty()) {
    // Each family whole (its HELP and TYPE, then its samples for every group), as the
    // exposition format wants it.
    std::string out;
    append_status_up(out, true);
    const auto family = [&](const char* name, const char* help, const auto& value) {
      prometheus::append_header(out, name, "gauge", help);
      for (const GroupState& group : status->groups) {
        std::string labels = "{";
        prometheus::append_label(labels, "lock", group.lock, true);
        prometheus::append_label(labels, "group", group.group, false);
        labels += '}';
        out += name + labels + " " + std::to_string(value(group)) + "\n";
      }
    };
    const auto count_holders = [](const GroupState& group, const auto& flagged) {
      std::int64_t n = 0;
      for (const Holder& holder : group.holders) n += flagged(holder) ? 1 : 0;
      return n;
    };
    family("skopos_lock_max", "Holder limit of a lock group.", [](const GroupState& g) { return g.max; });
    family("skopos_lock_holders", "Machines holding a slot of a lock group.",
           [](const GroupState& g) { return static_cast<std::int64_t>(g.holders.size()); });
    family("skopos_lock_stale_holders", "Holders without a live heartbeat.", [&](const GroupState& g) {
      return count_holders(g, [](const Holder& h) { return !h.heartbeat; });
    });
    family("skopos_lock_waiters", "Machines waiting in line for a slot of a lock group.",
           [](const GroupState& g) { return static_cast<std::int64_t>(g.queue.size()); });
    family("skopos_lock_longest_wait_seconds", "How long the first in line has waited (0: nobody waits).",
           [](const GroupState& g) {
             std::int64_t longest = 0;
             for (const Waiter& waiter : g.queue) {
               if (waiter.valid) longest = std::max(longest, now_seconds() - waiter.since);
             }
             return longest;
           });
    if (mesos.asked) {
      prometheus::append_header(out, "skopos_lock_mesos_up", "gauge",
                                "1 when Mesos answered whether it knows the holders, 0 when it could not be asked.");
      out += "skopos_lock_mesos_up " + std::string(mesos.problem.empty() ? "1" : "0") + "\n";
    }
    if (mesos.asked && mesos.problem.empty()) {
      family("skopos_lock_holders_unknown_to_mesos",
             "Holders whose machine Mesos knows no agent of (flagged, never unlocked for it).",
             [&](const GroupState& g) {
               return count_holders(g, [&](const Holder& h) { return mesos.of(h) == "unknown"; });
             });
    }
    if (!gates.empty()) {
      prometheus::append_header(out, "skopos_start_gate_open", "gauge",
                                "1 when a pause or the maintenance windows of a tier or host let it start now, 0 "
                                "when they hold it (unknown: held).");
      for (const OwnerGate& g : gates) {
        std::string labels = "{";
        prometheus::append_label(labels, "scope", scope_name(g.scope), true);
        prometheus::append_label(labels, "owner", g.owner, false);
        prometheus::append_label(labels, "gate", g.state.gate, false);
        labels += '}';
        out += "skopos_start_gate_open" + labels + " " + (g.state.open ? "1" : "0") + "\n";
      }
    }
    if (metrics_file.empty()) {
      std::fputs(out.c_str(), stdout);
    } else if (auto written = write_metrics_file(metrics_file, out); !written) {
      std::fprintf(stderr, "skopos lock status: --metrics-file: %s\n", written.error().c_str());
      return kExitFailed;
    }
    return kExitOk;
  }
  if (options.json) {
    std::string out;
    JsonWriter json(out);
    json.begin_object().key("revision").value(status->revision).key("prefix").value(locks.prefix());
    json.key("groups").begin_array();
    for (const GroupState& group : status->groups) write_group(json, group, &mesos);
    json.end_array().key("unrecognized_keys").begin_array();
    for (const std::string& key : status->unrecognized_keys) json.value(key);
    json.end_array();
    if (mesos.asked) json.key("mesos_problem").value(mesos.problem);
    json.key("start_gates").begin_array();
    for (const OwnerGate& g : gates) {
      json.begin_object().key("scope").value(scope_name(g.scope)).key("owner").value(g.owner);
      json.key("gate").value(g.state.gate).key("open").value(g.state.open).key("unknown").value(g.state.unknown);
      json.key("reason").value(g.state.reason).end_object();
    }
    json.end_array().end_object();
    std::printf("%s\n", out.c_str());
    return kExitOk;
  }
  if (status->groups.empty()) {
    std::printf("no locks under %s/locks/\n", locks.prefix().c_str());
  } else {
    TextTable table({"LOCK", "GROUP", "MAX", "HELD", "HOLDER", "HOST", "TOKEN", "PHASE", "AGE", "HEARTBEAT", "FENCING"},
                    {false, false, true, true, false, false, false, false, true, false, true});
    for (const GroupState& group : status->groups) add_holder_rows(table, group);
    std::fputs(table.render().c_str(), stdout);
    print_queues(*status);
  }
  print_mesos_flags(*status, mesos);
  print_gates(gates);
  for (const std::string& key : status->unrecognized_keys) std::printf("warning: unrecognized key %s\n", key.c_str());
  return kExitOk;
}

std::int64_t parse_number(const std::string& text, const char* what) {
  std::int64_t value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size() || value < 0) {
    throw FatalError("skopos lock: " + std::string(what) + " '" + text + "' is not a non-negative integer");
  }
  return value;
}

void print_json_or_text(const GlobalOptions& options, const std::string& json, const std::string& text) {
  std::printf("%s\n", options.json ? json.c_str() : text.c_str());
}

void print_host_state(const GlobalOptions& options, const HostLockState& state) {
  std::string out;
  JsonWriter json(out);
  json.begin_object().key("machine_id").value(state.machine_id).key("locked").value(state.locked);
  if (state.locked) {
    json.key("token").value(state.token).key("hostname").value(state.hostname).key("boot_id").value(state.boot_id);
    json.key("locked_at").value(utc_time(state.locked_at)).key("revision").value(state.revision);
    json.key("already").value(state.already);
  }
  json.end_object();
  const std::string text = state.locked ? "host '" + state.machine_id + "' locked for " + state.token + " since " +
                                              utc_time(state.locked_at) + (state.already ? " (already)" : "")
                                        : "host '" + state.machine_id + "' is not locked";
  print_json_or_text(options, out, text);
}

// Keeps the heartbeat until SIGTERM/SIGINT or `run_for` passes.
int heartbeat_command(LockContext& context, const GlobalOptions& options, std::chrono::seconds ttl,
                      std::chrono::milliseconds run_for) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  Heartbeat heartbeat(*context.etcd, context.locks->self(), options.prefix, ttl);
  const auto end = run_for.count() > 0 ? std::chrono::steady_clock::now() + run_for
                                       : std::chrono::steady_clock::time_point::max();
  bool reported = false;
  for (;;) {
    auto beat = heartbeat.beat();
    if (!beat) {
      log_warning(beat.error().message);
      reported = false;
    } else if (!reported) {
      log_info("heartbeat '" + heartbeat.key() + "' alive (ttl " + std::to_string(ttl.count()) + " s)");
      reported = true;
    }
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(heartbeat.interval());
    const auto left = end - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) break;
    if (left < wait) wait = std::chrono::duration_cast<std::chrono::milliseconds>(left);
    const timespec timeout{static_cast<std::time_t>(wait.count() / 1000), static_cast<long>(wait.count() % 1000) * 1000000};
    const int signal = sigtimedwait(&signals, nullptr, &timeout);
    if (signal == SIGTERM || signal == SIGINT) break;
  }
  auto stopped = heartbeat.stop();
  if (!stopped) return report(stopped.error(), options.json);
  log_info("heartbeat '" + heartbeat.key() + "' withdrawn");
  return kExitOk;
}

}  // namespace

int lock_command(int argc, char** argv) {
  struct Shape {
    const char* name;
    std::size_t positional;
    std::vector<std::string_view> options;
  };
  static const Shape kShapes[] = {
      {"status", 0, {"metrics", "metrics-file", "mesos-master", "mesos-user", "mesos-password-file", "mesos-cacert", "mesos-cert",
                     "mesos-key", "mesos-timeout", "leader-wait"}},
      {"acquire", 2, {"token", "timeout"}},
      {"release", 2, {"fencing-token"}},
      {"guard", 2, {"fencing-token", "phase"}},
      {"unlock", 3, {"force", "confirm"}},
      {"set-max", 3, {}},
      {"host-status", 0, {}},
      {"host-lock", 1, {}},
      {"host-unlock", 1, {}},
      {"heartbeat", 0, {"ttl", "for"}},
  };
  subcommand_first(argc, argv, lock_options_table().spec().options);  // `skopos lock --etcd-endpoints X status` too
  if (argc < 3 || std::string_view(argv[2]) == "--help" || std::string_view(argv[2]) == "-h") {
    print_usage(argc < 3 ? stderr : stdout);
    return argc < 3 ? kExitUsage : kExitOk;
  }
  const std::string command = argv[2];
  const Shape* shape = nullptr;
  for (const Shape& candidate : kShapes) {
    if (command == candidate.name) shape = &candidate;
  }
  if (shape == nullptr) {
    std::fprintf(stderr, "skopos lock: unknown command '%s'\n\n", command.c_str());
    print_usage(stderr);
    return kExitUsage;
  }
  LockConfig config;
  const auto parsed = parse_command(with_global_options(lock_options_table().only(shape->options, "skopos lock " + command)),
                                    argc, argv, config, 3, "skopos lock " + command, [] { print_usage(stdout); });
  if (!parsed) return kExitOk;
  const CliArgs& args = parsed->args;
  const GlobalOptions& options = parsed->global;
  const auto& positional = args.positional();
  if (positional.size() != shape->positional) {
    throw FatalError("skopos lock " + command + ": expects " + std::to_string(shape->positional) +
                         " argument(s), got " + std::to_string(positional.size()),
                     "see 'skopos lock --help'");
  }
  for (std::size_t i = 0; i < positional.size() && command != "set-max"; ++i) {
    if (!valid_key_name(positional[i])) {
      throw FatalError("skopos lock " + command + ": '" + positional[i] + "' is not a valid name",
                       "names are 1-128 of letters, digits, '_', '.' and '-'");
    }
  }
  if (command == "set-max" && (!valid_key_name(positional[0]) || !valid_key_name(positional[1]))) {
    throw FatalError("skopos lock set-max: invalid lock or group name");
  }
  if (command == "unlock" && config.force && config.confirm != positional[2]) {
    throw FatalError("skopos lock unlock: --force breaks a live holder's lock; confirm it with --confirm " +
                     positional[2]);
  }
  if (command == "guard" && (!args.has("fencing-token") || !args.has("phase"))) {
    throw FatalError("skopos lock guard: --fencing-token and --phase are required");
  }
  // Parse numbers before touching etcd.
  const std::int64_t fencing = parse_number(config.fencing_token, "--fencing-token");
  const std::int64_t max = command == "set-max" ? parse_number(positional[2], "max") : 0;
  const auto timeout = config.timeout;
  const auto ttl = std::chrono::duration_cast<std::chrono::seconds>(config.ttl);
  const auto run_for = config.run_for;

  LockContext context = connect_locks(options);
  LockService& locks = *context.locks;
  if (command == "status") {
    return status_command(locks, *context.etcd, options, config.metrics, config.metrics_file, config.mesos);
  }
  if (command == "heartbeat") return heartbeat_command(context, options, ttl, run_for);
  if (command == "acquire") {
    const std::string& token = config.token;
    // SIGTERM or SIGINT ends the wait at once and gives the place in line up (it would
    // otherwise hold up those behind it until its lease expired).
    const std::atomic<bool>& stop = install_stop_signals();
    auto acquired =
        locks.acquire(positional[0], positional[1], token, std::chrono::steady_clock::now() + timeout, &stop);
    if (!acquired) return report(acquired.error(), options.json);
    std::string out;
    JsonWriter json(out);
    json.begin_object().key("lock").value(positional[0]).key("group").value(positional[1]);
    json.key("machine_id").value(locks.self().machine_id).key("token").value(token);
    json.key("fencing_token").value(acquired->fencing_token).key("already_held").value(acquired->already_held);
    json.end_object();
    print_json_or_text(options, out,
                       (acquired->already_held ? "already held " : "acquired ") + positional[0] + "/" + positional[1] +
                           " (fencing token " + std::to_string(acquired->fencing_token) + ")");
    return kExitOk;
  }
  if (command == "release") {
    auto released = locks.release(positional[0], positional[1], fencing);
    if (!released) return report(released.error(), options.json);
    print_json_or_text(options, std::string("{\"released\":") + (*released ? "true" : "false") + "}",
                       *released ? "released " + positional[0] + "/" + positional[1]
                                 : "this machine held no slot of " + positional[0] + "/" + positional[1]);
    return kExitOk;
  }
  if (command == "guard") {
    auto guarded = locks.guard(positional[0], positional[1], fencing, config.phase);
    if (!guarded) return report(guarded.error(), options.json);
    print_json_or_text(options, "{\"held\":true}", "held; phase '" + config.phase + "' recorded");
    return kExitOk;
  }
  if (command == "unlock") {
    auto removed = locks.unlock(positional[0], positional[1], positional[2], config.force);
    if (!removed) return report(removed.error(), options.json);
    // Its place in line too: one its owner no longer waits on holds up everyone behind it.
    auto dequeued = locks.remove_waiter(positional[0], positional[1], positional[2]);
    if (!dequeued) return report(dequeued.error(), options.json);
    std::string out;
    JsonWriter json(out);
    json.begin_object().key("removed").value(removed->has_value()).key("left_line").value(*dequeued);
    if (removed->has_value()) {
      json.key("holder");
      write_holder(json, **removed);
    }
    json.end_object();
    std::string text = removed->has_value() ? "removed holder '" + positional[2] + "' of " + positional[0] + "/" +
                                                  positional[1] + " (fencing token " +
                                                  std::to_string((*removed)->fencing_token) + ")"
                                            : "'" + positional[2] + "' held no slot of " + positional[0] + "/" +
                                                  positional[1];
    if (*dequeued) text += "; removed its place in line";
    print_json_or_text(options, out, text);
    return kExitOk;
  }
  if (command == "set-max") {
    auto group = locks.set_max(positional[0], positional[1], max);
    if (!group) return report(group.error(), options.json);
    std::string out;
    JsonWriter json(out);
    write_group(json, *group);
    print_json_or_text(options, out,
                       positional[0] + "/" + positional[1] + ": max " + std::to_string(max) + ", " +
                           std::to_string(group->holders.size()) + " holding");
    return kExitOk;
  }
  if (command == "host-status") {
    auto state = locks.host_status(locks.self().machine_id);
    if (!state) return report(state.error(), options.json);
    print_host_state(options, *state);
    return kExitOk;
  }
  if (command == "host-lock") {
    auto state = locks.host_lock(positional[0]);
    if (!state) return report(state.error(), options.json);
    print_host_state(options, *state);
    return kExitOk;
  }
  // host-unlock
  auto unlocked = locks.host_unlock(positional[0]);
  if (!unlocked) return report(unlocked.error(), options.json);
  print_json_or_text(options, std::string("{\"unlocked\":") + (*unlocked ? "true" : "false") + "}",
                     *unlocked ? "host '" + locks.self().machine_id + "' unlocked"
                               : "host '" + locks.self().machine_id + "' was not locked");
  return kExitOk;
}

}  // namespace skopos::driver::cli
