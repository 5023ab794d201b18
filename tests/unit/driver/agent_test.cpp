// The reboot agent's decision loop against the drain's fakes (drain_fakes.h), a scripted
// trigger source and a recording observer: a request drains, reboots and -- after the
// boot -- recovers; the request is used up once the reboot is journaled; a drain
// interrupted by a crash is resumed with the trigger it recorded; a drain started by
// hand, an unreadable journal or another driver holding the host hold reboots back; a
// stop ends the drain at a safe point; run() waits as long as each outcome says.
#include "driver/agent.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <filesystem>
#include <fstream>

#include "drain_fakes.h"
#include "driver/local_drain_lock.h"

namespace skopos::driver {
namespace {

using namespace std::chrono_literals;
using namespace fakes;

// Requests from a script; each use of a request is logged into the World with the
// journal's phase, so "consumed before the reboot command" is visible in one order.
class ScriptedTriggers : public RebootTriggers {
 public:
  explicit ScriptedTriggers(World& world) : w_(world) {}
  Result<std::string, std::string> requested() override {
    if (unreachable) return unexpected(std::string("rolling reboot: etcd unavailable"));
    return request;
  }
  Result<void, std::string> consumed(const std::string& trigger) override {
    w_.call("consumed:" + trigger);
    request.clear();
    return {};
  }
  Result<void, std::string> completed(const std::string& trigger) override {
    w_.call("completed:" + trigger);
    return {};
  }
  Result<void, std::string> failed(const std::string& trigger, const std::string& why) override {
    w_.call("failed:" + trigger + ": " + why);
    return {};
  }
  void wait(std::chrono::milliseconds timeout, const std::atomic<bool>& stop, FunctionRef<void()> alive) override {
    alive();
    waits.push_back(timeout);
    std::this_thread::sleep_for(std::min(timeout, time_per_wait));
    // What happens in the world between turns: the script's next step; without one,
    // `stop_after` more plain waits, then the end of the test.
    if (!between_turns.empty()) {
      const std::function<void()> step = between_turns.front();
      between_turns.pop_front();
      step();
    } else if (stop_after_waits_ > 0) {
      --stop_after_waits_;
    } else if (!stop.load()) {
      w_.stop = true;
    }
  }
  std::string describe() const override { return "a script"; }

  void stop_after(int plain_waits) { stop_after_waits_ = plain_waits; }

  std::string request;
  bool unreachable = false;
  std::chrono::milliseconds time_per_wait{0};  // how long each wait takes (it may end early)
  std::vector<std::chrono::milliseconds> waits;
  std::deque<std::function<void()>> between_turns;

 private:
  World& w_;
  int stop_after_waits_ = 0;
};

class RecordingObserver : public AgentObserver {
 public:
  void status(const std::string& text) override { lines.push_back("status: " + text); }
  void warning(const std::string& text) override { lines.push_back("warning: " + text); }
  void error(const std::string& text) override { lines.push_back("error: " + text); }
  void alive() override { ++alive_calls; }
  void drain_started(const DrainOptions& options) override {
    started.push_back(options);
    busy = true;
  }
  void drain_event(const DrainEvent& event) override {
    if (event.type == DrainEvent::Type::kPhase) phases.push_back(drain_phase_name(event.phase));
  }
  void drain_finished(const Result<DrainResult, DrainError>& result) override {
    busy = false;
    finished.push_back(result ? drain_phase_name(result->reached) : "error: " + result.error().message);
  }
  void fence_without_drain(const std::optional<std::vector<std::uint16_t>>& ports) override { fences.push_back(ports); }
  bool saw(const std::string& prefix) const {
    return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) { return l.rfind(prefix, 0) == 0; });
  }

  std::vector<std::string> lines;
  std::vector<DrainOptions> started;
  std::vector<std::string> phases;
  std::vector<std::string> finished;
  std::vector<std::optional<std::vector<std::uint16_t>>> fences;
  int alive_calls = 0;
  bool busy = false;
};

