// tracker-cli's options, each declared once (skopos/option_table.h): every command takes
// the ones it names, and its --help lists them from the same table.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "skopos/option_table.h"
#include "tracker/stream_client.h"

namespace skopos::tracker::cli {

struct CliConfig {
  bool help = false;
  bool json = false;
  bool records = false;
  bool until_zero = false;
  std::string kernel = "auto";
  std::string socket;  // "": $SKOPOS_TRACKER_SOCKET, else /run/skopos/tracker.sock
  std::string names;
  std::string ids;
  std::string apps;
  std::string tasks;
  std::chrono::milliseconds timeout{std::chrono::seconds(300)};
};
const OptionTable<CliConfig>& cli_options_table();

struct CommandLine {
  CliConfig config;
  std::vector<std::string> positional;
};
// Parses argv[2..) for `command` ("tracker-cli snapshot") with the options `names` and
// --help; anything else is a FatalError naming it. With --help, prints `help` with its
// "%s" replaced by the options' section, and returns nullopt.
std::optional<CommandLine> parse_command_line(const std::string& command, const std::vector<std::string_view>& names,
                                              const char* help, int argc, char** argv);

// --socket (or $SKOPOS_TRACKER_SOCKET, or the default) and the --name/--id/--app/--task
// filters.
ClientOptions client_options(const CliConfig& config);

}  // namespace skopos::tracker::cli
