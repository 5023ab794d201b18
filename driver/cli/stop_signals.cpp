#include "stop_signals.h"

#include <signal.h>

namespace skopos::driver::cli {

namespace {
std::atomic<bool> g_stop{false};
void on_stop_signal(int) { g_stop.store(true); }
}  // namespace

const std::atomic<bool>& install_stop_signals() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  return g_stop;
}

}  // namespace skopos::driver::cli
