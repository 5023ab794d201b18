// StreamServer's hot path: once warm, publishing a change to a subscriber allocates
// nothing -- the container is encoded into a reused buffer, the message into the
// client's reused buffer, and Asio recycles its handler memory.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "allocation_counter.h"
#include "skopos/handler_memory.h"
#include "skopos/unique_fd.h"
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

TEST(StreamServer, PublishingAChangeAllocatesNothingOnceWarm) {
  FakeProc proc;
  const std::uint64_t netns = proc.add_process(4242, 1, "web");
  auto owned = std::make_unique<FakeSource>();
  FakeSource& source = *owned;
  Tracker tracker(std::move(owned), nullptr, Tracker::Options{proc.root(), proc.root() + "/none"});
  tracker.rescan();
  DiscoveryUpdate list;
  ContainerInfo web;
  web.id = std::string(64, 'a');
  web.name = "web";
  web.running = true;
  web.pid = 4242;
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

}  // namespace
}  // namespace skopos::tracker
