// skopos rolling-reboot: asks every agent of a tier to take its turn (a request in etcd,
// driver/rolling_reboot.h), shows the request and each host's turn, or withdraws it.
#include <cstdio>
#include <string>

#include "commands.h"
#include "driver/drain.h"
#include "driver/rolling_reboot.h"
#include "global_options.h"
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
    "%s";

}  // namespace

int rolling_reboot_command(int argc, char** argv) {
  const CliSpec spec = with_global_options("skopos rolling-reboot", {"status", "cancel"}, {"tier", "hosts"});
  if (argc >= 3 && (std::string_view(argv[2]) == "--help" || std::string_view(argv[2]) == "-h")) {
    std::printf(kRollingUsage, global_options_help().c_str());
    return kExitOk;
  }
  CliArgs args = CliArgs::parse(spec, argc, argv, 2);
  if (args.flag("help")) {
    std::printf(kRollingUsage, global_options_help().c_str());
    return kExitOk;
  }
  const GlobalOptions global = parse_global_options(spec, args);
  if (!args.has("tier")) throw FatalError("skopos rolling-reboot: which --tier?", "control, proxy or worker");
  const std::string tier = args.option("tier");
  if (!parse_tier(tier)) {
    throw FatalError("skopos rolling-reboot: --tier '" + tier + "' is not control, proxy or worker");
  }
  if (args.flag("status") && args.flag("cancel")) throw FatalError("skopos rolling-reboot: --status or --cancel, not both");
  LockContext context = connect_locks(global);
  RollingReboot rolling(*context.etcd, global.prefix);
  if (args.flag("cancel")) {
    auto cancelled = rolling.cancel(tier);
    if (!cancelled) return report(cancelled.error(), global.json);
    std::printf(global.json ? "{\"cancelled\":%s}\n" : "%s\n",
                global.json ? (*cancelled ? "true" : "false") : (*cancelled ? "request cancelled" : "no request"));
    return kExitOk;
  }
  if (args.flag("status")) {
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
  auto request = rolling.request(tier, context.locks->self().hostname, split_list(args.option("hosts")));
  if (!request) return report(request.error(), global.json);
  if (global.json) {
    std::printf("{\"id\":\"%s\",\"tier\":\"%s\"}\n", request->id.c_str(), tier.c_str());
  } else {
    std::printf("rolling reboot '%s' requested for tier %s\n", request->id.c_str(), tier.c_str());
  }
  return kExitOk;
}

}  // namespace skopos::driver::cli
