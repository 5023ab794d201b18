// The tracker stream with the real skopos-tracker (BPF source), real sockets in test
// namespaces and containers served by a fake Docker API: snapshot-then-deltas, filters,
// heartbeats, reconnects, slow and hostile clients, credentials and the client limit,
// and tracker-cli top in tmux.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "fake_docker.h"
#include "metrics_doc.h"
#include "privileged_support.h"
#include "driver/drain_systems_impl.h"
#include "tracker/stream_client.h"

namespace skopos::testing {
namespace {

using namespace std::chrono_literals;
using skopos::tracker::ClientOptions;
using skopos::tracker::ReconnectingClient;
using skopos::tracker::ServerMessage;
using skopos::tracker::StreamContainer;
using skopos::tracker::TrackerClient;
using Clock = std::chrono::steady_clock;

// A raw connection to the stream socket, for what the client library would never send.
class RawClient {
 public:
  explicit RawClient(const std::string& path, int receive_buffer = 0) {
    fd_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (receive_buffer > 0) ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path.copy(address.sun_path, sizeof address.sun_path - 1);
    connected_ = ::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  }
  bool connected() const { return connected_; }
  void send(const std::string& text) { (void)!::send(fd_.get(), text.data(), text.size(), MSG_NOSIGNAL); }
  // The next line, or "" at EOF or after `timeout`.
  std::string line(std::chrono::milliseconds timeout = 5s) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
        std::string out = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return out;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      pollfd pfd{fd_.get(), POLLIN, 0};
      if (left <= 0 || ::poll(&pfd, 1, static_cast<int>(left)) <= 0) return "";
      char chunk[65536];
      const ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
      if (n <= 0) return "";
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  // Whether the server has closed its end, without reading what is queued (a stalled
  // reader stays stalled): the kernel reports the hang-up at once.
  bool hung_up() {
    pollfd pfd{fd_.get(), POLLRDHUP, 0};
    return ::poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLRDHUP)) != 0;
  }
  // True once the server has closed the connection (reads drain what is left).
  bool closed(std::chrono::milliseconds timeout = 5s) {
    const auto deadline = Clock::now() + timeout;
    char chunk[65536];
    while (Clock::now() < deadline) {
      pollfd pfd{fd_.get(), POLLIN, 0};
      if (::poll(&pfd, 1, 100) <= 0) continue;
      const ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
    }
    return false;
  }

 private:
  UniqueFd fd_;
  std::string buffer_;
  bool connected_ = false;
};

class PrivilegedStream : public ::testing::Test {
 protected:
  void SetUp() override {
    SKOPOS_REQUIRE_ROOT();
    stream_ = "/tmp/skopos-stream-" + std::to_string(::getpid()) + ".sock";
    docker_ = std::make_unique<FakeDocker>("/tmp/skopos-fakedocker-" + std::to_string(::getpid()) + ".sock");
    for (const char* name : {"web", "api"}) {
      auto netns = TestNetns::create(std::string("skopos-st-") + name);
      ASSERT_TRUE(netns) << netns.error().message();
      {
        TestNetns::Inside inside(**netns);
        listeners_.push_back(tcp_listen("127.0.0.1", 8080, true, 4096));
      }
      parked_.push_back(std::make_unique<ParkedProcess>((*netns)->fd()));
      netns_.push_back(std::move(*netns));
    }
    docker_->start({FakeDocker::make_id(1), "web", parked_[0]->pid(), "bridge", "/web", "web.1"});
    docker_->start({FakeDocker::make_id(2), "api", parked_[1]->pid(), "bridge", "/api", "api.1"});
  }

  void TearDown() override {
    if (tracker_) tracker_->stop(SIGTERM, 10s);
    tracker_.reset();
    parked_.clear();
    listeners_.clear();
    netns_.clear();
    docker_.reset();
  }

