// HttpClient: the HTTP/1.1 client every driver client is built on (etcd, Mesos,
// Marathon, Docker). Boost.Beast over Asio, synchronous for its caller, with:
//
//  * a deadline on every request (connect, TLS handshake, send and the whole response);
//  * several endpoints with failover: a request goes to the endpoint that last worked,
//    and moves on when an endpoint cannot be reached;
//  * retries with backoff only where that is safe: when the request never reached the
//    server (connect or TLS failed), or when the caller marked it idempotent;
//  * TLS (OpenSSL) with a CA file, a client certificate and key, and host-name checking;
//  * basic auth or a bearer token; a response size limit;
//  * typed errors that say whether the request may have been applied (a timeout or a
//    reset after sending), so callers such as the etcd client re-read before deciding.
//
// Endpoints: "http://host:port", "https://host:port", "unix:///path/to.sock"; a path
// after the authority is a prefix for every request target.
//
// Not thread-safe: one client per thread (a stream's stop token excepted).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>
#include <string_view>
#include <vector>

#include "skopos/function_ref.h"
#include "skopos/result.h"

namespace skopos {

namespace http_detail {
struct Exchange;
}  // namespace http_detail

struct HttpEndpoint {
  enum class Scheme : std::uint8_t { kHttp, kHttps, kUnix };
  Scheme scheme = Scheme::kHttp;
  std::string host;       // http/https
  std::uint16_t port = 0;
  std::string unix_path;  // unix
  std::string base_path;  // "" or "/prefix"
  std::string text;       // as given, for messages

  // Errors name what is wrong with the text.
  static Result<HttpEndpoint> parse(std::string_view text);
};

// A URL's base (scheme and authority: what HttpEndpoint::parse takes) and its target
// (path and query, "/" at least), for a request to exactly that URL.
std::pair<std::string, std::string> split_url(const std::string& url);

struct TlsOptions {
  std::string ca_file;    // empty: the system's trust store
  std::string cert_file;  // client certificate (with key_file), optional
  std::string key_file;
  bool verify = true;     // peer certificate and host name
};

struct HttpOptions {
  std::vector<HttpEndpoint> endpoints;
  std::chrono::milliseconds timeout{5000};  // per attempt
  int attempts = 3;                         // per request, across endpoints
  std::chrono::milliseconds backoff{100};   // doubles per retry
  std::size_t max_response_bytes = 16 * 1024 * 1024;
  TlsOptions tls;
  std::string basic_user;  // basic auth when set
  std::string basic_password;
  std::string bearer_token;  // Authorization: Bearer, when set
  std::string user_agent = "skopos";
  // Start at an endpoint chosen at random instead of the first. For servers that all
  // serve (etcd members): a fleet of clients given the same list then shares the load,
  // and a member's death moves only its share. Either way a client stays with the
  // endpoint that last answered.
  bool spread = false;
};

struct HttpRequest {
  std::string method = "GET";
  std::string target = "/";  // path and query, appended to the endpoint's base path
  std::string body;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
  // Safe to send twice (GET, or an operation the server makes idempotent): then a
  // timeout or reset after sending is retried too.
  bool idempotent = false;
};

// A request whose body (if any) is JSON and that accepts JSON.
HttpRequest json_request(std::string method, std::string target, std::string body, bool idempotent);

// The pause between tries of one operation: doubling from `initial` up to `max`, and
// never past `deadline`.
class DeadlineBackoff {
 public:
  DeadlineBackoff(std::chrono::milliseconds initial, std::chrono::milliseconds max,
                  std::chrono::steady_clock::time_point deadline)
      : next_(initial), max_(max), deadline_(deadline) {}
  // Sleeps and returns true if another try can start before the deadline; false (at
  // once) if not.
  bool sleep();
  std::chrono::milliseconds next() const { return next_; }

 private:
  std::chrono::milliseconds next_;
  std::chrono::milliseconds max_;
  std::chrono::steady_clock::time_point deadline_;
};

struct HttpResponse {
  unsigned status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string endpoint;                         // which endpoint answered

