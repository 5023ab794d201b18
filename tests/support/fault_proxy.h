// FaultProxy: a TCP proxy on loopback in front of an HTTP server (etcd), for fault
// tests. It forwards bytes both ways and can, on command:
//   * swallow the responses to the next N requests whose request line starts with a
//     given text (e.g. "POST /v3/kv/txn"): the server applied the request, the client
//     never hears back and times out, the "unknown outcome" case;
//   * do the same for every Nth such request, for a long run;
//   * answer every request itself with HTTP 500, or never answer (hang);
//   * delay every request (a slow network).
// One thread per connection direction; stopped and joined on destruction.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "skopos/unique_fd.h"

namespace skopos::testing {

class FaultProxy {
 public:
  enum class Mode : std::uint8_t { kForward, kStatus500, kHang };

  // Forwards to 127.0.0.1:`upstream_port`.
  explicit FaultProxy(std::uint16_t upstream_port);
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

  void set_mode(Mode mode) { mode_ = mode; }
  // Holds every request this long before forwarding it (0: none): a slow network.
  void set_delay(std::chrono::milliseconds delay) { delay_ms_ = static_cast<int>(delay.count()); }
  // Swallows the responses of the next `count` requests whose first line starts with
  // `request_prefix`.
  void drop_next(const std::string& request_prefix, int count);
  // Swallows the response of every `every`th such request from now on (0 stops).
  void drop_every(const std::string& request_prefix, int every);
  int dropped() const { return dropped_; }
  int forwarded_requests() const { return requests_; }

 private:
  void accept_loop();
  void serve(UniqueFd client);
  bool should_drop(std::string_view request_start);

  std::uint16_t upstream_port_;
  std::uint16_t port_ = 0;
  UniqueFd listen_;
  std::atomic<int> delay_ms_{0};
  std::atomic<Mode> mode_{Mode::kForward};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::string drop_prefix_;
  int drop_count_ = 0;
  int drop_every_ = 0;
  int matched_ = 0;
  std::atomic<int> dropped_{0};
  std::atomic<int> requests_{0};
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  void reap(bool all);
  std::vector<Worker> workers_;
  std::vector<int> open_fds_;  // shut down on destruction to end their threads
  std::thread acceptor_;
};

}  // namespace skopos::testing
