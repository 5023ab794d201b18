// LockService against a real etcd 3.4 on loopback: semaphores that count, wait with a
// watch, survive a holder's reboot and are only broken by an admin; host locks with one
// reason at a time; the guard; and bad data or a bad etcd that never leads to a write.
#include <gtest/gtest.h>

#include <thread>

#include "driver/heartbeat.h"
#include "etcd_server.h"
#include "fault_proxy.h"
#include "lock_test_support.h"

namespace skopos::driver {
namespace {

using namespace std::chrono_literals;
using testing::in;
using testing::machine;

class LockServiceTest : public testing::OneEtcdTest {
 protected:
  testing::Machine node(const std::string& id, const std::string& boot = "boot-1") {
    return machine({server_->endpoint()}, prefix_, id, boot);
  }
  std::int64_t keys_under(const std::string& prefix) {
    auto range = raw_->range(prefix, EtcdClient::prefix_end(prefix));
    EXPECT_TRUE(range);
    return range ? static_cast<std::int64_t>(range->kvs.size()) : -1;
  }
};

TEST_F(LockServiceTest, AcquireIsIdempotentPerHolderAndTheDefaultMaxIsOne) {
  auto a = node("machine-a");
  auto b = node("machine-b");
  auto first = a.locks->acquire("reboot", "worker", "REBOOT", in(0ms));
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_FALSE(first->already_held);
  EXPECT_GT(first->fencing_token, 0);

  auto again = a.locks->acquire("reboot", "worker", "REBOOT", in(0ms));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_TRUE(again->already_held);
  EXPECT_EQ(again->fencing_token, first->fencing_token) << "re-acquiring returns the existing fencing token";

  auto other_token = a.locks->acquire("reboot", "worker", "DRAIN", in(0ms));
  ASSERT_FALSE(other_token);
  EXPECT_EQ(other_token.error().kind, LockError::Kind::kConflict) << other_token.error().message;

  auto busy = b.locks->acquire("reboot", "worker", "REBOOT", in(0ms));
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().kind, LockError::Kind::kTimedOut);
  EXPECT_NE(busy.error().message.find("'machine-a'"), std::string::npos) << busy.error().message;

  auto released = a.locks->release("reboot", "worker");
  ASSERT_TRUE(released);
  EXPECT_TRUE(*released);
  auto twice = a.locks->release("reboot", "worker");
  ASSERT_TRUE(twice);
  EXPECT_FALSE(*twice) << "releasing nothing is fine and says so";

