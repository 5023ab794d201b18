// One table per enum, read both ways: every value has its name, every name its value,
// and what is not in the table is said to be unknown rather than mapped to a default.
#include "skopos/enum_names.h"

#include <gtest/gtest.h>

namespace skopos {
namespace {

enum class Colour { kRed, kGreen, kBlue };
constexpr std::pair<Colour, const char*> kColourNames[] = {
    {Colour::kRed, "red"}, {Colour::kGreen, "green"}, {Colour::kBlue, "blue"}};

TEST(EnumNames, EveryValueAndNameGoRoundTheTable) {
  for (const auto& [value, name] : kColourNames) {
    EXPECT_STREQ(enum_name(kColourNames, value), name);
    EXPECT_EQ(enum_value(kColourNames, name), value);
  }
}

TEST(EnumNames, WhatIsNotInTheTableIsUnknown) {
  EXPECT_EQ(enum_value(kColourNames, "Red"), std::nullopt) << "names are exact";
  EXPECT_EQ(enum_value(kColourNames, ""), std::nullopt);
  EXPECT_STREQ(enum_name(kColourNames, static_cast<Colour>(7)), "?");
  EXPECT_STREQ(enum_name(kColourNames, static_cast<Colour>(7), "none"), "none");
}

TEST(EnumNames, TablesAreReadAtCompileTimeToo) {
  static_assert(enum_value(kColourNames, "blue") == Colour::kBlue);
  static_assert(std::string_view(enum_name(kColourNames, Colour::kGreen)) == "green");
}

}  // namespace
}  // namespace skopos
