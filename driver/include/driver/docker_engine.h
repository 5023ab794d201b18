// DockerEngine: the Docker Engine API over its Unix socket, for the driver's side
// effects on containers, on the shared HttpClient: list, inspect, stop with a grace
// period, kill, wait, and the event stream. Answers as Docker (and podman's compatible
// service) give them:
//
//  * stop: 204 stopped, 304 already stopped, 404 no such container; it blocks up to the
//    grace period while the process exits, so its deadline is the grace period plus the
//    request deadline;
//  * kill: 204 killed, 409 not running (podman: 500 "can only kill running
//    containers"), 404 no such container;
//  * errors are {"message": ...}.
//
// The JSON parsers are the tracker's (tracker/docker_api.h). Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "driver/http_client.h"
#include "skopos/function_ref.h"
#include "skopos/result.h"
#include "tracker/docker_api.h"

namespace skopos::driver {

struct DockerError {
  enum class Kind : std::uint8_t { kUnavailable, kUnknownOutcome, kNotFound, kRefused, kBadResponse };
  Kind kind = Kind::kUnavailable;
  unsigned status = 0;
  std::string message;
};

struct DockerEngineOptions {
  HttpOptions http;          // one endpoint: unix:///var/run/docker.sock
  std::string api_version;   // "" (the daemon's own) or "v1.41", put in front of every path
};

class DockerEngine {
 public:
  enum class StopOutcome : std::uint8_t { kStopped, kAlreadyStopped, kGone };
  enum class KillOutcome : std::uint8_t { kKilled, kNotRunning, kGone };

  static Result<std::unique_ptr<DockerEngine>, DockerError> create(DockerEngineOptions options);
  ~DockerEngine();

  Result<std::vector<tracker::ListedContainer>, DockerError> list(bool all);
  Result<tracker::ContainerInfo, DockerError> inspect(const std::string& id_or_name);  // kNotFound when gone
  // SIGTERM, then SIGKILL after `grace` (Docker's stop); returns when the container is
  // stopped. Sent once: a timeout says the outcome is unknown, inspect to find out.
  Result<StopOutcome, DockerError> stop(const std::string& id_or_name, std::chrono::seconds grace);
  Result<KillOutcome, DockerError> kill(const std::string& id_or_name, const std::string& signal = "SIGKILL");
  // Waits until the container is not running (or `until`); its exit code.
  Result<std::int64_t, DockerError> wait(const std::string& id_or_name, std::chrono::steady_clock::time_point until);
  // Container events from `since` (unix seconds) until `until` or `on_event` returns
  // false; events that cannot be parsed are errors.
  Result<void, DockerError> events(std::int64_t since, std::chrono::steady_clock::time_point until,
                                   FunctionRef<bool(const tracker::DockerEvent&)> on_event);

 private:
  explicit DockerEngine(DockerEngineOptions options, std::unique_ptr<HttpClient> http);
  Result<HttpResponse, DockerError> send(const std::string& method, const std::string& path, bool idempotent);
  std::string path(const std::string& rest) const;

  DockerEngineOptions options_;
  std::unique_ptr<HttpClient> http_;
};

}  // namespace skopos::driver
