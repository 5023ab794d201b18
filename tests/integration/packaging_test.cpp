// What a package ships and an operator reads first: every program's --version names the
// version, the source revision and the build; the example config files the package
// installs under /etc/skopos/ are what the programs print from their option tables; the
// man pages and shell completions the build makes from the programs' --help render and
// complete what the programs take.
#include <gtest/gtest.h>

#include <simdjson.h>

#include <cctype>
#include <string>
#include <tuple>
#include <vector>

#include "process.h"
#include "text_lines.h"

namespace {

using skopos::testing::ProcessResult;
using skopos::testing::read_file;
using skopos::testing::run_process;

TEST(Packaging, EveryProgramPrintsItsVersionRevisionBuildAndBpf) {
  for (const auto& [name, path] : std::vector<std::pair<std::string, std::string>>{
           {"skopos", SKOPOS_CLI}, {"skopos-tracker", SKOPOS_TRACKER}, {"tracker-cli", SKOPOS_TRACKER_CLI}}) {
    const ProcessResult run = run_process({path, "--version"});
    ASSERT_EQ(run.exit_code, 0) << name << ": " << run.err;
    EXPECT_EQ(run.out.rfind(name + " " + SKOPOS_VERSION + "\n", 0), 0u) << run.out;
    EXPECT_NE(run.out.find("\nrevision: "), std::string::npos) << run.out;
    EXPECT_EQ(run.out.find("\nrevision: \n"), std::string::npos) << "an empty revision: " << run.out;
    EXPECT_NE(run.out.find("\nbuild: " + std::string(SKOPOS_BUILD_TYPE) + ", "), std::string::npos) << run.out;
    EXPECT_NE(run.out.find(SKOPOS_HAVE_BPF ? "\nbpf: built in" : "\nbpf: not built"), std::string::npos) << run.out;
    EXPECT_TRUE(run.err.empty()) << run.err;
  }
}

// The files in the repository are the ones installed; regenerate them with the command
// the message names when an option changes.
TEST(Packaging, TheInstalledExampleConfigsAreWhatTheProgramsPrint) {
  const std::string source = SKOPOS_SOURCE_DIR;
  for (const auto& [file, command] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {source + "/tracker/systemd/tracker.conf", {SKOPOS_TRACKER, "--example-config"}},
           {source + "/driver/systemd/skopos.conf", {SKOPOS_CLI, "agent", "--example-config"}}}) {
    const ProcessResult run = run_process(command);
    ASSERT_EQ(run.exit_code, 0) << run.err;
    EXPECT_NE(run.out.find("\n#log-level = info\n"), std::string::npos) << run.out;
    EXPECT_EQ(read_file(file), run.out) << file << " differs from what the program prints: regenerate it with '"
                                        << command[0] << (command.size() > 2 ? " agent" : "")
                                        << " --example-config'";
  }
}

// The man pages and completions are built only where the programs run at build time
// (not in a cross or fuzzing build, cmake/Docs.cmake): their tests exist where they are.
#if SKOPOS_HAVE_DOCS
const std::string kDocs = SKOPOS_DOCS_DIR;

// Each page renders with man's warnings on (no unknown macro, no line it cannot fit),
// and holds every option the program's --help lists.
TEST(Packaging, ManPagesRenderWithoutWarningsAndListEveryOption) {
  const auto rendered = [](const std::string& page) {
    const ProcessResult run =
        run_process({"/usr/bin/env", "MANWIDTH=200", "LC_ALL=C.UTF-8", "man", "--warnings", "-l", kDocs + "/man/" + page});
    EXPECT_EQ(run.exit_code, 0) << page << ": " << run.err;
    EXPECT_TRUE(run.err.empty()) << page << " renders with warnings:\n" << run.err;
    return run.out;
  };
  const auto options = [](const std::vector<std::string>& command) {
    std::vector<std::string> names;
    const ProcessResult help = run_process(command);
    for (std::size_t at = help.out.find("\n  --"); at != std::string::npos; at = help.out.find("\n  --", at + 1)) {
      const std::size_t end = help.out.find_first_of(" =\n", at + 3);
      names.push_back(help.out.substr(at + 3, end - at - 3));
    }
    return names;
  };
  const std::string tracker = rendered("skopos-tracker.8");
  const auto tracker_options = options({SKOPOS_TRACKER, "--help"});
  ASSERT_GT(tracker_options.size(), 20u);
  for (const std::string& option : tracker_options) EXPECT_NE(tracker.find(option), std::string::npos) << option;
  const std::string skopos = rendered("skopos.8");
  for (const char* group : {"lock", "maintenance", "fence", "drain", "agent", "rolling-reboot", "window"}) {
    std::string section = std::string("SKOPOS ") + group;
    for (char& c : section) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_NE(skopos.find(section), std::string::npos) << section;
    for (const std::string& option : options({SKOPOS_CLI, group, "--help"})) {
      EXPECT_NE(skopos.find(option), std::string::npos) << "skopos " << group << " " << option;
    }
  }
  const std::string cli = rendered("tracker-cli.1");
  for (const std::string& option : options({SKOPOS_TRACKER_CLI, "decode", "--help"})) {
    EXPECT_NE(cli.find(option), std::string::npos) << option;
  }
  // Every setting of both example files, as "name = VALUE" at the start of its entry.
  const std::string conf = rendered("skopos.conf.5");
  int settings = 0;
  for (const std::string& example : {read_file(std::string(SKOPOS_SOURCE_DIR) + "/driver/systemd/skopos.conf"),
                                     read_file(std::string(SKOPOS_SOURCE_DIR) + "/tracker/systemd/tracker.conf")}) {
    for (std::size_t at = example.find("\n#"); at != std::string::npos; at = example.find("\n#", at + 1)) {
      const std::size_t equals = example.find(" = ", at);
      const std::size_t end = example.find('\n', at + 1);
      if (example[at + 2] == ' ' || equals == std::string::npos || equals > end) continue;
      const std::string name = example.substr(at + 2, equals - at - 2);
      ++settings;
      EXPECT_NE(conf.find("\n       " + name + " = "), std::string::npos) << name << " is not in skopos.conf(5)";
    }
  }
  EXPECT_GT(settings, 100);
}

