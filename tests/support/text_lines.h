// Looking for whole lines in a text (metrics files, tables) in the tests: header-only,
// for tests (it uses GTest).
#pragma once

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

namespace skopos::testing {

// Whether `text` has a line that is exactly `line`.
inline bool has_line(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string have; std::getline(in, have);) {
    if (have == line) return true;
  }
  return false;
}

// The lines of `text`, without their newlines (a last line without one counts).
inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace skopos::testing

#define EXPECT_LINE(text, line) \
  EXPECT_TRUE(::skopos::testing::has_line(text, line)) << "no line '" << (line) << "' in:\n" << (text)
