// FleetLock: the reboot lock protocol of Fedora CoreOS's Zincati and other OS updaters
// (coreos/zincati, docs/development/fleetlock/protocol.md), served by the agent on a
// local address, so that a host whose OS updates itself is drained before it reboots:
//
//   POST /v1/pre-reboot     200 once this host is drained and holds its tier slot (the
//                           drain's reboot phase is journaled in this boot). Before
//                           that: the first call asks the agent for a drain
//                           ("fleetlock:<id>"), and every call answers an error the
//                           updater retries -- 503 {"kind":"draining","value":"..."}.
//   POST /v1/steady-state   200 when no drain of this client is in progress (after the
//                           reboot: once the agent has recovered the host and given its
//                           slot back); 503 while it recovers; 409 while its drain waits
//                           for the reboot.
//
// Every request carries the header "fleet-lock-protocol: true" and the body
// {"client_params":{"id":"...","group":"..."}}; the group must be the agent's (its tier,
// or --fleetlock-group). The client that asked for the drain owns it: another id gets
// 409 until it is over. Errors are JSON {"kind","value"} with 4xx/5xx, kinds from a
// small fixed set.
//
// Thread-safe: the server's thread calls handle(); the agent's calls take_request().
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
  // `wake`: tells the agent a request arrived (its triggers' wake).
  FleetLockService(Options options, std::function<void()> wake);

  HttpServerResponse handle(const HttpServerRequest& request);
  // The drain asked for and not yet taken up, as a trigger ("fleetlock:<id>"), or "".
  std::string requested() const;
  // The agent took it up (its reboot is journaled), or it is over: forget it.
  void taken(const std::string& trigger);

 private:
  Options options_;
  std::function<void()> wake_;
  mutable std::mutex mutex_;
  std::string requested_;  // "fleetlock:<id>" asked for, not yet in the journal's past
};

}  // namespace skopos::driver
