#include "tracker/container_discovery.h"

#include <malloc.h>

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

Result<std::unique_ptr<DockerEngine>, OutsideError> ContainerDiscovery::make_engine() const {
  DockerEngineOptions options;
  auto endpoint = HttpEndpoint::parse("unix://" + socket_path_);
  if (!endpoint) return unexpected(OutsideError::unavailable("docker", endpoint.error().message()));
  options.http.endpoints.push_back(std::move(*endpoint));
  options.http.timeout = request_timeout_;
  // One try per request: the discovery loop has its own backoff, and a daemon that does
  // not answer must be reported within one deadline, not three.
  options.http.attempts = 1;
  options.http.user_agent = "skopos-tracker";
  return DockerEngine::create(std::move(options));
}

ContainerDiscovery::ContainerDiscovery(std::string socket_path, std::chrono::milliseconds request_timeout, Sink sink)
    : socket_path_(std::move(socket_path)), request_timeout_(request_timeout), sink_(std::move(sink)) {}

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
  stop_source_.request_stop();
  if (thread_.joinable()) thread_.join();
}

void ContainerDiscovery::sleep_for(std::chrono::milliseconds delay) {
  std::unique_lock lock(mutex_);
  wake_.wait_for(lock, delay, [this] { return stopping_; });
}

Result<std::optional<ContainerInfo>, OutsideError> ContainerDiscovery::inspect(DockerEngine& engine,
                                                                             const std::string& id) {
  auto info = engine.inspect(id);
  if (info) return std::optional<ContainerInfo>(std::move(*info));
  if (info.error().kind == OutsideError::Kind::kNotFound) return std::optional<ContainerInfo>();
  return unexpected(std::move(info).error());
}

bool ContainerDiscovery::list_all(DiscoveryUpdate& update) {
  update = DiscoveryUpdate{};
  const auto fail = [&](std::string error) {
    update.kind = DiscoveryUpdate::Kind::kUnavailable;
    update.error = std::move(error);
    return false;
  };
  auto engine = make_engine();
  if (!engine) return fail(engine.error().message);
  auto listed = (*engine)->list(false);
  if (!listed) return fail(listed.error().message);
  for (const ListedContainer& container : *listed) {
    auto info = inspect(**engine, container.id);
    if (!info) return fail(info.error().message);
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
    if (reported_unavailable) log_notice("docker API available again at '" + socket_path_ + "'");
    reported_unavailable = false;
    backoff = kMinBackoff;
    sink_(std::move(update));
    // A full list is a burst (an inspect per container, each answer parsed) on this
    // thread's malloc arena, which glibc keeps once freed: give it back, or a dense host
    // carries it for the tracker's whole life. Once per full list: at start and after
    // each reconnection to Docker (those are paced by the backoff).
#ifdef __GLIBC__
    ::malloc_trim(0);
#endif

    // The stream and the inspects during it each have an engine (a connection) of their own.
    auto streamer = make_engine();
    auto inspector = make_engine();
    if (!streamer || !inspector) {
      log_warning("docker event stream cannot start: " + (!streamer ? streamer.error() : inspector.error()).message);
      sleep_for(kMinBackoff);
      continue;
    }
    const auto forever = std::chrono::steady_clock::time_point::max();
    auto streamed = (*streamer)->events(since, forever, [&](const DockerEvent& event) {
      if (event.type != "container" || event.id.empty()) return true;
      if (!is_start(event.action) && !is_gone(event.action)) return true;
      // Inspect on every start AND every death: podman writes "died" from a cleanup
      // process, so it can arrive after the restarted container's "start"; what the
      // daemon says now is the truth, whatever order the events came in.
      auto info = inspect(**inspector, event.id);
      if (!info) {
        log_warning("docker inspect of container '" + event.id.substr(0, 12) + "' after '" + event.action +
                    "' failed: " + info.error().message);
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
    }, stop_source_.get_token());
    if (!streamed) log_warning("docker event stream ended: " + streamed.error().message);
    sleep_for(kMinBackoff);
  }
}

}  // namespace skopos::tracker
