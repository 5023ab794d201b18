// Internal: the scan kernels, written once and included by one translation unit per
// instruction set (scan_portable.cpp, scan_avx2.cpp, scan_avx512.cpp). The SIMD
// kernels' stage A runs over a 64-byte `Block` type (BlockStage below); the portable
// kernel has a stage A of its own over fixed offsets.
// Everything here has internal linkage so that each unit keeps its own copy; see
// scan_kernel.h for why no standard-library templates appear.
//
// How it works. A socket line is a fixed-width prefix (slot, both endpoints, state,
// queues, timer, retransmits) followed by a short tail of space-separated decimal
// fields and the kernel pointer; every line the kernel prints ends 129 to 192 bytes
// after it starts. Lines go through in batches of eight:
//
//  A. per line: find the newline with one compare of the 64 bytes at line + 128 --
//     all the next line waits for, so consecutive lines overlap in the CPU instead of
//     each waiting for the previous one's checks (a memchr line split cannot do
//     that); classify the line's bytes (digit, hex letter, space, ...) and check every
//     prefix position against a template (hex digit here, ':' there); record the
//     tail's class masks and the raw port and state characters;
//  B. per batch: judge() checks the slot, the state and the tail's field structure
//     on bitmasks -- eight lines at once in AVX-512 lanes -- and reads port and state;
//  C. per line again, in order: count it, or decode its fields (decode_line) and hand
//     the decoder the values, a batch at a time.
//
// Stages B and C of a full batch run after stage A of the next one (see scan_family).
//
// When counting, the portable kernel first tries a line against the shapes learned from
// the lines judge() proved (scan_known_shapes.h): a line that passes is proven whole in
// stage A, its newline where the shape has it, and skips stage B. (The SIMD kernels
// classify a block in a few instructions; tried there, the shapes' look-up cost more
// than it saved.)
//
// The checks are a sufficient condition for parse_socket_line() to accept the line
// with the same fields. Any line that does not pass them -- a wide slot number,
// lowercase hex, a long or short line, a negative field other than ssthresh, or a
// malformed line -- goes to the full parser, which either accepts it or reports the
// error. So a kernel never decides that a line is invalid, and every path agrees on
// every input by construction (the unit tests' mutations and tests/fuzz check it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "bit_count.h"
#include "scan_kernel.h"

