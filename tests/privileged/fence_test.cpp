// The fence in network namespaces of the test's own, with real iptables: new
// connections to a fenced port are reset at once (also to a port that DNAT sends to a
// "container" in another namespace), established connections keep flowing both ways,
// applying again changes nothing, and removal leaves the tables as they were.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>

#include "driver/drain_systems_impl.h"
#include "driver/fence.h"
#include "privileged_support.h"
#include "skopos/subprocess.h"

namespace skopos::driver {
namespace {

using skopos::testing::TestNetns;
using skopos::testing::tcp_accept;
using skopos::testing::tcp_listen;

// A connect that reports errno instead of asserting: 0 when connected.
int try_connect(const std::string& address, std::uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in target{};
  target.sin_family = AF_INET;
  target.sin_port = htons(port);
  ::inet_pton(AF_INET, address.c_str(), &target.sin_addr);
  timeval timeout{2, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&target), sizeof target) == 0 ? 0 : errno;
}

int try_connect6(std::uint16_t port) {
  UniqueFd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in6 target{};
  target.sin6_family = AF_INET6;
  target.sin6_port = htons(port);
  target.sin6_addr = in6addr_loopback;
  timeval timeout{2, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&target), sizeof target) == 0 ? 0 : errno;
}

// One byte each way on an established connection.
bool still_flows(int client, int server) {
  char byte = 'x';
  if (::send(client, &byte, 1, MSG_NOSIGNAL) != 1 || ::recv(server, &byte, 1, 0) != 1) return false;
  return ::send(server, &byte, 1, MSG_NOSIGNAL) == 1 && ::recv(client, &byte, 1, 0) == 1;
}

class PrivilegedFence : public ::testing::Test {
 protected:
  void SetUp() override {
    SKOPOS_REQUIRE_ROOT();
    auto host = TestNetns::create("skopos-fence");
    ASSERT_TRUE(host) << host.error().message();
    host_ = std::move(*host);
  }
  static std::string without_comments(const std::string& text) {
    std::string out;
    std::size_t start = 0;
    while (start < text.size()) {
      const std::size_t end = std::min(text.find('\n', start), text.size());
      if (text[start] != '#') out += text.substr(start, end - start) + "\n";
      start = end + 1;
    }
    return out;
  }

  std::unique_ptr<TestNetns> host_;
};

TEST_F(PrivilegedFence, NewConnectionsAreResetEstablishedOnesFlowAndRemovalIsExact) {
  TestNetns::Inside inside(*host_);
  const std::string before = without_comments(run_program({"iptables-save", "-t", "filter"}, {}, std::chrono::seconds(5))->out);
  UniqueFd listener = tcp_listen("127.0.0.1", 31000);
  UniqueFd other = tcp_listen("127.0.0.1", 31001);
  UniqueFd client = skopos::testing::tcp_connect("127.0.0.1", 31000);
  UniqueFd server = tcp_accept(listener.get());

  Fence fence;
  auto applied = fence.apply({31000});
  ASSERT_TRUE(applied) << applied.error().message();
  EXPECT_EQ(applied->jumps.size(), 3u) << "INPUT, FORWARD, OUTPUT";
  EXPECT_EQ(applied->ports, std::vector<std::uint16_t>{31000});
  EXPECT_EQ(try_connect("127.0.0.1", 31000), ECONNREFUSED) << "a new connection gets a reset at once";
  EXPECT_EQ(try_connect("127.0.0.1", 31001), 0) << "other ports are not fenced";
  EXPECT_TRUE(still_flows(client.get(), server.get())) << "the established connection keeps flowing";

  auto again = fence.apply({31000});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->jumps.size(), 3u) << "applying again adds nothing";
  EXPECT_EQ(again->rules.size(), 1u);
  auto wider = fence.apply({31000, 31001, 31001});
  ASSERT_TRUE(wider);
  EXPECT_EQ(wider->ports, (std::vector<std::uint16_t>{31000, 31001}));
  EXPECT_EQ(try_connect("127.0.0.1", 31001), ECONNREFUSED);

  // A duplicate jump (say, from an older tool) is cut back to one.
  ASSERT_EQ(run_program({"iptables", "-I", "INPUT", "-j", "SKOPOS"}, {}, std::chrono::seconds(5))->exit_code, 0);
  auto deduplicated = fence.apply({31000});
  ASSERT_TRUE(deduplicated);
  EXPECT_EQ(deduplicated->jumps.size(), 3u) << "duplicates never accumulate";
  EXPECT_EQ(try_connect("127.0.0.1", 31001), 0) << "the chain holds exactly the ports of the last apply";

  auto removed = fence.remove();
  ASSERT_TRUE(removed) << removed.error().message();
  EXPECT_TRUE(*removed);
  EXPECT_EQ(try_connect("127.0.0.1", 31000), 0);
  EXPECT_TRUE(still_flows(client.get(), server.get()));
  const std::string after = without_comments(run_program({"iptables-save", "-t", "filter"}, {}, std::chrono::seconds(5))->out);
  EXPECT_EQ(after, before) << "removal leaves the table as it was";
  auto nothing = fence.remove();
  ASSERT_TRUE(nothing);
  EXPECT_FALSE(*nothing);
  auto state = fence.show();
  ASSERT_TRUE(state);
  EXPECT_FALSE(state->active());
}

