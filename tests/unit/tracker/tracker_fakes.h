// Fakes for Tracker tests: a ConnectionSource whose counts the test sets, and a /proc
// tree whose processes' ns/net are plain files (each file's inode is the "namespace"
// identity, exactly as the Tracker reads it with stat()).
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "skopos/docker_api.h"
#include "tracker/connection_source.h"

namespace skopos::tracker {

namespace fs = std::filesystem;

class FakeSource final : public ConnectionSource {
 public:
  SourceKind kind() const override { return SourceKind::kBpf; }
  Result<void> track(const NamespaceHandle& ns) override {
    handles[ns.inode] = ns.ns_path;
    if (!counts_.contains(ns.inode)) counts_[ns.inode] = NamespaceCounts{};
    return {};
  }
  void untrack(std::uint64_t inode) override {
    handles.erase(inode);
    counts_.erase(inode);
  }
  bool tracking(std::uint64_t inode) const override { return handles.contains(inode); }
  const NamespaceCounts* counts(std::uint64_t inode) const override {
    auto it = counts_.find(inode);
    return it == counts_.end() || !handles.contains(inode) ? nullptr : &it->second;
  }
  // Reports the namespaces set() changed since the last call, as the BPF source does.
  Result<void> update(FunctionRef<void(std::uint64_t)> changed) override {
    for (std::uint64_t inode : pending_) changed(inode);
    pending_.clear();
    return {};
  }
  int wait_fd() const override { return -1; }
  SourceStats stats() const override { return {}; }

  void set(std::uint64_t inode, std::uint16_t port, Direction direction, std::uint32_t value) {
    counts_[inode].set(port, direction, value);
    pending_.push_back(inode);
  }

  std::map<std::uint64_t, std::string> handles;

 private:
  std::map<std::uint64_t, NamespaceCounts> counts_;
  std::vector<std::uint64_t> pending_;
};

// A running container as Docker's inspect describes it, for Tracker::apply().
inline ContainerInfo running_container(std::string id, std::string name, pid_t pid,
                                       NetworkMode mode = NetworkMode::kBridge) {
  ContainerInfo info;
  info.id = std::move(id);
  info.name = std::move(name);
  info.running = true;
  info.pid = pid;
  info.network_mode = mode;
  return info;
}

// /proc with processes whose ns/net are plain files: each file's inode is the
// "namespace" identity, exactly as the Tracker reads it with stat().
class FakeProc {
 public:
  FakeProc() : root_(fs::temp_directory_path() / ("skopos-fakeproc-" + std::to_string(::getpid()))) {
    fs::remove_all(root_);
    host_ = add_namespace_file("self");
  }
  ~FakeProc() { fs::remove_all(root_); }

  std::string root() const { return root_.string(); }
  std::uint64_t host() const { return host_; }

  // A process with its own namespace file; returns that file's inode.
  std::uint64_t add_process(int pid, std::uint64_t start_time, const std::string& comm) {
    const std::uint64_t inode = add_namespace_file(std::to_string(pid));
    set_start_time(pid, start_time, comm);
    return inode;
  }
  // A process sharing the host namespace.
  void add_host_process(int pid, std::uint64_t start_time, const std::string& comm) {
    fs::create_directories(root_ / std::to_string(pid) / "ns");
    fs::create_hard_link(root_ / "self" / "ns" / "net", root_ / std::to_string(pid) / "ns" / "net");
    set_start_time(pid, start_time, comm);
  }
  void set_start_time(int pid, std::uint64_t start_time, const std::string& comm) {
    std::ofstream(root_ / std::to_string(pid) / "stat")
        << pid << " (" << comm << ") S 1 " << pid << " " << pid << " 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 "
        << start_time << " 1000 100\n";
    std::ofstream(root_ / std::to_string(pid) / "comm") << comm << "\n";
  }
  void remove_process(int pid) { fs::remove_all(root_ / std::to_string(pid)); }
  // Gives a process the saved tcp tables of tests/unit/tracker/testdata.
  void add_tables(int pid) {
    fs::create_directories(root_ / std::to_string(pid) / "net");
    for (const char* table : {"tcp", "tcp6"}) {
      fs::copy_file(std::string(SKOPOS_TESTDATA_DIR) + "/netns." + table, root_ / std::to_string(pid) / "net" / table);
    }
  }

 private:
  std::uint64_t add_namespace_file(const std::string& dir) {
    fs::create_directories(root_ / dir / "ns");
    const fs::path file = root_ / dir / "ns" / "net";
    std::ofstream(file) << dir;
    struct stat st {};
    ::stat(file.c_str(), &st);
    return st.st_ino;
  }

  fs::path root_;
  std::uint64_t host_ = 0;
};


}  // namespace skopos::tracker