class AgentTest : public FakeWorldTest {
 protected:
  AgentOptions options() const {
    AgentOptions o;
    o.journal_path = world_.journal_path;
    o.recheck = 60s;
    o.reboot_wait = 10min;
    o.drain.hostname = "host-a";
    o.drain.tier = Tier::kWorker;
    return o;
  }
  // A new agent each time, as after a restart of the process (or a boot).
  AgentTurn turn() {
    Agent agent(systems(), options(), triggers_, observer_, world_.stop);
    return agent.run_once();
  }
  // A drain run by hand (`skopos drain`), as the CLI runs it.
  Result<DrainResult, DrainError> drain_by_hand(DrainKind kind) {
    auto journal = Journal::open(world_.journal_path);
    EXPECT_TRUE(journal);
    DrainOptions o;
    o.kind = kind;
    o.hostname = "host-a";
    Drain drain(systems(), *journal, o, [](const DrainEvent&) {}, world_.stop);
    return drain.run();
  }
  ScriptedTriggers triggers_{world_};
  RecordingObserver observer_;
};

TEST_F(AgentTest, NoRequestIsAnIdleTurnThatTouchesNothing) {
  EXPECT_EQ(turn(), AgentTurn::kIdle);
  EXPECT_TRUE(world_.side_effects().empty());
  EXPECT_TRUE(observer_.started.empty());
}

// A fence while no drain holds the host out refuses new connections for no reason
// anyone tracks (a drain whose journal is gone, a fence applied by hand): every turn
// without a drain looks, says what it found, and touches nothing; a fence it cannot read
// is unknown, never "none".
TEST_F(AgentTest, ATurnWithoutADrainReportsAFenceNothingAccountsFor) {
  fence_.ports = {31000, 31001};
  EXPECT_EQ(turn(), AgentTurn::kIdle);
  ASSERT_EQ(observer_.fences.size(), 1u);
  EXPECT_EQ(observer_.fences[0], (std::vector<std::uint16_t>{31000, 31001}));
  EXPECT_TRUE(world_.side_effects().empty()) << "reported, never removed: a person decides";

  world_.fail["fenced"] = DrainError{DrainError::Kind::kFailed, "iptables-save: exit 4"};
  EXPECT_EQ(turn(), AgentTurn::kIdle);
  ASSERT_EQ(observer_.fences.size(), 2u);
  EXPECT_EQ(observer_.fences[1], std::nullopt);
  EXPECT_TRUE(observer_.saw("warning: fence: cannot read it: ")) << "unknown is said";

  fence_.ports.clear();
  EXPECT_EQ(turn(), AgentTurn::kIdle);
  EXPECT_EQ(observer_.fences.back(), std::vector<std::uint16_t>{});

  // iptables is read at most once per recheck: a second turn of the same agent right
  // after does not look (the failure armed here is not consumed).
  {
    fence_.ports = {31000};
    Agent agent(systems(), options(), triggers_, observer_, world_.stop);
    EXPECT_EQ(agent.run_once(), AgentTurn::kIdle);
    const std::size_t looked = observer_.fences.size();
    world_.fail["fenced"] = DrainError{DrainError::Kind::kFailed, "iptables-save: exit 4"};
    EXPECT_EQ(agent.run_once(), AgentTurn::kIdle);
    EXPECT_EQ(observer_.fences.size(), looked) << "looked again within the recheck";
    world_.fail.erase("fenced");
    fence_.ports.clear();
  }

  // A drain by hand that holds the host out owns its fence: 0, never "left behind".
  ASSERT_TRUE(drain_by_hand(DrainKind::kDrain));
  ASSERT_FALSE(fence_.ports.empty());
  EXPECT_EQ(turn(), AgentTurn::kBlocked);
  EXPECT_EQ(observer_.fences.back(), std::vector<std::uint16_t>{});
}

