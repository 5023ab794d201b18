// skopos: the drain driver's CLI. Wiring only; each subcommand lives in its own file.
#include <cstdio>
#include <cstring>
#include <string_view>

#include "commands.h"
#include "drain_runtime.h"
#include "global_options.h"
#include "skopos/build_info.h"
#include "skopos/cli_args.h"
#include "skopos/http_tls.h"
#include "skopos/result.h"

namespace {

constexpr const char* kUsage =
    "usage: skopos <command> [arguments] [options]\n"
    "\n"
    "commands:\n"
    "  lock         the cluster's semaphores (per lock and tier) and this host's lock\n"
    "  maintenance  the Mesos maintenance schedule, machines down and up, agent draining\n"
    "  fence        refuse new connections to task ports (iptables), show, remove\n"
    "  drain        take this host out of service without failing a request (--reboot:\n"
    "               and reboot it); resumes after a crash; --dry-run shows the plan\n"
    "  undrain      bring this host back (= drain --abort)\n"
    "  booster      the end-of-life drain (no reboot, optional Mesos mark_gone)\n"
    "  agent        the reboot daemon under systemd: waits for a trigger, drains,\n"
    "               reboots, recovers after boot\n"
    "  rolling-reboot  ask every host of a tier to reboot, one (or max) at a time\n"
    "  window       maintenance windows: when a tier's or a host's agent may start a reboot\n"
    "\n"
    "Run 'skopos <command> --help' for a command's arguments and options\n"
    "('skopos --help-markdown': the shared ones as the README's tables; 'skopos --version':\n"
    "the version and build).\n"
    "\n"
    "Exit status: 0 done; 1 timed out waiting; 2 usage or configuration error; 3 a system\n"
    "we depend on failed (etcd unreachable, an unknown outcome, unreadable data); 4 refused\n"
    "by the current state; 5 (drain) interrupted at a safe point.\n";

// Every option the commands that share them declare, as the README's tables.
void print_options_markdown() {
  namespace cli = skopos::driver::cli;
  std::printf("Global options (every command):\n\n%s\n", cli::global_options_table().markdown().c_str());
  std::printf("Drain options (`drain`, `undrain`, `booster`, `agent`; the Mesos ones also `maintenance`):\n\n%s\n",
              cli::drain_options_table().markdown().c_str());
  std::printf("`drain`, `undrain` and `booster`:\n\n%s\n", cli::drain_flags_markdown().c_str());
  std::printf("`agent`:\n\n%s", cli::agent_options_markdown().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  namespace cli = skopos::driver::cli;
  skopos::enable_http_tls();  // etcd, Mesos and Marathon may be https://
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? cli::kExitUsage : cli::kExitOk;
  }
  if (std::strcmp(argv[1], "--version") == 0) {
    std::fputs(skopos::version_text("skopos").c_str(), stdout);
    return cli::kExitOk;
  }
  if (std::strcmp(argv[1], "--help-markdown") == 0) {
    print_options_markdown();
    return cli::kExitOk;
  }
  // Global options may come before the command: `skopos --etcd-endpoints X lock status`.
  skopos::commands_first(argc, argv, 1, 1, cli::global_value_options());
  const std::string_view command = argv[1];
  try {
    if (command == "lock") return cli::lock_command(argc, argv);
    if (command == "maintenance") return cli::maintenance_command(argc, argv);
    if (command == "fence") return cli::fence_command(argc, argv);
    if (command == "drain" || command == "undrain" || command == "booster") return cli::drain_command(argc, argv);
    if (command == "agent") return cli::agent_command(argc, argv);
    if (command == "rolling-reboot") return cli::rolling_reboot_command(argc, argv);
    if (command == "window") return cli::window_command(argc, argv);
    std::fprintf(stderr, "skopos: unknown command '%s'\n\n%s", argv[1], kUsage);
    return cli::kExitUsage;
  } catch (const skopos::FatalError& error) {
    std::fprintf(stderr, "%s\n", error.message().c_str());
    if (!error.hint().empty()) std::fprintf(stderr, "hint: %s\n", error.hint().c_str());
    return cli::kExitUsage;
  }
}
