// BpfConnectionSource: exact counts kept by the kernel (bpf/conn_tracker.bpf.c).
//
// A tp_btf program on inet_sock_set_state counts every socket entering and leaving
// ESTABLISHED, in every namespace, from the moment create() returns. track() runs the
// snapshot iterator in the namespace, which counts the sockets that were ESTABLISHED
// before and that no transition has counted yet; a mark per counted socket (a hash map
// keyed by socket address) makes the two agree with no double count and no negative
// count, however the sockets churn meanwhile.
//
// The kernel's iterator walks the whole TCP hash for the sockets of one namespace, and
// every namespace shares the host's hash (unless net.ipv4.tcp_child_ehash_entries gave it
// one of its own): a thousand namespaces would read it a thousand times. So track_many()
// snapshots the namespaces that share it with one walk of the hash per
// SKOPOS_SNAPSHOT_MAX_RUNS of them (the `walk_hash` program, which counts the sockets of
// every namespace it snapshots as it passes; see conn_tracker.h), and those with a hash
// of their own with the iterator, in parallel, one thread per CPU this process may use.
// It then reads the kernel's map once for all of them. Kernels before 6.1 (no
// per-namespace hashes to tell apart) and a tracker whose own namespace has a hash of its
// own use the iterator for every namespace.
//
// Change events arrive through a ring buffer: wait on wait_fd(), then update(). Events
// only name the (namespace, port, direction) to re-read from the kernel's map, so lost
// or reordered events never make a count wrong; lost events trigger a full re-read. The
// kernel names a key once until update() has read it (in batches, through a program that
// clears the key's flag as it reads), so a busy port costs an event per update.
//
// The kernel's hot path reuses map entries instead of deleting them (a count at zero
// keeps its key, a socket's mark waits for the next socket at its address); reclaim()
// deletes those that stayed idle from one pass to the next. update() runs it when the
// maps have grown by a quarter of their capacity or a socket could not be counted (twice
// then, at most once a second), and maintain() on every ConnectionSource::kMaintainInterval.
//
// A socket the kernel could not count (a map full or out of memory, or a lock it could
// not take) is never a
// silent 0: from the update() that sees the kernel's failure counters move, every
// tracked namespace is unknown (counts() == nullptr) until a fresh snapshot -- which
// counts every ESTABLISHED socket not counted yet -- has run in it with no failure
// meanwhile. update() retries those snapshots; call it on an interval while
// stats().unproven is nonzero (no event may come to wake the caller).
//
// Restart. With Options::pin_dir (a directory on a BPF filesystem), the maps and the
// tracepoint's link are pinned there, so the program keeps counting while no tracker
// runs, and a tracker started again takes the counts from the maps: a namespace that
// was proven, with no failure since (proven_netns holds the failure total at each
// proof), needs no snapshot. A restart on a dense host then costs one read of the map,
// not a walk of the established hash per namespace. The pinned state belongs to one
// build of the BPF object and one pair of map sizes (the state's directory is named by
// their hash): a tracker of another build detaches and removes it and starts afresh.
// One tracker at a time per directory (an exclusive flock on it).
//
// Not thread-safe: one thread calls everything (the tracker's event loop).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "skopos/unique_fd.h"
#include "tracker/connection_source.h"

struct conn_tracker;  // the bpftool skeleton
struct skopos_conn_key;  // bpf/include/skopos/bpf/conn_tracker.h
struct ring_buffer;   // libbpf
struct bpf_program;   // libbpf

