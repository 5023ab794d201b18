// Notifier: what happens around a drain, told to the tools people use. Several
// destinations, each with the events it wants:
//   webhook  POST of a JSON object (the schema below) to a URL
//   slack    POST of {"text": "..."} to a Slack-compatible incoming webhook
//   command  a program (argv, no shell) with the JSON object on its standard input
//
// Delivery runs on a thread of its own: publish() never blocks, and a drain never waits
// for a destination nor fails for one. Each destination gets its events in order; each
// is tried up to `attempts` times, 1 s apart doubling up to 60 s, every try bounded by
// `timeout`; one given up is counted undelivered and logged. A destination whose queue
// is full (down for long) loses its oldest event, counted as dropped.
//
// The JSON object, version 1 (fields that do not apply are ""):
//   {"version":1, "event":"fenced", "time":"2026-12-05T17:42:03Z", "machine_id":"...",
//    "hostname":"...", "tier":"worker", "kind":"REBOOT", "drain_id":"d-...",
//    "phase":"fence", "message":"fenced ports 31000,31001"}
// events: started, waiting, fenced, deadline, drained, rebooting, recovered, failed,
// stuck.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "skopos/result.h"

namespace skopos::driver {

inline constexpr std::string_view kNotifyEvents[] = {"started",   "waiting",   "fenced", "deadline", "drained",
                                                     "rebooting", "recovered", "failed", "stuck"};

struct Notification {
  std::string event;  // one of kNotifyEvents
  std::int64_t at = 0;  // unix seconds
  std::string machine_id;
  std::string hostname;
  std::string tier;
  std::string kind;
  std::string drain_id;
  std::string phase;
  std::string message;
};

// The JSON object of a notification (the schema above), and its Slack text.
std::string notification_json(const Notification& n);
std::string notification_text(const Notification& n);

struct NotifyDestination {
  enum class Type : std::uint8_t { kWebhook, kSlack, kCommand };
  Type type = Type::kWebhook;
  std::string url;                // webhook, slack
  std::vector<std::string> argv;  // command
  std::set<std::string> events;   // empty: every event
  std::string describe() const;   // "webhook http://...", for logs and metrics
};

// "TYPE EVENTS TARGET", several separated by ';': TYPE is webhook, slack or command;
// EVENTS is '*' or a comma-separated list of kNotifyEvents; TARGET the URL, or the
// command and its arguments. The error names what is wrong.
Result<std::vector<NotifyDestination>, std::string> parse_notify_destinations(std::string_view text);

struct NotifierOptions {
  std::chrono::milliseconds timeout{std::chrono::seconds(10)};  // per try
  int attempts = 5;
  std::size_t queue_limit = 1000;  // per destination
  std::chrono::milliseconds first_backoff{std::chrono::seconds(1)};
};

class Notifier {
 public:
  // How a notification reaches a destination: the default posts or runs it; tests give
  // their own. An error: not delivered (tried again).
  using Deliver = std::function<Result<void, std::string>(const NotifyDestination&, const Notification&,
                                                          std::chrono::milliseconds timeout)>;
  Notifier(std::vector<NotifyDestination> destinations, NotifierOptions options, Deliver deliver = {});
  // Waits up to 5 s for what is still queued (so the last events of a command that ends
  // go out); the rest is counted undelivered and logged.
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Queues `n` for every destination that wants its event; never blocks on delivery.
  void publish(const Notification& n);
  // Waits until every queue is empty or `limit` passes; whether they all emptied.
  bool flush(std::chrono::milliseconds limit);

  struct Counts {
    std::uint64_t delivered = 0;
    std::uint64_t failed_tries = 0;
    std::uint64_t undelivered = 0;  // given up after every try, or left at the end
    std::uint64_t dropped = 0;      // pushed out of a full queue
  };
  Counts counts(std::size_t destination) const;
  const std::vector<NotifyDestination>& destinations() const { return destinations_; }

  // Delivers by HTTP POST (webhook, slack) or by running the command.
  static Result<void, std::string> deliver(const NotifyDestination& d, const Notification& n,
                                           std::chrono::milliseconds timeout);

 private:
  struct Pending {
    Notification notification;
    int tries = 0;
    std::chrono::steady_clock::time_point due{};
  };
  // One destination's queue, delivered by a thread of its own (a destination that hangs
  // holds up no other).
  struct Queue {
    std::deque<Pending> items;
    Counts counts;
    bool busy = false;  // its head is being delivered
    std::thread thread;
  };
  void run(std::size_t index);

  std::vector<NotifyDestination> destinations_;
  NotifierOptions options_;
  Deliver deliver_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Queue> queues_;  // a deque: a Queue's address never changes
  bool stopping_ = false;
  std::chrono::steady_clock::time_point give_up_at_{};  // once stopping: the end of the last flush
};

}  // namespace skopos::driver
