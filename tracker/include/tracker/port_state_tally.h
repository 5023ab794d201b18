// PortStateTally: counts of TCP sockets in one network namespace by local port and state.
//
// The tally is a dense 65536 x 16 table of 32-bit counters (4 MiB, allocated once) so
// that adding a socket is one increment in one cache line, plus a list of the ports in
// use so that clearing and summarising cost O(ports in use), not O(65536). Reuse one
// tally across namespaces: clear() between them.
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
  // Cell (port, state) is cells()[port * kTcpStateSlots + state]. Slot 0 of a port's
  // row is not a TCP state; it marks the row as in use.
  static constexpr std::size_t kCells = 65536 * kTcpStateSlots;

  PortStateTally();
  PortStateTally(const PortStateTally&) = delete;
  PortStateTally& operator=(const PortStateTally&) = delete;
  PortStateTally(PortStateTally&&) noexcept = default;
  PortStateTally& operator=(PortStateTally&&) noexcept = default;

  void add(std::uint16_t port, TcpState state) {
    std::uint32_t* row = &cells_[std::size_t{port} * kTcpStateSlots];
    if (row[0] == 0) {
      row[0] = 1;
      used_[used_count_++] = port;
    }
    ++row[static_cast<std::size_t>(state)];
  }

  std::uint32_t count(std::uint16_t port, TcpState state) const {
    return cells_[std::size_t{port} * kTcpStateSlots + static_cast<std::size_t>(state)];
  }
  std::uint32_t ports_in_use() const { return used_count_; }

  // Back to all zeros, touching only the rows in use.
  void clear();
  // Allocates the result; not for per-line use.
  TallySummary summarize() const;

  // Raw access for the scan kernels, which do what add() does without a call per line.
  std::uint32_t* cells() { return cells_.get(); }
  std::uint16_t* used_ports() { return used_.get(); }
  std::uint32_t* used_count() { return &used_count_; }

 private:
  std::unique_ptr<std::uint32_t[]> cells_;
  std::unique_ptr<std::uint16_t[]> used_;
  std::uint32_t used_count_ = 0;
};

}  // namespace skopos::tracker
