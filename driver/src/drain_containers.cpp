// DockerDrainContainers: the task containers of this host from the Docker Engine API,
// and stopping them all at once (docker stop with grace, then kill).
#include <algorithm>
#include <mutex>
#include <set>
#include <thread>

#include "driver/drain_systems_impl.h"
#include "skopos/log.h"

namespace skopos::driver {

namespace {


}  // namespace

bool DockerDrainContainers::is_task_container(const ContainerInfo& info) {
  return !info.mesos_task_id.empty() || !info.marathon_app_id.empty() || info.name.rfind("mesos-", 0) == 0;
}

DrainContainer DockerDrainContainers::from_inspect(const ContainerInfo& info) {
  DrainContainer out;
  out.id = info.id;
  out.name = info.name;
  out.app_id = info.marathon_app_id;
  out.task_id = info.mesos_task_id;
  out.host_network = info.network_mode == NetworkMode::kHost;
  out.pid = info.pid;
  out.labels = info.labels;
  std::set<std::uint16_t> fence;
  std::set<std::uint16_t> listen;
  if (out.host_network) {
    // Host networking: the task listens on the host ports Marathon gave it.
    fence.insert(info.task_ports.begin(), info.task_ports.end());
    listen.insert(info.task_ports.begin(), info.task_ports.end());
  } else {
    for (const ContainerPort& port : info.ports) {
      if (port.protocol != "tcp") continue;
      listen.insert(port.container_port);
      if (port.host_port != 0) fence.insert(port.host_port);
    }
  }
  out.fence_ports.assign(fence.begin(), fence.end());
  out.listen_ports.assign(listen.begin(), listen.end());
  return out;
}

Result<std::vector<DrainContainer>, DrainError> DockerDrainContainers::running() {
  auto engine = DockerEngine::create(options_.engine);
  if (!engine) return unexpected(drain_error_from(engine.error(), "client"));
  auto listed = (*engine)->list(false);
  if (!listed) return unexpected(drain_error_from(listed.error(), "list containers"));
  std::vector<DrainContainer> out;
  for (const ListedContainer& container : *listed) {
    auto info = (*engine)->inspect(container.id);
    if (!info) {
      if (info.error().kind == OutsideError::Kind::kNotFound) continue;  // gone meanwhile
      return unexpected(drain_error_from(info.error(), "inspect '" + container.name + "'"));
    }
    if (!info->running) continue;
    if (!options_.all_containers && !is_task_container(*info)) continue;
    out.push_back(from_inspect(*info));
  }
  std::sort(out.begin(), out.end(), [](const DrainContainer& a, const DrainContainer& b) { return a.name < b.name; });
  return out;
}

Result<void, DrainError> DockerDrainContainers::stop(const std::vector<DrainContainer>& containers) {
  std::mutex mutex;
  std::vector<std::string> failures;
  const auto stop_one = [&](const DrainContainer& container) {
    const auto fail = [&](const std::string& why) {
      const std::lock_guard<std::mutex> lock(mutex);
      failures.push_back("'" + container.name + "': " + why);
    };
    auto engine = DockerEngine::create(options_.engine);
    if (!engine) return fail(engine.error().message);
    log_info("stopping container '" + container.name + "' (grace " + std::to_string(container.grace.count()) + " s)");
    auto stopped = (*engine)->stop(container.id, container.grace);
    if (stopped) return;
    // The stop's outcome is unknown (its deadline passed) or it failed: kill what still runs.
    log_warning("docker stop of '" + container.name + "': " + stopped.error().message + "; killing it");
    auto killed = (*engine)->kill(container.id);
    if (!killed) return fail("stop: " + stopped.error().message + "; kill: " + killed.error().message);
    if (*killed == DockerEngine::KillOutcome::kGone) return;
    auto waited = (*engine)->wait(container.id, std::chrono::steady_clock::now() + options_.kill_wait);
    if (!waited && waited.error().kind != OutsideError::Kind::kNotFound) {
      fail("still running after SIGKILL: " + waited.error().message);
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(containers.size());
  for (const DrainContainer& container : containers) threads.emplace_back(stop_one, std::cref(container));
  for (std::thread& thread : threads) thread.join();
  if (!failures.empty()) {
    std::string text;
    for (const std::string& f : failures) text += (text.empty() ? "" : "; ") + f;
    return drain_error(DrainError::Kind::kFailed, "containers still running: " + text);
  }
  // Read back: none of them may still run.
  auto engine = DockerEngine::create(options_.engine);
  if (!engine) return unexpected(drain_error_from(engine.error(), "client"));
  for (const DrainContainer& container : containers) {
    auto info = (*engine)->inspect(container.id);
    if (!info) {
      if (info.error().kind == OutsideError::Kind::kNotFound) continue;
      return unexpected(drain_error_from(info.error(), "inspect '" + container.name + "'"));
    }
    if (info->running) return drain_error(DrainError::Kind::kFailed, "container '" + container.name + "' still runs");
  }
  return {};
}

}  // namespace skopos::driver
