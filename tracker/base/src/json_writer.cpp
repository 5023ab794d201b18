#include "skopos/json_writer.h"

#include <cassert>
#include <charconv>

namespace skopos {

void JsonWriter::before_value() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!stack_.empty()) {
    if (stack_.back()) out_ += ',';
    stack_.back() = true;
  }
}

JsonWriter& JsonWriter::raw_value(std::string_view json) {
  before_value();
  out_.append(json);
  return *this;
}

JsonWriter& JsonWriter::begin_object() {
  before_value();
  out_ += '{';
  stack_.push_back(false);
  return *this;
}

JsonWriter& JsonWriter::end_object() {
  assert(!stack_.empty() && !after_key_);
  stack_.pop_back();
  out_ += '}';
  return *this;
}

JsonWriter& JsonWriter::begin_array() {
  before_value();
  out_ += '[';
  stack_.push_back(false);
  return *this;
}

JsonWriter& JsonWriter::end_array() {
  assert(!stack_.empty());
  stack_.pop_back();
  out_ += ']';
  return *this;
}

JsonWriter& JsonWriter::key(std::string_view name) {
  assert(!stack_.empty() && !after_key_);
  before_value();
  escape(name);
  out_ += ':';
  after_key_ = true;
  return *this;
}

JsonWriter& JsonWriter::value(std::string_view text) {
  before_value();
  escape(text);
  return *this;
}

JsonWriter& JsonWriter::value(bool flag) {
  before_value();
  out_ += flag ? "true" : "false";
  return *this;
}

template <class Integer>
JsonWriter& JsonWriter::number(Integer value) {
  before_value();
  char digits[24];
  const auto result = std::to_chars(digits, digits + sizeof digits, value);
  out_.append(digits, result.ptr);
  return *this;
}

JsonWriter& JsonWriter::value(std::int64_t number) { return this->number(number); }
JsonWriter& JsonWriter::value(std::uint64_t number) { return this->number(number); }

JsonWriter& JsonWriter::null() {
  before_value();
  out_ += "null";
  return *this;
}

namespace {

// Length of the well-formed UTF-8 sequence at text[i], or 0 if it is not one
// (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
std::size_t utf8_sequence(std::string_view text, std::size_t i) {
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const auto continuation = [&](std::size_t k) { return i + k < text.size() && (at(k) & 0xC0) == 0x80; };
  const unsigned char lead = at(0);
  if (lead >= 0xC2 && lead <= 0xDF) return continuation(1) ? 2 : 0;
  if (lead >= 0xE0 && lead <= 0xEF) {
    if (!continuation(1) || !continuation(2)) return 0;
    if (lead == 0xE0 && at(1) < 0xA0) return 0;  // overlong
    if (lead == 0xED && at(1) > 0x9F) return 0;  // surrogate
    return 3;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    if (!continuation(1) || !continuation(2) || !continuation(3)) return 0;
    if (lead == 0xF0 && at(1) < 0x90) return 0;  // overlong
    if (lead == 0xF4 && at(1) > 0x8F) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

}  // namespace

// Control characters are escaped; bytes that are not well-formed UTF-8 (a file name
// from a broken host, say) become U+FFFD so the document stays valid JSON.
void JsonWriter::escape(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  // Keys and most values are plain printable ASCII: one check of every byte, then the
  // quoted text in one append.
  bool plain = true;
  for (const char c : text) {
    const auto b = static_cast<unsigned char>(c);
    plain &= b >= 0x20 && b < 0x80 && b != '"' && b != '\\';
  }
  if (plain) {
    const std::size_t at = out_.size();
    out_.resize(at + text.size() + 2);
    char* to = out_.data() + at;
    to[0] = '"';
    text.copy(to + 1, text.size());
    to[text.size() + 1] = '"';
    return;
  }
  out_ += '"';
  for (std::size_t i = 0; i < text.size(); ++i) {
    // Plain printable ASCII needs no escaping: copy the whole run at once.
    std::size_t run = i;
    while (run < text.size()) {
      const auto b = static_cast<unsigned char>(text[run]);
      if (b < 0x20 || b >= 0x80 || b == '"' || b == '\\') break;
      ++run;
    }
    if (run > i) {
      out_.append(text.data() + i, run - i);
      i = run - 1;
      continue;
    }
    const char c = text[i];
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x80) {
      const std::size_t length = utf8_sequence(text, i);
      if (length == 0) {
        out_ += "\\ufffd";
      } else {
        out_.append(text.substr(i, length));
        i += length - 1;
      }
      continue;
    }
    switch (c) {
      case '"': out_ += "\\\""; break;
      case '\\': out_ += "\\\\"; break;
      case '\n': out_ += "\\n"; break;
      case '\r': out_ += "\\r"; break;
      case '\t': out_ += "\\t"; break;
      default:
        if (byte < 0x20) {
          out_ += "\\u00";
          out_ += kHex[byte >> 4];
          out_ += kHex[byte & 0xF];
        } else {
          out_ += c;
        }
    }
  }
  out_ += '"';
}

}  // namespace skopos
