// Helpers for decoder unit tests: the shared runs (tests/support/decode_runs.h), the
// captured tables, and records that must decode.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "decode_runs.h"

namespace skopos::tracker::testing {

// Reads tests/unit/tracker/testdata/<name>.
std::string testdata(std::string_view name);

// All records of a whole text (which must decode).
std::vector<TcpSocketRecord> records_of(std::string_view text, ScanKernel kernel = ScanKernel::kParser);

}  // namespace skopos::tracker::testing
