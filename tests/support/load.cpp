#include "load.h"

#include <simdjson.h>

#include <chrono>

#include "skopos/subprocess.h"

namespace skopos::testing {

Load::Load(const std::string& program, const std::string& target, long requests, int slow_every, int slow_ms) {
  thread_ = std::thread([=, this] {
    auto out = run_program({program, "--target", target, "--workers", "10", "--requests", std::to_string(requests),
                            "--duration", "240", "--slow-every", std::to_string(slow_every), "--slow-ms",
                            std::to_string(slow_ms), "--timeout", "30"},
                           {}, std::chrono::seconds(300));
    output_ = out ? out->out : "load: " + out.error().message();
    running_ = false;
  });
}

Load::~Load() {
  if (thread_.joinable()) thread_.join();
}

Load::Totals Load::wait() {
  if (thread_.joinable()) thread_.join();
  Totals totals;
  totals.text = output_;
  simdjson::dom::parser parser;
  simdjson::dom::object root;
  if (parser.parse(output_).get(root) != simdjson::SUCCESS) return totals;
  std::int64_t value = 0;
  if (root["requests"].get(value) == simdjson::SUCCESS) totals.requests = value;
  if (root["served"].get(value) == simdjson::SUCCESS) totals.served = value;
  if (root["failed"].get(value) == simdjson::SUCCESS) totals.failed = value;
  simdjson::dom::object by_instance;
  if (root["by_instance"].get(by_instance) == simdjson::SUCCESS) {
    for (auto [name, count] : by_instance) {
      std::int64_t n = 0;
      if (count.get(n) == simdjson::SUCCESS) totals.by_instance[std::string(name)] = n;
    }
  }
  return totals;
}

}  // namespace skopos::testing
