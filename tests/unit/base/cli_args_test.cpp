#include "skopos/cli_args.h"

#include <gtest/gtest.h>

#include <cstdio>

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

// A config file sets a flag with "true" ("false" leaves it unset), and says what a flag
// takes when given anything else.
TEST(CliArgs, AConfigFileSetsFlagsWithTrueOrFalse) {
  const std::string path = ::testing::TempDir() + "/cli-args-flags.conf";
  const auto with_config = [&](const std::string& text) {
    {
      std::FILE* file = std::fopen(path.c_str(), "w");
      ASSERT_NE(file, nullptr);
      std::fputs(text.c_str(), file);
      std::fclose(file);
    }
    CliArgs args = parse({});
    args.merge_config_file(kSpec, path);
    EXPECT_EQ(args.flag("json"), text.find("json = true") != std::string::npos) << text;
  };
  with_config("json = true\nkernel = avx2\n");
  with_config("json = false\n");
  try {
    CliArgs args = parse({});
    std::FILE* file = std::fopen(path.c_str(), "w");
    ASSERT_NE(file, nullptr);
    std::fputs("records = yes\n", file);
    std::fclose(file);
    args.merge_config_file(kSpec, path);
    ADD_FAILURE() << "a flag set to 'yes' was accepted";
  } catch (const FatalError& error) {
    EXPECT_NE(error.message().find("'records' is a flag: true or false, not 'yes'"), std::string::npos)
        << error.message();
  }
  std::remove(path.c_str());
}

// Options before a command word or after it read the same; a value is never taken
// for the command.
TEST(CommandsFirst, MovesTheCommandWordsAheadOfTheOptionsBeforeThem) {
  const auto reordered = [](std::vector<std::string> words, int first, int count) {
    std::vector<char*> argv;
    for (std::string& word : words) argv.push_back(word.data());
    commands_first(static_cast<int>(argv.size()), argv.data(), first, count, {"etcd-endpoints", "timeout"});
    std::vector<std::string> out;
    for (char* arg : argv) out.emplace_back(arg);
    return out;
  };
  using Words = std::vector<std::string>;
  EXPECT_EQ(reordered({"skopos", "--etcd-endpoints", "http://e:2379", "--json", "lock", "status"}, 1, 1),
            (Words{"skopos", "lock", "--etcd-endpoints", "http://e:2379", "--json", "status"}));
  EXPECT_EQ(reordered({"skopos", "lock", "--timeout=5s", "--etcd-endpoints", "status", "acquire"}, 2, 1),
            (Words{"skopos", "lock", "acquire", "--timeout=5s", "--etcd-endpoints", "status"}))
      << "'status' is --etcd-endpoints' value, not the subcommand";
  EXPECT_EQ(reordered({"skopos", "lock", "status", "--json"}, 2, 1), (Words{"skopos", "lock", "status", "--json"}));
  EXPECT_EQ(reordered({"skopos", "lock", "--json", "--", "status"}, 2, 1),
            (Words{"skopos", "lock", "--json", "--", "status"}))
      << "nothing after --";
  EXPECT_EQ(reordered({"skopos", "--timeout", "5s"}, 1, 1), (Words{"skopos", "--timeout", "5s"}))
      << "no command: as it was";
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
