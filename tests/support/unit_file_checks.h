// What the tests expect of every daemon's systemd unit (header only: it uses gtest, which
// the support library the benchmarks link does not need).
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "systemd_support.h"

namespace skopos::testing {

// `exec_start` in ExecStart, systemd-analyze verify silent, Type=notify, a watchdog, and
// `restart` (e.g. "Restart=always").
inline void expect_notify_unit(const VerifiedUnit& unit, const std::string& exec_start, const std::string& restart) {
  EXPECT_NE(unit.text.find("ExecStart=" + exec_start), std::string::npos) << unit.text;
  EXPECT_EQ(unit.verify.exit_code, 0) << unit.verify.err;
  EXPECT_EQ(unit.verify.err, "") << "warnings are mistakes too";
  EXPECT_NE(unit.text.find("Type=notify"), std::string::npos);
  EXPECT_NE(unit.text.find("WatchdogSec="), std::string::npos);
  EXPECT_NE(unit.text.find(restart), std::string::npos) << unit.text;
}

}  // namespace skopos::testing
