// Decoder for the kernel's /proc/net/tcp and /proc/net/tcp6 tables.
//
// Two paths over the same text, with the same grammar and the same errors:
//
//  * TcpTableDecoder builds a TcpSocketRecord for every line (the full-record path).
//  * TcpTableCounter only tallies sockets by local port and state into a PortStateTally
//    (the counting fast path the tracker uses on every poll and resync).
//
// Both are streaming: feed() takes the file in chunks of any size, split anywhere (the
// kernel hands out at most a page per read), and the result never depends on where the
// splits fall. Neither allocates per line. On x86_64 both run SIMD kernels that prove
// the common lines well-formed and leave every other line to the one full parser, so
// the two paths accept, reject and report exactly alike.
//
// Grammar. The kernel prints each table with a header line and one line per socket
// (net/ipv4/tcp_ipv4.c tcp4_seq_show, net/ipv6/tcp_ipv6.c tcp6_seq_show):
//
//   "%4d: %08X:%04X %08X:%04X %02X %08X:%08X %02X:%08lX %08X %5u %8d %lu %d %pK"
//   full sockets continue " %lu %lu %u %u %d" (rto, ato, quick/pingpong, cwnd, ssthresh)
//
// that is slot, local and remote address:port, state, tx:rx queue, timer:expiry,
// retransmits, uid, probes, inode, refcount and kernel pointer. IPv4 addresses are 8
// hex digits and IPv6 addresses 32; every IPv4 line (and the IPv4 header) is padded
// with spaces to 149 bytes before its newline. Time-wait and request (SYN_RECV)
// mini-sockets end after the pointer. The decoder accepts exactly that, with these
// tolerances: hex digits of either case, `sl` of any width, any number of spaces before
// uid and probes (they are right-aligned), trailing spaces on any line, tm->when of 8 to
// 16 digits, and a sign on the signed fields. Every number must fit its field. Anything
// else is a DecodeError naming the line, the byte and what was expected there. A line
// may be at most kMaxLineLength bytes long.
//
// Addresses are printed by the kernel as the in-memory 32-bit words of the address;
// they are decoded for little-endian hosts (x86_64, arm64), which is what we run on.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "skopos/function_ref.h"
#include "skopos/result.h"
#include "tracker/port_state_tally.h"
#include "tracker/tcp_state.h"

namespace skopos::tracker {

// Longest line accepted, newline included. The kernel's longest lines are about 230
// bytes; anything much longer is not a socket line.
inline constexpr std::size_t kMaxLineLength = 512;

// Which table a text is: /proc/net/tcp (IPv4) or /proc/net/tcp6 (IPv6, which also holds
// IPv4 connections to IPv6 sockets as IPv4-mapped addresses).
enum class TcpTableFamily : std::uint8_t { kIpv4, kIpv6 };

std::string_view tcp_table_name(TcpTableFamily family);  // "tcp" or "tcp6"

// How the kernel printed the line: a full socket, or one of the two mini-sockets.
enum class SocketKind : std::uint8_t {
  kFull,
  kTimeWait,  // inet_timewait_sock: state TIME_WAIT, or FIN_WAIT2 for an orphan
  kRequest,   // request_sock of a listener's SYN queue: the kernel prints state SYN_RECV
};

std::string_view socket_kind_name(SocketKind kind);  // "full", "time-wait", "request"

// One decoded line. Addresses are 16 bytes in network order; IPv4 addresses from the
// tcp table are stored IPv4-mapped (::ffff:a.b.c.d), and `family` says which table the
// line came from.
struct TcpSocketRecord {
  TcpTableFamily family = TcpTableFamily::kIpv4;
  SocketKind kind = SocketKind::kFull;
  TcpState state = TcpState::kClose;
  std::uint64_t line = 0;  // 1-based line number in its file; the header is line 1
  std::uint64_t slot = 0;  // "sl", the kernel's running index
  std::array<std::uint8_t, 16> local_address{};
  std::uint16_t local_port = 0;
  std::array<std::uint8_t, 16> remote_address{};
  std::uint16_t remote_port = 0;
  std::uint32_t tx_queue = 0;       // unacknowledged bytes (full sockets)
  std::uint32_t rx_queue = 0;       // unread bytes, or the accept backlog of a listener
  std::uint8_t timer = 0;           // "tr": 0 none, 1 retransmit, 2 keepalive, 3 time-wait, 4 probe
  std::uint64_t timer_expires = 0;  // "tm->when", in clock ticks (USER_HZ)
  std::uint32_t retransmits = 0;    // "retrnsmt"
  std::uint32_t uid = 0;
  std::int32_t probes = 0;          // the "timeout" column: unanswered zero-window probes
  std::uint64_t inode = 0;          // 0 for mini-sockets
  std::int32_t refcount = 0;
  std::uint64_t kernel_pointer = 0;  // hashed %pK, or 0 when kptr_restrict hides it
  // Full sockets only (0 for mini-sockets):
  std::uint64_t rto = 0;             // clock ticks
  std::uint64_t ato = 0;             // clock ticks
  std::uint32_t ack_quick_pingpong = 0;
  std::uint32_t snd_cwnd = 0;
  std::int32_t ssthresh = 0;         // -1 in initial slow start; fastopen queue length for LISTEN

