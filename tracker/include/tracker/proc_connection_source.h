// ProcConnectionSource: counts from the kernel's /proc/<pid>/net/tcp and tcp6 tables,
// re-read on every update(). The fallback when BPF cannot load, and the truth the BPF
// counts are checked against.
//
// Each read classifies the namespace's ESTABLISHED sockets by the listening-port rule of
// connection_counts.h. A table is a consistent view of each hash bucket, not of the whole
// table at one instant, so under churn a read is exact only for sockets that did not
// change while it ran.
#pragma once

#include <bitset>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tracker/connection_source.h"
#include "tracker/proc_net_reader.h"

namespace skopos::tracker {

class ProcConnectionSource final : public ConnectionSource {
 public:
  explicit ProcConnectionSource(ScanKernel kernel = ScanKernel::kAuto);

  // Reads one namespace's tables into `counts` (cleared first), without tracking it.
  // The namespace is checked to still be `ns.inode` before and after the read, so a
  // reused pid never yields another namespace's counts.
  Result<void> read(const NamespaceHandle& ns, NamespaceCounts& counts);

  SourceKind kind() const override { return SourceKind::kProc; }
  Result<void> track(const NamespaceHandle& ns) override;
  void untrack(std::uint64_t inode) override;
  bool tracking(std::uint64_t inode) const override { return tracked_.contains(inode); }
  const NamespaceCounts* counts(std::uint64_t inode) const override;
  // Re-reads every tracked namespace. A namespace that can no longer be read (its last
  // process exited) is untracked and reported as changed; the error is counted, not
  // returned, so one vanished container never stops the others' counts.
  Result<void> update(FunctionRef<void(std::uint64_t inode)> changed) override;
  int wait_fd() const override { return -1; }
  SourceStats stats() const override;

 private:
  struct Tracked {
    NamespaceHandle handle;
    NamespaceCounts counts;
  };

  std::unordered_map<std::uint64_t, Tracked> tracked_;
  ProcNetReader reader_;
  // Scratch space of read(), kept so a read allocates nothing once warm.
  std::bitset<65536> listeners_;
  std::vector<std::pair<std::uint16_t, std::uint16_t>> established_;  // local, remote port
  NamespaceCounts scratch_;
  SourceStats stats_;
};

// The <proc>/<pid>/net directory of a handle whose ns_path is <proc>/<pid>/ns/net, or
// empty when the namespace must be entered with setns instead (/run/netns/<name>).
std::string proc_net_dir(const NamespaceHandle& ns);

// The nsfs inode that `ns_path` refers to now, or an error (it does not exist).
Result<std::uint64_t> namespace_inode(const std::string& ns_path);

}  // namespace skopos::tracker
