#include "driver/heartbeat.h"

#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <random>

#include "skopos/json_writer.h"
#include "skopos/log.h"

namespace skopos::driver {

Heartbeat::Heartbeat(EtcdClient& etcd, HostIdentity self, std::string prefix, std::chrono::seconds ttl)
    : etcd_(etcd), self_(std::move(self)), ttl_(std::max<std::chrono::seconds>(ttl, std::chrono::seconds(2))) {
  while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
  // One key per process: an operator's `skopos drain` beside the running agent beats
  // (and revokes, on exit) its own key, never the agent's. The machine is alive while
  // any of its keys is.
  std::random_device random;
  char instance[32];
  std::snprintf(instance, sizeof instance, "%d.%08x", static_cast<int>(::getpid()), random());
  key_ = prefix + "/heartbeats/" + self_.machine_id + "/" + instance;
}

Result<void, LockError> Heartbeat::start() {
  auto lease = etcd_.lease_grant(ttl_.count());
  if (!lease) return unexpected(LockError{LockError::Kind::kEtcd, "heartbeat lease: " + lease.error().message});
  if (started_at_ == 0) started_at_ = static_cast<std::int64_t>(std::time(nullptr));
  std::string value;
  JsonWriter json(value);
  json.begin_object()
      .key("boot_id").value(self_.boot_id)
      .key("hostname").value(self_.hostname)
      .key("pid").value(static_cast<std::int64_t>(::getpid()))
      .key("since").value(started_at_)
      .end_object();
  auto put = etcd_.put(key_, value, *lease);
  if (!put) {
    // The key may or may not be there; either way the lease is ours to drop. Without the
    // key a live lease is useless, so revoke it and let the next beat start over.
    (void)etcd_.lease_revoke(*lease);
    return unexpected(LockError{LockError::Kind::kEtcd, "heartbeat key: " + put.error().message});
  }
  lease_ = *lease;
  return {};
}

Result<void, LockError> Heartbeat::beat() {
  if (lease_ == 0) return start();
  auto ttl = etcd_.lease_keepalive(lease_);
  if (!ttl) return unexpected(LockError{LockError::Kind::kEtcd, "heartbeat keepalive: " + ttl.error().message});
  if (*ttl > 0) return {};
  log_warning("heartbeat lease of '" + self_.machine_id + "' had expired (etcd unreachable for longer than " +
              std::to_string(ttl_.count()) + " s); this host looked stale meanwhile; renewing");
  lease_ = 0;
  return start();
}

Result<void, LockError> Heartbeat::stop() {
  if (lease_ == 0) return {};
  auto revoked = etcd_.lease_revoke(lease_);
  if (!revoked && !(revoked.error().kind == OutsideError::Kind::kRefused && revoked.error().code == 5)) {
    return unexpected(LockError{LockError::Kind::kEtcd, "heartbeat revoke: " + revoked.error().message});
  }
  lease_ = 0;
  return {};
}

// ---- on a thread of its own ----------------------------------------------------------

HeartbeatThread::HeartbeatThread(std::unique_ptr<EtcdClient> etcd, const HostIdentity& self,
                                 const std::string& prefix, std::chrono::seconds ttl,
                                 std::shared_ptr<std::atomic<std::int64_t>> lease)
    : etcd_(std::move(etcd)) {
  if (lease != nullptr) lease_ = std::move(lease);
  heartbeat_ = std::make_unique<Heartbeat>(*etcd_, self, prefix, ttl);
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mutex_);
    std::string last_error;
    while (!stopping_) {
      lock.unlock();
      auto beat = heartbeat_->beat();
      lease_->store(heartbeat_->lease(), std::memory_order_relaxed);
      lock.lock();
      // One line when it starts failing and one when it recovers, not one per beat.
      const std::string error = beat ? std::string() : beat.error().message;
      if (error != last_error) {
        if (!error.empty()) log_warning("heartbeat: " + error);
        if (error.empty()) log_info("heartbeat: alive again");
        last_error = error;
      }
      wake_.wait_for(lock, heartbeat_->interval(), [this] { return stopping_; });
    }
    lease_->store(0, std::memory_order_relaxed);
    if (revoke_) (void)heartbeat_->stop();
  });
}

void HeartbeatThread::stop(bool revoke) {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    revoke_ = revoke;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

HeartbeatThread::~HeartbeatThread() { stop(true); }

}  // namespace skopos::driver
