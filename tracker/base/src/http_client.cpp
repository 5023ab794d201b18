#include "skopos/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/detail/base64.hpp>

#include <algorithm>
#include <random>
#include <atomic>
#include <cctype>
#include <charconv>
#include <thread>

#include <poll.h>

#include "http_exchange.h"

namespace skopos {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
using http_detail::Exchange;
using http_detail::run_until;
using http_detail::StreamExchange;

namespace http_detail {

namespace {
std::atomic<TlsLayerFactory> g_tls_factory{nullptr};
}  // namespace

void set_tls_layer_factory(TlsLayerFactory factory) { g_tls_factory.store(factory); }

}  // namespace http_detail

Result<HttpEndpoint> HttpEndpoint::parse(std::string_view text) {
  HttpEndpoint endpoint;
  endpoint.text = std::string(text);
  const auto bad = [&](std::string why) {
    return unexpected(Error::invalid("parse endpoint", std::string(text), std::move(why)));
  };
  std::string_view rest;
  if (text.starts_with("http://")) {
    endpoint.scheme = Scheme::kHttp;
    rest = text.substr(7);
  } else if (text.starts_with("https://")) {
    endpoint.scheme = Scheme::kHttps;
    rest = text.substr(8);
  } else if (text.starts_with("unix://")) {
    endpoint.scheme = Scheme::kUnix;
    endpoint.unix_path = std::string(text.substr(7));
    if (endpoint.unix_path.empty() || endpoint.unix_path.front() != '/') return bad("expected unix:///absolute/path");
    return endpoint;
  } else {
    return bad("expected http://, https:// or unix://");
  }
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    endpoint.base_path = std::string(rest.substr(slash));
    while (!endpoint.base_path.empty() && endpoint.base_path.back() == '/') endpoint.base_path.pop_back();
  }
  std::string_view port_text;
  if (authority.starts_with('[')) {  // [::1]:2379
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return bad("unclosed '[' in the host");
    endpoint.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return bad("expected ':' after ']'");
      port_text = authority.substr(close + 2);
    }
  } else {
    const auto colon = authority.rfind(':');
    endpoint.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (endpoint.host.empty()) return bad("no host");
  if (port_text.empty()) {
    endpoint.port = endpoint.scheme == Scheme::kHttps ? 443 : 80;
  } else {
    const auto parsed = std::from_chars(port_text.data(), port_text.data() + port_text.size(), endpoint.port);
    if (parsed.ec != std::errc{} || parsed.ptr != port_text.data() + port_text.size() || endpoint.port == 0) {
      return bad("bad port '" + std::string(port_text) + "'");
    }
  }
  return endpoint;
}

std::string HttpResponse::header(const std::string& name) const {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto it = headers.find(lower);
  return it == headers.end() ? std::string() : it->second;
}

std::string HttpError::message() const {
  std::string text = endpoint + ": " + detail;
  if (maybe_applied) text += " (the request may have been applied)";
  return text;
}

struct HttpClient::Tls {
  std::unique_ptr<http_detail::TlsLayer> layer;
};

Result<std::unique_ptr<HttpClient>> HttpClient::create(HttpOptions options) {
  if (options.endpoints.empty()) return unexpected(Error::invalid("http client", "endpoints", "no endpoint given"));
  if (options.attempts < 1) options.attempts = 1;
  std::unique_ptr<HttpClient> client(new HttpClient(std::move(options)));
  const auto https = std::find_if(client->options_.endpoints.begin(), client->options_.endpoints.end(),
                                  [](const HttpEndpoint& e) { return e.scheme == HttpEndpoint::Scheme::kHttps; });
  if (https != client->options_.endpoints.end()) {
    const http_detail::TlsLayerFactory factory = http_detail::g_tls_factory.load();
    if (factory == nullptr) {
      return unexpected(Error::invalid("http client", https->text,
                                       "this program is built without TLS: it cannot reach https:// endpoints"));
    }
    auto layer = factory(client->options_.tls);
    if (!layer) return unexpected(std::move(layer).error());
    client->tls_ = std::make_unique<Tls>();
    client->tls_->layer = std::move(*layer);
  }
  return client;
}

