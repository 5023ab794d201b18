#include "tracker/docker_client.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <functional>

namespace skopos::tracker {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using Socket = asio::local::stream_protocol::socket;
using boost::system::error_code;

namespace {

constexpr std::size_t kMaxBody = 16 * 1024 * 1024;
constexpr std::size_t kMaxEventLine = 64 * 1024;

Error io_error(const error_code& ec, std::string operation, std::string object) {
  Error error = Error::from_errno(ec.value(), std::move(operation), std::move(object));
  if (ec.category() != boost::system::system_category()) {
    error.code = 0;
    error.detail = ec.message();
  }
  return error;
}

http::request<http::empty_body> make_get(const std::string& target) {
  http::request<http::empty_body> request{http::verb::get, target, 11};
  // Docker ignores Host on its Unix socket, but HTTP/1.1 requires one.
  request.set(http::field::host, "docker");
  request.set(http::field::user_agent, "skopos-tracker");
  return request;
}

// Runs `context` until `done` or the deadline; on timeout closes `socket` so every
// pending operation ends, and drains the handlers. Returns whether it finished in time.
bool run_until(asio::io_context& context, Socket& socket, const bool& done, std::chrono::milliseconds timeout) {
  context.restart();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done && context.run_one_until(deadline) > 0) {
  }
  if (done) return true;
  error_code ignored;
  socket.close(ignored);
  context.restart();
  context.run();
  return false;
}

// Connects to the socket, sends `request`, then starts `receive` (a read of the
// response or of its header); records the first error and the step it happened in.
template <class Parser, class Receive>
void start_exchange(Socket& socket, const std::string& path, const http::request<http::empty_body>& request,
                    boost::beast::flat_buffer& buffer, Parser& parser, std::string& step, Receive receive,
                    const std::function<void(const error_code&)>& finish) {
  socket.async_connect(asio::local::stream_protocol::endpoint(path), [&, receive, finish](const error_code& ec) {
    if (ec) return finish(ec);
    step = "send";
    http::async_write(socket, request, [&, receive, finish](const error_code& ec2, std::size_t) {
      if (ec2) return finish(ec2);
      step = "receive";
      receive(socket, buffer, parser, [finish](const error_code& ec3, std::size_t) { finish(ec3); });
    });
  });
}

}  // namespace

// The event stream's connection: its own io_context, so a stream can be stopped from
// another thread by posting to it, and requests (inspect) can run meanwhile.
class DockerClient::Events {
 public:
  asio::io_context context;
  Socket socket{context};
  std::atomic<bool> stopped{false};
};

DockerClient::DockerClient(std::string socket_path, std::chrono::milliseconds timeout)
    : socket_path_(std::move(socket_path)), timeout_(timeout), events_(std::make_unique<Events>()) {}

DockerClient::~DockerClient() = default;

Result<DockerClient::Response> DockerClient::request(const std::string& target) {
  asio::io_context context;
  Socket socket(context);
  boost::beast::flat_buffer buffer;
  const auto request = make_get(target);
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxBody);
  error_code result;
  std::string step = "connect";
  bool done = false;
  const auto finish = [&](const error_code& ec) {
    result = ec;
    done = true;
  };

  start_exchange(socket, socket_path_, request, buffer, parser, step,
                 [](auto& stream, auto& buf, auto& p, auto handler) { http::async_read(stream, buf, p, handler); },
                 finish);
  const std::string object = socket_path_ + " GET " + target;
  if (!run_until(context, socket, done, timeout_)) {
    Error error = Error::invalid("docker " + step, object, "timed out after " + std::to_string(timeout_.count()) + " ms");
    error.code = ETIMEDOUT;
    return unexpected(std::move(error));
  }
  if (result) return unexpected(io_error(result, "docker " + step, object));
  Response response;
  response.status = parser.get().result_int();
  response.body = std::move(parser.get().body());
  return response;
}

