// Notifications: destinations and their events parsed (bad ones named), the JSON
// schema and the Slack text, and delivery -- in order per destination, retried with
// backoff, given up and counted, a full queue dropping its oldest, publish() never
// waiting on a destination -- with a fake delivery and against real receivers on
// loopback that fail, hang and answer slowly.
#include "driver/notifier.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "skopos/http_server.h"
#include "skopos/unique_fd.h"

namespace skopos::driver {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

Notification event(const std::string& name, const std::string& message = "") {
  Notification n;
  n.event = name;
  n.at = 1796490868;  // 2026-12-05T17:14:28Z
  n.machine_id = "m-7";
  n.hostname = "worker-7";
  n.tier = "worker";
  n.kind = "REBOOT";
  n.drain_id = "d-01";
  n.phase = "fence";
  n.message = message;
  return n;
}

TEST(NotifyDestinations, AreParsedWithTheirEventsAndBadOnesAreNamed) {
  auto parsed = parse_notify_destinations(
      "webhook * http://127.0.0.1:9000/hooks/skopos; slack failed,stuck https://hooks.example/services/T/B/X;"
      "  command stuck /usr/local/bin/page --team infra");
  ASSERT_TRUE(parsed) << parsed.error();
  ASSERT_EQ(parsed->size(), 3U);
  EXPECT_EQ((*parsed)[0].type, NotifyDestination::Type::kWebhook);
  EXPECT_TRUE((*parsed)[0].events.empty());
  EXPECT_EQ((*parsed)[1].events, (std::set<std::string>{"failed", "stuck"}));
  EXPECT_EQ((*parsed)[2].argv, (std::vector<std::string>{"/usr/local/bin/page", "--team", "infra"}));
  EXPECT_TRUE(parse_notify_destinations("")->empty());
  // As the README writes it, one destination a line.
  auto readme = parse_notify_destinations(
      "webhook * https://events.example/skopos;\n  slack waiting,deadline,failed,stuck "
      "https://hooks.slack.com/services/T000/B000/XXXX;\n  command stuck,failed /usr/local/bin/page-oncall --team "
      "infra");
  ASSERT_TRUE(readme) << readme.error();
  ASSERT_EQ(readme->size(), 3U);
  // Its secret (a webhook's path) is never in a log line or a metric label.
  EXPECT_EQ((*readme)[1].describe(), "slack https://hooks.slack.com");
  for (const auto& [spec, error] : std::vector<std::pair<std::string, std::string>>{
           {"email * ops@example.com", "'email' is not webhook, slack or command"},
           {"webhook fenced,exploded http://h/", "'exploded' is not an event"},
           {"webhook * not-a-url", "'not-a-url' is not an http:// or https:// URL"},
           {"slack *", "write TYPE EVENTS TARGET"},
           {"webhook * http://a/ http://b/", "a webhook takes one URL"}}) {
    auto bad = parse_notify_destinations(spec);
    ASSERT_FALSE(bad) << spec;
    EXPECT_NE(bad.error().find(error), std::string::npos) << bad.error();
  }
}

TEST(Notifications, TheJsonSchemaAndTheSlackText) {
  EXPECT_EQ(notification_json(event("fenced", "fenced ports 31000")),
            R"({"version":1,"event":"fenced","time":"2026-12-05T17:14:28Z","machine_id":"m-7","hostname":"worker-7",)"
            R"("tier":"worker","kind":"REBOOT","drain_id":"d-01","phase":"fence","message":"fenced ports 31000"})");
  EXPECT_EQ(notification_text(event("fenced", "fenced ports 31000")),
            "[skopos] worker-7 (worker, REBOOT, d-01): fenced -- fenced ports 31000");
}

// A delivery that records, and fails or hangs as told.
struct FakeDelivery {
  std::mutex mutex;
  std::vector<std::string> delivered;  // "<destination url> <event>"
  std::map<std::string, int> fail_first;  // url -> tries to fail
  std::atomic<bool> hang{false};
  Notifier::Deliver deliver() {
    return [this](const NotifyDestination& d, const Notification& n, std::chrono::milliseconds timeout)
               -> Result<void, std::string> {
      if (hang && d.url == "http://hang/") {
        std::this_thread::sleep_for(timeout);
        return unexpected(std::string("timed out"));
      }
      std::lock_guard<std::mutex> lock(mutex);
      if (fail_first[d.url] > 0) {
        --fail_first[d.url];
        return unexpected(std::string("answered 503"));
      }
      delivered.push_back(d.url + " " + n.event);
      return {};
    };
  }
};

NotifyDestination webhook(const std::string& url, std::set<std::string> events = {}) {
  NotifyDestination d;
  d.url = url;
  d.events = std::move(events);
  return d;
}

TEST(Notifier, EachDestinationGetsItsEventsInOrderRetriedWithBackoffAndCountsWhatItGivesUp) {
  FakeDelivery fake;
  fake.fail_first["http://flaky/"] = 2;   // two failed tries, then delivered
  fake.fail_first["http://down/"] = 99;  // never
  NotifierOptions options;
  options.attempts = 3;
  options.first_backoff = 20ms;
  Notifier notifier({webhook("http://all/"), webhook("http://flaky/", {"failed"}), webhook("http://down/")}, options,
                    fake.deliver());
  for (const char* name : {"started", "fenced", "failed"}) notifier.publish(event(name));
  ASSERT_TRUE(notifier.flush(10s));
  // In order per destination (their threads interleave as they may).
  const auto of = [&](const std::string& url) {
    std::vector<std::string> out;
    for (const std::string& d : fake.delivered) {
      if (d.rfind(url + " ", 0) == 0) out.push_back(d.substr(url.size() + 1));
    }
    return out;
  };
  EXPECT_EQ(of("http://all/"), (std::vector<std::string>{"started", "fenced", "failed"}));
  EXPECT_EQ(of("http://flaky/"), (std::vector<std::string>{"failed"}));
  EXPECT_EQ(notifier.counts(0).delivered, 3U);
  EXPECT_EQ(notifier.counts(1).delivered, 1U);
  EXPECT_EQ(notifier.counts(1).failed_tries, 2U);
  EXPECT_EQ(notifier.counts(2).undelivered, 3U) << "each given up after 3 tries";
  EXPECT_EQ(notifier.counts(2).failed_tries, 9U);
}

TEST(Notifier, PublishNeverWaitsForAHangingDestinationWhichHoldsUpNoOtherAndAFullQueueDropsItsOldest) {
  FakeDelivery fake;
  fake.hang = true;
  NotifierOptions options;
  options.timeout = 2s;
  options.attempts = 1;
  options.queue_limit = 3;
  auto notifier = std::make_unique<Notifier>(
      std::vector<NotifyDestination>{webhook("http://hang/"), webhook("http://fine/")}, options, fake.deliver());
  Clock::duration longest{};
  for (int i = 0; i < 10; ++i) {
    const auto start = Clock::now();
    notifier->publish(event("fenced", std::to_string(i)));
    longest = std::max(longest, Clock::now() - start);
    std::this_thread::sleep_for(20ms);  // the fine destination keeps up
  }
  EXPECT_LT(longest, 100ms) << "publish() only queues";
  // The fine destination gets everything while the other hangs.
  for (const auto deadline = Clock::now() + 5s; Clock::now() < deadline && notifier->counts(1).delivered < 10;) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(notifier->counts(1).delivered, 10U);
  EXPECT_GE(notifier->counts(0).dropped, 6U) << "a queue of 3 behind a hanging head";
  // At the end: at most a bounded wait, the rest counted undelivered.
  const auto ending = Clock::now();
  notifier.reset();
  EXPECT_LT(Clock::now() - ending, 7s) << "5 s for the queue, no try past it";
}

// Real receivers on loopback: one that answers 500 then 200, one that never answers
// (a listener nobody accepts from), one that answers after a second.
TEST(Notifier, RealReceiversThatFailHangAndAnswerSlowly) {
  std::mutex mutex;
  std::vector<std::string> bodies;
  std::atomic<int> calls{0};
  boost::asio::io_context io;
  LoopbackHttpServer flaky(io, "test", "test", [&](const HttpServerRequest& request) {
    if (calls++ == 0) return HttpServerResponse{500, "text/plain", "busy"};
    std::lock_guard<std::mutex> lock(mutex);
    bodies.push_back(request.target + " " + request.body);
    return HttpServerResponse{200, "text/plain", "ok"};
  });
  ASSERT_TRUE(flaky.start("127.0.0.1:0"));
  boost::asio::io_context slow_io;
  LoopbackHttpServer slow(slow_io, "test", "test", [&](const HttpServerRequest& request) {
    std::this_thread::sleep_for(1s);
    std::lock_guard<std::mutex> lock(mutex);
    bodies.push_back(request.target + " " + request.body);
    return HttpServerResponse{204, "text/plain", ""};
  });
  ASSERT_TRUE(slow.start("127.0.0.1:0"));
  std::thread io_thread([&] { io.run(); });
  std::thread slow_thread([&] { slow_io.run(); });
  // A listener that never accepts: the connection is made, no answer ever comes.
  UniqueFd silent(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(silent.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(silent.get(), 16), 0);
  socklen_t length = sizeof address;
  ::getsockname(silent.get(), reinterpret_cast<sockaddr*>(&address), &length);
  const std::string silent_url = "http://127.0.0.1:" + std::to_string(ntohs(address.sin_port)) + "/never";

  auto destinations = parse_notify_destinations(
      "webhook * http://127.0.0.1:" + std::to_string(flaky.port()) + "/hooks/skopos; slack failed http://127.0.0.1:" +
      std::to_string(slow.port()) + "/services/T/B/X; webhook * " + silent_url);
  ASSERT_TRUE(destinations) << destinations.error();
  NotifierOptions options;
  options.timeout = 2s;
  options.attempts = 2;
  options.first_backoff = 50ms;
  {
    Notifier notifier(std::move(*destinations), options);
    const auto start = Clock::now();
    notifier.publish(event("fenced", "fenced ports 31000"));
    notifier.publish(event("failed", "refused: app '/web' would drop below its budget"));
    EXPECT_LT(Clock::now() - start, 100ms);
    for (const auto deadline = Clock::now() + 15s;
         Clock::now() < deadline && (notifier.counts(0).delivered < 2 || notifier.counts(1).delivered < 1 ||
                                     notifier.counts(2).undelivered < 2);) {
      std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(notifier.counts(0).delivered, 2U);
    EXPECT_EQ(notifier.counts(0).failed_tries, 1U) << "the 500 was tried again";
    EXPECT_EQ(notifier.counts(1).delivered, 1U) << "the slow one answered within the timeout";
    EXPECT_EQ(notifier.counts(2).undelivered, 2U) << "the silent one timed out on both tries of both events";
  }
  io.stop();
  slow_io.stop();
  io_thread.join();
  slow_thread.join();
  flaky.stop();
  slow.stop();
  std::lock_guard<std::mutex> lock(mutex);
  ASSERT_EQ(bodies.size(), 3U);
  EXPECT_NE(std::find(bodies.begin(), bodies.end(),
                      "/hooks/skopos " + notification_json(event("fenced", "fenced ports 31000"))),
            bodies.end());
  EXPECT_NE(std::find(bodies.begin(), bodies.end(),
                      "/services/T/B/X {\"text\":\"[skopos] worker-7 (worker, REBOOT, d-01): failed -- refused: app "
                      "'/web' would drop below its budget\"}"),
            bodies.end());
}

TEST(Notifier, ACommandGetsTheJsonOnItsStandardInput) {
  const std::string dir = "/tmp/skopos-notify-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string script = dir + "/page.sh";
  std::ofstream(script) << "#!/bin/sh\ncat > " << dir << "/got.json\necho \"$SKOPOS_EVENT\" > " << dir
                        << "/event\n";
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  auto destinations = parse_notify_destinations("command stuck " + script);
  ASSERT_TRUE(destinations);
  {
    Notifier notifier(std::move(*destinations), NotifierOptions{});
    notifier.publish(event("fenced"));  // not its event
    notifier.publish(event("stuck", "waiting 20 min for 'web' (3 connections)"));
    ASSERT_TRUE(notifier.flush(10s));
    EXPECT_EQ(notifier.counts(0).delivered, 1U);
  }
  std::ifstream got(dir + "/got.json");
  std::string line;
  std::getline(got, line);
  EXPECT_EQ(line, notification_json(event("stuck", "waiting 20 min for 'web' (3 connections)")));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace skopos::driver
