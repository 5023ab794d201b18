#include "tracker/metrics.h"

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <charconv>

#include "skopos/log.h"
#include "skopos/prometheus_text.h"

namespace skopos::tracker {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;

namespace {

using prometheus::append_label;
using prometheus::append_header;
using prometheus::append_sample;

void metric(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            std::uint64_t value) {
  append_header(out, name, type, help);
  append_sample(out, name, value);
}

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

std::string render_metrics(const Tracker& tracker, const StreamStats* stream) {
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
  metric(out, "skopos_tracker_docker_available", "gauge", "1 when the Docker API answers.",
         tracker.containers_known() ? 1 : 0);
  metric(out, "skopos_tracker_containers", "gauge", "Containers known.", stats.containers);
  metric(out, "skopos_tracker_namespaces", "gauge", "Network namespaces seen.", stats.namespaces);
  metric(out, "skopos_tracker_namespaces_tracked", "gauge", "Network namespaces being counted.", stats.source.tracked);
  metric(out, "skopos_tracker_events_total", "counter", "Kernel change events processed (bpf).", stats.source.events);
  metric(out, "skopos_tracker_ringbuffer_lost_events_total", "counter",
         "Change events the kernel could not put in the ring buffer (each triggers a re-read).",
         stats.source.lost_events);
  metric(out, "skopos_tracker_resyncs_total", "counter", "Full re-reads of the kernel's counts.", stats.source.resyncs);
  metric(out, "skopos_tracker_bpf_count_failures_total", "counter", "Sockets the kernel map had no room for.",
         stats.source.count_failures);
  metric(out, "skopos_tracker_bpf_storage_failures_total", "counter", "Sockets that could not be marked.",
         stats.source.storage_failures);
  metric(out, "skopos_tracker_bpf_underflows_total", "counter", "Decrements of a zero count (a bug if nonzero).",
         stats.source.underflows);
  metric(out, "skopos_tracker_bpf_stale_marks_total", "counter",
         "Sockets found counted when entering ESTABLISHED, their old counts taken back (a bug if nonzero).",
         stats.source.stale_marks);
  metric(out, "skopos_tracker_bpf_reclaim_failures_total", "counter",
         "Idle kernel map entries whose delete failed (the next reclaim pass tries again).",
         stats.source.reclaim_failures);
  metric(out, "skopos_tracker_bpf_reclaim_passes_total", "counter", "Passes over the kernel maps for idle entries.",
         stats.source.reclaim_passes);
  metric(out, "skopos_tracker_bpf_keys_reclaimed_total", "counter", "Count keys at zero the reclaim passes deleted.",
         stats.source.keys_reclaimed);
  metric(out, "skopos_tracker_bpf_marks_reclaimed_total", "counter", "Idle socket marks the reclaim passes deleted.",
         stats.source.marks_reclaimed);
  metric(out, "skopos_tracker_bpf_map_keys", "gauge",
         "Count keys the kernel map holds, idle ones included.", stats.source.map_keys);
  metric(out, "skopos_tracker_bpf_map_marks", "gauge",
         "Socket marks the kernel map holds, idle ones included.", stats.source.map_marks);
  metric(out, "skopos_tracker_bpf_misplaced_counts_total", "counter",
         "Increments left on a map element the kernel had handed to another key: that key one too high.",
         stats.source.misplaced_counts);
  metric(out, "skopos_tracker_bpf_unproven_namespaces", "gauge",
         "Namespaces unknown since a socket could not be counted, until a snapshot proves them.",
         stats.source.unproven);
  metric(out, "skopos_tracker_bpf_proofs_total", "counter", "Snapshots run again to prove a namespace's count.",
         stats.source.proofs);
  metric(out, "skopos_tracker_proc_read_errors_total", "counter", "Namespaces /proc could not read.",
         stats.source.read_errors);
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
    : context_(context), render_(std::move(render)), acceptor_(context), retry_(context) {}

MetricsServer::~MetricsServer() { stop(); }

Result<void> MetricsServer::start(const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return unexpected(Error::invalid("metrics listen", listen, "expected ADDRESS:PORT, e.g. 127.0.0.1:9464"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  unsigned short port = 0;
  const std::string port_text = listen.substr(colon + 1);
  if (std::from_chars(port_text.data(), port_text.data() + port_text.size(), port).ec != std::errc{}) {
    return unexpected(Error::invalid("metrics listen", listen, "bad port"));
  }
  error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) return unexpected(Error::invalid("metrics listen", listen, "not an IP address"));
  if (!address.is_loopback()) {
    return unexpected(Error::invalid("metrics listen", listen,
                                     "only loopback addresses are allowed: the metrics name containers and apps"));
  }
  const asio::ip::tcp::endpoint endpoint(address, port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(64, ec);
  if (ec) return unexpected(Error::from_errno(ec.value(), "metrics listen", listen));
  accept();
  log_info("metrics on http://" + listen + "/metrics");
  return {};
}

void MetricsServer::stop() {
  error_code ignored;
  acceptor_.close(ignored);
  retry_.cancel();
}

unsigned short MetricsServer::port() const {
  error_code ec;
  return acceptor_.local_endpoint(ec).port();
}

namespace {

// One request, one response, then close; the timer bounds a client that never sends.
struct MetricsSession : std::enable_shared_from_this<MetricsSession> {
  MetricsSession(asio::ip::tcp::socket s, MetricsServer::Render& r, std::shared_ptr<int> live)
      : socket(std::move(s)), timer(socket.get_executor()), render(r), sessions(std::move(live)) {
    ++*sessions;
  }
  ~MetricsSession() { --*sessions; }
  asio::ip::tcp::socket socket;
  asio::steady_timer timer;
  MetricsServer::Render& render;
  std::shared_ptr<int> sessions;
  boost::beast::flat_buffer buffer;
  http::request<http::empty_body> request;
  http::response<http::string_body> response;

  void run() {
    timer.expires_after(std::chrono::seconds(5));
    timer.async_wait([self = shared_from_this()](const error_code& ec) {
      if (!ec) {
        error_code ignored;
        self->socket.close(ignored);
      }
    });
    http::async_read(socket, buffer, request, [self = shared_from_this()](const error_code& ec, std::size_t) {
      if (ec) return;
      self->respond();
    });
  }
  void respond() {
    const bool metrics = request.method() == http::verb::get && (request.target() == "/metrics" || request.target() == "/");
    response.version(11);
    response.keep_alive(false);
    if (metrics) {
      response.result(http::status::ok);
      response.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      response.body() = render();
    } else {
      response.result(http::status::not_found);
      response.set(http::field::content_type, "text/plain");
      response.body() = "only GET /metrics is served here\n";
    }
    response.prepare_payload();
    http::async_write(socket, response, [self = shared_from_this()](const error_code&, std::size_t) {
      error_code ignored;
      self->socket.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
      self->socket.close(ignored);
      self->timer.cancel();
    });
  }
};

}  // namespace

void MetricsServer::accept() {
  acceptor_.async_accept([this](const error_code& ec, asio::ip::tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) {
      // EMFILE/ENFILE/ENOBUFS leave the connection in the backlog, so accepting again at
      // once fails again at once: pause (doubling to 1 s) instead of spinning.
      ++accept_errors_;
      if (pause_.count() == 0) {  // one line per episode; the count is in accept_errors()
        log_warning("metrics: accept failed (" + ec.message() + "); pausing the listener until it works again");
      }
      pause_ = std::min(std::max(pause_ * 2, std::chrono::milliseconds(50)), std::chrono::milliseconds(1000));
      retry_.expires_after(pause_);
      retry_.async_wait([this](const error_code& waited) {
        if (!waited) accept();
      });
      return;
    }
    pause_ = std::chrono::milliseconds(0);
    if (*sessions_ >= kMaxSessions) {
      ++over_cap_;  // closed unanswered: a scraper retries, a flood costs nothing
      error_code ignored;
      socket.close(ignored);
    } else {
      std::make_shared<MetricsSession>(std::move(socket), render_, sessions_)->run();
    }
    accept();
  });
}

}  // namespace skopos::tracker
