// HttpClient against a scripted server on loopback: what it sends, how it fails over,
// what it retries and what it refuses to, its deadlines and limits, and errors that say
// whether a request may have been applied.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>

#include "process.h"
#include "driver/etcd_client.h"
#include "skopos/docker_engine.h"
#include "skopos/http_client.h"
#include "skopos/unique_fd.h"

namespace skopos::driver {
namespace {

using namespace std::chrono_literals;

// A one-thread server: reads each request whole, then does what `behave` says.
class ScriptedServer {
 public:
  // kKeepAlive answers every request of a connection on it; kKeepAliveThenClose answers
  // one as if the connection stayed open, then closes it (as a server with an idle
  // timeout does, later). The others answer one request and close.
  enum class Mode {
    kOk,
    kStatus500,
    kHang,
    kGarbage,
    kHuge,
    kCloseAfterRequest,
    kQuietStream,
    kLongLineStream,
    kKeepAlive,
    kKeepAliveThenClose
  };

  explicit ScriptedServer(Mode mode, const std::string& unix_path = "") : mode_(mode) {
    if (unix_path.empty()) {
      fd_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address);
      socklen_t length = sizeof address;
      ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&address), &length);
      endpoint_ = "http://127.0.0.1:" + std::to_string(ntohs(address.sin_port));
    } else {
      ::unlink(unix_path.c_str());
      fd_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_un address{};
      address.sun_family = AF_UNIX;
      unix_path.copy(address.sun_path, sizeof address.sun_path - 1);
      ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address);
      endpoint_ = "unix://" + unix_path;
      unix_path_ = unix_path;
    }
    ::listen(fd_.get(), 16);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedServer() {
    stop_ = true;
    ::shutdown(fd_.get(), SHUT_RDWR);
    thread_.join();
    if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
  }
  const std::string& endpoint() const { return endpoint_; }
  int requests() const { return requests_; }
  int connections() const { return connections_; }
  std::string last_request() {
    std::lock_guard lock(mutex_);
    return last_;
  }

 private:
  // Reads one whole request from `client` into `request`; false when the client closed
  // (or sent nothing for 2 s).
  bool read_request(int client, std::string& request) {
    request.clear();
    char buffer[65536];
    std::size_t need = std::string::npos;
    while (need == std::string::npos || request.size() < need) {
      pollfd pfd{client, POLLIN, 0};
      if (::poll(&pfd, 1, 2000) <= 0) break;
      const ssize_t n = ::recv(client, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      request.append(buffer, static_cast<std::size_t>(n));
      const auto end = request.find("\r\n\r\n");
      if (end != std::string::npos && need == std::string::npos) {
        std::size_t body = 0;
        const auto cl = request.find("Content-Length: ");
        if (cl != std::string::npos && cl < end) body = std::stoul(request.substr(cl + 16));
        need = end + 4 + body;
      }
    }
    return !request.empty();
  }

  void serve() {
    while (!stop_) {
      UniqueFd client(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!client) return;
      ++connections_;
      std::string request;
      if (mode_ == Mode::kKeepAlive || mode_ == Mode::kKeepAliveThenClose) {
        while (!stop_ && read_request(client.get(), request)) {
          ++requests_;
          {
            std::lock_guard lock(mutex_);
            last_ = request;
          }
          const std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
          (void)!::send(client.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
          if (mode_ == Mode::kKeepAliveThenClose) break;  // closed, without saying so
        }
        continue;
      }
      read_request(client.get(), request);
      ++requests_;
      {
        std::lock_guard lock(mutex_);
        last_ = request;
      }
      std::string reply;
      switch (mode_) {
        case Mode::kOk:
          reply = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Echo-Length: " + std::to_string(request.size()) +
                  "\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello";
          break;
        case Mode::kStatus500:
          reply = "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 16\r\n\r\netcdserver: oops";
          break;
        case Mode::kHang:
          while (!stop_) std::this_thread::sleep_for(10ms);
          continue;
        case Mode::kGarbage: reply = "SSH-2.0-OpenSSH_9.2\r\n"; break;
        case Mode::kHuge: reply = "HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n" + std::string(200000, 'x'); break;
        case Mode::kCloseAfterRequest: continue;  // the request arrived; the connection just closes
        case Mode::kQuietStream:
        case Mode::kLongLineStream: {
          // A streamed body (no length, ended by the close), as Docker's /events is:
          // nothing at all, or one line that never ends.
          reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n";
          if (mode_ == Mode::kLongLineStream) reply += "{\"Type\":\"container\",\"Action\":\"" + std::string(70000, 'x');
          (void)!::send(client.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
          while (!stop_) std::this_thread::sleep_for(10ms);
          continue;
        }
        case Mode::kKeepAlive:
        case Mode::kKeepAliveThenClose: break;  // above
      }
      (void)!::send(client.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
    }
  }

  Mode mode_;
  UniqueFd fd_;
  std::string endpoint_;
  std::string unix_path_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::atomic<int> connections_{0};
  std::mutex mutex_;
  std::string last_;
};

std::unique_ptr<HttpClient> make_client(std::vector<std::string> endpoints, std::chrono::milliseconds timeout = 2s,
                                        int attempts = 3) {
  HttpOptions options;
  for (const std::string& text : endpoints) {
    auto endpoint = HttpEndpoint::parse(text);
    EXPECT_TRUE(endpoint) << endpoint.error().message();
    options.endpoints.push_back(*endpoint);
  }
  options.timeout = timeout;
  options.attempts = attempts;
  options.backoff = 10ms;
  options.max_response_bytes = 64 * 1024;
  options.basic_user = "root";
  options.basic_password = "secret";
  auto client = HttpClient::create(options);
  EXPECT_TRUE(client) << client.error().message();
  return std::move(*client);
}

// A loopback port with nothing listening.
std::string dead_endpoint() { return "http://127.0.0.1:" + std::to_string(testing::free_loopback_port()); }

TEST(HttpEndpointParse, AcceptsWhatOperatorsWriteAndNamesWhatIsWrong) {
  auto plain = HttpEndpoint::parse("http://10.0.0.1:2379");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->host, "10.0.0.1");
  EXPECT_EQ(plain->port, 2379);
  auto v6 = HttpEndpoint::parse("https://[::1]:8443/marathon/");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->base_path, "/marathon");
  auto unix_socket = HttpEndpoint::parse("unix:///var/run/docker.sock");
  ASSERT_TRUE(unix_socket);
  EXPECT_EQ(unix_socket->unix_path, "/var/run/docker.sock");
  EXPECT_EQ(HttpEndpoint::parse("https://mesos")->port, 443);
  for (const char* bad : {"10.0.0.1:2379", "http://", "http://host:0", "http://host:99999", "unix://relative",
                          "http://[::1", "ftp://x"}) {
    auto parsed = HttpEndpoint::parse(bad);
    EXPECT_FALSE(parsed) << bad;
    if (!parsed) {
      EXPECT_NE(parsed.error().message().find(bad), std::string::npos);
    }
  }
}

TEST(HttpClient, SendsMethodBodyAuthAndReturnsStatusHeadersBody) {
  ScriptedServer server(ScriptedServer::Mode::kOk);
  auto client = make_client({server.endpoint()});
  HttpRequest request;
  request.method = "POST";
  request.target = "/v3/kv/range";
  request.body = R"({"key":"Zm9v"})";
  request.content_type = "application/json";
  auto response = client->request(request);
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->status, 200u);
  EXPECT_EQ(response->body, "hello");
  EXPECT_EQ(response->header("Content-Type"), "text/plain");
  const std::string sent = server.last_request();
  EXPECT_TRUE(sent.starts_with("POST /v3/kv/range HTTP/1.1\r\n")) << sent;
  EXPECT_NE(sent.find("Authorization: Basic cm9vdDpzZWNyZXQ=\r\n"), std::string::npos) << sent;
  EXPECT_NE(sent.find("Content-Type: application/json\r\n"), std::string::npos);
  EXPECT_TRUE(sent.ends_with(R"({"key":"Zm9v"})"));
}

