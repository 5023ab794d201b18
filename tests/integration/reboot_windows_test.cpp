// Maintenance windows against a real etcd: the store (a host's windows narrow its
// tier's; garbage under a window key closes the gate and is named), `skopos window` as
// an operator runs it, and `skopos agent` itself: outside its window it stays out of
// the line and says why on systemd's STATUS; a window set to open now wakes it through
// its watch and its drain starts. (Windows in time -- midnight, DST -- are unit tests.)
#include "driver/reboot_windows.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <simdjson.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "etcd_server.h"
#include "agent_process.h"
#include "clock_text.h"
#include "lock_test_support.h"
#include "metrics_doc.h"
#include "process.h"
#include "systemd_support.h"

namespace skopos::driver {
namespace {

using namespace std::chrono_literals;
using skopos::testing::AgentProcess;
using skopos::driver::testing::OneEtcdTest;
using skopos::testing::ProcessResult;
using skopos::testing::run_process;
using Clock = std::chrono::steady_clock;

SysSeconds now() { return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()); }

using skopos::testing::utc_clock;

class RebootWindowsTest : public OneEtcdTest {
 protected:
  ProcessResult window(std::vector<std::string> args) {
    std::vector<std::string> argv = {SKOPOS_CLI, "window"};
    argv.insert(argv.end(), args.begin(), args.end());
    for (const std::string& option :
         {std::string("--etcd-endpoints"), server_->endpoint(), std::string("--etcd-prefix"), prefix_}) {
      argv.push_back(option);
    }
    return run_process(argv);
  }
  ProcessResult rolling(std::vector<std::string> args) {
    std::vector<std::string> argv = {SKOPOS_CLI, "rolling-reboot", "--tier", "worker", "--etcd-endpoints",
                                     server_->endpoint(), "--etcd-prefix", prefix_, "--machine-id", "admin"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv);
  }
  RebootWindow make(std::string_view name, std::string_view days, std::string_view start, std::string_view duration) {
    auto made = make_window(name, days, start, duration, "UTC");
    if (!made) {
      ADD_FAILURE() << made.error();
      return {};
    }
    return std::move(made).value();
  }
};

TEST_F(RebootWindowsTest, TheStoreKeepsWindowsPerTierAndHostAndGarbageClosesTheGate) {
  WindowStore store(*raw_, prefix_);
  ASSERT_TRUE(store.set(WindowStore::Scope::kTier, "worker", make("nights", "daily", "00:00", "6h")));
  ASSERT_TRUE(store.set(WindowStore::Scope::kTier, "proxy", make("days", "daily", "12:00", "6h")));
  ASSERT_TRUE(store.set(WindowStore::Scope::kHost, "h1", make("early", "daily", "04:00", "4h")));
  ASSERT_TRUE(store.set(WindowStore::Scope::kHost, "h2", make("late", "daily", "20:00", "1h")));

  auto set = store.for_host("worker", "h1");
  ASSERT_TRUE(set) << set.error();
  ASSERT_EQ(set->tier.size(), 1U);
  EXPECT_EQ(set->tier[0].describe(), "daily 00:00 6h UTC");
  ASSERT_EQ(set->host.size(), 1U) << "h2's windows are not h1's";
  EXPECT_EQ(set->host[0].name, "early");
  EXPECT_TRUE(set->problems.empty());

  // A value that is not a window, under this host's tier: the gate is closed, and says
  // which key and what is wrong. Another tier's garbage is not this host's business.
  ASSERT_TRUE(raw_->put(prefix_ + "/windows/tier/proxy/broken", "not json"));
  set = store.for_host("worker", "h1");
  ASSERT_TRUE(set) << set.error();
  ASSERT_TRUE(set->problems.empty());
  ASSERT_TRUE(raw_->put(prefix_ + "/windows/tier/worker/broken", R"({"days":"someday"})"));
  set = store.for_host("worker", "h1");
  ASSERT_TRUE(set) << set.error();
  ASSERT_EQ(set->problems.size(), 1U);
  const WindowVerdict verdict = evaluate_windows(*set, now());
  EXPECT_FALSE(verdict.open);
  EXPECT_EQ(verdict.reason, "maintenance windows cannot be evaluated: window " + prefix_ +
                                "/windows/tier/worker/broken: no string \"start\"");

  // Clearing one window, then all of a tier's.
  EXPECT_EQ(store.clear(WindowStore::Scope::kTier, "worker", "broken").value_or(-1), 1);
  EXPECT_EQ(store.clear(WindowStore::Scope::kHost, "h1", "").value_or(-1), 1);
  set = store.for_host("worker", "h1");
  ASSERT_TRUE(set);
  EXPECT_TRUE(set->host.empty());
  EXPECT_EQ(set->tier.size(), 1U);
  auto all = store.list();
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 4U);  // worker/nights, proxy/days, proxy/broken, h2/late

