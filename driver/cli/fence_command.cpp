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
    "%s"
    "\n"
    "%s"
    "\n"
    "Exit status: 0 done (also: nothing to remove); 2 usage error; 3 iptables failed (it\n"
    "changes all or nothing: nothing was changed).\n";

// Everything `skopos fence`'s options set.
struct FenceCommandConfig {
  GlobalConfig global;
  FenceConfig fence;
  bool dry_run = false;
};

const OptionTable<FenceCommandConfig>& own_options_table() {
  static const OptionTable<FenceCommandConfig> table = [] {
    OptionTable<FenceCommandConfig> t("skopos fence");
    t.flag("dry-run", "apply: print the iptables-restore input instead", &FenceCommandConfig::dry_run);
    t.include(fence_options_table(""), &FenceCommandConfig::fence);
    return t;
  }();
  return table;
}

void print_usage(std::FILE* out) {
  std::fprintf(out, kFenceUsage, own_options_table().help().c_str(), global_options_help().c_str());
}

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
  int exit_code = kExitOk;  // `skopos fence --chain X show` too
  const auto picked = pick_subcommand(argc, argv, "fence", own_options_table().spec().options,
                                      {"show", "apply", "remove"}, print_usage, exit_code);
  if (!picked) return exit_code;
  const std::string command = *picked;
  FenceCommandConfig config;
  const auto parsed = parse_command(with_global_options(own_options_table()), argc, argv, config, 3,
                                    "skopos fence " + command, [] { print_usage(stdout); });
  if (!parsed) return kExitOk;
  const CliArgs& args = parsed->args;
  const GlobalOptions& global = parsed->global;
  const FenceOptions options = config.fence.options("skopos fence", "");
  std::vector<std::uint16_t> ports;
  for (const std::string& text : args.positional()) ports.push_back(port_value("skopos fence:", text));
  if (command == "apply" ? ports.empty() : !ports.empty()) {
    throw FatalError("skopos fence " + command + (command == "apply" ? ": which ports?" : ": takes no ports"));
  }
  const std::vector<FamilyFence> fences = fence_families(options, config.fence.ipv6_on());
  const auto failed = [&](const Error& error) {
    std::fprintf(stderr, "skopos: fence: %s\n", error.message().c_str());
    return kExitFailed;
  };
  if (command == "show" || (command == "apply" && !config.dry_run)) {
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
