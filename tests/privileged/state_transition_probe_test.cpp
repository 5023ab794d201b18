// The BPF chain end to end: the skeleton built from bpf/state_transitions.bpf.c loads,
// attaches with tp_btf, and counts exactly the transitions of real sockets in the one
// namespace it was told to watch.
#include <chrono>
#include <thread>

#include "privileged_support.h"
#include "tracker/state_transition_probe.h"
#include "tracker/tcp_state.h"

namespace skopos::tracker {
namespace {

using skopos::testing::local_port;
using skopos::testing::tcp_accept;
using skopos::testing::tcp_connect;
using skopos::testing::tcp_listen;
using skopos::testing::TestNetns;

constexpr std::size_t index(TcpState state) { return static_cast<std::size_t>(state); }

// Polls (bounded) until `done` holds for the probe's counts; returns the last counts.
template <class Done>
StateTransitionProbe::Counts wait_for(const StateTransitionProbe& probe, Done done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  StateTransitionProbe::Counts counts = probe.counts();
  while (!done(counts) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    counts = probe.counts();
  }
  return counts;
}

TEST(PrivilegedBpf, StateTransitionProbeCountsRealSocketsOfItsNamespaceOnly) {
  SKOPOS_REQUIRE_ROOT();
  auto netns = TestNetns::create("skopos-bpf");
  ASSERT_TRUE(netns) << netns.error().message();
  auto created = StateTransitionProbe::create((*netns)->inode());
  ASSERT_TRUE(created) << created.error().message();
  const StateTransitionProbe& probe = **created;

  // Traffic outside the watched namespace must not be counted.
  {
    UniqueFd listener = tcp_listen("127.0.0.1", 0);
    UniqueFd client = tcp_connect("127.0.0.1", local_port(listener.get()));
    UniqueFd server = tcp_accept(listener.get());
  }

  constexpr int kConnections = 37;
  std::vector<UniqueFd> sockets;
  {
    TestNetns::Inside inside(**netns);
    UniqueFd listener = tcp_listen("127.0.0.1", 9000);
    for (int i = 0; i < kConnections; ++i) {
      sockets.push_back(tcp_connect("127.0.0.1", 9000));
      sockets.push_back(tcp_accept(listener.get()));
    }
    sockets.push_back(std::move(listener));
  }
  // Both ends of every connection enter ESTABLISHED: the client from SYN_SENT, the
  // server's child socket from SYN_RECV. The child is born a clone of the listener and
  // inet_csk_clone_lock() moves it LISTEN -> SYN_RECV through inet_sk_set_state(), which
  // fires the tracepoint too.
  auto counts = wait_for(probe, [](const auto& c) { return c.into[index(TcpState::kEstablished)] >= 2 * kConnections; });
  EXPECT_EQ(counts.into[index(TcpState::kEstablished)], 2u * kConnections);
  EXPECT_EQ(counts.into[index(TcpState::kSynSent)], static_cast<std::uint64_t>(kConnections));
  EXPECT_EQ(counts.out_of[index(TcpState::kSynSent)], static_cast<std::uint64_t>(kConnections));
  EXPECT_EQ(counts.into[index(TcpState::kSynRecv)], static_cast<std::uint64_t>(kConnections));
  EXPECT_EQ(counts.out_of[index(TcpState::kSynRecv)], static_cast<std::uint64_t>(kConnections));
  EXPECT_EQ(counts.into[index(TcpState::kListen)], 1u);
  EXPECT_EQ(counts.out_of[index(TcpState::kListen)], static_cast<std::uint64_t>(kConnections));
  EXPECT_EQ(counts.out_of[index(TcpState::kEstablished)], 0u);

  sockets.clear();  // every connection and the listener close
  counts = wait_for(probe, [](const auto& c) { return c.out_of[index(TcpState::kEstablished)] >= 2 * kConnections; });
  EXPECT_EQ(counts.out_of[index(TcpState::kEstablished)], 2u * kConnections);
  EXPECT_EQ(counts.out_of[index(TcpState::kListen)], kConnections + 1u);
  EXPECT_EQ(counts.into[index(TcpState::kEstablished)], 2u * kConnections) << "nothing from outside the namespace";
  EXPECT_EQ(counts.out_of_range, 0u);
}

TEST(PrivilegedBpf, ProbeDetachesOnDestruction) {
  SKOPOS_REQUIRE_ROOT();
  auto netns = TestNetns::create("skopos-bpf");
  ASSERT_TRUE(netns) << netns.error().message();
  const auto program_listed = [](std::uint32_t id) {
    return skopos::testing::run_command({"bpftool", "prog", "show", "id", std::to_string(id)}).has_value();
  };
  const auto link_listed = [](std::uint32_t id) {
    auto links = skopos::testing::run_command({"bpftool", "link", "list"});
    EXPECT_TRUE(links) << links.error().message();
    return links && links->find("prog " + std::to_string(id) + " ") != std::string::npos;
  };
  std::uint32_t id = 0;
  {
    auto created = StateTransitionProbe::create((*netns)->inode());
    ASSERT_TRUE(created) << created.error().message();
    id = (*created)->program_id();
    ASSERT_NE(id, 0u);
    EXPECT_TRUE(program_listed(id));
    EXPECT_TRUE(link_listed(id)) << "attached to inet_sock_set_state";
  }
  EXPECT_FALSE(link_listed(id)) << "the tracepoint link outlived the probe";
  // The kernel frees a program after an RCU grace period; wait for that, bounded.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (program_listed(id) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(program_listed(id)) << "program " << id << " outlived the probe";
}

}  // namespace
}  // namespace skopos::tracker