  std::string header(const std::string& name) const;
};

struct HttpError {
  enum class Kind : std::uint8_t {
    kConnect,   // could not connect (refused, unreachable, no such socket): not sent
    kTls,       // a certificate refused (ours or theirs): not processed, and retrying
                // will not help (a connection that broke mid-handshake is kConnect)
    kTimeout,   // the deadline passed
    kIo,        // connection reset or closed mid-exchange
    kProtocol,  // not HTTP, or a response larger than the limit
  };
  Kind kind = Kind::kConnect;
  // True when the server may have received and applied the request: the caller must
  // find out (re-read) before acting on a guess.
  bool maybe_applied = false;
  std::string endpoint;
  std::string detail;

  std::string message() const;  // "POST http://127.0.0.1:2379/v3/kv/put: timed out after 5000 ms (may have been applied)"
};

class HttpClient {
 public:
  static Result<std::unique_ptr<HttpClient>> create(HttpOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends the request and returns the response, whatever its status; errors are
  // transport errors only. A 5xx from one endpoint is returned as is (the caller knows
  // whether its request may be repeated).
  Result<HttpResponse, HttpError> request(const HttpRequest& request);

  // A streaming exchange (a watch): sends the request to the first endpoint that accepts
  // it and hands the response body to `on_data` as it arrives, until `on_data` returns
  // false, the server ends the response, `until` passes, or `stop` is requested (then
  // it returns ok: waiting out a quiet stream is not an error). Connecting and the
  // response header have the usual per-attempt deadline. `status` receives the HTTP
  // status. `stop` may be requested from any thread: it is how another thread ends a
  // stream that has no deadline of its own (an event stream). `stop_flag`, when given,
  // ends it the same way within 100 ms of being set (a flag a signal handler sets), so a
  // long wait needs no new request to notice a stop.
  Result<void, HttpError> stream(const HttpRequest& request, std::chrono::steady_clock::time_point until,
                                 FunctionRef<bool(std::string_view data)> on_data, unsigned& status,
                                 std::stop_token stop = {}, const std::atomic<bool>* stop_flag = nullptr);

  // One attempt at `endpoint` (e.g. where a redirect points) with this client's deadline,
  // TLS settings and credentials; no failover and no retry.
  Result<HttpResponse, HttpError> request_at(const HttpEndpoint& endpoint, const HttpRequest& request) {
    return attempt(endpoint, request);
  }

  const HttpOptions& options() const { return options_; }

 private:
  explicit HttpClient(HttpOptions options);
  Result<HttpResponse, HttpError> attempt(const HttpEndpoint& endpoint, const HttpRequest& request);

  // Connections stay open between requests (HTTP/1.1 keep-alive): an agent talks to etcd
  // every few seconds, and a connection per request cost a TCP handshake each and left
  // the server a connection to set up and tear down. At most kMaxIdle stay, each at most
  // kKeepIdle: shorter than the idle timeouts of servers and proxies, so that a request
  // rarely meets a connection closed as it is sent (a POST then "may have been applied").
  // The pool is safe to use from several threads; the client as a whole is not (one per
  // thread, as every caller has).
  struct Connection;
  static constexpr std::size_t kMaxIdle = 4;
  static constexpr std::chrono::seconds kKeepIdle{4};
  std::unique_ptr<Connection> take_idle(const HttpEndpoint& endpoint);
  void keep_idle(std::unique_ptr<Connection> connection);
  void drop_expired(std::chrono::steady_clock::time_point now);  // idle_mutex_ held
  struct AttemptResult {
    bool done = false;  // false: the connection was stale and nothing was sent
    bool keep = false;  // the connection may carry the next request
    Result<HttpResponse, HttpError> response = unexpected(HttpError{});
  };
  AttemptResult attempt_on(Connection& connection, bool reused, const HttpEndpoint& endpoint,
                           const HttpRequest& request);
  Result<HttpResponse, HttpError> finish_attempt(http_detail::Exchange& exchange, bool finished, bool tls_failed,
                                                 const HttpEndpoint& endpoint, const std::string& name);

  struct Tls;
  HttpOptions options_;
  std::unique_ptr<Tls> tls_;
  std::size_t preferred_ = 0;  // the endpoint that last answered
  std::mutex idle_mutex_;
  std::vector<std::unique_ptr<Connection>> idle_;  // oldest first
};

}  // namespace skopos
