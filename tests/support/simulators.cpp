#include "simulators.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "skopos/unique_fd.h"

namespace skopos::testing {

namespace {

// One HTTP/1.0 exchange with http://127.0.0.1:PORT; the body, or "" if none came.
std::string exchange(const std::string& endpoint, const std::string& method, const std::string& path,
                     const std::string& body) {
  const auto colon = endpoint.rfind(':');
  const int port = std::atoi(endpoint.c_str() + colon + 1);
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return {};
  const std::string request = method + " " + path + " HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body;
  (void)!::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL);
  std::string response;
  char buffer[8192];
  for (;;) {
    pollfd pfd{fd.get(), POLLIN, 0};
    if (::poll(&pfd, 1, 5000) <= 0) return {};
    const ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, 0);
    if (n <= 0) break;
    response.append(buffer, static_cast<std::size_t>(n));
  }
  const auto end = response.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : response.substr(end + 4);
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
  return exchange(endpoint, "POST", "/__sim/control", json);
}

std::string Simulator::get(const std::string& endpoint, const std::string& path) {
  return exchange(endpoint, "GET", path, "");
}

std::string Simulator::post(const std::string& endpoint, const std::string& path, const std::string& body) {
  return exchange(endpoint, "POST", path, body);
}

std::string Simulator::request(const std::string& endpoint, const std::string& method, const std::string& path,
                               const std::string& body) {
  return exchange(endpoint, method, path, body);
}

}  // namespace skopos::testing
