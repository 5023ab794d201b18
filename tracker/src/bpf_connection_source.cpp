#include "tracker/bpf_connection_source.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

// The ABI header first: the skeleton refers to its structs by name.
#include "skopos/bpf/conn_tracker.h"
#include "conn_tracker.skel.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "skopos/unique_fd.h"
#include "tracker/proc_connection_source.h"
#include "tracker/proc_net_reader.h"

namespace skopos::tracker {

namespace {

constexpr const char* kObject = "conn_tracker";

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

std::uint32_t clamp_count(std::uint64_t value) {
  return value > UINT32_MAX ? UINT32_MAX : static_cast<std::uint32_t>(value);
}

}  // namespace

Result<std::unique_ptr<BpfConnectionSource>> BpfConnectionSource::create() {
  errno = 0;
  conn_tracker* skeleton = conn_tracker__open();
  if (skeleton == nullptr) return unexpected(Error::from_errno(failure_errno(0), "bpf open", kObject));
  // Owned from here on, so every error path below frees it.
  std::unique_ptr<BpfConnectionSource> source(new BpfConnectionSource(skeleton));

  if (int ret = conn_tracker__load(skeleton); ret != 0) {
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
  source->ring_ = ring_buffer__new(bpf_map__fd(skeleton->maps.conn_events), &BpfConnectionSource::on_event,
                                   source.get(), nullptr);
  if (source->ring_ == nullptr) {
    return unexpected(Error::from_errno(failure_errno(0), "bpf ring buffer", "conn_events"));
  }
  bpf_prog_info info{};
  std::uint32_t length = sizeof info;
  if (int ret = bpf_obj_get_info_by_fd(bpf_program__fd(skeleton->progs.track_transition), &info, &length);
      ret != 0) {
    return unexpected(Error::from_errno(failure_errno(ret), "bpf prog info", kObject));
  }
  source->program_id_ = info.id;
  source->pending_.reserve(4096);
  return source;
}

BpfConnectionSource::~BpfConnectionSource() {
  if (ring_ != nullptr) ring_buffer__free(ring_);
  conn_tracker__destroy(skeleton_);
}

int BpfConnectionSource::wait_fd() const { return ring_buffer__epoll_fd(ring_); }

int BpfConnectionSource::on_event(void* context, void* data, std::size_t size) {
  auto* self = static_cast<BpfConnectionSource*>(context);
  if (size < sizeof(skopos_conn_event)) return 0;
  // Read in place; the record is only valid during this call.
  skopos_conn_event event;
  std::memcpy(&event, data, sizeof event);
  self->pending_.push_back(pack(event.key));
  ++self->events_;
  return 0;
}

Result<void> BpfConnectionSource::snapshot(const NamespaceHandle& ns) {
  if (ns.inode > UINT32_MAX) {
    return unexpected(Error::invalid("bpf snapshot", ns.ns_path, "namespace inode does not fit 32 bits"));
  }
  auto inode = namespace_inode(ns.ns_path);
  if (!inode) return unexpected(std::move(inode).error());
  if (*inode != ns.inode) {
    return unexpected(Error::invalid("bpf snapshot", ns.ns_path,
                                     "now refers to namespace " + std::to_string(*inode) + ", not " +
                                         std::to_string(ns.inode)));
  }

  // Snapshots run one at a time (this object is single-threaded), so the iterator's
  // inputs in .bss belong to this run.
  skeleton_->bss->snapshot_netns = static_cast<std::uint32_t>(ns.inode);
  std::memset(skeleton_->bss->snapshot_listeners, 0, sizeof skeleton_->bss->snapshot_listeners);

  const int link_fd = bpf_link__fd(skeleton_->links.snapshot_namespace);
  // bpf_iter_tcp walks the namespace of the task that creates the iterator, so create
  // and read it from a thread that joined the namespace.
  return run_in_namespace(ns.ns_path, [&]() -> Result<void> {
    UniqueFd iter(bpf_iter_create(link_fd));
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
  });
}

Result<NamespaceCounts> BpfConnectionSource::read_map(std::uint64_t inode) const {
  NamespaceCounts counts;
  const int fd = bpf_map__fd(skeleton_->maps.conn_counts);
  skopos_conn_key key{};
  skopos_conn_key next{};
  const skopos_conn_key* previous = nullptr;
  // Keys are never deleted while the program runs, so the walk cannot restart midway.
  while (bpf_map_get_next_key(fd, previous, &next) == 0) {
    key = next;
    previous = &key;
    if (key.netns != inode) continue;
    std::uint64_t value = 0;
    if (bpf_map_lookup_elem(fd, &key, &value) != 0) {
      if (errno == ENOENT) continue;
      return unexpected(Error::from_errno(errno, "bpf map lookup", "conn_counts"));
    }
    counts.set(key.port, direction_of(key), clamp_count(value));
  }
  if (errno != ENOENT) return unexpected(Error::from_errno(errno, "bpf map walk", "conn_counts"));
  return counts;
}

Result<void> BpfConnectionSource::track(const NamespaceHandle& ns) {
  if (tracked_.contains(ns.inode)) return {};
  if (auto status = snapshot(ns); !status) return status;
  auto counts = read_map(ns.inode);
  if (!counts) return unexpected(std::move(counts).error());
  tracked_.emplace(ns.inode, std::move(*counts));
  return {};
}

void BpfConnectionSource::untrack(std::uint64_t inode) { tracked_.erase(inode); }

const NamespaceCounts* BpfConnectionSource::counts(std::uint64_t inode) const {
  auto it = tracked_.find(inode);
  return it == tracked_.end() ? nullptr : &it->second;
}

Result<void> BpfConnectionSource::reread_all(FunctionRef<void(std::uint64_t inode)> changed) {
  ++resyncs_;
  for (auto& [inode, counts] : tracked_) {
    auto fresh = read_map(inode);
    if (!fresh) return unexpected(std::move(fresh).error());
    if (!(*fresh == counts)) {
      counts = std::move(*fresh);
      changed(inode);
    }
  }
  return {};
}

Result<void> BpfConnectionSource::update(FunctionRef<void(std::uint64_t inode)> changed) {
  pending_.clear();
  const int consumed = ring_buffer__consume(ring_);
  if (consumed < 0) return unexpected(Error::from_errno(-consumed, "bpf ring buffer consume", "conn_events"));
  if (consumed > 0) ++updates_;

  // Events the kernel could not send: some keys changed unseen, so read everything.
  const std::uint64_t lost = load(skeleton_->bss->stats.lost_events);
  if (lost != lost_seen_) {
    lost_seen_ = lost;
    return reread_all(changed);
  }
  if (pending_.empty()) return {};

  std::sort(pending_.begin(), pending_.end());
  pending_.erase(std::unique(pending_.begin(), pending_.end()), pending_.end());
  const int fd = bpf_map__fd(skeleton_->maps.conn_counts);
  std::uint64_t last_reported = UINT64_MAX;
  // Sorted by namespace first, so each namespace is reported once.
  for (const std::uint64_t packed : pending_) {
    const skopos_conn_key key = unpack(packed);
    auto it = tracked_.find(key.netns);
    if (it == tracked_.end()) continue;
    std::uint64_t value = 0;
    if (bpf_map_lookup_elem(fd, &key, &value) != 0) {
      return unexpected(Error::from_errno(errno, "bpf map lookup", "conn_counts"));
    }
    it->second.set(key.port, direction_of(key), clamp_count(value));
    if (last_reported != key.netns) {
      last_reported = key.netns;
      changed(key.netns);
    }
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
  stats.snapshot_counted = load(kernel.snapshot_counted);
  return stats;
}

}  // namespace skopos::tracker
