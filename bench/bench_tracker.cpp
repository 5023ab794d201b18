// bench_tracker: the tracker's goals from the tracker-core issue, measured on this
// machine with real sockets in a network namespace of its own (needs root):
//
//  1. A count query for a namespace with 100k established connections (200k
//     ESTABLISHED sockets: both ends live here): the BPF source against a /proc read
//     and a sock_diag dump of the same namespace.
//  2. Kernel-side cost of the BPF program per state transition, from the kernel's
//     own BPF run-time statistics, and as extra wall time per connection (churn with
//     and without the program attached).
//  3. CPU used by the skopos-tracker daemon while connections churn at 10k/s.
//  4. The kernel maps' occupancy after a churn of M connections (default 1M) over
//     random ports: keys at zero and idle marks stay until the reclaim passes (the
//     tracker runs one every 10 s), and two passes bring the maps back to the keys and
//     marks of live sockets however long the uptime; and how long a pass takes.
//
// Prints a comparison table with the goals. A harness, not Google Benchmark: the
// setup (200k sockets in 11 processes) is done once and every part reuses it.
//
// Usage: bench_tracker [--connections N] [--churn-rate R] [--churn-seconds S]
//                      [--transitions M] [--occupancy-churn M] [--tracker PATH]
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.h"
#include "skopos/cli_args.h"
#include "skopos/unique_fd.h"
#include "tracker/bpf_connection_source.h"
#include "tracker/proc_connection_source.h"
#include "tracker/proc_net_reader.h"

namespace {

using skopos::UniqueFd;
using namespace skopos::tracker;
using namespace skopos::bench;

// Processes that each hold `per_worker` connections inside the namespace until the
// parent closes their control pipe (or dies).
class ConnectionHolders {
 public:
  ConnectionHolders(const BenchNetns& netns, int connections) {
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    const int per_worker = static_cast<int>(std::min<rlim_t>(limit.rlim_max, 1 << 20) / 2) - 100;
    int left = connections;
    for (int w = 0; left > 0; ++w) {
      const int mine = std::min(left, per_worker);
      left -= mine;
      int ready[2], control[2];
      if (::pipe2(ready, O_CLOEXEC) != 0 || ::pipe2(control, O_CLOEXEC) != 0) die("pipe");
      const pid_t pid = ::fork();
      if (pid == 0) {
        ::close(ready[0]);
        ::close(control[1]);
        limit.rlim_cur = limit.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &limit);
        enter_netns(netns.fd());
        const std::uint16_t port = static_cast<std::uint16_t>(20000 + w);
        UniqueFd listener = listen_on(port);
        std::vector<UniqueFd> held;
        held.reserve(static_cast<std::size_t>(mine) * 2);
        for (int i = 0; i < mine; ++i) {
          UniqueFd client, server;
          if (!connect_pair(listener.get(), port, client, server)) die("connect");
          held.push_back(std::move(client));
          held.push_back(std::move(server));
        }
        const char ok = 1;
        (void)!::write(ready[1], &ok, 1);
        char byte;
        (void)!::read(control[0], &byte, 1);  // returns when the parent closes it
        ::_exit(0);
      }
      ::close(ready[1]);
      ::close(control[0]);
      pids_.push_back(pid);
      controls_.push_back(control[1]);
      char byte = 0;
      if (::read(ready[0], &byte, 1) != 1) die("a connection holder failed");
      ::close(ready[0]);
      ports_.push_back(static_cast<std::uint16_t>(20000 + w));
    }
  }
  ~ConnectionHolders() {
    for (int fd : controls_) ::close(fd);
    for (pid_t pid : pids_) ::waitpid(pid, nullptr, 0);
  }
  std::size_t processes() const { return pids_.size(); }
  const std::vector<std::uint16_t>& ports() const { return ports_; }

 private:
  std::vector<pid_t> pids_;
  std::vector<int> controls_;
  std::vector<std::uint16_t> ports_;
};

