// Journal: entries survive reopening; a torn last line (a crash mid-write) is reported,
// ignored and cut away; finish() ends the drain; a second drain cannot start over an
// unfinished one; bad lines are errors that name the field.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "driver/journal.h"

namespace skopos::driver {
namespace {

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/skopos-journal-test-" + std::to_string(::getpid());
    std::filesystem::remove_all(dir_);
    path_ = dir_ + "/state/journal";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  static JournalEntry entry(const std::string& phase) {
    return JournalEntry{"drain-1", phase, 4711, "boot-a", 1795000000, R"({"ports":[31000,31001]})"};
  }
  std::string dir_;
  std::string path_;
};

TEST_F(JournalTest, EntriesSurviveReopening) {
  {
    auto journal = Journal::open(path_);
    ASSERT_TRUE(journal) << journal.error().message();
    EXPECT_FALSE(journal->last());
    ASSERT_TRUE(journal->record(entry("lock")));
    ASSERT_TRUE(journal->record(entry("fence")));
  }
  auto again = Journal::open(path_);
  ASSERT_TRUE(again);
  ASSERT_EQ(again->entries().size(), 2u);
  ASSERT_TRUE(again->last());
  EXPECT_EQ(again->last()->phase, "fence");
  EXPECT_EQ(again->last()->fencing_token, 4711);
  EXPECT_EQ(again->last()->facts, R"({"ports":[31000,31001]})");
  EXPECT_EQ(again->damage(), "");
}

TEST_F(JournalTest, ATornLastLineIsReportedIgnoredAndCutAway) {
  {
    auto journal = Journal::open(path_);
    ASSERT_TRUE(journal);
    ASSERT_TRUE(journal->record(entry("lock")));
  }
  std::ofstream(path_, std::ios::app) << R"({"drain_id":"drain-1","phase":"fen)";  // the crash
  auto journal = Journal::open(path_);
  ASSERT_TRUE(journal) << journal.error().message();
  EXPECT_NE(journal->damage().find("line 2"), std::string::npos) << journal->damage();
  ASSERT_TRUE(journal->last());
  EXPECT_EQ(journal->last()->phase, "lock") << "the last durable entry";
  ASSERT_TRUE(journal->record(entry("fence")));
  auto reopened = Journal::open(path_);
  ASSERT_TRUE(reopened);
  EXPECT_EQ(reopened->damage(), "") << "the torn line was cut away";
  EXPECT_EQ(reopened->entries().size(), 2u);
}

TEST_F(JournalTest, FinishEndsTheDrainAndAnotherCannotStartOverAnUnfinishedOne) {
  auto journal = Journal::open(path_);
  ASSERT_TRUE(journal);
  ASSERT_TRUE(journal->record(entry("lock")));
  JournalEntry other = entry("lock");
  other.drain_id = "drain-2";
  auto refused = journal->record(other);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("drain-1"), std::string::npos) << refused.error().message();
  ASSERT_TRUE(journal->finish());
  EXPECT_FALSE(journal->last());
  EXPECT_TRUE(std::filesystem::exists(path_ + ".done"));
  ASSERT_TRUE(journal->record(other));
  auto reopened = Journal::open(path_);
  ASSERT_TRUE(reopened);
  ASSERT_EQ(reopened->entries().size(), 1u);
  EXPECT_EQ(reopened->last()->drain_id, "drain-2");
}

TEST(JournalLines, BadLinesNameTheField) {
  const auto error_of = [](std::string_view line) {
    auto entry = parse_journal_line(line);
    return entry ? std::string("(parsed)") : entry.error();
  };
  EXPECT_NE(error_of("garbage").find("JSON"), std::string::npos);
  EXPECT_NE(error_of(R"({"phase":"x"})").find("drain_id"), std::string::npos);
  EXPECT_NE(error_of(R"({"drain_id":"d","phase":"p","boot_id":"b","fencing_token":"7","at":1,"facts":{}})")
                .find("fencing_token"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"drain_id":"d","phase":"p","boot_id":"b","fencing_token":7,"at":1,"facts":[1]})")
                .find("facts is not an object"),
            std::string::npos);
  const JournalEntry round{"d", "p", 7, "b", 1, R"({"k":"v\n\"quoted\"","n":[1,2],"f":true})"};
  auto parsed = parse_journal_line(journal_line(round));
  ASSERT_TRUE(parsed) << parsed.error();
  EXPECT_EQ(parsed->facts, round.facts);
  EXPECT_EQ(journal_line(round).find('\n'), std::string::npos) << "one line per entry";
}

TEST_F(JournalTest, InspectReadsWithoutCreatingOrRepairing) {
  auto missing = Journal::inspect(path_);
  ASSERT_TRUE(missing) << missing.error().message();
  EXPECT_FALSE(missing->last());
  EXPECT_FALSE(std::filesystem::exists(path_)) << "nothing created";
  {
    auto journal = Journal::open(path_);
    ASSERT_TRUE(journal);
    ASSERT_TRUE(journal->record(entry("fence")));
  }
  std::ofstream(path_, std::ios::app) << "{\"drain_id\":\"drain-1\",\"pha";  // a writer mid-line
  const auto size = std::filesystem::file_size(path_);
  auto seen = Journal::inspect(path_);
  ASSERT_TRUE(seen);
  ASSERT_TRUE(seen->last());
  EXPECT_EQ(seen->last()->phase, "fence");
  EXPECT_NE(seen->damage().find("an unfinished last line"), std::string::npos) << seen->damage();
  EXPECT_EQ(std::filesystem::file_size(path_), size) << "the other process's line is left alone";
  EXPECT_FALSE(seen->record(entry("wait"))) << "an inspected journal cannot be written";
}

}  // namespace
}  // namespace skopos::driver