TEST_F(AgentTest, ARequestDrainsAndRebootsUsingTheRequestUpOnceTheRebootIsJournaled) {
  triggers_.request = "rolling:r-1";
  EXPECT_EQ(turn(), AgentTurn::kRebooting);
  ASSERT_EQ(observer_.started.size(), 1U);
  EXPECT_EQ(observer_.started[0].kind, DrainKind::kReboot) << "the agent's drains are REBOOT drains";
  EXPECT_EQ(observer_.started[0].trigger, "rolling:r-1");
  // The request is used up after the reboot phase is journaled and before the command.
  const auto consumed = std::find(world_.calls.begin(), world_.calls.end(), "consumed:rolling:r-1@reboot");
  const auto reboot = std::find(world_.calls.begin(), world_.calls.end(), "reboot@reboot");
  ASSERT_NE(consumed, world_.calls.end());
  ASSERT_NE(reboot, world_.calls.end());
  EXPECT_LT(consumed, reboot);
  EXPECT_EQ(world_.side_effects().front(), "host_lock@host-lock");
  EXPECT_EQ(world_.side_effects().back(), "reboot@reboot");
  EXPECT_TRUE(observer_.saw("status: reboot requested (rolling:r-1)"));
  EXPECT_TRUE(locks_.held_) << "the tier's slot is held through the reboot";
  EXPECT_FALSE(world_.called("completed:rolling:r-1"));
}

TEST_F(AgentTest, AfterTheBootItRecoversAndTellsTheTriggersTheHostIsBack) {
  triggers_.request = "rolling:r-1";
  ASSERT_EQ(turn(), AgentTurn::kRebooting);
  world_.boot_id = "boot-2";  // the machine rebooted; systemd starts the agent again
  world_.calls.clear();
  EXPECT_EQ(turn(), AgentTurn::kRecovered);
  EXPECT_EQ(world_.side_effects(), (std::vector<std::string>{"remove@unfence", "bring_up@bring-up",
                                                             "release@release-locks", "host_unlock@release-locks"}));
  EXPECT_TRUE(world_.called("completed:rolling:r-1"));
  EXPECT_FALSE(world_.called("reboot")) << "one reboot per request";
  EXPECT_FALSE(locks_.held_);
  EXPECT_TRUE(journal_done());
  EXPECT_TRUE(observer_.saw("status: back in service after the reboot"));
  // And with the request used up, the next turn is idle.
  world_.calls.clear();
  EXPECT_EQ(turn(), AgentTurn::kIdle);
  EXPECT_TRUE(world_.side_effects().empty());
}

TEST_F(AgentTest, ADrainInterruptedByACrashIsResumedWithItsTriggerEvenWhenNoRequestIsLeft) {
  triggers_.request = "file";
  world_.fail["stop"] = DrainError{DrainError::Kind::kFailed, "Docker: connection refused"};
  EXPECT_EQ(turn(), AgentTurn::kFailed);
  EXPECT_EQ(world_.phase(), "stop");
  // It says when it tries again (the retry pause, not the recheck), and the request's
  // source hears of the failed try (rolling-reboot --status shows it).
  EXPECT_TRUE(observer_.saw("status: drain failed: Docker: connection refused; trying again in 10 s"));
  EXPECT_TRUE(world_.called("failed:file: Docker: connection refused"));
  // The request is gone (the file was removed by hand, say): the journal still says a
  // reboot drain is under way, and it is finished for the trigger it recorded.
  triggers_.request.clear();
  world_.calls.clear();
  EXPECT_EQ(turn(), AgentTurn::kRebooting);
  ASSERT_EQ(observer_.started.size(), 2U);
  EXPECT_EQ(observer_.started[1].trigger, "file");
  EXPECT_EQ(world_.side_effects(),
            (std::vector<std::string>{"stop@stop", "release_tasks@release-tasks", "take_down@take-down", "reboot@reboot"}))
      << "resumed at the journaled phase, not started again";
  EXPECT_NE(std::find(world_.calls.begin(), world_.calls.end(), "consumed:file@reboot"), world_.calls.end());
}

TEST_F(AgentTest, ADrainStartedByHandHoldsRebootsBackUntilItIsUndrained) {
  ASSERT_TRUE(drain_by_hand(DrainKind::kDrain));
  triggers_.request = "file";
  world_.calls.clear();
  EXPECT_EQ(turn(), AgentTurn::kBlocked);
  EXPECT_TRUE(world_.side_effects().empty());
  EXPECT_TRUE(observer_.saw("status: a DRAIN drain is in progress: no reboots until it is undrained"));
  // Said once, not at every turn.
  Agent agent(systems(), options(), triggers_, observer_, world_.stop);
  ASSERT_EQ(agent.run_once(), AgentTurn::kBlocked);
  ASSERT_EQ(agent.run_once(), AgentTurn::kBlocked);
  EXPECT_EQ(std::count_if(observer_.lines.begin(), observer_.lines.end(),
                          [](const std::string& l) { return l.find("in progress") != std::string::npos; }),
            2)
      << "once by the first agent, once by the second";
}

