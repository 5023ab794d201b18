// A tier's rolling reboot request on a real etcd: every host of the tier (or the ones
// named) has it pending until it marks its turn done; a new request makes it pending
// again; cancelling removes it; a change wakes a watcher, and a quiet key lets the watch
// end at its deadline.
#include "driver/rolling_reboot.h"

#include <gtest/gtest.h>

#include <thread>

#include "driver/heartbeat.h"
#include "lock_test_support.h"
#include "metrics_doc.h"
#include "process.h"

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

  // m1's first try fails (recorded, with why), its second succeeds (which clears it).
  ASSERT_TRUE(r.mark_failed("worker", "m1", "host-1", request->id, "budget: app 'web' would go below 2"));
  auto failed = r.status("worker");
  ASSERT_TRUE(failed);
  ASSERT_EQ(failed->failed.size(), 1U);
  EXPECT_EQ(failed->failed[0].machine_id, "m1");
  EXPECT_EQ(failed->failed[0].id, request->id);
  EXPECT_EQ(failed->failed[0].error, "budget: app 'web' would go below 2");
  EXPECT_EQ(failed->failed[0].tries, 1);
  // Tried again and failed again: the first failure is kept, the tries counted, and a
  // command's many-line error becomes one bounded line.
  ASSERT_TRUE(r.mark_failed("worker", "m1", "host-1", request->id, "reboot: exit 1:\nline 1\n" + std::string(500, 'x')));
  failed = r.status("worker");
  ASSERT_TRUE(failed);
  ASSERT_EQ(failed->failed.size(), 1U);
  EXPECT_EQ(failed->failed[0].tries, 2);
  EXPECT_LE(failed->failed[0].first_at, failed->failed[0].at);
  EXPECT_EQ(failed->failed[0].error.find('\n'), std::string::npos);
  EXPECT_LE(failed->failed[0].error.size(), 303U);
  EXPECT_TRUE(*r.pending("worker", "m1", "host-1")) << "a failed try leaves the turn to do";
  ASSERT_TRUE(r.mark_done("worker", "m1", "host-1", request->id));
  EXPECT_FALSE(*r.pending("worker", "m1", "host-1")) << "done once";
  EXPECT_TRUE(*r.pending("worker", "m2", "host-2"));
  auto status = r.status("worker");
  ASSERT_TRUE(status);
  ASSERT_TRUE(status->request);
  ASSERT_EQ(status->done.size(), 1U);
  EXPECT_EQ(status->done[0].machine_id, "m1");
  EXPECT_EQ(status->done[0].id, request->id);
  EXPECT_TRUE(status->failed.empty()) << "done clears the failed try";

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

TEST_F(RollingRebootTest, MembersAreRecordedOnceAndAHostRetiredForGoodIsForgotten) {
  RollingReboot r = rolling();
  ASSERT_TRUE(r.join_tier("worker", "m1", "host-1"));
  ASSERT_TRUE(r.join_tier("worker", "m2", "host-2"));
  auto first = r.status("worker");
  ASSERT_TRUE(first);
  ASSERT_EQ(first->members.size(), 2U);
  const std::int64_t since = first->members[0].since;
  std::this_thread::sleep_for(1100ms);
  ASSERT_TRUE(r.join_tier("worker", "m1", "host-1")) << "joining again is a no-op";
  EXPECT_EQ(r.status("worker")->members[0].since, since) << "a member keeps the time it first joined";

  auto request = r.request("worker", "operator", {});
  ASSERT_TRUE(request);
  ASSERT_TRUE(r.mark_done("worker", "m2", "host-2", request->id));
  auto forgotten = r.forget("worker", "host-2");
  ASSERT_TRUE(forgotten);
  EXPECT_TRUE(*forgotten);
  auto after = r.status("worker");
  ASSERT_TRUE(after);
  ASSERT_EQ(after->members.size(), 1U);
  EXPECT_EQ(after->members[0].machine_id, "m1");
  EXPECT_TRUE(after->done.empty()) << "its done mark goes with it";
  EXPECT_FALSE(*r.forget("worker", "host-9")) << "no such host";
}

TEST_F(RollingRebootTest, TheStatusCommandShowsEveryHostsTurnTheSlotsAndAnEta) {
  RollingReboot r = rolling();
  for (const char* m : {"m1", "m2", "m3", "m4"}) ASSERT_TRUE(r.join_tier("worker", m, std::string("host-") + m));
  auto request = r.request("worker", "operator", {});
  ASSERT_TRUE(request);
  ASSERT_TRUE(r.mark_done("worker", "m1", "host-1", request->id));
  // m2 holds the tier's reboot slot (alive: it beats), m3 waits in line, m4 is down.
  auto m2 = testing::machine({server_->endpoint()}, prefix_, "m2");
  ASSERT_TRUE(m2.locks->acquire("reboot", "worker", "REBOOT", in(0ms)));
  ASSERT_TRUE(m2.locks->guard("reboot", "worker", m2.locks->group_status("reboot", "worker")->holders[0].fencing_token,
                              "stop-containers"));
  Heartbeat beat2(*m2.etcd, m2.locks->self(), prefix_, 30s);
  ASSERT_TRUE(beat2.beat());
  auto m3 = testing::machine({server_->endpoint()}, prefix_, "m3");
  Heartbeat beat3(*m3.etcd, m3.locks->self(), prefix_, 30s);
  ASSERT_TRUE(beat3.beat());
  std::thread waiting([&] { (void)m3.locks->acquire("reboot", "worker", "REBOOT", in(3s)); });
  std::this_thread::sleep_for(500ms);
  const auto cli = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv{SKOPOS_CLI, "rolling-reboot", "--tier", "worker", "--status", "--etcd-endpoints",
                                  server_->endpoint(), "--etcd-prefix", prefix_, "--machine-id", "operator"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return skopos::testing::run_process(argv);
  };
  const auto json = cli({"--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  for (const char* expected :
       {R"("counts":{"done":1,"in-progress":1,"stuck":0,"failed":0,"waiting":1,"gated":0,"down":1,"pending":0})",
        R"("machine_id":"m2","hostname":"host-m2","state":"in-progress","phase":"stop-containers")",
        R"("machine_id":"m3","hostname":"host-m3","state":"waiting","position":1)",
        R"("machine_id":"m4","hostname":"host-m4","state":"down")"}) {
    EXPECT_NE(json.out.find(expected), std::string::npos) << expected << " in " << json.out;
  }
  const auto text = cli({});
  EXPECT_NE(text.out.find("hosts: 4 (1 done, 1 in-progress, 1 waiting, 1 down)"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("ETA: "), std::string::npos) << text.out;
  const auto metrics = cli({"--metrics"});
  EXPECT_NE(metrics.out.find(R"(skopos_rolling_reboot_hosts{tier="worker",state="down"} 1)"), std::string::npos)
      << metrics.out;
  for (const std::string& problem :
       skopos::testing::undocumented_metrics(metrics.out, "skopos rolling-reboot --status --metrics")) {
    ADD_FAILURE() << problem;
  }
  EXPECT_EQ(skopos::testing::promtool_check_metrics(metrics.out), "");
  // A holder without a heartbeat for longer than --stuck-after is stuck: the roll goes
  // on with one slot fewer, and says so.
  ASSERT_TRUE(beat2.stop());
  std::this_thread::sleep_for(1100ms);
  const auto stuck = cli({"--stuck-after", "0s"});
  EXPECT_NE(stuck.out.find("1 kept by stuck hosts: the roll goes on with 0"), std::string::npos) << stuck.out;
  waiting.join();
  ASSERT_TRUE(beat3.stop());
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
