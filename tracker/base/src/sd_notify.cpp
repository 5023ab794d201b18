#include "skopos/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <string>

#include "skopos/unique_fd.h"

namespace skopos {

Result<void> sd_notify(std::string_view state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || path[0] == '\0') return {};
  const std::string_view name(path);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (name.size() >= sizeof address.sun_path || (name[0] != '/' && name[0] != '@')) {
    return unexpected(Error::invalid("sd_notify", std::string(name), "NOTIFY_SOCKET is not a socket path"));
  }
  std::memcpy(address.sun_path, name.data(), name.size());
  if (name[0] == '@') address.sun_path[0] = '\0';  // abstract namespace
  const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return unexpected(Error::from_errno(errno, "socket", "NOTIFY_SOCKET"));
  if (::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&address),
               length) < 0) {
    return unexpected(Error::from_errno(errno, "sendto", std::string(name)));
  }
  return {};
}

std::optional<std::chrono::microseconds> sd_watchdog_interval() {
  const char* usec = std::getenv("WATCHDOG_USEC");
  if (usec == nullptr) return std::nullopt;
  if (const char* pid = std::getenv("WATCHDOG_PID")) {
    long owner = 0;
    const std::string_view text(pid);
    if (std::from_chars(text.data(), text.data() + text.size(), owner).ec != std::errc{} || owner != ::getpid()) {
      return std::nullopt;
    }
  }
  std::uint64_t value = 0;
  const std::string_view text(usec);
  if (std::from_chars(text.data(), text.data() + text.size(), value).ec != std::errc{} || value == 0) {
    return std::nullopt;
  }
  return std::chrono::microseconds(value);
}

}  // namespace skopos