std::pair<std::string, std::string> split_url(const std::string& url) {
  // The authority ends at the path, or at the query of a URL without one.
  const auto scheme_end = url.find("://");
  const auto path_at = scheme_end == std::string::npos ? std::string::npos : url.find_first_of("/?", scheme_end + 3);
  if (path_at == std::string::npos) return {url, "/"};
  if (url[path_at] == '?') return {url.substr(0, path_at), "/" + url.substr(path_at)};
  return {url.substr(0, path_at), url.substr(path_at)};
}

HttpRequest json_request(std::string method, std::string target, std::string body, bool idempotent) {
  HttpRequest request;
  request.method = std::move(method);
  request.target = std::move(target);
  if (!body.empty()) request.content_type = "application/json";
  request.body = std::move(body);
  request.headers.emplace_back("Accept", "application/json");
  request.idempotent = idempotent;
  return request;
}

bool DeadlineBackoff::sleep() {
  if (Clock::now() + next_ >= deadline_) return false;
  std::this_thread::sleep_for(next_);
  next_ = std::min(next_ * 2, max_);
  return true;
}

HttpClient::HttpClient(HttpOptions options) : options_(std::move(options)) {
  if (options_.spread && options_.endpoints.size() > 1) {
    std::random_device random;
    preferred_ = std::uniform_int_distribution<std::size_t>(0, options_.endpoints.size() - 1)(random);
  }
}
HttpClient::~HttpClient() = default;

namespace {

// The request as every exchange sends it: target under the endpoint's base path, Host,
// User-Agent, the configured authorization, and whether the connection stays open for
// the next request (a stream's ends with it).
void build_request(http::request<http::string_body>& out, const HttpEndpoint& endpoint, const HttpRequest& request,
                   const HttpOptions& options, bool keep_alive) {
  out.method_string(request.method);
  out.target(endpoint.base_path + request.target);
  out.version(11);
  out.set(http::field::host, endpoint.scheme == HttpEndpoint::Scheme::kUnix ? std::string("localhost")
                                                                            : endpoint.host + ":" + std::to_string(endpoint.port));
  out.set(http::field::user_agent, options.user_agent);
  if (!keep_alive) out.set(http::field::connection, "close");  // HTTP/1.1 keeps it open by default
  if (!options.bearer_token.empty()) {
    out.set(http::field::authorization, "Bearer " + options.bearer_token);
  } else if (!options.basic_user.empty()) {
    const std::string plain = options.basic_user + ":" + options.basic_password;
    std::string encoded(boost::beast::detail::base64::encoded_size(plain.size()), '\0');
    encoded.resize(boost::beast::detail::base64::encode(encoded.data(), plain.data(), plain.size()));
    out.set(http::field::authorization, "Basic " + encoded);
  }
  for (const auto& [name, value] : request.headers) out.set(name, value);
  if (!request.content_type.empty()) out.set(http::field::content_type, request.content_type);
  out.body() = request.body;
  out.prepare_payload();
}

}  // namespace

// A connection kept open between requests: its own I/O context, the socket, and the TLS
// session over it.
struct HttpClient::Connection {
  asio::io_context context;
  asio::ip::tcp::socket plain{context};
  asio::local::stream_protocol::socket local{context};
  std::unique_ptr<http_detail::TlsSession> secure;
  std::string endpoint;  // HttpEndpoint::text
  Clock::time_point idle_since;

  int fd() { return plain.is_open() ? static_cast<int>(plain.native_handle()) : static_cast<int>(local.native_handle()); }
};

void HttpClient::drop_expired(Clock::time_point now) {
  // Connections idle too long are dropped: a server or a proxy between may close them
  // any time after, and a request racing that close would fail after it was sent.
  std::erase_if(idle_, [&](const std::unique_ptr<Connection>& c) { return now - c->idle_since > kKeepIdle; });
}

std::unique_ptr<HttpClient::Connection> HttpClient::take_idle(const HttpEndpoint& endpoint) {
  std::unique_ptr<Connection> connection;
  {
    std::lock_guard lock(idle_mutex_);
    drop_expired(Clock::now());
    const auto it = std::find_if(idle_.rbegin(), idle_.rend(),
                                 [&](const std::unique_ptr<Connection>& c) { return c->endpoint == endpoint.text; });
    if (it == idle_.rend()) return nullptr;
    connection = std::move(*it);
    idle_.erase(std::next(it).base());
  }
  // Closed by the server meanwhile (or it sent something unasked): not usable.
  pollfd pfd{connection->fd(), POLLIN | POLLRDHUP, 0};
  if (::poll(&pfd, 1, 0) != 0) return nullptr;
  return connection;
}

