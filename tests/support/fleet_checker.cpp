#include "fleet_checker.h"

#include <simdjson.h>

#include <chrono>
#include <cstdlib>

#include "driver/etcd_client.h"

namespace skopos::testing {

using namespace skopos::driver;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

FleetChecker::FleetChecker(std::vector<std::string> endpoints, std::string prefix, std::int64_t from_revision,
                           std::vector<FleetApp> apps)
    : endpoints_(std::move(endpoints)),
      prefix_(std::move(prefix)),
      next_(from_revision),
      apps_(std::move(apps)),
      parser_(std::make_unique<simdjson::dom::parser>()) {
  thread_ = std::thread([this] { run(); });
}

FleetChecker::~FleetChecker() {
  if (thread_.joinable()) {
    last_ = -1;  // stop now
    thread_.join();
  }
}

void FleetChecker::finish(std::int64_t last) {
  last_ = last;
  thread_.join();
}

void FleetChecker::violation(std::string text) {
  if (violations_.size() < 50) violations_.push_back(std::move(text));
}

void FleetChecker::run() {
  auto etcd = fleet_etcd_client(endpoints_);
  if (!etcd) {
    violation("checker: no etcd client");
    return;
  }
  const auto give_up = Clock::now() + 4h;
  while (Clock::now() < give_up) {
    const std::int64_t last = last_.load();
    if (last < 0 || (last > 0 && next_ > last)) return;
    auto batch = etcd->wait_for_change(prefix_ + "/", EtcdClient::prefix_end(prefix_ + "/"), next_,
                                          Clock::now() + 1s);
    if (!batch) {  // a member went away: watch again from the same revision
      std::this_thread::sleep_for(50ms);
      continue;
    }
    if (batch->compacted) {
      violation("checker: history compacted at " + std::to_string(batch->compact_revision));
      return;
    }
    std::int64_t current = 0;
    for (const WatchEvent& event : batch->events) {
      if (current != 0 && event.kv.mod_revision != current) check(current);
      current = event.kv.mod_revision;
      apply(event.kv.key, event.type == WatchEvent::Type::kPut, event.kv.value,
            event.type == WatchEvent::Type::kPut && event.kv.version == 1 ? event.kv.create_revision : 0);
    }
    if (current != 0) {
      check(current);
      next_ = current + 1;
    }
  }
  violation("checker: gave up replaying");
}

void FleetChecker::apply(const std::string& key, bool put, const std::string& value, std::int64_t created) {
  const std::string rest = key.substr(prefix_.size() + 1);
  if (rest.rfind("locks/", 0) == 0) {
    // locks/<lock>/<group>/{max,holders/<m>,queue/<m>}
    const auto a = rest.find('/', 6);
    const auto b = a == std::string::npos ? a : rest.find('/', a + 1);
    if (b == std::string::npos) return;
    const std::string group = rest.substr(6, b - 6);
    const std::string tail = rest.substr(b + 1);
    if (tail == "max") {
      if (put) {
        max_[group] = std::strtoll(value.c_str(), nullptr, 10);
      } else {
        max_.erase(group);
      }
      return;
    }
    if (tail.rfind("holders/", 0) == 0) {
      const std::string machine = tail.substr(8);
      if (!put) {
        holders_[group].erase(machine);
        return;
      }
      if (created != 0) {
        if (!tokens_.insert(created).second) violation("fencing token " + std::to_string(created) + " used twice");
        holders_[group][machine] = created;
        ++taken_[group][machine];
      }
      // The holder records each phase before it runs it (guard): a holding that reached
      // "reboot" rebooted its host.
      simdjson::dom::object object;
      std::string_view phase;
      if (parser_->parse(value).get(object) == simdjson::SUCCESS && object["phase"].get(phase) == simdjson::SUCCESS &&
          phase == "reboot") {
        const auto holding = holders_[group].find(machine);
        if (holding != holders_[group].end()) rebooted_[group][machine].insert(holding->second);
      }
      return;
    }
    if (tail.rfind("queue/", 0) == 0) {
      if (put) {
        waiters_.insert(key);
      } else {
        waiters_.erase(key);
      }
    }
    return;
  }
  if (rest.rfind("hosts/", 0) == 0) {
    if (put) {
      host_locks_.insert(key);
    } else {
      host_locks_.erase(key);
    }
    return;
  }
  if (rest.rfind("budget/", 0) == 0) {
    if (put) {
      // The claim names the host as Marathon does.
      simdjson::dom::object object;
      std::string_view hostname;
      if (parser_->parse(value).get(object) != simdjson::SUCCESS || object["hostname"].get(hostname) != simdjson::SUCCESS) {
        violation("budget claim " + key + " names no host");
      }
      claims_[key] = std::string(hostname);
    } else {
      claims_.erase(key);
    }
  }
}

void FleetChecker::check(std::int64_t revision) {
  ++revisions_;
  std::map<std::string, std::string> holding;  // machine -> group
  for (const auto& [group, machines] : holders_) {
    const auto max = max_.find(group);
    const std::int64_t limit = max == max_.end() ? 1 : max->second;
    const int held = static_cast<int>(machines.size());
    peak_[group] = std::max(peak_[group], held);
    if (held > limit) {
      violation("revision " + std::to_string(revision) + ": " + group + " has " + std::to_string(held) +
                " holders, max " + std::to_string(limit));
    }
    for (const auto& [machine, token] : machines) {
      const auto [it, fresh] = holding.emplace(machine, group);
      if (!fresh) {
        violation("revision " + std::to_string(revision) + ": " + machine + " holds " + it->second + " and " + group);
      }
    }
  }
  std::set<std::string> draining;
  for (const auto& [key, hostname] : claims_) draining.insert(hostname);
  for (const FleetApp& app : apps_) {
    int up = 0;
    for (const std::string& host : app.hostnames) up += draining.count(host) == 0 ? 1 : 0;
    if (up < app.required) {
      violation("revision " + std::to_string(revision) + ": " + app.id + " has " + std::to_string(up) +
                " instances on hosts not draining, needs " + std::to_string(app.required));
    }
  }
}

std::vector<std::string> FleetChecker::left_over() const {
  std::vector<std::string> out;
  for (const auto& [group, machines] : holders_) {
    for (const auto& [machine, token] : machines) out.push_back("holder " + group + "/" + machine);
  }
  out.insert(out.end(), waiters_.begin(), waiters_.end());
  out.insert(out.end(), host_locks_.begin(), host_locks_.end());
  for (const auto& [key, host] : claims_) out.push_back(key);
  return out;
}

}  // namespace skopos::testing