namespace skopos::tracker {

class BpfConnectionSource final : public ConnectionSource {
 public:
  struct Options {
    // Capacity of the kernel's count map (keys with live sockets); tests lower it to
    // fill it on purpose.
    std::uint32_t max_keys = 0;  // 0: SKOPOS_CONN_MAX_KEYS
    // Capacity of the kernel's mark map (sockets counted at once, host-wide); tests
    // lower it to fill it on purpose.
    std::uint32_t max_sockets = 0;  // 0: SKOPOS_CONN_MAX_SOCKETS
    // Where to pin the maps and the tracepoint's link (see Restart above); empty: nothing
    // is pinned and the program stops with this object.
    std::string pin_dir;
    // Whether namespaces sharing the host's TCP hash are snapshotted by walks of it (see
    // above) when the kernel allows; false: the iterator, one namespace at a time.
    bool walk = true;
    // Sockets in one bucket of the established hash a walk takes at most (at most the
    // program's own limit, 1024): a longer chain stops the walk and the iterator
    // snapshots its namespaces instead. Lower only to test that path. The listening
    // hash's chains always have the program's limit: a wildcard listener's IPv4 and IPv6
    // sockets share a bucket, as do SO_REUSEPORT groups, so a lower one would stop every
    // walk on many hosts before it counted anything.
    std::uint32_t walk_max_chain = 1024;
    // Tests only: the walk's program is given no program type, which fails the load as a
    // kernel that refuses the walk would, so that create() is seen to fall back to the
    // iterator.
    bool refuse_walk = false;
  };
  // Loads, verifies and attaches the programs. Needs root (CAP_BPF, CAP_PERFMON,
  // CAP_SYS_ADMIN for setns) and kernel BTF; errors name the step and carry errno.
  static Result<std::unique_ptr<BpfConnectionSource>> create(Options options);
  static Result<std::unique_ptr<BpfConnectionSource>> create() { return create(Options{}); }

  // Without a pin_dir, detaches the programs and frees the maps; with one, the pinned
  // program goes on counting into the pinned maps.
  ~BpfConnectionSource() override;
  // Detaches the program and frees the maps a tracker pinned in `pin_dir` (one of any
  // build): for an uninstall, or to start afresh. Fails while a tracker uses the
  // directory. Nothing to remove is not an error.
  static Result<void> remove_pins(const std::string& pin_dir);
  BpfConnectionSource(const BpfConnectionSource&) = delete;
  BpfConnectionSource& operator=(const BpfConnectionSource&) = delete;

  SourceKind kind() const override { return SourceKind::kBpf; }
  Result<void> track(const NamespaceHandle& ns) override;
  void track_many(std::span<const NamespaceHandle> namespaces,
                  FunctionRef<void(const NamespaceHandle&, const Error&)> failed) override;
  void untrack(std::uint64_t inode) override;
  bool tracking(std::uint64_t inode) const override { return tracked_.contains(inode); }
  const NamespaceCounts* counts(std::uint64_t inode) const override;
  Result<void> update(FunctionRef<void(std::uint64_t inode)> changed) override;
  int wait_fd() const override;
  SourceStats stats() const override;

  // The kernel's id of the tracepoint program, as `bpftool prog show id N` lists it.
  std::uint32_t program_id() const { return program_id_; }
  // Whether create() took the maps and the attached program a tracker before this one
  // pinned (a restart), rather than loading afresh.
  bool restored() const { return restored_; }
  // Whether namespaces sharing the host's TCP hash are snapshotted by walks of it (see
  // above), rather than by the iterator one at a time.
  bool walks_shared_hash() const { return walk_; }
  // The kernel's counts for a namespace read straight from the map (tracked or not),
  // bypassing the event path; for tests and the consistency check.
  Result<NamespaceCounts> read_map(std::uint64_t inode) const;
  // What the kernel's maps hold now, read entry by entry; with `netns`, only the keys of
  // that namespace and the marks of its sockets (a mark names the key it was counted
  // under, and an idle one its last).
  struct Occupancy {
    std::size_t keys = 0;           // count keys
    std::size_t idle_keys = 0;      // of those, at zero: reclaimed by the reclaim passes
    std::size_t marks = 0;          // socket marks
    std::size_t counted_marks = 0;  // of those, counted sockets: one per ESTABLISHED socket
  };
  Result<Occupancy> occupancy(std::optional<std::uint64_t> netns = std::nullopt) const;
  // One reclaim pass (see above); what it did.
  struct ReclaimPass {
    std::uint64_t keys_reclaimed = 0;
    std::uint64_t keys_left = 0;
    std::uint64_t keys_idle = 0;  // left at zero, for the next pass
    std::uint64_t marks_reclaimed = 0;
    std::uint64_t marks_left = 0;
    std::uint64_t marks_counted = 0;  // of the marks left; the rest are idle, for the next pass
    std::uint64_t failures = 0;       // deletes that failed, tried again by the next pass
    double seconds = 0;               // how long the pass took
  };
  Result<ReclaimPass> reclaim();
  Result<void> maintain() override;
  // Snapshot runs the kernel's map holds now: 0 between snapshots (each run removes its
  // entry however it ends).
  Result<std::size_t> snapshot_runs() const;

