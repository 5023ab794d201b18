// The portable scan kernel: what arm64 and x86 CPUs without AVX2 run. No instruction
// set's intrinsics: stage A is written over 16-byte generic vectors (GCC's and Clang's
// vector extensions, which every target lowers to its own baseline: SSE2 on x86_64,
// NEON on arm64, plain words elsewhere) and 64-bit words, checking each line against
// the fixed offsets of the kernel's format. Stages B and C are the SIMD kernels' own
// (scan_kernel_impl.h), stage B two lines at a time in 64-bit words, so every kernel
// proves lines by the same rules and hands the same lines to the full parser.
#include <bit>

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

// --- Known tail shapes ----------------------------------------------------------------
//
// The tail's field widths repeat from line to line (a host's uids, timeouts, inode and
// rto widths are few), and for one shape -- which of the window's bytes are spaces, and
// where the newline falls -- what judge() accepts of the other bytes is fixed by
// position: a space where the shape has one, a digit in a field, a digit or lowercase
// hex letter in the pointer, and a digit or a minus sign at the start of a full
// socket's ssthresh when a digit follows. So once judge() has proven a line, its shape
// becomes a template of two byte ranges per position (as the prefix's), and a later line
// whose spaces hash to the same shape and whose bytes pass the template is proven
// without its class masks: no gathering of three bit planes in stage A, and only the
// prefix, slot and state in stage B. That is exact by construction: passing the
// template means the same spaces, fields and classes as a line judge() proved, and a
// line that does not pass takes the full path. The profile before (bench_proc_net_tcp,
// portable, 1M tcp6 lines) was flat over ~1,400 instructions, the tail's three planes
// (24 multiplies a line) and judge() the largest parts.
constexpr std::size_t kTailRows = 4;  // the tail's 64-byte window
struct TailShape {
  alignas(16) std::uint8_t low[2][kTailRows * 16];   // low + 0x80, as Template
  alignas(16) std::uint8_t span[2][kTailRows * 16];  // span ^ 0x80
  std::uint64_t key;  // fingerprint() of its spaces and length; 0 (even): none yet
  // The window's bytes before the newline. Compared as well as the fingerprint: past
  // it the template takes any byte, so a line whose newline came later and whose
  // fingerprint collided would have bytes nobody checked.
  std::uint64_t length;
};
constexpr unsigned kShapeBits = 7;
struct ShapeCache {
  TailShape shapes[1u << kShapeBits];
};
// Per thread: decoders run on several threads at once. Zeroed, with no constructor, so
// that reaching it costs no initialisation check, and static, so that decoding never
// allocates (the decoder's contract, allocation_test.cpp). It makes every thread's TLS
// 34 KiB larger, zero pages until the thread decodes; no thread of ours runs on a
// small stack.
thread_local ShapeCache g_shapes;
thread_local std::uint64_t g_known_tail_lines = 0;  // portable_known_tail_lines()

// A fingerprint of the tail's spaces (four 16-byte rows of 0x00 or 0xFF, zero past the
// newline) and of the window's length: words rotated by different amounts and folded
// together, always odd (an empty slot's 0 never matches). Collisions only cost the full
// path: the template decides.
inline std::uint64_t fingerprint(const V16 (&spaces)[4], std::uint64_t length) {
  // The length spread over every bit: the final `| 1` must not merge lengths 2k and
  // 2k + 1 (lines a digit apart, which would then evict each other's shapes).
  std::uint64_t fold = length * 0xC2B2AE3D27D4EB4FULL;
#pragma GCC unroll 4
  for (unsigned r = 0; r < 4; ++r) {
    std::uint64_t words[2];
    std::memcpy(words, &spaces[r], sizeof words);
    fold ^= std::rotl(words[0], static_cast<int>(18 * r + 5)) ^ std::rotl(words[1], static_cast<int>(18 * r + 14));
  }
  return fold | 1;
}
inline TailShape& shape_slot(std::uint64_t key) {
  return g_shapes.shapes[(key * 0x9E3779B97F4A7C15ULL) >> (64 - kShapeBits)];
}

