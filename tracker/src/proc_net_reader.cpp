#include "tracker/proc_net_reader.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <exception>
#include <functional>
#include <new>
#include <optional>
#include <system_error>
#include <map>
#include <thread>

#include "skopos/cpus.h"
#include "skopos/unique_fd.h"
#include "skopos/unique_handle.h"

namespace skopos::tracker {

namespace {

// Gathering this much before each decode keeps all but the last few lines of a
// buffer on the SIMD path (the kernels need 256 bytes of read-ahead, kReadAhead), and
// the buffer in the CPU's L2 cache between the kernel's copy and the decode (a 256 KiB
// buffer measured slower on Zen 3).
constexpr std::size_t kBufferSize = 64 * 1024;
// Refill while at least a kernel page still fits.
constexpr std::size_t kReadSlack = 4096;
// A saved table is counted in at most this many parts at once (see count_stream).
constexpr std::size_t kMaxParts = 8;

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

// A mapped saved table, unmapped on destruction.
struct Mapping {
  const char* data = nullptr;
  std::size_t size = 0;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  Mapping(const char* d, std::size_t n) : data(d), size(n) {}
  ~Mapping() { ::munmap(const_cast<char*>(data), size); }
};

// The size of a file that is mapped rather than read (a regular file larger than the
// buffer), or 0: a pipe, /proc's tables (they have no size), a small file.
std::size_t mappable_size(const struct stat& st) {
  if (!S_ISREG(st.st_mode)) return 0;
  const auto size = static_cast<std::size_t>(st.st_size);
  return size > kBufferSize ? size : 0;
}

std::size_t mappable_size(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 ? mappable_size(st) : 0;
}

// The parts a mapped table of `size` bytes is counted in (1: whole).
std::size_t parts_for(std::size_t size, std::size_t min_part, std::size_t max_parts) {
  return size > 0 ? std::max<std::size_t>(1, std::min(max_parts, size / min_part)) : 1;
}

std::unique_ptr<Mapping> map_file(int fd, std::size_t size, bool populate) {
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | (populate ? MAP_POPULATE : 0), fd, 0);
  if (map == MAP_FAILED) return nullptr;
  return std::make_unique<Mapping>(static_cast<const char*>(map), size);
}

// Counts a whole table held in memory in `parts` parts at once, one thread each (the
// calling thread takes the first), each part whole lines; the parts' tallies are added
// into `tally`. Counting a line never depends on another, so the result is the one
// counter's, errors included: the first part that fails gives the error, with its line
// number counted from the file's start.
DecodeStatus count_in_parts(std::span<const char> table, std::size_t parts, ScanKernel kernel,
                            PortStateTally& tally, std::size_t& used) {
  used = 1;
  const char* const data = table.data();
  const std::size_t size = table.size();
  TcpTableCounter first(tally, kernel);
  // The one counter alone, from byte `from` on (what it has not been fed yet).
  const auto alone = [&](std::size_t from) -> DecodeStatus {
    if (auto status = first.feed(table.subspan(from)); !status) return status;
    return first.finish();
  };
  // The header first, which says the table's family (a whole header line sets it, or
  // fails); anything odd about it (and a file of one line) is the one counter's to report.
  const auto* header_end = static_cast<const char*>(std::memchr(data, '\n', std::min(size, kMaxLineLength)));
  if (header_end == nullptr) return alone(0);
  const auto body = static_cast<std::size_t>(header_end + 1 - data);
  if (auto status = first.feed({data, body}); !status) return status;
  const TcpTableFamily family = *first.family();

  // Part k starts after the first newline at or past an even share of the body. None
  // within a line's length: the line there is too long, an error of an earlier part, so
  // no more splitting (and no search to the end of a file of garbage).
  std::vector<std::size_t> bounds{body};
  for (std::size_t k = 1; k < parts; ++k) {
    const std::size_t target = body + (size - body) / parts * k;
    const auto* newline =
        static_cast<const char*>(std::memchr(data + target, '\n', std::min(size - target, kMaxLineLength)));
    if (newline == nullptr) break;
    const auto bound = static_cast<std::size_t>(newline + 1 - data);
    if (bound > bounds.back() && bound < size) bounds.push_back(bound);
  }
  bounds.push_back(size);
  const std::size_t count = bounds.size() - 1;

  struct Part {
    std::unique_ptr<PortStateTally> tally;
    std::unique_ptr<TcpTableCounter> counter;
    DecodeStatus status;
  };
  std::vector<Part> rest(count - 1);
  try {
    for (std::size_t k = 1; k < count; ++k) {
      Part& part = rest[k - 1];
      part.tally = std::make_unique<PortStateTally>();
      part.counter = std::make_unique<TcpTableCounter>(*part.tally, kernel);
      part.counter->continue_table(family, bounds[k]);
    }
  } catch (const std::bad_alloc&) {
    // No memory for the parts' tallies: the one counter goes on alone.
    return alone(body);
  }
  used = count;
  const auto run = [&](std::size_t k) {
    const std::span<const char> slice(data + bounds[k], bounds[k + 1] - bounds[k]);
    Part& part = rest[k - 1];
    part.status = part.counter->feed(slice);
    if (part.status && k + 1 == count) part.status = part.counter->finish();  // a last line without newline
  };
  DecodeStatus first_status;
  {
    std::vector<std::jthread> threads;
    for (std::size_t k = 1; k < count; ++k) {
      try {
        threads.emplace_back(run, k);
      } catch (const std::system_error&) {
        run(k);  // no thread to be had: this one does it
      }
    }
    first_status = first.feed({data + bounds[0], bounds[1] - bounds[0]});
    if (first_status && count == 1) first_status = first.finish();
  }  // joined

  if (!first_status) return first_status;
  std::uint64_t lines_before = first.lines();
  for (Part& part : rest) {
    if (!part.status) {
      DecodeError error = part.status.error();
      error.line += lines_before;
      return unexpected(error);
    }
    lines_before += part.counter->lines();
  }
  for (const Part& part : rest) tally.add(*part.tally);
  return {};
}

}  // namespace

