// skopos-tracker with the BPF source as systemd runs it: it loads and attaches its
// programs, reports counts from them, and on SIGTERM exits 0 with every program
// detached and nothing left pinned.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "privileged_support.h"

namespace skopos::testing {
namespace {

// How many loaded BPF programs carry `name` (bpftool prints one "id: type name ..." line each).
int loaded_programs(const std::string& name) {
  auto out = run_command({"bpftool", "prog", "show", "name", name});
  if (!out) return 0;  // bpftool exits non-zero when none matches
  int count = 0;
  for (std::size_t at = out->find("name " + name); at != std::string::npos; at = out->find("name " + name, at + 1)) {
    ++count;
  }
  return count;
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
  const int before = loaded_programs("track_transition");
  const std::size_t pinned_before = pinned_objects();
  ChildProcess tracker({SKOPOS_TRACKER, "--source", "bpf", "--docker-socket", "none", "--conntrack", "off",
                        "--print-interval", "100ms"});
  auto line = tracker.read_line(std::chrono::seconds(10));
  ASSERT_TRUE(line) << "no snapshot printed";
  EXPECT_NE(line->find(R"("source":"bpf")"), std::string::npos) << *line;
  EXPECT_EQ(loaded_programs("track_transition"), before + 1);

  EXPECT_EQ(tracker.stop(SIGTERM, std::chrono::seconds(10)), 0);
  // The kernel frees a program after an RCU grace period once its last reference is
  // gone; give it a bounded moment.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while ((loaded_programs("track_transition") != before || loaded_programs("snapshot_namespace") != 0) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(loaded_programs("track_transition"), before) << "the tracepoint program is still loaded";
  EXPECT_EQ(loaded_programs("snapshot_namespace"), 0) << "the iterator program is still loaded";
  EXPECT_EQ(pinned_objects(), pinned_before);
}

}  // namespace
}  // namespace skopos::testing