namespace skopos::tracker::detail {
namespace {

// Byte classes, one bit each. A byte outside every class classifies as 0. The space,
// whose mask stage A takes twice a line, is the top bit, which AVX2's vpmovmskb
// collects without a shift first.
constexpr std::uint8_t kDigit = 0x01;    // 0-9
constexpr std::uint8_t kUpper = 0x02;    // A-F
constexpr std::uint8_t kLower = 0x04;    // a-f
constexpr std::uint8_t kSpace = 0x80;    // ' '
constexpr std::uint8_t kColon = 0x10;    // ':'
constexpr std::uint8_t kMinus = 0x20;    // '-'

// class(b) = kByLowNibble[b & 15] & kByHighNibble[b >> 4]: each class is the set of
// bytes whose low nibble and high nibble both allow it (' ' is 0x20, '-' 0x2D, ':'
// 0x3A). Bytes >= 0x80 have a high nibble of 8..15, which allows nothing. The newline
// belongs to no class: stage A finds it by a plain compare, and nowhere else in a
// line is one allowed.
constexpr std::uint8_t kByLowNibble[16] = {
    kDigit | kSpace,          kDigit | kUpper | kLower, kDigit | kUpper | kLower,
    kDigit | kUpper | kLower, kDigit | kUpper | kLower, kDigit | kUpper | kLower,
    kDigit | kUpper | kLower, kDigit,                   kDigit,
    kDigit,                   kColon,                   0,
    0,                        kMinus,                   0,
    0};
constexpr std::uint8_t kByHighNibble[16] = {
    0, 0, kSpace | kMinus, kDigit | kColon, kUpper, 0, kLower, 0, 0, 0, 0, 0, 0, 0, 0, 0};

constexpr std::size_t kPrefixWindow = 128;  // two blocks cover the longest prefix
// The newline window: kernel-printed lines end within [128, 192) bytes of their start.
constexpr std::size_t kNewlineWindow = 128;
// A line takes the fast path only when this many bytes are readable from its start.
// Stage A reads the head, body and newline windows [0, 192), the tail window and, past a
// long tail, one more window, which ends before 256; the record path reads eight bytes
// from a field's start or up to its end, which end before 208 (a pointer's second half
// after the widest prefix and tail), or, on AVX-512, the 128 bytes from four before the
// remote port, which end before 206 (static_asserts in scan_avx512.cpp).
constexpr std::size_t kReadAhead = 256;
// How far ahead of the current line to prefetch. The hardware prefetcher alone falls
// behind a stream consumed this fast (without these prefetches the AVX-512 counting path
// ran at 0.34-0.42 x memchr), and a prefetch has to be issued long enough before its line
// is read: 6 KiB is some 36 lines of bench_proc_net_tcp's tcp6 table, about 300 ns of
// input at 20 GB/s. Measured with bench_proc_net_tcp's goal rows on a Zen 5 VM, each build
// in turn with the others, three runs each, with touch_next_page(): AVX-512 counting at
// 4, 6 and 8 KiB 0.93, 0.99 and 1.00 x memchr, AVX2 0.75, 0.77 and 0.74 (before it, 6 KiB
// led 4 KiB by 0.82 -> 0.87 and 12 or 16 KiB were slower again).
constexpr std::size_t kPrefetchDistance = 6144;

// Reads the first byte of the 4 KiB page after the one `line` starts on (the input's
// last byte if that page lies past it: `line` < `end`), so that the page's translation is
// in the TLB before the scan gets there. Called once a batch (at most 1.5 KiB of lines),
// so the first batch to start on a page touches the next page at least 2.5 KiB before the
// scan reaches it.
//
// Why: with the table in 4 KiB pages the AVX-512 counting path ran at 0.82-0.89 x memchr,
// in 2 MiB pages at 0.95, memchr equally fast in both (Zen 5 VM). The likely cause, not
// proven (the VM has no PMU to count page walks): each line's start comes from the
// previous line's newline, and when that chain entered a page whose translation was not
// in the TLB it waited for the page walk too; the prefetches, which reach the page first,
// did not spare it that, while memchr's loads run ahead of the newline it looks for. This
// load is a demand load off the chain; it hits the cache unless the prefetch of that line
// (2-6 KiB of input earlier) was dropped. bench_proc_net_tcp's goal rows, each build in
// turn with the other, three runs each: AVX-512 counting 0.856 -> 1.00-1.01 x memchr
// (4 KiB pages), 0.954 -> 0.99-1.00 (2 MiB pages); AVX2 0.70 -> 0.77-0.78; portable
// 0.516 -> 0.556-0.562; records about unchanged. The same load before every line measured
// 0.915 (a compare and a load a line); a prefetch instead of a load, of the first line of
// a page 8 or 12 KiB ahead, 0.44-0.45.
//
// On a kernel with 16 or 64 KiB pages this touches a line of the same page most of the
// time, which costs one cached load a batch.
inline void touch_next_page(const char* line, const char* end) {
  constexpr std::uintptr_t kPage = 4096;
  const auto at = reinterpret_cast<std::uintptr_t>(line);
  const std::uintptr_t next = (at + kPage) & ~(kPage - 1);
  const std::uintptr_t last = reinterpret_cast<std::uintptr_t>(end) - 1;
  const char* byte = line + ((next < last ? next : last) - at);
  (void)*static_cast<const volatile char*>(byte);
}

// Prefetches the three cache lines that hold a line kPrefetchDistance ahead. A fixed
// three per line (some twice) measured faster than tracking which were prefetched,
// whose varying loop count the branch predictor cannot follow. Prefetches never fault;
// the address is computed as an integer because it may lie past the input.
inline void prefetch_ahead(const char* line) {
  const std::uintptr_t at = reinterpret_cast<std::uintptr_t>(line) + kPrefetchDistance;
  __builtin_prefetch(reinterpret_cast<const void*>(at));
  __builtin_prefetch(reinterpret_cast<const void*>(at + 64));
  __builtin_prefetch(reinterpret_cast<const void*>(at + 128));
}

// The fixed-width prefix of a socket line, up to and including the space after
// retrnsmt. 'd' is a slot digit or its padding, 'H' an uppercase hex digit as %X
// prints it; every other character stands for itself.
constexpr char kIpv4Pattern[] =
    "dddd: HHHHHHHH:HHHH HHHHHHHH:HHHH HH HHHHHHHH:HHHHHHHH HH:HHHHHHHH HHHHHHHH ";
constexpr char kIpv6Pattern[] =
    "dddd: HHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHH:HHHH HHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHH:HHHH HH "
    "HHHHHHHH:HHHHHHHH HH:HHHHHHHH HHHHHHHH ";

// Slot numbers of 4 to 8 digits take the fast path ("%4d" widens past 9999 sockets).
constexpr unsigned kMaxSlotShift = 4;

// One table's prefix template for every slot width at once: per position, the classes
// allowed there, with kMaxSlotShift extra slot columns in front of the pattern. The
// template for a slot `shift` columns wider than 4 starts at allowed + kMaxSlotShift -
// shift, and everything after the prefix moves right by `shift`.
struct Family {
  // Past the pattern every class is allowed: that is the tail, which stage B checks. A
  // byte there in no class (a newline; on AVX2 a byte >= 0x80) is refused by either
  // check, and on AVX-512 outside_ascii() refuses a byte >= 0x80 wherever it is.
  std::uint8_t allowed[kMaxSlotShift + kPrefixWindow];
  unsigned prefix;    // prefix length with a 4-column slot: where the tail starts
  unsigned port_at;   // the local port's 4 hex digits
  unsigned state_at;  // the state's 2 hex digits
};

template <std::size_t N>
constexpr Family make_family(const char (&pattern)[N], unsigned port_at, unsigned state_at) {
  Family family{};
  family.prefix = static_cast<unsigned>(N - 1);
  family.port_at = port_at;
  family.state_at = state_at;
  for (std::size_t i = 0; i < kMaxSlotShift + kPrefixWindow; ++i) {
    // '\0' past the pattern.
    const char column = i < kMaxSlotShift ? 'd' : i < kMaxSlotShift + N ? pattern[i - kMaxSlotShift] : '\0';
    std::uint8_t allowed = 0;
    switch (column) {
      case 'd': allowed = kDigit | kSpace; break;
      case 'H': allowed = kDigit | kUpper; break;
      case ':': allowed = kColon; break;
      case ' ': allowed = kSpace; break;
      case '\0': allowed = 0xFF; break;
      default: break;
    }
    family.allowed[i] = allowed;
  }
  return family;
}

// Offsets: "dddd: " is 6 bytes; an IPv4 address 8 hex digits, an IPv6 one 32.
constexpr Family kIpv4 = make_family(kIpv4Pattern, 6 + 8 + 1, 6 + 2 * (8 + 1 + 4 + 1));
constexpr Family kIpv6 = make_family(kIpv6Pattern, 6 + 32 + 1, 6 + 2 * (32 + 1 + 4 + 1));
static_assert(kIpv4.prefix == 76 && kIpv6.prefix == 124);
static_assert(kIpv4Pattern[6 + 8] == ':' && kIpv4Pattern[6 + 2 * (8 + 1 + 4 + 1) - 1] == ' ');
static_assert(kIpv6Pattern[6 + 32] == ':' && kIpv6Pattern[6 + 2 * (32 + 1 + 4 + 1) - 1] == ' ');
// Every prefix is longer than one block (the head block is checked whole) and fits two.
static_assert(kIpv4.prefix > 64 && kIpv6.prefix + kMaxSlotShift <= kPrefixWindow);
// stage_a() looks for the slot's colon in the head's first 32 bytes.
static_assert(4 + kMaxSlotShift < 32);
// Stage A only takes lines whose newline is [128, 192) from their start (or, for a line
// proven by a known shape, where the shape has it, scan_known_shapes.h): such a line is
// never too long, and has a tail after even the widest prefix (an empty one has no
// fields and fails the field count).
static_assert(kNewlineWindow + 64 <= kScanMaxLine);
static_assert(kNewlineWindow >= kIpv6.prefix + kMaxSlotShift);

// The low n bits (all 64 for n >= 64; n < 256). With BMI2, one bzhi: the profile of the
// AVX-512 kernel's stage A showed the compare, branch and shift of the plain form on
// every line.
inline std::uint64_t low_bits(unsigned n) {
#if defined(__BMI2__)
  return __builtin_ia32_bzhi_di(~0ULL, n);
#else
  return n >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << n) - 1;
#endif
}
inline unsigned lowest(std::uint64_t x) { return static_cast<unsigned>(__builtin_ctzll(x)); }
inline unsigned highest(std::uint64_t x) { return 63u - static_cast<unsigned>(__builtin_clzll(x)); }

// --- Stage B: judging lines from what stage A recorded --------------------------------
//
// Stage A records, per line, raw inputs: masks of the tail window's spaces, digits,
// lowercase hex letters and minus signs, the number of window bytes before the newline
// (64 when the window has none; what follows was checked to be spaces), a problems word
// for the prefix (nonzero: wrong), the slot's colon position and space mask, and the
// characters of port and state. judge() decides whether the line is proven and reads
// port and state. It is written once, without branches, over a 64-bit word type W:
// Pair (scan_portable.cpp) for two lines, Lanes4 (scan_avx2.cpp) for four, Lanes8
// (scan_avx512.cpp) for eight at once.
//
// A line is proven when the prefix had no problem, the slot is spaces then at least one
// digit, the state is 1..13, and the tail is 5 or 10 fields in the grammar's shape --
// SP* uid SP+ probes SP inode SP refcount SP pointer [SP rto SP ato SP quick SP cwnd SP
// ssthresh] SP* -- with every number short enough to fit its field.
template <class W>
struct Judged {
  decltype(is_zero(W{})) ok;
  W port;
  W state;
};

// Four or two hex characters, known to be [0-9A-F] and loaded little-endian, as a number:
// '0'-'9' have bit 6 clear and 'A'-'F' set, and the low nibble is the value (digits) or
// the value minus 9 (letters). Byte i becomes the value of character i.
template <class W>
[[gnu::always_inline]] inline W hex_digit_values(const W& chars) {
  const W letters = (chars >> 6) & W::broadcast(0x01010101);
  return (chars & W::broadcast(0x0F0F0F0F)) + letters + (letters << 3);
}

// The part of judge() that is not the tail: the prefix's problems with the slot's, and
// port and state. A line is proven when `problems` is 0, the state is 1..13 (head_ok)
// and the tail passes.
template <class W>
struct Head {
  W problems;
  W port;
  W state;
};
template <class W>
[[gnu::always_inline]] inline Head<W> judge_head(const W& prefix_problems, const W& colon, const W& slot_spaces,
                                                 const W& port_chars, const W& state_chars) {
  const W one = W::broadcast(1);
  const W p = hex_digit_values(port_chars);
  const W port = ((p & W::broadcast(0xF)) << 12) | (p & W::broadcast(0xF00)) | ((p >> 12) & W::broadcast(0xF0)) |
                 (p >> 24);
  const W s = hex_digit_values(state_chars);
  const W state = ((s & W::broadcast(0xF)) << 4) | ((s >> 8) & W::broadcast(0xF));
  // "%4d": spaces, then digits, of which the one before the colon is not a space.
  const W slot_padding = slot_spaces & ((one << colon) - one);
  const W slot_problems = (slot_padding & (slot_padding + one)) | (shift_right(slot_padding, colon - one) & one);
  return {prefix_problems | slot_problems, port, state};
}
template <class W>
[[gnu::always_inline]] inline auto head_ok(const Head<W>& head) {
  return is_zero(head.problems) & at_most(head.state - W::broadcast(1), W::broadcast(12));
}

template <class W>
[[gnu::always_inline]] inline Judged<W> judge(W space, W digit, W lower, W minus, const W& length,
                                              const W& prefix_problems, const W& colon, const W& slot_spaces,
                                              const W& port_chars, const W& state_chars) {
  const W one = W::broadcast(1);
  const W valid = ~(W::broadcast(~std::uint64_t{0}) << length);  // shifts of 64 give 0
  space = space & valid;
  lower = lower & valid;
  minus = minus & valid;
  const Head<W> head = judge_head(prefix_problems, colon, slot_spaces, port_chars, state_chars);

  const W field = (digit | lower | minus) & valid;
  // The byte before the tail is the prefix's final space, so a field starting at bit
  // 0 is a field start too.
  const W starts = field & ~(field << 1);
  const W count = popcount(starts);
  const W rest1 = starts & (starts - one);
  const W second = rest1 & -rest1;
  const W rest2 = rest1 & (rest1 - one);
  const W third = rest2 & -rest2;  // inode
  const W rest3 = rest2 & (rest2 - one);
  const W rest4 = rest3 & (rest3 - one);
  const W fifth = rest4 & -rest4;  // kernel pointer
  const W last = highest_bit(starts);
  // The first byte after the field starting at `start` (0 if it runs to the window's
  // end), and so the field's bits as end - start.
  const W gaps = ~field;
  const auto end_of = [&](const W& start) {
    const W after = gaps & ~(start - one);
    return after & -after;
  };
  const W inode = end_of(third) - third;
  const W pointer = end_of(fifth) - fifth;
  const W after_last = end_of(last);
  // Runs of 2, 4, ... field bytes: a set bit starts such a run.
  const W run2 = field & (field >> 1);
  const W run4 = run2 & (run2 >> 2);
  const W run8 = run4 & (run4 >> 4);
  const W run16 = run8 & (run8 >> 8);
  const W run10 = run8 & (run2 >> 8);
  const W run17 = run16 & (field >> 16);
  const W run20 = run16 & (run4 >> 16);
  const W double_space = space & ((space << 1) | one);
  // Several spaces in a row only as the padding of "%5u %8d" (before the second field)
  // and after the last field.
  const W padding = (second - one) | (valid & ~(after_last - one));
  const W problems =
      // A byte that is none of the tail's classes.
      (valid & ~(space | digit | lower | minus)) |
      // Hex letters outside the pointer.
      (lower & ~pointer) |
      // Fields longer than 9 characters, so that every 32-bit field fits; the inode may
      // have 19 digits (always fits 64 bits) and the pointer 16 hex digits.
      (run10 & ~(inode | pointer)) | (run17 & ~inode) | run20 |
      (double_space & ~padding) |
      // A minus sign only to start ssthresh, the last field of a full socket, and only
      // before a digit. (The full parser also takes signed probes and refcount, which
      // the kernel never prints negative.)
      (minus & ~select(count == W::broadcast(10), last)) | (minus & ~(digit >> 1));
  using Mask = decltype(is_zero(W{}));
  const auto ok = static_cast<Mask>(is_zero(problems) & ((count == W::broadcast(5)) | (count == W::broadcast(10))) &
                                    head_ok(head));
  return {ok, head.port, head.state};
}

// --- Batches -------------------------------------------------------------------------
//
// Lines are examined in batches of eight: stage A checks each line's prefix with
// vector compares and records the rest; stage B judges the batch; then the lines are
// committed in order. A line whose newline lies outside the window ends the batch early
// and goes to the full parser.
constexpr int kBatch = 8;

struct alignas(64) Batch {
  // Stage A's records, one array per input of judge().
  std::uint64_t space[kBatch];
  std::uint64_t digit[kBatch];
  std::uint64_t lower[kBatch];
  std::uint64_t minus[kBatch];
  std::uint64_t length[kBatch];
  std::uint64_t problems[kBatch];
  std::uint64_t colon[kBatch];
  std::uint64_t slot_spaces[kBatch];
  std::uint64_t port_chars[kBatch];
  std::uint64_t state_chars[kBatch];
  // Stage B's readings.
  std::uint64_t port[kBatch];
  std::uint64_t state[kBatch];
  const char* begin[kBatch];
  const char* newline[kBatch];
  std::uint8_t prefix[kBatch];  // where the tail starts
  // 1: stage A proved the whole line by a known shape (scan_known_shapes.h) and
  // recorded its port and state, which stage B keeps; judge()'s inputs are then not
  // recorded.
  std::uint8_t tail_proven[kBatch];
  int size = 0;
};

// The slot's width beyond four columns from the colon's position, for a stage A that
// predicted `shift` (the previous line's width): a colon where predicted changes
// nothing; a colon at 4 to 8 columns becomes the new width; any other leaves the line to
// the parser (returns a problem) and keeps the prediction.
[[gnu::always_inline]] inline std::uint64_t take_slot_width(unsigned colon, unsigned& shift) {
  if (colon == 4 + shift) [[likely]] return 0;
  const unsigned wider = colon - 4u;  // huge when the colon comes early
  if (wider > kMaxSlotShift) return 1;
  shift = wider;
  return 0;
}

// What a stage A found of one line, in judge()'s terms (see Batch).
struct LineClasses {
  std::uint64_t space, digit, lower, minus, length, problems, colon, slot_spaces;
};

// Records the line as lane i of the batch: its classes, the raw port and state characters
// at the family's offsets for its slot width, and where it starts and ends.
[[gnu::always_inline]] inline void record_line(Batch& batch, int i, const Family& family, const char* line,
                                               const char* newline, unsigned shift, const LineClasses& c) {
  batch.space[i] = c.space;
  batch.digit[i] = c.digit;
  batch.lower[i] = c.lower;
  batch.minus[i] = c.minus;
  batch.length[i] = c.length;
  batch.problems[i] = c.problems;
  batch.colon[i] = c.colon;
  batch.slot_spaces[i] = c.slot_spaces;
  std::uint32_t port_chars;
  std::memcpy(&port_chars, line + family.port_at + shift, 4);
  batch.port_chars[i] = port_chars;
  std::uint16_t state_chars;
  std::memcpy(&state_chars, line + family.state_at + shift, 2);
  batch.state_chars[i] = state_chars;
  batch.begin[i] = line;
  batch.newline[i] = newline;
  batch.prefix[i] = static_cast<std::uint8_t>(family.prefix + shift);
  batch.tail_proven[i] = 0;
}

// Stage A for the line at `line`: finds its newline (nullptr if it does not end where
// kernel-printed lines end), checks the prefix against its template, and records what
// stage B needs as lane i of the batch. The caller has checked that kReadAhead bytes from
// `line` are readable.
//
// `shift` is the slot's width beyond four columns, as the previous line had it: the
// template and the tail are read for that width at once, and only a line whose colon
// says otherwise is read again. The width changes once per power of ten lines, and the
// profile showed the template's load waiting on the colon's search line after line.
template <class Block>
[[gnu::always_inline]] inline const char* stage_a(const char* line, const Family& family, Batch& batch, int i,
                                                  unsigned& shift) {
  const std::uint64_t newlines = Block::newlines(line + kNewlineWindow);
  if (newlines == 0) return nullptr;
  const char* newline = line + kNewlineWindow + lowest(newlines);

  // The prefix, against the template for its slot width: the first colon ends the slot.
  const Block head = Block::load(line);
  const Block body = Block::load(line + 64);
  // A slot's colon is never past column 4 + kMaxSlotShift, so only the head's front
  // half is searched for it, and for the slot's spaces; a line with no colon there is a
  // problem as one with a colon too far.
  const unsigned colon = lowest(head.template front_has<kColon>() | (std::uint64_t{1} << 32));
  std::uint64_t problems = take_slot_width(colon, shift);
  const unsigned prefix = family.prefix + shift;
  problems |= Block::refuses(head, body, family.allowed + kMaxSlotShift - shift);

  // The tail: its classes for stage B, and nothing but spaces past the window.
  const char* tail = line + prefix;
  const auto tail_length = static_cast<std::size_t>(newline - tail);
  const Block w = Block::load(tail);
  if (tail_length > 64) {
    // newline < line + 192 and the tail starts at or after line + 76, so one more
    // window always reaches the newline.
    problems |= low_bits(static_cast<unsigned>(tail_length - 64)) & ~Block::equal(tail + 64, ' ');
  }
  problems |= Block::outside_ascii(head, body, w);
  record_line(batch, i, family, line, newline, shift,
              {w.template has<kSpace>(), w.template has<kDigit>(), w.template has<kLower>(), w.template has<kMinus>(),
               tail_length < 64 ? tail_length : 64, problems, colon, head.template front_has<kSpace>()});
  return newline;
}

// Stage A of the SIMD kernels, for scan_lines(). A stage is a type whose examine() has
// the contract of stage_a().
template <class Block>
struct BlockStage {
  [[gnu::always_inline]] static const char* examine(const char* line, const Family& family, Batch& batch, int i,
                                                    unsigned& shift) {
    return stage_a<Block>(line, family, batch, i, shift);
  }
};

// Stage A over the lines from p, up to a batch of them, while kReadAhead bytes remain
// readable; returns the first byte after the last line examined. Unused lanes get
// defined contents, since stage B reads all eight.
//
// The lane count and the slot width stay in registers until the batch is examined. As
// Batch members, and a reference, they were stored and loaded again for every line: the
// compiler cannot keep them in registers across the stores of prefix[] and tail_proven[],
// whose byte type may alias anything (the profile of the AVX-512 counting path on Zen 5
// showed both loads, and the pointer to `shift` kept in a vector register, line after line).
template <class Stage, const Family& family>
[[gnu::always_inline]] inline const char* examine_batch(const char* p, const char* end, Batch& batch,
                                                        unsigned& slot_shift) {
  unsigned shift = slot_shift;
  int size = 0;
  // Under the loop's own condition: a test of p < end instead measured 0.94 x memchr
  // against 1.00 (three runs each).
  if (static_cast<std::size_t>(end - p) >= kReadAhead) touch_next_page(p, end);
  while (size < kBatch && static_cast<std::size_t>(end - p) >= kReadAhead) {
    prefetch_ahead(p);
    const char* newline = Stage::examine(p, family, batch, size, shift);
    if (newline == nullptr) break;
    ++size;
    p = newline + 1;
  }
  batch.size = size;
  slot_shift = shift;
  for (int i = size; i < kBatch; ++i) {
    batch.space[i] = batch.digit[i] = batch.lower[i] = batch.minus[i] = batch.length[i] = 0;
    batch.colon[i] = batch.slot_spaces[i] = batch.port_chars[i] = batch.state_chars[i] = 0;
    batch.problems[i] = 1;
    batch.tail_proven[i] = 0;
  }
  return p;
}

// Stages B and C for an examined batch: judges it, hands proven lines to the sink and the
// others to its fallback, in order. Returns nullptr when every line was taken, or where
// scanning resumes when the full parser found a line to end elsewhere than stage A
// thought (the batch's later lines, and any batch examined after it, started in the
// wrong place); an invalid line sets progress.failed and progress.stop instead.
template <unsigned (*Judge)(Batch&), class Sink>
[[gnu::always_inline]] inline const char* commit_batch(Batch& batch, const char* end, Sink& sink,
                                                       ScanProgress& progress) {
  const unsigned ok = batch.size > 0 ? Judge(batch) : 0;
  if (batch.size == kBatch && ok == (1u << kBatch) - 1) {
    // The common case, a whole batch proven: one call, whose counters stay in registers
    // rather than being reloaded after every store into the tally.
    sink.accept_all(batch);
    progress.lines += kBatch;
    return nullptr;
  }
  for (int i = 0; i < batch.size; ++i) {
    if ((ok >> i) & 1u) {
      sink.accept(batch, i);
      ++progress.lines;
      continue;
    }
    const char* next = sink.fallback(batch.begin[i], end);
    if (next == nullptr) {
      progress.stop = batch.begin[i];
      progress.failed = true;
      return nullptr;
    }
    ++progress.lines;
    ++progress.fallback_lines;
    if (next != batch.newline[i] + 1) return next;
  }
  return nullptr;
}

// The scan loop shared by counting and records. `Stage` examines each line (stage A),
// `Judge` judges a batch (stage B). `Sink` takes proven lines (accept(batch, i)) and
// decides the others (fallback(line, end), with the returns of RecordTarget::fallback).
// The loop is compiled once per table family, whose offsets and template are then
// constants: with the family chosen at run time, the profile showed its address spilled
// and its fields loaded again for every line.
//
// A full batch is judged and committed after the next batch's stage A, not before it.
// Stage A leaves its records in the batch's arrays with 64-bit stores, which stage B
// reads back as whole vectors (Lanes8, Lanes4) or, on the portable kernel, eight flag
// bytes as one word: a load no single store covers waits until every store in it has left
// the core, so a batch judged straight after its stage A waited for that stage to retire,
// and its hundred-odd dependent instructions then ran with little else to overlap them
// (the profile of the AVX-512 counting path on Zen 5 put 29 % of its time in stage B).
// One batch later the stores have left the core. Measured with bench_proc_net_tcp on
// Zen 5, three runs of each build: the portable counting path 0.50-0.52 -> 0.53-0.55 x
// memchr, the record path 0.30-0.32 -> 0.32-0.33, AVX-512 counting about even -- with the
// two batches at fixed places; one loop choosing its batch at run time made AVX-512
// counting slower and unsteady. The lines still reach the sink in order; a batch examined
// from a place the full parser then moved (a line of the batch before ending elsewhere)
// is examined again, and only stage B teaches the portable kernel's shapes, so a batch
// examined ahead meets a new shape one batch later than before.
template <class Stage, unsigned (*Judge)(Batch&), const Family& family, class Sink>
inline ScanProgress scan_family(const char* begin, const char* end, Sink& sink) {
  ScanProgress progress{begin, 0, 0, false};
  const char* p = begin;
  unsigned shift = 0;  // the slot width's prediction: see stage_a()
  Batch first;
  Batch second;
  // Commits a batch that ended early, then the line it stopped at, which stage A could
  // not judge, goes to the full parser. Returns false when scanning is over.
  const auto short_batch = [&](Batch& batch) {
    if (const char* resume = commit_batch<Judge>(batch, end, sink, progress)) {
      p = resume;
      return true;
    }
    if (progress.failed || p >= end) return false;
    const char* next = sink.fallback(p, end);
    if (next == nullptr) {
      progress.stop = p;
      progress.failed = true;
      return false;
    }
    if (next == p) return false;  // an incomplete last line
    ++progress.lines;
    ++progress.fallback_lines;
    p = next;
    return true;
  };
  // What follows a step: `next` is full and waits in turn, or scanning starts afresh at p,
  // or it is over.
  enum class After { kTakeTurns, kRestart, kDone };
  // Examines `next` while `waiting` is committed.
  const auto step = [&](Batch& next, Batch& waiting) {
    const char* after = examine_batch<Stage, family>(p, end, next, shift);
    if (const char* resume = commit_batch<Judge>(waiting, end, sink, progress)) {
      p = resume;
      return After::kRestart;
    }
    if (progress.failed) return After::kDone;
    p = after;
    if (next.size == kBatch) return After::kTakeTurns;
    return short_batch(next) ? After::kRestart : After::kDone;
  };
  for (;;) {
    p = examine_batch<Stage, family>(p, end, first, shift);
    if (first.size < kBatch) {
      if (!short_batch(first)) break;
      continue;
    }
    // Steady state: the two batches take turns, each at a fixed place.
    After after;
    do {
      after = step(second, first);
      if (after == After::kTakeTurns) after = step(first, second);
    } while (after == After::kTakeTurns);
    if (after == After::kDone) break;
  }
  if (!progress.failed) progress.stop = p;
  return progress;
}

template <class Stage, unsigned (*Judge)(Batch&), class Sink>
inline ScanProgress scan_lines(const char* begin, const char* end, bool ipv6, Sink& sink) {
  return ipv6 ? scan_family<Stage, Judge, kIpv6>(begin, end, sink) : scan_family<Stage, Judge, kIpv4>(begin, end, sink);
}

// The counting path's sink: the tally, and the full parser for the rest. The states
// seen are gathered in a register and stored once, not once per line.
//
// A cell of the tally (a port in a state) is a random place in 3.5 MiB whenever the
// ports are spread out -- the local ports of outbound connections are -- and waiting
// for it line after line cost a third of the counting path's time on Zen 3 (measured
// with bench_proc_net_tcp's generated tables: fixing every port made the same kernel
// 1.7x faster). So each cell is prefetched when its line is proven and incremented
// kCellDelay lines later, when it has arrived; counting does not care about the order.
constexpr unsigned kCellDelay = 16;

struct CountSink {
  const CountTarget& target;
  bool ipv6;
  std::uint32_t states = 0;
  std::uint32_t pending[kCellDelay] = {};
  std::size_t proven = 0;
  ~CountSink() {
    for (std::size_t i = proven > kCellDelay ? proven - kCellDelay : 0; i < proven; ++i) {
      ++target.cells[pending[i % kCellDelay]];
    }
    *target.states_used |= states;
  }
  void accept(const Batch& batch, int i) { proven = count(batch, i, proven, states); }
  void accept_all(const Batch& batch) {
    std::size_t n = proven;
    std::uint32_t seen = states;
    for (int i = 0; i < kBatch; ++i) n = count(batch, i, n, seen);
    proven = n;
    states = seen;
  }
  // Counts line i as the n-th proven line; returns n + 1.
  [[gnu::always_inline]] std::size_t count(const Batch& batch, int i, std::size_t n, std::uint32_t& seen) {
    const auto port = static_cast<unsigned>(batch.port[i]);
    const auto state = static_cast<unsigned>(batch.state[i]);
    target.in_use[port / 64] |= std::uint64_t{1} << (port % 64);
    seen |= 1u << state;
    const std::uint32_t cell = state * 65536 + port;
    __builtin_prefetch(target.cells + cell, 1);
    std::uint32_t& slot = pending[n % kCellDelay];
    if (n >= kCellDelay) ++target.cells[slot];
    slot = cell;
    return n + 1;
  }
  const char* fallback(const char* line, const char* end) const {
    return count_line_parsed(line, end, ipv6, target);
  }
};

// --- The record path: decoding proven lines ----------------------------------------
//
// A proven line's every field is where stage A and B found it, in the characters they
// checked: hex fields hold [0-9A-F] (the pointer [0-9a-f]), decimal fields [0-9] with at
// most a leading '-' on ssthresh, and no field longer than judge() allows. So the values
// are read without checks, most of them several characters per instruction. Profile of
// the earlier split (the kernel handing field positions to the decoder, which read each
// field with a loop of its own): the reading was two thirds of the record path's time,
// spread evenly over some 860 instructions per line.

// Eight hex digits at once: the value of "%08X". Byte i of n becomes the value of
// character i; reversed (character 7 lowest), the nibbles are packed pairwise by shifts.
// Plain shifts rather than BMI2's pext, which costs hundreds of cycles on AMD CPUs
// before Zen 3 and does not exist on arm64.
[[gnu::always_inline]] inline std::uint32_t hex8(const char* p) {
  std::uint64_t x;
  std::memcpy(&x, p, 8);
  std::uint64_t n = (x & 0x0F0F0F0F0F0F0F0FULL) + 9 * ((x >> 6) & 0x0101010101010101ULL);
  n = __builtin_bswap64(n);
  n = (n | (n >> 4)) & 0x00FF00FF00FF00FFULL;
  n = (n | (n >> 8)) & 0x0000FFFF0000FFFFULL;
  return static_cast<std::uint32_t>(n | (n >> 16));
}
// One hex digit of either case: bit 6 is set for letters only.
[[gnu::always_inline]] inline unsigned hex_digit(char c) {
  const auto b = static_cast<unsigned char>(c);
  return (b & 0x0Fu) + 9u * (b >> 6);
}
// Four and two hex digits, likewise.
[[gnu::always_inline]] inline std::uint32_t hex4(const char* p) {
  std::uint32_t x;
  std::memcpy(&x, p, 4);
  std::uint32_t n = (x & 0x0F0F0F0Fu) + 9u * ((x >> 6) & 0x01010101u);
  n = __builtin_bswap32(n);
  n = (n | (n >> 4)) & 0x00FF00FFu;
  return (n | (n >> 8)) & 0xFFFFu;
}
[[gnu::always_inline]] inline std::uint32_t hex2(const char* p) {
  std::uint16_t x;
  std::memcpy(&x, p, 2);
  const unsigned n = (x & 0x0F0Fu) + 9u * ((x >> 6) & 0x0101u);
  return ((n & 0xFu) << 4) | (n >> 8);
}

// Up to eight decimal digits at once (SWAR, no branch per digit): the eight bytes at p
// are read, of which the first `count` (1 to 8) are digits. Bytes past the field are
// inside the kernel's read-ahead.
[[gnu::always_inline]] inline std::uint64_t eight_digits(const char* p, unsigned count) {
  std::uint64_t chunk;
  std::memcpy(&chunk, p, 8);
  // Keep the digits, move them to the high bytes and fill the low ones with '0': the
  // eight bytes then spell the number with leading zeros, most significant first.
  chunk <<= 8 * (8 - count);
  chunk |= 0x3030303030303030ULL & ((std::uint64_t{1} << (64 - 8 * count)) - 1);
  chunk -= 0x3030303030303030ULL;
  chunk = chunk * 10 + (chunk >> 8);  // pairs of digits
  return (((chunk & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32))) +
          (((chunk >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32)))) >>
         32;
}

