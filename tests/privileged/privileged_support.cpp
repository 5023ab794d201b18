#include "privileged_support.h"

#include "process.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace skopos::testing {

bool privileged_required() {
  const char* value = std::getenv("SKOPOS_REQUIRE_PRIVILEGED");
  return value != nullptr && std::string(value) == "1";
}

std::string privilege_problem() {
  if (::geteuid() != 0) return "not running as root";
  return {};
}

Result<std::unique_ptr<TestNetns>> TestNetns::create(const std::string& prefix) {
  static std::atomic<int> sequence{0};
  const std::string name = prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(sequence++);
  if (auto added = run_command({"ip", "netns", "add", name}); !added) return unexpected(added.error());
  auto cleanup_on_error = [&](Error error) -> Result<std::unique_ptr<TestNetns>> {
    (void)run_command({"ip", "netns", "delete", name});
    return unexpected(std::move(error));
  };
  if (auto up = run_command({"ip", "-n", name, "link", "set", "lo", "up"}); !up) return cleanup_on_error(up.error());
  const std::string path = "/run/netns/" + name;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return cleanup_on_error(Error::from_errno(errno, "open", path));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return cleanup_on_error(Error::from_errno(errno, "fstat", path));
  return std::unique_ptr<TestNetns>(new TestNetns(name, std::move(fd), static_cast<std::uint32_t>(st.st_ino)));
}

TestNetns::~TestNetns() {
  fd_.reset();
  if (auto deleted = run_command({"ip", "netns", "delete", name_}); !deleted) {
    ADD_FAILURE() << "cleanup: " << deleted.error().message();
  }
}

TestNetns::Inside::Inside(const TestNetns& netns)
    : previous_(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
  if (!previous_) {
    ADD_FAILURE() << "open /proc/thread-self/ns/net: " << std::strerror(errno);
    std::abort();
  }
  if (::setns(netns.fd(), CLONE_NEWNET) != 0) {
    ADD_FAILURE() << "setns into " << netns.name() << ": " << std::strerror(errno);
    std::abort();
  }
}

TestNetns::Inside::~Inside() {
  if (::setns(previous_.get(), CLONE_NEWNET) != 0) {
    // Staying in the test namespace would poison every later test: stop here.
    std::fprintf(stderr, "setns back to the original namespace failed: %s\n", std::strerror(errno));
    std::abort();
  }
}

}  // namespace skopos::testing

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace skopos::testing {

namespace {

sockaddr_storage socket_address(const std::string& address, std::uint16_t port, socklen_t& length) {
  sockaddr_storage storage{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof(sockaddr_in6);
  } else {
    ADD_FAILURE() << "not an address: " << address;
  }
  return storage;
}

}  // namespace

UniqueFd tcp_listen(const std::string& address, std::uint16_t port, bool v6_only, int backlog) {
  socklen_t length = 0;
  const sockaddr_storage sa = socket_address(address, port, length);
  UniqueFd fd(::socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_TRUE(fd) << "socket: " << std::strerror(errno);
  const int one = 1;
  const int v6_only_value = v6_only ? 1 : 0;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (sa.ss_family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6_only_value, sizeof v6_only_value);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), length), 0)
      << "bind " << address << ":" << port << ": " << std::strerror(errno);
  EXPECT_EQ(::listen(fd.get(), backlog), 0) << "listen: " << std::strerror(errno);
  return fd;
}

UniqueFd tcp_connect(const std::string& address, std::uint16_t port) {
  socklen_t length = 0;
  const sockaddr_storage sa = socket_address(address, port, length);
  UniqueFd fd(::socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_TRUE(fd) << "socket: " << std::strerror(errno);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), length), 0)
      << "connect " << address << ":" << port << ": " << std::strerror(errno);
  return fd;
}

UniqueFd tcp_accept(int listener) {
  UniqueFd fd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  EXPECT_TRUE(fd) << "accept: " << std::strerror(errno);
  return fd;
}

std::uint16_t local_port(int fd) {
  sockaddr_storage sa{};
  socklen_t length = sizeof sa;
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &length), 0);
  return sa.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&sa)->sin_port)
                                 : ntohs(reinterpret_cast<sockaddr_in6*>(&sa)->sin6_port);
}

}  // namespace skopos::testing
