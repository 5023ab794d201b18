// A real Prometheus and Alertmanager (Debian's prometheus and prometheus-alertmanager)
// for tests, on loopback ports chosen free, each with its own data directory:
// Prometheus scrapes a metrics file the test writes (served by python3's http.server),
// evaluates the test's alerting rules every second and sends firing alerts to the
// Alertmanager. Everything is stopped and removed on destruction.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "process.h"

namespace skopos::testing {

class PrometheusStack {
 public:
  // `rules`: the body of a Prometheus rule file's groups (YAML, indented for a group's
  // "rules:" list). Aborts the test binary if Prometheus or Alertmanager is missing;
  // returns once both answer (bounded).
  static std::unique_ptr<PrometheusStack> start(const std::string& rules);
  ~PrometheusStack();

  std::string prometheus_url() const { return "http://127.0.0.1:" + std::to_string(prometheus_port_); }
  std::string alertmanager_url() const { return "http://127.0.0.1:" + std::to_string(alertmanager_port_); }
  // Replaces what the scrape target serves (Prometheus text format).
  void set_metrics(const std::string& text);
  // Waits (bounded by `limit`) until Alertmanager lists `alertname` active (true) or no
  // longer lists it at all (false), asking every 20 ms; whether it got there.
  bool wait_alert(const std::string& alertname, bool active, std::chrono::seconds limit);
  // Waits until Prometheus's own alerts API shows `alertname` in `state` ("pending",
  // "firing").
  bool wait_prometheus_alert(const std::string& alertname, const std::string& state, std::chrono::seconds limit);
  // A silence of alerts named `alertname` for an hour; its id.
  std::string silence(const std::string& alertname);
  void kill_prometheus();

 private:
  PrometheusStack() = default;
  std::string dir_;
  std::uint16_t target_port_ = 0;
  std::uint16_t prometheus_port_ = 0;
  std::uint16_t alertmanager_port_ = 0;
  std::unique_ptr<ChildProcess> target_;
  std::unique_ptr<ChildProcess> prometheus_;
  std::unique_ptr<ChildProcess> alertmanager_;
};

}  // namespace skopos::testing
