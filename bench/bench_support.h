// Helpers the root-only benchmark harnesses share: a network namespace of their own,
// loopback connections inside it, and reading a process's CPU time and memory.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <set>
#include <functional>
#include <string>
#include <vector>

#include "skopos/cli_args.h"
#include "skopos/unique_fd.h"

namespace skopos::bench {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what);

// What die() undoes before it exits, newest first, so that a benchmark that fails half
// way leaves no namespace or process behind (a forked child's die() undoes nothing of
// its parent's). at_die() returns a token; the owner passes it to cancel_at_die() once
// it has cleaned up itself. Once a BenchArgs is made, SIGINT, SIGTERM and SIGHUP run the
// same cleanups before the benchmark exits (children started through the test harness's
// ChildProcess die with the benchmark in any case).
int at_die(std::function<void()> cleanup);
void cancel_at_die(int token);

// A benchmark's command line: --help prints `usage` and exits 0; an unknown option, a
// missing value or a value out of range prints what was wrong and the usage to stderr
// and exits 2 -- never a run with defaults the user did not ask for.
class BenchArgs {
 public:
  BenchArgs(const std::string& name, const std::set<std::string>& options, const char* usage, int argc,
            char** argv);
  // A whole number of at least `min`, or `fallback` when not given.
  long number(const std::string& option, long fallback, long min = 1) const;
  std::string text(const std::string& option, const std::string& fallback) const;

 private:
  [[noreturn]] void refuse(const std::string& what) const;
  std::string name_;
  const char* usage_;
  CliArgs args_;
};
double seconds_since(Clock::time_point start);
// Runs argv (no shell) and waits; its exit status.
int run(const std::vector<std::string>& argv);

// `ip netns add` of a namespace named for this process, deleted on destruction.
class BenchNetns {
 public:
  explicit BenchNetns(const std::string& prefix = "skopos-bench");
  ~BenchNetns();
  std::string path() const { return "/run/netns/" + name_; }
  int fd() const { return fd_.get(); }
  std::uint64_t inode() const { return inode_; }

 private:
  std::string name_;
  UniqueFd fd_;
  std::uint64_t inode_ = 0;
  int cleanup_ = -1;  // at_die() token
};

// Moves the calling thread into the namespace `fd` refers to; dies on failure.
void enter_netns(int fd);
// A listener on 127.0.0.1:port with a large backlog.
UniqueFd listen_on(std::uint16_t port);
// One connection to 127.0.0.1:port and its accepted end. With `reset`, close() sends
// RST (no TIME_WAIT left to exhaust ports under churn).
bool connect_pair(int listener, std::uint16_t port, UniqueFd& client, UniqueFd& server, bool reset = false);

// utime + stime of a process, in clock ticks; 0 if it is gone.
std::uint64_t process_cpu_ticks(pid_t pid);
// A field of /proc/<pid>/status in kB ("VmRSS", "VmHWM"); 0 if absent.
std::uint64_t process_status_kb(pid_t pid, const std::string& field);

// This CPU's model name (/proc/cpuinfo), "unknown" when there is none: every goals
// table names the CPU it was measured on.
std::string cpu_model();
// The p-quantile (0..1) of `values` by nearest rank below; 0 for none.
double percentile(std::vector<double> values, double p);

// A measurement, its goal and whether it was met, printed as one table.
struct Row {
  std::string what;
  double value;
  std::string unit;
  std::string goal;
  std::string verdict;
};
void print_rows(const std::vector<Row>& rows);

}  // namespace skopos::bench
