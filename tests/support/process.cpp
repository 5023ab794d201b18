#include "process.h"

#include "skopos/unique_fd.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <thread>

namespace skopos::testing {

namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "run_process: %s: %s\n", what, std::strerror(errno));
  std::abort();
}

}  // namespace

UniqueFd connect_loopback(std::uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return UniqueFd();
  return fd;
}

std::optional<std::string> marked_section(const std::string& path, const std::string& name) {
  const std::string text = read_file(path);
  const std::string begin = "<!-- " + name + " -->\n";
  const auto from = text.find(begin);
  const auto to = text.find("<!-- end " + name + " -->");
  if (from == std::string::npos || to == std::string::npos || to < from + begin.size()) return std::nullopt;
  return text.substr(from + begin.size(), to - from - begin.size());
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  return static_cast<bool>(out);
}

ProcessResult run_process(const std::vector<std::string>& argv, const std::string& input) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) die("pipe");
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);

  // Feed stdin and drain both outputs together, so that no pipe fills up and stalls
  // the child.
  ProcessResult result;
  std::size_t written = 0;
  int stdin_fd = in[1];
  if (input.empty()) {
    ::close(stdin_fd);
    stdin_fd = -1;
  }
  ::signal(SIGPIPE, SIG_IGN);
  bool out_open = true, err_open = true;
  char buffer[65536];
  while (out_open || err_open || stdin_fd >= 0) {
    pollfd fds[3] = {{out_open ? out[0] : -1, POLLIN, 0}, {err_open ? err[0] : -1, POLLIN, 0}, {stdin_fd, POLLOUT, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents == 0) continue;
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        (i == 0 ? result.out : result.err).append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        (i == 0 ? out_open : err_open) = false;
      }
    }
    if (stdin_fd >= 0 && fds[2].revents != 0) {
      const ssize_t n = ::write(stdin_fd, input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<std::size_t>(n);
      if (n < 0 || written == input.size()) {
        ::close(stdin_fd);
        stdin_fd = -1;
      }
    }
  }
  ::close(out[0]);
  ::close(err[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::uint16_t free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

Result<std::string> run_command(const std::vector<std::string>& argv) {
  ProcessResult result = run_process(argv);
  if (result.exit_code != 0) {
    std::string command;
    for (const std::string& arg : argv) command += (command.empty() ? "" : " ") + arg;
    return unexpected(Error::invalid("run", command,
                                     "exit status " + std::to_string(result.exit_code) + ": " + result.err));
  }
  return std::move(result.out);
}

namespace {

// The calling thread's network namespace, open, and its inode (0 if unknown).
struct ThreadNetns {
  UniqueFd fd;
  ino_t inode = 0;
};
ThreadNetns thread_netns() {
  ThreadNetns netns{UniqueFd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)), 0};
  struct stat st {};
  if (netns.fd && ::fstat(netns.fd.get(), &st) == 0) netns.inode = st.st_ino;
  return netns;
}

// Forks the long-running children. A child asks the kernel to SIGKILL it when its
// parent dies (PR_SET_PDEATHSIG), so that a test binary killed by a timeout, a crash or
// a signal leaves no etcd or agent behind. The kernel takes "the parent" to be the
// thread that forked, so the forks happen on this thread, which lives as long as the
// process: a child started from a short-lived thread (a fault injector restarting an
// etcd member) must outlive that thread. What a fork on the caller's thread would have
// passed on and is the thread's own -- its network namespace (a test inside a namespace
// of its own enters it on its thread only) and its signal mask -- the child takes from
// the caller before it execs.
class Spawner {
 public:
  // The spawner of this process: a forked copy of a test binary gets its own, since a
  // fork copies only the thread that called it.
  static Spawner& instance() {
    static std::mutex mutex;
    static Spawner* current = nullptr;
    std::lock_guard lock(mutex);
    if (current == nullptr || current->owner_ != ::getpid()) {
      current = new Spawner();  // never deleted: its thread runs until the process ends
    }
    return *current;
  }

  // The network namespace the spawner's thread is in (it never moves).
  ino_t netns() const { return netns_; }

  // Runs `fork_child` (which forks and returns the child's pid) on the spawner's thread.
  pid_t spawn(const std::function<pid_t()>& fork_child) {
    Request request{&fork_child};
    std::unique_lock lock(mutex_);
    requests_.push_back(&request);
    ready_.notify_one();
    done_.wait(lock, [&] { return request.done; });
    return request.pid;
  }

 private:
  struct Request {
    const std::function<pid_t()>* fork_child;
    pid_t pid = -1;
    bool done = false;
  };

  // A thread starts in the namespace of the thread that creates it: this one.
  Spawner() : owner_(::getpid()), netns_(thread_netns().inode) { std::thread([this] { serve(); }).detach(); }

  [[noreturn]] void serve() {
    std::unique_lock lock(mutex_);
    for (;;) {
      ready_.wait(lock, [&] { return !requests_.empty(); });
      Request* request = requests_.front();
      requests_.pop_front();
      request->pid = (*request->fork_child)();
      request->done = true;
      done_.notify_all();
    }
  }

  const pid_t owner_;
  const ino_t netns_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::condition_variable done_;
  std::deque<Request*> requests_;
};

}  // namespace

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::string& stderr_path) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) die("pipe");
  const int err = stderr_path.empty() ? -1 : ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (!stderr_path.empty() && err < 0) die(("open " + stderr_path).c_str());
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  Spawner& spawner = Spawner::instance();
  // The caller's namespace, entered only when it is not the spawner's (entering needs
  // CAP_SYS_ADMIN, which a test outside any namespace of its own may not have).
  ThreadNetns caller = thread_netns();
  if (caller.inode != spawner.netns() && !caller.fd) die("open /proc/thread-self/ns/net");
  const int netns_fd = caller.inode != spawner.netns() ? caller.fd.get() : -1;
  sigset_t mask;
  ::pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  // Closed by the exec: the constructor returns once the child runs argv[0] (in the
  // caller's namespace), or has failed to and says why.
  int exec_report[2];
  if (::pipe2(exec_report, O_CLOEXEC) != 0) die("pipe");
  pid_ = spawner.spawn([&] {
    const pid_t pid = ::fork();
    if (pid == 0) {
      // Only system calls between fork and exec (execvp searches PATH without allocating).
      const auto fail = [&](int code) {
        const int error = errno;
        (void)!::write(exec_report[1], &error, sizeof error);
        ::_exit(code);
      };
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);  // the parent died before the request took
      if (netns_fd >= 0 && ::setns(netns_fd, CLONE_NEWNET) != 0) fail(126);
      ::sigprocmask(SIG_SETMASK, &mask, nullptr);
      ::dup2(out[1], STDOUT_FILENO);
      if (err >= 0) ::dup2(err, STDERR_FILENO);
      ::execvp(args[0], args.data());
      fail(127);
    }
    return pid;
  });
  ::close(exec_report[1]);
  caller.fd.reset();
  if (pid_ < 0) die("fork");
  int exec_error = 0;
  ssize_t got = 0;
  while ((got = ::read(exec_report[0], &exec_error, sizeof exec_error)) < 0 && errno == EINTR) {
  }
  ::close(exec_report[0]);
  if (got == sizeof exec_error) {
    std::fprintf(stderr, "ChildProcess: cannot start %s: %s\n", argv[0].c_str(), std::strerror(exec_error));
  }
  if (err >= 0) ::close(err);
  ::close(out[1]);
  out_ = out[0];
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (out_ >= 0) ::close(out_);
}

