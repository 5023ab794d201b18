// `tracker-cli netns` on a namespace the test made: it must find it (it has no process
// of its own, so only through /run/netns) and report exactly the sockets in it.
#include <simdjson.h>

#include "privileged_support.h"
#include "process.h"

namespace {

using skopos::UniqueFd;
using skopos::testing::run_process;
using skopos::testing::tcp_accept;
using skopos::testing::tcp_connect;
using skopos::testing::tcp_listen;
using skopos::testing::TestNetns;

TEST(PrivilegedTrackerCli, NetnsReportsANamespaceHeldOnlyByItsName) {
  SKOPOS_REQUIRE_ROOT();
  auto netns = TestNetns::create("skopos-cli");
  ASSERT_TRUE(netns) << netns.error().message();
  constexpr int kConnections = 13;
  std::vector<UniqueFd> sockets;
  {
    TestNetns::Inside inside(**netns);
    UniqueFd listener = tcp_listen("::", 443, /*v6_only=*/false);
    for (int i = 0; i < kConnections; ++i) {
      sockets.push_back(tcp_connect(i % 2 == 0 ? "127.0.0.1" : "::1", 443));
      sockets.push_back(tcp_accept(listener.get()));
    }
    sockets.push_back(std::move(listener));
  }

  const auto r = run_process({SKOPOS_TRACKER_CLI, "netns", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(r.out).get(doc), simdjson::SUCCESS) << r.out;
  bool found = false;
  for (simdjson::dom::element ns : doc["namespaces"]) {
    std::uint64_t inode = 0;
    ASSERT_EQ(ns["inode"].get(inode), simdjson::SUCCESS);
    if (inode != (*netns)->inode()) continue;
    found = true;
    std::string_view name;
    ASSERT_EQ(ns.at_pointer("/names/0").get(name), simdjson::SUCCESS);
    EXPECT_EQ(name, (*netns)->name());
    std::uint64_t value = 0;
    ASSERT_EQ(ns["sockets"].get(value), simdjson::SUCCESS) << simdjson::to_string(ns);
    EXPECT_EQ(value, 1u + 2u * kConnections);
    ASSERT_EQ(ns.at_pointer("/established/inbound").get(value), simdjson::SUCCESS);
    EXPECT_EQ(value, static_cast<std::uint64_t>(kConnections));
    ASSERT_EQ(ns.at_pointer("/established/outbound").get(value), simdjson::SUCCESS);
    EXPECT_EQ(value, static_cast<std::uint64_t>(kConnections));
    ASSERT_EQ(ns.at_pointer("/listening_ports/0").get(value), simdjson::SUCCESS);
    EXPECT_EQ(value, 443u);
  }
  EXPECT_TRUE(found) << "namespace " << (*netns)->name() << " not listed:\n" << r.out;
}

}  // namespace
