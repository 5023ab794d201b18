// ChildProcess forks on a thread of its own (tests/support/process.cpp), yet a child
// starts in the network namespace of the thread that asked for it, as a fork on that
// thread would: tests that enter a namespace of their own (TestNetns::Inside, on their
// thread only) start their servers there, whatever namespace the first child of the
// test binary was started in.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <string>

#include "privileged_support.h"
#include "process.h"

namespace {

using namespace std::chrono_literals;
using skopos::testing::ChildProcess;
using skopos::testing::TestNetns;

ino_t netns_of(pid_t pid) {
  struct stat st {};
  return ::stat(("/proc/" + std::to_string(pid) + "/ns/net").c_str(), &st) == 0 ? st.st_ino : 0;
}

TEST(PrivilegedChildProcess, StartsInTheNetworkNamespaceOfTheThreadThatAsked) {
  SKOPOS_REQUIRE_ROOT();
  // A first child outside, so that the thread that forks is not in the namespace below.
  ChildProcess outside({"sleep", "30"});
  const ino_t host = netns_of(::getpid());
  EXPECT_EQ(netns_of(outside.pid()), host);
  auto netns = TestNetns::create("skopos-child");
  ASSERT_TRUE(netns) << netns.error().message();
  {
    TestNetns::Inside inside(**netns);
    ChildProcess child({"sleep", "30"});
    EXPECT_EQ(netns_of(child.pid()), (*netns)->inode()) << "the child started outside the caller's namespace";
    EXPECT_EQ(child.stop(SIGTERM, 5s), 128 + SIGTERM);
  }
  ChildProcess after({"sleep", "30"});
  EXPECT_EQ(netns_of(after.pid()), host);
  EXPECT_EQ(outside.stop(SIGTERM, 5s), 128 + SIGTERM);
  EXPECT_EQ(after.stop(SIGTERM, 5s), 128 + SIGTERM);
}

}  // namespace
