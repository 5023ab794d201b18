// DiscoveryUpdate: what ContainerDiscovery (container_discovery.h) tells the Tracker
// about the running containers. Its own header so the Tracker's model needs only the
// Docker documents, not the Docker client.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "skopos/docker_api.h"

namespace skopos::tracker {

struct DiscoveryUpdate {
  enum class Kind : std::uint8_t {
    kFullList,  // `containers` is every running container; forget all others
    kStarted,   // `containers` holds the one container that started (or restarted)
    kGone,      // container `id` stopped or was removed
    kUnavailable,  // the daemon cannot be reached; `error` says why; containers unknown
  };
  Kind kind = Kind::kFullList;
  std::vector<ContainerInfo> containers;
  std::string id;
  std::string error;
};

}  // namespace skopos::tracker
