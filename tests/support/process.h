// Running a program from a test: argv (no shell), optional standard input, and what it
// printed and how it exited.
#pragma once

#include <string>
#include <vector>

namespace skopos::testing {

struct ProcessResult {
  int exit_code = -1;  // the exit status, or 128 + signal number if a signal ended it
  std::string out;
  std::string err;
};

// Runs argv[0] (searched in PATH) with `input` on its standard input, and waits for it.
// Aborts the test binary if the program cannot even be started.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& input = {});

}  // namespace skopos::testing