TEST(HttpClient, SpeaksOverUnixSockets) {
  const std::string path = "/tmp/skopos-http-" + std::to_string(::getpid()) + ".sock";
  ScriptedServer server(ScriptedServer::Mode::kOk, path);
  auto client = make_client({"unix://" + path});
  auto response = client->request(HttpRequest{});
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->body, "hello");
}

// Connections stay open between requests: an agent's requests to etcd go over one
// connection instead of a TCP handshake each. Failed before: every request said
// "Connection: close" and took a connection of its own (5 here).
TEST(HttpClient, RequestsShareOneKeptAliveConnection) {
  ScriptedServer server(ScriptedServer::Mode::kKeepAlive);
  auto client = make_client({server.endpoint()});
  HttpRequest post;
  post.method = "POST";
  post.body = "x";
  for (int i = 0; i < 5; ++i) {
    auto response = client->request(post);
    ASSERT_TRUE(response) << response.error().message();
    EXPECT_EQ(response->body, "hello");
  }
  EXPECT_EQ(server.requests(), 5);
  EXPECT_EQ(server.connections(), 1);
  EXPECT_EQ(server.last_request().find("Connection: close"), std::string::npos) << server.last_request();
}

// A kept connection the server has closed meanwhile (an idle timeout) is not used: the
// next request, a POST that must never be sent twice, goes on a fresh connection and
// succeeds.
TEST(HttpClient, AKeptConnectionTheServerClosedIsReplacedBeforeAnythingIsSent) {
  ScriptedServer server(ScriptedServer::Mode::kKeepAliveThenClose);
  auto client = make_client({server.endpoint()});
  HttpRequest post;
  post.method = "POST";
  post.body = "x";
  for (int i = 0; i < 3; ++i) {
    auto response = client->request(post);
    ASSERT_TRUE(response) << response.error().message();
    std::this_thread::sleep_for(300ms);  // the server's close arrives meanwhile
  }
  EXPECT_EQ(server.requests(), 3) << "each POST was sent exactly once";
  EXPECT_EQ(server.connections(), 3);
}

