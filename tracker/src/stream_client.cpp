#include "tracker/stream_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

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
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    const int error = errno;
    Error failure = Error::from_errno(error, "connect to the tracker", options.path);
    if (error == ENOENT || error == ECONNREFUSED) {
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
  if (hello->heartbeat_ms > 0) client->heartbeat_ = std::chrono::milliseconds(hello->heartbeat_ms);

  // {"type":"subscribe","protocol":1,"filter":{...}}
  std::string request = R"({"type":"subscribe","protocol":)" + std::to_string(kStreamProtocol) + R"(,"filter":{)";
  bool first_list = true;
  for (const auto& [key, list] : {std::pair{"ids", &options.filter.ids}, std::pair{"names", &options.filter.names},
                                  std::pair{"mesos_task_ids", &options.filter.mesos_task_ids},
                                  std::pair{"marathon_app_ids", &options.filter.marathon_app_ids}}) {
    if (list->empty()) continue;
    request += std::string(first_list ? "" : ",") + "\"" + key + "\":[";
    first_list = false;
    for (std::size_t i = 0; i < list->size(); ++i) {
      request += i == 0 ? "\"" : ",\"";
      for (char c : (*list)[i]) {
        if (c == '"' || c == '\\') request += '\\';
        if (static_cast<unsigned char>(c) >= 0x20) request += c;
      }
      request += '"';
    }
    request += ']';
  }
  request += "}}\n";
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

void TrackerClient::apply(ServerMessage& message) {
  timestamp_ns_ = message.timestamp_ns;
  ++messages_received_;
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
          detail.find("protocol") != std::string::npos) {
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
