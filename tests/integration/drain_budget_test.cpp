// The disruption budget across drivers (real etcd, marathon-sim; fakes for the
// host-local systems): while host A waits for its connections, host B -- another machine
// with the other instance of the same app -- is refused, naming A; once A is back, B is
// admitted. Without the cluster-wide claim both passed the check and the app was left
// with no backend.
//
// And surges across drivers: two hosts surging the same app at once each scale it back
// by their own part (the surge ledger in etcd); a surge no host can place is taken back
// and refused; a PUT whose answer was lost is neither repeated nor lost.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "driver/drain.h"
#include "driver/drain_systems_impl.h"
#include "drain_fakes.h"
#include "etcd_server.h"
#include "lock_test_support.h"
#include "simulators.h"

namespace skopos::driver {
namespace {

using namespace std::chrono_literals;
using namespace fakes;
using skopos::testing::Simulator;

constexpr const char* kCluster = R"({
  "instances": 1, "kill_seconds": 0.1, "health_grace_seconds": 0.3,
  "hosts": ["host-a", "host-b", "host-c"],
  "apps": [{"id": "/web", "instances": 2, "tasks": [{"id": "web.a", "host": "host-a"}, {"id": "web.b", "host": "host-b"}]}]
})";

// One host's driver: the real lock service and Marathon steps, fakes for the rest.
struct Host {
  Host(const std::string& etcd, const std::string& prefix, const std::string& marathon_url, const std::string& id)
      : machine(testing::machine({etcd}, prefix, id)),
        locks(*machine.locks),
        marathon(make_marathon(marathon_url)),
        steps(marathon.get()),
        name("host-" + id) {
    world.journal_path = "/tmp/skopos-budget-test-" + std::to_string(::getpid()) + "-" + id + "/journal";
    std::filesystem::remove_all(std::filesystem::path(world.journal_path).parent_path());
  }
  ~Host() { std::filesystem::remove_all(std::filesystem::path(world.journal_path).parent_path()); }

  static std::unique_ptr<Marathon> make_marathon(const std::string& url) {
    MarathonOptions options;
    options.http.endpoints.push_back(*HttpEndpoint::parse(url));
    options.http.timeout = 2s;
    options.poll_interval = 50ms;
    auto created = Marathon::create(options);
    EXPECT_TRUE(created);
    return created ? std::move(*created) : nullptr;
  }

  Result<DrainResult, DrainError> run(bool recover = false) {
    auto journal = Journal::open(world.journal_path);
    EXPECT_TRUE(journal) << journal.error().message();
    DrainOptions options;
    options.kind = DrainKind::kDrain;
    options.hostname = name;
    options.recover_timeout = 20s;
    options.surge = surge;
    options.surge_timeout = surge_timeout;
    Drain drain(DrainSystems{locks, mesos, steps, containers, connections, fence, host}, *journal, options,
                [](const DrainEvent&) {}, world.stop);
    return recover ? drain.recover(true) : drain.run();
  }

  World world;
  testing::Machine machine;
  EtcdDrainLocks locks;
  std::unique_ptr<Marathon> marathon;
  MarathonDrainSteps steps;
  FakeMesos mesos{world};
  FakeContainers containers{world};
  FakeConnections connections{world};
  FakeFence fence{world};
  FakeHost host{world};
  std::string name;
  bool surge = false;
  std::chrono::milliseconds surge_timeout{10s};
};

class DrainBudgetTest : public testing::OneEtcdTest {
 protected:
  void SetUp() override {
    OneEtcdTest::SetUp();
    sim_ = Simulator::start(std::string(SKOPOS_SOURCE_DIR) + "/tools", "marathon-sim", kCluster);
    marathon_ = sim_->list("instances").at(0);
  }
  std::int64_t claims() {
    auto range = raw_->range(prefix_ + "/budget/", EtcdClient::prefix_end(prefix_ + "/budget/"));
    return range ? static_cast<std::int64_t>(range->kvs.size()) : -1;
  }

  std::unique_ptr<Simulator> sim_;
  std::string marathon_;
};

