// Reading live (or saved) tcp tables from the file system through the counting decoder,
// and finding the network namespaces to read.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "skopos/result.h"
#include "tracker/port_state_tally.h"
#include "tracker/proc_net_tcp.h"

namespace skopos::tracker {

// Reads /proc/net/tcp and /proc/net/tcp6 files in large chunks (the kernel hands out
// about a page per read; gathering reads into one buffer keeps nearly every line on
// the SIMD path) and counts them. One buffer, allocated once. Not thread-safe.
class ProcNetReader {
 public:
  // A saved table (a regular file) of at least two `min_part`s is counted in parts at
  // once, one thread each: at most `max_parts`, or with 0 one per CPU this process may
  // use (at most 8). Tests lower min_part to split small files.
  static constexpr std::size_t kMinPart = std::size_t{16} << 20;
  explicit ProcNetReader(ScanKernel kernel = ScanKernel::kAuto, std::size_t min_part = kMinPart,
                         std::size_t max_parts = 0);

  // Adds one table file to `tally`. Errors name the file: open/read errors carry
  // errno; a decode error carries the line, byte and what was expected.
  Result<void> count_file(const std::string& path, PortStateTally& tally);

  // Clears `tally`, then counts <net_dir>/tcp and <net_dir>/tcp6 -- one network
  // namespace's tables, e.g. net_dir = "/proc/1234/net". A missing tcp6 (a kernel
  // without IPv6) is not an error. On error the tally is incomplete; discard it.
  Result<void> count_namespace(const std::string& net_dir, PortStateTally& tally);

  // Adds the table read from `fd` (a pipe, stdin) to `tally`; `name` is for errors.
  Result<void> count_fd(int fd, const std::string& name, PortStateTally& tally);

  // Decodes <net_dir>/tcp and <net_dir>/tcp6 into full records, tcp first. Same errors
  // as count_namespace; after an error `sink` has seen only part of the tables.
  Result<void> decode_namespace(const std::string& net_dir, TcpTableDecoder::RecordSink sink);

  // Bytes read by the last count_* call.
  std::uint64_t bytes_read() const { return bytes_read_; }
  // Parts the last table counted was counted in (1: on this thread alone).
  std::size_t parts() const { return parts_; }

 private:
  Result<void> read_stream(int fd, const std::string& path,
                          FunctionRef<DecodeStatus(std::span<const char>)> feed);
  Result<void> count_stream(int fd, const std::string& path, PortStateTally& tally);
  Result<void> decode_stream(int fd, const std::string& path, TcpTableDecoder::RecordSink sink);
  Result<void> for_each_table(const std::string& net_dir,
                              FunctionRef<Result<void>(int, const std::string&)> read);

  ScanKernel kernel_;
  TcpTableDecoder decoder_;
  std::unique_ptr<char[]> buffer_;
  std::uint64_t bytes_read_ = 0;
  std::size_t min_part_;
  std::size_t max_parts_;
  std::size_t parts_ = 1;
};

// One table for count_tables(): the file at `path`, or with `fd` set an open
// descriptor (stdin, a pipe) that `path` names in errors.
struct TableInput {
  std::string path;
  int fd = -1;
};

// Adds every table of `inputs` to `tally` as one ProcNetReader would, reading them one
// after another -- the same counts, and the error of the first input in the order given
// that fails (the tally is then to be discarded: it may hold counts of inputs before and
// after that one) -- but reading up to one table per CPU at once: the kernel formats a
// /proc table on the CPU that reads it, so with two CPUs a namespace's tcp and tcp6 take
// as long as the longer of the two. Streams (descriptors, and paths that are no regular
// file: a FIFO, /dev/stdin) and saved tables that ProcNetReader would count in parts
// (`min_part`) are read after the rest, in the order given, each table in parts with
// every CPU, and only while every input before them has counted: a stream is never read
// after a failure, nor by two readers. `max_parts` caps the CPUs used, as ProcNetReader's
// does (1: every input on the calling thread). Starts its threads and joins them before it
// returns; `tally` is not to be touched meanwhile. Throws what the readers throw
// (std::bad_alloc), for the first input in order that failed.
Result<void> count_tables(const std::vector<TableInput>& inputs, ScanKernel kernel, PortStateTally& tally,
                          std::size_t max_parts = 0, std::size_t min_part = ProcNetReader::kMinPart);

// One network namespace of this machine.
struct NetworkNamespace {
  std::uint64_t inode = 0;  // identity: the nsfs inode of /proc/<pid>/ns/net
  pid_t pid = -1;           // a process in it (the lowest pid), or -1
  std::string command;      // that process's comm
  std::vector<std::string> names;  // names under /run/netns bound to it
  std::uint32_t processes = 0;     // processes in it that we could see

  // Where its tables are: /proc/<pid>/net, or empty when no visible process is in it.
  std::string net_dir(const std::string& proc_root = "/proc") const;
};

// Every network namespace that has a visible process or a name under `run_netns`,
// sorted by inode. Processes that exit while we look are skipped; namespaces of other
// users' processes are visible only to root.
Result<std::vector<NetworkNamespace>> list_network_namespaces(
    const std::string& proc_root = "/proc", const std::string& run_netns = "/run/netns");

// Runs `work` on a short-lived thread that has joined the network namespace at
// `netns_path` (setns needs CAP_SYS_ADMIN), and returns its result. Inside, the
// namespace's tables are at /proc/thread-self/net. The calling thread never moves.
Result<void> run_in_namespace(const std::string& netns_path, FunctionRef<Result<void>()> work);

// Counts the tables of a namespace that has no process in it, by entering it from a
// short-lived thread (setns needs CAP_SYS_ADMIN). `netns_path` is e.g. /run/netns/x.
Result<void> count_namespace_by_path(ProcNetReader& reader, const std::string& netns_path,
                                     PortStateTally& tally);

}  // namespace skopos::tracker
