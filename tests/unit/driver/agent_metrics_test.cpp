// The agent's metrics file: each gate's state (open, held, unknown) per check point,
// what the turns did, sentinel failures; written when a value changes, else at most
// every 15 s; a place that refuses the file is named. The gate states come from every
// gate evaluated on its own (pauses_and_windows here; the health gates against real
// servers in tests/integration/health_gates_test.cpp).
#include "driver/agent_metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "driver/pauses.h"
#include "metrics_doc.h"
#include "text_lines.h"

namespace skopos::driver {
namespace {


std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(AgentMetrics, EachGatesStatePerPointTheTurnsAndSentinelFailures) {
  AgentMetrics metrics("/nonexistent/agent.prom", "worker-3", "worker");
  std::string text = metrics.text();
  EXPECT_LINE(text, "skopos_agent_info{host=\"worker-3\",tier=\"worker\"} 1");
  EXPECT_LINE(text, "skopos_agent_sentinel_failures_total{host=\"worker-3\"} 0");
  EXPECT_EQ(text.find("skopos_agent_gate_open"), std::string::npos) << "no gate checked yet: no gate series";

  metrics.gates("start", {{"pause", true, false, "not paused"},
                          {"window", true, false, "no maintenance windows"},
                          {"alerts", false, false, "firing alert HostsUnhealthy{}"},
                          {"query", false, true, "Prometheus query 'up' cannot be evaluated: refused"}},
                1000);
  metrics.gates("release", {{"alerts", true, false, "no firing alerts"}}, 1001);
  metrics.turn(AgentTurn::kGated, 1000);
  metrics.turn(AgentTurn::kGated, 1002);
  metrics.sentinel_failures(3);
  metrics.notifications("webhook http://hooks/x", 7, 1, 0);
  EXPECT_EQ(metrics.text().find("skopos_agent_fence_without_drain"), std::string::npos) << "not looked at yet";
  metrics.fence_without_drain(std::nullopt);
  EXPECT_EQ(metrics.text().find("skopos_agent_fence_without_drain"), std::string::npos) << "unknown is not 0";
  metrics.fence_without_drain(true);
  text = metrics.text();
  EXPECT_LINE(text, "skopos_agent_fence_without_drain{host=\"worker-3\"} 1");
  EXPECT_LINE(text,
              "skopos_agent_notifications_total{host=\"worker-3\",destination=\"webhook http://hooks/x\","
              "result=\"undelivered\"} 1");
  EXPECT_LINE(text, "skopos_agent_gate_open{host=\"worker-3\",point=\"start\",gate=\"pause\"} 1");
  EXPECT_LINE(text, "skopos_agent_gate_open{host=\"worker-3\",point=\"start\",gate=\"alerts\"} 0");
  EXPECT_LINE(text, "skopos_agent_gate_open{host=\"worker-3\",point=\"start\",gate=\"query\"} 0");
  EXPECT_LINE(text, "skopos_agent_gate_open{host=\"worker-3\",point=\"release\",gate=\"alerts\"} 1");
  EXPECT_LINE(text, "skopos_agent_gate_unknown{host=\"worker-3\",point=\"start\",gate=\"query\"} 1");
  EXPECT_LINE(text, "skopos_agent_gate_unknown{host=\"worker-3\",point=\"start\",gate=\"alerts\"} 0");
  EXPECT_LINE(text, "skopos_agent_gate_unknown_checks_total{host=\"worker-3\",point=\"start\",gate=\"query\"} 1");
  EXPECT_LINE(text,
              "skopos_agent_gate_checked_timestamp_seconds{host=\"worker-3\",point=\"release\",gate=\"alerts\"} 1001");
  EXPECT_LINE(text, "skopos_agent_turn{host=\"worker-3\",turn=\"gated\"} 1");
  EXPECT_LINE(text, "skopos_agent_turn{host=\"worker-3\",turn=\"idle\"} 0");
  EXPECT_LINE(text, "skopos_agent_turns_total{host=\"worker-3\",turn=\"gated\"} 2");
  EXPECT_LINE(text, "skopos_agent_last_turn_timestamp_seconds{host=\"worker-3\"} 1002");
  EXPECT_LINE(text, "skopos_agent_sentinel_failures_total{host=\"worker-3\"} 3");
  // Each family has its HELP and TYPE once.
  EXPECT_LINE(text, "# TYPE skopos_agent_gate_unknown_checks_total counter");
  EXPECT_LINE(text, "# TYPE skopos_agent_gate_open gauge");
  // Every family documented as it is, and clean for promtool.
  for (const std::string& problem : testing::undocumented_metrics(text, "skopos agent (--agent-metrics-file)")) {
    ADD_FAILURE() << problem;
  }
  EXPECT_EQ(testing::promtool_check_metrics(text), "");
}

// A request cancelled while a gate was unknown: the gate is not checked any more, and
// its series go (an alert on them would fire for good); the counter stays.
TEST(AgentMetrics, ATurnThatChecksNoGateRemovesTheGateSeriesButNotTheirCounter) {
  AgentMetrics metrics("/nonexistent/agent.prom", "h", "worker");
  metrics.gates("start", {{"alerts", false, true, "Alertmanager cannot be evaluated: refused"}}, 1000);
  metrics.turn(AgentTurn::kGated, 1000);
  EXPECT_LINE(metrics.text(), "skopos_agent_gate_unknown{host=\"h\",point=\"start\",gate=\"alerts\"} 1");
  metrics.turn(AgentTurn::kIdle, 1010);
  const std::string text = metrics.text();
  EXPECT_EQ(text.find("skopos_agent_gate_unknown{"), std::string::npos) << text;
  EXPECT_EQ(text.find("skopos_agent_gate_open{"), std::string::npos) << text;
  EXPECT_LINE(text, "skopos_agent_gate_unknown_checks_total{host=\"h\",point=\"start\",gate=\"alerts\"} 1");
  EXPECT_LINE(text, "skopos_agent_turn{host=\"h\",turn=\"idle\"} 1");
}

TEST(AgentMetrics, TheFileIsWrittenOnAChangeAndOtherwiseEveryFifteenSeconds) {
  const std::string dir = "/tmp/skopos-agent-metrics-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/agent.prom";
  AgentMetrics metrics(path, "h", "worker");
  ASSERT_TRUE(metrics.flush(1000));
  EXPECT_NE(read(path).find("skopos_agent_info"), std::string::npos);

  metrics.gates("start", {{"window", false, false, "outside window 'nights'"}}, 1001);
  ASSERT_TRUE(metrics.flush(1001));
  EXPECT_NE(read(path).find("gate=\"window\"} 0"), std::string::npos) << "a new gate is written at once";
  std::filesystem::remove(path);
  // The same state checked again: nothing to write until 15 s after the last write.
  metrics.gates("start", {{"window", false, false, "outside window 'nights'"}}, 1005);
  ASSERT_TRUE(metrics.flush(1005));
  EXPECT_FALSE(std::filesystem::exists(path)) << "an unchanged state is not written at every check";
  ASSERT_TRUE(metrics.flush(1016));
  EXPECT_NE(read(path).find("checked_timestamp_seconds{host=\"h\",point=\"start\",gate=\"window\"} 1005"),
            std::string::npos)
      << read(path);
  // A change is written at once.
  std::filesystem::remove(path);
  metrics.gates("start", {{"window", true, false, "inside window 'nights'"}}, 1017);
  ASSERT_TRUE(metrics.flush(1017));
  EXPECT_NE(read(path).find("gate=\"window\"} 1"), std::string::npos);
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    EXPECT_EQ(entry.path().filename(), "agent.prom") << "no temporary file left beside it";
  }

