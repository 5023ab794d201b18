// The tracker stream's codec (tracker/PROTOCOL.md): its messages as value types, the
// encoders of every message in both directions, and the parsers -- ClientMessageParser
// for what subscribers send (hostile input: bounded, fuzzed), ServerMessageParser for
// what the tracker sends (the client library). Nothing else writes or reads the wire.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "skopos/docker_api.h"
#include "skopos/json_writer.h"
#include "skopos/result.h"
#include "tracker/port_connections.h"

namespace skopos::tracker {

inline constexpr int kStreamProtocol = 1;
// Longest client line, newline included: room for a filter naming every container of
// the densest host (4,096 full ids of 64 hex digits) with margin, and still a small,
// fixed cost per client (the server buffers at most one line). Servers announce their
// limits in hello; one that does not (before these were raised) takes 4,096 bytes and
// 256 strings per list (kOldMaxClientLine, kOldMaxFilterStrings).
inline constexpr std::size_t kMaxClientLine = 512 * 1024;
// Most strings in one filter list.
inline constexpr std::size_t kMaxFilterStrings = 4096;
inline constexpr std::size_t kOldMaxClientLine = 4096;
inline constexpr std::size_t kOldMaxFilterStrings = 256;

struct StreamFilter {
  std::vector<std::string> ids;  // full ids or prefixes of at least 12 characters
  std::vector<std::string> names;
  std::vector<std::string> mesos_task_ids;
  std::vector<std::string> marathon_app_ids;

  bool empty() const { return ids.empty() && names.empty() && mesos_task_ids.empty() && marathon_app_ids.empty(); }
  // Any list matching is a match; an empty filter matches everything.
  bool matches(std::string_view id, std::string_view name, std::string_view mesos_task_id,
               std::string_view marathon_app_id) const;
};

struct SubscribeMessage {
  int protocol = 0;
  StreamFilter filter;
};

// A question about one container (PROTOCOL.md, "peers"): its established inbound
// connections on `ports` (every port it listens on when empty), oldest first, at most
// `limit`. A server that takes it lists "peers" in hello's `requests`.
inline constexpr std::uint32_t kMaxPeersLimit = 256;
inline constexpr std::size_t kMaxPeersPorts = 1024;
struct PeersRequest {
  std::string id;  // the full id, or a prefix of at least 12 characters
  std::vector<std::uint16_t> ports;
  std::uint32_t limit = 16;  // 1..kMaxPeersLimit
};

// One line, newline included, that ClientMessageParser reads back as `request`.
std::string encode_peers_request(const PeersRequest& request);

// What a client sent: a subscription or a question.
struct ClientMessage {
  enum class Type : std::uint8_t { kSubscribe, kPeers };
  Type type = Type::kSubscribe;
  SubscribeMessage subscribe;
  PeersRequest peers;
};

// Why a client message was refused: `code` is the error code the server sends back.
struct ProtocolError {
  std::string code;  // "bad_message", "protocol_version", "message_too_large"
  std::string message;
};

// Parses one client line (without its newline). Reuses its buffers; not thread-safe.
class ClientMessageParser {
 public:
  ClientMessageParser();
  ~ClientMessageParser();
  Result<ClientMessage, ProtocolError> parse(std::string_view line);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The subscribe line, newline included, that ClientMessageParser reads back.
std::string encode_subscribe(const StreamFilter& filter);

// A container as the stream publishes it (see PROTOCOL.md, CONTAINER): one port's counts
// (port_connections.h), the owning container a client holds, and the borrowed view the one
// encoder writes -- from the tracker's state (the server, allocating nothing) or from a
// client's (tracker-cli).
using StreamPort = PortConnections;

struct StreamContainer {
  std::string id;
  std::string name;
  std::string network_mode;
  std::string mesos_task_id;
  std::string marathon_app_id;
  std::uint64_t netns = 0;
  bool known = false;
  std::int64_t inbound = -1;   // -1: null (unknown)
  std::int64_t outbound = -1;  // -1: null (unknown, or not attributable)
  std::int64_t conntrack_inbound = -1;
  std::vector<StreamPort> ports;
  std::vector<ContainerPort> declared_ports;  // from Docker: exposed and published
};

struct StreamContainerView {
  std::string_view id;
  std::string_view name;
  std::string_view network_mode;
  std::string_view mesos_task_id;
  std::string_view marathon_app_id;
  std::uint64_t netns = 0;
  bool known = false;
  std::int64_t inbound = -1;   // -1: null -- unknown is not zero
  std::int64_t outbound = -1;  // -1: null (unknown, or not attributable: host mode)
  std::int64_t conntrack_inbound = -1;
  std::span<const StreamPort> ports;
  std::span<const ContainerPort> declared_ports;
};
StreamContainerView view_of(const StreamContainer& container);
StreamContainer copy_of(const StreamContainerView& container);

// "ports": [{"port", "inbound", "outbound"}, ...], as a CONTAINER (and the tracker's
// --once snapshot, per namespace) carries them.
void write_ports(JsonWriter& json, std::span<const StreamPort> ports);

// The CONTAINER object: the only code that writes one. Allocates nothing beyond growing
// `json`'s string.
void write_container(JsonWriter& json, const StreamContainerView& container);

// One established inbound connection of a container, as the kernel's table shows it.
struct StreamPeer {
  std::uint16_t local_port = 0;
  std::string remote_address;  // "10.0.0.7", "::1", "::ffff:10.0.0.7"
  std::uint16_t remote_port = 0;
  std::uint64_t inode = 0;     // the socket's; the kernel numbers them in creation order

