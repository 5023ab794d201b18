// skopos-load: a bounded HTTP load generator for the drain tests. Every request is
// counted as served or failed, with why, so "zero failed requests" is a number.
//
// Workers each loop until the request budget or the duration is spent (whichever comes
// first; both are bounded). Half the workers keep their connection alive across
// requests, half open a fresh connection per request; every `--slow-every`th request is
// GET /sleep?ms=<slow-ms> (a long request), the others GET /.
//
// Usage: skopos-load --target HOST:PORT [--workers N] [--requests N] [--duration S]
//                    [--slow-every N] [--slow-ms MS] [--timeout S]
// Prints one JSON line: {"requests":..,"served":..,"failed":..,"failures":{"connect":..,
// "reset":..,"status":..,"timeout":..},"by_instance":{...},"seconds":..}. Exit 0 when
// nothing failed, 1 otherwise, 2 for usage errors.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Totals {
  std::atomic<long> requests{0};
  std::atomic<long> served{0};
  std::atomic<long> connect{0};
  std::atomic<long> reset{0};
  std::atomic<long> status{0};
  std::atomic<long> timeout{0};
  std::mutex mutex;
  std::map<std::string, long> by_instance;
};

struct Options {
  sockaddr_in target{};
  std::string host_header;
  int workers = 8;
  long requests = 20000;
  int duration = 60;
  int slow_every = 20;
  int slow_ms = 2000;
  int timeout = 30;
};

class Connection {
 public:
  ~Connection() { close(); }
  bool open(const sockaddr_in& target) {
    close();
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int yes = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    return ::connect(fd_, reinterpret_cast<const sockaddr*>(&target), sizeof target) == 0;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    pending_.clear();
  }
  bool is_open() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  std::string& pending() { return pending_; }

 private:
  int fd_ = -1;
  std::string pending_;
};

enum class Outcome { kServed, kReset, kStatus, kTimeout };

// Where `name` (lower case, e.g. "content-length:") starts in the header block [0, end),
// whatever its case: HAProxy 2 sends header names in lower case.
std::size_t find_header(const std::string& data, std::size_t end, const char* name) {
  const std::size_t length = std::strlen(name);
  for (std::size_t at = data.find("\r\n"); at != std::string::npos && at < end; at = data.find("\r\n", at + 2)) {
    if (at + 2 + length > data.size()) break;
    bool same = true;
    for (std::size_t i = 0; i < length && same; ++i) {
      same = std::tolower(static_cast<unsigned char>(data[at + 2 + i])) == name[i];
    }
    if (same) return at + 2;
  }
  return std::string::npos;
}

// One request on an open connection; the instance that answered in `instance`.
Outcome exchange(Connection& connection, const std::string& request, int timeout_s, std::string& instance,
                 bool& server_closes) {
  if (::send(connection.fd(), request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    return Outcome::kReset;
  }
  std::string& data = connection.pending();
  char buffer[8192];
  const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  for (;;) {
    const auto end = data.find("\r\n\r\n");
    if (end != std::string::npos) {
      const auto length_at = find_header(data, end, "content-length:");
      if (length_at != std::string::npos) {
        const std::size_t length = std::strtoul(data.c_str() + length_at + 15, nullptr, 10);
        if (data.size() >= end + 4 + length) {
          const bool ok = data.rfind("HTTP/1.1 200", 0) == 0 || data.rfind("HTTP/1.0 200", 0) == 0;
          const auto connection_at = find_header(data, end, "connection:");
          server_closes = connection_at != std::string::npos &&
                          data.compare(connection_at + 11, 6, " close") == 0;
          instance = data.substr(end + 4, length);
          while (!instance.empty() && instance.back() == '\n') instance.pop_back();
          if (const auto space = instance.find(' '); space != std::string::npos) instance.resize(space);
          data.erase(0, end + 4 + length);
          return ok ? Outcome::kServed : Outcome::kStatus;
        }
      }
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return Outcome::kTimeout;
    pollfd pfd{connection.fd(), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left)) <= 0) return Outcome::kTimeout;
    const ssize_t n = ::recv(connection.fd(), buffer, sizeof buffer, 0);
    if (n <= 0) return Outcome::kReset;  // closed or reset before a whole response
    data.append(buffer, static_cast<std::size_t>(n));
  }
}

