// skopos window: the maintenance windows in etcd (driver/reboot_windows.h) -- when the
// agents of a tier, or one host, may start a reboot drain.
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>

#include "commands.h"
#include "driver/drain.h"
#include "driver/reboot_windows.h"
#include "global_options.h"
#include "skopos/enum_names.h"
#include "skopos/json_writer.h"
#include "skopos/text_table.h"

namespace skopos::driver::cli {

namespace {

constexpr const char* kWindowUsage =
    "usage: skopos window set (--tier T | --host H) NAME DAYS HH:MM DURATION [ZONE]\n"
    "       skopos window show [--tier T] [--host H]     the windows, and with both: may it start now?\n"
    "       skopos window clear (--tier T | --host H) [NAME]   one window, or all of the tier's or host's\n"
    "\n"
    "A host's agent starts a reboot drain only while one of its tier's windows and one of\n"
    "its own are open (no windows on a side: no limit there), so a host's windows narrow\n"
    "its tier's. A drain that started inside a window finishes. DAYS: mon-fri, sat,sun,\n"
    "fri-mon, daily. HH:MM: local time in ZONE (an IANA name, default UTC); a start that\n"
    "daylight saving time skips opens when the gap ends, one it repeats at its first\n"
    "occurrence. DURATION: 90m, 4h, up to 168h, in elapsed time. Example:\n"
    "  skopos window set --tier worker nights mon-fri 01:00 4h Europe/Berlin\n"
    "\n"
    "options:\n"
    "%s"
    "\n"
    "%s"
    "\n"
    "Exit status: 0 done (show: also a closed gate); 2 usage or a window that is not one;\n"
    "3 etcd unreachable or unreadable data.\n";

struct WindowConfig {
  GlobalConfig global;
  std::optional<Tier> tier;
  std::string host;
};

const OptionTable<WindowConfig>& own_options_table() {
  static const OptionTable<WindowConfig> table = [] {
    using C = WindowConfig;
    OptionTable<C> t("skopos window");
    t.choice("tier", "the tier's windows", &C::tier, enum_choices(kTierNames));
    t.text("host", "H", "one host's windows (its host name, as its agent's --hostname)", &C::host);
    return t;
  }();
  return table;
}

void print_usage(std::FILE* out) {
  std::fprintf(out, kWindowUsage, own_options_table().help().c_str(), global_options_help().c_str());
}

int etcd_failed(const std::string& message, bool json) {
  return report(LockError{LockError::Kind::kEtcd, message}, json);
}

std::string scope_name(WindowStore::Scope scope) { return scope == WindowStore::Scope::kTier ? "tier" : "host"; }

int show(WindowStore& store, const WindowConfig& config, bool json) {
  auto all = store.list();
  if (!all) return etcd_failed(all.error(), json);
  const std::string tier = config.tier ? tier_name(*config.tier) : "";
  const auto shown = [&](const WindowStore::Stored& stored) {
    if (!config.tier && config.host.empty()) return true;
    return (config.tier && stored.scope == WindowStore::Scope::kTier && stored.owner == tier) ||
           (!config.host.empty() && stored.scope == WindowStore::Scope::kHost && stored.owner == config.host);
  };
  // With a tier and a host: whether that host may start now, as its agent decides.
  std::optional<WindowVerdict> verdict;
  if (config.tier && !config.host.empty()) {
    auto set = store.for_host(tier, config.host);
    if (!set) return etcd_failed(set.error(), json);
    verdict = evaluate_windows(*set, std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()));
  }
  if (json) {
    std::string out;
    JsonWriter w(out);
    w.begin_object().key("windows").begin_array();
    for (const WindowStore::Stored& stored : *all) {
      if (!shown(stored)) continue;
      w.begin_object().key("scope").value(scope_name(stored.scope)).key("owner").value(stored.owner);
      w.key("name").value(stored.window.name);
      if (stored.problem.empty()) {
        w.key("window").value(stored.window.describe());
      } else {
        w.key("problem").value(stored.problem);
      }
      w.end_object();
    }
    w.end_array();
    if (verdict) {
      w.key("gate").begin_object().key("open").value(verdict->open).key("reason").value(verdict->reason);
      w.key("next_change");
      if (verdict->next_change) {
        w.value(static_cast<std::int64_t>(verdict->next_change->time_since_epoch().count()));
      } else {
        w.null();
      }
      w.end_object();
    }
    w.end_object();
    std::printf("%s\n", out.c_str());
    return kExitOk;
  }
  TextTable table({"SCOPE", "OWNER", "NAME", "WINDOW"}, {false, false, false, false});
  std::size_t rows = 0;
  for (const WindowStore::Stored& stored : *all) {
    if (!shown(stored)) continue;
    ++rows;
    table.add_row({scope_name(stored.scope), stored.owner, stored.window.name,
                   stored.problem.empty() ? stored.window.describe() : "UNREADABLE: " + stored.problem});
  }
  if (rows == 0) {
    std::printf("no maintenance windows%s\n", config.tier || !config.host.empty() ? " here" : "");
  } else {
    std::fputs(table.render().c_str(), stdout);
  }
  if (verdict) {
    std::printf("%s in tier %s: %s (%s)\n", config.host.c_str(), tier.c_str(),
                verdict->open ? "may start now" : "may not start now", verdict->reason.c_str());
  }
  return kExitOk;
}

}  // namespace