TEST_F(PrivilegedFence, APublishedPortDnatedToAContainerIsFencedByItsOriginalPort) {
  // The "container": a namespace behind a veth, its server on 10.232.0.2:8080, published
  // on the host's 127.0.0.1:32000 by DNAT (as podman/docker publish ports).
  auto container = TestNetns::create("skopos-fctr");
  ASSERT_TRUE(container) << container.error().message();
  const auto run = [](std::vector<std::string> argv) {
    auto out = run_program(argv, {}, std::chrono::seconds(5));
    ASSERT_TRUE(out) << out.error().message();
    ASSERT_EQ(out->exit_code, 0) << argv[0] << " " << argv[1] << ": " << out->err;
  };
  run({"ip", "link", "add", "skfh0", "netns", host_->name(), "type", "veth", "peer", "name", "skfc0", "netns",
       (*container)->name()});
  run({"ip", "-n", host_->name(), "addr", "add", "10.232.0.1/30", "dev", "skfh0"});
  run({"ip", "-n", (*container)->name(), "addr", "add", "10.232.0.2/30", "dev", "skfc0"});
  run({"ip", "-n", host_->name(), "link", "set", "skfh0", "up"});
  run({"ip", "-n", (*container)->name(), "link", "set", "skfc0", "up"});
  UniqueFd listener;
  {
    TestNetns::Inside inside(**container);
    listener = tcp_listen("10.232.0.2", 8080);
  }
  TestNetns::Inside inside(*host_);
  run({"sysctl", "-q", "-w", "net.ipv4.conf.all.route_localnet=1"});
  run({"iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "127.0.0.1", "--dport", "32000", "-j", "DNAT",
       "--to-destination", "10.232.0.2:8080"});
  run({"iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "127.0.0.1", "-d", "10.232.0.2", "-j", "SNAT", "--to-source",
       "10.232.0.1"});
  UniqueFd client = skopos::testing::tcp_connect("127.0.0.1", 32000);
  UniqueFd server;
  {
    TestNetns::Inside in_container(**container);
    server = tcp_accept(listener.get());
  }
  Fence fence;
  ASSERT_TRUE(fence.apply({32000}));
  EXPECT_EQ(try_connect("127.0.0.1", 32000), ECONNREFUSED) << "fenced by the port it was published on";
  EXPECT_TRUE(still_flows(client.get(), server.get()));
  EXPECT_EQ(try_connect("10.232.0.2", 8080), 0) << "the container port itself, reached directly, is another port";
  ASSERT_TRUE(fence.remove());
  EXPECT_EQ(try_connect("127.0.0.1", 32000), 0);
}

