#include "tracker/proc_net_reader.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <map>
#include <thread>

#include "skopos/unique_fd.h"
#include "skopos/unique_handle.h"

namespace skopos::tracker {

namespace {

// Gathering this much before each decode keeps all but the last few lines of a
// buffer on the SIMD path (the kernels need 576 bytes of read-ahead), and the buffer in
// the CPU's L2 cache between the kernel's copy and the decode (a 256 KiB buffer measured
// slower on Zen 3).
constexpr std::size_t kBufferSize = 64 * 1024;
// Refill while at least a kernel page still fits.
constexpr std::size_t kReadSlack = 4096;

UniqueFd open_read(const std::string& path) {
  return UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
}

std::string read_small_file(const std::string& path) {
  UniqueFd fd = open_read(path);
  if (!fd) return {};
  char text[256];
  const ssize_t n = ::read(fd.get(), text, sizeof text);
  if (n <= 0) return {};
  std::string content(text, static_cast<std::size_t>(n));
  while (!content.empty() && content.back() == '\n') content.pop_back();
  return content;
}

}  // namespace

ProcNetReader::ProcNetReader(ScanKernel kernel)
    : kernel_(kernel), decoder_(kernel), buffer_(std::make_unique<char[]>(kBufferSize)) {}

Result<void> ProcNetReader::count_fd(int fd, const std::string& name, PortStateTally& tally) {
  bytes_read_ = 0;
  return count_stream(fd, name, tally);
}

Result<void> ProcNetReader::read_stream(int fd, const std::string& path,
                                        FunctionRef<DecodeStatus(std::span<const char>)> feed) {
  // A saved table (a regular file with a size; /proc's tables have none) is decoded
  // where it lies in the page cache: no copy into a buffer (bench_proc_net_tcp's
  // whole-process part measures it). A file truncated while mapped would fault; the
  // daemon reads only /proc.
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && static_cast<std::size_t>(st.st_size) > kBufferSize) {
    const auto size = static_cast<std::size_t>(st.st_size);
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (map != MAP_FAILED) {
      bytes_read_ += size;
      auto status = feed({static_cast<const char*>(map), size});
      ::munmap(map, size);
      if (!status) return unexpected(Error::invalid("decode", path, status.error().message()));
      return {};
    }
  }
  bool eof = false;
  while (!eof) {
    std::size_t used = 0;
    while (kBufferSize - used >= kReadSlack) {
      const ssize_t n = ::read(fd, buffer_.get() + used, kBufferSize - used);
      if (n < 0) {
        if (errno == EINTR) continue;
        return unexpected(Error::from_errno(errno, "read", path));
      }
      if (n == 0) {
        eof = true;
        break;
      }
      used += static_cast<std::size_t>(n);
    }
    bytes_read_ += used;
    if (auto status = feed({buffer_.get(), used}); !status) {
      return unexpected(Error::invalid("decode", path, status.error().message()));
    }
  }
  return {};
}

Result<void> ProcNetReader::count_stream(int fd, const std::string& path, PortStateTally& tally) {
  TcpTableCounter counter(tally, kernel_);
  auto feed = [&](std::span<const char> chunk) { return counter.feed(chunk); };
  if (auto status = read_stream(fd, path, feed); !status) return status;
  if (auto status = counter.finish(); !status) {
    return unexpected(Error::invalid("decode", path, status.error().message()));
  }
  return {};
}

Result<void> ProcNetReader::decode_stream(int fd, const std::string& path, TcpTableDecoder::RecordSink sink) {
  decoder_.reset();
  auto feed = [&](std::span<const char> chunk) { return decoder_.feed(chunk, sink); };
  if (auto status = read_stream(fd, path, feed); !status) return status;
  if (auto status = decoder_.finish(); !status) {
    return unexpected(Error::invalid("decode", path, status.error().message()));
  }
  return {};
}

Result<void> ProcNetReader::count_file(const std::string& path, PortStateTally& tally) {
  bytes_read_ = 0;
  UniqueFd fd = open_read(path);
  if (!fd) return unexpected(Error::from_errno(errno, "open", path));
  return count_stream(fd.get(), path, tally);
}

