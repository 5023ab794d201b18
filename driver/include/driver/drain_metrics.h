// DrainMetrics: what a drain is doing, as Prometheus text in a file that node_exporter's
// textfile collector serves (the driver is a command that ends, not a server to scrape;
// the agent runs drains in-process and writes the same file).
//
// The file is rewritten whole at every phase, warning and at the end, and with the
// progress at most once a second, by writing a temporary file of its own beside it,
// syncing it and renaming it over the old one: a scrape (or a crash) finds either the
// old text or the new, never half of one.
//
//   skopos_drain_info{host,kind,drain_id}         1
//   skopos_drain_phase{phase}                     1 for the current phase, 0 for the others
//   skopos_drain_phase_started_timestamp_seconds  when the current phase began (Unix time)
//   skopos_drain_fence_reapplied_total            times the wait found the fence pushed
//                                                 down in its hooks and applied it again
//   skopos_drain_warnings_total                   warnings of this run
//   skopos_drain_stuck_total                      times a wait was reported stuck (--stuck-after)
//   skopos_drain_stuck                            1 from a stuck report until the next phase
//   skopos_drain_inbound_connections              known inbound connections left (last tick)
//   skopos_drain_unknown_containers               containers whose count is unknown (last
//                                                 tick): while nonzero the count above is
//                                                 a lower bound, never the truth
//   skopos_drain_last_event_timestamp_seconds     when the drain last reported anything
//   skopos_drain_result{result}                   once it ended: 1 for how it ended
#pragma once

#include <cstdint>
#include <string>

#include "driver/drain.h"
#include "skopos/result.h"

namespace skopos::driver {

class DrainMetrics {
 public:
  // `path`: where the text goes (for the textfile collector, a *.prom file in its
  // directory). `host` labels the series.
  DrainMetrics(std::string path, std::string host);

  // Takes the event into account; returns whether the file should be written now.
  bool observe(const DrainEvent& event, std::int64_t now_seconds);
  // How the drain ended: "drained", "rebooting", "back", or the error's kind.
  void finish(const std::string& result, std::int64_t now_seconds);

  // The Prometheus text exposition of the current state.
  std::string text() const;
  // Writes text() to the file (temporary file, then rename); the error names the file.
  Result<void, std::string> write() const;

  int fence_reapplied() const { return fence_reapplied_; }

 private:
  std::string path_;
  std::string host_;
  std::string kind_;
  std::string drain_id_;
  bool started_ = false;  // a phase event arrived
  DrainPhase phase_ = DrainPhase::kHostLock;
  std::int64_t phase_started_ = 0;
  int fence_reapplied_ = 0;
  std::uint64_t warnings_ = 0;
  std::uint64_t stuck_ = 0;
  bool stuck_now_ = false;  // reported stuck, no phase since
  std::int64_t inbound_ = -1;  // -1: no progress tick yet
  std::int64_t unknown_ = 0;
  std::int64_t last_event_ = 0;
  std::string result_;
};

// Replaces the file at `path` with `text` whole (a temporary file of its own beside it,
// synced, renamed over it): a reader finds the old text or the new. The error names the
// file and the step that failed.
Result<void, std::string> write_metrics_file(const std::string& path, const std::string& text);

}  // namespace skopos::driver
