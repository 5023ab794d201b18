// Internal: the interface between the decoder (proc_net_tcp.cpp) and its scan kernels.
// The SIMD kernels live in translation units compiled with their own -m flags, so this
// header holds only plain types: nothing here may instantiate a standard-library
// template, whose out-of-line copy the linker could otherwise pick from an AVX-512 unit
// and run on a CPU without AVX-512.
#pragma once

#include <cstddef>
#include <cstdint>

namespace skopos::tracker::detail {

// kMaxLineLength (proc_net_tcp.h, which this header cannot include); a static_assert
// in proc_net_tcp.cpp keeps the two equal.
inline constexpr std::size_t kScanMaxLine = 512;

// Where counted sockets go: the raw table of a PortStateTally (port_state_tally.h).
struct CountTarget {
  std::uint32_t* cells;        // [state * 65536 + port]
  std::uint64_t* in_use;       // a bit per port
  std::uint32_t* states_used;  // a bit per state
};

// Adds one socket, as PortStateTally::add does.
inline void count_socket(const CountTarget& target, unsigned port, unsigned state) {
  target.in_use[port / 64] |= std::uint64_t{1} << (port % 64);
  *target.states_used |= 1u << state;
  ++target.cells[std::size_t{state} * 65536 + port];
}

// A line a kernel proved well-formed, decoded: the values of TcpSocketRecord
// (proc_net_tcp.h, which this header cannot include) in plain types, exactly as the full
// parser reads them from the same line. Addresses are 16 bytes in network order; IPv4
// ones IPv4-mapped.
struct LineValues {
  std::uint8_t local_address[16];
  std::uint8_t remote_address[16];
  std::uint64_t slot;
  std::uint64_t timer_expires;
  std::uint64_t inode;
  std::uint64_t kernel_pointer;
  std::uint64_t rto;  // rto to ssthresh: 0 on a mini-socket's line
  std::uint64_t ato;
  std::uint32_t tx_queue;
  std::uint32_t rx_queue;
  std::uint32_t retransmits;
  std::uint32_t uid;
  std::int32_t probes;
  std::int32_t refcount;
  std::uint32_t ack_quick_pingpong;
  std::uint32_t snd_cwnd;
  std::int32_t ssthresh;
  std::uint16_t local_port;
  std::uint16_t remote_port;
  std::uint8_t state;
  std::uint8_t timer;
  bool full;  // 10 tail fields (a full socket), not 5 (a mini-socket)
};

// Callbacks of the record kernels into the decoder. `on_lines` receives proven lines,
// decoded, in order: `count` of them, at most a batch (8) per call. `fallback` gets each
// line the kernel could not prove and parses it fully: it returns the byte after the
// line's newline, `line` itself when [line, end) holds no newline yet (more input
// needed), or nullptr when the line is invalid.
struct RecordTarget {
  void* context;
  void (*on_lines)(void* context, const LineValues* lines, int count);
  const char* (*fallback)(void* context, const char* line, const char* end);
};

// The result of scanning a run of complete lines.
struct ScanProgress {
  const char* stop;              // the first byte not consumed, always a line start
  std::uint64_t lines;           // lines consumed
  std::uint64_t fallback_lines;  // of those, lines the full parser decided
  bool failed;                   // the line at `stop` is invalid
};

// The full parser on one line: finds its newline within [line, end) and parses it.
// Same returns as RecordTarget::fallback.
const char* count_line_parsed(const char* line, const char* end, bool ipv6, const CountTarget& target);

// Count every complete line in [begin, end). Reads never go past `end`.
ScanProgress count_lines_parsed(const char* begin, const char* end, bool ipv6, const CountTarget& target);
ScanProgress count_lines_portable(const char* begin, const char* end, bool ipv6, const CountTarget& target);
// Lines the portable kernel proved on this thread by a learned shape (scan_known_shapes.h).
std::uint64_t known_tail_lines();
// Hand every complete line in [begin, end) to `target`: decoded when proven, otherwise
// to its fallback.
ScanProgress record_lines_portable(const char* begin, const char* end, bool ipv6, const RecordTarget& target);
#if defined(SKOPOS_X86_KERNELS)
ScanProgress count_lines_avx2(const char* begin, const char* end, bool ipv6, const CountTarget& target);
ScanProgress count_lines_avx512(const char* begin, const char* end, bool ipv6, const CountTarget& target);
ScanProgress record_lines_avx2(const char* begin, const char* end, bool ipv6, const RecordTarget& target);
ScanProgress record_lines_avx512(const char* begin, const char* end, bool ipv6, const RecordTarget& target);
#endif

}  // namespace skopos::tracker::detail