// Mesos hands out the same port range on every host: a container here calling another
// host's task on port P must not be reset because P is fenced here. Only connections
// into this host (its published ports, its own addresses) are refused.
// Failed before: the FORWARD jump took every forwarded SYN, so the outbound call to the
// remote P was reset too.
TEST_F(PrivilegedFence, OnlyConnectionsIntoThisHostAreRefusedNeverItsOutboundCalls) {
  // "host" forwards between a bridged "container" (10.232.1.2) and a "remote" host
  // (10.232.2.2); it publishes its port 33000 (10.232.2.1:33000) to the container's 8080,
  // and the remote host runs a task on the same port number 33000.
  auto container = TestNetns::create("skopos-fcon");
  ASSERT_TRUE(container) << container.error().message();
  auto remote = TestNetns::create("skopos-frem");
  ASSERT_TRUE(remote) << remote.error().message();
  const auto run = [](std::vector<std::string> argv) {
    auto out = run_program(argv, {}, std::chrono::seconds(5));
    ASSERT_TRUE(out) << out.error().message();
    ASSERT_EQ(out->exit_code, 0) << argv[0] << " " << argv[1] << " " << argv[2] << ": " << out->err;
  };
  const std::string& h = host_->name();
  const std::string& c = (*container)->name();
  const std::string& r = (*remote)->name();
  run({"ip", "link", "add", "skfh1", "netns", h, "type", "veth", "peer", "name", "skfc1", "netns", c});
  run({"ip", "link", "add", "skfh2", "netns", h, "type", "veth", "peer", "name", "skfr2", "netns", r});
  run({"ip", "-n", h, "addr", "add", "10.232.1.1/30", "dev", "skfh1"});
  run({"ip", "-n", h, "addr", "add", "10.232.2.1/30", "dev", "skfh2"});
  run({"ip", "-n", c, "addr", "add", "10.232.1.2/30", "dev", "skfc1"});
  run({"ip", "-n", r, "addr", "add", "10.232.2.2/30", "dev", "skfr2"});
  for (const auto& [ns, dev] : {std::pair{h, "skfh1"}, {h, "skfh2"}, {c, "skfc1"}, {r, "skfr2"}}) {
    run({"ip", "-n", ns, "link", "set", dev, "up"});
  }
  run({"ip", "-n", c, "route", "add", "default", "via", "10.232.1.1"});
  run({"ip", "-n", r, "route", "add", "default", "via", "10.232.2.1"});
  run({"ip", "netns", "exec", h, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"});
  run({"ip", "netns", "exec", h, "iptables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "-d", "10.232.2.1",
       "--dport", "33000", "-j", "DNAT", "--to-destination", "10.232.1.2:8080"});

  UniqueFd task_here, task_remote;
  {
    TestNetns::Inside inside(**container);
    task_here = tcp_listen("10.232.1.2", 8080);
  }
  {
    TestNetns::Inside inside(**remote);
    task_remote = tcp_listen("10.232.2.2", 33000);
  }
  const auto from = [](TestNetns& ns, const std::string& address, std::uint16_t port) {
    TestNetns::Inside inside(ns);
    return try_connect(address, port);
  };
  ASSERT_EQ(from(**container, "10.232.2.2", 33000), 0) << "the outbound call works unfenced";
  ASSERT_EQ(from(**remote, "10.232.2.1", 33000), 0) << "the published port works unfenced";
  UniqueFd established, accepted;
  {
    TestNetns::Inside inside(**remote);
    established = skopos::testing::tcp_connect("10.232.2.1", 33000);
  }
  {
    TestNetns::Inside inside(**container);
    // Drain the two accepted connections of the checks above, then take the live one.
    (void)tcp_accept(task_here.get());
    accepted = tcp_accept(task_here.get());
  }

  {
    TestNetns::Inside inside(*host_);
    Fence fence;
    auto applied = fence.apply({33000});
    ASSERT_TRUE(applied) << applied.error().message();
    EXPECT_NE(std::find(applied->jumps.begin(), applied->jumps.end(), "-A FORWARD -m conntrack --ctstate DNAT -j SKOPOS"),
              applied->jumps.end());
  }
  EXPECT_EQ(from(**container, "10.232.2.2", 33000), 0)
      << "this host's container calling another host's port 33000 is not refused";
  EXPECT_EQ(from(**remote, "10.232.2.1", 33000), ECONNREFUSED) << "a new connection into the published 33000 is";
  EXPECT_TRUE(still_flows(established.get(), accepted.get())) << "the established one into it keeps flowing";

  // An older version's unconditional FORWARD jump is replaced, not kept beside the new one.
  TestNetns::Inside inside(*host_);
  ASSERT_TRUE(run_program({"iptables", "-I", "FORWARD", "-j", "SKOPOS"}, {}, std::chrono::seconds(5)));
  Fence fence;
  auto again = fence.apply({33000});
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(std::count(again->jumps.begin(), again->jumps.end(), "-A FORWARD -j SKOPOS"), 0);
  EXPECT_EQ(again->jumps.size(), 3u);
  ASSERT_TRUE(fence.remove());
}

TEST_F(PrivilegedFence, ARefusedRestoreChangesNothingAndSaysWhy) {
  TestNetns::Inside inside(*host_);
  FenceOptions options;
  options.chain = "SKOPOS-WITH-A-NAME-FAR-TOO-LONG-FOR-IPTABLES";
  Fence fence(options);
  auto refused = fence.apply({31000});
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("iptables-restore"), std::string::npos) << refused.error().message();
  auto state = fence.show();
  ASSERT_TRUE(state);
  EXPECT_FALSE(state->active()) << "all or nothing";
  FenceOptions missing;
  missing.iptables_save = "/nonexistent/iptables-save";
  auto cannot = Fence(missing).show();
  ASSERT_FALSE(cannot);
  EXPECT_NE(cannot.error().message().find("/nonexistent/iptables-save"), std::string::npos) << cannot.error().message();
}

// The drain's fence covers IPv6 too: a task listening on [::] is reached over ::1 (or
// any v6 address) by a balancer that would otherwise bypass an IPv4-only fence.
TEST_F(PrivilegedFence, TheDrainFencesIpv6AsWellAndRemovesBoth) {
  TestNetns::Inside inside(*host_);
  const auto save = [](const char* tool) {
    return without_comments(run_program({tool, "-t", "filter"}, {}, std::chrono::seconds(5))->out);
  };
  const std::string before4 = save("iptables-save");
  const std::string before6 = save("ip6tables-save");
  UniqueFd listener = tcp_listen("::", 31000, false);  // both families
  UniqueFd client = skopos::testing::tcp_connect("::1", 31000);
  UniqueFd server = tcp_accept(listener.get());

  IptablesDrainFence fence(FenceOptions{}, true);
  const std::string plan = *fence.plan({31000});
  EXPECT_NE(plan.find("-I OUTPUT 1 -m conntrack --ctorigdst ::1 -j SKOPOS"), std::string::npos) << plan;
  ASSERT_TRUE(fence.apply({31000}));
  EXPECT_EQ(try_connect6(31000), ECONNREFUSED) << "IPv6: a new connection gets a reset at once";
  EXPECT_EQ(try_connect("127.0.0.1", 31000), ECONNREFUSED) << "IPv4 as well";
  EXPECT_TRUE(still_flows(client.get(), server.get())) << "the established IPv6 connection keeps flowing";
  auto fenced = fence.fenced();
  ASSERT_TRUE(fenced);
  EXPECT_EQ(*fenced, std::vector<std::uint16_t>{31000});

  auto removed = fence.remove();
  ASSERT_TRUE(removed);
  EXPECT_TRUE(*removed);
  EXPECT_EQ(try_connect6(31000), 0);
  EXPECT_EQ(save("iptables-save"), before4);
  EXPECT_EQ(save("ip6tables-save"), before6) << "removal leaves the IPv6 table as it was";

  IptablesDrainFence v4_only(FenceOptions{}, false);
  ASSERT_TRUE(v4_only.apply({31000}));
  EXPECT_EQ(try_connect6(31000), 0) << "--fence-ipv6 off";
  ASSERT_TRUE(v4_only.remove());
}

// One failed ip6tables-save must not turn the IPv6 fence off: the step fails (the drain
// keeps its journal and resumes), and the next try fences, or removes, both families.
// Failed before: the first IPv6 call was a probe, and its failure dropped IPv6 for the
// life of the process -- the apply "succeeded" with IPv6 clients unfenced.
TEST_F(PrivilegedFence, AFailedIpv6CallIsAnErrorNeverASilentIpv4OnlyFence) {
  TestNetns::Inside inside(*host_);
  char dir_template[] = "/tmp/skopos-ip6fail-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string real = run_program({"sh", "-c", "command -v ip6tables-save"}, {}, std::chrono::seconds(5))->out;
  ASSERT_FALSE(real.empty());
  {
    std::ofstream wrapper(dir + "/ip6tables-save");
    wrapper << "#!/bin/sh\n"
            << "if [ -e " << dir << "/fail ]; then rm -f " << dir << "/fail; echo 'ip6tables-save: simulated failure' >&2; exit 1; fi\n"
            << "exec " << real.substr(0, real.find('\n')) << " \"$@\"\n";
  }
  ::chmod((dir + "/ip6tables-save").c_str(), 0755);
  const std::string old_path = ::getenv("PATH");
  ::setenv("PATH", (dir + ":" + old_path).c_str(), 1);
  const auto fail_once = [&] { std::ofstream(dir + "/fail") << "1"; };

  UniqueFd listener = tcp_listen("::", 31000, false);
  IptablesDrainFence fence(FenceOptions{}, true);
  fail_once();
  auto first = fence.apply({31000});
  EXPECT_FALSE(first) << "the IPv6 half failed: the step fails";
  if (!first) {
    EXPECT_NE(first.error().message.find("simulated failure"), std::string::npos) << first.error().message;
  }
  auto second = fence.apply({31000});
  EXPECT_TRUE(second) << "run again, both families are fenced";
  EXPECT_EQ(try_connect6(31000), ECONNREFUSED) << "IPv6 clients are fenced after the retry";
  EXPECT_EQ(try_connect("127.0.0.1", 31000), ECONNREFUSED);

  fail_once();
  auto removed = fence.remove();
  EXPECT_FALSE(removed) << "a removal that could not read the IPv6 table is an error";
  auto state6 = Fence(FenceOptions{}.ipv6()).show();
  ASSERT_TRUE(state6);
  EXPECT_TRUE(state6->active()) << "and says so while the IPv6 chain is still there";
  auto again = fence.remove();
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(try_connect6(31000), 0);
  EXPECT_FALSE(Fence(FenceOptions{}.ipv6()).show()->active());
  ::setenv("PATH", old_path.c_str(), 1);
  std::filesystem::remove_all(dir);
}

// Docker re-inserts its own jumps at the top of FORWARD when it restarts or creates a
// network; a rule above the fence's jump lets new connections through. The drain checks
// during its wait (ensure) and applies the fence again.
TEST_F(PrivilegedFence, AFencePushedDownByAnotherProgramIsFoundAndPutFirstAgain) {
  TestNetns::Inside inside(*host_);
  UniqueFd listener = tcp_listen("127.0.0.1", 31000);
  IptablesDrainFence fence(FenceOptions{}, false);
  ASSERT_TRUE(fence.apply({31000}));
  auto untouched = fence.ensure({31000});
  ASSERT_TRUE(untouched) << untouched.error().message;
  EXPECT_FALSE(*untouched) << "an intact fence is left alone";
  EXPECT_EQ(try_connect("127.0.0.1", 31000), ECONNREFUSED);

  // Another program's rules above ours (a loopback connection passes OUTPUT, then
  // INPUT): new connections get through.
  for (const char* hook : {"OUTPUT", "INPUT"}) {
    ASSERT_EQ(run_program({"iptables", "-I", hook, "1", "-p", "tcp", "--dport", "31000", "-j", "ACCEPT"}, {},
                          std::chrono::seconds(5))->exit_code,
              0);
  }
  EXPECT_EQ(try_connect("127.0.0.1", 31000), 0) << "the fence is bypassed";
  auto state = Fence().show();
  ASSERT_TRUE(state);
  EXPECT_FALSE(Fence().intact(*state, {31000}));
  auto reapplied = fence.ensure({31000});
  ASSERT_TRUE(reapplied) << reapplied.error().message;
  EXPECT_TRUE(*reapplied) << "found and applied again";
  EXPECT_EQ(try_connect("127.0.0.1", 31000), ECONNREFUSED) << "first again, so new connections are refused again";
  auto now = Fence().show();
  ASSERT_TRUE(now);
  EXPECT_TRUE(Fence().intact(*now, {31000}));
  EXPECT_EQ(now->jumps.size(), 3u) << "one jump per hook, none left behind";
  ASSERT_TRUE(fence.remove());
}

// Marathon's own HTTP/TCP health checks come from the Marathon hosts: refused by the
// fence, they fail, and Marathon kills the task mid-wait. Sources on the allow list
// keep reaching a fenced port; everyone else is refused.
TEST_F(PrivilegedFence, AllowedSourcesSuchAsHealthCheckersStillReachAFencedPort) {
  TestNetns::Inside inside(*host_);
  UniqueFd listener = tcp_listen("127.0.0.1", 31000);
  FenceOptions options;
  options.allow_sources = {"127.0.0.2/32", "fd00::/64"};  // the IPv6 one goes to ip6tables only
  IptablesDrainFence fence(options, true);
  ASSERT_TRUE(fence.apply({31000}));
  const auto from = [](const char* source) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in local{};
    local.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &local.sin_addr);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) return -1;
    sockaddr_in target{};
    target.sin_family = AF_INET;
    target.sin_port = htons(31000);
    ::inet_pton(AF_INET, "127.0.0.1", &target.sin_addr);
    return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&target), sizeof target) == 0 ? 0 : errno;
  };
  EXPECT_EQ(from("127.0.0.2"), 0) << "the health checker's address passes";
  EXPECT_EQ(from("127.0.0.3"), ECONNREFUSED) << "anyone else is refused";
  EXPECT_EQ(try_connect("127.0.0.1", 31000), ECONNREFUSED);
  const std::string v4 = run_program({"iptables-save", "-t", "filter"}, {}, std::chrono::seconds(5))->out;
  const std::string v6 = run_program({"ip6tables-save", "-t", "filter"}, {}, std::chrono::seconds(5))->out;
  EXPECT_NE(v4.find("-A SKOPOS -s 127.0.0.2/32 -j RETURN"), std::string::npos) << v4;
  EXPECT_EQ(v4.find("fd00::"), std::string::npos) << "each family takes its own sources";
  EXPECT_NE(v6.find("-A SKOPOS -s fd00::/64 -j RETURN"), std::string::npos) << v6;
  ASSERT_TRUE(fence.remove());
}

}  // namespace
}  // namespace skopos::driver
