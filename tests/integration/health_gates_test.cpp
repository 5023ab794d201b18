// Health gates against a real Prometheus and Alertmanager (tests/support/prometheus_stack.h)
// with alerting rules of the test's own, and the soak against a real etcd: a query
// returning a series closes the gate and names it, a bound lets values through, a
// firing alert holds, a silenced, resolved, pending or ignored one does not, and a
// gate that cannot be evaluated -- Prometheus down, a bad query, a garbled record --
// is closed with the reason.
#include "driver/health_gates.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent_process.h"
#include "lock_test_support.h"
#include "process.h"
#include "prometheus_stack.h"

namespace skopos::driver {
namespace {

using namespace std::chrono_literals;
using skopos::testing::AgentProcess;
using skopos::driver::testing::OneEtcdTest;
using skopos::testing::PrometheusStack;
using skopos::testing::read_file;
using Clock = std::chrono::steady_clock;

constexpr const char* kRules =
    "      - alert: HostsUnhealthy\n"
    "        expr: test_unhealthy > 0\n"
    "        labels: {severity: critical}\n"
    "      - alert: SlowBurn\n"
    "        expr: test_slow > 0\n"
    "        for: 1h\n"
    "        labels: {severity: critical}\n"
    "      - alert: DrainCaused\n"
    "        expr: test_drain_caused > 0\n"
    "        labels: {severity: critical, cause: drain}\n";

HttpEndpoint endpoint(const std::string& url) {
  auto parsed = HttpEndpoint::parse(url);
  EXPECT_TRUE(parsed) << url;
  return *parsed;
}

std::vector<AlertMatcher> selector(const std::string& text) {
  auto parsed = parse_alert_selector(text);
  EXPECT_TRUE(parsed) << (parsed ? "" : parsed.error());
  return parsed ? *parsed : std::vector<AlertMatcher>{};
}

std::unique_ptr<HealthGates> gates(HealthGateOptions options, SoakRecord* soak = nullptr) {
  options.timeout = 2s;
  auto made = HealthGates::create(std::move(options), soak, "worker");
  EXPECT_TRUE(made) << (made ? "" : made.error());
  return made ? std::move(made).value() : nullptr;
}

// Checks until the verdict is `open` or `limit` passes; the last verdict.
HealthVerdict until(HealthGates& gate, bool open, std::chrono::seconds limit) {
  HealthVerdict verdict = gate.check(std::chrono::system_clock::now());
  for (const auto deadline = Clock::now() + limit; verdict.open != open && Clock::now() < deadline;) {
    std::this_thread::sleep_for(200ms);
    verdict = gate.check(std::chrono::system_clock::now());
  }
  return verdict;
}

class HealthGatesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { stack_ = PrometheusStack::start(kRules).release(); }
  static void TearDownTestSuite() {
    delete stack_;
    stack_ = nullptr;
  }
  inline static PrometheusStack* stack_ = nullptr;
};

TEST(AlertSelectors, AreAlertmanagersMatchersAndBadOnesAreNamed) {
  const auto matchers = selector(R"(severity="critical", team=~"db|web",alertname!=Watchdog)");
  ASSERT_EQ(matchers.size(), 3U);
  EXPECT_EQ(matchers[0].text(), R"(severity="critical")");
  EXPECT_EQ(matchers[1].text(), R"(team=~"db|web")");
  const std::vector<std::pair<std::string, std::string>> labels = {{"severity", "critical"}, {"team", "db"}};
  EXPECT_TRUE(matchers[0].matches(labels));
  EXPECT_TRUE(matchers[1].matches(labels));
  EXPECT_FALSE(matchers[1].matches({{"team", "dbx"}})) << "regexes match the whole value";
  EXPECT_TRUE(matchers[2].matches(labels)) << "a missing label is empty";
  EXPECT_TRUE(parse_alert_selector("")->empty());
  EXPECT_EQ(parse_alert_selector("severity").error(),
            "matcher 'severity': write label=value, label!=value, label=~regex or label!~regex");
  EXPECT_NE(parse_alert_selector("team=~\"(db\"").error().find("not a regular expression"), std::string::npos);
  EXPECT_NE(parse_alert_selector("bad-label=x").error().find("'bad-label' is not a label name"), std::string::npos);
  EXPECT_EQ(url_query_escape(R"(a b="c"&)"), "a%20b%3D%22c%22%26");
}

TEST_F(HealthGatesTest, AQueryThatReturnsASeriesClosesTheGateAndABoundLetsValuesThrough) {
  stack_->set_metrics("test_unhealthy 0\n");
  HealthGateOptions options;
  options.prometheus = endpoint(stack_->prometheus_url());
  options.query = "test_unhealthy > 0";
  auto gate = gates(options);
  ASSERT_TRUE(gate);
  HealthVerdict verdict = until(*gate, true, 20s);
  EXPECT_TRUE(verdict.open) << verdict.reason;
  EXPECT_EQ(verdict.reason, "Prometheus query 'test_unhealthy > 0' returns no series");

  stack_->set_metrics("test_unhealthy 3\n");
  verdict = until(*gate, false, 20s);
  EXPECT_FALSE(verdict.open);
  EXPECT_NE(verdict.reason.find("Prometheus query 'test_unhealthy > 0' returns test_unhealthy{instance=\"127.0.0.1:"),
            std::string::npos)
      << verdict.reason;
  EXPECT_NE(verdict.reason.find("job=\"test\"} = 3"), std::string::npos) << verdict.reason;
  EXPECT_FALSE(verdict.unknown) << "a series is an answer: closed, not unknown";

  // With a bound: values up to it are healthy.
  options.query = "test_unhealthy";
  options.query_max = 3;
  gate = gates(options);
  EXPECT_TRUE(gate->check(std::chrono::system_clock::now()).open);
  options.query_max = 2;
  gate = gates(options);
  EXPECT_FALSE(gate->check(std::chrono::system_clock::now()).open);

  // A query Prometheus cannot parse: closed, with Prometheus's own words.
  options.query = "sum(";
  options.query_max.reset();
  verdict = gates(options)->check(std::chrono::system_clock::now());
  EXPECT_FALSE(verdict.open);
  EXPECT_NE(verdict.reason.find("Prometheus query 'sum(' cannot be evaluated: "), std::string::npos) << verdict.reason;
  EXPECT_NE(verdict.reason.find("parse error"), std::string::npos) << verdict.reason;
  stack_->set_metrics("test_unhealthy 0\n");
}

TEST_F(HealthGatesTest, FiringAlertsHoldTheGateAndSilencedPendingIgnoredOrResolvedOnesDoNot) {
  stack_->set_metrics("test_unhealthy 0\ntest_slow 0\ntest_drain_caused 0\n");
  HealthGateOptions options;
  options.alertmanager = endpoint(stack_->alertmanager_url());
  options.alerts = selector("severity=critical");
  options.ignore = selector(R"(cause="drain")");
  auto gate = gates(options);
  ASSERT_TRUE(gate);
  ASSERT_TRUE(stack_->wait_alert("HostsUnhealthy", false, 30s));
  HealthVerdict verdict = gate->check(std::chrono::system_clock::now());
  EXPECT_TRUE(verdict.open) << verdict.reason;
  EXPECT_EQ(verdict.reason, "no firing alerts matching the selector");

  // Firing: held, and the reason names the alert.
  stack_->set_metrics("test_unhealthy 1\ntest_slow 0\ntest_drain_caused 0\n");
  ASSERT_TRUE(stack_->wait_alert("HostsUnhealthy", true, 30s));
  verdict = gate->check(std::chrono::system_clock::now());
  EXPECT_FALSE(verdict.open);
  EXPECT_EQ(verdict.reason.rfind("firing alert HostsUnhealthy{", 0), 0U) << verdict.reason;
  EXPECT_NE(verdict.reason.find("severity=\"critical\""), std::string::npos) << verdict.reason;
  // A selector it does not match does not hold.
  HealthGateOptions warnings = options;
  warnings.alerts = selector("severity=warning");
  EXPECT_TRUE(gates(warnings)->check(std::chrono::system_clock::now()).open);

  // Resolved: released.
  stack_->set_metrics("test_unhealthy 0\ntest_slow 0\ntest_drain_caused 0\n");
  verdict = until(*gate, true, 30s);
  EXPECT_TRUE(verdict.open) << verdict.reason;

  // Pending (its rule needs an hour of firing first): Prometheus has it, Alertmanager
  // never does, and the gate stays open. (A property of the two servers more than of our
  // code, which sees only what Alertmanager lists; kept as the issue's scenario.)
  stack_->set_metrics("test_unhealthy 0\ntest_slow 1\ntest_drain_caused 0\n");
  ASSERT_TRUE(stack_->wait_prometheus_alert("SlowBurn", "pending", 30s));
  std::this_thread::sleep_for(2s);
  verdict = gate->check(std::chrono::system_clock::now());
  EXPECT_TRUE(verdict.open) << "a pending alert is not a firing one: " << verdict.reason;

  // An alert the drain itself causes (matching the ignore selector) does not hold.
  stack_->set_metrics("test_unhealthy 0\ntest_slow 0\ntest_drain_caused 1\n");
  ASSERT_TRUE(stack_->wait_alert("DrainCaused", true, 30s));
  verdict = gate->check(std::chrono::system_clock::now());
  EXPECT_TRUE(verdict.open) << verdict.reason;
  HealthGateOptions not_ignoring = options;
  not_ignoring.ignore.clear();
  EXPECT_FALSE(gates(not_ignoring)->check(std::chrono::system_clock::now()).open);

  // Silenced: released while the alert still fires.
  stack_->set_metrics("test_unhealthy 1\ntest_slow 0\ntest_drain_caused 0\n");
  ASSERT_TRUE(stack_->wait_alert("HostsUnhealthy", true, 30s));
  ASSERT_FALSE(gate->check(std::chrono::system_clock::now()).open);
  ASSERT_NE(stack_->silence("HostsUnhealthy").find("silenceID"), std::string::npos);
  verdict = until(*gate, true, 20s);
  EXPECT_TRUE(verdict.open) << "a silenced alert does not hold: " << verdict.reason;
  stack_->set_metrics("test_unhealthy 0\ntest_slow 0\ntest_drain_caused 0\n");
}

TEST_F(HealthGatesTest, AGateThatCannotBeEvaluatedIsClosed) {
  HealthGateOptions options;
  options.alertmanager = endpoint("http://127.0.0.1:1");
  HealthVerdict verdict = gates(options)->check(std::chrono::system_clock::now());
  EXPECT_FALSE(verdict.open);
  EXPECT_TRUE(verdict.unknown);
  EXPECT_EQ(verdict.reason.rfind("Alertmanager cannot be evaluated: ", 0), 0U) << verdict.reason;
  // Prometheus's answer where Alertmanager's is expected: not a list of alerts.
  options.alertmanager = endpoint(stack_->prometheus_url());
  verdict = gates(options)->check(std::chrono::system_clock::now());
  EXPECT_FALSE(verdict.open);
  EXPECT_NE(verdict.reason.find("not a list of alerts"), std::string::npos) << verdict.reason;
}

// Last of the suite: it kills Prometheus.
TEST_F(HealthGatesTest, ZzPrometheusDownClosesTheGate) {
  HealthGateOptions options;
  options.prometheus = endpoint(stack_->prometheus_url());
  options.query = "up == 0";
  auto gate = gates(options);
  EXPECT_TRUE(until(*gate, true, 20s).open);
  stack_->kill_prometheus();
  const HealthVerdict verdict = gate->check(std::chrono::system_clock::now());
  EXPECT_FALSE(verdict.open);
  EXPECT_TRUE(verdict.unknown) << "down is unknown, and unknown is closed";
  EXPECT_EQ(verdict.reason.rfind("Prometheus query 'up == 0' cannot be evaluated: ", 0), 0U) << verdict.reason;
}

class SoakTest : public OneEtcdTest {};

TEST_F(SoakTest, TheNextHostWaitsTheSoakAfterOneCameBackAndAGarbledRecordIsClosed) {
  SoakRecord soak(*raw_, prefix_);
  HealthGateOptions options;
  options.soak = 60s;
  auto gate = gates(options, &soak);
  ASSERT_TRUE(gate);
  const auto now = std::chrono::system_clock::now();
  HealthVerdict verdict = gate->check(now);
  EXPECT_TRUE(verdict.open) << "no host came back yet";
  const auto back = std::chrono::floor<std::chrono::seconds>(now) - 20s;
  ASSERT_TRUE(soak.back("worker", "h2", back.time_since_epoch().count()));
  verdict = gate->check(std::chrono::floor<std::chrono::seconds>(now));
  EXPECT_FALSE(verdict.open);
  EXPECT_EQ(verdict.reason, "soaking after 'h2' came back: 40 s left");
  ASSERT_TRUE(verdict.opens_at.has_value());
  EXPECT_EQ(*verdict.opens_at, back + 60s);
  EXPECT_TRUE(gate->check(back + 60s).open);
  // Another tier's host coming back does not make this tier soak.
  ASSERT_TRUE(soak.back("proxy", "p1", (back + 50s).time_since_epoch().count()));
  EXPECT_TRUE(gate->check(back + 60s).open);
  ASSERT_TRUE(raw_->put(prefix_ + "/soak/worker", "{\"at\":\"yesterday\"}"));
  verdict = gate->check(back + 60s);
  EXPECT_FALSE(verdict.open);
  EXPECT_NE(verdict.reason.find("soak time cannot be evaluated: " + prefix_ + "/soak/worker holds"), std::string::npos)
      << verdict.reason;
}

// The real agent with both health gates on a real Prometheus and Alertmanager: every
// gate is evaluated and shown in its metrics file, a closed one holds the requested
// reboot with the reason on systemd's STATUS, and once the last one opens the drain
// starts within about --health-interval (the recheck is 10 min: only the gate's own
// interval can wake it).
class AgentHealthGatesTest : public OneEtcdTest {
 protected:
  static void SetUpTestSuite() {
    OneEtcdTest::SetUpTestSuite();
    stack_ = PrometheusStack::start(kRules).release();
  }
  static void TearDownTestSuite() {
    delete stack_;
    stack_ = nullptr;
    OneEtcdTest::TearDownTestSuite();
  }
  inline static PrometheusStack* stack_ = nullptr;
};

TEST_F(AgentHealthGatesTest, AFiringAlertHoldsTheAgentsRebootEachGateShowsInItsMetricsAndTheResolutionStartsIt) {
  stack_->set_metrics("test_unhealthy 1\ntest_slow 0\ntest_drain_caused 0\ntest_backlog 9\n");
  ASSERT_TRUE(stack_->wait_alert("HostsUnhealthy", true, 30s));
  const std::string metrics = AgentProcess::dir_for("gates") + "/agent.prom";
  AgentProcess agent(SKOPOS_CLI, server_->endpoint(), prefix_, "gates",
                     {"--health-prometheus", stack_->prometheus_url(), "--health-query", "test_backlog > 5",
                      "--health-alertmanager", stack_->alertmanager_url(), "--health-alerts", "severity=critical",
                      "--health-interval", "1s", "--agent-metrics-file", metrics});
  std::ofstream(agent.dir() + "/needs_reboot") << "\n";
  // Both health gates are closed; the first in order (the query) is the reason given.
  std::string waiting = agent.status_starting("reboot requested, waiting: ", 20s);
  EXPECT_NE(waiting.find("Prometheus query 'test_backlog > 5' returns test_backlog{"), std::string::npos)
      << waiting << "\n" << agent.log();
  // Each gate evaluated, each in the metrics: the pause and window open, both health
  // gates closed (the alerts too, though the query already decided), none unknown.
  std::string text = read_file(metrics);
  for (const auto& [gate, open] : {std::pair{"pause", 1}, {"window", 1}, {"query", 0}, {"alerts", 0}}) {
    const std::string line = "skopos_agent_gate_open{host=\"h-gates\",point=\"start\",gate=\"" + std::string(gate) +
                             "\"} " + std::to_string(open) + "\n";
    EXPECT_NE(text.find(line), std::string::npos) << line << " in:\n" << text;
  }
  EXPECT_NE(text.find("skopos_agent_gate_unknown{host=\"h-gates\",point=\"start\",gate=\"alerts\"} 0\n"),
            std::string::npos)
      << text;
  // The turn is counted once it ends, just after its status line.
  const std::string gated = "skopos_agent_turn{host=\"h-gates\",turn=\"gated\"} 1\n";
  for (const auto deadline = Clock::now() + 10s; text.find(gated) == std::string::npos && Clock::now() < deadline;) {
    std::this_thread::sleep_for(100ms);
    text = read_file(metrics);
  }
  EXPECT_NE(text.find(gated), std::string::npos) << text;

  // The query's series goes: still held, now by the alert.
  stack_->set_metrics("test_unhealthy 1\ntest_slow 0\ntest_drain_caused 0\ntest_backlog 0\n");
  waiting = agent.status_starting("reboot requested, waiting: ", 30s);
  EXPECT_EQ(waiting.rfind("STATUS=reboot requested, waiting: firing alert HostsUnhealthy{", 0), 0U) << waiting;
  EXPECT_NE(read_file(metrics).find("skopos_agent_gate_open{host=\"h-gates\",point=\"start\",gate=\"query\"} 1\n"),
            std::string::npos)
      << read_file(metrics);
  EXPECT_TRUE(std::ifstream(agent.dir() + "/needs_reboot").good()) << "a held request stays";

  // The alert resolves: the drain starts within about the health interval of
  // Alertmanager no longer listing it.
  stack_->set_metrics("test_unhealthy 0\ntest_slow 0\ntest_drain_caused 0\ntest_backlog 0\n");
  ASSERT_TRUE(stack_->wait_alert("HostsUnhealthy", false, 30s));
  const auto resolved = Clock::now();
  const std::string started = agent.status_starting("reboot requested (file)", 20s);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - resolved);
  EXPECT_FALSE(started.empty()) << "the drain did not start after the alert resolved\n" << agent.log();
  std::printf("alert resolved in Alertmanager -> drain started: %lld ms (--health-interval 1s, the recheck 10 min)\n",
              static_cast<long long>(took.count()));
  EXPECT_LT(took, 10s);
  EXPECT_EQ(agent.stop(), 0) << agent.log();
}

}  // namespace
}  // namespace skopos::driver
