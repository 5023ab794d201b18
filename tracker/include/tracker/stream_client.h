// TrackerClient: the client library of the tracker stream (tracker/PROTOCOL.md), used
// by tracker-cli and the driver. Blocking, one thread, every wait bounded.
//
// It keeps the subscribed containers' latest state: the snapshot replaces it, updates
// change it. ReconnectingClient adds what long-lived users need: when the tracker
// restarts or goes quiet for three heartbeats, it reconnects (with backoff) and starts
// again from a fresh snapshot.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "skopos/result.h"
#include "skopos/unique_fd.h"
#include "tracker/stream_protocol.h"

namespace skopos::tracker {

struct ClientOptions {
  std::string path = "/run/skopos/tracker.sock";
  StreamFilter filter;
  std::chrono::milliseconds timeout{5000};  // connect, hello and snapshot
};

class TrackerClient {
 public:
  // Connects, checks the server's protocol version, subscribes and waits for the
  // snapshot. Errors say what an operator should know: the tracker is not running, the
  // socket is not permitted, the versions differ, or the tracker refused us (its code).
  static Result<std::unique_ptr<TrackerClient>> connect(const ClientOptions& options);

  // Waits up to `timeout` for the next message and applies it. Returns its type; an
  // error when the connection ended, the tracker sent an error, or nothing came in
  // time (code ETIMEDOUT).
  Result<ServerMessage::Type> next(std::chrono::milliseconds timeout);

  const std::map<std::string, StreamContainer>& containers() const { return containers_; }
  bool containers_known() const { return containers_known_; }

  // Whether this tracker answers "peers" questions (it lists them in hello).
  bool takes_peers() const { return takes_peers_; }
  // Asks who holds a container's inbound connections; the answer arrives through
  // next() (type kPeers) and is then peers(answer id). The send is bounded by the
  // connection's send timeout. An error when the tracker does not take the question.
  Result<void> ask_peers(const PeersRequest& request);
  // The answer to the latest question about the container with this full id; nullptr
  // until it came (asking again forgets the answer before).
  const PeersAnswer* peers(const std::string& id) const;
  const std::string& source() const { return source_; }
  std::chrono::milliseconds heartbeat() const { return heartbeat_; }
  // The last message's timestamp (the tracker's clock).
  std::int64_t timestamp_ns() const { return timestamp_ns_; }
  // Container states received in snapshots and updates so far, and messages.
  std::uint64_t container_states_received() const { return states_received_; }
  std::uint64_t messages_received() const { return messages_received_; }

 private:
  TrackerClient(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  Result<ServerMessage> read_message(std::chrono::milliseconds timeout);
  void apply(ServerMessage& message);

  UniqueFd fd_;
  std::string path_;
  std::string buffer_;
  ServerMessageParser parser_;
  std::map<std::string, StreamContainer> containers_;
  bool containers_known_ = false;
  std::string source_;
  std::chrono::milliseconds heartbeat_{1000};
  std::int64_t timestamp_ns_ = 0;
  std::uint64_t states_received_ = 0;
  std::uint64_t messages_received_ = 0;
  bool takes_peers_ = false;
  std::map<std::string, PeersAnswer> peers_;  // by full id
  // Set when the filter was too large for the tracker's limits: subscribed to every
  // container, and this filter is applied here.
  std::optional<StreamFilter> local_filter_;
};

class ReconnectingClient {
 public:
  explicit ReconnectingClient(ClientOptions options) : options_(std::move(options)) {}

  enum class Event : std::uint8_t {
    kSnapshot,     // a (new) snapshot replaced the state: first connect, or a reconnect
    kUpdate,       // containers changed
    kHeartbeat,    // nothing changed
    kPeers,        // the answer to a peers question arrived
    kDisconnected, // the tracker is gone for now; containers() is stale; retrying
  };
  // Waits until `deadline` for something to report. Reconnects as needed, with
  // backoff. An error only at the deadline (ETIMEDOUT) or for problems a retry cannot
  // fix (not permitted, protocol version, refused).
  Result<Event> next(std::chrono::steady_clock::time_point deadline);

  bool connected() const { return client_ != nullptr; }
  const std::map<std::string, StreamContainer>& containers() const;
  bool containers_known() const { return client_ != nullptr && client_->containers_known(); }
  // As TrackerClient's, on the current connection: false when not connected or the
  // tracker does not take the question; answers are forgotten on a reconnect.
  bool ask_peers(const PeersRequest& request);
  const PeersAnswer* peers(const std::string& id) const { return client_ ? client_->peers(id) : nullptr; }
  std::uint64_t reconnects() const { return reconnects_; }
  // Why the last connection attempt or connection failed, for progress lines.
  const std::string& last_error() const { return last_error_; }

 private:
  ClientOptions options_;
  std::unique_ptr<TrackerClient> client_;
  std::map<std::string, StreamContainer> empty_;
  std::uint64_t reconnects_ = 0;
  std::uint64_t connects_ = 0;
  std::chrono::milliseconds backoff_{100};
  std::string last_error_;
};

}  // namespace skopos::tracker
