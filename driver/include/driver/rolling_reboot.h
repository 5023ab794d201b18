// RollingReboot: a tier-wide reboot request in etcd that every host's agent watches
// (replacing the first generation's fleet units). One request per tier; each host takes
// its turn through the tier's reboot lock (at most `max` at a time) and records that it
// did, so a host reboots once per request.
//
// Keys under the prefix P:
//   P/rolling-reboot/<tier>/request          {"id", "requested_at", "requested_by", "hosts": [...]}
//   P/rolling-reboot/<tier>/done/<machine>   {"id", "at", "hostname"}
// An empty "hosts" means every host of the tier.
//
// Not thread-safe: one per EtcdClient.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "driver/etcd_client.h"
#include "driver/lock_service.h"

namespace simdjson::dom {
class parser;
}

namespace skopos::driver {

struct RollingRequest {
  std::string id;
  std::int64_t requested_at = 0;  // unix seconds
  std::string requested_by;
  std::vector<std::string> hosts;  // machine ids or host names; empty: all
  std::int64_t revision = 0;       // the key's mod revision

  bool includes(const std::string& machine_id, const std::string& hostname) const;
};

struct RollingDone {
  std::string machine_id;
  std::string id;  // the request it did
  std::int64_t at = 0;
  std::string hostname;
};

struct RollingStatus {
  std::optional<RollingRequest> request;
  std::vector<RollingDone> done;  // every host's last turn
  std::int64_t revision = 0;
};

class RollingReboot {
 public:
  RollingReboot(EtcdClient& etcd, std::string prefix);
  ~RollingReboot();

  // Writes a new request (a new id) for `tier`, replacing any earlier one.
  Result<RollingRequest, LockError> request(const std::string& tier, const std::string& requested_by,
                                            const std::vector<std::string>& hosts);
  // Deletes the request; whether there was one.
  Result<bool, LockError> cancel(const std::string& tier);
  Result<RollingStatus, LockError> status(const std::string& tier);
  // The request this machine still has to do, if any.
  Result<std::optional<RollingRequest>, LockError> pending(const std::string& tier, const std::string& machine_id,
                                                           const std::string& hostname);
  Result<void, LockError> mark_done(const std::string& tier, const std::string& machine_id,
                                    const std::string& hostname, const std::string& request_id);
  // Waits (etcd watch) until the tier's request key changes after `revision`, or `until`.
  Result<bool, LockError> wait_for_change(const std::string& tier, std::int64_t revision,
                                          std::chrono::steady_clock::time_point until);

  std::string request_key(const std::string& tier) const;
  std::string done_prefix(const std::string& tier) const;

 private:
  EtcdClient& etcd_;
  std::string prefix_;
  std::unique_ptr<simdjson::dom::parser> parser_;
};

}  // namespace skopos::driver