  bool operator==(const TcpSocketRecord&) const = default;
};

// An address as people write it: "127.0.0.1" for the tcp table, "::1" or
// "::ffff:127.0.0.1" for tcp6.
std::string format_address(TcpTableFamily family, const std::array<std::uint8_t, 16>& address);

enum class DecodeErrorKind : std::uint8_t {
  kEmptyInput,        // no bytes at all
  kBadHeader,         // the first line is neither table's header
  kUnexpectedByte,    // a byte that the grammar does not allow where it stands
  kNumberOutOfRange,  // digits that do not fit the field
  kUnknownState,      // a state number that is not a TCP state
  kLineTooLong,       // no newline within kMaxLineLength bytes
  kMissingNewline,    // the input ends in the middle of a line
};

// What went wrong, and exactly where. Building one never allocates; message() does.
struct DecodeError {
  DecodeErrorKind kind = DecodeErrorKind::kUnexpectedByte;
  std::uint64_t line = 0;    // 1-based line number
  std::uint64_t column = 0;  // 0-based byte offset within the line
  std::uint64_t offset = 0;  // 0-based byte offset within the file
  std::string_view expected;  // what the grammar wanted there (a static string)
  int found = -1;  // the byte found instead, or -1 for the end of the line or input

  // "line 3, byte 17 (offset 401): expected hex digit, found 'G'"
  std::string message() const;

  bool operator==(const DecodeError&) const = default;
};

using DecodeStatus = Result<void, DecodeError>;

// The implementation behind both paths. kAuto picks the fastest this CPU runs; the
// others exist so tests and benchmarks can pin one.
enum class ScanKernel : std::uint8_t {
  kAuto,
  kParser,    // the full-record parser on every line: the definition the others match; never auto
  kPortable,  // fixed offsets, generic vectors and words; any CPU (arm64 runs it)
  kAvx2,      // x86_64 with AVX2 and BMI2
  kAvx512,   // x86_64 with AVX-512 F, BW, CD, VBMI, VBMI2 and VPOPCNTDQ, and BMI2 (Ice Lake and
             // later Xeons, Zen 4 and later)
};

std::string_view scan_kernel_name(ScanKernel kernel);
bool scan_kernel_supported(ScanKernel kernel);

// How kAuto chose: every SIMD kernel this CPU runs, timed on the same sample table
// (kernel-printed tcp6 lines, in cache) at first use, the fastest chosen; the portable
// kernel where none runs. Which SIMD kernel is fastest depends on the CPU, not only on
// its features: an AVX-512 kernel is not faster on every CPU that has AVX-512.
struct ScanKernelTiming {
  ScanKernel kernel;
  double ns_per_line = 0;           // the best of several runs
  std::uint64_t lines = 0;          // sample lines decoded (0: the sample failed)
  std::uint64_t fallback_lines = 0; // of those, lines the kernel left to the parser
};
struct ScanKernelChoice {
  ScanKernel chosen;
  std::vector<ScanKernelTiming> timings;  // fastest first
  double choosing_ms = 0;                 // what choosing cost, sample included
  std::string describe() const;           // "avx2 (measured in 0.9 ms: avx2 30.1 ns/line ...)"
};
const ScanKernelChoice& scan_kernel_choice();
// What kAuto resolves to on this CPU: scan_kernel_choice().chosen.
ScanKernel best_scan_kernel();
// Lines the portable kernel proved, on this thread, by a tail shape it had learned from
// an earlier line (its fast path; see scan_portable.cpp). For tests and benchmarks.
std::uint64_t known_tail_shape_lines();

// The full-record path. Feed one file's bytes in order, then finish(). With a SIMD
// kernel, lines it proves well-formed are read from known offsets and the rest go
// through the full parser; the records are the same either way.
// Not thread-safe; one decoder per file at a time (reset() to reuse it).
class TcpTableDecoder {
 public:
  using RecordSink = FunctionRef<void(const TcpSocketRecord&)>;

