// Internal: decode_line()'s conversions with AVX2 (see ScalarConvert in
// scan_kernel_impl.h): both IPv6 addresses whole, and the tail's decimal fields four at a
// time. Included by the x86 kernels compiled with AVX2 or more: scan_avx2.cpp passes
// VectorConvert to record_lines(), scan_avx512.cpp converts the addresses with it.
//
// Profile before (Zen 2, the record path on 1M tcp6 lines, 93 ns a line): reading the
// fields of a proven line was two thirds of it, some 860 instructions spread evenly, of
// which the addresses took 15 ns and the decimal fields most of the rest.
#pragma once

#include <immintrin.h>

#include "scan_kernel_impl.h"

namespace skopos::tracker::detail {
namespace {

struct VectorConvert {
  // Hex digits ([0-9A-Fa-f], as a kernel proved them) in pairs: 16 * first + second in
  // the low byte of each 16-bit lane (bytes 16, 1 of the multiplier). A digit's value is
  // its low nibble, plus 9 for the letters (above '9').
  static __m256i hex_pairs(__m256i text) {
    const __m256i value =
        _mm256_add_epi8(_mm256_and_si256(text, _mm256_set1_epi8(0x0F)),
                        _mm256_and_si256(_mm256_cmpgt_epi8(text, _mm256_set1_epi8('9')), _mm256_set1_epi8(9)));
    return _mm256_maddubs_epi16(value, _mm256_set1_epi16(0x0110));
  }

  // 32 uppercase hex digits at p to the address's 16 bytes.
  [[gnu::always_inline]] static void address(const char* p, std::uint8_t* bytes) {
    const __m256i pairs = hex_pairs(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    // Per 128-bit half (16 digits, two words): the four bytes of each word in reverse,
    // since the kernel prints each 32-bit word of the address with %08X and the address
    // holds the word little-endian. The half's 8 bytes land in its low 8.
    const __m256i order = _mm256_setr_epi8(6, 4, 2, 0, 14, 12, 10, 8, -1, -1, -1, -1, -1, -1, -1, -1,  //
                                           6, 4, 2, 0, 14, 12, 10, 8, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i words = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(pairs, order), 0b1000);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(bytes), _mm256_castsi256_si128(words));
  }
  [[gnu::always_inline]] static void ipv6(const char* local, const char* remote, LineValues& v) {
    address(local, v.local_address);
    address(remote, v.remote_address);
  }

  static __m256i load4x8(const char* a, const char* b, const char* c, const char* d) {
    const auto load8 = [](const char* p) {
      long long x;
      std::memcpy(&x, p, 8);
      return x;
    };
    return _mm256_set_epi64x(load8(d), load8(c), load8(b), load8(a));
  }

  // Four lanes of 64 bits, stored for scalar reads.
  struct Four {
    alignas(32) std::uint64_t value[4];
    unsigned flags;  // a bit per lane; what it means is the function's
  };

  // The numbers of the eight hex digits at each of a, b, c and d ([0-9A-Fa-f], as a
  // kernel proved them), in each lane's low 32 bits. A shorter field can be read from
  // the eight bytes ending at its last digit: bytes before it change only the bits
  // above its own.
  [[gnu::always_inline]] static Four hex_lanes(const char* a, const char* b, const char* c, const char* d) {
    // Pairs, then fours (256 * pair + pair), then the eight.
    const __m256i pairs = hex_pairs(load4x8(a, b, c, d));
    const __m256i fours = _mm256_madd_epi16(pairs, _mm256_set1_epi32(0x00010100));
    Four n;
    _mm256_store_si256(reinterpret_cast<__m256i*>(n.value),
                       _mm256_add_epi64(_mm256_slli_epi64(fours, 16), _mm256_srli_epi64(fours, 32)));
    n.flags = 0;
    return n;
  }

  // The decimal numbers in the eight bytes ending at each of four fields' last digits:
  // in each lane, the digits after its last non-digit (every field is preceded by a
  // space, so those are the field's digits when it has fewer than eight). `flags` gets
  // a bit per lane with no non-digit at all: a field of eight digits or more.
  [[gnu::always_inline]] static Four decimal_lanes(const char* a, const char* b, const char* c, const char* d) {
    const __m256i digit = _mm256_sub_epi8(load4x8(a, b, c, d), _mm256_set1_epi8('0'));
    const __m256i nine = _mm256_set1_epi8(9);
    // Non-digits, then every byte at or before a lane's last one (a lane's bytes run
    // from low to high addresses, so "before" is a right shift).
    __m256i before = _mm256_xor_si256(_mm256_cmpeq_epi8(_mm256_max_epu8(digit, nine), nine), _mm256_set1_epi8(-1));
    const auto all_digits = static_cast<unsigned>(
        _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(before, _mm256_setzero_si256()))));
    before = _mm256_or_si256(before, _mm256_srli_epi64(before, 8));
    before = _mm256_or_si256(before, _mm256_srli_epi64(before, 16));
    before = _mm256_or_si256(before, _mm256_srli_epi64(before, 32));
    const __m256i digits = _mm256_andnot_si256(before, digit);
    // Pairs (10 * first + second), then fours (100 * pair + pair), then the eight.
    const __m256i pairs = _mm256_maddubs_epi16(digits, _mm256_set1_epi16(0x010A));
    const __m256i fours = _mm256_madd_epi16(pairs, _mm256_set1_epi32(0x00010064));
    Four n;
    _mm256_store_si256(reinterpret_cast<__m256i*>(n.value),
                       _mm256_add_epi64(_mm256_mul_epu32(fours, _mm256_set1_epi64x(10000)), _mm256_srli_epi64(fours, 32)));
    n.flags = all_digits;
    return n;
  }

