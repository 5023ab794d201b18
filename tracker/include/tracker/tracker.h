// Tracker: the tracker's state, independent of how it is driven. It knows the network
// namespaces of the machine and the containers in them, keeps the chosen
// ConnectionSource counting every one of them, and answers with the containers as the
// stream publishes them (stream_protocol.h: StreamContainerView per slot, StreamContainer
// in a TrackerSnapshot): per container, per port, {inbound, outbound} established
// connections, plus the source and a timestamp. What it reads about processes is
// proc_processes.h; how a snapshot is printed, snapshot_output.h.
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

#include "tracker/conntrack_source.h"
#include "tracker/connection_source.h"
#include "tracker/discovery_update.h"
#include "skopos/docker_api.h"
#include "tracker/proc_connection_source.h"
#include "tracker/proc_net_reader.h"
#include "tracker/stream_protocol.h"

namespace skopos::tracker {

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
  std::vector<StreamContainer> containers;  // as the stream publishes them, sorted by name
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
  // The container in a live slot, as the stream publishes it (borrowed: valid until the
  // next non-const call).
  StreamContainerView view(std::uint32_t slot) const;
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

}  // namespace skopos::tracker
