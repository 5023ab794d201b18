#include "tracker/stream_protocol.h"

#include <simdjson.h>

namespace skopos::tracker {

namespace dom = simdjson::dom;

namespace {

bool id_matches(std::string_view wanted, std::string_view id) {
  if (wanted == id) return true;
  return wanted.size() >= 12 && id.starts_with(wanted);
}

bool any_equal(const std::vector<std::string>& list, std::string_view value) {
  for (const std::string& entry : list) {
    if (!value.empty() && entry == value) return true;
  }
  return false;
}

// Reads an optional field: absent, null or of another type leaves `out` as it was.
template <class T>
void read_optional(simdjson::simdjson_result<dom::element> field, T& out) {
  T value{};
  if (field.get(value) == simdjson::SUCCESS) out = value;
}

ProtocolError bad(std::string message) { return ProtocolError{"bad_message", std::move(message)}; }

}  // namespace

bool StreamFilter::matches(std::string_view id, std::string_view name, std::string_view mesos_task_id,
                           std::string_view marathon_app_id) const {
  if (empty()) return true;
  for (const std::string& wanted : ids) {
    if (id_matches(wanted, id)) return true;
  }
  return any_equal(names, name) || any_equal(mesos_task_ids, mesos_task_id) ||
         any_equal(marathon_app_ids, marathon_app_id);
}

struct ClientMessageParser::Impl {
  dom::parser parser{kMaxClientLine};
  simdjson::padded_string buffer;
};

ClientMessageParser::ClientMessageParser() : impl_(std::make_unique<Impl>()) {}
ClientMessageParser::~ClientMessageParser() = default;

namespace {

Result<PeersRequest, ProtocolError> parse_peers_request(dom::object object) {
  PeersRequest request;
  for (auto [key, value] : object) {
    if (key != "type" && key != "id" && key != "ports" && key != "limit") {
      return unexpected(bad("unknown field '" + std::string(key.substr(0, 64)) + "' in peers"));
    }
  }
  std::string_view id;
  if (object["id"].get(id) != simdjson::SUCCESS || id.empty() || id.size() > 128) {
    return unexpected(bad("peers: \"id\" must be a container id (1 to 128 characters)"));
  }
  request.id = std::string(id);
  dom::element ports_element;
  if (object["ports"].get(ports_element) == simdjson::SUCCESS && !ports_element.is_null()) {
    dom::array ports;
    if (ports_element.get(ports) != simdjson::SUCCESS) return unexpected(bad("peers: \"ports\" must be an array"));
    if (ports.size() > kMaxPeersPorts) {
      return unexpected(bad("peers: \"ports\" has more than " + std::to_string(kMaxPeersPorts) + " entries"));
    }
    for (dom::element entry : ports) {
      std::uint64_t port = 0;
      if (entry.get(port) != simdjson::SUCCESS || port == 0 || port > 65535) {
        return unexpected(bad("peers: \"ports\" must hold port numbers (1 to 65535)"));
      }
      request.ports.push_back(static_cast<std::uint16_t>(port));
    }
  }
  dom::element limit_element;
  if (object["limit"].get(limit_element) == simdjson::SUCCESS) {
    std::uint64_t limit = 0;
    if (limit_element.get(limit) != simdjson::SUCCESS || limit == 0 || limit > kMaxPeersLimit) {
      return unexpected(bad("peers: \"limit\" must be 1 to " + std::to_string(kMaxPeersLimit)));
    }
    request.limit = static_cast<std::uint32_t>(limit);
  }
  return request;
}

}  // namespace

std::string encode_peers_request(const PeersRequest& request) {
  std::string line;
  JsonWriter json(line);
  json.begin_object().key("type").value("peers").key("id").value(request.id).key("ports").begin_array();
  for (const std::uint16_t port : request.ports) json.value(static_cast<unsigned>(port));
  json.end_array().key("limit").value(request.limit).end_object();
  line += '\n';
  return line;
}

std::string encode_subscribe(const StreamFilter& filter) {
  std::string line;
  JsonWriter json(line);
  json.begin_object().key("type").value("subscribe").key("protocol").value(kStreamProtocol).key("filter").begin_object();
  for (const auto& [key, list] : {std::pair{"ids", &filter.ids}, std::pair{"names", &filter.names},
                                  std::pair{"mesos_task_ids", &filter.mesos_task_ids},
                                  std::pair{"marathon_app_ids", &filter.marathon_app_ids}}) {
    if (list->empty()) continue;
    json.key(key).begin_array();
    for (const std::string& item : *list) json.value(item);
    json.end_array();
  }
  json.end_object().end_object();
  line += '\n';
  return line;
}

StreamContainerView view_of(const StreamContainer& c) {
  StreamContainerView view;
  view.id = c.id;
  view.name = c.name;
  view.network_mode = c.network_mode;
  view.mesos_task_id = c.mesos_task_id;
  view.marathon_app_id = c.marathon_app_id;
  view.netns = c.netns;
  view.known = c.known;
  view.inbound = c.inbound;
  view.outbound = c.outbound;
  view.conntrack_inbound = c.conntrack_inbound;
  view.ports = c.ports;
  view.declared_ports = c.declared_ports;
  return view;
}

StreamContainer copy_of(const StreamContainerView& v) {
  StreamContainer c;
  c.id = std::string(v.id);
  c.name = std::string(v.name);
  c.network_mode = std::string(v.network_mode);
  c.mesos_task_id = std::string(v.mesos_task_id);
  c.marathon_app_id = std::string(v.marathon_app_id);
  c.netns = v.netns;
  c.known = v.known;
  c.inbound = v.known ? v.inbound : -1;
  c.outbound = v.known ? v.outbound : -1;
  c.conntrack_inbound = v.conntrack_inbound;
  c.ports.assign(v.ports.begin(), v.ports.end());
  c.declared_ports.assign(v.declared_ports.begin(), v.declared_ports.end());
  return c;
}

namespace {

void nullable(JsonWriter& json, std::string_view key, std::int64_t value) {
  json.key(key);
  if (value >= 0) {
    json.value(value);
  } else {
    json.null();
  }
}

}  // namespace

void write_ports(JsonWriter& json, std::span<const StreamPort> ports) {
  json.key("ports").begin_array();
  for (const StreamPort& port : ports) {
    json.begin_object()
        .key("port")
        .value(unsigned{port.port})
        .key("inbound")
        .value(port.inbound)
        .key("outbound")
        .value(port.outbound)
        .end_object();
  }
  json.end_array();
}

void write_container(JsonWriter& json, const StreamContainerView& c) {
  json.begin_object().key("id").value(c.id).key("name").value(c.name).key("network_mode").value(c.network_mode);
  json.key("mesos_task_id").value(c.mesos_task_id).key("marathon_app_id").value(c.marathon_app_id);
  json.key("netns").value(c.netns).key("known").value(c.known);
  // Unknown is not zero: a reader must never see a 0 it could act on.
  nullable(json, "inbound", c.known ? c.inbound : -1);
  nullable(json, "outbound", c.known ? c.outbound : -1);
  nullable(json, "conntrack_inbound", c.conntrack_inbound);
  write_ports(json, c.ports);
  json.key("declared_ports").begin_array();
  for (const ContainerPort& port : c.declared_ports) {
    json.begin_object()
        .key("container_port")
        .value(unsigned{port.container_port})
        .key("protocol")
        .value(port.protocol)
        .key("host_ip")
        .value(port.host_ip)
        .key("host_port")
        .value(unsigned{port.host_port})
        .end_object();
  }
  json.end_array().end_object();
}

void write_hello(JsonWriter& json, std::string_view source, std::int64_t heartbeat_ms) {
  json.begin_object()
      .key("type")
      .value("hello")
      .key("protocol")
      .value(kStreamProtocol)
      .key("source")
      .value(source)
      .key("heartbeat_ms")
      .value(heartbeat_ms)
      .key("max_client_line")
      .value(static_cast<std::int64_t>(kMaxClientLine))
      .key("max_filter_strings")
      .value(static_cast<std::int64_t>(kMaxFilterStrings))
      .key("requests")
      .begin_array()
      .value("peers")
      .end_array()
      .end_object();
}

void begin_snapshot(JsonWriter& json, std::uint64_t seq, std::int64_t timestamp_ns, std::string_view source,
                    bool containers_known) {
  json.begin_object()
      .key("type")
      .value("snapshot")
      .key("seq")
      .value(seq)
      .key("timestamp_ns")
      .value(timestamp_ns)
      .key("source")
      .value(source)
      .key("containers_known")
      .value(containers_known);
  json.key("containers").begin_array();
}

void end_snapshot(JsonWriter& json) { json.end_array().end_object(); }

void begin_update(JsonWriter& json, std::uint64_t seq, std::int64_t timestamp_ns, bool containers_known) {
  json.begin_object()
      .key("type")
      .value("update")
      .key("seq")
      .value(seq)
      .key("timestamp_ns")
      .value(timestamp_ns)
      .key("containers_known")
      .value(containers_known);
  json.key("containers").begin_array();
}

void end_update(JsonWriter& json, std::span<const std::string> removed) {
  json.end_array().key("removed").begin_array();
  for (const std::string& id : removed) json.value(id);
  json.end_array().end_object();
}

void write_heartbeat(JsonWriter& json, std::uint64_t seq, std::int64_t timestamp_ns) {
  json.begin_object().key("type").value("heartbeat").key("seq").value(seq).key("timestamp_ns").value(timestamp_ns);
  json.end_object();
}

void write_error(JsonWriter& json, std::string_view code, std::string_view message) {
  json.begin_object().key("type").value("error").key("code").value(code).key("message").value(message).end_object();
}

void write_peers_answer(JsonWriter& json, std::uint64_t seq, std::int64_t timestamp_ns, const PeersAnswer& answer) {
  json.begin_object().key("type").value("peers").key("seq").value(seq).key("timestamp_ns").value(timestamp_ns);
  json.key("id").value(answer.id).key("known").value(answer.known);
  if (!answer.known) json.key("reason").value(answer.reason);
  json.key("total").value(answer.total).key("peers").begin_array();
  for (const StreamPeer& peer : answer.peers) {
    json.begin_object()
        .key("local_port")
        .value(static_cast<unsigned>(peer.local_port))
        .key("remote_address")
        .value(peer.remote_address)
        .key("remote_port")
        .value(static_cast<unsigned>(peer.remote_port))
        .key("inode")
        .value(peer.inode)
        .end_object();
  }
  json.end_array().end_object();
}

Result<ClientMessage, ProtocolError> ClientMessageParser::parse(std::string_view line) {
  if (line.size() >= kMaxClientLine) {
    return unexpected(ProtocolError{"message_too_large", "a client message may be at most " +
                                                             std::to_string(kMaxClientLine - 1) + " bytes"});
  }
  dom::element root;
  // parse() copies into its own padded buffer when the input has no padding.
  if (auto error = impl_->parser.parse(line.data(), line.size(), true).get(root); error != simdjson::SUCCESS) {
    return unexpected(bad(std::string("not JSON: ") + simdjson::error_message(error)));
  }
  dom::object object;
  if (root.get(object) != simdjson::SUCCESS) return unexpected(bad("a message must be a JSON object"));
  std::string_view type;
  if (object["type"].get(type) != simdjson::SUCCESS) return unexpected(bad("\"type\" must be a string"));
  if (type == "peers") {
    auto request = parse_peers_request(object);
    if (!request) return unexpected(std::move(request).error());
    ClientMessage out;
    out.type = ClientMessage::Type::kPeers;
    out.peers = std::move(*request);
    return out;
  }
  if (type != "subscribe") {
    return unexpected(bad("unknown message type '" + std::string(type.substr(0, 64)) +
                          "'; the stream accepts only \"subscribe\" and \"peers\""));
  }
  ClientMessage out;
  out.type = ClientMessage::Type::kSubscribe;
  SubscribeMessage& message = out.subscribe;
  std::int64_t protocol = 0;
  if (object["protocol"].get(protocol) != simdjson::SUCCESS) return unexpected(bad("\"protocol\" must be an integer"));
  if (protocol != kStreamProtocol) {
    return unexpected(ProtocolError{"protocol_version", "protocol " + std::to_string(protocol) +
                                                            " is not supported; this tracker speaks " +
                                                            std::to_string(kStreamProtocol)});
  }
  message.protocol = static_cast<int>(protocol);
  for (auto [key, value] : object) {
    if (key != "type" && key != "protocol" && key != "filter") {
      return unexpected(bad("unknown field '" + std::string(key.substr(0, 64)) + "' in subscribe"));
    }
  }
  dom::element filter_element;
  if (object["filter"].get(filter_element) == simdjson::SUCCESS && !filter_element.is_null()) {
    dom::object filter;
    if (filter_element.get(filter) != simdjson::SUCCESS) return unexpected(bad("\"filter\" must be an object"));
    for (auto [key, value] : filter) {
      std::vector<std::string>* target = nullptr;
      if (key == "ids") target = &message.filter.ids;
      else if (key == "names") target = &message.filter.names;
      else if (key == "mesos_task_ids") target = &message.filter.mesos_task_ids;
      else if (key == "marathon_app_ids") target = &message.filter.marathon_app_ids;
      else return unexpected(bad("unknown filter '" + std::string(key.substr(0, 64)) + "'"));
      dom::array list;
      if (value.get(list) != simdjson::SUCCESS) return unexpected(bad("filter." + std::string(key) + " must be an array"));
      // The total, not per occurrence: a key may be repeated in hostile JSON.
      if (target->size() + list.size() > kMaxFilterStrings) {
        return unexpected(bad("filter." + std::string(key) + " has more than " + std::to_string(kMaxFilterStrings) +
                              " entries"));
      }
      for (dom::element entry : list) {
        std::string_view text;
        if (entry.get(text) != simdjson::SUCCESS) {
          return unexpected(bad("filter." + std::string(key) + " must hold strings"));
        }
        target->emplace_back(text);
      }
    }
  }
  return out;
}

struct ServerMessageParser::Impl {
  dom::parser parser;
};

ServerMessageParser::ServerMessageParser() : impl_(std::make_unique<Impl>()) {}
ServerMessageParser::~ServerMessageParser() = default;

namespace {

Error server_error(std::string_view field, std::string_view problem) {
  return Error::invalid("parse tracker message", std::string(field), std::string(problem));
}

std::int64_t nullable_int(dom::object object, std::string_view key) {
  std::int64_t value = -1;
  if (object[key].get(value) != simdjson::SUCCESS) return -1;
  return value;
}

Result<StreamContainer> parse_container(dom::element element) {
  dom::object object;
  if (element.get(object) != simdjson::SUCCESS) return unexpected(server_error("containers[]", "not an object"));
  StreamContainer c;
  std::string_view text;
  if (object["id"].get(text) != simdjson::SUCCESS) return unexpected(server_error("containers[].id", "missing"));
  c.id = std::string(text);
  for (auto [key, target] : {std::pair{"name", &c.name}, std::pair{"network_mode", &c.network_mode},
                             std::pair{"mesos_task_id", &c.mesos_task_id},
                             std::pair{"marathon_app_id", &c.marathon_app_id}}) {
    if (object[key].get(text) == simdjson::SUCCESS) *target = std::string(text);
  }
  read_optional(object["netns"], c.netns);
  if (object["known"].get(c.known) != simdjson::SUCCESS) return unexpected(server_error("containers[].known", "missing"));
  c.inbound = nullable_int(object, "inbound");
  c.outbound = nullable_int(object, "outbound");
  c.conntrack_inbound = nullable_int(object, "conntrack_inbound");
  dom::array ports;
  if (object["ports"].get(ports) == simdjson::SUCCESS) {
    for (dom::element p : ports) {
      StreamPort port;
      std::uint64_t number = 0, in = 0, out = 0;
      if (p["port"].get(number) != simdjson::SUCCESS || number > 65535) {
        return unexpected(server_error("containers[].ports[].port", "not a port"));
      }
      read_optional(p["inbound"], in);
      read_optional(p["outbound"], out);
      port.port = static_cast<std::uint16_t>(number);
      port.inbound = static_cast<std::uint32_t>(in);
      port.outbound = static_cast<std::uint32_t>(out);
      c.ports.push_back(port);
    }
  }
  dom::array declared;
  if (object["declared_ports"].get(declared) == simdjson::SUCCESS) {
    for (dom::element p : declared) {
      ContainerPort port;
      std::uint64_t container_port = 0, host_port = 0;
      if (p["container_port"].get(container_port) != simdjson::SUCCESS || container_port > 65535) {
        return unexpected(server_error("containers[].declared_ports[].container_port", "not a port"));
      }
      read_optional(p["host_port"], host_port);
      if (host_port > 65535) return unexpected(server_error("containers[].declared_ports[].host_port", "not a port"));
      if (p["protocol"].get(text) == simdjson::SUCCESS) port.protocol = std::string(text);
      if (p["host_ip"].get(text) == simdjson::SUCCESS) port.host_ip = std::string(text);
      port.container_port = static_cast<std::uint16_t>(container_port);
      port.host_port = static_cast<std::uint16_t>(host_port);
      c.declared_ports.push_back(std::move(port));
    }
  }
  return c;
}

Result<PeersAnswer> parse_peers_answer(dom::object object) {
  PeersAnswer answer;
  std::string_view text;
  if (object["id"].get(text) != simdjson::SUCCESS) return unexpected(server_error("peers.id", "missing"));
  answer.id = std::string(text);
  if (object["known"].get(answer.known) != simdjson::SUCCESS) return unexpected(server_error("peers.known", "missing"));
  if (object["reason"].get(text) == simdjson::SUCCESS) answer.reason = std::string(text);
  read_optional(object["total"], answer.total);
  dom::array peers;
  if (object["peers"].get(peers) == simdjson::SUCCESS) {
    for (dom::element element : peers) {
      StreamPeer peer;
      std::uint64_t local = 0, remote = 0;
      if (element["local_port"].get(local) != simdjson::SUCCESS || local > 65535 ||
          element["remote_port"].get(remote) != simdjson::SUCCESS || remote > 65535) {
        return unexpected(server_error("peers.peers[]", "ports missing or out of range"));
      }
      if (element["remote_address"].get(text) != simdjson::SUCCESS) {
        return unexpected(server_error("peers.peers[].remote_address", "missing"));
      }
      peer.local_port = static_cast<std::uint16_t>(local);
      peer.remote_port = static_cast<std::uint16_t>(remote);
      peer.remote_address = std::string(text);
      read_optional(element["inode"], peer.inode);
      answer.peers.push_back(std::move(peer));
    }
  }
  return answer;
}

}  // namespace

Result<ServerMessage> ServerMessageParser::parse(std::string_view line) {
  dom::element root;
  if (auto error = impl_->parser.parse(line.data(), line.size(), true).get(root); error != simdjson::SUCCESS) {
    return unexpected(server_error("(line)", simdjson::error_message(error)));
  }
  dom::object object;
  if (root.get(object) != simdjson::SUCCESS) return unexpected(server_error("(line)", "not an object"));
  std::string_view type;
  if (object["type"].get(type) != simdjson::SUCCESS) return unexpected(server_error("type", "missing"));
  ServerMessage message;
  if (type == "hello") message.type = ServerMessage::Type::kHello;
  else if (type == "snapshot") message.type = ServerMessage::Type::kSnapshot;
  else if (type == "update") message.type = ServerMessage::Type::kUpdate;
  else if (type == "heartbeat") message.type = ServerMessage::Type::kHeartbeat;
  else if (type == "error") message.type = ServerMessage::Type::kError;
  else if (type == "peers") message.type = ServerMessage::Type::kPeers;
  else return unexpected(server_error("type", "unknown type '" + std::string(type) + "'"));
  read_optional(object["seq"], message.seq);
  read_optional(object["timestamp_ns"], message.timestamp_ns);
  std::int64_t protocol = 0;
  if (object["protocol"].get(protocol) == simdjson::SUCCESS) message.protocol = static_cast<int>(protocol);
  std::string_view text;
  if (object["source"].get(text) == simdjson::SUCCESS) message.source = std::string(text);
  read_optional(object["heartbeat_ms"], message.heartbeat_ms);
  read_optional(object["max_client_line"], message.max_client_line);
  read_optional(object["max_filter_strings"], message.max_filter_strings);
  read_optional(object["containers_known"], message.containers_known);
  dom::array requests;
  if (object["requests"].get(requests) == simdjson::SUCCESS) {
    for (dom::element element : requests) {
      if (element.get(text) == simdjson::SUCCESS) message.requests.emplace_back(text);
    }
  }
  if (message.type == ServerMessage::Type::kPeers) {
    auto peers = parse_peers_answer(object);
    if (!peers) return unexpected(std::move(peers).error());
    message.peers = std::move(*peers);
  }
  if (object["code"].get(text) == simdjson::SUCCESS) message.error_code = std::string(text);
  if (object["message"].get(text) == simdjson::SUCCESS) message.error_message = std::string(text);
  dom::array containers;
  if (object["containers"].get(containers) == simdjson::SUCCESS) {
    for (dom::element element : containers) {
      auto container = parse_container(element);
      if (!container) return unexpected(std::move(container).error());
      message.containers.push_back(std::move(*container));
    }
  }
  dom::array removed;
  if (object["removed"].get(removed) == simdjson::SUCCESS) {
    for (dom::element element : removed) {
      if (element.get(text) == simdjson::SUCCESS) message.removed.emplace_back(text);
    }
  }
  return message;
}

}  // namespace skopos::tracker
