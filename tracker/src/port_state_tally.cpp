#include "tracker/port_state_tally.h"

#include <algorithm>

namespace skopos::tracker {

namespace {
constexpr std::size_t kPorts = 65536;
}  // namespace

// make_unique<T[]> value-initialises: the table starts at zero, and the kernel maps
// the 4 MiB lazily, so a namespace with few ports touches few pages.
PortStateTally::PortStateTally()
    : cells_(std::make_unique<std::uint32_t[]>(kCells)),
      used_(std::make_unique<std::uint16_t[]>(kPorts)) {}

void PortStateTally::clear() {
  for (std::uint32_t i = 0; i < used_count_; ++i) {
    std::fill_n(&cells_[std::size_t{used_[i]} * kTcpStateSlots], kTcpStateSlots, 0U);
  }
  used_count_ = 0;
}

TallySummary PortStateTally::summarize() const {
  TallySummary summary;
  summary.ports.reserve(used_count_);
  for (std::uint32_t i = 0; i < used_count_; ++i) {
    PortCounts port{.port = used_[i]};
    std::copy_n(&cells_[std::size_t{used_[i]} * kTcpStateSlots + 1], kTcpStateSlots - 1,
                port.counts.begin() + 1);
    summary.ports.push_back(port);
  }
  std::sort(summary.ports.begin(), summary.ports.end(),
            [](const PortCounts& a, const PortCounts& b) { return a.port < b.port; });
  for (const PortCounts& port : summary.ports) {
    for (std::size_t state = 1; state < port.counts.size(); ++state) {
      summary.by_state[state] += port.counts[state];
      summary.sockets += port.counts[state];
    }
    const std::uint32_t established = port.count(TcpState::kEstablished);
    if (port.listening()) {
      summary.established_inbound += established;
    } else {
      summary.established_outbound += established;
    }
  }
  return summary;
}

}  // namespace skopos::tracker