  auto second = b.locks->acquire("reboot", "worker", "REBOOT", in(0ms));
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_GT(second->fencing_token, first->fencing_token);
  EXPECT_EQ(keys_under(prefix_ + "/locks/reboot/worker/holders/"), 1);
}

TEST_F(LockServiceTest, SetMaxNeverEvictsAndLoweringItOnlyBlocksNewHolders) {
  auto admin = node("admin");
  ASSERT_TRUE(admin.locks->set_max("reboot", "worker", 3));
  std::vector<testing::Machine> holders;
  for (const char* id : {"m1", "m2", "m3"}) {
    holders.push_back(node(id));
    auto taken = holders.back().locks->acquire("reboot", "worker", "REBOOT", in(0ms));
    ASSERT_TRUE(taken) << id << ": " << taken.error().message;
  }
  auto lowered = admin.locks->set_max("reboot", "worker", 1);
  ASSERT_TRUE(lowered) << lowered.error().message;
  EXPECT_EQ(lowered->max, 1);
  EXPECT_EQ(lowered->holders.size(), 3u) << "set-max never evicts";

  auto d = node("m4");
  EXPECT_EQ(d.locks->acquire("reboot", "worker", "REBOOT", in(0ms)).error().kind, LockError::Kind::kTimedOut);
  ASSERT_TRUE(holders[0].locks->release("reboot", "worker"));
  ASSERT_TRUE(holders[1].locks->release("reboot", "worker"));
  EXPECT_EQ(d.locks->acquire("reboot", "worker", "REBOOT", in(0ms)).error().kind, LockError::Kind::kTimedOut)
      << "one holder left and max 1: still full";
  ASSERT_TRUE(holders[2].locks->release("reboot", "worker"));
  EXPECT_TRUE(d.locks->acquire("reboot", "worker", "REBOOT", in(0ms)));

  auto closed = admin.locks->set_max("other", "control", 0);
  ASSERT_TRUE(closed);
  EXPECT_EQ(d.locks->acquire("other", "control", "REBOOT", in(0ms)).error().kind, LockError::Kind::kTimedOut)
      << "max 0 closes the group";
  EXPECT_EQ(admin.locks->set_max("reboot", "worker", -1).error().kind, LockError::Kind::kInvalid);
}

TEST_F(LockServiceTest, AWaitingTakerGetsTheReleasedSlotThroughAWatchNotPolling) {
  auto a = node("holder");
  ASSERT_TRUE(a.locks->acquire("reboot", "proxy", "REBOOT", in(0ms)));
  // The waiter talks through a proxy that counts its requests.
  skopos::testing::FaultProxy proxy(server_->port());
  auto b = machine({proxy.endpoint()}, prefix_, "waiter");
  Result<Acquired, LockError> waited = unexpected(LockError{});
  std::thread waiter([&] { waited = b.locks->acquire("reboot", "proxy", "REBOOT", in(20s)); });
  std::this_thread::sleep_for(1500ms);
  const int requests_while_waiting = proxy.forwarded_requests();
  ASSERT_TRUE(a.locks->release("reboot", "proxy"));
  waiter.join();
  ASSERT_TRUE(waited) << waited.error().message;
  EXPECT_FALSE(waited->already_held);
  // Look, take a lease of its own (it has no heartbeat), join the line, look again
  // with its place, read the holder's heartbeat (to report a stale one), open the
  // watch: then nothing until the release.
  EXPECT_LE(requests_while_waiting, 6) << "waiting must not poll";
}

TEST_F(LockServiceTest, GuardSucceedsOnlyForTheSameHoldingAndRecordsThePhase) {
  auto a = node("machine-a", "boot-1");
  auto first = a.locks->acquire("reboot", "control", "REBOOT", in(0ms));
  ASSERT_TRUE(first);
  ASSERT_TRUE(a.locks->guard("reboot", "control", first->fencing_token, "draining"));
  auto state = a.locks->group_status("reboot", "control");
  ASSERT_TRUE(state);
  ASSERT_EQ(state->holders.size(), 1u);
  EXPECT_EQ(state->holders[0].record.phase, "draining");
  EXPECT_EQ(state->holders[0].fencing_token, first->fencing_token) << "recording a phase keeps the fencing token";

  ASSERT_TRUE(a.locks->release("reboot", "control"));
  auto lost = a.locks->guard("reboot", "control", first->fencing_token, "rebooting");
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().kind, LockError::Kind::kConflict);

  auto second = a.locks->acquire("reboot", "control", "REBOOT", in(0ms));
  ASSERT_TRUE(second);
  auto stale_token = a.locks->guard("reboot", "control", first->fencing_token, "rebooting");
  ASSERT_FALSE(stale_token) << "an old holding's token must not pass for the new one";
  EXPECT_EQ(stale_token.error().kind, LockError::Kind::kConflict);
  EXPECT_TRUE(a.locks->guard("reboot", "control", second->fencing_token, "rebooting"));
  EXPECT_EQ(a.locks->release("reboot", "control", first->fencing_token).error().kind, LockError::Kind::kConflict)
      << "a release bound to an old fencing token leaves the new holding alone";
  EXPECT_EQ(keys_under(prefix_ + "/locks/reboot/control/holders/"), 1);
}

