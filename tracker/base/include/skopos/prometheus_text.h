// Writing the Prometheus text exposition format (version 0.0.4): the tracker's metrics
// endpoint, `skopos lock status --metrics` and the drain's metrics file.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace skopos::prometheus {

// `name="value"`, the value escaped as the format wants it (\\, \" and \n), preceded by
// a comma unless it is the first label of its set.
void append_label(std::string& out, std::string_view name, std::string_view value, bool first);

// The # HELP and # TYPE lines of a metric family.
void append_header(std::string& out, std::string_view name, std::string_view type, std::string_view help);

// One sample line without labels: `name value`.
void append_sample(std::string& out, std::string_view name, std::uint64_t value);

}  // namespace skopos::prometheus
