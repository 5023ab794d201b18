#include "tracker/stream_server.h"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <deque>

#include "skopos/handler_memory.h"
#include "skopos/json_writer.h"
#include "skopos/log.h"
#include "skopos/unique_fd.h"
#include "tracker/stream_protocol.h"

namespace skopos::tracker {

namespace asio = boost::asio;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

class StreamServer::Client {
 public:
  explicit Client(asio::io_context& context) : socket(context), json(out) {}

  asio::local::stream_protocol::socket socket;
  std::uint64_t id = 0;
  ucred peer{};
  std::array<char, 4096> input{};
  std::string line;  // a partial line from the client
  bool subscribed = false;
  bool needs_snapshot = false;
  StreamFilter filter;
  std::vector<std::uint8_t> dirty;  // by slot
  std::vector<std::uint32_t> dirty_list;
  std::vector<std::uint8_t> sent;  // by slot: the client has been told about it
  std::vector<std::string> removed;
  // "peers" questions not answered yet, in the order asked; one per container: a
  // question about a container already waiting replaces it. Each is answered (the
  // tables read) only when its turn to be written comes.
  std::deque<PeersRequest> questions;
  std::string out;  // the message being written (reused)
  JsonWriter json;
  HandlerMemory write_memory;  // for the one write in flight
  bool writing = false;
  bool closing = false;  // an error is queued or sent; close after it
  std::string closing_reason;   // the error code still to send; empty once sent
  std::string closing_message;
  Clock::time_point accepted_at{};
  Clock::time_point write_started{};
  Clock::time_point last_sent{};
  std::uint64_t seq = 0;

  void grow(std::uint32_t slots) {
    if (dirty.size() < slots) {
      dirty.resize(slots, 0);
      sent.resize(slots, 0);
    }
  }
  void mark(std::uint32_t slot) {
    grow(slot + 1);
    if (dirty[slot] == 0) {
      dirty[slot] = 1;
      dirty_list.push_back(slot);
    }
  }
  std::string describe() const {
    return "client " + std::to_string(id) + " (uid " + std::to_string(peer.uid) + " gid " + std::to_string(peer.gid) +
           " pid " + std::to_string(peer.pid) + ")";
  }
};

namespace {

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool matches(const StreamFilter& filter, const StreamContainerView& view) {
  return filter.matches(view.id, view.name, view.mesos_task_id, view.marathon_app_id);
}

Result<gid_t> resolve_group(const std::string& group) {
  gid_t gid = 0;
  const auto parsed = std::from_chars(group.data(), group.data() + group.size(), gid);
  if (parsed.ec == std::errc{} && parsed.ptr == group.data() + group.size()) return gid;
  if (const struct group* g = ::getgrnam(group.c_str())) return g->gr_gid;
  return unexpected(Error::invalid("resolve group", group, "no such group"));
}

}  // namespace

StreamServer::StreamServer(asio::io_context& context, Tracker& tracker, StreamOptions options)
    : context_(context), tracker_(tracker), options_(std::move(options)), acceptor_(context), tick_timer_(context) {}

StreamServer::~StreamServer() { stop(); }

Result<void> StreamServer::start() {
  namespace fs = std::filesystem;
  const std::string& path = options_.path;
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return unexpected(Error::invalid("stream socket", path, "path longer than a Unix socket allows"));
  }
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (fs::exists(path, ec)) {
    // A socket that answers belongs to a running tracker: never take it over.
    asio::local::stream_protocol::socket probe(context_);
    error_code connect_error;
    probe.connect(asio::local::stream_protocol::endpoint(path), connect_error);
    if (!connect_error) {
      return unexpected(Error::invalid("stream socket", path, "another tracker is serving it"));
    }
    fs::remove(path, ec);
  }
  error_code error;
  acceptor_.open(asio::local::stream_protocol(), error);
  if (!error) acceptor_.bind(asio::local::stream_protocol::endpoint(path), error);
  if (!error) acceptor_.listen(128, error);
  if (error) return unexpected(Error::from_errno(error.value(), "listen", path));

