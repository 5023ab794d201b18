// The BPF source's pinned state (BpfConnectionSource, "Restart"): a tracker started
// again takes the maps and the attached program the last one pinned, so a namespace it
// proved needs no snapshot, and the connections opened and closed while no tracker ran
// are counted all the same. Each test mounts a BPF filesystem of its own and unmounts it
// at the end, which detaches whatever stayed pinned.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "privileged_support.h"
#include "skopos/bpf/conn_tracker.h"
#include "process.h"
#include "tracker/bpf_connection_source.h"

namespace skopos::tracker {
namespace {

using skopos::testing::tcp_accept;
using skopos::testing::tcp_connect;
using skopos::testing::tcp_listen;
using skopos::testing::TestNetns;

// A BPF filesystem mounted at a temporary directory for the test's life.
class TestBpfFs {
 public:
  TestBpfFs() {
    char dir[] = "/tmp/skopos-bpffs-XXXXXX";
    if (::mkdtemp(dir) == nullptr) return;
    root_ = dir;
    if (::mount("bpf", root_.c_str(), "bpf", 0, nullptr) != 0) {
      ::rmdir(root_.c_str());
      root_.clear();
    }
  }
  ~TestBpfFs() {
    if (root_.empty()) return;
    ::umount2(root_.c_str(), MNT_DETACH);
    ::rmdir(root_.c_str());
  }
  bool mounted() const { return !root_.empty(); }
  std::string pin_dir() const { return root_ + "/tracker"; }

