#include "decode_runs.h"

namespace skopos::tracker::testing {

std::vector<ScanKernel> runnable_kernels() {
  std::vector<ScanKernel> kernels;
  for (ScanKernel k : {ScanKernel::kParser, ScanKernel::kPortable, ScanKernel::kAvx2, ScanKernel::kAvx512}) {
    if (scan_kernel_supported(k)) kernels.push_back(k);
  }
  return kernels;
}

std::vector<std::string_view> split_at(std::string_view text, const std::vector<std::size_t>& cuts) {
  std::vector<std::string_view> parts;
  std::size_t from = 0;
  for (std::size_t cut : cuts) {
    parts.push_back(text.substr(from, cut - from));
    from = cut;
  }
  parts.push_back(text.substr(from));
  return parts;
}

std::vector<std::string_view> chunks_of(std::string_view text, std::size_t size) {
  std::vector<std::string_view> parts;
  for (std::size_t from = 0; from < text.size(); from += size) parts.push_back(text.substr(from, size));
  return parts;
}

bool operator==(const Outcome& a, const Outcome& b) {
  if (a.error.has_value() != b.error.has_value()) return false;
  if (a.error) return *a.error == *b.error;
  return a.lines == b.lines && a.summary.ports == b.summary.ports &&
         a.summary.by_state == b.summary.by_state &&
         a.summary.established_inbound == b.summary.established_inbound &&
         a.summary.established_outbound == b.summary.established_outbound;
}

void PrintTo(const Outcome& outcome, std::ostream* os) {
  if (outcome.error) {
    *os << "error: " << outcome.error->message();
    return;
  }
  *os << outcome.lines << " lines, " << outcome.summary.sockets << " sockets in "
      << outcome.summary.ports.size() << " ports, inbound " << outcome.summary.established_inbound
      << ", outbound " << outcome.summary.established_outbound;
}

namespace {
// One 4 MiB tally per test thread, cleared between uses: allocating one per decode
// would dominate tests that decode thousands of small tables.
PortStateTally& scratch_tally() {
  static thread_local PortStateTally tally;
  tally.clear();
  return tally;
}
}  // namespace

Outcome count(const std::vector<std::string_view>& chunks, ScanKernel kernel) {
  PortStateTally& tally = scratch_tally();
  TcpTableCounter counter(tally, kernel);
  Outcome outcome;
  for (std::string_view chunk : chunks) {
    if (auto status = counter.feed(chunk); !status) {
      outcome.error = status.error();
      return outcome;
    }
  }
  if (auto status = counter.finish(); !status) {
    outcome.error = status.error();
    return outcome;
  }
  outcome.summary = tally.summarize();
  outcome.lines = counter.lines();
  outcome.fallback_lines = counter.fallback_lines();
  return outcome;
}

Outcome count_records(const std::vector<std::string_view>& chunks, ScanKernel kernel) {
  PortStateTally& tally = scratch_tally();
  TcpTableDecoder decoder(kernel);
  Outcome outcome;
  for (std::string_view chunk : chunks) {
    auto status = decoder.feed(chunk, [&](const TcpSocketRecord& r) { tally.add(r.local_port, r.state); });
    if (!status) {
      outcome.error = status.error();
      return outcome;
    }
  }
  if (auto status = decoder.finish(); !status) {
    outcome.error = status.error();
    return outcome;
  }
  outcome.summary = tally.summarize();
  outcome.lines = decoder.lines();
  return outcome;
}

RecordsOutcome decode_records(const std::vector<std::string_view>& chunks, ScanKernel kernel) {
  TcpTableDecoder decoder(kernel);
  RecordsOutcome outcome;
  for (std::string_view chunk : chunks) {
    auto status = decoder.feed(chunk, [&](const TcpSocketRecord& r) { outcome.records.push_back(r); });
    if (!status) {
      outcome.error = status.error();
      return outcome;
    }
  }
  if (auto status = decoder.finish(); !status) outcome.error = status.error();
  return outcome;
}

}  // namespace skopos::tracker::testing
