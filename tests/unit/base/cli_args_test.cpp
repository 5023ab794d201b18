#include "skopos/cli_args.h"

#include <gtest/gtest.h>

#include "skopos/result.h"

namespace skopos {
namespace {

const CliSpec kSpec{"tool cmd", {"json", "records"}, {"kernel", "timeout"}};

CliArgs parse(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  return CliArgs::parse(kSpec, static_cast<int>(argv.size()), argv.data(), 0);
}

std::string failure(std::vector<std::string> args) {
  try {
    parse(std::move(args));
  } catch (const FatalError& error) {
    return error.message();
  }
  return "(accepted)";
}

TEST(CliArgs, FlagsOptionsAndPositionals) {
  const CliArgs args = parse({"a", "--json", "--kernel=avx2", "--timeout", "300s", "b", "-"});
  EXPECT_TRUE(args.flag("json"));
  EXPECT_FALSE(args.flag("records"));
  EXPECT_EQ(args.option("kernel"), "avx2");
  EXPECT_EQ(args.option("timeout"), "300s");
  EXPECT_EQ(args.option("absent", "fallback"), "fallback");
  EXPECT_FALSE(args.has("absent"));
  EXPECT_EQ(args.positional(), (std::vector<std::string>{"a", "b", "-"}));
}

TEST(CliArgs, DoubleDashEndsOptions) {
  const CliArgs args = parse({"--", "--json", "-x"});
  EXPECT_FALSE(args.flag("json"));
  EXPECT_EQ(args.positional(), (std::vector<std::string>{"--json", "-x"}));
}

TEST(CliArgs, RejectsWhatItDoesNotKnowNamingIt) {
  EXPECT_EQ(failure({"--jsn"}), "tool cmd: unknown option '--jsn'");
  EXPECT_EQ(failure({"-j"}), "tool cmd: unknown option '-j'");
  EXPECT_EQ(failure({"--json=1"}), "tool cmd: option '--json' takes no value");
  EXPECT_EQ(failure({"--kernel"}), "tool cmd: option '--kernel' needs a value");
}

TEST(ParseDuration, UnitsAndValuesThatDoNotFitAreRefused) {
  EXPECT_EQ(parse_duration("250us"), std::chrono::microseconds(250));
  EXPECT_EQ(parse_duration("90"), std::chrono::seconds(90));
  EXPECT_EQ(parse_duration("2562047788h"), std::chrono::hours(2562047788)) << "the largest whole hour that fits";
  // Failed before: the product fit an unsigned 64-bit number but not the signed count,
  // and came back negative (a deadline in the past).
  EXPECT_EQ(parse_duration("5000000000h"), std::nullopt);
  EXPECT_EQ(parse_duration("9223372036854775808us"), std::nullopt);
  EXPECT_EQ(parse_duration("5d"), std::nullopt);
  EXPECT_EQ(parse_duration("-5s"), std::nullopt);
}

}  // namespace
}  // namespace skopos
