// skopos-test-server: the small HTTP/1.1 server the end-to-end drain tests run in their
// containers, built statically so a container image needs nothing else.
//
//   GET /            200 "<instance>\n"
//   GET /health      200 "ok\n"
//   GET /sleep?ms=N  waits N ms (at most 60000), then 200 "<instance> slept N\n"
//
// Keep-alive connections are served until the client closes them. On SIGTERM it does
// what a well-behaved service does for a graceful stop: it closes its listening socket
// (new connections are refused), finishes every request in flight, answers the next
// request of a kept-alive connection with "Connection: close" and closes it, closes idle
// kept-alive connections, and exits 0 once no connection is left (or after
// --drain-timeout, exiting 1).
//
// Usage: skopos-test-server [--port P] [--address A] [--instance NAME] [--drain-timeout S]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

std::atomic<bool> stopping{false};
std::atomic<int> open_connections{0};

void on_term(int) { stopping = true; }

bool send_all(int fd, const std::string& data) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

std::string response(int status, const std::string& body, bool close) {
  return "HTTP/1.1 " + std::to_string(status) + (status == 200 ? " OK" : " Not Found") +
         "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
         (close ? "\r\nConnection: close" : "") + "\r\n\r\n" + body;
}

// Serves one connection until the client closes it, it asks to close, or we stop.
// `open_connections` was counted up by the acceptor, before this thread started.
void serve(int fd, std::string instance) {
  std::string pending;
  char buffer[8192];
  for (;;) {
    const auto end = pending.find("\r\n\r\n");
    if (end == std::string::npos) {
      // Idle (between requests): wake up now and then to notice a stop.
      pollfd pfd{fd, POLLIN, 0};
      const int ready = ::poll(&pfd, 1, 100);
      if (ready == 0) {
        if (stopping && pending.empty()) break;  // an idle kept-alive connection: close it
        continue;
      }
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      pending.append(buffer, static_cast<std::size_t>(n));
      if (pending.size() > 64 * 1024) break;
      continue;
    }
    const std::string head = pending.substr(0, end);
    pending.erase(0, end + 4);  // GET requests only: no body
    const auto space1 = head.find(' ');
    const auto space2 = head.find(' ', space1 + 1);
    const std::string target = space1 == std::string::npos ? "" : head.substr(space1 + 1, space2 - space1 - 1);
    const bool client_close = head.find("Connection: close") != std::string::npos ||
                              head.find("connection: close") != std::string::npos;
    int status = 200;
    std::string body;
    if (target == "/") {
      body = instance + "\n";
    } else if (target == "/health") {
      body = "ok\n";
    } else if (target.rfind("/sleep?ms=", 0) == 0) {
      const long ms = std::min(60000L, std::max(0L, std::strtol(target.c_str() + 10, nullptr, 10)));
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      body = instance + " slept " + std::to_string(ms) + "\n";
    } else {
      status = 404;
      body = "not found\n";
    }
    const bool close = client_close || stopping;
    if (!send_all(fd, response(status, body, close)) || close) break;
  }
  ::close(fd);
  --open_connections;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 8080;
  std::string address = "0.0.0.0";
  std::string instance = "skopos-test-server";
  int drain_timeout = 120;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string option = argv[i];
    if (option == "--port") {
      port = std::atoi(argv[i + 1]);
    } else if (option == "--address") {
      address = argv[i + 1];
    } else if (option == "--instance") {
      instance = argv[i + 1];
    } else if (option == "--drain-timeout") {
      drain_timeout = std::atoi(argv[i + 1]);
    } else {
      std::fprintf(stderr, "skopos-test-server: unknown option '%s'\n", argv[i]);
      return 2;
    }
  }
  struct sigaction action {};
  action.sa_handler = on_term;
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int yes = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  sockaddr_in bind_address{};
  bind_address.sin_family = AF_INET;
  bind_address.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::inet_pton(AF_INET, address.c_str(), &bind_address.sin_addr) != 1 ||
      ::bind(listener, reinterpret_cast<sockaddr*>(&bind_address), sizeof bind_address) != 0 ||
      ::listen(listener, 1024) != 0) {
    std::fprintf(stderr, "skopos-test-server: cannot listen on %s:%d: %s\n", address.c_str(), port, std::strerror(errno));
    return 1;
  }
  std::fprintf(stderr, "skopos-test-server '%s' listening on %s:%d\n", instance.c_str(), address.c_str(), port);
  while (!stopping) {
    pollfd pfd{listener, POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    ++open_connections;  // before the thread: a stop right now must wait for it
    std::thread(serve, fd, instance).detach();
  }
  ::close(listener);  // new connections are refused from now on
  std::fprintf(stderr, "skopos-test-server '%s' stopping: %d connection(s) to finish\n", instance.c_str(),
               open_connections.load());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(drain_timeout);
  while (open_connections > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const int left = open_connections.load();
  std::fprintf(stderr, "skopos-test-server '%s' stopped with %d connection(s) left\n", instance.c_str(), left);
  return left == 0 ? 0 : 1;
}