// A decimal field of `count` digits (1 to 19: judge() allows 9, the inode 19).
[[gnu::always_inline]] inline std::uint64_t decimal(const char* p, unsigned count) {
  if (count <= 8) [[likely]] return eight_digits(p, count);
  if (count <= 16) return eight_digits(p, count - 8) * 100000000 + eight_digits(p + count - 8, 8);
  std::uint64_t v = 0;
  for (const char* end = p + count; p < end; ++p) v = v * 10 + static_cast<std::uint64_t>(*p - '0');
  return v;
}

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "addresses are the kernel's words in little-endian order; see words_to_address()");

// An address of `words` 32-bit words printed "%08X" each: the kernel prints the words
// of the address as they lie in memory, so each word's value in little-endian order is
// the address's bytes (the decoder runs on little-endian hosts only).
[[gnu::always_inline]] inline void words_to_address(const char* p, int words, std::uint8_t* bytes) {
  for (int i = 0; i < words; ++i) {
    const std::uint32_t word = hex8(p + 8 * i);
    std::memcpy(bytes + 4 * i, &word, 4);
  }
}

// The kernel pointer: %pK prints 16 hex digits, or fewer where kptr_restrict hides the
// pointer as 0.
[[gnu::always_inline]] inline std::uint64_t pointer(const char* at, unsigned count) {
  if (count == 16) [[likely]] return (std::uint64_t{hex8(at)} << 32) | hex8(at + 8);
  std::uint64_t x = 0;
  for (unsigned k = 0; k < count; ++k) x = (x << 4) | hex_digit(at[k]);
  return x;
}