  socket_gid_ = ::getegid();
  if (!options_.group.empty()) {
    auto gid = resolve_group(options_.group);
    if (!gid) return unexpected(std::move(gid).error());
    socket_gid_ = *gid;
  }
  if (::chown(path.c_str(), static_cast<uid_t>(-1), socket_gid_) != 0) {
    return unexpected(Error::from_errno(errno, "chown", path));
  }
  if (::chmod(path.c_str(), 0660) != 0) return unexpected(Error::from_errno(errno, "chmod", path));
  if (options_.allow_uids.empty()) options_.allow_uids = {0, ::geteuid()};
  if (options_.allow_gids.empty()) options_.allow_gids = {socket_gid_};

  running_ = true;
  accept();
  tick();
  log_info("stream listening on '" + path + "'");
  return {};
}

void StreamServer::stop() {
  if (!running_) return;
  running_ = false;
  error_code ignored;
  acceptor_.close(ignored);
  tick_timer_.cancel();
  for (auto& client : std::vector<std::shared_ptr<Client>>(clients_)) drop(client, "shutdown");
  ::unlink(options_.path.c_str());
}

bool StreamServer::allowed(uid_t uid, gid_t gid) const {
  return std::find(options_.allow_uids.begin(), options_.allow_uids.end(), uid) != options_.allow_uids.end() ||
         std::find(options_.allow_gids.begin(), options_.allow_gids.end(), gid) != options_.allow_gids.end();
}

void StreamServer::accept() {
  auto client = std::make_shared<Client>(context_);
  acceptor_.async_accept(client->socket, [this, client](const error_code& ec) {
    if (!running_) return;
    if (!ec) on_accept(client);
    accept();
  });
}

void StreamServer::on_accept(std::shared_ptr<Client> client) {
  client->id = next_client_id_++;
  client->accepted_at = Clock::now();
  client->last_sent = client->accepted_at;
  socklen_t length = sizeof client->peer;
  if (::getsockopt(client->socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &client->peer, &length) != 0) {
    client->peer = ucred{-1, static_cast<uid_t>(-1), static_cast<gid_t>(-1)};
  }
  // The kernel's share of a client's backlog: small, so a client that stops reading
  // is noticed (its write stays in flight) long before it holds much memory.
  const int send_buffer = 64 * 1024;
  ::setsockopt(client->socket.native_handle(), SOL_SOCKET, SO_SNDBUF, &send_buffer, sizeof send_buffer);
  ++stats_.accepted;
  clients_.push_back(client);
  if (!allowed(client->peer.uid, client->peer.gid)) {
    log_warning("stream refused " + client->describe() + ": not in the allowed uids or gids");
    return fail(client, "forbidden",
                "uid " + std::to_string(client->peer.uid) + " gid " + std::to_string(client->peer.gid) +
                    " may not read the tracker stream");
  }
  if (clients_.size() > options_.max_clients) {
    log_warning("stream refused " + client->describe() + ": already " + std::to_string(options_.max_clients) +
                " clients");
    return fail(client, "too_many_clients",
                "the tracker serves at most " + std::to_string(options_.max_clients) + " clients");
  }
  client->out.clear();
  client->json.reset();
  write_hello(client->json, source_name(tracker_.source().kind()), static_cast<std::int64_t>(options_.heartbeat.count()));
  client->out.push_back('\n');
  client->writing = true;
  client->write_started = Clock::now();
  asio::async_write(client->socket, asio::buffer(client->out), client->write_memory.wrap([this, client](const error_code& ec, std::size_t) {
    client->writing = false;
    if (ec) return drop(client, "client_closed");
    flush(client);
  }));
  read(client);
}

void StreamServer::read(const std::shared_ptr<Client>& client) {
  client->socket.async_read_some(asio::buffer(client->input), [this, client](const error_code& ec, std::size_t n) {
    if (ec) {
      if (!client->closing) drop(client, "client_closed");
      return;
    }
    if (client->closing) return;  // ignore anything after an error
    std::string_view data(client->input.data(), n);
    while (!data.empty() && !client->closing) {
      const auto newline = data.find('\n');
      const std::string_view piece = data.substr(0, newline);
      if (client->line.size() + piece.size() >= kMaxClientLine) {
        return fail(client, "message_too_large",
                    "a client message may be at most " + std::to_string(kMaxClientLine - 1) + " bytes");
      }
      client->line.append(piece);
      if (newline == std::string_view::npos) break;
      data.remove_prefix(newline + 1);
      on_line(client, client->line);
      client->line.clear();
    }
    if (!client->closing) read(client);
  });
}

