// JsonWriter: writes one JSON document into a string, escaping as RFC 8259 requires.
//
//   JsonWriter json(out);
//   json.begin_object().key("port").value(8080).key("listening").value(true).end_object();
//
// Keys and values are written in call order; the writer inserts commas. Misuse (a
// value where a key is due, unbalanced ends) is a programming error and asserted.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace skopos {

class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}

  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view name);

  JsonWriter& value(std::string_view text);
  JsonWriter& value(const char* text) { return value(std::string_view(text)); }
  JsonWriter& value(bool flag);
  JsonWriter& value(std::int64_t number);
  JsonWriter& value(std::uint64_t number);
  JsonWriter& value(int number) { return value(static_cast<std::int64_t>(number)); }
  JsonWriter& value(unsigned number) { return value(static_cast<std::uint64_t>(number)); }
  JsonWriter& null();
  // A value that is already JSON (written by another JsonWriter), inserted as is.
  JsonWriter& raw_value(std::string_view json);

  // Forgets any unfinished document (keeping its buffers), to write a new one into the
  // same string; the caller clears or keeps the string.
  void reset() {
    stack_.clear();
    after_key_ = false;
  }

  // True when every object and array opened has been closed.
  bool complete() const { return stack_.empty(); }

 private:
  template <class Integer>
  JsonWriter& number(Integer value);
  void before_value();
  void escape(std::string_view text);

  std::string& out_;
  // Per open container: whether it already holds an element.
  std::vector<bool> stack_;
  bool after_key_ = false;
};

}  // namespace skopos
