// A real etcd (Debian's etcd-server, 3.4) for tests: one member on loopback ports
// chosen free, a data directory of its own, stopped and deleted on destruction.
#pragma once

#include <memory>
#include <string>

#include "process.h"

namespace skopos::testing {

class EtcdServer {
 public:
  // Starts it and waits (bounded) until it answers. Aborts the test binary if etcd is
  // not installed (tools/install-deps.sh installs it).
  static std::unique_ptr<EtcdServer> start();
  ~EtcdServer();
  const std::string& endpoint() const { return endpoint_; }  // http://127.0.0.1:PORT

 private:
  EtcdServer() = default;
  std::string dir_;
  std::string endpoint_;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace skopos::testing
