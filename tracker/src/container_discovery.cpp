#include "tracker/container_discovery.h"

#include <ctime>

#include "skopos/log.h"

namespace skopos::tracker {

namespace {

constexpr std::chrono::milliseconds kMinBackoff{500};
constexpr std::chrono::milliseconds kMaxBackoff{30000};

bool is_start(std::string_view action) { return action == "start" || action == "restart" || action == "unpause"; }
bool is_gone(std::string_view action) {
  return action == "die" || action == "stop" || action == "kill" || action == "destroy" || action == "remove" ||
         action == "died" || action == "cleanup";
}

}  // namespace

ContainerDiscovery::ContainerDiscovery(std::string socket_path, std::chrono::milliseconds request_timeout, Sink sink)
    : client_(socket_path, request_timeout), inspector_(socket_path, request_timeout), sink_(std::move(sink)) {}

ContainerDiscovery::~ContainerDiscovery() { stop(); }

void ContainerDiscovery::start() {
  thread_ = std::thread([this] { run(); });
}

void ContainerDiscovery::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  client_.stop_events();
  if (thread_.joinable()) thread_.join();
}

void ContainerDiscovery::sleep_for(std::chrono::milliseconds delay) {
  std::unique_lock lock(mutex_);
  wake_.wait_for(lock, delay, [this] { return stopping_; });
}

bool ContainerDiscovery::list_all(DiscoveryUpdate& update) {
  update = DiscoveryUpdate{};
  auto listed = client_.list_containers();
  if (!listed) {
    update.kind = DiscoveryUpdate::Kind::kUnavailable;
    update.error = listed.error().message();
    return false;
  }
  for (const ListedContainer& container : *listed) {
    auto info = client_.inspect(container.id);
    if (!info) {
      update.kind = DiscoveryUpdate::Kind::kUnavailable;
      update.error = info.error().message();
      return false;
    }
    // Gone between list and inspect, or stopped meanwhile: not an error.
    if (info->has_value() && (*info)->running) update.containers.push_back(std::move(**info));
  }
  return true;
}

void ContainerDiscovery::run() {
  std::chrono::milliseconds backoff = kMinBackoff;
  bool reported_unavailable = false;
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
    }
    // Events from one second before the list on: whatever happens between the list and
    // the subscription is replayed (duplicates are harmless: updates are idempotent).
    const std::time_t since = std::time(nullptr) - 1;
    DiscoveryUpdate update;
    if (!list_all(update)) {
      if (!reported_unavailable) {
        log_warning("docker API unavailable, containers unknown until it answers: " + update.error);
        reported_unavailable = true;
      }
      sink_(std::move(update));
      sleep_for(backoff);
      backoff = std::min(backoff * 2, kMaxBackoff);
      continue;
    }
    if (reported_unavailable) log_notice("docker API available again at '" + client_.socket_path() + "'");
    reported_unavailable = false;
    backoff = kMinBackoff;
    sink_(std::move(update));

    auto streamed = client_.stream_events_since(since, [&](const DockerEvent& event) {
      if (event.type != "container" || event.id.empty()) return true;
      if (!is_start(event.action) && !is_gone(event.action)) return true;
      // Inspect on every start AND every death: podman writes "died" from a cleanup
      // process, so it can arrive after the restarted container's "start"; what the
      // daemon says now is the truth, whatever order the events came in.
      auto info = inspector_.inspect(event.id);
      if (!info) {
        log_warning("docker inspect of container '" + event.id.substr(0, 12) + "' after '" + event.action +
                    "' failed: " + info.error().message());
        return false;  // list again
      }
      DiscoveryUpdate changed;
      if (info->has_value() && (*info)->running) {
        changed.kind = DiscoveryUpdate::Kind::kStarted;
        changed.containers.push_back(std::move(**info));
      } else {
        changed.kind = DiscoveryUpdate::Kind::kGone;
        changed.id = event.id;
      }
      sink_(std::move(changed));
      return true;
    });
    if (!streamed) log_warning("docker event stream ended: " + streamed.error().message());
    sleep_for(kMinBackoff);
  }
}

}  // namespace skopos::tracker