void HttpClient::keep_idle(std::unique_ptr<Connection> connection) {
  const auto now = Clock::now();
  connection->idle_since = now;
  std::lock_guard lock(idle_mutex_);
  drop_expired(now);
  if (idle_.size() >= kMaxIdle) idle_.erase(idle_.begin());  // the oldest
  idle_.push_back(std::move(connection));
}

Result<HttpResponse, HttpError> HttpClient::attempt(const HttpEndpoint& endpoint, const HttpRequest& request) {
  if (endpoint.scheme == HttpEndpoint::Scheme::kHttps && !tls_) {
    // Only reachable through request_at() with an https endpoint on a plain-HTTP client.
    return unexpected(HttpError{HttpError::Kind::kTls, false, endpoint.text, "this client has no TLS settings"});
  }
  // An open connection to this endpoint when there is one. One the server closed just
  // as the request went out fails before a byte was written: then a fresh one is
  // tried, and the request was certainly not applied.
  std::unique_ptr<Connection> connection = take_idle(endpoint);
  for (;;) {
    const bool reused = connection != nullptr;
    if (!reused) {
      connection = std::make_unique<Connection>();
      connection->endpoint = endpoint.text;
    }
    auto result = attempt_on(*connection, reused, endpoint, request);
    if (result.done) {
      if (result.keep) keep_idle(std::move(connection));
      return std::move(result.response);
    }
    connection.reset();  // unsent on a stale connection: again on a fresh one
  }
}

HttpClient::AttemptResult HttpClient::attempt_on(Connection& connection, bool reused, const HttpEndpoint& endpoint,
                                                 const HttpRequest& request) {
  asio::io_context& context = connection.context;
  Exchange exchange;
  build_request(exchange.request, endpoint, request, options_, true);
  exchange.parser.body_limit(options_.max_response_bytes);
  exchange.limit = options_.max_response_bytes;
  exchange.parser.header_limit(64 * 1024);

  const auto deadline = Clock::now() + options_.timeout;
  const std::string name = request.method + " " + endpoint.text + request.target;
  bool finished = false;
  bool tls_failed = false;
  const auto close_all = [&] {
    error_code ignored;
    connection.plain.close(ignored);
    connection.local.close(ignored);
  };

  if (reused) {
    asio::post(context, [&] {
      if (connection.secure) return connection.secure->talk(exchange);
      if (connection.local.is_open()) return exchange.talk(connection.local);
      exchange.talk(connection.plain);
    });
    finished = run_until(context, exchange.done, deadline, close_all);
    if (finished && exchange.error && !exchange.written) return {};  // stale: try a fresh connection
  } else if (endpoint.scheme == HttpEndpoint::Scheme::kUnix) {
    auto& socket = connection.local;
    socket.async_connect(asio::local::stream_protocol::endpoint(endpoint.unix_path), [&](const error_code& ec) {
      if (ec) return exchange.finish(ec);
      exchange.talk(socket);
    });
    finished = run_until(context, exchange.done, deadline, close_all);
  } else {
    asio::ip::tcp::resolver resolver(context);
    auto& plain = connection.plain;
    if (endpoint.scheme == HttpEndpoint::Scheme::kHttps) connection.secure = tls_->layer->session(plain, endpoint.host);
    http_detail::TlsSession* secure = connection.secure.get();
    resolver.async_resolve(endpoint.host, std::to_string(endpoint.port),
                           [&](const error_code& ec, const asio::ip::tcp::resolver::results_type& results) {
                             if (ec) return exchange.finish(ec);
                             asio::async_connect(plain, results, [&](const error_code& ec2, const auto&) {
                               if (ec2) return exchange.finish(ec2);
                               if (!secure) return exchange.talk(plain);
                               exchange.step = "TLS handshake";
                               secure->handshake([&](const error_code& ec3) {
                                 if (ec3) {
                                   tls_failed = true;
                                   return exchange.finish(ec3);
                                 }
                                 secure->talk(exchange);
                               });
                             });
                           });
    finished = run_until(context, exchange.done, deadline, [&] {
      resolver.cancel();
      close_all();
    });
  }
  AttemptResult out;
  out.done = true;
  out.response = finish_attempt(exchange, finished, tls_failed, endpoint, name);
  // Kept for the next request only after a whole response that lets it stay open.
  // (The parser's keep_alive, not the message's: a body that ends with the connection,
  // no length and not chunked, leaves nothing to keep.)
  out.keep = out.response && exchange.parser.is_done() && exchange.parser.keep_alive() && exchange.buffer.size() == 0;
  return out;
}

