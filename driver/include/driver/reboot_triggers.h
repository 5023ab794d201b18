// WatchedRebootTriggers: the reboot requests `skopos agent` watches, as the Agent's
// RebootTriggers --
//   the trigger file    its existence asks for a reboot ("file"); removed when the
//                       reboot is journaled. Its directory is watched with inotify, and
//                       the file is looked at every turn in any case;
//   a rolling reboot    of this host's tier in etcd ("rolling:<request id>",
//                       rolling_reboot.h); marked done for this machine when the reboot
//                       is journaled and again once the host is back. An etcd watch on a
//                       thread of its own (with its own client) wakes the agent when the
//                       request changes.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "driver/agent.h"
#include "driver/etcd_client.h"
#include "driver/rolling_reboot.h"
#include "skopos/unique_fd.h"

namespace skopos::driver {

class WatchedRebootTriggers : public RebootTriggers {
 public:
  struct Options {
    std::string trigger_file = "/var/lib/skopos/needs_reboot";
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
  void wait(std::chrono::milliseconds timeout, const std::atomic<bool>& stop, FunctionRef<void()> alive) override;
  std::string describe() const override;

 private:
  void watch();
  Result<void, std::string> mark_rolling_done(const std::string& trigger);

  Options options_;
  std::unique_ptr<EtcdClient> watch_etcd_;
  RollingReboot rolling_;        // the agent's thread
  RollingReboot watch_rolling_;  // the watch thread
  UniqueFd wake_;                // eventfd: the watch saw a change
  UniqueFd inotify_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace skopos::driver
