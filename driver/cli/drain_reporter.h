// DrainReporter: how `skopos drain`, `undrain`, `booster` and `agent` show a drain --
// log lines under systemd, a live view on a terminal, JSON lines with --json, an events
// file, a Prometheus text file.
#pragma once

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>

#include "driver/drain.h"
#include "driver/drain_metrics.h"
#include "driver/notifier.h"

namespace skopos::driver::cli {

// Renders drain events for people (log lines, or a live view on a terminal) or programs
// (JSON lines on stdout with --json), and appends them as JSON lines to `events_file`
// when given (an audit trail and a machine-readable result next to the human view).
// With `metrics_file`, keeps it up to date as Prometheus text (see DrainMetrics).
class DrainReporter {
 public:
  DrainReporter(bool json, bool live, std::chrono::milliseconds interval, const std::string& events_file = {},
                const std::string& metrics_file = {}, const std::string& host = {});
  ~DrainReporter();
  DrainReporter(const DrainReporter&) = delete;
  DrainReporter& operator=(const DrainReporter&) = delete;
  void operator()(const DrainEvent& event);
  // The closing line (stdout): what happened, with the figures.
  void result(const std::string& command, const Result<DrainResult, DrainError>& result);
  // Publishes the drain's milestones (events with a "notify" field, and a failed end) to
  // `notifier` (may be null), with `context`'s machine id, hostname and tier.
  void notify_to(Notifier* notifier, Notification context) {
    notifier_ = notifier;
    context_ = std::move(context);
  }

 private:
  void progress(const WaitProgress& progress);
  void clear_live();
  void json_line(const std::string& line);
  void write_metrics();

  bool json_;
  bool live_;
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point last_line_{};
  int live_lines_ = 0;
  std::string at_fence_ = "?";
  std::FILE* events_ = nullptr;
  std::optional<DrainMetrics> metrics_;
  std::chrono::steady_clock::time_point metrics_written_{};
  bool metrics_pending_ = false;  // a change not written yet
  bool metrics_failed_ = false;  // warned once
  Notifier* notifier_ = nullptr;
  Notification context_;  // kind and drain id follow the phase events
};

// Exit status for a drain error.
int drain_exit_code(const DrainError& error);

}  // namespace skopos::driver::cli
