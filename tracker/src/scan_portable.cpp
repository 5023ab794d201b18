// The portable scan kernel: what arm64 and x86 CPUs without AVX2 run. No instruction
// set's intrinsics: stage A is written over 16-byte generic vectors (GCC's and Clang's
// vector extensions, which every target lowers to its own baseline: SSE2 on x86_64,
// NEON on arm64, plain words elsewhere) and 64-bit words, checking each line against
// the fixed offsets of the kernel's format. Stages B and C are the SIMD kernels' own
// (scan_kernel_impl.h), stage B two lines at a time in 64-bit words, so every kernel
// proves lines by the same rules and hands the same lines to the full parser. When
// counting, a line of a known shape is proven whole in stage A (scan_known_shapes.h).
#include <bit>

#include "scan_kernel_impl.h"
#include "scan_known_shapes.h"

namespace skopos::tracker::detail {

constinit thread_local ShapeCache g_shapes{};

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

// Checking a row of a template (scan_known_shapes.h) costs two subtractions, two signed
// comparisons and two logic operations. The profile put the earlier form, a class per
// position (hex or fixed) and an exact byte, at a quarter of the portable kernel's time;
// the unsigned compares that followed cost two instructions each on SSE2 (a minimum,
// then an equality).
inline V16 row(const std::uint8_t* bytes, unsigned r) {
  V16 v;
  std::memcpy(&v, bytes + 16 * r, sizeof v);
  return v;
}
template <std::size_t N>
[[gnu::always_inline]] inline V16 row_fails(V16 x, const std::uint8_t (&low)[2][N], const std::uint8_t (&span)[2][N],
                                            unsigned r) {
  const auto outside = [&](int k) {
    return bytes_of(std::bit_cast<S16>(static_cast<V16>(x - row(low[k], r))) > std::bit_cast<S16>(row(span[k], r)));
  };
  return outside(0) & outside(1);
}

// Whether the prefix of a line with a slot `shift` columns wider than four, its slot's
// columns included, fails its template (scan_known_shapes.h). The row count is a
// constant, but GCC 12 kept the loop rolled, loading each template row through a
// pointer it stepped (the profile of commit 927ce2a); "#pragma GCC unroll" unrolls it,
// and the rows become memory operands at fixed addresses.
template <const Family& family>
[[gnu::always_inline]] inline bool prefix_fails(const char* line, unsigned shift) {
  const Template& t = line_template(&family == &kIpv6, shift);
  V16 fails{};
  // The widest slot's row count, a constant for every width: rows past a narrower
  // slot's prefix take any byte.
  constexpr unsigned rows = (&family == &kIpv6 ? kIpv6Lines : kIpv4Lines)[kMaxSlotShift].rows;
#pragma GCC unroll 8
  for (unsigned r = 0; r < rows; ++r) fails |= row_fails(load16(line + 16 * r), t.low, t.span, r);
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
  [[gnu::always_inline]] static const char* examine(const char* line, const Family& family, Batch& batch, int i,
                                                    unsigned& shift) {
    // The newline, where kernel-printed lines end: [128, 192) from the start. memchr,
    // which every C library tunes for its CPU, measured faster here than generic
    // vectors, whose comparison results cost a multiply per 8 bytes to turn into bits.
    const auto* newline = static_cast<const char*>(std::memchr(line + kNewlineWindow, '\n', 64));
    if (newline == nullptr) return nullptr;

    const Slot slot = read_slot(line);
    std::uint64_t problems = take_slot_width(slot.colon, shift) | slot.problems;

    // The prefix against the template of the slot width the colon says.
    problems |= &family == &kIpv6 ? prefix_fails<kIpv6>(line, shift) : prefix_fails<kIpv4>(line, shift);

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

    record_line(batch, i, family, line, newline, shift,
                {space, valid & ~(space | lower | minus) /* `other` was checked empty */, lower, minus, length,
                 problems, slot.colon, slot.spaces});
    return newline;
  }
};

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
  // The row count too: tcp and tcp6 tails that look alike keep apart (find_shape()
  // refuses the other family's longer shapes, but they would evict each other).
  return ((words[0] ^ std::rotl(words[1], 29) ^ rows) * 0x9E3779B97F4A7C15ULL) | 1;
}
template <unsigned rows>
[[gnu::always_inline]] inline void load_tail(const char* tail, V16 (&x)[rows]) {
#pragma GCC unroll 5
  for (unsigned r = 0; r < rows; ++r) x[r] = load16(tail + 16 * r);
}
// Learns the shape of a tail judge() proved (learn_shape()), under this kernel's key.
template <unsigned rows>
void learn_tail(const char* tail, std::uint64_t space, unsigned length) {
  V16 x[rows];
  load_tail<rows>(tail, x);
  learn_shape(tail_key<rows>(x), space, length, rows);
}

