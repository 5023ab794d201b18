// Reading the etcd gateway's answers: keys and values are strict base64, and a bad one
// is refused without writing past the decoded string.
#include <simdjson.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "driver/etcd_client.h"

namespace skopos::driver {
namespace {

TEST(EtcdAnswers, ARangeWithAKeyThatIsNotWholeBase64QuadsIsRefusedCleanly) {
  // Found by fuzzing: a 23-character key decoded 17 bytes into a string sized for 15,
  // corrupting the value next to it (ASan: bad-free).
  simdjson::dom::parser parser;
  const std::string bad = R"({"header":{"revision":"3"},"kvs":[{"key":"Zm9v///////////////////","value":"YmF6",)"
                          R"("create_revision":"3","mod_revision":"3","version":"1"}],"count":"1"})";
  auto refused = parse_etcd_range(parser, bad);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, OutsideError::Kind::kBadResponse);
  EXPECT_EQ(refused.error().message, "kvs[].key is not base64");

  const std::string good = R"({"header":{"revision":"3"},"kvs":[{"key":"Zm9v","value":"YmF6",)"
                           R"("create_revision":"3","mod_revision":"3","version":"1"}],"count":"1"})";
  auto range = parse_etcd_range(parser, good);
  ASSERT_TRUE(range) << range.error().message;
  ASSERT_EQ(range->kvs.size(), 1u);
  EXPECT_EQ(range->kvs[0].key, "foo");
  EXPECT_EQ(range->kvs[0].value, "baz");
  EXPECT_EQ(range->revision, 3);
}

TEST(EtcdAnswers, AFailedTxnHasNoSucceededFieldAndItsRangesAreRead) {
  simdjson::dom::parser parser;
  auto failed = parse_etcd_txn(parser, R"({"header":{"revision":"9"}})");
  ASSERT_TRUE(failed) << failed.error().message;
  EXPECT_FALSE(failed->succeeded);
  EXPECT_EQ(failed->revision, 9);
  auto bad = parse_etcd_txn(parser, "[1,2]");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "txn: not a JSON object");
}

TEST(EtcdAnswers, TheWatchStreamIsReadALineAtATime) {
  simdjson::dom::parser parser;
  WatchResult watch;
  auto created = parse_etcd_watch_line(parser, R"({"result":{"header":{"revision":"11"},"created":true}})", watch);
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_FALSE(*created) << "created: the watch goes on";
  auto events = parse_etcd_watch_line(
      parser,
      R"({"result":{"header":{"revision":"12"},"events":[{"kv":{"key":"ZHJhaW4vaG9zdC1h","create_revision":"12",)"
      R"("mod_revision":"12","version":"1","value":"c3RhcnRlZA=="}},{"type":"DELETE","kv":{"key":"Zm9v",)"
      R"("mod_revision":"12"}}]}})",
      watch);
  ASSERT_TRUE(events) << events.error().message;
  EXPECT_TRUE(*events);
  EXPECT_EQ(watch.revision, 12);
  ASSERT_EQ(watch.events.size(), 2u);
  EXPECT_EQ(watch.events[0].kv.key, "drain/host-a");
  EXPECT_EQ(watch.events[0].kv.value, "started");
  EXPECT_EQ(watch.events[1].type, WatchEvent::Type::kDelete);

  WatchResult compacted;
  auto canceled = parse_etcd_watch_line(
      parser, R"({"result":{"header":{"raft_term":"2"},"canceled":true,"compact_revision":"10"}})", compacted);
  ASSERT_TRUE(canceled) << canceled.error().message;
  EXPECT_TRUE(*canceled && compacted.compacted);
  EXPECT_EQ(compacted.compact_revision, 10);

  for (const auto& [line, why] : std::vector<std::pair<std::string, std::string>>{
           {"not json", "watch: not a JSON object"},
           {R"({"error":"etcdserver: mvcc: required revision has been compacted"})",
            "watch: etcdserver: mvcc: required revision has been compacted"},
           {R"({"result":{"header":{"revision":"12"},"events":[{"kv":{"key":"Zm9v"}},{"type":"PUT"}]}})",
            "watch: an event without kv"},
           {R"({"result":{"canceled":true,"compact_revision":"ten"}})", "watch: compact_revision is not an integer"},
       }) {
    WatchResult untouched;
    auto refused = parse_etcd_watch_line(parser, line, untouched);
    ASSERT_FALSE(refused) << line;
    EXPECT_EQ(refused.error().kind, OutsideError::Kind::kBadResponse);
    EXPECT_EQ(refused.error().message, why);
    EXPECT_TRUE(untouched.events.empty() && untouched.revision == 0 && !untouched.compacted) << "refused whole: " << line;
  }
}

}  // namespace
}  // namespace skopos::driver
