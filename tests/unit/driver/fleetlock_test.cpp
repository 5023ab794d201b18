// FleetLock as the protocol document specifies it (coreos/zincati,
// docs/development/fleetlock/protocol.md): the requests an updater sends, including the
// error cases -- an unknown endpoint, GET, the header missing, a body without
// client_params, a bad group, the wrong group, another client's id -- and the answers
// the agent's journal leads to: a drain asked for, draining, ready (200), waiting for the
// reboot, recovering, and back.
#include "driver/fleetlock.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "driver/drain.h"
#include "driver/journal.h"

namespace skopos::driver {
namespace {

HttpServerRequest call(const std::string& target, const std::string& id = "c988d2509fdf4cdcbed39037c56406fb",
                       const std::string& group = "worker") {
  HttpServerRequest request;
  request.method = "POST";
  request.target = target;
  request.headers["fleet-lock-protocol"] = "true";
  request.body = R"({"client_params":{"group":")" + group + R"(","id":")" + id + R"("}})";
  return request;
}

// "kind" of an error answer.
std::string kind(const HttpServerResponse& response) {
  const auto at = response.body.find("\"kind\":\"");
  if (at == std::string::npos) return "";
  const auto from = at + 8;
  return response.body.substr(from, response.body.find('"', from) - from);
}

TEST(FleetLockProtocol, RequestsOutsideTheProtocolAreRefusedWithAKindAndAValue) {
  EXPECT_EQ(parse_fleetlock(call("/v1/lock")).error().status, 404U);
  HttpServerRequest get = call("/v1/pre-reboot");
  get.method = "GET";
  EXPECT_EQ(parse_fleetlock(get).error().status, 405U);
  HttpServerRequest no_header = call("/v1/pre-reboot");
  no_header.headers.clear();
  const HttpServerResponse missing = parse_fleetlock(no_header).error();
  EXPECT_EQ(missing.status, 400U);
  EXPECT_EQ(kind(missing), "missing_header");
  EXPECT_EQ(missing.content_type, "application/json");
  EXPECT_NE(missing.body.find("\"value\":\"the header 'fleet-lock-protocol: true' is required\""), std::string::npos);
  no_header.headers["fleet-lock-protocol"] = "false";
  EXPECT_EQ(kind(parse_fleetlock(no_header).error()), "missing_header");
  for (const char* body :
       {"not json", "{}", R"({"client_params":{"id":"a"}})", R"({"client_params":{"group":"g"}})",
        R"({"client_params":{"id":"","group":"g"}})", R"({"client_params":{"id":"a","group":""}})",
        R"({"client_params":{"id":"a","group":"a b"}})", R"({"client_params":{"id":1,"group":"g"}})"}) {
    HttpServerRequest bad = call("/v1/steady-state");
    bad.body = body;
    const auto parsed = parse_fleetlock(bad);
    ASSERT_FALSE(parsed) << body;
    EXPECT_EQ(parsed.error().status, 400U) << body;
    EXPECT_EQ(kind(parsed.error()), "invalid_body") << body;
  }
  const auto good = parse_fleetlock(call("/v1/steady-state", "node-1", "workers.eu-1"));
  ASSERT_TRUE(good);
  EXPECT_EQ(good->op, FleetLockCall::Op::kSteadyState);
  EXPECT_EQ(good->id, "node-1");
  EXPECT_EQ(good->group, "workers.eu-1");
}

class FleetLockServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    service_.set_wake([this] { ++wakes_; });
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  // The journal as a drain with `trigger` leaves it at `phase`, written in `boot`.
  void journal(const std::string& trigger, const std::string& phase, const std::string& boot) {
    std::filesystem::remove(dir_ + "/journal");
    auto opened = Journal::open(dir_ + "/journal");
    ASSERT_TRUE(opened);
    DrainFacts facts;
    facts.kind = DrainKind::kReboot;
    facts.tier = "worker";
    facts.lock = "reboot";
    facts.trigger = trigger;
    for (const std::string& entered : {std::string("host-lock"), phase}) {
      ASSERT_TRUE(opened->record(JournalEntry{"d-1", entered, 7, boot, 1796480000, facts.to_json()}));
    }
  }
  std::string dir_ = "/tmp/skopos-fleetlock-test-" + std::to_string(::getpid());
  int wakes_ = 0;
  FleetLockService service_{{"worker", dir_ + "/journal", "boot-1"}};
};

TEST_F(FleetLockServiceTest, TheFirstPreRebootAsksForADrainAndOnlyItsClientOwnsIt) {
  HttpServerResponse answer = service_.handle(call("/v1/pre-reboot", "node-a"));
  EXPECT_EQ(answer.status, 503U) << "retried by the updater until the host is drained";
  EXPECT_EQ(kind(answer), "draining");
  EXPECT_EQ(wakes_, 1);
  (void)service_.handle(call("/v1/pre-reboot", "node-a"));
  EXPECT_EQ(wakes_, 1) << "the updater's polling does not rush the agent: one wake per request";
  answer = service_.handle(call("/v1/pre-reboot", "node-b"));
  EXPECT_EQ(answer.status, 409U);
  EXPECT_EQ(kind(answer), "failed_lock_owned");
  answer = service_.handle(call("/v1/pre-reboot", "node-a", "default"));
  EXPECT_EQ(answer.status, 409U);
  EXPECT_EQ(kind(answer), "wrong_group");
  EXPECT_NE(answer.body.find("serves group 'worker', not 'default'"), std::string::npos) << answer.body;
  // The updater changed its mind before the agent saw the request: withdrawn.
  answer = service_.handle(call("/v1/steady-state", "node-a"));
  EXPECT_EQ(answer.status, 200U);
  EXPECT_EQ(service_.requested(), "");
  // Once the agent is taking it up, an unlock waits for the drain it started.
  (void)service_.handle(call("/v1/pre-reboot", "node-a"));
  EXPECT_EQ(service_.requested(), "fleetlock:node-a");
  answer = service_.handle(call("/v1/steady-state", "node-a"));
  EXPECT_EQ(answer.status, 503U);
  EXPECT_EQ(kind(answer), "draining");
}

TEST_F(FleetLockServiceTest, PreRebootSucceedsOnlyOnceDrainedAndSteadyStateOnlyOnceRecovered) {
  (void)service_.handle(call("/v1/pre-reboot", "node-a"));
  journal("fleetlock:node-a", "fence", "boot-1");
  HttpServerResponse answer = service_.handle(call("/v1/pre-reboot", "node-a"));
  EXPECT_EQ(answer.status, 503U);
  EXPECT_NE(answer.body.find("draining: phase fence"), std::string::npos) << answer.body;
  EXPECT_EQ(kind(service_.handle(call("/v1/pre-reboot", "node-b"))), "failed_lock_owned");

  EXPECT_EQ(service_.handle(call("/v1/steady-state", "node-b")).status, 200U) << "node-b holds nothing";

  journal("fleetlock:node-a", "reboot", "boot-1");
  answer = service_.handle(call("/v1/pre-reboot", "node-a"));
  EXPECT_EQ(answer.status, 503U) << "journaled, but the slot's check at the reboot step has not passed yet";
  service_.ready("fleetlock:node-a");  // drained, the slot checked: ready
  EXPECT_EQ(service_.handle(call("/v1/pre-reboot", "node-a")).status, 200U);
  EXPECT_EQ(service_.handle(call("/v1/pre-reboot", "node-a")).status, 200U) << "recursive";
  answer = service_.handle(call("/v1/steady-state", "node-a"));
  EXPECT_EQ(answer.status, 409U);
  EXPECT_EQ(kind(answer), "reboot_pending");

  // After the boot: recovering until the journal is finished.
  FleetLockService after({"worker", dir_ + "/journal", "boot-2"});
  answer = after.handle(call("/v1/steady-state", "node-a"));
  EXPECT_EQ(answer.status, 503U);
  EXPECT_EQ(kind(answer), "recovering");
  journal("fleetlock:node-a", "unfence", "boot-2");
  EXPECT_EQ(kind(after.handle(call("/v1/steady-state", "node-a"))), "recovering");
  std::filesystem::remove(dir_ + "/journal");
  EXPECT_EQ(after.handle(call("/v1/steady-state", "node-a")).status, 200U);
}

TEST_F(FleetLockServiceTest, AnotherDrainInProgressRefusesTheLockButNotTheUnlock) {
  journal("rolling:r-1", "wait", "boot-1");
  HttpServerResponse answer = service_.handle(call("/v1/pre-reboot", "node-a"));
  EXPECT_EQ(answer.status, 409U);
  EXPECT_EQ(kind(answer), "failed_lock_busy");
  EXPECT_NE(answer.body.find("a REBOOT drain for 'rolling:r-1' is in progress (phase wait)"), std::string::npos)
      << answer.body;
  EXPECT_EQ(service_.handle(call("/v1/steady-state", "node-a")).status, 200U) << "this client holds nothing";
  EXPECT_EQ(wakes_, 0);
}

}  // namespace
}  // namespace skopos::driver