// Where a proven line's fields after its addresses are.
struct FieldText {
  const char* remote_port;  // 4 hex digits
  const char* state;        // "%02X %08X:%08X %02X:%08lX %08X " from here on
  const char* tail;         // the tail window
  std::uint64_t starts;     // the first byte of each tail field, a bit each
  std::uint64_t lasts;      // the last byte of each
  bool negative_ssthresh;   // a minus sign, which judge() allows only on ssthresh
};

// The hex fields between the addresses and the tail, one at a time.
[[gnu::always_inline]] inline void hex_fields(const FieldText& text, LineValues& v) {
  v.remote_port = static_cast<std::uint16_t>(hex4(text.remote_port));
  v.tx_queue = hex8(text.state + 3);
  v.rx_queue = hex8(text.state + 12);
  v.timer = static_cast<std::uint8_t>(hex2(text.state + 21));
  v.timer_expires = hex8(text.state + 24);
  v.retransmits = hex8(text.state + 33);
}

// The tail's fields one at a time: uid, probes, inode, refcount and the kernel pointer,
// and for a full socket rto, ato, quick, cwnd and ssthresh.
[[gnu::always_inline]] inline void tail_fields(const FieldText& text, LineValues& v) {
  std::uint64_t starts = text.starts;
  std::uint64_t lasts = text.lasts;
  const char* at = nullptr;
  const auto next = [&] {
    at = text.tail + lowest(starts);
    const unsigned count = lowest(lasts) + 1 - lowest(starts);
    starts &= starts - 1;
    lasts &= lasts - 1;
    return count;
  };
  unsigned count = next();
  v.uid = static_cast<std::uint32_t>(decimal(at, count));
  count = next();
  v.probes = static_cast<std::int32_t>(decimal(at, count));
  count = next();
  v.inode = decimal(at, count);
  count = next();
  v.refcount = static_cast<std::int32_t>(decimal(at, count));
  count = next();
  v.kernel_pointer = pointer(at, count);
  v.full = starts != 0;
  if (!v.full) {
    v.rto = v.ato = 0;
    v.ack_quick_pingpong = v.snd_cwnd = 0;
    v.ssthresh = 0;
    return;
  }
  count = next();
  v.rto = decimal(at, count);
  count = next();
  v.ato = decimal(at, count);
  count = next();
  v.ack_quick_pingpong = static_cast<std::uint32_t>(decimal(at, count));
  count = next();
  v.snd_cwnd = static_cast<std::uint32_t>(decimal(at, count));
  count = next();
  const unsigned sign = text.negative_ssthresh ? 1 : 0;
  const auto magnitude = static_cast<std::int64_t>(decimal(at + sign, count - sign));
  v.ssthresh = static_cast<std::int32_t>(text.negative_ssthresh ? -magnitude : magnitude);
}

