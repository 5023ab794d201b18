// The scan kernels for x86_64 with AVX-512 (compiled with -mavx512f -mavx512bw
// -mavx512cd -mavx512vbmi -mavx512vbmi2 -mavx512vpopcntdq and BMI; called only when the
// CPU has them: Ice Lake and Zen 4 onwards). A 64-byte block is one register, vptestmb
// turns a class test straight into a 64-bit mask, and stage B checks eight lines' tails
// at once. See scan_kernel_impl.h.
// GCC 12's AVX-512 headers build some vectors from _mm512_undefined_*() and then warn
// that they are used uninitialized (GCC bug 105593); nothing of ours is.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include "scan_convert_avx2.h"
#include "scan_kernel_impl.h"

namespace skopos::tracker::detail {
namespace {

// The class of every ASCII byte, for vpermt2b: one two-register permute classifies 64
// bytes (AVX-512 VBMI).
struct AsciiClasses {
  std::uint8_t table[128];
};
constexpr AsciiClasses make_ascii_classes() {
  AsciiClasses classes{};
  for (int b = 0; b < 128; ++b) classes.table[b] = kByLowNibble[b & 15] & kByHighNibble[b >> 4];
  return classes;
}
alignas(64) constexpr AsciiClasses kAsciiClasses = make_ascii_classes();

struct Avx512Block {
  __m512i bytes;
  __m512i classes;

  // Bytes >= 0x80 classify as the byte less 0x80: outside_ascii() finds them.
  static Avx512Block load(const char* p) {
    const __m512i bytes = _mm512_loadu_si512(p);
    return {bytes, _mm512_permutex2var_epi8(_mm512_load_si512(kAsciiClasses.table), bytes,
                                            _mm512_load_si512(kAsciiClasses.table + 64))};
  }

  // Positions holding a byte >= 0x80 in any of three blocks: stage A counts them as
  // problems, so a line with one goes to the full parser whatever its classes said. One
  // test for the three blocks, not a mask for each permute: the profile of stage A (Zen 5)
  // showed the six mask instructions per line among its busiest. A byte of the next line
  // in the tail's block counts too, which costs a line the parser decides, never a wrong
  // one.
  static std::uint64_t outside_ascii(const Avx512Block& a, const Avx512Block& b, const Avx512Block& c) {
    return _mm512_movepi8_mask(_mm512_ternarylogic_epi64(a.bytes, b.bytes, c.bytes, 0xFE));
  }

  // Positions of byte c in the 64 raw bytes at p (no classification needed).
  static std::uint64_t equal(const char* p, char c) {
    return _mm512_cmpeq_epi8_mask(_mm512_loadu_si512(p), _mm512_set1_epi8(c));
  }
  static std::uint64_t newlines(const char* p) { return equal(p, '\n'); }

  // Positions of any of the classes kClasses.
  template <std::uint8_t kClasses>
  std::uint64_t has() const {
    return _mm512_test_epi8_mask(classes, _mm512_set1_epi8(static_cast<char>(kClasses)));
  }

  // Positions among the first 32 of any of the classes kClasses.
  template <std::uint8_t kClasses>
  std::uint32_t front_has() const {
    return static_cast<std::uint32_t>(has<kClasses>());
  }

