#include "driver/pauses.h"

#include <simdjson.h>

#include <algorithm>
#include <ctime>
#include <set>

#include "skopos/json_writer.h"
#include "skopos/utc_time.h"

namespace skopos::driver {

std::string Pause::describe() const {
  if (!problem.empty()) return "paused: a pause record cannot be read (" + problem + ")";
  const std::string who = std::string(scope == WindowStore::Scope::kTier ? "tier " : "host ") + owner;
  return who + " paused by " + (by.empty() ? "?" : by) + " at " + utc_time(at) + (reason.empty() ? "" : ": " + reason);
}

Result<void, std::string> PauseStore::pause(WindowStore::Scope scope, const std::string& owner,
                                            const std::string& reason, const std::string& by, std::int64_t at) {
  if (!WindowStore::valid_part(owner)) return unexpected("'" + owner + "' is not a tier or host name");
  std::string value;
  JsonWriter(value).begin_object().key("reason").value(reason).key("by").value(by).key("at").value(at).end_object();
  auto put = etcd_.put(key(prefix_, scope, owner), value);
  if (!put) return unexpected("pause: " + put.error().message);
  return {};
}

Result<bool, std::string> PauseStore::resume(WindowStore::Scope scope, const std::string& owner) {
  if (!WindowStore::valid_part(owner)) return unexpected("'" + owner + "' is not a tier or host name");
  auto removed = etcd_.delete_range(key(prefix_, scope, owner));
  if (!removed) return unexpected("resume: " + removed.error().message);
  return *removed > 0;
}

Result<std::vector<Pause>, std::string> PauseStore::list() {
  const std::string first = root(prefix_);
  auto found = etcd_.range(first, EtcdClient::prefix_end(first));
  if (!found) return unexpected("pauses: " + found.error().message);
  std::vector<Pause> out;
  simdjson::dom::parser parser;
  for (const KeyValue& kv : found->kvs) {
    Pause pause;
    const std::string_view rest = std::string_view(kv.key).substr(first.size());
    const auto slash = rest.find('/');
    const std::string_view scope = rest.substr(0, slash);
    if (slash == std::string_view::npos || (scope != "tier" && scope != "host")) {
      pause.problem = "key " + kv.key + " is not <tier|host>/<name>";
      out.push_back(std::move(pause));
      continue;
    }
    pause.scope = scope == "tier" ? WindowStore::Scope::kTier : WindowStore::Scope::kHost;
    pause.owner = std::string(rest.substr(slash + 1));
    simdjson::dom::object object;
    std::string_view reason;
    std::string_view by;
    if (parser.parse(kv.value.data(), kv.value.size(), true).get(object) != simdjson::SUCCESS ||
        object["reason"].get(reason) != simdjson::SUCCESS || object["by"].get(by) != simdjson::SUCCESS ||
        object["at"].get(pause.at) != simdjson::SUCCESS) {
      pause.problem = kv.key + " holds '" + kv.value.substr(0, 100) + "', not {\"reason\",\"by\",\"at\"}";
    } else {
      pause.reason = std::string(reason);
      pause.by = std::string(by);
    }
    out.push_back(std::move(pause));
  }
  return out;
}

const Pause* PauseStore::find(const std::vector<Pause>& all, const std::string& tier, const std::string& hostname) {
  for (const WindowStore::Scope scope : {WindowStore::Scope::kTier, WindowStore::Scope::kHost}) {
    for (const Pause& pause : all) {
      const std::string& mine = scope == WindowStore::Scope::kTier ? tier : hostname;
      // A record whose key cannot be placed might be ours: paused.
      if (pause.owner.empty() || (pause.scope == scope && pause.owner == mine)) return &pause;
    }
  }
  return nullptr;
}

std::optional<std::string> PauseStore::paused(const std::vector<Pause>& all, const std::string& tier,
                                              const std::string& hostname) {
  const Pause* pause = find(all, tier, hostname);
  if (pause == nullptr) return std::nullopt;
  return pause->describe();
}

WindowVerdict pauses_and_windows(const Result<std::vector<Pause>, std::string>& pauses,
                                 const Result<std::vector<WindowStore::Stored>, std::string>& windows,
                                 const std::vector<RebootWindow>& local, const std::string& tier,
                                 const std::string& hostname, SysSeconds now) {
  GateState pause{"pause", true, false, "not paused"};
  if (!pauses) {
    pause = {"pause", false, true, "pauses cannot be read: " + pauses.error()};
  } else if (const Pause* found = PauseStore::find(*pauses, tier, hostname)) {
    pause = {"pause", false, !found->problem.empty(), found->describe()};
  }
  WindowVerdict verdict;
  if (!windows) {
    verdict = {false, "maintenance windows cannot be read: " + windows.error(), std::nullopt, true, {}};
  } else {
    WindowSet set = WindowStore::select(*windows, tier, hostname);
    set.local = local;
    verdict = evaluate_windows(set, now);
  }
  verdict.gates = {pause, GateState{"window", verdict.open, verdict.unknown, verdict.reason}};
  if (!pause.open) {
    verdict.open = false;
    verdict.unknown = pause.unknown;
    verdict.reason = pause.reason;
    verdict.next_change = std::nullopt;
  }
  return verdict;
}

std::vector<OwnerGate> stored_gates(const Result<std::vector<Pause>, std::string>& pauses,
                                    const Result<std::vector<WindowStore::Stored>, std::string>& windows,
                                    SysSeconds now) {
  using Scope = WindowStore::Scope;
  std::vector<OwnerGate> out;
  if (!pauses) out.push_back({Scope::kTier, "?", {"pause", false, true, "pauses cannot be read: " + pauses.error()}});
  if (!windows) {
    out.push_back(
        {Scope::kTier, "?", {"window", false, true, "maintenance windows cannot be read: " + windows.error()}});
  }
  // Every owner with a record, tiers first, each once.
  std::set<std::pair<Scope, std::string>> owners;
  if (pauses) {
    for (const Pause& pause : *pauses) owners.emplace(pause.scope, pause.owner.empty() ? "?" : pause.owner);
  }
  if (windows) {
    for (const WindowStore::Stored& stored : *windows) {
      owners.emplace(stored.scope, stored.owner.empty() ? "?" : stored.owner);
    }
  }
  for (const auto& entry : owners) {
    const Scope scope = entry.first;  // not structured bindings: the lambdas below capture them
    const std::string& owner = entry.second;
    if (pauses) {
      for (const Pause& pause : *pauses) {
        if (pause.scope != scope || (pause.owner.empty() ? "?" : pause.owner) != owner) continue;
        out.push_back({scope, owner, {"pause", false, !pause.problem.empty(), pause.describe()}});
        break;
      }
    }
    if (windows && owner != "?") {
      const bool has = std::any_of(windows->begin(), windows->end(), [&](const WindowStore::Stored& stored) {
        return stored.scope == scope && stored.owner == owner;
      });
      if (!has) continue;
      const WindowSet set = scope == Scope::kTier ? WindowStore::select(*windows, owner, "")
                                                  : WindowStore::select(*windows, "", owner);
      const WindowVerdict verdict = evaluate_windows(set, now);
      out.push_back({scope, owner, {"window", verdict.open, verdict.unknown, verdict.reason}});
    } else if (windows && owner == "?") {
      const bool garbled = std::any_of(windows->begin(), windows->end(), [&](const WindowStore::Stored& stored) {
        return stored.scope == scope && stored.owner.empty();
      });
      if (garbled) {
        const WindowVerdict verdict = evaluate_windows(WindowStore::select(*windows, "", ""), now);
        out.push_back({scope, owner, {"window", false, true, verdict.reason}});
      }
    }
  }
  return out;
}

}  // namespace skopos::driver
