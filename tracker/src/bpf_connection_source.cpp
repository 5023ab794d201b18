#include "tracker/bpf_connection_source.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>

// The ABI header first: the skeleton refers to its structs by name.
#include "skopos/bpf/conn_tracker.h"
#include "conn_tracker.skel.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "skopos/cpus.h"
#include "skopos/log.h"
#include "skopos/unique_fd.h"
#include "skopos/unique_handle.h"

namespace skopos::tracker {

namespace {

constexpr const char* kObject = "conn_tracker";
// What a load failure with the walk's programs in it is called (see create()).
constexpr const char* kWalkLoad = "bpf load with the shared-hash walk";

// libbpf reports failures as negative errno values and sets errno; take whichever
// carries it.
int failure_errno(int ret) { return ret < 0 ? -ret : (errno != 0 ? errno : EINVAL); }

std::uint64_t pack(const skopos_conn_key& key) {
  return (std::uint64_t{key.netns} << 24) | (std::uint64_t{key.port} << 8) | key.direction;
}

skopos_conn_key unpack(std::uint64_t packed) {
  skopos_conn_key key{};
  key.netns = static_cast<std::uint32_t>(packed >> 24);
  key.port = static_cast<std::uint16_t>(packed >> 8);
  key.direction = static_cast<std::uint8_t>(packed);
  return key;
}

Direction direction_of(const skopos_conn_key& key) {
  return key.direction == SKOPOS_DIRECTION_INBOUND ? Direction::kInbound : Direction::kOutbound;
}

std::uint64_t load(const std::uint64_t& counter) { return __atomic_load_n(&counter, __ATOMIC_RELAXED); }

// A value with the reclaimed bit is a key being deleted: 0; the aged bit is the reclaim
// passes' bookkeeping (conn_tracker.h).
std::uint32_t clamp_count(std::uint64_t value) {
  if ((value & SKOPOS_COUNT_RECLAIMED) != 0) return 0;
  value &= ~SKOPOS_COUNT_AGED;
  return value > UINT32_MAX ? UINT32_MAX : static_cast<std::uint32_t>(value);
}

// Keys and values per batch lookup.
constexpr std::uint32_t kBatch = 4096;

// Snapshot threads at most: the kernel's map holds SKOPOS_SNAPSHOT_MAX_RUNS runs, and
// past a few threads a snapshot burst would crowd the host's own work.
constexpr std::size_t kMaxSnapshotThreads = 8;
static_assert(kMaxSnapshotThreads <= SKOPOS_SNAPSHOT_MAX_RUNS);

// Buckets per run of the walk program: short runs (a run holds its CPU), each well inside
// SKOPOS_WALK_STEPS on any hash not under attack.
constexpr std::uint32_t kWalkBuckets = 16384;
// A run always finishes a bucket, however often its chain makes the walk start it again.
static_assert((SKOPOS_WALK_MAX_CHAIN + 1) * SKOPOS_WALK_TRIES < SKOPOS_WALK_STEPS);
static_assert(BpfConnectionSource::Options{}.walk_max_chain == SKOPOS_WALK_MAX_CHAIN);

// --- Pinned state (see Restart in the header) -----------------------------------------
//
// <pin_dir>/<state>/ holds one pin per map and, written last, the tracepoint's link: a
// state without its link pin is one a tracker died while writing, and is removed. The
// state's name is a hash of the BPF object and the map sizes, so a tracker never takes
// maps another build laid out.

constexpr const char* kLinkPin = "track_transition";
constexpr const char* kStatePrefix = "state-";

// The maps pinned, by their pin names.
std::vector<std::pair<const char*, bpf_map*>> pinned_maps(conn_tracker* skeleton) {
  return {{"conn_counts", skeleton->maps.conn_counts}, {"sock_marks", skeleton->maps.sock_marks},
          {"conn_events", skeleton->maps.conn_events}, {"snapshot_runs", skeleton->maps.snapshot_runs},
          {"proven_netns", skeleton->maps.proven_netns}, {"bss", skeleton->maps.bss}};
}

std::string state_name(conn_tracker* skeleton) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a, 64 bits
  const auto mix = [&](const void* data, std::size_t size) {
    for (std::size_t i = 0; i < size; ++i) {
      hash = (hash ^ static_cast<const std::uint8_t*>(data)[i]) * 0x100000001b3ULL;
    }
  };
  std::size_t size = 0;
  const void* elf = conn_tracker__elf_bytes(&size);
  mix(elf, size);
  for (const auto& [name, map] : pinned_maps(skeleton)) {
    const std::uint32_t entries = bpf_map__max_entries(map);
    mix(&entries, sizeof entries);
  }
  char text[32];
  std::snprintf(text, sizeof text, "%s%016llx", kStatePrefix, static_cast<unsigned long long>(hash));
  return text;
}

// The names in a directory (not "." and ".."); none when it does not exist.
Result<std::vector<std::string>> entries_of(const std::string& dir) {
  std::vector<std::string> names;
  const UniqueHandle<DIR, ::closedir> entries(::opendir(dir.c_str()));
  if (!entries) {
    if (errno == ENOENT) return names;
    return unexpected(Error::from_errno(errno, "opendir", dir));
  }
  while (const dirent* entry = ::readdir(entries.get())) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  return names;
}

// Removes a state directory and its pins; unpinning the link detaches its program once
// no tracker holds it open. Missing is fine.
Result<void> remove_state(const std::string& dir) {
  auto names = entries_of(dir);
  if (!names) return unexpected(std::move(names).error());
  for (const std::string& name : *names) {
    if (::unlink((dir + "/" + name).c_str()) != 0 && errno != ENOENT) {
      return unexpected(Error::from_errno(errno, "unlink", dir + "/" + name));
    }
  }
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) return unexpected(Error::from_errno(errno, "rmdir", dir));
  return {};
}

// Opens (creating it if missing) and locks the pin directory: it must be on a BPF
// filesystem, and one tracker at a time uses it.
Error not_bpffs(const std::string& pin_dir) {
  return Error::invalid("bpf pin directory", pin_dir, "not on a BPF filesystem (mount -t bpf bpf /sys/fs/bpf)");
}

