// The Docker Engine API's documents both programs read: the container list, container
// inspect and the /events stream, as value types, and the parsers that build them from
// the daemon's JSON. The parsers are pure functions, so tests/unit/base/docker_api_test.cpp
// and the upstream examples (tests/fixtures/upstream/docker) check them without a
// daemon; DockerEngine (docker_engine.h) does the HTTP.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "skopos/result.h"

namespace skopos {

// HostConfig.NetworkMode. Docker reports "default" for the default bridge on older
// daemons and a network's name for user-defined networks: both are bridge mode (a
// namespace of the container's own). "container:<id>" shares another container's.
enum class NetworkMode : std::uint8_t { kBridge, kHost, kNone, kContainer };
std::string_view network_mode_name(NetworkMode mode);  // "bridge", "host", "none", "container"

// One port of a container: exposed (host_port 0) or published on the host.
struct ContainerPort {
  std::uint16_t container_port = 0;
  std::string protocol;  // "tcp", "udp", "sctp"
  std::string host_ip;   // "" or "0.0.0.0" for all addresses
  std::uint16_t host_port = 0;

  bool operator==(const ContainerPort&) const = default;
};

struct ContainerInfo {
  std::string id;    // full 64-hex id
  std::string name;  // without Docker's leading '/'
  bool running = false;
  pid_t pid = 0;     // State.Pid: the container's first process, 0 when not running
  NetworkMode network_mode = NetworkMode::kBridge;
  std::string network_mode_text;            // as Docker printed it
  std::vector<ContainerPort> ports;         // sorted by (container port, protocol, host port)
  std::vector<std::string> addresses;       // the container's IPs on its networks
  // Host ports a Mesos/Marathon task was given (PORTS, PORT0.. in its env): on host
  // networking, the ports the task listens on.
  std::vector<std::uint16_t> task_ports;
  std::string mesos_task_id;    // MESOS_TASK_ID label, else env
  std::string marathon_app_id;  // MARATHON_APP_ID label, else env
  std::map<std::string, std::string> labels;  // Config.Labels (string values only)
};

struct ListedContainer {
  std::string id;
  std::string name;
  std::string state;  // "running", "exited", ... (lowercase on current daemons)
};

struct DockerEvent {
  std::string type;    // "container", "image", "network", ...
  std::string action;  // "start", "die", "destroy", "exec_start: sh", ...
  std::string id;      // Actor.ID
  std::string name;    // Actor.Attributes.name, when present
  std::int64_t time_nano = 0;
};

// Errors are Error::invalid naming the document and the field that was wrong.
Result<std::vector<ListedContainer>> parse_container_list(std::string_view json);
Result<ContainerInfo> parse_container_inspect(std::string_view json);
Result<DockerEvent> parse_docker_event(std::string_view json);
// The message of an error body {"message": "..."}, or the body itself (trimmed, at
// most 200 bytes) when it is not one.
std::string parse_docker_error(std::string_view body);

}  // namespace skopos
