#include "tracker/stream_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace skopos::tracker {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxServerLine = 256 * 1024 * 1024;

Error timed_out(const std::string& path, std::string_view waiting_for) {
  Error error = Error::invalid("tracker stream", path, "no " + std::string(waiting_for) + " in time");
  error.code = ETIMEDOUT;
  return error;
}

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

}  // namespace

Result<std::unique_ptr<TrackerClient>> TrackerClient::connect(const ClientOptions& options) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (options.path.size() >= sizeof address.sun_path) {
    return unexpected(Error::invalid("tracker stream", options.path, "path too long for a Unix socket"));
  }
  options.path.copy(address.sun_path, sizeof address.sun_path - 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return unexpected(Error::from_errno(errno, "socket", options.path));
  // A Unix connect blocks while the listener's backlog is full, and a send while the
  // tracker does not read: both are bounded by the send timeout (the kernel applies
  // SO_SNDTIMEO to a Unix stream connect too).
  const auto timeout_us = std::chrono::duration_cast<std::chrono::microseconds>(options.timeout).count();
  timeval send_timeout{static_cast<time_t>(timeout_us / 1000000), static_cast<suseconds_t>(timeout_us % 1000000)};
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout) != 0) {
    return unexpected(Error::from_errno(errno, "setsockopt SO_SNDTIMEO", options.path));
  }
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    const int error = errno;
    Error failure = Error::from_errno(error, "connect to the tracker", options.path);
    if (error == EAGAIN || error == EINPROGRESS) {
      failure.code = ETIMEDOUT;
      failure.detail = "the tracker did not accept within " + std::to_string(options.timeout.count()) +
                       " ms (its backlog is full: hung or overloaded)";
    } else if (error == ENOENT || error == ECONNREFUSED) {
      failure.detail = "skopos-tracker is not running (or serves another --stream-socket)";
    } else if (error == EACCES || error == EPERM) {
      failure.detail = "not permitted: the socket is mode 0660; join its group or run as root";
    }
    return unexpected(std::move(failure));
  }
  std::unique_ptr<TrackerClient> client(new TrackerClient(std::move(fd), options.path));
  const auto deadline = Clock::now() + options.timeout;

  auto hello = client->read_message(std::chrono::milliseconds(remaining_ms(deadline)));
  if (!hello) return unexpected(std::move(hello).error());
  if (hello->type == ServerMessage::Type::kError) {
    return unexpected(Error::invalid("tracker refused us", options.path, hello->error_code + ": " + hello->error_message));
  }
  if (hello->type != ServerMessage::Type::kHello) {
    return unexpected(Error::invalid("tracker stream", options.path, "expected hello first"));
  }
  if (hello->protocol != kStreamProtocol) {
    return unexpected(Error::invalid("tracker stream", options.path,
                                     "the tracker speaks protocol " + std::to_string(hello->protocol) +
                                         ", this client " + std::to_string(kStreamProtocol) +
                                         "; upgrade the older of the two"));
  }
  client->source_ = hello->source;
  client->takes_peers_ =
      std::find(hello->requests.begin(), hello->requests.end(), "peers") != hello->requests.end();
  if (hello->heartbeat_ms > 0) client->heartbeat_ = std::chrono::milliseconds(hello->heartbeat_ms);

  // The filter goes to the tracker when it fits the limits the tracker announced (an
  // older tracker announces none: 4,096 bytes, 256 strings per list). Otherwise the
  // client subscribes to every container and applies the filter itself: a dense host
  // still gets its counts at once, from any tracker version.
  const std::size_t max_line =
      hello->max_client_line > 0 ? static_cast<std::size_t>(hello->max_client_line) : kOldMaxClientLine;
  const std::size_t max_strings =
      hello->max_filter_strings > 0 ? static_cast<std::size_t>(hello->max_filter_strings) : kOldMaxFilterStrings;
  std::string request = encode_subscribe(options.filter);
  const auto& f = options.filter;
  if (request.size() > max_line || f.ids.size() > max_strings || f.names.size() > max_strings ||
      f.mesos_task_ids.size() > max_strings || f.marathon_app_ids.size() > max_strings) {
    client->local_filter_ = options.filter;
    request = encode_subscribe(StreamFilter{});
  }
  if (::send(client->fd_.get(), request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    return unexpected(Error::from_errno(errno, "subscribe", options.path));
  }
  for (;;) {
    auto message = client->read_message(std::chrono::milliseconds(remaining_ms(deadline)));
    if (!message) return unexpected(std::move(message).error());
    if (message->type == ServerMessage::Type::kError) {
      return unexpected(Error::invalid("tracker refused us", options.path,
                                       message->error_code + ": " + message->error_message));
    }
    if (message->type == ServerMessage::Type::kSnapshot) {
      client->apply(*message);
      return client;
    }
  }
}