  [[gnu::always_inline]] static void fields(const FieldText& text, LineValues& v) {
    // The eight bytes ending at each tail field's last byte. A mini-socket has 5 fields;
    // the other five are read from the window's end (tzcnt of 0 is 64), inside the
    // kernel's read-ahead, and not used.
    const char* at[10];
    std::uint64_t rest = text.lasts;
#pragma GCC unroll 10
    for (auto& a : at) {
      a = text.tail + _tzcnt_u64(rest) - 7;
      rest = _blsr_u64(rest);
    }
    // The first byte of the first five fields (the inode's and the pointer's are read).
    const char* begin[5];
    rest = text.starts;
#pragma GCC unroll 5
    for (auto& b : begin) {
      b = text.tail + _tzcnt_u64(rest);
      rest = _blsr_u64(rest);
    }
    const bool full = bit_count(text.starts) == 10;
    // uid, probes, the inode's last eight digits and the eight before; refcount, rto,
    // ato, quick; cwnd, ssthresh.
    const Four first = decimal_lanes(at[0], at[1], at[2], at[2] - 8);
    const Four second = decimal_lanes(at[3], at[5], at[6], at[7]);
    const Four third = decimal_lanes(at[8], at[9], at[8], at[9]);
    // A line with a field of eight or nine digits (judge() allows no more but to the
    // inode), or an inode of sixteen or more, is read field by field: rare (a uid of a
    // user namespace's range), and always right.
    const unsigned longer = (first.flags & 0b1011) | (second.flags & (full ? 0b1111 : 0b0001)) |
                            (full ? third.flags & 0b0011 : 0);
    if (longer != 0) [[unlikely]] {
      ScalarConvert::fields(text, v);
      return;
    }
    // The pointer, the fifth field: 16 hex digits but where kptr_restrict hides it.
    const char* pointer_at = begin[4];
    const auto pointer_digits = static_cast<unsigned>(at[4] + 8 - pointer_at);
    const Four queues = hex_lanes(text.state + 3, text.state + 12, text.state + 24, text.state + 33);
    const Four others = hex_lanes(text.remote_port - 4, text.state + 21 - 6, pointer_at, pointer_at + 8);

    v.remote_port = static_cast<std::uint16_t>(others.value[0]);
    v.tx_queue = static_cast<std::uint32_t>(queues.value[0]);
    v.rx_queue = static_cast<std::uint32_t>(queues.value[1]);
    v.timer = static_cast<std::uint8_t>(others.value[1]);
    v.timer_expires = static_cast<std::uint32_t>(queues.value[2]);
    v.retransmits = static_cast<std::uint32_t>(queues.value[3]);
    v.kernel_pointer = pointer_digits == 16 ? (others.value[2] << 32) | static_cast<std::uint32_t>(others.value[3])
                                            : pointer(pointer_at, pointer_digits);
    v.uid = static_cast<std::uint32_t>(first.value[0]);
    v.probes = static_cast<std::int32_t>(first.value[1]);
    // The upper lane ends eight bytes before the inode's last digit: the inode's own
    // digits when it has more than eight, otherwise bytes of the fields before it.
    const auto inode_digits = static_cast<unsigned>(at[2] + 8 - begin[2]);
    v.inode = (inode_digits > 8 ? first.value[3] * 100000000 : 0) + first.value[2];
    v.refcount = static_cast<std::int32_t>(second.value[0]);
    v.full = full;
    const std::uint64_t keep = full ? ~std::uint64_t{0} : 0;
    v.rto = second.value[1] & keep;
    v.ato = second.value[2] & keep;
    v.ack_quick_pingpong = static_cast<std::uint32_t>(second.value[3] & keep);
    v.snd_cwnd = static_cast<std::uint32_t>(third.value[0] & keep);
    const auto ssthresh = static_cast<std::int32_t>(third.value[1] & keep);
    v.ssthresh = text.negative_ssthresh ? -ssthresh : ssthresh;
  }
};

}  // namespace
}  // namespace skopos::tracker::detail
