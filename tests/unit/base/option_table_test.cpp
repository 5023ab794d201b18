// OptionTable: an option declared once gives the parser its name, --help its line with
// the default the config holds, the README its row, and the config its value.
#include <gtest/gtest.h>

#include <chrono>
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

}  // namespace
}  // namespace skopos
