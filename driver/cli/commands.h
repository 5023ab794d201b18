// The `skopos` subcommands; each returns the process exit status (see global_options.h).
#pragma once

namespace skopos::driver::cli {

int lock_command(int argc, char** argv);
int maintenance_command(int argc, char** argv);
int fence_command(int argc, char** argv);

}  // namespace skopos::driver::cli