  // etcd away: an error to the caller, who closes the gate (the agent does).
  auto away = testing::etcd_client({"http://127.0.0.1:1"});
  WindowStore unreachable(*away, prefix_);
  EXPECT_FALSE(unreachable.for_host("worker", "h1"));
}

TEST_F(RebootWindowsTest, TheWindowCommandSetsShowsAndClears) {
  ProcessResult set = window({"set", "--tier", "worker", "nights", "mon-fri", "01:00", "4h", "Europe/Berlin"});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  EXPECT_EQ(set.out, "window nights of tier worker: mon-fri 01:00 4h Europe/Berlin\n");
  set = window({"set", "--host", "h1", "always", "daily", "00:00", "168h", "--json"});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  EXPECT_EQ(set.out, R"({"scope":"host","owner":"h1","name":"always","window":"daily 00:00 168h UTC"})"
                     "\n");

  // Bad input: a clear error naming the part, exit 2, nothing written.
  ProcessResult bad = window({"set", "--tier", "worker", "oops", "mon-fri", "25:00", "4h"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("start '25:00': not a time of day as HH:MM"), std::string::npos) << bad.err;
  bad = window({"set", "--tier", "worker", "--host", "h1", "x", "daily", "01:00", "1h"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("give --tier T or --host H (one of them)"), std::string::npos) << bad.err;
  bad = window({"set", "--host", "db 7", "x", "daily", "01:00", "1h"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--host 'db 7' is not a host name"), std::string::npos) << bad.err;
  bad = window({"clear", "--tier", "worker", ""});
  EXPECT_EQ(bad.exit_code, 2) << "an empty NAME is not 'all'";
  bad = window({"set", "--tier", "nowhere", "x", "daily", "01:00", "1h"});
  EXPECT_EQ(bad.exit_code, 2) << bad.out;
  bad = window({"set", "--tier", "worker", "x", "daily", "01:00", "1h", "Mars/Olympus"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("zone 'Mars/Olympus'"), std::string::npos) << bad.err;

  ProcessResult show = window({"show"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("tier   worker  nights  mon-fri 01:00 4h Europe/Berlin"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("host   h1      always  daily 00:00 168h UTC"), std::string::npos) << show.out;
  EXPECT_EQ(show.out.find("oops"), std::string::npos) << "a refused window is not stored";

  // With a tier and a host: whether that host may start now, as its agent decides.
  ASSERT_EQ(window({"set", "--tier", "proxy", "now", "daily", utc_clock(-1min), "2h"}).exit_code, 0);
  show = window({"show", "--tier", "proxy", "--host", "h1", "--json"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_EQ(parser.parse(show.out).get(root), simdjson::SUCCESS) << show.out;
  EXPECT_TRUE(bool(root["gate"]["open"])) << show.out;
  EXPECT_EQ(root["windows"].get_array().size(), 2U) << show.out;
  ASSERT_EQ(window({"set", "--tier", "proxy", "now", "daily", utc_clock(120min), "1h"}).exit_code, 0);
  show = window({"show", "--tier", "proxy", "--host", "h1"});
  EXPECT_NE(show.out.find("h1 in tier proxy: may not start now (outside window 'now' (tier): opens "),
            std::string::npos)
      << show.out;

  ProcessResult cleared = window({"clear", "--tier", "worker"});
  ASSERT_EQ(cleared.exit_code, 0) << cleared.err;
  EXPECT_EQ(cleared.out, "1 window removed\n");
  cleared = window({"clear", "--host", "h1", "always", "--json"});
  EXPECT_EQ(cleared.out, "{\"removed\":1}\n");
  EXPECT_EQ(window({"show", "--tier", "worker"}).out, "no maintenance windows here\n");
}

// The agent as systemd runs it: a rolling reboot asks for a reboot, a closed window holds
// it (STATUS and rolling-reboot --status say why, no lock is taken), and a window set to
// open now starts the drain within seconds, woken by its etcd watch. The drain itself
// fails later (no Docker here), which does not matter: what is tested is when it starts.
TEST_F(RebootWindowsTest, AnAgentOutsideItsWindowWaitsSayingWhyAndStartsSoonAfterTheWindowOpens) {
  ASSERT_EQ(window({"set", "--tier", "worker", "nights", "daily", utc_clock(180min), "1h"}).exit_code, 0);
  ASSERT_EQ(rolling({}).exit_code, 0);
  AgentProcess agent(SKOPOS_CLI, server_->endpoint(), prefix_, "window");
  const std::string waiting = agent.status_starting("reboot requested, waiting: ", 15s);
  EXPECT_NE(waiting.find("outside window 'nights' (tier): opens "), std::string::npos) << waiting;
  std::this_thread::sleep_for(1s);
  auto host_lock = run_process({"etcdctl", "--endpoints", server_->endpoint(), "get", "--prefix",
                                prefix_ + "/hosts/", "--keys-only"});
  EXPECT_EQ(host_lock.out, "") << "outside the window the host takes nothing";
  // The roll's status shows why the host waits.
  const ProcessResult status = rolling({"--status"});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("hosts: 1 (0 done, 1 gated)"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("h-window  agent-window  gated  outside window 'nights' (tier): opens "), std::string::npos)
      << status.out;
  const ProcessResult metrics = rolling({"--status", "--metrics"});
  EXPECT_NE(metrics.out.find("skopos_rolling_reboot_hosts{tier=\"worker\",state=\"gated\"} 1"), std::string::npos)
      << metrics.out;

  // The window opens now: the watch wakes the agent, which starts the drain.
  const auto opened = Clock::now();
  ASSERT_EQ(window({"set", "--tier", "worker", "nights", "daily", utc_clock(-1min), "2h"}).exit_code, 0);
  const std::string started = agent.status_starting("reboot requested (rolling:", 20s);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - opened);
  EXPECT_FALSE(started.empty()) << "the drain did not start after the window opened";
  std::printf("window set to open now -> drain started: %lld ms (the recheck is 10 min)\n",
              static_cast<long long>(took.count()));
  EXPECT_LT(took, 20s);
  EXPECT_EQ(agent.stop(), 0);
}

// A pause holds a tier's agents from new turns, shows in every status, and a resume
// lets them go at once (the agent watches its pauses).
TEST_F(RebootWindowsTest, APausedTierTakesNoTurnAndAResumeLetsItGo) {
  const auto agent_cli = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {SKOPOS_CLI, "agent"};
    argv.insert(argv.end(), args.begin(), args.end());
    for (const std::string& option :
         {std::string("--etcd-endpoints"), server_->endpoint(), std::string("--etcd-prefix"), prefix_}) {
      argv.push_back(option);
    }
    return run_process(argv);
  };
  // Bad input first: exit 2, nothing written.
  EXPECT_EQ(agent_cli({"pause"}).exit_code, 2);
  EXPECT_EQ(agent_cli({"pause", "--host", "db 7"}).exit_code, 2);
  EXPECT_EQ(agent_cli({"pauses"}).out, "no pauses\n");

  ProcessResult paused = agent_cli({"pause", "--tier", "worker", "--reason", "kernel rollout on hold"});
  ASSERT_EQ(paused.exit_code, 0) << paused.err;
  EXPECT_EQ(paused.out, "tier worker paused: no new turns until 'skopos agent resume'\n");
  const ProcessResult listed = agent_cli({"pauses"});
  EXPECT_NE(listed.out.find("tier worker paused by "), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find(": kernel rollout on hold\n"), std::string::npos) << listed.out;

  ASSERT_EQ(rolling({}).exit_code, 0);
  AgentProcess agent(SKOPOS_CLI, server_->endpoint(), prefix_, "pause");
  const std::string waiting = agent.status_starting("reboot requested, waiting: ", 15s);
  EXPECT_NE(waiting.find("tier worker paused by "), std::string::npos) << waiting;
  EXPECT_NE(waiting.find(": kernel rollout on hold"), std::string::npos) << waiting;
  const ProcessResult status = rolling({"--status"});
  EXPECT_NE(status.out.find("h-pause  agent-pause  gated  tier worker paused by "), std::string::npos) << status.out;

  const auto resumed_at = Clock::now();
  const ProcessResult resumed = agent_cli({"resume", "--tier", "worker"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(resumed.out, "tier worker resumed\n");
  const std::string started = agent.status_starting("reboot requested (rolling:", 20s);
  EXPECT_FALSE(started.empty()) << "the drain did not start after the resume";
  std::printf("resume -> drain started: %lld ms (the recheck is 10 min)\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - resumed_at).count()));
  EXPECT_EQ(agent_cli({"resume", "--tier", "worker"}).out, "tier worker was not paused\n");
  EXPECT_EQ(agent.stop(), 0);
}

// `skopos lock status` shows why a host with a reboot requested may be in no line: the
// pauses and windows etcd holds, each tier's and host's evaluated, a garbled record as
// unknown -- in the table, --json and --metrics.
TEST_F(RebootWindowsTest, LockStatusShowsTheStartGatesInEtcdAndWhyEachIsClosed) {
  const auto skopos = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {SKOPOS_CLI};
    argv.insert(argv.end(), args.begin(), args.end());
    for (const std::string& option :
         {std::string("--etcd-endpoints"), server_->endpoint(), std::string("--etcd-prefix"), prefix_}) {
      argv.push_back(option);
    }
    return run_process(argv);
  };
  ProcessResult status = skopos({"lock", "status"});
  EXPECT_EQ(status.out.find("start gates"), std::string::npos) << "none configured, none shown:\n" << status.out;

  ASSERT_EQ(window({"set", "--tier", "worker", "nights", "daily", utc_clock(180min), "1h"}).exit_code, 0);
  ASSERT_EQ(window({"set", "--tier", "proxy", "always", "daily", utc_clock(-1min), "23h"}).exit_code, 0);
  ASSERT_EQ(skopos({"agent", "pause", "--host", "db-7", "--reason", "disk swap"}).exit_code, 0);
  ASSERT_TRUE(raw_->put(prefix_ + "/windows/tier/worker/broken", "not a window"));
  status = skopos({"lock", "status"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  // The table's line that starts with `start`, its columns one space apart.
  const auto row = [&](const std::string& start) {
    std::istringstream lines(status.out);
    for (std::string line; std::getline(lines, line);) {
      std::string words;
      for (std::size_t i = 0; i < line.size(); ++i) {
        if (line[i] != ' ' || (i > 0 && line[i - 1] != ' ')) words += line[i];
      }
      if (words.rfind(start, 0) == 0) return words;
    }
    return std::string();
  };
  EXPECT_NE(row("host db-7 pause closed host db-7 paused by ").find(": disk swap"), std::string::npos) << status.out;
  EXPECT_NE(row("tier proxy window open inside window 'always' (tier) until "), "") << status.out;
  EXPECT_NE(row("tier worker window unknown maintenance windows cannot be evaluated: "), "") << status.out;
  ASSERT_TRUE(raw_->delete_range(prefix_ + "/windows/tier/worker/broken"));
  status = skopos({"lock", "status"});
  EXPECT_NE(row("tier worker window closed outside window 'nights' (tier): opens "), "") << status.out;

  const ProcessResult json = skopos({"lock", "status", "--json"});
  EXPECT_NE(json.out.find(R"({"scope":"host","owner":"db-7","gate":"pause","open":false,"unknown":false,)"),
            std::string::npos)
      << json.out;
  const ProcessResult metrics = skopos({"lock", "status", "--metrics"});
  EXPECT_NE(metrics.out.find("skopos_start_gate_open{scope=\"tier\",owner=\"worker\",gate=\"window\"} 0\n"),
            std::string::npos)
      << metrics.out;
  EXPECT_NE(metrics.out.find("skopos_start_gate_open{scope=\"tier\",owner=\"proxy\",gate=\"window\"} 1\n"),
            std::string::npos)
      << metrics.out;
  // The gates' family documented as it is (SkoposLockCliTest checks the lock families,
  // which need holders and Mesos).
  const auto problems = skopos::testing::undocumented_metrics(
      metrics.out, "skopos lock status --metrics", {"skopos_lock_holders", "skopos_lock_holders_unknown_to_mesos",
                                       "skopos_lock_longest_wait_seconds", "skopos_lock_max", "skopos_lock_mesos_up",
                                       "skopos_lock_stale_holders", "skopos_lock_waiters"});
  for (const std::string& problem : problems) ADD_FAILURE() << problem;
  EXPECT_EQ(skopos::testing::promtool_check_metrics(metrics.out), "");
}

}  // namespace
}  // namespace skopos::driver
