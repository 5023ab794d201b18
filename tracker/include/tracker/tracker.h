// Tracker: the tracker's state, independent of how it is driven. It knows the network
// namespaces of the machine and the containers in them, keeps the chosen
// ConnectionSource counting every one of them, and answers with a TrackerSnapshot --
// the data model the stream publishes: per container, per port, {inbound, outbound}
// established connections, plus the source and a timestamp.
//
// Containers are attributed like this:
//  * bridge (and container:<id>) mode: everything in the container's own namespace,
//    found from State.Pid. The pid's start time is recorded and checked, so a pid that
//    the kernel reuses for an unrelated process never yields the wrong namespace.
//  * host mode: the host namespace's INBOUND connections on the ports the container
//    listens on -- the listening sockets owned by its processes, plus the ports Docker
//    and Marathon declare for it. Outbound connections of host-mode containers cannot be
//    told apart from the host's own and are not attributed (outbound_attributed=false).
//
// Single-threaded: the daemon's event loop calls everything.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "skopos/json_writer.h"
#include "tracker/conntrack_source.h"
#include "tracker/connection_source.h"
#include "tracker/discovery_update.h"
#include "skopos/docker_api.h"
#include "tracker/proc_connection_source.h"
#include "tracker/proc_net_reader.h"
#include "tracker/stream_protocol.h"

namespace skopos::tracker {

struct ContainerCounts {
  std::string id;
  std::string name;
  NetworkMode network_mode = NetworkMode::kBridge;
  std::string mesos_task_id;
  std::string marathon_app_id;
  std::vector<ContainerPort> declared_ports;  // from Docker (exposed and published)
  std::uint64_t netns = 0;                    // 0 when unknown
  bool known = false;  // false: the counts are unknown (never read them as zero)
  bool outbound_attributed = true;
  std::vector<PortConnections> ports;
  std::uint64_t inbound = 0;
  std::uint64_t outbound = 0;
  // Bridge mode with conntrack: ESTABLISHED DNAT'ed flows to the container's addresses
  // (the cross-check); -1 when not available.
  std::int64_t conntrack_inbound = -1;
};

// One container's published state, borrowed (no copies): what the stream encodes per
// change. Valid until the Tracker's next non-const call.
struct ContainerView {
  std::string_view id;
  std::string_view name;
  NetworkMode network_mode = NetworkMode::kBridge;
  std::string_view mesos_task_id;
  std::string_view marathon_app_id;
  std::span<const ContainerPort> declared_ports;
  std::uint64_t netns = 0;
  bool known = false;
  bool outbound_attributed = true;
  std::span<const PortConnections> ports;
  std::uint64_t inbound = 0;
  std::uint64_t outbound = 0;
  std::int64_t conntrack_inbound = -1;
};
ContainerView view_of(const ContainerCounts& counts);

// Writes one container as the JSON object of the snapshot and the stream (the same
// shape everywhere). Allocates nothing beyond growing `json`'s string.
void write_container(JsonWriter& json, const ContainerView& container);

struct NamespaceEntry {
  std::uint64_t inode = 0;
  bool known = false;
  pid_t pid = -1;
  std::string command;
  std::vector<std::string> names;          // /run/netns names
  std::vector<std::string> container_ids;  // containers in it (bridge mode)
  NamespaceCounts counts;
};

struct TrackerSnapshot {
  static constexpr int kVersion = 1;
  SourceKind source = SourceKind::kProc;
  std::int64_t timestamp_ns = 0;  // Unix time of the snapshot
  bool containers_known = false;  // false without a reachable Docker API
  std::vector<ContainerCounts> containers;  // sorted by name
  std::vector<NamespaceEntry> namespaces;   // sorted by inode
};

struct TrackerStats {
  SourceStats source;
  bool conntrack = false;
  ConntrackStats conntrack_stats;
  std::uint64_t consistency_checks = 0;
  std::uint64_t consistency_mismatches = 0;  // namespaces where BPF and /proc disagreed twice
  std::uint64_t containers = 0;
  std::uint64_t namespaces = 0;
};

class Tracker {
 public:
  struct Options {
    std::string proc_root = "/proc";
    std::string run_netns = "/run/netns";
  };

  // `checker` (may be null) reads /proc for the consistency check of a BPF source.
  Tracker(std::unique_ptr<ConnectionSource> source, std::unique_ptr<ProcConnectionSource> checker, Options options);

  ConnectionSource& source() { return *source_; }
  const ConnectionSource& const_source() const { return *source_; }
  // The conntrack cross-check, when available (null otherwise).
  void set_conntrack(std::unique_ptr<ConntrackSource> conntrack) { conntrack_ = std::move(conntrack); }
  ConntrackSource* conntrack() { return conntrack_.get(); }