TEST_F(AgentTest, AJournalThatCannotBeResumedBlocksTheAgentAndIsNotTouched) {
  // Written by a newer version, say: a phase this one does not know.
  const std::string entry =
      "{\"drain_id\":\"d-1\",\"phase\":\"teleport\",\"fencing_token\":0,\"boot_id\":\"boot-1\",\"at\":1,"
      "\"facts\":{\"kind\":\"REBOOT\",\"trigger\":\"file\"}}\n";
  {
    std::ofstream(world_.journal_path) << entry;
  }
  triggers_.request = "file";
  EXPECT_EQ(turn(), AgentTurn::kBlocked);
  EXPECT_TRUE(world_.side_effects().empty());
  EXPECT_TRUE(observer_.saw("error: ")) << (observer_.lines.empty() ? "" : observer_.lines.back());
  std::ifstream in(world_.journal_path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, entry);
}

TEST_F(AgentTest, AnotherDriverHoldingTheHostMakesTheTurnBusyWithoutADrain) {
  auto held = LocalDrainLock::take(world_.journal_path, false, 0ms);
  ASSERT_TRUE(held) << held.error().message();
  triggers_.request = "file";
  EXPECT_EQ(turn(), AgentTurn::kBusy);
  EXPECT_TRUE(world_.side_effects().empty());
  EXPECT_TRUE(observer_.saw("warning: ")) << "names the driver holding it";
}

TEST_F(AgentTest, AnUnreachableTriggerSourceIsAWarningAndAnIdleTurn) {
  triggers_.unreachable = true;
  EXPECT_EQ(turn(), AgentTurn::kIdle);
  EXPECT_TRUE(observer_.saw("warning: rolling reboot: etcd unavailable"));
  EXPECT_TRUE(world_.side_effects().empty());
}

TEST_F(AgentTest, AStopDuringTheWaitEndsTheDrainAtASafePointAndTheNextAgentResumes) {
  triggers_.request = "file";
  connections_.stop_during_wait = true;
  Agent agent(systems(), options(), triggers_, observer_, world_.stop);
  agent.run();  // returns by itself: the stop came during the wait
  EXPECT_EQ(world_.phase(), "wait");
  EXPECT_FALSE(world_.called("stop")) << "no container stopped after the stop";
  EXPECT_TRUE(triggers_.waits.empty()) << "a stopped agent does not wait for the next turn";
  ASSERT_EQ(observer_.finished.size(), 1U);
  EXPECT_NE(observer_.finished[0].find("error: "), std::string::npos);
  EXPECT_FALSE(observer_.busy);
  // Started again (systemd restarts it), it goes on from the wait.
  world_.stop = false;
  connections_.stop_during_wait = false;
  world_.calls.clear();
  EXPECT_EQ(turn(), AgentTurn::kRebooting);
  EXPECT_FALSE(world_.called("host_lock")) << "earlier phases are not redone";
  EXPECT_FALSE(world_.called("announce"));
  EXPECT_TRUE(world_.called("stop"));
}

TEST_F(AgentTest, RunWaitsTheRecheckWhenIdleAndTheRebootWaitAfterTheRebootCommand) {
  Agent agent(systems(), options(), triggers_, observer_, world_.stop);
  // Turn 1: idle. Then a request arrives; turn 2 reboots; the shutdown never comes.
  triggers_.between_turns.push_back([&] { triggers_.request = "file"; });
  triggers_.between_turns.push_back([&] { world_.stop = true; });
  agent.run();
  ASSERT_EQ(triggers_.waits.size(), 2U);
  EXPECT_EQ(triggers_.waits[0], 60s) << "idle: the recheck";
  EXPECT_GT(triggers_.waits[1], 9min) << "after the reboot command: the reboot wait";
  EXPECT_GE(observer_.alive_calls, 2) << "signs of life while waiting";
  EXPECT_TRUE(world_.called("reboot"));
}