// A release that names its holding (the fencing token the acquire returned, as every
// drain does) is one transaction: the delete compares that the key is still that
// holding. Only when it is not does the release read what is there, to say why. The
// read first made every release two round trips, and a handoff to the next in line
// starts with the release (bench_fleet's handoff figures include it).
TEST_F(LockServiceTest, AReleaseNamingItsHoldingIsOneRequestAndAWrongOneStillConflicts) {
  auto a = node("machine-a");
  auto held = a.locks->acquire("reboot", "worker", "REBOOT", in(0ms));
  ASSERT_TRUE(held);
  std::uint64_t before = a.etcd->requests();
  auto released = a.locks->release("reboot", "worker", held->fencing_token);
  ASSERT_TRUE(released);
  EXPECT_TRUE(*released);
  EXPECT_EQ(a.etcd->requests() - before, 1u) << "the release read the holding before deleting it";
  EXPECT_EQ(keys_under(prefix_ + "/locks/reboot/worker/holders/"), 0);

  // Nothing held any more: the same release says so (false), and a wrong token on a
  // new holding is a conflict that leaves the holding alone.
  auto again = a.locks->release("reboot", "worker", held->fencing_token);
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  auto second = a.locks->acquire("reboot", "worker", "REBOOT", in(0ms));
  ASSERT_TRUE(second);
  auto wrong = a.locks->release("reboot", "worker", held->fencing_token);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().kind, LockError::Kind::kConflict);
  EXPECT_EQ(keys_under(prefix_ + "/locks/reboot/worker/holders/"), 1);
  before = a.etcd->requests();
  ASSERT_TRUE(a.locks->release("reboot", "worker", second->fencing_token));
  EXPECT_EQ(a.etcd->requests() - before, 1u);
}

TEST_F(LockServiceTest, UnlockBreaksAStaleHolderButALiveOneOnlyWithForce) {
  auto a = node("machine-a");
  auto admin = node("admin");
  ASSERT_TRUE(a.locks->acquire("reboot", "worker", "REBOOT", in(0ms)));
  auto removed = admin.locks->unlock("reboot", "worker", "machine-a", false);
  ASSERT_TRUE(removed) << removed.error().message;
  ASSERT_TRUE(removed->has_value()) << "no heartbeat: stale, so a plain unlock breaks it";
  EXPECT_FALSE((*removed)->heartbeat);

  ASSERT_TRUE(a.locks->acquire("reboot", "worker", "REBOOT", in(0ms)));
  Heartbeat heartbeat(*a.etcd, a.locks->self(), prefix_, 10s);
  ASSERT_TRUE(heartbeat.beat());
  auto refused = admin.locks->unlock("reboot", "worker", "machine-a", false);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, LockError::Kind::kConflict);
  EXPECT_NE(refused.error().message.find("--force"), std::string::npos) << refused.error().message;
  EXPECT_EQ(keys_under(prefix_ + "/locks/reboot/worker/holders/"), 1);

  auto forced = admin.locks->unlock("reboot", "worker", "machine-a", true);
  ASSERT_TRUE(forced);
  ASSERT_TRUE(forced->has_value());
  EXPECT_TRUE((*forced)->heartbeat);
  EXPECT_EQ(keys_under(prefix_ + "/locks/reboot/worker/holders/"), 0);
  auto nothing = admin.locks->unlock("reboot", "worker", "machine-a", false);
  ASSERT_TRUE(nothing);
  EXPECT_FALSE(nothing->has_value());
  ASSERT_TRUE(heartbeat.stop());
  EXPECT_EQ(keys_under(prefix_ + "/heartbeats/"), 0) << "stopping the heartbeat withdraws it at once";
}

