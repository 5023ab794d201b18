#include <gtest/gtest.h>

#include "tracker/connection_counts.h"

namespace skopos::tracker {
namespace {

TEST(NamespaceCounts, KeepsPortsSortedAndDropsEmptyOnes) {
  NamespaceCounts counts;
  counts.set(8080, Direction::kInbound, 3);
  counts.set(443, Direction::kInbound, 2);
  counts.set(5432, Direction::kOutbound, 7);
  counts.add(443, Direction::kOutbound);
  ASSERT_EQ(counts.ports().size(), 3u);
  EXPECT_EQ(counts.ports()[0], (PortConnections{443, 2, 1}));
  EXPECT_EQ(counts.ports()[1], (PortConnections{5432, 0, 7}));
  EXPECT_EQ(counts.ports()[2], (PortConnections{8080, 3, 0}));
  EXPECT_EQ(counts.inbound(), 5u);
  EXPECT_EQ(counts.outbound(), 8u);

  counts.set(8080, Direction::kInbound, 0);
  counts.set(9999, Direction::kOutbound, 0);  // setting an absent port to 0 adds nothing
  EXPECT_EQ(counts.ports().size(), 2u);
  EXPECT_EQ(counts.get(8080, Direction::kInbound), 0u);
  counts.set(443, Direction::kInbound, 0);
  EXPECT_EQ(counts.ports().size(), 2u) << "443 still has an outbound connection";
  EXPECT_EQ(counts.get(443, Direction::kOutbound), 1u);
}

}  // namespace
}  // namespace skopos::tracker