  // Nonzero when a position of the two blocks holds a byte whose class is none of those
  // `allowed` there (128 entries).
  static std::uint64_t refuses(const Avx512Block& head, const Avx512Block& body, const std::uint8_t* allowed) {
    return _kor_mask64(_mm512_testn_epi8_mask(head.classes, _mm512_loadu_si512(allowed)),
                       _mm512_testn_epi8_mask(body.classes, _mm512_loadu_si512(allowed + 64)));
  }
};

// Eight lines' 64-bit words in one register, for judge(): stage B for a whole batch in
// about a hundred instructions instead of eight hundred.
struct Lanes8 {
  __m512i v;
  static Lanes8 broadcast(std::uint64_t x) { return {_mm512_set1_epi64(static_cast<long long>(x))}; }
  static Lanes8 load(const std::uint64_t* p) { return {_mm512_load_si512(p)}; }
  void store(std::uint64_t* p) const { _mm512_store_si512(p, v); }
  friend Lanes8 operator&(Lanes8 a, Lanes8 b) { return {_mm512_and_si512(a.v, b.v)}; }
  friend Lanes8 operator|(Lanes8 a, Lanes8 b) { return {_mm512_or_si512(a.v, b.v)}; }
  friend Lanes8 operator~(Lanes8 a) { return {_mm512_ternarylogic_epi64(a.v, a.v, a.v, 0x55)}; }
  friend Lanes8 operator+(Lanes8 a, Lanes8 b) { return {_mm512_add_epi64(a.v, b.v)}; }
  friend Lanes8 operator-(Lanes8 a, Lanes8 b) { return {_mm512_sub_epi64(a.v, b.v)}; }
  friend Lanes8 operator-(Lanes8 a) { return {_mm512_sub_epi64(_mm512_setzero_si512(), a.v)}; }
  friend Lanes8 operator<<(Lanes8 a, int n) { return {_mm512_slli_epi64(a.v, static_cast<unsigned>(n))}; }
  friend Lanes8 operator>>(Lanes8 a, int n) { return {_mm512_srli_epi64(a.v, static_cast<unsigned>(n))}; }
  // vpsllvq and vpsrlvq give 0 for shifts of 64 or more, which judge() relies on.
  friend Lanes8 operator<<(Lanes8 a, Lanes8 n) { return {_mm512_sllv_epi64(a.v, n.v)}; }
  friend Lanes8 shift_right(Lanes8 a, Lanes8 n) { return {_mm512_srlv_epi64(a.v, n.v)}; }
  friend __mmask8 operator==(Lanes8 a, Lanes8 b) { return _mm512_cmpeq_epi64_mask(a.v, b.v); }
  friend __mmask8 at_most(Lanes8 a, Lanes8 b) { return _mm512_cmple_epu64_mask(a.v, b.v); }
  friend Lanes8 popcount(Lanes8 a) { return {_mm512_popcnt_epi64(a.v)}; }
  friend Lanes8 highest_bit(Lanes8 a) {
    const __m512i zeros = _mm512_lzcnt_epi64(_mm512_or_si512(a.v, _mm512_set1_epi64(1)));
    return {_mm512_sllv_epi64(_mm512_set1_epi64(1), _mm512_sub_epi64(_mm512_set1_epi64(63), zeros))};
  }
  friend Lanes8 select(__mmask8 condition, Lanes8 a) { return {_mm512_maskz_mov_epi64(condition, a.v)}; }
  friend __mmask8 is_zero(Lanes8 a) { return _mm512_testn_epi64_mask(a.v, a.v); }
};

[[gnu::always_inline]] inline unsigned judge_lanes(Batch& batch) {
  const Judged<Lanes8> lines =
      judge(Lanes8::load(batch.space), Lanes8::load(batch.digit), Lanes8::load(batch.lower),
            Lanes8::load(batch.minus), Lanes8::load(batch.length), Lanes8::load(batch.problems),
            Lanes8::load(batch.colon), Lanes8::load(batch.slot_spaces), Lanes8::load(batch.port_chars),
            Lanes8::load(batch.state_chars));
  lines.port.store(batch.port);
  lines.state.store(batch.state);
  return static_cast<unsigned>(lines.ok) & ((1u << batch.size) - 1);
}

// decode_line()'s conversions with AVX-512 VBMI and VBMI2: every field after the
// addresses comes out of two 64-byte registers by byte permutes, eight 8-byte lanes per
// permute, where VectorConvert (the AVX2 kernel's) loads each field's eight bytes by
// itself and finds the tail's fields one bit at a time. The tail's field positions come
// from one compress of their bits each, and a decimal field's digits are told from the
// bytes before it by its first position, not by a chain of shifts. Profile before (Zen 5,
// the record path on 1M tcp6 lines, 30 ns a line): decoding the fields was more than half
// of the decoder's time, led by those per-field loads (vmovq, vpinsrq), the tzcnt/blsr
// walk and the shift chain; after, 25 ns a line.
//
// Every field after the addresses lies within 128 bytes of the remote port's text less
// four (`window` below): the state is five bytes after the port, the tail 42 after the
// state, and a tail field ends at most 63 bytes into the tail.
struct Avx512Convert : VectorConvert {  // whose ipv6() converts the addresses
  // Offsets from the window's start.
  static constexpr int kState = 4 + 5;
  static constexpr int kTail = kState + 42;
  // The remote port is the four hex digits five before the state, the tail starts 42
  // after it, and a tail field's last byte is at most 63 into the tail: inside the
  // window, whose end is inside the kernel's read-ahead even after the widest slot.
  static_assert(kIpv4Pattern[kIpv4.state_at - 6] == ':' && kIpv6Pattern[kIpv6.state_at - 6] == ':');
  static_assert(kIpv4.prefix == kIpv4.state_at + (kTail - kState) &&
                kIpv6.prefix == kIpv6.state_at + (kTail - kState));
  static_assert(kTail + 64 <= 128);
  static_assert(kIpv6.state_at + kMaxSlotShift - kState + 128 <= kReadAhead);

