// Known line shapes: what the portable kernel learns from the lines it judges, so as to
// prove later lines like them whole in stage A. Included after scan_kernel_impl.h; the
// functions have internal linkage, like everything the kernels share (a kernel compiled
// for another instruction set that includes it gets its own), the cache is one per
// thread. (Tried in the AVX-512 kernel, by byte ranges and by class masks, the look-up
// cost more than the block classification it saved: 12-17 ns a line against 10.)
//
// The tail's field widths repeat from line to line (a host's uids, timeouts, inode and
// rto widths are few), and for one shape -- which of the tail's bytes are spaces, and
// where the newline falls -- what judge() accepts of the other bytes is fixed by
// position: a space where the shape has one, a digit in a field, a digit or lowercase
// hex letter in the pointer, and a digit or a minus sign at the start of a full
// socket's ssthresh when a digit follows. So once judge() has proven a line, its tail's
// shape becomes a template of two byte ranges per position, its newline included; and
// the prefix, the slot's columns included, has one template per slot width. A later
// line whose bytes pass both templates is proven whole in stage A: no search for its
// newline (the shape says where it is), no class masks, no stage B. That is exact by
// construction: passing the templates means the same spaces, fields, classes and
// newline as a line judge() proved, and a line that does not pass takes the full path,
// which then teaches its shape.
//
// A template holds two byte ranges per position: a byte passes when it lies in
// [low, low + span] of either. An uppercase hex digit is '0'+9 or 'A'+5, a fixed byte
// is itself twice, and a position past what is checked takes any byte. The table holds
// low + 0x80 and span ^ 0x80, so that x - low > span (unsigned: the byte is outside)
// is one signed compare of x - (low + 0x80) with span ^ 0x80 (SSE2 and NEON compare
// signed bytes in one instruction, unsigned in two or three).
#pragma once

#include <array>
#include <cstring>
#include <iterator>
#include <utility>

#include "scan_kernel_impl.h"

