// Helpers shared by the tracker-cli commands that read the tracker's stream.
#pragma once

#include <string>

#include "tracker/stream_client.h"

namespace skopos::tracker::cli {

// "?" for unknown (-1), the number otherwise.
std::string count_text(std::int64_t value);
// "8080:3 8443:1", "-" for none, "unknown" when the counts are unknown.
std::string inbound_ports_text(const StreamContainer& c);
// The Marathon app id, else the Mesos task id, else "-".
std::string app_text(const StreamContainer& c);

}  // namespace skopos::tracker::cli