Result<void> ProcNetReader::for_each_table(const std::string& net_dir,
                                           FunctionRef<Result<void>(int, const std::string&)> read) {
  bytes_read_ = 0;
  for (const char* table : {"tcp", "tcp6"}) {
    const std::string path = net_dir + "/" + table;
    UniqueFd fd = open_read(path);
    if (!fd) {
      // A kernel built without IPv6 has no tcp6; everything else is an error.
      if (errno == ENOENT && std::string_view(table) == "tcp6") continue;
      return unexpected(Error::from_errno(errno, "open", path));
    }
    if (auto status = read(fd.get(), path); !status) return status;
  }
  return {};
}

Result<void> ProcNetReader::count_namespace(const std::string& net_dir, PortStateTally& tally) {
  tally.clear();
  return for_each_table(net_dir, [&](int fd, const std::string& path) { return count_stream(fd, path, tally); });
}

Result<void> ProcNetReader::decode_namespace(const std::string& net_dir, TcpTableDecoder::RecordSink sink) {
  return for_each_table(net_dir, [&](int fd, const std::string& path) { return decode_stream(fd, path, sink); });
}

std::string NetworkNamespace::net_dir(const std::string& proc_root) const {
  if (pid < 0) return {};
  return proc_root + "/" + std::to_string(pid) + "/net";
}

Result<std::vector<NetworkNamespace>> list_network_namespaces(const std::string& proc_root,
                                                              const std::string& run_netns) {
  std::map<std::uint64_t, NetworkNamespace> by_inode;

  const UniqueHandle<DIR, ::closedir> proc(::opendir(proc_root.c_str()));
  if (!proc) return unexpected(Error::from_errno(errno, "opendir", proc_root));
  while (const dirent* entry = ::readdir(proc.get())) {
    pid_t pid = 0;
    const std::string_view name(entry->d_name);
    const auto parsed = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (parsed.ec != std::errc{} || parsed.ptr != name.data() + name.size()) continue;
    struct stat ns {};
    // Fails for processes that exited meanwhile, and for other users' processes when
    // we are not root: neither is an error.
    if (::stat((proc_root + "/" + std::string(name) + "/ns/net").c_str(), &ns) != 0) continue;
    NetworkNamespace& netns = by_inode[ns.st_ino];
    netns.inode = ns.st_ino;
    ++netns.processes;
    if (netns.pid < 0 || pid < netns.pid) {
      netns.pid = pid;
      netns.command = read_small_file(proc_root + "/" + std::string(name) + "/comm");
    }
  }

  if (const UniqueHandle<DIR, ::closedir> named(::opendir(run_netns.c_str())); named) {
    while (const dirent* entry = ::readdir(named.get())) {
      const std::string name(entry->d_name);
      if (name == "." || name == "..") continue;
      struct stat ns {};
      if (::stat((run_netns + "/" + name).c_str(), &ns) != 0) continue;
      NetworkNamespace& netns = by_inode[ns.st_ino];
      netns.inode = ns.st_ino;
      netns.names.push_back(name);
    }
  }

  std::vector<NetworkNamespace> namespaces;
  namespaces.reserve(by_inode.size());
  for (auto& [inode, netns] : by_inode) {
    std::sort(netns.names.begin(), netns.names.end());
    namespaces.push_back(std::move(netns));
  }
  return namespaces;
}

Result<void> run_in_namespace(const std::string& netns_path, FunctionRef<Result<void>()> work) {
  UniqueFd ns(::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) return unexpected(Error::from_errno(errno, "open", netns_path));
  // setns() moves only the calling thread, and /proc/thread-self/net follows the
  // thread's namespace; a thread of our own keeps the rest of the process where it is.
  Result<void> result;
  std::thread worker([&] {
    if (::setns(ns.get(), CLONE_NEWNET) != 0) {
      result = unexpected(Error::from_errno(errno, "setns", netns_path));
      return;
    }
    result = work();
  });
  worker.join();
  return result;
}

Result<void> count_namespace_by_path(ProcNetReader& reader, const std::string& netns_path,
                                     PortStateTally& tally) {
  return run_in_namespace(netns_path, [&] { return reader.count_namespace("/proc/thread-self/net", tally); });
}

}  // namespace skopos::tracker
