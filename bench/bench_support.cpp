#include "bench_support.h"

#include <algorithm>

#include "skopos/result.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

namespace skopos::bench {

namespace {
struct DieCleanups {
  std::mutex mutex;
  int next = 0;
  std::map<int, std::function<void()>> cleanups;
  pid_t owner = ::getpid();  // a forked child that dies leaves its parent's things alone
};
DieCleanups& die_cleanups() {
  static DieCleanups registry;
  return registry;
}
}  // namespace

int at_die(std::function<void()> cleanup) {
  DieCleanups& registry = die_cleanups();
  std::lock_guard lock(registry.mutex);
  registry.cleanups.emplace(registry.next, std::move(cleanup));
  return registry.next++;
}

void cancel_at_die(int token) {
  DieCleanups& registry = die_cleanups();
  std::lock_guard lock(registry.mutex);
  registry.cleanups.erase(token);
}

namespace {

// Runs and forgets the cleanups, newest first, one caller at a time: a signal's thread
// and a failing main thread that both clean up each wait for the other to finish before
// they exit. A cleanup that throws is reported and the rest still run.
void run_die_cleanups() {
  static std::recursive_mutex running;  // recursive: a cleanup may itself die()
  const std::lock_guard hold(running);
  std::map<int, std::function<void()>> cleanups;
  {
    DieCleanups& registry = die_cleanups();
    std::lock_guard lock(registry.mutex);
    if (registry.owner == ::getpid()) cleanups.swap(registry.cleanups);
  }
  for (auto it = cleanups.rbegin(); it != cleanups.rend(); ++it) {
    try {
      it->second();
    } catch (const std::exception& error) {
      std::fprintf(stderr, "bench: a cleanup failed: %s\n", error.what());
    }
  }
}

// Ctrl-C, a kill or a closed terminal: the handler only writes the signal's number to a
// pipe; a thread of its own reads it, runs die()'s cleanups, and then dies of the signal
// (a shell loop around the benchmark stops too). A second signal during the cleanups
// ends the process at once. A forked child (it shares the handler and the pipe) dies of
// the signal as if no handler were set.
int signal_pipe[2] = {-1, -1};
pid_t signal_owner = -1;

extern "C" void on_stop_signal(int signal) {
  const int saved_errno = errno;
  if (::getpid() != signal_owner) {
    ::signal(signal, SIG_DFL);
    ::raise(signal);
    errno = saved_errno;
    return;
  }
  for (const int stop : {SIGINT, SIGTERM, SIGHUP}) ::signal(stop, SIG_DFL);
  const auto byte = static_cast<unsigned char>(signal);
  (void)!::write(signal_pipe[1], &byte, 1);
  errno = saved_errno;
}

void clean_up_on_stop_signals() {
  if (signal_owner == ::getpid() || ::pipe2(signal_pipe, O_CLOEXEC) != 0) return;
  signal_owner = ::getpid();
  std::thread([] {
    unsigned char signal = 0;
    while (::read(signal_pipe[0], &signal, 1) < 0 && errno == EINTR) {
    }
    std::fprintf(stderr, "bench: stopped by %s; cleaning up\n", ::strsignal(signal));
    run_die_cleanups();
    ::signal(signal, SIG_DFL);
    ::raise(signal);
    std::_Exit(128 + signal);
  }).detach();
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  ::sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (const int signal : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(signal, &action, nullptr);
}

}  // namespace

void die(const std::string& what) {
  std::fprintf(stderr, "bench: %s: %s\n", what.c_str(), std::strerror(errno));
  run_die_cleanups();
  std::exit(1);
}

BenchArgs::BenchArgs(const std::string& name, const std::set<std::string>& options, const char* usage, int argc,
                     char** argv)
    : name_(name), usage_(usage) {
  try {
    args_ = CliArgs::parse(CliSpec{name, {"help"}, options}, argc, argv, 1);
  } catch (const FatalError& error) {
    refuse(error.message());
  }
  if (args_.flag("help")) {
    std::fputs(usage_, stdout);
    std::exit(0);
  }
  if (!args_.positional().empty()) refuse(name + ": takes no arguments ('" + args_.positional()[0] + "')");
  clean_up_on_stop_signals();
}

void BenchArgs::refuse(const std::string& what) const {
  std::fprintf(stderr, "%s\n%s", what.c_str(), usage_);
  std::exit(2);
}

long BenchArgs::number(const std::string& option, long fallback, long min) const {
  if (!args_.has(option)) return fallback;
  const std::string text = args_.option(option);
  long value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < min) {
    refuse(name_ + ": --" + option + " wants a whole number of at least " + std::to_string(min) + ", not '" + text +
           "'");
  }
  return value;
}

std::string BenchArgs::text(const std::string& option, const std::string& fallback) const {
  return args_.option(option, fallback);
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

int run(const std::vector<std::string>& argv) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

BenchNetns::BenchNetns(const std::string& prefix) : name_(prefix + "-" + std::to_string(::getpid())) {
  if (run({"ip", "netns", "add", name_}) != 0) die("ip netns add " + name_);
  cleanup_ = at_die([name = name_] { run({"ip", "netns", "delete", name}); });
  run({"ip", "-n", name_, "link", "set", "lo", "up"});
  fd_ = UniqueFd(::open(path().c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd_) die("open " + path());
  struct stat st {};
  ::fstat(fd_.get(), &st);
  inode_ = st.st_ino;
}

BenchNetns::~BenchNetns() {
  cancel_at_die(cleanup_);
  fd_.reset();
  run({"ip", "netns", "delete", name_});
}

void enter_netns(int fd) {
  if (::setns(fd, CLONE_NEWNET) != 0) die("setns");
}

UniqueFd listen_on(std::uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) die("bind");
  if (::listen(fd.get(), 4096) != 0) die("listen");
  return fd;
}

bool connect_pair(int listener, std::uint16_t port, UniqueFd& client, UniqueFd& server, bool reset) {
  client = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(client.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return false;
  server = UniqueFd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  if (!server) return false;
  if (reset) {
    const linger off{1, 0};
    ::setsockopt(client.get(), SOL_SOCKET, SO_LINGER, &off, sizeof off);
  }
  return true;
}

std::uint64_t process_cpu_ticks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::string_view rest(stat);
  rest.remove_prefix(close + 2);
  // Fields after the command: utime and stime are the 12th and 13th.
  std::uint64_t ticks = 0;
  for (int field = 0; field < 13; ++field) {
    const auto space = rest.find(' ');
    if (field >= 11) ticks += std::strtoull(std::string(rest.substr(0, space)).c_str(), nullptr, 10);
    rest.remove_prefix(space + 1);
  }
  return ticks;
}

std::uint64_t process_status_kb(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::strtoull(line.c_str() + field.size() + 1, nullptr, 10);
  }
  return 0;
}

void print_rows(const std::vector<Row>& rows) {
  std::printf("\n%-58s %12s %-8s %-12s %s\n", "measurement", "value", "unit", "goal", "");
  for (const Row& row : rows) {
    std::printf("%-58s %12.3f %-8s %-12s %s\n", row.what.c_str(), row.value, row.unit.c_str(), row.goal.c_str(),
                row.verdict.c_str());
  }
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[static_cast<std::size_t>(p * static_cast<double>(values.size() - 1))];
}

}  // namespace skopos::bench