int window_command(int argc, char** argv) {
  int exit_code = kExitOk;
  const auto picked = pick_subcommand(argc, argv, "window", own_options_table().spec().options,
                                      {"set", "show", "clear"}, print_usage, exit_code);
  if (!picked) return exit_code;
  const std::string command = *picked;
  WindowConfig config;
  const auto parsed = parse_command(with_global_options(own_options_table()), argc, argv, config, 3,
                                    "skopos window " + command, [] { print_usage(stdout); });
  if (!parsed) return kExitOk;
  const auto& positional = parsed->args.positional();
  const GlobalOptions& global = parsed->global;
  const std::string what = "skopos window " + command;
  auto etcd = EtcdClient::create(global.etcd);
  if (!etcd) throw FatalError("skopos: etcd client: " + etcd.error().message);
  WindowStore store(**etcd, global.prefix);
  if (command == "show") {
    if (!positional.empty()) throw FatalError(what + ": takes no arguments");
    return show(store, config, global.json);
  }
  // set and clear: exactly one owner.
  if (config.tier.has_value() == !config.host.empty()) {
    throw FatalError(what + ": give --tier T or --host H (one of them)");
  }
  const WindowStore::Scope scope = config.tier ? WindowStore::Scope::kTier : WindowStore::Scope::kHost;
  const std::string owner = config.tier ? tier_name(*config.tier) : config.host;
  if (!WindowStore::valid_part(owner)) {
    throw FatalError(what + ": --host '" + owner + "' is not a host name a window can be kept under",
                     "1 to 64 of A-Z a-z 0-9 . _ -, as the agent's --hostname");
  }
  if (command == "set") {
    if (positional.size() != 4 && positional.size() != 5) {
      throw FatalError(what + ": takes NAME DAYS HH:MM DURATION [ZONE]",
                       "e.g. skopos window set --tier worker nights mon-fri 01:00 4h Europe/Berlin");
    }
    auto window = make_window(positional[0], positional[1], positional[2], positional[3],
                              positional.size() == 5 ? positional[4] : "UTC");
    if (!window) throw FatalError(what + ": " + window.error());
    if (auto stored = store.set(scope, owner, *window); !stored) return etcd_failed(stored.error(), global.json);
    if (global.json) {
      std::string out;
      JsonWriter w(out);
      w.begin_object().key("scope").value(scope_name(scope)).key("owner").value(owner);
      w.key("name").value(window->name).key("window").value(window->describe()).end_object();
      std::printf("%s\n", out.c_str());
    } else {
      std::printf("window %s of %s %s: %s\n", window->name.c_str(), scope_name(scope).c_str(), owner.c_str(),
                  window->describe().c_str());
    }
    return kExitOk;
  }
  if (positional.size() > 1) throw FatalError(what + ": takes at most a NAME");
  if (!positional.empty() && !WindowStore::valid_part(positional[0])) {
    throw FatalError(what + ": '" + positional[0] + "' is not a window name", "leave NAME out to clear them all");
  }
  auto removed = store.clear(scope, owner, positional.empty() ? "" : positional[0]);
  if (!removed) return etcd_failed(removed.error(), global.json);
  if (global.json) {
    std::string out;
    JsonWriter(out).begin_object().key("removed").value(*removed).end_object();
    std::printf("%s\n", out.c_str());
  } else {
    std::printf("%lld window%s removed\n", static_cast<long long>(*removed), *removed == 1 ? "" : "s");
  }
  return kExitOk;
}

}  // namespace skopos::driver::cli
