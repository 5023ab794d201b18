#include "driver/zookeeper_health.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <sstream>

#include "skopos/unique_fd.h"

namespace skopos::driver {

namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// A TCP connection to host:port within the deadline (every resolved address in turn).
Result<UniqueFd> connect_to(const std::string& endpoint, Clock::time_point deadline) {
  const auto colon = endpoint.rfind(':');
  if (colon == std::string::npos) return unexpected(Error::invalid("zookeeper", endpoint, "expected host:port"));
  std::string host = endpoint.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string port = endpoint.substr(colon + 1);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return unexpected(Error::invalid("resolve", endpoint, ::gai_strerror(rc)));
  }
  int last_errno = ECONNREFUSED;
  for (addrinfo* address = found; address != nullptr; address = address->ai_next) {
    UniqueFd fd(::socket(address->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) continue;
    if (::connect(fd.get(), address->ai_addr, address->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last_errno = errno;
      continue;
    }
    pollfd pfd{fd.get(), POLLOUT, 0};
    if (::poll(&pfd, 1, remaining_ms(deadline)) <= 0) {
      last_errno = ETIMEDOUT;
      continue;
    }
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) {
      last_errno = error;
      continue;
    }
    ::freeaddrinfo(found);
    return fd;
  }
  ::freeaddrinfo(found);
  return unexpected(Error::from_errno(last_errno, "connect", endpoint));
}

std::string line_value(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) {
      std::string value = line.substr(prefix.size());
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
      while (!value.empty() && (value.back() == '\r' || value.back() == ' ')) value.pop_back();
      return value;
    }
  }
  return {};
}

bool disabled(const std::string& answer) { return answer.find("is not executed because it is not in the whitelist") != std::string::npos; }

}  // namespace

Result<std::string> zookeeper_four_letter_word(const std::string& endpoint, const std::string& word,
                                               std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto fd = connect_to(endpoint, deadline);
  if (!fd) return unexpected(std::move(fd).error());
  if (::send(fd->get(), word.data(), word.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(word.size())) {
    return unexpected(Error::from_errno(errno, "send " + word, endpoint));
  }
  // The server answers and closes.
  std::string answer;
  char buffer[4096];
  for (;;) {
    pollfd pfd{fd->get(), POLLIN, 0};
    const int ready = ::poll(&pfd, 1, remaining_ms(deadline));
    if (ready <= 0) return unexpected(Error::invalid(word, endpoint, "no complete answer within the deadline"));
    const ssize_t n = ::recv(fd->get(), buffer, sizeof buffer, 0);
    if (n < 0) return unexpected(Error::from_errno(errno, "receive " + word, endpoint));
    if (n == 0) break;
    answer.append(buffer, static_cast<std::size_t>(n));
    if (answer.size() > 1024 * 1024) return unexpected(Error::invalid(word, endpoint, "answer larger than 1 MiB"));
  }
  return answer;
}

bool read_srvr(const std::string& answer, ZkServerHealth& health) {
  const std::string& endpoint = health.endpoint;
  if (disabled(answer)) {
    health.error = "'srvr' is disabled on " + endpoint + "; add it to 4lw.commands.whitelist";
    return false;
  }
  if (answer.find("not currently serving requests") != std::string::npos) {
    health.error = endpoint + " is not serving requests (no quorum)";
    return false;
  }
  health.mode = line_value(answer, "Mode:");
  health.version = line_value(answer, "Zookeeper version:");
  health.serving = !health.mode.empty();
  if (!health.serving) {
    std::string start = answer.substr(0, 100);
    for (char& c : start) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
    }
    health.error = endpoint + " answered srvr without a mode: '" + start + "'";
    return false;
  }
  return true;
}

std::int64_t read_synced_followers(const std::string& answer) {
  if (disabled(answer)) return -1;
  const std::string synced = line_value(answer, "zk_synced_followers");
  std::int64_t value = 0;
  const auto [ptr, ec] = std::from_chars(synced.data(), synced.data() + synced.size(), value);
  if (synced.empty() || ec != std::errc{} || ptr != synced.data() + synced.size() || value < 0) return -1;
  return value;
}

ZkServerHealth check_zookeeper_server(const std::string& endpoint, std::chrono::milliseconds timeout) {
  ZkServerHealth health;
  health.endpoint = endpoint;
  auto ruok = zookeeper_four_letter_word(endpoint, "ruok", timeout);
  if (!ruok) {
    health.error = ruok.error().message();
    return health;
  }
  health.reachable = true;
  if (disabled(*ruok)) {
    health.error = "four-letter words are disabled on " + endpoint +
                   "; set 4lw.commands.whitelist=ruok,srvr,mntr in its zoo.cfg";
    return health;
  }
  health.imok = *ruok == "imok";
  auto srvr = zookeeper_four_letter_word(endpoint, "srvr", timeout);
  if (!srvr) {
    health.error = srvr.error().message();
    return health;
  }
  if (!read_srvr(*srvr, health)) return health;
  if (health.mode == "leader") {
    auto mntr = zookeeper_four_letter_word(endpoint, "mntr", timeout);
    if (mntr) health.synced_followers = read_synced_followers(*mntr);
  }
  if (!health.imok) health.error = endpoint + " did not answer imok to ruok";
  return health;
}

ZkEnsembleHealth check_zookeeper(const std::vector<std::string>& endpoints, std::chrono::milliseconds timeout) {
  ZkEnsembleHealth ensemble;
  std::size_t serving = 0;
  std::size_t leaders = 0;
  bool standalone = false;
  for (const std::string& endpoint : endpoints) {
    ensemble.servers.push_back(check_zookeeper_server(endpoint, timeout));
    const ZkServerHealth& server = ensemble.servers.back();
    if (!server.serving || !server.imok) continue;
    ++serving;
    if (server.mode == "leader") {
      ++leaders;
      ensemble.leader = endpoint;
    }
    if (server.mode == "standalone") standalone = true;
  }
  const std::size_t majority = endpoints.size() / 2 + 1;
  if (standalone && endpoints.size() == 1) {
    ensemble.healthy = true;
    ensemble.summary = "standalone " + endpoints.front() + " serving";
    return ensemble;
  }
  ensemble.healthy = leaders == 1 && serving >= majority;
  ensemble.summary = (leaders == 1 ? "leader " + ensemble.leader : std::string(leaders == 0 ? "no leader" : "several leaders")) +
                     ", " + std::to_string(serving) + " of " + std::to_string(endpoints.size()) +
                     " serving (quorum needs " + std::to_string(majority) + ")";
  return ensemble;
}

}  // namespace skopos::driver
