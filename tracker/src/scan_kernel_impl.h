// Internal: the SIMD counting kernel, written once over a 64-byte `Block` type and
// included by one translation unit per instruction set (count_avx2.cpp,
// count_avx512.cpp). Everything here has internal linkage so that each unit keeps its
// own copy; see scan_kernel.h for why no standard-library templates appear.
//
// How it works. A socket line is a fixed-width prefix (slot, both endpoints, state,
// queues, timer, retransmits) followed by a short tail of space-separated decimal
// fields and the kernel pointer. For each line the kernel:
//
//  1. classifies the prefix's bytes with two nibble lookups and checks every position
//     against a template (hex digit here, ':' there) in a handful of vector ops;
//  2. classifies one 64-byte window of the tail and checks, on bitmasks, that it is
//     5 or 10 well-formed fields ending in a newline;
//  3. reads the port and state straight from their fixed offsets and counts them.
//
// The checks are a sufficient condition for parse_socket_line() to accept the line
// with the same port and state. Any line that does not pass them -- a wide slot
// number, lowercase hex, a long tail, a negative field other than ssthresh, or a
// malformed line -- goes to the full parser, which either counts it or reports the
// error. So the kernel never decides that a line is invalid, and both paths agree on
// every input by construction (tests/fuzz checks it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "scan_kernel.h"

