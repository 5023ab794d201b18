// The stream protocol's parsers on their own: what subscribers may send, what they are
// told when it is wrong, and what the client library reads.
#include <gtest/gtest.h>

#include "tracker/stream_protocol.h"

namespace skopos::tracker {
namespace {

// `item`, `count` times, comma-separated: a JSON list's insides.
std::string list_of(std::size_t count, std::string_view item) {
  std::string out;
  for (std::size_t i = 0; i < count; ++i) (out += i == 0 ? "" : ",") += item;
  return out;
}

TEST(StreamProtocol, SubscribeWithAFilter) {
  ClientMessageParser parser;
  auto message = parser.parse(
      R"({"type":"subscribe","protocol":1,"filter":{"ids":["0123456789ab"],"names":["web"],"marathon_app_ids":["/api"]}})");
  ASSERT_TRUE(message) << message.error().message;
  EXPECT_EQ(message->subscribe.protocol, 1);
  const StreamFilter& f = message->subscribe.filter;
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
  EXPECT_FALSE(message->subscribe.filter.matches("0123456789abcdef", "", "", ""));
  EXPECT_TRUE(message->subscribe.filter.matches("0123", "", "", "")) << "exact ids always match";
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
  auto too_many = parser.parse(R"({"type":"subscribe","protocol":1,"filter":{"names":[)" +
                               list_of(kMaxFilterStrings + 1, "\"n\"") + "]}}");
  ASSERT_FALSE(too_many);
  EXPECT_NE(too_many.error().message.find("more than " + std::to_string(kMaxFilterStrings)), std::string::npos);
  // Found by the fuzzer: a repeated key must not get around the limit.
  const std::string half = "[" + list_of(kMaxFilterStrings / 2 + 1, "\"n\"") + "]";
  auto repeated = parser.parse(R"({"type":"subscribe","protocol":1,"filter":{"names":)" + half + R"(,"names":)" + half + "}}");
  ASSERT_FALSE(repeated);
  EXPECT_NE(repeated.error().message.find("more than " + std::to_string(kMaxFilterStrings)), std::string::npos);
}

TEST(StreamProtocol, APeersQuestionReadsBackAsWrittenAndWrongOnesAreNamed) {
  ClientMessageParser parser;
  PeersRequest request;
  request.id = "0123456789abcdef";
  request.ports = {80, 443};
  request.limit = 5;
  const std::string line = encode_peers_request(request);
  ASSERT_EQ(line.back(), '\n');
  auto message = parser.parse(std::string_view(line).substr(0, line.size() - 1));
  ASSERT_TRUE(message) << message.error().message;
  ASSERT_EQ(message->type, ClientMessage::Type::kPeers);
  EXPECT_EQ(message->peers.id, request.id);
  EXPECT_EQ(message->peers.ports, request.ports);
  EXPECT_EQ(message->peers.limit, 5u);
  auto bare = parser.parse(R"({"type":"peers","id":"abc"})");
  ASSERT_TRUE(bare);
  EXPECT_TRUE(bare->peers.ports.empty()) << "no ports: every port the container listens on";
  EXPECT_EQ(bare->peers.limit, 16u);

  const std::vector<std::pair<std::string, std::string>> wrong = {
      {R"({"type":"peers"})", "\"id\" must be a container id"},
      {R"({"type":"peers","id":""})", "\"id\" must be a container id"},
      {R"({"type":"peers","id":"a","ports":[0]})", "port numbers"},
      {R"({"type":"peers","id":"a","ports":[65536]})", "port numbers"},
      {R"({"type":"peers","id":"a","ports":"80"})", "must be an array"},
      {R"({"type":"peers","id":"a","limit":0})", "\"limit\" must be 1 to 256"},
      {R"({"type":"peers","id":"a","limit":100000})", "\"limit\" must be 1 to 256"},
      {R"({"type":"peers","id":"a","all":true})", "unknown field 'all'"},
  };
  for (const auto& [text, says] : wrong) {
    auto refused = parser.parse(text);
    ASSERT_FALSE(refused) << text;
    EXPECT_EQ(refused.error().code, "bad_message") << text;
    EXPECT_NE(refused.error().message.find(says), std::string::npos) << text << " -> " << refused.error().message;
  }
  auto too_many = parser.parse(R"({"type":"peers","id":"a","ports":[)" + list_of(kMaxPeersPorts + 1, "1") + "]}");
  ASSERT_FALSE(too_many);
  EXPECT_NE(too_many.error().message.find("more than " + std::to_string(kMaxPeersPorts)), std::string::npos);
}

TEST(StreamProtocol, APeersAnswerReadsBackAsWritten) {
  PeersAnswer answer;
  answer.id = std::string(64, 'a');
  answer.known = true;
  answer.total = 7;
  answer.peers = {{80, "10.0.0.7", 51234, 99}, {443, "::ffff:10.0.0.8", 40000, 100}};
  std::string line;
  JsonWriter json(line);
  write_peers_answer(json, 4, 123, answer);
  ServerMessageParser parser;
  auto message = parser.parse(line);
  ASSERT_TRUE(message) << message.error().message();
  EXPECT_EQ(message->type, ServerMessage::Type::kPeers);
  EXPECT_EQ(message->seq, 4u);
  EXPECT_EQ(message->peers, answer);

  PeersAnswer unknown;
  unknown.id = "gone";
  unknown.reason = "no running container has id 'gone'";
  line.clear();
  json.reset();
  write_peers_answer(json, 5, 124, unknown);
  auto read = parser.parse(line);
  ASSERT_TRUE(read) << read.error().message();
  EXPECT_EQ(read->peers, unknown);
  EXPECT_FALSE(parser.parse(R"({"type":"peers","id":"x","known":true,"peers":[{"local_port":70000,"remote_address":"a","remote_port":1}]})"));
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
