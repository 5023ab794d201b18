// EtcdClient against a real etcd 3.4 on loopback: what it writes is what it reads,
// transactions report success and failure as the gateway encodes them (a failed txn has
// no "succeeded"), leases live and die, and errors say whether anything was applied.
#include <gtest/gtest.h>

#include <algorithm>

#include <thread>

#include "driver/etcd_client.h"
#include "etcd_server.h"

namespace skopos::driver {
namespace {

std::unique_ptr<EtcdClient> client_for(const std::string& endpoint) {
  EtcdOptions options;
  auto parsed = HttpEndpoint::parse(endpoint);
  EXPECT_TRUE(parsed);
  options.http.endpoints.push_back(*parsed);
  options.http.timeout = std::chrono::seconds(5);
  auto client = EtcdClient::create(std::move(options));
  EXPECT_TRUE(client);
  return std::move(*client);
}

class EtcdClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = testing::EtcdServer::start().release(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { etcd_ = client_for(server_->endpoint()); }

  static testing::EtcdServer* server_;
  std::unique_ptr<EtcdClient> etcd_;
};
testing::EtcdServer* EtcdClientTest::server_ = nullptr;

TEST_F(EtcdClientTest, PutThenRangeRoundTripsAnyBytes) {
  const std::string key = std::string("skopos/\x01\xff key", 13);
  const std::string value = std::string("{\"phase\":\"drain\"}\n\0tail", 23);
  auto put = etcd_->put(key, value);
  ASSERT_TRUE(put) << put.error().message;
  auto range = etcd_->range(key);
  ASSERT_TRUE(range) << range.error().message;
  ASSERT_EQ(range->kvs.size(), 1u);
  EXPECT_EQ(range->kvs[0].key, key);
  EXPECT_EQ(range->kvs[0].value, value);
  EXPECT_EQ(range->kvs[0].mod_revision, *put);
  EXPECT_EQ(range->kvs[0].version, 1);
  EXPECT_GE(range->revision, *put);

  auto none = etcd_->range("skopos/absent");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->kvs.empty());
  EXPECT_EQ(none->count, 0);
}

TEST_F(EtcdClientTest, PrefixRangesAndDeletes) {
  for (const char* k : {"p/a", "p/b", "p/c", "q/a"}) ASSERT_TRUE(etcd_->put(k, "1"));
  auto prefix = etcd_->range("p/", EtcdClient::prefix_end("p/"));
  ASSERT_TRUE(prefix) << prefix.error().message;
  EXPECT_EQ(prefix->kvs.size(), 3u);
  EXPECT_EQ(prefix->count, 3);
  auto limited = etcd_->range("p/", EtcdClient::prefix_end("p/"), 2);
  ASSERT_TRUE(limited);
  EXPECT_EQ(limited->kvs.size(), 2u);
  EXPECT_TRUE(limited->more);
  EXPECT_EQ(limited->count, 3) << "count is the total, not the page";
  auto deleted = etcd_->delete_range("p/", EtcdClient::prefix_end("p/"));
  ASSERT_TRUE(deleted);
  EXPECT_EQ(*deleted, 3);
  auto again = etcd_->delete_range("p/", EtcdClient::prefix_end("p/"));
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0) << "no match: the gateway omits \"deleted\"";
}

TEST_F(EtcdClientTest, RangeCompareHoldsForEveryKeyOfTheRangeAndForAnEmptyRange) {
  // "No key under holders/ was created after revision R": true for an empty range...
  auto empty = etcd_->range("range-compare/");
  ASSERT_TRUE(empty);
  Compare none_newer{"range-compare/", Compare::Target::kCreateRevision, Compare::Result::kLess, empty->revision + 1,
                     {}, EtcdClient::prefix_end("range-compare/")};
  auto first = etcd_->txn({none_newer}, {{TxnOp::Kind::kPut, "range-compare/a", "1", 0, {}}}, {});
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(first->succeeded);
  // ...and false once one key of the range is newer than the revision compared with.
  auto second = etcd_->txn({none_newer}, {{TxnOp::Kind::kPut, "range-compare/b", "1", 0, {}}}, {});
  ASSERT_TRUE(second);
  EXPECT_FALSE(second->succeeded);
  none_newer.number = first->revision + 1;
  auto third = etcd_->txn({none_newer}, {{TxnOp::Kind::kPut, "range-compare/b", "1", 0, {}}}, {});
  ASSERT_TRUE(third);
  EXPECT_TRUE(third->succeeded);
  auto keys = etcd_->range("range-compare/", EtcdClient::prefix_end("range-compare/"));
  ASSERT_TRUE(keys);
  EXPECT_EQ(keys->kvs.size(), 2u);
}

