#include "driver/drain_metrics.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "skopos/prometheus_text.h"
#include "skopos/unique_fd.h"

namespace skopos::driver {

using prometheus::append_header;
using prometheus::append_label;

DrainMetrics::DrainMetrics(std::string path, std::string host) : path_(std::move(path)), host_(std::move(host)) {}

bool DrainMetrics::observe(const DrainEvent& event, std::int64_t now_seconds) {
  last_event_ = now_seconds;
  switch (event.type) {
    case DrainEvent::Type::kPhase: {
      if (const auto it = event.fields.find("kind"); it != event.fields.end()) kind_ = it->second;
      if (const auto it = event.fields.find("drain_id"); it != event.fields.end()) drain_id_ = it->second;
      if (!started_ || event.phase != phase_) phase_started_ = now_seconds;
      stuck_now_ = false;
      started_ = true;
      phase_ = event.phase;
      return true;
    }
    case DrainEvent::Type::kWarning:
      ++warnings_;
      if (const auto it = event.fields.find("notify"); it != event.fields.end() && it->second == "stuck") {
        ++stuck_;
        stuck_now_ = true;
      }
      if (const auto it = event.fields.find("fence_reapplied"); it != event.fields.end()) ++fence_reapplied_;
      return true;
    case DrainEvent::Type::kProgress:
      if (event.progress == nullptr) return false;
      inbound_ = event.progress->total;
      unknown_ = event.progress->unknown;
      return true;
    case DrainEvent::Type::kDone:
      return true;
    case DrainEvent::Type::kInfo:
    case DrainEvent::Type::kPlan:
      return false;
  }
  return false;
}

void DrainMetrics::finish(const std::string& result, std::int64_t now_seconds) {
  result_ = result;
  last_event_ = now_seconds;
}

std::string DrainMetrics::text() const {
  std::string out;
  // One sample labelled with the host, and with `label`="`value`" when a label is given.
  const auto sample = [&](std::string_view name, std::int64_t number, std::string_view label = {},
                          std::string_view value = {}) {
    out += name;
    out += '{';
    append_label(out, "host", host_, true);
    if (!label.empty()) append_label(out, label, value, false);
    out += "} ";
    out += std::to_string(number);
    out += '\n';
  };

  append_header(out, "skopos_drain_info", "gauge", "The drain this file describes (its labels); always 1.");
  out += "skopos_drain_info{";
  append_label(out, "host", host_, true);
  append_label(out, "kind", kind_, false);
  append_label(out, "drain_id", drain_id_, false);
  out += "} 1\n";

  if (started_) {
    append_header(out, "skopos_drain_phase", "gauge", "1 for the drain's current phase, 0 for the others.");
    for (int p = 0; p <= static_cast<int>(DrainPhase::kDone); ++p) {
      const auto phase = static_cast<DrainPhase>(p);
      sample("skopos_drain_phase", phase == phase_ ? 1 : 0, "phase", drain_phase_name(phase));
    }
    append_header(out, "skopos_drain_phase_started_timestamp_seconds", "gauge", "When the current phase began (Unix time).");
    sample("skopos_drain_phase_started_timestamp_seconds", phase_started_);
  }

  append_header(out, "skopos_drain_fence_reapplied_total", "counter",
                "Times the wait found the fence no longer first in its hooks (another program put rules above "
                "it) and applied it again.");
  sample("skopos_drain_fence_reapplied_total", fence_reapplied_);
  append_header(out, "skopos_drain_warnings_total", "counter", "Warnings the drain reported.");
  sample("skopos_drain_warnings_total", static_cast<std::int64_t>(warnings_));
  append_header(out, "skopos_drain_stuck_total", "counter",
                "Times a wait (the tier's slot, the connections, the recovery) was reported stuck.");
  sample("skopos_drain_stuck_total", static_cast<std::int64_t>(stuck_));
  append_header(out, "skopos_drain_stuck", "gauge",
                "1 from a stuck report until the drain's next phase (or its end), else 0.");
  sample("skopos_drain_stuck", stuck_now_ && result_.empty() ? 1 : 0);

  if (inbound_ >= 0) {
    append_header(out, "skopos_drain_inbound_connections", "gauge",
                  "Known inbound connections the wait still counts (a lower bound while any container is "
                  "unknown).");
    sample("skopos_drain_inbound_connections", inbound_);
    append_header(out, "skopos_drain_unknown_containers", "gauge", "Containers whose connection count is unknown.");
    sample("skopos_drain_unknown_containers", unknown_);
  }

  if (!result_.empty()) {
    append_header(out, "skopos_drain_result", "gauge", "How the drain ended (1).");
    sample("skopos_drain_result", 1, "result", result_);
  }
  append_header(out, "skopos_drain_last_event_timestamp_seconds", "gauge",
                "When the drain last reported anything (Unix time).");
  sample("skopos_drain_last_event_timestamp_seconds", last_event_);
  return out;
}

Result<void, std::string> DrainMetrics::write() const { return write_metrics_file(path_, text()); }

Result<void, std::string> write_metrics_file(const std::string& path, const std::string& text) {
  const auto failed = [&](const char* step, int error) -> Result<void, std::string> {
    return unexpected("metrics file '" + path + "': " + step + ": " + std::strerror(error));
  };
  // A temporary file of its own beside it (the rename stays in one filesystem; the
  // collector reads only names ending in .prom, and two writers never share one).
  std::string temporary = path + ".XXXXXX";
  UniqueFd fd(::mkostemp(temporary.data(), O_CLOEXEC));
  if (!fd) return failed("create a temporary file beside it", errno);
  const auto discard = [&](const char* step) {
    const int error = errno;
    ::unlink(temporary.c_str());
    return failed(step, error);
  };
  if (::fchmod(fd.get(), 0644) != 0) return discard("chmod");  // the collector may run as another user
  for (std::size_t written = 0; written < text.size();) {
    const ssize_t n = ::write(fd.get(), text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return discard("write");
    written += static_cast<std::size_t>(n);
  }
  // On disk before it replaces the old file: a crash leaves the old text or the new.
  if (::fdatasync(fd.get()) != 0) return discard("fdatasync");
  if (::close(fd.release()) != 0) return discard("close");
  if (::rename(temporary.c_str(), path.c_str()) != 0) return discard("rename");
  return {};
}

}  // namespace skopos::driver
