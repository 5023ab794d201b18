// DockerClient: the tracker's GET-only client of the Docker Engine API on its Unix socket
// (Docker's /var/run/docker.sock, or podman's compatible service). HTTP/1.1 with Beast.
//
// Every request has a deadline (connect, send and the whole response) and a response
// size limit. The event stream has no deadline of its own -- a quiet daemon sends
// nothing -- so callers also re-list on an interval.
//
// Thread-safety: one thread uses a client, except stop_events(), which any thread may
// call to end a running stream_events().
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "skopos/function_ref.h"
#include "skopos/result.h"
#include "tracker/docker_api.h"

namespace skopos::tracker {

class DockerClient {
 public:
  explicit DockerClient(std::string socket_path,
                        std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~DockerClient();
  DockerClient(const DockerClient&) = delete;
  DockerClient& operator=(const DockerClient&) = delete;

  const std::string& socket_path() const { return socket_path_; }

  // GET /containers/json: the running containers.
  Result<std::vector<ListedContainer>> list_containers();
  // GET /containers/{id}/json; nullopt when the daemon says 404 (the container was
  // removed meanwhile -- not an error).
  Result<std::optional<ContainerInfo>> inspect(const std::string& id);

  // GET /events filtered to container events: calls `on_event` for each until it
  // returns false, the daemon closes the stream, or stop_events() is called (then it
  // returns ok). Connecting and the response header are under the deadline.
  // A line that is not an event is an error that ends the stream.
  Result<void> stream_events(FunctionRef<bool(const DockerEvent&)> on_event) {
    return stream_events_since(0, on_event);
  }
  // The same, starting with the events since `since` (Unix seconds; 0: from now).
  Result<void> stream_events_since(std::int64_t since, FunctionRef<bool(const DockerEvent&)> on_event);
  void stop_events();

  // The body of a response with status 200..299, for any GET path.
  Result<std::string> get(const std::string& target);

 private:
  struct Response {
    unsigned status = 0;
    std::string body;
  };
  Result<Response> request(const std::string& target);

  class Events;
  std::string socket_path_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<Events> events_;
};

}  // namespace skopos::tracker