// ESTABLISHED TCP sockets of the calling thread's namespace, by a sock_diag dump.
std::uint64_t sock_diag_established() {
  std::uint64_t count = 0;
  for (const std::uint8_t family : {std::uint8_t{AF_INET}, std::uint8_t{AF_INET6}}) {
    UniqueFd fd(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    struct {
      nlmsghdr header;
      inet_diag_req_v2 request;
    } message{};
    message.header.nlmsg_len = sizeof message;
    message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    message.request.sdiag_family = family;
    message.request.sdiag_protocol = IPPROTO_TCP;
    message.request.idiag_states = 1u << TCP_ESTABLISHED;
    if (::send(fd.get(), &message, sizeof message, 0) < 0) die("sock_diag send");
    static char buffer[256 * 1024];
    for (bool done = false; !done;) {
      const ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, 0);
      if (n <= 0) die("sock_diag recv");
      auto* header = reinterpret_cast<nlmsghdr*>(buffer);
      for (auto left = static_cast<unsigned>(n); NLMSG_OK(header, left); header = NLMSG_NEXT(header, left)) {
        if (header->nlmsg_type == NLMSG_DONE) {
          done = true;
          break;
        }
        if (header->nlmsg_type == NLMSG_ERROR) die("sock_diag error");
        ++count;
      }
    }
  }
  return count;
}

template <class F>
double best_of(int runs, F work) {
  double best = 1e30;
  for (int i = 0; i < runs; ++i) {
    const auto start = Clock::now();
    work();
    best = std::min(best, seconds_since(start));
  }
  return best;
}

// Opens and closes `count` connections in the namespace as fast as one thread can.
double churn(const BenchNetns& netns, int count, std::uint16_t port) {
  double elapsed = 0;
  std::thread worker([&] {
    enter_netns(netns.fd());
    UniqueFd listener = listen_on(port);
    const auto start = Clock::now();
    for (int i = 0; i < count; ++i) {
      UniqueFd client, server;
      if (!connect_pair(listener.get(), port, client, server, true)) die("churn connect");
    }
    elapsed = seconds_since(start);
  });
  worker.join();
  return elapsed;
}

// `count` connections, each to one of `ports` listeners picked at random (every
// connection adds an inbound key for its port and an outbound key for it, both
// returning to zero when it closes).
void churn_ports(const BenchNetns& netns, int count, std::uint16_t first_port, int ports) {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < static_cast<rlim_t>(ports) + 64) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  std::thread worker([&] {
    enter_netns(netns.fd());
    std::vector<UniqueFd> listeners;
    for (int p = 0; p < ports; ++p) listeners.push_back(listen_on(static_cast<std::uint16_t>(first_port + p)));
    std::uint64_t state = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < count; ++i) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      const int p = static_cast<int>(state % static_cast<std::uint64_t>(ports));
      UniqueFd client, server;
      if (!connect_pair(listeners[static_cast<std::size_t>(p)].get(), static_cast<std::uint16_t>(first_port + p), client,
                        server, true)) {
        die("occupancy churn connect");
      }
    }
  });
  worker.join();
}

struct ProgramStats {
  std::uint64_t run_time_ns = 0;
  std::uint64_t run_count = 0;
};

ProgramStats program_stats(std::uint32_t id) {
  UniqueFd fd(bpf_prog_get_fd_by_id(id));
  bpf_prog_info info{};
  std::uint32_t length = sizeof info;
  if (!fd || bpf_obj_get_info_by_fd(fd.get(), &info, &length) != 0) die("bpf prog info");
  return {info.run_time_ns, info.run_cnt};
}

// The highest id of a program the kernel holds now, loaded or being freed.
std::uint32_t last_program_id() {
  std::uint32_t last = 0;
  for (std::uint32_t id = 0; bpf_prog_get_next_id(id, &id) == 0;) last = id;
  return last;
}