ProcNetReader::ProcNetReader(ScanKernel kernel, std::size_t min_part, std::size_t max_parts)
    : kernel_(kernel),
      decoder_(kernel),
      // read() fills the buffer, so it is not zeroed first: zeroing it faulted its 16 pages
      // in before the first read, however short the table.
      buffer_(std::make_unique_for_overwrite<char[]>(kBufferSize)),
      min_part_(std::max<std::size_t>(min_part, 1)),
      max_parts_(max_parts != 0 ? max_parts : std::min(usable_cpus(), kMaxParts)) {}

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
  if (const std::size_t size = mappable_size(fd); size > 0) {
    if (auto mapped = map_file(fd, size, true)) {
      bytes_read_ += size;
      if (auto status = feed({mapped->data, size}); !status) {
        return unexpected(Error::invalid("decode", path, status.error().message()));
      }
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
  parts_ = 1;
  // A large saved table is counted in parts on the CPUs we may use, each thread faulting
  // in its own part of the mapping: on a 2-CPU Zen 2, 1M tcp6 lines (183 MB) took
  // tracker-cli decode 1.24-1.52x as long as wc -l on one thread, which only reads them.
  if (const std::size_t size = mappable_size(fd); size > 0) {
    const std::size_t parts = parts_for(size, min_part_, max_parts_);
    if (parts > 1) {
      if (auto mapped = map_file(fd, size, false)) {
        bytes_read_ += size;
        if (auto status = count_in_parts({mapped->data, size}, parts, kernel_, tally, parts_); !status) {
          return unexpected(Error::invalid("decode", path, status.error().message()));
        }
        return {};
      }
    }
  }
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

Result<void> count_tables(const std::vector<TableInput>& inputs, ScanKernel kernel, PortStateTally& tally,
                          std::size_t max_parts, std::size_t min_part) {
  const std::size_t cpus = max_parts != 0 ? max_parts : std::min(usable_cpus(), kMaxParts);
  min_part = std::max<std::size_t>(min_part, 1);
  // Read at once: the tables that are neither streams nor counted in parts -- the /proc
  // tables (regular files without a size), small saved ones, and any stat() cannot see
  // (its reader will say why). Read after them, in the order given on this thread, and
  // only while every input before has counted, as one after another would: streams
  // (descriptors, and paths that are no regular file: a FIFO, /dev/stdin), which reading
  // alongside another reader would split, or reading after a failure would consume or
  // wait on; and saved tables large enough to be counted in parts, each with every CPU.
  std::vector<std::size_t> at_once;
  std::vector<std::size_t> after;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    struct stat st {};
    const bool in_turn = inputs[i].fd >= 0 ||
                         (::stat(inputs[i].path.c_str(), &st) == 0 &&
                          (!S_ISREG(st.st_mode) || parts_for(mappable_size(st), min_part, cpus) > 1));
    (in_turn ? after : at_once).push_back(i);
  }

  // A reader and a tally a worker, all readers alike: the tables read at once are none
  // that a reader would count in parts. The calling thread is the first worker, counts
  // into `tally` and reads the rest in turn; a worker that cannot be made or started
  // leaves its tables to the others.
  struct Worker {
    std::unique_ptr<PortStateTally> tally;
    std::unique_ptr<ProcNetReader> reader;
  };
  const std::size_t wanted = std::max<std::size_t>(1, std::min(at_once.size(), cpus));
  std::vector<Worker> workers(1);
  workers[0].reader = std::make_unique<ProcNetReader>(kernel, min_part, cpus);
  try {
    while (workers.size() < wanted) {
      Worker worker{std::make_unique<PortStateTally>(), std::make_unique<ProcNetReader>(kernel, min_part, cpus)};
      workers.push_back(std::move(worker));
    }
  } catch (const std::bad_alloc&) {
  }

  // What each input came to. Once an input has failed, no later one is read: it cannot
  // change the outcome.
  std::vector<std::optional<Error>> errors(inputs.size());
  std::vector<std::exception_ptr> thrown(inputs.size());
  std::atomic<std::size_t> first_failed{SIZE_MAX};
  // Counts input i; false when it failed or came after a failure.
  const auto count = [&](ProcNetReader& reader, PortStateTally& into, std::size_t i) {
    if (i > first_failed.load()) return false;
    const TableInput& input = inputs[i];
    try {
      auto status = input.fd >= 0 ? reader.count_fd(input.fd, input.path, into) : reader.count_file(input.path, into);
      if (status) return true;
      errors[i] = std::move(status).error();
    } catch (...) {  // out of memory: on a thread of its own it would end the process
      thrown[i] = std::current_exception();
    }
    for (std::size_t seen = first_failed.load(); i < seen && !first_failed.compare_exchange_weak(seen, i);) {
    }
    return false;
  };
  std::atomic<std::size_t> next{0};
  const auto work = [&](ProcNetReader& reader, PortStateTally& into) {
    for (std::size_t k = next++; k < at_once.size(); k = next++) count(reader, into, at_once[k]);
  };
  {
    std::vector<std::jthread> threads;
    try {
      threads.reserve(workers.size() - 1);
      for (std::size_t w = 1; w < workers.size(); ++w) {
        threads.emplace_back(work, std::ref(*workers[w].reader), std::ref(*workers[w].tally));
      }
    } catch (...) {  // no thread (or no memory for one) to be had: the others take its tables
    }
    work(*workers[0].reader, tally);
  }  // joined

  for (std::size_t i : after) {
    if (!count(*workers[0].reader, tally, i)) break;
  }

  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (thrown[i]) std::rethrow_exception(thrown[i]);
    if (errors[i]) return unexpected(std::move(*errors[i]));
  }
  for (std::size_t w = 1; w < workers.size(); ++w) tally.add(*workers[w].tally);
  return {};
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
