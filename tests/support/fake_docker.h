// A fake Docker Engine API on a Unix socket, for tests that need containers without
// podman: GET /containers/json, GET /containers/{id}/json and a streaming GET /events,
// answered from containers the test declares. A container is any process (its pid
// gives the tracker the network namespace), typically a child parked in a test netns.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "skopos/unique_fd.h"

namespace skopos::testing {

class FakeDocker {
 public:
  struct Container {
    std::string id;  // 64 hex characters
    std::string name;
    pid_t pid = 0;
    std::string network_mode = "bridge";
    std::string marathon_app_id;
    std::string mesos_task_id;
  };

  explicit FakeDocker(std::string socket_path);
  ~FakeDocker();
  FakeDocker(const FakeDocker&) = delete;
  FakeDocker& operator=(const FakeDocker&) = delete;

  const std::string& socket() const { return socket_; }
  // Adds (or replaces) a running container and sends a "start" event.
  void start(const Container& container);
  // Removes it and sends a "die" event.
  void stop(const std::string& id);

  static std::string make_id(int n);  // a 64-hex id from a number

 private:
  void serve();
  void handle(int fd);
  std::string inspect_json(const Container& c) const;
  void broadcast(const std::string& action, const Container& c);

  std::string socket_;
  UniqueFd listener_;
  UniqueFd wake_read_;
  UniqueFd wake_write_;
  std::mutex mutex_;
  std::map<std::string, Container> containers_;
  std::vector<int> event_streams_;
  std::thread thread_;
};

// A process parked inside a network namespace until destroyed: a container's pid.
class ParkedProcess {
 public:
  // Joins the namespace `netns_fd` refers to.
  explicit ParkedProcess(int netns_fd);
  // Makes a network namespace of its own (loopback up), as a container runtime does.
  static std::unique_ptr<ParkedProcess> with_own_netns();
  ~ParkedProcess();
  ParkedProcess(const ParkedProcess&) = delete;
  ParkedProcess& operator=(const ParkedProcess&) = delete;
  pid_t pid() const { return pid_; }
  // Where its namespace can be entered from.
  std::string netns_path() const { return "/proc/" + std::to_string(pid_) + "/ns/net"; }

 private:
  ParkedProcess() = default;
  pid_t pid_ = -1;
};

}  // namespace skopos::testing
