// PortStateTally: counts of TCP sockets in one network namespace by local port and state.
//
// The tally is a dense table of 32-bit counters, one 65536-port array per state (4 MiB
// of address space, mapped once; pages only become memory when a count lands on them,
// so a fresh tally costs neither a 4 MiB memset nor 4 MiB of resident memory), so that
// adding a socket is one increment and one bit set, with no
// branch; a bitmap of the ports in use (8 KiB) and a mask of the states in use keep
// clearing and summarising proportional to what was counted. State-major order keeps
// the busy states' arrays (ESTABLISHED, TIME_WAIT: 256 KiB each) in L2 while a decoder
// streams through the tables. Reuse one tally across namespaces: clear() between them.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "tracker/tcp_state.h"

namespace skopos::tracker {

// Counts for one local port. Index by state number (counts[1] is ESTABLISHED).
struct PortCounts {
  std::uint16_t port = 0;
  std::array<std::uint32_t, kTcpStateSlots> counts{};

  std::uint32_t count(TcpState state) const { return counts[static_cast<std::size_t>(state)]; }
  // A port is a listening port when some socket LISTENs on it (on any address).
  bool listening() const { return count(TcpState::kListen) > 0; }

  bool operator==(const PortCounts&) const = default;
};

// A namespace's totals.
//
// ESTABLISHED sockets are inbound when their local port is a listening port of the
// same namespace (in either table), outbound otherwise. This is the port-only rule of
// the first generation's scripts: a client socket bound to a port that something also
// listens on is counted inbound.
struct TallySummary {
  std::vector<PortCounts> ports;  // ascending port order; only ports with sockets
  std::array<std::uint64_t, kTcpStateSlots> by_state{};
  std::uint64_t sockets = 0;
  std::uint64_t established_inbound = 0;
  std::uint64_t established_outbound = 0;

  std::uint64_t count(TcpState state) const { return by_state[static_cast<std::size_t>(state)]; }
};

class PortStateTally {
 public:
  static constexpr std::size_t kPorts = 65536;
  // Cell (port, state) is cells()[state * kPorts + port].
  static constexpr std::size_t kCells = kPorts * kTcpStateSlots;

  PortStateTally();  // throws std::bad_alloc when the table cannot be mapped
  ~PortStateTally();
  PortStateTally(const PortStateTally&) = delete;
  PortStateTally& operator=(const PortStateTally&) = delete;
  PortStateTally(PortStateTally&& other) noexcept;
  PortStateTally& operator=(PortStateTally&& other) noexcept;

  void add(std::uint16_t port, TcpState state) {
    in_use_[port / 64] |= std::uint64_t{1} << (port % 64);
    states_used_ |= 1u << static_cast<unsigned>(state);
    ++cells_[static_cast<std::size_t>(state) * kPorts + port];
  }

  std::uint32_t count(std::uint16_t port, TcpState state) const {
    return cells_[static_cast<std::size_t>(state) * kPorts + port];
  }
  std::uint32_t ports_in_use() const;

  // Adds every count of `other` (another part of the same tables), touching only its
  // ports and states in use.
  void add(const PortStateTally& other);
  // Back to all zeros, touching only the cells of ports and states in use.
  void clear();
  // Allocates the result; not for per-line use.
  TallySummary summarize() const;
  // summarize() without the per-port list (`ports` stays empty): no allocation.
  TallySummary totals() const;
  // Calls visit(const PortCounts&) for every port in use, in ascending order, without
  // building a list: for printing a busy host's tens of thousands of ports.
  template <class Visit>
  void for_each_port_counts(Visit visit) const {
    for_each_port([&](std::uint16_t port) { visit(port_counts(port)); });
  }

  // Raw access for the scan kernels, which do what add() does without a call per line.
  std::uint32_t* cells() { return cells_; }
  std::uint64_t* in_use() { return in_use_.get(); }
  std::uint32_t* states_used() { return &states_used_; }

 private:
  PortCounts port_counts(std::uint16_t port) const;
  // Calls f(port) for every port in use, in ascending order.
  template <class F>
  void for_each_port(F f) const {
    const std::uint64_t* in_use = in_use_.get();
    for (std::size_t word = 0; word < kPorts / 64; ++word) {
      for (std::uint64_t bits = in_use[word]; bits != 0; bits &= bits - 1) {
        f(static_cast<std::uint16_t>(word * 64 + static_cast<std::size_t>(__builtin_ctzll(bits))));
      }
    }
  }

  std::uint32_t* cells_ = nullptr;  // kCells counters, an anonymous mapping
  std::unique_ptr<std::uint64_t[]> in_use_;  // one bit per port
  std::uint32_t states_used_ = 0;            // bit s: some port has a socket in state s
};

}  // namespace skopos::tracker