  explicit TcpTableDecoder(ScanKernel kernel = ScanKernel::kAuto);
  ~TcpTableDecoder();
  TcpTableDecoder(const TcpTableDecoder&) = delete;
  TcpTableDecoder& operator=(const TcpTableDecoder&) = delete;

  // Decodes every complete line in `chunk` (and any line completed by it), calling
  // `sink` once per socket line, in file order. The record is only valid during the
  // call. After an error every further call returns the same error.
  DecodeStatus feed(std::span<const char> chunk, RecordSink sink);
  // Ends the file: an error if it was empty or stopped mid-line.
  DecodeStatus finish();
  // Forgets everything, for the next file.
  void reset();

  // The table's family, once the header has been read.
  std::optional<TcpTableFamily> family() const;
  // Lines fully consumed so far, header included.
  std::uint64_t lines() const;

 private:
  class Scanner;
  std::unique_ptr<Scanner> scanner_;
};

// The counting fast path: adds each socket line of one file to a tally (by local port
// and state) without building records. Feed tcp and tcp6 of the same network namespace
// through the same tally to classify ESTABLISHED sockets as inbound or outbound.
//
// It accepts and rejects exactly what TcpTableDecoder does, with the same error. After
// an error the tally holds the lines before it; discard it. Not thread-safe.
class TcpTableCounter {
 public:
  explicit TcpTableCounter(PortStateTally& tally, ScanKernel kernel = ScanKernel::kAuto);
  ~TcpTableCounter();
  TcpTableCounter(const TcpTableCounter&) = delete;
  TcpTableCounter& operator=(const TcpTableCounter&) = delete;

  DecodeStatus feed(std::span<const char> chunk);
  DecodeStatus finish();
  // Starts the next file; the tally is left as it is.
  void reset();
  // Counts the socket lines of a table from the line at byte `offset` of its file on,
  // its header (and the lines before) read by another counter: no header is expected,
  // errors give offsets in the file and line numbers counted from that line (1 is the
  // first line fed here: the caller adds the lines before), and lines() counts from 0.
  void continue_table(TcpTableFamily family, std::uint64_t offset);

  std::optional<TcpTableFamily> family() const;
  std::uint64_t lines() const;
  // The kernel in use (kAuto resolved).
  ScanKernel kernel() const;
  // Socket lines of this file that the SIMD kernel handed to the full parser (every
  // line, for kParser). Kernel-printed lines take the fast path except the last few
  // of each chunk, so a high share means the fast path has stopped recognising the
  // format -- a performance problem, never a correctness one.
  std::uint64_t fallback_lines() const;

 private:
  class Scanner;
  std::unique_ptr<Scanner> scanner_;
};

}  // namespace skopos::tracker