// What bash offers after what was typed, with the generated completion loaded as
// bash-completion would.
std::string complete_bash(const std::string& program, const std::vector<std::string>& words) {
  std::string script = "source '" + kDocs + "/bash-completion/" + program + "'\nCOMP_WORDS=(";
  for (const std::string& word : words) script += "'" + word + "' ";
  script += ")\nCOMP_CWORD=" + std::to_string(words.size() - 1) + "\n";
  std::string function = "_" + program;
  for (char& c : function) c = c == '-' ? '_' : c;
  script += function + "\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n";
  const ProcessResult run = run_process({"/bin/bash", "--norc", "-c", script});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(run.err.empty()) << run.err;
  return run.out;
}

TEST(Packaging, BashCompletesCommandsOptionsAndTheirChoices) {
  EXPECT_EQ(complete_bash("skopos", {"skopos", "lo"}), "lock\n");
  EXPECT_EQ(complete_bash("skopos", {"skopos", "roll"}), "rolling-reboot\n");
  const std::string lock = complete_bash("skopos", {"skopos", "lock", ""});
  for (const char* word : {"status\n", "acquire\n", "set-max\n", "--etcd-endpoints\n", "--fencing-token\n"}) {
    EXPECT_NE(lock.find(word), std::string::npos) << word << " not in:\n" << lock;
  }
  // Options before the command, and their values, do not hide it.
  EXPECT_EQ(complete_bash("skopos", {"skopos", "--etcd-endpoints", "http://127.0.0.1:2379", "lock", "st"}), "status\n");
  EXPECT_EQ(complete_bash("skopos", {"skopos", "agent", "pause", "--tier", ""}), "control\nproxy\nworker\n");
  EXPECT_EQ(complete_bash("skopos-tracker", {"skopos-tracker", "--source", ""}), "auto\nbpf\nproc\n");
  EXPECT_EQ(complete_bash("skopos-tracker", {"skopos-tracker", "--bpf-u"}), "--bpf-unpin\n");
  EXPECT_EQ(complete_bash("tracker-cli", {"tracker-cli", "de"}), "decode\n");
  EXPECT_EQ(complete_bash("tracker-cli", {"tracker-cli", "decode", "--re"}), "--records\n");
}

#endif  // SKOPOS_HAVE_DOCS

// --log-format json: every log line is one JSON object a shipper can parse; a command's
// own result (its last line, on failure) stays for the person who ran it.
TEST(Packaging, LogFormatJsonGivesOneObjectPerLogLine) {
  const std::string socket = ::testing::TempDir() + "packaging-json-log.sock";
  // JOURNAL_STREAM inherited from a unit while stderr is a pipe (a child of a service):
  // not the journal, so no priority prefix in front of the objects.
  const ProcessResult tracker =
      run_process({"/usr/bin/env", "JOURNAL_STREAM=1:2", SKOPOS_TRACKER, "--source", "proc", "--docker-socket", "none",
                   "--conntrack", "off", "--once", "--stream-socket", socket, "--log-format", "json"});
  ASSERT_EQ(tracker.exit_code, 0) << tracker.err;
  // Nothing listens on port 1: a warning per failed try, then the command's error.
  const ProcessResult skopos = run_process({SKOPOS_CLI, "lock", "acquire", "reboot", "worker", "--timeout", "1s",
                                            "--log-format", "json", "--etcd-endpoints", "http://127.0.0.1:1",
                                            "--etcd-timeout", "300ms"});
  EXPECT_EQ(skopos.exit_code, 3) << skopos.err;
  simdjson::dom::parser parser;
  for (const auto& [program, err, plain_tail] : {std::tuple{std::string("skopos-tracker"), tracker.err, 0},
                                                 std::tuple{std::string("skopos"), skopos.err, 1}}) {
    const std::vector<std::string> lines = skopos::testing::lines_of(err);
    ASSERT_GT(lines.size(), static_cast<std::size_t>(plain_tail)) << program << " logged nothing";
    for (std::size_t i = 0; i + static_cast<std::size_t>(plain_tail) < lines.size(); ++i) {
      simdjson::dom::element line;
      ASSERT_EQ(parser.parse(lines[i]).get(line), simdjson::SUCCESS) << program << ": " << lines[i];
      EXPECT_EQ(std::string_view(line["program"]), program);
      std::string_view message;
      EXPECT_EQ(line["message"].get(message), simdjson::SUCCESS);
      EXPECT_FALSE(message.empty());
    }
    if (plain_tail == 1) {
      EXPECT_EQ(lines.back().rfind("skopos: read lock 'reboot' group 'worker': ", 0), 0u) << lines.back();
    }
  }
}

#if SKOPOS_HAVE_DOCS
TEST(Packaging, ZshCompletionsParse) {
  for (const char* program : {"skopos", "skopos-tracker", "tracker-cli"}) {
    const std::string file = kDocs + "/zsh/_" + program;
    EXPECT_EQ(read_file(file).rfind(std::string("#compdef ") + program + "\n", 0), 0u) << file;
    const ProcessResult run = run_process({"/usr/bin/zsh", "-n", file});
    EXPECT_EQ(run.exit_code, 0) << file << ": " << run.err;
  }
}
#endif  // SKOPOS_HAVE_DOCS

}  // namespace
