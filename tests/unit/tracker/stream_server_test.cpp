// StreamServer's hot path: once warm, publishing a change to a subscriber allocates
// nothing -- the container is encoded into a reused buffer, the message into the
// client's reused buffer, and Asio recycles its handler memory.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <cstdio>
#include <thread>

#include "allocation_counter.h"
#include "skopos/handler_memory.h"
#include "skopos/unique_fd.h"
#include "tracker/stream_client.h"
#include "tracker/stream_server.h"
#include "tracker_fakes.h"

namespace skopos::tracker {
namespace {

// Reads whatever is there into a fixed buffer; counts complete lines. No allocation.
class LineCounter {
 public:
  explicit LineCounter(int fd) : fd_(fd) {}
  int drain() {
    int lines = 0;
    for (;;) {
      const ssize_t n = ::recv(fd_, buffer_, sizeof buffer_, MSG_DONTWAIT);
      if (n <= 0) return lines;
      for (ssize_t i = 0; i < n; ++i) lines += buffer_[i] == '\n' ? 1 : 0;
    }
  }

 private:
  int fd_;
  char buffer_[65536];
};

// A StreamServer for `tracker` on a socket of its own, its event loop on a thread,
// stopped and joined on destruction: for tests that talk to it with the blocking client.
class ServedTracker {
 public:
  ServedTracker(Tracker& tracker, const std::string& name)
      : path_("/tmp/skopos-" + name + "-" + std::to_string(::getpid()) + ".sock"), server_(io_, tracker, options()) {
    started_ = static_cast<bool>(server_.start());
    loop_ = std::thread([this] { io_.run(); });
  }
  ~ServedTracker() {
    boost::asio::post(io_, [this] { server_.stop(); });
    guard_.reset();
    loop_.join();
  }
  bool started() const { return started_; }
  const std::string& path() const { return path_; }

 private:
  StreamOptions options() const {
    StreamOptions options;
    options.path = path_;
    return options;
  }

