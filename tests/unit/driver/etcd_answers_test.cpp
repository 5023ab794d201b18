// Reading the etcd gateway's answers: keys and values are strict base64, and a bad one
// is refused without writing past the decoded string.
#include <simdjson.h>
#include <gtest/gtest.h>

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
  EXPECT_EQ(refused.error().kind, EtcdError::Kind::kBadResponse);
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

}  // namespace
}  // namespace skopos::driver
