#include "skopos/docker_api.h"

#include <simdjson.h>

#include <algorithm>
#include <charconv>

namespace skopos {

namespace dom = simdjson::dom;

std::string_view network_mode_name(NetworkMode mode) {
  switch (mode) {
    case NetworkMode::kBridge: return "bridge";
    case NetworkMode::kHost: return "host";
    case NetworkMode::kNone: return "none";
    case NetworkMode::kContainer: return "container";
  }
  return "unknown";
}

namespace {

Error bad(std::string_view document, std::string_view field, std::string_view problem) {
  return Error::invalid("parse docker " + std::string(document), std::string(field), std::string(problem));
}

// A field that must be a string when present; absent or null gives "".
Result<std::string> optional_string(dom::object object, std::string_view key, std::string_view document,
                                    std::string_view field) {
  dom::element value;
  if (object[key].get(value) != simdjson::SUCCESS || value.is_null()) return std::string();
  std::string_view text;
  if (value.get(text) != simdjson::SUCCESS) return unexpected(bad(document, field, "expected a string"));
  return std::string(text);
}

bool parse_port_number(std::string_view text, std::uint16_t& port) {
  const auto parsed = std::from_chars(text.data(), text.data() + text.size(), port);
  return parsed.ec == std::errc{} && parsed.ptr == text.data() + text.size() && !text.empty();
}

// "8080/tcp" -> 8080, "tcp".
bool parse_port_key(std::string_view key, std::uint16_t& port, std::string& protocol) {
  const auto slash = key.find('/');
  protocol = slash == std::string_view::npos ? "tcp" : std::string(key.substr(slash + 1));
  return parse_port_number(key.substr(0, slash), port);
}

Result<dom::element> parse_document(dom::parser& parser, const simdjson::padded_string& text,
                                    std::string_view document) {
  dom::element root;
  if (auto error = parser.parse(text).get(root); error != simdjson::SUCCESS) {
    return unexpected(bad(document, "(document)", simdjson::error_message(error)));
  }
  return root;
}

// KEY=VALUE entries of Config.Env.
std::string_view env_value(dom::array env, std::string_view name) {
  for (dom::element entry : env) {
    std::string_view text;
    if (entry.get(text) != simdjson::SUCCESS) continue;
    if (text.size() > name.size() && text.starts_with(name) && text[name.size()] == '=') {
      return text.substr(name.size() + 1);
    }
  }
  return {};
}

NetworkMode classify_network_mode(std::string_view text) {
  if (text == "host") return NetworkMode::kHost;
  if (text == "none") return NetworkMode::kNone;
  if (text.starts_with("container:")) return NetworkMode::kContainer;
  return NetworkMode::kBridge;
}

Result<void> read_ports(dom::element container, ContainerInfo& info) {
  // NetworkSettings.Ports: {"8080/tcp": [{"HostIp","HostPort"}] | null}. Exposed but
  // unpublished ports map to null.
  dom::object ports;
  if (container["NetworkSettings"]["Ports"].get(ports) != simdjson::SUCCESS) return {};
  for (auto [key, bindings] : ports) {
    ContainerPort base;
    if (!parse_port_key(key, base.container_port, base.protocol)) {
      return unexpected(bad("inspect", "NetworkSettings.Ports." + std::string(key), "expected PORT/PROTOCOL"));
    }
    dom::array list;
    if (bindings.is_null() || bindings.get(list) != simdjson::SUCCESS || list.size() == 0) {
      info.ports.push_back(base);
      continue;
    }
    for (dom::element binding : list) {
      ContainerPort published = base;
      std::string_view host_ip;
      std::string_view host_port;
      if (binding["HostIp"].get(host_ip) == simdjson::SUCCESS) published.host_ip = std::string(host_ip);
      if (binding["HostPort"].get(host_port) != simdjson::SUCCESS ||
          (!host_port.empty() && !parse_port_number(host_port, published.host_port))) {
        return unexpected(bad("inspect", "NetworkSettings.Ports." + std::string(key) + ".HostPort",
                              "expected a port number as a string"));
      }
      info.ports.push_back(std::move(published));
    }
  }
  std::sort(info.ports.begin(), info.ports.end(), [](const ContainerPort& a, const ContainerPort& b) {
    return std::tie(a.container_port, a.protocol, a.host_port, a.host_ip) <
           std::tie(b.container_port, b.protocol, b.host_port, b.host_ip);
  });
  return {};
}

void read_addresses(dom::element container, ContainerInfo& info) {
  dom::object networks;
  if (container["NetworkSettings"]["Networks"].get(networks) != simdjson::SUCCESS) return;
  for (auto [name, network] : networks) {
    for (const char* field : {"IPAddress", "GlobalIPv6Address"}) {
      std::string_view address;
      if (network[field].get(address) == simdjson::SUCCESS && !address.empty()) {
        info.addresses.emplace_back(address);
      }
    }
  }
  std::sort(info.addresses.begin(), info.addresses.end());
  info.addresses.erase(std::unique(info.addresses.begin(), info.addresses.end()), info.addresses.end());
}

// Marathon passes a task's host ports as PORTS=31000,31001 and PORT0, PORT1, ...
void read_task_ports(dom::array env, ContainerInfo& info) {
  std::string_view list = env_value(env, "PORTS");
  while (!list.empty()) {
    const auto comma = list.find(',');
    std::uint16_t port = 0;
    if (parse_port_number(list.substr(0, comma), port) && port != 0) info.task_ports.push_back(port);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
  }
  for (int i = 0; i < 64; ++i) {
    std::uint16_t port = 0;
    const std::string_view text = env_value(env, "PORT" + std::to_string(i));
    if (text.empty()) break;
    if (parse_port_number(text, port) && port != 0) info.task_ports.push_back(port);
  }
  std::sort(info.task_ports.begin(), info.task_ports.end());
  info.task_ports.erase(std::unique(info.task_ports.begin(), info.task_ports.end()), info.task_ports.end());
}

}  // namespace

Result<std::vector<ListedContainer>> parse_container_list(std::string_view json) {
  dom::parser parser;
  const simdjson::padded_string text(json);
  auto root = parse_document(parser, text, "container list");
  if (!root) return unexpected(std::move(root).error());
  dom::array array;
  if (root->get(array) != simdjson::SUCCESS) return unexpected(bad("container list", "(document)", "expected an array"));
  std::vector<ListedContainer> containers;
  for (dom::element entry : array) {
    dom::object object;
    if (entry.get(object) != simdjson::SUCCESS) return unexpected(bad("container list", "[]", "expected an object"));
    ListedContainer listed;
    std::string_view id;
    if (object["Id"].get(id) != simdjson::SUCCESS || id.empty()) {
      return unexpected(bad("container list", "Id", "missing or not a string"));
    }
    listed.id = std::string(id);
    dom::array names;
    if (object["Names"].get(names) == simdjson::SUCCESS && names.size() > 0) {
      std::string_view name;
      if (names.at(0).get(name) == simdjson::SUCCESS) listed.name = std::string(name.substr(name.starts_with('/') ? 1 : 0));
    }
    auto state = optional_string(object, "State", "container list", "State");
    if (!state) return unexpected(std::move(state).error());
    listed.state = std::move(*state);
    std::transform(listed.state.begin(), listed.state.end(), listed.state.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    containers.push_back(std::move(listed));
  }
  return containers;
}

Result<ContainerInfo> parse_container_inspect(std::string_view json) {
  dom::parser parser;
  const simdjson::padded_string text(json);
  auto root = parse_document(parser, text, "inspect");
  if (!root) return unexpected(std::move(root).error());
  dom::object object;
  if (root->get(object) != simdjson::SUCCESS) return unexpected(bad("inspect", "(document)", "expected an object"));

  ContainerInfo info;
  std::string_view id;
  if (object["Id"].get(id) != simdjson::SUCCESS || id.empty()) return unexpected(bad("inspect", "Id", "missing or not a string"));
  info.id = std::string(id);
  auto name = optional_string(object, "Name", "inspect", "Name");
  if (!name) return unexpected(std::move(name).error());
  info.name = name->starts_with('/') ? name->substr(1) : *name;

  dom::object state;
  if (object["State"].get(state) != simdjson::SUCCESS) return unexpected(bad("inspect", "State", "missing or not an object"));
  if (state["Running"].get(info.running) != simdjson::SUCCESS) {
    return unexpected(bad("inspect", "State.Running", "missing or not a boolean"));
  }
  std::int64_t pid = 0;
  if (state["Pid"].get(pid) != simdjson::SUCCESS || pid < 0 || pid > INT32_MAX) {
    return unexpected(bad("inspect", "State.Pid", "missing or not a process id"));
  }
  info.pid = static_cast<pid_t>(pid);

  dom::object host_config;
  if (object["HostConfig"].get(host_config) != simdjson::SUCCESS) {
    return unexpected(bad("inspect", "HostConfig", "missing or not an object"));
  }
  auto mode = optional_string(host_config, "NetworkMode", "inspect", "HostConfig.NetworkMode");
  if (!mode) return unexpected(std::move(mode).error());
  info.network_mode_text = *mode;
  info.network_mode = classify_network_mode(*mode);

  if (auto ports = read_ports(*root, info); !ports) return unexpected(std::move(ports).error());
  read_addresses(*root, info);

  dom::object config;
  if (object["Config"].get(config) == simdjson::SUCCESS) {
    dom::array env;
    const bool has_env = config["Env"].get(env) == simdjson::SUCCESS;
    dom::object labels;
    const bool has_labels = config["Labels"].get(labels) == simdjson::SUCCESS;
    // Marathon sets both as env and (MESOS_TASK_ID) as a label; prefer the label.
    for (auto [key, target] : {std::pair{"MESOS_TASK_ID", &info.mesos_task_id},
                               std::pair{"MARATHON_APP_ID", &info.marathon_app_id}}) {
      std::string_view value;
      if (has_labels && labels[key].get(value) == simdjson::SUCCESS && !value.empty()) {
        *target = std::string(value);
      } else if (has_env) {
        *target = std::string(env_value(env, key));
      }
    }
    if (has_env) read_task_ports(env, info);
    if (has_labels) {
      for (auto [key, value] : labels) {
        std::string_view label;
        if (value.get(label) == simdjson::SUCCESS) info.labels.emplace(std::string(key), std::string(label));
      }
    }
    // Exposed-only ports of the image that NetworkSettings does not list (stopped
    // containers have no NetworkSettings.Ports).
    dom::object exposed;
    if (config["ExposedPorts"].get(exposed) == simdjson::SUCCESS) {
      for (auto [key, unused] : exposed) {
        ContainerPort port;
        if (!parse_port_key(key, port.container_port, port.protocol)) {
          return unexpected(bad("inspect", "Config.ExposedPorts." + std::string(key), "expected PORT/PROTOCOL"));
        }
        const bool known = std::any_of(info.ports.begin(), info.ports.end(), [&](const ContainerPort& p) {
          return p.container_port == port.container_port && p.protocol == port.protocol;
        });
        if (!known) info.ports.push_back(std::move(port));
      }
    }
  }
  return info;
}

Result<DockerEvent> parse_docker_event(std::string_view json) {
  dom::parser parser;
  const simdjson::padded_string text(json);
  auto root = parse_document(parser, text, "event");
  if (!root) return unexpected(std::move(root).error());
  dom::object object;
  if (root->get(object) != simdjson::SUCCESS) return unexpected(bad("event", "(document)", "expected an object"));
  DockerEvent event;
  for (auto [key, target] : {std::pair{"Type", &event.type}, std::pair{"Action", &event.action}}) {
    auto value = optional_string(object, key, "event", key);
    if (!value) return unexpected(std::move(value).error());
    *target = std::move(*value);
  }
  dom::object actor;
  if (object["Actor"].get(actor) == simdjson::SUCCESS) {
    auto id = optional_string(actor, "ID", "event", "Actor.ID");
    if (!id) return unexpected(std::move(id).error());
    event.id = std::move(*id);
    std::string_view name;
    if (actor["Attributes"]["name"].get(name) == simdjson::SUCCESS) event.name = std::string(name);
  }
  // Old daemons (API < 1.22) send only status/id/from.
  if (event.type.empty()) {
    auto status = optional_string(object, "status", "event", "status");
    auto id = optional_string(object, "id", "event", "id");
    if (!status || !id) return unexpected(bad("event", "status", "expected a string"));
    if (!status->empty()) {
      event.type = "container";
      event.action = std::move(*status);
      event.id = std::move(*id);
    }
  }
  if (object["timeNano"].get(event.time_nano) != simdjson::SUCCESS) {
    std::int64_t seconds = 0;
    if (object["time"].get(seconds) == simdjson::SUCCESS) event.time_nano = seconds * 1'000'000'000;
  }
  if (event.type.empty() || event.action.empty()) return unexpected(bad("event", "Type/Action", "missing"));
  return event;
}

std::string parse_docker_error(std::string_view body) {
  dom::parser parser;
  const simdjson::padded_string text(body);
  dom::element root;
  std::string_view message;
  if (parser.parse(text).get(root) == simdjson::SUCCESS && root["message"].get(message) == simdjson::SUCCESS) {
    return std::string(message);
  }
  std::string_view trimmed = body;
  while (!trimmed.empty() && (trimmed.back() == '\n' || trimmed.back() == ' ')) trimmed.remove_suffix(1);
  return std::string(trimmed.substr(0, 200));
}

}  // namespace skopos