Result<HttpResponse, HttpError> HttpClient::finish_attempt(Exchange& exchange, bool finished, bool tls_failed,
                                                           const HttpEndpoint& endpoint, const std::string& name) {
  HttpError error;
  error.endpoint = name;
  if (!finished) {
    error.kind = HttpError::Kind::kTimeout;
    error.maybe_applied = exchange.written;
    error.detail = "timed out after " + std::to_string(options_.timeout.count()) + " ms (" + exchange.step + ")";
    return unexpected(std::move(error));
  }
  if (exchange.error) {
    const error_code& ec = exchange.error;
    error.maybe_applied = exchange.written;
    error.detail = exchange.step + ": " + ec.message();
    if (tls_ && tls_->layer->refusal(ec)) {
      error.kind = HttpError::Kind::kTls;
      error.maybe_applied = false;
    } else if (exchange.step == "connect" || tls_failed) {
      error.kind = HttpError::Kind::kConnect;  // nothing was sent
    } else if (ec == http::error::body_limit || ec == http::error::header_limit) {
      error.kind = HttpError::Kind::kProtocol;
      error.detail = "response larger than " + std::to_string(options_.max_response_bytes) + " bytes";
    } else if (ec.category() == error_code(http::error::end_of_stream).category() &&
               ec != http::error::end_of_stream && ec != http::error::partial_message) {
      error.kind = HttpError::Kind::kProtocol;
      error.detail = "not an HTTP response: " + ec.message();
    } else {
      error.kind = HttpError::Kind::kIo;
    }
    return unexpected(std::move(error));
  }
  HttpResponse response;
  response.status = exchange.parser.get().result_int();
  response.body = std::move(exchange.parser.get().body());
  response.endpoint = endpoint.text;
  for (const auto& field : exchange.parser.get()) {
    std::string key(field.name_string());
    std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    response.headers[key] = std::string(field.value());
  }
  return response;
}