Result<UniqueFd> lock_pin_dir(const std::string& pin_dir) {
  if (::mkdir(pin_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    Error error = Error::from_errno(errno, "mkdir", pin_dir);
    // /sys/fs/bpf with no BPF filesystem mounted is a plain sysfs directory.
    const std::string parent = pin_dir.substr(0, pin_dir.find_last_of('/') + 1);
    struct statfs fs {};
    if (::statfs(parent.empty() ? "." : parent.c_str(), &fs) == 0 &&
        static_cast<unsigned long>(fs.f_type) != BPF_FS_MAGIC) {
      return unexpected(not_bpffs(pin_dir));
    }
    return unexpected(std::move(error));
  }
  UniqueFd fd(::open(pin_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return unexpected(Error::from_errno(errno, "open", pin_dir));
  struct statfs fs {};
  if (::fstatfs(fd.get(), &fs) != 0) return unexpected(Error::from_errno(errno, "statfs", pin_dir));
  if (static_cast<unsigned long>(fs.f_type) != BPF_FS_MAGIC) return unexpected(not_bpffs(pin_dir));
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    Error error = Error::from_errno(errno, "flock", pin_dir);
    if (errno == EWOULDBLOCK) error.detail = "another skopos-tracker uses this pin directory";
    return unexpected(std::move(error));
  }
  return fd;
}

// Removes every state in the locked pin directory but `keep`.
Result<void> remove_states(const std::string& pin_dir, const std::string& keep) {
  auto names = entries_of(pin_dir);
  if (!names) return unexpected(std::move(names).error());
  for (const std::string& name : *names) {
    if (!name.starts_with(kStatePrefix) || name == keep) continue;
    if (auto removed = remove_state(pin_dir + "/" + name); !removed) return removed;
  }
  return {};
}

// Points each map of the skeleton at its pin in `state`, checking that the pin is the
// map the object declares; false (nothing reused) when any is missing or differs.
bool reuse_pinned_maps(conn_tracker* skeleton, const std::string& state) {
  std::vector<UniqueFd> fds;
  for (const auto& [name, map] : pinned_maps(skeleton)) {
    UniqueFd fd(bpf_obj_get((state + "/" + name).c_str()));
    if (!fd) return false;
    bpf_map_info info{};
    std::uint32_t length = sizeof info;
    if (bpf_obj_get_info_by_fd(fd.get(), &info, &length) != 0 || info.type != bpf_map__type(map) ||
        info.key_size != bpf_map__key_size(map) || info.value_size != bpf_map__value_size(map) ||
        info.max_entries != bpf_map__max_entries(map)) {
      return false;
    }
    fds.push_back(std::move(fd));
  }
  std::size_t i = 0;
  for (const auto& [name, map] : pinned_maps(skeleton)) {
    // The map dups the descriptor; ours closes with `fds`.
    if (bpf_map__reuse_fd(map, fds[i++].get()) != 0) return false;
  }
  return true;
}

}  // namespace

Result<void> BpfConnectionSource::remove_pins(const std::string& pin_dir) {
  struct stat st {};
  if (::stat(pin_dir.c_str(), &st) != 0 && errno == ENOENT) return {};
  auto lock = lock_pin_dir(pin_dir);
  if (!lock) return unexpected(std::move(lock).error());
  return remove_states(pin_dir, "");
}

Result<std::unique_ptr<BpfConnectionSource>> BpfConnectionSource::create(Options options) {
  bool pins_refused = false;
  auto source = create_once(options, true, pins_refused);
  if (!source && options.walk && source.error().operation == kWalkLoad) {
    // The walk is an optimisation: a kernel that refuses its programs gets the iterator.
    log_warning("bpf: the shared-hash walk's programs did not load (" + source.error().message() +
                "); every snapshot uses the kernel's iterator");
    options.walk = false;
    pins_refused = false;
    source = create_once(options, true, pins_refused);
  }
  if (source || !pins_refused) return source;
  // The pinned state could not be taken (a map or the link gone, a load that refused
  // it): log why, remove it and start afresh.
  log_warning("bpf: pinned state in " + options.pin_dir + " not usable (" + source.error().message() +
              "); starting afresh");
  if (auto removed = remove_pins(options.pin_dir); !removed) return unexpected(std::move(removed).error());
  return create_once(options, false, pins_refused);
}

Result<std::unique_ptr<BpfConnectionSource>> BpfConnectionSource::create_once(const Options& options, bool take_pins,
                                                                              bool& pins_refused) {
  errno = 0;
  conn_tracker* skeleton = conn_tracker__open();
  if (skeleton == nullptr) return unexpected(Error::from_errno(failure_errno(0), "bpf open", kObject));
  // Owned from here on, so every error path below frees it.
  std::unique_ptr<BpfConnectionSource> source(new BpfConnectionSource(skeleton));
  if (options.max_keys != 0) {
    if (int ret = bpf_map__set_max_entries(skeleton->maps.conn_counts, options.max_keys); ret != 0) {
      return unexpected(Error::from_errno(failure_errno(ret), "bpf map size", "conn_counts"));
    }
  }
  if (options.max_sockets != 0) {
    if (int ret = bpf_map__set_max_entries(skeleton->maps.sock_marks, options.max_sockets); ret != 0) {
      return unexpected(Error::from_errno(failure_errno(ret), "bpf map size", "sock_marks"));
    }
  }

  // Run by BPF_PROG_RUN, never attached.
  for (bpf_program* program : {skeleton->progs.reclaim, skeleton->progs.read_keys, skeleton->progs.clear_all_pending,
                               skeleton->progs.walk_hash, skeleton->progs.hash_shared}) {
    bpf_program__set_autoattach(program, false);
  }
  // The shared-hash walk steps with bpf_loop() (kernel 5.17); without it every snapshot
  // is the kernel's iterator, one namespace at a time.
  const bool load_walk =
      options.walk && libbpf_probe_bpf_helper(BPF_PROG_TYPE_RAW_TRACEPOINT, BPF_FUNC_loop, nullptr) == 1;
  if (!load_walk) {
    bpf_program__set_autoload(skeleton->progs.walk_hash, false);
    bpf_program__set_autoload(skeleton->progs.hash_shared, false);
  } else if (options.refuse_walk) {
    if (int ret = bpf_program__set_type(skeleton->progs.walk_hash, BPF_PROG_TYPE_UNSPEC); ret != 0) {
      return unexpected(Error::from_errno(failure_errno(ret), "bpf program type", "walk_hash"));
    }
  }
  std::string state;
  if (!options.pin_dir.empty()) {
    auto lock = lock_pin_dir(options.pin_dir);
    if (!lock) return unexpected(std::move(lock).error());
    source->pin_lock_ = std::move(*lock);
    const std::string name = state_name(skeleton);
    if (auto removed = remove_states(options.pin_dir, name); !removed) return unexpected(std::move(removed).error());
    state = options.pin_dir + "/" + name;
    struct stat st {};
    const bool complete = ::stat((state + "/" + kLinkPin).c_str(), &st) == 0;
    if (take_pins && complete) {
      if (!reuse_pinned_maps(skeleton, state)) {
        pins_refused = true;
        return unexpected(Error::invalid("bpf pinned maps", state, "missing or not this build's"));
      }
      source->restored_ = true;
      // The pinned program counts already: ours only reads the maps.
      bpf_program__set_autoattach(skeleton->progs.track_transition, false);
    } else if (auto removed = remove_state(state); !removed) {
      return unexpected(std::move(removed).error());
    }
  }
  // A state this start pinned is removed again if the start fails after all: pinned, it
  // would keep a program counting (and its maps' memory) for nobody.
  struct RemoveOnFailure {
    std::string dir;
    ~RemoveOnFailure() {
      if (!dir.empty()) (void)remove_state(dir);
    }
  } unpin_on_failure;
  if (int ret = conn_tracker__load(skeleton); ret != 0 && load_walk && failure_errno(ret) != EPERM) {
    // Perhaps only the walk's programs: create() tries again without them.
    return unexpected(Error::from_errno(failure_errno(ret), kWalkLoad, kObject));
  } else if (ret != 0) {
    // The pinned maps refused by the verifier (not a missing privilege): start afresh.
    pins_refused = source->restored_ && failure_errno(ret) != EPERM;
    Error error = Error::from_errno(failure_errno(ret), "bpf load", kObject);
    error.detail = error.code == EPERM ? "loading BPF programs needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)"
                                       : "libbpf's log above says why; the kernel needs BTF (/sys/kernel/btf/vmlinux)";
    return unexpected(std::move(error));
  }
  // Attaches the tracepoint, and makes the iterator's link (an iterator runs only when
  // one is created from the link and read).
  if (int ret = conn_tracker__attach(skeleton); ret != 0) {
    return unexpected(Error::from_errno(failure_errno(ret), "bpf attach", kObject));
  }
  if (source->restored_) {
    // The skeleton destroys the link object it holds; the pin keeps the attachment.
    errno = 0;
    skeleton->links.track_transition = bpf_link__open((state + "/" + kLinkPin).c_str());
    if (skeleton->links.track_transition == nullptr) {
      pins_refused = true;
      return unexpected(Error::from_errno(failure_errno(0), "bpf link open", state + "/" + kLinkPin));
    }
  } else if (!state.empty()) {
    if (::mkdir(state.c_str(), 0700) != 0) return unexpected(Error::from_errno(errno, "mkdir", state));
    unpin_on_failure.dir = state;
    for (const auto& [name, map] : pinned_maps(skeleton)) {
      const std::string path = state + "/" + name;
      if (int ret = bpf_map__pin(map, path.c_str()); ret != 0) {
        return unexpected(Error::from_errno(failure_errno(ret), "bpf map pin", path));
      }
    }
    // Last: its pin is what makes the state complete.
    const std::string path = state + "/" + kLinkPin;
    if (int ret = bpf_link__pin(skeleton->links.track_transition, path.c_str()); ret != 0) {
      return unexpected(Error::from_errno(failure_errno(ret), "bpf link pin", path));
    }
  }
  source->ring_.reset(ring_buffer__new(bpf_map__fd(skeleton->maps.conn_events), &BpfConnectionSource::on_event,
                                       source.get(), nullptr));
  if (!source->ring_) {
    return unexpected(Error::from_errno(failure_errno(0), "bpf ring buffer", "conn_events"));
  }
  // The attached program's id: the pinned one after a restart.
  bpf_link_info info{};
  std::uint32_t length = sizeof info;
  if (int ret = bpf_obj_get_info_by_fd(bpf_link__fd(skeleton->links.track_transition), &info, &length); ret != 0) {
    return unexpected(Error::from_errno(failure_errno(ret), "bpf link info", kObject));
  }
  source->program_id_ = info.prog_id;
  source->max_keys_ = bpf_map__max_entries(skeleton->maps.conn_counts);
  source->max_marks_ = bpf_map__max_entries(skeleton->maps.sock_marks);
  source->pending_.reserve(4096);
  // The walk reads the hash of our own namespace: it must be the one the host shares.
  source->walk_ = load_walk && source->hash_here() == SKOPOS_HASH_SHARED;
  source->walk_max_chain_ = options.walk_max_chain;
  if (source->restored_) {
    if (auto resumed = source->resume_from_pins(); !resumed) {
      pins_refused = true;
      return unexpected(std::move(resumed).error());
    }
  }
  unpin_on_failure.dir.clear();
  return source;
}

Result<void> BpfConnectionSource::resume_from_pins() {
  // Runs a killed tracker left: nobody snapshots those namespaces now (we hold the lock).
  auto runs = snapshot_run_keys();
  if (!runs) return unexpected(std::move(runs).error());
  for (std::uint32_t run : *runs) bpf_map_delete_elem(bpf_map__fd(skeleton_->maps.snapshot_runs), &run);
  // The totals so far are the last tracker's: ours start from them. Every key's pending
  // flag is cleared before any count is read, so a change from here on is named again.
  const skopos_conn_stats& kernel = skeleton_->bss->stats;
  failures_seen_ = failures_at_pass_ = failures();
  lost_seen_ = load(kernel.lost_events);
  keys_created_at_pass_ = load(kernel.keys_created);
  marks_created_at_pass_ = load(kernel.marks_created);
  if (auto cleared = run(skeleton_->progs.clear_all_pending, "bpf clear pending"); !cleared) return cleared;
  // No pass ran while no tracker did: one now ages what went idle meanwhile (the next
  // deletes it) and gives the map sizes in stats() a start.
  if (auto pass = reclaim(); !pass) return unexpected(std::move(pass).error());
  return {};
}

bool BpfConnectionSource::proven_before(std::uint64_t inode) const {
  if (!pin_lock_ || inode > UINT32_MAX) return false;
  const auto key = static_cast<std::uint32_t>(inode);
  std::uint64_t failures_then = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(skeleton_->maps.proven_netns), &key, &failures_then) != 0) return false;
  return failures_then == failures_seen_;
}