TEST_F(LockServiceTest, AHeartbeatOfASecondProcessOnTheSameMachineLeavesTheAgentsAlone) {
  // Failed before: both processes put the one key P/heartbeats/<machine> on their own
  // lease, and the second one's exit revoked it. The agent's keepalive still succeeded,
  // so its key stayed gone, its slot looked stale, and a plain unlock broke it.
  auto agent = node("machine-a");
  auto operator_drain = node("machine-a");  // `skopos drain` by hand: its own process, client and lease
  auto admin = node("admin");
  ASSERT_TRUE(agent.locks->acquire("reboot", "worker", "REBOOT", in(0ms)));
  Heartbeat agent_beat(*agent.etcd, agent.locks->self(), prefix_, 10s);
  ASSERT_TRUE(agent_beat.beat());
  {
    Heartbeat second(*operator_drain.etcd, operator_drain.locks->self(), prefix_, 10s);
    ASSERT_TRUE(second.beat());
    EXPECT_EQ(keys_under(prefix_ + "/heartbeats/"), 2) << "one key per process";
    ASSERT_TRUE(second.beat());
    ASSERT_TRUE(second.stop());
  }
  ASSERT_TRUE(agent_beat.beat()) << "the agent's keepalive goes on";
  EXPECT_EQ(keys_under(prefix_ + "/heartbeats/"), 1);
  auto status = admin.locks->status();
  ASSERT_TRUE(status) << status.error().message;
  ASSERT_EQ(status->groups.size(), 1u);
  ASSERT_EQ(status->groups[0].holders.size(), 1u);
  EXPECT_TRUE(status->groups[0].holders[0].heartbeat) << "the holder is still fresh";
  auto refused = admin.locks->unlock("reboot", "worker", "machine-a", false);
  ASSERT_FALSE(refused) << "a live holder is not broken without --force";
  EXPECT_EQ(refused.error().kind, LockError::Kind::kConflict);
  EXPECT_EQ(keys_under(prefix_ + "/locks/reboot/worker/holders/"), 1);

  // A key written by an older version (P/heartbeats/<machine>) still counts as alive.
  ASSERT_TRUE(agent_beat.stop());
  auto lease = raw_->lease_grant(10);
  ASSERT_TRUE(lease);
  ASSERT_TRUE(raw_->put(prefix_ + "/heartbeats/machine-a", "{\"boot_id\":\"boot-1\"}", *lease));
  auto old_format = admin.locks->status();
  ASSERT_TRUE(old_format);
  EXPECT_TRUE(old_format->groups[0].holders[0].heartbeat);
  ASSERT_TRUE(raw_->lease_revoke(*lease));
}

// Two hosts cloned from one image share a machine id. Failed before: the second host's
// host lock and slot were taken as its own (idempotent re-acquire), so both drained
// under one slot.
TEST_F(LockServiceTest, ASecondHostWithTheSameMachineIdIsRefusedNamingBoth) {
  auto original = node("machine-a");  // hostname host-machine-a, boot-1
  ASSERT_TRUE(original.locks->host_lock("REBOOT"));
  ASSERT_TRUE(original.locks->acquire("reboot", "worker", "REBOOT", in(0ms)));
  auto clone_etcd = testing::etcd_client({server_->endpoint()});
  LockServiceOptions options;
  options.prefix = prefix_;
  LockService clone(*clone_etcd, HostIdentity{"machine-a", "boot-9", "clone-b"}, options);
  auto host = clone.host_lock("REBOOT");
  ASSERT_FALSE(host) << "the clone took the original's host lock as its own";
  EXPECT_EQ(host.error().kind, LockError::Kind::kConflict);
  EXPECT_NE(host.error().message.find("written by host 'host-machine-a', and this is 'clone-b'"), std::string::npos)
      << host.error().message;
  EXPECT_NE(host.error().message.find("systemd-machine-id-setup"), std::string::npos) << host.error().message;
  auto slot = clone.acquire("reboot", "worker", "REBOOT", in(0ms));
  ASSERT_FALSE(slot) << "the clone shared the original's slot";
  EXPECT_EQ(slot.error().kind, LockError::Kind::kConflict);

  // The same hostname from another boot that is alive (it beats) is a clone too; the
  // original itself after a reboot (its old boot gone) is not.
  Heartbeat beat(*original.etcd, original.locks->self(), prefix_, 10s);
  ASSERT_TRUE(beat.beat());
  LockService same_name(*clone_etcd, HostIdentity{"machine-a", "boot-9", "host-machine-a"}, options);
  auto twin = same_name.host_lock("REBOOT");
  ASSERT_FALSE(twin);
  EXPECT_NE(twin.error().message.find("belongs to boot 'boot-1', which is alive"), std::string::npos)
      << twin.error().message;
  ASSERT_TRUE(beat.stop());
  auto rebooted = same_name.host_lock("REBOOT");
  ASSERT_TRUE(rebooted) << rebooted.error().message;
  EXPECT_TRUE(rebooted->already) << "after its own reboot the host lock is still this machine's";
}

