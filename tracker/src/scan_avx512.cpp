// The scan kernels for x86_64 with AVX-512 (compiled with -mavx512f -mavx512bw
// -mavx512cd -mavx512vpopcntdq and BMI; called only when the CPU has them). A 64-byte
// block is one register, vptestmb turns a class test straight into a 64-bit mask, and
// stage B checks eight lines' tails at once. See scan_kernel_impl.h.
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
// bytes (AVX-512 VBMI); bytes >= 0x80 are masked to class 0.
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
  __m512i classes;

  static Avx512Block load(const char* p) {
    const __m512i bytes = _mm512_loadu_si512(p);
    const __mmask64 ascii = _mm512_movepi8_mask(bytes) ^ ~__mmask64{0};
    return {_mm512_maskz_permutex2var_epi8(ascii, _mm512_load_si512(kAsciiClasses.table), bytes,
                                           _mm512_load_si512(kAsciiClasses.table + 64))};
  }

  // Positions of byte c in the 64 raw bytes at p (no classification needed).
  static std::uint64_t equal(const char* p, char c) {
    return _mm512_cmpeq_epi8_mask(_mm512_loadu_si512(p), _mm512_set1_epi8(c));
  }
  static std::uint64_t newlines(const char* p) { return equal(p, '\n'); }

  std::uint64_t has(std::uint8_t wanted) const {
    return _mm512_test_epi8_mask(classes, _mm512_set1_epi8(static_cast<char>(wanted)));
  }

  std::uint64_t allows(const std::uint8_t* allowed) const {
    return _mm512_test_epi8_mask(classes, _mm512_loadu_si512(allowed));
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

unsigned judge_lanes(Batch& batch) {
  const Judged<Lanes8> lines =
      judge(Lanes8::load(batch.space), Lanes8::load(batch.digit), Lanes8::load(batch.lower),
            Lanes8::load(batch.minus), Lanes8::load(batch.length), Lanes8::load(batch.problems),
            Lanes8::load(batch.colon), Lanes8::load(batch.slot_spaces), Lanes8::load(batch.port_chars),
            Lanes8::load(batch.state_chars));
  lines.port.store(batch.port);
  lines.state.store(batch.state);
  return static_cast<unsigned>(lines.ok) & ((1u << batch.size) - 1);
}

}  // namespace

ScanProgress count_lines_avx512(const char* begin, const char* end, bool ipv6, const CountTarget& target) {
  return count_lines<BlockStage<Avx512Block>, judge_lanes>(begin, end, ipv6, target);
}

ScanProgress record_lines_avx512(const char* begin, const char* end, bool ipv6, const RecordTarget& target) {
  return record_lines<BlockStage<Avx512Block>, judge_lanes, VectorConvert>(begin, end, ipv6, target);
}

}  // namespace skopos::tracker::detail
