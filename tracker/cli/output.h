// Output helpers shared by tracker-cli commands.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

#include "skopos/json_writer.h"
#include "tracker/port_state_tally.h"
#include "tracker/proc_net_tcp.h"

namespace skopos::tracker::cli {

// Buffers output and writes it to stdout in large pieces.
class Output {
 public:
  // The buffer holds a piece and the record that completes it from the start: grown by
  // doubling, it touched 240 KiB of fresh pages, not 68 KiB (31 of tracker-cli decode's
  // 267 page faults on a table of 10,000 ports).
  Output() { text_.reserve(kPiece + 4096); }
  ~Output() { flush(); }
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;
  std::string& text() { return text_; }
  // Writes what is buffered once it is large; call after each record.
  void maybe_flush() {
    if (text_.size() >= kPiece) flush();
  }
  void flush() {
    std::fwrite(text_.data(), 1, text_.size(), stdout);
    text_.clear();
  }

 private:
  static constexpr std::size_t kPiece = std::size_t{1} << 16;
  std::string text_;
};

// Parses --kernel; throws FatalError naming the bad value.
ScanKernel parse_kernel(const std::string& command, const std::string& name);

// {"ESTABLISHED": 9, "LISTEN": 4, ...}: nonzero states, in kernel order.
template <class Counts>
void write_states(JsonWriter& json, const Counts& counts) {
  json.begin_object();
  for (int state = kFirstTcpState; state <= kLastTcpState; ++state) {
    const auto n = counts[static_cast<std::size_t>(state)];
    if (n != 0) json.key(tcp_state_name(static_cast<TcpState>(state))).value(static_cast<std::uint64_t>(n));
  }
  json.end_object();
}

// The states that occur anywhere in `summary`, in kernel order.
std::vector<TcpState> states_present(const TallySummary& summary);

}  // namespace skopos::tracker::cli
