// bench_stream: the stream's goals from the stream issue, measured with the real
// skopos-tracker (BPF source), containers served by the tests' fake Docker API, and
// real sockets in the containers' own network namespaces (needs root):
//
//  1. Latency from a connection's close in the kernel to a subscriber holding the new
//     count: p50 and p99 over --latency-events closes.
//  2. Throughput: container states delivered per second to 10 subscribers while
//     connections churn in --throughput-containers containers.
//  3. Tracker RSS with --containers containers and --connections connections, and the
//     time from the tracker's start to every container counted. With --child-ehash N
//     the containers' namespaces are made with net.ipv4.tcp_child_ehash_entries = N
//     (restored right after), so each has a TCP hash of its own instead of sharing the
//     host's (snapshotted then by the kernel's iterator, one namespace each, rather than
//     by walks of the shared hash, 256 namespaces each). Then the tracker is stopped
//     and started again: it takes over the BPF state the first pinned (--bpf-pin-dir),
//     and the time to every container counted again is the restart's.
//
// Prints a goals table. Usage: bench_stream [--latency-events N] [--subscribers N]
//   [--throughput-seconds S] [--throughput-containers N] [--containers N] [--connections N]
//   [--parts latency,throughput,rss] [--child-ehash N]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <sys/resource.h>
#include <thread>

#include "bench_support.h"
#include "fake_docker.h"
#include "process.h"
#include "skopos/cpus.h"
#include "skopos/cli_args.h"
#include "tracker/stream_client.h"

