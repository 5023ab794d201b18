// ZooKeeper health against real ZooKeeper 3.8 servers started by the test: standalone,
// a 3-server ensemble that keeps its quorum when the leader dies and loses it when a
// second server dies (while the survivor still answers "imok"), and servers with the
// four-letter words disabled.
#include <gtest/gtest.h>

#include <thread>

#include "driver/zookeeper_health.h"
#include "zookeeper_server.h"

namespace skopos::driver {
namespace {

using namespace std::chrono_literals;

ZkEnsembleHealth wait_for(const std::vector<std::string>& endpoints, bool healthy, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  ZkEnsembleHealth health = check_zookeeper(endpoints, 2s);
  while (health.healthy != healthy && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(200ms);
    health = check_zookeeper(endpoints, 2s);
  }
  return health;
}

TEST(ZooKeeperHealth, AStandaloneServerIsHealthy) {
  auto zk = skopos::testing::ZooKeeperEnsemble::start(1);
  const ZkEnsembleHealth health = check_zookeeper(zk->endpoints(), 2s);
  EXPECT_TRUE(health.healthy) << health.summary;
  ASSERT_EQ(health.servers.size(), 1u);
  EXPECT_EQ(health.servers[0].mode, "standalone");
  EXPECT_TRUE(health.servers[0].imok);
  EXPECT_NE(health.servers[0].version.find("3."), std::string::npos);
}

TEST(ZooKeeperHealth, AnEnsembleKeepsQuorumWithoutItsLeaderAndLosesItWithoutTwoServers) {
  auto zk = skopos::testing::ZooKeeperEnsemble::start(3);
  const auto endpoints = zk->endpoints();
  ZkEnsembleHealth health = wait_for(endpoints, true, 30s);
  ASSERT_TRUE(health.healthy) << health.summary;
  int leaders = 0;
  int followers = 0;
  for (const ZkServerHealth& server : health.servers) {
    leaders += server.mode == "leader" ? 1 : 0;
    followers += server.mode == "follower" ? 1 : 0;
  }
  EXPECT_EQ(leaders, 1);
  EXPECT_EQ(followers, 2);
  const int leader = zk->leader();
  ASSERT_GE(leader, 0);
  EXPECT_EQ(health.leader, endpoints[static_cast<std::size_t>(leader)]);
  EXPECT_EQ(health.servers[static_cast<std::size_t>(leader)].synced_followers, 2);

  zk->kill(leader);
  health = wait_for(endpoints, true, 30s);
  EXPECT_TRUE(health.healthy) << "two of three keep the quorum: " << health.summary;
  EXPECT_NE(health.leader, endpoints[static_cast<std::size_t>(leader)]) << "a new leader was elected";
  EXPECT_FALSE(health.servers[static_cast<std::size_t>(leader)].reachable);

  const int second = zk->leader();
  ASSERT_GE(second, 0);
  zk->kill(second);
  health = wait_for(endpoints, false, 30s);
  EXPECT_FALSE(health.healthy) << "one of three has no quorum: " << health.summary;
  int survivor = 3 - leader - second;
  const ZkServerHealth& alone = health.servers[static_cast<std::size_t>(survivor)];
  EXPECT_TRUE(alone.reachable);
  EXPECT_TRUE(alone.imok) << "ruok still says imok without a quorum: ruok alone is not health";
  EXPECT_FALSE(alone.serving);
  EXPECT_NE(alone.error.find("not serving"), std::string::npos) << alone.error;

  zk->restart(leader);
  health = wait_for(endpoints, true, 60s);
  EXPECT_TRUE(health.healthy) << "back to two of three: " << health.summary;
}

TEST(ZooKeeperHealth, DisabledFourLetterWordsAreAClearError) {
  auto zk = skopos::testing::ZooKeeperEnsemble::start(1, false);
  const ZkEnsembleHealth health = check_zookeeper(zk->endpoints(), 2s);
  EXPECT_FALSE(health.healthy);
  EXPECT_NE(health.servers[0].error.find("4lw.commands.whitelist"), std::string::npos) << health.servers[0].error;
  const std::string dead = "127.0.0.1:" + std::to_string(skopos::testing::free_loopback_port());
  const ZkServerHealth gone = check_zookeeper_server(dead, 1s);
  EXPECT_FALSE(gone.reachable);
  EXPECT_NE(gone.error.find(dead), std::string::npos) << gone.error;
}

}  // namespace
}  // namespace skopos::driver
