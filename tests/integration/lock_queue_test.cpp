// The line for a slot, against a real etcd 3.4: first come, first served (nobody that
// came later overtakes a waiter), quiet (a holder recording its phase wakes nobody; a
// release wakes only the waiters it leaves room for, however long the line, and a take
// the next two in line), slots freed at once taken at once, a dead waiter's place
// goes with its lease, a waiter that comes back keeps its place, a closed group (max 0)
// reopened wakes its line, and `status` shows the line.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "etcd_server.h"
#include "lock_test_support.h"

namespace skopos::driver {
namespace {

using namespace std::chrono_literals;
using testing::in;
using testing::machine;
using Clock = std::chrono::steady_clock;

// Waiters that each take the slot in a thread, then hold it briefly and give it back.
class Crowd {
 public:
  void join_line(testing::Machine& m, const std::string& id) {
    threads_.emplace_back([this, &m, id] {
      auto got = m.locks->acquire("reboot", "worker", "REBOOT", in(60s));
      const std::lock_guard<std::mutex> lock(mutex_);
      if (!got) {
        errors_.push_back(id + ": " + got.error().message);
        return;
      }
      order_.push_back(id);
      holding_.push_back(id);
    });
  }
  // The next one that took a slot, once one did ("" after 20 s or an error).
  std::string holder() {
    const auto give_up = Clock::now() + 20s;
    while (Clock::now() < give_up) {
      {
        const std::lock_guard<std::mutex> lock(mutex_);
        if (!holding_.empty()) {
          std::string first = holding_.front();
          holding_.pop_front();
          return first;
        }
        if (!errors_.empty()) return {};
      }
      std::this_thread::sleep_for(5ms);
    }
    return {};
  }
  std::vector<std::string> finish() {
    for (std::thread& thread : threads_) thread.join();
    threads_.clear();
    return order_;
  }
  std::vector<std::string> errors() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return errors_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::thread> threads_;
  std::vector<std::string> order_;
  std::vector<std::string> errors_;
  std::deque<std::string> holding_;  // took a slot, in order, not yet asked for
};

class LockQueueTest : public testing::OneEtcdTest {
 protected:
  void SetUp() override {
    OneEtcdTest::SetUp();
    // One long lease for every waiter's place, as a heartbeat's would be: the waiters
    // then send nothing of their own to keep places alive, and every request counted
    // below is the line's.
    auto granted = raw_->lease_grant(120);
    ASSERT_TRUE(granted);
    lease_->store(*granted);
  }
  testing::Machine node(const std::string& id) {
    return machine({server_->endpoint()}, prefix_, id, "boot-1", 5s, lease_);
  }
  // Max `n` and `n` holders h0..h<n-1>, each holding a slot.
  std::vector<testing::Machine> fill_slots(int n) {
    EXPECT_TRUE(node("admin").locks->set_max("reboot", "worker", n));
    std::vector<testing::Machine> holders;
    for (int i = 0; i < n; ++i) {
      holders.push_back(node("h" + std::to_string(i)));
      EXPECT_TRUE(holders.back().locks->acquire("reboot", "worker", "REBOOT", in(0ms)));
    }
    return holders;
  }
  std::string line_key(const std::string& id) const { return prefix_ + "/locks/reboot/worker/queue/" + id; }
  bool queued(const std::string& id) {
    auto range = raw_->range(line_key(id));
    return range && !range->kvs.empty();
  }
  // Waits (bounded) until `id` has its place in line.
  void wait_queued(const std::string& id) {
    const auto give_up = Clock::now() + 10s;
    while (!queued(id) && Clock::now() < give_up) std::this_thread::sleep_for(10ms);
    ASSERT_TRUE(queued(id)) << id << " never joined the line";
  }
  // The entry a waiter of machine `id` left when its process went: on a lease of
  // `ttl_seconds` that nobody keeps alive. Returns the lease.
  std::int64_t put_entry_of_a_gone_process(const std::string& id, std::int64_t ttl_seconds) {
    auto lease = raw_->lease_grant(ttl_seconds);
    EXPECT_TRUE(lease);
    EXPECT_TRUE(raw_->put(line_key(id),
                          R"({"machine_id":")" + id + R"(","token":"REBOOT","hostname":"host-)" + id +
                              R"(","boot_id":"boot-1","since":"2026-12-05T07:00:00Z"})",
                          lease ? *lease : 0));
    return lease ? *lease : 0;
  }
  // Waiters w0..w<n-1>, all made first (their waits keep references into `waiters`),
  // then each joins the line in turn. Returns their ids in the order they came.
  std::vector<std::string> line_up(int n, std::vector<testing::Machine>& waiters, Crowd& crowd) {
    std::vector<std::string> arrival;
    for (int i = 0; i < n; ++i) {
      arrival.push_back("w" + std::to_string(i));
      waiters.push_back(node(arrival.back()));
    }
    for (std::size_t i = 0; i < arrival.size(); ++i) {
      crowd.join_line(waiters[i], arrival[i]);
      wait_queued(arrival[i]);
    }
    return arrival;
  }
  // The etcd requests each machine has sent so far.
  static std::vector<std::uint64_t> requests_of(const std::vector<testing::Machine>& machines) {
    std::vector<std::uint64_t> out;
    for (const testing::Machine& m : machines) out.push_back(m.etcd->requests());
    return out;
  }
  // Each machine from `from` on sent nothing between the counts `before` and `after`.
  static void expect_quiet(const std::vector<std::uint64_t>& before, const std::vector<std::uint64_t>& after,
                           std::size_t from, const std::string& woken_by) {
    for (std::size_t i = from; i < before.size(); ++i) {
      EXPECT_EQ(after[i], before[i]) << "w" << i << " was woken by " << woken_by;
    }
  }
  // The machine `id` among `machines` gives its slot back.
  static void release_by(std::vector<testing::Machine>& machines, const std::string& id) {
    for (testing::Machine& m : machines) {
      if (m.locks->self().machine_id == id) {
        EXPECT_TRUE(m.locks->release("reboot", "worker")) << id << " could not release";
      }
    }
  }
  std::shared_ptr<std::atomic<std::int64_t>> lease_ = std::make_shared<std::atomic<std::int64_t>>(0);
};

