// LocalDrainHost (boot id, reboot command, ZooKeeper health, notification URL) and
// IptablesDrainFence (the fence as the drain uses it).
#include <algorithm>
#include <fstream>

#include "driver/drain_systems_impl.h"
#include "driver/http_client.h"
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
  // The target is everything after the authority.
  const auto scheme_end = url.find("://");
  const auto path_at = scheme_end == std::string::npos ? std::string::npos : url.find('/', scheme_end + 3);
  const std::string base = path_at == std::string::npos ? url : url.substr(0, path_at);
  const std::string target = path_at == std::string::npos ? "/" : url.substr(path_at);
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

IptablesDrainFence::IptablesDrainFence(FenceOptions options, bool ipv6) : v4_(options) {
  if (ipv6) v6_.emplace(options.ipv6());
}

const Fence* IptablesDrainFence::ipv6() {
  if (v6_ && !v6_probed_) {
    v6_probed_ = true;
    if (auto state = v6_->show(); !state) {
      log_warning("IPv6 fence skipped: " + state.error().message() + " (no ip6tables or no IPv6 here)");
      v6_.reset();
    }
  }
  return v6_ ? &*v6_ : nullptr;
}

Result<std::vector<std::uint16_t>, DrainError> IptablesDrainFence::fenced() {
  auto state = v4_.show();
  if (!state) return unexpected(fence_error(state.error()));
  std::vector<std::uint16_t> ports = state->ports;
  if (const Fence* v6 = ipv6()) {
    auto state6 = v6->show();
    if (!state6) return unexpected(fence_error(state6.error()));
    ports.insert(ports.end(), state6->ports.begin(), state6->ports.end());
    std::sort(ports.begin(), ports.end());
    ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
  }
  return ports;
}

Result<void, DrainError> IptablesDrainFence::apply(const std::vector<std::uint16_t>& ports) {
  if (auto state = v4_.apply(ports); !state) return unexpected(fence_error(state.error()));
  if (const Fence* v6 = ipv6()) {
    // Each family is one transaction; a failed IPv6 half leaves the IPv4 fence in place
    // (safe), and running again applies both.
    if (auto state = v6->apply(ports); !state) return unexpected(fence_error(state.error()));
  }
  return {};
}

Result<bool, DrainError> IptablesDrainFence::remove() {
  auto removed = v4_.remove();
  if (!removed) return unexpected(fence_error(removed.error()));
  bool any = *removed;
  if (const Fence* v6 = ipv6()) {
    auto removed6 = v6->remove();
    if (!removed6) return unexpected(fence_error(removed6.error()));
    any = any || *removed6;
  }
  return any;
}

Result<std::string, DrainError> IptablesDrainFence::plan(const std::vector<std::uint16_t>& ports) {
  auto plan = v4_.plan(ports);
  if (!plan) return unexpected(fence_error(plan.error()));
  std::string out = *plan;
  if (const Fence* v6 = ipv6()) {
    auto plan6 = v6->plan(ports);
    if (!plan6) return unexpected(fence_error(plan6.error()));
    out += "# and IPv6 (ip6tables-restore --noflush):\n" + *plan6;
  }
  return out;
}

}  // namespace skopos::driver
