// The fence's pure parts: sources allowed through it as iptables-save prints them.
#include "driver/fence.h"

#include <gtest/gtest.h>

namespace skopos::driver {
namespace {

TEST(FenceAllowSources, AddressesAndCidrsAreNormalisedAsIptablesPrintsThem) {
  EXPECT_EQ(parse_cidr("10.0.0.7"), "10.0.0.7/32");
  EXPECT_EQ(parse_cidr("10.0.0.77/24"), "10.0.0.0/24") << "the network address under the prefix";
  EXPECT_EQ(parse_cidr("fd00::1/64"), "fd00::/64");
  EXPECT_EQ(parse_cidr("::1"), "::1/128");
  for (const char* bad : {"", "10.0.0", "10.0.0.7/33", "10.0.0.7/", "10.0.0.7/x", "fd00::/129", "host-a", "10.0.0.7 "}) {
    EXPECT_EQ(parse_cidr(bad), std::nullopt) << "'" << bad << "'";
  }
}

}  // namespace
}  // namespace skopos::driver
