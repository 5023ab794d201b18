// skopos fence: the iptables chain that refuses new connections to task ports, by hand.
#include <cstdio>
#include <set>
#include <string>

#include "commands.h"
#include "driver/fence.h"
#include "global_options.h"
#include "skopos/json_writer.h"

namespace skopos::driver::cli {

namespace {

constexpr const char* kFenceUsage =
    "usage: skopos fence <command> [arguments] [options]\n"
    "\n"
    "commands:\n"
    "  show                 what is fenced now: the chain, its jumps, the ports\n"
    "  apply PORT... [--dry-run]\n"
    "                       refuse NEW TCP connections (reset) to exactly these host ports\n"
    "                       (host-mode ports, or published ports of bridge containers,\n"
    "                       matched before DNAT); established connections keep flowing;\n"
    "                       --dry-run prints the iptables-restore input instead\n"
    "  remove               remove the chain and exactly its jumps\n"
    "\n"
    "options:\n"
    "  --chain NAME                  the chain (default SKOPOS)\n"
    "  --ipv6 on|off                 the same with ip6tables (default on where the kernel\n"
    "                                has IPv6); an ip6tables failure is an error\n"
    "  --allow CIDR,...              sources whose new connections pass (health checkers,\n"
    "                                e.g. the Marathon hosts)\n"
    "  --health-check-port P, --health-check-match TEXT\n"
    "                                also reset the cloud balancer's health check. Off by\n"
    "                                default: an autoscaler may take a failing health check\n"
    "                                for a dead host and terminate it mid-drain\n"
    "  --json, --log-level L, --config FILE   as for every skopos command\n"
    "\n"
    "Exit status: 0 done (also: nothing to remove); 2 usage error; 3 iptables failed (it\n"
    "changes all or nothing: nothing was changed).\n";

void print_states(const std::vector<std::pair<std::string, FenceState>>& states, const std::string& chain,
                  bool json_output) {
  if (json_output) {
    // The union of the families' ports, and each family's rules.
    std::set<std::uint16_t> ports;
    bool active = false;
    for (const auto& [family, state] : states) {
      ports.insert(state.ports.begin(), state.ports.end());
      active = active || state.active();
    }
    std::string out;
    JsonWriter json(out);
    json.begin_object().key("chain").value(chain).key("active").value(active).key("ports").begin_array();
    for (const std::uint16_t port : ports) json.value(static_cast<std::uint64_t>(port));
    json.end_array().key("families").begin_object();
    for (const auto& [family, state] : states) {
      json.key(family).begin_object().key("active").value(state.active()).key("jumps").begin_array();
      for (const std::string& jump : state.jumps) json.value(jump);
      json.end_array().key("rules").begin_array();
      for (const std::string& rule : state.rules) json.value(rule);
      json.end_array().end_object();
    }
    json.end_object().end_object();
    std::printf("%s\n", out.c_str());
    return;
  }
  for (const auto& [family, state] : states) {
    if (!state.active()) {
      std::printf("%s: no fence (chain %s absent)\n", family.c_str(), chain.c_str());
      continue;
    }
    std::printf("%s: fence %s: %zu port(s)", family.c_str(), chain.c_str(), state.ports.size());
    for (const std::uint16_t port : state.ports) std::printf(" %u", static_cast<unsigned>(port));
    std::printf("\n");
    for (const std::string& jump : state.jumps) std::printf("  %s\n", jump.c_str());
    for (const std::string& rule : state.rules) std::printf("  %s\n", rule.c_str());
  }
}

}  // namespace

int fence_command(int argc, char** argv) {
  const std::set<std::string> kValueOptions = {"chain", "health-check-port", "health-check-match", "ipv6", "allow"};
  subcommand_first(argc, argv, kValueOptions);  // `skopos fence --chain X show` too
  if (argc < 3 || std::string_view(argv[2]) == "--help" || std::string_view(argv[2]) == "-h") {
    std::fputs(kFenceUsage, argc < 3 ? stderr : stdout);
    return argc < 3 ? kExitUsage : kExitOk;
  }
  const std::string command = argv[2];
  if (command != "show" && command != "apply" && command != "remove") {
    std::fprintf(stderr, "skopos fence: unknown command '%s'\n\n%s", command.c_str(), kFenceUsage);
    return kExitUsage;
  }
  const CliSpec spec = with_global_options("skopos fence " + command, {"dry-run"}, kValueOptions);
  CliArgs args = CliArgs::parse(spec, argc, argv, 3);
  if (args.flag("help")) {
    std::fputs(kFenceUsage, stdout);
    return kExitOk;
  }
  const GlobalOptions global = parse_global_options(spec, args);
  FenceOptions options;
  options.chain = args.option("chain", "SKOPOS");
  if (options.chain.empty() || options.chain.size() > 28) throw FatalError("skopos fence: --chain must be 1-28 characters");
  if (args.has("health-check-port") != args.has("health-check-match")) {
    throw FatalError("skopos fence: --health-check-port and --health-check-match go together");
  }
  if (args.has("health-check-port")) {
    options.health_check = HealthCheckFence{port_value("skopos fence:", args.option("health-check-port")), args.option("health-check-match")};
  }
  options.allow_sources = allow_list("skopos fence: --allow", args.option("allow"));
  std::vector<std::uint16_t> ports;
  for (const std::string& text : args.positional()) ports.push_back(port_value("skopos fence:", text));
  if (command == "apply" ? ports.empty() : !ports.empty()) {
    throw FatalError("skopos fence " + command + (command == "apply" ? ": which ports?" : ": takes no ports"));
  }
  const std::string ipv6 = args.option("ipv6", kernel_has_ipv6() ? "on" : "off");
  if (ipv6 != "on" && ipv6 != "off") throw FatalError("skopos fence: --ipv6 '" + ipv6 + "' is not on or off");
  const std::vector<FamilyFence> fences = fence_families(options, ipv6 == "on");
  const auto failed = [&](const Error& error) {
    std::fprintf(stderr, "skopos: fence: %s\n", error.message().c_str());
    return kExitFailed;
  };
  if (command == "show" || (command == "apply" && !args.flag("dry-run"))) {
    std::vector<std::pair<std::string, FenceState>> states;
    for (const FamilyFence& f : fences) {
      auto state = command == "show" ? f.fence.show() : f.fence.apply(ports);
      if (!state) return failed(state.error());
      states.emplace_back(f.family, std::move(*state));
    }
    print_states(states, options.chain, global.json);
    return kExitOk;
  }
  if (command == "apply") {
    for (const FamilyFence& f : fences) {
      auto plan = f.fence.plan(ports);
      if (!plan) return failed(plan.error());
      std::printf("# %s (%s --noflush)\n%s", f.family.c_str(), f.fence.options().iptables_restore.c_str(), plan->c_str());
    }
    return kExitOk;
  }
  bool any = false;
  for (const FamilyFence& f : fences) {
    auto removed = f.fence.remove();
    if (!removed) return failed(removed.error());
    any = any || *removed;
  }
  if (global.json) {
    std::printf("{\"removed\":%s}\n", any ? "true" : "false");
  } else {
    std::printf("%s\n", any ? "fence removed" : "no fence to remove");
  }
  return kExitOk;
}

}  // namespace skopos::driver::cli
