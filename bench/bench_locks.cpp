// The lock goals against a real etcd 3.4 started here on loopback (data on /tmp, so
// every write is fsync'ed as in production):
//   * uncontended acquire + release: p50 < 5 ms;
//   * a released slot is taken by a waiting contender within 50 ms (etcd watch);
//   * a change 20 ms after a waiter's fresh watch is heard within 10 ms, though etcd
//     had moved past the revision the waiter watches from (wait_for_news, against
//     wait_for_change on the same changes: etcd syncs such watchers every 100 ms).
// Prints a goals table. Usage: bench_locks [--cycles N] [--handoffs N]
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.h"
#include "driver/lock_service.h"
#include "etcd_server.h"
#include "skopos/log.h"

namespace {

using namespace std::chrono_literals;
using skopos::bench::Clock;
using namespace skopos;
using namespace skopos::driver;

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

using skopos::bench::percentile;

struct Node {
  std::unique_ptr<EtcdClient> etcd;
  std::unique_ptr<LockService> locks;
};

Node node(const std::string& endpoint, const std::string& id) {
  EtcdOptions options;
  auto parsed = HttpEndpoint::parse(endpoint);
  if (!parsed) skopos::bench::die("endpoint " + endpoint);
  options.http.endpoints.push_back(*parsed);
  auto etcd = EtcdClient::create(options);
  if (!etcd) skopos::bench::die("etcd client: " + etcd.error().message);
  Node n;
  n.etcd = std::move(*etcd);
  LockServiceOptions lock_options;
  lock_options.prefix = "/bench";
  n.locks = std::make_unique<LockService>(*n.etcd, HostIdentity{id, "boot", id}, lock_options);
  return n;
}

}  // namespace

constexpr const char* kUsage =
    "usage: bench_locks [--cycles N] [--handoffs N]\n"
    "  the lock goals against a real etcd 3.4 on loopback; see the top of bench/bench_locks.cpp\n";

