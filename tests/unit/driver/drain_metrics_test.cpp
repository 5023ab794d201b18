// The drain's metrics file: what the events make of it, label escaping, and the file
// replaced whole.
#include "driver/drain_metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "metrics_doc.h"
#include "text_lines.h"

namespace skopos::driver {
namespace {

DrainEvent phase_event(DrainPhase phase) {
  DrainEvent event;
  event.type = DrainEvent::Type::kPhase;
  event.phase = phase;
  event.message = drain_phase_name(phase);
  event.fields = {{"kind", "REBOOT"}, {"drain_id", "d-0123"}};
  return event;
}

DrainEvent fence_pushed_down(int times) {
  DrainEvent event;
  event.type = DrainEvent::Type::kWarning;
  event.phase = DrainPhase::kWait;
  event.message = "the fence was no longer first in its hooks";
  event.fields = {{"fence_reapplied", std::to_string(times)}};
  return event;
}

// A wait of `phase` reported stuck, as the drain reports it.
DrainEvent stuck_report(DrainPhase phase, const std::string& message) {
  DrainEvent stuck;
  stuck.type = DrainEvent::Type::kWarning;
  stuck.phase = phase;
  stuck.message = message;
  stuck.fields = {{"notify", "stuck"}};
  return stuck;
}

// A tick of the wait, reporting `progress`.
DrainEvent progress_tick(const WaitProgress& progress) {
  DrainEvent tick;
  tick.type = DrainEvent::Type::kProgress;
  tick.phase = DrainPhase::kWait;
  tick.progress = &progress;
  return tick;
}

TEST(DrainMetrics, PhaseTimeInItConnectionsAndFenceReappliesFollowTheEvents) {
  DrainMetrics metrics("/nonexistent/skopos.prom", "worker-3");
  EXPECT_TRUE(metrics.observe(phase_event(DrainPhase::kHostLock), 1000));
  EXPECT_TRUE(metrics.observe(phase_event(DrainPhase::kFence), 1010));
  EXPECT_TRUE(metrics.observe(phase_event(DrainPhase::kWait), 1012));

  WaitProgress progress;
  progress.total = 42;
  progress.unknown = 1;
  EXPECT_TRUE(metrics.observe(progress_tick(progress), 1015));
  EXPECT_TRUE(metrics.observe(fence_pushed_down(1), 1016));
  EXPECT_TRUE(metrics.observe(fence_pushed_down(2), 1020));
  DrainEvent info;
  info.type = DrainEvent::Type::kInfo;
  EXPECT_FALSE(metrics.observe(info, 1021)) << "an info line changes no metric";

  const std::string text = metrics.text();
  EXPECT_LINE(text, "skopos_drain_info{host=\"worker-3\",kind=\"REBOOT\",drain_id=\"d-0123\"} 1");
  EXPECT_LINE(text, "skopos_drain_phase{host=\"worker-3\",phase=\"wait\"} 1");
  EXPECT_LINE(text, "skopos_drain_phase{host=\"worker-3\",phase=\"fence\"} 0");
  EXPECT_LINE(text, "skopos_drain_phase_started_timestamp_seconds{host=\"worker-3\"} 1012");
  EXPECT_LINE(text, "skopos_drain_fence_reapplied_total{host=\"worker-3\"} 2");
  EXPECT_LINE(text, "skopos_drain_warnings_total{host=\"worker-3\"} 2");
  EXPECT_LINE(text, "skopos_drain_inbound_connections{host=\"worker-3\"} 42");
  EXPECT_LINE(text, "skopos_drain_unknown_containers{host=\"worker-3\"} 1");
  EXPECT_LINE(text, "# TYPE skopos_drain_fence_reapplied_total counter");
  EXPECT_EQ(text.find("skopos_drain_result"), std::string::npos) << "not ended yet";

  // The same phase again (a resumed drain) keeps its start.
  metrics.observe(phase_event(DrainPhase::kWait), 1030);
  EXPECT_LINE(metrics.text(), "skopos_drain_phase_started_timestamp_seconds{host=\"worker-3\"} 1012");
  metrics.finish("drained", 1040);
  EXPECT_LINE(metrics.text(), "skopos_drain_result{host=\"worker-3\",result=\"drained\"} 1");
  EXPECT_LINE(metrics.text(), "skopos_drain_last_event_timestamp_seconds{host=\"worker-3\"} 1040");
}

TEST(DrainMetrics, AStuckReportHoldsUntilTheNextPhase) {
  DrainMetrics metrics("/nonexistent/skopos.prom", "worker-3");
  metrics.observe(phase_event(DrainPhase::kClusterLock), 1000);
  metrics.observe(stuck_report(DrainPhase::kClusterLock, "stuck: waiting for a slot"), 1600);
  EXPECT_LINE(metrics.text(), "skopos_drain_stuck{host=\"worker-3\"} 1");
  EXPECT_LINE(metrics.text(), "skopos_drain_stuck_total{host=\"worker-3\"} 1");
  metrics.observe(phase_event(DrainPhase::kBudget), 1700);
  EXPECT_LINE(metrics.text(), "skopos_drain_stuck{host=\"worker-3\"} 0");
  EXPECT_LINE(metrics.text(), "skopos_drain_stuck_total{host=\"worker-3\"} 1");
}

// A drain that went through every kind of event: each family is documented as it is,
// and promtool finds nothing to say.
TEST(DrainMetrics, EveryFamilyIsDocumentedAndCleanForPromtool) {
  DrainMetrics metrics("/nonexistent/skopos.prom", "worker-3");
  metrics.observe(phase_event(DrainPhase::kWait), 1000);
  WaitProgress progress;
  progress.total = 2;
  progress.unknown = 1;
  metrics.observe(progress_tick(progress), 1001);
  metrics.observe(fence_pushed_down(1), 1002);
  metrics.observe(stuck_report(DrainPhase::kWait, "stuck: connections stay open"), 1600);
  metrics.finish("drained", 1700);
  const std::string text = metrics.text();
  for (const std::string& problem : testing::undocumented_metrics(text, "skopos drain (--metrics-file)")) {
    ADD_FAILURE() << problem;
  }
  EXPECT_EQ(testing::promtool_check_metrics(text), "");
}

TEST(DrainMetrics, BeforeAnyPhaseOnlyTheInfoAndCountersAreShown) {
  const DrainMetrics metrics("/nonexistent/skopos.prom", "worker-3");
  const std::string text = metrics.text();
  EXPECT_EQ(text.find("skopos_drain_phase{"), std::string::npos);
  EXPECT_EQ(text.find("skopos_drain_inbound_connections{"), std::string::npos) << "no tick: not a known 0";
  EXPECT_LINE(text, "skopos_drain_fence_reapplied_total{host=\"worker-3\"} 0");
}

TEST(DrainMetrics, LabelValuesAreEscaped) {
  const DrainMetrics metrics("/nonexistent/skopos.prom", "a\"b\\c\nd");
  EXPECT_LINE(metrics.text(), "skopos_drain_warnings_total{host=\"a\\\"b\\\\c\\nd\"} 0");
}

TEST(DrainMetrics, TheFileIsReplacedWholeAndAnUnwritablePlaceIsNamed) {
  const auto dir = std::filesystem::temp_directory_path() / ("skopos-metrics-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "skopos.prom").string();
  DrainMetrics metrics(path, "worker-3");
  metrics.observe(phase_event(DrainPhase::kWait), 1000);
  ASSERT_TRUE(metrics.write());
  metrics.observe(fence_pushed_down(1), 1001);
  ASSERT_TRUE(metrics.write());
  std::ifstream in(path);
  std::stringstream read;
  read << in.rdbuf();
  EXPECT_EQ(read.str(), metrics.text());
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()), 1)
      << "no temporary file left beside it";
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::others_read,
            std::filesystem::perms::others_read)
      << "readable by a collector running as another user";

  const DrainMetrics nowhere((dir / "missing" / "skopos.prom").string(), "worker-3");
  auto written = nowhere.write();
  ASSERT_FALSE(written);
  EXPECT_NE(written.error().find("'" + (dir / "missing" / "skopos.prom").string() + "'"), std::string::npos)
      << "names the file asked for: " << written.error();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace skopos::driver
