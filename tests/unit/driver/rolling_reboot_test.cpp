// rolling_progress(): where every host of a roll stands, from the request, the done
// marks, the members and the tier's reboot lock (the parts that need etcd are tested in
// integration/rolling_reboot_test.cpp).
#include "driver/rolling_reboot.h"

#include <gtest/gtest.h>

#include <string>

#include "skopos/enum_names.h"

namespace skopos::driver {
namespace {

constexpr std::int64_t kNow = 1'000'000;

RollingStatus roll(std::vector<std::string> members) {
  RollingStatus status;
  status.request = RollingRequest{"r-1", kNow - 600, "admin", {}, 7};
  for (const std::string& m : members) status.members.push_back(RollingMember{m, "host-" + m, kNow - 86400});
  return status;
}

Holder holder(const std::string& machine, const std::string& phase, std::int64_t since, bool heartbeat) {
  Holder h;
  h.machine_id = machine;
  h.valid = true;
  h.heartbeat = heartbeat;
  h.record = HolderRecord{machine, "REBOOT", "boot", phase, "host-" + machine, since};
  return h;
}

Waiter waiter(const std::string& machine, std::int64_t since) {
  Waiter w;
  w.machine_id = machine;
  w.hostname = "host-" + machine;
  w.valid = true;
  w.since = since;
  return w;
}

const HostProgress& find(const RollingProgress& progress, const std::string& machine) {
  for (const HostProgress& host : progress.hosts) {
    if (host.machine_id == machine) return host;
  }
  static const HostProgress none{"absent", {}, HostTurn::kPending, {}, -1, 0};
  return none;
}

TEST(RollingProgress, PendingHostsOutsideTheirWindowAreGatedWithTheReason) {
  RollingStatus status = roll({"a", "b", "c", "d"});
  GroupState lock;
  lock.max = 1;
  lock.queue = {waiter("a", kNow - 10)};
  RollingProgress p = rolling_progress(status, lock, {"a", "b", "c"}, kNow, 3600);
  ASSERT_EQ(p.count(HostTurn::kPending), 2);
  // host-a waits in line and host-d is down: a closed gate changes neither.
  apply_gates(p, {{"host-a", "outside window x"}, {"host-b", "outside window nights (tier): opens Tue 01:00 UTC"},
                  {"host-d", "outside window x"}});
  EXPECT_EQ(find(p, "a").turn, HostTurn::kWaiting);
  EXPECT_EQ(find(p, "b").turn, HostTurn::kGated);
  EXPECT_EQ(find(p, "b").phase, "outside window nights (tier): opens Tue 01:00 UTC");
  EXPECT_EQ(find(p, "c").turn, HostTurn::kPending);
  EXPECT_EQ(find(p, "d").turn, HostTurn::kDown);
  EXPECT_EQ(p.count(HostTurn::kGated), 1);
  EXPECT_EQ(p.count(HostTurn::kPending), 1);
  ASSERT_EQ(p.hosts.size(), 4U);
  EXPECT_EQ(p.hosts[1].machine_id, "b") << "gated hosts come after the line";
}

TEST(RollingProgress, EveryHostIsDoneInProgressWaitingDownOrPendingAndTheEtaFollowsThePace) {
  RollingStatus status = roll({"a", "b", "c", "d", "e", "f"});
  status.done = {RollingDone{"a", "r-1", kNow - 400, "host-a"}, RollingDone{"b", "r-0", kNow - 9000, "host-b"}};
  GroupState lock;
  lock.max = 2;
  lock.holders = {holder("b", "stop-containers", kNow - 60, true)};
  lock.queue = {waiter("d", kNow - 500), waiter("c", kNow - 300)};
  const RollingProgress p = rolling_progress(status, lock, {"a", "b", "c", "d", "f"}, kNow, 3600);
  EXPECT_EQ(find(p, "a").turn, HostTurn::kDone);
  EXPECT_EQ(find(p, "b").turn, HostTurn::kInProgress) << "an old request's mark does not count";
  EXPECT_EQ(find(p, "b").phase, "stop-containers");
  EXPECT_EQ(find(p, "d").turn, HostTurn::kWaiting);
  EXPECT_EQ(find(p, "d").position, 1);
  EXPECT_EQ(find(p, "c").position, 2);
  EXPECT_EQ(find(p, "e").turn, HostTurn::kDown);
  EXPECT_EQ(find(p, "f").turn, HostTurn::kPending);
  ASSERT_EQ(p.hosts.size(), 6u);
  EXPECT_EQ(p.hosts[0].machine_id, "a");
  EXPECT_EQ(p.hosts[2].machine_id, "d") << "waiting hosts in line order";
  EXPECT_EQ(p.count(HostTurn::kDone), 1);
  EXPECT_EQ(p.count(HostTurn::kWaiting), 2);
  EXPECT_EQ(p.usable_slots, 2);
  // One host in 600 s: five left take 3000 s at that pace.
  EXPECT_EQ(p.elapsed_seconds, 600);
  EXPECT_EQ(p.eta_seconds, 3000);
  EXPECT_FALSE(p.complete);
}

TEST(RollingProgress, AHolderWithoutHeartbeatPastTheLimitIsStuckAndTheRollHasOneSlotFewer) {
  RollingStatus status = roll({"a", "b", "c"});
  GroupState lock;
  lock.max = 2;
  lock.holders = {holder("a", "reboot", kNow - 7200, false), holder("b", "reboot", kNow - 120, false)};
  const RollingProgress p = rolling_progress(status, lock, {"c"}, kNow, 3600);
  EXPECT_EQ(find(p, "a").turn, HostTurn::kStuck);
  EXPECT_EQ(find(p, "b").turn, HostTurn::kInProgress) << "rebooting for two minutes is not stuck";
  EXPECT_EQ(p.usable_slots, 1);
  EXPECT_EQ(p.eta_seconds, -1) << "unknown until a host is done";
}

TEST(RollingProgress, AHostMarkedWhenItsRebootWasJournaledIsDoneOnlyOnceItReleased) {
  RollingStatus status = roll({"a", "b"});
  status.done = {RollingDone{"a", "r-1", kNow - 10, "host-a"}, RollingDone{"b", "r-1", kNow - 5, "host-b"}};
  GroupState lock;
  lock.holders = {holder("a", "recover-checks", kNow - 100, true)};
  const RollingProgress p = rolling_progress(status, lock, {"a", "b"}, kNow, 3600);
  EXPECT_EQ(find(p, "a").turn, HostTurn::kInProgress);
  EXPECT_EQ(find(p, "b").turn, HostTurn::kDone);
}

// A host whose last try failed (refused by the disruption budget, say) shows as failed,
// with why and since when, while it neither holds a slot nor waits in line; trying again
// it shows where it is, and a failure of an earlier request, or of a host that is down,
// is not shown as one. Before, such a host read "pending" and only its agent's log said
// why.
TEST(RollingProgress, AHostWhoseLastTryFailedIsFailedWithWhyUntilItTriesAgain) {
  RollingStatus status = roll({"a", "b", "c", "d", "e"});
  status.failed = {RollingFailure{"a", "r-1", kNow - 30, kNow - 400, 3, "host-a", "budget: app 'web' would go below 2"},
                   RollingFailure{"b", "r-1", kNow - 90, kNow - 90, 1, "host-b", "Docker: connection refused"},
                   RollingFailure{"c", "r-0", kNow - 9000, kNow - 9000, 1, "host-c", "old"},
                   RollingFailure{"d", "r-1", kNow - 60, kNow - 60, 1, "host-d", "etcd unavailable"}};
  GroupState lock;
  lock.max = 1;
  lock.queue = {waiter("b", kNow - 10)};
  const RollingProgress p = rolling_progress(status, lock, {"a", "b", "c", "e"}, kNow, 3600);
  EXPECT_EQ(find(p, "a").turn, HostTurn::kFailed);
  EXPECT_EQ(find(p, "a").phase, "budget: app 'web' would go below 2");
  EXPECT_EQ(find(p, "a").since, kNow - 400) << "failing since its first failed try";
  EXPECT_EQ(find(p, "a").failed_tries, 3);
  EXPECT_EQ(find(p, "b").turn, HostTurn::kWaiting) << "trying again";
  EXPECT_EQ(find(p, "c").turn, HostTurn::kPending) << "an earlier request's failure";
  EXPECT_EQ(find(p, "d").turn, HostTurn::kDown);
  EXPECT_EQ(p.count(HostTurn::kFailed), 1);
  EXPECT_EQ(p.failing, 3) << "a, b (in line again) and d (down): every host of this request whose tries failed";
  EXPECT_EQ(enum_name(kHostTurnNames, HostTurn::kFailed), std::string("failed"));
}

TEST(RollingProgress, NamedHostsOnlyAndACompleteRollHasNoTimeLeft) {
  RollingStatus status = roll({"a", "b", "c"});
  status.request->hosts = {"host-b"};
  status.done = {RollingDone{"b", "r-1", kNow - 10, "host-b"}};
  const RollingProgress p = rolling_progress(status, GroupState{}, {"a", "b", "c"}, kNow, 3600);
  ASSERT_EQ(p.hosts.size(), 1u);
  EXPECT_EQ(p.hosts[0].machine_id, "b");
  EXPECT_EQ(p.eta_seconds, 0);
  EXPECT_TRUE(p.complete);
}

TEST(RollingProgress, NoRequestNoHosts) {
  RollingStatus status;
  status.members = {RollingMember{"a", "host-a", 1}};
  EXPECT_TRUE(rolling_progress(status, GroupState{}, {"a"}, kNow, 3600).hosts.empty());
}

}  // namespace
}  // namespace skopos::driver
