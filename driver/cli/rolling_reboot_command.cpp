// skopos rolling-reboot: asks every agent of a tier to take its turn (a request in etcd,
// driver/rolling_reboot.h), shows the request and each host's turn, or withdraws it.
#include <cstdio>
#include <optional>
#include <string>

#include "commands.h"
#include "driver/drain.h"
#include "driver/rolling_reboot.h"
#include "global_options.h"
#include "skopos/enum_names.h"
#include "skopos/json_writer.h"

namespace skopos::driver::cli {

namespace {

constexpr const char* kRollingUsage =
    "usage: skopos rolling-reboot --tier T [--hosts H,...]   ask every host (or these) to reboot\n"
    "       skopos rolling-reboot --tier T --status          the request and each host's turn\n"
    "       skopos rolling-reboot --tier T --cancel          withdraw the request\n"
    "\n"
    "Every 'skopos agent' of the tier watches the request; each reboots once for it, at\n"
    "most the tier's reboot-lock max at a time ('skopos lock set-max reboot T N').\n"
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
};

const OptionTable<RollingConfig>& own_options_table() {
  static const OptionTable<RollingConfig> table = [] {
    using C = RollingConfig;
    OptionTable<C> t("skopos rolling-reboot");
    t.choice("tier", "the tier to roll (required)", &C::tier, enum_choices(kTierNames));
    t.text("hosts", "H,...", "only these hosts (machine ids or host names); default: all", &C::hosts);
    t.flag("status", "show the request and each host's turn", &C::status);
    t.flag("cancel", "withdraw the request", &C::cancel);
    return t;
  }();
  return table;
}

void print_usage() {
  std::printf(kRollingUsage, own_options_table().help().c_str(), global_options_help().c_str());
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
  if (config.status) {
    auto status = rolling.status(tier);
    if (!status) return report(status.error(), global.json);
    if (global.json) {
      std::string out;
      JsonWriter json(out);
      json.begin_object().key("tier").value(tier).key("request");
      if (status->request) {
        json.begin_object().key("id").value(status->request->id).key("requested_at").value(status->request->requested_at);
        json.key("requested_by").value(status->request->requested_by).end_object();
      } else {
        json.null();
      }
      json.key("done").begin_array();
      for (const RollingDone& done : status->done) {
        if (!status->request || done.id != status->request->id) continue;
        json.begin_object().key("machine_id").value(done.machine_id).key("hostname").value(done.hostname);
        json.key("at").value(done.at).end_object();
      }
      json.end_array().end_object();
      std::printf("%s\n", out.c_str());
      return kExitOk;
    }
    if (!status->request) {
      std::printf("no rolling reboot requested for tier %s\n", tier.c_str());
      return kExitOk;
    }
    std::printf("rolling reboot '%s' of tier %s, requested %s by %s\n", status->request->id.c_str(), tier.c_str(),
                utc_time(status->request->requested_at).c_str(), status->request->requested_by.c_str());
    for (const RollingDone& done : status->done) {
      if (done.id != status->request->id) continue;
      std::printf("  done: %s (%s) at %s\n", done.hostname.c_str(), done.machine_id.c_str(), utc_time(done.at).c_str());
    }
    return kExitOk;
  }
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
