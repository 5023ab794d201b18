// Pauses: a tier, or one host, that takes no new turn -- no reboot drain starts there
// until it is resumed; a drain in progress finishes. Kept in etcd, so every agent and
// every status command sees them:
//   P/pause/tier/<tier>       {"reason", "by", "at"}
//   P/pause/host/<hostname>   (the same)
// A pause is a start gate (drain.h): checked before a host joins its tier's line and
// again once it holds its slot. A record that cannot be read pauses whom it may concern
// (fails closed), and says so.
//
// Not thread-safe: one per EtcdClient.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "driver/etcd_client.h"
#include "driver/reboot_windows.h"
#include "skopos/result.h"

namespace skopos::driver {

struct Pause {
  WindowStore::Scope scope = WindowStore::Scope::kTier;
  std::string owner;  // the tier or the host name
  std::string reason;
  std::string by;
  std::int64_t at = 0;  // unix seconds
  std::string problem;  // non-empty: the record could not be read

  // "tier worker paused by alice at 2026-12-05T14:40:00Z: kernel rollout on hold".
  std::string describe() const;
};

class PauseStore {
 public:
  PauseStore(EtcdClient& etcd, std::string prefix) : etcd_(etcd), prefix_(std::move(prefix)) {}

  Result<void, std::string> pause(WindowStore::Scope scope, const std::string& owner, const std::string& reason,
                                  const std::string& by, std::int64_t at);
  // Whether there was a pause to lift.
  Result<bool, std::string> resume(WindowStore::Scope scope, const std::string& owner);
  Result<std::vector<Pause>, std::string> list();
  // The pause that holds a host of `tier` named `hostname` (its tier's first), or null.
  static const Pause* find(const std::vector<Pause>& all, const std::string& tier, const std::string& hostname);
  // Why a host of `tier` named `hostname` is paused (its tier's pause first), or nullopt.
  static std::optional<std::string> paused(const std::vector<Pause>& all, const std::string& tier,
                                           const std::string& hostname);

  static std::string root(const std::string& prefix) { return prefix + "/pause/"; }
  static std::string key(const std::string& prefix, WindowStore::Scope scope, const std::string& owner) {
    return root(prefix) + (scope == WindowStore::Scope::kTier ? "tier/" : "host/") + owner;
  }

 private:
  EtcdClient& etcd_;
  std::string prefix_;
};

// Whether a host of `tier` named `hostname` may start as far as etcd's pauses and
// windows (and its agent's own `local` windows) say, at `now`: a pause first, then the
// windows; a list that could not be read closes the gate. What the agent's start gate
// checks before its health gates, and what rolling-reboot --status shows. Both gates
// are evaluated, each in `gates` ("pause", "window"); the first closed one decides.
WindowVerdict pauses_and_windows(const Result<std::vector<Pause>, std::string>& pauses,
                                 const Result<std::vector<WindowStore::Stored>, std::string>& windows,
                                 const std::vector<RebootWindow>& local, const std::string& tier,
                                 const std::string& hostname, SysSeconds now);

// For `skopos lock status`: the start gates etcd holds, one entry per gate of each tier
// and host that has a pause or windows, each evaluated at `now` on its own (a host's
// windows without its tier's: etcd does not say which tier a host is in). A list that
// cannot be read, or a record whose key names no owner, is an unknown entry (owner "?").
struct OwnerGate {
  WindowStore::Scope scope = WindowStore::Scope::kTier;
  std::string owner;
  GateState state;
};
std::vector<OwnerGate> stored_gates(const Result<std::vector<Pause>, std::string>& pauses,
                                    const Result<std::vector<WindowStore::Stored>, std::string>& windows,
                                    SysSeconds now);

}  // namespace skopos::driver
