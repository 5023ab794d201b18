#include "etcd_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "skopos/unique_fd.h"

namespace skopos::testing {

namespace {

bool answers(std::uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return false;
  const std::string request = "GET /health HTTP/1.0\r\n\r\n";
  (void)!::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL);
  char buffer[512] = {};
  const ssize_t n = ::recv(fd.get(), buffer, sizeof buffer - 1, 0);
  return n > 0 && std::string_view(buffer, static_cast<std::size_t>(n)).find("\"health\":\"true\"") != std::string_view::npos;
}

}  // namespace

std::unique_ptr<EtcdServer> EtcdServer::start() {
  if (::access("/usr/bin/etcd", X_OK) != 0) {
    std::fprintf(stderr, "EtcdServer: /usr/bin/etcd is missing; run tools/install-deps.sh\n");
    std::abort();
  }
  std::unique_ptr<EtcdServer> server(new EtcdServer());
  static int sequence = 0;
  server->dir_ = "/tmp/skopos-etcd-" + std::to_string(::getpid()) + "-" + std::to_string(sequence++);
  std::filesystem::remove_all(server->dir_);
  std::filesystem::create_directories(server->dir_);
  const std::uint16_t client = free_loopback_port();
  const std::uint16_t peer = free_loopback_port();
  server->endpoint_ = "http://127.0.0.1:" + std::to_string(client);
  const std::string peer_url = "http://127.0.0.1:" + std::to_string(peer);
  server->process_ = std::make_unique<ChildProcess>(std::vector<std::string>{
      "/usr/bin/etcd", "--name", "skopos-test", "--data-dir", server->dir_ + "/data", "--listen-client-urls",
      server->endpoint_, "--advertise-client-urls", server->endpoint_, "--listen-peer-urls", peer_url,
      "--initial-advertise-peer-urls", peer_url, "--initial-cluster", "skopos-test=" + peer_url, "--logger", "zap",
      "--log-outputs",
      server->dir_ + "/etcd.log"});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!answers(client)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      std::fprintf(stderr, "EtcdServer: etcd did not become healthy in 20 s (log in %s)\n", server->dir_.c_str());
      std::abort();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return server;
}

EtcdServer::~EtcdServer() {
  if (process_) process_->stop(SIGTERM, std::chrono::seconds(10));
  process_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

}  // namespace skopos::testing
