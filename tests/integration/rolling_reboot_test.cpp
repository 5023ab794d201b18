// A tier's rolling reboot request on a real etcd: every host of the tier (or the ones
// named) has it pending until it marks its turn done; a new request makes it pending
// again; cancelling removes it; a change wakes a watcher, and a quiet key lets the watch
// end at its deadline.
#include "driver/rolling_reboot.h"

#include <gtest/gtest.h>

#include <thread>

#include "lock_test_support.h"

namespace skopos::driver {
namespace {

using namespace std::chrono_literals;
using testing::in;

class RollingRebootTest : public testing::OneEtcdTest {
 protected:
  RollingReboot rolling() { return RollingReboot(*raw_, prefix_); }
};

TEST_F(RollingRebootTest, EachHostOfTheTierTakesItsTurnOncePerRequest) {
  RollingReboot r = rolling();
  auto none = r.pending("worker", "m1", "host-1");
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_FALSE(*none) << "no request yet";

  auto request = r.request("worker", "operator", {});
  ASSERT_TRUE(request) << request.error().message;
  EXPECT_EQ(request->requested_by, "operator");
  for (const char* machine : {"m1", "m2"}) {
    auto pending = r.pending("worker", machine, std::string("host-") + machine);
    ASSERT_TRUE(pending);
    ASSERT_TRUE(*pending) << machine << " has the request";
    EXPECT_EQ((*pending)->id, request->id);
  }
  EXPECT_FALSE(*r.pending("control", "m1", "host-1")) << "another tier's hosts are not asked";

  ASSERT_TRUE(r.mark_done("worker", "m1", "host-1", request->id));
  EXPECT_FALSE(*r.pending("worker", "m1", "host-1")) << "done once";
  EXPECT_TRUE(*r.pending("worker", "m2", "host-2"));
  auto status = r.status("worker");
  ASSERT_TRUE(status);
  ASSERT_TRUE(status->request);
  ASSERT_EQ(status->done.size(), 1U);
  EXPECT_EQ(status->done[0].machine_id, "m1");
  EXPECT_EQ(status->done[0].id, request->id);

  // A new request: every host's turn comes again.
  auto again = r.request("worker", "operator", {});
  ASSERT_TRUE(again);
  EXPECT_NE(again->id, request->id);
  EXPECT_TRUE(*r.pending("worker", "m1", "host-1"));

  auto cancelled = r.cancel("worker");
  ASSERT_TRUE(cancelled);
  EXPECT_TRUE(*cancelled);
  EXPECT_FALSE(*r.pending("worker", "m2", "host-2"));
  EXPECT_FALSE(*r.cancel("worker")) << "nothing left to cancel";
}

TEST_F(RollingRebootTest, ARequestNamingHostsAsksOnlyThemByMachineIdOrHostName) {
  RollingReboot r = rolling();
  ASSERT_TRUE(r.request("proxy", "operator", {"m1", "host-3"}));
  EXPECT_TRUE(*r.pending("proxy", "m1", "host-1"));
  EXPECT_FALSE(*r.pending("proxy", "m2", "host-2"));
  EXPECT_TRUE(*r.pending("proxy", "m3", "host-3"));
}

TEST_F(RollingRebootTest, AWatcherWakesOnAChangeAndAQuietKeyEndsTheWatchAtItsDeadline) {
  RollingReboot r = rolling();
  auto status = r.status("worker");
  ASSERT_TRUE(status);
  auto quiet = r.wait_for_change("worker", status->revision, in(500ms));
  ASSERT_TRUE(quiet) << quiet.error().message;
  EXPECT_FALSE(*quiet);

  auto writer_etcd = testing::etcd_client({server_->endpoint()});
  std::thread writer([&] {
    std::this_thread::sleep_for(200ms);
    RollingReboot other(*writer_etcd, prefix_);
    EXPECT_TRUE(other.request("worker", "operator", {}));
  });
  const auto started = std::chrono::steady_clock::now();
  auto changed = r.wait_for_change("worker", status->revision, in(20s));
  writer.join();
  ASSERT_TRUE(changed) << changed.error().message;
  EXPECT_TRUE(*changed);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
}

}  // namespace
}  // namespace skopos::driver
