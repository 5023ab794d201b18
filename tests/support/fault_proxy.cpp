#include "fault_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "process.h"

namespace skopos::testing {

namespace {


}  // namespace

FaultProxy::FaultProxy(std::uint16_t upstream_port) : upstream_port_(upstream_port) {
  listen_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(listen_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(listen_.get(), reinterpret_cast<sockaddr*>(&address), &length);
  port_ = ntohs(address.sin_port);
  ::listen(listen_.get(), 64);
  acceptor_ = std::thread([this] { accept_loop(); });
}

FaultProxy::~FaultProxy() {
  stop_ = true;
  ::shutdown(listen_.get(), SHUT_RDWR);
  acceptor_.join();
  {
    std::lock_guard lock(mutex_);
    for (const int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  reap(true);
}

void FaultProxy::reap(bool all) {
  std::vector<Worker> finished;
  {
    std::lock_guard lock(mutex_);
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (all || it->done->load()) {
        finished.push_back(std::move(*it));
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (Worker& worker : finished) worker.thread.join();
}

void FaultProxy::drop_next(const std::string& request_prefix, int count) {
  std::lock_guard lock(mutex_);
  drop_prefix_ = request_prefix;
  drop_count_ = count;
  drop_every_ = 0;
}

void FaultProxy::drop_every(const std::string& request_prefix, int every) {
  std::lock_guard lock(mutex_);
  drop_prefix_ = request_prefix;
  drop_every_ = every;
  drop_count_ = 0;
  matched_ = 0;
}

bool FaultProxy::should_drop(std::string_view request_start) {
  std::lock_guard lock(mutex_);
  if (drop_prefix_.empty() || !request_start.starts_with(drop_prefix_)) return false;
  const bool drop = drop_count_ > 0 || (drop_every_ > 0 && ++matched_ % drop_every_ == 0);
  if (drop_count_ > 0) --drop_count_;
  if (drop) ++dropped_;
  return drop;
}

void FaultProxy::accept_loop() {
  while (!stop_) {
    UniqueFd client(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!client) return;
    reap(false);
    std::lock_guard lock(mutex_);
    open_fds_.push_back(client.get());
    auto done = std::make_shared<std::atomic<bool>>(false);
    workers_.push_back(Worker{std::thread([this, done, fd = std::move(client)]() mutable {
                                serve(std::move(fd));
                                *done = true;
                              }),
                              done});
  }
}

// One connection: requests go upstream as they come; each response goes back unless the
// request that asked for it was picked for dropping. Our HTTP clients send one request at
// a time on a connection, so "the request being answered" is the last one seen.
void FaultProxy::serve(UniqueFd client) {
  UniqueFd upstream;
  if (mode_ == Mode::kForward) {
    upstream = connect_loopback(upstream_port_);
    if (!upstream) return;
    std::lock_guard lock(mutex_);
    open_fds_.push_back(upstream.get());
  }
  bool dropping = false;
  char buffer[65536];
  while (!stop_) {
    pollfd fds[2] = {{client.get(), POLLIN, 0}, {upstream ? upstream.get() : -1, POLLIN, 0}};
    if (::poll(fds, 2, 200) < 0) break;
    if (fds[0].revents != 0) {
      const ssize_t n = ::recv(client.get(), buffer, sizeof buffer, 0);
      if (n <= 0) break;
      const std::string_view data(buffer, static_cast<std::size_t>(n));
      const bool request_start = data.starts_with("POST ") || data.starts_with("GET ");
      if (request_start) ++requests_;
      switch (mode_.load()) {
        case Mode::kStatus500: {
          if (!request_start) continue;
          const std::string reply =
              "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 22\r\n\r\n"
              "etcdserver: disk full\n";
          (void)!::send(client.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
          continue;
        }
        case Mode::kHang: continue;
        case Mode::kForward: break;
      }
      if (!upstream) break;
      if (request_start) dropping = should_drop(data);
      // Network delay: each request waits before it goes on (the answer comes later).
      if (const int delay = delay_ms_.load(); request_start && delay > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay));
      }
      if (::send(upstream.get(), buffer, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) break;
    }
    if (upstream && fds[1].revents != 0) {
      const ssize_t n = ::recv(upstream.get(), buffer, sizeof buffer, 0);
      if (n <= 0 && dropping) {
        // Keep the client waiting, as a server that applied the request and then went
        // silent would: it has to time out.
        std::lock_guard lock(mutex_);
        std::erase(open_fds_, upstream.get());
        upstream.reset();
        continue;
      }
      if (n <= 0) break;
      if (dropping) continue;  // the client waits for an answer that never comes
      if (::send(client.get(), buffer, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) break;
    }
  }
  std::lock_guard lock(mutex_);
  std::erase(open_fds_, client.get());
  if (upstream) std::erase(open_fds_, upstream.get());
}

}  // namespace skopos::testing