Result<ServerMessage> TrackerClient::read_message(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (const auto newline = buffer_.find('\n'); newline != std::string::npos) {
      auto message = parser_.parse(std::string_view(buffer_).substr(0, newline));
      buffer_.erase(0, newline + 1);
      return message;
    }
    if (buffer_.size() > kMaxServerLine) return unexpected(Error::invalid("tracker stream", path_, "a line over 256 MiB"));
    pollfd pfd{fd_.get(), POLLIN, 0};
    const int ready = ::poll(&pfd, 1, remaining_ms(deadline));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return unexpected(Error::from_errno(errno, "poll", path_));
    }
    if (ready == 0) return unexpected(timed_out(path_, "message"));
    char chunk[65536];
    const ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return unexpected(Error::from_errno(errno, "read", path_));
    }
    if (n == 0) {
      Error error = Error::invalid("tracker stream", path_, "the tracker closed the connection");
      error.code = EPIPE;
      return unexpected(std::move(error));
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

Result<void> TrackerClient::ask_peers(const PeersRequest& request) {
  if (!takes_peers_) {
    return unexpected(Error::invalid("tracker stream", path_, "this tracker does not answer peers questions"));
  }
  const std::string line = encode_peers_request(request);
  const ssize_t sent = ::send(fd_.get(), line.data(), line.size(), MSG_NOSIGNAL);
  if (sent != static_cast<ssize_t>(line.size())) {
    const int error = sent < 0 ? errno : ETIMEDOUT;
    // Part of a line may be on the socket: the next message would be garbage to the
    // tracker. The connection is done; reading from it now fails, and a
    // ReconnectingClient starts a fresh one.
    fd_ = UniqueFd();
    return unexpected(Error::from_errno(error, "ask for peers", path_));
  }
  // Only an answer to this question counts from now on: the one before may be stale.
  peers_.erase(request.id);
  return {};
}

const PeersAnswer* TrackerClient::peers(const std::string& id) const {
  const auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : &it->second;
}

void TrackerClient::apply(ServerMessage& message) {
  timestamp_ns_ = message.timestamp_ns;
  ++messages_received_;
  if (message.type == ServerMessage::Type::kPeers) {
    std::string id = message.peers.id;
    peers_[std::move(id)] = std::move(message.peers);
    return;
  }
  states_received_ += message.containers.size();
  if (message.type == ServerMessage::Type::kSnapshot) {
    containers_.clear();
    containers_known_ = message.containers_known;
    if (!message.source.empty()) source_ = message.source;
  } else if (message.type == ServerMessage::Type::kUpdate) {
    containers_known_ = message.containers_known;
  } else {
    return;
  }
  for (StreamContainer& container : message.containers) {
    if (local_filter_ && !local_filter_->matches(container.id, container.name, container.mesos_task_id,
                                                  container.marathon_app_id)) {
      continue;
    }
    std::string id = container.id;
    containers_[std::move(id)] = std::move(container);
  }
  for (const std::string& id : message.removed) containers_.erase(id);
}

Result<ServerMessage::Type> TrackerClient::next(std::chrono::milliseconds timeout) {
  auto message = read_message(timeout);
  if (!message) return unexpected(std::move(message).error());
  if (message->type == ServerMessage::Type::kError) {
    return unexpected(Error::invalid("tracker disconnected us", path_,
                                     message->error_code + ": " + message->error_message));
  }
  apply(*message);
  return message->type;
}

bool ReconnectingClient::ask_peers(const PeersRequest& request) {
  if (!client_ || !client_->takes_peers()) return false;
  if (auto asked = client_->ask_peers(request); !asked) {
    last_error_ = asked.error().message();
    return false;
  }
  return true;
}

const std::map<std::string, StreamContainer>& ReconnectingClient::containers() const {
  return client_ ? client_->containers() : empty_;
}

Result<ReconnectingClient::Event> ReconnectingClient::next(std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    if (!client_) {
      if (Clock::now() >= deadline) return unexpected(timed_out(options_.path, "connection to the tracker"));
      ClientOptions attempt = options_;
      attempt.timeout = std::min(options_.timeout, std::chrono::milliseconds(remaining_ms(deadline)) +
                                                       std::chrono::milliseconds(1));
      auto connected = TrackerClient::connect(attempt);
      if (connected) {
        client_ = std::move(*connected);
        if (connects_++ > 0) ++reconnects_;
        backoff_ = std::chrono::milliseconds(100);
        return Event::kSnapshot;
      }
      last_error_ = connected.error().message();
      // Retrying cannot fix these.
      const std::string& detail = connected.error().detail;
      if (connected.error().code == EACCES || detail.find("forbidden") != std::string::npos ||
          detail.find("protocol") != std::string::npos || detail.find("bad_message") != std::string::npos ||
          detail.find("message_too_large") != std::string::npos) {
        return unexpected(std::move(connected).error());
      }
      const auto wake = std::min(deadline, Clock::now() + backoff_);
      std::this_thread::sleep_until(wake);
      backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(2000));
      continue;
    }
    // Three silent heartbeats: the tracker is hung or gone.
    const auto quiet_limit = client_->heartbeat() * 3;
    const auto wait = std::min(std::chrono::milliseconds(remaining_ms(deadline)), quiet_limit);
    auto type = client_->next(wait);
    if (type) {
      if (*type == ServerMessage::Type::kSnapshot) return Event::kSnapshot;
      if (*type == ServerMessage::Type::kUpdate) return Event::kUpdate;
      if (*type == ServerMessage::Type::kPeers) return Event::kPeers;
      return Event::kHeartbeat;
    }
    // Our own deadline came first: the connection is fine, the caller's time is up.
    if (type.error().code == ETIMEDOUT && wait < quiet_limit) return unexpected(std::move(type).error());
    last_error_ = type.error().message();
    client_.reset();
    return Event::kDisconnected;
  }
}

}  // namespace skopos::tracker
