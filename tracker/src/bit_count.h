// bit_count(x): the set bits of a 64-bit word, without a call into libgcc.
//
// x86_64 before POPCNT has no instruction for it, and the compiler's builtin becomes a
// call into libgcc there (__popcountdi2, a table walk: counting the tally's 1,024 port
// words that way was a sixth of choosing a decoder kernel). Code built for the baseline
// counts with shifts and a multiply; code built with -mpopcnt, and aarch64, use the
// instruction.
#pragma once

#include <cstdint>

namespace skopos::tracker::detail {
// Internal linkage: translation units built with and without -mpopcnt each keep their
// own, where one inline definition shared by all would break the rule of one definition
// and leave the linker to pick either for all.
namespace {

inline unsigned bit_count(std::uint64_t x) {
#if defined(__x86_64__) && !defined(__POPCNT__)
  x -= (x >> 1) & 0x5555555555555555ULL;
  x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
  x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
  return static_cast<unsigned>((x * 0x0101010101010101ULL) >> 56);
#else
  return static_cast<unsigned>(__builtin_popcountll(x));
#endif
}

}  // namespace
}  // namespace skopos::tracker::detail
