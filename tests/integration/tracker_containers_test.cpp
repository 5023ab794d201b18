// skopos-tracker against real containers, run by podman (runc) and discovered through
// its Docker Engine API: a bridge-mode container reached through a published port on
// 127.0.0.1 (DNAT), and a host-mode container. The tracker must attribute every
// connection to the right container -- also after the container restarts with a new
// process and namespace -- and return to exactly 0 when the connections close.
#include <signal.h>

#include <simdjson.h>

#include <chrono>
#include <functional>
#include <map>
#include <thread>

#include "podman.h"
#include "privileged_support.h"
#include "process.h"

namespace skopos::testing {
namespace {

struct ContainerView {
  bool known = false;
  std::string id;
  std::string mode;
  std::int64_t netns = 0;
  std::int64_t inbound = -1;
  std::int64_t conntrack_inbound = -1;
  std::map<std::uint64_t, std::uint64_t> inbound_by_port;
};

// name -> view, from one snapshot line.
std::map<std::string, ContainerView> parse_snapshot(const std::string& line, std::string& source) {
  std::map<std::string, ContainerView> views;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(simdjson::padded_string(line)).get(root) != simdjson::SUCCESS) {
    ADD_FAILURE() << "not JSON: " << line;
    return views;
  }
  std::string_view source_text;
  if (root["source"].get(source_text) == simdjson::SUCCESS) source = std::string(source_text);
  for (simdjson::dom::element c : root["containers"].get_array()) {
    ContainerView view;
    view.known = c["known"].get_bool().value();
    view.id = std::string(c["id"].get_string().value());
    view.mode = std::string(c["network_mode"].get_string().value());
    view.netns = static_cast<std::int64_t>(c["netns"].get_uint64().value());
    if (view.known) view.inbound = c["inbound"].get_int64().value();
    std::int64_t conntrack = 0;
    if (c["conntrack_inbound"].get(conntrack) == simdjson::SUCCESS) view.conntrack_inbound = conntrack;
    for (simdjson::dom::element port : c["ports"].get_array()) {
      const std::uint64_t in = port["inbound"].get_uint64().value();
      if (in > 0) view.inbound_by_port[port["port"].get_uint64().value()] = in;
    }
    views[std::string(c["name"].get_string().value())] = view;
  }
  return views;
}

class Tracker {
 public:
  explicit Tracker(const std::string& docker_socket)
      : process_({SKOPOS_TRACKER, "--docker-socket", docker_socket, "--print-interval", "100ms", "--rescan-interval",
                  "500ms", "--check-interval", "1s"}) {}

  // Reads snapshots until `done` holds (true) or 20 s pass (false); `last` is the last
  // snapshot seen.
  bool wait_for(const std::function<bool(const std::map<std::string, ContainerView>&)>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      auto line = process_.read_line(std::chrono::seconds(5));
      if (!line) return false;
      last = parse_snapshot(*line, source);
      if (done(last)) return true;
    }
    return false;
  }

  int stop() { return process_.stop(SIGTERM, std::chrono::seconds(15)); }

  std::map<std::string, ContainerView> last;
  std::string source;

 private:
  ChildProcess process_;
};

std::string describe(const std::map<std::string, ContainerView>& views) {
  std::string text;
  for (const auto& [name, view] : views) {
    text += name + "(" + view.mode + (view.known ? "" : ", unknown") + "): in=" + std::to_string(view.inbound) + " [";
    for (const auto& [port, count] : view.inbound_by_port) text += std::to_string(port) + ":" + std::to_string(count) + " ";
    text += "] ";
  }
  return text.empty() ? "(no containers)" : text;
}

std::function<bool(const std::map<std::string, ContainerView>&)> inbound_is(
    std::map<std::string, std::map<std::uint64_t, std::uint64_t>> want) {
  return [want](const std::map<std::string, ContainerView>& views) {
    for (const auto& [name, ports] : want) {
      auto it = views.find(name);
      if (it == views.end() || !it->second.known || it->second.inbound_by_port != ports) return false;
    }
    return true;
  };
}

std::vector<UniqueFd> connect_n(std::uint16_t port, int n) {
  std::vector<UniqueFd> fds;
  for (int i = 0; i < n; ++i) fds.push_back(tcp_connect("127.0.0.1", port));
  return fds;
}