void BpfConnectionSource::record_proof(std::uint64_t inode, std::optional<std::uint64_t> failures) {
  if (!pin_lock_ || inode > UINT32_MAX) return;
  const auto key = static_cast<std::uint32_t>(inode);
  const int fd = bpf_map__fd(skeleton_->maps.proven_netns);
  // A record that cannot be written (the map full) costs only a snapshot at the next
  // restart.
  if (failures) {
    bpf_map_update_elem(fd, &key, &*failures, BPF_ANY);
  } else {
    bpf_map_delete_elem(fd, &key);
  }
}

void BpfConnectionSource::DestroySkeleton::operator()(conn_tracker* skeleton) const { conn_tracker__destroy(skeleton); }
void BpfConnectionSource::FreeRing::operator()(ring_buffer* ring) const { ring_buffer__free(ring); }

BpfConnectionSource::~BpfConnectionSource() = default;

int BpfConnectionSource::wait_fd() const { return ring_buffer__epoll_fd(ring_.get()); }

int BpfConnectionSource::on_event(void* context, void* data, std::size_t size) {
  auto* self = static_cast<BpfConnectionSource*>(context);
  if (size < sizeof(skopos_conn_event)) return 0;
  // Read in place, no copy: the record is only valid during this call. libbpf hands
  // out records 8-byte aligned in the mapped ring, which suits the struct's alignment.
  const auto* event = static_cast<const skopos_conn_event*>(data);
  self->pending_.push_back(pack(event->key));
  ++self->events_;
  return 0;
}

