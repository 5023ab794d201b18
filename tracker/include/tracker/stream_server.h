// StreamServer: publishes the Tracker's counts to subscribers on a Unix socket
// (tracker/PROTOCOL.md), on the tracker's Asio event loop.
//
// Each client has at most one message in flight; changes meanwhile are coalesced into
// the next update (the latest state of every changed container), so a slow client costs
// one message of memory and never delays the tracker or another client. A client whose
// message stays in flight past the stall timeout is disconnected ("too_slow"). Peer
// credentials are checked on accept; hostile or malformed input gets an error message
// and a disconnect. In steady state publishing allocates nothing: per-client buffers,
// dirty sets and JSON writers are reused.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "skopos/json_writer.h"
#include "skopos/result.h"
#include "tracker/stream_protocol.h"
#include "tracker/tracker.h"

namespace skopos::tracker {

struct StreamOptions {
  std::string path = "/run/skopos/tracker.sock";
  std::string group;               // socket group (name or number); empty: ours
  std::vector<uid_t> allow_uids;   // empty: {0, our euid}
  std::vector<gid_t> allow_gids;   // empty: {the socket's group}
  std::size_t max_clients = 256;
  std::chrono::milliseconds heartbeat{1000};
  std::chrono::milliseconds stall_timeout{10000};     // a message in flight this long: too_slow
  std::chrono::milliseconds subscribe_timeout{10000};  // no subscribe this long after accept
};

struct StreamStats {
  std::uint64_t clients = 0;  // connected now
  std::uint64_t accepted = 0;
  std::uint64_t messages = 0;
  std::uint64_t container_updates = 0;  // containers written in snapshots and updates
  std::uint64_t peers_requests = 0;     // "peers" questions answered
  std::map<std::string, std::uint64_t> disconnects;  // by reason
};

class StreamServer {
 public:
  StreamServer(boost::asio::io_context& context, Tracker& tracker, StreamOptions options);
  ~StreamServer();
  StreamServer(const StreamServer&) = delete;
  StreamServer& operator=(const StreamServer&) = delete;

  // Creates the socket (replacing a stale one; refusing if a live tracker answers on
  // it), sets its mode and group, and starts accepting.
  Result<void> start();
  // Takes the Tracker's changes and sends them to every client that wants them. Call
  // after anything that may have changed counts or containers.
  void publish();
  // Closes every client and the socket, and removes the socket file.
  void stop();

  StreamStats stats() const;

 private:
  class Client;
  void accept();
  void on_accept(std::shared_ptr<Client> client);
  void tick();
  void flush(const std::shared_ptr<Client>& client);
  void read(const std::shared_ptr<Client>& client);
  void on_line(const std::shared_ptr<Client>& client, std::string_view line);
  void fail(const std::shared_ptr<Client>& client, std::string_view code, const std::string& message);
  void drop(const std::shared_ptr<Client>& client, const std::string& reason);
  bool allowed(uid_t uid, gid_t gid) const;
  void write_snapshot(Client& client);
  void write_update(Client& client);
  // The container's JSON, encoded once per change and shared by every client.
  const std::string& slot_json(std::uint32_t slot);

  boost::asio::io_context& context_;
  Tracker& tracker_;
  StreamOptions options_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  boost::asio::steady_timer tick_timer_;
  std::vector<std::shared_ptr<Client>> clients_;
  std::vector<std::uint32_t> changed_;
  std::vector<Tracker::Removed> removed_;
  ClientMessageParser parser_;  // what clients send, one line at a time
  std::vector<std::string> slot_json_;
  std::vector<std::uint8_t> slot_json_valid_;
  std::string encode_buffer_;
  JsonWriter encoder_{encode_buffer_};
  gid_t socket_gid_ = 0;
  bool running_ = false;
  std::uint64_t next_client_id_ = 1;
  StreamStats stats_;
};

}  // namespace skopos::tracker
