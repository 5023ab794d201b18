// EtcdDrainLocks: the drain's locks on LockService (etcd).
#include "driver/drain_systems_impl.h"

#include <ctime>

namespace skopos::driver {

namespace {

DrainError from_lock(const LockError& error) {
  switch (error.kind) {
    case LockError::Kind::kTimedOut: return {DrainError::Kind::kTimedOut, error.message};
    case LockError::Kind::kConflict: return {DrainError::Kind::kRefused, error.message};
    case LockError::Kind::kInvalid: return {DrainError::Kind::kUsage, error.message};
    case LockError::Kind::kInterrupted: return {DrainError::Kind::kInterrupted, error.message};
    case LockError::Kind::kEtcd:
    case LockError::Kind::kBadData: return {DrainError::Kind::kFailed, error.message};
  }
  return {DrainError::Kind::kFailed, error.message};
}

HostLockInfo host_info(const HostLockState& state) { return HostLockInfo{state.locked, state.token, state.revision}; }

}  // namespace

Result<HostLockInfo, DrainError> EtcdDrainLocks::host_status() {
  auto state = locks_.host_status(locks_.self().machine_id);
  if (!state) return unexpected(from_lock(state.error()));
  return host_info(*state);
}

Result<HostLockInfo, DrainError> EtcdDrainLocks::host_lock(const std::string& token) {
  auto state = locks_.host_lock(token);
  if (!state) return unexpected(from_lock(state.error()));
  return host_info(*state);
}

Result<bool, DrainError> EtcdDrainLocks::host_unlock(const std::string& token) {
  auto removed = locks_.host_unlock(token);
  if (!removed) return unexpected(from_lock(removed.error()));
  return *removed;
}

Result<std::int64_t, DrainError> EtcdDrainLocks::acquire(const std::string& lock, const std::string& group,
                                                         const std::string& token,
                                                         std::chrono::steady_clock::time_point until,
                                                         const std::atomic<bool>& stop) {
  auto acquired = locks_.acquire(lock, group, token, until, &stop);
  if (!acquired) return unexpected(from_lock(acquired.error()));
  return acquired->fencing_token;
}

Result<bool, DrainError> EtcdDrainLocks::release(const std::string& lock, const std::string& group,
                                                 std::int64_t fencing_token) {
  auto released = locks_.release(lock, group, fencing_token);
  if (!released) return unexpected(from_lock(released.error()));
  return *released;
}

Result<void, DrainError> EtcdDrainLocks::guard(const std::string& lock, const std::string& group,
                                               std::int64_t fencing_token, const std::string& phase) {
  auto guarded = locks_.guard(lock, group, fencing_token, phase);
  if (!guarded) return unexpected(from_lock(guarded.error()));
  return {};
}

Result<std::string, DrainError> EtcdDrainLocks::describe(const std::string& lock, const std::string& group) {
  auto state = locks_.group_status(lock, group);
  if (!state) return unexpected(from_lock(state.error()));
  std::string out = "max " + std::to_string(state->max) + ", ";
  if (state->holders.empty()) return out + "free";
  out += "held by:";
  const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
  bool first = true;
  for (const Holder& holder : state->holders) {
    const std::int64_t held = holder.record.acquired_at > 0 ? (now - holder.record.acquired_at) / 60 : -1;
    out += std::string(first ? " " : ", ") +
           (holder.record.hostname.empty() ? holder.machine_id : holder.record.hostname) + " (" + holder.record.token +
           (holder.record.phase.empty() ? "" : ", phase " + holder.record.phase) +
           (held >= 0 ? ", " + std::to_string(held) + " min" : "") + (holder.heartbeat ? "" : ", heartbeat stale") +
           ")";
    first = false;
  }
  return out;
}

Result<int, DrainError> EtcdDrainLocks::leave_lines() {
  auto left = locks_.leave_lines();
  if (!left) return unexpected(from_lock(left.error()));
  return *left;
}

Result<DrainingHosts, DrainError> EtcdDrainLocks::budget_claims() {
  auto claims = locks_.budget_claims();
  if (!claims) return unexpected(from_lock(claims.error()));
  DrainingHosts out;
  out.revision = claims->revision;
  for (const BudgetClaim& claim : claims->claims) {
    if (claim.machine_id == locks_.self().machine_id) {
      out.ours = true;
    } else {
      out.hostnames.push_back(claim.hostname);
    }
  }
  return out;
}

Result<bool, DrainError> EtcdDrainLocks::claim_budget(const DrainingHosts& seen, const std::string& hostname,
                                                      const std::string& kind) {
  auto claimed = locks_.claim_budget(seen.revision, hostname, kind);
  if (!claimed) return unexpected(from_lock(claimed.error()));
  return *claimed;
}

Result<bool, DrainError> EtcdDrainLocks::release_budget_claim() {
  auto released = locks_.release_budget_claim();
  if (!released) return unexpected(from_lock(released.error()));
  return *released;
}

Result<SurgeLedger, DrainError> EtcdDrainLocks::surge_ledger(const std::string& app) {
  auto record = locks_.surge_record(app);
  if (!record) return unexpected(from_lock(record.error()));
  return SurgeLedger{record->expected, std::move(record->hosts), std::move(record->leaving), record->back_to,
                     record->revision};
}

Result<bool, DrainError> EtcdDrainLocks::write_surge_ledger(const std::string& app, const SurgeLedger& seen,
                                                            const SurgeLedger& next) {
  auto written = locks_.write_surge_record(app, seen.revision, SurgeRecord{next.expected, next.hosts, next.leaving, next.back_to, 0});
  if (!written) return unexpected(from_lock(written.error()));
  return *written;
}

}  // namespace skopos::driver