void BpfConnectionSource::in_threads(std::size_t count, FunctionRef<void(std::size_t)> work,
                                     FunctionRef<void(const Error&)> unstarted) {
  const std::size_t threads = std::min({count, usable_cpus(), kMaxSnapshotThreads});
  std::atomic<std::size_t> next{0};
  std::vector<std::jthread> pool;  // joined on leaving
  pool.reserve(threads);
  for (std::size_t t = 0; t < threads; ++t) {
    try {
      pool.emplace_back([&] {
        for (std::size_t i = next.fetch_add(1); i < count; i = next.fetch_add(1)) work(i);
      });
    } catch (const std::system_error& error) {
      // The threads already running take the whole queue; with none, nothing runs (and
      // the caller tries again at the next rescan). Never on this thread: the work
      // moves its thread into a namespace.
      if (pool.empty()) unstarted(Error::from_errno(error.code().value(), "bpf snapshot", "thread start"));
      break;
    }
  }
}

std::vector<Result<void>> BpfConnectionSource::snapshot_all(std::span<const NamespaceHandle> namespaces) {
  snapshots_ += namespaces.size();
  std::vector<Result<void>> results(namespaces.size());
  // SKOPOS_SNAPSHOT_MAX_RUNS namespaces at a time (a walk's worth: no more namespaces
  // held open at once, whatever the host holds). In parallel, each from a thread of its
  // own moved into the namespace: a namespace with a TCP hash of its own is snapshotted
  // there by the kernel's iterator, which reads only that hash; one sharing the host's
  // is held open (so that its inode stays its own) for the walk, which reads the shared
  // hash once for all of them instead of the iterator reading it whole for each.
  for (std::size_t first = 0; first < namespaces.size(); first += SKOPOS_SNAPSHOT_MAX_RUNS) {
    const std::size_t count = std::min<std::size_t>(SKOPOS_SNAPSHOT_MAX_RUNS, namespaces.size() - first);
    std::vector<UniqueFd> held(count);
    in_threads(
        count,
        [&](std::size_t k) {
          const std::size_t i = first + k;
          auto entered = enter(namespaces[i]);
          if (!entered) {
            results[i] = unexpected(std::move(entered).error());
          } else if (walk_ && hash_here() == SKOPOS_HASH_SHARED) {
            held[k] = std::move(*entered);
          } else {
            results[i] = iterate_here(namespaces[i]);
          }
        },
        [&](const Error& error) {
          for (std::size_t k = 0; k < count; ++k) results[first + k] = unexpected(error);
        });
    std::vector<std::size_t> shared;
    for (std::size_t k = 0; k < count; ++k) {
      if (held[k]) shared.push_back(first + k);
    }
    if (shared.empty() || walk_batch(namespaces, shared, results)) continue;
    held.clear();
    in_threads(
        shared.size(), [&](std::size_t k) { results[shared[k]] = snapshot_here(namespaces[shared[k]]); },
        [&](const Error& error) {
          for (std::size_t i : shared) results[i] = unexpected(error);
        });
  }
  return results;
}