TEST_F(LockQueueTest, WaitersAreServedInTheOrderTheyCameAndALateComerNeverOvertakes) {
  auto first = node("first");
  ASSERT_TRUE(first.locks->acquire("reboot", "worker", "REBOOT", in(0ms)));
  constexpr int kWaiters = 8;
  std::vector<testing::Machine> waiters;
  Crowd crowd;
  const std::vector<std::string> arrival = line_up(kWaiters, waiters, crowd);
  // Each release is followed at once by a newcomer that finds the slot free: it must
  // queue behind those already waiting, not take the slot.
  auto late = node("late");
  ASSERT_TRUE(first.locks->release("reboot", "worker"));
  auto overtaker = late.locks->acquire("reboot", "worker", "REBOOT", in(0ms));
  EXPECT_FALSE(overtaker) << "a newcomer took the slot ahead of " << kWaiters << " waiters";
  if (overtaker) {
    ASSERT_TRUE(late.locks->release("reboot", "worker"));
  }
  for (int i = 0; i < kWaiters; ++i) {
    const std::string holder = crowd.holder();
    ASSERT_FALSE(holder.empty()) << "nobody took the slot; errors: " << crowd.errors().size();
    release_by(waiters, holder);
  }
  EXPECT_EQ(crowd.finish(), arrival);
  EXPECT_TRUE(crowd.errors().empty());
  // Its wait timed out on the heartbeat lease: its place is kept for the next try,
  // until it gives it up.
  EXPECT_TRUE(queued("late"));
  auto left = late.locks->leave_lines();
  ASSERT_TRUE(left);
  EXPECT_EQ(*left, 1);
  EXPECT_FALSE(queued("late"));
}

