#include "drain_reporter.h"

#include <cerrno>
#include <cstring>
#include <ctime>

#include "global_options.h"
#include "skopos/json_writer.h"
#include "skopos/cli_args.h"
#include "skopos/log.h"

namespace skopos::driver::cli {

namespace {

using Clock = std::chrono::steady_clock;

// CLOCK_REALTIME in nanoseconds: JSON events carry it so other processes (tests,
// benchmarks, log pipelines) can line them up with their own clocks.
std::int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

DrainReporter::DrainReporter(bool json, bool live, std::chrono::milliseconds interval, const std::string& events_file,
                             const std::string& metrics_file, const std::string& host)
    : json_(json), live_(live && !json), interval_(interval) {
  if (!events_file.empty()) {
    events_ = std::fopen(events_file.c_str(), "ae");
    if (events_ == nullptr) {
      throw FatalError("--events: cannot open '" + events_file + "' for appending: " + std::strerror(errno));
    }
  }
  if (!metrics_file.empty()) {
    metrics_.emplace(metrics_file, host);
    // Written once now, so a directory that refuses it is a usage error before anything
    // is done, not a warning in the middle of the drain.
    if (auto written = metrics_->write(); !written) throw FatalError("--metrics-file: " + written.error());
  }
}

void DrainReporter::write_metrics() {
  metrics_written_ = std::chrono::steady_clock::now();
  metrics_pending_ = false;
  auto written = metrics_->write();
  if (written) {
    metrics_failed_ = false;
  } else if (!metrics_failed_) {
    // The drain goes on: the metrics are how people watch it, not part of it.
    log_warning(written.error() + " (the drain goes on; the file is tried again at the next event)");
    metrics_failed_ = true;
  }
}

DrainReporter::~DrainReporter() {
  if (events_ != nullptr) std::fclose(events_);
}

void DrainReporter::json_line(const std::string& line) {
  if (json_) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
  if (events_ != nullptr) {
    std::fprintf(events_, "%s\n", line.c_str());
    std::fflush(events_);
  }
}

void DrainReporter::clear_live() {
  if (live_lines_ > 0) {
    std::printf("\033[%dA\033[J", live_lines_);
    live_lines_ = 0;
  }
}

void DrainReporter::operator()(const DrainEvent& event) {
  if (metrics_) {
    // Progress comes with every change of a count: written at most once a second, and a
    // change held back goes out with the next event a second later (the next tick at
    // the latest).
    metrics_pending_ = metrics_->observe(event, static_cast<std::int64_t>(std::time(nullptr))) || metrics_pending_;
    const bool due = std::chrono::steady_clock::now() - metrics_written_ >= std::chrono::seconds(1);
    const bool urgent = event.type != DrainEvent::Type::kProgress && event.type != DrainEvent::Type::kInfo;
    if (metrics_pending_ && (urgent || due)) write_metrics();
  }
  if (event.type == DrainEvent::Type::kProgress) {
    progress(*event.progress);
    return;
  }
  if (const auto kind = event.fields.find("kind"); kind != event.fields.end()) context_.kind = kind->second;
  if (const auto id = event.fields.find("drain_id"); id != event.fields.end()) context_.drain_id = id->second;
  if (const auto milestone = event.fields.find("notify"); milestone != event.fields.end() && notifier_ != nullptr) {
    Notification n = context_;
    n.event = milestone->second;
    n.at = static_cast<std::int64_t>(std::time(nullptr));
    n.phase = drain_phase_name(event.phase);
    n.message = event.message;
    notifier_->publish(n);
  }
  if (event.type == DrainEvent::Type::kInfo && event.phase == DrainPhase::kFence) {
    if (const auto it = event.fields.find("connections"); it != event.fields.end()) at_fence_ = it->second;
  }
  if (json_ || events_ != nullptr) {
    std::string out;
    JsonWriter json(out);
    const char* type = event.type == DrainEvent::Type::kPhase     ? "phase"
                       : event.type == DrainEvent::Type::kWarning ? "warning"
                       : event.type == DrainEvent::Type::kPlan    ? "plan"
                       : event.type == DrainEvent::Type::kDone    ? "done"
                                                                  : "info";
    json.begin_object().key("event").value(type).key("phase").value(drain_phase_name(event.phase));
    json.key("time_ns").value(wall_ns());
    json.key("message").value(event.message);
    for (const auto& [key, value] : event.fields) json.key(key).value(value);
    json.end_object();
    json_line(out);
    if (json_) return;
  }
  clear_live();
  switch (event.type) {
    case DrainEvent::Type::kPhase: log_notice("phase " + event.message); break;
    case DrainEvent::Type::kWarning: log_warning(event.message); break;
    case DrainEvent::Type::kPlan: std::printf("%s\n", event.message.c_str()); break;
    default: log_info(event.message); break;
  }
  std::fflush(stdout);
}

// How many containers a progress line or screen lists by name.
constexpr std::size_t kProgressContainers = 8;

void DrainReporter::progress(const WaitProgress& p) {
  const std::string eta = p.eta ? std::to_string(p.eta->count()) + " s" : std::string("-");
  char rate[32];
  std::snprintf(rate, sizeof rate, "%.1f/s", p.closing_per_second);
  if (json_ || events_ != nullptr) {
    std::string out;
    JsonWriter json(out);
    json.begin_object().key("event").value("progress").key("time_ns").value(wall_ns());
    json.key("elapsed_ms").value(static_cast<std::int64_t>(p.elapsed.count()));
    json.key("inbound").value(p.total).key("unknown").value(p.unknown).key("connected").value(p.connected);
    char number[32];
    std::snprintf(number, sizeof number, "%.2f", p.closing_per_second);
    json.key("closing_per_second").raw_value(number).key("oldest_peer").value(p.oldest_peer);
    if (p.eta) {
      json.key("eta_seconds").value(static_cast<std::int64_t>(p.eta->count()));
    }
    json.key("containers").begin_array();
    for (const ContainerCount& c : p.containers) {
      json.begin_object().key("id").value(c.id).key("name").value(c.name);
      json.key("inbound");
      if (c.inbound < 0) {
        json.null();
      } else {
        json.value(c.inbound);
      }
      json.key("deadline_passed").value(c.deadline_passed).key("gone").value(c.gone).end_object();
    }
    json.end_array().end_object();
    json_line(out);
    if (json_) return;
  }
  // Totals, the unknowns and the few containers holding the most connections: a host
  // with hundreds of containers still gets one readable line (or screen).
  const std::vector<const ContainerCount*> shown = p.busiest(kProgressContainers);
  const std::size_t rest = p.containers.size() - shown.size();
  std::string per_container;
  for (const ContainerCount* c : shown) {
    if (!per_container.empty()) per_container += ", ";
    per_container += c->name + " " + (c->inbound < 0 ? std::string("?") : std::to_string(c->inbound)) +
                     (c->gone ? " (gone)" : c->deadline_passed ? " (deadline)" : "");
  }
  const std::string rest_text = rest == 0 ? std::string() : "and " + std::to_string(rest) + " more, none of them holding a connection";
  if (rest != 0) per_container += ", " + rest_text;
  const std::string head = std::to_string(p.total) + " inbound connection(s)" +
                           (p.unknown ? " + " + std::to_string(p.unknown) + " unknown" : "") + " in " +
                           std::to_string(p.containers.size()) + " container(s), closing " + rate + ", ETA " + eta +
                           ", waited " + format_seconds(p.elapsed) + (p.connected ? "" : " [tracker not connected]");
  if (live_) {
    clear_live();
    std::printf("waiting: %s\n", head.c_str());
    live_lines_ = 1;
    for (const ContainerCount* c : shown) {
      std::printf("  %-44s %6s%s\n", c->name.c_str(), c->inbound < 0 ? "?" : std::to_string(c->inbound).c_str(),
                  c->gone ? "  gone" : c->deadline_passed ? "  deadline passed" : "");
      ++live_lines_;
    }
    if (rest != 0) {
      std::printf("  %s\n", rest_text.c_str());
      ++live_lines_;
    }
    std::printf("  oldest: %s\n", p.oldest_peer.empty() ? "-" : p.oldest_peer.c_str());
    ++live_lines_;
    std::fflush(stdout);
    return;
  }
  // Lines (under systemd): one per interval, and the one that says it reached zero.
  const auto now = Clock::now();
  if (p.total != 0 && now - last_line_ < interval_) return;
  last_line_ = now;
  log_info("waiting: " + head + " [" + per_container + "]" + (p.oldest_peer.empty() ? "" : "; oldest " + p.oldest_peer));
}

void DrainReporter::result(const std::string& command, const Result<DrainResult, DrainError>& result) {
  clear_live();
  if (!result) {
    const DrainError& error = result.error();
    if (metrics_) {
      metrics_->finish(drain_error_kind_name(error.kind), static_cast<std::int64_t>(std::time(nullptr)));
      write_metrics();
    }
    std::fprintf(stderr, "%s: %s\n", command.c_str(), error.message.c_str());
    // A stop at a safe point is not a failure, nor a closed gate (the agent says it waits).
    if (notifier_ != nullptr && error.kind != DrainError::Kind::kInterrupted &&
        error.kind != DrainError::Kind::kGated) {
      Notification n = context_;
      n.event = "failed";
      n.at = static_cast<std::int64_t>(std::time(nullptr));
      n.message = std::string(drain_error_kind_name(error.kind)) + ": " + error.message;
      notifier_->publish(n);
    }
    std::string out;
    JsonWriter json(out);
    json.begin_object().key("event").value("result").key("time_ns").value(wall_ns());
    json.key("outcome").value(drain_error_kind_name(error.kind)).key("message").value(error.message).end_object();
    json_line(out);
    return;
  }
  const DrainResult& r = *result;
  const char* outcome = r.reached == DrainPhase::kDone     ? "recovered"
                        : r.reached == DrainPhase::kReboot ? "rebooting"
                        : r.reached == DrainPhase::kDrained ? "drained"
                                                            : "planned";
  if (metrics_) {
    metrics_->finish(outcome, static_cast<std::int64_t>(std::time(nullptr)));
    write_metrics();
  }
  std::string out;
  JsonWriter json(out);
  json.begin_object().key("event").value("result").key("time_ns").value(wall_ns()).key("outcome").value(outcome);
  json.key("phase").value(drain_phase_name(r.reached)).key("took_ms").value(static_cast<std::int64_t>(r.took.count()));
  json.key("containers").value(static_cast<std::uint64_t>(r.facts.containers.size()));
  if (r.reached != DrainPhase::kDone) json.key("connections_at_fence").value(at_fence_);
  json.key("connections_zero").value(r.facts.connections_zero);
  if (r.wait) json.key("waited_ms").value(static_cast<std::int64_t>(r.wait->waited.count()));
  json.end_object();
  json_line(out);
  if (json_ || std::string_view(outcome) == "planned") return;  // a dry run printed its plan
  std::string line = std::string(outcome) + " in " + format_seconds(r.took);
  if (r.reached != DrainPhase::kDone) {
    line += ": " + std::to_string(r.facts.containers.size()) + " container(s), " + at_fence_ +
            " inbound connection(s) when fenced";
    if (r.wait) {
      line += r.wait->all_zero ? ", all closed after " + format_seconds(r.wait->waited)
                               : ", deadline reached after " + format_seconds(r.wait->waited) + " with " +
                                     std::to_string(r.wait->last.total) + " left";
    }
  }
  std::printf("%s\n", line.c_str());
}

int drain_exit_code(const DrainError& error) {
  switch (error.kind) {
    case DrainError::Kind::kFailed: return kExitFailed;
    case DrainError::Kind::kRefused:
    case DrainError::Kind::kGated: return kExitRefused;
    case DrainError::Kind::kTimedOut: return kExitTimedOut;
    case DrainError::Kind::kInterrupted: return kExitInterrupted;
    case DrainError::Kind::kUsage: return kExitUsage;
  }
  return kExitFailed;
}

}  // namespace skopos::driver::cli