TEST_F(AgentTest, AfterTheRebootWaitPassesWithoutAShutdownItSaysSoAndRebootsAgain) {
  triggers_.request = "file";
  AgentOptions o = options();
  o.reboot_wait = 120ms;
  Agent agent(systems(), o, triggers_, observer_, world_.stop);
  triggers_.time_per_wait = 50ms;
  triggers_.stop_after(4);  // three waits pass the reboot wait; one more after the second reboot
  agent.run();
  EXPECT_TRUE(observer_.saw("error: still running 0.1 s after the reboot command")) << observer_.lines.back();
  EXPECT_EQ(std::count_if(world_.calls.begin(), world_.calls.end(),
                          [](const std::string& c) { return c.rfind("reboot@", 0) == 0; }),
            2)
      << "the same boot after the reboot phase runs the reboot again";
}

// Found by the fleet simulation: the triggers wake the agent when the rolling request
// may have changed (or their watch fails and is re-armed); during the reboot wait each
// such wake ran the reboot command again.
TEST_F(AgentTest, WakesDuringTheRebootWaitDoNotRunTheRebootAgain) {
  triggers_.request = "file";
  Agent agent(systems(), options(), triggers_, observer_, world_.stop);
  for (int i = 0; i < 3; ++i) triggers_.between_turns.push_back([] {});  // woken early, three times
  triggers_.between_turns.push_back([&] { world_.stop = true; });         // then the shutdown
  agent.run();
  EXPECT_EQ(std::count_if(world_.calls.begin(), world_.calls.end(),
                          [](const std::string& c) { return c.rfind("reboot@", 0) == 0; }),
            1);
  EXPECT_FALSE(observer_.saw("error: still running"));
}

TEST_F(AgentTest, AFailingDrainIsTriedAgainSoonThenLessOftenUpToTheRecheck) {
  triggers_.request = "file";
  marathon_.shortfalls = {AppShortfall{"/web", 1, 0, 2, "", 0}};  // the budget refuses, every time
  Agent agent(systems(), options(), triggers_, observer_, world_.stop);
  triggers_.stop_after(4);
  agent.run();
  EXPECT_EQ(triggers_.waits, std::vector<std::chrono::milliseconds>({10s, 20s, 40s, 60s, 60s}));
  EXPECT_FALSE(world_.called("reboot"));
}

// A start gate that answers from a script: one verdict per check, the last repeated.
struct ScriptedGate {
  std::vector<StartGateVerdict> verdicts;
  std::size_t checks = 0;
  StartGate gate() {
    return [this] { return verdicts[std::min(checks++, verdicts.size() - 1)]; };
  }
};

StartGateVerdict closed_for(std::chrono::seconds opens_in) {
  return {false, "outside window nights (tier): opens Tue 01:00 UTC, in 5 s",
          std::chrono::system_clock::now() + opens_in, "window"};
}

// A health gate is checked every second; a query's value may change at each check. The
// same gate says its new reason at most every 10 s; another gate at once.
TEST_F(AgentTest, TheSameGateRetellsAChangingReasonAtMostEveryTenSecondsAnotherGateAtOnce) {
  triggers_.request = "file";
  ScriptedGate gate{{{false, "Prometheus query 'backlog > 5' returns backlog = 9", std::nullopt, "query"},
                     {false, "Prometheus query 'backlog > 5' returns backlog = 10", std::nullopt, "query"},
                     {false, "Prometheus query 'backlog > 5' returns backlog = 11", std::nullopt, "query"},
                     {false, "firing alert HostsUnhealthy{severity=\"critical\"}", std::nullopt, "alerts"}}};
  AgentOptions o = options();
  o.drain.start_gate = gate.gate();
  Agent agent(systems(), o, triggers_, observer_, world_.stop);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(agent.run_once(), AgentTurn::kGated);
  std::vector<std::string> told;
  std::copy_if(observer_.lines.begin(), observer_.lines.end(), std::back_inserter(told),
               [](const std::string& line) { return line.rfind("status: reboot requested, waiting: ", 0) == 0; });
  EXPECT_EQ(told, std::vector<std::string>(
                      {"status: reboot requested, waiting: Prometheus query 'backlog > 5' returns backlog = 9",
                       "status: reboot requested, waiting: firing alert HostsUnhealthy{severity=\"critical\"}"}));
}

