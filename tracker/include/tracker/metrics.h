// Prometheus text-format metrics (exposition format 0.0.4) of the tracker, and the
// small HTTP listener that serves them on a loopback address.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <functional>
#include <memory>
#include <string>

#include "skopos/result.h"
#include "tracker/stream_server.h"
#include "tracker/tracker.h"

namespace skopos::tracker {

// Everything worth monitoring: per-container gauges, the sources' counters (events,
// ring-buffer and conntrack drops, BPF vs /proc mismatches) and the stream's clients.
// `stream` may be null (no stream socket).
std::string render_metrics(const Tracker& tracker, const StreamStats* stream);

// Serves GET /metrics over HTTP/1.1 on a loopback address; anything else is 404. Each
// connection gets one response and has a 5 s deadline.
class MetricsServer {
 public:
  using Render = std::function<std::string()>;
  MetricsServer(boost::asio::io_context& context, Render render);
  ~MetricsServer();

  // `listen` is "127.0.0.1:9464", "[::1]:9464" or "localhost:9464"; non-loopback
  // addresses are refused (the metrics name containers and apps).
  Result<void> start(const std::string& listen);
  void stop();
  // The bound port (useful with port 0).
  unsigned short port() const;

 private:
  void accept();
  boost::asio::io_context& context_;
  Render render_;
  boost::asio::ip::tcp::acceptor acceptor_;
};

}  // namespace skopos::tracker
