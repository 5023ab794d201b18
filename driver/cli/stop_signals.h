// The CLI's only signal handlers: SIGINT and SIGTERM stop a drain or the agent at its
// next safe point.
#pragma once

#include <atomic>

namespace skopos::driver::cli {

// SIGINT and SIGTERM set the returned flag (the drain stops at its next safe point).
const std::atomic<bool>& install_stop_signals();

}  // namespace skopos::driver::cli
