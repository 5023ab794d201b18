// What a package ships and an operator reads first: every program's --version names the
// version, the source revision and the build, and the example config files the package
// installs under /etc/skopos/ are what the programs print from their option tables.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "process.h"

namespace {

using skopos::testing::ProcessResult;
using skopos::testing::run_process;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

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

}  // namespace
