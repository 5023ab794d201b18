// WatchedRebootTriggers: the reboot requests `skopos agent` watches, as the Agent's
// RebootTriggers --
//   the trigger file    its existence asks for a reboot ("file"); removed when the
//                       reboot is journaled. Its directory is watched with inotify, and
//                       the file is looked at every turn in any case;
//   reboot-required     the OS's own sign, /var/run/reboot-required (Debian, Ubuntu:
//                       written by package upgrades that need one; /run is emptied by
//                       the boot) -- "reboot-required", its directory watched too;
//   a sentinel command  run every turn (argv, no shell, with a timeout): exit 0 asks for
//                       a reboot ("sentinel"), exit 1 does not; anything else -- missing,
//                       timed out, another status -- never asks, and is reported;
//   FleetLock           the OS's updater asking through the agent's FleetLock endpoint
//                       (fleetlock.h): "fleetlock:<client id>";
//   a rolling reboot    of this host's tier in etcd ("rolling:<request id>",
//                       rolling_reboot.h); marked done for this machine when the reboot
//                       is journaled and again once the host is back. An etcd watch on a
//                       thread of its own (with its own client) wakes the agent when the
//                       request changes.
// A sign of the host's own that still asks after the reboot it asked for asks no more,
// and the loop is reported: a reboot-required file older than this boot (it survived
// the reboot), a sentinel saying 0 in a later boot than the one whose reboot it asked
// for (recorded beside the trigger file) until it has said 1 once. A reboot for any
// trigger also answers a rolling request waiting for this host.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "driver/agent.h"
#include "driver/etcd_client.h"
#include "driver/fleetlock.h"
#include "driver/rolling_reboot.h"
#include "skopos/unique_fd.h"

namespace skopos::driver {

class WatchedRebootTriggers : public RebootTriggers {
 public:
  struct Options {
    std::string trigger_file = "/var/lib/skopos/needs_reboot";
    std::string reboot_required_file = "/var/run/reboot-required";  // "": not looked at
    std::vector<std::string> sentinel;                               // argv; empty: none
    std::chrono::milliseconds sentinel_timeout{std::chrono::seconds(10)};
    // Its answer is used again for this long (the agent's recheck): 0 runs it each time.
    std::chrono::milliseconds sentinel_every{0};
    FleetLockService* fleetlock = nullptr;  // the updater's requests (FleetLock); may be null
    std::string boot_id;                    // this boot (the sentinel's loop check)
    std::string prefix;  // the cluster's etcd prefix
    Tier tier = Tier::kWorker;
    std::string machine_id;
    std::string hostname;
  };
  // `etcd`: the agent's client, used on the agent's thread to read and mark requests;
  // `watch_etcd`: the watch thread's own. A directory inotify cannot watch is a warning:
  // the file is then seen at the next recheck.
  WatchedRebootTriggers(Options options, EtcdClient& etcd, std::unique_ptr<EtcdClient> watch_etcd);
  ~WatchedRebootTriggers() override;
  WatchedRebootTriggers(const WatchedRebootTriggers&) = delete;
  WatchedRebootTriggers& operator=(const WatchedRebootTriggers&) = delete;

  Result<std::string, std::string> requested() override;
  Result<void, std::string> consumed(const std::string& trigger) override;
  Result<void, std::string> completed(const std::string& trigger) override;
  Result<void, std::string> failed(const std::string& trigger, const std::string& why) override;
  void rebooting(const std::string& trigger) override;
  void wait(std::chrono::milliseconds timeout, const std::atomic<bool>& stop, FunctionRef<void()> alive) override;
  std::string describe() const override;
  // Wakes a waiting agent (from any thread): a request arrived some other way.
  void wake();
  // Runs of the sentinel that gave no answer, or asked again after its reboot (the
  // agent's metrics); the agent's thread.
  std::uint64_t sentinel_failures() const { return sentinel_failures_; }

 private:
  void watch();
  Result<void, std::string> mark_rolling_done(const std::string& trigger, bool pending_too);
  // The host's own signs: "reboot-required", "sentinel" or ""; `note` gets a problem to
  // report (a sentinel that cannot answer, a sign still there after its reboot).
  std::string own_signs(std::string& note);
  // Runs the sentinel: "sentinel" or "", `note` as own_signs() has it.
  std::string run_sentinel(std::string& note);
  // Beside the trigger file: the boot in which the sentinel's reboot was journaled.
  std::string sentinel_record() const;

  Options options_;
  std::unique_ptr<EtcdClient> watch_etcd_;
  RollingReboot rolling_;        // the agent's thread
  RollingReboot watch_rolling_;  // the watch thread
  UniqueFd wake_;                // eventfd: the watch saw a change
  UniqueFd inotify_;
  std::atomic<bool> stopping_{false};
  std::string told_;  // the last problem reported, so it is reported once
  std::uint64_t sentinel_failures_ = 0;
  std::optional<std::chrono::steady_clock::time_point> sentinel_ran_;  // its last run
  std::string sentinel_answer_;  // and what it made of it
  std::string sentinel_note_;
  std::thread thread_;
};

}  // namespace skopos::driver