TEST_F(AgentTest, AClosedStartGateKeepsTheHostOutOfTheLineAndSaysWhyOnce) {
  triggers_.request = "rolling:r-1";
  ScriptedGate gate{{closed_for(5s)}};
  AgentOptions o = options();
  o.drain.start_gate = gate.gate();
  Agent agent(systems(), o, triggers_, observer_, world_.stop);
  EXPECT_EQ(agent.run_once(), AgentTurn::kGated);
  EXPECT_EQ(agent.run_once(), AgentTurn::kGated);
  EXPECT_TRUE(observer_.started.empty()) << "no drain while the gate is closed";
  EXPECT_TRUE(world_.side_effects().empty());
  EXPECT_TRUE(world_.called("leave_lines")) << "out of the tier's line while it waits";
  const auto told = std::count_if(observer_.lines.begin(), observer_.lines.end(), [](const std::string& line) {
    return line == "status: reboot requested, waiting: outside window nights (tier): opens Tue 01:00 UTC, in 5 s";
  });
  EXPECT_EQ(told, 1) << "the same reason is said once, not every turn";
  EXPECT_FALSE(world_.called("failed:rolling:r-1")) << "a closed gate is a wait, not a failed try";
}

TEST_F(AgentTest, AnOpenStartGateLetsTheDrainRun) {
  triggers_.request = "rolling:r-1";
  ScriptedGate gate{{{true, "inside window nights (tier) until Tue 05:00 UTC, in 4 h", std::nullopt, ""}}};
  AgentOptions o = options();
  o.drain.start_gate = gate.gate();
  Agent agent(systems(), o, triggers_, observer_, world_.stop);
  EXPECT_EQ(agent.run_once(), AgentTurn::kRebooting);
  EXPECT_EQ(gate.checks, 3U) << "the agent before the drain, the drain before the line and with the slot held";
}

TEST_F(AgentTest, AGateThatClosesWhileTheHostWaitsForItsSlotGivesTheSlotBackAndChangesNothing) {
  triggers_.request = "rolling:r-1";
  // Open for the agent and for the drain before the line, closed once the slot is held.
  ScriptedGate gate{
      {{true, "inside window", std::nullopt, ""}, {true, "inside window", std::nullopt, ""}, closed_for(60s)}};
  AgentOptions o = options();
  o.drain.start_gate = gate.gate();
  Agent agent(systems(), o, triggers_, observer_, world_.stop);
  EXPECT_EQ(agent.run_once(), AgentTurn::kGated);
  EXPECT_FALSE(locks_.held_) << "the slot went back";
  EXPECT_TRUE(world_.called("acquire"));
  EXPECT_FALSE(world_.called("announce")) << "nothing past the slot ran";
  EXPECT_FALSE(world_.called("failed:rolling:r-1"));
  auto seen = Journal::inspect(world_.journal_path);
  ASSERT_TRUE(seen);
  std::string problem;
  EXPECT_FALSE(Drain::in_progress(*seen, &problem)) << "the journal holds no drain in progress";
  EXPECT_EQ(triggers_.request, "rolling:r-1") << "the request stays for the next window";
}

TEST_F(AgentTest, AGatedDrainWhoseLocksCouldNotGoBackIsWoundUpLaterWithoutMarkingItsTurnDone) {
  triggers_.request = "rolling:r-1";
  ScriptedGate gate{{{true, "inside window", std::nullopt, ""},
                     {true, "inside window", std::nullopt, ""},
                     closed_for(60s),
                     closed_for(60s)}};
  AgentOptions o = options();
  o.drain.start_gate = gate.gate();
  world_.fail["release"] = DrainError{DrainError::Kind::kFailed, "etcd: no leader"};  // once
  {
    Agent agent(systems(), o, triggers_, observer_, world_.stop);
    EXPECT_EQ(agent.run_once(), AgentTurn::kGated);
  }
  EXPECT_TRUE(locks_.held_) << "giving the slot back failed";
  // The next turn finds the drain in the journal and winds it up: the slot goes back,
  // and the host, which never rebooted, is not reported done.
  Agent agent(systems(), o, triggers_, observer_, world_.stop);
  EXPECT_EQ(agent.run_once(), AgentTurn::kFailed);
  EXPECT_FALSE(locks_.held_);
  EXPECT_FALSE(world_.called("completed:rolling:r-1")) << "no reboot happened: the turn is not done";
  EXPECT_TRUE(host_.notified.empty()) << "nothing to announce: the host never left service";
  EXPECT_TRUE(observer_.saw("status: gave back the locks of a drain that ended before its reboot"));
  EXPECT_EQ(triggers_.request, "rolling:r-1");
}

