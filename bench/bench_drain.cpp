// bench_drain (root): the drain driver's own cost, on tools/drain-sandbox with real
// parts (podman containers, skopos-tracker on BPF, etcd, iptables, the simulators).
//
//  overhead   `skopos drain` of a host with N containers (default 20), then `skopos
//             undrain`, timed per phase from the driver's own JSON events. The waits that
//             belong to the drain's purpose are counted apart: connections closing (here
//             none are open, so this is the driver seeing zero), and the Docker engine
//             stopping the containers. Goal: everything else < 1 s up to 20 containers,
//             < 2 s up to 100 (a dense Mesos agent: --containers 100). Under --load the
//             wait for the open requests is inherent too: the drain ends "in the time
//             the connections take plus" its overhead.
//  notice     the time from the last inbound connection of a container closing to the
//             driver's wait (TrackerDrainConnections::wait_zero, as `skopos drain` runs
//             it) returning. Goal: < 50 ms (the first generation polled every second).
//
//             With --load N, N requests go through haproxy during each drain (spread
//             over up to 10 apps): every one must be served (goal: 0 failed).
//
// Usage: bench_drain [--containers N] [--runs R] [--closes K] [--load N] [--parts overhead,notice]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.h"
#include "drain_sandbox.h"
#include "load.h"
#include "driver/drain_systems_impl.h"
#include "process.h"

namespace {

using namespace skopos;
using namespace skopos::bench;
using namespace std::chrono_literals;
using skopos::testing::DrainSandbox;

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto index = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

// Seconds spent in each phase of one `skopos ... --json` run, from its events' clocks.
struct Run {
  std::map<std::string, double> phases;
  double total = 0;
  int exit_code = -1;
  bool connections_zero = false;  // the wait ended because every count reached 0
};

Run timed(const std::vector<std::string>& argv) {
  const auto started = Clock::now();
  const auto result = skopos::testing::run_process(argv);
  Run run;
  run.total = seconds_since(started);
  run.exit_code = result.exit_code;
  simdjson::dom::parser parser;
  std::istringstream lines(result.out);
  std::string phase;
  std::int64_t phase_at = 0;
  std::int64_t last = 0;
  for (std::string line; std::getline(lines, line);) {
    simdjson::dom::object event;
    if (parser.parse(line).get(event) != simdjson::SUCCESS) continue;
    std::int64_t at = 0;
    if (event["time_ns"].get(at) != simdjson::SUCCESS) continue;
    last = at;
    std::string_view type;
    bool zero = false;
    if (event["connections_zero"].get(zero) == simdjson::SUCCESS) run.connections_zero = zero;
    if (event["event"].get(type) != simdjson::SUCCESS || type != "phase") continue;
    if (!phase.empty()) run.phases[phase] += static_cast<double>(at - phase_at) / 1e9;
    phase = std::string(std::string_view(event["phase"]));
    phase_at = at;
  }
  if (!phase.empty()) run.phases[phase] += static_cast<double>(last - phase_at) / 1e9;
  if (run.exit_code != 0) std::fprintf(stderr, "%s\n%s\n", result.out.c_str(), result.err.c_str());
  return run;
}


void overhead(DrainSandbox& sandbox, int runs, long load_requests, std::vector<Row>& rows) {
  std::vector<double> totals, overheads, waits, stops, recoveries;
  std::map<std::string, std::vector<double>> per_phase;
  long served = 0, failed = 0;
  int zero_runs = 0;
  for (int i = 0; i < runs; ++i) {
    if (i > 0 && !sandbox.reset()) die("sandbox reset");
    // Under load: through the first (up to) 10 apps' haproxy frontends, started before
    // the drain and running across it (every 100th request takes 2 s, so connections
    // are open when the fence goes up).
    std::vector<std::unique_ptr<skopos::testing::Load>> loads;
    if (load_requests > 0) {
      const std::size_t fronts = std::min<std::size_t>(10, sandbox.apps().size());
      for (std::size_t a = 0; a < fronts; ++a) {
        loads.push_back(std::make_unique<skopos::testing::Load>(SKOPOS_LOAD, sandbox.apps()[a].frontend,
                                                                load_requests / static_cast<long>(fronts)));
      }
      std::this_thread::sleep_for(std::chrono::seconds(2));
    }
    const Run drain = timed(sandbox.skopos("drain", {"--json", "--log-level", "warning"}));
    if (drain.exit_code != 0) die("skopos drain failed");
    zero_runs += drain.connections_zero ? 1 : 0;
    for (auto& load : loads) {
      const auto totals_of_load = load->wait();
      if (totals_of_load.served < 0) die("the load printed no counts: " + totals_of_load.text);
      served += totals_of_load.served;
      failed += totals_of_load.failed;
    }
    const Run undrain = timed(sandbox.skopos("undrain", {"--json", "--log-level", "warning"}));
    if (undrain.exit_code != 0) die("skopos undrain failed");
    const double wait = drain.phases.count("wait") ? drain.phases.at("wait") : 0;
    const double stop = drain.phases.count("stop") ? drain.phases.at("stop") : 0;
    totals.push_back(drain.total);
    waits.push_back(wait);
    stops.push_back(stop);
    // Without load no connection is open, so the wait is the driver seeing zero: its own
    // cost. Under load the wait is the time the open requests take to finish (the
    // drain's purpose), so only the rest is overhead.
    overheads.push_back(drain.total - stop - (load_requests > 0 ? wait : 0.0));
    recoveries.push_back(undrain.total);
    for (const auto& [phase, seconds] : drain.phases) per_phase[phase].push_back(seconds);
    std::printf("run %d: drain %.3f s (wait %.3f, docker stop %.3f), undrain %.3f s\n", i + 1, drain.total, wait, stop,
                undrain.total);
  }
  std::printf("\nper phase (median of %d runs):\n", runs);
  for (const auto& [phase, seconds] : per_phase) std::printf("  %-14s %8.3f s\n", phase.c_str(), percentile(seconds, 0.5));
  const double median_overhead = percentile(overheads, 0.5);
  const double max_overhead = *std::max_element(overheads.begin(), overheads.end());
  const double goal = sandbox.apps().size() <= 20 ? 1.0 : 2.0;  // seconds, by host size
  const std::string goal_text = "< " + std::to_string(static_cast<int>(goal)) + " s";
  rows.push_back({"drain, whole command (" + std::to_string(sandbox.apps().size()) + " containers, median)",
                  percentile(totals, 0.5), "s", "", ""});
  rows.push_back({"  of which the Docker engine stopping them", percentile(stops, 0.5), "s", "inherent", ""});
  rows.push_back({"  of which waiting for zero connections", percentile(waits, 0.5), "s",
                  load_requests > 0 ? "inherent (requests in flight)" : "counted as overhead", ""});
  rows.push_back({"driver overhead beyond the stop (median)", median_overhead, "s", goal_text,
                  median_overhead < goal ? "met" : "NOT met"});
  rows.push_back({"driver overhead beyond the stop (max)", max_overhead, "s", goal_text,
                  max_overhead < goal ? "met" : "NOT met"});
  rows.push_back({"undrain (median)", percentile(recoveries, 0.5), "s", "", ""});
  rows.push_back({"drains whose wait ended because connections reached zero", static_cast<double>(zero_runs), "runs",
                  std::to_string(runs), zero_runs == runs ? "met" : "NOT met"});
  if (load_requests > 0) {
    rows.push_back({"requests through haproxy during the drains, served", static_cast<double>(served), "", "", ""});
    rows.push_back({"  of which failed", static_cast<double>(failed), "", "0", failed == 0 ? "met" : "NOT met"});
  }
}

void notice(DrainSandbox& sandbox, int closes, std::vector<Row>& rows) {
  if (!sandbox.reset()) die("sandbox reset");
  driver::DockerContainersOptions docker;
  docker.engine.http.endpoints.push_back(*skopos::HttpEndpoint::parse(sandbox.docker()));
  driver::DockerDrainContainers containers(docker);
  auto running = containers.running();
  if (!running || running->empty()) die("no containers in the sandbox");
  const driver::DrainContainer target = running->front();
  const std::uint16_t port = target.fence_ports.front();
  driver::TrackerConnectionsOptions options;
  options.socket = sandbox.dir() + "/tracker.sock";
  driver::TrackerDrainConnections connections(options);
  std::vector<double> latencies;
  for (int i = 0; i < closes; ++i) {
    UniqueFd held = skopos::testing::connect_loopback(port);
    if (!held) die("connect");
    // Until the tracker counts it.
    for (int tries = 0;; ++tries) {
      auto counts = connections.counts({target});
      if (counts && counts->total >= 1) break;
      if (tries > 200) die("the tracker never counted the connection");
      std::this_thread::sleep_for(5ms);
    }
    std::atomic<bool> stop{false};
    Clock::time_point returned{};
    std::thread waiter([&] {
      auto outcome = connections.wait_zero({target}, 10s, [](const driver::WaitProgress&) {}, stop);
      returned = Clock::now();
      if (!outcome || !outcome->all_zero) die("wait_zero did not see zero");
    });
    std::this_thread::sleep_for(300ms);  // the waiter is subscribed and waiting
    const auto closed = Clock::now();
    held.reset();
    waiter.join();
    latencies.push_back(std::chrono::duration<double, std::milli>(returned - closed).count());
  }
  std::printf("notice latency over %d closes: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n", closes,
              percentile(latencies, 0.5), percentile(latencies, 0.9), percentile(latencies, 0.99),
              *std::max_element(latencies.begin(), latencies.end()));
  const double p99 = percentile(latencies, 0.99);
  rows.push_back({"last connection closed -> drain notices, p50", percentile(latencies, 0.5), "ms", "< 50 ms",
                  percentile(latencies, 0.5) < 50 ? "met" : "NOT met"});
  rows.push_back({"last connection closed -> drain notices, p99", p99, "ms", "< 50 ms", p99 < 50 ? "met" : "NOT met"});
}

}  // namespace

