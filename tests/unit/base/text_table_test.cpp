// Tables for terminals: columns as wide as their widest cell, two spaces between them,
// numbers right-aligned, no trailing blanks.
#include "skopos/text_table.h"

#include <gtest/gtest.h>

namespace skopos {
namespace {

TEST(TextTable, ColumnsAlignAndNumbersAlignRight) {
  TextTable table({"NAME", "IN", "PORTS"}, {false, true, false});
  table.add_row({"web", "3", "8080:3"});
  table.add_row({"database-primary", "120", "-"});
  EXPECT_EQ(table.rows(), 3U) << "the header counts as a row";
  EXPECT_EQ(table.render(),
            "NAME               IN  PORTS\n"
            "web                 3  8080:3\n"
            "database-primary  120  -\n");
}

TEST(TextTable, AHeaderAloneStillRenders) {
  EXPECT_EQ(TextTable({"CONTAINER"}).render(), "CONTAINER\n");
}

}  // namespace
}  // namespace skopos
