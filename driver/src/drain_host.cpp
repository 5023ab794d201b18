// LocalDrainHost (boot id, reboot command, ZooKeeper health, notification URL) and
// IptablesDrainFence (the fence as the drain uses it).
#include <set>
#include <fstream>

#include "driver/drain_systems_impl.h"
#include "skopos/http_client.h"
#include "driver/zookeeper_health.h"
#include "skopos/json_writer.h"
#include "skopos/log.h"
#include "skopos/subprocess.h"

namespace skopos::driver {

// ---- this host -----------------------------------------------------------------------

std::string LocalDrainHost::boot_id() {
  std::ifstream in(options_.boot_id_path);
  std::string id;
  std::getline(in, id);
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id;
}

Result<void, DrainError> LocalDrainHost::reboot() {
  if (options_.reboot_command.empty()) return drain_error(DrainError::Kind::kUsage, "no reboot command configured");
  std::string text;
  for (const std::string& arg : options_.reboot_command) text += (text.empty() ? "" : " ") + arg;
  log_notice("running the reboot command '" + text + "'");
  auto ran = run_program(options_.reboot_command, {}, options_.reboot_timeout);
  if (!ran) return drain_error(DrainError::Kind::kFailed, "reboot command '" + text + "': " + ran.error().message());
  if (ran->exit_code != 0) {
    std::string err = ran->err;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    return drain_error(DrainError::Kind::kFailed, "reboot command '" + text + "' exited " +
                                                      std::to_string(ran->exit_code) + (err.empty() ? "" : ": " + err));
  }
  return {};
}

Result<DrainHost::HookRun, DrainError> LocalDrainHost::run_hook(const std::vector<std::string>& argv,
                                                                 const std::vector<std::string>& environment,
                                                                 const std::string& input,
                                                                 std::chrono::milliseconds timeout,
                                                                 const std::atomic<bool>& stop) {
  auto ran = run_program_until(argv, input, timeout, environment, &stop);
  if (!ran) return drain_error(DrainError::Kind::kFailed, ran.error().message());
  return HookRun{ran->output.exit_code, std::move(ran->output.out), std::move(ran->output.err),
                 ran->end == ProgramRun::End::kTimedOut, ran->end == ProgramRun::End::kStopped};
}

Result<bool, DrainError> LocalDrainHost::zookeeper_healthy(std::string& summary) {
  if (options_.zookeeper.empty()) {
    summary = "no ZooKeeper configured";
    return true;
  }
  const ZkEnsembleHealth health = check_zookeeper(options_.zookeeper, options_.zookeeper_timeout);
  summary = health.summary;
  return health.healthy;
}

void LocalDrainHost::notify(const std::string& kind, const std::string& outcome, const std::string& drain_id) {
  if (options_.notify_url.empty()) return;
  std::string url = options_.notify_url;
  if (const auto at = url.find("{machine_id}"); at != std::string::npos) url.replace(at, 12, options_.machine_id);
  const auto [base, target] = split_url(url);
  auto endpoint = HttpEndpoint::parse(base);
  if (!endpoint) {
    log_warning("notification URL '" + options_.notify_url + "': " + endpoint.error().message());
    return;
  }
  HttpOptions http;
  http.endpoints.push_back(std::move(*endpoint));
  http.timeout = std::chrono::seconds(5);
  auto client = HttpClient::create(http);
  if (!client) {
    log_warning("notification URL '" + options_.notify_url + "': " + client.error().message());
    return;
  }
  std::string body;
  JsonWriter json(body);
  json.begin_object().key("machine_id").value(options_.machine_id).key("hostname").value(options_.hostname);
  json.key("kind").value(kind).key("outcome").value(outcome).key("drain_id").value(drain_id).end_object();
  // Telling twice is harmless; not telling is what the receiver cannot see.
  auto sent = (*client)->request(json_request("POST", target, body, true));
  if (!sent) {
    log_warning("notification to '" + url + "' failed: " + sent.error().message());
  } else if (sent->status >= 300) {
    log_warning("notification to '" + url + "' answered " + std::to_string(sent->status));
  } else {
    log_info("notified '" + url + "': " + kind + " " + outcome);
  }
}

// ---- the fence -----------------------------------------------------------------------

namespace {
DrainError fence_error(const Error& error) { return {DrainError::Kind::kFailed, "fence: " + error.message()}; }
}  // namespace

Result<std::vector<std::uint16_t>, DrainError> IptablesDrainFence::fenced() {
  std::set<std::uint16_t> ports;
  for (const FamilyFence& f : families_) {
    auto state = f.fence.show();
    if (!state) return unexpected(fence_error(state.error()));
    ports.insert(state->ports.begin(), state->ports.end());
  }
  return std::vector<std::uint16_t>(ports.begin(), ports.end());
}

Result<void, DrainError> IptablesDrainFence::apply(const std::vector<std::uint16_t>& ports) {
  // A failed IPv6 half leaves the IPv4 fence in place (safe); running again applies both.
  for (const FamilyFence& f : families_) {
    if (auto state = f.fence.apply(ports); !state) return unexpected(fence_error(state.error()));
  }
  return {};
}

Result<bool, DrainError> IptablesDrainFence::remove() {
  bool any = false;
  for (const FamilyFence& f : families_) {
    auto removed = f.fence.remove();
    if (!removed) return unexpected(fence_error(removed.error()));
    any = any || *removed;
  }
  return any;
}

Result<std::string, DrainError> IptablesDrainFence::plan(const std::vector<std::uint16_t>& ports) {
  std::string out;
  for (const FamilyFence& f : families_) {
    auto plan = f.fence.plan(ports);
    if (!plan) return unexpected(fence_error(plan.error()));
    out += "# " + f.family + " (" + f.fence.options().iptables_restore + " --noflush)\n" + *plan;
  }
  return out;
}

Result<bool, DrainError> IptablesDrainFence::ensure(const std::vector<std::uint16_t>& ports) {
  bool reapplied = false;
  for (const FamilyFence& f : families_) {
    auto state = f.fence.show();
    if (!state) return unexpected(fence_error(state.error()));
    if (f.fence.intact(*state, ports)) continue;
    if (auto applied = f.fence.apply(ports); !applied) return unexpected(fence_error(applied.error()));
    reapplied = true;
  }
  return reapplied;
}

}  // namespace skopos::driver
