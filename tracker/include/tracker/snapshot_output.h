// A TrackerSnapshot for people and programs (`skopos-tracker --once`): one JSON line
// (the containers as the stream's codec writes them, and the namespaces) or tables.
#pragma once

#include <string>

#include "tracker/tracker.h"

namespace skopos::tracker {

std::string snapshot_json(const TrackerSnapshot& snapshot);
std::string snapshot_table(const TrackerSnapshot& snapshot);

}  // namespace skopos::tracker