bool BpfConnectionSource::walk_batch(std::span<const NamespaceHandle> namespaces, std::span<const std::size_t> batch,
                                     std::vector<Result<void>>& results) {
  // A run per namespace, removed however the walk ends.
  std::vector<Run> runs;
  runs.reserve(batch.size());
  for (std::size_t i : batch) {
    if (auto added = add_run(namespaces[i]); !added) {
      results[i] = unexpected(std::move(added).error());
    } else {
      runs.push_back(std::move(*added));
    }
  }
  if (runs.empty()) return true;
  // The listeners first, every one, then the established sockets: a socket is inbound
  // when its namespace listens on its port.
  skopos_walk& args = skeleton_->bss->walk_args;
  args.unclaimed = 0;
  for (const std::uint32_t table : {std::uint32_t{SKOPOS_WALK_LISTENING}, std::uint32_t{SKOPOS_WALK_ESTABLISHED}}) {
    // Options::walk_max_chain bounds the established hash's chains; the listening hash's
    // are the program's limit, whatever the option (see there).
    args.max_chain = table == SKOPOS_WALK_ESTABLISHED ? walk_max_chain_ : SKOPOS_WALK_MAX_CHAIN;
    std::uint32_t from = 0;
    do {
      args.table = table;
      args.from = from;
      args.to = from + kWalkBuckets;
      auto ran = run(skeleton_->progs.walk_hash, "bpf shared-hash walk");
      if (ran && args.error == 0) {
        from = args.next;
        continue;
      }
      // The iterator snapshots these instead; what the walk counted stays counted.
      const int error = ran ? -args.error : ran.error().code;
      ++walk_fallbacks_;
      log_warning("bpf: the shared-hash walk stopped (" + std::string(std::strerror(error)) + ") at bucket " +
                  std::to_string(args.next) + " of " + (table == SKOPOS_WALK_LISTENING ? "listening" : "established") +
                  " hash; snapshotting its " + std::to_string(runs.size()) + " namespaces one by one");
      if (error == EOPNOTSUPP) walk_ = false;
      return false;
    } while (from < args.buckets);
  }
  // A socket read ESTABLISHED with a mark not counted: one that left just now, or one the
  // kernel failed to count, which only the iterator (holding its lock) can tell apart.
  if (args.unclaimed != 0) {
    ++walk_fallbacks_;
    return false;
  }
  ++walks_;
  return true;
}

