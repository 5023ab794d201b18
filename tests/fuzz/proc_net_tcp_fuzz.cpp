// libFuzzer target for the /proc/net/tcp{,6} decoder.
//
// Input: one byte choosing how to cut the rest into chunks, then the table text.
// On every input, beyond "no crash, no sanitizer report":
//  * the record path of every kernel this CPU runs makes exactly the records of the
//    portable parser, or stops with exactly its error (line, byte, offset, kind);
//  * the counting path of every kernel makes exactly the tally of those records, or
//    the same error;
//  * both hold with the input cut into chunks, each copied into its own exactly sized
//    allocation, so that AddressSanitizer reports any read past a chunk's end.
// A violated property aborts with a description, which libFuzzer saves as a crash.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "tracker/port_state_tally.h"
#include "tracker/proc_net_tcp.h"

namespace {

using namespace skopos::tracker;

struct Records {
  std::vector<TcpSocketRecord> records;
  std::optional<DecodeError> error;
  bool operator==(const Records&) const = default;
};

struct Counts {
  std::vector<PortCounts> ports;
  std::optional<DecodeError> error;
  bool operator==(const Counts&) const = default;
};

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

Records decode(const std::vector<std::string_view>& chunks, ScanKernel kernel) {
  TcpTableDecoder decoder(kernel);
  Records out;
  for (std::string_view chunk : chunks) {
    auto status = decoder.feed(chunk, [&](const TcpSocketRecord& r) { out.records.push_back(r); });
    if (!status) {
      out.error = status.error();
      return out;
    }
  }
  if (auto status = decoder.finish(); !status) out.error = status.error();
  return out;
}

PortStateTally& tally() {
  static PortStateTally instance;
  return instance;
}

Counts count(const std::vector<std::string_view>& chunks, ScanKernel kernel) {
  PortStateTally& t = tally();
  t.clear();
  TcpTableCounter counter(t, kernel);
  Counts out;
  for (std::string_view chunk : chunks) {
    if (auto status = counter.feed(chunk); !status) {
      out.error = status.error();
      return out;
    }
  }
  if (auto status = counter.finish(); !status) {
    out.error = status.error();
    return out;
  }
  out.ports = t.summarize().ports;
  return out;
}

Counts count_of(const Records& records) {
  Counts out;
  out.error = records.error;
  if (records.error) return out;
  PortStateTally& t = tally();
  t.clear();
  for (const TcpSocketRecord& r : records.records) t.add(r.local_port, r.state);
  out.ports = t.summarize().ports;
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const unsigned selector = data[0];
  // The text itself stays in libFuzzer's exactly sized buffer.
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::vector<std::string_view> whole = {text};

  const Records reference = decode(whole, ScanKernel::kPortable);
  const Counts reference_counts = count_of(reference);
  const std::vector<std::string_view> chunks = cut(text, selector);
  for (ScanKernel kernel : {ScanKernel::kPortable, ScanKernel::kAvx2, ScanKernel::kAvx512}) {
    if (!scan_kernel_supported(kernel)) continue;
    if (!(decode(whole, kernel) == reference)) violated("records differ from the portable parser's", kernel);
    if (!(count(whole, kernel) == reference_counts)) violated("counts differ from the records' tally", kernel);
    if (!(decode(chunks, kernel) == reference)) violated("chunked records differ", kernel);
    if (!(count(chunks, kernel) == reference_counts)) violated("chunked counts differ", kernel);
  }
  return 0;
}