  // Finds the machine's namespaces: tracks new ones, forgets vanished ones, refreshes
  // host-mode containers' listening ports. Errors are logged and counted, never fatal.
  void rescan();
  // Applies a container update from ContainerDiscovery.
  void apply(const DiscoveryUpdate& update);
  // Lets the source catch up (BPF: consume events; /proc: re-read). Returns the number
  // of namespaces whose counts changed.
  std::size_t update_source();
  // BPF only: compares tracked namespaces with a /proc read; a namespace that disagrees
  // on two reads in a row (so not mere churn) is a mismatch, counted and logged. At most
  // `slice` namespaces per call, resuming after the last one checked (round robin), so
  // on a dense host one call never holds the event loop (and every subscriber's update)
  // for the whole host. Returns the mismatches of this call.
  std::size_t check_consistency(std::size_t slice = SIZE_MAX);
  std::size_t namespace_count() const { return namespaces_.size(); }

  TrackerSnapshot snapshot() const;
  TrackerStats stats() const;

  // Change tracking for the stream. Every container has a slot number, stable while it
  // exists and reused after it is gone. take_changes() hands over the slots whose
  // published state may have changed and the ids of containers removed since the last
  // call, and clears both (the vectors are reused: no allocation in steady state).
  struct Removed {
    std::uint32_t slot;
    std::string id;
  };
  void take_changes(std::vector<std::uint32_t>& changed, std::vector<Removed>& removed);
  std::uint32_t slot_count() const { return static_cast<std::uint32_t>(slots_.size()); }
  bool slot_live(std::uint32_t slot) const { return slot < slots_.size() && slots_[slot] != nullptr; }
  // The container in a live slot, as published.
  ContainerView view(std::uint32_t slot) const;
  // Whether the container list is from a reachable Docker API.
  bool containers_known() const { return containers_known_; }

  // The stream's "peers" question (PROTOCOL.md): the container's established inbound
  // connections, read from its own /proc/<pid>/net/tcp{,6} now, oldest (lowest inode)
  // first. A container that is not running, not resolved, or whose process changed is
  // answered known = false with the reason. Reads two files; allocates.
  PeersAnswer inbound_peers(const PeersRequest& request);

 private:
  struct Container {
    std::uint32_t slot = 0;
    ContainerInfo info;
    std::uint64_t netns = 0;
    std::uint64_t pid_start = 0;  // /proc/<pid>/stat starttime when the namespace was resolved
    std::vector<std::uint16_t> listen_ports;  // host mode
  };

  void add_container(ContainerInfo info);
  void remove_container(std::map<std::string, Container>::iterator it);
  void mark_changed(std::uint32_t slot);
  void mark_namespace_changed(std::uint64_t inode);
  void resolve(Container& container);
  // Queues a namespace to track (`what` names it in a log line if that fails);
  // track_pending() tracks the queue at once (see ConnectionSource::track_many), so a
  // burst of containers -- the first list of a dense host -- costs one batch.
  void track_namespace(const NamespaceHandle& handle, std::string what);
  void track_pending();
  // The host's processes and its listening sockets, read once per rescan and shared
  // by every host-mode container.
  struct HostSockets {
    std::unordered_map<pid_t, std::vector<pid_t>> children;      // by parent pid
    std::unordered_map<std::uint64_t, std::uint16_t> listeners;  // socket inode -> port
  };
  HostSockets read_host_sockets(pid_t any_host_pid);
  std::vector<std::uint16_t> host_listen_ports(const Container& container, const HostSockets& host);

  std::unique_ptr<ConnectionSource> source_;
  std::unique_ptr<ProcConnectionSource> checker_;
  std::unique_ptr<ConntrackSource> conntrack_;
  Options options_;
  std::uint64_t host_netns_ = 0;
  std::map<std::string, Container> containers_;  // by id
  std::vector<Container*> slots_;                 // slot -> container (map nodes are stable)
  std::vector<std::uint32_t> free_slots_;
  std::vector<std::uint32_t> changed_;
  std::vector<std::uint8_t> changed_flag_;  // by slot
  std::vector<Removed> removed_;
  mutable std::vector<PortConnections> view_ports_;  // host-mode ports of the last view()
  bool containers_known_ = false;
  std::map<std::uint64_t, NetworkNamespace> namespaces_;  // by inode, from the last rescan
  std::map<std::uint64_t, int> suspect_;  // namespaces that disagreed on the last check
  std::uint64_t check_cursor_ = 0;         // the last namespace check_consistency() read
  std::vector<NamespaceHandle> to_track_;  // queued by track_namespace()
  std::vector<std::string> to_track_what_;
  ProcNetReader reader_;
  TrackerStats stats_;
};

// The pid's start time (field 22 of /proc/<pid>/stat, clock ticks since boot), or an
// error when the process does not exist.
Result<std::uint64_t> process_start_time(const std::string& proc_root, pid_t pid);

// JSON (one line, no newline) and the human table of a snapshot.
std::string snapshot_json(const TrackerSnapshot& snapshot);
std::string snapshot_table(const TrackerSnapshot& snapshot);

}  // namespace skopos::tracker