TEST_F(LockServiceTest, HostLocksHoldOneReasonAtATimeAndOnlyThatTokenUnlocks) {
  auto a = node("machine-a");
  auto locked = a.locks->host_lock("DRAIN");
  ASSERT_TRUE(locked) << locked.error().message;
  EXPECT_TRUE(locked->locked);
  EXPECT_FALSE(locked->already);
  auto again = a.locks->host_lock("DRAIN");
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->already);
  EXPECT_EQ(again->revision, locked->revision);
  EXPECT_EQ(a.locks->host_lock("REBOOT").error().kind, LockError::Kind::kConflict);
  EXPECT_EQ(a.locks->host_unlock("REBOOT").error().kind, LockError::Kind::kConflict);
  EXPECT_EQ(a.locks->host_lock("reboot").error().kind, LockError::Kind::kInvalid);
  auto state = a.locks->host_status("machine-a");
  ASSERT_TRUE(state);
  EXPECT_EQ(state->token, "DRAIN");
  auto unlocked = a.locks->host_unlock("DRAIN");
  ASSERT_TRUE(unlocked);
  EXPECT_TRUE(*unlocked);
  auto twice = a.locks->host_unlock("DRAIN");
  ASSERT_TRUE(twice);
  EXPECT_FALSE(*twice);
  EXPECT_TRUE(a.locks->host_lock("BOOSTER"));
  EXPECT_EQ(keys_under(prefix_ + "/hosts/"), 1);
}

TEST_F(LockServiceTest, ARebootingHolderKeepsItsSlotIsReportedStaleAndReacquiresAsANoOp) {
  auto before = node("machine-a", "boot-1");
  ASSERT_TRUE(before.locks->set_max("reboot", "worker", 1));
  auto held = before.locks->acquire("reboot", "worker", "REBOOT", in(0ms));
  ASSERT_TRUE(held);
  {
    // The driver's heartbeat, then the host goes down: no revoke, the lease just expires.
    auto beat_client = testing::etcd_client({server_->endpoint()});
    Heartbeat heartbeat(*beat_client, before.locks->self(), prefix_, 2s);
    ASSERT_TRUE(heartbeat.beat());
    auto live = before.locks->status();
    ASSERT_TRUE(live);
    ASSERT_EQ(live->groups.size(), 1u);
    EXPECT_TRUE(live->groups[0].holders[0].heartbeat);
  }
  bool stale = false;
  for (int i = 0; i < 100 && !stale; ++i) {  // etcd expires a 2 s lease within a few seconds
    std::this_thread::sleep_for(100ms);
    auto status = before.locks->status();
    ASSERT_TRUE(status);
    stale = !status->groups[0].holders[0].heartbeat;
  }
  ASSERT_TRUE(stale) << "the holder's heartbeat lease expired";
  auto status = before.locks->status();
  ASSERT_TRUE(status);
  ASSERT_EQ(status->groups[0].holders.size(), 1u) << "the holder record survives: not on a lease";
  EXPECT_EQ(status->groups[0].holders[0].fencing_token, held->fencing_token);

  auto other = node("machine-b");
  EXPECT_EQ(other.locks->acquire("reboot", "worker", "REBOOT", in(500ms)).error().kind, LockError::Kind::kTimedOut)
      << "a stale holder is never silently reclaimed";

  // Back up: same machine id, new boot id, new process.
  auto after = node("machine-a", "boot-2");
  Heartbeat heartbeat(*after.etcd, after.locks->self(), prefix_, 2s);
  ASSERT_TRUE(heartbeat.beat());
  auto back = after.locks->status();
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->groups[0].holders[0].heartbeat);
  EXPECT_EQ(back->groups[0].holders[0].heartbeat_boot_id, "boot-2");
  EXPECT_EQ(back->groups[0].holders[0].record.boot_id, "boot-1") << "the record still shows the boot that took it";
  auto reacquired = after.locks->acquire("reboot", "worker", "REBOOT", in(0ms));
  ASSERT_TRUE(reacquired);
  EXPECT_TRUE(reacquired->already_held);
  EXPECT_EQ(reacquired->fencing_token, held->fencing_token);
  ASSERT_TRUE(after.locks->guard("reboot", "worker", held->fencing_token, "recovering"));
  auto guarded = after.locks->group_status("reboot", "worker");
  ASSERT_TRUE(guarded);
  EXPECT_EQ(guarded->holders[0].record.boot_id, "boot-2") << "guard records the boot it runs in";
  ASSERT_TRUE(after.locks->release("reboot", "worker", held->fencing_token));
  EXPECT_TRUE(other.locks->acquire("reboot", "worker", "REBOOT", in(0ms)));
  ASSERT_TRUE(heartbeat.stop());
}

