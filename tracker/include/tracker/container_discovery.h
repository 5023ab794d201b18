// ContainerDiscovery: keeps the set of running containers current from the Docker
// Engine API, on a thread of its own (Docker calls block; the tracker's event loop must
// not). It lists and inspects every running container, then follows the /events stream
// from just before the list (since=), so nothing that starts or dies in between is
// missed; when the stream breaks it lists again, with a bounded backoff while the
// daemon is unreachable. A container that is gone by the time it is inspected is
// simply skipped.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "skopos/docker_engine.h"
#include "tracker/discovery_update.h"

namespace skopos::tracker {

class ContainerDiscovery {
 public:
  // Called on the discovery thread; the tracker posts the update to its event loop.
  using Sink = std::function<void(DiscoveryUpdate)>;

  ContainerDiscovery(std::string socket_path, std::chrono::milliseconds request_timeout, Sink sink);
  ~ContainerDiscovery();  // stops and joins
  ContainerDiscovery(const ContainerDiscovery&) = delete;
  ContainerDiscovery& operator=(const ContainerDiscovery&) = delete;

  void start();
  void stop();

 private:
  void run();
  // Lists and inspects; false when the daemon failed (error in `error`).
  bool list_all(DiscoveryUpdate& update);
  Result<std::unique_ptr<DockerEngine>, OutsideError> make_engine() const;
  // The container as the daemon sees it now; nullopt when it is gone (404).
  Result<std::optional<ContainerInfo>, OutsideError> inspect(DockerEngine& engine, const std::string& id);
  void sleep_for(std::chrono::milliseconds delay);

  std::string socket_path_;
  std::chrono::milliseconds request_timeout_;
  Sink sink_;
  std::stop_source stop_source_;  // ends the event stream from stop()
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
};

}  // namespace skopos::tracker