  AgentMetrics nowhere(dir + "/missing/agent.prom", "h", "worker");
  auto refused = nowhere.flush(1000);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find("missing/agent.prom"), std::string::npos) << refused.error();
  std::filesystem::remove_all(dir);
}

TEST(AgentMetrics, APauseAndTheWindowsAreEachEvaluatedAndUnknownIsMarked) {
  using Pauses = Result<std::vector<Pause>, std::string>;
  using Windows = Result<std::vector<WindowStore::Stored>, std::string>;
  const SysSeconds now{std::chrono::seconds(1796731200)};  // 2026-12-08 12:00 UTC, a Tuesday
  auto nightly_window = make_window("n", "daily", "01:00", "1h", "UTC");
  ASSERT_TRUE(nightly_window);
  const Windows nightly = std::vector<WindowStore::Stored>{{WindowStore::Scope::kTier, "worker", *nightly_window, ""}};
  const Pauses paused = std::vector<Pause>{{WindowStore::Scope::kHost, "h", "disk", "ops", 1796480000, ""}};

  // Paused and outside the window: both gates show closed, the pause decides.
  WindowVerdict verdict = pauses_and_windows(paused, nightly, {}, "worker", "h", now);
  ASSERT_EQ(verdict.gates.size(), 2U);
  EXPECT_EQ(verdict.gates[0].gate, "pause");
  EXPECT_FALSE(verdict.gates[0].open);
  EXPECT_EQ(verdict.gates[1].gate, "window");
  EXPECT_FALSE(verdict.gates[1].open);
  EXPECT_NE(verdict.gates[1].reason.find("outside window 'n'"), std::string::npos) << verdict.gates[1].reason;
  EXPECT_EQ(verdict.reason.rfind("host h paused by ops", 0), 0U) << verdict.reason;
  EXPECT_FALSE(verdict.unknown);

  // Not paused: the pause gate is open, the window's decides.
  verdict = pauses_and_windows(Pauses(std::vector<Pause>{}), nightly, {}, "worker", "h", now);
  EXPECT_TRUE(verdict.gates[0].open);
  EXPECT_FALSE(verdict.open);
  EXPECT_EQ(verdict.reason, verdict.gates[1].reason);
  EXPECT_TRUE(verdict.next_change.has_value());

  // Unreadable lists and a garbled pause record: closed and unknown.
  verdict = pauses_and_windows(Pauses(unexpected(std::string("etcd away"))), nightly, {}, "worker", "h", now);
  EXPECT_TRUE(verdict.unknown);
  EXPECT_TRUE(verdict.gates[0].unknown);
  EXPECT_FALSE(verdict.gates[1].unknown);
  verdict = pauses_and_windows(Pauses(std::vector<Pause>{}), Windows(unexpected(std::string("etcd away"))), {},
                               "worker", "h", now);
  EXPECT_TRUE(verdict.unknown);
  EXPECT_TRUE(verdict.gates[1].unknown);
  EXPECT_TRUE(verdict.gates[0].open);
  const Pauses garbled = std::vector<Pause>{{WindowStore::Scope::kTier, "", "", "", 0, "not JSON"}};
  verdict = pauses_and_windows(garbled, nightly, {}, "worker", "h", now);
  EXPECT_FALSE(verdict.open);
  EXPECT_TRUE(verdict.gates[0].unknown) << verdict.gates[0].reason;
}

}  // namespace
}  // namespace skopos::driver
