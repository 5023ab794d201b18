// The Prometheus text format as our metrics write it: label values escaped (a container
// name or an error text may hold anything), headers and samples on lines of their own.
#include "skopos/prometheus_text.h"

#include <gtest/gtest.h>

namespace skopos {
namespace {

TEST(PrometheusText, LabelValuesAreEscapedAndCommaSeparated) {
  std::string out = "m{";
  prometheus::append_label(out, "name", "a\"b\\c\nd", true);
  prometheus::append_label(out, "host", "h1", false);
  out += "} 1\n";
  EXPECT_EQ(out, "m{name=\"a\\\"b\\\\c\\nd\",host=\"h1\"} 1\n");
}

TEST(PrometheusText, HeadersAndSamples) {
  std::string out;
  prometheus::append_header(out, "skopos_x_total", "counter", "Things counted.");
  prometheus::append_sample(out, "skopos_x_total", 42);
  EXPECT_EQ(out, "# HELP skopos_x_total Things counted.\n# TYPE skopos_x_total counter\nskopos_x_total 42\n");
}

}  // namespace
}  // namespace skopos