void StreamServer::on_line(const std::shared_ptr<Client>& client, std::string_view line) {
  if (line.empty()) return;
  auto message = parser_.parse(line);
  if (!message) {
    log_notice("stream " + client->describe() + " sent a bad message: " + message.error().message);
    return fail(client, message.error().code, message.error().message);
  }
  if (message->type == ClientMessage::Type::kPeers) {
    if (!client->subscribed) return fail(client, "bad_message", "subscribe before asking for peers");
    auto& questions = client->questions;
    const auto same = std::find_if(questions.begin(), questions.end(),
                                   [&](const PeersRequest& q) { return q.id == message->peers.id; });
    if (same != questions.end()) {
      *same = std::move(message->peers);
    } else if (questions.size() >= kMaxFilterStrings) {
      return fail(client, "bad_message",
                  "more than " + std::to_string(kMaxFilterStrings) + " peers questions waiting for their answers");
    } else {
      questions.push_back(std::move(message->peers));
    }
    flush(client);
    return;
  }
  client->filter = std::move(message->subscribe.filter);
  client->subscribed = true;
  client->needs_snapshot = true;
  flush(client);
}

void StreamServer::fail(const std::shared_ptr<Client>& client, std::string_view code, const std::string& message) {
  if (client->closing) return;
  client->closing = true;
  client->closing_reason = std::string(code);
  client->closing_message = message;
  // The error goes after any message in flight; flush() sends it and closes.
  flush(client);
}

void StreamServer::drop(const std::shared_ptr<Client>& client, const std::string& reason) {
  auto it = std::find(clients_.begin(), clients_.end(), client);
  if (it == clients_.end()) return;
  clients_.erase(it);
  ++stats_.disconnects[reason];
  error_code ignored;
  client->socket.shutdown(asio::socket_base::shutdown_both, ignored);
  client->socket.close(ignored);
}

const std::string& StreamServer::slot_json(std::uint32_t slot) {
  if (slot >= slot_json_.size()) {
    slot_json_.resize(tracker_.slot_count());
    slot_json_valid_.resize(tracker_.slot_count(), 0);
  }
  if (slot_json_valid_[slot] == 0) {
    encode_buffer_.clear();
    encoder_.reset();
    write_container(encoder_, tracker_.view(slot));
    slot_json_[slot].assign(encode_buffer_);  // reuses the slot's capacity
    slot_json_valid_[slot] = 1;
  }
  return slot_json_[slot];
}

void StreamServer::write_snapshot(Client& client) {
  const std::uint32_t slots = tracker_.slot_count();
  client.grow(slots);
  std::fill(client.sent.begin(), client.sent.end(), 0);
  for (std::uint32_t slot : client.dirty_list) client.dirty[slot] = 0;
  client.dirty_list.clear();
  client.removed.clear();
  JsonWriter& json = client.json;
  begin_snapshot(json, ++client.seq, now_ns(), source_name(tracker_.source().kind()), tracker_.containers_known());
  for (std::uint32_t slot = 0; slot < slots; ++slot) {
    if (!tracker_.slot_live(slot)) continue;
    const StreamContainerView view = tracker_.view(slot);
    if (!matches(client.filter, view)) continue;
    json.raw_value(slot_json(slot));
    client.sent[slot] = 1;
    ++stats_.container_updates;
  }
  end_snapshot(json);
}

void StreamServer::write_update(Client& client) {
  JsonWriter& json = client.json;
  begin_update(json, ++client.seq, now_ns(), tracker_.containers_known());
  for (std::uint32_t slot : client.dirty_list) {
    client.dirty[slot] = 0;
    if (!tracker_.slot_live(slot)) continue;
    json.raw_value(slot_json(slot));
    client.sent[slot] = 1;
    ++stats_.container_updates;
  }
  client.dirty_list.clear();
  end_update(json, client.removed);
  client.removed.clear();
}

