// tracker-cli subcommands. Each returns the process exit code: 0 success, 1 the work
// failed (bad input, unreadable file), 2 a usage error (thrown as FatalError).
#pragma once

namespace skopos::tracker::cli {

int decode_command(int argc, char** argv);
int netns_command(int argc, char** argv);
int snapshot_command(int argc, char** argv);
int watch_command(int argc, char** argv);
int top_command(int argc, char** argv);

}  // namespace skopos::tracker::cli