Result<void, HttpError> HttpClient::stream(const HttpRequest& request, Clock::time_point until,
                                           FunctionRef<bool(std::string_view data)> on_data, unsigned& status,
                                           std::stop_token stop, const std::atomic<bool>* stop_flag) {
  HttpError error;
  for (std::size_t tried = 0; tried < options_.endpoints.size(); ++tried) {
    if (stop.stop_requested() || (stop_flag != nullptr && stop_flag->load(std::memory_order_relaxed))) return {};
    const std::size_t index = (preferred_ + tried) % options_.endpoints.size();
    const HttpEndpoint& endpoint = options_.endpoints[index];
    error = HttpError{};
    error.endpoint = request.method + " " + endpoint.text + request.target;
    asio::io_context context;
    asio::ip::tcp::resolver resolver(context);
    asio::ip::tcp::socket socket(context);
    asio::local::stream_protocol::socket local(context);
    std::unique_ptr<http_detail::TlsSession> secure;
    if (endpoint.scheme == HttpEndpoint::Scheme::kHttps) secure = tls_->layer->session(socket, endpoint.host);
    StreamExchange exchange;
    build_request(exchange.request, endpoint, request, options_, false);
    exchange.parser.body_limit(boost::none);
    const auto cancel = [&] {
      resolver.cancel();
      error_code ignored;
      socket.close(ignored);
      local.close(ignored);
    };
    // A stop from another thread closes the connection on this exchange's own context,
    // which only this thread runs; the pending operation then ends, and so does the
    // stream, as when `until` passes. Declared after all it refers to, so it is
    // deregistered (waiting for a running callback) before any of them goes.
    bool stopped = false;
    const std::stop_callback on_stop(stop, [&] {
      asio::post(context, [&] {
        stopped = true;
        cancel();
      });
    });
    // Sends the request and reads the response header on the connected (or secured) stream.
    if (endpoint.scheme == HttpEndpoint::Scheme::kUnix) {
      local.async_connect(asio::local::stream_protocol::endpoint(endpoint.unix_path), [&](const error_code& ec) {
        if (ec) return exchange.finish(ec);
        exchange.converse(local);
      });
    } else {
      resolver.async_resolve(endpoint.host, std::to_string(endpoint.port),
                             [&](const error_code& ec, const asio::ip::tcp::resolver::results_type& results) {
                               if (ec) return exchange.finish(ec);
                               asio::async_connect(socket, results, [&](const error_code& ec2, const auto&) {
                                 if (ec2) return exchange.finish(ec2);
                                 if (!secure) return exchange.converse(socket);
                                 exchange.step = "TLS handshake";
                                 secure->handshake([&](const error_code& ec3) {
                                   if (ec3) return exchange.finish(ec3);
                                   secure->converse(exchange);
                                 });
                               });
                             });
    }
    // Connecting, the handshake and the response header have the per-attempt deadline.
    const bool in_time = run_until(context, exchange.done, std::min(until, Clock::now() + options_.timeout), cancel);
    if (stopped) return {};
    const std::string& step = exchange.step;
    const error_code& result = exchange.result;
    if (!in_time) {
      error.kind = step == "connect" ? HttpError::Kind::kConnect : HttpError::Kind::kTimeout;
      error.detail = "timed out (" + step + ")";
      if (step == "connect" && Clock::now() < until) continue;  // try the next endpoint
      return unexpected(std::move(error));
    }
    if (result) {
      error.kind = tls_ && tls_->layer->refusal(result)                 ? HttpError::Kind::kTls
                   : step == "connect" || step == "TLS handshake" ? HttpError::Kind::kConnect
                                                                  : HttpError::Kind::kIo;
      error.detail = step + ": " + result.message();
      if (error.kind == HttpError::Kind::kConnect) continue;
      return unexpected(std::move(error));
    }
    preferred_ = index;
    status = exchange.parser.get().result_int();
    // The body, piece by piece, until the server ends it, `on_data` has enough, or `until`.
    char chunk[16384];
    for (;;) {
      if (exchange.parser.is_done()) return {};
      if (endpoint.scheme == HttpEndpoint::Scheme::kUnix) {
        exchange.read_some(local, chunk, sizeof chunk);
      } else if (secure) {
        secure->read_some(exchange, chunk, sizeof chunk);
      } else {
        exchange.read_some(socket, chunk, sizeof chunk);
      }
      // `until` passed or stopped: fine.
      if (!run_until(context, exchange.done, until, cancel, stop_flag) || stopped) return {};
      if (result && result != http::error::need_buffer) {
        if (result == http::error::end_of_stream || result == asio::error::eof ||
            (tls_ && tls_->layer->truncated(result))) {
          return {};
        }
        error.kind = HttpError::Kind::kIo;
        error.detail = "stream: " + result.message();
        return unexpected(std::move(error));
      }
      const std::size_t got = sizeof chunk - exchange.parser.get().body().size;
      if (got > 0 && !on_data(std::string_view(chunk, got))) return {};
    }
  }
  return unexpected(std::move(error));
}

Result<HttpResponse, HttpError> HttpClient::request(const HttpRequest& request) {
  HttpError last;
  auto backoff = options_.backoff;
  const std::size_t count = options_.endpoints.size();
  for (int attempt = 0; attempt < options_.attempts; ++attempt) {
    const std::size_t index = (preferred_ + static_cast<std::size_t>(attempt)) % count;
    auto result = this->attempt(options_.endpoints[index], request);
    if (result) {
      preferred_ = index;
      return result;
    }
    last = std::move(result).error();
    // Only what certainly did not reach a server, or what may be repeated, is retried.
    // A refused certificate or a protocol error will be the same next time.
    if (last.kind == HttpError::Kind::kProtocol || last.kind == HttpError::Kind::kTls) break;
    if (last.kind != HttpError::Kind::kConnect && !request.idempotent) break;
    if (attempt + 1 < options_.attempts) {
      // Another endpoint is worth trying at once; the same one after a pause.
      if (count == 1 || (attempt + 1) % static_cast<int>(count) == 0) std::this_thread::sleep_for(backoff);
      backoff *= 2;
    }
  }
  return unexpected(std::move(last));
}

}  // namespace skopos
