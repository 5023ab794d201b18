// skopos fence: the iptables chain that refuses new connections to task ports, by hand.
#include <charconv>
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
    "  --health-check-port P, --health-check-match TEXT\n"
    "                                also reset the cloud balancer's health check. Off by\n"
    "                                default: an autoscaler may take a failing health check\n"
    "                                for a dead host and terminate it mid-drain\n"
    "  --json, --log-level L, --config FILE   as for every skopos command\n"
    "\n"
    "Exit status: 0 done (also: nothing to remove); 2 usage error; 3 iptables failed (it\n"
    "changes all or nothing: nothing was changed).\n";

std::uint16_t parse_port(const std::string& text) {
  unsigned value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size() || value == 0 || value > 65535) {
    throw FatalError("skopos fence: '" + text + "' is not a port (1-65535)");
  }
  return static_cast<std::uint16_t>(value);
}

void print_state(const FenceState& state, const std::string& chain, bool json_output) {
  if (json_output) {
    std::string out;
    JsonWriter json(out);
    json.begin_object().key("chain").value(chain).key("active").value(state.active()).key("ports").begin_array();
    for (const std::uint16_t port : state.ports) json.value(static_cast<std::uint64_t>(port));
    json.end_array().key("jumps").begin_array();
    for (const std::string& jump : state.jumps) json.value(jump);
    json.end_array().key("rules").begin_array();
    for (const std::string& rule : state.rules) json.value(rule);
    json.end_array().end_object();
    std::printf("%s\n", out.c_str());
    return;
  }
  if (!state.active()) {
    std::printf("no fence (chain %s absent)\n", chain.c_str());
    return;
  }
  std::printf("fence %s: %zu port(s)", chain.c_str(), state.ports.size());
  for (const std::uint16_t port : state.ports) std::printf(" %u", static_cast<unsigned>(port));
  std::printf("\n");
  for (const std::string& jump : state.jumps) std::printf("  %s\n", jump.c_str());
  for (const std::string& rule : state.rules) std::printf("  %s\n", rule.c_str());
}

}  // namespace

int fence_command(int argc, char** argv) {
  if (argc < 3 || std::string_view(argv[2]) == "--help" || std::string_view(argv[2]) == "-h") {
    std::fputs(kFenceUsage, argc < 3 ? stderr : stdout);
    return argc < 3 ? kExitUsage : kExitOk;
  }
  const std::string command = argv[2];
  if (command != "show" && command != "apply" && command != "remove") {
    std::fprintf(stderr, "skopos fence: unknown command '%s'\n\n%s", command.c_str(), kFenceUsage);
    return kExitUsage;
  }
  const CliSpec spec = with_global_options("skopos fence " + command, {"dry-run"},
                                           {"chain", "health-check-port", "health-check-match"});
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
    options.health_check = HealthCheckFence{parse_port(args.option("health-check-port")), args.option("health-check-match")};
  }
  std::vector<std::uint16_t> ports;
  for (const std::string& text : args.positional()) ports.push_back(parse_port(text));
  if (command == "apply" ? ports.empty() : !ports.empty()) {
    throw FatalError("skopos fence " + command + (command == "apply" ? ": which ports?" : ": takes no ports"));
  }
  Fence fence(options);
  const auto failed = [&](const Error& error) {
    std::fprintf(stderr, "skopos: fence: %s\n", error.message().c_str());
    return kExitFailed;
  };
  if (command == "show") {
    auto state = fence.show();
    if (!state) return failed(state.error());
    print_state(*state, options.chain, global.json);
    return kExitOk;
  }
  if (command == "apply") {
    if (args.flag("dry-run")) {
      auto plan = fence.plan(ports);
      if (!plan) return failed(plan.error());
      std::fputs(plan->c_str(), stdout);
      return kExitOk;
    }
    auto state = fence.apply(ports);
    if (!state) return failed(state.error());
    print_state(*state, options.chain, global.json);
    return kExitOk;
  }
  auto removed = fence.remove();
  if (!removed) return failed(removed.error());
  if (global.json) {
    std::printf("{\"removed\":%s}\n", *removed ? "true" : "false");
  } else {
    std::printf("%s\n", *removed ? "fence removed" : "no fence to remove");
  }
  return kExitOk;
}

}  // namespace skopos::driver::cli
