// The decoder against the real kernel: in a network namespace of its own the test
// opens a known set of sockets, then checks what the decoder reads from that
// namespace's /proc tables against what it opened and against `ss -tan`.
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <sstream>
#include <thread>

#include "privileged_support.h"
#include "tracker/proc_net_reader.h"

namespace skopos::tracker {
namespace {

using skopos::testing::local_port;
using skopos::testing::run_command;
using skopos::testing::tcp_accept;
using skopos::testing::tcp_connect;
using skopos::testing::tcp_listen;
using skopos::testing::TestNetns;

constexpr std::uint16_t kV4Port = 8080;    // 127.0.0.1, IPv4 only
constexpr std::uint16_t kV6Port = 8081;    // [::1], IPv6 only
constexpr std::uint16_t kDualPort = 8082;  // [::], IPv4 clients arrive IPv4-mapped
constexpr int kV4Connections = 23;
constexpr int kV6Connections = 11;
constexpr int kMappedConnections = 7;
constexpr int kDualV6Connections = 5;
constexpr int kTimeWait = 4;
constexpr int kCloseWait = 3;

// ss's names for TCP states (misc/ss.c sstate_name).
const std::map<std::string, TcpState> kSsStates = {
    {"ESTAB", TcpState::kEstablished}, {"SYN-SENT", TcpState::kSynSent},   {"SYN-RECV", TcpState::kSynRecv},
    {"FIN-WAIT-1", TcpState::kFinWait1}, {"FIN-WAIT-2", TcpState::kFinWait2}, {"TIME-WAIT", TcpState::kTimeWait},
    {"UNCONN", TcpState::kClose},        {"CLOSE-WAIT", TcpState::kCloseWait}, {"LAST-ACK", TcpState::kLastAck},
    {"LISTEN", TcpState::kListen},       {"CLOSING", TcpState::kClosing}};

// (port, state) -> count, from `ss -tan` in the namespace.
std::map<std::pair<std::uint16_t, TcpState>, std::uint32_t> ss_counts(const std::string& netns) {
  std::map<std::pair<std::uint16_t, TcpState>, std::uint32_t> counts;
  auto output = run_command({"ip", "netns", "exec", netns, "ss", "-tan"});
  EXPECT_TRUE(output) << output.error().message();
  if (!output) return counts;
  std::istringstream lines(*output);
  std::string line;
  std::getline(lines, line);  // header
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string state, recv_q, send_q, local;
    fields >> state >> recv_q >> send_q >> local;
    const auto known = kSsStates.find(state);
    EXPECT_NE(known, kSsStates.end()) << "ss state " << state;
    if (known == kSsStates.end()) continue;
    const auto port = static_cast<std::uint16_t>(std::stoul(local.substr(local.rfind(':') + 1)));
    ++counts[{port, known->second}];
  }
  return counts;
}

TEST(PrivilegedDecoderNetns, CountsWhatTheTestOpenedAndAgreesWithSs) {
  SKOPOS_REQUIRE_ROOT();
  auto netns = TestNetns::create("skopos-decoder");
  ASSERT_TRUE(netns) << netns.error().message();

  std::vector<UniqueFd> sockets;  // closed at the end of the test, after the checks
  std::vector<std::uint16_t> time_wait_ports;
  PortStateTally tally;
  ProcNetReader reader;
  {
    TestNetns::Inside inside(**netns);
    UniqueFd v4 = tcp_listen("127.0.0.1", kV4Port);
    UniqueFd v6 = tcp_listen("::1", kV6Port);
    UniqueFd dual = tcp_listen("::", kDualPort, /*v6_only=*/false);
    const auto connect_n = [&](int n, const char* address, std::uint16_t port, int listener) {
      for (int i = 0; i < n; ++i) {
        sockets.push_back(tcp_connect(address, port));
        sockets.push_back(tcp_accept(listener));
      }
    };
    connect_n(kV4Connections, "127.0.0.1", kV4Port, v4.get());
    connect_n(kV6Connections, "::1", kV6Port, v6.get());
    connect_n(kMappedConnections, "127.0.0.1", kDualPort, dual.get());
    connect_n(kDualV6Connections, "::1", kDualPort, dual.get());

    // TIME_WAIT: the client closes first and the server follows, so the client's
    // socket waits out 2*MSL.
    for (int i = 0; i < kTimeWait; ++i) {
      UniqueFd client = tcp_connect("127.0.0.1", kV4Port);
      UniqueFd server = tcp_accept(v4.get());
      time_wait_ports.push_back(local_port(client.get()));
      client.reset();
      char byte;
      ASSERT_EQ(::recv(server.get(), &byte, 1, 0), 0) << "the server should see the client's FIN";
    }
    // CLOSE_WAIT: the client closes, the server never does (its client: FIN_WAIT2).
    for (int i = 0; i < kCloseWait; ++i) {
      UniqueFd client = tcp_connect("127.0.0.1", kV4Port);
      sockets.push_back(tcp_accept(v4.get()));
      client.reset();
    }
    sockets.push_back(std::move(v4));
    sockets.push_back(std::move(v6));
    sockets.push_back(std::move(dual));

    // The closes above finish in softirq context; wait (bounded) until the namespace
    // shows them all before comparing.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      auto status = reader.count_namespace("/proc/thread-self/net", tally);
      ASSERT_TRUE(status) << status.error().message();
      const TallySummary s = tally.summarize();
      if ((s.count(TcpState::kTimeWait) == kTimeWait && s.count(TcpState::kCloseWait) == kCloseWait &&
           s.count(TcpState::kFinWait2) == kCloseWait) ||
          std::chrono::steady_clock::now() > deadline) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  const TallySummary summary = tally.summarize();
  constexpr int kAccepted = kV4Connections + kV6Connections + kMappedConnections + kDualV6Connections;
  EXPECT_EQ(summary.count(TcpState::kListen), 3u);
  EXPECT_EQ(summary.count(TcpState::kEstablished), 2u * kAccepted);
  EXPECT_EQ(summary.established_inbound, static_cast<std::uint64_t>(kAccepted));
  EXPECT_EQ(summary.established_outbound, static_cast<std::uint64_t>(kAccepted));
  EXPECT_EQ(summary.count(TcpState::kTimeWait), static_cast<std::uint64_t>(kTimeWait));
  EXPECT_EQ(summary.count(TcpState::kCloseWait), static_cast<std::uint64_t>(kCloseWait));
  EXPECT_EQ(summary.count(TcpState::kFinWait2), static_cast<std::uint64_t>(kCloseWait));
  EXPECT_EQ(summary.sockets, 3u + 2u * kAccepted + kTimeWait + 2u * kCloseWait);

  EXPECT_EQ(tally.count(kV4Port, TcpState::kEstablished), static_cast<std::uint32_t>(kV4Connections));
  EXPECT_EQ(tally.count(kV4Port, TcpState::kCloseWait), static_cast<std::uint32_t>(kCloseWait));
  EXPECT_EQ(tally.count(kV6Port, TcpState::kEstablished), static_cast<std::uint32_t>(kV6Connections));
  // IPv4-mapped and native IPv6 connections to the dual-stack listener, both in tcp6.
  EXPECT_EQ(tally.count(kDualPort, TcpState::kEstablished),
            static_cast<std::uint32_t>(kMappedConnections + kDualV6Connections));
  for (std::uint16_t port : time_wait_ports) EXPECT_EQ(tally.count(port, TcpState::kTimeWait), 1u) << port;

  // And exactly what ss sees, port by port and state by state.
  const auto ss = ss_counts((*netns)->name());
  std::map<std::pair<std::uint16_t, TcpState>, std::uint32_t> ours;
  for (const PortCounts& port : summary.ports) {
    for (int state = kFirstTcpState; state <= kLastTcpState; ++state) {
      if (port.counts[static_cast<std::size_t>(state)] != 0) {
        ours[{port.port, static_cast<TcpState>(state)}] = port.counts[static_cast<std::size_t>(state)];
      }
    }
  }
  EXPECT_EQ(ours, ss);

  // The same namespace read through tracker-cli's route for process-less namespaces.
  PortStateTally by_path;
  auto status = count_namespace_by_path(reader, "/run/netns/" + (*netns)->name(), by_path);
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ(by_path.summarize().ports, summary.ports);
}

}  // namespace
}  // namespace skopos::tracker