int main(int argc, char** argv) {
  const skopos::bench::BenchArgs args("bench_locks", {"cycles", "handoffs"}, kUsage, argc, argv);
  const auto cycles = static_cast<int>(args.number("cycles", 1000));
  const auto handoffs = static_cast<int>(args.number("handoffs", 100));
  skopos::set_log_level(skopos::LogLevel::kError);
  auto server = skopos::testing::EtcdServer::start(1);
  std::printf("etcd 3.4 on %s (one member, data on /tmp); %d cycles, %d handoffs\n", server->endpoint().c_str(),
              cycles, handoffs);

  // Uncontended: one machine takes and gives back the slot.
  auto a = node(server->endpoint(), "bench-a");
  std::vector<double> acquire_ms, release_ms, cycle_ms;
  for (int i = 0; i < cycles; ++i) {
    const auto start = Clock::now();
    auto held = a.locks->acquire("reboot", "worker", "REBOOT", Clock::now() + 10s);
    const auto taken = Clock::now();
    if (!held || held->already_held) skopos::bench::die("acquire: " + (held ? "already held" : held.error().message));
    auto released = a.locks->release("reboot", "worker", held->fencing_token);
    const auto end = Clock::now();
    if (!released || !*released) skopos::bench::die("release");
    acquire_ms.push_back(ms(taken - start));
    release_ms.push_back(ms(end - taken));
    cycle_ms.push_back(ms(end - start));
  }

  // Handoff: A holds, B waits (watching); A releases; how long until B holds.
  auto b = node(server->endpoint(), "bench-b");
  std::vector<double> handoff_ms;
  Node* holder = &a;
  Node* waiter = &b;
  for (int i = 0; i < handoffs; ++i) {
    auto held = holder->locks->acquire("reboot", "worker", "REBOOT", Clock::now() + 10s);
    if (!held) skopos::bench::die("acquire: " + held.error().message);
    Clock::time_point waited_at;
    bool ok = false;
    std::thread thread([&] {
      auto got = waiter->locks->acquire("reboot", "worker", "REBOOT", Clock::now() + 30s);
      waited_at = Clock::now();
      ok = static_cast<bool>(got);
    });
    std::this_thread::sleep_for(30ms);  // the waiter has read the group and is watching
    auto released = holder->locks->release("reboot", "worker", held->fencing_token);
    const auto released_at = Clock::now();
    thread.join();
    if (!released || !ok) skopos::bench::die("handoff");
    handoff_ms.push_back(ms(waited_at - released_at));
    std::swap(holder, waiter);
  }
  if (!holder->locks->release("reboot", "worker")) skopos::bench::die("final release");

  // Stop: B waits (up to an hour) for the slot A holds; a stop (the drain's SIGTERM
  // flag) is set; how long until the wait returns, interrupted and holding nothing.
  auto held = a.locks->acquire("reboot", "worker", "REBOOT", Clock::now() + 10s);
  if (!held) skopos::bench::die("acquire: " + held.error().message);
  std::vector<double> stop_ms;
  for (int i = 0; i < std::max(10, handoffs / 5); ++i) {
    std::atomic<bool> stop{false};
    Clock::time_point returned_at;
    bool interrupted = false;
    std::thread thread([&] {
      auto got = b.locks->acquire("reboot", "worker", "REBOOT", Clock::now() + 3600s, &stop);
      returned_at = Clock::now();
      interrupted = !got && got.error().kind == skopos::driver::LockError::Kind::kInterrupted;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + 37 * (i % 7)));  // anywhere in a watch slice
    const auto stopped_at = Clock::now();
    stop = true;
    thread.join();
    if (!interrupted) skopos::bench::die("the stopped wait did not report an interruption");
    stop_ms.push_back(ms(returned_at - stopped_at));
  }
  if (!a.locks->release("reboot", "worker")) skopos::bench::die("release after the stops");

  // A fresh watch from a revision etcd has passed (a write elsewhere since the read),
  // then a change to the watched key 20 ms later: how long until the wait returns it.
  std::vector<double> change_ms, news_ms;
  for (int i = 0; i < std::max(20, handoffs / 2); ++i) {
    for (const bool news : {false, true}) {
      auto read = a.etcd->put("bench/elsewhere", std::to_string(i));
      if (!read || !a.etcd->put("bench/elsewhere", "moved")) skopos::bench::die("put");
      Clock::time_point heard;
      bool ok = false;
      std::thread thread([&] {
        const std::vector<WatchSpec> watched{WatchSpec{"bench/watched", {}, false}};
        auto got = news ? b.etcd->wait_for_news(watched, *read + 1, Clock::now() + 5s)
                        : b.etcd->wait_for_change(watched, *read + 1, Clock::now() + 5s);
        heard = Clock::now();
        ok = got && !got->events.empty();
      });
      std::this_thread::sleep_for(20ms);  // the watch stands (its connection is made)
      const auto changed_at = Clock::now();
      if (!a.etcd->put("bench/watched", std::to_string(i))) skopos::bench::die("put");
      thread.join();
      if (!ok) skopos::bench::die("the wait did not hear the change");
      (news ? news_ms : change_ms).push_back(ms(heard - changed_at));
    }
  }

  using skopos::bench::Row;
  const double p50_cycle = percentile(cycle_ms, 0.5);
  const double p50_handoff = percentile(handoff_ms, 0.5);
  const double p99_handoff = percentile(handoff_ms, 0.99);
  std::vector<Row> rows = {
      {"uncontended acquire + release, p50", p50_cycle, "ms", "< 5 ms", p50_cycle < 5 ? "met" : "MISSED"},
      {"uncontended acquire + release, p90", percentile(cycle_ms, 0.9), "ms", "", ""},
      {"uncontended acquire + release, p99", percentile(cycle_ms, 0.99), "ms", "", ""},
      {"  acquire alone, p50", percentile(acquire_ms, 0.5), "ms", "", ""},
      {"  release alone, p50", percentile(release_ms, 0.5), "ms", "", ""},
      {"released slot taken by a waiter, p50", p50_handoff, "ms", "< 50 ms", p50_handoff < 50 ? "met" : "MISSED"},
      {"released slot taken by a waiter, p99", p99_handoff, "ms", "< 50 ms", p99_handoff < 50 ? "met" : "MISSED"},
      {"released slot taken by a waiter, max", *std::max_element(handoff_ms.begin(), handoff_ms.end()), "ms", "", ""},
      {"change after a fresh watch: wait_for_change, p50", percentile(change_ms, 0.5), "ms",
       "", "(etcd's sync)"},
      {"  wait_for_change, max", *std::max_element(change_ms.begin(), change_ms.end()), "ms", "", ""},
      {"  wait_for_news, p50", percentile(news_ms, 0.5), "ms", "< 10 ms", percentile(news_ms, 0.5) < 10 ? "met" : "MISSED"},
      {"  wait_for_news, p99", percentile(news_ms, 0.99), "ms", "< 10 ms",
       percentile(news_ms, 0.99) < 10 ? "met" : "MISSED"},
      {"stop -> a waiting acquire returns, p50", percentile(stop_ms, 0.5), "ms", "< 1000 ms",
       percentile(stop_ms, 0.5) < 1000 ? "met" : "MISSED"},
      {"stop -> a waiting acquire returns, max", *std::max_element(stop_ms.begin(), stop_ms.end()), "ms", "< 1000 ms",
       *std::max_element(stop_ms.begin(), stop_ms.end()) < 1000 ? "met" : "MISSED"},
  };
  skopos::bench::print_rows(rows);
  return 0;
}
