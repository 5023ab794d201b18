#include "tracker/metrics.h"

#include <algorithm>
#include <charconv>

#include "skopos/log.h"
#include "skopos/prometheus_text.h"

namespace skopos::tracker {

namespace asio = boost::asio;

namespace {

using prometheus::append_label;
using prometheus::append_header;
using prometheus::append_sample;

void metric(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            std::uint64_t value) {
  append_header(out, name, type, help);
  append_sample(out, name, value);
}

// The source's counters and gauges, in the order they are written.
struct SourceMetric {
  std::string_view name;
  std::string_view type;
  std::string_view help;
  std::uint64_t SourceStats::*value;
};
constexpr SourceMetric kSourceMetrics[] = {
    {"skopos_tracker_namespaces_tracked", "gauge", "Network namespaces being counted.", &SourceStats::tracked},
    {"skopos_tracker_events_total", "counter", "Kernel change events processed (bpf).", &SourceStats::events},
    {"skopos_tracker_ringbuffer_lost_events_total", "counter",
     "Change events the kernel could not put in the ring buffer (each triggers a re-read).", &SourceStats::lost_events},
    {"skopos_tracker_resyncs_total", "counter", "Full re-reads of the kernel's counts.", &SourceStats::resyncs},
    {"skopos_tracker_bpf_count_failures_total", "counter",
     "Sockets the kernel map had no room for.", &SourceStats::count_failures},
    {"skopos_tracker_bpf_storage_failures_total", "counter",
     "Sockets that could not be marked.", &SourceStats::storage_failures},
    {"skopos_tracker_bpf_underflows_total", "counter",
     "Decrements of a zero count (a bug if nonzero).", &SourceStats::underflows},
    {"skopos_tracker_bpf_stale_marks_total", "counter",
     "Sockets found counted when entering ESTABLISHED, their old counts taken back (a bug if nonzero).",
     &SourceStats::stale_marks},
    {"skopos_tracker_bpf_reclaim_failures_total", "counter",
     "Idle kernel map entries whose delete failed (the next reclaim pass tries again).",
     &SourceStats::reclaim_failures},
    {"skopos_tracker_bpf_reclaim_passes_total", "counter",
     "Passes over the kernel maps for idle entries.", &SourceStats::reclaim_passes},
    {"skopos_tracker_bpf_keys_reclaimed_total", "counter",
     "Count keys at zero the reclaim passes deleted.", &SourceStats::keys_reclaimed},
    {"skopos_tracker_bpf_marks_reclaimed_total", "counter",
     "Idle socket marks the reclaim passes deleted.", &SourceStats::marks_reclaimed},
    {"skopos_tracker_bpf_map_keys", "gauge",
     "Count keys the kernel map holds, idle ones included.", &SourceStats::map_keys},
    {"skopos_tracker_bpf_map_marks", "gauge",
     "Socket marks the kernel map holds, idle ones included.", &SourceStats::map_marks},
    {"skopos_tracker_bpf_misplaced_counts_total", "counter",
     "Increments left on a map element the kernel had handed to another key: that key one too high.",
     &SourceStats::misplaced_counts},
    {"skopos_tracker_bpf_unproven_namespaces", "gauge",
     "Namespaces unknown since a socket could not be counted, until a snapshot proves them.", &SourceStats::unproven},
    {"skopos_tracker_bpf_proofs_total", "counter",
     "Snapshots run again to prove a namespace's count.", &SourceStats::proofs},
    {"skopos_tracker_bpf_hash_walks_total", "counter",
     "Walks of the host's TCP hash that snapshotted many namespaces at once.", &SourceStats::hash_walks},
    {"skopos_tracker_bpf_hash_walk_fallbacks_total", "counter",
     "Walks of the host's TCP hash that stopped, their namespaces then snapshotted one by one.",
     &SourceStats::hash_walk_fallbacks},
    {"skopos_tracker_bpf_hash_walk_sockets_total", "counter",
     "Sockets the walks of the host's TCP hash counted, since the BPF program was loaded.",
     &SourceStats::hash_walk_counted},
    {"skopos_tracker_proc_read_errors_total", "counter", "Namespaces /proc could not read.", &SourceStats::read_errors},
};

void container_labels(std::string& out, const StreamContainerView& c) {
  out += '{';
  append_label(out, "id", c.id.substr(0, 12), true);
  append_label(out, "name", c.name, false);
  append_label(out, "marathon_app_id", c.marathon_app_id, false);
  append_label(out, "mesos_task_id", c.mesos_task_id, false);
  append_label(out, "network_mode", c.network_mode, false);
  out += '}';
}

}  // namespace

std::string render_metrics(const Tracker& tracker, const StreamStats* stream, const SourceHealth& health) {
  std::string out;
  out.reserve(4096);
  const TrackerStats stats = tracker.stats();

  append_header(out, "skopos_tracker_container_inbound", "gauge",
         "Established inbound connections of a container (absent while unknown).");
  for (std::uint32_t slot = 0; slot < tracker.slot_count(); ++slot) {
    if (!tracker.slot_live(slot)) continue;
    const StreamContainerView c = tracker.view(slot);
    if (!c.known) continue;
    out += "skopos_tracker_container_inbound";
    container_labels(out, c);
    out += ' ' + std::to_string(c.inbound) + '\n';
  }
  append_header(out, "skopos_tracker_container_outbound", "gauge",
         "Established outbound connections of a container (absent when unknown or host mode).");
  for (std::uint32_t slot = 0; slot < tracker.slot_count(); ++slot) {
    if (!tracker.slot_live(slot)) continue;
    const StreamContainerView c = tracker.view(slot);
    if (!c.known || c.outbound < 0) continue;
    out += "skopos_tracker_container_outbound";
    container_labels(out, c);
    out += ' ' + std::to_string(c.outbound) + '\n';
  }
  append_header(out, "skopos_tracker_container_known", "gauge", "1 when a container's counts are known, 0 when not.");
  for (std::uint32_t slot = 0; slot < tracker.slot_count(); ++slot) {
    if (!tracker.slot_live(slot)) continue;
    const StreamContainerView c = tracker.view(slot);
    out += "skopos_tracker_container_known";
    container_labels(out, c);
    out += c.known ? " 1\n" : " 0\n";
  }

  append_header(out, "skopos_tracker_source", "gauge", "The counting source in use (1 for the active one).");
  out += "skopos_tracker_source{source=\"";
  out += source_name(tracker.const_source().kind());
  out += "\"} 1\n";
  metric(out, "skopos_tracker_bpf_fallback", "gauge",
         "1 when --source auto counts with /proc because the BPF program could not be loaded (the log says why).",
         health.bpf_fallback ? 1 : 0);
  metric(out, "skopos_tracker_bpf_unpinned", "gauge",
         "1 when --bpf-pin-dir could not be used: the program stops with the tracker and its next start snapshots "
         "every namespace.",
         health.bpf_unpinned ? 1 : 0);
  metric(out, "skopos_tracker_docker_available", "gauge", "1 when the Docker API answers.",
         tracker.containers_known() ? 1 : 0);
  metric(out, "skopos_tracker_containers", "gauge", "Containers known.", stats.containers);
  metric(out, "skopos_tracker_namespaces", "gauge", "Network namespaces seen.", stats.namespaces);
  for (const SourceMetric& m : kSourceMetrics) metric(out, m.name, m.type, m.help, stats.source.*m.value);
  metric(out, "skopos_tracker_consistency_checks_total", "counter", "bpf vs /proc consistency checks run.",
         stats.consistency_checks);
  metric(out, "skopos_tracker_consistency_mismatches_total", "counter",
         "Namespaces where bpf and /proc disagreed on two checks in a row.", stats.consistency_mismatches);
  if (stats.conntrack) {
    metric(out, "skopos_tracker_conntrack_events_total", "counter", "conntrack events processed.",
           stats.conntrack_stats.events);
    metric(out, "skopos_tracker_conntrack_overflows_total", "counter",
           "conntrack event socket overflows (ENOBUFS), each answered by a dump.", stats.conntrack_stats.overflows);
    metric(out, "skopos_tracker_conntrack_dumps_total", "counter", "Full conntrack dumps.", stats.conntrack_stats.dumps);
    metric(out, "skopos_tracker_conntrack_flows", "gauge", "DNAT'ed TCP flows known.", stats.conntrack_stats.flows);
  }
  if (stream != nullptr) {
    metric(out, "skopos_tracker_stream_clients", "gauge", "Subscribers connected now.", stream->clients);
    metric(out, "skopos_tracker_stream_accepted_total", "counter", "Subscriber connections accepted.",
           stream->accepted);
    metric(out, "skopos_tracker_stream_messages_total", "counter", "Snapshot and update messages sent.",
           stream->messages);
    metric(out, "skopos_tracker_stream_container_updates_total", "counter",
           "Container states written to subscribers.", stream->container_updates);
    metric(out, "skopos_tracker_stream_peers_requests_total", "counter",
           "Peers questions answered (a drain asks who holds a container's connections).", stream->peers_requests);
    append_header(out, "skopos_tracker_stream_disconnects_total", "counter", "Subscribers disconnected, by reason.");
    for (const auto& [reason, count] : stream->disconnects) {
      out += "skopos_tracker_stream_disconnects_total{";
      append_label(out, "reason", reason, true);
      out += "} " + std::to_string(count) + '\n';
    }
  }
  return out;
}

MetricsServer::MetricsServer(asio::io_context& context, Render render)
    : server_(context, "metrics", "the metrics name containers and apps",
              [render = std::move(render)](const HttpServerRequest& request) -> HttpServerResponse {
                if (request.method == "GET" && (request.target == "/metrics" || request.target == "/")) {
                  return {200, "text/plain; version=0.0.4; charset=utf-8", render()};
                }
                return {404, "text/plain", "only GET /metrics is served here\n"};
              }) {}

Result<void> MetricsServer::start(const std::string& listen) {
  if (auto started = server_.start(listen); !started) return started;
  log_info("metrics on http://" + listen + "/metrics");
  return {};
}

}  // namespace skopos::tracker
