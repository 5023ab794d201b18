// The portable scan kernel: what arm64 and x86 CPUs without AVX2 run. No instruction
// set's intrinsics: stage A is written over 16-byte generic vectors (GCC's and Clang's
// vector extensions, which every target lowers to its own baseline: SSE2 on x86_64,
// NEON on arm64, plain words elsewhere) and 64-bit words, checking each line against
// the fixed offsets of the kernel's format. Stages B and C are the SIMD kernels' own
// (scan_kernel_impl.h), stage B two lines at a time in 64-bit words, so every kernel
// proves lines by the same rules and hands the same lines to the full parser.
#include <array>
#include <bit>
#include <utility>

#include "scan_kernel_impl.h"

namespace skopos::tracker::detail {
namespace {

using V16 = std::uint8_t __attribute__((vector_size(16)));

inline V16 load16(const char* p) {
  V16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline V16 splat(std::uint8_t b) { return V16{} + b; }
// A comparison's result (a vector of 0 or -1 per byte, signed) as bytes of 0x00 or 0xFF.
template <class Compared>
inline V16 bytes_of(Compared compared) {
  return std::bit_cast<V16>(compared);
}
// Signed bytes: the targets compare them in one instruction (pcmpgtb, cmgt), where an
// unsigned compare takes two or three (a minimum or saturating subtraction, then an
// equality). An unsigned a < b is the signed (a ^ 0x80) < (b ^ 0x80).
using S16 = std::int8_t __attribute__((vector_size(16)));
inline V16 in_range(V16 x, std::uint8_t low, std::uint8_t count) {
  // x - low < count, unsigned: (x - low - 0x80) < count - 0x80, signed.
  return bytes_of(std::bit_cast<S16>(x - splat(static_cast<std::uint8_t>(low + 0x80))) <
                  std::bit_cast<S16>(splat(static_cast<std::uint8_t>(count ^ 0x80))));
}
inline V16 equal(V16 x, std::uint8_t b) { return bytes_of(x == splat(b)); }

// Bit i set for each byte i of `mask` (0x00 or 0xFF bytes) that is set, for the bytes
// at `bit` (0x80 for all of a 0xFF byte, or one plane of a byte holding several masks).
// The multiply gathers the eight chosen bits of a word into its top byte: the bit of
// byte i moves up by 7 * (7 - i), and no two products overlap.
inline std::uint64_t gather8(std::uint64_t word) { return (word * 0x0002040810204081ULL) >> 56; }
inline std::uint32_t bits16(V16 mask, std::uint8_t bit) {
  std::uint64_t words[2];
  std::memcpy(words, &mask, sizeof words);
  const int up = std::countl_zero(bit);  // moves the plane's bit to bit 7
  const std::uint64_t high = 0x8080808080808080ULL;
  return static_cast<std::uint32_t>(gather8((words[0] << up) & high) | (gather8((words[1] << up) & high) << 8));
}
inline bool any(V16 mask) {
  std::uint64_t words[2];
  std::memcpy(words, &mask, sizeof words);
  return (words[0] | words[1]) != 0;
}

// The prefix after the slot, from its colon on, as two byte ranges per position: a byte
// passes when it lies in [low, low + span] of either. An uppercase hex digit is '0'+9 or
// 'A'+5, a fixed byte is itself twice, and a position past the prefix takes any byte.
// Checking a row costs two subtractions, two signed comparisons and two logic
// operations: the table holds low + 0x80 and span ^ 0x80, so that x - low > span
// (unsigned: the byte is outside) is one signed compare of x - (low + 0x80) with
// span ^ 0x80. The profile put the earlier form, a class per position (hex or fixed) and
// an exact byte, at a quarter of the portable kernel's time; the unsigned compares that
// followed cost two instructions each on SSE2 (a minimum, then an equality).
constexpr std::size_t kTemplateRows = 8;
struct Template {
  alignas(16) std::uint8_t low[2][kTemplateRows * 16];   // low + 0x80
  alignas(16) std::uint8_t span[2][kTemplateRows * 16];  // span ^ 0x80
  unsigned rows;
};

template <std::size_t N>
constexpr Template make_template(const char (&pattern)[N]) {
  Template t{};
  static_assert(N - 1 - 4 <= kTemplateRows * 16);
  for (std::size_t at = 0; at < kTemplateRows * 16; ++at) {
    const std::size_t i = at + 4;  // after "dddd"
    std::uint8_t low[2] = {0, 0};
    std::uint8_t span[2] = {0, 0};
    if (i >= N - 1) {
      span[0] = span[1] = 0xFF;
    } else if (pattern[i] == 'H') {
      low[0] = '0';
      span[0] = 9;
      low[1] = 'A';
      span[1] = 5;
    } else {
      low[0] = low[1] = static_cast<std::uint8_t>(pattern[i]);
    }
    for (int k = 0; k < 2; ++k) {
      t.low[k][at] = static_cast<std::uint8_t>(low[k] + 0x80);
      t.span[k][at] = static_cast<std::uint8_t>(span[k] ^ 0x80);
    }
  }
  t.rows = static_cast<unsigned>((N - 1 - 4 + 15) / 16);
  return t;
}
constexpr Template kIpv4Template = make_template(kIpv4Pattern);
constexpr Template kIpv6Template = make_template(kIpv6Pattern);
static_assert(kIpv6Template.rows == kTemplateRows);
// The rows start at the colon, at most 8 bytes in; the tail window and what lies past it
// end before 256.
static_assert(8 + kTemplateRows * 16 <= kReadAhead);

inline V16 row(const std::uint8_t* bytes, unsigned r) {
  V16 v;
  std::memcpy(&v, bytes + 16 * r, sizeof v);
  return v;
}

// Whether every byte of the prefix from `from` on passes its template. The row count is
// a constant, but GCC 12 kept the loop rolled, loading each template row through a
// pointer it stepped (the profile of commit 927ce2a); "#pragma GCC unroll" unrolls it,
// and the rows become memory operands at fixed addresses.
// Row r's bytes of `x` that lie in neither of their two ranges (0xFF each), for a
// template's rows `low` and `span` (two each, as Template holds them).
template <std::size_t N>
[[gnu::always_inline]] inline V16 row_fails(V16 x, const std::uint8_t (&low)[2][N], const std::uint8_t (&span)[2][N],
                                            unsigned r) {
  const auto outside = [&](int k) {
    return bytes_of(std::bit_cast<S16>(static_cast<V16>(x - row(low[k], r))) > std::bit_cast<S16>(row(span[k], r)));
  };
  return outside(0) & outside(1);
}

template <const Template& t>
[[gnu::always_inline]] inline bool prefix_fails(const char* from) {
  V16 fails{};
#pragma GCC unroll 8
  for (unsigned r = 0; r < t.rows; ++r) fails |= row_fails(load16(from + 16 * r), t.low, t.span, r);
  return any(fails);
}

// A word's bytes equal to b, as 0x80 in each such byte (exact: no false positives from
// borrows, unlike the shorter zero-byte test).
inline std::uint64_t equal_bytes(std::uint64_t word, std::uint8_t b) {
  const std::uint64_t x = word ^ (0x0101010101010101ULL * b);
  const std::uint64_t low7 = 0x7F7F7F7F7F7F7F7FULL;
  return ~(((x & low7) + low7) | x | low7);
}
// A word's decimal digits, as 0x80 in each.
inline std::uint64_t digit_bytes(std::uint64_t word) {
  const std::uint64_t low7 = 0x7F7F7F7F7F7F7F7FULL;
  const std::uint64_t seven = word & low7;
  const std::uint64_t at_least_0 = seven + 0x5050505050505050ULL;  // 0x30 + 0x50 sets bit 7
  const std::uint64_t above_9 = seven + 0x4646464646464646ULL;     // 0x3A + 0x46 sets bit 7
  return at_least_0 & ~above_9 & ~word & ~low7;
}

// 64 bytes of 0xFF, then 64 of 0: the 16 bytes at kBeforeNewline + 64 - n + i mark
// which of a window's bytes i to i + 15 come before its n-th (n <= 64). One load per
// row instead of comparing the row's positions with n.
struct BeforeNewlineTable {
  alignas(64) char bytes[128];
};
constexpr BeforeNewlineTable make_before_newline() {
  BeforeNewlineTable table{};
  for (int i = 0; i < 64; ++i) table.bytes[i] = static_cast<char>(0xFF);
  return table;
}
constexpr BeforeNewlineTable kBeforeNewlineTable = make_before_newline();
constexpr const char* kBeforeNewline = kBeforeNewlineTable.bytes;

// The slot: up to 8 columns of spaces and digits, then the colon. Its colon's position,
// its spaces, and whether a byte before the colon is neither (the caller checks the
// colon's position against the width it predicted).
struct Slot {
  unsigned colon;
  std::uint64_t spaces;
  std::uint64_t problems;
};
[[gnu::always_inline]] inline Slot read_slot(const char* line) {
  std::uint64_t head;
  std::memcpy(&head, line, 8);
  const std::uint64_t colons = gather8(equal_bytes(head, ':'));
  const unsigned colon = colons != 0 ? lowest(colons) : (line[8] == ':' ? 8u : 63u);
  const std::uint64_t spaces = gather8(equal_bytes(head, ' '));
  return {colon, spaces, ~(spaces | gather8(digit_bytes(head))) & low_bits(colon)};
}

// Whether a byte between the tail's window and the newline (a tail of `tail_length`
// bytes, more than 64) is not a space. newline < line + 192 and the tail starts at or
// after line + 76, so one more window always reaches the newline.
[[gnu::always_inline]] inline bool padding_fails(const char* tail, unsigned tail_length) {
  V16 not_space{};
  for (unsigned r = 0; r < 4; ++r) {
    not_space |= load16(kBeforeNewline + 128 - tail_length + 16 * r) & ~equal(load16(tail + 64 + 16 * r), ' ');
  }
  return any(not_space);
}

struct PortableStage {
  // The contract of stage_a() (scan_kernel_impl.h), the same records for stage B.
  [[gnu::always_inline]] static const char* examine(const char* line, const Family& family, Batch& batch,
                                                    unsigned& shift) {
    // The newline, where kernel-printed lines end: [128, 192) from the start. memchr,
    // which every C library tunes for its CPU, measured faster here than generic
    // vectors, whose comparison results cost a multiply per 8 bytes to turn into bits.
    const auto* newline = static_cast<const char*>(std::memchr(line + kNewlineWindow, '\n', 64));
    if (newline == nullptr) return nullptr;

    const Slot slot = read_slot(line);
    std::uint64_t problems = take_slot_width(slot.colon, shift) | slot.problems;

    // The rest of the prefix against its template.
    const char* from = line + 4 + shift;
    problems |= &family == &kIpv6 ? prefix_fails<kIpv6Template>(from) : prefix_fails<kIpv4Template>(from);

    // The tail: its classes for stage B, and nothing but spaces between the window and
    // the newline.
    const unsigned prefix = family.prefix + shift;
    const char* tail = line + prefix;
    const auto tail_length = static_cast<unsigned>(newline - tail);
    const unsigned length = tail_length < 64 ? tail_length : 64;
    // Minus signs (ssthresh -1, a socket in its first slow start) come in some lines and
    // not others, in no order a predictor learns: their bits are gathered always, with no
    // branch on whether there are any (bench_proc_net_tcp, portable, 1M tcp6 lines: 2.30
    // GB/s with the branch, 2.40 without).
    std::uint64_t space = 0;
    std::uint64_t lower = 0;
    std::uint64_t minus = 0;
    V16 other{};
    // Unrolled like prefix_fails(): rolled, the row's shift by 16 * r was a variable
    // shift and its window a stepped pointer.
#pragma GCC unroll 4
    for (unsigned r = 0; r < 4; ++r) {
      const V16 x = load16(tail + 16 * r);
      const V16 s = equal(x, ' ');
      const V16 l = in_range(x, 'a', 6);
      const V16 m = equal(x, '-');
      other |= load16(kBeforeNewline + 64 - length + 16 * r) & ~(s | l | m | in_range(x, '0', 10));
      const V16 planes = (s & splat(0x80)) | (l & splat(0x40)) | (m & splat(0x20));
      space |= std::uint64_t{bits16(planes, 0x80)} << (16 * r);
      lower |= std::uint64_t{bits16(planes, 0x40)} << (16 * r);
      minus |= std::uint64_t{bits16(planes, 0x20)} << (16 * r);
    }
    problems |= any(other);
    if (tail_length > 64) problems |= padding_fails(tail, tail_length);
    const std::uint64_t valid = low_bits(length);

    record_line(batch, family, line, newline, shift,
                {space, valid & ~(space | lower | minus) /* `other` was checked empty */, lower, minus, length,
                 problems, slot.colon, slot.spaces});
    return newline;
  }
};

// --- Known line shapes -----------------------------------------------------------------
//
// The tail's field widths repeat from line to line (a host's uids, timeouts, inode and
// rto widths are few), and for one shape -- which of the tail's bytes are spaces, and
// where the newline falls -- what judge() accepts of the other bytes is fixed by
// position: a space where the shape has one, a digit in a field, a digit or lowercase
// hex letter in the pointer, and a digit or a minus sign at the start of a full
// socket's ssthresh when a digit follows. So once judge() has proven a line, its tail's
// shape becomes a template of two byte ranges per position (as the prefix's), its
// newline included; and the prefix, the slot's columns included, has one template per
// slot width. A later line whose bytes pass both templates is proven whole in stage A:
// no search for its newline (the shape says where it is), no class masks, no stage B.
// That is exact by construction: passing the templates means the same spaces, fields,
// classes and newline as a line judge() proved, and a line that does not pass takes the
// full path, which then teaches its shape.
//
// The profile of the earlier form (bench_proc_net_tcp, portable, 1M tcp6 lines), which
// learned the tail only and still searched for the newline, read the slot and judged
// the head in stage B, was flat: the template rows a fifth, then the newline search,
// the fingerprint of the spaces, the slot's words, the shape's relearning (5 %: two
// shapes sharing a slot of a direct-mapped cache evicted each other) and stage B.

// The prefix from the line's first byte, for each slot width: the slot's columns (a
// space or a digit for the three before the last of a four-column slot, which must be a
// digit; digits only in wider slots, as "%4d" prints them), then the pattern.
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

// Whether the prefix of a line with a slot `shift` columns wider than four passes its
// template, and its slot's spaces all come before its digits (the template lets each of
// a four-column slot's first three be either). A space is 0x20 and a digit 0x3X: bit 4
// tells them apart, and the spaces must be the low bytes of the word.
template <const Family& family>
[[gnu::always_inline]] inline bool line_prefix_fails(const char* line, unsigned shift) {
  const Template& t = (&family == &kIpv6 ? kIpv6Lines : kIpv4Lines)[shift];
  V16 fails{};
  constexpr unsigned rows = &family == &kIpv6 ? kTemplateRows : 5;
#pragma GCC unroll 8
  for (unsigned r = 0; r < rows; ++r) fails |= row_fails(load16(line + 16 * r), t.low, t.span, r);
  std::uint32_t slot;
  std::memcpy(&slot, line, 4);
  // Bit 0 of each byte: whether it is a space; times 0xFF, the space's byte.
  const std::uint32_t space_bytes = ((~slot >> 4) & 0x01010101u) * 0xFFu;
  return any(fails) || (space_bytes & (space_bytes + 1)) != 0;
}

// The tail's window, for a family: the bytes a known shape covers, the newline included.
// tcp4 pads its lines to 149 columns, so its tails (73 bytes and fewer) take five rows;
// tcp6's unpadded tails are shorter than 64 bytes but where a field is unusually wide.
inline constexpr unsigned tail_rows(bool ipv6) { return ipv6 ? 4 : 5; }
constexpr unsigned kMaxTailRows = 5;
static_assert(kIpv6.prefix + kMaxSlotShift + 16 * tail_rows(true) <= kReadAhead &&
              kIpv4.prefix + kMaxSlotShift + 16 * tail_rows(false) <= kReadAhead);
// A known line is never longer than a line the parser takes.
static_assert(kIpv6.prefix + kMaxSlotShift + 16 * tail_rows(true) < kScanMaxLine);

struct TailShape {
  alignas(16) std::uint8_t low[2][kMaxTailRows * 16];   // low + 0x80, as Template
  alignas(16) std::uint8_t span[2][kMaxTailRows * 16];  // span ^ 0x80
  std::uint64_t key;     // tail_key() of the lines it proves; 0 (even): none yet
  std::uint64_t length;  // the tail's bytes before its newline
};
// Two candidate places per key (a key lives in either, so that two shapes whose first
// places collide do not evict each other line after line, as they did when each key
// had one place).
constexpr unsigned kShapeBits = 7;
struct ShapeCache {
  TailShape shapes[1u << kShapeBits];
  unsigned placed;  // shapes placed since the cache was last emptied
};
// Per thread: decoders run on several threads at once. Zeroed, with no constructor, so
// that reaching it costs no initialisation check, and static, so that decoding never
// allocates (the decoder's contract, allocation_test.cpp). It makes every thread's TLS
// 43 KiB larger, zero pages until the thread decodes; no thread of ours runs on a
// small stack.
thread_local ShapeCache g_shapes;
thread_local std::uint64_t g_known_lines = 0;  // portable_known_tail_lines()

// The key of a tail: which bytes of its window are a space, the newline or another
// byte up to ' ' (bytes past the newline, of the next line, included: the template
// takes any byte there, but they keep apart shapes that differ in nothing but the
// newline's place). Each row's mask is one bit plane of a byte, and the two words are
// folded and mixed; always odd, so that an empty place's 0 never matches. Collisions
// only cost the full path: the templates decide.
template <unsigned rows>
[[gnu::always_inline]] inline std::uint64_t tail_key(const V16 (&x)[rows]) {
  V16 planes{};
#pragma GCC unroll 5
  for (unsigned r = 0; r < rows; ++r) {
    // The bytes above ' ' (signed: 0x80 and up count as below): the same information
    // as those up to it, in one compare (SSE2 has "greater than" only).
    const V16 above_space = bytes_of(std::bit_cast<S16>(x[r]) > std::bit_cast<S16>(splat(' ')));
    planes |= above_space & splat(static_cast<std::uint8_t>(1u << r));
  }
  std::uint64_t words[2];
  std::memcpy(words, &planes, sizeof words);
  return ((words[0] ^ std::rotl(words[1], 29)) * 0x9E3779B97F4A7C15ULL) | 1;
}
inline TailShape& first_place(std::uint64_t key) { return g_shapes.shapes[key >> (64 - kShapeBits)]; }
inline TailShape& second_place(std::uint64_t key) {
  return g_shapes.shapes[(key >> (64 - 2 * kShapeBits)) & ((1u << kShapeBits) - 1)];
}

template <unsigned rows>
[[gnu::always_inline]] inline void load_tail(const char* tail, V16 (&x)[rows]) {
#pragma GCC unroll 5
  for (unsigned r = 0; r < rows; ++r) x[r] = load16(tail + 16 * r);
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
void place(TailShape shape) {
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

// Makes the shape of a tail judge() proved (at `tail`, its newline `length` bytes on,
// its window's spaces `space`) known, with the template judge()'s rules give it (see
// above).
template <unsigned rows>
void learn_shape(const char* tail, std::uint64_t space, unsigned length) {
  if (length >= 16 * rows) return;  // its newline is past what the template covers
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

  V16 x[rows];
  load_tail<rows>(tail, x);
  const std::uint64_t key = tail_key<rows>(x);
  TailShape& first = first_place(key);
  TailShape& second = second_place(key);
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

// The known shape of the tail at `tail`, if any (nullptr), and where its newline is,
// with the bytes that fail its template added to `fails`. The next line's start waits
// on the length, so both places' lengths are read at once and one chosen, rather than
// the length read from the place found after its key (the profile put a quarter of the
// kernel's time on the key's hashing and look-up, waiting). GCC branches on which place
// holds the key; most shapes lie in their first (place() fills it first) and the branch
// is predicted: a select with a mask instead measured slower (bench_proc_net_tcp's
// generated 1M tcp6 lines: 19.4 ns a line against 17.3).
struct KnownTail {
  const TailShape* shape;
  std::uint64_t length;
};
template <unsigned rows>
[[gnu::always_inline]] inline KnownTail known_shape(const char* tail, V16& fails) {
  V16 x[rows];
  load_tail<rows>(tail, x);
  const std::uint64_t key = tail_key<rows>(x);
  const TailShape& first = first_place(key);
  const TailShape& second = second_place(key);
  const bool in_first = first.key == key;
  const std::uint64_t length = in_first ? first.length : second.length;
  const TailShape* found = in_first ? &first : &second;
  if (found->key != key) return {nullptr, 0};
#pragma GCC unroll 5
  for (unsigned r = 0; r < rows; ++r) fails |= row_fails(x[r], found->low, found->span, r);
  return {found, length};
}

// Stage A for counting: the whole line against its slot width's prefix and a known
// tail shape when there is one, recorded as proven with its port and state; else
// PortableStage's classes for judge() (which then teaches the shape, judge_pairs).
struct KnownShapeStage {
  [[gnu::always_inline]] static const char* examine(const char* line, const Family& family, Batch& batch,
                                                    unsigned& shift) {
    const bool ipv6 = &family == &kIpv6;
    const char* tail = line + family.prefix + shift;
    constexpr unsigned kRowsV6 = tail_rows(true);
    constexpr unsigned kRowsV4 = tail_rows(false);
    V16 fails{};
    const KnownTail known = ipv6 ? known_shape<kRowsV6>(tail, fails) : known_shape<kRowsV4>(tail, fails);
    if (known.shape == nullptr) return PortableStage::examine(line, family, batch, shift);
    const bool prefix_fails =
        ipv6 ? line_prefix_fails<kIpv6>(line, shift) : line_prefix_fails<kIpv4>(line, shift);
    const std::uint32_t state = hex2(line + family.state_at + shift);
    if (any(fails) || prefix_fails || state - 1 > 12) return PortableStage::examine(line, family, batch, shift);

    const int i = batch.size++;
    const char* newline = tail + known.length;
    batch.port[i] = hex4(line + family.port_at + shift);
    batch.state[i] = state;
    batch.begin[i] = line;
    batch.newline[i] = newline;
    batch.prefix[i] = static_cast<std::uint8_t>(family.prefix + shift);
    batch.tail_proven[i] = 1;
    return newline;
  }
};

// Two lines' words for judge(), side by side: judge() is a long chain of dependent
// steps (each field start found from the previous one), and one line at a time left the
// CPU waiting on it; two independent chains fill the gaps (bench_proc_net_tcp's portable
// column, one line at a time against this: about a tenth faster). Comparisons
// give bit 0 for the first line and bit 1 for the second, like Lanes4's masks.
struct Pair {
  std::uint64_t a;
  std::uint64_t b;
  static Pair broadcast(std::uint64_t x) { return {x, x}; }
  friend Pair operator&(Pair x, Pair y) { return {x.a & y.a, x.b & y.b}; }
  friend Pair operator|(Pair x, Pair y) { return {x.a | y.a, x.b | y.b}; }
  friend Pair operator~(Pair x) { return {~x.a, ~x.b}; }
  friend Pair operator+(Pair x, Pair y) { return {x.a + y.a, x.b + y.b}; }
  friend Pair operator-(Pair x, Pair y) { return {x.a - y.a, x.b - y.b}; }
  friend Pair operator-(Pair x) { return {0 - x.a, 0 - x.b}; }
  friend Pair operator<<(Pair x, int n) { return {x.a << n, x.b << n}; }
  friend Pair operator>>(Pair x, int n) { return {x.a >> n, x.b >> n}; }
  // Shifts by 64 or more give 0, as judge() relies on.
  friend Pair operator<<(Pair x, Pair n) { return {n.a >= 64 ? 0 : x.a << n.a, n.b >= 64 ? 0 : x.b << n.b}; }
  friend Pair shift_right(Pair x, Pair n) { return {n.a >= 64 ? 0 : x.a >> n.a, n.b >= 64 ? 0 : x.b >> n.b}; }
  friend unsigned operator==(Pair x, Pair y) { return (x.a == y.a ? 1u : 0u) | (x.b == y.b ? 2u : 0u); }
  friend unsigned at_most(Pair x, Pair y) { return (x.a <= y.a ? 1u : 0u) | (x.b <= y.b ? 2u : 0u); }
  friend Pair popcount(Pair x) { return {bit_count(x.a), bit_count(x.b)}; }
  friend Pair highest_bit(Pair x) {
    return {std::uint64_t{1} << highest(x.a | 1), std::uint64_t{1} << highest(x.b | 1)};
  }
  friend Pair select(unsigned condition, Pair x) { return {(condition & 1u) != 0 ? x.a : 0, (condition & 2u) != 0 ? x.b : 0}; }
  friend unsigned is_zero(Pair x) { return (x.a == 0 ? 1u : 0u) | (x.b == 0 ? 2u : 0u); }
};

// Stage B, two lines at a time. Returns bit i set for each proven line i. Lines stage A
// proved whole (KnownShapeStage) are taken as they are; with `learn`, the shapes of the
// tails judge() proves become known.
template <bool learn>
[[gnu::always_inline]] inline unsigned judge_pairs(Batch& batch) {
  unsigned ok = 0;
  unsigned judged = 0;                      // lines judge() proved
  [[maybe_unused]] unsigned known_all = 0;  // lines stage A proved
  for (int i = 0; i < batch.size; i += 2) {
    const unsigned known = unsigned{batch.tail_proven[i]} | (unsigned{batch.tail_proven[i + 1]} << 1);
    known_all |= known << i;
    if (known == 3) {
      ok |= 3u << i;
      continue;
    }
    // A batch's unused lines have defined contents (scan_lines), so the pair past an odd
    // size is judged harmlessly and masked off below. A line stage A proved has no
    // masks recorded: both lanes then judge the other line.
    const int a = (known & 1u) != 0 ? i + 1 : i;
    const int b = (known & 2u) != 0 ? i : i + 1;
    const auto pair = [&](const std::uint64_t* field) { return Pair{field[a], field[b]}; };
    const Judged<Pair> lines = judge(pair(batch.space), pair(batch.digit), pair(batch.lower), pair(batch.minus),
                                     pair(batch.length), pair(batch.problems), pair(batch.colon),
                                     pair(batch.slot_spaces), pair(batch.port_chars), pair(batch.state_chars));
    const unsigned judged_ok = lines.ok & ~known;
    ok |= (judged_ok | known) << i;
    judged |= judged_ok << i;
    if ((known & 1u) == 0) {
      batch.port[i] = lines.port.a;
      batch.state[i] = lines.state.a;
    }
    if ((known & 2u) == 0) {
      batch.port[i + 1] = lines.port.b;
      batch.state[i + 1] = lines.state.b;
    }
  }
  ok &= (1u << batch.size) - 1;
  if constexpr (learn) {
    g_known_lines += bit_count(known_all & ok);
    for (unsigned rest = judged & ok; rest != 0; rest &= rest - 1) {
      const unsigned i = lowest(rest);
      const char* tail = batch.begin[i] + batch.prefix[i];
      const auto length = static_cast<unsigned>(batch.newline[i] - tail);
      if (batch.prefix[i] >= kIpv6.prefix) {
        learn_shape<tail_rows(true)>(tail, batch.space[i], length);
      } else {
        learn_shape<tail_rows(false)>(tail, batch.space[i], length);
      }
    }
  }
  return ok;
}

}  // namespace

std::uint64_t portable_known_tail_lines() { return g_known_lines; }

ScanProgress count_lines_portable(const char* begin, const char* end, bool ipv6, const CountTarget& target) {
  return count_lines<KnownShapeStage, judge_pairs<true>>(begin, end, ipv6, target);
}

// Records need every line's tail masks (decode_line finds the fields with them), so
// they take PortableStage always.
ScanProgress record_lines_portable(const char* begin, const char* end, bool ipv6, const RecordTarget& target) {
  return record_lines<PortableStage, judge_pairs<false>>(begin, end, ipv6, target);
}

}  // namespace skopos::tracker::detail
