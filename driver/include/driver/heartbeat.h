// Heartbeat: one process's liveness key, P/heartbeats/<machine-id>/<pid>.<random>, on an
// etcd lease that the process keeps alive. Every process of a machine that beats (the
// agent, an operator's `skopos drain` beside it) has its own key and lease, so one that
// exits and revokes its lease never takes another's key with it. A machine is alive
// while any of its keys exists (an older version's single key P/heartbeats/<machine-id>
// counts too). Lock holders are judged by it: a holder with no live key is "stale"
// (reported, never reclaimed). The value records the boot id and hostname, so a holder
// that rebooted shows a new boot id, and two hosts sharing a machine id show two
// hostnames.
//
// The owner calls beat() every interval(); beat() re-creates the lease and key when the
// lease expired (etcd was away longer than the TTL). stop() revokes the lease, so the key
// goes at once. Not thread-safe; give it its own EtcdClient.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "driver/etcd_client.h"
#include "driver/host_identity.h"
#include "driver/lock_service.h"

namespace skopos::driver {

class Heartbeat {
 public:
  // `ttl` is rounded to whole seconds (etcd's leases are) and raised to at least 2 s.
  Heartbeat(EtcdClient& etcd, HostIdentity self, std::string prefix, std::chrono::seconds ttl);

  // Creates the lease and key on the first call or after the lease expired; otherwise
  // refreshes the lease. Errors are etcd's; the next beat() tries again.
  Result<void, LockError> beat();
  // Revokes the lease (the key disappears). Safe to call when never started.
  Result<void, LockError> stop();

  std::chrono::milliseconds interval() const { return std::chrono::duration_cast<std::chrono::milliseconds>(ttl_) / 3; }
  std::int64_t lease() const { return lease_; }
  const std::string& key() const { return key_; }

 private:
  Result<void, LockError> start();

  EtcdClient& etcd_;
  HostIdentity self_;
  std::string key_;
  std::chrono::seconds ttl_;
  std::int64_t lease_ = 0;
  std::int64_t started_at_ = 0;
};

// Keeps a heartbeat alive on a thread of its own, with an etcd client of its own, so
// lock holders see the process alive while it waits or stops containers. Logs one line
// when beating starts failing and one when it works again.
class HeartbeatThread {
 public:
  // `lease`, when given, is where the thread publishes its lease (see lease()).
  HeartbeatThread(std::unique_ptr<EtcdClient> etcd, const HostIdentity& self, const std::string& prefix,
                  std::chrono::seconds ttl, std::shared_ptr<std::atomic<std::int64_t>> lease = nullptr);
  HeartbeatThread(const HeartbeatThread&) = delete;
  HeartbeatThread& operator=(const HeartbeatThread&) = delete;
  // Stops beating; `revoke`: the key goes at once (else it expires with its lease).
  void stop(bool revoke);
  ~HeartbeatThread();
  // The lease the heartbeat lives on, 0 while it has none: a lock waiter's place in
  // line is put on it (LockServiceOptions::waiter_lease), so it lives as long as the
  // process beats.
  std::shared_ptr<const std::atomic<std::int64_t>> lease() const { return lease_; }

 private:
  std::unique_ptr<EtcdClient> etcd_;
  std::unique_ptr<Heartbeat> heartbeat_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool revoke_ = true;
  std::shared_ptr<std::atomic<std::int64_t>> lease_ = std::make_shared<std::atomic<std::int64_t>>(0);
  std::thread thread_;
};

}  // namespace skopos::driver
