#include "tracker/connection_counts.h"

#include <algorithm>

namespace skopos::tracker {

std::string_view source_name(SourceKind kind) {
  switch (kind) {
    case SourceKind::kBpf: return "bpf";
    case SourceKind::kProc: return "proc";
    case SourceKind::kConntrack: return "conntrack";
  }
  return "unknown";
}

namespace {

bool port_less(const PortConnections& entry, std::uint16_t port) { return entry.port < port; }

}  // namespace

std::vector<PortConnections>::iterator NamespaceCounts::find_or_insert(std::uint16_t port) {
  auto it = std::lower_bound(ports_.begin(), ports_.end(), port, port_less);
  if (it == ports_.end() || it->port != port) it = ports_.insert(it, PortConnections{port, 0, 0});
  return it;
}

void NamespaceCounts::set(std::uint16_t port, Direction direction, std::uint32_t value) {
  auto it = std::lower_bound(ports_.begin(), ports_.end(), port, port_less);
  const bool present = it != ports_.end() && it->port == port;
  if (!present) {
    if (value == 0) return;
    it = ports_.insert(it, PortConnections{port, 0, 0});
  }
  (direction == Direction::kInbound ? it->inbound : it->outbound) = value;
  if (it->inbound == 0 && it->outbound == 0) ports_.erase(it);
}

void NamespaceCounts::add(std::uint16_t port, Direction direction) {
  auto it = find_or_insert(port);
  ++(direction == Direction::kInbound ? it->inbound : it->outbound);
}

std::uint32_t NamespaceCounts::get(std::uint16_t port, Direction direction) const {
  auto it = std::lower_bound(ports_.begin(), ports_.end(), port, port_less);
  if (it == ports_.end() || it->port != port) return 0;
  return direction == Direction::kInbound ? it->inbound : it->outbound;
}

std::uint64_t NamespaceCounts::inbound() const {
  std::uint64_t total = 0;
  for (const auto& entry : ports_) total += entry.inbound;
  return total;
}

std::uint64_t NamespaceCounts::outbound() const {
  std::uint64_t total = 0;
  for (const auto& entry : ports_) total += entry.outbound;
  return total;
}

}  // namespace skopos::tracker