void StreamServer::flush(const std::shared_ptr<Client>& client) {
  if (client->writing) return;
  client->out.clear();
  client->json.reset();
  if (client->closing) {
    if (client->closing_reason.empty()) return;  // the error was sent already
    const std::string code = client->closing_reason;
    client->closing_reason.clear();
    write_error(client->json, code, client->closing_message);
    client->out.push_back('\n');
    client->writing = true;
    client->write_started = Clock::now();
    asio::async_write(client->socket, asio::buffer(client->out), client->write_memory.wrap([this, client, code](const error_code&, std::size_t) {
      client->writing = false;
      drop(client, code);
    }));
    return;
  }
  if (!client->subscribed) return;
  if (client->needs_snapshot) {
    client->needs_snapshot = false;
    write_snapshot(*client);
  } else if (!client->questions.empty()) {
    ++stats_.peers_requests;
    write_peers_answer(client->json, ++client->seq, now_ns(), tracker_.inbound_peers(client->questions.front()));
    client->questions.pop_front();
  } else if (!client->dirty_list.empty() || !client->removed.empty()) {
    write_update(*client);
  } else {
    return;
  }
  client->out.push_back('\n');
  ++stats_.messages;
  client->writing = true;
  client->write_started = Clock::now();
  asio::async_write(client->socket, asio::buffer(client->out), client->write_memory.wrap([this, client](const error_code& ec, std::size_t) {
    client->writing = false;
    client->last_sent = Clock::now();
    if (ec) return drop(client, "client_closed");
    flush(client);
  }));
}

void StreamServer::publish() {
  tracker_.take_changes(changed_, removed_);
  if (changed_.empty() && removed_.empty()) return;
  // Changed containers are encoded again on first use.
  for (std::uint32_t slot : changed_) {
    if (slot < slot_json_valid_.size()) slot_json_valid_[slot] = 0;
  }
  for (const Tracker::Removed& gone : removed_) {
    if (gone.slot < slot_json_valid_.size()) slot_json_valid_[gone.slot] = 0;
  }
  for (const auto& client : clients_) {
    if (!client->subscribed || client->closing) continue;
    client->grow(tracker_.slot_count());
    // Removals first: a freed slot may already hold a new container.
    for (const Tracker::Removed& gone : removed_) {
      if (gone.slot < client->sent.size() && client->sent[gone.slot] != 0) {
        client->sent[gone.slot] = 0;
        client->removed.push_back(gone.id);
      }
    }
    for (std::uint32_t slot : changed_) {
      if (client->needs_snapshot) break;
      if (matches(client->filter, tracker_.view(slot))) {
        client->mark(slot);
      } else if (client->sent[slot] != 0) {
        // It no longer matches (it was renamed or restarted under another app).
        client->sent[slot] = 0;
        client->removed.emplace_back(tracker_.view(slot).id);
      }
    }
    flush(client);
  }
}

void StreamServer::tick() {
  // Heartbeats, stalled writers and silent clients, checked four times per heartbeat.
  tick_timer_.expires_after(options_.heartbeat / 4);
  tick_timer_.async_wait([this](const error_code& ec) {
    if (ec || !running_) return;
    const auto now = Clock::now();
    for (auto& client : std::vector<std::shared_ptr<Client>>(clients_)) {
      if (client->writing && now - client->write_started > options_.stall_timeout) {
        log_warning("stream dropped " + client->describe() + ": a message was in flight for over " +
                    std::to_string(options_.stall_timeout.count()) + " ms");
        drop(client, "too_slow");
        continue;
      }
      if (client->closing) continue;
      if (!client->subscribed) {
        if (now - client->accepted_at > options_.subscribe_timeout) {
          log_notice("stream dropped " + client->describe() + ": no subscribe");
          fail(client, "bad_message", "no subscribe message");
        }
        continue;
      }
      if (!client->writing && now - client->last_sent >= options_.heartbeat) {
        client->out.clear();
        client->json.reset();
        write_heartbeat(client->json, ++client->seq, now_ns());
        client->out.push_back('\n');
        client->writing = true;
        client->write_started = now;
        asio::async_write(client->socket, asio::buffer(client->out), client->write_memory.wrap([this, client](const error_code& ec2, std::size_t) {
          client->writing = false;
          client->last_sent = Clock::now();
          if (ec2) return drop(client, "client_closed");
          flush(client);
        }));
      }
    }
    tick();
  });
}

StreamStats StreamServer::stats() const {
  StreamStats stats = stats_;
  stats.clients = clients_.size();
  return stats;
}

}  // namespace skopos::tracker
