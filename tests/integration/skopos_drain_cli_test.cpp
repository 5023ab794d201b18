// skopos drain / undrain / booster as an operator meets them when something is wrong:
// bad flags and values are usage errors naming what was wrong (exit 2) before anything is
// contacted; --status reads the journal; a journal that cannot be read stops the drain
// and says which file and what is wrong (nothing is guessed); a second driver on the same
// host is refused (exit 4) while the first holds the host's drain lock. Every option is
// declared once: the config file sets what the command line does, and the README's
// tables are the binary's.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "process.h"

namespace {

using skopos::testing::ProcessResult;
using skopos::testing::marked_section;
using skopos::testing::run_process;

class SkoposDrainCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/skopos-drain-cli-" + std::to_string(::getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  // `skopos COMMAND` with a private journal and nothing reachable behind it.
  ProcessResult skopos(const std::string& command, std::vector<std::string> extra = {}) const {
    std::vector<std::string> argv{SKOPOS_CLI, command, "--journal", dir_ + "/journal", "--machine-id", "cli-test",
                                  "--etcd-endpoints", "http://127.0.0.1:1", "--docker-socket",
                                  "unix://" + dir_ + "/none.sock", "--tracker-socket", dir_ + "/none.sock"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_process(argv);
  }
  std::string dir_;
};

TEST_F(SkoposDrainCli, BadFlagsAndValuesAreUsageErrorsThatNameThem) {
  const struct {
    std::string command;
    std::vector<std::string> args;
    std::string says;
  } cases[] = {
      {"drain", {"--tier", "sideways"}, "--tier 'sideways' is not control, proxy or worker"},
      {"drain", {"--connection-deadline", "soon"}, "'--connection-deadline': 'soon' is not a duration"},
      {"drain", {"--abort", "--dry-run"}, "cannot be combined with --dry-run or --reboot"},
      {"drain", {"--mark-gone"}, "--mark-gone is for 'skopos booster'"},
      {"booster", {"--reboot"}, "a booster drain does not reboot"},
      {"drain", {"now"}, "takes no arguments ('now')"},
      {"drain", {"--mesos-mode", "sometimes"}, "--mesos-mode 'sometimes' is not auto, schedule or drain-api"},
      {"drain", {"--fence-ipv6", "maybe"}, "--fence-ipv6 'maybe' is not on or off"},
      {"drain", {"--marathon", "ftp://x"}, "--marathon: 'ftp://x' is not an http:// or https:// URL"},
      {"drain", {"--health-check-port", "8080"}, "--health-check-port and --health-check-match go together"},
      {"undrain", {"--frobnicate"}, "frobnicate"},
      // A shared option's error names the command that was run.
      {"agent", {"--tier", "sideways"}, "skopos agent: --tier 'sideways' is not control, proxy or worker"},
      {"booster", {"--fence-ipv6", "maybe"}, "skopos booster: --fence-ipv6 'maybe' is not on or off"},
  };
  for (const auto& c : cases) {
    const ProcessResult result = skopos(c.command, c.args);
    EXPECT_EQ(result.exit_code, 2) << c.command << " " << c.args[0] << ": " << result.err;
    EXPECT_NE(result.err.find(c.says), std::string::npos) << result.err;
  }
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/journal.lock")) << "nothing was started";
}

TEST_F(SkoposDrainCli, TheConfigFileSetsDrainOptionsAndTheCommandLineWins) {
  {
    std::ofstream config(dir_ + "/skopos.conf");
    config << "# drain settings\njournal = " << dir_ << "/from-config\ntier = control\n";
  }
  // --status reads the journal the file names (the fixture's --journal is given first on
  // the command line, so run without it here).
  const ProcessResult from_file = run_process({SKOPOS_CLI, "drain", "--status", "--config", dir_ + "/skopos.conf"});
  EXPECT_EQ(from_file.exit_code, 0) << from_file.err;
  EXPECT_NE(from_file.out.find("no drain in progress (journal " + dir_ + "/from-config)"), std::string::npos)
      << from_file.out;
  const ProcessResult wins = run_process({SKOPOS_CLI, "drain", "--status", "--config", dir_ + "/skopos.conf",
                                          "--journal", dir_ + "/from-flag"});
  EXPECT_NE(wins.out.find("(journal " + dir_ + "/from-flag)"), std::string::npos) << wins.out;
  // A bad value in the file is named as the flag would be, and so is an unknown name.
  {
    std::ofstream config(dir_ + "/bad.conf");
    config << "fence-ipv6 = maybe\n";
  }
  const ProcessResult bad = skopos("agent", {"--config", dir_ + "/bad.conf"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("--fence-ipv6 'maybe' is not on or off"), std::string::npos) << bad.err;
  {
    std::ofstream config(dir_ + "/unknown.conf");
    config << "connection-dedline = 5m\n";
  }
  const ProcessResult unknown = skopos("drain", {"--config", dir_ + "/unknown.conf"});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.err;
  EXPECT_NE(unknown.err.find("connection-dedline"), std::string::npos) << unknown.err;
}

TEST_F(SkoposDrainCli, TheReadmeListsEveryOptionAsTheBinaryDeclaresIt) {
  const ProcessResult tables = run_process({SKOPOS_CLI, "--help-markdown"});
  ASSERT_EQ(tables.exit_code, 0) << tables.err;
  ASSERT_NE(tables.out.find("| `--tier control\\|proxy\\|worker` | `worker` |"), std::string::npos) << tables.out;
  ASSERT_NE(tables.out.find("| `--recheck D` | `1m` |"), std::string::npos) << tables.out;
  const auto section = marked_section(std::string(SKOPOS_SOURCE_DIR) + "/README.md", "skopos --help-markdown");
  ASSERT_TRUE(section) << "README.md lost its skopos options tables";
  EXPECT_EQ(*section, tables.out) << "README.md's skopos options differ from the binary's: paste the output of "
                                     "'skopos --help-markdown' between the markers";
  // And each command's --help shows the same options.
  const ProcessResult drain = run_process({SKOPOS_CLI, "drain", "--help"});
  const ProcessResult agent = run_process({SKOPOS_CLI, "agent", "--help"});
  ASSERT_EQ(drain.exit_code, 0);
  ASSERT_EQ(agent.exit_code, 0);
  for (const char* option : {"--tier control|proxy|worker", "--mesos-master URLS", "--etcd-endpoints URLS", "--dry-run"}) {
    EXPECT_NE(drain.out.find(std::string("  ") + option), std::string::npos) << option << "\n" << drain.out;
  }
  for (const char* option : {"--trigger-file PATH", "--fence-allow CIDR,...", "--log-level"}) {
    EXPECT_NE(agent.out.find(std::string("  ") + option), std::string::npos) << option << "\n" << agent.out;
  }
}

TEST_F(SkoposDrainCli, StatusReadsTheJournal) {
  const ProcessResult none = skopos("drain", {"--status"});
  EXPECT_EQ(none.exit_code, 0) << none.err;
  EXPECT_NE(none.out.find("no drain in progress"), std::string::npos) << none.out;
  std::ofstream(dir_ + "/journal")
      << R"({"drain_id":"d-1","phase":"wait","fencing_token":12,"boot_id":"b","at":1795000000,"facts":{"kind":"REBOOT","tier":"worker","lock":"reboot","fencing_token":"12","host_lock_revision":"3","boot_id":"b","mesos_mode":"schedule","fenced_ports":"31000","containers":"abcdef0123456789:mesos-1"}})"
      << "\n";
  const ProcessResult json = skopos("drain", {"--status", "--json"});
  EXPECT_EQ(json.exit_code, 0) << json.err;
  EXPECT_NE(json.out.find(R"("in_progress":true,"drain_id":"d-1","phase":"wait")"), std::string::npos) << json.out;
  const ProcessResult text = skopos("drain", {"--status"});
  EXPECT_NE(text.out.find("drain 'd-1': REBOOT, tier worker, phase wait"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("container            mesos-1 (abcdef012345)"), std::string::npos) << text.out;
}

TEST_F(SkoposDrainCli, AJournalThatCannotBeReadStopsTheDrainAndSaysWhy) {
  std::ofstream(dir_ + "/journal")
      << R"({"drain_id":"d-1","phase":"banana","fencing_token":0,"boot_id":"b","at":1,"facts":{}})" << "\n";
  const ProcessResult status = skopos("drain", {"--status"});
  EXPECT_EQ(status.exit_code, 3);
  EXPECT_NE(status.err.find("phase 'banana' is not a drain phase"), std::string::npos) << status.err;
  const ProcessResult drain = skopos("drain");
  EXPECT_EQ(drain.exit_code, 2) << drain.err;
  EXPECT_NE(drain.err.find(dir_ + "/journal"), std::string::npos) << drain.err;
  EXPECT_NE(drain.err.find("inspect it, or move it away"), std::string::npos) << drain.err;

  std::ofstream(dir_ + "/journal")
      << R"({"drain_id":"d-1","phase":"fence","fencing_token":0,"boot_id":"b","at":1,"facts":{"kind":"DRAIN","tier":"worker","lock":"","fencing_token":"0","host_lock_revision":"2","boot_id":"b","mesos_mode":"schedule","fenced_ports":"31000,http"}})"
      << "\n";
  const ProcessResult bad_fact = skopos("undrain");
  EXPECT_EQ(bad_fact.exit_code, 2) << bad_fact.err;
  EXPECT_NE(bad_fact.err.find("fact fenced_ports has 'http', not a port"), std::string::npos) << bad_fact.err;
}

TEST_F(SkoposDrainCli, ASecondDriverOnTheSameHostIsRefused) {
  // Hold the host's drain lock as a running driver would.
  const int fd = ::open((dir_ + "/journal.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  const std::string pid = std::to_string(::getpid()) + "\n";
  ASSERT_EQ(::write(fd, pid.data(), pid.size()), static_cast<ssize_t>(pid.size()));
  const ProcessResult second = skopos("drain");
  EXPECT_EQ(second.exit_code, 4) << second.err;
  EXPECT_NE(second.err.find("another skopos drain (pid " + std::to_string(::getpid()) + ") is running"),
            std::string::npos)
      << second.err;
  // A dry run changes nothing, so it does not need the lock.
  const ProcessResult dry = skopos("drain", {"--dry-run", "--etcd-timeout", "200ms"});
  EXPECT_EQ(dry.err.find("another skopos drain"), std::string::npos) << dry.err;
  ::close(fd);
}

}  // namespace
