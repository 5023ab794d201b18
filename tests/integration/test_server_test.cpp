// skopos-test-server, the server the end-to-end drain tests put in containers, stops the
// way the drain relies on: on SIGTERM new connections are refused, a request in flight
// is finished (and its connection closed after it), idle kept-alive connections are
// closed, and it exits 0 once nothing is left.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "process.h"
#include "skopos/unique_fd.h"

namespace {

using namespace std::chrono_literals;
using skopos::UniqueFd;

UniqueFd connect_to(std::uint16_t port, int* error = nullptr) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    if (error != nullptr) *error = errno;
    return UniqueFd();
  }
  return fd;
}

// Everything until the response's body is complete or the peer closes, within `limit`.
std::string read_response(int fd, std::chrono::milliseconds limit) {
  std::string data;
  char buffer[4096];
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const auto end = data.find("\r\n\r\n");
    if (end != std::string::npos) {
      const auto length_at = data.find("Content-Length: ");
      if (length_at != std::string::npos && data.size() >= end + 4 + std::stoul(data.substr(length_at + 16))) return data;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd pfd{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) return data;
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) return data;
    data.append(buffer, static_cast<std::size_t>(n));
  }
}

bool closed_by_peer(int fd, std::chrono::milliseconds limit) {
  pollfd pfd{fd, POLLIN, 0};
  if (::poll(&pfd, 1, static_cast<int>(limit.count())) <= 0) return false;
  char byte;
  return ::recv(fd, &byte, 1, 0) == 0;
}

TEST(TestServer, AGracefulStopFinishesInFlightWorkAndRefusesNewConnections) {
  const std::uint16_t port = skopos::testing::free_loopback_port();
  skopos::testing::ChildProcess server({SKOPOS_TEST_SERVER, "--port", std::to_string(port), "--address", "127.0.0.1",
                                        "--instance", "web-1"});
  UniqueFd kept;
  for (int i = 0; i < 100 && !kept; ++i) {
    std::this_thread::sleep_for(20ms);
    kept = connect_to(port);
  }
  ASSERT_TRUE(kept) << "the server did not start";
  const std::string get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(kept.get(), get.data(), get.size(), 0), static_cast<ssize_t>(get.size()));
  const std::string first = read_response(kept.get(), 2s);
  EXPECT_NE(first.find("200 OK"), std::string::npos) << first;
  EXPECT_NE(first.find("web-1"), std::string::npos);
  EXPECT_EQ(first.find("Connection: close"), std::string::npos) << "kept alive";

  UniqueFd slow = connect_to(port);
  ASSERT_TRUE(slow);
  const std::string sleep = "GET /sleep?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(slow.get(), sleep.data(), sleep.size(), 0), static_cast<ssize_t>(sleep.size()));
  std::this_thread::sleep_for(200ms);
  const auto stop_at = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(server.pid(), SIGTERM), 0);

  std::this_thread::sleep_for(300ms);
  int error = 0;
  EXPECT_FALSE(connect_to(port, &error)) << "new connections are refused while stopping";
  EXPECT_EQ(error, ECONNREFUSED);
  EXPECT_TRUE(closed_by_peer(kept.get(), 2s)) << "an idle kept-alive connection is closed";

  const std::string slept = read_response(slow.get(), 5s);
  EXPECT_NE(slept.find("200 OK"), std::string::npos) << "the request in flight is finished: " << slept;
  EXPECT_NE(slept.find("web-1 slept 1500"), std::string::npos) << slept;
  EXPECT_NE(slept.find("Connection: close"), std::string::npos) << "and its connection closed after it";
  EXPECT_EQ(server.stop(0, 5s), 0) << "exit 0: nothing was left";
  EXPECT_GE(std::chrono::steady_clock::now() - stop_at, 1200ms) << "it waited for the slow request";
}

}  // namespace