// With max 1: a holder recording its phase wakes nobody; a release wakes the head, which
// takes the slot with one request. Its take moves the next two up: the second in line
// (whose one ahead went) reads the line once without leaving its watch, and as the new
// head takes the next release with the take alone; the third (whose entry two ahead
// went) reads the line to become second. The rest of the line hears nothing. Failed
// before the new head read inside its watch: it read the line and opened a new watch
// (two requests, and a gap in which a release could wait up to 100 ms for etcd's sync).
TEST_F(LockQueueTest, AHolderRecordingItsPhaseWakesNobodyAndATakeMovesOnlyTheNextTwoUp) {
  auto holder = node("holder");
  auto held = holder.locks->acquire("reboot", "worker", "REBOOT", in(0ms));
  ASSERT_TRUE(held);
  constexpr int kWaiters = 12;
  std::vector<testing::Machine> waiters;
  Crowd crowd;
  line_up(kWaiters, waiters, crowd);
  std::this_thread::sleep_for(300ms);  // every waiter is in its watch
  const auto sent = [&] { return requests_of(waiters); };
  const std::vector<std::uint64_t> before_guards = sent();
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(holder.locks->guard("reboot", "worker", held->fencing_token, "phase-" + std::to_string(i)));
  }
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(sent(), before_guards) << "a holder recording its phase woke waiters";

  const std::uint64_t head_before = waiters[0].etcd->requests();
  ASSERT_TRUE(holder.locks->release("reboot", "worker"));
  EXPECT_EQ(crowd.holder(), "w0");
  // The head heard the release in the watch it was already in and took the slot at once:
  // one request, the take, with no read of the line in between (the take's compares
  // stand in for it). (Counted from just before the release to the take, so that its
  // lease's keepalive, every few seconds, is unlikely to fall in between.)
  EXPECT_EQ(waiters[0].etcd->requests() - head_before, 1u) << "the head read the line again before taking the slot";
  std::this_thread::sleep_for(300ms);
  const std::vector<std::uint64_t> after_release = sent();
  EXPECT_EQ(after_release[1] - before_guards[1], 1u) << "the second in line did more than read the line once";
  expect_quiet(before_guards, after_release, 3, "a release that was not its turn");
  ASSERT_TRUE(waiters[0].locks->release("reboot", "worker"));
  EXPECT_EQ(crowd.holder(), "w1");
  EXPECT_EQ(waiters[1].etcd->requests() - after_release[1], 1u) << "the new head did more than take the slot";
  ASSERT_TRUE(waiters[1].locks->release("reboot", "worker"));
  for (int i = 2; i < kWaiters; ++i) {
    const std::string next = crowd.holder();
    ASSERT_EQ(next, "w" + std::to_string(i));
    ASSERT_TRUE(waiters[static_cast<std::size_t>(i)].locks->release("reboot", "worker"));
  }
  crowd.finish();
  // Each waiter's whole wait cost the same few requests, wherever it stood in line.
  const std::vector<std::uint64_t> total = sent();
  for (int i = 0; i < kWaiters; ++i) {
    EXPECT_LE(total[static_cast<std::size_t>(i)], 16u) << "w" << i << " sent " << total[static_cast<std::size_t>(i)];
  }
}