  // A permute index of eight-byte lanes: byte b of lane j is from[j] + step * b.
  static constexpr __m512i lanes(const int (&from)[8], int step) {
    long long words[8] = {};
    for (int j = 0; j < 8; ++j) {
      unsigned long long word = 0;
      for (int b = 0; b < 8; ++b) word |= static_cast<unsigned long long>((from[j] + step * b) & 0xFF) << (8 * b);
      words[j] = static_cast<long long>(word);
    }
    return __m512i{words[0], words[1], words[2], words[3], words[4], words[5], words[6], words[7]};
  }

  // Decimal digits, right-aligned in each 8-byte lane (the lane's last byte is the
  // field's last digit), to numbers: the lane's bytes in `digits` are the field's
  // digits (a minus sign before ssthresh is not one), the others count as 0.
  [[gnu::always_inline]] static __m512i decimal8(__m512i text, __mmask64 digits) {
    const __m512i values = _mm512_maskz_sub_epi8(digits, text, _mm512_set1_epi8('0'));
    // Pairs (10 * first + second), fours (100 * pair + pair), then the eight.
    const __m512i pairs = _mm512_maddubs_epi16(values, _mm512_set1_epi16(0x010A));
    const __m512i fours = _mm512_madd_epi16(pairs, _mm512_set1_epi32(0x00010064));
    return _mm512_add_epi64(_mm512_mul_epu32(fours, _mm512_set1_epi64(10000)), _mm512_srli_epi64(fours, 32));
  }

  // The bytes of decimal fields that a permute index `at` (lanes ending at each field's
  // last byte) reads: those at or after the field's first byte (`first_at`, the window
  // position of each lane's field start) that are digits.
  [[gnu::always_inline]] static __mmask64 field_digits(__m512i text, __m512i at, __m512i first_at) {
    return _mm512_cmpge_epu8_mask(at, first_at) &
           _mm512_cmple_epu8_mask(_mm512_sub_epi8(text, _mm512_set1_epi8('0')), _mm512_set1_epi8(9));
  }

  // Eight hex digits per lane ([0-9A-Fa-f]) to numbers, in each lane's low 32 bits. A
  // lane that ends at a shorter field holds other bytes before it (a space reads as 0, a
  // colon as 19): they change only the bits above the field's own.
  [[gnu::always_inline]] static __m512i hex8(__m512i text) {
    const __m512i nibble = _mm512_and_si512(text, _mm512_set1_epi8(0x0F));
    const __m512i value = _mm512_mask_add_epi8(nibble, _mm512_cmpgt_epi8_mask(text, _mm512_set1_epi8('9')), nibble,
                                               _mm512_set1_epi8(9));
    const __m512i pairs = _mm512_maddubs_epi16(value, _mm512_set1_epi16(0x0110));
    const __m512i fours = _mm512_madd_epi16(pairs, _mm512_set1_epi32(0x00010100));
    return _mm512_add_epi64(_mm512_slli_epi64(fours, 16), _mm512_srli_epi64(fours, 32));
  }