TEST_F(EtcdClientTest, CreateIfAbsentSucceedsOnceAndReportsTheHolderOtherwise) {
  const std::vector<Compare> absent = {{"lock/slot", Compare::Target::kCreateRevision, Compare::Result::kEqual, 0, {}, {}}};
  const std::vector<TxnOp> take = {{TxnOp::Kind::kPut, "lock/slot", "machine-a", 0, {}}};
  const std::vector<TxnOp> who = {{TxnOp::Kind::kRange, "lock/slot", {}, 0, {}}};
  auto first = etcd_->txn(absent, take, who);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(first->succeeded);
  auto second = etcd_->txn(absent, {{TxnOp::Kind::kPut, "lock/slot", "machine-b", 0, {}}}, who);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_FALSE(second->succeeded);
  ASSERT_EQ(second->ranges.size(), 1u);
  ASSERT_EQ(second->ranges[0].kvs.size(), 1u);
  EXPECT_EQ(second->ranges[0].kvs[0].value, "machine-a");
  EXPECT_EQ(second->ranges[0].kvs[0].create_revision, first->revision) << "the holder's fencing token";

  // Compare-and-swap on the holder's revision.
  const std::int64_t token = second->ranges[0].kvs[0].mod_revision;
  auto cas = etcd_->txn({{"lock/slot", Compare::Target::kModRevision, Compare::Result::kEqual, token, {}, {}}},
                        {{TxnOp::Kind::kPut, "lock/slot", "machine-a:phase2", 0, {}}}, {});
  ASSERT_TRUE(cas);
  EXPECT_TRUE(cas->succeeded);
  auto stale = etcd_->txn({{"lock/slot", Compare::Target::kModRevision, Compare::Result::kEqual, token, {}, {}}},
                          {{TxnOp::Kind::kPut, "lock/slot", "late writer", 0, {}}}, {});
  ASSERT_TRUE(stale);
  EXPECT_FALSE(stale->succeeded) << "a stale fencing token must not write";
  auto now = etcd_->range("lock/slot");
  ASSERT_TRUE(now && now->kvs.size() == 1);
  EXPECT_EQ(now->kvs[0].value, "machine-a:phase2");
}

TEST_F(EtcdClientTest, LeasesKeepKeysAliveUntilRevoked) {
  auto lease = etcd_->lease_grant(1);  // etcd raises it to its minimum
  ASSERT_TRUE(lease) << lease.error().message;
  ASSERT_TRUE(etcd_->put("heartbeat/a", "alive", *lease));
  auto ttl = etcd_->lease_keepalive(*lease);
  ASSERT_TRUE(ttl) << ttl.error().message;
  EXPECT_GE(*ttl, 1);
  auto held = etcd_->range("heartbeat/a");
  ASSERT_TRUE(held && held->kvs.size() == 1);
  EXPECT_EQ(held->kvs[0].lease, *lease);
  ASSERT_TRUE(etcd_->lease_revoke(*lease));
  auto after = etcd_->range("heartbeat/a");
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->kvs.empty()) << "revoking the lease deletes its keys";
  auto gone = etcd_->lease_keepalive(*lease);
  ASSERT_TRUE(gone) << gone.error().message;
  EXPECT_EQ(*gone, 0) << "an expired lease has no TTL";
  auto revoke_again = etcd_->lease_revoke(*lease);
  ASSERT_FALSE(revoke_again);
  EXPECT_EQ(revoke_again.error().kind, OutsideError::Kind::kRefused);
  EXPECT_EQ(revoke_again.error().code, 5) << revoke_again.error().message;
}

TEST_F(EtcdClientTest, WatchWakesOnAChangeAndWaitsOutQuietPeriods) {
  auto start = etcd_->put("w/seed", "x");
  ASSERT_TRUE(start);
  // Nothing changes: it waits until the deadline and reports no events.
  const auto quiet_start = std::chrono::steady_clock::now();
  auto quiet = etcd_->wait_for_change("w/slots/", EtcdClient::prefix_end("w/slots/"), *start + 1,
                                      quiet_start + std::chrono::milliseconds(300));
  ASSERT_TRUE(quiet) << quiet.error().message;
  EXPECT_TRUE(quiet->events.empty());
  EXPECT_GE(std::chrono::steady_clock::now() - quiet_start, std::chrono::milliseconds(250));

  // A change made while it waits wakes it, with the event.
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto other = client_for(server_->endpoint());
    (void)other->put("w/slots/1", "holder");
    (void)other->delete_range("w/slots/1");
  });
  auto woke = etcd_->wait_for_change("w/slots/", EtcdClient::prefix_end("w/slots/"), *start + 1,
                                     std::chrono::steady_clock::now() + std::chrono::seconds(5));
  writer.join();
  ASSERT_TRUE(woke) << woke.error().message;
  ASSERT_FALSE(woke->events.empty());
  EXPECT_EQ(woke->events[0].type, WatchEvent::Type::kPut);
  EXPECT_EQ(woke->events[0].kv.key, "w/slots/1");

  // Replayed from a past revision: the delete is there too.
  auto replay = etcd_->wait_for_change("w/slots/", EtcdClient::prefix_end("w/slots/"), woke->revision + 1,
                                       std::chrono::steady_clock::now() + std::chrono::seconds(5));
  ASSERT_TRUE(replay) << replay.error().message;
  ASSERT_FALSE(replay->events.empty());
  EXPECT_EQ(replay->events[0].type, WatchEvent::Type::kDelete);
}