TEST_F(LockServiceTest, GarbageInTheMaxKeyBlocksAcquireWithoutAnyWrite) {
  ASSERT_TRUE(raw_->put(prefix_ + "/locks/reboot/worker/max", "two"));
  auto a = node("machine-a");
  auto refused = a.locks->acquire("reboot", "worker", "REBOOT", in(1s));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, LockError::Kind::kBadData);
  EXPECT_NE(refused.error().message.find("'two'"), std::string::npos) << refused.error().message;
  EXPECT_EQ(keys_under(prefix_ + "/locks/reboot/worker/holders/"), 0);
  auto status = a.locks->status();
  ASSERT_TRUE(status);
  ASSERT_EQ(status->groups.size(), 1u);
  EXPECT_FALSE(status->groups[0].max_problem.empty());
  for (const char* bad : {"-1", "1.5", "", "99999999999", "2 "}) {
    ASSERT_TRUE(raw_->put(prefix_ + "/locks/reboot/worker/max", bad));
    EXPECT_EQ(a.locks->acquire("reboot", "worker", "REBOOT", in(0ms)).error().kind, LockError::Kind::kBadData)
        << "max '" << bad << "'";
  }
  EXPECT_EQ(keys_under(prefix_ + "/locks/reboot/worker/holders/"), 0);
}

TEST_F(LockServiceTest, UnreadableHolderRecordsStillOccupyASlotAndAreReported) {
  ASSERT_TRUE(raw_->put(prefix_ + "/locks/reboot/worker/max", "3"));
  ASSERT_TRUE(raw_->put(prefix_ + "/locks/reboot/worker/holders/ghost-1", "\xff\x00garbage"));
  ASSERT_TRUE(raw_->put(prefix_ + "/locks/reboot/worker/holders/ghost-2", R"({"machine_id":5,"token":"REBOOT"})"));
  ASSERT_TRUE(raw_->put(prefix_ + "/locks/reboot/worker/junk", "x"));
  auto a = node("machine-a");
  auto status = a.locks->status();
  ASSERT_TRUE(status);
  ASSERT_EQ(status->groups.size(), 1u);
  ASSERT_EQ(status->groups[0].holders.size(), 2u);
  for (const Holder& ghost : status->groups[0].holders) {
    EXPECT_FALSE(ghost.valid);
    EXPECT_FALSE(ghost.problem.empty());
  }
  EXPECT_NE(status->groups[0].holders[1].problem.find("machine_id"), std::string::npos)
      << status->groups[0].holders[1].problem;
  ASSERT_EQ(status->unrecognized_keys.size(), 1u);
  EXPECT_EQ(status->unrecognized_keys[0], prefix_ + "/locks/reboot/worker/junk");

  EXPECT_TRUE(a.locks->acquire("reboot", "worker", "REBOOT", in(0ms))) << "2 unreadable holders + us = 3 = max";
  auto b = node("machine-b");
  EXPECT_EQ(b.locks->acquire("reboot", "worker", "REBOOT", in(0ms)).error().kind, LockError::Kind::kTimedOut)
      << "unreadable records still count";

  // This machine's own record unreadable: refuse rather than guess.
  ASSERT_TRUE(raw_->put(prefix_ + "/locks/reboot/worker/holders/machine-a", "{"));
  auto own = a.locks->acquire("reboot", "worker", "REBOOT", in(0ms));
  ASSERT_FALSE(own);
  EXPECT_EQ(own.error().kind, LockError::Kind::kBadData);
  EXPECT_NE(own.error().message.find("skopos lock unlock"), std::string::npos) << own.error().message;
}