// The id of the newest live program above `after` whose name starts with `name` (the
// kernel keeps 15 characters); 0 if none.
std::uint32_t newest_program(const char* name, std::uint32_t after) {
  std::uint32_t found = 0;
  for (std::uint32_t id = after; bpf_prog_get_next_id(id, &id) == 0;) {
    UniqueFd fd(bpf_prog_get_fd_by_id(id));
    bpf_prog_info info{};
    std::uint32_t length = sizeof info;
    if (!fd || bpf_obj_get_info_by_fd(fd.get(), &info, &length) != 0) continue;
    if (std::strncmp(info.name, name, sizeof info.name - 1) == 0) found = id;
  }
  return found;
}

// The skopos-tracker daemon as a host runs it (BPF source; no Docker, no conntrack),
// started by the constructor and stopped with SIGTERM by stop() or the destructor.
class TrackerDaemon {
 public:
  // Programs ids only grow, so the daemon's is above every id the kernel holds now (a
  // previous daemon's program may still be on its way out).
  explicit TrackerDaemon(const std::string& binary) : programs_before_(last_program_id()) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, STDOUT_FILENO);
      ::dup2(null, STDERR_FILENO);
      ::execl(binary.c_str(), binary.c_str(), "--source", "bpf", "--docker-socket", "none", "--conntrack", "off",
              "--check-interval", "0", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    cleanup_ = at_die([pid = pid_] {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    });
  }
  ~TrackerDaemon() { stop(); }
  TrackerDaemon(const TrackerDaemon&) = delete;
  TrackerDaemon& operator=(const TrackerDaemon&) = delete;

  pid_t pid() const { return pid_; }

  // The id of the daemon's tracepoint program once it is attached, and its start-up
  // snapshot given time to finish; 0 if it exited or did not attach within 10 s.
  std::uint32_t wait_attached() {
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        cancel_at_die(cleanup_);
        pid_ = -1;
        return 0;
      }
      const std::uint32_t id = newest_program("track_transition", programs_before_);
      if (id != 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        return id;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return 0;
  }

  // SIGTERM, then its exit status (-1: killed by a signal or already stopped).
  int stop() {
    if (pid_ <= 0) return -1;
    cancel_at_die(cleanup_);
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  std::uint32_t programs_before_;
  pid_t pid_ = -1;
  int cleanup_ = -1;  // at_die() token
};

}  // namespace

constexpr const char* kUsage =
    "usage: bench_tracker [--connections N] [--churn-rate R] [--churn-seconds S] [--transitions M]\n"
    "                     [--occupancy-churn M] [--tracker PATH]\n"
    "  (root) count queries, the BPF program's cost, the daemon's CPU under churn and the\n"
    "  map's occupancy; see the top of bench/bench_tracker.cpp\n";

