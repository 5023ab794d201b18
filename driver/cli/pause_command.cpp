// skopos agent pause|resume|pauses: stop a tier's or a host's agents from starting new
// turns, and let them go on (driver/pauses.h).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "commands.h"
#include "driver/drain.h"
#include "driver/pauses.h"
#include "global_options.h"
#include "skopos/enum_names.h"
#include "skopos/json_writer.h"

namespace skopos::driver::cli {

namespace {

constexpr const char* kPauseUsage =
    "usage: skopos agent pause (--tier T | --host H) [--reason R]   no new turn there until resumed\n"
    "       skopos agent resume (--tier T | --host H)\n"
    "       skopos agent pauses                                     every pause\n"
    "\n"
    "A paused tier or host starts no reboot drain: its agents wait (and say why), a host\n"
    "in line leaves it, one that holds a slot and has not started gives it back; a drain\n"
    "in progress finishes. 'rolling-reboot --status' shows paused hosts as gated.\n"
    "\n"
    "options:\n"
    "%s"
    "\n"
    "%s";

struct PauseConfig {
  GlobalConfig global;
  std::optional<Tier> tier;
  std::string host;
  std::string reason;
};

const OptionTable<PauseConfig>& own_options_table() {
  static const OptionTable<PauseConfig> table = [] {
    using C = PauseConfig;
    OptionTable<C> t("skopos agent pause");
    t.choice("tier", "every host of the tier", &C::tier, enum_choices(kTierNames));
    t.text("host", "H", "one host (its host name, as its agent's --hostname)", &C::host);
    t.text("reason", "R", "why, for whoever wonders (shown by every status)", &C::reason);
    return t;
  }();
  return table;
}

void print_usage(std::FILE* out) {
  std::fprintf(out, kPauseUsage, own_options_table().help().c_str(), global_options_help().c_str());
}

// Who pauses: the person behind sudo, else the user, at this host.
std::string who() {
  const char* user = std::getenv("SUDO_USER");
  if (user == nullptr || *user == '\0') user = std::getenv("USER");
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return std::string(user != nullptr && *user != '\0' ? user : "?") + "@" + host;
}

int failed(const std::string& message, bool json) { return report(LockError{LockError::Kind::kEtcd, message}, json); }

}  // namespace

int pause_command(int argc, char** argv) {
  const std::string command = argv[2];
  if (argc >= 4 && (std::string_view(argv[3]) == "--help" || std::string_view(argv[3]) == "-h")) {
    print_usage(stdout);
    return kExitOk;
  }
  PauseConfig config;
  const auto parsed = parse_command(with_global_options(own_options_table()), argc, argv, config, 3,
                                    "skopos agent " + command, [] { print_usage(stdout); });
  if (!parsed) return kExitOk;
  const GlobalOptions& global = parsed->global;
  const std::string what = "skopos agent " + command;
  if (!parsed->args.positional().empty()) throw FatalError(what + ": takes no arguments");
  auto etcd = EtcdClient::create(global.etcd);
  if (!etcd) throw FatalError("skopos: etcd client: " + etcd.error().message);
  PauseStore store(**etcd, global.prefix);
  if (command == "pauses") {
    if (config.tier || !config.host.empty() || !config.reason.empty()) {
      throw FatalError(what + ": lists every pause; --tier, --host and --reason are for pause and resume");
    }
    auto all = store.list();
    if (!all) return failed(all.error(), global.json);
    if (global.json) {
      std::string out;
      JsonWriter w(out);
      w.begin_array();
      for (const Pause& pause : *all) {
        w.begin_object().key("scope").value(pause.scope == WindowStore::Scope::kTier ? "tier" : "host");
        w.key("owner").value(pause.owner).key("reason").value(pause.reason).key("by").value(pause.by);
        w.key("at").value(pause.at);
        if (!pause.problem.empty()) w.key("problem").value(pause.problem);
        w.end_object();
      }
      w.end_array();
      std::printf("%s\n", out.c_str());
    } else if (all->empty()) {
      std::printf("no pauses\n");
    } else {
      for (const Pause& pause : *all) std::printf("%s\n", pause.describe().c_str());
    }
    return kExitOk;
  }
  if (config.tier.has_value() == !config.host.empty()) {
    throw FatalError(what + ": give --tier T or --host H (one of them)");
  }
  const WindowStore::Scope scope = config.tier ? WindowStore::Scope::kTier : WindowStore::Scope::kHost;
  const std::string owner = config.tier ? tier_name(*config.tier) : config.host;
  if (!WindowStore::valid_part(owner)) {
    throw FatalError(what + ": --host '" + owner + "' is not a host name",
                     "1 to 64 of A-Z a-z 0-9 . _ -, as the agent's --hostname");
  }
  const std::string who_text = std::string(config.tier ? "tier " : "host ") + owner;
  if (command == "pause") {
    if (config.reason.size() > 300) throw FatalError(what + ": --reason is longer than 300 characters");
    const auto now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
    if (auto paused = store.pause(scope, owner, config.reason, who(), now.count()); !paused) {
      return failed(paused.error(), global.json);
    }
    std::printf(global.json ? "{\"paused\":true}\n" : "%s paused: no new turns until 'skopos agent resume'\n",
                who_text.c_str());
    return kExitOk;
  }
  if (!config.reason.empty()) throw FatalError(what + ": --reason is for pause");
  auto resumed = store.resume(scope, owner);
  if (!resumed) return failed(resumed.error(), global.json);
  if (global.json) {
    std::printf("{\"resumed\":%s}\n", *resumed ? "true" : "false");
  } else {
    std::printf("%s %s\n", who_text.c_str(), *resumed ? "resumed" : "was not paused");
  }
  return kExitOk;
}

}  // namespace skopos::driver::cli