Result<UniqueFd> BpfConnectionSource::enter(const NamespaceHandle& ns) const {
  if (ns.inode > UINT32_MAX) {
    return unexpected(Error::invalid("bpf snapshot", ns.ns_path, "namespace inode does not fit 32 bits"));
  }
  UniqueFd ns_fd(::open(ns.ns_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns_fd) return unexpected(Error::from_errno(errno, "open", ns.ns_path));
  // The namespace the open file refers to, not whatever the path names a moment later.
  struct stat st {};
  if (::fstat(ns_fd.get(), &st) != 0) return unexpected(Error::from_errno(errno, "fstat", ns.ns_path));
  if (st.st_ino != ns.inode) {
    return unexpected(Error::invalid("bpf snapshot", ns.ns_path,
                                     "now refers to namespace " + std::to_string(st.st_ino) + ", not " +
                                         std::to_string(ns.inode)));
  }
  // The kernel's iterator and hash_shared look at the namespace of the calling task;
  // setns() moves only this thread.
  if (::setns(ns_fd.get(), CLONE_NEWNET) != 0) return unexpected(Error::from_errno(errno, "setns", ns.ns_path));
  return ns_fd;
}

std::uint32_t BpfConnectionSource::hash_here() const {
  bpf_test_run_opts opts{};
  opts.sz = sizeof opts;
  if (bpf_prog_test_run_opts(bpf_program__fd(skeleton_->progs.hash_shared), &opts) != 0) return SKOPOS_HASH_UNKNOWN;
  return opts.retval;
}

BpfConnectionSource::Run::~Run() {
  if (fd_ >= 0) bpf_map_delete_elem(fd_, &key_);
}

Result<BpfConnectionSource::Run> BpfConnectionSource::add_run(const NamespaceHandle& ns) const {
  // This namespace's run: its listener bitmap, empty. One run per namespace at a time.
  static const skopos_snapshot_run kEmptyRun{};
  const auto key = static_cast<std::uint32_t>(ns.inode);
  const int fd = bpf_map__fd(skeleton_->maps.snapshot_runs);
  if (bpf_map_update_elem(fd, &key, &kEmptyRun, BPF_NOEXIST) != 0) {
    Error error = Error::from_errno(errno, "bpf snapshot run", ns.ns_path);
    if (error.code == EEXIST) error.detail = "a snapshot of this namespace is already running";
    return unexpected(std::move(error));
  }
  return Run(fd, key);
}

Result<void> BpfConnectionSource::snapshot_here(const NamespaceHandle& ns) const {
  auto entered = enter(ns);
  if (!entered) return unexpected(std::move(entered).error());
  return iterate_here(ns);
}

Result<void> BpfConnectionSource::iterate_here(const NamespaceHandle& ns) const {
  auto run = add_run(ns);  // removed however the snapshot ends
  if (!run) return unexpected(std::move(run).error());

  UniqueFd iter(bpf_iter_create(bpf_link__fd(skeleton_->links.snapshot_namespace)));
  if (!iter) return unexpected(Error::from_errno(errno, "bpf iterator create", ns.ns_path));
  // The program prints nothing, so read() returns 0 once it has visited every socket;
  // EAGAIN means the kernel paused after a million objects and wants another read.
  char sink[64];
  for (;;) {
    const ssize_t n = ::read(iter.get(), sink, sizeof sink);
    if (n == 0) return {};
    if (n < 0 && errno != EINTR && errno != EAGAIN) {
      return unexpected(Error::from_errno(errno, "bpf iterator read", ns.ns_path));
    }
  }
}

Result<void> BpfConnectionSource::walk_batches(int fd, const char* map, std::size_t key_size, std::size_t value_size,
                                               FunctionRef<void(const std::uint8_t*, const std::uint8_t*)> visit) const {
  // Batch lookups walk the hash bucket by bucket, so keys a reclaim pass deletes
  // meanwhile neither restart nor derail the walk, as a get_next_key walk from a deleted
  // key would.
  batch_keys_.resize(kBatch * key_size);
  batch_values_.resize(kBatch * value_size);
  std::uint64_t cursor = 0;  // opaque to us: the kernel's bucket position
  bool first = true;
  bpf_map_batch_opts opts{};
  opts.sz = sizeof opts;
  for (;;) {
    std::uint32_t n = kBatch;
    const int ret = bpf_map_lookup_batch(fd, first ? nullptr : &cursor, &cursor, batch_keys_.data(),
                                         batch_values_.data(), &n, &opts);
    const int error = ret < 0 ? errno : 0;
    if (ret < 0 && error != ENOENT) return unexpected(Error::from_errno(error, "bpf map batch lookup", map));
    first = false;
    for (std::uint32_t k = 0; k < n; ++k) visit(batch_keys_.data() + k * key_size, batch_values_.data() + k * value_size);
    if (error == ENOENT) return {};  // that was the last batch
  }
}

Result<void> BpfConnectionSource::walk_map(FunctionRef<void(const skopos_conn_key&, std::uint64_t)> visit) const {
  return walk_batches(bpf_map__fd(skeleton_->maps.conn_counts), "conn_counts", sizeof(skopos_conn_key),
                      sizeof(skopos_conn_count), [&](const std::uint8_t* key_bytes, const std::uint8_t* value_bytes) {
                        skopos_conn_key key;
                        skopos_conn_count value{};
                        std::memcpy(&key, key_bytes, sizeof key);
                        std::memcpy(&value, value_bytes, sizeof value);
                        visit(key, value.count);
                      });
}

Result<BpfConnectionSource::Occupancy> BpfConnectionSource::occupancy(std::optional<std::uint64_t> netns) const {
  Occupancy occupancy;
  const auto wanted = [&](const skopos_conn_key& key) { return !netns || key.netns == *netns; };
  auto walked = walk_map([&](const skopos_conn_key& key, std::uint64_t value) {
    if (!wanted(key)) return;
    ++occupancy.keys;
    if (clamp_count(value) == 0) ++occupancy.idle_keys;
  });
  if (!walked) return unexpected(std::move(walked).error());
  walked = walk_batches(bpf_map__fd(skeleton_->maps.sock_marks), "sock_marks", sizeof(std::uint64_t),
                        sizeof(skopos_sock_mark), [&](const std::uint8_t*, const std::uint8_t* value_bytes) {
                          skopos_sock_mark mark{};
                          std::memcpy(&mark, value_bytes, sizeof mark);
                          if (!wanted(mark.key)) return;
                          ++occupancy.marks;
                          if (mark.state == SKOPOS_MARK_COUNTED) ++occupancy.counted_marks;
                        });
  if (!walked) return unexpected(std::move(walked).error());
  return occupancy;
}

Result<BpfConnectionSource::ReclaimPass> BpfConnectionSource::reclaim() {
  const skopos_conn_stats& kernel = skeleton_->bss->stats;
  // What the kernel had made before the pass starts: entries made during it are counted
  // into the next pass's growth, never lost from it.
  const std::uint64_t keys_created = load(kernel.keys_created);
  const std::uint64_t marks_created = load(kernel.marks_created);
  const std::uint64_t failures_now = failures();
  const auto started = std::chrono::steady_clock::now();
  if (auto ran = run(skeleton_->progs.reclaim, "bpf reclaim pass"); !ran) return unexpected(std::move(ran).error());
  const skopos_reclaim& args = skeleton_->bss->reclaim_result;
  ReclaimPass pass;
  pass.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  pass.keys_reclaimed = args.keys_reclaimed;
  pass.keys_left = args.keys_left;
  pass.keys_idle = args.keys_idle;
  pass.marks_reclaimed = args.marks_reclaimed;
  pass.marks_left = args.marks_left;
  pass.marks_counted = args.marks_counted;
  pass.failures = args.failures;
  ++reclaim_passes_;
  keys_reclaimed_ += pass.keys_reclaimed;
  marks_reclaimed_ += pass.marks_reclaimed;
  last_pass_ = pass;
  keys_created_at_pass_ = keys_created;
  marks_created_at_pass_ = marks_created;
  failures_at_pass_ = failures_now;
  return pass;
}

Result<void> BpfConnectionSource::maintain() {
  // Always a pass: one over both maps costs milliseconds, and a key that went to zero,
  // or a delete that failed, is reclaimed within two intervals whatever else happened.
  if (auto pass = reclaim(); !pass) return unexpected(std::move(pass).error());
  return {};
}

Result<void> BpfConnectionSource::reclaim_if_full() {
  const skopos_conn_stats& kernel = skeleton_->bss->stats;
  const std::uint64_t keys_made = load(kernel.keys_created) - keys_created_at_pass_;
  const std::uint64_t marks_made = load(kernel.marks_created) - marks_created_at_pass_;
  int passes = keys_made > max_keys_ / 4 || marks_made > max_marks_ / 4 ? 1 : 0;
  // A socket not counted: the room the proof needs, at once (the first pass ages what is
  // idle, the second deletes it); at most once a second while failures go on.
  const auto now = std::chrono::steady_clock::now();
  if (failures() != failures_at_pass_ && now - last_failure_passes_ >= std::chrono::seconds(1)) {
    last_failure_passes_ = now;
    passes = 2;
  }
  for (int i = 0; i < passes; ++i) {
    if (auto pass = reclaim(); !pass) return unexpected(std::move(pass).error());
  }
  return {};
}

Result<std::vector<std::uint32_t>> BpfConnectionSource::snapshot_run_keys() const {
  const int fd = bpf_map__fd(skeleton_->maps.snapshot_runs);
  std::vector<std::uint32_t> keys;
  std::uint32_t key = 0;
  for (const std::uint32_t* previous = nullptr; bpf_map_get_next_key(fd, previous, &key) == 0; previous = &key) {
    keys.push_back(key);
  }
  if (errno != ENOENT) return unexpected(Error::from_errno(errno, "bpf map next key", "snapshot_runs"));
  return keys;
}

Result<std::size_t> BpfConnectionSource::snapshot_runs() const {
  auto keys = snapshot_run_keys();
  if (!keys) return unexpected(std::move(keys).error());
  return keys->size();
}

Result<void> BpfConnectionSource::read_maps(std::unordered_map<std::uint64_t, NamespaceCounts>& into) const {
  return walk_map([&](const skopos_conn_key& key, std::uint64_t value) {
    if (auto it = into.find(key.netns); it != into.end()) it->second.set(key.port, direction_of(key), clamp_count(value));
  });
}

Result<NamespaceCounts> BpfConnectionSource::read_map(std::uint64_t inode) const {
  std::unordered_map<std::uint64_t, NamespaceCounts> one{{inode, NamespaceCounts{}}};
  if (auto read = read_maps(one); !read) return unexpected(std::move(read).error());
  return std::move(one.begin()->second);
}

Result<void> BpfConnectionSource::track(const NamespaceHandle& ns) {
  Result<void> result;
  track_many(std::span(&ns, 1), [&](const NamespaceHandle&, const Error& error) { result = unexpected(error); });
  return result;
}

void BpfConnectionSource::track_many(std::span<const NamespaceHandle> namespaces,
                                     FunctionRef<void(const NamespaceHandle&, const Error&)> failed) {
  std::vector<NamespaceHandle> fresh;
  std::unordered_map<std::uint64_t, NamespaceCounts> counts;
  for (const NamespaceHandle& ns : namespaces) {
    if (tracked_.contains(ns.inode) || counts.contains(ns.inode)) continue;
    fresh.push_back(ns);
    counts.emplace(ns.inode, NamespaceCounts{});
  }
  if (fresh.empty()) return;
  const std::uint64_t failures_before = failures();
  // A namespace a tracker before us proved, with no failure since, is counted in the
  // maps already: no snapshot. One whose snapshot fails leaves `counts`.
  std::vector<NamespaceHandle> walk;
  for (const NamespaceHandle& ns : fresh) {
    if (proven_before(ns.inode)) {
      ++carried_over_;
    } else {
      walk.push_back(ns);
    }
  }
  const std::vector<Result<void>> snapshots = snapshot_all(walk);
  for (std::size_t i = 0; i < walk.size(); ++i) {
    if (snapshots[i]) continue;
    failed(walk[i], snapshots[i].error());
    counts.erase(walk[i].inode);
  }
  if (counts.empty()) return;
  if (auto read = read_maps(counts); !read) {
    for (const NamespaceHandle& ns : fresh) {
      if (counts.contains(ns.inode)) failed(ns, read.error());
    }
    return;
  }
  // A socket the kernel failed to count meanwhile may be one of these namespaces':
  // unknown until a later snapshot proves them (update() tries).
  const bool proven = failures() == failures_before && failures() == failures_seen_;
  for (const NamespaceHandle& ns : fresh) {
    const auto it = counts.find(ns.inode);
    if (it == counts.end()) continue;
    tracked_.emplace(ns.inode, Tracked{ns, std::move(it->second), proven});
    if (proven) record_proof(ns.inode, failures_seen_);
  }
}

void BpfConnectionSource::untrack(std::uint64_t inode) {
  tracked_.erase(inode);
  record_proof(inode, std::nullopt);
}

const NamespaceCounts* BpfConnectionSource::counts(std::uint64_t inode) const {
  auto it = tracked_.find(inode);
  if (it == tracked_.end() || !it->second.proven) return nullptr;  // unknown, never 0
  return &it->second.counts;
}

std::size_t BpfConnectionSource::unproven() const {
  return static_cast<std::size_t>(
      std::count_if(tracked_.begin(), tracked_.end(), [](const auto& entry) { return !entry.second.proven; }));
}

std::uint64_t BpfConnectionSource::failures() const {
  const skopos_conn_stats& kernel = skeleton_->bss->stats;
  return load(kernel.count_failures) + load(kernel.storage_failures);
}

Result<void> BpfConnectionSource::reread_all(FunctionRef<void(std::uint64_t inode)> changed) {
  ++resyncs_;
  // Every key's flag first, so that any change from here on is named again; then the
  // values.
  if (auto cleared = run(skeleton_->progs.clear_all_pending, "bpf clear pending"); !cleared) return cleared;
  if (tracked_.empty()) return {};
  std::unordered_map<std::uint64_t, NamespaceCounts> fresh;
  for (const auto& [inode, tracked] : tracked_) fresh.emplace(inode, NamespaceCounts{});
  if (auto read = read_maps(fresh); !read) return read;
  for (auto& [inode, tracked] : tracked_) {
    NamespaceCounts& now = fresh.at(inode);
    if (now == tracked.counts) continue;
    tracked.counts = std::move(now);
    changed(inode);
  }
  return {};
}

void BpfConnectionSource::unprove_on_failure(std::uint64_t now, FunctionRef<void(std::uint64_t inode)> changed) {
  // A socket the kernel could not count: we cannot tell whose, so no count is known any
  // more until a snapshot proves it again.
  if (now == failures_seen_) return;
  for (auto& [inode, tracked] : tracked_) {
    if (!tracked.proven) continue;
    tracked.proven = false;
    changed(inode);
  }
  failures_seen_ = now;
}

void BpfConnectionSource::prove(FunctionRef<void(std::uint64_t inode)> changed) {
  // A failed socket is unmarked, so a snapshot of its namespace counts it if it is still
  // ESTABLISHED (and there is room now); one that closed meanwhile changed nothing. A
  // namespace is proven when a whole pass ran with no new failure anywhere. A failure
  // since update() looked unproves the rest first: this pass ends with failures_seen_ at
  // `before`, which would otherwise vouch for them too.
  const std::uint64_t before = failures();
  unprove_on_failure(before, changed);
  std::vector<NamespaceHandle> unproven;
  for (const auto& [inode, tracked] : tracked_) {
    if (!tracked.proven) unproven.push_back(tracked.handle);
  }
  proofs_ += unproven.size();
  const std::vector<Result<void>> snapshots = snapshot_all(unproven);
  std::unordered_map<std::uint64_t, NamespaceCounts> fresh;
  for (std::size_t i = 0; i < unproven.size(); ++i) {
    // One that vanished stays unproven: the tracker untracks it.
    if (snapshots[i]) fresh.emplace(unproven[i].inode, NamespaceCounts{});
  }
  if (fresh.empty()) return;  // every one vanished: nothing to read
  if (auto read = read_maps(fresh); !read) return;  // the next update() tries again
  for (auto& [inode, counts] : fresh) tracked_.at(inode).counts = std::move(counts);
  if (failures() != before) return;  // not proven: the next update() tries again
  failures_seen_ = before;
  for (const auto& [inode, counts] : fresh) {
    tracked_.at(inode).proven = true;
    record_proof(inode, before);
    changed(inode);
  }
}

Result<void> BpfConnectionSource::update(FunctionRef<void(std::uint64_t inode)> changed) {
  pending_.clear();
  const int consumed = ring_buffer__consume(ring_.get());
  if (consumed < 0) {
    // Some events may have been taken off the ring: their keys' flags are set and nobody
    // will read them; only a full re-read clears them.
    resync_needed_ = true;
    return unexpected(Error::from_errno(-consumed, "bpf ring buffer consume", "conn_events"));
  }
  if (consumed > 0) ++updates_;

  // Maps grown by a quarter, or full: reclaim what is idle (before any proof, which
  // needs the room). A failed pass is reported after the events are handled.
  Result<void> status;
  if (auto reclaimed = reclaim_if_full(); !reclaimed) status = std::move(reclaimed);

  unprove_on_failure(failures(), changed);
  if (unproven() > 0) prove(changed);

  // Events the kernel could not send, or keys named to a read that failed: some keys
  // changed unseen, so read everything (and clear every flag). Until that succeeds,
  // every update() tries it again.
  const std::uint64_t lost = load(skeleton_->bss->stats.lost_events);
  if (lost != lost_seen_ || resync_needed_) {
    resync_needed_ = true;
    if (auto reread = reread_all(changed); !reread) return reread;
    resync_needed_ = false;
    lost_seen_ = lost;
    return status;
  }
  if (pending_.empty()) return status;

  std::sort(pending_.begin(), pending_.end());
  pending_.erase(std::unique(pending_.begin(), pending_.end()), pending_.end());
  // Every named key is read, tracked or not: the read clears its pending flag, without
  // which the kernel would name it no more (conn_tracker.h). Sorted by namespace first,
  // so each namespace is reported once.
  std::uint64_t last_reported = UINT64_MAX;
  for (std::size_t from = 0; from < pending_.size(); from += SKOPOS_READ_BATCH) {
    const std::size_t n = std::min<std::size_t>(SKOPOS_READ_BATCH, pending_.size() - from);
    skopos_key_batch& batch = skeleton_->bss->read_batch;
    batch.n = static_cast<std::uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) batch.keys[i] = unpack(pending_[from + i]);
    if (auto read = run(skeleton_->progs.read_keys, "bpf read keys"); !read) {
      resync_needed_ = true;
      return read;
    }
    for (std::size_t i = 0; i < n; ++i) {
      const skopos_conn_key& key = batch.keys[i];
      auto it = tracked_.find(key.netns);
      if (it == tracked_.end()) continue;
      // Missing: the count went to 0 and a reclaim pass deleted the key.
      const std::uint64_t value = batch.counts[i] == SKOPOS_COUNT_MISSING ? 0 : batch.counts[i];
      it->second.counts.set(key.port, direction_of(key), clamp_count(value));
      if (last_reported != key.netns) {
        last_reported = key.netns;
        changed(key.netns);
      }
    }
  }
  return status;
}

