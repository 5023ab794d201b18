// DockerEngine against podman's Docker Engine API (runc, busybox image) started by the
// test: stop answers 204 and then 304, and waits out the grace period for a process
// that ignores SIGTERM; kill answers 204, then "not running"; wait returns the exit code;
// unknown containers are "gone"; events arrive as they happen. Needs root.
#include <gtest/gtest.h>

#include <thread>

#include "skopos/docker_engine.h"
#include "podman.h"
#include "privileged_support.h"

namespace skopos::driver {
namespace {

using namespace std::chrono_literals;
using skopos::testing::PodmanService;
using Clock = std::chrono::steady_clock;

class DockerEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKOPOS_REQUIRE_ROOT();
    auto podman = PodmanService::start();
    ASSERT_TRUE(podman) << podman.error().message();
    podman_ = std::move(*podman);
    DockerEngineOptions options;
    options.http.endpoints.push_back(*HttpEndpoint::parse("unix://" + podman_->socket()));
    options.http.timeout = 10s;
    auto engine = DockerEngine::create(options);
    ASSERT_TRUE(engine);
    engine_ = std::move(*engine);
  }
  std::string run(const std::string& name, std::vector<std::string> command) {
    std::vector<std::string> args = {"--name", name, PodmanService::kImage};
    args.insert(args.end(), command.begin(), command.end());
    auto id = podman_->run_detached(args);
    EXPECT_TRUE(id) << id.error().message();
    return id ? *id : std::string();
  }

  std::unique_ptr<PodmanService> podman_;
  std::unique_ptr<DockerEngine> engine_;
};

TEST_F(DockerEngineTest, StopIsStoppedThenAlreadyStoppedAndUnknownIsGone) {
  // A process that exits on SIGTERM.
  const std::string id = run("skopos-de-polite", {"/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"});
  auto listed = engine_->list(false);
  ASSERT_TRUE(listed) << listed.error().message;
  bool found = false;
  for (const auto& c : *listed) found = found || c.id == id;
  EXPECT_TRUE(found);
  auto info = engine_->inspect("skopos-de-polite");
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_TRUE(info->running);

  const auto start = Clock::now();
  auto stopped = engine_->stop(id, 10s);
  ASSERT_TRUE(stopped) << stopped.error().message;
  EXPECT_EQ(*stopped, DockerEngine::StopOutcome::kStopped);
  EXPECT_LT(Clock::now() - start, 8s) << "it left on SIGTERM, well before the grace period";
  auto again = engine_->stop(id, 10s);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*again, DockerEngine::StopOutcome::kAlreadyStopped) << "304";
  auto code = engine_->wait(id, Clock::now() + 5s);
  ASSERT_TRUE(code) << code.error().message;
  EXPECT_EQ(*code, 0);

  auto gone = engine_->stop("skopos-de-no-such", 1s);
  ASSERT_TRUE(gone) << gone.error().message;
  EXPECT_EQ(*gone, DockerEngine::StopOutcome::kGone);
  auto missing = engine_->inspect("skopos-de-no-such");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, OutsideError::Kind::kNotFound);
  EXPECT_NE(missing.error().message.find("no such container"), std::string::npos) << missing.error().message;
}

TEST_F(DockerEngineTest, StopWaitsOutTheGracePeriodThenKills) {
  // PID 1 without a handler ignores SIGTERM: only the kill after the grace ends it.
  const std::string id = run("skopos-de-stubborn", {"/bin/sleep", "300"});
  const auto start = Clock::now();
  auto stopped = engine_->stop(id, 2s);
  const auto took = Clock::now() - start;
  ASSERT_TRUE(stopped) << stopped.error().message;
  EXPECT_EQ(*stopped, DockerEngine::StopOutcome::kStopped);
  EXPECT_GE(took, 2s) << "the daemon waited the grace period";
  auto info = engine_->inspect(id);
  ASSERT_TRUE(info);
  EXPECT_FALSE(info->running);
}

TEST_F(DockerEngineTest, KillWaitAndEvents) {
  const std::int64_t since = static_cast<std::int64_t>(std::time(nullptr)) - 1;
  const std::string id = run("skopos-de-victim", {"/bin/sleep", "300"});
  Result<std::int64_t, OutsideError> code = unexpected(OutsideError{});
  std::thread waiter([&] { code = engine_->wait(id, Clock::now() + 20s); });
  std::this_thread::sleep_for(300ms);
  auto killed = engine_->kill(id);
  ASSERT_TRUE(killed) << killed.error().message;
  EXPECT_EQ(*killed, DockerEngine::KillOutcome::kKilled);
  waiter.join();
  ASSERT_TRUE(code) << code.error().message;
  EXPECT_EQ(*code, 137) << "killed by SIGKILL";
  auto again = engine_->kill(id);
  ASSERT_TRUE(again) << again.error().message << " status " << again.error().status;
  EXPECT_EQ(*again, DockerEngine::KillOutcome::kNotRunning) << "409";
  auto unknown = engine_->kill("skopos-de-no-such");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(*unknown, DockerEngine::KillOutcome::kGone);

  std::vector<std::string> actions;
  auto events = engine_->events(since, Clock::now() + 5s, [&](const DockerEvent& event) {
    if (event.id == id) actions.push_back(event.action);
    return std::find(actions.begin(), actions.end(), "died") == actions.end() &&
           std::find(actions.begin(), actions.end(), "die") == actions.end();
  });
  ASSERT_TRUE(events) << events.error().message;
  EXPECT_NE(std::find(actions.begin(), actions.end(), "start"), actions.end());
  const bool died = std::find(actions.begin(), actions.end(), "died") != actions.end() ||
                    std::find(actions.begin(), actions.end(), "die") != actions.end();
  EXPECT_TRUE(died) << "the kill shows in the event stream";
}

}  // namespace
}  // namespace skopos::driver
