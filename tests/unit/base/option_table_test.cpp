// OptionTable: an option declared once gives the parser its name, --help its line with
// the default the config holds, the README its row, and the config its value.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "skopos/option_table.h"

namespace skopos {
namespace {

using namespace std::chrono_literals;

enum class Mode : std::uint8_t { kAuto, kOn, kOff };

struct Inner {
  std::chrono::milliseconds timeout{5000};
};

struct Config {
  std::string socket = "/run/x.sock";
  std::chrono::microseconds coalesce{250};
  Mode mode = Mode::kAuto;
  bool once = false;
  Inner inner;
};

OptionTable<Config> table() {
  OptionTable<Config> t("tool");
  t.text("socket", "PATH", "where to listen", &Config::socket);
  t.duration("coalesce", "wait this long after a batch\nof events", &Config::coalesce);
  t.choice("mode", "how", &Config::mode,
           std::vector<std::pair<std::string, Mode>>{{"auto", Mode::kAuto}, {"on", Mode::kOn}, {"off", Mode::kOff}});
  t.flag("once", "once only", &Config::once);
  t.duration("timeout", "deadline", [](auto& c) -> auto& { return c.inner.timeout; });
  return t;
}

Config parse(const OptionTable<Config>& t, std::vector<std::string> argv) {
  argv.insert(argv.begin(), "tool");
  std::vector<char*> raw;
  for (std::string& arg : argv) raw.push_back(arg.data());
  const CliArgs args = CliArgs::parse(t.spec(), static_cast<int>(raw.size()), raw.data(), 1);
  Config config;
  t.read(args, config);
  return config;
}

TEST(OptionTable, OneDeclarationParsesEveryKindIntoTheConfig) {
  const auto t = table();
  const Config given = parse(t, {"--socket", "/tmp/a.sock", "--coalesce=2ms", "--mode", "off", "--once", "--timeout", "1m"});
  EXPECT_EQ(given.socket, "/tmp/a.sock");
  EXPECT_EQ(given.coalesce, 2000us);
  EXPECT_EQ(given.mode, Mode::kOff);
  EXPECT_TRUE(given.once);
  EXPECT_EQ(given.inner.timeout, 60000ms);
  const Config untouched = parse(t, {});
  EXPECT_EQ(untouched.socket, "/run/x.sock") << "an option not given keeps the config's default";
  EXPECT_EQ(untouched.inner.timeout, 5000ms);
}

TEST(OptionTable, WrongValuesAreNamedWithWhatIsAllowed) {
  const auto t = table();
  const auto failure = [&](std::vector<std::string> argv) {
    try {
      parse(t, std::move(argv));
    } catch (const FatalError& error) {
      return error.message();
    }
    return std::string("(accepted)");
  };
  EXPECT_EQ(failure({"--mode", "maybe"}), "tool: --mode 'maybe' is not auto, on or off");
  EXPECT_EQ(failure({"--coalesce", "soon"}), "option '--coalesce': 'soon' is not a duration");
  EXPECT_EQ(failure({"--sockett", "x"}), "tool: unknown option '--sockett'");
  EXPECT_EQ(failure({"--once=yes"}), "tool: option '--once' takes no value");
}

TEST(OptionTable, HelpAndMarkdownShowEachOptionWithTheConfigsDefault) {
  const auto t = table();
  EXPECT_EQ(t.help(),
            "  --socket PATH            where to listen (default /run/x.sock)\n"
            "  --coalesce D             wait this long after a batch\n"
            "                           of events (default 250us)\n"
            "  --mode auto|on|off       how (default auto)\n"
            "  --once                   once only\n"
            "  --timeout D              deadline (default 5s)\n");
  EXPECT_EQ(t.markdown(),
            "| option | default | what it does |\n"
            "| --- | --- | --- |\n"
            "| `--socket PATH` | `/run/x.sock` | where to listen |\n"
            "| `--coalesce D` | `250us` | wait this long after a batch of events |\n"
            "| `--mode auto\\|on\\|off` | `auto` | how |\n"
            "| `--once` |  | once only |\n"
            "| `--timeout D` | `5s` | deadline |\n");
}

TEST(OptionTable, DurationsShowInTheLargestWholeUnit) {
  EXPECT_EQ(format_duration(0us), "0");
  EXPECT_EQ(format_duration(250us), "250us");
  EXPECT_EQ(format_duration(4000us), "4ms");
  EXPECT_EQ(format_duration(1500ms), "1500ms");
  EXPECT_EQ(format_duration(30s), "30s");
  EXPECT_EQ(format_duration(std::chrono::minutes(2)), "2m");
  EXPECT_EQ(format_duration(std::chrono::hours(24)), "24h");
}

// The example config file the package installs: every option at its default, commented
// out, so installing it changes nothing; each line, uncommented, is one the parser takes
// and reads back as that default.
TEST(OptionTable, TheExampleConfigShowsEveryDefaultAsALineTheParserTakes) {
  auto t = table();
  t.flag("help", "this text", &Config::once);
  t.text("config", "PATH", "read settings from PATH", &Config::socket);
  const std::string example = t.config_example("tool's settings\nsecond line", {"help", "config"});
  EXPECT_EQ(example,
            "# tool's settings\n# second line\n"
            "\n# --socket PATH: where to listen\n#socket = /run/x.sock\n"
            "\n# --coalesce D: wait this long after a batch\n#   of events\n#coalesce = 250us\n"
            "\n# --mode auto|on|off: how\n#mode = auto\n"
            "\n# --once: once only\n#once = false\n"
            "\n# --timeout D: deadline\n#timeout = 5s\n");

  const auto read_file = [&](const std::string& text) {
    const std::string path = ::testing::TempDir() + "option_table_example.conf";
    std::ofstream(path) << text;
    std::vector<std::string> argv = {"tool"};
    std::vector<char*> raw;
    for (std::string& arg : argv) raw.push_back(arg.data());
    CliArgs args = CliArgs::parse(t.spec(), static_cast<int>(raw.size()), raw.data(), 1);
    args.merge_config_file(t.spec(), path);
    std::remove(path.c_str());
    Config config;
    config.socket = "changed";
    config.coalesce = 1us;
    config.mode = Mode::kOn;
    config.inner.timeout = 1ms;
    t.read(args, config);
    return config;
  };
  const Config commented = read_file(example);
  EXPECT_EQ(commented.socket, "changed") << "a commented line sets nothing";
  std::string uncommented;
  for (std::size_t at = 0; at < example.size();) {
    const std::size_t end = example.find('\n', at);
    std::string line = example.substr(at, end - at);
    if (line.size() > 1 && line[0] == '#' && line[1] != ' ') line.erase(0, 1);
    uncommented += line + "\n";
    at = end + 1;
  }
  const Config defaults = read_file(uncommented);
  EXPECT_EQ(defaults.socket, "/run/x.sock");
  EXPECT_EQ(defaults.coalesce, 250us);
  EXPECT_EQ(defaults.mode, Mode::kAuto);
  EXPECT_FALSE(defaults.once);
  EXPECT_EQ(defaults.inner.timeout, 5s);
}

}  // namespace
}  // namespace skopos
