// A private podman for container tests: its own storage and run directories under /tmp,
// runc as the runtime (crun fails on this kernel's hybrid cgroup layout), a config that
// does not raise RLIMIT_NOFILE (containers cannot here), a local busybox image (no
// registry is reachable), and `podman system service` serving the Docker Engine API on a
// Unix socket. Destruction removes every container, stops the service and deletes the
// directories. Needs root.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "process.h"
#include "skopos/result.h"

namespace skopos::testing {

class PodmanService {
 public:
  static constexpr const char* kImage = "localhost/skopos-test:latest";

  static Result<std::unique_ptr<PodmanService>> start();
  ~PodmanService();
  PodmanService(const PodmanService&) = delete;
  PodmanService& operator=(const PodmanService&) = delete;

  // The Docker Engine API socket.
  const std::string& socket() const { return socket_; }
  // Runs `podman <global flags> args...`; its standard output.
  Result<std::string> podman(const std::vector<std::string>& args) const;
  // `podman run -d args...`; the new container's id.
  Result<std::string> run_detached(const std::vector<std::string>& args) const;

 private:
  explicit PodmanService(std::string dir) : dir_(std::move(dir)) {}
  std::vector<std::string> global_flags() const;

  std::string dir_;
  std::string socket_;
  std::unique_ptr<ChildProcess> service_;
};

}  // namespace skopos::testing