// How decode_line() converts the long parts of a line: both IPv6 addresses (32 hex
// digits each), and the fields after the addresses. This one goes word by word and field
// by field, the portable way; the SIMD kernels pass a type with the same static
// functions that converts several at once: the AVX2 kernel VectorConvert
// (scan_convert_avx2.h), the AVX-512 kernel Avx512Convert (scan_avx512.cpp).
struct ScalarConvert {
  [[gnu::always_inline]] static void ipv6(const char* local, const char* remote, LineValues& v) {
    words_to_address(local, 4, v.local_address);
    words_to_address(remote, 4, v.remote_address);
  }
  [[gnu::always_inline]] static void fields(const FieldText& text, LineValues& v) {
    hex_fields(text, v);
    tail_fields(text, v);
  }
};

// Decodes line i of a judged batch. The tail's fields are found from stage A's masks,
// as judge() proved them: 5 or 10 fields, each within the tail window.
template <class Convert>
[[gnu::always_inline]] inline void decode_line(const Batch& batch, int i, bool ipv6, LineValues& v) {
  const char* p = batch.begin[i];
  const unsigned tail = batch.prefix[i];
  // The prefix grows by one for every slot digit past four.
  const unsigned slot_digits = 4 + tail - (ipv6 ? kIpv6.prefix : kIpv4.prefix);
  // The slot's padding spaces become leading zeros: ' ' | 0x10 is '0'; digits keep.
  std::uint64_t slot;
  std::memcpy(&slot, p, 8);
  slot |= 0x1010101010101010ULL;
  char slot_text[8];
  std::memcpy(slot_text, &slot, 8);
  v.slot = eight_digits(slot_text, slot_digits);

  const unsigned address_digits = ipv6 ? 32 : 8;
  const char* local = p + slot_digits + 2;                  // after "%4d: "
  const char* remote = local + address_digits + 1 + 4 + 1;  // after "ADDR:PORT "
  const char* state = remote + address_digits + 1 + 4 + 1;
  if (ipv6) {
    Convert::ipv6(local, remote, v);
  } else {
    std::memset(v.local_address, 0, 10);
    std::memset(v.remote_address, 0, 10);
    v.local_address[10] = v.local_address[11] = 0xff;
    v.remote_address[10] = v.remote_address[11] = 0xff;
    words_to_address(local, 1, v.local_address + 12);
    words_to_address(remote, 1, v.remote_address + 12);
  }
  // judge() read the local port and the state already.
  v.local_port = static_cast<std::uint16_t>(batch.port[i]);
  v.state = static_cast<std::uint8_t>(batch.state[i]);
  const std::uint64_t valid = low_bits(static_cast<unsigned>(batch.length[i]));
  const std::uint64_t minus = batch.minus[i] & valid;
  const std::uint64_t field = (batch.digit[i] | batch.lower[i] | minus) & valid;
  Convert::fields({remote + address_digits + 1, state, p + tail, field & ~(field << 1), field & ~(field >> 1),
                   minus != 0},
                  v);
}

