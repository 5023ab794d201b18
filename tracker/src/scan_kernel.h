// Internal: the interface between the counting path (proc_net_tcp.cpp) and its scan
// kernels. The SIMD kernels live in translation units compiled with their own -m
// flags, so this header holds only plain types: nothing here may instantiate a
// standard-library template, whose out-of-line copy the linker could otherwise pick
// from an AVX-512 unit and run on a CPU without AVX-512.
#pragma once

#include <cstddef>
#include <cstdint>

namespace skopos::tracker::detail {

// kMaxLineLength (proc_net_tcp.h, which this header cannot include); a static_assert
// in proc_net_tcp.cpp keeps the two equal.
inline constexpr std::size_t kScanMaxLine = 512;

// Where counted sockets go: the raw table of a PortStateTally (port_state_tally.h).
struct CountTarget {
  std::uint32_t* cells;  // [port * 16 + state]; slot 0 marks a port in use
  std::uint16_t* used_ports;
  std::uint32_t* used_count;
};

// The result of scanning a run of complete lines.
struct ScanProgress {
  const char* stop;     // the first byte not consumed, always the start of a line
  std::uint64_t lines;  // lines consumed
  std::uint64_t fallback_lines;  // of those, lines the full parser decided
  bool failed;          // the line at `stop` is invalid
};

// The portable path for one line: finds its newline within [line, end) and parses it
// with the full-record parser. Returns the byte after the newline; `line` itself when
// [line, end) holds no newline yet and is shorter than a maximal line; nullptr when the
// line is invalid or too long.
const char* count_line_portable(const char* line, const char* end, bool ipv6,
                                const CountTarget& target);

// Count every complete line in [begin, end). Reads never go past `end`.
ScanProgress count_lines_portable(const char* begin, const char* end, bool ipv6,
                                  const CountTarget& target);
#if defined(SKOPOS_X86_KERNELS)
ScanProgress count_lines_avx2(const char* begin, const char* end, bool ipv6,
                              const CountTarget& target);
ScanProgress count_lines_avx512(const char* begin, const char* end, bool ipv6,
                                const CountTarget& target);
#endif

}  // namespace skopos::tracker::detail