// Makes the shape of a tail judge() proved (its spaces `space`, window length `length`)
// known, with the template judge()'s rules give it (see above).
void learn_shape(std::uint64_t space, std::uint64_t length) {
  const std::uint64_t valid = low_bits(static_cast<unsigned>(length));
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
  V16 spaces[4];
  for (unsigned at = 0; at < 64; ++at) {
    reinterpret_cast<std::uint8_t*>(spaces)[at] = ((space >> at) & 1) != 0 ? 0xFF : 0;
  }
  const std::uint64_t key = fingerprint(spaces, length);
  TailShape& slot = shape_slot(key);
  if (slot.key == key && slot.length == length) return;  // known already
  TailShape shape{};
  for (unsigned at = 0; at < 64; ++at) {
    const std::uint64_t bit = std::uint64_t{1} << at;
    std::uint8_t low[2];
    std::uint8_t span[2];
    if ((valid & bit) == 0) {
      low[0] = low[1] = 0;
      span[0] = span[1] = 0xFF;
    } else if ((space & bit) != 0) {
      low[0] = low[1] = ' ';
      span[0] = span[1] = 0;
    } else if ((pointer & bit) != 0) {
      low[0] = '0';
      span[0] = 9;
      low[1] = 'a';
      span[1] = 5;
    } else if (signed_last && bit == last) {
      low[0] = '0';
      span[0] = 9;
      low[1] = '-';
      span[1] = 0;
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
  slot = shape;
}

// Stage A for counting: the tail against a known shape when there is one, else
// PortableStage's classes for judge() (which then teaches the shape, judge_pairs).
struct KnownShapeStage {
  [[gnu::always_inline]] static const char* examine(const char* line, const Family& family, Batch& batch,
                                                    unsigned& shift) {
    const auto* newline = static_cast<const char*>(std::memchr(line + kNewlineWindow, '\n', 64));
    if (newline == nullptr) return nullptr;
    const unsigned prefix = family.prefix + shift;
    const char* tail = line + prefix;
    const auto tail_length = static_cast<unsigned>(newline - tail);
    const unsigned length = tail_length < 64 ? tail_length : 64;
    V16 rows[4];
    V16 spaces[4];
#pragma GCC unroll 4
    for (unsigned r = 0; r < 4; ++r) {
      rows[r] = load16(tail + 16 * r);
      spaces[r] = equal(rows[r], ' ') & load16(kBeforeNewline + 64 - length + 16 * r);
    }
    const std::uint64_t key = fingerprint(spaces, length);
    const TailShape& shape = shape_slot(key);
    if (shape.key != key || shape.length != length) return PortableStage::examine(line, family, batch, shift);
    V16 fails{};
#pragma GCC unroll 4
    for (unsigned r = 0; r < 4; ++r) fails |= row_fails(rows[r], shape.low, shape.span, r);
    if (any(fails)) return PortableStage::examine(line, family, batch, shift);

    // The slot and the prefix, as PortableStage does (the tail was read for the slot
    // width predicted: a line whose colon says otherwise takes the full path).
    const Slot slot = read_slot(line);
    if (slot.colon != 4 + shift) return PortableStage::examine(line, family, batch, shift);
    std::uint64_t problems = slot.problems;
    const char* from = line + 4 + shift;
    problems |= &family == &kIpv6 ? prefix_fails<kIpv6Template>(from) : prefix_fails<kIpv4Template>(from);
    if (tail_length > 64) problems |= padding_fails(tail, tail_length);
    record_line(batch, family, line, newline, shift, {0, 0, 0, 0, length, problems, slot.colon, slot.spaces});
    batch.tail_proven[batch.size - 1] = 1;
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

// Stage B, two lines at a time. Returns bit i set for each proven line i. With
// `learn`, the shapes of the tails it proves become known (KnownShapeStage).
template <bool learn>
[[gnu::always_inline]] inline unsigned judge_pairs(Batch& batch) {
  unsigned ok = 0;
  unsigned judged = 0;    // lines whose tails judge() proved (not KnownShapeStage)
  [[maybe_unused]] unsigned known_all = 0;  // lines whose tails KnownShapeStage proved
  for (int i = 0; i < batch.size; i += 2) {
    // A batch's unused lines have defined contents (scan_lines), so the pair past an odd
    // size is judged harmlessly and masked off below.
    const auto pair = [&](const std::uint64_t* field) { return Pair{field[i], field[i + 1]}; };
    const unsigned known = unsigned{batch.tail_proven[i]} | (unsigned{batch.tail_proven[i + 1]} << 1);
    known_all |= known << i;
    if (known == 3) {
      const Head<Pair> head = judge_head(pair(batch.problems), pair(batch.colon), pair(batch.slot_spaces),
                                         pair(batch.port_chars), pair(batch.state_chars));
      ok |= head_ok(head) << i;
      batch.port[i] = head.port.a;
      batch.port[i + 1] = head.port.b;
      batch.state[i] = head.state.a;
      batch.state[i + 1] = head.state.b;
      continue;
    }
    const Judged<Pair> lines = judge(pair(batch.space), pair(batch.digit), pair(batch.lower), pair(batch.minus),
                                     pair(batch.length), pair(batch.problems), pair(batch.colon),
                                     pair(batch.slot_spaces), pair(batch.port_chars), pair(batch.state_chars));
    unsigned pair_ok = lines.ok;
    if (known != 0) {
      // One known tail beside one judged: the known one needs only its head.
      const Head<Pair> head = judge_head(pair(batch.problems), pair(batch.colon), pair(batch.slot_spaces),
                                         pair(batch.port_chars), pair(batch.state_chars));
      pair_ok = (pair_ok & ~known) | (head_ok(head) & known);
    }
    ok |= pair_ok << i;
    judged |= (lines.ok & ~known) << i;
    batch.port[i] = lines.port.a;
    batch.port[i + 1] = lines.port.b;
    batch.state[i] = lines.state.a;
    batch.state[i + 1] = lines.state.b;
  }
  ok &= (1u << batch.size) - 1;
  if constexpr (learn) {
    g_known_tail_lines += bit_count(known_all & ok);
    for (unsigned rest = judged & ok; rest != 0; rest &= rest - 1) {
      const unsigned i = lowest(rest);
      learn_shape(batch.space[i], batch.length[i]);
    }
  }
  return ok;
}

}  // namespace

std::uint64_t portable_known_tail_lines() { return g_known_tail_lines; }

ScanProgress count_lines_portable(const char* begin, const char* end, bool ipv6, const CountTarget& target) {
  return count_lines<KnownShapeStage, judge_pairs<true>>(begin, end, ipv6, target);
}

// Records need every line's tail masks (decode_line finds the fields with them), so
// they take PortableStage always.
ScanProgress record_lines_portable(const char* begin, const char* end, bool ipv6, const RecordTarget& target) {
  return record_lines<PortableStage, judge_pairs<false>>(begin, end, ipv6, target);
}

}  // namespace skopos::tracker::detail
