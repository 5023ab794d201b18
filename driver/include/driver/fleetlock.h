// FleetLock: the reboot lock protocol of Fedora CoreOS's Zincati and other OS updaters
// (coreos/zincati, docs/development/fleetlock/protocol.md), served by the agent on a
// local address, so that a host whose OS updates itself is drained before it reboots:
//
//   POST /v1/pre-reboot     200 once this host is drained and holds its tier slot (the
//                           drain's reboot phase is journaled in this boot, with its
//                           fencing token, and the agent says the slot passed its check
//                           there -- in this process: after an agent restart, once the
//                           resumed drain has checked it again). Before
//                           that: the first call asks the agent for a drain
//                           ("fleetlock:<id>"), and every call answers an error the
//                           updater retries -- 503 {"kind":"draining","value":"..."}.
//   POST /v1/steady-state   200 when this client holds nothing (after the reboot: once
//                           the agent has recovered the host and given its slot back);
//                           503 while it recovers, and while its drain runs; 409 once
//                           its drain waits for the reboot. (An updater that restarts in
//                           the middle of its drain is answered so until the host reboots
//                           or 'skopos undrain' brings it back: the agent does not yet roll
//                           a drain back on an unlock.)
//
// Every request carries the header "fleet-lock-protocol: true" and the body
// {"client_params":{"id":"...","group":"..."}}; the group must be the agent's (its tier,
// or --fleetlock-group). The client that asked for the drain owns it: another id gets
// 409 until it is over. Errors are JSON {"kind","value"} with 4xx/5xx, kinds from a
// small fixed set.
//
// Thread-safe: the server's thread calls handle(); the agent's thread requested(),
// taken() and ready().
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "skopos/http_server.h"
#include "skopos/result.h"

namespace skopos::driver {

struct FleetLockCall {
  enum class Op : std::uint8_t { kPreReboot, kSteadyState };
  Op op = Op::kPreReboot;
  std::string id;
  std::string group;
};

// The protocol's own checks of a request; the error is the response to send.
Result<FleetLockCall, HttpServerResponse> parse_fleetlock(const HttpServerRequest& request);
HttpServerResponse fleetlock_error(unsigned status, const std::string& kind, const std::string& value);

class FleetLockService {
 public:
  struct Options {
    std::string group;         // the group this agent serves (its tier's name by default)
    std::string journal_path;  // the agent's journal: what the drain has done
    std::string boot_id;       // this boot
  };
  explicit FleetLockService(Options options);

  // Who to wake when a drain is asked for (the agent's triggers); nullptr: nobody. The
  // agent sets it once its triggers exist and clears it before they go.
  void set_wake(std::function<void()> wake);

  HttpServerResponse handle(const HttpServerRequest& request);
  // The drain asked for, as a trigger ("fleetlock:<id>"), or "": the agent is taking it
  // up (until its drain is journaled, steady-state answers "draining", not 200).
  std::string requested();
  // Its reboot is journaled: the request is answered.
  void taken(const std::string& trigger);
  // Its drain's reboot step passed (the slot checked under its fencing token): from now
  // on, in this process, pre-reboot answers 200.
  void ready(const std::string& trigger);

 private:
  Options options_;
  std::mutex mutex_;
  std::function<void()> wake_;
  std::string requested_;  // "fleetlock:<id>" asked for, not yet journaled as rebooting
  bool taken_up_ = false;  // the agent has seen requested_
  std::string ready_;      // the trigger whose drain is ready for the reboot
};

}  // namespace skopos::driver
