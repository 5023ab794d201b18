// Running a program as the driver's side effects need (iptables-restore, a reboot
// command): fork/exec with an argv array (never a shell), text on its standard input,
// its output and exit status, and a deadline after which it is killed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "skopos/result.h"

namespace skopos {

struct ProgramOutput {
  int exit_code = -1;  // the exit status, or 128 + signal number
  std::string out;
  std::string err;
};

// Runs argv[0] (searched in PATH), in a process group of its own (so a terminal's Ctrl-C
// does not reach it: the caller's deadline ends it), with this process's
// environment and `environment` ("NAME=value" replaces a variable of that name, "NAME"
// unsets it). Errors: it could not be started, or it ran past `timeout` (then its
// whole group was killed with SIGKILL). A non-zero exit is not an error here: the
// caller reads exit_code and err. Each output stream keeps its first 4 MiB.
Result<ProgramOutput> run_program(const std::vector<std::string>& argv, const std::string& input,
                                  std::chrono::milliseconds timeout, const std::vector<std::string>& environment = {});

// As run_program, but what it printed is kept however it ended, and `stop` (when not
// null; looked at every 50 ms) ends it early: its group gets SIGTERM, and SIGKILL
// after `stop_grace`. An error only when it could not be started.
struct ProgramRun {
  enum class End : std::uint8_t { kExited, kTimedOut, kStopped };
  End end = End::kExited;
  ProgramOutput output;  // exit_code is meaningful for kExited
};
Result<ProgramRun> run_program_until(const std::vector<std::string>& argv, const std::string& input,
                                     std::chrono::milliseconds timeout, const std::vector<std::string>& environment,
                                     const std::atomic<bool>* stop,
                                     std::chrono::milliseconds stop_grace = std::chrono::seconds(2));

}  // namespace skopos
