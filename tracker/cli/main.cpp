// tracker-cli: look at connection counts. Wiring only; each subcommand lives in its
// own file.
#include <cstdio>
#include <cstring>
#include <string_view>

#include "commands.h"
#include "skopos/build_info.h"
#include "skopos/result.h"

namespace {

constexpr const char* kUsage =
    "usage: tracker-cli <command> [options]\n"
    "\n"
    "commands:\n"
    "  decode FILE...   decode saved or live /proc/net/tcp and tcp6 files: per-port counts\n"
    "                   by TCP state, ESTABLISHED split into inbound and outbound\n"
    "  netns            the same for every network namespace of this machine, live\n"
    "  snapshot         the running tracker's counts per container, once\n"
    "  watch NAME...    follow containers' inbound counts; --until-zero waits for 0\n"
    "  top              a live view of every container's connections\n"
    "\n"
    "Run 'tracker-cli <command> --help' for a command's options; 'tracker-cli --version'\n"
    "for the version and build.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "--version") == 0) {
    std::fputs(skopos::version_text("tracker-cli").c_str(), stdout);
    return 0;
  }
  const std::string_view command = argv[1];
  try {
    if (command == "decode") return skopos::tracker::cli::decode_command(argc, argv);
    if (command == "netns") return skopos::tracker::cli::netns_command(argc, argv);
    if (command == "snapshot") return skopos::tracker::cli::snapshot_command(argc, argv);
    if (command == "watch") return skopos::tracker::cli::watch_command(argc, argv);
    if (command == "top") return skopos::tracker::cli::top_command(argc, argv);
    std::fprintf(stderr, "tracker-cli: unknown command '%s'\n\n%s", argv[1], kUsage);
    return 2;
  } catch (const skopos::FatalError& error) {
    std::fprintf(stderr, "%s\n", error.message().c_str());
    if (!error.hint().empty()) std::fprintf(stderr, "hint: %s\n", error.hint().c_str());
    return 2;
  }
}