  bool operator==(const StreamPeer&) const = default;
};

// The answer to a PeersRequest.
struct PeersAnswer {
  std::string id;           // the container's full id, or the id asked about when unknown
  bool known = false;       // false: not a running container whose tables can be read
  std::string reason;       // why not known
  std::uint64_t total = 0;  // every matching connection; `peers` holds the oldest `limit`
  std::vector<StreamPeer> peers;  // by inode, oldest first

  bool operator==(const PeersAnswer&) const = default;
};

struct ServerMessage {
  enum class Type : std::uint8_t { kHello, kSnapshot, kUpdate, kHeartbeat, kError, kPeers };
  Type type = Type::kHeartbeat;
  std::uint64_t seq = 0;
  std::int64_t timestamp_ns = 0;
  // hello
  int protocol = 0;
  std::string source;
  std::int64_t heartbeat_ms = 0;
  std::int64_t max_client_line = 0;     // 0: not announced (an older server)
  std::int64_t max_filter_strings = 0;  // likewise
  std::vector<std::string> requests;    // the client requests it takes besides subscribe
  // snapshot, update
  bool containers_known = false;
  std::vector<StreamContainer> containers;
  std::vector<std::string> removed;
  // error
  std::string error_code;
  std::string error_message;
  // peers
  PeersAnswer peers;
};

// The server's messages, each one JSON object (no newline). A snapshot and an update
// are written in two halves around their containers, which the server keeps encoded
// per container (write_container) and adds as raw values.
void write_hello(JsonWriter& json, std::string_view source, std::int64_t heartbeat_ms);
void begin_snapshot(JsonWriter& json, std::uint64_t seq, std::int64_t timestamp_ns, std::string_view source,
                    bool containers_known);
void end_snapshot(JsonWriter& json);
void begin_update(JsonWriter& json, std::uint64_t seq, std::int64_t timestamp_ns, bool containers_known);
void end_update(JsonWriter& json, std::span<const std::string> removed);
void write_heartbeat(JsonWriter& json, std::uint64_t seq, std::int64_t timestamp_ns);
void write_error(JsonWriter& json, std::string_view code, std::string_view message);
void write_peers_answer(JsonWriter& json, std::uint64_t seq, std::int64_t timestamp_ns, const PeersAnswer& answer);

// Parses one server line. Errors say which field was wrong.
class ServerMessageParser {
 public:
  ServerMessageParser();
  ~ServerMessageParser();
  Result<ServerMessage> parse(std::string_view line);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace skopos::tracker
