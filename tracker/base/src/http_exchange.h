// Inside the HTTP client (not installed, not for callers): one exchange's state, shared
// by the plain client (http_client.cpp) and the TLS part linked apart (http_tls.cpp),
// which runs the same exchange on its secured stream. Programs that never speak https
// link no OpenSSL: the TLS part plugs in through TlsLayer when enable_http_tls() ran.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "skopos/http_client.h"

namespace skopos::http_detail {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

// How often a wait looks at a stop flag that a signal handler may set.
inline constexpr std::chrono::milliseconds kStopFlagPoll{100};

// Runs `context` until `done` or `deadline` (or `stop`, when given, is set: it is looked
// at every kStopFlagPoll); otherwise calls `cancel` (which closes the socket, ending
// every pending operation) and drains. Returns whether it finished.
template <class Cancel>
bool run_until(asio::io_context& context, const bool& done, Clock::time_point deadline, Cancel cancel,
               const std::atomic<bool>* stop = nullptr) {
  context.restart();
  for (;;) {
    const auto slice = stop == nullptr ? deadline : std::min(deadline, Clock::now() + kStopFlagPoll);
    while (!done && context.run_one_until(slice) > 0) {
    }
    if (done || context.stopped() || Clock::now() >= deadline) break;
    if (stop != nullptr && stop->load(std::memory_order_relaxed)) break;
  }
  if (done) return true;
  cancel();
  context.restart();
  context.run();
  return false;
}

// One request and its whole response.
struct Exchange {
  http::request<http::string_body> request;
  http::response_parser<http::string_body> parser;
  boost::beast::flat_buffer buffer;
  bool written = false;  // the whole request reached the kernel: the server may have it
  std::uint64_t limit = 0;
  std::string step = "connect";
  error_code error;
  bool done = false;

  void finish(const error_code& ec) {
    error = ec;
    done = true;
  }

  // Sends the request and reads the response on a connected stream.
  template <class Stream>
  void talk(Stream& stream) {
    step = "send";
    http::async_write(stream, request, [this, &stream](const error_code& ec, std::size_t) {
      if (ec) return finish(ec);
      written = true;
      step = "receive";
      http::async_read_header(stream, buffer, parser, [this, &stream](const error_code& ec2, std::size_t) {
        if (ec2) return finish(ec2);
        // A declared length over the limit is refused before a byte of it is read.
        if (parser.content_length() && *parser.content_length() > limit) return finish(http::error::body_limit);
        http::async_read(stream, buffer, parser, [this](const error_code& ec3, std::size_t) { finish(ec3); });
      });
    });
  }
};

// A streaming request (a watch): the request and the response header, then the body a
// piece at a time.
struct StreamExchange {
  http::request<http::string_body> request;
  http::response_parser<http::buffer_body> parser;
  boost::beast::flat_buffer buffer;
  error_code result;
  bool done = false;
  std::string step = "connect";

  void finish(const error_code& ec) {
    result = ec;
    done = true;
  }

  template <class Stream>
  void converse(Stream& stream) {
    step = "send";
    http::async_write(stream, request, [this, &stream](const error_code& ec, std::size_t) {
      if (ec) return finish(ec);
      step = "receive header";
      http::async_read_header(stream, buffer, parser, [this](const error_code& ec2, std::size_t) { finish(ec2); });
    });
  }

  // Reads what arrives into chunk[0..size); the parser's body then says how much.
  template <class Stream>
  void read_some(Stream& stream, char* chunk, std::size_t size) {
    parser.get().body().data = chunk;
    parser.get().body().size = size;
    done = false;
    http::async_read_some(stream, buffer, parser, [this](const error_code& ec, std::size_t) { finish(ec); });
  }
};

// One TLS connection over a connected TCP socket (which it does not own).
class TlsSession {
 public:
  virtual ~TlsSession() = default;
  virtual void handshake(std::function<void(const error_code&)> then) = 0;
  virtual void talk(Exchange& exchange) = 0;
  virtual void converse(StreamExchange& exchange) = 0;
  virtual void read_some(StreamExchange& exchange, char* chunk, std::size_t size) = 0;
};

// TLS for one client: its settings (CA, certificate), its sessions, and what its errors
// mean.
class TlsLayer {
 public:
  virtual ~TlsLayer() = default;
  // Sends SNI for `host` and, when verifying, checks the certificate names it.
  virtual std::unique_ptr<TlsSession> session(asio::ip::tcp::socket& socket, const std::string& host) = 0;
  // A certificate refused, ours or theirs: retrying cannot help.
  virtual bool refusal(const error_code& ec) const = 0;
  // The peer closed without TLS's close_notify: for a stream, its end.
  virtual bool truncated(const error_code& ec) const = 0;
};

using TlsLayerFactory = Result<std::unique_ptr<TlsLayer>> (*)(const TlsOptions& options);
// Set once by enable_http_tls(); read by HttpClient::create.
void set_tls_layer_factory(TlsLayerFactory factory);

}  // namespace skopos::http_detail
