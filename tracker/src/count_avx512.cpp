// The counting kernel for x86_64 with AVX-512BW (compiled with -mavx512f -mavx512bw
// -mbmi -mbmi2 -mpopcnt -mlzcnt; called only when the CPU has them). A 64-byte block is
// one register, and vptestmb turns a class test straight into a 64-bit mask.
// See scan_kernel_impl.h.
#include <immintrin.h>

#include "scan_kernel_impl.h"

namespace skopos::tracker::detail {
namespace {

// vpshufb looks up within each 128-bit lane, so each table is repeated four times.
// (Built here rather than with _mm512_broadcast_i32x4, which trips a false
// -Wmaybe-uninitialized in GCC 12's headers.)
struct LaneTables {
  std::uint8_t by_low[64];
  std::uint8_t by_high[64];
};
constexpr LaneTables make_lane_tables() {
  LaneTables tables{};
  for (int i = 0; i < 64; ++i) {
    tables.by_low[i] = kByLowNibble[i % 16];
    tables.by_high[i] = kByHighNibble[i % 16];
  }
  return tables;
}
alignas(64) constexpr LaneTables kLaneTables = make_lane_tables();

struct Avx512Block {
  __m512i classes;

  static Avx512Block load(const char* p) {
    const __m512i by_low = _mm512_load_si512(kLaneTables.by_low);
    const __m512i by_high = _mm512_load_si512(kLaneTables.by_high);
    const __m512i nibble = _mm512_set1_epi8(0x0F);
    const __m512i bytes = _mm512_loadu_si512(p);
    const __m512i lo = _mm512_shuffle_epi8(by_low, _mm512_and_si512(bytes, nibble));
    const __m512i hi =
        _mm512_shuffle_epi8(by_high, _mm512_and_si512(_mm512_srli_epi16(bytes, 4), nibble));
    return {_mm512_and_si512(lo, hi)};
  }

  std::uint64_t has(std::uint8_t wanted) const {
    return _mm512_test_epi8_mask(classes, _mm512_set1_epi8(static_cast<char>(wanted)));
  }

  std::uint64_t allows(const std::uint8_t* allowed) const {
    return _mm512_test_epi8_mask(classes, _mm512_loadu_si512(allowed));
  }
};

}  // namespace

ScanProgress count_lines_avx512(const char* begin, const char* end, bool ipv6,
                                const CountTarget& target) {
  return count_lines<Avx512Block>(begin, end, ipv6, target);
}

}  // namespace skopos::tracker::detail
