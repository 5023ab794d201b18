// Established connections of one port, inbound (accepted on it, keyed by the local port)
// and outbound (connected to it, keyed by the remote port): what the sources count
// and what the stream publishes (stream_protocol.h calls it StreamPort). One type, so
// counts reach the wire without a copy into another shape.
#pragma once

#include <cstdint>

namespace skopos::tracker {

struct PortConnections {
  std::uint16_t port = 0;
  std::uint32_t inbound = 0;
  std::uint32_t outbound = 0;

  bool operator==(const PortConnections&) const = default;
};

}  // namespace skopos::tracker
