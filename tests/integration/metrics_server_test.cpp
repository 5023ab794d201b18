// The tracker's metrics listener under abuse: connections beyond its cap are closed
// unanswered while the capped ones and later scrapes are served, and running out of
// file descriptors pauses the listener instead of spinning on a failing accept.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "process.h"
#include "skopos/unique_fd.h"
#include "tracker/metrics.h"

namespace skopos::tracker {
namespace {

using namespace std::chrono_literals;
using skopos::testing::connect_loopback;

// The whole answer to one GET /metrics ("" when closed unanswered or after 3 s).
std::string scrape(int fd) {
  const std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  (void)!::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  for (;;) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 100) > 0) {
      char buffer[4096];
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) return out;
      out.append(buffer, static_cast<std::size_t>(n));
    }
    if (std::chrono::steady_clock::now() > deadline) return out;
  }
}

// Whether the server closed `fd` without a word (read returns 0 within 2 s).
bool closed_unanswered(int fd) {
  pollfd pfd{fd, POLLIN, 0};
  if (::poll(&pfd, 1, 2000) <= 0) return false;
  char byte;
  return ::recv(fd, &byte, 1, 0) == 0;
}

class MetricsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<MetricsServer>(io_, [] { return std::string("skopos_test_metric 1\n"); });
    ASSERT_TRUE(server_->start("127.0.0.1:0"));
    std::promise<void> running;
    loop_ = std::thread([this, &running] {
      auto guard = boost::asio::make_work_guard(io_);
      boost::asio::post(io_, [&running] { running.set_value(); });
      io_.run();
    });
    // The loop runs before the test goes on: a test that uses up every descriptor must
    // not be the moment the thread starts (the sanitizers' runtime needs descriptors
    // to check a new thread's objects, and reports a false error without them).
    running.get_future().wait();
  }
  void TearDown() override {
    boost::asio::post(io_, [this] { server_->stop(); });
    io_.stop();
    loop_.join();
  }
  boost::asio::io_context io_;
  std::unique_ptr<MetricsServer> server_;
  std::thread loop_;
};

TEST_F(MetricsServerTest, ConnectionsBeyondTheCapAreClosedAndLaterScrapesServed) {
  // Failed before: there was no cap; every idle connection held a session.
  std::vector<UniqueFd> idle;
  for (int i = 0; i < MetricsServer::kMaxSessions; ++i) idle.push_back(connect_loopback(server_->port()));
  std::this_thread::sleep_for(200ms);  // accepted, each waiting for its request
  UniqueFd extra = connect_loopback(server_->port());
  ASSERT_TRUE(extra);
  EXPECT_TRUE(closed_unanswered(extra.get())) << "the 17th connection is closed at once";
  EXPECT_GE(server_->over_cap(), 1u);
  EXPECT_NE(scrape(idle.front().get()).find("skopos_test_metric 1"), std::string::npos) << "the capped ones are served";
  idle.clear();
  std::this_thread::sleep_for(200ms);
  UniqueFd later = connect_loopback(server_->port());
  EXPECT_NE(scrape(later.get()).find("skopos_test_metric 1"), std::string::npos);
}

TEST_F(MetricsServerTest, OutOfFileDescriptorsPausesTheListenerInsteadOfSpinning) {
  // Failed before: the accept failed with EMFILE and was retried at once, for ever --
  // a core at 100 % and thousands of failed accepts a second.
  // One scrape first: every code path of a served connection has run once before the
  // descriptors run out (see SetUp).
  UniqueFd warm = connect_loopback(server_->port());
  ASSERT_NE(scrape(warm.get()).find("skopos_test_metric 1"), std::string::npos);
  warm.reset();
  rlimit original{};
  ::getrlimit(RLIMIT_NOFILE, &original);
  // Use up every descriptor below a low limit but one, which the client's socket takes:
  // the server's accept of that connection then fails with EMFILE.
  std::vector<UniqueFd> hog;
  rlimit low = original;
  low.rlim_cur = 64;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  for (;;) {
    UniqueFd fd(::dup(STDERR_FILENO));
    if (!fd) break;  // EMFILE: every number below 64 is taken
    hog.push_back(std::move(fd));
  }
  hog.pop_back();
  UniqueFd pending = connect_loopback(server_->port());
  ASSERT_TRUE(pending) << "the client's socket took the one free descriptor";
  std::this_thread::sleep_for(1s);
  const std::uint64_t errors = server_->accept_errors();
  ::setrlimit(RLIMIT_NOFILE, &original);
  hog.clear();
  EXPECT_GE(errors, 1u) << "the accept failed for lack of descriptors";
  EXPECT_LE(errors, 30u) << "and was retried after pauses, not in a loop";
  // With descriptors back, the listener serves again.
  std::this_thread::sleep_for(1200ms);
  UniqueFd after = connect_loopback(server_->port());
  EXPECT_NE(scrape(after.get()).find("skopos_test_metric 1"), std::string::npos);
}

}  // namespace
}  // namespace skopos::tracker