TEST_F(LockServiceTest, AnEtcdThatAnswers500OrHangsGivesAClearErrorAndNothingIsWritten) {
  skopos::testing::FaultProxy proxy(server_->port());
  auto a = machine({proxy.endpoint()}, prefix_, "machine-a", "boot-1", 300ms);
  proxy.set_mode(skopos::testing::FaultProxy::Mode::kStatus500);
  auto failed = a.locks->acquire("reboot", "worker", "REBOOT", in(2s));
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().kind, LockError::Kind::kEtcd);
  EXPECT_NE(failed.error().message.find("HTTP 500"), std::string::npos) << failed.error().message;
  EXPECT_EQ(a.locks->host_lock("DRAIN").error().kind, LockError::Kind::kEtcd);

  proxy.set_mode(skopos::testing::FaultProxy::Mode::kHang);
  const auto start = std::chrono::steady_clock::now();
  auto hung = a.locks->acquire("reboot", "worker", "REBOOT", in(2s));
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(hung);
  EXPECT_EQ(hung.error().kind, LockError::Kind::kEtcd);
  EXPECT_NE(hung.error().message.find("timed out"), std::string::npos) << hung.error().message;
  EXPECT_LT(took, 10s) << "the deadline bounds the wait on a hung etcd";
  EXPECT_EQ(keys_under(prefix_ + "/"), 0) << "nothing was written";
}

TEST_F(LockServiceTest, AWriteWhoseAnswerIsLostIsResolvedByReadingBack) {
  skopos::testing::FaultProxy proxy(server_->port());
  auto a = machine({proxy.endpoint()}, prefix_, "machine-a", "boot-1", 500ms);
  proxy.drop_next("POST /v3/kv/txn", 1);
  auto taken = a.locks->acquire("reboot", "worker", "REBOOT", in(10s));
  ASSERT_TRUE(taken) << taken.error().message;
  EXPECT_EQ(proxy.dropped(), 1) << "the taking transaction was applied but its answer lost";
  auto raw = raw_->range(prefix_ + "/locks/reboot/worker/holders/machine-a");
  ASSERT_TRUE(raw);
  ASSERT_EQ(raw->kvs.size(), 1u);
  EXPECT_EQ(taken->fencing_token, raw->kvs[0].create_revision) << "the fencing token is the record's revision";
  EXPECT_FALSE(taken->already_held) << "taken by this call, though the answer was lost";

  proxy.drop_next("POST /v3/kv/txn", 1);
  ASSERT_TRUE(a.locks->guard("reboot", "worker", taken->fencing_token, "draining"));
  EXPECT_EQ(proxy.dropped(), 2);
  proxy.drop_next("POST /v3/kv/txn", 1);
  auto released = a.locks->release("reboot", "worker", taken->fencing_token);
  ASSERT_TRUE(released) << released.error().message;
  EXPECT_TRUE(*released);
  EXPECT_EQ(proxy.dropped(), 3);
  EXPECT_EQ(keys_under(prefix_ + "/locks/reboot/worker/holders/"), 0) << "no orphaned slot";
}

}  // namespace
}  // namespace skopos::driver