namespace {

using namespace skopos::bench;
using skopos::UniqueFd;
using skopos::testing::FakeDocker;
using skopos::testing::ParkedProcess;
using skopos::testing::read_file;
using skopos::testing::write_file;
using skopos::tracker::ClientOptions;
using skopos::tracker::TrackerClient;

std::string g_stream;

// skopos-tracker as a child process, stopped with SIGTERM on destruction.
class TrackerProcess {
 public:
  TrackerProcess(const std::string& docker, const std::vector<std::string>& extra = {}) {
    ::unlink(g_stream.c_str());
    std::vector<std::string> argv = {SKOPOS_TRACKER_BINARY, "--source", "bpf", "--docker-socket", docker,
                                     "--stream-socket", g_stream, "--conntrack", "off", "--check-interval", "0",
                                     "--log-level", "warning"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    // A benchmark stopped by a signal or a failure stops its tracker too.
    cleanup_ = skopos::bench::at_die([pid = pid_] {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      ::unlink(g_stream.c_str());
    });
  }
  ~TrackerProcess() {
    skopos::bench::cancel_at_die(cleanup_);
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int cleanup_ = -1;  // at_die() token
};

// Connects once the tracker serves, waiting until `ready` holds for its state (bounded).
std::unique_ptr<TrackerClient> subscribe(const ClientOptions& options,
                                         const std::function<bool(const TrackerClient&)>& ready,
                                         std::chrono::seconds limit = std::chrono::seconds(120)) {
  const auto deadline = Clock::now() + limit;
  std::unique_ptr<TrackerClient> client;
  while (!client && Clock::now() < deadline) {
    auto connected = TrackerClient::connect(options);
    if (connected) {
      client = std::move(*connected);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  if (!client) die("cannot reach the tracker");
  while (!ready(*client)) {
    if (Clock::now() >= deadline) die("the tracker did not get ready in time");
    (void)client->next(std::chrono::milliseconds(500));
  }
  return client;
}

std::int64_t inbound_of(const TrackerClient& client, const std::string& name) {
  for (const auto& [id, c] : client.containers()) {
    if (c.name == name && c.known) return c.inbound;
  }
  return -1;
}

// A counter from the tracker's metrics endpoint (0 if absent).
std::uint64_t metric_value(std::uint16_t port, const std::string& name) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) return 0;
  const std::string request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";
  (void)!::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL);
  std::string response;
  char chunk[65536];
  for (ssize_t n; (n = ::recv(fd.get(), chunk, sizeof chunk, 0)) > 0;) response.append(chunk, static_cast<std::size_t>(n));
  const auto at = response.find("\n" + name + " ");
  return at == std::string::npos ? 0 : std::strtoull(response.c_str() + at + name.size() + 2, nullptr, 10);
}

}  // namespace

constexpr const char* kUsage =
    "usage: bench_stream [--latency-events N] [--subscribers N] [--throughput-seconds S]\n"
    "                    [--throughput-containers N] [--containers N] [--connections N]\n"
    "                    [--parts latency,throughput,rss] [--churn-rate R] [--child-ehash N]\n"
    "  (root) the stream's latency, throughput, the tracker's RSS and start on many\n"
    "  containers; see the top of bench/bench_stream.cpp\n";

int main(int argc, char** argv) {
  const BenchArgs args("bench_stream",
                       {"latency-events", "subscribers", "throughput-seconds", "throughput-containers", "containers",
                        "connections", "parts", "churn-rate", "child-ehash"},
                       kUsage, argc, argv);
  const auto latency_events = static_cast<int>(args.number("latency-events", 10000));
  const auto subscribers = static_cast<int>(args.number("subscribers", 10));
  const auto throughput_seconds = static_cast<int>(args.number("throughput-seconds", 5));
  const auto throughput_containers = static_cast<int>(args.number("throughput-containers", 20));
  const auto containers = static_cast<int>(args.number("containers", 1000));
  const auto connections = static_cast<int>(args.number("connections", 100000));
  const std::string parts = "," + args.text("parts", "latency,throughput,rss") + ",";
  const auto churn_rate = static_cast<int>(args.number("churn-rate", 0, 0));
  const auto child_ehash = static_cast<int>(args.number("child-ehash", 0, 0));
  if (::geteuid() != 0) {
    std::fprintf(stderr, "bench_stream: needs root (BPF, network namespaces)\n");
    return 1;
  }
  ::signal(SIGPIPE, SIG_IGN);
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
  g_stream = "/tmp/skopos-bench-stream-" + std::to_string(::getpid()) + ".sock";
  FakeDocker docker("/tmp/skopos-bench-docker-" + std::to_string(::getpid()) + ".sock");
  ClientOptions options;
  options.path = g_stream;
  std::vector<Row> rows;

  const auto wants = [&](const char* part) { return parts.find("," + std::string(part) + ",") != std::string::npos; };
  // ---- 1. Latency: close in the kernel -> the subscriber holds the new count.
  if (wants("latency")) {
    auto box = ParkedProcess::with_own_netns();
    docker.start({FakeDocker::make_id(1), "latency", box->pid(), "bridge", "/latency", "latency.1"});
    TrackerProcess tracker(docker.socket());
    ClientOptions one = options;
    one.filter.names = {"latency"};
    auto client = subscribe(one, [](const TrackerClient& c) { return inbound_of(c, "latency") == 0; });
    // Two runs: closes spaced 1 ms apart (connections ending one by one, as in a drain)
    // and back to back (a busy host, where the tracker batches events for --coalesce).
    const auto measure = [&](std::chrono::microseconds gap, std::vector<double>& close_us, std::vector<double>& open_us) {
      std::thread worker([&] {
        UniqueFd ns(::open(box->netns_path().c_str(), O_RDONLY | O_CLOEXEC));
        enter_netns(ns.get());
        UniqueFd listener = listen_on(8080);
        const auto wait_for = [&](std::int64_t want) {
          while (inbound_of(*client, "latency") != want) {
            if (!client->next(std::chrono::seconds(5))) die("no update within 5 s");
          }
        };
        for (int i = 0; i < latency_events; ++i) {
          UniqueFd c, s;
          if (!connect_pair(listener.get(), 8080, c, s, true)) die("connect");
          const auto opened = Clock::now();
          wait_for(1);
          open_us.push_back(seconds_since(opened) * 1e6);
          std::this_thread::sleep_for(gap);
          // From before close(): the server end leaves ESTABLISHED inside it (RST on
          // loopback), and the tracker may be done before close() returns.
          const auto closed = Clock::now();
          c.reset();
          wait_for(0);
          close_us.push_back(seconds_since(closed) * 1e6);
          s.reset();
          std::this_thread::sleep_for(gap);
        }
      });
      worker.join();
    };
    std::vector<double> close_us, open_us, busy_close_us, busy_open_us;
    measure(std::chrono::microseconds(1000), close_us, open_us);
    measure(std::chrono::microseconds(0), busy_close_us, busy_open_us);
    const double p50 = percentile(close_us, 0.50), p99 = percentile(close_us, 0.99);
    const std::string n = std::to_string(latency_events);
    rows.push_back({"close -> subscriber, p50 (" + n + " closes, 1 ms apart)", p50, "us", "< 200 us",
                    p50 < 200 ? "met" : "MISSED"});
    rows.push_back({"close -> subscriber, p99", p99, "us", "< 1000 us", p99 < 1000 ? "met" : "MISSED"});
    rows.push_back({"  close -> subscriber, p99.9", percentile(close_us, 0.999), "us", "", ""});
    rows.push_back({"  close -> subscriber, max", percentile(close_us, 1.0), "us", "", ""});
    rows.push_back({"  open -> subscriber, p50", percentile(open_us, 0.50), "us", "", ""});
    rows.push_back({"  back to back: close -> subscriber, p50", percentile(busy_close_us, 0.50), "us", "", ""});
    rows.push_back({"  back to back: close -> subscriber, p99", percentile(busy_close_us, 0.99), "us", "", ""});
    docker.stop(FakeDocker::make_id(1));
  }

  // ---- 2. Throughput to N subscribers.
  if (wants("throughput")) {
    std::vector<std::unique_ptr<ParkedProcess>> boxes;
    for (int i = 0; i < throughput_containers; ++i) {
      boxes.push_back(ParkedProcess::with_own_netns());
      docker.start({FakeDocker::make_id(100 + i), "busy-" + std::to_string(i), boxes.back()->pid(), "bridge", "/busy",
                    "busy." + std::to_string(i)});
    }
    const std::uint16_t metrics_port = 19000 + static_cast<std::uint16_t>(::getpid() % 1000);
    TrackerProcess tracker(docker.socket(), {"--metrics-listen", "127.0.0.1:" + std::to_string(metrics_port)});
    const auto all_known = [&](const TrackerClient& c) {
      int known = 0;
      for (const auto& [id, container] : c.containers()) known += container.known ? 1 : 0;
      return known == throughput_containers;
    };
    std::vector<std::unique_ptr<TrackerClient>> clients;
    for (int i = 0; i < subscribers; ++i) clients.push_back(subscribe(options, all_known));
    std::atomic<bool> stop{false};
    std::vector<std::uint64_t> states_before, messages_before;
    for (auto& c : clients) {
      states_before.push_back(c->container_states_received());
      messages_before.push_back(c->messages_received());
    }
    std::vector<std::thread> readers;
    for (auto& c : clients) {
      readers.emplace_back([&stop, client = c.get()] {
        while (!stop) (void)client->next(std::chrono::milliseconds(100));
      });
    }
    std::atomic<std::uint64_t> churned{0};
    const std::uint64_t events_before = metric_value(metrics_port, "skopos_tracker_events_total");
    const std::uint64_t ticks_before = process_cpu_ticks(tracker.pid());
    const auto start = Clock::now();
    std::thread load([&] {
      // Round robin over the containers, a burst of connections in each.
      std::vector<UniqueFd> ns_fds;
      std::vector<UniqueFd> listeners;
      for (auto& box : boxes) {
        ns_fds.emplace_back(::open(box->netns_path().c_str(), O_RDONLY | O_CLOEXEC));
        enter_netns(ns_fds.back().get());
        listeners.push_back(listen_on(8080));
      }
      // As fast as one thread can (or paced with --churn-rate).
      const auto deadline = start + std::chrono::seconds(throughput_seconds);
      std::uint64_t opened = 0;
      for (std::size_t i = 0; Clock::now() < deadline; i = (i + 1) % boxes.size()) {
        const auto due = static_cast<std::uint64_t>(seconds_since(start) * churn_rate);
        if (churn_rate > 0 && opened >= due) {
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          continue;
        }
        enter_netns(ns_fds[i].get());
        for (int k = 0; k < 8; ++k, ++opened) {
          UniqueFd c, s;
          if (connect_pair(listeners[i].get(), 8080, c, s, true)) churned.fetch_add(1);
        }
      }
    });
    load.join();
    const double elapsed = seconds_since(start);
    const std::uint64_t events = metric_value(metrics_port, "skopos_tracker_events_total") - events_before;
    // Every subscriber must end with the true state (every container at 0), promptly.
    const auto settle_start = Clock::now();
    const auto converged = [&] {
      for (auto& c : clients) {
        for (const auto& [id, container] : c->containers()) {
          if (!container.known || container.inbound != 0) return false;
        }
      }
      return true;
    };
    while (!converged() && seconds_since(settle_start) < 10) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const double settle_ms = seconds_since(settle_start) * 1e3;
    const bool all_converged = converged();
    const double tracker_cpu_seconds = static_cast<double>(process_cpu_ticks(tracker.pid()) - ticks_before) /
                                       static_cast<double>(::sysconf(_SC_CLK_TCK));
    stop = true;
    for (auto& r : readers) r.join();
    std::uint64_t states = 0, messages = 0;
    for (std::size_t i = 0; i < clients.size(); ++i) {
      states += clients[i]->container_states_received() - states_before[i];
      messages += clients[i]->messages_received() - messages_before[i];
    }
    // One load thread churns fewer connections than the tracker can take, so the rate
    // the load reached says little about the tracker. What it can take is the events it
    // handled (and delivered to every subscriber) per second of its own CPU time.
    const double events_per_second = static_cast<double>(events) / elapsed;
    const double capacity = tracker_cpu_seconds > 0 ? static_cast<double>(events) / tracker_cpu_seconds : 0;
    rows.push_back({"change events per tracker CPU-second, " + std::to_string(subscribers) + " subscribers", capacity,
                    "1/s", ">= 200000", capacity >= 200000 ? "met" : "MISSED"});
    rows.push_back({"  change events/s the load produced (one thread)", events_per_second, "1/s", "", ""});
    rows.push_back({"  tracker CPU during the load (clock ticks: +-10 ms)", tracker_cpu_seconds / elapsed * 100, "% core",
                    "", ""});
    rows.push_back({"  every subscriber at the final counts after the load (ms)", settle_ms, "ms", "",
                    all_converged ? "yes" : "NO"});
    rows.push_back({"  container states delivered/s (coalesced, all subscribers)", static_cast<double>(states) / elapsed,
                    "1/s", "", ""});
    rows.push_back({"  messages delivered/s (all subscribers)", static_cast<double>(messages) / elapsed, "1/s", "", ""});
    rows.push_back({"  connections churned/s (4 kernel transitions each)", static_cast<double>(churned) / elapsed,
                    "1/s", "", ""});
    for (int i = 0; i < throughput_containers; ++i) docker.stop(FakeDocker::make_id(100 + i));
  }

  // ---- 3. RSS with many containers and connections.
  if (wants("rss")) {
    std::printf("starting %d containers and %d connections ...\n", containers, connections);
    const auto setup = Clock::now();
    std::vector<std::unique_ptr<ParkedProcess>> boxes;
    const char* const child_ehash_path = "/proc/sys/net/ipv4/tcp_child_ehash_entries";
    const std::string child_ehash_before = read_file(child_ehash_path);
    if (child_ehash > 0 && !write_file(child_ehash_path, std::to_string(child_ehash))) die("set " + std::string(child_ehash_path));
    for (int i = 0; i < containers; ++i) {
      boxes.push_back(ParkedProcess::with_own_netns());
      docker.start({FakeDocker::make_id(10000 + i), "c" + std::to_string(i), boxes.back()->pid(), "bridge",
                    "/app/" + std::to_string(i % 50), "t." + std::to_string(i)});
    }
    // Namespaces keep the hash they were made with: the host's setting goes back now.
    if (child_ehash > 0) (void)write_file(child_ehash_path, child_ehash_before);
    const std::string hash_note =
        child_ehash > 0 ? "own TCP hash of " + std::to_string(child_ehash) : std::string("host's TCP hash shared");
    // Holders: one process per busy container, each with its share of connections.
    const int busy = std::min(containers, std::max(1, connections / 1000));
    std::vector<pid_t> holders;
    std::vector<int> controls;
    for (int b = 0; b < busy; ++b) {
      const int mine = connections / busy + (b < connections % busy ? 1 : 0);
      int ready[2], control[2];
      if (::pipe2(ready, O_CLOEXEC) != 0 || ::pipe2(control, O_CLOEXEC) != 0) die("pipe");
      const pid_t pid = ::fork();
      if (pid == 0) {
        // Only our own ends: a copy of our control's write end would keep us waiting.
        ::close(ready[0]);
        ::close(control[1]);
        UniqueFd ns(::open(boxes[static_cast<std::size_t>(b)]->netns_path().c_str(), O_RDONLY | O_CLOEXEC));
        enter_netns(ns.get());
        UniqueFd listener = listen_on(8080);
        std::vector<UniqueFd> held;
        for (int i = 0; i < mine; ++i) {
          UniqueFd c, s;
          if (!connect_pair(listener.get(), 8080, c, s)) die("holder connect");
          held.push_back(std::move(c));
          held.push_back(std::move(s));
        }
        const char ok = 1;
        (void)!::write(ready[1], &ok, 1);
        char byte;
        (void)!::read(control[0], &byte, 1);
        ::_exit(0);
      }
      ::close(ready[1]);
      ::close(control[0]);
      char byte;
      if (::read(ready[0], &byte, 1) != 1) die("holder failed");
      ::close(ready[0]);
      holders.push_back(pid);
      controls.push_back(control[1]);
    }
    std::printf("  done in %.1f s\n", seconds_since(setup));
    // The trackers pin their BPF state in a BPF filesystem of the bench's own, so the
    // second start is a restart that takes it over (unmounted at the end: that detaches).
    char bpffs[] = "/tmp/skopos-bench-bpffs-XXXXXX";
    if (::mkdtemp(bpffs) == nullptr || ::mount("bpf", bpffs, "bpf", 0, nullptr) != 0) die("mount a BPF filesystem");
    const std::vector<std::string> pinned = {"--bpf-pin-dir", std::string(bpffs) + "/tracker"};
    const auto every_container_counted = [&](const TrackerClient& c) {
      std::int64_t total = 0;
      int known = 0;
      for (const auto& [id, container] : c.containers()) {
        if (!container.known) continue;
        ++known;
        total += container.inbound;
      }
      return known == containers && total == connections;
    };
    auto started = Clock::now();
    double rss_mb = 0;
    double hwm_mb = 0;
    double ready_s = 0;
    {
      TrackerProcess tracker(docker.socket(), pinned);
      auto client = subscribe(options, every_container_counted, std::chrono::seconds(300));
      ready_s = seconds_since(started);
      std::this_thread::sleep_for(std::chrono::seconds(2));
      rss_mb = static_cast<double>(process_status_kb(tracker.pid(), "VmRSS")) / 1024.0;
      hwm_mb = static_cast<double>(process_status_kb(tracker.pid(), "VmHWM")) / 1024.0;
    }
    started = Clock::now();
    double restart_s = 0;
    {
      TrackerProcess tracker(docker.socket(), pinned);
      auto client = subscribe(options, every_container_counted, std::chrono::seconds(300));
      restart_s = seconds_since(started);
    }
    ::umount2(bpffs, MNT_DETACH);
    ::rmdir(bpffs);
    rows.push_back({"tracker RSS, " + std::to_string(containers) + " containers, " + std::to_string(connections) +
                        " connections",
                    rss_mb, "MB", "< 30 MB", rss_mb < 30 ? "met" : "MISSED"});
    rows.push_back({"  tracker peak RSS (VmHWM)", hwm_mb, "MB", "", ""});
    // The goals: a tracker (re)started on a host with 300 containers knows every count
    // within 1 s (issue 13), with 1,000 containers within 2 s (issue 14). Snapshots run
    // one thread per usable CPU, so this row scales with the CPUs: state them beside it.
    const double goal_s = containers <= 300 ? 1.0 : containers <= 1000 ? 2.0 : 0.0;
    char goal_text[16] = "";
    if (goal_s > 0) std::snprintf(goal_text, sizeof goal_text, "< %.0f s", goal_s);
    rows.push_back({"start to every container counted (" + std::to_string(skopos::usable_cpus()) + " CPUs, " + hash_note + ")",
                    ready_s, "s", goal_text, goal_s > 0 ? (ready_s < goal_s ? "met" : "MISSED") : ""});
    rows.push_back({"restart to every container counted (--bpf-pin-dir: no snapshots)", restart_s, "s", goal_text,
                    goal_s > 0 ? (restart_s < goal_s ? "met" : "MISSED") : ""});
    for (int fd : controls) ::close(fd);
    for (pid_t pid : holders) ::waitpid(pid, nullptr, 0);
  }
  print_rows(rows);
  return 0;
}
