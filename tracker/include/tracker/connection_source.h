// ConnectionSource: one way of counting established connections per network namespace.
// Implementations: BpfConnectionSource (bpf_connection_source.h), ProcConnectionSource
// (proc_connection_source.h). The tracker picks one with --source and falls back from
// BPF to /proc when BPF cannot load.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>

#include "skopos/function_ref.h"
#include "skopos/result.h"
#include "tracker/connection_counts.h"

namespace skopos::tracker {

// A network namespace to count and how to reach it.
struct NamespaceHandle {
  std::uint64_t inode = 0;  // identity: the nsfs inode
  // A file that refers to it and that setns() accepts: /proc/<pid>/ns/net or
  // /run/netns/<name>.
  std::string ns_path;
};

// Counters a source keeps about itself; all monotonic except `tracked`.
struct SourceStats {
  std::uint64_t tracked = 0;           // namespaces being counted now
  std::uint64_t updates = 0;           // update() calls that did work
  std::uint64_t events = 0;            // kernel change events consumed (BPF)
  std::uint64_t lost_events = 0;       // events the kernel could not send (BPF ring full)
  std::uint64_t resyncs = 0;           // full re-reads after lost events
  std::uint64_t count_failures = 0;    // sockets that could not be counted (map full)
  std::uint64_t storage_failures = 0;  // sockets that could not be marked
  std::uint64_t underflows = 0;        // decrements of a zero count (a bug if nonzero)
  std::uint64_t stale_marks = 0;       // marks left by freed sockets, taken back (a bug if nonzero)
  std::uint64_t reclaim_failures = 0;  // idle map entries whose delete failed (retried next pass)
  std::uint64_t misplaced_counts = 0;  // increments left on a reused element: a key one too high
  std::uint64_t snapshot_counted = 0;  // pre-existing sockets found by snapshots
  std::uint64_t read_errors = 0;       // namespaces that could not be read (/proc)
  std::uint64_t unproven = 0;          // tracked namespaces unknown until a snapshot proves them (BPF)
  std::uint64_t proofs = 0;            // snapshots run again to prove a count (BPF)
  std::uint64_t snapshots = 0;         // snapshots run, first ones and proofs (BPF)
  std::uint64_t hash_walks = 0;        // walks of the host's TCP hash that snapshotted many at once (BPF)
  std::uint64_t hash_walk_fallbacks = 0;  // walks whose namespaces the iterator snapshotted instead (BPF)
  // Of snapshot_counted, sockets walks of the host's hash counted, finished or not, since
  // the program was loaded: like the kernel's other counters here, it outlives a restart
  // that takes over the pinned program (BPF).
  std::uint64_t hash_walk_counted = 0;
  std::uint64_t carried_over = 0;      // namespaces a restart took from the pinned maps, no snapshot (BPF)
  std::uint64_t reclaim_passes = 0;    // passes over the kernel maps for idle entries (BPF)
  std::uint64_t keys_reclaimed = 0;    // count keys at zero deleted by them (BPF)
  std::uint64_t marks_reclaimed = 0;   // idle socket marks deleted by them (BPF)
  std::uint64_t map_keys = 0;          // count keys the kernel holds now, idle ones included (BPF; approximate)
  std::uint64_t map_marks = 0;         // socket marks the kernel holds now, idle ones included (BPF; approximate)
};

class ConnectionSource {
 public:
  virtual ~ConnectionSource() = default;

  virtual SourceKind kind() const = 0;

  // Starts counting `ns`, including connections that already exist: once this returns
  // ok, counts(ns.inode) is exact. Tracking a tracked namespace again is a no-op.
  // Errors (the namespace vanished, no permission) leave it untracked.
  virtual Result<void> track(const NamespaceHandle& ns) = 0;
  // Tracks every namespace of `namespaces` as track() does, and calls `failed` for each
  // one left untracked. A source that can do the work of many at once (BPF: snapshots in
  // parallel and one read of the kernel's map) does; the others track one by one.
  virtual void track_many(std::span<const NamespaceHandle> namespaces,
                          FunctionRef<void(const NamespaceHandle&, const Error&)> failed) {
    for (const NamespaceHandle& ns : namespaces) {
      if (auto status = track(ns); !status) failed(ns, status.error());
    }
  }
  // Stops counting; its counts become unknown.
  virtual void untrack(std::uint64_t inode) = 0;
  virtual bool tracking(std::uint64_t inode) const = 0;

  // The current counts of a tracked namespace, or nullptr when it is not tracked:
  // unknown, which callers must never read as zero. The pointer is valid until the next
  // non-const call.
  virtual const NamespaceCounts* counts(std::uint64_t inode) const = 0;

  // Brings the counts up to date and calls `changed` once for each tracked namespace
  // whose counts may have changed. BPF: consumes pending kernel events (cheap; call when
  // wait_fd() is readable). /proc: re-reads every tracked namespace (call on an interval).
  virtual Result<void> update(FunctionRef<void(std::uint64_t inode)> changed) = 0;

  // Housekeeping the source needs whatever the events, on kMaintainInterval: BPF
  // reclaims the kernel maps' idle entries. Cheap when there is nothing to do.
  static constexpr auto kMaintainInterval = std::chrono::seconds(10);
  virtual Result<void> maintain() { return {}; }

  // A descriptor that becomes readable when update() has work, or -1 when the source
  // must be updated on a timer instead.
  virtual int wait_fd() const = 0;

  virtual SourceStats stats() const = 0;
};

}  // namespace skopos::tracker
