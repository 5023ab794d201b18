#include "cli_options.h"

#include <cstdio>
#include <cstdlib>

namespace skopos::tracker::cli {

const OptionTable<CliConfig>& cli_options_table() {
  static const OptionTable<CliConfig> table = [] {
    using C = CliConfig;
    OptionTable<C> t("tracker-cli");
    t.flag("json", "one JSON document instead of a table", &C::json);
    t.flag("records", "every decoded line instead of counts", &C::records);
    t.text("kernel", "NAME",
           "decoder implementation: auto (the fastest measured on\nthis CPU), portable, avx2, avx512, or parser (the "
           "full\nparser on every line)",
           &C::kernel);
    t.text("socket", "PATH",
           "the tracker's stream socket (default $SKOPOS_TRACKER_SOCKET\nor /run/skopos/tracker.sock)", &C::socket);
    t.text("name", "N,...", "only these containers (names; comma-separated)", &C::names);
    t.text("id", "ID,...", "only these containers (ids or 12+ character id prefixes)", &C::ids);
    t.text("app", "APP,...", "only these Marathon apps' containers", &C::apps);
    t.text("task", "TASK,...", "only these Mesos tasks' containers", &C::tasks);
    t.flag("until-zero",
           "exit 0 as soon as every named container is known to the\ntracker with 0 inbound connections",
           &C::until_zero);
    t.duration("timeout", "give up after D: with --until-zero, exit 1 and print who\nstill holds connections",
               &C::timeout);
    return t;
  }();
  return table;
}

std::optional<CommandLine> parse_command_line(const std::string& command, const std::vector<std::string_view>& names,
                                              const char* help, int argc, char** argv) {
  OptionTable<CliConfig> table = cli_options_table().only(names, command);
  table.flag("help", "this help", &CliConfig::help);
  const CliArgs args = CliArgs::parse(table.spec(), argc, argv, 2);
  CommandLine out;
  table.read(args, out.config);
  if (out.config.help) {
    std::string text = help;
    if (const auto at = text.find("%s"); at != std::string::npos) {
      text.replace(at, 2, cli_options_table().only(names, command).help());
    }
    std::fputs(text.c_str(), stdout);
    return std::nullopt;
  }
  out.positional = args.positional();
  return out;
}

ClientOptions client_options(const CliConfig& config) {
  ClientOptions options;
  const char* env = std::getenv("SKOPOS_TRACKER_SOCKET");
  options.path = !config.socket.empty()                ? config.socket
                 : env != nullptr && env[0] != '\0'     ? std::string(env)
                                                        : std::string("/run/skopos/tracker.sock");
  options.filter.names = split_list(config.names);
  options.filter.ids = split_list(config.ids);
  options.filter.marathon_app_ids = split_list(config.apps);
  options.filter.mesos_task_ids = split_list(config.tasks);
  return options;
}

}  // namespace skopos::tracker::cli