int main(int argc, char** argv) {
  const skopos::bench::BenchArgs args(
      "bench_tracker", {"connections", "churn-rate", "churn-seconds", "transitions", "occupancy-churn", "tracker"},
      kUsage, argc, argv);
  const auto connections = static_cast<int>(args.number("connections", 100000));
  const auto rate = static_cast<int>(args.number("churn-rate", 10000));
  const auto churn_seconds = static_cast<int>(args.number("churn-seconds", 5));
  const auto transitions = static_cast<int>(args.number("transitions", 50000));
  const auto occupancy_churn = static_cast<int>(args.number("occupancy-churn", 1000000, 0));
  const std::string tracker_binary = args.text("tracker", SKOPOS_TRACKER_BINARY);
  if (::geteuid() != 0) {
    std::fprintf(stderr, "bench_tracker: needs root (BPF, network namespaces)\n");
    return 1;
  }
  ::signal(SIGPIPE, SIG_IGN);
  std::vector<Row> rows;
  BenchNetns netns("skopos-bench");
  const NamespaceHandle handle{netns.inode(), netns.path()};

  // ---- 1. Count query with `connections` established connections.
  std::printf("opening %d connections (%d ESTABLISHED sockets) in %s ...\n", connections, 2 * connections,
              netns.path().c_str());
  const auto setup_start = Clock::now();
  auto holders = std::make_unique<ConnectionHolders>(netns, connections);
  std::printf("  done in %.1f s with %zu holder processes\n", seconds_since(setup_start), holders->processes());

  auto created = BpfConnectionSource::create();
  if (!created) {
    std::fprintf(stderr, "bench_tracker: %s\n", created.error().message().c_str());
    return 1;
  }
  BpfConnectionSource& bpf = **created;
  const auto snapshot_start = Clock::now();
  if (auto status = bpf.track(handle); !status) {
    std::fprintf(stderr, "bench_tracker: %s\n", status.error().message().c_str());
    return 1;
  }
  const double snapshot_s = seconds_since(snapshot_start);
  const std::uint16_t port = holders->ports().front();
  const NamespaceCounts* counted = bpf.counts(netns.inode());
  const std::uint64_t bpf_inbound = counted != nullptr ? counted->inbound() : 0;

  constexpr int kQueries = 1'000'000;
  std::uint64_t sink = 0;
  const auto query_start = Clock::now();
  for (int i = 0; i < kQueries; ++i) {
    const NamespaceCounts* c = bpf.counts(netns.inode());
    sink += c->get(port, Direction::kInbound);
    asm volatile("" : : "r"(sink) : "memory");
  }
  const double query_ns = seconds_since(query_start) * 1e9 / kQueries;
  const double map_walk_s = best_of(5, [&] { sink += bpf.read_map(netns.inode())->inbound(); });

  ProcConnectionSource proc;
  NamespaceCounts truth;
  const double proc_s = best_of(5, [&] {
    if (!proc.read(handle, truth)) die("proc read");
  });
  ProcNetReader reader;
  PortStateTally tally;
  double counter_s = 0;
  double diag_s = 0;
  std::uint64_t diag_count = 0;
  std::thread inside([&] {
    enter_netns(netns.fd());
    counter_s = best_of(5, [&] {
      if (!reader.count_namespace("/proc/thread-self/net", tally)) die("count");
    });
    diag_s = best_of(5, [&] { diag_count = sock_diag_established(); });
  });
  inside.join();
  std::printf("  bpf inbound %llu, /proc inbound %llu, sock_diag established %llu (expect %d, %d, %d)\n",
              static_cast<unsigned long long>(bpf_inbound), static_cast<unsigned long long>(truth.inbound()),
              static_cast<unsigned long long>(diag_count), connections, connections, 2 * connections);
  const bool counts_agree = bpf_inbound == static_cast<std::uint64_t>(connections) && truth == *counted;
  const std::string n = std::to_string(connections / 1000) + "k";
  rows.push_back({"query one container, bpf source (" + n + " conns)", query_ns / 1e3, "us", "< 1000 us",
                  query_ns / 1e6 < 1.0 ? "met" : "MISSED"});
  rows.push_back({"  same, re-reading the kernel map (cold)", map_walk_s * 1e6, "us", "< 1000 us",
                  map_walk_s < 1e-3 ? "met" : "MISSED"});
  rows.push_back({"  bpf snapshot of the namespace at start (iter/tcp)", snapshot_s * 1e3, "ms", "", ""});
  rows.push_back({"query by /proc read, full records (" + n + " conns)", proc_s * 1e3, "ms", "(~200 ms)", ""});
  rows.push_back({"query by /proc read, counting path", counter_s * 1e3, "ms", "", ""});
  rows.push_back({"query by sock_diag dump (" + n + " conns)", diag_s * 1e3, "ms", "(~80 ms)", ""});
  rows.push_back({"bpf == /proc == expected counts", counts_agree ? 1.0 : 0.0, "bool", "1", counts_agree ? "met" : "MISSED"});
  holders.reset();
  created->reset();

  // ---- 2. Kernel cost per transition: wall time per churned connection without and
  // with the skopos-tracker daemon running (its program attached, its event loop
  // consuming the ring buffer as on a host), in interleaved rounds -- a slow spell of
  // the machine slows a round of each alike -- each the best of its rounds. The
  // kernel's run-time statistics, which add two clock reads per run, are on only for a
  // churn of their own.
  constexpr int kWallRounds = 5;
  const int per_round = std::max(1, transitions / kWallRounds);
  double bare_s = 1e30;
  double traced_s = 1e30;
  for (int round = 0; round < kWallRounds; ++round) {
    bare_s = std::min(bare_s, churn(netns, per_round, 30001));
    TrackerDaemon daemon(tracker_binary);
    if (daemon.wait_attached() == 0) die("skopos-tracker did not attach its program");
    traced_s = std::min(traced_s, churn(netns, per_round, 30002));
  }
  double ns_per_run = 0;
  double runs_per_connection = 0;
  {
    TrackerDaemon daemon(tracker_binary);
    const std::uint32_t program = daemon.wait_attached();
    if (program == 0) die("skopos-tracker did not attach its program");
    UniqueFd stats_fd(bpf_enable_stats(BPF_STATS_RUN_TIME));
    if (!stats_fd) die("bpf_enable_stats");
    const ProgramStats before = program_stats(program);
    (void)churn(netns, per_round, 30003);
    const ProgramStats after = program_stats(program);
    ns_per_run = static_cast<double>(after.run_time_ns - before.run_time_ns) /
                 static_cast<double>(std::max<std::uint64_t>(1, after.run_count - before.run_count));
    runs_per_connection = static_cast<double>(after.run_count - before.run_count) / static_cast<double>(per_round);
  }
  const double added = traced_s / bare_s - 1;
  rows.push_back({"churn wall time added by the running tracker", added * 100, "%", "<= 5 %",
                  added <= 0.05 ? "met" : "MISSED"});
  rows.push_back({"  churn wall time per connection, no tracker", bare_s * 1e9 / per_round, "ns", "", ""});
  rows.push_back({"  churn wall time per connection, tracker running", traced_s * 1e9 / per_round, "ns", "", ""});
  rows.push_back({"bpf program per state transition (kernel bpf stats)", ns_per_run, "ns", "< 300 ns",
                  ns_per_run < 300 ? "met" : "MISSED"});
  rows.push_back({"  transitions per churned connection (both ends)", runs_per_connection, "", "", ""});

  // ---- 4. Map occupancy after a long churn over many ports.
  auto loaded = BpfConnectionSource::create();
  if (!loaded) die("bpf create");
  std::unique_ptr<BpfConnectionSource> attached = std::move(*loaded);
  constexpr int kChurnPorts = 4000;
  const auto before = attached->occupancy();
  if (!before) die("bpf map occupancy");
  const auto occupancy_start = Clock::now();
  churn_ports(netns, occupancy_churn, 40000, kChurnPorts);
  (void)attached->update([](std::uint64_t) {});
  const SourceStats churn_stats = attached->stats();
  const auto idle = attached->occupancy();
  if (!idle) die("bpf map occupancy");
  // The hot path leaves keys at zero and idle marks in place; a pass ages them and the
  // next deletes those still idle (the tracker runs one every 10 s).
  double pass_ms = 0;
  for (int pass = 0; pass < 2; ++pass) {
    const auto ran = attached->reclaim();
    if (!ran) die("bpf reclaim pass: " + ran.error().message());
    pass_ms = std::max(pass_ms, ran->seconds * 1e3);
  }
  const auto after = attached->occupancy();
  if (!after) die("bpf map occupancy");
  std::printf("  occupancy churn: %d connections over %d ports in %.1f s; %zu keys (%zu idle) and %zu marks (%zu idle) "
              "before the reclaim passes, %zu keys and %zu marks after\n",
              occupancy_churn, kChurnPorts, seconds_since(occupancy_start), idle->keys, idle->idle_keys, idle->marks,
              idle->marks - idle->counted_marks, after->keys, after->marks);
  // Without reclaiming, every port would have left two keys behind (8,000).
  rows.push_back({"bpf map keys after " + std::to_string(occupancy_churn) + " conns, " + std::to_string(kChurnPorts) +
                      " ports, 2 passes",
                  static_cast<double>(after->keys), "keys", "<= live sockets' keys",
                  after->keys < 2 * kChurnPorts / 10 ? "met" : "MISSED"});
  rows.push_back({"  keys at zero before the passes", static_cast<double>(idle->idle_keys), "keys", "", ""});
  rows.push_back({"  sockets the map could not count during it", static_cast<double>(churn_stats.count_failures), "",
                  "0", churn_stats.count_failures == 0 && churn_stats.storage_failures == 0 ? "met" : "MISSED"});
  // Every counted socket's mark goes idle when it leaves ESTABLISHED: the churn leaves
  // no counted one behind (the host's own sockets may come and go meanwhile, hence a
  // little slack), and the passes delete the idle ones.
  const double counted_left = static_cast<double>(after->counted_marks) - static_cast<double>(before->counted_marks);
  rows.push_back({"  counted socket marks left behind by it", counted_left, "", "0 (+-10)",
                  counted_left <= 10 ? "met" : "MISSED"});
  rows.push_back({"  idle socket marks before the passes", static_cast<double>(idle->marks - idle->counted_marks),
                  "", "", ""});
  rows.push_back({"    after", static_cast<double>(after->marks - after->counted_marks), "", "0 (+-10)",
                  after->marks - after->counted_marks <= 10 ? "met" : "MISSED"});
  rows.push_back({"reclaim pass over both maps (longest of two)", pass_ms, "ms", "", ""});
  attached.reset();

  // ---- 3. Tracker CPU under churn.
  TrackerDaemon daemon(tracker_binary);
  if (daemon.wait_attached() == 0) die("skopos-tracker did not attach its program");
  const pid_t tracker = daemon.pid();
  const std::uint64_t ticks_before = process_cpu_ticks(tracker);
  int opened = 0;
  const auto churn_start = Clock::now();
  std::thread load([&] {
    enter_netns(netns.fd());
    UniqueFd listener = listen_on(30003);
    const auto deadline = churn_start + std::chrono::seconds(churn_seconds);
    // Paced in 1 ms slots; bounded by the deadline whatever happens.
    for (auto slot = churn_start; Clock::now() < deadline; slot += std::chrono::milliseconds(1)) {
      const int due = static_cast<int>(std::chrono::duration<double>(slot - churn_start).count() * rate);
      for (; opened < due && Clock::now() < deadline; ++opened) {
        UniqueFd client, server;
        if (!connect_pair(listener.get(), 30003, client, server, true)) die("load connect");
      }
      std::this_thread::sleep_until(slot + std::chrono::milliseconds(1));
    }
  });
  load.join();
  const double churn_wall = seconds_since(churn_start);
  const std::uint64_t ticks_after = process_cpu_ticks(tracker);
  const int status = daemon.stop();
  const double cpu_share = static_cast<double>(ticks_after - ticks_before) / static_cast<double>(::sysconf(_SC_CLK_TCK)) /
                           churn_wall * 100.0;
  rows.push_back({"skopos-tracker CPU at " + std::to_string(rate) + " connections/s", cpu_share, "% core", "< 5 %",
                  cpu_share < 5.0 ? "met" : "MISSED"});
  rows.push_back({"  connections/s achieved by the load", opened / churn_wall, "conn/s", "", ""});
  rows.push_back({"  tracker exit status after SIGTERM", static_cast<double>(status), "", "0", ""});

  print_rows(rows);
  return counts_agree ? 0 : 1;
}
