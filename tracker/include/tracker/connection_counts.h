// The tracker's data model: established TCP connections of one network namespace, per
// port and direction. This is what every source produces and what the stream publishes.
//
// Direction is decided once per socket, when it is first counted:
//  * inbound  -- accepted from a listener; keyed by its LOCAL port (the service port).
//    Sockets that already existed when counting began (snapshot, /proc) are inbound when
//    their local port has a listener in the same namespace, in either table.
//  * outbound -- opened by connect(); keyed by the REMOTE port (5432 for a database
//    pool), because the local port of an outgoing connection is an ephemeral number.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "tracker/port_connections.h"  // PortConnections: one port's counts

namespace skopos::tracker {

enum class Direction : std::uint8_t { kInbound, kOutbound };

// Where counts came from.
enum class SourceKind : std::uint8_t { kBpf, kProc, kConntrack };
std::string_view source_name(SourceKind kind);  // "bpf", "proc", "conntrack"


// Counts of one namespace: ports in ascending order, only ports with a nonzero count.
class NamespaceCounts {
 public:
  // Sets one count; a port whose counts are both 0 is dropped.
  void set(std::uint16_t port, Direction direction, std::uint32_t value);
  // Adds one socket (the /proc path builds counts this way).
  void add(std::uint16_t port, Direction direction);
  void clear() { ports_.clear(); }

  const std::vector<PortConnections>& ports() const { return ports_; }
  std::uint32_t get(std::uint16_t port, Direction direction) const;
  std::uint64_t inbound() const;
  std::uint64_t outbound() const;

  bool operator==(const NamespaceCounts&) const = default;

 private:
  std::vector<PortConnections>::iterator find_or_insert(std::uint16_t port);
  std::vector<PortConnections> ports_;
};

}  // namespace skopos::tracker
