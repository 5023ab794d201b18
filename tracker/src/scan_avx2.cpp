// The scan kernels for x86_64 with AVX2 (compiled with -mavx2 -mbmi -mbmi2 -mpopcnt
// -mlzcnt; called only when the CPU has them). See scan_kernel_impl.h.
#include <immintrin.h>

#include "scan_kernel_impl.h"

namespace skopos::tracker::detail {
namespace {

// 64 bytes as two 256-bit halves of byte classes.
struct Avx2Block {
  __m256i low;
  __m256i high;

  static __m256i classify(__m256i bytes) {
    const __m256i by_low = _mm256_broadcastsi128_si256(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(kByLowNibble)));
    const __m256i by_high = _mm256_broadcastsi128_si256(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(kByHighNibble)));
    const __m256i nibble = _mm256_set1_epi8(0x0F);
    const __m256i lo = _mm256_shuffle_epi8(by_low, _mm256_and_si256(bytes, nibble));
    const __m256i hi =
        _mm256_shuffle_epi8(by_high, _mm256_and_si256(_mm256_srli_epi16(bytes, 4), nibble));
    return _mm256_and_si256(lo, hi);
  }

  static Avx2Block load(const char* p) {
    return {classify(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))),
            classify(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32)))};
  }

  // Positions whose class intersects `classes`.
  static std::uint64_t intersect(__m256i lo, __m256i hi, __m256i classes_lo, __m256i classes_hi) {
    const __m256i zero = _mm256_setzero_si256();
    const auto none_lo = static_cast<std::uint32_t>(
        _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_and_si256(lo, classes_lo), zero)));
    const auto none_hi = static_cast<std::uint32_t>(
        _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_and_si256(hi, classes_hi), zero)));
    return ~((std::uint64_t{none_hi} << 32) | none_lo);
  }

  // Positions of byte c in the 64 raw bytes at p (no classification needed).
  static std::uint64_t equal(const char* p, char c) {
    const __m256i wanted = _mm256_set1_epi8(c);
    const auto lo = static_cast<std::uint32_t>(_mm256_movemask_epi8(
        _mm256_cmpeq_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), wanted)));
    const auto hi = static_cast<std::uint32_t>(_mm256_movemask_epi8(
        _mm256_cmpeq_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32)), wanted)));
    return (std::uint64_t{hi} << 32) | lo;
  }
  static std::uint64_t newlines(const char* p) { return equal(p, '\n'); }

  std::uint64_t has(std::uint8_t classes) const {
    const __m256i c = _mm256_set1_epi8(static_cast<char>(classes));
    return intersect(low, high, c, c);
  }

  std::uint64_t allows(const std::uint8_t* allowed) const {
    return intersect(low, high, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(allowed)),
                     _mm256_loadu_si256(reinterpret_cast<const __m256i*>(allowed + 32)));
  }
};

}  // namespace

// AVX2 has no 64-bit popcount or leading-zero count per lane: stage B runs line by line.
ScanProgress count_lines_avx2(const char* begin, const char* end, bool ipv6, const CountTarget& target) {
  return count_lines<Avx2Block, judge_each>(begin, end, ipv6, target);
}

ScanProgress shape_lines_avx2(const char* begin, const char* end, bool ipv6, const RecordTarget& target) {
  return shape_lines<Avx2Block, judge_each>(begin, end, ipv6, target);
}

}  // namespace skopos::tracker::detail
