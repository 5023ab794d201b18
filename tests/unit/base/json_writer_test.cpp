#include "skopos/json_writer.h"

#include <gtest/gtest.h>

namespace skopos {
namespace {

TEST(JsonWriter, WritesNestedDocumentsWithCommasInPlace) {
  std::string out;
  JsonWriter json(out);
  json.begin_object().key("a").value(1).key("b").begin_array().value(true).value("x").null().end_array();
  json.key("c").begin_object().end_object().key("d").value(std::int64_t{-5}).end_object();
  EXPECT_EQ(out, R"({"a":1,"b":[true,"x",null],"c":{},"d":-5})");
  EXPECT_TRUE(json.complete());
}

TEST(JsonWriter, EscapesWhatJsonRequires) {
  std::string out;
  JsonWriter(out).value(std::string_view("quote\" back\\ nl\n tab\t bell\x07 end"));
  EXPECT_EQ(out, R"("quote\" back\\ nl\n tab\t bell\u0007 end")");
}

TEST(JsonWriter, KeepsUtf8AndReplacesBytesThatAreNot) {
  std::string out;
  // "é" and "€" are well-formed; a lone continuation byte, an overlong '/' and a
  // surrogate are not.
  JsonWriter(out).value("caf\xc3\xa9 \xe2\x82\xac \x80 \xc0\xaf \xed\xa0\x80");
  EXPECT_EQ(out, "\"caf\xc3\xa9 \xe2\x82\xac \\ufffd \\ufffd\\ufffd \\ufffd\\ufffd\\ufffd\"");
}

TEST(JsonWriter, WritesTheFullRangeOfIntegers) {
  std::string out;
  JsonWriter json(out);
  json.begin_array().value(std::uint64_t{18446744073709551615ULL}).value(std::int64_t{-9223372036854775807LL - 1});
  json.end_array();
  EXPECT_EQ(out, "[18446744073709551615,-9223372036854775808]");
}

}  // namespace
}  // namespace skopos
