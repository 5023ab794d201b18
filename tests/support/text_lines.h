// Looking for whole lines in a text (metrics files, tables) in the tests: header-only,
// for tests (it uses GTest).
#pragma once

#include <gtest/gtest.h>

#include <sstream>
#include <string>

namespace skopos::testing {

// Whether `text` has a line that is exactly `line`.
inline bool has_line(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string have; std::getline(in, have);) {
    if (have == line) return true;
  }
  return false;
}

}  // namespace skopos::testing

#define EXPECT_LINE(text, line) \
  EXPECT_TRUE(::skopos::testing::has_line(text, line)) << "no line '" << (line) << "' in:\n" << (text)
