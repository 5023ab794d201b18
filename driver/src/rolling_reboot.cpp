#include "driver/rolling_reboot.h"

#include <simdjson.h>

#include <algorithm>
#include <ctime>
#include <random>

#include "skopos/json_writer.h"

namespace skopos::driver {

namespace {

LockError etcd_failure(const std::string& what, const OutsideError& error) {
  return LockError{LockError::Kind::kEtcd, what + ": " + error.message};
}

std::string new_request_id() {
  std::random_device random;
  char text[24];
  std::snprintf(text, sizeof text, "r-%08x%08x", random(), random());
  return text;
}

}  // namespace

bool RollingRequest::includes(const std::string& machine_id, const std::string& hostname) const {
  return hosts.empty() || std::find(hosts.begin(), hosts.end(), machine_id) != hosts.end() ||
         std::find(hosts.begin(), hosts.end(), hostname) != hosts.end();
}

RollingReboot::RollingReboot(EtcdClient& etcd, std::string prefix)
    : etcd_(etcd), prefix_(std::move(prefix)), parser_(std::make_unique<simdjson::dom::parser>()) {}
RollingReboot::~RollingReboot() = default;

std::string RollingReboot::request_key(const std::string& tier) const {
  return prefix_ + "/rolling-reboot/" + tier + "/request";
}
std::string RollingReboot::done_prefix(const std::string& tier) const { return prefix_ + "/rolling-reboot/" + tier + "/done/"; }

Result<RollingRequest, LockError> RollingReboot::request(const std::string& tier, const std::string& requested_by,
                                                         const std::vector<std::string>& hosts) {
  if (!valid_key_name(tier)) return unexpected(LockError{LockError::Kind::kInvalid, "tier '" + tier + "' is not a valid name"});
  RollingRequest out;
  out.id = new_request_id();
  out.requested_at = static_cast<std::int64_t>(std::time(nullptr));
  out.requested_by = requested_by;
  out.hosts = hosts;
  std::string value;
  JsonWriter json(value);
  json.begin_object().key("id").value(out.id).key("requested_at").value(out.requested_at);
  json.key("requested_by").value(requested_by).key("hosts").begin_array();
  for (const std::string& host : hosts) json.value(host);
  json.end_array().end_object();
  auto put = etcd_.put(request_key(tier), value);
  if (!put) return unexpected(etcd_failure("write the rolling reboot request", put.error()));
  out.revision = *put;
  return out;
}

Result<bool, LockError> RollingReboot::cancel(const std::string& tier) {
  auto deleted = etcd_.delete_range(request_key(tier));
  if (!deleted) return unexpected(etcd_failure("delete the rolling reboot request", deleted.error()));
  return *deleted > 0;
}

Result<RollingStatus, LockError> RollingReboot::status(const std::string& tier) {
  const std::string base = prefix_ + "/rolling-reboot/" + tier + "/";
  auto range = etcd_.range(base, EtcdClient::prefix_end(base));
  if (!range) return unexpected(etcd_failure("read the rolling reboot of tier '" + tier + "'", range.error()));
  RollingStatus out;
  out.revision = range->revision;
  const std::string done = done_prefix(tier);
  for (const KeyValue& kv : range->kvs) {
    simdjson::dom::object object;
    if (parser_->parse(kv.value).get(object) != simdjson::SUCCESS) {
      return unexpected(LockError{LockError::Kind::kBadData, "'" + kv.key + "' is not a JSON object"});
    }
    std::string_view text;
    if (kv.key == request_key(tier)) {
      RollingRequest request;
      if (object["id"].get(text) != simdjson::SUCCESS || text.empty()) {
        return unexpected(LockError{LockError::Kind::kBadData, "'" + kv.key + "' has no id"});
      }
      request.id.assign(text);
      if (object["requested_at"].get(request.requested_at) != simdjson::SUCCESS) request.requested_at = 0;
      if (object["requested_by"].get(text) == simdjson::SUCCESS) request.requested_by.assign(text);
      simdjson::dom::array hosts;
      if (object["hosts"].get(hosts) == simdjson::SUCCESS) {
        for (auto host : hosts) {
          if (host.get(text) == simdjson::SUCCESS) request.hosts.emplace_back(text);
        }
      }
      request.revision = kv.mod_revision;
      out.request = std::move(request);
    } else if (kv.key.rfind(done, 0) == 0) {
      RollingDone entry;
      entry.machine_id = kv.key.substr(done.size());
      if (object["id"].get(text) == simdjson::SUCCESS) entry.id.assign(text);
      if (object["at"].get(entry.at) != simdjson::SUCCESS) entry.at = 0;
      if (object["hostname"].get(text) == simdjson::SUCCESS) entry.hostname.assign(text);
      out.done.push_back(std::move(entry));
    }
  }
  return out;
}

Result<std::optional<RollingRequest>, LockError> RollingReboot::pending(const std::string& tier,
                                                                        const std::string& machine_id,
                                                                        const std::string& hostname) {
  auto current = status(tier);
  if (!current) return unexpected(std::move(current).error());
  if (!current->request || !current->request->includes(machine_id, hostname)) return std::optional<RollingRequest>();
  for (const RollingDone& done : current->done) {
    if (done.machine_id == machine_id && done.id == current->request->id) return std::optional<RollingRequest>();
  }
  return current->request;
}

Result<void, LockError> RollingReboot::mark_done(const std::string& tier, const std::string& machine_id,
                                                 const std::string& hostname, const std::string& request_id) {
  std::string value;
  JsonWriter json(value);
  json.begin_object().key("id").value(request_id).key("at").value(static_cast<std::int64_t>(std::time(nullptr)));
  json.key("hostname").value(hostname).end_object();
  auto put = etcd_.put(done_prefix(tier) + machine_id, value);
  if (!put) return unexpected(etcd_failure("record the rolling reboot as done", put.error()));
  return {};
}

Result<bool, LockError> RollingReboot::wait_for_change(const std::string& tier, std::int64_t revision,
                                                       std::chrono::steady_clock::time_point until) {
  auto watched = etcd_.wait_for_change(request_key(tier), {}, revision + 1, until);
  if (!watched) return unexpected(etcd_failure("watch the rolling reboot request", watched.error()));
  return !watched->events.empty() || watched->compacted;
}

}  // namespace skopos::driver
