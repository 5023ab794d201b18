// skopos-tracker as operators start it: flags, the config file, what it does without
// privilege or without Docker, and how it reports mistakes.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "process.h"

namespace {

using skopos::testing::ProcessResult;
using skopos::testing::marked_section;
using skopos::testing::run_process;

const std::string kTracker = SKOPOS_TRACKER;

// Runs the tracker without privilege: as root through setpriv (uid/gid nobody, no
// capabilities), otherwise as we are.
ProcessResult unprivileged(std::vector<std::string> args) {
  args.insert(args.begin(), kTracker);
  if (::geteuid() == 0) {
    args.insert(args.begin(), {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                               "--bounding-set=-all", "--"});
  }
  return run_process(args);
}

class TempConfig {
 public:
  explicit TempConfig(const std::string& text) : path_("/tmp/skopos-tracker-test-" + std::to_string(::getpid()) + "-" +
                                                         std::to_string(counter_++) + ".conf") {
    std::ofstream(path_) << text;
    ::chmod(path_.c_str(), 0644);
  }
  ~TempConfig() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
};

simdjson::dom::element parse(simdjson::dom::parser& parser, const std::string& text) {
  simdjson::dom::element doc;
  const auto error = parser.parse(text).get(doc);
  EXPECT_EQ(error, simdjson::SUCCESS) << simdjson::error_message(error) << "\n" << text;
  return doc;
}

TEST(TrackerDaemon, UsageErrorsExit2AndNameWhatWasWrong) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  TempConfig bad_key("# comment\nsource = proc\nsorce = bpf\n");
  TempConfig bad_line("source proc\n");
  const std::vector<Case> cases = {
      {{"--source", "magic"}, "--source 'magic' is not auto, bpf or proc"},
      {{"--bogus"}, "unknown option '--bogus'"},
      {{"--proc-interval", "5x"}, "'--proc-interval': '5x' is not a duration"},
      {{"--proc-interval", "0"}, "--proc-interval must be more than 0"},
      {{"--format", "xml"}, "--format 'xml' is not json or table"},
      {{"--coalesce", "2ms", "--coalesce-max", "1ms"}, "--coalesce-max (1000us) must be at least --coalesce (2000us)"},
      {{"--config", bad_key.path()}, bad_key.path() + ":3: unknown setting 'sorce'"},
      {{"--config", bad_line.path()}, bad_line.path() + ":1: expected 'name = value'"},
      {{"--config", "/nonexistent/skopos.conf"}, "cannot read config file '/nonexistent/skopos.conf'"},
      {{"stray"}, "unexpected argument 'stray'"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = c.args;
    args.insert(args.begin(), kTracker);
    const ProcessResult result = run_process(args);
    EXPECT_EQ(result.exit_code, 2) << c.says;
    EXPECT_NE(result.err.find(c.says), std::string::npos) << "stderr: " << result.err;
    EXPECT_TRUE(result.out.empty());
  }
}

// The README's table of skopos-tracker's options is the one the binary declares: every
// option, its value and default, as --help-markdown prints them from the one table.
TEST(TrackerDaemon, TheReadmeListsEveryOptionAsTheBinaryDeclaresIt) {
  const ProcessResult table = run_process({kTracker, "--help-markdown"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  ASSERT_NE(table.out.find("| `--docker-socket PATH` | `/var/run/docker.sock` |"), std::string::npos) << table.out;
  const auto section = marked_section(std::string(SKOPOS_SOURCE_DIR) + "/README.md", "skopos-tracker --help-markdown");
  ASSERT_TRUE(section) << "README.md lost its skopos-tracker options table";
  EXPECT_EQ(*section, table.out) << "README.md's skopos-tracker options differ from the binary's: paste the output of "
                                    "'skopos-tracker --help-markdown' between the markers";
  // And --help shows the same options.
  const ProcessResult help = run_process({kTracker, "--help"});
  ASSERT_EQ(help.exit_code, 0);
  for (const char* option : {"--source auto|bpf|proc", "--coalesce-max D", "--stream-socket PATH", "--log-level LEVEL"}) {
    EXPECT_NE(help.out.find(std::string("  ") + option), std::string::npos) << option << "\n" << help.out;
  }
}

TEST(TrackerDaemon, WithoutPrivilegeAutoFallsBackToProcAndBpfRefusesToStart) {
  const ProcessResult fallback = unprivileged({"--once", "--docker-socket", "none", "--conntrack", "off"});
  ASSERT_EQ(fallback.exit_code, 0) << fallback.err;
#if SKOPOS_HAVE_BPF
  EXPECT_NE(fallback.err.find("falling back to /proc"), std::string::npos) << fallback.err;
#endif
  simdjson::dom::parser parser;
  const auto doc = parse(parser, fallback.out);
  EXPECT_EQ(std::string_view(doc["source"].get_string().value()), "proc");
  EXPECT_GE(doc["namespaces"].get_array().size(), 1u) << "its own namespace at least";

  const ProcessResult bpf = unprivileged({"--once", "--source", "bpf", "--docker-socket", "none", "--conntrack", "off"});
  EXPECT_EQ(bpf.exit_code, 1);
#if SKOPOS_HAVE_BPF
  EXPECT_NE(bpf.err.find("cannot start: bpf load \"conn_tracker\": loading BPF programs needs root"), std::string::npos)
      << bpf.err;
#else
  EXPECT_NE(bpf.err.find("this build has no BPF support"), std::string::npos) << bpf.err;
#endif
  EXPECT_TRUE(bpf.out.empty());

  const ProcessResult conntrack = unprivileged({"--once", "--source", "proc", "--docker-socket", "none", "--conntrack", "on"});
  EXPECT_EQ(conntrack.exit_code, 1);
  EXPECT_NE(conntrack.err.find("cannot start: nfct_open events \"conntrack\""), std::string::npos) << conntrack.err;
}

// --coalesce-max defaults to 4 ms but never below --coalesce: a configuration that set
// only a longer --coalesce (valid before --coalesce-max existed) still starts.
TEST(TrackerDaemon, ALongCoalesceAloneRaisesTheCeilingInsteadOfFailing) {
  const ProcessResult result =
      unprivileged({"--once", "--source", "proc", "--conntrack", "off", "--docker-socket", "none", "--coalesce", "5ms"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
}

TEST(TrackerDaemon, WithoutDockerItStillReportsNamespacesAndSaysContainersAreUnknown) {
  const ProcessResult result = unprivileged({"--once", "--source", "proc", "--conntrack", "off", "--docker-socket",
                                             "/nonexistent/docker.sock", "--docker-timeout", "300ms"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("docker API unavailable"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("/nonexistent/docker.sock"), std::string::npos) << result.err;
  simdjson::dom::parser parser;
  const auto doc = parse(parser, result.out);
  EXPECT_FALSE(doc["containers_known"].get_bool().value());
  EXPECT_EQ(doc["containers"].get_array().size(), 0u);
  EXPECT_GE(doc["namespaces"].get_array().size(), 1u);
}

TEST(TrackerDaemon, ConfigFileSettingsApplyAndTheCommandLineWins) {
  TempConfig config("source = proc\ndocker-socket = none\nconntrack = off\nformat = \"table\"\n");
  const ProcessResult table = unprivileged({"--config", config.path(), "--once"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("NETNS"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("source: proc"), std::string::npos) << table.out;

  const ProcessResult json = unprivileged({"--config", config.path(), "--once", "--format", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  simdjson::dom::parser parser;
  EXPECT_EQ(std::string_view(parse(parser, json.out)["source"].get_string().value()), "proc");
}

}  // namespace