 private:
  // Release the skeleton (conn_tracker__destroy) and the ring buffer (ring_buffer__free):
  // defined where the skeleton's header is included.
  struct DestroySkeleton {
    void operator()(conn_tracker* skeleton) const;
  };
  struct FreeRing {
    void operator()(ring_buffer* ring) const;
  };

  explicit BpfConnectionSource(conn_tracker* skeleton) : skeleton_(skeleton) {}
  // create() once: with `take_pins`, from the pinned state if there is a complete one;
  // `pins_refused` says a failure came from taking it (create() then starts afresh).
  static Result<std::unique_ptr<BpfConnectionSource>> create_once(const Options& options, bool take_pins,
                                                                  bool& pins_refused);
  static int on_event(void* context, void* data, std::size_t size);
  // The namespaces (inodes) of the snapshot runs the kernel's map holds now.
  Result<std::vector<std::uint32_t>> snapshot_run_keys() const;
  // Runs the snapshot of each namespace, in parallel (see above); one result each.
  std::vector<Result<void>> snapshot_all(std::span<const NamespaceHandle> namespaces);
  // Runs work(0 .. count-1) on up to one thread per usable CPU (threads of our own: the
  // work may move them into namespaces); `unstarted` when no thread could start.
  static void in_threads(std::size_t count, FunctionRef<void(std::size_t)> work,
                         FunctionRef<void(const Error&)> unstarted);
  // Opens `ns`, checks it is still the namespace of its inode and moves the calling
  // thread into it, for good; the open namespace.
  Result<UniqueFd> enter(const NamespaceHandle& ns) const;
  // SKOPOS_HASH_*: whether the calling thread's namespace shares the host's TCP hash.
  std::uint32_t hash_here() const;
  // A snapshot run in the kernel's map, removed when this goes.
  class Run {
   public:
    Run(int fd, std::uint32_t key) : fd_(fd), key_(key) {}
    Run(Run&& other) noexcept : fd_(std::exchange(other.fd_, -1)), key_(other.key_) {}
    Run& operator=(Run&&) = delete;
    ~Run();

   private:
    int fd_;
    std::uint32_t key_;
  };
  // Adds the (empty) snapshot run of `ns`; an error when one is running already.
  Result<Run> add_run(const NamespaceHandle& ns) const;
  // One snapshot by the kernel's iterator, from the calling thread, which it moves into
  // the namespace for good (enter, then iterate_here): only for a thread of
  // snapshot_all's own.
  Result<void> snapshot_here(const NamespaceHandle& ns) const;
  Result<void> iterate_here(const NamespaceHandle& ns) const;
  // One walk of the shared hash for the namespaces namespaces[i], i in `batch` (at most
  // SKOPOS_SNAPSHOT_MAX_RUNS; each held open by the caller), filling their results;
  // false when the iterator must snapshot the batch instead (the walk stopped, or met a
  // socket only the iterator may claim).
  bool walk_batch(std::span<const NamespaceHandle> namespaces, std::span<const std::size_t> batch,
                  std::vector<Result<void>>& results);
  // Fills the counts of every namespace in `into` (keyed by inode, each empty) with one
  // walk of the map.
  Result<void> read_maps(std::unordered_map<std::uint64_t, NamespaceCounts>& into) const;
  // Runs one of the programs that are run, never attached (reclaim, read_keys,
  // clear_all_pending); `what` names it in errors.
  Result<void> run(bpf_program* program, const char* what);
  // Re-reads every tracked namespace from the map.
  Result<void> reread_all(FunctionRef<void(std::uint64_t inode)> changed);
  // Calls `visit` with every key and value (as bytes) of the hash map `fd` (`map` names
  // it in errors), in batches.
  Result<void> walk_batches(int fd, const char* map, std::size_t key_size, std::size_t value_size,
                            FunctionRef<void(const std::uint8_t*, const std::uint8_t*)> visit) const;
  // Calls `visit` with every key and value of the kernel's count map.
  Result<void> walk_map(FunctionRef<void(const skopos_conn_key&, std::uint64_t)> visit) const;
  // Tracked namespaces whose counts are unknown until a snapshot proves them.
  std::size_t unproven() const;
  // With pinned state: whether a tracker proved `inode` and no socket went uncounted
  // since; and the record of a proof (or, with nullopt, its removal).
  bool proven_before(std::uint64_t inode) const;
  void record_proof(std::uint64_t inode, std::optional<std::uint64_t> failures);
  // After create() took pinned state: forgets snapshot runs a killed tracker left, and
  // starts every bookkeeping counter from the kernel's totals.
  Result<void> resume_from_pins();
  // The kernel's count and storage failures so far.
  std::uint64_t failures() const;
  // When the kernel's failure total `now` moved since failures_seen_, every proven
  // namespace becomes unknown (`changed` for each) and failures_seen_ becomes `now`.
  void unprove_on_failure(std::uint64_t now, FunctionRef<void(std::uint64_t inode)> changed);
  // Snapshots the unproven namespaces again; those with no failure meanwhile are known.
  void prove(FunctionRef<void(std::uint64_t inode)> changed);
  // Reclaims when the maps have grown by a quarter of their capacity since the last pass,
  // or a socket could not be counted since (twice then: room for the proof).
  Result<void> reclaim_if_full();

