// Maintenance windows with an injected clock: parsing, midnight, daylight saving time
// (Europe/Berlin's spring-forward on 2026-03-29 and fall-back on 2026-10-25), several
// windows, a host narrowing its tier's, and failing closed. The etcd side is tested in
// integration/reboot_windows_test.cpp.
#include "driver/reboot_windows.h"

#include <gtest/gtest.h>

#include <ctime>

#include "driver/pauses.h"

namespace skopos::driver {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

// A UTC instant: at(2026, 3, 29, 1, 0) is 2026-03-29T01:00:00Z.
SysSeconds at(int year, int month, int day, int hour, int minute, int second = 0) {
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return SysSeconds(seconds(timegm(&tm)));
}

RebootWindow window(std::string_view name, std::string_view days, std::string_view start,
                         std::string_view duration, std::string_view zone) {
  auto made = make_window(name, days, start, duration, zone);
  if (!made) {
    ADD_FAILURE() << made.error();
    return {};
  }
  return std::move(made).value();
}

WindowSet tier(std::vector<RebootWindow> windows) {
  WindowSet set;
  set.tier = std::move(windows);
  return set;
}

TEST(RebootWindows, PartsAreCheckedAndEachErrorNamesItsPart) {
  const auto error = [](std::string_view name, std::string_view days, std::string_view start,
                        std::string_view duration, std::string_view zone) {
    auto made = make_window(name, days, start, duration, zone);
    return made ? std::string("accepted") : made.error();
  };
  EXPECT_EQ(error("nights", "mon-fri", "01:00", "4h", "Europe/Berlin"), "accepted");
  EXPECT_NE(error("bad name!", "mon", "01:00", "4h", "UTC").find("window name 'bad name!'"), std::string::npos);
  EXPECT_NE(error("n", "monday", "01:00", "4h", "UTC").find("days 'monday': 'monday' is not a day"), std::string::npos);
  EXPECT_NE(error("n", "", "01:00", "4h", "UTC").find("no day given"), std::string::npos);
  for (const char* start : {"24:00", "1:5", "01:60", "0100", "01:00x", ""}) {
    EXPECT_NE(error("n", "mon", start, "4h", "UTC").find(std::string("start '") + start + "'"), std::string::npos)
        << start;
  }
  for (const char* duration : {"0", "30s", "169h", "4x", "", "1500ms"}) {
    EXPECT_NE(error("n", "mon", "01:00", duration, "UTC").find(std::string("duration '") + duration + "'"),
              std::string::npos)
        << duration;
  }
  EXPECT_NE(error("n", "mon", "01:00", "4h", "Mars/Olympus").find("zone 'Mars/Olympus': not a time zone"),
            std::string::npos);
}

TEST(RebootWindows, DaysAreWrittenBackAsRangesAndSurviveJson) {
  EXPECT_EQ(window("a", "mon-fri", "01:00", "4h", "Europe/Berlin").describe(), "mon-fri 01:00 4h Europe/Berlin");
  EXPECT_EQ(window("a", "fri-mon", "23:30", "90m", "UTC").describe(), "fri-mon 23:30 90m UTC");
  EXPECT_EQ(window("a", "sat,sun", "00:00", "1h", "UTC").describe(), "sat,sun 00:00 1h UTC");
  EXPECT_EQ(window("a", "mon,wed-fri,sun", "00:00", "1h", "UTC").describe(), "sun,mon,wed-fri 00:00 1h UTC");
  EXPECT_EQ(window("a", "mon-sun", "00:00", "1h", "UTC").describe(), "daily 00:00 1h UTC");
  const RebootWindow w = window("nights", "tue,thu", "02:15", "3h", "America/New_York");
  auto back = parse_window_json("nights", w.to_json());
  ASSERT_TRUE(back.has_value()) << back.error();
  EXPECT_EQ(back->describe(), w.describe());
  EXPECT_EQ(parse_window_json("x", "{\"days\":\"mon\"}").error(), "no string \"start\"");
  EXPECT_EQ(parse_window_json("x", "[1]").error(), "not a JSON object");
  EXPECT_NE(parse_window_json("x", R"({"days":"mon","start":"9:00","duration":"1h","zone":"UTC"})")
                .error()
                .find("start '9:00'"),
            std::string::npos);
}

TEST(RebootWindows, WindowsOnOneLineAreSeparatedBySemicolons) {
  auto windows = parse_window_specs("mon-fri 01:00 4h Europe/Berlin; sat,sun 00:00 24h");
  ASSERT_TRUE(windows.has_value()) << windows.error();
  ASSERT_EQ(windows->size(), 2U);
  EXPECT_EQ((*windows)[0].name, "local-1");
  EXPECT_EQ((*windows)[0].describe(), "mon-fri 01:00 4h Europe/Berlin");
  EXPECT_EQ((*windows)[1].describe(), "sat,sun 00:00 24h UTC");
  EXPECT_TRUE(parse_window_specs("")->empty());
  EXPECT_EQ(parse_window_specs("mon-fri 01:00").error(),
            "window 'mon-fri 01:00': write DAYS HH:MM DURATION [ZONE], e.g. mon-fri 01:00 4h Europe/Berlin");
  EXPECT_NE(parse_window_specs("mon 01:00 4h; tue 25:00 1h").error().find("window 'tue 25:00 1h': start '25:00'"),
            std::string::npos);
}

TEST(RebootWindows, NoWindowsIsAlwaysOpen) {
  const WindowVerdict verdict = evaluate_windows({}, at(2026, 12, 5, 12, 0));
  EXPECT_TRUE(verdict.open);
  EXPECT_EQ(verdict.reason, "no maintenance windows");
  EXPECT_FALSE(verdict.next_change.has_value());
}

TEST(RebootWindows, AWindowCrossesMidnight) {
  // 2026-12-04 is a Friday.
  const WindowSet set = tier({window("late", "fri", "22:00", "4h", "UTC")});
  EXPECT_FALSE(evaluate_windows(set, at(2026, 12, 4, 21, 59, 59)).open);
  WindowVerdict v = evaluate_windows(set, at(2026, 12, 4, 23, 30));
  EXPECT_TRUE(v.open);
  EXPECT_EQ(v.next_change, at(2026, 12, 5, 2, 0));
  EXPECT_EQ(v.reason, "inside window 'late' (tier) until Sat 02:00 UTC, in 2 h 30 min");
  EXPECT_TRUE(evaluate_windows(set, at(2026, 12, 5, 1, 59, 59)).open);  // Saturday, still Friday's window
  v = evaluate_windows(set, at(2026, 12, 5, 2, 0));
  EXPECT_FALSE(v.open);
  EXPECT_EQ(v.next_change, at(2026, 12, 11, 22, 0));
  EXPECT_EQ(v.reason, "outside window 'late' (tier): opens Fri 22:00 UTC, in 6 days 20 h");
}

TEST(RebootWindows, ADayRangeWrapsPastSunday) {
  const WindowSet set = tier({window("weekend", "fri-mon", "00:00", "24h", "UTC")});
  EXPECT_TRUE(evaluate_windows(set, at(2026, 12, 6, 12, 0)).open);   // Sunday
  EXPECT_TRUE(evaluate_windows(set, at(2026, 12, 7, 12, 0)).open);   // Monday
  EXPECT_FALSE(evaluate_windows(set, at(2026, 12, 8, 12, 0)).open);  // Tuesday
  EXPECT_EQ(evaluate_windows(set, at(2026, 12, 8, 12, 0)).next_change, at(2026, 12, 11, 0, 0));
}

TEST(RebootWindows, SpringForwardOpensAStartTimeThatDoesNotExistAtTheEndOfTheGap) {
  // Europe/Berlin, 2026-03-29: 02:00 CET (01:00Z) jumps to 03:00 CEST; 02:30 never happens.
  const WindowSet set = tier({window("w", "daily", "02:30", "1h", "Europe/Berlin")});
  WindowVerdict v = evaluate_windows(set, at(2026, 3, 29, 0, 59, 59));
  EXPECT_FALSE(v.open);
  EXPECT_EQ(v.next_change, at(2026, 3, 29, 1, 0));  // 03:00 CEST, the end of the gap
  EXPECT_EQ(v.reason, "outside window 'w' (tier): opens Sun 03:00 Europe/Berlin, in 1 s");
  v = evaluate_windows(set, at(2026, 3, 29, 1, 0));
  EXPECT_TRUE(v.open);
  EXPECT_EQ(v.next_change, at(2026, 3, 29, 2, 0));  // one hour of elapsed time: 04:00 CEST
  // The day before and after, 02:30 local is 01:30Z (CET) and 00:30Z (CEST).
  EXPECT_EQ(evaluate_windows(set, at(2026, 3, 28, 1, 0)).next_change, at(2026, 3, 28, 1, 30));
  EXPECT_EQ(evaluate_windows(set, at(2026, 3, 29, 23, 0)).next_change, at(2026, 3, 30, 0, 30));
}

TEST(RebootWindows, FallBackOpensARepeatedStartTimeAtItsFirstOccurrence) {
  // Europe/Berlin, 2026-10-25: 03:00 CEST (01:00Z) goes back to 02:00 CET; 02:30 happens
  // at 00:30Z and again at 01:30Z.
  const WindowSet set = tier({window("w", "daily", "02:30", "2h", "Europe/Berlin")});
  WindowVerdict v = evaluate_windows(set, at(2026, 10, 25, 0, 0));
  EXPECT_FALSE(v.open);
  EXPECT_EQ(v.next_change, at(2026, 10, 25, 0, 30));
  v = evaluate_windows(set, at(2026, 10, 25, 1, 45));  // 02:45 CET, the second time round
  EXPECT_TRUE(v.open);
  EXPECT_EQ(v.next_change, at(2026, 10, 25, 2, 30));  // two hours after 00:30Z: 03:30 CET
  EXPECT_EQ(v.reason, "inside window 'w' (tier) until Sun 03:30 Europe/Berlin, in 45 min");
  EXPECT_FALSE(evaluate_windows(set, at(2026, 10, 25, 2, 30)).open);
}

TEST(RebootWindows, TheNextOfSeveralWindowsOpensNext) {
  const WindowSet set = tier({window("monday", "mon", "01:00", "2h", "UTC"),
                              window("wednesday", "wed", "01:00", "2h", "UTC")});
  // Tuesday 2026-12-08 12:00.
  const WindowVerdict v = evaluate_windows(set, at(2026, 12, 8, 12, 0));
  EXPECT_FALSE(v.open);
  EXPECT_EQ(v.next_change, at(2026, 12, 9, 1, 0));
  EXPECT_EQ(v.reason, "outside window 'wednesday' (tier): opens Wed 01:00 UTC, in 13 h");
  // Overlapping windows of one side are one stretch: open until the later end.
  const WindowSet overlapping =
      tier({window("a", "daily", "01:00", "2h", "UTC"), window("b", "daily", "02:00", "3h", "UTC")});
  EXPECT_EQ(evaluate_windows(overlapping, at(2026, 12, 8, 1, 30)).next_change, at(2026, 12, 8, 5, 0));
}

TEST(RebootWindows, AHostsWindowsNarrowItsTiers) {
  WindowSet set = tier({window("tier-nights", "daily", "00:00", "8h", "UTC")});
  set.host = {window("late-morning", "daily", "06:00", "4h", "UTC")};
  WindowVerdict v = evaluate_windows(set, at(2026, 12, 8, 3, 0));  // the tier's open, the host's not
  EXPECT_FALSE(v.open);
  EXPECT_EQ(v.next_change, at(2026, 12, 8, 6, 0));
  EXPECT_EQ(v.reason, "outside window 'late-morning' (host): opens Tue 06:00 UTC, in 3 h");
  v = evaluate_windows(set, at(2026, 12, 8, 7, 0));
  EXPECT_TRUE(v.open);
  EXPECT_EQ(v.next_change, at(2026, 12, 8, 8, 0));  // the tier's closes first
  EXPECT_FALSE(evaluate_windows(set, at(2026, 12, 8, 9, 0)).open);  // the host's open, the tier's not
  // The agent's own --window narrows both.
  set.local = {window("local-1", "daily", "07:30", "1h", "UTC")};
  v = evaluate_windows(set, at(2026, 12, 8, 7, 0));
  EXPECT_FALSE(v.open);
  EXPECT_EQ(v.reason, "outside window 'local-1' (local): opens Tue 07:30 UTC, in 30 min");
  EXPECT_EQ(evaluate_windows(set, at(2026, 12, 8, 7, 45)).next_change, at(2026, 12, 8, 8, 0));
  set.local.clear();
  // Only a host window: the tier has none, which is no limit.
  WindowSet only_host;
  only_host.host = set.host;
  EXPECT_TRUE(evaluate_windows(only_host, at(2026, 12, 8, 9, 0)).open);
}

TEST(RebootWindows, WindowsThatNeverOverlapKeepTheGateClosedAndSaySo) {
  WindowSet set = tier({window("mondays", "mon", "01:00", "1h", "UTC")});
  set.host = {window("tuesdays", "tue", "01:00", "1h", "UTC")};
  const WindowVerdict v = evaluate_windows(set, at(2026, 12, 8, 12, 0));
  EXPECT_FALSE(v.open);
  EXPECT_FALSE(v.next_change.has_value());
  EXPECT_EQ(v.reason,
            "outside windows tier's 'mondays'; host's 'tuesdays': none opens in the next 14 days (do they overlap?)");
}

TEST(RebootWindows, AWindowThatCannotBeEvaluatedClosesTheGate) {
  WindowSet set;
  set.problems.push_back("window /skopos/windows/tier/worker/x: not a JSON object");
  set.tier = {window("always", "daily", "00:00", "168h", "UTC")};
  WindowVerdict v = evaluate_windows(set, at(2026, 12, 8, 12, 0));
  EXPECT_FALSE(v.open);
  EXPECT_EQ(v.reason,
            "maintenance windows cannot be evaluated: window /skopos/windows/tier/worker/x: not a JSON object");
  // A zone that went missing after the window was stored (the tz database changed).
  RebootWindow lost = window("lost", "daily", "00:00", "1h", "UTC");
  lost.zone = "Gone/Away";
  v = evaluate_windows(tier({lost}), at(2026, 12, 8, 12, 0));
  EXPECT_FALSE(v.open);
  EXPECT_NE(v.reason.find("cannot be evaluated: window 'lost': zone 'Gone/Away'"), std::string::npos);
}

TEST(Pauses, ATiersPauseHoldsItsHostsAndAnUnreadableRecordHoldsEveryone) {
  std::vector<Pause> all = {{WindowStore::Scope::kTier, "proxy", "no", "bob@ops", 1796480000, ""},
                            {WindowStore::Scope::kHost, "db-7", "disk", "alice@ops", 1796480000, ""}};
  EXPECT_FALSE(PauseStore::paused(all, "worker", "web-1").has_value());
  EXPECT_EQ(PauseStore::paused(all, "proxy", "p-1"), "tier proxy paused by bob@ops at 2026-12-05T14:13:20Z: no");
  EXPECT_EQ(PauseStore::paused(all, "worker", "db-7"), "host db-7 paused by alice@ops at 2026-12-05T14:13:20Z: disk");
  all.push_back({WindowStore::Scope::kTier, "", "", "", 0, "key /skopos/pause/x is not <tier|host>/<name>"});
  EXPECT_EQ(PauseStore::paused(all, "worker", "web-1"),
            "paused: a pause record cannot be read (key /skopos/pause/x is not <tier|host>/<name>)");
}

TEST(Pauses, APauseComesBeforeTheWindowsAndAListThatCouldNotBeReadCloses) {
  using Pauses = Result<std::vector<Pause>, std::string>;
  using Windows = Result<std::vector<WindowStore::Stored>, std::string>;
  const SysSeconds now = at(2026, 12, 8, 12, 0);
  const Pauses none = std::vector<Pause>{};
  const Windows nightly = std::vector<WindowStore::Stored>{
      {WindowStore::Scope::kTier, "worker", window("n", "daily", "01:00", "1h", "UTC"), ""}};
  EXPECT_FALSE(pauses_and_windows(none, nightly, {}, "worker", "h", now).open);
  EXPECT_TRUE(pauses_and_windows(none, nightly, {}, "proxy", "h", now).open) << "another tier's window";
  const Pauses paused = std::vector<Pause>{{WindowStore::Scope::kHost, "h", "disk", "ops", 1796480000, ""}};
  EXPECT_EQ(pauses_and_windows(paused, nightly, {}, "worker", "h", now).reason.rfind("host h paused by ops", 0), 0U);
  EXPECT_EQ(pauses_and_windows(Pauses(unexpected(std::string("etcd away"))), nightly, {}, "worker", "h", now).reason,
            "pauses cannot be read: etcd away");
  EXPECT_EQ(pauses_and_windows(none, Windows(unexpected(std::string("etcd away"))), {}, "worker", "h", now).reason,
            "maintenance windows cannot be read: etcd away");
  EXPECT_FALSE(pauses_and_windows(none, std::vector<WindowStore::Stored>{},
                                  {window("l", "daily", "01:00", "1h", "UTC")}, "worker", "h", now)
                   .open)
      << "the agent's own windows narrow too";
}

TEST(RebootWindows, WaitsAreWrittenForPeople) {
  EXPECT_EQ(format_wait(seconds(0)), "0 s");
  EXPECT_EQ(format_wait(seconds(59)), "59 s");
  EXPECT_EQ(format_wait(seconds(61)), "2 min");
  EXPECT_EQ(format_wait(hours(3) + minutes(12)), "3 h 12 min");
  EXPECT_EQ(format_wait(hours(5)), "5 h");
  EXPECT_EQ(format_wait(hours(24 * 3 + 4)), "3 days 4 h");
}

}  // namespace
}  // namespace skopos::driver
