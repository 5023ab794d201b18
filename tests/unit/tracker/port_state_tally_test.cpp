#include "tracker/port_state_tally.h"

#include <gtest/gtest.h>

namespace skopos::tracker {
namespace {

TEST(PortStateTally, CountsByPortAndState) {
  PortStateTally tally;
  for (int i = 0; i < 37; ++i) tally.add(8080, TcpState::kEstablished);
  tally.add(8080, TcpState::kListen);
  tally.add(8080, TcpState::kTimeWait);
  tally.add(0, TcpState::kClose);
  tally.add(65535, TcpState::kSynSent);
  EXPECT_EQ(tally.count(8080, TcpState::kEstablished), 37u);
  EXPECT_EQ(tally.count(8080, TcpState::kListen), 1u);
  EXPECT_EQ(tally.count(8080, TcpState::kCloseWait), 0u);
  EXPECT_EQ(tally.count(0, TcpState::kClose), 1u);
  EXPECT_EQ(tally.count(65535, TcpState::kSynSent), 1u);
  EXPECT_EQ(tally.ports_in_use(), 3u);
}

// Adding another tally (a part of the same tables counted on its own) sums every cell
// and marks its ports and states in use, whether or not this tally had them.
TEST(PortStateTally, AddingAnotherSumsEveryCellAndKeepsWhatIsInUse) {
  PortStateTally tally;
  tally.add(443, TcpState::kListen);
  for (int i = 0; i < 3; ++i) tally.add(443, TcpState::kEstablished);
  tally.add(40000, TcpState::kTimeWait);
  PortStateTally other;
  for (int i = 0; i < 2; ++i) other.add(443, TcpState::kEstablished);
  other.add(443, TcpState::kCloseWait);
  other.add(40001, TcpState::kTimeWait);
  other.add(65535, TcpState::kSynSent);
  tally.add(other);
  EXPECT_EQ(tally.count(443, TcpState::kListen), 1u);
  EXPECT_EQ(tally.count(443, TcpState::kEstablished), 5u);
  EXPECT_EQ(tally.count(443, TcpState::kCloseWait), 1u);
  EXPECT_EQ(tally.count(40000, TcpState::kTimeWait), 1u);
  EXPECT_EQ(tally.count(40001, TcpState::kTimeWait), 1u);
  EXPECT_EQ(tally.count(65535, TcpState::kSynSent), 1u);
  EXPECT_EQ(tally.count(40001, TcpState::kEstablished), 0u);
  EXPECT_EQ(tally.ports_in_use(), 4u);
  const TallySummary summary = tally.summarize();
  EXPECT_EQ(summary.sockets, 10u);
  EXPECT_EQ(summary.established_inbound, 5u);
  ASSERT_EQ(summary.ports.size(), 4u);
  EXPECT_EQ(summary.ports.back().port, 65535);
  // clear() finds the added states: nothing is left behind.
  tally.clear();
  EXPECT_EQ(tally.ports_in_use(), 0u);
  EXPECT_EQ(tally.count(65535, TcpState::kSynSent), 0u);
  EXPECT_EQ(tally.count(443, TcpState::kCloseWait), 0u);
}

TEST(PortStateTally, SummaryClassifiesEstablishedByListeningPort) {
  PortStateTally tally;
  tally.add(443, TcpState::kListen);
  for (int i = 0; i < 5; ++i) tally.add(443, TcpState::kEstablished);     // accepted
  for (int i = 0; i < 3; ++i) tally.add(40000 + static_cast<std::uint16_t>(i), TcpState::kEstablished);  // dialled out
  tally.add(5432, TcpState::kEstablished);  // no listener: outbound even at a "service" port
  tally.add(9999, TcpState::kListen);       // a listener with no connections

  const TallySummary summary = tally.summarize();
  EXPECT_EQ(summary.established_inbound, 5u);
  EXPECT_EQ(summary.established_outbound, 4u);
  EXPECT_EQ(summary.sockets, 11u);
  EXPECT_EQ(summary.count(TcpState::kListen), 2u);
  ASSERT_EQ(summary.ports.size(), 6u);
  EXPECT_EQ(summary.ports.front().port, 443);
  EXPECT_TRUE(summary.ports.front().listening());
  EXPECT_EQ(summary.ports.front().count(TcpState::kEstablished), 5u);
  EXPECT_EQ(summary.ports.front().counts[0], 0u) << "slot 0 is bookkeeping, not a state";
  EXPECT_EQ(summary.ports.back().port, 40002);
  for (std::size_t i = 1; i < summary.ports.size(); ++i) {
    EXPECT_LT(summary.ports[i - 1].port, summary.ports[i].port);
  }
}

TEST(PortStateTally, ClearForgetsEverythingAndTheTallyIsReusable) {
  PortStateTally tally;
  tally.add(1, TcpState::kEstablished);
  tally.add(2, TcpState::kListen);
  tally.clear();
  EXPECT_EQ(tally.ports_in_use(), 0u);
  EXPECT_EQ(tally.count(1, TcpState::kEstablished), 0u);
  EXPECT_EQ(tally.summarize().sockets, 0u);
  tally.add(1, TcpState::kEstablished);
  EXPECT_EQ(tally.ports_in_use(), 1u);
  EXPECT_EQ(tally.summarize().sockets, 1u);
}

}  // namespace
}  // namespace skopos::tracker
