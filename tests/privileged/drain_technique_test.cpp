// The drain's technique end to end, in miniature and without containers: two backends
// of ours behind a real haproxy in a network namespace of the test's own, a bounded
// load through haproxy, and meanwhile one backend is taken out the way `skopos drain`
// does it -- fence its port, wait until its established connections reach zero, kill it,
// remove the fence. Not one request may fail.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "driver/fence.h"
#include "privileged_support.h"
#include "skopos/subprocess.h"

namespace skopos::driver {
namespace {

using namespace std::chrono_literals;
using skopos::testing::ChildProcess;
using skopos::testing::TestNetns;

// Established TCP connections whose local port is `port`, from ss, in this thread's netns.
int established_to(std::uint16_t port) {
  auto out = run_program({"ss", "-Htn", "state", "established", "( sport = :" + std::to_string(port) + " )"}, {}, 5s);
  if (!out || out->exit_code != 0) return -1;
  int lines = 0;
  for (const char c : out->out) lines += c == '\n' ? 1 : 0;
  return lines;
}

bool answers(std::uint16_t port) {
  auto out = run_program({SKOPOS_LOAD, "--target", "127.0.0.1:" + std::to_string(port), "--workers", "1", "--requests",
                          "1", "--slow-every", "0", "--timeout", "1"},
                         {}, 3s);
  return out && out->exit_code == 0;
}

TEST(PrivilegedDrainTechnique, FenceWaitStopLosesNotOneRequest) {
  SKOPOS_REQUIRE_ROOT();
  auto netns = TestNetns::create("skopos-drain");
  ASSERT_TRUE(netns) << netns.error().message();
  TestNetns::Inside inside(**netns);
  ASSERT_TRUE(run_program({"ip", "link", "set", "lo", "up"}, {}, 5s));
  constexpr std::uint16_t kFront = 8000;
  constexpr std::uint16_t kWeb1 = 31001;
  constexpr std::uint16_t kWeb2 = 31002;
  ChildProcess web1({SKOPOS_TEST_SERVER, "--address", "127.0.0.1", "--port", std::to_string(kWeb1), "--instance", "web-1"});
  ChildProcess web2({SKOPOS_TEST_SERVER, "--address", "127.0.0.1", "--port", std::to_string(kWeb2), "--instance", "web-2"});
  const std::string config = "/tmp/skopos-drain-haproxy-" + std::to_string(::getpid()) + ".cfg";
  std::ofstream(config) << "global\n  maxconn 2000\n"
                        << "defaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n"
                        // No idle kept-alive connections to the backends, so a fenced
                        // backend's count can reach zero; a refused connection (the fence's
                        // reset) is retried on the other backend. A request cut off in
                        // flight is NOT retried: it counts as failed.
                        << "  option http-server-close\n  option redispatch\n  retries 3\n"
                        << "  retry-on conn-failure\n"
                        << "frontend fe\n  bind 127.0.0.1:" << kFront << "\n  default_backend be\n"
                        << "backend be\n  balance roundrobin\n"
                        << "  server web1 127.0.0.1:" << kWeb1 << " check inter 200ms fall 1 rise 2\n"
                        << "  server web2 127.0.0.1:" << kWeb2 << " check inter 200ms fall 1 rise 2\n";
  ChildProcess haproxy({"haproxy", "-db", "-f", config});
  bool up = false;
  for (int i = 0; i < 40 && !up; ++i) {  // haproxy needs web-1 and web-2 up: rise 2 x 200 ms
    std::this_thread::sleep_for(100ms);
    up = answers(kFront);
  }
  ASSERT_TRUE(up) << "haproxy did not answer";

  // The load: 20,000 requests, keep-alive and fresh connections, every 50th one 500 ms long.
  Result<ProgramOutput> load = unexpected(Error::invalid("load", "", "not run"));
  std::thread load_thread([&] {
    TestNetns::Inside in_load(**netns);
    load = run_program({SKOPOS_LOAD, "--target", "127.0.0.1:" + std::to_string(kFront), "--workers", "8", "--requests",
                        "20000", "--duration", "300", "--slow-every", "50", "--slow-ms", "500"},
                       {}, 330s);
  });
  std::this_thread::sleep_for(2s);  // both backends serve

  // Take web-1 out: fence, wait for zero, stop, unfence.
  Fence fence;
  const auto fenced_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(fence.apply({kWeb1}));
  int left = established_to(kWeb1);
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (left != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    left = established_to(kWeb1);
  }
  const auto drained_in = std::chrono::steady_clock::now() - fenced_at;
  EXPECT_EQ(left, 0) << "web-1's connections reached zero (not the deadline)";
  // SIGKILL, as `docker kill` after the grace period: had a request still been in flight
  // on web-1 (the wait cut short), it would fail here and the load would count it.
  EXPECT_EQ(web1.stop(SIGKILL, 10s), 128 + SIGKILL);
  ASSERT_TRUE(fence.remove());

  load_thread.join();
  ASSERT_TRUE(load) << load.error().message();
  std::printf("load: %s  web-1 drained in %lld ms\n", load->out.c_str(),
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(drained_in).count()));
  EXPECT_EQ(load->exit_code, 0) << "not one request failed: " << load->out;
  EXPECT_NE(load->out.find("\"served\":20000"), std::string::npos) << load->out;
  EXPECT_NE(load->out.find("\"web-1\":"), std::string::npos) << "web-1 served before it was drained";
  haproxy.stop(SIGTERM, 5s);
  web2.stop(SIGTERM, 10s);
  std::remove(config.c_str());
}

}  // namespace
}  // namespace skopos::driver
