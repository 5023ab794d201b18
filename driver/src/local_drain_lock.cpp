#include "driver/local_drain_lock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "skopos/cli_args.h"
#include "skopos/log.h"

namespace skopos::driver {

namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

Result<LocalDrainLock> LocalDrainLock::take(const std::string& journal_path, bool take_over,
                                            std::chrono::milliseconds wait) {
  const std::string path = journal_path + ".lock";
  std::error_code ec;
  if (const auto dir = std::filesystem::path(journal_path).parent_path(); !dir.empty()) {
    std::filesystem::create_directories(dir, ec);
    if (ec) return unexpected(Error::invalid("create directory", dir.string(), ec.message()));
  }
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return unexpected(Error::from_errno(errno, "open", path));
  const auto deadline = Clock::now() + wait;
  bool signalled = false;
  while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return unexpected(Error::from_errno(errno, "flock", path));
    char text[32] = {};
    (void)::pread(fd.get(), text, sizeof text - 1, 0);
    const long pid = std::strtol(text, nullptr, 10);
    if (!take_over) {
      return unexpected(Error::invalid("lock", path, "another skopos drain (pid " + std::to_string(pid) +
                                                         ") is running on this host; 'skopos drain --abort' stops it"));
    }
    if (!signalled && pid > 0) {
      log_notice("asking the running drain (pid " + std::to_string(pid) + ") to stop");
      ::kill(static_cast<pid_t>(pid), SIGTERM);
      signalled = true;
    }
    if (Clock::now() >= deadline) {
      return unexpected(Error::invalid("lock", path, "the running drain (pid " + std::to_string(pid) +
                                                         ") did not stop within " + format_seconds(wait)));
    }
    ::usleep(100000);
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd.get(), 0) != 0 || ::pwrite(fd.get(), pid.data(), pid.size(), 0) < 0) {
    return unexpected(Error::from_errno(errno, "write", path));
  }
  return LocalDrainLock(std::move(fd));
}

}  // namespace skopos::driver