TEST(Containers, TrackerAttributesConnectionsToBridgeAndHostContainersAcrossARestart) {
  SKOPOS_REQUIRE_ROOT();
  auto podman = PodmanService::start();
  ASSERT_TRUE(podman) << podman.error().message();
  const std::uint16_t published = free_loopback_port();
  const std::uint16_t host_port = free_loopback_port();
  const std::string bridge_name = "skopos-it-bridge-" + std::to_string(::getpid());
  const std::string host_name = "skopos-it-host-" + std::to_string(::getpid());

  auto bridge = (*podman)->run_detached({"--name", bridge_name, "-p", "127.0.0.1:" + std::to_string(published) + ":8080",
                                          "-e", "MARATHON_APP_ID=/web", PodmanService::kImage, "/bin/httpd", "-f",
                                          "-p", "8080"});
  ASSERT_TRUE(bridge) << bridge.error().message();
  auto host = (*podman)->run_detached({"--name", host_name, "--network", "host", PodmanService::kImage, "/bin/httpd",
                                        "-f", "-p", "127.0.0.1:" + std::to_string(host_port)});
  ASSERT_TRUE(host) << host.error().message();

  // Connections that exist before the tracker starts must be counted too.
  std::vector<UniqueFd> to_bridge = connect_n(published, 2);
  Tracker tracker((*podman)->socket());
  EXPECT_TRUE(tracker.wait_for(inbound_is({{bridge_name, {{8080, 2}}}, {host_name, {}}})))
      << describe(tracker.last);
  EXPECT_EQ(tracker.last[bridge_name].mode, "bridge");
  EXPECT_EQ(tracker.last[host_name].mode, "host");
  EXPECT_EQ(tracker.last[bridge_name].id, *bridge);

  // Bridge: counted in the container's namespace on the container port (8080), whatever
  // the published port. Host: counted on the port it listens on.
  auto more = connect_n(published, 3);
  std::vector<UniqueFd> to_host = connect_n(host_port, 4);
  EXPECT_TRUE(tracker.wait_for(inbound_is({{bridge_name, {{8080, 5}}}, {host_name, {{host_port, 4}}}})))
      << describe(tracker.last);
  // The host's conntrack table sees the same five flows DNAT'ed into the container.
  EXPECT_TRUE(tracker.wait_for([&](const std::map<std::string, ContainerView>& views) {
    auto it = views.find(bridge_name);
    return it != views.end() && it->second.conntrack_inbound == 5;
  })) << "conntrack_inbound " << tracker.last[bridge_name].conntrack_inbound;

  to_bridge.clear();
  more.clear();
  to_host.erase(to_host.begin());
  EXPECT_TRUE(tracker.wait_for(inbound_is({{bridge_name, {}}, {host_name, {{host_port, 3}}}})))
      << describe(tracker.last);
  EXPECT_EQ(tracker.last[bridge_name].inbound, 0) << "a known, drained container counts exactly 0";
  to_host.clear();

  // A restart gives the container a new process and a new namespace.
  const std::int64_t old_netns = tracker.last[bridge_name].netns;
  ASSERT_TRUE((*podman)->podman({"restart", "--time", "0", bridge_name}));
  EXPECT_TRUE(tracker.wait_for([&](const std::map<std::string, ContainerView>& views) {
    auto it = views.find(bridge_name);
    return it != views.end() && it->second.known && it->second.netns != old_netns;
  })) << describe(tracker.last);
  auto after_restart = connect_n(published, 2);
  EXPECT_TRUE(tracker.wait_for(inbound_is({{bridge_name, {{8080, 2}}}}))) << describe(tracker.last);
  after_restart.clear();
  EXPECT_TRUE(tracker.wait_for(inbound_is({{bridge_name, {}}}))) << describe(tracker.last);

  // A container that is removed disappears from the snapshot.
  ASSERT_TRUE((*podman)->podman({"rm", "--force", "--time", "0", host_name}));
  EXPECT_TRUE(tracker.wait_for([&](const std::map<std::string, ContainerView>& views) {
    return !views.contains(host_name);
  })) << describe(tracker.last);

  EXPECT_EQ(tracker.stop(), 0) << "SIGTERM is a clean exit";
}

}  // namespace
}  // namespace skopos::testing
