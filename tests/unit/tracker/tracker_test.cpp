// Tracker's bookkeeping with a fake source and a fake /proc tree: which namespace a
// container is counted in, what happens when its pid is reused, how host-mode
// containers are attributed, and that unknown never reads as zero.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "tracker/metrics.h"
#include "tracker/tracker.h"
#include "tracker/snapshot_output.h"
#include "tracker_fakes.h"

namespace skopos::tracker {
namespace {

namespace fs = std::filesystem;

ContainerInfo container(const std::string& id, const std::string& name, pid_t pid, NetworkMode mode) {
  return running_container(id, name, pid, mode);
}

class TrackerTest : public ::testing::Test {
 protected:
  TrackerTest() {
    auto fake = std::make_unique<FakeSource>();
    source_ = fake.get();
    tracker_ = std::make_unique<Tracker>(std::move(fake), std::make_unique<ProcConnectionSource>(),
                                         Tracker::Options{proc_.root(), proc_.root() + "/no-run-netns"});
  }

  const StreamContainer* find(const TrackerSnapshot& snapshot, const std::string& name) {
    for (const StreamContainer& c : snapshot.containers) {
      if (c.name == name) return &c;
    }
    return nullptr;
  }

  FakeProc proc_;
  FakeSource* source_ = nullptr;
  std::unique_ptr<Tracker> tracker_;
};

// A source less than was asked for shows in the metrics (the alert rules watch these):
// /proc instead of BPF under --source auto, BPF without its pins.
TEST_F(TrackerTest, TheMetricsSayWhenTheSourceFellBackOrCouldNotPin) {
  const std::string plain = render_metrics(*tracker_, nullptr);
  EXPECT_NE(plain.find("\nskopos_tracker_bpf_fallback 0\n"), std::string::npos) << plain;
  EXPECT_NE(plain.find("\nskopos_tracker_bpf_unpinned 0\n"), std::string::npos) << plain;
  const std::string fell_back = render_metrics(*tracker_, nullptr, SourceHealth{.bpf_fallback = true});
  EXPECT_NE(fell_back.find("\nskopos_tracker_bpf_fallback 1\n"), std::string::npos) << fell_back;
  const std::string unpinned = render_metrics(*tracker_, nullptr, SourceHealth{.bpf_unpinned = true});
  EXPECT_NE(unpinned.find("\nskopos_tracker_bpf_unpinned 1\n"), std::string::npos) << unpinned;
}

TEST_F(TrackerTest, BridgeContainerIsCountedInItsOwnNamespace) {
  const std::uint64_t netns = proc_.add_process(4242, 777, "httpd");
  tracker_->rescan();
  ASSERT_TRUE(source_->tracking(netns));
  source_->set(netns, 8080, Direction::kInbound, 3);
  source_->set(netns, 5432, Direction::kOutbound, 2);

  DiscoveryUpdate update;
  update.containers.push_back(container("abc123", "web", 4242, NetworkMode::kBridge));
  tracker_->apply(update);
  const TrackerSnapshot snapshot = tracker_->snapshot();
  EXPECT_TRUE(snapshot.containers_known);
  const StreamContainer* web = find(snapshot, "web");
  ASSERT_NE(web, nullptr);
  EXPECT_TRUE(web->known);
  EXPECT_EQ(web->netns, netns);
  EXPECT_EQ(web->inbound, 3);
  EXPECT_EQ(web->outbound, 2);
  ASSERT_EQ(web->ports.size(), 2u);
  EXPECT_EQ(web->ports[0], (PortConnections{5432, 0, 2}));
  EXPECT_EQ(web->ports[1], (PortConnections{8080, 3, 0}));
  EXPECT_EQ(source_->handles[netns], proc_.root() + "/4242/ns/net");

  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(simdjson::padded_string(snapshot_json(snapshot))).get(doc), simdjson::SUCCESS);
  EXPECT_EQ(doc["version"].get_int64().value(), 1);
  EXPECT_EQ(std::string_view(doc["source"].get_string().value()), "bpf");
  EXPECT_EQ(doc.at_pointer("/containers/0/inbound").get_int64().value(), 3);
  EXPECT_EQ(doc.at_pointer("/containers/0/ports/1/port").get_int64().value(), 8080);
}

TEST_F(TrackerTest, AReusedPidMakesTheCountsUnknownNeverZero) {
  const std::uint64_t netns = proc_.add_process(4242, 777, "httpd");
  tracker_->rescan();
  source_->set(netns, 8080, Direction::kInbound, 3);
  DiscoveryUpdate update;
  update.containers.push_back(container("abc123", "web", 4242, NetworkMode::kBridge));
  tracker_->apply(update);
  ASSERT_TRUE(find(tracker_->snapshot(), "web")->known);

  // The container's process died and an unrelated process got its pid.
  proc_.set_start_time(4242, 99999, "intruder");
  tracker_->rescan();
  const TrackerSnapshot snapshot = tracker_->snapshot();
  const StreamContainer* web = find(snapshot, "web");
  ASSERT_NE(web, nullptr);
  EXPECT_FALSE(web->known);
  EXPECT_EQ(web->netns, 0u);
  EXPECT_NE(snapshot_json(snapshot).find(R"("known":false,"inbound":null,"outbound":null)"), std::string::npos);
}

TEST_F(TrackerTest, ContainersWithoutAProcessAreUnknown) {
  DiscoveryUpdate update;
  update.containers.push_back(container("nopid", "starting", 0, NetworkMode::kBridge));
  update.containers.push_back(container("gone", "vanished", 31337, NetworkMode::kBridge));
  tracker_->apply(update);
  const TrackerSnapshot snapshot = tracker_->snapshot();
  EXPECT_FALSE(find(snapshot, "starting")->known);
  EXPECT_FALSE(find(snapshot, "vanished")->known);
}

TEST_F(TrackerTest, HostModeContainersGetInboundOnTheirPortsOnly) {
  proc_.add_host_process(5000, 100, "server");
  tracker_->rescan();
  ASSERT_TRUE(source_->tracking(proc_.host()));
  source_->set(proc_.host(), 31000, Direction::kInbound, 4);
  source_->set(proc_.host(), 22, Direction::kInbound, 1);  // the host's sshd
  source_->set(proc_.host(), 443, Direction::kOutbound, 9);

  ContainerInfo info = container("hosty", "hostweb", 5000, NetworkMode::kHost);
  info.task_ports = {31000};
  DiscoveryUpdate update;
  update.containers.push_back(info);
  tracker_->apply(update);
  const TrackerSnapshot snapshot = tracker_->snapshot();
  const StreamContainer* hostweb = find(snapshot, "hostweb");
  ASSERT_NE(hostweb, nullptr);
  EXPECT_TRUE(hostweb->known);
  EXPECT_EQ(hostweb->netns, proc_.host());
  EXPECT_EQ(hostweb->inbound, 4);
  EXPECT_EQ(hostweb->outbound, -1) << "host mode: outbound not attributed (null), never 0";
  ASSERT_EQ(hostweb->ports.size(), 1u);
  EXPECT_EQ(hostweb->ports[0], (PortConnections{31000, 4, 0}));
}

TEST_F(TrackerTest, DiscoveryUpdatesAddRemoveAndSurviveAnUnavailableDaemon) {
  proc_.add_process(10, 1, "a");
  proc_.add_process(20, 2, "b");
  tracker_->rescan();
  DiscoveryUpdate list;
  list.containers = {container("a", "alpha", 10, NetworkMode::kBridge), container("b", "beta", 20, NetworkMode::kBridge)};
  tracker_->apply(list);
  EXPECT_EQ(tracker_->snapshot().containers.size(), 2u);

  DiscoveryUpdate gone;
  gone.kind = DiscoveryUpdate::Kind::kGone;
  gone.id = "a";
  tracker_->apply(gone);
  EXPECT_EQ(find(tracker_->snapshot(), "alpha"), nullptr);

  // Docker restarting must not make containers look drained or gone.
  DiscoveryUpdate down;
  down.kind = DiscoveryUpdate::Kind::kUnavailable;
  down.error = "connect: No such file or directory";
  tracker_->apply(down);
  TrackerSnapshot snapshot = tracker_->snapshot();
  EXPECT_FALSE(snapshot.containers_known);
  ASSERT_NE(find(snapshot, "beta"), nullptr);
  EXPECT_TRUE(find(snapshot, "beta")->known);

  // A full list replaces the set.
  proc_.add_process(30, 3, "c");
  DiscoveryUpdate relist;
  relist.containers = {container("c", "gamma", 30, NetworkMode::kBridge)};
  tracker_->apply(relist);
  snapshot = tracker_->snapshot();
  EXPECT_TRUE(snapshot.containers_known);
  ASSERT_EQ(snapshot.containers.size(), 1u);
  EXPECT_EQ(snapshot.containers[0].name, "gamma");
}

TEST_F(TrackerTest, VanishedNamespacesAreForgotten) {
  const std::uint64_t netns = proc_.add_process(77, 5, "job");
  tracker_->rescan();
  EXPECT_TRUE(source_->tracking(netns));
  proc_.remove_process(77);
  tracker_->rescan();
  EXPECT_FALSE(source_->tracking(netns));
  for (const NamespaceEntry& ns : tracker_->snapshot().namespaces) EXPECT_NE(ns.inode, netns);
}

TEST_F(TrackerTest, ConsistencyCheckReportsOnlyDifferencesThatPersist) {
  const std::uint64_t netns = proc_.add_process(4242, 777, "httpd");
  proc_.add_tables(4242);
  tracker_->rescan();
  ProcConnectionSource proc;
  NamespaceCounts truth;
  ASSERT_TRUE(proc.read(NamespaceHandle{netns, proc_.root() + "/4242/ns/net"}, truth));
  ASSERT_GT(truth.inbound(), 0u);
  for (const PortConnections& port : truth.ports()) {
    source_->set(netns, port.port, Direction::kInbound, port.inbound);
    source_->set(netns, port.port, Direction::kOutbound, port.outbound);
  }
  EXPECT_EQ(tracker_->check_consistency(), 0u);

  // The source loses a connection: the first check may be churn, the second is not.
  const PortConnections first = truth.ports().front();
  source_->set(netns, first.port, Direction::kInbound, first.inbound + 1);
  EXPECT_EQ(tracker_->check_consistency(), 0u);
  EXPECT_EQ(tracker_->check_consistency(), 1u);
  EXPECT_EQ(tracker_->stats().consistency_checks, 3u);
  EXPECT_EQ(tracker_->stats().consistency_mismatches, 1u);
}

TEST_F(TrackerTest, ConsistencyCheckInSlicesVisitsEveryNamespaceInTurn) {
  // On a dense host one check of every namespace held the event loop (and every
  // subscriber's update) for most of a second; the daemon now checks a slice at a time.
  const std::uint64_t bad = proc_.add_process(4242, 777, "httpd");
  proc_.add_tables(4242);
  proc_.add_process(4343, 778, "job");
  proc_.add_process(4444, 779, "job");
  tracker_->rescan();
  const std::size_t namespaces = tracker_->namespace_count();
  ASSERT_GE(namespaces, 3u);
  // The source disagrees with /proc about one namespace: it is found twice in a row only
  // once the slices have come round to it twice.
  source_->set(bad, 1, Direction::kInbound, 99);
  std::size_t found = 0;
  std::size_t calls = 0;
  for (; calls < 2 * namespaces && found == 0; ++calls) found += tracker_->check_consistency(1);
  EXPECT_EQ(found, 1u) << "each namespace comes round in turn, one per call";
  EXPECT_GT(calls, namespaces) << "the second look needs a full round";
  EXPECT_LE(calls, 2 * namespaces);
}

// The stream's "peers" question, answered from the container's own saved tables
// (testdata/netns.tcp{,6}): the established connections accepted on a port the
// namespace listens on, oldest (lowest inode) first; connections the container opened
// itself, and ones not yet accepted (inode 0), are not inbound peers.
TEST_F(TrackerTest, PeersAreTheInboundConnectionsOfTheContainersOwnTablesOldestFirst) {
  proc_.add_process(4242, 777, "httpd");
  proc_.add_tables(4242);
  tracker_->rescan();
  const std::string id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  DiscoveryUpdate update;
  update.containers.push_back(container(id, "web", 4242, NetworkMode::kBridge));
  tracker_->apply(update);

  PeersRequest every;
  every.id = id.substr(0, 12);  // a prefix names it too
  const PeersAnswer all = tracker_->inbound_peers(every);
  ASSERT_TRUE(all.known) << all.reason;
  EXPECT_EQ(all.id, id) << "the answer names the full id";
  EXPECT_EQ(all.total, 3u);
  EXPECT_EQ(all.peers, (std::vector<StreamPeer>{{8080, "127.0.0.1", 60766, 8460},
                                                {9090, "::1", 53238, 8463},
                                                {9090, "::ffff:127.0.0.1", 47170, 8465}}));

  PeersRequest one;
  one.id = id;
  one.ports = {9090};
  one.limit = 1;
  const PeersAnswer oldest = tracker_->inbound_peers(one);
  ASSERT_TRUE(oldest.known) << oldest.reason;
  EXPECT_EQ(oldest.total, 2u) << "both on 9090; the limit keeps the oldest";
  EXPECT_EQ(oldest.peers, (std::vector<StreamPeer>{{9090, "::1", 53238, 8463}}));

  PeersRequest stranger;
  stranger.id = "feedfacefeedface";
  const PeersAnswer none = tracker_->inbound_peers(stranger);
  EXPECT_FALSE(none.known);
  EXPECT_NE(none.reason.find("no running container"), std::string::npos) << none.reason;
  EXPECT_TRUE(none.peers.empty());

  // The pid now belongs to another process: unknown, never another process's peers.
  proc_.set_start_time(4242, 99999, "intruder");
  const PeersAnswer reused = tracker_->inbound_peers(every);
  EXPECT_FALSE(reused.known);
  EXPECT_TRUE(reused.peers.empty());
}

}  // namespace
}  // namespace skopos::tracker