namespace skopos::tracker::detail {
namespace {

// Byte classes, one bit each. A byte outside every class classifies as 0.
constexpr std::uint8_t kDigit = 0x01;    // 0-9
constexpr std::uint8_t kUpper = 0x02;    // A-F
constexpr std::uint8_t kLower = 0x04;    // a-f
constexpr std::uint8_t kSpace = 0x08;    // ' '
constexpr std::uint8_t kColon = 0x10;    // ':'
constexpr std::uint8_t kMinus = 0x20;    // '-'
constexpr std::uint8_t kNewline = 0x40;  // '\n'

// class(b) = kByLowNibble[b & 15] & kByHighNibble[b >> 4]: each class is the set of
// bytes whose low nibble and high nibble both allow it (' ' is 0x20, '-' 0x2D, ':'
// 0x3A, '\n' 0x0A). Bytes >= 0x80 have a high nibble of 8..15, which allows nothing.
constexpr std::uint8_t kByLowNibble[16] = {
    kDigit | kSpace,          kDigit | kUpper | kLower, kDigit | kUpper | kLower,
    kDigit | kUpper | kLower, kDigit | kUpper | kLower, kDigit | kUpper | kLower,
    kDigit | kUpper | kLower, kDigit,                   kDigit,
    kDigit,                   kColon | kNewline,        0,
    0,                        kMinus,                   0,
    0};
constexpr std::uint8_t kByHighNibble[16] = {
    kNewline, 0, kSpace | kMinus, kDigit | kColon, kUpper, 0, kLower, 0, 0, 0, 0, 0, 0, 0, 0, 0};

constexpr std::size_t kPrefixWindow = 128;  // two blocks cover the longest prefix
// The furthest a line's checks read past its first byte: the last 64-byte window of
// the newline search starts before kScanMaxLine.
constexpr std::size_t kReadAhead = kScanMaxLine + 64;

// The fixed-width prefix of a socket line, up to and including the space after
// retrnsmt. 'd' is a slot digit or its padding, 'H' an uppercase hex digit as %X
// prints it; every other character stands for itself.
constexpr char kIpv4Pattern[] =
    "dddd: HHHHHHHH:HHHH HHHHHHHH:HHHH HH HHHHHHHH:HHHHHHHH HH:HHHHHHHH HHHHHHHH ";
constexpr char kIpv6Pattern[] =
    "dddd: HHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHH:HHHH HHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHH:HHHH HH "
    "HHHHHHHH:HHHHHHHH HH:HHHHHHHH HHHHHHHH ";

// Slot numbers of 4 to 8 digits take the fast path ("%4d" widens past 9999 sockets);
// a layout per width keeps the prefix check to two aligned template compares.
constexpr std::size_t kMaxSlotShift = 4;

struct Layout {
  std::uint8_t allowed[kPrefixWindow];  // per position: the classes allowed there
  std::uint64_t checked[2];             // positions of each 64-byte half to check
  std::size_t prefix;                   // prefix length: where the tail starts
  std::size_t port_at;                  // the local port's 4 hex digits
  std::size_t state_at;                 // the state's 2 hex digits
};

struct Layouts {
  Layout by_shift[kMaxSlotShift + 1];  // [slot digits - 4]
};

// `pattern` is the layout for a 4-column slot; `shift` more slot columns move
// everything right.
template <std::size_t N>
constexpr Layout make_layout(const char (&pattern)[N], std::size_t shift, std::size_t port_at,
                             std::size_t state_at) {
  Layout layout{};
  layout.prefix = N - 1 + shift;
  layout.port_at = port_at + shift;
  layout.state_at = state_at + shift;
  for (std::size_t i = 0; i < layout.prefix; ++i) {
    std::uint8_t allowed = 0;
    switch (i < shift ? 'd' : pattern[i - shift]) {
      case 'd': allowed = kDigit | kSpace; break;
      case 'H': allowed = kDigit | kUpper; break;
      case ':': allowed = kColon; break;
      case ' ': allowed = kSpace; break;
      default: break;
    }
    layout.allowed[i] = allowed;
    layout.checked[i / 64] |= std::uint64_t{1} << (i % 64);
  }
  return layout;
}

template <std::size_t N>
constexpr Layouts make_layouts(const char (&pattern)[N], std::size_t port_at, std::size_t state_at) {
  Layouts layouts{};
  for (std::size_t shift = 0; shift <= kMaxSlotShift; ++shift) {
    layouts.by_shift[shift] = make_layout(pattern, shift, port_at, state_at);
  }
  return layouts;
}

// Offsets: "dddd: " is 6 bytes; an IPv4 address 8 hex digits, an IPv6 one 32.
constexpr Layouts kIpv4Layouts = make_layouts(kIpv4Pattern, 6 + 8 + 1, 6 + 2 * (8 + 1 + 4 + 1));
constexpr Layouts kIpv6Layouts = make_layouts(kIpv6Pattern, 6 + 32 + 1, 6 + 2 * (32 + 1 + 4 + 1));
static_assert(kIpv4Layouts.by_shift[0].prefix == 76 && kIpv6Layouts.by_shift[0].prefix == 124);
static_assert(kIpv6Layouts.by_shift[kMaxSlotShift].prefix <= kPrefixWindow);
static_assert(kIpv4Pattern[6 + 8] == ':' && kIpv4Pattern[6 + 2 * (8 + 1 + 4 + 1) - 1] == ' ');
static_assert(kIpv6Pattern[6 + 32] == ':' && kIpv6Pattern[6 + 2 * (32 + 1 + 4 + 1) - 1] == ' ');

// Hex digits already known to be [0-9A-F]: '0'-'9' have bit 6 clear, 'A'-'F' set, and
// their low nibble is the value (digits) or the value minus 9 (letters).
inline unsigned hex_digits(const char* p, int count) {
  unsigned value = 0;
  for (int i = 0; i < count; ++i) {
    const auto c = static_cast<unsigned char>(p[i]);
    value = (value << 4) | ((c & 0x0Fu) + 9u * (c >> 6));
  }
  return value;
}

inline std::uint64_t low_bits(unsigned n) { return n >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << n) - 1; }
// Bits [from, to).
inline std::uint64_t bit_span(unsigned from, unsigned to) { return low_bits(to) & ~low_bits(from); }
inline unsigned lowest(std::uint64_t x) { return static_cast<unsigned>(__builtin_ctzll(x)); }
inline unsigned highest(std::uint64_t x) { return 63u - static_cast<unsigned>(__builtin_clzll(x)); }
// The first position at or after `start` that is not in `set` (`set` must not be all
// ones from `start` up, which holds because the bits above the window are clear).
inline unsigned run_end(std::uint64_t set, unsigned start) { return start + lowest(~(set >> start)); }

// After a tail window with no newline: every byte must be a space up to the newline,
// which must come before the line reaches kScanMaxLine bytes. Returns the newline or null.
template <class Block>
inline const char* spaces_to_newline(const char* from, const char* line) {
  for (const char* q = from; q < line + kScanMaxLine; q += 64) {
    const Block block = Block::load(q);
    const std::uint64_t newline = block.has(kNewline);
    const std::uint64_t space = block.has(kSpace);
    if (newline != 0) {
      const std::uint64_t before = low_bits(lowest(newline));
      return (space & before) == before ? q + lowest(newline) : nullptr;
    }
    if (space != ~std::uint64_t{0}) return nullptr;
  }
  return nullptr;
}

// Checks the tail of a line: "SP* uid SP+ timeout SP inode SP refcnt SP pointer" and,
// for full sockets, " rto ato quick cwnd ssthresh", then SP* and the newline. Returns
// the newline, or null if the line needs the full parser.
template <class Block>
inline const char* tail_end(const char* line, const char* tail) {
  const Block w = Block::load(tail);
  const std::uint64_t newline = w.has(kNewline);
  const std::uint64_t space = w.has(kSpace);
  const std::uint64_t digit = w.has(kDigit);
  const std::uint64_t lower = w.has(kLower);
  const std::uint64_t minus = w.has(kMinus);

  const std::uint64_t valid = newline != 0 ? low_bits(lowest(newline)) : ~std::uint64_t{0};
  if (((space | digit | lower | minus) & valid) != valid) return nullptr;
  const std::uint64_t field = (digit | lower | minus) & valid;
  const char* end = nullptr;
  if (newline != 0) {
    end = tail + lowest(newline);
  } else {
    // A field running into the window's end is complete only if spaces follow, which
    // spaces_to_newline() insists on.
    end = spaces_to_newline<Block>(tail + 64, line);
    if (end == nullptr) return nullptr;
  }
  if (static_cast<std::size_t>(end - line) >= kScanMaxLine) return nullptr;

  // The byte before the tail is the prefix's final space, so a field starting at bit
  // 0 is a field start too.
  const std::uint64_t starts = field & ~(field << 1);
  const int fields = __builtin_popcountll(starts);
  if (fields != 5 && fields != 10) return nullptr;
  std::uint64_t rest = starts;
  rest &= rest - 1;
  const unsigned second = lowest(rest);
  rest &= rest - 1;
  const unsigned third = lowest(rest);  // inode
  rest &= rest - 1;
  rest &= rest - 1;
  const unsigned fifth = lowest(rest);  // kernel pointer
  const unsigned last = highest(starts);
  const std::uint64_t inode = bit_span(third, run_end(field, third));
  const std::uint64_t pointer = bit_span(fifth, run_end(field, fifth));

  // Hex letters only in the pointer.
  if ((lower & ~pointer) != 0) return nullptr;
  // A minus sign only at the start of ssthresh, the last field of a full socket, and
  // followed by a digit. (The full parser also takes signed timeout and refcnt fields,
  // which the kernel never prints negative.)
  if (minus != 0) {
    if (fields != 10 || minus != (std::uint64_t{1} << last)) return nullptr;
    if (((minus << 1) & ~digit) != 0) return nullptr;
  }
  // Field widths: at most 9 characters, so that every 32-bit field fits; the inode may
  // have 19 digits (always fits 64 bits) and the pointer 16 hex digits.
  const std::uint64_t run2 = field & (field >> 1);
  const std::uint64_t run4 = run2 & (run2 >> 2);
  const std::uint64_t run8 = run4 & (run4 >> 4);
  const std::uint64_t run16 = run8 & (run8 >> 8);
  const std::uint64_t run10 = run8 & (run2 >> 8);
  const std::uint64_t run17 = run16 & (field >> 16);
  const std::uint64_t run20 = run16 & (run4 >> 16);
  if ((run10 & ~(inode | pointer)) != 0 || (run17 & ~inode) != 0 || run20 != 0) return nullptr;
  // Several spaces in a row only as the padding of "%5u %8d" (before the second
  // field) and after the last field.
  const std::uint64_t double_space = space & valid & ((space << 1) | 1);
  const std::uint64_t padding = low_bits(second) | (valid & ~low_bits(run_end(field, last)));
  if ((double_space & ~padding) != 0) return nullptr;
  return end;
}

// The kernel proper: every complete line in [begin, end), reading nothing past end.
template <class Block>
inline ScanProgress count_lines(const char* begin, const char* end, bool ipv6,
                                const CountTarget& target) {
  const Layouts& layouts = ipv6 ? kIpv6Layouts : kIpv4Layouts;
  const char* p = begin;
  std::uint64_t lines = 0;
  std::uint64_t fallback = 0;
  while (p < end) {
    if (static_cast<std::size_t>(end - p) >= kReadAhead) {
      const Block head = Block::load(p);
      // The slot's colon: at column 4 for slots below 10000, further right above.
      const unsigned colon = lowest(head.has(kColon) | (std::uint64_t{1} << 63));
      if (colon - 4u <= kMaxSlotShift) {
        const Layout& layout = layouts.by_shift[colon - 4u];
        const Block body = Block::load(p + 64);
        const std::uint64_t slot = low_bits(colon);
        const std::uint64_t slot_padding = head.has(kSpace) & slot;
        if ((head.allows(layout.allowed) & layout.checked[0]) == layout.checked[0] &&
            (body.allows(layout.allowed + 64) & layout.checked[1]) == layout.checked[1] &&
            // "%4d": spaces, then at least one digit.
            (slot_padding & (slot_padding + 1)) == 0 && slot_padding != slot) {
          const unsigned port = hex_digits(p + layout.port_at, 4);
          const unsigned state = hex_digits(p + layout.state_at, 2);
          const char* newline =
              state - 1u < 13u ? tail_end<Block>(p, p + layout.prefix) : nullptr;
          if (newline != nullptr) {
            std::uint32_t* row = target.cells + std::size_t{port} * 16;
            if (row[0] == 0) {
              row[0] = 1;
              target.used_ports[(*target.used_count)++] = static_cast<std::uint16_t>(port);
            }
            ++row[state];
            ++lines;
            p = newline + 1;
            continue;
          }
        }
      }
    }
    const char* next = count_line_portable(p, end, ipv6, target);
    if (next == nullptr) return ScanProgress{p, lines, fallback, true};
    if (next == p) break;
    ++lines;
    ++fallback;
    p = next;
  }
  return ScanProgress{p, lines, fallback, false};
}

}  // namespace
}  // namespace skopos::tracker::detail
