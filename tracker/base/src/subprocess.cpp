#include "skopos/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>
#include <thread>

#include "skopos/unique_fd.h"

namespace skopos {

namespace {

using Clock = std::chrono::steady_clock;

// What is kept of each output stream (a program that prints a book must not fill memory).
constexpr std::size_t kKeptOutput = 4 * 1024 * 1024;

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

Result<ProgramOutput> run_program(const std::vector<std::string>& argv, const std::string& input,
                                  std::chrono::milliseconds timeout, const std::vector<std::string>& environment) {
  auto ran = run_program_until(argv, input, timeout, environment, nullptr);
  if (!ran) return unexpected(std::move(ran).error());
  if (ran->end == ProgramRun::End::kTimedOut) {
    return unexpected(Error::invalid("run", argv[0], "still running after " + std::to_string(timeout.count()) +
                                                         " ms; killed"));
  }
  return std::move(ran->output);
}

Result<ProgramRun> run_program_until(const std::vector<std::string>& argv, const std::string& input,
                                     std::chrono::milliseconds timeout, const std::vector<std::string>& environment,
                                     const std::atomic<bool>* stop, std::chrono::milliseconds stop_grace) {
  if (argv.empty()) return unexpected(Error::invalid("run", "", "no program given"));
  int in[2];
  int out[2];
  int err[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return unexpected(Error::from_errno(errno, "pipe", argv[0]));
  UniqueFd in_read(in[0]);
  UniqueFd in_write(in[1]);
  if (::pipe2(out, O_CLOEXEC) != 0) return unexpected(Error::from_errno(errno, "pipe", argv[0]));
  UniqueFd out_read(out[0]);
  UniqueFd out_write(out[1]);
  if (::pipe2(err, O_CLOEXEC) != 0) return unexpected(Error::from_errno(errno, "pipe", argv[0]));
  UniqueFd err_read(err[0]);
  UniqueFd err_write(err[1]);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  // The child's environment, made before the fork (nothing may allocate after it in a
  // threaded process): ours, less the names `environment` sets, then `environment`.
  std::vector<char*> env;
  const auto name_of = [](std::string_view entry) { return entry.substr(0, entry.find('=')); };
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view name = name_of(*entry);
    const bool replaced = std::any_of(environment.begin(), environment.end(),
                                      [&](const std::string& set) { return name_of(set) == name; });
    if (!replaced) env.push_back(*entry);
  }
  for (const std::string& entry : environment) {
    if (entry.find('=') != std::string::npos) env.push_back(const_cast<char*>(entry.c_str()));  // "NAME": unset
  }
  env.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return unexpected(Error::from_errno(errno, "fork", argv[0]));
  if (pid > 0) (void)::setpgid(pid, pid);  // here too: the group exists before any kill
  if (pid == 0) {
    ::dup2(in_read.get(), STDIN_FILENO);
    ::dup2(out_write.get(), STDOUT_FILENO);
    ::dup2(err_write.get(), STDERR_FILENO);
    // Nothing else of ours: Asio opens sockets without close-on-exec, and an HTTP
    // client's kept-alive connections (to etcd, Marathon, Docker) would otherwise live on
    // in every child -- a reboot command, iptables-restore. (Fails harmlessly before
    // Linux 5.9.)
    (void)::close_range(3, ~0U, 0);
    ::setpgid(0, 0);  // a group of its own, killed whole at the deadline
    ::execvpe(args[0], args.data(), env.data());
    ::_exit(127);
  }
  in_read.reset();
  out_write.reset();
  err_write.reset();
  ::fcntl(in_write.get(), F_SETFL, O_NONBLOCK);
  // A child that exits without reading its input makes our write fail with EPIPE; the
  // SIGPIPE that comes with it must not end this process. Blocked for this thread here,
  // and a pending one is consumed before the mask is restored.
  sigset_t pipe_signal;
  sigset_t previous_mask;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_signal, &previous_mask);
  ProgramRun run;
  ProgramOutput& result = run.output;
  std::size_t written = 0;
  if (input.empty()) in_write.reset();
  const auto deadline = Clock::now() + timeout;
  bool timed_out = false;
  bool stopped = false;
  const auto stop_asked = [&] { return stop != nullptr && stop->load(std::memory_order_relaxed); };
  while (out_read || err_read) {
    pollfd fds[3] = {{out_read ? out_read.get() : -1, POLLIN, 0},
                     {err_read ? err_read.get() : -1, POLLIN, 0},
                     {in_write ? in_write.get() : -1, POLLOUT, 0}};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    if (stop_asked()) {
      stopped = true;
      break;
    }
    if (stop != nullptr) left = std::min<decltype(left)>(left, 50);
    if (::poll(fds, 3, static_cast<int>(left)) < 0 && errno != EINTR) break;
    char buffer[8192];
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents == 0) continue;
      UniqueFd& fd = i == 0 ? out_read : err_read;
      const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
      if (n <= 0) {
        fd.reset();
      } else {
        // Past the cap the pipe is still read (the program must not block on it), and
        // what it says is dropped.
        std::string& kept = i == 0 ? result.out : result.err;
        const std::size_t room = kKeptOutput > kept.size() ? kKeptOutput - kept.size() : 0;
        kept.append(buffer, std::min(room, static_cast<std::size_t>(n)));
      }
    }
    if (fds[2].revents != 0 && in_write) {
      const ssize_t n = ::write(in_write.get(), input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<std::size_t>(n);
      if (n < 0 || written == input.size()) in_write.reset();
    }
  }
  in_write.reset();
  const timespec no_wait{0, 0};
  while (::sigtimedwait(&pipe_signal, nullptr, &no_wait) == SIGPIPE) {
  }
  ::pthread_sigmask(SIG_SETMASK, &previous_mask, nullptr);
  // The child may have closed its output and still run (a daemon, `exec >&-`): its exit
  // is waited for under the same deadline, never for ever.
  int status = 0;
  auto pause = std::chrono::milliseconds(1);
  bool reaped = false;
  while (!timed_out && !stopped) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid || (done < 0 && errno != EINTR)) {
      reaped = true;
      break;
    }
    if (Clock::now() >= deadline) {
      timed_out = true;
      break;
    }
    if (stop_asked()) {
      stopped = true;
      break;
    }
    std::this_thread::sleep_for(std::min<Clock::duration>(pause, deadline - Clock::now()));
    pause = std::min(pause * 2, std::chrono::milliseconds(20));
  }
  if (stopped && !reaped) {
    // Asked to stop: the group may end cleanly within the grace, then it is killed.
    ::kill(-pid, SIGTERM);
    const auto grace_end = Clock::now() + stop_grace;
    while (Clock::now() < grace_end) {
      const pid_t done = ::waitpid(pid, &status, WNOHANG);
      if (done == pid || (done < 0 && errno != EINTR)) {
        reaped = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  if ((timed_out || stopped) && !reaped) {
    ::kill(-pid, SIGKILL);  // its process group: a script's children too
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (timed_out || stopped) {
    ::kill(-pid, SIGKILL);  // what is left of the group (the leader may have gone first)
    run.end = timed_out ? ProgramRun::End::kTimedOut : ProgramRun::End::kStopped;
    result.exit_code = exit_code_of(status);
    return run;
  }
  result.exit_code = exit_code_of(status);
  if (result.exit_code == 127 && result.err.empty()) {
    return unexpected(Error::invalid("run", argv[0], "could not be started (not installed, or not in PATH)"));
  }
  return run;
}

}  // namespace skopos