  struct Tracked {
    NamespaceHandle handle;
    NamespaceCounts counts;
    bool proven = true;  // false: a socket may have gone uncounted; unknown until a snapshot
  };

  // Declared in this order so the ring buffer, which reads a map of the skeleton's, goes
  // first, and the pin directory's lock last.
  UniqueFd pin_lock_;  // the pin directory, flocked for as long as we live
  std::unique_ptr<conn_tracker, DestroySkeleton> skeleton_;
  std::unique_ptr<ring_buffer, FreeRing> ring_;
  std::uint32_t program_id_ = 0;
  bool restored_ = false;   // see restored()
  std::uint64_t snapshots_ = 0;      // snapshots run
  bool walk_ = false;                // namespaces sharing the host's hash are walked (see above)
  std::uint32_t walk_max_chain_ = 0;  // Options::walk_max_chain
  std::uint64_t walks_ = 0;          // walks of the shared hash that finished
  std::uint64_t walk_fallbacks_ = 0;  // walks whose batch went to the iterator instead
  std::uint64_t carried_over_ = 0;   // namespaces proven by a tracker before us: no snapshot
  std::unordered_map<std::uint64_t, Tracked> tracked_;
  // Keys named by the events of the current update(), as packed 64-bit values.
  std::vector<std::uint64_t> pending_;
  std::uint64_t events_ = 0;
  std::uint64_t updates_ = 0;
  std::uint64_t resyncs_ = 0;
  std::uint64_t lost_seen_ = 0;  // stats.lost_events at the last full re-read
  std::uint64_t failures_seen_ = 0;  // failures() when every namespace was last proven
  std::uint64_t proofs_ = 0;  // snapshots run again to prove a count
  // Reclaim passes, what they deleted, and the maps' state after the last one.
  std::uint64_t reclaim_passes_ = 0;
  std::uint64_t keys_reclaimed_ = 0;
  std::uint64_t marks_reclaimed_ = 0;
  ReclaimPass last_pass_;
  std::uint64_t keys_created_at_pass_ = 0;   // stats.keys_created when the last pass ran
  std::uint64_t marks_created_at_pass_ = 0;  // stats.marks_created when the last pass ran
  std::uint64_t failures_at_pass_ = 0;       // failures() when the last pass ran
  bool resync_needed_ = false;  // keys may have been named and not read: re-read them all
  std::chrono::steady_clock::time_point last_failure_passes_{};  // passes made for a failure
  std::uint32_t max_keys_ = 0;
  std::uint32_t max_marks_ = 0;
  // Reused by read_map's batch lookups.
  mutable std::vector<std::uint8_t> batch_keys_, batch_values_;
};

}  // namespace skopos::tracker