Result<std::string> DockerClient::get(const std::string& target) {
  auto response = request(target);
  if (!response) return unexpected(std::move(response).error());
  if (response->status < 200 || response->status > 299) {
    return unexpected(Error::invalid("docker GET", target,
                                     "HTTP " + std::to_string(response->status) + ": " + parse_docker_error(response->body)));
  }
  return std::move(response->body);
}

Result<std::vector<ListedContainer>> DockerClient::list_containers() {
  auto body = get("/containers/json");
  if (!body) return unexpected(std::move(body).error());
  return parse_container_list(*body);
}

Result<std::optional<ContainerInfo>> DockerClient::inspect(const std::string& id) {
  auto response = request("/containers/" + id + "/json");
  if (!response) return unexpected(std::move(response).error());
  if (response->status == 404) return std::optional<ContainerInfo>();
  if (response->status != 200) {
    return unexpected(Error::invalid("docker inspect", id,
                                     "HTTP " + std::to_string(response->status) + ": " + parse_docker_error(response->body)));
  }
  auto info = parse_container_inspect(response->body);
  if (!info) return unexpected(std::move(info).error());
  return std::optional<ContainerInfo>(std::move(*info));
}

void DockerClient::stop_events() {
  events_->stopped = true;
  asio::post(events_->context, [events = events_.get()] {
    error_code ignored;
    events->socket.close(ignored);
  });
}

Result<void> DockerClient::stream_events_since(std::int64_t since, FunctionRef<bool(const DockerEvent&)> on_event) {
  Events& events = *events_;
  if (events.stopped) return {};
  asio::io_context& context = events.context;
  Socket& socket = events.socket;
  error_code ignored;
  socket.close(ignored);
  socket = Socket(context);

  std::string target = "/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D";
  if (since > 0) target += "&since=" + std::to_string(since);
  const std::string object = socket_path_ + " GET /events";
  const auto request = make_get(target);
  boost::beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);  // a stream: unbounded in total, bounded per line below
  error_code result;
  std::string step = "connect";
  bool done = false;
  const auto finish = [&](const error_code& ec) {
    result = ec;
    done = true;
  };
  start_exchange(
      socket, socket_path_, request, buffer, parser, step,
      [](auto& stream, auto& buf, auto& p, auto handler) { http::async_read_header(stream, buf, p, handler); }, finish);
  if (!run_until(context, socket, done, timeout_)) {
    if (events.stopped) return {};
    Error error = Error::invalid("docker " + step, object, "timed out");
    error.code = ETIMEDOUT;
    return unexpected(std::move(error));
  }
  if (events.stopped) return {};
  if (result) return unexpected(io_error(result, "docker " + step, object));
  if (parser.get().result_int() != 200) {
    return unexpected(Error::invalid("docker events", object, "HTTP " + std::to_string(parser.get().result_int())));
  }

  // The body is a stream of JSON objects, one per line (Go's json.Encoder).
  std::string line;
  char chunk[8192];
  Result<void> outcome;
  bool keep_going = true;
  while (keep_going && !parser.is_done() && !events.stopped) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    done = false;
    // read_some: return whatever has arrived; read() would wait for a full buffer.
    http::async_read_some(socket, buffer, parser, [&](const error_code& ec, std::size_t) { finish(ec); });
    context.restart();
    while (!done && context.run_one() > 0) {
    }
    if (events.stopped) break;
    if (result && result != http::error::need_buffer) {
      if (result == http::error::end_of_stream || result == asio::error::eof) break;
      return unexpected(io_error(result, "docker events", object));
    }
    const std::size_t got = sizeof chunk - parser.get().body().size;
    for (std::size_t i = 0; i < got && keep_going; ++i) {
      if (chunk[i] != '\n') {
        line.push_back(chunk[i]);
        if (line.size() > kMaxEventLine) {
          return unexpected(Error::invalid("docker events", object, "an event longer than 64 KiB"));
        }
        continue;
      }
      if (line.empty()) continue;
      auto event = parse_docker_event(line);
      if (!event) return unexpected(std::move(event).error());
      keep_going = on_event(*event);
      line.clear();
    }
  }
  socket.close(ignored);
  return outcome;
}

}  // namespace skopos::tracker
