// The `skopos` subcommands; each returns the process exit status (see global_options.h).
#pragma once

#include <set>
#include <string>

namespace skopos::driver::cli {

int lock_command(int argc, char** argv);
int maintenance_command(int argc, char** argv);
int fence_command(int argc, char** argv);
// argv[1] is "drain", "undrain" or "booster".
int drain_command(int argc, char** argv);
int agent_command(int argc, char** argv);
// argv[2] is "pause", "resume" or "pauses" (skopos agent pause ...).
int pause_command(int argc, char** argv);
int rolling_reboot_command(int argc, char** argv);
int window_command(int argc, char** argv);

// The commands' own options as Markdown tables (see `skopos --help-markdown`).
std::string drain_flags_markdown();
std::string agent_options_markdown();
// The commented /etc/skopos/skopos.conf the package installs (`skopos agent
// --example-config`).
std::string agent_example_config();
// Every setting that file may hold (the agent's options, with the drain's and the
// global ones): the settings other commands reading it skip.
std::set<std::string> agent_setting_names();

}  // namespace skopos::driver::cli
