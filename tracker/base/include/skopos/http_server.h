// LoopbackHttpServer: the small HTTP/1.1 listener both programs serve on a loopback
// address -- the tracker's metrics, the agent's FleetLock endpoint. One request per
// connection, then close; each connection has a 5 s deadline and a request body of at
// most kMaxBody bytes; at most kMaxSessions are served at once (more are closed
// unanswered), and a failing accept (EMFILE: out of file descriptors) is retried after a
// pause, never in a loop. Runs on the io_context it is given; the handler runs there too.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "skopos/result.h"

namespace skopos {

struct HttpServerRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

struct HttpServerResponse {
  unsigned status = 200;
  std::string content_type = "text/plain";
  std::string body;
};

class LoopbackHttpServer {
 public:
  using Handler = std::function<HttpServerResponse(const HttpServerRequest&)>;
  // `what` names the listener in messages ("metrics"); `why_loopback` says why only a
  // loopback address is allowed.
  LoopbackHttpServer(boost::asio::io_context& context, std::string what, std::string why_loopback, Handler handler);
  ~LoopbackHttpServer();
  LoopbackHttpServer(const LoopbackHttpServer&) = delete;
  LoopbackHttpServer& operator=(const LoopbackHttpServer&) = delete;

  // `listen` is "127.0.0.1:PORT", "[::1]:PORT" or "localhost:PORT" (port 0: any);
  // non-loopback addresses are refused.
  Result<void> start(const std::string& listen);
  void stop();
  unsigned short port() const;  // the bound port
  // Accepts that failed (EMFILE and the like), connections closed for being over the cap.
  std::uint64_t accept_errors() const { return accept_errors_; }
  std::uint64_t over_cap() const { return over_cap_; }

  static constexpr int kMaxSessions = 16;
  static constexpr std::size_t kMaxBody = 64 * 1024;

 private:
  void accept();

  boost::asio::io_context& context_;
  std::string what_;
  std::string why_loopback_;
  Handler handler_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_;
  std::shared_ptr<int> sessions_ = std::make_shared<int>(0);  // live sessions (shared with them)
  std::uint64_t accept_errors_ = 0;
  std::uint64_t over_cap_ = 0;
  std::chrono::milliseconds pause_{0};
};

}  // namespace skopos