void worker(int index, const Options& options, Totals& totals, Clock::time_point end) {
  const bool keep_alive = index % 2 == 0;
  Connection connection;
  for (;;) {
    if (Clock::now() >= end) return;
    const long number = totals.requests.fetch_add(1);
    if (number >= options.requests) {
      totals.requests.fetch_sub(1);
      return;
    }
    const bool slow = options.slow_every > 0 && (number + 1) % options.slow_every == 0;
    const std::string path = slow ? "/sleep?ms=" + std::to_string(options.slow_ms) : "/";
    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + options.host_header +
                                (keep_alive ? "\r\n\r\n" : "\r\nConnection: close\r\n\r\n");
    if (!connection.is_open() && !connection.open(options.target)) {
      ++totals.connect;
      connection.close();
      continue;
    }
    std::string instance;
    bool server_closes = false;
    switch (exchange(connection, request, options.timeout, instance, server_closes)) {
      case Outcome::kServed: {
        ++totals.served;
        std::lock_guard lock(totals.mutex);
        ++totals.by_instance[instance];
        break;
      }
      case Outcome::kReset: ++totals.reset; server_closes = true; break;
      case Outcome::kStatus: ++totals.status; break;
      case Outcome::kTimeout: ++totals.timeout; server_closes = true; break;
    }
    if (!keep_alive || server_closes) connection.close();
  }
}

int usage(const char* why) {
  std::fprintf(stderr, "skopos-load: %s\nusage: skopos-load --target HOST:PORT [--workers N] [--requests N] "
                       "[--duration S] [--slow-every N] [--slow-ms MS] [--timeout S]\n", why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  std::string target;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string option = argv[i];
    const long value = std::atol(argv[i + 1]);
    if (option == "--target") target = argv[i + 1];
    else if (option == "--workers") options.workers = static_cast<int>(value);
    else if (option == "--requests") options.requests = value;
    else if (option == "--duration") options.duration = static_cast<int>(value);
    else if (option == "--slow-every") options.slow_every = static_cast<int>(value);
    else if (option == "--slow-ms") options.slow_ms = static_cast<int>(value);
    else if (option == "--timeout") options.timeout = static_cast<int>(value);
    else return usage(("unknown option " + option).c_str());
  }
  const auto colon = target.rfind(':');
  if (colon == std::string::npos) return usage("--target HOST:PORT is required");
  options.target.sin_family = AF_INET;
  options.target.sin_port = htons(static_cast<std::uint16_t>(std::atoi(target.c_str() + colon + 1)));
  if (::inet_pton(AF_INET, target.substr(0, colon).c_str(), &options.target.sin_addr) != 1) {
    return usage("--target must be an IPv4 address and port");
  }
  options.host_header = target;
  if (options.workers < 1 || options.workers > 1000 || options.requests < 1 || options.duration < 1 ||
      options.duration > 3600 || options.timeout < 1) {
    return usage("workers 1-1000, requests >= 1, duration 1-3600 s, timeout >= 1 s");
  }
  Totals totals;
  const auto start = Clock::now();
  const auto end = start + std::chrono::seconds(options.duration);
  std::vector<std::thread> threads;
  for (int i = 0; i < options.workers; ++i) threads.emplace_back(worker, i, std::cref(options), std::ref(totals), end);
  for (std::thread& thread : threads) thread.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const long failed = totals.connect + totals.reset + totals.status + totals.timeout;
  std::string instances;
  for (const auto& [name, count] : totals.by_instance) {
    instances += (instances.empty() ? "\"" : ",\"") + name + "\":" + std::to_string(count);
  }
  std::printf("{\"requests\":%ld,\"served\":%ld,\"failed\":%ld,\"failures\":{\"connect\":%ld,\"reset\":%ld,"
              "\"status\":%ld,\"timeout\":%ld},\"by_instance\":{%s},\"seconds\":%.2f}\n",
              totals.requests.load(), totals.served.load(), failed, totals.connect.load(), totals.reset.load(),
              totals.status.load(), totals.timeout.load(), instances.c_str(), seconds);
  return failed == 0 ? 0 : 1;
}