// A release wakes the waiters it makes room for, not every waiter near the front: with
// max 4 and eight in line, the first release is the first in line's slot; its take moves
// the second and third in line up (the entries one and two ahead of them went), and the
// fourth, who needs three more releases, counts it where it listens and sends nothing.
// Then the rest are served in the order they came. Failed before: every waiter with
// fewer than max ahead of it read the line again after each release and opened a new
// watch (two requests each, four per release here, fourteen with max 15).
TEST_F(LockQueueTest, AReleaseWakesOnlyTheWaitersItMakesRoomFor) {
  std::vector<testing::Machine> holders = fill_slots(4);
  if (HasFailure()) return;
  constexpr int kWaiters = 8;
  std::vector<testing::Machine> waiters;
  Crowd crowd;
  const std::vector<std::string> arrival = line_up(kWaiters, waiters, crowd);
  std::this_thread::sleep_for(300ms);  // every waiter is in its watch
  const auto sent = [&] { return requests_of(waiters); };
  const std::vector<std::uint64_t> before = sent();
  ASSERT_TRUE(holders[0].locks->release("reboot", "worker"));
  EXPECT_EQ(crowd.holder(), "w0");
  std::this_thread::sleep_for(300ms);
  const std::vector<std::uint64_t> after_one = sent();
  expect_quiet(before, after_one, 3, "a release that left no slot for it");
  // The second release is the second in line's; the fifth still needs more.
  ASSERT_TRUE(holders[1].locks->release("reboot", "worker"));
  EXPECT_EQ(crowd.holder(), "w1");
  std::this_thread::sleep_for(300ms);
  expect_quiet(before, sent(), 4, "a release that left no slot for it");

  // Two slots freed at once go to the next two, then one at a time down the line.
  ASSERT_TRUE(holders[2].locks->release("reboot", "worker"));
  ASSERT_TRUE(holders[3].locks->release("reboot", "worker"));
  std::vector<std::string> served{"w0", "w1"};
  for (int i = 2; i < kWaiters; ++i) {
    const std::string next = crowd.holder();
    ASSERT_FALSE(next.empty()) << "nobody took a slot; errors: " << crowd.errors().size();
    served.push_back(next);
    auto state = node("admin").locks->group_status("reboot", "worker");
    ASSERT_TRUE(state);
    EXPECT_LE(state->holders.size(), 4u);
    if (i < 3) continue;  // w2 and w3 take the two slots; then each release makes room for one
    release_by(waiters, served[static_cast<std::size_t>(i - 3)]);
  }
  crowd.finish();
  EXPECT_TRUE(crowd.errors().empty());
  // Slots freed at once may go in either order between the two they make room for.
  std::sort(served.begin() + 2, served.begin() + 4);
  EXPECT_EQ(served, arrival);
}

// The max lowered below the holders (an operator pausing the roll): a release that
// leaves no slot free wakes the head of the line, which reads the line and waits again
// -- quietly, from past that release -- and takes the slot when one is free. (A review
// feared the head's direct take would loop here, hearing the same release again and
// again; it does not, and this keeps it so.)
TEST_F(LockQueueTest, AReleaseThatLeavesNoSlotFreeWakesTheHeadOnceAndItWaitsQuietly) {
  ASSERT_TRUE(node("admin").locks->set_max("reboot", "worker", 2));
  auto first = node("h0");
  auto second = node("h1");
  ASSERT_TRUE(first.locks->acquire("reboot", "worker", "REBOOT", in(0ms)));
  ASSERT_TRUE(second.locks->acquire("reboot", "worker", "REBOOT", in(0ms)));
  auto head = node("w0");
  Crowd crowd;
  crowd.join_line(head, "w0");
  wait_queued("w0");
  ASSERT_TRUE(node("admin").locks->set_max("reboot", "worker", 1));
  std::this_thread::sleep_for(300ms);  // the head has read the new max and waits again

  ASSERT_TRUE(first.locks->release("reboot", "worker"));  // 1 held, max 1: still no slot
  std::this_thread::sleep_for(200ms);
  const std::uint64_t settled = head.etcd->requests();
  std::this_thread::sleep_for(1s);
  EXPECT_LE(head.etcd->requests() - settled, 1u) << "the head kept sending requests with no slot free";
  EXPECT_TRUE(queued("w0"));

  ASSERT_TRUE(second.locks->release("reboot", "worker"));
  EXPECT_EQ(crowd.holder(), "w0");
  crowd.finish();
  EXPECT_TRUE(crowd.errors().empty());
}

TEST_F(LockQueueTest, WithMaxThreeTheFirstThreeServeAtOnceAndTheLineNeverExceedsTheMax) {
  std::vector<testing::Machine> holders = fill_slots(3);
  if (HasFailure()) return;
  constexpr int kWaiters = 9;
  std::vector<testing::Machine> waiters;
  Crowd crowd;
  const std::vector<std::string> arrival = line_up(kWaiters, waiters, crowd);
  for (auto& h : holders) ASSERT_TRUE(h.locks->release("reboot", "worker"));
  std::vector<std::string> served;
  for (int i = 0; i < kWaiters; ++i) {
    const std::string next = crowd.holder();
    ASSERT_FALSE(next.empty());
    served.push_back(next);
    auto state = node("admin").locks->group_status("reboot", "worker");
    ASSERT_TRUE(state);
    EXPECT_LE(state->holders.size(), 3u);
    release_by(waiters, next);
  }
  crowd.finish();
  // Three slots free at once may go in any order among the first three; nobody later than
  // third in line may come before one that was ahead of it by three or more.
  for (std::size_t i = 0; i < served.size(); ++i) {
    const auto at = static_cast<std::size_t>(std::find(arrival.begin(), arrival.end(), served[i]) - arrival.begin());
    EXPECT_LT(at, i + 3) << served[i] << " was served " << i << "th but came " << at << "th";
  }
}