constexpr const char* kUsage =
    "usage: bench_drain [--containers N] [--runs R] [--closes K] [--load REQUESTS] [--parts overhead,notice]\n"
    "  (root) the driver's overhead per drain on tools/drain-sandbox and the close-to-notice\n"
    "  latency; see the top of bench/bench_drain.cpp\n";

int main(int argc, char** argv) {
  const BenchArgs args("bench_drain", {"containers", "runs", "closes", "load", "parts"}, kUsage, argc, argv);
  const auto containers = static_cast<int>(args.number("containers", 20));
  const auto runs = static_cast<int>(args.number("runs", 3));
  const auto closes = static_cast<int>(args.number("closes", 50));
  const long load = args.number("load", 0, 0);
  const std::string parts = args.text("parts", "overhead,notice");
  if (::geteuid() != 0) die("bench_drain needs root (containers, BPF, iptables, network namespaces)");
  std::printf("starting the sandbox with %d containers...\n", containers);
  auto sandbox = DrainSandbox::up(SKOPOS_SOURCE_DIR, SKOPOS_BIN_DIR, containers);
  if (!sandbox) die(sandbox.error().message());
  std::vector<Row> rows;
  if (parts.find("overhead") != std::string::npos) overhead(**sandbox, runs, load, rows);
  if (parts.find("notice") != std::string::npos) notice(**sandbox, closes, rows);
  std::printf("\n");
  print_rows(rows);
  return 0;
}
