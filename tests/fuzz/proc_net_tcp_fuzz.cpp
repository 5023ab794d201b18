// libFuzzer target for the /proc/net/tcp{,6} decoder.
//
// Input: one byte choosing how to cut the rest into chunks, then the table text.
// On every input, beyond "no crash, no sanitizer report":
//  * the record path of every kernel this CPU runs makes exactly the records of the
//    full parser (ScanKernel::kParser), or stops with exactly its error (line, byte, offset, kind);
//  * the counting path of every kernel makes exactly the tally of those records, or
//    the same error;
//  * both hold with the input cut into chunks, each copied into its own exactly sized
//    allocation, so that AddressSanitizer reports any read past a chunk's end.
// A violated property aborts with a description, which libFuzzer saves as a crash.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "decode_runs.h"

namespace {

using namespace skopos::tracker;
using skopos::tracker::testing::count;
using skopos::tracker::testing::count_records;
using skopos::tracker::testing::decode_records;

[[noreturn]] void violated(const char* what, ScanKernel kernel) {
  std::fprintf(stderr, "property violated: %s (kernel %s)\n", what, std::string(scan_kernel_name(kernel)).c_str());
  std::abort();
}

// The chunks, each in its own allocation of exactly its size.
std::vector<std::unique_ptr<char[]>> chunk_storage;
std::vector<std::string_view> cut(std::string_view text, unsigned selector) {
  std::vector<std::string_view> chunks;
  chunk_storage.clear();
  // Sizes from 1 byte to a few pages, varying along the input.
  std::size_t size = 1 + selector * 37 % 4099;
  for (std::size_t at = 0; at < text.size(); at += size, size = 1 + (size * 7 + selector) % 4099) {
    const std::string_view piece = text.substr(at, size);
    chunk_storage.push_back(std::make_unique<char[]>(piece.size()));
    std::copy(piece.begin(), piece.end(), chunk_storage.back().get());
    chunks.emplace_back(chunk_storage.back().get(), piece.size());
  }
  return chunks;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const unsigned selector = data[0];
  // The text itself stays in libFuzzer's exactly sized buffer.
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::vector<std::string_view> whole = {text};

  const auto reference = decode_records(whole, ScanKernel::kParser);
  // The full parser's records, tallied: what every counting path must make.
  const auto reference_counts = count_records(whole, ScanKernel::kParser);
  const std::vector<std::string_view> chunks = cut(text, selector);
  for (ScanKernel kernel : testing::runnable_kernels()) {
    if (!(decode_records(whole, kernel) == reference)) violated("records differ from the full parser's", kernel);
    if (!(count(whole, kernel) == reference_counts)) violated("counts differ from the records' tally", kernel);
    if (!(decode_records(chunks, kernel) == reference)) violated("chunked records differ", kernel);
    if (!(count(chunks, kernel) == reference_counts)) violated("chunked counts differ", kernel);
  }
  return 0;
}
