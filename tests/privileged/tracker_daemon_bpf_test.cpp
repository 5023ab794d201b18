// skopos-tracker with the BPF source as systemd runs it: it loads and attaches its
// programs, reports counts from them, and on SIGTERM exits 0 with every program
// detached and nothing left pinned.
#include <signal.h>

#include <chrono>
#include <algorithm>
#include <filesystem>
#include <iterator>
#include <set>
#include <sstream>
#include <thread>

#include "privileged_support.h"

namespace skopos::testing {
namespace {

// Ids of the loaded BPF programs named `name` (bpftool prints "ID: TYPE  name NAME ...").
std::set<int> loaded_programs(const std::string& name) {
  std::set<int> ids;
  auto out = run_command({"bpftool", "prog", "show", "name", name});
  if (!out) return ids;  // bpftool exits non-zero when none matches
  std::istringstream lines(*out);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("name " + name) == std::string::npos) continue;
    ids.insert(std::atoi(line.c_str()));
  }
  return ids;
}

std::set<int> minus(const std::set<int>& a, const std::set<int>& b) {
  std::set<int> result;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::inserter(result, result.end()));
  return result;
}

std::size_t pinned_objects() {
  std::size_t count = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator("/sys/fs/bpf", ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    ++count;
  }
  return count;
}

TEST(PrivilegedTrackerDaemon, SigtermDetachesEveryProgramAndPinsNothing) {
  SKOPOS_REQUIRE_ROOT();
  // Other tests' programs may still be on their way out; ours are the new ids.
  const std::set<int> before = loaded_programs("track_transition");
  const std::set<int> iterators_before = loaded_programs("snapshot_namespace");
  const std::size_t pinned_before = pinned_objects();
  ChildProcess tracker({SKOPOS_TRACKER, "--source", "bpf", "--docker-socket", "none", "--conntrack", "off",
                        "--print-interval", "100ms"});
  auto line = tracker.read_line(std::chrono::seconds(10));
  ASSERT_TRUE(line) << "no snapshot printed";
  EXPECT_NE(line->find(R"("source":"bpf")"), std::string::npos) << *line;
  const std::set<int> ours = minus(loaded_programs("track_transition"), before);
  const std::set<int> our_iterators = minus(loaded_programs("snapshot_namespace"), iterators_before);
  EXPECT_EQ(ours.size(), 1u);
  EXPECT_EQ(our_iterators.size(), 1u);

  EXPECT_EQ(tracker.stop(SIGTERM, std::chrono::seconds(10)), 0);
  // The kernel frees a program after an RCU grace period once its last reference is
  // gone; give it a bounded moment.
  const auto still_loaded = [&] {
    std::set<int> left;
    for (const auto& [name, mine] : {std::pair{"track_transition", ours}, std::pair{"snapshot_namespace", our_iterators}}) {
      for (int id : loaded_programs(name)) {
        if (mine.contains(id)) left.insert(id);
      }
    }
    return left;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!still_loaded().empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(still_loaded().empty()) << "programs of the stopped tracker are still loaded";
  EXPECT_EQ(pinned_objects(), pinned_before);
}

}  // namespace
}  // namespace skopos::testing
