#include "driver/notifier.h"

#include <algorithm>
#include <ctime>

#include "skopos/http_client.h"
#include "skopos/json_writer.h"
#include "skopos/log.h"
#include "skopos/subprocess.h"
#include "skopos/utc_time.h"

namespace skopos::driver {

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> words(std::string_view text) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t start = text.find_first_not_of(" \t\r\n", at);
    if (start == std::string_view::npos) break;
    const std::size_t end = std::min(text.find_first_of(" \t\r\n", start), text.size());
    out.emplace_back(text.substr(start, end - start));
    at = end;
  }
  return out;
}

bool known_event(std::string_view event) {
  return std::find(std::begin(kNotifyEvents), std::end(kNotifyEvents), event) != std::end(kNotifyEvents);
}

Result<void, std::string> post(const std::string& url, const std::string& body, std::chrono::milliseconds timeout) {
  const auto [base, target] = split_url(url);
  auto endpoint = HttpEndpoint::parse(base);
  if (!endpoint) return unexpected(endpoint.error().message());
  HttpOptions http;
  http.endpoints.push_back(std::move(*endpoint));
  http.timeout = timeout;
  http.attempts = 1;  // the notifier tries again itself, with its own backoff
  auto client = HttpClient::create(http);
  if (!client) return unexpected(client.error().message());
  auto sent = (*client)->request(json_request("POST", target, body, false));
  if (!sent) return unexpected(sent.error().message());
  if (sent->status < 200 || sent->status >= 300) {
    return unexpected("answered " + std::to_string(sent->status) + " " + sent->body.substr(0, 200));
  }
  return {};
}

}  // namespace

std::string notification_json(const Notification& n) {
  std::string out;
  JsonWriter json(out);
  json.begin_object().key("version").value(1).key("event").value(n.event).key("time").value(utc_time(n.at));
  json.key("machine_id").value(n.machine_id).key("hostname").value(n.hostname).key("tier").value(n.tier);
  json.key("kind").value(n.kind).key("drain_id").value(n.drain_id).key("phase").value(n.phase);
  json.key("message").value(n.message).end_object();
  return out;
}

std::string notification_text(const Notification& n) {
  std::string what = n.hostname.empty() ? "?" : n.hostname;
  std::string context;
  for (const std::string* part : {&n.tier, &n.kind, &n.drain_id}) {
    if (!part->empty()) context += (context.empty() ? "" : ", ") + *part;
  }
  return "[skopos] " + what + (context.empty() ? "" : " (" + context + ")") + ": " + n.event +
         (n.message.empty() ? "" : " -- " + n.message);
}

std::string NotifyDestination::describe() const {
  // Scheme and authority only: a webhook's path is often its secret (Slack's is).
  switch (type) {
    case Type::kWebhook: return "webhook " + split_url(url).first;
    case Type::kSlack: return "slack " + split_url(url).first;
    case Type::kCommand: return "command " + (argv.empty() ? std::string("?") : argv.front());
  }
  return "?";
}

Result<std::vector<NotifyDestination>, std::string> parse_notify_destinations(std::string_view text) {
  std::vector<NotifyDestination> out;
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t end = std::min(text.find(';', at), text.size());
    const std::string_view spec = text.substr(at, end - at);
    at = end + 1;
    const std::vector<std::string> parts = words(spec);
    if (parts.empty()) continue;
    const std::string quoted = "'" + std::string(spec.substr(spec.find_first_not_of(" \t\r\n"))) + "'";
    if (parts.size() < 3) return unexpected(quoted + ": write TYPE EVENTS TARGET (e.g. 'webhook * https://...')");
    NotifyDestination d;
    if (parts[0] == "webhook") {
      d.type = NotifyDestination::Type::kWebhook;
    } else if (parts[0] == "slack") {
      d.type = NotifyDestination::Type::kSlack;
    } else if (parts[0] == "command") {
      d.type = NotifyDestination::Type::kCommand;
    } else {
      return unexpected(quoted + ": '" + parts[0] + "' is not webhook, slack or command");
    }
    if (parts[1] != "*") {
      std::string_view list = parts[1];
      for (std::size_t i = 0; i <= list.size();) {
        const std::size_t comma = std::min(list.find(',', i), list.size());
        const std::string event(list.substr(i, comma - i));
        i = comma + 1;
        if (!known_event(event)) {
          return unexpected(quoted + ": '" + event +
                            "' is not an event (started, waiting, fenced, deadline, drained, rebooting, recovered, "
                            "failed, stuck)");
        }
        d.events.insert(event);
      }
    }
    if (d.type == NotifyDestination::Type::kCommand) {
      d.argv.assign(parts.begin() + 2, parts.end());
    } else {
      if (parts.size() > 3) return unexpected(quoted + ": a " + parts[0] + " takes one URL");
      d.url = parts[2];
      auto endpoint = HttpEndpoint::parse(split_url(d.url).first);
      if (!endpoint || d.url.find("://") == std::string::npos) {
        return unexpected(quoted + ": '" + d.url + "' is not an http:// or https:// URL");
      }
    }
    out.push_back(std::move(d));
  }
  return out;
}