  void start_tracker(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {SKOPOS_TRACKER,  "--source",        "bpf",  "--docker-socket", docker_->socket(),
                                     "--stream-socket", stream_,         "--conntrack", "off", "--heartbeat",
                                     "200ms",          "--check-interval", "0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    ::unlink(stream_.c_str());
    tracker_ = std::make_unique<ChildProcess>(argv);
    // Ready when the socket accepts (bounded).
    const auto deadline = Clock::now() + 10s;
    while (!RawClient(stream_).connected() && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
  }

  ClientOptions options() const {
    ClientOptions o;
    o.path = stream_;
    return o;
  }

  // Connections into container `index` (both ends in its namespace): inbound on 8080.
  std::vector<UniqueFd> connect_to(std::size_t index, int n) {
    std::vector<UniqueFd> fds;
    TestNetns::Inside inside(*netns_[index]);
    for (int i = 0; i < n; ++i) {
      fds.push_back(tcp_connect("127.0.0.1", 8080));
      fds.push_back(tcp_accept(listeners_[index].get()));
    }
    return fds;
  }

  // Reads until `done` holds for the client's containers (bounded).
  static bool wait_until(TrackerClient& client, const std::function<bool(const TrackerClient&)>& done,
                         std::chrono::milliseconds timeout = 5s) {
    const auto deadline = Clock::now() + timeout;
    while (!done(client)) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      if (!client.next(left)) return false;
    }
    return true;
  }

  static std::int64_t inbound(const TrackerClient& client, const std::string& name) {
    for (const auto& [id, c] : client.containers()) {
      if (c.name == name) return c.known ? c.inbound : -2;
    }
    return -3;  // absent
  }

  std::string stream_;
  std::unique_ptr<FakeDocker> docker_;
  std::vector<std::unique_ptr<TestNetns>> netns_;
  std::vector<std::unique_ptr<ParkedProcess>> parked_;
  std::vector<UniqueFd> listeners_;
  std::unique_ptr<ChildProcess> tracker_;
};

TEST_F(PrivilegedStream, SnapshotFirstThenOrderedDeltas) {
  start_tracker();
  RawClient raw(stream_);
  ASSERT_TRUE(raw.connected());
  EXPECT_NE(raw.line().find(R"("type":"hello","protocol":1,"source":"bpf")"), std::string::npos);
  auto client = TrackerClient::connect(options());
  ASSERT_TRUE(client) << client.error().message();
  ASSERT_TRUE(wait_until(**client, [](const TrackerClient& c) { return inbound(c, "web") == 0 && inbound(c, "api") == 0; }));

  raw.send(R"({"type":"subscribe","protocol":1})" "\n");
  const std::string first = raw.line();
  EXPECT_NE(first.find(R"("type":"snapshot","seq":1)"), std::string::npos) << first;

  auto fds = connect_to(0, 3);
  EXPECT_TRUE(wait_until(**client, [](const TrackerClient& c) { return inbound(c, "web") == 3; })) << inbound(**client, "web");
  EXPECT_EQ(inbound(**client, "api"), 0);
  fds.clear();
  EXPECT_TRUE(wait_until(**client, [](const TrackerClient& c) { return inbound(c, "web") == 0; }));

  // The raw client saw only updates and heartbeats after its snapshot, numbered in
  // order, and the updates took web to 3 and back to 0. (Read for a bounded second:
  // heartbeats never stop.)
  std::uint64_t expected_seq = 2;
  int updates = 0;
  bool saw_three = false;
  bool saw_zero_after = false;
  const auto end = Clock::now() + 1s;
  for (std::string line = raw.line(300ms); !line.empty() && Clock::now() < end; line = raw.line(300ms)) {
    EXPECT_EQ(line.find(R"("type":"snapshot")"), std::string::npos) << line;
    EXPECT_NE(line.find("\"seq\":" + std::to_string(expected_seq) + ","), std::string::npos) << line;
    ++expected_seq;
    if (line.find(R"("type":"update")") == std::string::npos) continue;
    ++updates;
    if (line.find(R"("name":"web")") != std::string::npos) {
      if (line.find(R"("inbound":3)") != std::string::npos) saw_three = true;
      if (saw_three && line.find(R"("inbound":0)") != std::string::npos) saw_zero_after = true;
    }
  }
  EXPECT_GE(updates, 2);
  EXPECT_TRUE(saw_three);
  EXPECT_TRUE(saw_zero_after);
}

TEST_F(PrivilegedStream, FiltersSelectContainers) {
  start_tracker();
  ClientOptions by_app = options();
  by_app.filter.marathon_app_ids = {"/api"};
  auto api_only = TrackerClient::connect(by_app);
  ASSERT_TRUE(api_only) << api_only.error().message();
  ClientOptions by_id = options();
  by_id.filter.ids = {FakeDocker::make_id(1).substr(0, 12)};
  auto web_only = TrackerClient::connect(by_id);
  ASSERT_TRUE(web_only) << web_only.error().message();
  ASSERT_TRUE(wait_until(**api_only, [](const TrackerClient& c) { return inbound(c, "api") == 0; }));
  ASSERT_TRUE(wait_until(**web_only, [](const TrackerClient& c) { return inbound(c, "web") == 0; }));

  auto fds = connect_to(0, 2);
  EXPECT_TRUE(wait_until(**web_only, [](const TrackerClient& c) { return inbound(c, "web") == 2; }));
  // The api-only client hears heartbeats, never about web.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE((*api_only)->next(2s));
  EXPECT_EQ((*api_only)->containers().size(), 1u);
  EXPECT_EQ(inbound(**api_only, "web"), -3);
  EXPECT_EQ(inbound(**web_only, "api"), -3);
}

TEST_F(PrivilegedStream, HeartbeatsTellAQuietTrackerFromADeadOne) {
  start_tracker();
  auto client = TrackerClient::connect(options());
  ASSERT_TRUE(client) << client.error().message();
  EXPECT_EQ((*client)->heartbeat(), 200ms);
  int heartbeats = 0;
  const auto deadline = Clock::now() + 2s;
  while (Clock::now() < deadline && heartbeats < 3) {
    auto type = (*client)->next(1s);
    ASSERT_TRUE(type) << type.error().message();
    if (*type == ServerMessage::Type::kHeartbeat) ++heartbeats;
  }
  EXPECT_EQ(heartbeats, 3);
  // A stopped tracker: the client learns within its wait.
  tracker_->stop(SIGSTOP, 0ms);
  auto silent = (*client)->next(1s);
  EXPECT_FALSE(silent);
  ::kill(tracker_->pid(), SIGCONT);
}

TEST_F(PrivilegedStream, ClientsReconnectAfterATrackerRestartAndGetAFreshSnapshot) {
  start_tracker();
  ReconnectingClient client(options());
  auto event = client.next(Clock::now() + 5s);
  ASSERT_TRUE(event) << event.error().message();
  EXPECT_EQ(*event, ReconnectingClient::Event::kSnapshot);
  auto fds = connect_to(1, 2);

  EXPECT_EQ(tracker_->stop(SIGTERM, 10s), 0);
  bool disconnected = false;
  bool resnapshot = false;
  const auto deadline = Clock::now() + 15s;
  while (Clock::now() < deadline && !resnapshot) {
    auto next = client.next(deadline);
    ASSERT_TRUE(next) << next.error().message();
    if (*next == ReconnectingClient::Event::kDisconnected) {
      disconnected = true;
      start_tracker();
    }
    if (*next == ReconnectingClient::Event::kSnapshot && disconnected) resnapshot = true;
  }
  EXPECT_TRUE(disconnected);
  ASSERT_TRUE(resnapshot);
  EXPECT_EQ(client.reconnects(), 1u);
  // The new tracker counted the connections that existed before it started.
  const auto until = Clock::now() + 5s;
  std::int64_t api = -1;
  while (Clock::now() < until) {
    for (const auto& [id, c] : client.containers()) {
      if (c.name == "api" && c.known) api = c.inbound;
    }
    if (api == 2) break;
    (void)client.next(Clock::now() + 500ms);
  }
  EXPECT_EQ(api, 2);
}

TEST_F(PrivilegedStream, AStalledClientNeitherDelaysOthersNorStaysForever) {
  start_tracker({"--stream-stall-timeout", "1s"});
  RawClient stalled(stream_, 1024);
  ASSERT_TRUE(stalled.connected());
  stalled.send(R"({"type":"subscribe","protocol":1})" "\n");
  auto client = TrackerClient::connect(options());
  ASSERT_TRUE(client) << client.error().message();

  // Changes until the stalled client's buffers are full and it is dropped (bounded);
  // the healthy client follows every step meanwhile.
  const auto deadline = Clock::now() + 20s;
  int round = 0;
  while (!stalled.hung_up() && Clock::now() < deadline) {
    ++round;
    auto fds = connect_to(0, round % 5 + 1);
    const std::int64_t want = round % 5 + 1;
    ASSERT_TRUE(wait_until(**client, [&](const TrackerClient& c) { return inbound(c, "web") == want; }, 2s))
        << "round " << round << ": web inbound " << inbound(**client, "web");
  }
  EXPECT_TRUE(stalled.hung_up()) << "the stalled client was not dropped after " << round << " rounds";
  EXPECT_TRUE(wait_until(**client, [](const TrackerClient& c) { return inbound(c, "web") == 0; }));
  // What it had not read yet is still there to read, then the end.
  EXPECT_TRUE(stalled.closed(10s));
}

TEST_F(PrivilegedStream, MalformedOversizedAndUnknownMessagesGetAnErrorAndADisconnect) {
  start_tracker();
  struct Case {
    std::string send;
    std::string code;
  };
  const std::vector<Case> cases = {
      {"garbage\n", "bad_message"},
      {R"({"type":"kill","container":"web"})" "\n", "bad_message"},
      {R"({"type":"subscribe","protocol":1,"filter":{"names":"web"}})" "\n", "bad_message"},
      {R"({"type":"subscribe","protocol":7})" "\n", "protocol_version"},
      // The limit was raised from 4,096 bytes to kMaxClientLine for dense hosts; a line
      // past it is still refused.
      {std::string(tracker::kMaxClientLine + 1000, 'x'), "message_too_large"},
      {"[1,2,3]\n", "bad_message"},
  };
  for (const Case& c : cases) {
    RawClient raw(stream_);
    ASSERT_TRUE(raw.connected());
    raw.line();  // hello
    raw.send(c.send);
    const std::string reply = raw.line();
    EXPECT_NE(reply.find(R"("type":"error","code":")" + c.code + "\""), std::string::npos) << reply;
    EXPECT_TRUE(raw.closed()) << c.code;
  }
  // Everyone else is still served (the tracker may still be discovering the two
  // containers when this runs right after its start).
  auto client = TrackerClient::connect(options());
  ASSERT_TRUE(client) << client.error().message();
  EXPECT_TRUE(wait_until(**client, [](const TrackerClient& c) { return c.containers().size() == 2u; }))
      << (*client)->containers().size();
}

