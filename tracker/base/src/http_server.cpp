#include "skopos/http_server.h"

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "skopos/log.h"

namespace skopos {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;

LoopbackHttpServer::LoopbackHttpServer(asio::io_context& context, std::string what, std::string why_loopback,
                                       Handler handler)
    : context_(context),
      what_(std::move(what)),
      why_loopback_(std::move(why_loopback)),
      handler_(std::move(handler)),
      acceptor_(context),
      retry_(context) {}

LoopbackHttpServer::~LoopbackHttpServer() { stop(); }

Result<void> LoopbackHttpServer::start(const std::string& listen) {
  const std::string where = what_ + " listen";
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return unexpected(Error::invalid(where, listen, "expected ADDRESS:PORT, e.g. 127.0.0.1:9464"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  unsigned short port = 0;
  const std::string port_text = listen.substr(colon + 1);
  const auto parsed = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (parsed.ec != std::errc{} || parsed.ptr != port_text.data() + port_text.size()) {
    return unexpected(Error::invalid(where, listen, "bad port"));
  }
  error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) return unexpected(Error::invalid(where, listen, "not an IP address"));
  if (!address.is_loopback()) {
    return unexpected(Error::invalid(where, listen, "only loopback addresses are allowed: " + why_loopback_));
  }
  const asio::ip::tcp::endpoint endpoint(address, port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(64, ec);
  if (ec) return unexpected(Error::from_errno(ec.value(), where, listen));
  accept();
  return {};
}

void LoopbackHttpServer::stop() {
  error_code ignored;
  acceptor_.close(ignored);
  retry_.cancel();
}

unsigned short LoopbackHttpServer::port() const {
  error_code ec;
  return acceptor_.local_endpoint(ec).port();
}

namespace {

// One request, one response, then close; the timer bounds a client that never sends.
struct Session : std::enable_shared_from_this<Session> {
  Session(asio::ip::tcp::socket s, LoopbackHttpServer::Handler& h, std::shared_ptr<int> live)
      : socket(std::move(s)), timer(socket.get_executor()), handler(h), sessions(std::move(live)) {
    ++*sessions;
    parser.body_limit(LoopbackHttpServer::kMaxBody);
  }
  ~Session() { --*sessions; }
  asio::ip::tcp::socket socket;
  asio::steady_timer timer;
  LoopbackHttpServer::Handler& handler;
  std::shared_ptr<int> sessions;
  boost::beast::flat_buffer buffer;
  http::request_parser<http::string_body> parser;
  http::response<http::string_body> response;

  void run() {
    timer.expires_after(std::chrono::seconds(5));
    timer.async_wait([self = shared_from_this()](const error_code& ec) {
      if (!ec) {
        error_code ignored;
        self->socket.close(ignored);
      }
    });
    http::async_read(socket, buffer, parser, [self = shared_from_this()](const error_code& ec, std::size_t) {
      if (ec == http::error::body_limit) {
        self->reply({413, "text/plain", "request body over the limit\n"});
        return;
      }
      if (ec) return;
      const auto& message = self->parser.get();
      HttpServerRequest request;
      request.method = std::string(message.method_string());
      request.target = std::string(message.target());
      for (const auto& field : message) {
        std::string name(field.name_string());
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        request.headers[name] = std::string(field.value());
      }
      request.body = message.body();
      HttpServerResponse answer;
      try {
        answer = self->handler(request);
      } catch (const std::exception& error) {  // a handler's bug costs one answer, not the process
        answer = {500, "text/plain", std::string("internal error: ") + error.what() + "\n"};
      }
      self->reply(std::move(answer));
    });
  }
  void reply(HttpServerResponse answer) {
    response.version(11);
    response.keep_alive(false);
    response.result(answer.status);
    response.set(http::field::content_type, answer.content_type);
    response.body() = std::move(answer.body);
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

void LoopbackHttpServer::accept() {
  acceptor_.async_accept([this](const error_code& ec, asio::ip::tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) {
      // EMFILE/ENFILE/ENOBUFS leave the connection in the backlog, so accepting again at
      // once fails again at once: pause (doubling to 1 s) instead of spinning.
      ++accept_errors_;
      if (pause_.count() == 0) {  // one line per episode; the count is in accept_errors()
        log_warning(what_ + ": accept failed (" + ec.message() + "); pausing the listener until it works again");
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
      ++over_cap_;  // closed unanswered: a client retries, a flood costs nothing
      error_code ignored;
      socket.close(ignored);
    } else {
      std::make_shared<Session>(std::move(socket), handler_, sessions_)->run();
    }
    accept();
  });
}

}  // namespace skopos
