// What the tracker reads about processes from /proc, on a made-up /proc: the start time
// behind a command with spaces and parentheses, the process tree, a process's sockets.
#include "tracker/proc_processes.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace skopos::tracker {
namespace {

namespace fs = std::filesystem;

TEST(ProcessStartTime, ReadsField22EvenWithSpacesAndParensInTheCommand) {
  const fs::path root = fs::temp_directory_path() / ("skopos-stat-" + std::to_string(::getpid()));
  fs::create_directories(root / "9");
  std::ofstream(root / "9" / "stat") << "9 (a b) c) S 1 9 9 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 424242 1 1\n";
  auto start = process_start_time(root.string(), 9);
  ASSERT_TRUE(start) << start.error().message();
  EXPECT_EQ(*start, 424242u);
  EXPECT_FALSE(process_start_time(root.string(), 10));
  fs::remove_all(root);
}

TEST(ProcessTree, ChildrenAreFoundByTheirParentAndSocketsByTheirLinks) {
  const fs::path root = fs::temp_directory_path() / ("skopos-tree-" + std::to_string(::getpid()));
  fs::remove_all(root);
  for (const auto& [pid, parent] : {std::pair{1, 0}, std::pair{20, 1}, std::pair{21, 20}, std::pair{22, 20}}) {
    fs::create_directories(root / std::to_string(pid) / "fd");
    std::ofstream(root / std::to_string(pid) / "stat")
        << pid << " (sh) S " << parent << " 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 100 1 1\n";
  }
  fs::create_directories(root / "self");  // not a pid: ignored
  fs::create_symlink("socket:[777]", root / "21" / "fd" / "3");
  fs::create_symlink("pipe:[778]", root / "21" / "fd" / "4");
  fs::create_symlink("socket:[779]", root / "21" / "fd" / "5");

  auto children = children_by_parent(root.string());
  ASSERT_EQ(children.count(20), 1U);
  std::vector<pid_t> of_20 = children[20];
  std::sort(of_20.begin(), of_20.end());
  EXPECT_EQ(of_20, (std::vector<pid_t>{21, 22}));
  EXPECT_EQ(children[1], std::vector<pid_t>{20});

  std::unordered_set<std::uint64_t> inodes;
  socket_inodes(root.string(), 21, inodes);
  EXPECT_EQ(inodes, (std::unordered_set<std::uint64_t>{777, 779})) << "sockets only, not pipes";
  socket_inodes(root.string(), 99, inodes);  // gone: nothing added, no error
  EXPECT_EQ(inodes.size(), 2U);
  fs::remove_all(root);
}

}  // namespace
}  // namespace skopos::tracker
