// The gate goal of "when a host may go": from a gate opening to the host taking its tier
// slot, < 2 s -- with the real `skopos agent`, a real etcd 3.4, Prometheus and
// Alertmanager started here on loopback. Each run starts an agent whose reboot is
// requested (its trigger file) and held by one gate, waits until it says so, opens the
// gate and times until the agent's log says it holds the slot:
//   * window: `skopos window set` of a window open now returns -> slot (etcd watch);
//   * resume: `skopos agent resume` of its paused tier returns -> slot (etcd watch);
//   * alert:  Alertmanager stops listing the firing alert that held it (seen by a 20 ms
//             poll of its API) -> slot (the agent asks every --health-interval, 1 s).
// The agent's --recheck is 10 min: only the gate's own wake-up can start it in time.
// Prints a goals table. Usage: bench_gates [--runs N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "agent_process.h"
#include "clock_text.h"
#include "bench_support.h"
#include "etcd_server.h"
#include "process.h"
#include "prometheus_stack.h"

namespace {

using namespace std::chrono_literals;
using skopos::bench::Clock;
using skopos::bench::die;
using skopos::testing::AgentProcess;

constexpr const char* kUsage =
    "usage: bench_gates [--runs N]\n"
    "  from a gate opening (window, resume, alert resolved) to the real agent taking its slot;\n"
    "  see the top of bench/bench_gates.cpp\n";

constexpr const char* kRules =
    "      - alert: HostsUnhealthy\n"
    "        expr: bench_unhealthy > 0\n"
    "        labels: {severity: critical}\n";

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

using skopos::bench::cpu_model;
using skopos::bench::percentile;
using skopos::testing::utc_clock;

class Bench {
 public:
  Bench() : etcd_(skopos::testing::EtcdServer::start(1)), stack_(skopos::testing::PrometheusStack::start(kRules)) {
    stack_->set_metrics("bench_unhealthy 0\n");
  }

  // One run of gate `kind`; the time from its opening to the slot, in ms.
  double run(const std::string& kind, int index) {
    const std::string prefix = "/bench-gates/" + kind + "-" + std::to_string(index);
    std::vector<std::string> extra;
    if (kind == "window") {
      cli({"window", "set", "--tier", "worker", "nights", "daily", utc_clock(180min), "1h"}, prefix);
    } else if (kind == "resume") {
      cli({"agent", "pause", "--tier", "worker", "--reason", "bench"}, prefix);
    } else {
      stack_->set_metrics("bench_unhealthy 1\n");
      if (!stack_->wait_alert("HostsUnhealthy", true, 60s)) die("the alert did not fire");
      extra = {"--health-alertmanager", stack_->alertmanager_url(), "--health-alerts", "severity=critical",
               "--health-interval", "1s"};
    }
    AgentProcess agent(SKOPOS_CLI, etcd_->endpoint(), prefix, "bench-" + kind, extra);
    std::ofstream(agent.dir() + "/needs_reboot") << "\n";
    if (agent.status_starting("reboot requested, waiting: ", 30s).empty()) {
      die("the " + kind + " gate did not hold the agent:\n" + agent.log());
    }
    Clock::time_point opened;
    if (kind == "window") {
      cli({"window", "set", "--tier", "worker", "nights", "daily", utc_clock(-1min), "2h"}, prefix);
      opened = Clock::now();
    } else if (kind == "resume") {
      cli({"agent", "resume", "--tier", "worker"}, prefix);
      opened = Clock::now();
    } else {
      // At another moment of the agent's 1 s cycle in each run: the runs spread over it.
      std::this_thread::sleep_for(std::chrono::milliseconds(397 * index % 1100));
      stack_->set_metrics("bench_unhealthy 0\n");
      if (!stack_->wait_alert("HostsUnhealthy", false, 60s)) die("the alert did not resolve");
      opened = Clock::now();
    }
    // The drain logs "holding lock 'reboot' group 'worker'" once it has the slot.
    for (const auto deadline = opened + 30s; Clock::now() < deadline; std::this_thread::sleep_for(5ms)) {
      if (agent.log().find("holding lock 'reboot' group 'worker'") != std::string::npos) {
        const double took = ms(Clock::now() - opened);
        (void)agent.stop();
        return took;
      }
    }
    die("no slot 30 s after the " + kind + " gate opened:\n" + agent.log());
  }

 private:
  void cli(std::vector<std::string> args, const std::string& prefix) {
    std::vector<std::string> argv = {SKOPOS_CLI};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--etcd-endpoints", etcd_->endpoint(), "--etcd-prefix", prefix});
    const auto result = skopos::testing::run_process(argv);
    if (result.exit_code != 0) die(args.front() + " " + args[1] + ": " + result.err);
  }

  std::unique_ptr<skopos::testing::EtcdServer> etcd_;
  std::unique_ptr<skopos::testing::PrometheusStack> stack_;
};

}  // namespace

int main(int argc, char** argv) {
  const skopos::bench::BenchArgs args("bench_gates", {"runs"}, kUsage, argc, argv);
  const auto runs = static_cast<int>(args.number("runs", 10));
  std::printf("CPU: %s; etcd 3.4, Prometheus, Alertmanager on loopback; the real agent; %d runs per gate\n",
              cpu_model().c_str(), runs);
  Bench bench;
  std::vector<skopos::bench::Row> rows;
  for (const std::string kind : {"window", "resume", "alert"}) {
    std::vector<double> took;
    for (int i = 0; i < runs; ++i) took.push_back(bench.run(kind, i));
    const double p50 = percentile(took, 0.5);
    const double max = *std::max_element(took.begin(), took.end());
    const std::string what = kind == "window"   ? "window opens -> slot"
                             : kind == "resume" ? "resume -> slot"
                                                : "alert resolved -> slot";
    rows.push_back({what + ", p50", p50, "ms", "< 2000 ms", p50 < 2000 ? "met" : "MISSED"});
    rows.push_back({what + ", max", max, "ms", "< 2000 ms", max < 2000 ? "met" : "MISSED"});
  }
  skopos::bench::print_rows(rows);
  return 0;
}