Result<void, std::string> Notifier::deliver(const NotifyDestination& d, const Notification& n,
                                            std::chrono::milliseconds timeout) {
  switch (d.type) {
    case NotifyDestination::Type::kWebhook: return post(d.url, notification_json(n), timeout);
    case NotifyDestination::Type::kSlack: {
      std::string body;
      JsonWriter(body).begin_object().key("text").value(notification_text(n)).end_object();
      return post(d.url, body, timeout);
    }
    case NotifyDestination::Type::kCommand: {
      auto ran = run_program(d.argv, notification_json(n) + "\n", timeout,
                             {"SKOPOS_EVENT=" + n.event, "SKOPOS_HOSTNAME=" + n.hostname});
      if (!ran) return unexpected(ran.error().message());
      if (ran->exit_code != 0) {
        return unexpected("exited " + std::to_string(ran->exit_code) + " " +
                          ran->err.substr(0, ran->err.find('\n')).substr(0, 200));
      }
      return {};
    }
  }
  return unexpected(std::string("no such destination"));
}

Notifier::Notifier(std::vector<NotifyDestination> destinations, NotifierOptions options, Deliver deliver)
    : destinations_(std::move(destinations)),
      options_(options),
      deliver_(deliver ? std::move(deliver) : Deliver(&Notifier::deliver)) {
  for (std::size_t i = 0; i < destinations_.size(); ++i) queues_.emplace_back();
  for (std::size_t i = 0; i < destinations_.size(); ++i) queues_[i].thread = std::thread([this, i] { run(i); });
}

Notifier::~Notifier() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    give_up_at_ = Clock::now() + std::chrono::seconds(5);
  }
  changed_.notify_all();
  for (Queue& queue : queues_) queue.thread.join();
}

void Notifier::publish(const Notification& n) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    for (std::size_t i = 0; i < destinations_.size(); ++i) {
      const NotifyDestination& d = destinations_[i];
      if (!d.events.empty() && d.events.count(n.event) == 0) continue;
      Queue& queue = queues_[i];
      if (queue.items.size() >= options_.queue_limit) {
        // The oldest waiting one goes; never the head being delivered.
        const auto victim = queue.items.begin() + (queue.busy ? 1 : 0);
        if (victim != queue.items.end()) {
          queue.items.erase(victim);
          ++queue.counts.dropped;
        }
      }
      queue.items.push_back({n, 0, Clock::now()});
    }
  }
  changed_.notify_all();
}

bool Notifier::flush(std::chrono::milliseconds limit) {
  std::unique_lock<std::mutex> lock(mutex_);
  return changed_.wait_for(lock, limit, [this] {
    return std::all_of(queues_.begin(), queues_.end(), [](const Queue& q) { return q.items.empty(); });
  });
}

Notifier::Counts Notifier::counts(std::size_t destination) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queues_.at(destination).counts;
}

void Notifier::run(std::size_t index) {
  const NotifyDestination& destination = destinations_[index];
  Queue& queue = queues_[index];
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    if (stopping_ && (queue.items.empty() || Clock::now() >= give_up_at_)) {
      for (const Pending& left : queue.items) {
        log_warning("notification '" + left.notification.event + "' to " + destination.describe() +
                    " not delivered: the program ends");
      }
      queue.counts.undelivered += queue.items.size();
      queue.items.clear();
      changed_.notify_all();
      return;
    }
    if (queue.items.empty()) {
      changed_.wait(lock);
      continue;
    }
    const Clock::time_point due = queue.items.front().due;
    if (Clock::now() < due) {
      changed_.wait_until(lock, stopping_ ? std::min(due, give_up_at_) : due);
      continue;
    }
    // Stopping: no try past the end of the last flush.
    std::chrono::milliseconds timeout = options_.timeout;
    if (stopping_) {
      timeout = std::min(timeout, std::chrono::duration_cast<std::chrono::milliseconds>(give_up_at_ - Clock::now()));
      if (timeout.count() <= 0) continue;  // the loop's top gives the rest up
    }
    queue.busy = true;
    const Notification n = queue.items.front().notification;
    lock.unlock();
    const Result<void, std::string> sent = deliver_(destination, n, timeout);
    lock.lock();
    queue.busy = false;
    Pending& head = queue.items.front();
    if (sent) {
      ++queue.counts.delivered;
      queue.items.pop_front();
    } else {
      ++queue.counts.failed_tries;
      if (++head.tries >= options_.attempts) {
        log_warning("notification '" + n.event + "' to " + destination.describe() + " not delivered after " +
                    std::to_string(head.tries) + " tries: " + sent.error());
        ++queue.counts.undelivered;
        queue.items.pop_front();
      } else {
        const auto backoff = std::min<std::chrono::milliseconds>(
            options_.first_backoff * (1 << std::min(head.tries - 1, 16)), std::chrono::seconds(60));
        head.due = Clock::now() + backoff;
      }
    }
    changed_.notify_all();
  }
}

}  // namespace skopos::driver
