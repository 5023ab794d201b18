// A real etcd (Debian's etcd-server, 3.4) for tests: one member or a cluster of several
// on loopback ports chosen free, each with a data directory of its own; stopped and
// deleted on destruction. Members can be killed (SIGKILL, as a crash) and restarted on
// their data, and the leader can be found, for fault tests.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "process.h"

namespace skopos::testing {

// Serve clients over TLS with these PEM files, and require client certificates signed by
// `ca_file`.
struct EtcdTls {
  std::string cert_file;
  std::string key_file;
  std::string ca_file;
};

class EtcdServer {
 public:
  // Starts `members` members and waits (bounded) until every one answers /health (on a
  // plain-HTTP metrics port, so this works for TLS members too). Aborts the test binary
  // if etcd is not installed (tools/install-deps.sh installs it).
  static std::unique_ptr<EtcdServer> start(int members = 1, const EtcdTls* tls = nullptr);
  ~EtcdServer();

  const std::string& endpoint() const { return members_.front().client_url; }  // http(s)://127.0.0.1:PORT
  std::uint16_t port(int member = 0) const { return members_[static_cast<std::size_t>(member)].client_port; }
  // Every member's client URL, and the same joined with commas.
  std::vector<std::string> endpoints() const;
  std::string endpoint_list() const;
  int size() const { return static_cast<int>(members_.size()); }

  // SIGKILL: the member stops mid-flight, as a crashed host would.
  void kill(int member);
  // Starts a killed member again on its data and waits until the cluster has a leader.
  void restart(int member);
  bool running(int member) const { return members_[static_cast<std::size_t>(member)].process != nullptr; }
  // The member's process id, or -1 while it is down.
  pid_t pid(int member) const {
    const auto& process = members_[static_cast<std::size_t>(member)].process;
    return process ? process->pid() : -1;
  }
  // The index of the current leader, waiting (bounded) for one; -1 if none emerged.
  int leader(std::chrono::milliseconds timeout = std::chrono::seconds(15)) const;

 private:
  struct Member {
    std::string name;
    std::string dir;
    std::string client_url;
    std::uint16_t client_port = 0;
    std::uint16_t metrics_port = 0;  // plain HTTP /health and /metrics
    std::string peer_url;
    std::unique_ptr<ChildProcess> process;
  };
  EtcdServer() = default;
  void launch(Member& member, bool existing);
  // False when the member exited instead (then `process` is reset).
  bool wait_healthy(Member& member) const;

  std::string dir_;
  UniqueFd owner_lock_;  // flock on dir_/owner.lock while this server lives
  std::string initial_cluster_;
  std::optional<EtcdTls> tls_;
  std::vector<Member> members_;
};

}  // namespace skopos::testing