 private:
  std::string root_;
};

std::vector<std::string> states_in(const std::string& pin_dir) {
  std::vector<std::string> states;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(pin_dir, error)) {
    states.push_back(entry.path().filename().string());
  }
  return states;
}

bool program_alive(std::uint32_t id) {
  const int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// Whether the program with this id is gone: a freed program goes after an RCU grace
// period, so waited for up to 5 s.
bool program_gone(std::uint32_t id) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (program_alive(id)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

struct Connection {
  UniqueFd client;
  UniqueFd server;
};

class PrivilegedBpfPinnedState : public ::testing::Test {
 protected:
  void SetUp() override {
    SKOPOS_REQUIRE_ROOT();
    ASSERT_TRUE(fs_.mounted()) << "mount -t bpf failed: " << std::strerror(errno);
    auto netns = TestNetns::create("skopos-pin");
    ASSERT_TRUE(netns) << netns.error().message();
    netns_ = std::move(*netns);
    handle_ = NamespaceHandle{netns_->inode(), "/run/netns/" + netns_->name()};
    TestNetns::Inside inside(*netns_);
    listener_ = tcp_listen("127.0.0.1", kPort);
  }

  Connection connect_inside() {
    TestNetns::Inside inside(*netns_);
    Connection c;
    c.client = tcp_connect("127.0.0.1", kPort);
    c.server = tcp_accept(listener_.get());
    return c;
  }

  BpfConnectionSource::Options pinned() const {
    BpfConnectionSource::Options options;
    options.pin_dir = fs_.pin_dir();
    return options;
  }

  // Updates `bpf` until its counts for the namespace are `inbound` on kPort (and as many
  // outbound to it: both ends are inside), or 5 s pass.
  bool settles_to(BpfConnectionSource& bpf, std::uint32_t connections) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      EXPECT_TRUE(bpf.update([](std::uint64_t) {}));
      const NamespaceCounts* have = bpf.counts(handle_.inode);
      if (have != nullptr && have->get(kPort, Direction::kInbound) == connections &&
          have->get(kPort, Direction::kOutbound) == connections) {
        return true;
      }
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  static constexpr std::uint16_t kPort = 8080;
  TestBpfFs fs_;
  std::unique_ptr<TestNetns> netns_;
  NamespaceHandle handle_;
  UniqueFd listener_;
};

// The restart. The first tracker finds 3 connections by a snapshot; while none runs, 2
// more open and 1 closes; the second takes the pinned program and maps, knows 4 at once
// with no snapshot, and goes on seeing changes. Failed before: nothing was pinned, every
// start walked the established hash once per namespace (seconds on a dense host), and
// the option did not exist.
TEST_F(PrivilegedBpfPinnedState, ARestartTakesThePinnedCountsWithoutASnapshotAndCountsWhatChangedMeanwhile) {
  std::vector<Connection> connections;
  for (int i = 0; i < 3; ++i) connections.push_back(connect_inside());
  std::uint32_t program = 0;
  {
    auto first = BpfConnectionSource::create(pinned());
    ASSERT_TRUE(first) << first.error().message();
    EXPECT_FALSE((*first)->restored());
    ASSERT_TRUE((*first)->track(handle_));
    EXPECT_EQ((*first)->stats().snapshots, 1u);
    ASSERT_TRUE(settles_to(**first, 3));
    program = (*first)->program_id();
  }
  EXPECT_TRUE(program_alive(program)) << "the pinned program goes on counting with no tracker";
  for (int i = 0; i < 2; ++i) connections.push_back(connect_inside());
  connections.erase(connections.begin());
  // A tracker killed in the middle of a snapshot leaves its run in the map: here one of
  // a namespace the next tracker has never seen, which must still snapshot it.
  auto other = TestNetns::create("skopos-pin2");
  ASSERT_TRUE(other) << other.error().message();
  {
    const std::vector<std::string> states = states_in(fs_.pin_dir());
    ASSERT_EQ(states.size(), 1u);
    UniqueFd runs(bpf_obj_get((fs_.pin_dir() + "/" + states.front() + "/snapshot_runs").c_str()));
    ASSERT_TRUE(runs) << std::strerror(errno);
    const std::uint32_t key = (*other)->inode();
    const skopos_snapshot_run empty_run{};
    ASSERT_EQ(bpf_map_update_elem(runs.get(), &key, &empty_run, BPF_NOEXIST), 0) << std::strerror(errno);
  }

  auto second = BpfConnectionSource::create(pinned());
  ASSERT_TRUE(second) << second.error().message();
  BpfConnectionSource& bpf = **second;
  EXPECT_TRUE(bpf.restored());
  EXPECT_EQ(bpf.program_id(), program);
  ASSERT_TRUE(bpf.track(handle_));
  EXPECT_EQ(bpf.stats().snapshots, 0u);
  EXPECT_EQ(bpf.stats().carried_over, 1u);
  const NamespaceCounts* counts = bpf.counts(handle_.inode);
  ASSERT_NE(counts, nullptr) << "known at once";
  EXPECT_EQ(counts->get(kPort, Direction::kInbound), 4u);
  EXPECT_EQ(counts->get(kPort, Direction::kOutbound), 4u);

  ASSERT_TRUE(bpf.track(NamespaceHandle{(*other)->inode(), "/run/netns/" + (*other)->name()}))
      << "the killed tracker's snapshot run is gone";
  EXPECT_EQ(bpf.stats().snapshots, 1u);

  connections.pop_back();
  EXPECT_TRUE(settles_to(bpf, 3)) << "changes after the restart are seen";
  EXPECT_EQ(bpf.stats().underflows, 0u);
  EXPECT_EQ(bpf.stats().stale_marks, 0u);
}

// A socket the kernel could not count while no tracker ran (the mark map full) means the
// pinned counts prove nothing: the restart snapshots, the namespace reads unknown (never
// a wrong number) while the pressure lasts, and exact once it goes.
TEST_F(PrivilegedBpfPinnedState, ASocketNotCountedWhileNoTrackerRanMakesTheRestartSnapshotAgain) {
  BpfConnectionSource::Options options = pinned();
  options.max_sockets = 64;
  std::vector<Connection> connections;
  connections.push_back(connect_inside());
  {
    auto first = BpfConnectionSource::create(options);
    ASSERT_TRUE(first) << first.error().message();
    ASSERT_TRUE((*first)->track(handle_));
    ASSERT_TRUE(settles_to(**first, 1));
  }
  std::vector<Connection> pressure;
  for (int i = 0; i < 40; ++i) pressure.push_back(connect_inside());  // 80 sockets, 64 marks

  auto second = BpfConnectionSource::create(options);
  ASSERT_TRUE(second) << second.error().message();
  BpfConnectionSource& bpf = **second;
  EXPECT_TRUE(bpf.restored());
  EXPECT_GT(bpf.stats().storage_failures, 0u);
  ASSERT_TRUE(bpf.track(handle_));
  EXPECT_EQ(bpf.stats().carried_over, 0u);
  EXPECT_EQ(bpf.stats().snapshots, 1u);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(bpf.update([](std::uint64_t) {}));
    const NamespaceCounts* counts = bpf.counts(handle_.inode);
    if (counts != nullptr) {
      EXPECT_EQ(counts->get(kPort, Direction::kInbound), 41u) << "unknown, or the truth";
    }
  }
  pressure.clear();
  EXPECT_TRUE(settles_to(bpf, 1));
}

// A tracker of another build (here: other map sizes) finds state that is not its own: it
// detaches that program, removes the state and pins its own.
TEST_F(PrivilegedBpfPinnedState, AnotherBuildsStateIsDetachedAndReplaced) {
  BpfConnectionSource::Options other = pinned();
  other.max_keys = 1024;
  std::uint32_t old_program = 0;
  {
    auto first = BpfConnectionSource::create(other);
    ASSERT_TRUE(first) << first.error().message();
    old_program = (*first)->program_id();
  }
  const std::vector<std::string> before = states_in(fs_.pin_dir());
  ASSERT_EQ(before.size(), 1u);
  auto second = BpfConnectionSource::create(pinned());
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_FALSE((*second)->restored());
  const std::vector<std::string> after = states_in(fs_.pin_dir());
  ASSERT_EQ(after.size(), 1u);
  EXPECT_NE(after.front(), before.front());
  EXPECT_TRUE(program_gone(old_program)) << "the other build's program is detached";
}

// One tracker per pin directory: a second is refused with a reason while the first
// lives, and so is an unpin; the unpin then detaches and removes everything.
TEST_F(PrivilegedBpfPinnedState, OneTrackerAtATimeAndAnUnpinRemovesEverything) {
  std::uint32_t program = 0;
  {
    auto first = BpfConnectionSource::create(pinned());
    ASSERT_TRUE(first) << first.error().message();
    program = (*first)->program_id();
    auto second = BpfConnectionSource::create(pinned());
    ASSERT_FALSE(second);
    EXPECT_NE(second.error().message().find("another skopos-tracker uses this pin directory"), std::string::npos)
        << second.error().message();
    auto unpinned = BpfConnectionSource::remove_pins(fs_.pin_dir());
    ASSERT_FALSE(unpinned);
    EXPECT_EQ(states_in(fs_.pin_dir()).size(), 1u);
  }
  ASSERT_TRUE(BpfConnectionSource::remove_pins(fs_.pin_dir()));
  EXPECT_TRUE(states_in(fs_.pin_dir()).empty());
  EXPECT_TRUE(program_gone(program));
  EXPECT_TRUE(BpfConnectionSource::remove_pins(fs_.pin_dir() + "/never-made")) << "nothing to remove is no error";
}

// A pin directory outside a BPF filesystem is refused with the way out.
TEST_F(PrivilegedBpfPinnedState, APinDirectoryOutsideABpfFilesystemIsRefused) {
  char dir[] = "/tmp/skopos-not-bpffs-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  BpfConnectionSource::Options options;
  options.pin_dir = dir;
  auto source = BpfConnectionSource::create(options);
  ::rmdir(dir);
  ASSERT_FALSE(source);
  EXPECT_NE(source.error().message().find("not on a BPF filesystem (mount -t bpf bpf /sys/fs/bpf)"),
            std::string::npos)
      << source.error().message();
}

// The daemon's flags: --bpf-pin-dir pins on the first run and takes over on the next
// (each says which in its log), and --bpf-unpin removes the state; --bpf-unpin alone is a
// usage error naming what is missing.
TEST_F(PrivilegedBpfPinnedState, TheDaemonPinsTakesOverAndUnpins) {
  const std::vector<std::string> once = {SKOPOS_TRACKER,    "--source",        "bpf",  "--docker-socket",
                                         "none",            "--stream-socket", "none", "--conntrack",
                                         "off",             "--once",          "--bpf-pin-dir", fs_.pin_dir()};
  const auto first = skopos::testing::run_process(once);
  EXPECT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.err.find(", pinned in " + fs_.pin_dir()), std::string::npos) << first.err;
  const auto second = skopos::testing::run_process(once);
  EXPECT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(second.err.find(", taken over from the pinned state in " + fs_.pin_dir()), std::string::npos)
      << second.err;
  EXPECT_EQ(states_in(fs_.pin_dir()).size(), 1u);

  const auto usage = skopos::testing::run_process({SKOPOS_TRACKER, "--bpf-unpin"});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_NE(usage.err.find("--bpf-unpin needs --bpf-pin-dir"), std::string::npos) << usage.err;
  const auto unpin = skopos::testing::run_process({SKOPOS_TRACKER, "--bpf-pin-dir", fs_.pin_dir(), "--bpf-unpin"});
  EXPECT_EQ(unpin.exit_code, 0) << unpin.err;
  EXPECT_TRUE(states_in(fs_.pin_dir()).empty());

  // A pin directory it cannot use costs the fast restart, not the BPF source.
  std::vector<std::string> elsewhere = once;
  elsewhere.back() = "/tmp/skopos-no-bpffs-" + std::to_string(::getpid());
  const auto unpinned = skopos::testing::run_process(elsewhere);
  ::rmdir(elsewhere.back().c_str());
  EXPECT_EQ(unpinned.exit_code, 0) << unpinned.err;
  EXPECT_NE(unpinned.err.find("bpf: not pinning"), std::string::npos) << unpinned.err;
  EXPECT_NE(unpinned.err.find("counting with bpf"), std::string::npos) << unpinned.err;
}

}  // namespace
}  // namespace skopos::tracker