TEST(HttpClient, FailsOverFromADeadEndpointAndRemembersTheLiveOne) {
  ScriptedServer server(ScriptedServer::Mode::kOk);
  auto client = make_client({dead_endpoint(), server.endpoint()});
  HttpRequest post;
  post.method = "POST";  // not idempotent: still safe, a refused connect sent nothing
  for (int i = 0; i < 3; ++i) {
    auto response = client->request(post);
    ASSERT_TRUE(response) << response.error().message();
    EXPECT_EQ(response->endpoint, server.endpoint());
  }
  EXPECT_EQ(server.requests(), 3);
}

// Every agent of a fleet is given the same --etcd-endpoints. If each client began with
// the first, the whole fleet would load one member (its gateway, its watches, and, when
// it is not the leader, a forwarding hop for every request), and move to the next all at
// once when that member died. Each client starts at a member of its own choosing.
TEST(EtcdClient, AFleetGivenTheSameMembersSpreadsOverThem) {
  ScriptedServer a(ScriptedServer::Mode::kOk), b(ScriptedServer::Mode::kOk), c(ScriptedServer::Mode::kOk);
  for (int i = 0; i < 60; ++i) {
    driver::EtcdOptions options;
    for (const ScriptedServer* server : {&a, &b, &c}) options.http.endpoints.push_back(*HttpEndpoint::parse(server->endpoint()));
    auto client = driver::EtcdClient::create(options);
    ASSERT_TRUE(client) << client.error().message;
    (void)(*client)->range("/k");  // the scripted answer is no etcd answer: only where it went counts
  }
  // Chance alone leaves a member without one of 60 clients with probability 3 x (2/3)^60, below 1e-10.
  EXPECT_GT(a.requests(), 0);
  EXPECT_GT(b.requests(), 0);
  EXPECT_GT(c.requests(), 0);
  EXPECT_EQ(a.requests() + b.requests() + c.requests(), 60);
}

// A client not asked to spread (Marathon, Mesos: one leader serves) begins with the first.
TEST(HttpClient, WithoutSpreadTheFirstEndpointIsTriedFirst) {
  ScriptedServer a(ScriptedServer::Mode::kOk), b(ScriptedServer::Mode::kOk);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(make_client({a.endpoint(), b.endpoint()})->request(HttpRequest{}));
  EXPECT_EQ(a.requests(), 10);
  EXPECT_EQ(b.requests(), 0);
}

TEST(HttpClient, AllEndpointsDeadIsAConnectErrorThatWasNotApplied) {
  auto client = make_client({dead_endpoint(), dead_endpoint()});
  auto response = client->request(HttpRequest{});
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().kind, HttpError::Kind::kConnect);
  EXPECT_FALSE(response.error().maybe_applied);
  EXPECT_NE(response.error().message().find("Connection refused"), std::string::npos) << response.error().message();
}

