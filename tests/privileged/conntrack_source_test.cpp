// ConntrackSource against the real conntrack table of a namespace the test owns, with a
// DNAT rule in that namespace (so nothing touches the host's iptables): flows into the
// rewritten port are counted per container end, leave the count when they close, and an
// event-socket overflow is counted and repaired by a dump.
#include <chrono>
#include <thread>

#include "privileged_support.h"
#include "tracker/conntrack_source.h"

namespace skopos::tracker {
namespace {

using skopos::testing::run_command;
using skopos::testing::tcp_accept;
using skopos::testing::tcp_connect;
using skopos::testing::tcp_listen;
using skopos::testing::TestNetns;

constexpr std::uint16_t kPublished = 18080;
constexpr std::uint16_t kContainerPort = 8080;

IpAddress loopback() {
  IpAddress address{};
  EXPECT_TRUE(parse_ip_address("127.0.0.1", address));
  return address;
}

// Updates until established(127.0.0.1:8080) == want or 5 s pass.
std::uint32_t settle(ConntrackSource& source, std::uint32_t want) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::uint32_t have = 0;
  do {
    auto status = source.update();
    EXPECT_TRUE(status) << status.error().message();
    have = source.established(loopback(), kContainerPort);
    if (have == want) return have;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  } while (std::chrono::steady_clock::now() < deadline);
  return have;
}

struct Pair {
  UniqueFd client;
  UniqueFd server;
};

class PrivilegedConntrack : public ::testing::Test {
 protected:
  void SetUp() override {
    SKOPOS_REQUIRE_ROOT();
    auto netns = TestNetns::create("skopos-ct");
    ASSERT_TRUE(netns) << netns.error().message();
    netns_ = std::move(*netns);
    // Locally generated traffic to the published port is rewritten to the container
    // port, as Docker's and CNI's port forwarding does for 127.0.0.1.
    ASSERT_TRUE(run_command({"ip", "netns", "exec", netns_->name(), "iptables", "-t", "nat", "-A", "OUTPUT", "-p",
                             "tcp", "-d", "127.0.0.1", "--dport", std::to_string(kPublished), "-j", "DNAT",
                             "--to-destination", "127.0.0.1:" + std::to_string(kContainerPort)}));
    TestNetns::Inside inside(*netns_);
    listener_ = tcp_listen("127.0.0.1", kContainerPort, true, 4096);
  }

  Pair open() {
    TestNetns::Inside inside(*netns_);
    Pair pair;
    pair.client = tcp_connect("127.0.0.1", kPublished);
    pair.server = tcp_accept(listener_.get());
    return pair;
  }

  std::unique_ptr<ConntrackSource> create(unsigned buffer = ConntrackSource::kDefaultEventBuffer) {
    TestNetns::Inside inside(*netns_);  // the netlink socket belongs to this namespace
    auto source = ConntrackSource::create(buffer);
    EXPECT_TRUE(source) << source.error().message();
    return source ? std::move(*source) : nullptr;
  }

  std::unique_ptr<TestNetns> netns_;
  UniqueFd listener_;
};

TEST_F(PrivilegedConntrack, CountsDnatFlowsFromDumpAndEvents) {
  std::vector<Pair> before;
  for (int i = 0; i < 4; ++i) before.push_back(open());
  auto source = create();
  ASSERT_NE(source, nullptr);
  EXPECT_EQ(source->established(loopback(), kContainerPort), 4u) << "the first dump finds existing flows";

  // Flows opened after the subscription are followed by events alone.
  std::vector<Pair> after;
  for (int i = 0; i < 5; ++i) after.push_back(open());
  EXPECT_EQ(settle(*source, 9), 9u);
  EXPECT_EQ(source->established(loopback()), 9u) << "any port of the container";
  IpAddress other{};
  ASSERT_TRUE(parse_ip_address("10.1.2.3", other));
  EXPECT_EQ(source->established(other), 0u);
  after.erase(after.begin(), after.begin() + 3);
  EXPECT_EQ(settle(*source, 6), 6u);

  // Flows older than the subscription send no events (nf_conntrack_events=2); their
  // closing is seen by the next dump.
  before.erase(before.begin(), before.begin() + 3);
  ASSERT_TRUE(source->resync());
  EXPECT_EQ(source->established(loopback(), kContainerPort), 3u);
  before.clear();
  after.clear();
  ASSERT_TRUE(source->resync());
  EXPECT_EQ(settle(*source, 0), 0u);
  EXPECT_EQ(source->stats().overflows, 0u);
}

TEST_F(PrivilegedConntrack, EventOverflowIsCountedAndRepairedByADump) {
  // The smallest buffer the kernel allows, and no reads while thousands of events pile
  // up: the socket must overflow.
  auto source = create(1);
  ASSERT_NE(source, nullptr);
  std::vector<Pair> held;
  for (int i = 0; i < 2000; ++i) {
    Pair pair = open();
    if (i % 100 == 0) held.push_back(std::move(pair));
  }
  auto status = source->update();
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_GE(source->stats().overflows, 1u);
  EXPECT_GE(source->stats().dumps, 2u);
  EXPECT_EQ(settle(*source, 20), 20u) << "after the dump, exactly the 20 flows still open";
}

}  // namespace
}  // namespace skopos::tracker