Result<void> BpfConnectionSource::run(bpf_program* program, const char* what) {
  // Its input and output are in the program's global data, which the skeleton maps.
  bpf_test_run_opts opts{};
  opts.sz = sizeof opts;
  if (int ret = bpf_prog_test_run_opts(bpf_program__fd(program), &opts); ret != 0) {
    return unexpected(Error::from_errno(failure_errno(ret), what, kObject));
  }
  return {};
}

SourceStats BpfConnectionSource::stats() const {
  const skopos_conn_stats& kernel = skeleton_->bss->stats;
  SourceStats stats;
  stats.tracked = tracked_.size();
  stats.updates = updates_;
  stats.events = events_;
  stats.lost_events = load(kernel.lost_events);
  stats.resyncs = resyncs_;
  stats.count_failures = load(kernel.count_failures);
  stats.storage_failures = load(kernel.storage_failures);
  stats.underflows = load(kernel.underflows);
  stats.stale_marks = load(kernel.stale_marks);
  stats.reclaim_failures = load(kernel.reclaim_failures);
  stats.misplaced_counts = load(kernel.misplaced_counts);
  stats.snapshot_counted = load(kernel.snapshot_counted);
  stats.unproven = unproven();
  stats.proofs = proofs_;
  stats.snapshots = snapshots_;
  stats.hash_walks = walks_;
  stats.hash_walk_fallbacks = walk_fallbacks_;
  stats.hash_walk_counted = load(kernel.walk_counted);
  stats.carried_over = carried_over_;
  stats.reclaim_passes = reclaim_passes_;
  stats.keys_reclaimed = keys_reclaimed_;
  stats.marks_reclaimed = marks_reclaimed_;
  // Entries are made only where the kernel counts them and deleted only by reclaim
  // passes. Approximate by what the maps gained during the last pass, which its walk may
  // also have seen.
  stats.map_keys = last_pass_.keys_left + (load(kernel.keys_created) - keys_created_at_pass_);
  stats.map_marks = last_pass_.marks_left + (load(kernel.marks_created) - marks_created_at_pass_);
  return stats;
}

}  // namespace skopos::tracker