// The known shape of the tail at `tail` (find_shape()), with the bytes that fail its
// template added to `fails`.
template <unsigned rows>
[[gnu::always_inline]] inline KnownTail known_shape(const char* tail, V16& fails) {
  V16 x[rows];
  load_tail<rows>(tail, x);
  const KnownTail known = find_shape(tail_key<rows>(x), rows);
  if (known.shape == nullptr) return known;
#pragma GCC unroll 5
  for (unsigned r = 0; r < rows; ++r) fails |= row_fails(x[r], known.shape->low, known.shape->span, r);
  return known;
}

// PortableStage, out of line: the known-shape stage's rare way (a line of a new shape),
// kept out of its loop.
template <const Family& family>
[[gnu::noinline]] const char* examine_unknown(const char* line, Batch& batch, int i, unsigned& shift) {
  return PortableStage::examine(line, family, batch, i, shift);
}

// Stage A for counting: the whole line against its slot width's prefix and a known
// tail shape when there is one, recorded as proven with its port and state; else
// PortableStage's classes for judge() (which then teaches the shape, judge_pairs).
struct KnownShapeStage {
  [[gnu::always_inline]] static const char* examine(const char* line, const Family& family, Batch& batch, int i,
                                                    unsigned& shift) {
    const bool ipv6 = &family == &kIpv6;
    const char* tail = line + family.prefix + shift;
    constexpr unsigned kRowsV6 = tail_rows(true);
    constexpr unsigned kRowsV4 = tail_rows(false);
    V16 fails{};
    const KnownTail known = ipv6 ? known_shape<kRowsV6>(tail, fails) : known_shape<kRowsV4>(tail, fails);
    const auto unknown = [&] {
      // A copy of the slot width, so that only the copy's address leaves for the call.
      unsigned width = shift;
      const char* newline =
          ipv6 ? examine_unknown<kIpv6>(line, batch, i, width) : examine_unknown<kIpv4>(line, batch, i, width);
      shift = width;
      return newline;
    };
    if (known.shape == nullptr) return unknown();
    // The prefix's template lets each of a four-column slot's first three columns be a
    // space or a digit: its spaces must come first.
    const bool head_fails = (ipv6 ? prefix_fails<kIpv6>(line, shift) : prefix_fails<kIpv4>(line, shift)) ||
                            slot_spaces_fail(line);
    const std::uint32_t state = hex2(line + family.state_at + shift);
    if (any(fails) || head_fails || state - 1 > 12) return unknown();

    const char* newline = tail + known.length;
    record_known_line(batch, i, family, line, newline, shift, state);
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
[[gnu::always_inline]] inline unsigned judge_all_pairs(Batch& batch) {
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
    // A batch's unused lines have defined contents (examine_batch), so the pair past an odd
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
    g_shapes.known_lines += bit_count(known_all & ok);
    for (unsigned rest = judged & ok; rest != 0; rest &= rest - 1) {
      const unsigned i = lowest(rest);
      const char* tail = batch.begin[i] + batch.prefix[i];
      const auto length = static_cast<unsigned>(batch.newline[i] - tail);
      if (batch.prefix[i] >= kIpv6.prefix) {
        learn_tail<tail_rows(true)>(tail, batch.space[i], length);
      } else {
        learn_tail<tail_rows(false)>(tail, batch.space[i], length);
      }
    }
  }
  return ok;
}

// judge_all_pairs<true>, out of line: counting's way for a batch with a line of a new
// shape (rare once the shapes are known), kept out of the loop, as examine_unknown().
[[gnu::noinline]] unsigned judge_learning(Batch& batch) { return judge_all_pairs<true>(batch); }

// Stage B. When counting, a batch stage A proved whole (the common case) needs nothing
// more: eight bytes say so.
template <bool learn>
[[gnu::always_inline]] inline unsigned judge_pairs(Batch& batch) {
  if constexpr (learn) {
    std::uint64_t proven;
    static_assert(sizeof batch.tail_proven == sizeof proven);
    std::memcpy(&proven, batch.tail_proven, sizeof proven);
    const unsigned lines = (1u << batch.size) - 1;
    const std::uint64_t all = batch.size == kBatch ? 0x0101010101010101ULL
                                                   : 0x0101010101010101ULL & ((std::uint64_t{1} << (8 * batch.size)) - 1);
    if (proven == all) {
      g_shapes.known_lines += static_cast<unsigned>(batch.size);
      return lines;
    }
    return judge_learning(batch);
  } else {
    return judge_all_pairs<false>(batch);
  }
}

}  // namespace

std::uint64_t known_tail_lines() { return g_shapes.known_lines; }

ScanProgress count_lines_portable(const char* begin, const char* end, bool ipv6, const CountTarget& target) {
  return count_lines<KnownShapeStage, judge_pairs<true>>(begin, end, ipv6, target);
}

// Records need every line's tail masks (decode_line finds the fields with them), so
// they take PortableStage always.
ScanProgress record_lines_portable(const char* begin, const char* end, bool ipv6, const RecordTarget& target) {
  return record_lines<PortableStage, judge_pairs<false>>(begin, end, ipv6, target);
}

}  // namespace skopos::tracker::detail