TEST_F(AgentTest, AfterTheBootTheSlotGoesBackOnlyOnceTheHealthGatesOpen) {
  triggers_.request = "rolling:r-1";
  ScriptedGate release{{{false, "firing alert HostsUnhealthy{severity=\"critical\"}", std::nullopt, ""},
                        {false, "firing alert HostsUnhealthy{severity=\"critical\"}", std::nullopt, ""},
                        {true, "no firing alerts", std::nullopt, ""}}};
  AgentOptions o = options();
  o.drain.release_gate = release.gate();
  o.drain.recover_timeout = 10s;
  {
    Agent agent(systems(), o, triggers_, observer_, world_.stop);
    ASSERT_EQ(agent.run_once(), AgentTurn::kRebooting);
  }
  EXPECT_EQ(release.checks, 0U) << "not before the host went out";
  world_.boot_id = "boot-2";
  Agent agent(systems(), o, triggers_, observer_, world_.stop);
  EXPECT_EQ(agent.run_once(), AgentTurn::kRecovered);
  EXPECT_EQ(release.checks, 3U) << "checked until open, and not again";
  EXPECT_FALSE(locks_.held_);
  EXPECT_TRUE(world_.called("completed:rolling:r-1"));
}

TEST_F(AgentTest, AHealthGateThatStaysClosedKeepsTheSlotAndSaysWhy) {
  triggers_.request = "rolling:r-1";
  ScriptedGate release{{{false, "Prometheus query 'up == 0' returns up{job=\"db\"} = 0", std::nullopt, ""}}};
  AgentOptions o = options();
  o.drain.release_gate = release.gate();
  o.drain.recover_timeout = 300ms;
  {
    Agent agent(systems(), o, triggers_, observer_, world_.stop);
    ASSERT_EQ(agent.run_once(), AgentTurn::kRebooting);
  }
  world_.boot_id = "boot-2";
  Agent agent(systems(), o, triggers_, observer_, world_.stop);
  EXPECT_EQ(agent.run_once(), AgentTurn::kFailed);
  EXPECT_TRUE(locks_.held_) << "the slot is kept: no other host of the tier goes down meanwhile";
  ASSERT_FALSE(observer_.finished.empty());
  EXPECT_NE(observer_.finished.back().find("gave up waiting for the health gates to open before the slot goes back "
                                           "(Prometheus query 'up == 0' returns up{job=\"db\"} = 0)"),
            std::string::npos)
      << observer_.finished.back();
  EXPECT_FALSE(world_.called("completed:rolling:r-1"));
}

TEST_F(AgentTest, RunWaitsUntilTheGateOpensAtMostTheRecheck) {
  triggers_.request = "rolling:r-1";
  ScriptedGate gate{{closed_for(5s), closed_for(600s), {false, "etcd unavailable", std::nullopt, ""}}};
  AgentOptions o = options();
  o.drain.start_gate = gate.gate();
  Agent agent(systems(), o, triggers_, observer_, world_.stop);
  triggers_.stop_after(2);
  agent.run();
  ASSERT_EQ(triggers_.waits.size(), 3U);
  EXPECT_GE(triggers_.waits[0], 4900ms);
  EXPECT_LE(triggers_.waits[0], 5100ms) << "until the window opens, a little past it";
  EXPECT_EQ(triggers_.waits[1], 60s) << "no longer than the recheck";
  EXPECT_EQ(triggers_.waits[2], 60s) << "a gate that cannot say when: the recheck";
  EXPECT_TRUE(observer_.saw("status: reboot requested, waiting: etcd unavailable"));
}

}  // namespace
}  // namespace skopos::driver