TEST_F(PrivilegedStream, PeersOutsideTheAllowListAreRefused) {
  start_tracker({"--stream-allow-uids", "0", "--stream-allow-gids", "0"});
  // File permissions would stop uid 65534 first (0660 root:root); open them so the
  // credential check is what refuses.
  ASSERT_EQ(::chmod(stream_.c_str(), 0666), 0);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(pipe_fds[0]);
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
    RawClient raw(stream_);
    const std::string reply = raw.connected() ? raw.line() : "connect failed";
    (void)!::write(pipe_fds[1], reply.data(), reply.size());
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::string reply;
  char buffer[1024];
  for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;) reply.append(buffer, static_cast<std::size_t>(n));
  ::close(pipe_fds[0]);
  ::waitpid(child, nullptr, 0);
  EXPECT_NE(reply.find(R"("code":"forbidden")"), std::string::npos) << reply;
  EXPECT_NE(reply.find("uid 65534"), std::string::npos) << reply;

  // With the default 0660 mode, the client library says it is a permission problem.
  ASSERT_EQ(::chmod(stream_.c_str(), 0660), 0);
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t second = ::fork();
  if (second == 0) {
    ::close(pipe_fds[0]);
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
    ClientOptions o;
    o.path = stream_;
    auto client = TrackerClient::connect(o);
    const std::string text = client ? "connected" : client.error().message();
    (void)!::write(pipe_fds[1], text.data(), text.size());
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  reply.clear();
  for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;) reply.append(buffer, static_cast<std::size_t>(n));
  ::close(pipe_fds[0]);
  ::waitpid(second, nullptr, 0);
  EXPECT_NE(reply.find("not permitted"), std::string::npos) << reply;
}

