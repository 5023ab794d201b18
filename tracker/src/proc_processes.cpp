#include "tracker/proc_processes.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string_view>

#include "skopos/unique_fd.h"
#include "skopos/unique_handle.h"

namespace skopos::tracker {

namespace {

std::string read_text(const std::string& path, std::size_t limit = 4096) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return {};
  std::string text(limit, '\0');
  std::size_t used = 0;
  while (used < limit) {
    const ssize_t n = ::read(fd.get(), text.data() + used, limit - used);
    if (n <= 0) break;
    used += static_cast<std::size_t>(n);
  }
  text.resize(used);
  return text;
}

// Fields of /proc/<pid>/stat after the command, which may itself hold spaces and ')'.
std::vector<std::string_view> stat_fields(std::string_view stat) {
  std::vector<std::string_view> fields;
  const auto close = stat.rfind(')');
  if (close == std::string_view::npos) return fields;
  std::string_view rest = stat.substr(close + 1);
  while (!rest.empty()) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    const auto end = rest.find(' ');
    if (!rest.empty()) fields.push_back(rest.substr(0, end));
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
  }
  return fields;
}

template <class Integer>
bool parse_integer(std::string_view text, Integer& value) {
  const auto parsed = std::from_chars(text.data(), text.data() + text.size(), value);
  return parsed.ec == std::errc{} && parsed.ptr == text.data() + text.size();
}

}  // namespace

std::unordered_map<pid_t, std::vector<pid_t>> children_by_parent(const std::string& proc_root) {
  std::unordered_map<pid_t, std::vector<pid_t>> children;
  const UniqueHandle<DIR, ::closedir> dir(::opendir(proc_root.c_str()));
  if (!dir) return children;
  while (const dirent* entry = ::readdir(dir.get())) {
    pid_t pid = 0;
    if (!parse_integer(std::string_view(entry->d_name), pid)) continue;
    const std::string stat = read_text(proc_root + "/" + entry->d_name + "/stat");
    const auto fields = stat_fields(stat);  // views into `stat`
    pid_t parent = 0;
    // Fields after the command: state (3), ppid (4).
    if (fields.size() > 1 && parse_integer(fields[1], parent)) children[parent].push_back(pid);
  }
  return children;
}

void socket_inodes(const std::string& proc_root, pid_t pid, std::unordered_set<std::uint64_t>& inodes) {
  const std::string fd_dir = proc_root + "/" + std::to_string(pid) + "/fd";
  const UniqueHandle<DIR, ::closedir> dir(::opendir(fd_dir.c_str()));
  if (!dir) return;
  char target[64];
  while (const dirent* entry = ::readdir(dir.get())) {
    if (entry->d_name[0] == '.') continue;
    const ssize_t n = ::readlinkat(::dirfd(dir.get()), entry->d_name, target, sizeof target - 1);
    if (n <= 0) continue;
    const std::string_view link(target, static_cast<std::size_t>(n));
    if (!link.starts_with("socket:[") || !link.ends_with("]")) continue;
    std::uint64_t inode = 0;
    if (parse_integer(link.substr(8, link.size() - 9), inode)) inodes.insert(inode);
  }
}


Result<std::uint64_t> process_start_time(const std::string& proc_root, pid_t pid) {
  const std::string path = proc_root + "/" + std::to_string(pid) + "/stat";
  const std::string stat = read_text(path);
  if (stat.empty()) return unexpected(Error::from_errno(ESRCH, "read", path));
  const auto fields = stat_fields(stat);
  // starttime is field 22 of the line; fields[0] is field 3.
  std::uint64_t start = 0;
  if (fields.size() < 20 || !parse_integer(fields[19], start)) {
    return unexpected(Error::invalid("parse", path, "no starttime field"));
  }
  return start;
}

}  // namespace skopos::tracker
