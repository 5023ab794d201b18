// `skopos agent` as systemd runs it, for the integration tests and bench_gates: its
// notifications on a socket of the caller's own, everything else (journal, trigger
// file, log, metrics) in a directory of its own, removed when it goes. No Docker,
// tracker or Mesos: those who use it look at when a drain starts and takes its slot,
// not at the drain.
#pragma once

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "process.h"
#include "systemd_support.h"

namespace skopos::testing {

class AgentProcess {
 public:
  // The agent (`skopos` binary) of machine `name` (host name "h-" + name) of tier
  // worker, on etcd `endpoint` under `prefix`, with `extra` options; --recheck is 10
  // min, so whatever wakes it sooner is what the caller looks at.
  AgentProcess(const std::string& skopos, const std::string& endpoint, const std::string& prefix,
               const std::string& name, const std::vector<std::string>& extra = {})
      : dir_(dir_for(name)) {
    std::filesystem::create_directories(dir_);
    notify_ = std::make_unique<NotifySocket>(dir_ + "/notify.sock");
    std::vector<std::string> argv = {
        skopos, "agent", "--etcd-endpoints", endpoint, "--etcd-prefix", prefix, "--machine-id", "agent-" + name,
        "--hostname", "h-" + name, "--journal", dir_ + "/journal", "--trigger-file", dir_ + "/needs_reboot",
        "--reboot-required-file", dir_ + "/reboot-required", "--docker-socket", "unix://" + dir_ + "/no-docker.sock",
        "--tracker-socket", dir_ + "/no-tracker.sock", "--recheck", "10m"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    ::setenv("NOTIFY_SOCKET", notify_->path().c_str(), 1);
    process_ = std::make_unique<ChildProcess>(argv, dir_ + "/agent.log");
    ::unsetenv("NOTIFY_SOCKET");
  }
  ~AgentProcess() { stop(); }
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  // Its directory, known before it starts (for options naming files in it).
  static std::string dir_for(const std::string& name) {
    return "/tmp/skopos-agent-" + name + "-" + std::to_string(::getpid());
  }
  const std::string& dir() const { return dir_; }
  // What it logged so far (its standard error).
  std::string log() const {
    std::ifstream in(dir_ + "/agent.log");
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  // Reads the agent's STATUS= lines until one starts with `prefix` (the line) or `limit`
  // passes ("").
  std::string status_starting(const std::string& prefix, std::chrono::seconds limit) {
    for (auto deadline = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < deadline;) {
      const std::string line = notify_->next(std::chrono::milliseconds(500));
      if (line.rfind("STATUS=" + prefix, 0) == 0) return line;
    }
    return std::string();
  }
  // SIGTERM, then its exit status (-1 if it had to be killed); the directory goes.
  int stop() {
    if (!process_) return 0;
    const int status = process_->stop(SIGTERM, std::chrono::seconds(15));
    process_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    return status;
  }

 private:
  std::string dir_;
  std::unique_ptr<NotifySocket> notify_;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace skopos::testing
