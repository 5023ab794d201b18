// skopos maintenance: the Mesos maintenance schedule and agent draining, by hand; the
// operator tool that replaces the curl scripts of the past.
#include <fnmatch.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "commands.h"
#include "driver/maintenance_scheduler.h"
#include "driver/mesos_master.h"
#include "global_options.h"
#include "skopos/json_writer.h"
#include "skopos/text_table.h"

namespace skopos::driver::cli {

namespace {

constexpr const char* kMaintenanceUsage =
    "usage: skopos maintenance <command> [arguments] [options]\n"
    "\n"
    "commands (HOST is a host name or a glob such as 'worker-*'; each match is the exact\n"
    "host name and ip its Mesos agent registered with):\n"
    "  status                          every agent and scheduled machine: mode (UP,\n"
    "                                  DRAINING, DOWN), window, agent state\n"
    "  schedule HOST... [--start T] [--duration D]\n"
    "                                  put the machines in one maintenance window (T: now,\n"
    "                                  +30m or 2026-11-21T14:00:00Z; default now; D\n"
    "                                  default 2h, 0 for open-ended); every other\n"
    "                                  machine's window is kept (edits are serialised by an\n"
    "                                  etcd lock and verified by reading back)\n"
    "  cancel HOST...                  take the machines out of the schedule\n"
    "  down HOST...                    /machine/down (only from DRAINING)\n"
    "  up HOST...                      /machine/up (only from DOWN; leaves the schedule)\n"
    "  drain-agent HOST... [--grace D] [--mark-gone]\n"
    "                                  DRAIN_AGENT (Mesos 1.9+; refused for machines in the\n"
    "                                  schedule)\n"
    "  reactivate-agent HOST...        REACTIVATE_AGENT\n"
    "\n"
    "options (each where the command above shows it):\n"
    "%s"
    "\n"
    "Mesos options (also in the config file, or from the environment as noted; without\n"
    "any master, http://127.0.0.1:5050):\n"
    "%s"
    "\n"
    "%s"
    "\n"
    "Exit status: 0 done; 2 usage error or a HOST that matches nothing; 3 Mesos or etcd\n"
    "unreachable, or an outcome that stayed unknown; 4 refused by Mesos (its text is\n"
    "printed: e.g. down for a machine not DRAINING).\n";

// Everything `skopos maintenance`'s options set.
struct MaintenanceConfig {
  GlobalConfig global;
  MesosConfig mesos;
  std::string start = "now";
  std::chrono::milliseconds duration{std::chrono::hours(2)};
  std::chrono::milliseconds lock_wait{std::chrono::minutes(2)};
  std::optional<std::chrono::milliseconds> grace;  // none: Mesos's default
  bool mark_gone = false;
};

// The commands' own options, each declared once; a command takes the ones its shape names.
const OptionTable<MaintenanceConfig>& maintenance_options_table() {
  static const OptionTable<MaintenanceConfig> table = [] {
    using C = MaintenanceConfig;
    OptionTable<C> t("skopos maintenance");
    t.text("start", "T", "schedule: when the window opens: now, +30m or\n2026-11-21T14:00:00Z", &C::start);
    t.duration("duration", "schedule: the window's length, 0 for open-ended", &C::duration);
    t.duration("lock-wait", "schedule, cancel: how long to wait for the schedule's\netcd lock", &C::lock_wait);
    t.add({"grace", "D", "drain-agent: DRAIN_AGENT's max_grace_period (default:\nMesos's)", {},
           [](const CliArgs& args, C& c, const std::string&) { c.grace = args.duration("grace", std::chrono::milliseconds(0)); }});
    t.flag("mark-gone", "drain-agent: tell Mesos the agent is gone for good", &C::mark_gone);
    return t;
  }();
  return table;
}

void print_usage(std::FILE* out) {
  std::fprintf(out, kMaintenanceUsage, maintenance_options_table().help().c_str(), mesos_options_table().help().c_str(),
               global_options_help().c_str());
}

int report_mesos(const OutsideError& error, bool json) {
  const char* kind = error.refused_as_wrong() ? "refused"
                     : error.kind == OutsideError::Kind::kNoLeader ? "no-leader"
                     : error.kind == OutsideError::Kind::kUnknownOutcome ? "unknown-outcome"
                     : error.kind == OutsideError::Kind::kBadResponse ? "bad-response"
                                                                   : "unavailable";
  std::fprintf(stderr, "skopos: %s\n", error.message.c_str());
  if (json) {
    std::string out;
    JsonWriter writer(out);
    writer.begin_object().key("error").begin_object().key("kind").value(kind).key("message").value(error.message);
    writer.end_object().end_object();
    std::printf("%s\n", out.c_str());
  }
  return error.refused_as_wrong() ? kExitRefused : kExitFailed;
}

// "now", "+30m", or "2026-11-21T14:00:00Z"; unix nanoseconds.
std::int64_t parse_start(const std::string& text) {
  const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
  if (text.empty() || text == "now") return now * 1000000000;
  if (text[0] == '+') {
    char* argv[] = {const_cast<char*>("x"), const_cast<char*>("--d"), const_cast<char*>(text.c_str() + 1)};
    const CliArgs offset = CliArgs::parse(CliSpec{"skopos maintenance --start", {}, {"d"}}, 3, argv, 1);
    return (now + offset.duration("d", std::chrono::milliseconds(0)).count() / 1000) * 1000000000;
  }
  std::tm tm{};
  const char* end = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (end == nullptr || *end != '\0') {
    throw FatalError("skopos maintenance: --start '" + text + "' is not now, +DURATION or YYYY-MM-DDTHH:MM:SSZ");
  }
  return static_cast<std::int64_t>(::timegm(&tm)) * 1000000000;
}

std::string time_text(std::int64_t ns) { return utc_time(ns / 1000000000); }

// Every machine Mesos knows: registered agents, and machines in the schedule or in
// maintenance (a DOWN machine's agent is gone from the agent list).
struct Inventory {
  std::vector<MesosAgentInfo> agents;
  MaintenanceSchedule schedule;
  MaintenanceStatus status;
  std::vector<MachineId> machines;  // unique, agents first

