// Comparing the shape of a simulator's answer with an upstream example: the fields both
// have must have the same JSON types (recursively; arrays by their first element), and
// the fields our clients read must be present.
#pragma once

#include <string>
#include <vector>

namespace skopos::testing {

// Problems found, as "path: ours vs upstream" or "lacks /json/pointer"; empty: same shape.
std::vector<std::string> shape_differences(const std::string& ours, const std::string& upstream,
                                           const std::vector<std::string>& required_pointers);

// The text of a file under tests/fixtures/upstream (given its directory).
std::string read_fixture(const std::string& fixtures_dir, const std::string& name);

}  // namespace skopos::testing
