// Prometheus text-format metrics (exposition format 0.0.4) of the tracker, and the
// small HTTP listener that serves them on a loopback address.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>

#include <functional>
#include <memory>
#include <string>

#include "skopos/http_server.h"
#include "skopos/result.h"
#include "tracker/stream_server.h"
#include "tracker/tracker.h"

namespace skopos::tracker {

// How the counting source came to be what it is, when that is less than was asked for.
struct SourceHealth {
  bool bpf_fallback = false;  // --source auto counts with /proc: the BPF program did not load
  bool bpf_unpinned = false;  // --bpf-pin-dir could not be used: BPF counts, unpinned
};

// Everything worth monitoring: per-container gauges, the sources' counters (events,
// ring-buffer and conntrack drops, BPF vs /proc mismatches) and the stream's clients.
// `stream` may be null (no stream socket).
std::string render_metrics(const Tracker& tracker, const StreamStats* stream, const SourceHealth& health = {});

// Serves GET /metrics over HTTP/1.1 on a loopback address; anything else is 404. Each
// connection gets one response and has a 5 s deadline; at most kMaxSessions are served
// at once (more are closed unanswered), and a failing accept (EMFILE: out of file
// descriptors) is retried after a pause, never in a loop.
//
// Trusted callers only: the metrics name containers, apps and their counts, and unlike
// the stream socket (uid/gid allow-lists) any local user can connect to a loopback
// port. It is off unless --metrics-listen is given; give it on hosts where every local
// user may see what runs there, or keep it off and read counts through the stream.
class MetricsServer {
 public:
  using Render = std::function<std::string()>;
  MetricsServer(boost::asio::io_context& context, Render render);

  // `listen` is "127.0.0.1:9464", "[::1]:9464" or "localhost:9464"; non-loopback
  // addresses are refused (the metrics name containers and apps).
  Result<void> start(const std::string& listen);
  void stop() { server_.stop(); }
  // The bound port (useful with port 0).
  unsigned short port() const { return server_.port(); }
  // Accepts that failed (EMFILE and the like), connections closed for being over the cap.
  std::uint64_t accept_errors() const { return server_.accept_errors(); }
  std::uint64_t over_cap() const { return server_.over_cap(); }

  static constexpr int kMaxSessions = LoopbackHttpServer::kMaxSessions;

 private:
  LoopbackHttpServer server_;
};

}  // namespace skopos::tracker