// Several slots freed at once go to everyone with room, each from the release it
// heard, not one after another down the line: here the second in line is a waiter that
// died (its entry on a 60 s lease), and the third takes a slot as soon as the holders
// release, with the second's slot still kept for it. Failed before: only the first in
// line heard releases and every other waiter waited for the entry right ahead of it to
// go, so the third waited for the dead one's lease.
TEST_F(LockQueueTest, SlotsFreedAtOnceGoToEveryWaiterWithRoomEvenBehindOneThatDoesNotMove) {
  std::vector<testing::Machine> holders = fill_slots(3);
  if (HasFailure()) return;
  auto first = node("w0");
  auto third = node("w2");
  auto fourth = node("w3");
  Crowd crowd;
  crowd.join_line(first, "w0");
  wait_queued("w0");
  put_entry_of_a_gone_process("ghost", 60);
  crowd.join_line(third, "w2");
  wait_queued("w2");
  crowd.join_line(fourth, "w3");
  wait_queued("w3");
  std::this_thread::sleep_for(300ms);  // every waiter is in its watch

  const auto released_at = Clock::now();
  for (auto& h : holders) ASSERT_TRUE(h.locks->release("reboot", "worker"));
  const std::string a = crowd.holder();
  const std::string b = crowd.holder();
  EXPECT_LT(Clock::now() - released_at, 5s) << "the third in line waited for the one ahead of it";
  EXPECT_EQ(std::set<std::string>({a, b}), std::set<std::string>({"w0", "w2"}));
  // The ghost keeps its slot (it may come back): three places for two holders and it.
  std::this_thread::sleep_for(500ms);
  auto state = node("admin").locks->group_status("reboot", "worker");
  ASSERT_TRUE(state);
  EXPECT_EQ(state->holders.size(), 2u);
  EXPECT_TRUE(queued("w3")) << "the fourth took the ghost's slot";
  // The fourth is served when a holder goes.
  ASSERT_TRUE(first.locks->release("reboot", "worker"));
  EXPECT_EQ(crowd.holder(), "w3");
  ASSERT_TRUE(raw_->delete_range(line_key("ghost")));
  crowd.finish();
  EXPECT_TRUE(crowd.errors().empty());
}

// A group closed with max 0 (an operator stopping a roll) and opened again: the first in
// line hears the new max and takes a slot at once. (A review of the change that let
// every waiter near the front hear releases found that with max 0 nobody was near the
// front any more, so nobody watched the max, and the line slept until its deadline.)
TEST_F(LockQueueTest, AClosedGroupOpenedAgainServesItsLineAtOnce) {
  ASSERT_TRUE(node("admin").locks->set_max("reboot", "worker", 0));
  auto first = node("w0");
  Crowd crowd;
  crowd.join_line(first, "w0");
  wait_queued("w0");
  std::this_thread::sleep_for(300ms);  // in its watch
  const auto opened_at = Clock::now();
  ASSERT_TRUE(node("admin").locks->set_max("reboot", "worker", 2));
  EXPECT_EQ(crowd.holder(), "w0");
  EXPECT_LT(Clock::now() - opened_at, 5s) << "the line did not hear the group open";
  crowd.finish();
  EXPECT_TRUE(crowd.errors().empty());
}