TEST_F(PrivilegedStream, TheClientBeyondTheLimitIsRefused) {
  start_tracker({"--stream-max-clients", "999"});
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 999; ++i) {
    clients.push_back(std::make_unique<RawClient>(stream_));
    ASSERT_TRUE(clients.back()->connected()) << i;
    ASSERT_NE(clients.back()->line().find(R"("type":"hello")"), std::string::npos) << "client " << i + 1;
  }
  RawClient thousandth(stream_);
  ASSERT_TRUE(thousandth.connected());
  const std::string reply = thousandth.line();
  EXPECT_NE(reply.find(R"("code":"too_many_clients")"), std::string::npos) << reply;
  EXPECT_TRUE(thousandth.closed());
  // A place frees up when someone leaves.
  clients.pop_back();
  std::this_thread::sleep_for(200ms);
  auto client = TrackerClient::connect(options());
  EXPECT_TRUE(client) << client.error().message();
}

TEST_F(PrivilegedStream, WatchUntilZeroWaitsForTheLastConnectionAndReportsHoldersOnTimeout) {
  start_tracker();
  auto fds = connect_to(0, 2);
  // Times out while web holds connections: exit 1, and says who holds what.
  const ProcessResult held = run_process({SKOPOS_TRACKER_CLI, "watch", "web", "api", "--until-zero", "--timeout", "1s",
                                          "--socket", stream_});
  EXPECT_EQ(held.exit_code, 1) << held.out << held.err;
  EXPECT_NE(held.out.find("still holding connections or unknown:\n  web: 2 inbound (8080:2)"), std::string::npos)
      << held.out;
  EXPECT_EQ(held.out.find("  api:"), std::string::npos) << "api has none and is not listed: " << held.out;

  // Drained while watching: exits 0 as soon as the last one closes.
  std::thread closer([&] {
    std::this_thread::sleep_for(500ms);
    fds.clear();
  });
  const auto start = Clock::now();
  const ProcessResult drained = run_process({SKOPOS_TRACKER_CLI, "watch", "web", "--until-zero", "--timeout", "30s",
                                             "--socket", stream_});
  closer.join();
  EXPECT_EQ(drained.exit_code, 0) << drained.out << drained.err;
  EXPECT_LT(Clock::now() - start, 20s) << "it waited for the timeout instead of the drain";
  EXPECT_NE(drained.out.find("web: 2 inbound"), std::string::npos) << "progress lines: " << drained.out;
  EXPECT_NE(drained.out.find("all 1 container(s) have 0 inbound connections"), std::string::npos) << drained.out;

  // A container the tracker does not know is never taken for drained.
  const ProcessResult unknown = run_process({SKOPOS_TRACKER_CLI, "watch", "nosuch", "--until-zero", "--timeout", "500ms",
                                             "--socket", stream_});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.out.find("nosuch: not known to the tracker"), std::string::npos) << unknown.out;

  // No tracker: exit 3 with the reason.
  const ProcessResult missing = run_process({SKOPOS_TRACKER_CLI, "snapshot", "--socket", "/tmp/skopos-no-such.sock"});
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_NE(missing.err.find("skopos-tracker is not running"), std::string::npos) << missing.err;
}

