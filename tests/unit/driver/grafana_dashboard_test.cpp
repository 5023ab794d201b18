// The Grafana dashboard shipped in share/skopos/grafana/, checked as Grafana would need
// it: valid JSON with the fields an import reads; panels with unique ids laid out on the
// 24-column grid without overlapping; every query valid PromQL (promtool parses each as
// a recording rule) over metrics the README's table documents; and the four views the
// issue asks for present: connections per container, drains by phase, the lock and its
// line per tier, the roll's progress.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "process.h"

namespace skopos::driver {
namespace {

using testing::ProcessResult;
using testing::read_file;
using testing::run_process;

struct Query {
  std::string panel;
  std::string expr;
};

class GrafanaDashboard : public ::testing::Test {
 protected:
  void SetUp() override {
    text_ = read_file(std::string(SKOPOS_SOURCE_DIR) + "/driver/grafana/skopos-dashboard.json");
    ASSERT_FALSE(text_.empty());
    ASSERT_EQ(parser_.parse(text_).get(root_), simdjson::SUCCESS) << "not JSON";
  }
  std::string text_;
  simdjson::dom::parser parser_;
  simdjson::dom::element root_;
};

TEST_F(GrafanaDashboard, HasWhatAnImportReadsAndAPrometheusDatasourceVariable) {
  std::string_view uid, title;
  ASSERT_EQ(root_["uid"].get(uid), simdjson::SUCCESS);
  EXPECT_FALSE(uid.empty());
  EXPECT_LE(uid.size(), 40u) << "Grafana's limit on a uid";
  ASSERT_EQ(root_["title"].get(title), simdjson::SUCCESS);
  std::int64_t schema = 0;
  ASSERT_EQ(root_["schemaVersion"].get(schema), simdjson::SUCCESS);
  EXPECT_GE(schema, 30);
  bool datasource = false;
  std::set<std::string> variables;
  for (simdjson::dom::element variable : root_["templating"]["list"].get_array()) {
    const std::string name{std::string_view(variable["name"])};
    variables.insert(name);
    if (name == "datasource") {
      EXPECT_EQ(std::string_view(variable["type"]), "datasource");
      EXPECT_EQ(std::string_view(variable["query"]), "prometheus");
      datasource = true;
    }
  }
  EXPECT_TRUE(datasource) << "a datasource variable, so the dashboard imports into any Grafana";
  for (const char* name : {"tier", "host", "instance"}) EXPECT_EQ(variables.count(name), 1u) << name;
}

TEST_F(GrafanaDashboard, PanelsHaveUniqueIdsAndTileTheGridWithoutOverlapping) {
  std::set<std::int64_t> ids;
  struct Box {
    std::int64_t x, y, w, h;
    std::string title;
  };
  std::vector<Box> boxes;
  for (simdjson::dom::element panel : root_["panels"].get_array()) {
    const std::int64_t id = panel["id"];
    EXPECT_TRUE(ids.insert(id).second) << "panel id " << id << " twice";
    const std::string type{std::string_view(panel["type"])};
    EXPECT_TRUE(std::set<std::string>({"row", "timeseries", "stat", "table", "bargauge"}).count(type) == 1) << type;
    Box box{panel["gridPos"]["x"], panel["gridPos"]["y"], panel["gridPos"]["w"], panel["gridPos"]["h"],
            std::string(std::string_view(panel["title"]))};
    EXPECT_GT(box.w, 0) << box.title;
    EXPECT_GT(box.h, 0) << box.title;
    EXPECT_GE(box.x, 0) << box.title;
    EXPECT_LE(box.x + box.w, 24) << box.title << " leaves the 24-column grid";
    for (const Box& other : boxes) {
      const bool apart = box.x + box.w <= other.x || other.x + other.w <= box.x || box.y + box.h <= other.y ||
                         other.y + other.h <= box.y;
      EXPECT_TRUE(apart) << "'" << box.title << "' overlaps '" << other.title << "'";
    }
    boxes.push_back(box);
    if (type == "row") continue;
    std::string_view datasource;
    ASSERT_EQ(panel["datasource"]["uid"].get(datasource), simdjson::SUCCESS) << box.title;
    EXPECT_EQ(datasource, "${datasource}") << box.title;
    std::string_view description;
    EXPECT_EQ(panel["description"].get(description), simdjson::SUCCESS) << box.title;
    EXPECT_FALSE(description.empty()) << box.title << ": what it shows, for the operator";
  }
  EXPECT_GE(boxes.size(), 10u);
}

TEST_F(GrafanaDashboard, EveryQueryIsValidPromqlOverDocumentedMetricsAndTheFourViewsAreThere) {
  std::vector<Query> queries;
  for (simdjson::dom::element panel : root_["panels"].get_array()) {
    if (std::string_view(panel["type"]) == "row") continue;
    simdjson::dom::array targets;
    ASSERT_EQ(panel["targets"].get(targets), simdjson::SUCCESS);
    std::set<std::string> refs;
    for (simdjson::dom::element target : targets) {
      EXPECT_TRUE(refs.insert(std::string(std::string_view(target["refId"]))).second);
      queries.push_back({std::string(std::string_view(panel["title"])), std::string(std::string_view(target["expr"]))});
    }
    EXPECT_FALSE(refs.empty()) << "a panel without a query";
  }
  // Each query as a recording rule, the dashboard's variables given values: promtool
  // parses every expression.
  std::string rules = "groups:\n  - name: dashboard\n    rules:\n";
  int n = 0;
  for (const Query& query : queries) {
    std::string expr = query.expr;
    expr = std::regex_replace(expr, std::regex(R"(\$__rate_interval)"), "5m");
    expr = std::regex_replace(expr, std::regex(R"(\$(tier|host|instance))"), ".*");
    EXPECT_EQ(expr.find('$'), std::string::npos) << query.panel << ": a variable the dashboard does not define";
    std::string quoted;
    for (const char c : expr) quoted += c == '\'' ? std::string("''") : std::string(1, c);
    rules += "      - record: skopos:dashboard:query" + std::to_string(n++) + "\n        expr: '" + quoted + "'\n";
  }
  const std::string path = ::testing::TempDir() + "skopos-dashboard-" + std::to_string(::getpid()) + ".rules.yml";
  std::ofstream(path) << rules;
  const ProcessResult check = run_process({SKOPOS_PROMTOOL, "check", "rules", path});
  std::remove(path.c_str());
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err << rules;

  // Metric names: documented in the README's table (or Prometheus's own `up`).
  const std::string readme = read_file(std::string(SKOPOS_SOURCE_DIR) + "/README.md");
  std::set<std::string> used;
  const std::regex metric(R"(\b(skopos_[a-z_]+|up)\b)");
  for (const Query& query : queries) {
    for (std::sregex_iterator it(query.expr.begin(), query.expr.end(), metric), end; it != end; ++it) {
      const std::string name = (*it)[1];
      used.insert(name);
      if (name != "up") {
        EXPECT_NE(readme.find("| `" + name + "` |"), std::string::npos) << query.panel << ": " << name << " is not a metric";
      }
    }
  }
  for (const char* view : {"skopos_tracker_container_inbound", "skopos_drain_phase", "skopos_lock_holders",
                           "skopos_lock_waiters", "skopos_rolling_reboot_hosts"}) {
    EXPECT_EQ(used.count(view), 1u) << view;
  }
}

}  // namespace
}  // namespace skopos::driver
