// The CPUs a process may use are its affinity mask's, not the machine's count.
#include "skopos/cpus.h"

#include <gtest/gtest.h>
#include <sched.h>

namespace skopos {
namespace {

TEST(Cpus, TheAffinityMaskDecidesAndNeverLessThanOne) {
  cpu_set_t original;
  ASSERT_EQ(::sched_getaffinity(0, sizeof original, &original), 0);
  EXPECT_EQ(usable_cpus(), static_cast<std::size_t>(CPU_COUNT(&original)));
  // Narrowed to one CPU (as a cpuset or CPUAffinity= would), one is what is usable.
  std::size_t first = 0;
  while (!CPU_ISSET(first, &original)) ++first;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(::sched_setaffinity(0, sizeof one, &one), 0);
  EXPECT_EQ(usable_cpus(), 1U);
  ASSERT_EQ(::sched_setaffinity(0, sizeof original, &original), 0);
}

}  // namespace
}  // namespace skopos
