// MarathonDrainSteps: the apps on this host, the disruption budget, leadership, and
// handing the stopped tasks back to Marathon so it replaces them elsewhere.
#include <algorithm>
#include <cctype>
#include <set>
#include <thread>

#include "driver/drain_systems_impl.h"
#include "skopos/log.h"

namespace skopos::driver {

bool same_host(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

Result<HostTasks, DrainError> MarathonDrainSteps::on_host(const std::string& hostname) {
  auto apps = marathon_->apps();
  if (!apps) return unexpected(drain_error_from(apps.error(), "apps"));
  HostTasks out;
  for (const MarathonApp& app : *apps) {
    HostTasks::App entry{app.id, app.instances, app.labels, {}};
    for (const MarathonTask& task : app.tasks) {
      if (same_host(task.host, hostname)) entry.task_ids.push_back(task.id);
    }
    if (!entry.task_ids.empty()) out.apps.push_back(std::move(entry));
  }
  return out;
}

Result<std::vector<AppShortfall>, DrainError> MarathonDrainSteps::budget(const std::string& hostname,
                                                                         const std::vector<std::string>& draining) {
  auto apps = marathon_->apps();
  if (!apps) return unexpected(drain_error_from(apps.error(), "apps"));
  std::vector<AppShortfall> out;
  for (const BudgetShortfall& s : disruption_budget(*apps, hostname, label_, default_min_, draining)) {
    out.push_back(AppShortfall{s.app_id, s.on_host, s.healthy_elsewhere, s.required, s.problem, s.healthy_unavailable});
  }
  return out;
}

Result<std::string, DrainError> MarathonDrainSteps::leader() {
  auto leader = marathon_->leader();
  if (!leader) {
    if (leader.error().kind == OutsideError::Kind::kNoLeader) return std::string();
    return unexpected(drain_error_from(leader.error(), "leader"));
  }
  return *leader;
}

Result<std::string, DrainError> MarathonDrainSteps::abdicate(std::chrono::steady_clock::time_point until) {
  auto leader = marathon_->abdicate(until);
  if (!leader) return unexpected(drain_error_from(leader.error(), "abdicate"));
  return *leader;
}

Result<void, DrainError> MarathonDrainSteps::release_tasks(const std::vector<std::string>& task_ids,
                                                           std::chrono::steady_clock::time_point until, bool scale) {
  // Only the tasks Marathon still lists: after a restart some may be gone already, and
  // Marathon refuses to kill tasks it does not know.
  auto tasks = marathon_->tasks();
  if (!tasks) return unexpected(drain_error_from(tasks.error(), "tasks"));
  const std::set<std::string> wanted(task_ids.begin(), task_ids.end());
  std::vector<std::string> present;
  for (const MarathonTask& task : *tasks) {
    if (wanted.count(task.id) != 0) present.push_back(task.id);
  }
  if (present.empty()) return {};
  auto killed = marathon_->kill_tasks(present, scale);
  // With scale it is a deployment: while another holds the app Marathon answers 409 --
  // asked again until `until`.
  while (!killed && scale && killed.error().kind == OutsideError::Kind::kRefused && killed.error().status == 409 &&
         std::chrono::steady_clock::now() + std::chrono::milliseconds(250) < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    killed = marathon_->kill_tasks(present, scale);
  }
  if (!killed) return unexpected(drain_error_from(killed.error(), "kill tasks"));
  auto gone = marathon_->wait_tasks_gone(present, until);
  if (!gone) return unexpected(drain_error_from(gone.error(), "kill tasks"));
  return {};
}

Result<SurgeApp, DrainError> MarathonDrainSteps::surge_app(const std::string& app_id, const std::string& hostname,
                                                           const std::vector<std::string>& draining) {
  auto app = marathon_->app(app_id);
  if (!app) {
    if (app.error().kind == OutsideError::Kind::kNotFound) return SurgeApp{};
    return unexpected(drain_error_from(app.error(), "app '" + app_id + "'"));
  }
  SurgeApp out;
  out.exists = true;
  out.instances = app->instances;
  for (const MarathonTask& task : app->tasks) {
    if (same_host(task.host, hostname)) {
      out.here.push_back(task.id);
    } else if (std::any_of(draining.begin(), draining.end(),
                           [&](const std::string& h) { return same_host(h, task.host); })) {
      ++out.on_draining;
    } else if (app->healthy(task)) {
      ++out.healthy_elsewhere;
    }
  }
  return out;
}

Result<bool, DrainError> MarathonDrainSteps::scale(const std::string& app_id, std::int64_t instances, bool force) {
  auto scaled = marathon_->scale(app_id, instances, force);
  if (scaled) return true;
  if (scaled.error().kind == OutsideError::Kind::kRefused && scaled.error().status == 409) return false;
  // Sent, no answer: taken or not, the count read back says (the surge's loop reads it).
  if (scaled.error().maybe_applied()) {
    log_warning("marathon: " + scaled.error().message + "; reading the count back");
    return true;
  }
  return unexpected(drain_error_from(scaled.error(), "scale '" + app_id + "' to " + std::to_string(instances)));
}

Result<std::vector<std::string>, DrainError> MarathonDrainSteps::below_strength(
    const std::vector<std::string>& app_ids) {
  auto apps = marathon_->apps();
  if (!apps) return unexpected(drain_error_from(apps.error(), "apps"));
  const std::set<std::string> wanted(app_ids.begin(), app_ids.end());
  std::vector<std::string> out;
  for (const MarathonApp& app : *apps) {
    if (wanted.count(app.id) == 0) continue;
    const auto healthy = std::count_if(app.tasks.begin(), app.tasks.end(),
                                       [&](const MarathonTask& task) { return app.healthy(task); });
    if (healthy < app.instances || !app.deployments.empty()) {
      out.push_back(app.id + " " + std::to_string(healthy) + "/" + std::to_string(app.instances) +
                    (app.deployments.empty() ? "" : " deploying"));
    }
  }
  return out;
}

}  // namespace skopos::driver
