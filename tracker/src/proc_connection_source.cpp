#include "tracker/proc_connection_source.h"

#include <sys/stat.h>

#include <cerrno>

namespace skopos::tracker {

std::string proc_net_dir(const NamespaceHandle& ns) {
  constexpr std::string_view kSuffix = "/ns/net";
  const std::string_view path = ns.ns_path;
  // <proc root>/<pid>/ns/net: the same process's tables are at <proc root>/<pid>/net.
  if (path.ends_with(kSuffix)) {
    return std::string(path.substr(0, path.size() - kSuffix.size())) + "/net";
  }
  return {};
}

Result<std::uint64_t> namespace_inode(const std::string& ns_path) {
  struct stat st {};
  if (::stat(ns_path.c_str(), &st) != 0) return unexpected(Error::from_errno(errno, "stat", ns_path));
  return static_cast<std::uint64_t>(st.st_ino);
}

namespace {

Result<void> check_same_namespace(const NamespaceHandle& ns) {
  auto inode = namespace_inode(ns.ns_path);
  if (!inode) return unexpected(std::move(inode).error());
  if (*inode != ns.inode) {
    return unexpected(Error::invalid("read namespace", ns.ns_path,
                                     "now refers to namespace " + std::to_string(*inode) + ", not " +
                                         std::to_string(ns.inode)));
  }
  return {};
}

}  // namespace

ProcConnectionSource::ProcConnectionSource(ScanKernel kernel) : reader_(kernel) {}

Result<void> ProcConnectionSource::read(const NamespaceHandle& ns, NamespaceCounts& counts) {
  counts.clear();
  listeners_.reset();
  established_.clear();
  auto sink = [&](const TcpSocketRecord& record) {
    if (record.state == TcpState::kListen) {
      listeners_.set(record.local_port);
    } else if (record.state == TcpState::kEstablished && record.kind == SocketKind::kFull) {
      established_.emplace_back(record.local_port, record.remote_port);
    }
  };

  if (auto same = check_same_namespace(ns); !same) return same;
  const std::string net_dir = proc_net_dir(ns);
  Result<void> status = net_dir.empty()
                            ? run_in_namespace(ns.ns_path,
                                               [&] { return reader_.decode_namespace("/proc/thread-self/net", sink); })
                            : reader_.decode_namespace(net_dir, sink);
  if (!status) return status;
  // The pid may have exited and been reused while we read.
  if (auto same = check_same_namespace(ns); !same) return same;

  for (const auto& [local, remote] : established_) {
    if (listeners_.test(local)) {
      counts.add(local, Direction::kInbound);
    } else {
      counts.add(remote, Direction::kOutbound);
    }
  }
  return {};
}

Result<void> ProcConnectionSource::track(const NamespaceHandle& ns) {
  if (tracked_.contains(ns.inode)) return {};
  NamespaceCounts counts;
  if (auto status = read(ns, counts); !status) return status;
  tracked_.emplace(ns.inode, Tracked{ns, std::move(counts)});
  return {};
}

void ProcConnectionSource::untrack(std::uint64_t inode) { tracked_.erase(inode); }

const NamespaceCounts* ProcConnectionSource::counts(std::uint64_t inode) const {
  auto it = tracked_.find(inode);
  return it == tracked_.end() ? nullptr : &it->second.counts;
}

Result<void> ProcConnectionSource::update(FunctionRef<void(std::uint64_t inode)> changed) {
  ++stats_.updates;
  for (auto it = tracked_.begin(); it != tracked_.end();) {
    Tracked& entry = it->second;
    if (auto status = read(entry.handle, scratch_); !status) {
      ++stats_.read_errors;
      const std::uint64_t inode = it->first;
      it = tracked_.erase(it);
      changed(inode);
      continue;
    }
    if (!(scratch_ == entry.counts)) {
      std::swap(scratch_, entry.counts);
      changed(it->first);
    }
    ++it;
  }
  return {};
}

SourceStats ProcConnectionSource::stats() const {
  SourceStats stats = stats_;
  stats.tracked = tracked_.size();
  return stats;
}

}  // namespace skopos::tracker
