// A real ZooKeeper (Debian's zookeeper package, 3.8) for tests: one standalone server
// or an ensemble on loopback ports chosen free, each with its own data directory,
// started with QuorumPeerMain directly (the packaged zkServer.sh misreads --config).
// Servers can be killed and restarted; everything is removed on destruction.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "process.h"

namespace skopos::testing {

class ZooKeeperEnsemble {
 public:
  // Starts `servers` servers and waits (bounded) until every one serves (standalone, or
  // leader/follower). `four_letter_words` false leaves them disabled (the default of
  // ZooKeeper 3.5+ except srvr). Aborts the test binary if ZooKeeper is not installed.
  static std::unique_ptr<ZooKeeperEnsemble> start(int servers, bool four_letter_words = true);
  ~ZooKeeperEnsemble();

  std::vector<std::string> endpoints() const;  // "127.0.0.1:PORT"
  void kill(int server);
  void restart(int server);
  // The index of the server whose srvr says "Mode: leader", or -1.
  int leader() const;

 private:
  struct Server {
    std::string dir;
    std::uint16_t client_port = 0;
    std::unique_ptr<ChildProcess> process;
  };
  ZooKeeperEnsemble() = default;
  void launch(Server& server);
  // Writes the configuration with fresh ports and starts every server; false when one
  // exited instead of serving.
  bool configure_and_launch(int count, bool four_letter_words);
  std::string dir_;
  std::vector<Server> servers_;
};

}  // namespace skopos::testing
