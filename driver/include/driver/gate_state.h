// GateState: one gate's verdict at its last check -- a pause, the maintenance windows,
// the soak, the Prometheus query, the firing alerts -- for the agent's metrics and for
// status. Every configured gate is evaluated at every check, not only up to the first
// closed one, so each shows its own state.
#pragma once

#include <string>

namespace skopos::driver {

struct GateState {
  std::string gate;      // "pause", "window", "soak", "query", "alerts"
  bool open = false;
  bool unknown = false;  // closed because it could not be evaluated (unknown is closed)
  std::string reason;    // for people, open or closed
};

}  // namespace skopos::driver
