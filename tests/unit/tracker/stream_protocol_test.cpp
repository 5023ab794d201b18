// The stream protocol's parsers on their own: what subscribers may send, what they are
// told when it is wrong, and what the client library reads.
#include <gtest/gtest.h>

#include "tracker/stream_protocol.h"

namespace skopos::tracker {
namespace {

TEST(StreamProtocol, SubscribeWithAFilter) {
  ClientMessageParser parser;
  auto message = parser.parse(
      R"({"type":"subscribe","protocol":1,"filter":{"ids":["0123456789ab"],"names":["web"],"marathon_app_ids":["/api"]}})");
  ASSERT_TRUE(message) << message.error().message;
  EXPECT_EQ(message->protocol, 1);
  const StreamFilter& f = message->filter;
  EXPECT_TRUE(f.matches("0123456789abcdef", "x", "", ""));  // a 12-character prefix
  EXPECT_FALSE(f.matches("0123456789ac", "x", "", ""));
  EXPECT_TRUE(f.matches("ffff", "web", "", ""));
  EXPECT_TRUE(f.matches("ffff", "x", "", "/api"));
  EXPECT_FALSE(f.matches("ffff", "x", "", "/api2"));
  EXPECT_FALSE(f.matches("ffff", "", "", "")) << "empty fields never match";
  EXPECT_TRUE(StreamFilter{}.matches("any", "thing", "", "")) << "no filter: everything";
}

TEST(StreamProtocol, ShortIdPrefixesAreNotEnough) {
  ClientMessageParser parser;
  auto message = parser.parse(R"({"type":"subscribe","protocol":1,"filter":{"ids":["0123"]}})");
  ASSERT_TRUE(message);
  EXPECT_FALSE(message->filter.matches("0123456789abcdef", "", "", ""));
  EXPECT_TRUE(message->filter.matches("0123", "", "", "")) << "exact ids always match";
}

TEST(StreamProtocol, EveryWrongMessageGetsACodeAndAReason) {
  ClientMessageParser parser;
  struct Case {
    std::string line;
    std::string code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"not json", "bad_message", "not JSON"},
      {"[]", "bad_message", "must be a JSON object"},
      {R"({"type":7})", "bad_message", "\"type\" must be a string"},
      {R"({"type":"stop","container":"web"})", "bad_message", "accepts only \"subscribe\""},
      {R"({"type":"subscribe"})", "bad_message", "\"protocol\" must be an integer"},
      {R"({"type":"subscribe","protocol":2})", "protocol_version", "protocol 2 is not supported"},
      {R"({"type":"subscribe","protocol":1,"verbose":true})", "bad_message", "unknown field 'verbose'"},
      {R"({"type":"subscribe","protocol":1,"filter":[]})", "bad_message", "\"filter\" must be an object"},
      {R"({"type":"subscribe","protocol":1,"filter":{"hosts":[]}})", "bad_message", "unknown filter 'hosts'"},
      {R"({"type":"subscribe","protocol":1,"filter":{"names":[1]}})", "bad_message", "must hold strings"},
      {std::string(kMaxClientLine, ' '), "message_too_large", "at most"},
  };
  for (const Case& c : cases) {
    auto message = parser.parse(c.line);
    ASSERT_FALSE(message) << c.line;
    EXPECT_EQ(message.error().code, c.code) << c.line;
    EXPECT_NE(message.error().message.find(c.says), std::string::npos) << c.line << " -> " << message.error().message;
  }
  std::string many = R"({"type":"subscribe","protocol":1,"filter":{"names":[)";
  for (std::size_t i = 0; i <= kMaxFilterStrings; ++i) many += (i == 0 ? "\"n\"" : ",\"n\"");
  many += "]}}";
  auto too_many = parser.parse(many);
  ASSERT_FALSE(too_many);
  EXPECT_NE(too_many.error().message.find("more than " + std::to_string(kMaxFilterStrings)), std::string::npos);
  // Found by the fuzzer: a repeated key must not get around the limit.
  std::string half = "[";
  for (std::size_t i = 0; i < kMaxFilterStrings / 2 + 1; ++i) half += (i == 0 ? "\"n\"" : ",\"n\"");
  half += "]";
  auto repeated = parser.parse(R"({"type":"subscribe","protocol":1,"filter":{"names":)" + half + R"(,"names":)" + half + "}}");
  ASSERT_FALSE(repeated);
  EXPECT_NE(repeated.error().message.find("more than " + std::to_string(kMaxFilterStrings)), std::string::npos);
}

TEST(StreamProtocol, ServerMessagesKeepUnknownCountsUnknown) {
  ServerMessageParser parser;
  auto message = parser.parse(
      R"({"type":"update","seq":9,"timestamp_ns":5,"containers_known":true,"containers":[)"
      R"({"id":"a","name":"web","network_mode":"host","known":true,"inbound":4,"outbound":null,"ports":[{"port":80,"inbound":4,"outbound":0}]},)"
      R"({"id":"b","name":"gone","known":false,"inbound":null,"outbound":null,"ports":[]}],"removed":["c"],"new_field":1})");
  ASSERT_TRUE(message) << message.error().message();
  EXPECT_EQ(message->type, ServerMessage::Type::kUpdate);
  EXPECT_EQ(message->seq, 9u);
  ASSERT_EQ(message->containers.size(), 2u);
  EXPECT_EQ(message->containers[0].inbound, 4);
  EXPECT_EQ(message->containers[0].outbound, -1);
  ASSERT_EQ(message->containers[0].ports.size(), 1u);
  EXPECT_EQ(message->containers[0].ports[0].port, 80);
  EXPECT_FALSE(message->containers[1].known);
  EXPECT_EQ(message->containers[1].inbound, -1);
  EXPECT_EQ(message->removed, std::vector<std::string>{"c"});
  EXPECT_FALSE(parser.parse(R"({"type":"telepathy"})"));
  EXPECT_FALSE(parser.parse(R"({"type":"update","containers":[{"name":"no id"}]})"));
}

}  // namespace
}  // namespace skopos::tracker
