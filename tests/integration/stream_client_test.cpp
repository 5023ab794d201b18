// The client library and tracker-cli against a server that speaks another protocol
// version: a clear error, never a misread.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <thread>

#include "process.h"
#include "skopos/unique_fd.h"
#include "tracker/stream_client.h"

namespace {

using skopos::UniqueFd;

// Accepts connections and greets each with `hello`, until destroyed.
class FutureTracker {
 public:
  explicit FutureTracker(std::string path, std::string hello) : path_(std::move(path)), hello_(std::move(hello)) {
    ::unlink(path_.c_str());
    listener_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path_.copy(address.sun_path, sizeof address.sun_path - 1);
    EXPECT_EQ(::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(::listen(listener_.get(), 8), 0);
    thread_ = std::thread([this] {
      for (;;) {
        const int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) return;
        (void)!::write(fd, hello_.data(), hello_.size());
        ::shutdown(fd, SHUT_WR);
        char drain[256];
        while (::read(fd, drain, sizeof drain) > 0) {
        }
        ::close(fd);
      }
    });
  }
  ~FutureTracker() {
    ::shutdown(listener_.get(), SHUT_RDWR);
    thread_.join();
    ::unlink(path_.c_str());
  }

 private:
  std::string path_;
  std::string hello_;
  UniqueFd listener_;
  std::thread thread_;
};

TEST(StreamClient, ADifferentProtocolVersionIsAClearError) {
  const std::string path = "/tmp/skopos-future-" + std::to_string(::getpid()) + ".sock";
  FutureTracker server(path, R"({"type":"hello","protocol":2,"source":"bpf","heartbeat_ms":1000})" "\n");
  skopos::tracker::ClientOptions options;
  options.path = path;
  auto client = skopos::tracker::TrackerClient::connect(options);
  ASSERT_FALSE(client);
  EXPECT_NE(client.error().message().find("the tracker speaks protocol 2, this client 1"), std::string::npos)
      << client.error().message();

  const auto cli = skopos::testing::run_process({SKOPOS_TRACKER_CLI, "snapshot", "--socket", path});
  EXPECT_EQ(cli.exit_code, 3);
  EXPECT_NE(cli.err.find("speaks protocol 2"), std::string::npos) << cli.err;
}

TEST(StreamClient, GarbageFromTheServerIsAnErrorNotACrash) {
  const std::string path = "/tmp/skopos-garbage-" + std::to_string(::getpid()) + ".sock";
  FutureTracker server(path, "HTTP/1.1 200 OK\r\n\r\n");
  skopos::tracker::ClientOptions options;
  options.path = path;
  options.timeout = std::chrono::seconds(2);
  auto client = skopos::tracker::TrackerClient::connect(options);
  ASSERT_FALSE(client);
  EXPECT_NE(client.error().message().find("parse tracker message"), std::string::npos) << client.error().message();
}

}  // namespace
