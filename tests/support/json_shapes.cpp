#include "json_shapes.h"

#include <simdjson.h>

#include <fstream>
#include <sstream>

namespace skopos::testing {

namespace {

namespace dom = simdjson::dom;

const char* type_name(dom::element_type type) {
  switch (type) {
    case dom::element_type::ARRAY: return "array";
    case dom::element_type::OBJECT: return "object";
    // JSON has one number type, and upstream examples write the same field both ways
    // (Marathon's "mem": 128 and "mem": 16.0). Where we need an integer (Mesos's int64
    // nanoseconds) our parsers insist, and their tests run on the simulators' answers.
    case dom::element_type::INT64:
    case dom::element_type::UINT64:
    case dom::element_type::DOUBLE: return "number";
    case dom::element_type::STRING: return "string";
    case dom::element_type::BOOL: return "bool";
    case dom::element_type::NULL_VALUE: return "null";
  }
  return "?";
}

void compare(dom::element ours, dom::element upstream, const std::string& path, std::vector<std::string>& out) {
  // null stands for "absent for now" on both sides (e.g. Marathon's lastFailure).
  if (ours.type() == dom::element_type::NULL_VALUE || upstream.type() == dom::element_type::NULL_VALUE) return;
  if (std::string(type_name(ours.type())) != type_name(upstream.type())) {
    out.push_back(path + ": " + type_name(ours.type()) + " vs upstream " + type_name(upstream.type()));
    return;
  }
  if (ours.type() == dom::element_type::OBJECT) {
    for (auto [key, value] : dom::object(ours)) {
      dom::element other;
      if (upstream[key].get(other) == simdjson::SUCCESS) compare(value, other, path + "." + std::string(key), out);
    }
  } else if (ours.type() == dom::element_type::ARRAY) {
    dom::array mine = ours;
    dom::array theirs = upstream;
    if (mine.size() > 0 && theirs.size() > 0) compare(mine.at(0), theirs.at(0), path + "[0]", out);
  }
}

}  // namespace

std::vector<std::string> shape_differences(const std::string& ours, const std::string& upstream,
                                           const std::vector<std::string>& required_pointers) {
  dom::parser a;
  dom::parser b;
  dom::element mine;
  dom::element theirs;
  if (a.parse(ours).get(mine) != simdjson::SUCCESS) return {"ours is not JSON: " + ours.substr(0, 200)};
  if (b.parse(upstream).get(theirs) != simdjson::SUCCESS) return {"the upstream example is not JSON"};
  std::vector<std::string> out;
  compare(mine, theirs, "", out);
  for (const std::string& pointer : required_pointers) {
    if (mine.at_pointer(pointer).error() != simdjson::SUCCESS) out.push_back("lacks " + pointer);
  }
  return out;
}

std::string read_fixture(const std::string& fixtures_dir, const std::string& name) {
  std::ifstream in(fixtures_dir + "/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace skopos::testing
