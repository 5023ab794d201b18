// Reading ZooKeeper's four-letter-word answers: srvr's mode, the "not serving" answer of
// a server without a quorum, a disabled word, and the leader's synced followers.
#include "driver/zookeeper_health.h"

#include <gtest/gtest.h>

namespace skopos::driver {
namespace {

ZkServerHealth server() {
  ZkServerHealth health;
  health.endpoint = "zk-1:2181";
  return health;
}

TEST(ZooKeeperAnswers, SrvrGivesTheModeOrSaysWhyNot) {
  ZkServerHealth leader = server();
  ASSERT_TRUE(read_srvr("Zookeeper version: 3.8.0-abc, built on 2022-02-25\nLatency min/avg/max: 0/0.0/0\n"
                        "Received: 10\nSent: 9\nConnections: 1\nOutstanding: 0\nZxid: 0x100000002\nMode: leader\n"
                        "Node count: 5\n",
                        leader));
  EXPECT_TRUE(leader.serving);
  EXPECT_EQ(leader.mode, "leader");
  EXPECT_EQ(leader.version, "3.8.0-abc, built on 2022-02-25");

  ZkServerHealth lost = server();
  EXPECT_FALSE(read_srvr("This ZooKeeper instance is not currently serving requests\n", lost));
  EXPECT_EQ(lost.error, "zk-1:2181 is not serving requests (no quorum)");

  ZkServerHealth off = server();
  EXPECT_FALSE(read_srvr("srvr is not executed because it is not in the whitelist.\n", off));
  EXPECT_NE(off.error.find("4lw.commands.whitelist"), std::string::npos) << off.error;

  ZkServerHealth garbled = server();
  EXPECT_FALSE(read_srvr(std::string("\x01\x02garbage\n", 10), garbled));
  EXPECT_EQ(garbled.error, "zk-1:2181 answered srvr without a mode: '??garbage?'") << "no raw bytes in a log line";
}

TEST(ZooKeeperAnswers, SyncedFollowersAreACountOrUnknown) {
  EXPECT_EQ(read_synced_followers("zk_version\t3.8.0\nzk_synced_followers\t2\nzk_pending_syncs\t0\n"), 2);
  EXPECT_EQ(read_synced_followers("zk_version\t3.8.0\n"), -1) << "a follower has none";
  EXPECT_EQ(read_synced_followers("zk_synced_followers\tmany\n"), -1);
  EXPECT_EQ(read_synced_followers("zk_synced_followers\t-3\n"), -1);
  EXPECT_EQ(read_synced_followers("mntr is not executed because it is not in the whitelist.\n"), -1);
}

}  // namespace
}  // namespace skopos::driver