namespace skopos::tracker::detail {

// The tail's window, for a family: the bytes a known shape covers, the newline included.
// tcp4 pads its lines to 149 columns, so its tails (73 bytes and fewer) take five rows
// of 16 bytes; tcp6's unpadded tails are shorter than 64 bytes but where a field is
// unusually wide (those lines take the full path every time). See tail_rows().
inline constexpr unsigned kMaxTailRows = 5;

struct TailShape {
  alignas(16) std::uint8_t low[2][kMaxTailRows * 16];   // low + 0x80
  alignas(16) std::uint8_t span[2][kMaxTailRows * 16];  // span ^ 0x80
  std::uint64_t key;     // the kernel's key of the lines it proves; 0 (even): none yet
  std::uint64_t length;  // the tail's bytes before its newline
};
// Two candidate places per key (cuckoo hashing, see place()).
inline constexpr unsigned kShapeBits = 7;
struct ShapeCache {
  TailShape shapes[1u << kShapeBits];
  unsigned placed;  // shapes placed since the cache was last emptied
  std::uint64_t known_lines;  // lines proven by a known shape (known_tail_shape_lines())
};
// Per thread: decoders run on several threads at once. constinit and zeroed, so that
// reaching it from any file costs no initialisation check or call, and static, so that
// decoding never allocates (the decoder's contract, allocation_test.cpp). It makes
// every thread's TLS 43 KiB larger, zero pages until the thread decodes; no thread of
// ours runs on a small stack. Defined in scan_portable.cpp.
extern constinit thread_local ShapeCache g_shapes;

namespace {

inline constexpr unsigned tail_rows(bool ipv6) { return ipv6 ? 4 : 5; }

// --- The prefix's templates -----------------------------------------------------------

constexpr std::size_t kTemplateRows = 8;
struct Template {
  alignas(64) std::uint8_t low[2][kTemplateRows * 16];  // low + 0x80
  alignas(64) std::uint8_t span[2][kTemplateRows * 16];  // span ^ 0x80
  unsigned rows;
};

// The prefix from the line's first byte, for each slot width: the slot's columns (a
// space or a digit for the three before the last of a four-column slot, which must be a
// digit; digits only in wider slots, as "%4d" prints them), then the pattern; any byte
// after it.
template <std::size_t N>
constexpr Template make_line_template(const char (&pattern)[N], unsigned shift) {
  Template t{};
  const std::size_t length = N - 1 + shift;
  static_assert(N - 1 + kMaxSlotShift <= kTemplateRows * 16);
  for (std::size_t at = 0; at < kTemplateRows * 16; ++at) {
    std::uint8_t low[2] = {0, 0};
    std::uint8_t span[2] = {0xFF, 0xFF};
    const char c = at >= length ? '\0' : (at < 4 + shift ? 'd' : pattern[at - shift]);
    if (c == 'd' && shift == 0 && at < 3) {
      low[0] = ' ';
      span[0] = 0;
      low[1] = '0';
      span[1] = 9;
    } else if (c == 'd') {
      low[0] = low[1] = '0';
      span[0] = span[1] = 9;
    } else if (c == 'H') {
      low[0] = '0';
      span[0] = 9;
      low[1] = 'A';
      span[1] = 5;
    } else if (c != '\0') {
      low[0] = low[1] = static_cast<std::uint8_t>(c);
      span[0] = span[1] = 0;
    }
    for (int k = 0; k < 2; ++k) {
      t.low[k][at] = static_cast<std::uint8_t>(low[k] + 0x80);
      t.span[k][at] = static_cast<std::uint8_t>(span[k] ^ 0x80);
    }
  }
  t.rows = static_cast<unsigned>((length + 15) / 16);
  return t;
}
template <std::size_t N, std::size_t... Shift>
constexpr std::array<Template, sizeof...(Shift)> make_line_templates(const char (&pattern)[N],
                                                                      std::index_sequence<Shift...>) {
  return {make_line_template(pattern, Shift)...};
}
constexpr auto kIpv4Lines = make_line_templates(kIpv4Pattern, std::make_index_sequence<kMaxSlotShift + 1>{});
constexpr auto kIpv6Lines = make_line_templates(kIpv6Pattern, std::make_index_sequence<kMaxSlotShift + 1>{});
static_assert(kIpv6Lines[kMaxSlotShift].rows == kTemplateRows && kIpv4Lines[kMaxSlotShift].rows == 5);
inline const Template& line_template(bool ipv6, unsigned shift) { return (ipv6 ? kIpv6Lines : kIpv4Lines)[shift]; }

// The prefix's rows and the tail's window lie inside the read-ahead, and a known line
// is never longer than a line the parser takes.
static_assert(kTemplateRows * 16 <= kReadAhead);
static_assert(kIpv6.prefix + kMaxSlotShift + 16 * tail_rows(true) <= kReadAhead &&
              kIpv4.prefix + kMaxSlotShift + 16 * tail_rows(false) <= kReadAhead);
static_assert(kIpv6.prefix + kMaxSlotShift + 16 * tail_rows(true) < kScanMaxLine &&
              kIpv4.prefix + kMaxSlotShift + 16 * tail_rows(false) < kScanMaxLine);

// Whether a slot's spaces do not all come before its digits (the templates let each of
// a four-column slot's first three be either). A space is 0x20 and a digit 0x3X: bit 4
// tells them apart, and the spaces must be the low bytes of the word.
inline bool slot_spaces_fail(const char* line) {
  std::uint32_t slot;
  std::memcpy(&slot, line, 4);
  // Bit 0 of each byte: whether it is a space; times 0xFF, the space's byte.
  const std::uint32_t space_bytes = ((~slot >> 4) & 0x01010101u) * 0xFFu;
  return (space_bytes & (space_bytes + 1)) != 0;
}

// --- The cache ------------------------------------------------------------------------

inline TailShape& first_place(std::uint64_t key) { return g_shapes.shapes[key >> (64 - kShapeBits)]; }
inline TailShape& second_place(std::uint64_t key) {
  return g_shapes.shapes[(key >> (64 - 2 * kShapeBits)) & ((1u << kShapeBits) - 1)];
}

// The known shape of a tail with key `key`, if any (nullptr), and where its newline
// is. The next line's start waits on the length, so both places' lengths are read at
// once and one chosen, rather than the length read from the place found after its key
// (the portable kernel's profile put a quarter of its time on the key's hashing and
// look-up, waiting). GCC branches on which place holds the key; most shapes lie in
// their first (place() fills it first) and the branch is predicted: a select with a
// mask instead measured slower (bench_proc_net_tcp's generated 1M tcp6 lines, portable:
// 19.4 ns a line against 17.3).
struct KnownTail {
  const TailShape* shape;
  std::uint64_t length;
};
//
// Keys are hashes: a shape found is only a candidate, which the caller's template check
// decides. That check covers `rows` of the tail, so a shape whose newline lies past
// them is no candidate: its newline and the bytes before it would go unchecked. (One
// thread counts tcp and then tcp6, and a tcp4 shape may end past a tcp6 window.)
[[gnu::always_inline]] inline KnownTail find_shape(std::uint64_t key, unsigned rows) {
  const TailShape& first = first_place(key);
  const TailShape& second = second_place(key);
  const bool in_first = first.key == key;
  const std::uint64_t length = in_first ? first.length : second.length;
  const TailShape* found = in_first ? &first : &second;
  if (found->key != key || length >= 16 * rows) return {nullptr, 0};
  return {found, length};
}

// Puts a shape in one of its key's two places (cuckoo hashing): a free one, else the
// first, whose shape moves to its own other place, and so on for a few moves; the shape
// still without a place at the end is forgotten (it is learned again when met). With
// one place per key, shapes whose places collided evicted each other line after line:
// bench_proc_net_tcp's generated tables have some 40 shapes in steady use, and
// relearning them took 5 % of the portable kernel's time.
//
// Nothing records which shapes are in use (that would cost a store per line), so the
// cache is emptied once as many shapes have been placed as it has places: shapes met
// once (the first thousand lines' slot paddings, a table's odd line) do not fill it for
// good, and the shapes in use are learned again within a few lines.
inline void place(TailShape shape) {
  if (++g_shapes.placed > std::size(g_shapes.shapes)) {
    std::memset(g_shapes.shapes, 0, sizeof g_shapes.shapes);
    g_shapes.placed = 1;
  }
  TailShape* at = &first_place(shape.key);
  if (at->key != 0 && at->key != shape.key) {
    TailShape* other = &second_place(shape.key);
    if (other->key == 0 || other->key == shape.key) at = other;
  }
  for (int moves = 0; moves < 8; ++moves) {
    const TailShape evicted = *at;
    *at = shape;
    if (evicted.key == 0 || evicted.key == shape.key) return;
    shape = evicted;
    TailShape* first = &first_place(shape.key);
    at = at == first ? &second_place(shape.key) : first;
  }
}

// Makes the shape of a tail judge() proved known: its key `key` (the kernel's, of the
// tail's bytes), its newline `length` bytes on, its window's spaces `space`; the
// template follows judge()'s rules (see above). A tail whose newline lies past the
// `rows` the kernel checks is not learned.
inline void learn_shape(std::uint64_t key, std::uint64_t space, unsigned length, unsigned rows) {
  if (length >= 16 * rows) return;
  const std::uint64_t valid = low_bits(length);
  space &= valid;
  const std::uint64_t field = valid & ~space;
  const std::uint64_t starts = field & ~(field << 1);
  const unsigned count = bit_count(starts);
  if (count != 5 && count != 10) return;  // not a shape judge() proves
  std::uint64_t rest = starts;
  for (int k = 0; k < 4; ++k) rest &= rest - 1;
  const std::uint64_t fifth = rest & (0 - rest);
  const auto end_of = [&](std::uint64_t start) {
    const std::uint64_t after = ~field & ~(start - 1);
    return after & (0 - after);
  };
  const std::uint64_t pointer = end_of(fifth) - fifth;
  const std::uint64_t last = std::uint64_t{1} << highest(starts);
  const std::uint64_t last_field = end_of(last) - last;
  const bool signed_last = count == 10 && bit_count(last_field) >= 2;

  const TailShape& first = first_place(key);
  const TailShape& second = second_place(key);
  if ((first.key == key && first.length == length) || (second.key == key && second.length == length)) return;
  TailShape shape{};
  for (unsigned at = 0; at < 16 * kMaxTailRows; ++at) {
    const std::uint64_t bit = at < 64 ? std::uint64_t{1} << at : 0;
    std::uint8_t low[2] = {0, 0};
    std::uint8_t span[2] = {0, 0};
    if (at > length) {
      span[0] = span[1] = 0xFF;  // the next line's: any byte
    } else if (at == length) {
      low[0] = low[1] = '\n';
    } else if (at >= 64 || (space & bit) != 0) {
      low[0] = low[1] = ' ';  // past the window, judge()'s caller proved padding
    } else if ((pointer & bit) != 0) {
      low[0] = '0';
      span[0] = 9;
      low[1] = 'a';
      span[1] = 5;
    } else if (signed_last && bit == last) {
      low[0] = '0';
      span[0] = 9;
      low[1] = '-';
    } else {
      low[0] = low[1] = '0';
      span[0] = span[1] = 9;
    }
    for (int k = 0; k < 2; ++k) {
      shape.low[k][at] = static_cast<std::uint8_t>(low[k] + 0x80);
      shape.span[k][at] = static_cast<std::uint8_t>(span[k] ^ 0x80);
    }
  }
  shape.key = key;
  shape.length = length;
  place(shape);
}

// A line stage A proved whole: recorded as lane i with its port and state, which stage B
// keeps.
[[gnu::always_inline]] inline void record_known_line(Batch& batch, int i, const Family& family, const char* line,
                                                     const char* newline, unsigned shift, std::uint32_t state) {
  batch.port[i] = hex4(line + family.port_at + shift);
  batch.state[i] = state;
  batch.begin[i] = line;
  batch.newline[i] = newline;
  batch.prefix[i] = static_cast<std::uint8_t>(family.prefix + shift);
  batch.tail_proven[i] = 1;
}

}  // namespace
}  // namespace skopos::tracker::detail