std::optional<std::string> ChildProcess::read_line(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (const auto newline = pending_.find('\n'); newline != std::string::npos) {
      std::string line = pending_.substr(0, newline);
      pending_.erase(0, newline + 1);
      return line;
    }
    if (eof_) return std::nullopt;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd fd{out_, POLLIN, 0};
    const int ready = ::poll(&fd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) die("poll");
    if (ready <= 0) continue;
    char buffer[65536];
    const ssize_t n = ::read(out_, buffer, sizeof buffer);
    if (n > 0) {
      pending_.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      eof_ = true;
    }
  }
}

int ChildProcess::stop(int signal, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, signal);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) break;
    if (std::chrono::steady_clock::now() >= deadline) return -1;  // the destructor kills it
    ::usleep(10000);
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace skopos::testing

namespace skopos::testing {

std::string loopback_exchange(std::uint16_t port, const std::string& bytes, std::chrono::milliseconds timeout) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return {};
  (void)!::send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
  std::string answer;
  char buffer[8192];
  for (;;) {
    pollfd pfd{fd.get(), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(timeout.count())) <= 0) break;
    const ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, 0);
    if (n <= 0) break;
    answer.append(buffer, static_cast<std::size_t>(n));
  }
  return answer;
}

std::string loopback_http(std::uint16_t port, const std::string& method, const std::string& path,
                          const std::string& body) {
  const std::string response =
      loopback_exchange(port, method + " " + path + " HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: " +
                                  std::to_string(body.size()) + "\r\n\r\n" + body);
  const auto end = response.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : response.substr(end + 4);
}

}  // namespace skopos::testing
