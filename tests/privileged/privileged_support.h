// Helpers for privileged tests: root checks that skip (or, under tools/test.sh as
// root and in CI, fail), network namespaces the test owns, and running commands.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "skopos/result.h"
#include "process.h"
#include "skopos/unique_fd.h"

namespace skopos::testing {

// Why this process cannot run privileged tests, or empty if it can.
std::string privilege_problem();

// Skips the test with the reason -- or fails it when SKOPOS_REQUIRE_PRIVILEGED=1, as
// tools/test.sh sets when it runs as root, so a privileged test never silently skips
// in CI.
#define SKOPOS_REQUIRE_ROOT()                                                                 \
  do {                                                                                        \
    const std::string problem_ = ::skopos::testing::privilege_problem();                      \
    if (!problem_.empty()) {                                                                  \
      if (::skopos::testing::privileged_required()) FAIL() << problem_;                       \
      GTEST_SKIP() << problem_ << "; run as root (sudo tools/test.sh) to enable";             \
    }                                                                                         \
  } while (0)

bool privileged_required();


// A network namespace made with `ip netns add`, loopback up, deleted on destruction.
class TestNetns {
 public:
  static Result<std::unique_ptr<TestNetns>> create(const std::string& prefix);
  ~TestNetns();
  TestNetns(const TestNetns&) = delete;
  TestNetns& operator=(const TestNetns&) = delete;

  const std::string& name() const { return name_; }
  std::uint32_t inode() const { return inode_; }
  int fd() const { return fd_.get(); }

  // While alive, the calling thread is inside the namespace: sockets it creates belong
  // to it and /proc/thread-self/net shows its tables.
  class Inside {
   public:
    explicit Inside(const TestNetns& netns);
    ~Inside();
    Inside(const Inside&) = delete;
    Inside& operator=(const Inside&) = delete;

   private:
    UniqueFd previous_;
  };

 private:
  TestNetns(std::string name, UniqueFd fd, std::uint32_t inode)
      : name_(std::move(name)), fd_(std::move(fd)), inode_(inode) {}
  std::string name_;
  UniqueFd fd_;
  std::uint32_t inode_;
};

}  // namespace skopos::testing

namespace skopos::testing {

// Blocking loopback sockets for tests; each asserts success through gtest.
UniqueFd tcp_listen(const std::string& address, std::uint16_t port, bool v6_only = true, int backlog = 128);
UniqueFd tcp_connect(const std::string& address, std::uint16_t port);
UniqueFd tcp_accept(int listener);
// The local port a socket is bound to.
std::uint16_t local_port(int fd);

}  // namespace skopos::testing
