#include "systemd_support.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace skopos::testing {

VerifiedUnit verify_unit(const std::string& unit_path, const std::string& installed, const std::string& binary) {
  VerifiedUnit out;
  std::ifstream in(unit_path);
  std::stringstream text;
  text << in.rdbuf();
  out.text = text.str();
  std::string unit = out.text;
  const std::string exec = "ExecStart=" + installed;
  if (const auto at = unit.find(exec); at != std::string::npos) unit.replace(at, exec.size(), "ExecStart=" + binary);
  const std::string dir = "/tmp/skopos-unit-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/" + std::filesystem::path(unit_path).filename().string();
  std::ofstream(path) << unit;
  out.verify = run_process({"systemd-analyze", "verify", path});
  std::filesystem::remove_all(dir);
  return out;
}

NotifySocket::NotifySocket(std::string path) : path_(std::move(path)) {
  ::unlink(path_.c_str());
  fd_ = UniqueFd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  path_.copy(address.sun_path, sizeof address.sun_path - 1);
  (void)::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
}

NotifySocket::~NotifySocket() { ::unlink(path_.c_str()); }

std::string NotifySocket::next(std::chrono::milliseconds timeout) {
  pollfd pfd{fd_.get(), POLLIN, 0};
  if (::poll(&pfd, 1, static_cast<int>(timeout.count())) <= 0) return "";
  char buffer[4096];
  const ssize_t n = ::recv(fd_.get(), buffer, sizeof buffer, 0);
  return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : "";
}

}  // namespace skopos::testing
