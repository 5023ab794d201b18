// MaintenanceScheduler against tools/mesos-sim and a real etcd: two drivers editing the
// one cluster-wide schedule at once for different machines never lose a window (the
// etcd lock serialises their read-modify-writes), a lost answer to the POST is settled
// by reading back, and the master's refusals come through.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "driver/maintenance_scheduler.h"
#include "etcd_server.h"
#include "lock_test_support.h"
#include "simulators.h"

namespace skopos::driver {
namespace {

using namespace std::chrono_literals;
using skopos::testing::Simulator;

constexpr const char* kCluster = R"({"agents": [
  {"id": "S0", "hostname": "agent1", "ip": "127.0.0.2"},
  {"id": "S1", "hostname": "agent2", "ip": "127.0.0.3"},
  {"id": "S2", "hostname": "agent3", "ip": "127.0.0.4"}]})";

struct Driver {
  testing::Machine machine;
  std::unique_ptr<MesosMaster> master;
  std::unique_ptr<MaintenanceScheduler> scheduler;
};

class MaintenanceSchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    etcd_ = skopos::testing::EtcdServer::start();
    sim_ = Simulator::start(std::string(SKOPOS_SOURCE_DIR) + "/tools", "mesos-sim", kCluster);
    master_url_ = sim_->list("masters").at(0);
  }
  Driver driver(const std::string& id, std::chrono::milliseconds timeout = 2s) {
    Driver d;
    d.machine = testing::machine({etcd_->endpoint()}, "/skopos", id);
    MesosMasterOptions options;
    options.http.endpoints.push_back(*HttpEndpoint::parse(master_url_));
    options.http.timeout = timeout;
    auto master = MesosMaster::create(options);
    EXPECT_TRUE(master);
    d.master = std::move(*master);
    d.scheduler = std::make_unique<MaintenanceScheduler>(*d.master, *d.machine.locks);
    return d;
  }

  std::unique_ptr<skopos::testing::EtcdServer> etcd_;
  std::unique_ptr<Simulator> sim_;
  std::string master_url_;
};

TEST_F(MaintenanceSchedulerTest, TwoDriversEditingAtOnceNeverLoseEachOthersWindow) {
  // Slow answers widen every read-modify-write, so unserialised edits would collide.
  Simulator::control(master_url_, R"({"latency_ms": 15})");
  const MachineId machines[2] = {{"agent1", "127.0.0.2"}, {"agent2", "127.0.0.3"}};
  std::atomic<bool> started[2] = {false, false};
  std::atomic<int> lost{0};
  std::atomic<int> edits{0};
  std::vector<std::string> errors(2);
  std::vector<std::thread> threads;
  for (int me = 0; me < 2; ++me) {
    threads.emplace_back([&, me] {
      Driver d = driver(me == 0 ? "driver-a" : "driver-b");
      for (int i = 0; i < 15; ++i) {
        const std::int64_t start = 1000 + i;
        auto read = d.scheduler->schedule({machines[me]}, start, 3600000000000);
        if (!read) {
          errors[static_cast<std::size_t>(me)] = read.error().message;
          return;
        }
        ++edits;
        started[me] = true;
        const MaintenanceWindow* mine = read->find(machines[me]);
        if (mine == nullptr || mine->start_ns != start) ++lost;
        // Once the other driver has scheduled its machine, no read-back may lack it.
        if (started[1 - me] && read->find(machines[1 - me]) == nullptr) ++lost;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
  EXPECT_EQ(edits.load(), 30);
  EXPECT_EQ(lost.load(), 0) << "a window went missing";
  Driver check = driver("checker");
  auto final_schedule = check.master->schedule();
  ASSERT_TRUE(final_schedule);
  ASSERT_NE(final_schedule->find(machines[0]), nullptr);
  ASSERT_NE(final_schedule->find(machines[1]), nullptr);
  EXPECT_EQ(final_schedule->find(machines[0])->start_ns, 1014);
  EXPECT_EQ(final_schedule->find(machines[1])->start_ns, 1014);
  auto status = check.machine.locks->group_status("mesos-maintenance", "schedule");
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->holders.empty()) << "the schedule lock was given back";
}

TEST_F(MaintenanceSchedulerTest, CancelKeepsOthersAndAnUnchangedScheduleIsNotPosted) {
  Driver d = driver("driver-a");
  const MachineId a{"agent1", "127.0.0.2"};
  const MachineId b{"agent2", "127.0.0.3"};
  const MachineId c{"agent3", "127.0.0.4"};
  ASSERT_TRUE(d.scheduler->schedule({a, b}, 10, std::nullopt));
  ASSERT_TRUE(d.scheduler->schedule({c}, 20, 5));
  auto cancelled = d.scheduler->cancel({b});
  ASSERT_TRUE(cancelled) << cancelled.error().message;
  EXPECT_NE(cancelled->find(a), nullptr);
  EXPECT_EQ(cancelled->find(b), nullptr);
  EXPECT_NE(cancelled->find(c), nullptr);
  Simulator::control(master_url_, R"({"clear_requests": true})");
  ASSERT_TRUE(d.scheduler->cancel({b})) << "cancelling what is not scheduled is fine";
  const std::string log = Simulator::get(master_url_, "/__sim/state");
  EXPECT_EQ(log.find(R"([0, "POST", "/maintenance/schedule"])"), std::string::npos) << "nothing to change: no POST";
}

TEST_F(MaintenanceSchedulerTest, ALostAnswerToThePostIsSettledByReadingBack) {
  Driver d = driver("driver-a", 500ms);
  const MachineId a{"agent1", "127.0.0.2"};
  Simulator::control(master_url_, R"({"swallow_posts": 1, "clear_requests": true})");
  auto scheduled = d.scheduler->schedule({a}, 10, std::nullopt);
  ASSERT_TRUE(scheduled) << scheduled.error().message;
  ASSERT_NE(scheduled->find(a), nullptr);
  const std::string log = Simulator::get(master_url_, "/__sim/state");
  std::size_t posts = 0;
  for (auto at = log.find(R"("POST", "/maintenance/schedule"])"); at != std::string::npos;
       at = log.find(R"("POST", "/maintenance/schedule"])", at + 1)) {
    ++posts;
  }
  EXPECT_EQ(posts, 1u) << "the read-back showed the change: no second POST";
}

TEST_F(MaintenanceSchedulerTest, TheMastersRefusalComesThroughAndTheLockIsGivenBack) {
  Driver d = driver("driver-a");
  const MachineId a{"agent1", "127.0.0.2"};
  ASSERT_TRUE(d.scheduler->schedule({a}, 11, std::nullopt));
  ASSERT_TRUE(d.master->machines_down({a}));
  auto down = d.scheduler->cancel({a});
  ASSERT_FALSE(down) << "Mesos keeps DOWN machines in the schedule";
  EXPECT_EQ(down.error().kind, MaintenanceError::Kind::kMesos);
  EXPECT_NE(down.error().message.find("is deactivated and cannot be removed from the schedule"), std::string::npos)
      << down.error().message;
  auto status = d.machine.locks->group_status("mesos-maintenance", "schedule");
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->holders.empty());
}

}  // namespace
}  // namespace skopos::driver