TEST_F(DrainBudgetTest, AHostIsRefusedWhileTheOtherInstanceIsDrainingAndAdmittedOnceItIsBack) {
  Host a(server_->endpoint(), prefix_, marathon_, "a");
  Host b(server_->endpoint(), prefix_, marathon_, "b");

  // A fences and waits for its connections to close.
  a.connections.hold = true;
  std::optional<Result<DrainResult, DrainError>> a_result;
  std::thread a_drain([&] { a_result = a.run(); });
  // Whatever fails below, A's wait ends and its thread is joined (no abort, no leftovers).
  struct Finish {
    Host& host;
    std::thread& thread;
    ~Finish() {
      host.connections.hold = false;
      if (thread.joinable()) thread.join();
    }
  } finish{a, a_drain};
  for (int i = 0; i < 10000 && !a.connections.waiting.load(); ++i) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(a.connections.waiting.load()) << "A reached its wait";
  EXPECT_EQ(claims(), 1) << "A claimed the budget";

  // B holds the only other instance of /web: refused, naming A, leaving nothing.
  auto refused = b.run();
  ASSERT_FALSE(refused) << "B was admitted while A is draining: /web would have no healthy instance";
  EXPECT_EQ(refused.error().kind, DrainError::Kind::kRefused);
  EXPECT_NE(refused.error().message.find("app '/web': 0 healthy elsewhere (not counting 1 on hosts draining now)"),
            std::string::npos)
      << refused.error().message;
  EXPECT_NE(refused.error().message.find("hosts draining now: 'host-a'"), std::string::npos) << refused.error().message;
  EXPECT_FALSE(b.world.called("apply")) << "B fenced nothing";
  EXPECT_EQ(claims(), 1) << "B claimed nothing";

  // A's connections close; it stops, hands its task back (Marathon starts it on host-c)
  // and is drained; then it comes back.
  a.connections.hold = false;
  a_drain.join();
  ASSERT_TRUE(a_result && *a_result) << (a_result && !*a_result ? a_result->error().message : "no result");
  auto back = a.run(true);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(claims(), 0) << "A's claim went with its locks";

  // Now B may go: /web has healthy instances on host-c (the replacement) and host-a.
  auto admitted = b.run();
  ASSERT_TRUE(admitted) << admitted.error().message;
  EXPECT_EQ(admitted->reached, DrainPhase::kDrained);
  EXPECT_EQ(claims(), 1);
  ASSERT_TRUE(b.run(true));
  EXPECT_EQ(claims(), 0);
}

// ---- surges across drivers --------------------------------------------------------------

constexpr const char* kSurgeCluster = R"({
  "instances": 1, "kill_seconds": 0.1, "health_grace_seconds": 0.3,
  "hosts": ["host-a", "host-b", "host-c", "host-d"],
  "apps": [{"id": "/web", "instances": 2, "labels": {"skopos.surge": "true"},
            "tasks": [{"id": "web.a", "host": "host-a"}, {"id": "web.b", "host": "host-b"}]}]
})";

class DrainSurgeAcrossDriversTest : public testing::OneEtcdTest {
 protected:
  void start(const std::string& cluster) {
    sim_ = Simulator::start(std::string(SKOPOS_SOURCE_DIR) + "/tools", "marathon-sim", cluster);
    marathon_ = sim_->list("instances").at(0);
  }
  // marathon-sim's log of every change of /web's count, as its JSON lists it.
  std::string scale_log() const {
    const std::string state = Simulator::get(marathon_, "/__sim/state");
    const auto at = state.find("\"scale_log\": [");
    return at == std::string::npos ? state : state.substr(at + 14, state.find(']', at) - at - 14);
  }
  std::string app() const { return Simulator::get(marathon_, "/v2/apps/web?embed=app.tasks"); }
  std::unique_ptr<Simulator> sim_;
  std::string marathon_;
};

constexpr const char* kUp23 = R"({"app": "/web", "from": 2, "to": 3, "via": "put"})";

