// Running a program from a test: argv (no shell), optional standard input, and what it
// printed and how it exited.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "skopos/result.h"
#include "skopos/unique_fd.h"

namespace skopos::testing {

struct ProcessResult {
  int exit_code = -1;  // the exit status, or 128 + signal number if a signal ended it
  std::string out;
  std::string err;
};

// Runs argv[0] (searched in PATH) with `input` on its standard input, and waits for it.
// Aborts the test binary if the program cannot even be started.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& input = {});

// The whole file, "" when it cannot be read.
std::string read_file(const std::string& path);

// What a Markdown file holds between the lines "<!-- NAME -->" and "<!-- end NAME -->"
// (a table the docs carry and a test compares with a binary's output); nullopt when a
// marker is missing.
std::optional<std::string> marked_section(const std::string& path, const std::string& name);
// Replaces the file's contents (or writes a /proc/sys setting); false when it failed.
bool write_file(const std::string& path, const std::string& text);

// A TCP connection to 127.0.0.1:`port`; an invalid fd when it is refused.
UniqueFd connect_loopback(std::uint16_t port);

// A TCP port on 127.0.0.1 that nothing listens on right now.
std::uint16_t free_loopback_port();

// Sends `bytes` to 127.0.0.1:`port` and returns everything the server sends back until
// it closes (each wait bounded by `timeout`); "" if the connection failed. For talking
// to servers under test without the code under test: ZooKeeper's four-letter words, or
// HTTP/1.0 as loopback_http() writes it.
std::string loopback_exchange(std::uint16_t port, const std::string& bytes,
                              std::chrono::milliseconds timeout = std::chrono::seconds(5));
// One HTTP/1.0 request (JSON body) to 127.0.0.1:`port`; the response body, "" on failure.
std::string loopback_http(std::uint16_t port, const std::string& method, const std::string& path,
                          const std::string& body = {});

// Runs argv (no shell) and returns its standard output; an error if it cannot start or
// exits non-zero (with its standard error in the detail).
Result<std::string> run_command(const std::vector<std::string>& argv);

// A long-running child (a daemon under test): its standard output is read line by line,
// its standard error goes to the test's. Killed (SIGKILL) on destruction if still alive,
// and by the kernel when the test process dies, however it dies (PR_SET_PDEATHSIG).
class ChildProcess {
 public:
  // Starts argv[0] (searched in PATH); aborts the test binary if it cannot. A non-empty
  // `stderr_path` receives the child's standard error instead (appended).
  explicit ChildProcess(const std::vector<std::string>& argv, const std::string& stderr_path = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // The next line of output (without its newline), or nullopt if none came within
  // `timeout` or the output ended.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  // Sends `signal` (0: none, just wait) and waits up to `timeout` for the exit; returns the exit code as
  // ProcessResult does, or -1 if it did not exit in time (it is then killed).
  int stop(int signal, std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string pending_;
  bool eof_ = false;
};

}  // namespace skopos::testing