TEST(HttpClient, AHungServerTimesOutAndThePostMayHaveBeenApplied) {
  ScriptedServer server(ScriptedServer::Mode::kHang);
  auto client = make_client({server.endpoint()}, 300ms);
  HttpRequest post;
  post.method = "POST";
  post.body = "x";
  const auto start = std::chrono::steady_clock::now();
  auto response = client->request(post);
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().kind, HttpError::Kind::kTimeout);
  EXPECT_TRUE(response.error().maybe_applied);
  EXPECT_NE(response.error().message().find("may have been applied"), std::string::npos);
  EXPECT_EQ(server.requests(), 1) << "a POST whose outcome is unknown is never sent again";
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(HttpClient, IdempotentRequestsAreRetriedAfterAReset) {
  ScriptedServer server(ScriptedServer::Mode::kCloseAfterRequest);
  auto client = make_client({server.endpoint()}, 1s, 3);
  HttpRequest get;
  get.idempotent = true;
  auto response = client->request(get);
  ASSERT_FALSE(response);
  EXPECT_EQ(server.requests(), 3);
  EXPECT_TRUE(response.error().maybe_applied);

  ScriptedServer again(ScriptedServer::Mode::kCloseAfterRequest);
  auto post_client = make_client({again.endpoint()}, 1s, 3);
  HttpRequest post;
  post.method = "POST";
  auto failed = post_client->request(post);
  ASSERT_FALSE(failed);
  EXPECT_EQ(again.requests(), 1);
  EXPECT_EQ(failed.error().kind, HttpError::Kind::kIo);
}

TEST(HttpClient, ErrorStatusesAreResponsesNotTransportErrors) {
  ScriptedServer server(ScriptedServer::Mode::kStatus500);
  auto client = make_client({server.endpoint()});
  auto response = client->request(HttpRequest{});
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 500u);
  EXPECT_EQ(response->body, "etcdserver: oops");
}

TEST(HttpClient, GarbageAndOversizedResponsesAreProtocolErrors) {
  ScriptedServer garbage(ScriptedServer::Mode::kGarbage);
  auto response = make_client({garbage.endpoint()})->request(HttpRequest{});
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().kind, HttpError::Kind::kProtocol) << response.error().message();

  ScriptedServer huge(ScriptedServer::Mode::kHuge);
  auto big = make_client({huge.endpoint()})->request(HttpRequest{});
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().kind, HttpError::Kind::kProtocol);
  EXPECT_NE(big.error().message().find("larger than 65536 bytes"), std::string::npos) << big.error().message();
}

TEST(HttpClient, AStopFromAnotherThreadEndsAQuietStreamWithoutAnError) {
  ScriptedServer server(ScriptedServer::Mode::kQuietStream);
  auto client = make_client({server.endpoint()});
  std::stop_source stop;
  std::thread stopper([&] {
    std::this_thread::sleep_for(200ms);
    stop.request_stop();
  });
  const auto started = std::chrono::steady_clock::now();
  unsigned status = 0;
  std::size_t bytes = 0;
  auto streamed = client->stream(json_request("GET", "/events", "", true), started + 60s,
                                 [&](std::string_view data) {
                                   bytes += data.size();
                                   return true;
                                 },
                                 status, stop.get_token());
  stopper.join();
  ASSERT_TRUE(streamed) << streamed.error().message();
  EXPECT_EQ(status, 200u);
  EXPECT_EQ(bytes, 0u);
  // Ended by the stop, not by the deadline a minute away.
  EXPECT_LT(std::chrono::steady_clock::now() - started, 30s);
  // A stream asked to stop before it starts does not start.
  const int before = server.requests();
  auto again = client->stream(json_request("GET", "/events", "", true), std::chrono::steady_clock::now() + 60s,
                              [](std::string_view) { return true; }, status, stop.get_token());
  EXPECT_TRUE(again);
  EXPECT_EQ(server.requests(), before);
}

TEST(DockerEngineEvents, AnEventLongerThan64KiBIsAnErrorNotAQuietEnd) {
  const std::string path = ::testing::TempDir() + "skopos-docker-long-" + std::to_string(::getpid()) + ".sock";
  ScriptedServer server(ScriptedServer::Mode::kLongLineStream, path);
  DockerEngineOptions options;
  options.http.endpoints.push_back(*HttpEndpoint::parse(server.endpoint()));
  options.http.timeout = 2s;
  auto engine = DockerEngine::create(options);
  ASSERT_TRUE(engine);
  int events = 0;
  auto streamed = (*engine)->events(0, std::chrono::steady_clock::now() + 5s, [&](const DockerEvent&) {
    ++events;
    return true;
  });
  ASSERT_FALSE(streamed) << "a 70 KB line is not an event; the stream must fail, not end quietly";
  EXPECT_EQ(streamed.error().kind, OutsideError::Kind::kBadResponse);
  EXPECT_NE(streamed.error().message.find("longer than 64 KiB"), std::string::npos) << streamed.error().message;
  EXPECT_EQ(events, 0);
}

}  // namespace
}  // namespace skopos::driver