// The drain's progress names the oldest connection a container still holds, and it
// learns it from the tracker ("peers"), not by reading the kernel's tables itself: a
// real tracker, real connections in the container's namespace.
TEST_F(PrivilegedStream, TheDrainsProgressNamesTheOldestPeerTheTrackerReports) {
  start_tracker();
  auto fds = connect_to(0, 3);
  // connect_to() pairs (client, accepted): the first client is the oldest peer.
  sockaddr_in first{};
  socklen_t length = sizeof first;
  ASSERT_EQ(::getsockname(fds[0].get(), reinterpret_cast<sockaddr*>(&first), &length), 0);
  const std::string oldest = "127.0.0.1:" + std::to_string(ntohs(first.sin_port)) + " -> web:8080";

  driver::TrackerConnectionsOptions options;
  options.socket = stream_;
  driver::TrackerDrainConnections connections(options);
  driver::DrainContainer web;
  web.id = FakeDocker::make_id(1);
  web.name = "web";
  web.listen_ports = {8080};
  web.deadline = std::chrono::seconds(3);
  std::vector<std::string> named;
  std::atomic<bool> stop{false};
  auto waited = connections.wait_zero({web}, 300ms, [&](const driver::WaitProgress& progress) {
    if (!progress.oldest_peer.empty()) named.push_back(progress.oldest_peer);
  }, stop);
  ASSERT_TRUE(waited) << waited.error().message;
  EXPECT_FALSE(waited->all_zero) << "the connections were held to the deadline";
  EXPECT_EQ(waited->last.total, 3);
  ASSERT_FALSE(named.empty()) << "no progress line named a peer";
  for (const std::string& line : named) EXPECT_EQ(line.rfind(oldest, 0), 0u) << line << " (want " << oldest << ")";
}

// GET http://127.0.0.1:port/metrics, the body.
std::string http_get_metrics(std::uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) return "";
  const std::string request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";
  (void)!::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL);
  std::string response;
  char chunk[65536];
  for (ssize_t n; (n = ::recv(fd.get(), chunk, sizeof chunk, 0)) > 0;) response.append(chunk, static_cast<std::size_t>(n));
  const auto body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

