// The systemd notification protocol (sd_notify(3)), spoken directly: one datagram per
// state to the Unix socket named by $NOTIFY_SOCKET (a path, or "@name" for the
// abstract namespace). Without $NOTIFY_SOCKET every call is a no-op, so daemons call it
// unconditionally.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include "skopos/result.h"

namespace skopos {

// Sends e.g. "READY=1", "WATCHDOG=1", "STOPPING=1", "STATUS=...". Ok when there is no
// $NOTIFY_SOCKET.
Result<void> sd_notify(std::string_view state);

// The watchdog period systemd expects (WatchdogSec=, from $WATCHDOG_USEC), when it
// applies to this process ($WATCHDOG_PID unset or ours). Send WATCHDOG=1 at half of it.
std::optional<std::chrono::microseconds> sd_watchdog_interval();

}  // namespace skopos
