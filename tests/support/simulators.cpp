#include "simulators.h"

#include <signal.h>
#include <simdjson.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>


namespace skopos::testing {

namespace {

std::uint16_t port_of(const std::string& endpoint) {
  return static_cast<std::uint16_t>(std::atoi(endpoint.c_str() + endpoint.rfind(':') + 1));
}

}  // namespace

std::unique_ptr<Simulator> Simulator::start(const std::string& tools_dir, const std::string& program,
                                            const std::string& spec) {
  std::unique_ptr<Simulator> sim(new Simulator());
  static int sequence = 0;
  sim->spec_path_ = "/tmp/skopos-sim-" + std::to_string(::getpid()) + "-" + std::to_string(sequence++) + ".json";
  std::ofstream(sim->spec_path_) << spec;
  sim->process_ = std::make_unique<ChildProcess>(std::vector<std::string>{tools_dir + "/" + program, sim->spec_path_});
  auto line = sim->process_->read_line(std::chrono::seconds(20));
  if (!line) {
    std::fprintf(stderr, "Simulator: %s did not start (see its output above)\n", program.c_str());
    std::abort();
  }
  sim->endpoints_ = *line;
  return sim;
}

Simulator::~Simulator() {
  if (process_) process_->stop(SIGTERM, std::chrono::seconds(10));
  ::unlink(spec_path_.c_str());
}

std::vector<std::string> Simulator::list(const std::string& field) const {
  simdjson::dom::parser parser;
  std::vector<std::string> out;
  simdjson::dom::array array;
  if (parser.parse(endpoints_)[field].get(array) != simdjson::SUCCESS) return out;
  for (simdjson::dom::element item : array) out.emplace_back(std::string_view(item));
  return out;
}

std::map<std::string, std::string> Simulator::map(const std::string& field) const {
  simdjson::dom::parser parser;
  std::map<std::string, std::string> out;
  simdjson::dom::object object;
  if (parser.parse(endpoints_)[field].get(object) != simdjson::SUCCESS) return out;
  for (auto [key, value] : object) out.emplace(std::string(key), std::string(std::string_view(value)));
  return out;
}

std::string Simulator::control(const std::string& endpoint, const std::string& json) {
  return loopback_http(port_of(endpoint), "POST", "/__sim/control", json);
}

std::string Simulator::get(const std::string& endpoint, const std::string& path) {
  return loopback_http(port_of(endpoint), "GET", path);
}

std::string Simulator::post(const std::string& endpoint, const std::string& path, const std::string& body) {
  return loopback_http(port_of(endpoint), "POST", path, body);
}

std::string Simulator::request(const std::string& endpoint, const std::string& method, const std::string& path,
                               const std::string& body) {
  return loopback_http(port_of(endpoint), method, path, body);
}

}  // namespace skopos::testing
