// FleetChecker: proves a fleet run from etcd's own history, not from what the agents
// say. It watches every key under the prefix from a revision taken before the run,
// applies each revision's events together (one transaction is one revision), and after
// every revision checks that
//   * no lock group has more holders than its max, no machine holds slots of two
//     groups at once, and no fencing token (a holder key's create revision) is used
//     twice;
//   * every app keeps its required instances on hosts that hold no claim on the
//     disruption budget (a drain claims before it takes anything away and withdraws
//     once the host is back).
// It also counts each machine's slots taken and reboots per group, and what was left at
// the end.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fleet.h"

namespace simdjson::dom {
class parser;
}

namespace skopos::testing {

class FleetChecker {
 public:
  // Starts replaying from `from_revision` at once, on a thread of its own. It knows only
  // what it replays: take `from_revision` before the groups' max keys are written.
  FleetChecker(std::vector<std::string> endpoints, std::string prefix, std::int64_t from_revision,
               std::vector<FleetApp> apps);
  ~FleetChecker();
  FleetChecker(const FleetChecker&) = delete;
  FleetChecker& operator=(const FleetChecker&) = delete;

  // Waits (bounded) until every revision up to `last` was replayed, then stops.
  void finish(std::int64_t last);

  const std::vector<std::string>& violations() const { return violations_; }
  std::int64_t revisions() const { return revisions_; }
  // Slots taken (holder keys created) per "<lock>/<group>" and machine: a host whose
  // drain was refused (the budget) took its slot, gave it back and took it again later.
  const std::map<std::string, std::map<std::string, int>>& taken() const { return taken_; }
  // Reboots per "<lock>/<group>" and machine: holdings (fencing tokens) whose record
  // reached the phase "reboot", which the holder records before it runs the reboot.
  int reboots(const std::string& group, const std::string& machine) const {
    const auto g = rebooted_.find(group);
    if (g == rebooted_.end()) return 0;
    const auto m = g->second.find(machine);
    return m == g->second.end() ? 0 : static_cast<int>(m->second.size());
  }
  // Keys of holders, queue entries, host locks and budget claims that exist at the end
  // of the replay.
  std::vector<std::string> left_over() const;
  // The most holders a group had at once, per "<lock>/<group>".
  const std::map<std::string, int>& peak_holders() const { return peak_; }

 private:
  void run();
  void apply(const std::string& key, bool put, const std::string& value, std::int64_t create_revision);
  void check(std::int64_t revision);
  void violation(std::string text);

  std::vector<std::string> endpoints_;
  std::string prefix_;
  std::int64_t next_;
  std::vector<FleetApp> apps_;
  std::unique_ptr<simdjson::dom::parser> parser_;  // the replay thread's, for the records it reads
  std::atomic<std::int64_t> last_{0};
  std::thread thread_;

  // The replayed state.
  std::map<std::string, std::int64_t> max_;                           // group -> max
  std::map<std::string, std::map<std::string, std::int64_t>> holders_;  // group -> machine -> token
  std::set<std::string> waiters_;                                     // queue keys
  std::set<std::string> host_locks_;
  std::map<std::string, std::string> claims_;  // budget key -> host name
  std::set<std::int64_t> tokens_;
  std::map<std::string, std::map<std::string, int>> taken_;
  std::map<std::string, std::map<std::string, std::set<std::int64_t>>> rebooted_;
  std::map<std::string, int> peak_;
  std::vector<std::string> violations_;
  std::int64_t revisions_ = 0;
};

}  // namespace skopos::testing