TEST_F(LockQueueTest, ADeadWaitersPlaceGoesWithItsLeaseAndTheNextOneIsServed) {
  auto holder = node("holder");
  ASSERT_TRUE(holder.locks->acquire("reboot", "worker", "REBOOT", in(0ms)));
  // A waiter that died: its entry on a lease nobody keeps alive.
  put_entry_of_a_gone_process("dead", 3);
  auto next = node("next");
  Crowd crowd;
  crowd.join_line(next, "next");
  wait_queued("next");
  auto status = holder.locks->group_status("reboot", "worker");
  ASSERT_TRUE(status);
  ASSERT_EQ(status->queue.size(), 2u);
  EXPECT_EQ(status->queue[0].machine_id, "dead");
  EXPECT_EQ(status->queue[0].hostname, "host-dead");
  EXPECT_EQ(status->queue[1].machine_id, "next");
  EXPECT_TRUE(status->queue[1].valid);
  const auto released_at = Clock::now();
  ASSERT_TRUE(holder.locks->release("reboot", "worker"));
  EXPECT_EQ(crowd.holder(), "next");
  // Not before the dead one's lease ran out (it might have come back), and soon after.
  EXPECT_LT(Clock::now() - released_at, 8s);
  crowd.finish();
}

TEST_F(LockQueueTest, AWaiterThatComesBackKeepsItsPlace) {
  auto holder = node("holder");
  ASSERT_TRUE(holder.locks->acquire("reboot", "worker", "REBOOT", in(0ms)));
  // "back" queued, then its process died before its lease expired (an agent SIGKILLed and
  // restarted): the place is still there, on the old lease.
  const std::int64_t old_lease = put_entry_of_a_gone_process("back", 30);
  auto later = node("later");
  Crowd crowd;
  crowd.join_line(later, "later");
  wait_queued("later");
  auto back = node("back");
  crowd.join_line(back, "back");
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(raw_->lease_revoke(old_lease));  // the old process's lease ends
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(queued("back")) << "the place moved onto the new process's lease";
  ASSERT_TRUE(holder.locks->release("reboot", "worker"));
  EXPECT_EQ(crowd.holder(), "back");
  ASSERT_TRUE(back.locks->release("reboot", "worker"));
  EXPECT_EQ(crowd.holder(), "later");
  ASSERT_TRUE(later.locks->release("reboot", "worker"));
  crowd.finish();
}

TEST_F(LockQueueTest, AWaitThatTimesOutKeepsItsPlaceForTheNextTryUntilItIsGivenUp) {
  auto holder = node("holder");
  ASSERT_TRUE(holder.locks->acquire("reboot", "worker", "REBOOT", in(0ms)));
  auto waiter = node("waiter");
  auto timed_out = waiter.locks->acquire("reboot", "worker", "REBOOT", in(500ms));
  ASSERT_FALSE(timed_out);
  EXPECT_EQ(timed_out.error().kind, LockError::Kind::kTimedOut);
  EXPECT_NE(timed_out.error().message.find("0 waiting ahead"), std::string::npos) << timed_out.error().message;
  EXPECT_TRUE(queued("waiter")) << "on the heartbeat lease, the place outlives the wait";
  // One that comes later stays behind it; the next try takes the place up again.
  auto later = node("later");
  Crowd crowd;
  crowd.join_line(later, "later");
  wait_queued("later");
  crowd.join_line(waiter, "waiter");
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(holder.locks->release("reboot", "worker"));
  EXPECT_EQ(crowd.holder(), "waiter");
  ASSERT_TRUE(waiter.locks->release("reboot", "worker"));
  EXPECT_EQ(crowd.holder(), "later");
  crowd.finish();
  // The admin's remedy for a place nobody waits on any more: it holds up the line.
  put_entry_of_a_gone_process("ghost", 60);
  auto admin = node("admin");
  auto removed = admin.locks->remove_waiter("reboot", "worker", "ghost");
  ASSERT_TRUE(removed);
  EXPECT_TRUE(*removed);
  EXPECT_FALSE(queued("ghost"));
  ASSERT_TRUE(later.locks->release("reboot", "worker"));
}

