// Generates /proc/net/tcp and /proc/net/tcp6 tables exactly as the kernel prints them,
// for benchmarks, tests and fuzz seeds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "tracker/port_state_tally.h"
#include "tracker/proc_net_tcp.h"

namespace skopos::bench {

// A table of `sockets` lines with a realistic mix: listeners first (as the kernel
// lists its listening hash first), then mostly ESTABLISHED -- about 60% inbound to the
// listening ports -- with TIME_WAIT, CLOSE_WAIT and a few of every other state, in all
// three line shapes. tcp6 tables hold both native IPv6 and IPv4-mapped connections.
// Slot numbers widen past 9999 as the kernel's "%4d" does. Deterministic for a seed.
std::string generate_tcp_table(tracker::TcpTableFamily family, std::size_t sockets,
                               std::uint64_t seed = 1);

// What generate_tcp_table() put in the table, counted independently of the decoder.
struct GeneratedCounts {
  std::uint64_t sockets = 0;
  std::uint64_t listening = 0;
  std::uint64_t established = 0;
  std::uint64_t established_inbound = 0;  // local port is one of the listeners'
};
GeneratedCounts generated_counts(tracker::TcpTableFamily family, std::size_t sockets,
                                 std::uint64_t seed = 1);

}  // namespace skopos::bench
