#include "tracker/tracker.h"

#include "tracker/proc_processes.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "skopos/log.h"
#include "skopos/unique_fd.h"
#include "skopos/unique_handle.h"

namespace skopos::tracker {

namespace {

std::string quoted_id(const std::string& id) { return "'" + id.substr(0, 12) + "'"; }

}  // namespace

Tracker::Tracker(std::unique_ptr<ConnectionSource> source, std::unique_ptr<ProcConnectionSource> checker,
                 Options options)
    : source_(std::move(source)), checker_(std::move(checker)), options_(std::move(options)) {
  if (auto inode = namespace_inode(options_.proc_root + "/self/ns/net")) host_netns_ = *inode;
}

void Tracker::track_namespace(const NamespaceHandle& handle, std::string what) {
  if (source_->tracking(handle.inode)) return;
  to_track_.push_back(handle);
  to_track_what_.push_back(std::move(what));
}

void Tracker::track_pending() {
  if (to_track_.empty()) return;
  source_->track_many(to_track_, [&](const NamespaceHandle& handle, const Error& error) {
    const auto it = std::find_if(to_track_.begin(), to_track_.end(),
                                 [&](const NamespaceHandle& queued) { return queued.inode == handle.inode; });
    const std::string& what =
        it != to_track_.end() ? to_track_what_[static_cast<std::size_t>(it - to_track_.begin())] : handle.ns_path;
    // Processes exit while we look; that is routine, not worth a warning.
    log_debug("cannot count namespace " + std::to_string(handle.inode) + " of " + what + ": " + error.message());
  });
  // Every namespace is counted, or unknown (not tracked) and tried again at the next rescan.
  for (const NamespaceHandle& handle : to_track_) mark_namespace_changed(handle.inode);
  to_track_.clear();
  to_track_what_.clear();
}

void Tracker::rescan() {
  auto listed = list_network_namespaces(options_.proc_root, options_.run_netns);
  if (!listed) {
    log_error("cannot list network namespaces: " + listed.error().message());
    return;
  }
  std::map<std::uint64_t, NetworkNamespace> fresh;
  for (NetworkNamespace& ns : *listed) {
    NamespaceHandle handle{ns.inode, {}};
    if (ns.pid >= 0) {
      handle.ns_path = options_.proc_root + "/" + std::to_string(ns.pid) + "/ns/net";
    } else if (!ns.names.empty()) {
      handle.ns_path = options_.run_netns + "/" + ns.names.front();
    }
    if (!handle.ns_path.empty()) track_namespace(handle, ns.command.empty() ? "a named namespace" : ns.command);
    fresh.emplace(ns.inode, std::move(ns));
  }
  track_pending();
  // Forget namespaces that are gone (and are not a container's, which follows its pid).
  std::set<std::uint64_t> in_use;
  for (const auto& [id, container] : containers_) in_use.insert(container.netns);
  for (const auto& [inode, ns] : namespaces_) {
    if (!fresh.contains(inode) && !in_use.contains(inode)) {
      source_->untrack(inode);
      suspect_.erase(inode);
    }
  }
  namespaces_ = std::move(fresh);

  // A container whose first process is no longer the one we resolved has died; its
  // namespace is unknown until Docker says what happened.
  bool any_host = false;
  for (auto& [id, container] : containers_) {
    if (container.netns == 0) {
      resolve(container);
      if (container.netns != 0) mark_changed(container.slot);
      continue;
    }
    auto start = process_start_time(options_.proc_root, container.info.pid);
    if (!start || *start != container.pid_start) {
      log_notice("container " + quoted_id(id) + " process " + std::to_string(container.info.pid) +
                 " is gone; its counts are unknown until it restarts");
      container.netns = 0;
      mark_changed(container.slot);
    }
    any_host = any_host || container.info.network_mode == NetworkMode::kHost;
  }
  if (any_host) {
    std::optional<HostSockets> host;
    for (auto& [id, container] : containers_) {
      if (container.info.network_mode == NetworkMode::kHost && container.netns != 0) {
        if (!host) host = read_host_sockets(container.info.pid);
        auto ports = host_listen_ports(container, *host);
        if (ports != container.listen_ports) {
          container.listen_ports = std::move(ports);
          mark_changed(container.slot);
        }
      }
    }
  }
  track_pending();  // containers resolved just now
  stats_.namespaces = namespaces_.size();
}

Tracker::HostSockets Tracker::read_host_sockets(pid_t any_host_pid) {
  HostSockets host;
  host.children = children_by_parent(options_.proc_root);
  auto status = reader_.decode_namespace(options_.proc_root + "/" + std::to_string(any_host_pid) + "/net",
                                         [&](const TcpSocketRecord& record) {
                                           if (record.state == TcpState::kListen) {
                                             host.listeners.emplace(record.inode, record.local_port);
                                           }
                                         });
  if (!status) log_debug("listening sockets of the host namespace: " + status.error().message());
  return host;
}

std::vector<std::uint16_t> Tracker::host_listen_ports(const Container& container, const HostSockets& host) {
  std::vector<std::uint16_t> ports = container.info.task_ports;
  for (const ContainerPort& port : container.info.ports) {
    if (port.protocol != "tcp") continue;
    ports.push_back(port.host_port != 0 ? port.host_port : port.container_port);
  }
  // The listening sockets owned by the container's process tree.
  std::unordered_set<std::uint64_t> inodes;
  std::vector<pid_t> work{container.info.pid};
  std::unordered_set<pid_t> seen;
  while (!work.empty() && seen.size() < 100000) {
    const pid_t pid = work.back();
    work.pop_back();
    if (!seen.insert(pid).second) continue;
    socket_inodes(options_.proc_root, pid, inodes);
    if (auto it = host.children.find(pid); it != host.children.end()) {
      work.insert(work.end(), it->second.begin(), it->second.end());
    }
  }
  for (const std::uint64_t inode : inodes) {
    if (auto it = host.listeners.find(inode); it != host.listeners.end()) ports.push_back(it->second);
  }
  std::sort(ports.begin(), ports.end());
  ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
  return ports;
}

void Tracker::resolve(Container& container) {
  container.netns = 0;
  const pid_t pid = container.info.pid;
  if (pid <= 0) return;
  if (container.info.network_mode == NetworkMode::kNone) return;
  const std::string ns_path = options_.proc_root + "/" + std::to_string(pid) + "/ns/net";
  // Start time, namespace, start time again: if the pid was reused in between, the two
  // start times differ and we do not trust the namespace.
  auto before = process_start_time(options_.proc_root, pid);
  auto inode = namespace_inode(ns_path);
  auto after = process_start_time(options_.proc_root, pid);
  if (!before || !inode || !after || *before != *after) {
    log_debug("container " + quoted_id(container.info.id) + " process " + std::to_string(pid) + " vanished while resolving");
    return;
  }
  container.pid_start = *before;
  if (container.info.network_mode == NetworkMode::kHost || *inode == host_netns_) {
    container.netns = host_netns_;
    container.listen_ports = host_listen_ports(container, read_host_sockets(pid));
    return;
  }
  container.netns = *inode;
  track_namespace(NamespaceHandle{*inode, ns_path}, "container " + quoted_id(container.info.id));
}

void Tracker::mark_changed(std::uint32_t slot) {
  if (slot >= changed_flag_.size()) changed_flag_.resize(slots_.size(), 0);
  if (changed_flag_[slot] != 0) return;
  changed_flag_[slot] = 1;
  changed_.push_back(slot);
}

void Tracker::mark_namespace_changed(std::uint64_t inode) {
  for (const Container* container : slots_) {
    if (container != nullptr && container->netns == inode) mark_changed(container->slot);
  }
}

void Tracker::add_container(ContainerInfo info) {
  Container container;
  container.info = std::move(info);
  resolve(container);
  const std::string id = container.info.id;
  auto it = containers_.find(id);
  const bool known = it != containers_.end();
  log_info(std::string(known ? "container restarted: " : "container found: ") + quoted_id(id) + " name '" +
           container.info.name + "' mode " + std::string(network_mode_name(container.info.network_mode)) +
           (container.netns != 0 ? " netns " + std::to_string(container.netns) : std::string(" netns unknown")));
  if (known) {
    container.slot = it->second.slot;
    it->second = std::move(container);
  } else {
    if (free_slots_.empty()) {
      container.slot = static_cast<std::uint32_t>(slots_.size());
      slots_.push_back(nullptr);
      changed_flag_.push_back(0);
    } else {
      container.slot = free_slots_.back();
      free_slots_.pop_back();
    }
    it = containers_.emplace(id, std::move(container)).first;
    slots_[it->second.slot] = &it->second;
  }
  mark_changed(it->second.slot);
}

void Tracker::remove_container(std::map<std::string, Container>::iterator it) {
  log_info("container gone: " + quoted_id(it->first));
  const std::uint32_t slot = it->second.slot;
  slots_[slot] = nullptr;
  free_slots_.push_back(slot);
  removed_.push_back(Removed{slot, it->first});
  containers_.erase(it);
}

void Tracker::take_changes(std::vector<std::uint32_t>& changed, std::vector<Removed>& removed) {
  changed.clear();
  removed.clear();
  for (std::uint32_t slot : changed_) {
    changed_flag_[slot] = 0;
    if (slot_live(slot)) changed.push_back(slot);
  }
  changed_.clear();
  removed.swap(removed_);
}

void Tracker::apply(const DiscoveryUpdate& update) {
  switch (update.kind) {
    case DiscoveryUpdate::Kind::kFullList: {
      containers_known_ = true;
      std::set<std::string> listed;
      for (const ContainerInfo& info : update.containers) listed.insert(info.id);
      for (auto it = containers_.begin(); it != containers_.end();) {
        auto next = std::next(it);
        if (!listed.contains(it->first)) remove_container(it);
        it = next;
      }
      for (const ContainerInfo& info : update.containers) {
        auto it = containers_.find(info.id);
        // Unchanged: same first process, already resolved.
        if (it != containers_.end() && it->second.info.pid == info.pid && it->second.netns != 0) continue;
        add_container(info);
      }
      break;
    }
    case DiscoveryUpdate::Kind::kStarted:
      containers_known_ = true;
      for (const ContainerInfo& info : update.containers) {
        auto it = containers_.find(info.id);
        // The same incarnation again (a replayed or late event): nothing changed.
        if (it != containers_.end() && it->second.info.pid == info.pid && it->second.netns != 0) continue;
        add_container(info);
      }
      break;
    case DiscoveryUpdate::Kind::kGone:
      if (auto it = containers_.find(update.id); it != containers_.end()) remove_container(it);
      break;
    case DiscoveryUpdate::Kind::kUnavailable:
      // Keep the last known containers: their namespaces are still counted, and a
      // container must not look drained because Docker is restarting.
      if (containers_known_) {
        for (const Container* container : slots_) {
          if (container != nullptr) mark_changed(container->slot);
        }
      }
      containers_known_ = false;
      break;
  }
  track_pending();
  stats_.containers = containers_.size();
}

std::size_t Tracker::update_source() {
  std::size_t changed = 0;
  auto status = source_->update([&](std::uint64_t inode) {
    ++changed;
    mark_namespace_changed(inode);
  });
  if (!status) log_error("updating " + std::string(source_name(source_->kind())) + " counts failed: " + status.error().message());
  return changed;
}

std::size_t Tracker::check_consistency(std::size_t slice) {
  if (!checker_ || source_->kind() != SourceKind::kBpf) return 0;
  ++stats_.consistency_checks;
  update_source();
  std::size_t mismatches = 0;
  NamespaceCounts truth;
  // The next `slice` namespaces after the cursor, wrapping around once.
  std::vector<std::uint64_t> turn;
  const std::uint64_t from = check_cursor_;
  for (auto it = namespaces_.upper_bound(from); it != namespaces_.end() && turn.size() < slice; ++it) {
    turn.push_back(it->first);
  }
  for (auto it = namespaces_.begin(); it != namespaces_.end() && it->first <= from && turn.size() < slice; ++it) {
    turn.push_back(it->first);
  }
  if (!turn.empty()) check_cursor_ = turn.back();
  for (const std::uint64_t inode : turn) {
    const NetworkNamespace& ns = namespaces_.at(inode);
    const NamespaceCounts* counted = source_->counts(inode);
    if (counted == nullptr) continue;
    const NamespaceHandle handle{inode, ns.pid >= 0 ? options_.proc_root + "/" + std::to_string(ns.pid) + "/ns/net"
                                                    : options_.run_netns + "/" + ns.names.front()};
    if (!checker_->read(handle, truth)) continue;  // the process exited: nothing to compare
    update_source();
    counted = source_->counts(inode);
    if (counted == nullptr) continue;
    if (*counted == truth) {
      suspect_.erase(inode);
      continue;
    }
    // Connections that open or close during the read make a single difference
    // meaningless; the same namespace differing on the next check too is not churn.
    if (++suspect_[inode] < 2) continue;
    ++mismatches;
    ++stats_.consistency_mismatches;
    log_warning("bpf and /proc counts disagree in namespace " + std::to_string(inode) + " ('" + ns.command +
                "'): bpf inbound " + std::to_string(counted->inbound()) + " outbound " +
                std::to_string(counted->outbound()) + ", /proc inbound " + std::to_string(truth.inbound()) +
                " outbound " + std::to_string(truth.outbound()));
    suspect_.erase(inode);
  }
  return mismatches;
}

StreamContainerView Tracker::view(std::uint32_t slot) const {
  const Container& container = *slots_[slot];
  StreamContainerView out;
  out.id = container.info.id;
  out.name = container.info.name;
  out.network_mode = network_mode_name(container.info.network_mode);
  out.mesos_task_id = container.info.mesos_task_id;
  out.marathon_app_id = container.info.marathon_app_id;
  out.declared_ports = container.info.ports;
  out.netns = container.netns;
  const NamespaceCounts* counts = container.netns != 0 ? source_->counts(container.netns) : nullptr;
  out.known = counts != nullptr;
  if (counts != nullptr && container.info.network_mode == NetworkMode::kHost) {
    // Outbound connections of a host-mode container cannot be told from the host's own:
    // not attributed (null), never 0.
    view_ports_.clear();
    std::int64_t inbound = 0;
    for (const PortConnections& port : counts->ports()) {
      if (port.inbound == 0) continue;
      if (!std::binary_search(container.listen_ports.begin(), container.listen_ports.end(), port.port)) continue;
      view_ports_.push_back(PortConnections{port.port, port.inbound, 0});
      inbound += port.inbound;
    }
    out.inbound = inbound;
    out.ports = view_ports_;
  } else if (counts != nullptr) {
    out.ports = counts->ports();
    out.inbound = static_cast<std::int64_t>(counts->inbound());
    out.outbound = static_cast<std::int64_t>(counts->outbound());
  }
  if (conntrack_ && container.info.network_mode == NetworkMode::kBridge && !container.info.addresses.empty()) {
    out.conntrack_inbound = 0;
    for (const std::string& text : container.info.addresses) {
      IpAddress address{};
      if (parse_ip_address(text, address)) out.conntrack_inbound += conntrack_->established(address);
    }
  }
  return out;
}

TrackerSnapshot Tracker::snapshot() const {
  TrackerSnapshot snapshot;
  snapshot.source = source_->kind();
  snapshot.timestamp_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  snapshot.containers_known = containers_known_;
  std::map<std::uint64_t, std::vector<std::string>> by_netns;
  for (const auto& [id, container] : containers_) {
    const StreamContainerView v = view(container.slot);
    if (v.known && container.info.network_mode != NetworkMode::kHost) by_netns[container.netns].push_back(id);
    snapshot.containers.push_back(copy_of(v));
  }
  std::sort(snapshot.containers.begin(), snapshot.containers.end(), [](const StreamContainer& a, const StreamContainer& b) {
    return std::tie(a.name, a.id) < std::tie(b.name, b.id);
  });
  for (const auto& [inode, ns] : namespaces_) {
    NamespaceEntry entry;
    entry.inode = inode;
    entry.pid = ns.pid;
    entry.command = ns.command;
    entry.names = ns.names;
    if (auto it = by_netns.find(inode); it != by_netns.end()) entry.container_ids = it->second;
    const NamespaceCounts* counts = source_->counts(inode);
    entry.known = counts != nullptr;
    if (counts != nullptr) entry.counts = *counts;
    snapshot.namespaces.push_back(std::move(entry));
  }
  return snapshot;
}

TrackerStats Tracker::stats() const {
  TrackerStats stats = stats_;
  stats.source = source_->stats();
  stats.conntrack = conntrack_ != nullptr;
  if (conntrack_) stats.conntrack_stats = conntrack_->stats();
  return stats;
}

}  // namespace skopos::tracker
