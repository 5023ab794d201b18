// Tracker::inbound_peers: who holds a container's inbound connections, for the
// stream's "peers" question. Counts come from the connection source; peers are a rarer
// question (a drain asks once per progress tick), so they are read from the container's
// own tables when asked, never kept.
#include <algorithm>
#include <set>

#include "tracker/tracker.h"

#include "tracker/proc_processes.h"

namespace skopos::tracker {

PeersAnswer Tracker::inbound_peers(const PeersRequest& request) {
  PeersAnswer answer;
  answer.id = request.id;
  const auto unknown = [&](std::string reason) {
    answer.known = false;
    answer.reason = std::move(reason);
    return answer;
  };
  // The full id, or a prefix of at least 12 characters that names one container.
  auto found = containers_.find(request.id);
  if (found == containers_.end() && request.id.size() >= 12) {
    for (auto it = containers_.lower_bound(request.id); it != containers_.end() && it->first.starts_with(request.id);
         ++it) {
      if (found != containers_.end()) return unknown("id prefix '" + request.id + "' names more than one container");
      found = it;
    }
  }
  if (found == containers_.end()) return unknown("no running container has id '" + request.id + "'");
  Container& container = found->second;
  answer.id = found->first;
  if (container.netns == 0 || container.info.pid <= 0) {
    return unknown("the container's network namespace is not known (not running, or not resolved yet)");
  }
  // The pid must still be the container's process, not a recycled number.
  auto start = process_start_time(options_.proc_root, container.info.pid);
  if (!start || *start != container.pid_start) return unknown("the container's process is gone");

  std::set<std::uint16_t> ports(request.ports.begin(), request.ports.end());
  if (ports.empty() && container.info.network_mode == NetworkMode::kHost) {
    // The host's tables hold every host process's sockets: only the task's own ports.
    ports.insert(container.listen_ports.begin(), container.listen_ports.end());
    if (ports.empty()) return unknown("a host-network container without known ports: name the ports to ask about");
  }
  const bool by_listeners = ports.empty();
  std::set<std::uint16_t> listening;
  std::vector<StreamPeer> established;
  const std::string net_dir = options_.proc_root + "/" + std::to_string(container.info.pid) + "/net";
  auto read = reader_.decode_namespace(net_dir, [&](const TcpSocketRecord& record) {
    if (record.state == TcpState::kListen) {
      listening.insert(record.local_port);
      return;
    }
    if (record.state != TcpState::kEstablished || record.inode == 0) return;
    if (!by_listeners && ports.count(record.local_port) == 0) return;
    established.push_back(StreamPeer{record.local_port, format_address(record.family, record.remote_address),
                                     record.remote_port, record.inode});
  });
  if (!read) return unknown("reading " + net_dir + ": " + read.error().message());
  if (by_listeners) {
    // Inbound: accepted on a port the namespace listens on (a listener may come after
    // its connections in the table, so this filter waits for the whole read).
    std::erase_if(established, [&](const StreamPeer& peer) { return listening.count(peer.local_port) == 0; });
  }
  std::sort(established.begin(), established.end(),
            [](const StreamPeer& a, const StreamPeer& b) { return a.inode < b.inode; });
  answer.known = true;
  answer.total = established.size();
  if (established.size() > request.limit) established.resize(request.limit);
  answer.peers = std::move(established);
  return answer;
}

}  // namespace skopos::tracker
