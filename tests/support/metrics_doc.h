// Every metric our programs expose is documented in one table, the README's "Metrics"
// section, and passes `promtool check metrics`. Each test that sees a program's full
// output asks both here; a failure names the metric and carries the README row to paste.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace skopos::testing {

struct MetricFamily {
  std::string type;              // "# TYPE name <type>"
  std::string help;              // "# HELP name <help>", unescaped
  std::set<std::string> labels;  // every label name any of its samples carries
  int samples = 0;
};

// The families of a Prometheus text exposition, by name.
std::map<std::string, MetricFamily> metric_families(const std::string& text);

// The README's row for a family `source` ("skopos-tracker", "skopos drain", ...) exposes:
// | `name` | type | `label`, ... | help | source |
std::string metrics_row(const std::string& name, const MetricFamily& family, const std::string& source);

// What is wrong with the documentation of `text`, exposed by `source`: each family whose
// row the README's table lacks (the message holds the row), and each row of `source` in
// the table that `text` does not expose, but for the families in `not_here` (those the
// source shows only in another state, which another test checks). Empty when every
// family is documented as it is. A family without samples (no lock group yet) shows no
// labels: its row is matched on everything but them.
std::vector<std::string> undocumented_metrics(const std::string& text, const std::string& source,
                                              const std::set<std::string>& not_here = {});

// `promtool check metrics` on `text`: "" when it finds nothing, else what it says.
std::string promtool_check_metrics(const std::string& text);

}  // namespace skopos::testing