  std::string path_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_ = boost::asio::make_work_guard(io_);
  StreamServer server_;
  bool started_ = false;
  std::thread loop_;
};

TEST(StreamServer, PublishingAChangeAllocatesNothingOnceWarm) {
  FakeProc proc;
  const std::uint64_t netns = proc.add_process(4242, 1, "web");
  auto owned = std::make_unique<FakeSource>();
  FakeSource& source = *owned;
  Tracker tracker(std::move(owned), nullptr, Tracker::Options{proc.root(), proc.root() + "/none"});
  tracker.rescan();
  DiscoveryUpdate list;
  ContainerInfo web = running_container(std::string(64, 'a'), "web", 4242);
  web.marathon_app_id = "/web";
  list.containers.push_back(web);
  tracker.apply(list);

  boost::asio::io_context io;
  StreamOptions options;
  options.path = "/tmp/skopos-alloc-" + std::to_string(::getpid()) + ".sock";
  options.heartbeat = std::chrono::seconds(60);  // no heartbeats during the measurement
  StreamServer server(io, tracker, options);
  ASSERT_TRUE(server.start());

  skopos::UniqueFd client(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  options.path.copy(address.sun_path, sizeof address.sun_path - 1);
  ASSERT_EQ(::connect(client.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  const std::string subscribe = R"({"type":"subscribe","protocol":1})" "\n";
  ASSERT_EQ(::send(client.get(), subscribe.data(), subscribe.size(), 0), static_cast<ssize_t>(subscribe.size()));
  LineCounter lines(client.get());
  // Runs the loop until the client has `want` more lines (bounded).
  const auto pump = [&](int want) {
    int got = 0;
    for (int spins = 0; got < want && spins < 100000; ++spins) {
      io.restart();
      io.poll();
      got += lines.drain();
    }
    return got;
  };
  ASSERT_EQ(pump(2), 2) << "hello and snapshot";

  std::uint32_t value = 0;
  // As in the daemon, the work runs inside the event loop (where Asio recycles its
  // handler memory).
  const auto work = [&] {
    source.set(netns, 8080, Direction::kInbound, ++value % 50 + 1);
    tracker.update_source();
    server.publish();
  };
  HandlerMemory post_memory;  // the test's own post must not count either
  const auto change = [&] {
    boost::asio::post(io, post_memory.wrap(work));
    return pump(1);
  };
  for (int i = 0; i < 200; ++i) ASSERT_EQ(change(), 1);
  int delivered = 0;
  const std::uint64_t allocations = bench::allocations_during([&] {
    for (int i = 0; i < 1000; ++i) delivered += change();
  });
  EXPECT_EQ(delivered, 1000);
  EXPECT_EQ(allocations, 0u) << "allocations while publishing 1000 changes";
  server.stop();
}

// A Mesos agent with hundreds of containers: the drain subscribes to every one of them
// by full id. Failed before: 300 ids made a subscribe line of about 20 KB, over the old
// 4,096-byte limit (and 256 ids per list), so the tracker refused it, the client retried
// for ever and every count stayed unknown.
TEST(StreamServer, ADenseHostsFilterOfThreeHundredFullIdsGetsRealCounts) {
  constexpr int kContainers = 300;
  FakeProc proc;
  auto owned = std::make_unique<FakeSource>();
  FakeSource& source = *owned;
  Tracker tracker(std::move(owned), nullptr, Tracker::Options{proc.root(), proc.root() + "/none"});
  std::vector<std::uint64_t> namespaces;
  for (int i = 0; i < kContainers; ++i) {
    namespaces.push_back(proc.add_process(5000 + i, 1, "task"));
  }
  tracker.rescan();
  DiscoveryUpdate list;
  StreamFilter filter;
  for (int i = 0; i < kContainers; ++i) {
    ContainerInfo info;
    char id[65];
    std::snprintf(id, sizeof id, "%064x", 0xc0ffee00u + static_cast<unsigned>(i));
    info.id = id;
    info.name = "mesos-" + std::to_string(i);
    info.running = true;
    info.pid = 5000 + i;
    list.containers.push_back(info);
    // Every other container is drained: 150 ids, and a control that must not show up.
    if (i % 2 == 0) filter.ids.push_back(info.id);
    source.set(namespaces[static_cast<std::size_t>(i)], 8080, Direction::kInbound, static_cast<std::uint32_t>(i % 7));
  }
  // And 150 more ids of containers that are not there (gone already): 300 in the line.
  for (int i = 0; i < kContainers / 2; ++i) filter.ids.push_back(std::string(63, 'f') + std::to_string(i % 10));
  tracker.apply(list);
  tracker.update_source();

  ServedTracker served(tracker, "dense");
  ASSERT_TRUE(served.started());

  ClientOptions client_options;
  client_options.path = served.path();
  client_options.filter = filter;
  client_options.timeout = std::chrono::seconds(5);
  auto client = TrackerClient::connect(client_options);
  ASSERT_TRUE(client) << client.error().message();
  EXPECT_TRUE((*client)->containers_known());
  ASSERT_EQ((*client)->containers().size(), static_cast<std::size_t>(kContainers / 2)) << "exactly the drained half";
  std::int64_t total = 0;
  for (const auto& [id, container] : (*client)->containers()) {
    EXPECT_TRUE(container.known) << id;
    total += container.inbound;
  }
  std::int64_t expected = 0;
  for (int i = 0; i < kContainers; i += 2) expected += i % 7;
  EXPECT_EQ(total, expected) << "real counts, not unknown";
}

// The drain names who holds a container's connections by asking the tracker (the
// "peers" question) instead of reading the kernel's tables itself: the answer comes
// over the stream, from the container's own tables, oldest first.
TEST(StreamServer, APeersQuestionGetsTheContainersInboundConnectionsOldestFirst) {
  FakeProc proc;
  proc.add_process(4242, 1, "web");
  proc.add_tables(4242);
  Tracker tracker(std::make_unique<FakeSource>(), nullptr, Tracker::Options{proc.root(), proc.root() + "/none"});
  tracker.rescan();
  DiscoveryUpdate list;
  const ContainerInfo web = running_container(std::string(64, 'b'), "web", 4242);
  list.containers.push_back(web);
  tracker.apply(list);

  ServedTracker served(tracker, "peers");
  ASSERT_TRUE(served.started());

  ClientOptions client_options;
  client_options.path = served.path();
  auto client = TrackerClient::connect(client_options);
  ASSERT_TRUE(client) << client.error().message();
  ASSERT_TRUE((*client)->takes_peers()) << "the tracker lists peers in hello";
  EXPECT_EQ((*client)->peers(web.id), nullptr);
  PeersRequest request;
  request.id = web.id;
  request.ports = {8080, 9090};
  request.limit = 2;
  ASSERT_TRUE((*client)->ask_peers(request));
  const PeersAnswer* answer = nullptr;
  for (int i = 0; i < 20 && answer == nullptr; ++i) {
    auto type = (*client)->next(std::chrono::seconds(2));
    ASSERT_TRUE(type) << type.error().message();
    if (*type == ServerMessage::Type::kPeers) answer = (*client)->peers(web.id);
  }
  ASSERT_NE(answer, nullptr);
  EXPECT_TRUE(answer->known) << answer->reason;
  EXPECT_EQ(answer->total, 3u);
  EXPECT_EQ(answer->peers, (std::vector<StreamPeer>{{8080, "127.0.0.1", 60766, 8460}, {9090, "::1", 53238, 8463}}));

  // Asking before subscribing is a protocol error, named, with a disconnect.
  skopos::UniqueFd raw(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  served.path().copy(address.sun_path, sizeof address.sun_path - 1);
  ASSERT_EQ(::connect(raw.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  const std::string early = encode_peers_request(request);
  ASSERT_EQ(::send(raw.get(), early.data(), early.size(), 0), static_cast<ssize_t>(early.size()));
  std::string received;
  char chunk[4096];
  for (;;) {
    pollfd pfd{raw.get(), POLLIN, 0};
    if (::poll(&pfd, 1, 5000) <= 0) break;
    const ssize_t n = ::recv(raw.get(), chunk, sizeof chunk, 0);
    if (n <= 0) break;  // closed after the error
    received.append(chunk, static_cast<std::size_t>(n));
  }
  EXPECT_NE(received.find(R"("code":"bad_message")"), std::string::npos) << received;
  EXPECT_NE(received.find("subscribe before asking for peers"), std::string::npos) << received;
}

// A drain asks about every busy container in one go: each question gets its answer.
// Failed before: the server kept one answer slot per client, and questions that came
// while a message was being written replaced each other, so the middle containers of
// every tick were never answered.
TEST(StreamServer, QuestionsAboutSeveralContainersAskedAtOnceAreEachAnswered) {
  constexpr int kContainers = 5;
  FakeProc proc;
  DiscoveryUpdate list;
  for (int i = 0; i < kContainers; ++i) {
    proc.add_process(4242 + i, 1, "web");
    proc.add_tables(4242 + i);
    list.containers.push_back(running_container(std::string(64, static_cast<char>('a' + i)), "web" + std::to_string(i), 4242 + i));
  }
  Tracker tracker(std::make_unique<FakeSource>(), nullptr, Tracker::Options{proc.root(), proc.root() + "/none"});
  tracker.rescan();
  tracker.apply(list);
  ServedTracker served(tracker, "questions");
  ASSERT_TRUE(served.started());
  ClientOptions client_options;
  client_options.path = served.path();
  auto client = TrackerClient::connect(client_options);
  ASSERT_TRUE(client) << client.error().message();
  for (const ContainerInfo& c : list.containers) {
    PeersRequest request;
    request.id = c.id;
    ASSERT_TRUE((*client)->ask_peers(request));
  }
  int answered = 0;
  for (int i = 0; i < 50 && answered < kContainers; ++i) {
    auto type = (*client)->next(std::chrono::seconds(2));
    ASSERT_TRUE(type) << type.error().message();
    answered = 0;
    for (const ContainerInfo& c : list.containers) {
      const PeersAnswer* answer = (*client)->peers(c.id);
      if (answer != nullptr && answer->known && answer->total == 3) ++answered;
    }
  }
  EXPECT_EQ(answered, kContainers) << "every container's question answered";
}

}  // namespace
}  // namespace skopos::tracker