// wait_for_news watches from the revision and from now at once: a change the caller
// has not seen is never lost, whether it came before the watch (in the gap after the
// caller's read) or after it, and the wait still ends with one batch, not one per twin.
// (How much sooner it hears a change after the watch: bench_locks.)
TEST_F(EtcdClientTest, WaitForNewsMissesNoChangeSinceTheRevisionAndEndsWithOneBatch) {
  auto seen = etcd_->put("n/seed", "x");
  ASSERT_TRUE(seen);
  auto other = client_for(server_->endpoint());
  // A change in the gap, and writes elsewhere that move etcd past the revision.
  ASSERT_TRUE(other->put("n/watched/a", "1"));
  ASSERT_TRUE(other->put("n/elsewhere", "1"));
  const std::vector<WatchSpec> watched{WatchSpec{"n/watched/", EtcdClient::prefix_end("n/watched/"), false}};
  auto gap = etcd_->wait_for_news(watched, *seen + 1, std::chrono::steady_clock::now() + std::chrono::seconds(5));
  ASSERT_TRUE(gap) << gap.error().message;
  ASSERT_EQ(gap->events.size(), 1u);
  EXPECT_EQ(gap->events[0].kv.key, "n/watched/a");

  // A change after the watch, on a stream whose watcher from the revision starts behind
  // (etcd has passed it: a write elsewhere after it), so the twin from now brings it.
  // (That it brings it sooner, bench_locks measures; here: once, and not lost.)
  auto after = other->put("n/elsewhere", "2");
  ASSERT_TRUE(after);
  ASSERT_TRUE(other->put("n/elsewhere", "3"));
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    (void)other->delete_range("n/watched/a");
  });
  auto news = etcd_->wait_for_news(watched, *after + 1, std::chrono::steady_clock::now() + std::chrono::seconds(5));
  writer.join();
  ASSERT_TRUE(news) << news.error().message;
  ASSERT_EQ(news->events.size(), 1u) << "each change once, though two watchers saw it";
  EXPECT_EQ(news->events[0].type, WatchEvent::Type::kDelete);

  // Quiet: the deadline ends it with nothing, as wait_for_change.
  auto quiet = etcd_->wait_for_news(watched, news->revision + 1,
                                    std::chrono::steady_clock::now() + std::chrono::milliseconds(200));
  ASSERT_TRUE(quiet) << quiet.error().message;
  EXPECT_TRUE(quiet->events.empty());
  EXPECT_EQ(etcd_->requests(), 4u) << "one request per wait, twins and all";
}

// With `enough`, wait_for_news listens on the one stream until it has heard enough: the
// changes add up in one result, each once though both twins see the later ones, and it
// costs one request however many batches came.
TEST_F(EtcdClientTest, WaitForNewsUntilEnoughAddsUpTheChangesOnOneStreamEachOnce) {
  auto seen = etcd_->put("e/seed", "x");
  ASSERT_TRUE(seen);
  auto other = client_for(server_->endpoint());
  ASSERT_TRUE(other->put("e/watched/gap", "1"));  // in the gap: only the watcher from the revision has it
  const std::uint64_t before = etcd_->requests();
  std::thread writer([&] {
    for (int i = 0; i < 3; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(40));
      (void)other->put("e/watched/k", std::to_string(i));  // a batch each, seen by both twins
    }
  });
  const auto enough = [](const WatchResult& heard) { return heard.events.size() >= 4; };
  auto news = etcd_->wait_for_news({WatchSpec{"e/watched/", EtcdClient::prefix_end("e/watched/"), false}}, *seen + 1,
                                   std::chrono::steady_clock::now() + std::chrono::seconds(5), nullptr, enough);
  writer.join();
  ASSERT_TRUE(news) << news.error().message;
  ASSERT_EQ(news->events.size(), 4u);
  // The gap's change may come after later ones (wait_for_news): in revision order, each
  // change is there once.
  std::vector<WatchEvent> heard = news->events;
  std::sort(heard.begin(), heard.end(),
            [](const WatchEvent& a, const WatchEvent& b) { return a.kv.mod_revision < b.kv.mod_revision; });
  EXPECT_EQ(heard[0].kv.key, "e/watched/gap");
  for (std::size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(heard[i].kv.value, std::to_string(i - 1));
    EXPECT_LT(heard[i - 1].kv.mod_revision, heard[i].kv.mod_revision);
  }
  EXPECT_EQ(etcd_->requests() - before, 1u) << "one stream for the whole wait";
}

TEST(EtcdClientDown, NoEtcdIsUnavailableNotUnknown) {
  auto etcd = client_for("http://127.0.0.1:1");
  auto put = etcd->put("k", "v");
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error().kind, OutsideError::Kind::kUnavailable) << put.error().message;
}

}  // namespace
}  // namespace skopos::driver
