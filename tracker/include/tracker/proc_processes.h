// What the tracker reads about processes from /proc (apart from the TCP tables, which
// proc_net_reader.h decodes): start times, the process tree, a process's sockets. Every
// directory handle is owned (UniqueHandle); a process that vanishes mid-read is simply
// not there.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "skopos/result.h"

namespace skopos::tracker {

// The pid's start time (field 22 of /proc/<pid>/stat, clock ticks since boot), or an
// error when the process does not exist.
Result<std::uint64_t> process_start_time(const std::string& proc_root, pid_t pid);

// Every process's children, by parent pid: for walking a container's process tree.
std::unordered_map<pid_t, std::vector<pid_t>> children_by_parent(const std::string& proc_root);

// Adds the socket inodes `pid` holds open ("socket:[12345]" links under
// /proc/<pid>/fd) to `inodes`.
void socket_inodes(const std::string& proc_root, pid_t pid, std::unordered_set<std::uint64_t>& inodes);

}  // namespace skopos::tracker