// The tracker's whole output (BPF, conntrack, the stream, a container): every family is
// documented as it is, and promtool finds nothing to say.
TEST_F(PrivilegedStream, MetricsShowContainerGaugesAndStreamDisconnects) {
  const std::uint16_t port = free_loopback_port();
  start_tracker({"--metrics-listen", "127.0.0.1:" + std::to_string(port), "--conntrack", "on"});
  auto client = TrackerClient::connect(options());
  ASSERT_TRUE(client) << client.error().message();
  auto fds = connect_to(0, 3);
  ASSERT_TRUE(wait_until(**client, [](const TrackerClient& c) { return inbound(c, "web") == 3; }));
  {
    RawClient bad(stream_);
    bad.line();
    bad.send("nonsense\n");
    EXPECT_TRUE(bad.closed());
  }
  const std::string web_labels = R"({id=")" + FakeDocker::make_id(1).substr(0, 12) +
                                 R"(",name="web",marathon_app_id="/web",mesos_task_id="web.1",network_mode="bridge"})";
  std::string metrics;
  const auto deadline = Clock::now() + 5s;
  do {
    metrics = http_get_metrics(port);
  } while (metrics.find("skopos_tracker_container_inbound" + web_labels + " 3\n") == std::string::npos &&
           Clock::now() < deadline && (std::this_thread::sleep_for(50ms), true));
  EXPECT_NE(metrics.find("skopos_tracker_container_inbound" + web_labels + " 3\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("skopos_tracker_container_outbound" + web_labels + " 3\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("skopos_tracker_container_known" + web_labels + " 1\n"), std::string::npos);
  EXPECT_NE(metrics.find("skopos_tracker_source{source=\"bpf\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.find("skopos_tracker_stream_clients 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("skopos_tracker_stream_disconnects_total{reason=\"bad_message\"} 1\n"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("skopos_tracker_ringbuffer_lost_events_total 0\n"), std::string::npos);
  EXPECT_NE(metrics.find("# TYPE skopos_tracker_events_total counter\n"), std::string::npos);
  EXPECT_NE(metrics.find("skopos_tracker_conntrack_dumps_total "), std::string::npos) << metrics;
  for (const std::string& problem : skopos::testing::undocumented_metrics(metrics, "skopos-tracker")) ADD_FAILURE() << problem;
  EXPECT_EQ(skopos::testing::promtool_check_metrics(metrics), "");
}

TEST_F(PrivilegedStream, TopShowsTheCountsInA80x24Terminal) {
  start_tracker();
  const std::string session = "skopos-top-" + std::to_string(::getpid());
  ASSERT_TRUE(run_command({"tmux", "new-session", "-d", "-x", "80", "-y", "24", "-s", session,
                           std::string(SKOPOS_TRACKER_CLI) + " top --socket " + stream_}));
  const auto screen = [&] { return run_command({"tmux", "capture-pane", "-p", "-t", session}).value_or(""); };
  // Bounded waits for what the screen shows.
  const auto shows = [&](const std::function<bool(const std::string&)>& want) {
    const auto deadline = Clock::now() + 5s;
    while (Clock::now() < deadline) {
      if (want(screen())) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  };
  const auto row = [](const std::string& text, const std::string& name) {
    const auto at = text.find("\n" + name + " ");
    return at == std::string::npos ? std::string() : text.substr(at + 1, text.find('\n', at + 1) - at - 1);
  };
  EXPECT_TRUE(shows([&](const std::string& s) { return !row(s, "web").empty() && !row(s, "api").empty(); })) << screen();

  auto fds = connect_to(0, 4);
  EXPECT_TRUE(shows([&](const std::string& s) { return row(s, "web").find("8080:4") != std::string::npos; }))
      << screen();
  const std::string web = row(screen(), "web");
  EXPECT_NE(web.find("/web"), std::string::npos) << web;
  EXPECT_NE(web.find(" 4 "), std::string::npos) << web;
  EXPECT_LE(web.size(), 80u);
  fds.clear();
  EXPECT_TRUE(shows([&](const std::string& s) {
    const std::string r = row(s, "web");
    return !r.empty() && r.find("8080:") == std::string::npos;
  })) << screen();

  ASSERT_TRUE(run_command({"tmux", "send-keys", "-t", session, "q"}));
  const auto deadline = Clock::now() + 5s;
  while (run_command({"tmux", "has-session", "-t", session}) && Clock::now() < deadline) std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(run_command({"tmux", "has-session", "-t", session})) << "top did not quit on q";
  (void)run_command({"tmux", "kill-session", "-t", session});
}

}  // namespace
}  // namespace skopos::testing