// A tier's start: hundreds of agents hear the rolling reboot at once, all find the line
// empty and slots free, and all try to take one without queueing. Before, each that lost
// read the line again and, slots still free, raced again: a read and a take per slot
// taken, for every loser -- O(max) requests each, and at 900 waiters and max 15, 10,000
// requests and eight seconds before the first slot was used (bench_fleet). A waiter that
// loses that race now joins the line, which orders it from then on.
TEST_F(LockQueueTest, ACrowdThatFindsTheLineEmptyAtOnceRacesOnceThenQueues) {
  constexpr int kCrowd = 80;
  constexpr int kMax = 12;
  ASSERT_TRUE(node("admin").locks->set_max("reboot", "worker", kMax));
  std::vector<testing::Machine> crowd;
  for (int i = 0; i < kCrowd; ++i) crowd.push_back(node("c" + std::to_string(i)));
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  // etcd is stopped while the crowd sends its first reads, so all of them find the line
  // empty and no slot held, as at a tier's start.
  ASSERT_EQ(::kill(server_->pid(0), SIGSTOP), 0);
  {
    struct Resume {  // etcd runs again however this block is left
      pid_t pid;
      ~Resume() { ::kill(pid, SIGCONT); }
    } resume{server_->pid(0)};
    for (testing::Machine& m : crowd) {
      threads.emplace_back([&stop, &m] { (void)m.locks->acquire("reboot", "worker", "REBOOT", in(60s), &stop); });
    }
    std::this_thread::sleep_for(500ms);
  }
  auto admin = node("admin");
  const auto give_up = Clock::now() + 30s;
  std::size_t held = 0;
  std::size_t waiting = 0;
  while (Clock::now() < give_up) {
    if (auto state = admin.locks->group_status("reboot", "worker")) {
      held = state->holders.size();
      waiting = state->queue.size();
      if (held == kMax && waiting == kCrowd - kMax) break;
    }
    std::this_thread::sleep_for(20ms);
  }
  std::this_thread::sleep_for(300ms);  // the last to queue start their watches
  std::uint64_t sent = 0;
  for (const testing::Machine& m : crowd) sent += m.etcd->requests();
  stop = true;
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(held, static_cast<std::size_t>(kMax));
  EXPECT_EQ(waiting, static_cast<std::size_t>(kCrowd - kMax));
  // Each: a read and a take (the race), then a join, a read and a watch; the first in line
  // race each other for the slots still free (a read and a take per slot taken among at
  // most max of them). Racing on cost each loser a read and a take per slot taken: 1,006
  // to 1,176 requests in four runs before, 586 to 604 after.
  const std::uint64_t bound = kCrowd * 6 + kMax * kMax * 2;
  EXPECT_LE(sent, bound) << "the crowd sent " << sent << " requests to take " << kMax << " slots and queue the rest";
}

TEST_F(LockQueueTest, AStoppedWaiterAndOneOnALeaseOfItsOwnLeaveTheLine) {
  auto holder = node("holder");
  ASSERT_TRUE(holder.locks->acquire("reboot", "worker", "REBOOT", in(0ms)));
  // `skopos lock acquire` has no heartbeat: its place lives on a lease of its own, which
  // goes when the wait ends.
  auto own = machine({server_->endpoint()}, prefix_, "own");
  ASSERT_FALSE(own.locks->acquire("reboot", "worker", "REBOOT", in(500ms)));
  EXPECT_FALSE(queued("own"));

  auto waiter = node("waiter");

  std::atomic<bool> stop{false};
  Result<Acquired, LockError> stopped = unexpected(LockError{});
  std::thread thread([&] { stopped = waiter.locks->acquire("reboot", "worker", "REBOOT", in(60s), &stop); });
  wait_queued("waiter");
  // Its entry is in before it reads the line and starts its watch: let it settle (a
  // sanitizer build, three times slower, sent that read inside the window).
  std::this_thread::sleep_for(300ms);
  const std::uint64_t sent = waiter.etcd->requests();
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(waiter.etcd->requests(), sent) << "a waiter with a stop flag re-armed its watch";
  const auto asked = Clock::now();
  stop = true;
  thread.join();
  EXPECT_LT(Clock::now() - asked, LockService::kStopLatency + 500ms);
  ASSERT_FALSE(stopped);
  EXPECT_EQ(stopped.error().kind, LockError::Kind::kInterrupted);
  EXPECT_FALSE(queued("waiter"));
}

}  // namespace
}  // namespace skopos::driver