  void add(const MachineId& machine) {
    if (std::find(machines.begin(), machines.end(), machine) == machines.end()) machines.push_back(machine);
  }
  const char* mode(const MachineId& machine) const {
    if (std::find(status.down.begin(), status.down.end(), machine) != status.down.end()) return "DOWN";
    if (std::find(status.draining.begin(), status.draining.end(), machine) != status.draining.end()) return "DRAINING";
    return "UP";
  }
  const MesosAgentInfo* agent(const MachineId& machine) const {
    for (const MesosAgentInfo& a : agents) {
      if (a.machine() == machine) return &a;
    }
    return nullptr;
  }
};

Result<Inventory, OutsideError> read_inventory(MesosMaster& master) {
  Inventory inventory;
  auto agents = master.agents();
  if (!agents) return unexpected(std::move(agents).error());
  auto schedule = master.schedule();
  if (!schedule) return unexpected(std::move(schedule).error());
  auto status = master.maintenance_status();
  if (!status) return unexpected(std::move(status).error());
  inventory.agents = std::move(*agents);
  inventory.schedule = std::move(*schedule);
  inventory.status = std::move(*status);
  for (const MesosAgentInfo& agent : inventory.agents) inventory.add(agent.machine());
  for (const MaintenanceWindow& window : inventory.schedule.windows) {
    for (const MachineId& machine : window.machines) inventory.add(machine);
  }
  for (const MachineId& machine : inventory.status.down) inventory.add(machine);
  for (const MachineId& machine : inventory.status.draining) inventory.add(machine);
  return inventory;
}

// The machines whose host name matches one of the patterns; every pattern must match.
std::vector<MachineId> resolve(const Inventory& inventory, const std::vector<std::string>& patterns, bool agents_only) {
  std::vector<MachineId> out;
  for (const std::string& pattern : patterns) {
    bool matched = false;
    for (const MachineId& machine : inventory.machines) {
      if (agents_only && inventory.agent(machine) == nullptr) continue;
      if (::fnmatch(pattern.c_str(), machine.hostname.c_str(), FNM_CASEFOLD) != 0) continue;
      matched = true;
      if (std::find(out.begin(), out.end(), machine) == out.end()) out.push_back(machine);
    }
    if (!matched) {
      throw FatalError("skopos maintenance: no " + std::string(agents_only ? "registered agent" : "Mesos agent or scheduled machine") +
                           " matches '" + pattern + "'",
                       "'skopos maintenance status' lists what Mesos knows");
    }
  }
  return out;
}

void write_machine_status(JsonWriter& json, const Inventory& inventory, const MachineId& machine) {
  json.begin_object().key("hostname").value(machine.hostname).key("ip").value(machine.ip);
  json.key("mode").value(inventory.mode(machine));
  if (const MaintenanceWindow* window = inventory.schedule.find(machine)) {
    json.key("window").begin_object().key("start").value(time_text(window->start_ns));
    json.key("start_ns").value(window->start_ns);
    if (window->duration_ns) json.key("duration_seconds").value(*window->duration_ns / 1000000000);
    json.end_object();
  }
  if (const MesosAgentInfo* agent = inventory.agent(machine)) {
    json.key("agent").begin_object().key("id").value(agent->id).key("active").value(agent->active);
    json.key("deactivated").value(agent->deactivated);
    json.key("drain").value(agent->drain == MesosAgentInfo::DrainState::kDraining  ? "DRAINING"
                            : agent->drain == MesosAgentInfo::DrainState::kDrained ? "DRAINED"
                                                                                   : "");
    json.key("version").value(agent->version).end_object();
  }
  json.end_object();
}

int status_command(const Inventory& inventory, const std::string& leader, bool json_output) {
  if (json_output) {
    std::string out;
    JsonWriter json(out);
    json.begin_object().key("leader").value(leader).key("machines").begin_array();
    for (const MachineId& machine : inventory.machines) write_machine_status(json, inventory, machine);
    json.end_array().end_object();
    std::printf("%s\n", out.c_str());
    return kExitOk;
  }
  TextTable table({"HOST", "IP", "MODE", "WINDOW START", "DURATION", "AGENT", "AGENT STATE"});
  for (const MachineId& machine : inventory.machines) {
    const MaintenanceWindow* window = inventory.schedule.find(machine);
    const MesosAgentInfo* agent = inventory.agent(machine);
    std::string state = "-";
    if (agent != nullptr) {
      state = agent->drain == MesosAgentInfo::DrainState::kDraining  ? "draining"
              : agent->drain == MesosAgentInfo::DrainState::kDrained ? "drained"
              : agent->deactivated                                   ? "deactivated"
              : agent->active                                        ? "active"
                                                                     : "inactive";
    }
    table.add_row({machine.hostname, machine.ip, inventory.mode(machine), window ? time_text(window->start_ns) : "-",
                   window && window->duration_ns ? std::to_string(*window->duration_ns / 60000000000) + "m"
                   : window                      ? "open"
                                                 : "-",
                   agent ? agent->id : "(not registered)", state});
  }
  std::printf("leader %s\n%s", leader.c_str(), table.render().c_str());
  return kExitOk;
}

std::string machine_list(const std::vector<MachineId>& machines) {
  std::string out;
  for (const MachineId& machine : machines) out += (out.empty() ? "" : ", ") + machine.hostname + " (" + machine.ip + ")";
  return out;
}

}  // namespace

int maintenance_command(int argc, char** argv) {
  static const std::map<std::string, std::vector<std::string_view>> kShapes = {
      {"status", {}},
      {"schedule", {"start", "duration", "lock-wait"}},
      {"cancel", {"lock-wait"}},
      {"down", {}},
      {"up", {}},
      {"drain-agent", {"mark-gone", "grace"}},
      {"reactivate-agent", {}},
  };
  std::set<std::string> value_options = mesos_options_table().spec().options;
  const std::set<std::string> own = maintenance_options_table().spec().options;
  value_options.insert(own.begin(), own.end());
  subcommand_first(argc, argv, std::move(value_options));  // `skopos maintenance --mesos-master X status` too
  if (argc < 3 || std::string_view(argv[2]) == "--help" || std::string_view(argv[2]) == "-h") {
    print_usage(argc < 3 ? stderr : stdout);
    return argc < 3 ? kExitUsage : kExitOk;
  }
  const std::string command = argv[2];
  const auto shape = kShapes.find(command);
  if (shape == kShapes.end()) {
    std::fprintf(stderr, "skopos maintenance: unknown command '%s'\n\n", command.c_str());
    print_usage(stderr);
    return kExitUsage;
  }
  OptionTable<MaintenanceConfig> table = maintenance_options_table().only(shape->second, "skopos maintenance " + command);
  table.include(mesos_options_table(), &MaintenanceConfig::mesos);
  MaintenanceConfig config;
  const auto parsed = parse_command(with_global_options(std::move(table)), argc, argv, config, 3,
                                    "skopos maintenance " + command, [] { print_usage(stdout); });
  if (!parsed) return kExitOk;
  const CliArgs& args = parsed->args;
  const GlobalOptions& global = parsed->global;
  const auto& patterns = args.positional();
  if (command == "status" ? !patterns.empty() : patterns.empty()) {
    throw FatalError("skopos maintenance " + command + (command == "status" ? ": takes no HOST" : ": which HOST?"),
                     "see 'skopos maintenance --help'");
  }
  // Parse everything before talking to anyone.
  const std::int64_t start_ns = parse_start(config.start);
  const auto duration = config.duration;
  const auto lock_wait = config.lock_wait;
  const MesosConfig& mesos = config.mesos;
  auto master = MesosMaster::create(mesos_master_options(mesos, "skopos maintenance", "http://127.0.0.1:5050"));
  if (!master) throw FatalError("skopos maintenance: " + master.error().message);
  auto inventory = read_inventory(**master);
  if (!inventory) return report_mesos(inventory.error(), global.json);
  if (command == "status") return status_command(*inventory, (*master)->leader(), global.json);

  const bool agents_only = command == "drain-agent" || command == "reactivate-agent";
  const std::vector<MachineId> machines = resolve(*inventory, patterns, agents_only);
  std::string done;
  if (command == "schedule" || command == "cancel") {
    LockContext locks = connect_locks(global);
    MaintenanceSchedulerOptions scheduler_options;
    scheduler_options.lock_wait = lock_wait;
    MaintenanceScheduler scheduler(**master, *locks.locks, scheduler_options);
    auto edited = command == "schedule"
                      ? scheduler.schedule(machines, start_ns,
                                           duration.count() > 0 ? std::optional<std::int64_t>(duration.count() * 1000000)
                                                                : std::nullopt)
                      : scheduler.cancel(machines);
    if (!edited) {
      std::fprintf(stderr, "skopos: %s\n", edited.error().message.c_str());
      const bool refused = edited.error().kind == MaintenanceError::Kind::kMesos && edited.error().status >= 400 &&
                           edited.error().status < 500;
      return refused ? kExitRefused : kExitFailed;
    }
    done = command == "schedule" ? "scheduled " + machine_list(machines) + " from " + time_text(start_ns)
                                 : "cancelled maintenance of " + machine_list(machines);
  } else if (command == "down" || command == "up") {
    auto changed = command == "down" ? (*master)->machines_down(machines) : (*master)->machines_up(machines);
    if (!changed) return report_mesos(changed.error(), global.json);
    done = (command == "down" ? "down: " : "up: ") + machine_list(machines);
  } else {
    for (const MachineId& machine : machines) {
      const std::string id = inventory->agent(machine)->id;
      auto changed = command == "drain-agent"
                         ? (*master)->drain_agent(id,
                                                  config.grace ? std::optional<std::chrono::seconds>(
                                                                     std::chrono::duration_cast<std::chrono::seconds>(
                                                                         *config.grace))
                                                               : std::nullopt,
                                                  config.mark_gone)
                         : (*master)->reactivate_agent(id);
      if (!changed) return report_mesos(changed.error(), global.json);
    }
    done = (command == "drain-agent" ? "draining: " : "reactivated: ") + machine_list(machines);
  }
  if (global.json) {
    std::string out;
    JsonWriter json(out);
    json.begin_object().key("done").value(command).key("machines").begin_array();
    for (const MachineId& machine : machines) {
      json.begin_object().key("hostname").value(machine.hostname).key("ip").value(machine.ip).end_object();
    }
    json.end_array().end_object();
    std::printf("%s\n", out.c_str());
  } else {
    std::printf("%s\n", done.c_str());
  }
  return kExitOk;
}

}  // namespace skopos::driver::cli