TEST_F(DrainSurgeAcrossDriversTest, TwoHostsSurgingTheSameAppAtOnceEachScaleItBackByTheirOwnPart) {
  start(kSurgeCluster);
  Host a(server_->endpoint(), prefix_, marathon_, "a");
  Host b(server_->endpoint(), prefix_, marathon_, "b");
  std::optional<Result<DrainResult, DrainError>> a_result;
  std::optional<Result<DrainResult, DrainError>> b_result;
  std::thread a_drain([&] { a_result = a.run(); });
  std::thread b_drain([&] { b_result = b.run(); });
  a_drain.join();
  b_drain.join();
  ASSERT_TRUE(a_result && *a_result) << (a_result && !*a_result ? a_result->error().message : "no result");
  ASSERT_TRUE(b_result && *b_result) << (b_result && !*b_result ? b_result->error().message : "no result");
  // Two scale-ups of one each, two scale-backs of one each (this host's task killed with
  // scale): /web at the operator's 2, on the two hosts that took the surges.
  const std::string log = scale_log();
  EXPECT_NE(log.find(kUp23), std::string::npos) << log;
  EXPECT_NE(log.find(R"({"app": "/web", "from": 3, "to": 4, "via": "put"})"), std::string::npos) << log;
  EXPECT_NE(log.find(R"({"app": "/web", "from": 4, "to": 3, "via": "kill"})"), std::string::npos) << log;
  EXPECT_NE(log.find(R"({"app": "/web", "from": 3, "to": 2, "via": "kill"})"), std::string::npos) << log;
  EXPECT_EQ(std::count(log.begin(), log.end(), '{'), 4) << log;
  const std::string web = app();
  EXPECT_NE(web.find(R"("instances": 2)"), std::string::npos) << web;
  EXPECT_EQ(web.find("host-a"), std::string::npos) << web;
  EXPECT_EQ(web.find("host-b"), std::string::npos) << web;
  auto ledger = a.locks.surge_ledger("/web");
  ASSERT_TRUE(ledger) << ledger.error().message;
  EXPECT_EQ(ledger->revision, 0) << "no part left: the ledger is gone";
  ASSERT_TRUE(a.run(true));
  ASSERT_TRUE(b.run(true));
}

TEST_F(DrainSurgeAcrossDriversTest, ASurgeNoHostCanPlaceIsTakenBackAndTheDrainRefusedLeavingNothing) {
  start(R"({"instances": 1, "kill_seconds": 0.1, "health_grace_seconds": 0.3, "hosts": ["host-a", "host-b"],
            "apps": [{"id": "/web", "instances": 2, "labels": {"skopos.surge": "true"},
                      "tasks": [{"id": "web.a", "host": "host-a"}, {"id": "web.b", "host": "host-b"}]}]})");
  Host a(server_->endpoint(), prefix_, marathon_, "a");
  a.surge_timeout = 1500ms;
  auto refused = a.run();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, DrainError::Kind::kTimedOut);
  EXPECT_NE(refused.error().message.find("/web 1/2 healthy elsewhere"), std::string::npos) << refused.error().message;
  EXPECT_EQ(scale_log(), std::string(kUp23) + R"(, {"app": "/web", "from": 3, "to": 2, "via": "put"})");
  EXPECT_FALSE(a.world.called("apply")) << "nothing fenced";
  EXPECT_FALSE(a.world.called("stop")) << "nothing stopped";
  const std::string web = app();
  EXPECT_NE(web.find(R"("deployments": [])"), std::string::npos) << "the waiting deployment was replaced: " << web;
  EXPECT_NE(web.find("web.a"), std::string::npos) << web;
  auto journal = Journal::open(a.world.journal_path);
  ASSERT_TRUE(journal);
  EXPECT_FALSE(journal->last()) << "the locks given back";
  auto host = a.locks.host_status();
  ASSERT_TRUE(host);
  EXPECT_FALSE(host->locked);
}

TEST_F(DrainSurgeAcrossDriversTest, APutWhoseAnswerWasLostIsNeitherRepeatedNorLost) {
  start(kSurgeCluster);
  Host a(server_->endpoint(), prefix_, marathon_, "a");
  ASSERT_NE(Simulator::control(marathon_, R"({"swallow_posts": 1})"), "");  // the PUT is applied, then no answer
  auto first = a.run();
  if (!first) {
    // The driver could not know whether Marathon took it: it stops there, journaled.
    EXPECT_EQ(a.world.phase(), "surge") << first.error().message;
    auto second = a.run();
    ASSERT_TRUE(second) << second.error().message;
  }
  EXPECT_EQ(scale_log(), std::string(kUp23) + R"(, {"app": "/web", "from": 3, "to": 2, "via": "kill"})");
  ASSERT_TRUE(a.run(true));
}

}  // namespace
}  // namespace skopos::driver
