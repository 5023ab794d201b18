// DockerEngine: the one client of the Docker Engine API over its Unix socket, on the
// shared HttpClient, for both programs: the tracker lists, inspects and follows the
// event stream (ContainerDiscovery); the driver also stops, kills and waits. Answers as
// Docker (and podman's compatible service) give them:
//
//  * stop: 204 stopped, 304 already stopped, 404 no such container; it blocks up to the
//    grace period while the process exits, so its deadline is the grace period plus the
//    request deadline;
//  * kill: 204 killed, 409 not running (podman: 500 "can only kill running
//    containers"), 404 no such container;
//  * errors are {"message": ...}.
//
// The JSON parsers are skopos/docker_api.h. Not thread-safe: one engine per thread (the
// event stream's stop token excepted).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include "skopos/docker_api.h"
#include "skopos/function_ref.h"
#include "skopos/http_client.h"
#include "skopos/outside_error.h"
#include "skopos/result.h"

namespace skopos {

struct DockerEngineOptions {
  HttpOptions http;          // one endpoint: unix:///var/run/docker.sock
  std::string api_version;   // "" (the daemon's own) or "v1.41", put in front of every path
};

class DockerEngine {
 public:
  enum class StopOutcome : std::uint8_t { kStopped, kAlreadyStopped, kGone };
  enum class KillOutcome : std::uint8_t { kKilled, kNotRunning, kGone };

  static Result<std::unique_ptr<DockerEngine>, OutsideError> create(DockerEngineOptions options);
  ~DockerEngine();

  Result<std::vector<ListedContainer>, OutsideError> list(bool all);
  Result<ContainerInfo, OutsideError> inspect(const std::string& id_or_name);  // kNotFound when gone
  // SIGTERM, then SIGKILL after `grace` (Docker's stop); returns when the container is
  // stopped. Sent once: a timeout says the outcome is unknown, inspect to find out.
  Result<StopOutcome, OutsideError> stop(const std::string& id_or_name, std::chrono::seconds grace);
  Result<KillOutcome, OutsideError> kill(const std::string& id_or_name, const std::string& signal = "SIGKILL");
  // Waits until the container is not running (or `until`); its exit code.
  Result<std::int64_t, OutsideError> wait(const std::string& id_or_name, std::chrono::steady_clock::time_point until);
  // Container events from `since` (unix seconds; 0: from now) until `until`, `stop`
  // (from any thread), the daemon ending the stream, or `on_event` returning false:
  // all of these return ok. An event that cannot be parsed, or one longer than 64 KiB,
  // is an error that ends the stream.
  Result<void, OutsideError> events(std::int64_t since, std::chrono::steady_clock::time_point until,
                                   FunctionRef<bool(const DockerEvent&)> on_event, std::stop_token stop = {});

 private:
  explicit DockerEngine(DockerEngineOptions options, std::unique_ptr<HttpClient> http);
  Result<HttpResponse, OutsideError> send(const std::string& method, const std::string& path, bool idempotent);
  std::string path(const std::string& rest) const;

  DockerEngineOptions options_;
  std::unique_ptr<HttpClient> http_;
};

}  // namespace skopos