// The record path's sink: decodes proven lines and hands them over a batch at a time.
template <class Convert>
struct RecordSink {
  const RecordTarget& target;
  bool ipv6;
  LineValues values[kBatch];
  void accept(const Batch& batch, int i) {
    decode_line<Convert>(batch, i, ipv6, values[0]);
    target.on_lines(target.context, values, 1);
  }
  void accept_all(const Batch& batch) {
    for (int i = 0; i < kBatch; ++i) decode_line<Convert>(batch, i, ipv6, values[i]);
    target.on_lines(target.context, values, kBatch);
  }
  const char* fallback(const char* line, const char* end) const {
    return target.fallback(target.context, line, end);
  }
};

template <class Stage, unsigned (*Judge)(Batch&)>
inline ScanProgress count_lines(const char* begin, const char* end, bool ipv6, const CountTarget& target) {
  CountSink sink{target, ipv6};
  return scan_lines<Stage, Judge>(begin, end, ipv6, sink);
}

template <class Stage, unsigned (*Judge)(Batch&), class Convert = ScalarConvert>
inline ScanProgress record_lines(const char* begin, const char* end, bool ipv6, const RecordTarget& target) {
  RecordSink<Convert> sink{target, ipv6, {}};
  return scan_lines<Stage, Judge>(begin, end, ipv6, sink);
}

}  // namespace
}  // namespace skopos::tracker::detail