  [[gnu::always_inline]] static void fields(const FieldText& text, LineValues& v) {
    const char* window = text.remote_port - 4;
    const __m512i low = _mm512_loadu_si512(window);
    const __m512i high = _mm512_loadu_si512(window + 64);
    // Byte k: the position in the tail of field k's last byte, and of its first.
    const __m512i iota = _mm512_set_epi8(63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45,
                                         44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 30, 29, 28, 27, 26,
                                         25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6,
                                         5, 4, 3, 2, 1, 0);
    const __m512i lasts = _mm512_maskz_compress_epi8(text.lasts, iota);
    const __m512i firsts = _mm512_maskz_compress_epi8(text.starts, iota);
    alignas(16) std::uint8_t last[16];
    alignas(16) std::uint8_t first[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(last), _mm512_castsi512_si128(lasts));
    _mm_store_si128(reinterpret_cast<__m128i*>(first), _mm512_castsi512_si128(firsts));

    // The eight bytes ending at each decimal field's last byte: uid, probes, the inode's
    // last eight digits and the eight before, refcount, rto, ato, quick; then cwnd and
    // ssthresh. A mini-socket's missing fields read bytes of the window, unused.
    constexpr int kEnd = kTail - 7;
    const __m512i which_a = lanes({0, 1, 2, 2, 3, 5, 6, 7}, 0);
    const __m512i which_b = lanes({8, 9, 8, 9, 8, 9, 8, 9}, 0);
    const __m512i tail_at = _mm512_set1_epi8(kTail);
    const __m512i a_at = _mm512_add_epi8(_mm512_permutexvar_epi8(which_a, lasts),
                                         lanes({kEnd, kEnd, kEnd, kEnd - 8, kEnd, kEnd, kEnd, kEnd}, 1));
    const __m512i b_at = _mm512_add_epi8(_mm512_permutexvar_epi8(which_b, lasts),
                                         lanes({kEnd, kEnd, kEnd, kEnd, kEnd, kEnd, kEnd, kEnd}, 1));
    const __m512i a_text = _mm512_permutex2var_epi8(low, a_at, high);
    const __m512i b_text = _mm512_permutex2var_epi8(low, b_at, high);
    const __mmask64 a_digits =
        field_digits(a_text, a_at, _mm512_add_epi8(_mm512_permutexvar_epi8(which_a, firsts), tail_at));
    const __mmask64 b_digits =
        field_digits(b_text, b_at, _mm512_add_epi8(_mm512_permutexvar_epi8(which_b, firsts), tail_at));
    alignas(64) std::uint64_t a[8];
    alignas(64) std::uint64_t b[8];
    _mm512_store_si512(a, decimal8(a_text, a_digits));
    _mm512_store_si512(b, decimal8(b_text, b_digits));

    const bool full = bit_count(text.starts) == 10;
    // A line with a field of eight or nine digits (judge() allows no more but to the
    // inode), or an inode of sixteen or more -- a lane whose first byte is a digit of its
    // field -- is read field by field: rare (a uid of a user namespace's range), and
    // always right.
    const auto eight_or_more = [](__mmask64 digits) {
      return static_cast<unsigned>(_pext_u64(digits, 0x0101010101010101ULL));
    };
    const unsigned longer = (eight_or_more(a_digits) & (full ? 0b11111011u : 0b00011011u)) |
                            (full ? eight_or_more(b_digits) & 0b11u : 0u);
    if (longer != 0) [[unlikely]] {
      ScalarConvert::fields(text, v);
      return;
    }

    // The hex fields: remote port (the eight bytes ending at it), tx and rx queue, timer
    // (likewise), its expiry, retransmits, and the pointer's two halves.
    const __m512i pointer_lanes =
        _mm512_maskz_permutexvar_epi8(0xFFFF'0000'0000'0000ULL, _mm512_set1_epi8(4), firsts);
    const __m512i h_at = _mm512_add_epi8(
        pointer_lanes, lanes({0, kState + 3, kState + 12, kState + 15, kState + 24, kState + 33, kTail, kTail + 8}, 1));
    alignas(64) std::uint64_t h[8];
    _mm512_store_si512(h, hex8(_mm512_permutex2var_epi8(low, h_at, high)));

    v.remote_port = static_cast<std::uint16_t>(h[0]);
    v.tx_queue = static_cast<std::uint32_t>(h[1]);
    v.rx_queue = static_cast<std::uint32_t>(h[2]);
    v.timer = static_cast<std::uint8_t>(h[3]);
    v.timer_expires = static_cast<std::uint32_t>(h[4]);
    v.retransmits = static_cast<std::uint32_t>(h[5]);
    // The pointer: 16 hex digits, but where kptr_restrict hides it.
    const unsigned pointer_digits = last[4] + 1u - first[4];
    v.kernel_pointer = pointer_digits == 16 ? (h[6] << 32) | static_cast<std::uint32_t>(h[7])
                                            : pointer(text.tail + first[4], pointer_digits);
    v.uid = static_cast<std::uint32_t>(a[0]);
    v.probes = static_cast<std::int32_t>(a[1]);
    // The upper lane holds the inode's digits before its last eight, if any.
    v.inode = a[3] * 100000000 + a[2];
    v.refcount = static_cast<std::int32_t>(a[4]);
    v.full = full;
    const std::uint64_t keep = full ? ~std::uint64_t{0} : 0;
    v.rto = a[5] & keep;
    v.ato = a[6] & keep;
    v.ack_quick_pingpong = static_cast<std::uint32_t>(a[7] & keep);
    v.snd_cwnd = static_cast<std::uint32_t>(b[0] & keep);
    const auto ssthresh = static_cast<std::int32_t>(b[1] & keep);
    v.ssthresh = text.negative_ssthresh ? -ssthresh : ssthresh;
  }
};

}  // namespace

ScanProgress count_lines_avx512(const char* begin, const char* end, bool ipv6, const CountTarget& target) {
  return count_lines<BlockStage<Avx512Block>, judge_lanes>(begin, end, ipv6, target);
}

ScanProgress record_lines_avx512(const char* begin, const char* end, bool ipv6, const RecordTarget& target) {
  return record_lines<BlockStage<Avx512Block>, judge_lanes, Avx512Convert>(begin, end, ipv6, target);
}

}  // namespace skopos::tracker::detail
