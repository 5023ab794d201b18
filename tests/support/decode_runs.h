// Running the decoder's paths over a text split into chunks, and comparing what they
// made. Shared by the unit tests and the fuzz target, so it uses no test framework.
#pragma once

#include <cstddef>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "tracker/port_state_tally.h"
#include "tracker/proc_net_tcp.h"

namespace skopos::tracker::testing {

// Every kernel this CPU can run; kParser (the reference) and kPortable always.
std::vector<ScanKernel> runnable_kernels();

// The text cut at `cuts` (ascending offsets).
std::vector<std::string_view> split_at(std::string_view text, const std::vector<std::size_t>& cuts);
// The text in chunks of `size` bytes.
std::vector<std::string_view> chunks_of(std::string_view text, std::size_t size);

// What a path made of a whole input: the tally, or the error.
struct Outcome {
  std::optional<DecodeError> error;
  TallySummary summary;
  std::uint64_t lines = 0;
  std::uint64_t fallback_lines = 0;
};

bool operator==(const Outcome& a, const Outcome& b);
void PrintTo(const Outcome& outcome, std::ostream* os);

// The counting path over one file given in chunks.
Outcome count(const std::vector<std::string_view>& chunks, ScanKernel kernel);
// The record path over the same, tallying each record's local port and state.
Outcome count_records(const std::vector<std::string_view>& chunks, ScanKernel kernel = ScanKernel::kParser);
// The records of a text, or its error, through one kernel.
struct RecordsOutcome {
  std::vector<TcpSocketRecord> records;
  std::optional<DecodeError> error;
  bool operator==(const RecordsOutcome&) const = default;
};
RecordsOutcome decode_records(const std::vector<std::string_view>& chunks, ScanKernel kernel);

}  // namespace skopos::tracker::testing
