#include "driver/drain.h"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <random>
#include <sstream>
#include <set>

#include <simdjson.h>

#include "skopos/http_client.h"
#include "skopos/cli_args.h"
#include "skopos/enum_names.h"
#include "skopos/json_writer.h"
#include "skopos/log.h"

namespace skopos::driver {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::pair<DrainPhase, const char*> kPhaseNames[] = {
    {DrainPhase::kHostLock, "host-lock"},         {DrainPhase::kClusterLock, "cluster-lock"},
    {DrainPhase::kBudget, "budget"},              {DrainPhase::kAnnounce, "announce"},
    {DrainPhase::kSurge, "surge"},                {DrainPhase::kFence, "fence"},
    {DrainPhase::kWait, "wait"},
    {DrainPhase::kStop, "stop"},                  {DrainPhase::kReleaseTasks, "release-tasks"},
    {DrainPhase::kTakeDown, "take-down"},         {DrainPhase::kDrained, "drained"},
    {DrainPhase::kReboot, "reboot"},              {DrainPhase::kRecoverChecks, "recover-checks"},
    {DrainPhase::kSurgeBack, "surge-back"},       {DrainPhase::kUnfence, "unfence"},
    {DrainPhase::kBringUp, "bring-up"},
    {DrainPhase::kAgentBack, "agent-back"},       {DrainPhase::kAppsHealthy, "apps-healthy"},
    {DrainPhase::kReleaseLocks, "release-locks"}, {DrainPhase::kDone, "done"},
};

constexpr std::pair<DrainKind, const char*> kKindTokens[] = {
    {DrainKind::kReboot, "REBOOT"}, {DrainKind::kDrain, "DRAIN"}, {DrainKind::kBooster, "BOOSTER"}};

constexpr std::pair<MesosMachine::Mode, const char*> kMesosModeNames[] = {
    {MesosMachine::Mode::kNone, "none"}, {MesosMachine::Mode::kSchedule, "schedule"},
    {MesosMachine::Mode::kDrainApi, "drain-api"}};

constexpr std::pair<DrainError::Kind, const char*> kErrorKindNames[] = {
    {DrainError::Kind::kFailed, "failed"},           {DrainError::Kind::kRefused, "refused"},
    {DrainError::Kind::kTimedOut, "timed-out"},      {DrainError::Kind::kInterrupted, "interrupted"},
    {DrainError::Kind::kUsage, "usage"},             {DrainError::Kind::kGated, "gated"}};

constexpr std::pair<HookPoint, const char*> kHookNames[] = {{HookPoint::kPreDrain, "pre-drain"},
                                                           {HookPoint::kDrained, "drained"},
                                                           {HookPoint::kPreReboot, "pre-reboot"},
                                                           {HookPoint::kPostBoot, "post-boot"}};

// Who still holds connections, for people: the busiest containers with their counts
// and the oldest peer -- "web-1 3, api 1; oldest 10.0.0.7:51234 -> web-1 (31 s)".
std::string still_holding(const WaitProgress& progress) {
  std::string out;
  for (const ContainerCount* c : progress.busiest(5)) {
    if (c->inbound == 0) continue;
    out += (out.empty() ? "" : ", ") + c->name + " " + (c->inbound < 0 ? "?" : std::to_string(c->inbound));
  }
  if (!progress.oldest_peer.empty()) out += (out.empty() ? "oldest " : "; oldest ") + progress.oldest_peer;
  return out;
}

DrainPhase next(DrainPhase phase) { return static_cast<DrainPhase>(static_cast<int>(phase) + 1); }

std::string join(const std::vector<std::string>& items, const char* separator = ",") {
  std::string out;
  for (const std::string& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

bool parse_int(const std::string& text, std::int64_t& value) {
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return !text.empty() && ec == std::errc{} && ptr == text.data() + text.size();
}

std::string ports_text(const std::vector<std::uint16_t>& ports) {
  std::string out;
  for (const std::uint16_t port : ports) {
    if (!out.empty()) out += ",";
    out += std::to_string(port);
  }
  return out;
}

std::string seconds_text(std::chrono::milliseconds duration) {
  const auto ms = duration.count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms / 1000) + "." + std::to_string(ms % 1000 / 100) + "s";
}

}  // namespace

const char* drain_error_kind_name(DrainError::Kind kind) { return enum_name(kErrorKindNames, kind, "failed"); }

DrainError drain_error_from(const OutsideError& error, std::string_view what) {
  DrainError::Kind kind = DrainError::Kind::kFailed;
  if (error.kind == OutsideError::Kind::kTimedOut) kind = DrainError::Kind::kTimedOut;
  if (error.refused_as_wrong()) kind = DrainError::Kind::kRefused;
  // As operators write the systems' names.
  std::string system = error.system;
  if (system == "mesos") system = "Mesos";
  if (system == "marathon") system = "Marathon";
  if (system == "docker") system = "Docker";
  return {kind, system + " " + std::string(what) + ": " + error.message};
}

const char* mesos_mode_name(MesosMachine::Mode mode) { return enum_name(kMesosModeNames, mode, "none"); }

bool parse_mesos_mode(const std::string& text, MesosMachine::Mode& mode) {
  const auto parsed = enum_value(kMesosModeNames, text);
  if (parsed) mode = *parsed;
  return parsed.has_value();
}

const char* drain_kind_token(DrainKind kind) { return enum_name(kKindTokens, kind, "DRAIN"); }

bool parse_drain_kind(const std::string& token, DrainKind& kind) {
  const auto parsed = enum_value(kKindTokens, token);
  if (parsed) kind = *parsed;
  return parsed.has_value();
}

const char* tier_name(Tier tier) { return enum_name(kTierNames, tier, "worker"); }

std::optional<Tier> parse_tier(std::string_view name) { return enum_value(kTierNames, name); }

const char* drain_phase_name(DrainPhase phase) { return enum_name(kPhaseNames, phase); }

bool parse_drain_phase(const std::string& name, DrainPhase& phase) {
  const auto parsed = enum_value(kPhaseNames, name);
  if (parsed) phase = *parsed;
  return parsed.has_value();
}

const char* hook_point_name(HookPoint point) { return enum_name(kHookNames, point); }

std::optional<HookPoint> parse_hook_point(std::string_view name) { return enum_value(kHookNames, std::string(name)); }

std::string new_drain_id() {
  std::random_device random;
  const std::uint64_t value = (static_cast<std::uint64_t>(random()) << 32) ^ random();
  char text[20];
  std::snprintf(text, sizeof text, "d-%016llx", static_cast<unsigned long long>(value));
  return text;
}

// ---- facts ---------------------------------------------------------------------------

namespace {

// "pre-drain=done,drained=started"
std::string hooks_text(const std::map<std::string, std::string>& hooks) {
  std::string out;
  for (const auto& [point, state] : hooks) out += (out.empty() ? "" : ",") + point + "=" + state;
  return out;
}

// "/web=1:up,/api=2:planned" (Marathon app ids hold neither '=' nor ',' nor ':')
std::string surges_text(const std::vector<DrainFacts::Surge>& surges) {
  std::string out;
  for (const DrainFacts::Surge& s : surges) {
    out += (out.empty() ? "" : ",") + s.app + "=" + std::to_string(s.added) + ":" + s.state;
  }
  return out;
}

}  // namespace

std::map<std::string, std::string> DrainFacts::to_map() const {
  std::map<std::string, std::string> out;
  out["kind"] = drain_kind_token(kind);
  out["tier"] = tier;
  out["lock"] = lock;
  out["host_lock_revision"] = std::to_string(host_lock_revision);
  out["mesos_mode"] = mesos_mode_name(machine.mode);
  out["mesos_hostname"] = machine.hostname;
  out["mesos_ip"] = machine.ip;
  out["mesos_agent_id"] = machine.agent_id;
  out["fenced_ports"] = ports_text(fenced_ports);
  out["containers"] = join(containers);
  out["apps"] = join(apps);
  out["tasks"] = join(tasks);
  out["leader_moved"] = leader_moved ? "true" : "false";
  out["connections_zero"] = connections_zero ? "true" : "false";
  out["trigger"] = trigger;
  if (!hooks.empty()) out["hooks"] = hooks_text(hooks);
  if (!surges.empty()) out["surges"] = surges_text(surges);
  if (!post_boot_hook.empty()) out["post_boot_hook"] = post_boot_hook;
  return out;
}

std::string DrainFacts::to_json() const {
  std::string out;
  JsonWriter json(out);
  const auto strings = [&](const char* key, const std::vector<std::string>& list) {
    json.key(key).begin_array();
    for (const std::string& item : list) json.value(item);
    json.end_array();
  };
  json.begin_object().key("kind").value(drain_kind_token(kind)).key("tier").value(tier).key("lock").value(lock);
  json.key("host_lock_revision").value(host_lock_revision);
  json.key("mesos_mode").value(mesos_mode_name(machine.mode)).key("mesos_hostname").value(machine.hostname);
  json.key("mesos_ip").value(machine.ip).key("mesos_agent_id").value(machine.agent_id);
  json.key("fenced_ports").begin_array();
  for (const std::uint16_t port : fenced_ports) json.value(static_cast<unsigned>(port));
  json.end_array();
  strings("containers", containers);
  strings("apps", apps);
  strings("tasks", tasks);
  json.key("leader_moved").value(leader_moved).key("connections_zero").value(connections_zero);
  json.key("trigger").value(trigger);
  if (!hooks.empty()) json.key("hooks").value(hooks_text(hooks));
  if (!surges.empty()) json.key("surges").value(surges_text(surges));
  if (!post_boot_hook.empty()) json.key("post_boot_hook").value(post_boot_hook);
  json.end_object();
  return out;
}

Result<DrainFacts, std::string> DrainFacts::from_json(std::string_view object) {
  simdjson::dom::parser parser;
  simdjson::dom::object facts;
  if (parser.parse(object.data(), object.size()).get(facts) != simdjson::SUCCESS) {
    return unexpected(std::string("the facts are not a JSON object"));
  }
  // Scalar facts in the text form from_map() reads: the journals before typed facts wrote
  // exactly that (lists comma-joined too), and both formats then meet the same checks.
  // Lists written as arrays are read item by item afterwards, so an item may hold a comma.
  std::map<std::string, std::string> text;
  std::map<std::string, std::vector<std::string>> lists;
  const auto scalar = [](simdjson::dom::element value, std::string& out) {
    std::string_view s;
    std::int64_t number = 0;
    bool flag = false;
    if (value.get(s) == simdjson::SUCCESS) {
      out.assign(s);
    } else if (value.get(number) == simdjson::SUCCESS) {
      out = std::to_string(number);
    } else if (value.get(flag) == simdjson::SUCCESS) {
      out = flag ? "true" : "false";
    } else {
      return false;
    }
    return true;
  };
  for (auto [key, value] : facts) {
    if (value.is_null()) continue;
    simdjson::dom::array list;
    if (value.get(list) == simdjson::SUCCESS) {
      std::vector<std::string>& items = lists[std::string(key)];
      for (simdjson::dom::element item : list) {
        std::string one;
        if (!scalar(item, one)) {
          return unexpected("fact " + std::string(key) + " holds " + simdjson::minify(item) + ", not a string or number");
        }
        items.push_back(std::move(one));
      }
    } else if (!scalar(value, text[std::string(key)])) {
      return unexpected("fact " + std::string(key) + " is " + simdjson::minify(value) + ", not a string, number or flag");
    }
  }
  auto out = from_map(text);
  if (!out) return out;
  for (auto& [key, items] : lists) {
    if (key == "fenced_ports") {
      for (const std::string& item : items) {
        const auto port = parse_port(item);
        if (!port) return unexpected("fact fenced_ports has '" + item + "', not a port");
        out->fenced_ports.push_back(*port);
      }
    } else if (key == "containers") {
      out->containers = std::move(items);
    } else if (key == "apps") {
      out->apps = std::move(items);
    } else if (key == "tasks") {
      out->tasks = std::move(items);
    } else {
      return unexpected("fact " + key + " is a list; only fenced_ports, containers, apps and tasks are");
    }
  }
  return out;
}

Result<DrainFacts, std::string> DrainFacts::from_map(const std::map<std::string, std::string>& facts) {
  const auto get = [&](const char* name) -> const std::string* {
    const auto it = facts.find(name);
    return it == facts.end() ? nullptr : &it->second;
  };
  DrainFacts out;
  for (const char* required : {"kind", "tier", "lock", "host_lock_revision", "mesos_mode"}) {
    if (get(required) == nullptr) return unexpected("fact '" + std::string(required) + "' is missing");
  }
  if (!parse_drain_kind(*get("kind"), out.kind)) return unexpected("fact kind='" + *get("kind") + "' is not a drain kind");
  out.tier = *get("tier");
  out.lock = *get("lock");
  if (!parse_int(*get("host_lock_revision"), out.host_lock_revision) || out.host_lock_revision < 0) {
    return unexpected("fact host_lock_revision='" + *get("host_lock_revision") + "' is not a revision");
  }
  if (!parse_mesos_mode(*get("mesos_mode"), out.machine.mode)) {
    return unexpected("fact mesos_mode='" + *get("mesos_mode") + "' is not none, schedule or drain-api");
  }
  if (const auto* value = get("mesos_hostname")) out.machine.hostname = *value;
  if (const auto* value = get("mesos_ip")) out.machine.ip = *value;
  if (const auto* value = get("mesos_agent_id")) out.machine.agent_id = *value;
  if (const auto* value = get("fenced_ports")) {
    for (const std::string& text : split_list(*value)) {
      const auto port = parse_port(text);
      if (!port) return unexpected("fact fenced_ports has '" + text + "', not a port");
      out.fenced_ports.push_back(*port);
    }
  }
  if (const auto* value = get("containers")) out.containers = split_list(*value);
  if (const auto* value = get("apps")) out.apps = split_list(*value);
  if (const auto* value = get("tasks")) out.tasks = split_list(*value);
  if (const auto* value = get("leader_moved")) out.leader_moved = *value == "true";
  if (const auto* value = get("connections_zero")) out.connections_zero = *value == "true";
  if (const auto* value = get("trigger")) out.trigger = *value;
  if (const auto* value = get("post_boot_hook")) out.post_boot_hook = *value;
  if (const auto* value = get("hooks")) {
    for (const std::string& item : split_list(*value)) {
      const auto equals = item.find('=');
      const std::string point = item.substr(0, equals);
      const std::string state = equals == std::string::npos ? "" : item.substr(equals + 1);
      if (!parse_hook_point(point) || (state != "started" && state != "done" && state != "failed")) {
        return unexpected("fact hooks has '" + item + "', not <hook point>=started|done|failed");
      }
      out.hooks[point] = state;
    }
  }
  if (const auto* value = get("surges")) {
    for (const std::string& item : split_list(*value)) {
      const auto equals = item.find('=');
      const auto colon = item.rfind(':');
      DrainFacts::Surge surge;
      if (equals != std::string::npos && colon != std::string::npos && colon > equals) {
        surge.app = item.substr(0, equals);
        surge.state = item.substr(colon + 1);
      }
      if (surge.app.empty() || surge.app.front() != '/' ||
          !parse_int(item.substr(equals + 1, colon - equals - 1), surge.added) || surge.added < 1 ||
          (surge.state != "planned" && surge.state != "up" && surge.state != "killing" && surge.state != "down")) {
        return unexpected("fact surges has '" + item + "', not <app>=<instances added>:planned|up|killing|down");
      }
      out.surges.push_back(std::move(surge));
    }
  }
  return out;
}

// ---- overrides -----------------------------------------------------------------------

Result<void, std::string> Drain::apply_overrides(DrainContainer& container,
                                                 const std::map<std::string, std::string>& app_labels,
                                                 std::chrono::seconds default_deadline,
                                                 std::chrono::seconds default_grace) {
  // The container's own label wins over its app's.
  const auto label = [&](const char* name) -> std::optional<std::pair<std::string, std::string>> {
    if (const auto it = container.labels.find(name); it != container.labels.end()) {
      return std::pair{it->second, std::string("container label")};
    }
    if (const auto it = app_labels.find(name); it != app_labels.end()) {
      return std::pair{it->second, std::string("Marathon app label")};
    }
    return std::nullopt;
  };
  const auto duration = [&](const char* name, std::chrono::seconds fallback,
                            std::chrono::seconds& out) -> Result<void, std::string> {
    out = fallback;
    const auto value = label(name);
    if (!value) return {};
    const auto parsed = parse_duration(value->first);
    if (!parsed) {
      return unexpected(value->second + " " + name + "='" + value->first + "' of container '" + container.name +
                        "' is not a duration (write e.g. 90s or 5m)");
    }
    if (*parsed > kMaxOverrideDuration) {
      return unexpected(value->second + " " + name + "='" + value->first + "' of container '" + container.name + "'" +
                        (container.app_id.empty() ? std::string() : " (app '" + container.app_id + "')") +
                        " is above the ceiling of " + std::to_string(kMaxOverrideDuration.count() / 3600) + "h");
    }
    out = std::chrono::duration_cast<std::chrono::seconds>(*parsed);
    return {};
  };
  if (auto ok = duration("skopos.drain-deadline", default_deadline, container.deadline); !ok) return ok;
  if (auto ok = duration("skopos.stop-grace", default_grace, container.grace); !ok) return ok;
  container.ignore_ports.clear();
  if (const auto value = label("skopos.ignore-ports")) {
    for (const std::string& text : split_list(value->first)) {
      const auto port = parse_port(text);
      if (!port) {
        return unexpected(value->second + " skopos.ignore-ports='" + value->first + "' of container '" +
                          container.name + "' has '" + text + "', not a port");
      }
      container.ignore_ports.push_back(*port);
    }
  }
  return {};
}

// ---- the state machine ---------------------------------------------------------------

Drain::Drain(DrainSystems systems, Journal& journal, DrainOptions options,
             std::function<void(const DrainEvent&)> on_event, const std::atomic<bool>& stop)
    : systems_(systems), journal_(journal), options_(std::move(options)), on_event_(std::move(on_event)), stop_(stop) {}

void Drain::emit(DrainEvent::Type type, std::string message, std::map<std::string, std::string> fields) {
  DrainEvent event;
  event.type = type;
  event.phase = phase_;
  event.message = std::move(message);
  event.fields = std::move(fields);
  if (on_event_) on_event_(event);
}

std::string Drain::lock_name() const {
  switch (facts_.kind) {
    case DrainKind::kReboot: return options_.reboot_lock;
    case DrainKind::kBooster: return options_.booster_lock;
    case DrainKind::kDrain: return {};
  }
  return {};
}

std::optional<std::pair<DrainPhase, DrainFacts>> Drain::in_progress(const Journal& journal, std::string* problem) {
  if (!journal.last()) return std::nullopt;
  const JournalEntry& last = *journal.last();
  DrainPhase phase = DrainPhase::kHostLock;
  if (!parse_drain_phase(last.phase, phase)) {
    if (problem) *problem = "journal " + journal.path() + ": phase '" + last.phase + "' is not a drain phase";
    return std::nullopt;
  }
  auto facts = DrainFacts::from_json(last.facts);
  if (!facts) {
    if (problem) *problem = "journal " + journal.path() + ": " + facts.error();
    return std::nullopt;
  }
  facts->fencing_token = last.fencing_token;
  return std::pair{phase, std::move(*facts)};
}

Result<void, DrainError> Drain::record(DrainPhase phase) {
  JournalEntry entry;
  entry.drain_id = drain_id_;
  entry.phase = drain_phase_name(phase);
  entry.fencing_token = facts_.fencing_token;
  entry.boot_id = systems_.host.boot_id();
  entry.at = static_cast<std::int64_t>(std::time(nullptr));
  entry.facts = facts_.to_json();
  if (auto recorded = journal_.record(std::move(entry)); !recorded) {
    return drain_error(DrainError::Kind::kFailed, "journal: " + recorded.error().message() + "; nothing more was done");
  }
  return {};
}

Result<void, DrainError> Drain::enter(DrainPhase phase) {
  phase_ = phase;
  if (stopping()) {
    return drain_error(DrainError::Kind::kInterrupted,
                       std::string("stopped before phase ") + drain_phase_name(phase) + "; run again to resume, or undrain");
  }
  if (phase == DrainPhase::kClusterLock) facts_.lock = lock_name();  // journaled before the wait
  if (auto recorded = record(phase); !recorded) return recorded;
  std::map<std::string, std::string> fields = {{"kind", drain_kind_token(facts_.kind)}, {"drain_id", drain_id_}};
  if (phase == DrainPhase::kHostLock) fields["notify"] = "started";
  emit(DrainEvent::Type::kPhase, drain_phase_name(phase), std::move(fields));
  return guard(phase);
}

Result<void, DrainError> Drain::guard(DrainPhase phase) {
  if (facts_.fencing_token != 0 && !facts_.lock.empty()) {
    auto guarded = systems_.locks.guard(facts_.lock, facts_.tier, facts_.fencing_token, drain_phase_name(phase));
    if (!guarded) {
      return drain_error(guarded.error().kind, "lock guard before " + std::string(drain_phase_name(phase)) + ": " +
                                                   guarded.error().message);
    }
    return {};
  }
  if (facts_.host_lock_revision != 0) {
    auto host = systems_.locks.host_status();
    if (!host) return unexpected(std::move(host).error());
    if (!host->locked || host->token != drain_kind_token(facts_.kind) || host->revision != facts_.host_lock_revision) {
      return drain_error(DrainError::Kind::kRefused,
                         "lock guard before " + std::string(drain_phase_name(phase)) + ": this host's " +
                             drain_kind_token(facts_.kind) + " lock (revision " +
                             std::to_string(facts_.host_lock_revision) + ") is no longer held" +
                             (host->locked ? " (now " + host->token + ", revision " + std::to_string(host->revision) + ")"
                                           : ""));
    }
  }
  return {};
}

Result<std::vector<DrainContainer>, DrainError> Drain::targets(const HostTasks& tasks) {
  auto running = systems_.containers.running();
  if (!running) return unexpected(std::move(running).error());
  std::map<std::string, const HostTasks::App*> apps;
  for (const HostTasks::App& app : tasks.apps) apps.emplace(app.id, &app);
  static const std::map<std::string, std::string> kNoLabels;
  for (DrainContainer& container : *running) {
    const auto app = apps.find(container.app_id);
    auto ok = apply_overrides(container, app == apps.end() ? kNoLabels : app->second->labels,
                              options_.connection_deadline, options_.stop_grace);
    if (!ok) return drain_error(DrainError::Kind::kRefused, ok.error());
    if (container.fence_ports.empty()) {
      emit(DrainEvent::Type::kWarning, "container '" + container.name +
                                           "' has no published or task ports: its new connections cannot be fenced");
    }
  }
  return running;
}

namespace {

std::string shortfall_text(const AppShortfall& s) {
  if (!s.problem.empty()) return "app '" + s.app_id + "': " + s.problem;
  return "app '" + s.app_id + "': " + std::to_string(s.healthy_elsewhere) + " healthy elsewhere" +
         (s.healthy_draining == 0 ? std::string()
                                  : " (not counting " + std::to_string(s.healthy_draining) + " on hosts draining now)") +
         ", needs " + std::to_string(s.required);
}

}  // namespace

Result<Drain::Survey, DrainError> Drain::survey(const std::vector<std::string>& draining) {
  Survey out;
  if (systems_.marathon.configured()) {
    auto shortfalls = systems_.marathon.budget(options_.hostname, draining);
    if (!shortfalls) return unexpected(std::move(shortfalls).error());
    out.shortfalls = std::move(*shortfalls);
    auto tasks = systems_.marathon.on_host(options_.hostname);
    if (!tasks) return unexpected(std::move(tasks).error());
    out.tasks = std::move(*tasks);
  }
  auto machine = systems_.mesos.locate(options_.hostname);
  if (!machine) return unexpected(std::move(machine).error());
  out.machine = std::move(*machine);
  if (out.shortfalls) {
    // An app that surges gets its replacements before anything stops: its shortfall is
    // the surge's to cover (checked again once they are healthy), not a refusal.
    auto surges = surge_plan(out.tasks);
    if (!surges) return drain_error(DrainError::Kind::kRefused, surges.error());
    out.surges = std::move(*surges);
    std::vector<AppShortfall> refused;
    for (AppShortfall& shortfall : *out.shortfalls) {
      const bool surged = shortfall.problem.empty() &&
                          std::any_of(out.surges.begin(), out.surges.end(),
                                      [&](const DrainFacts::Surge& s) { return s.app == shortfall.app_id; });
      (surged ? out.surged : refused).push_back(std::move(shortfall));
    }
    out.shortfalls = std::move(refused);
  }
  auto containers = targets(out.tasks);
  if (!containers) return unexpected(std::move(containers).error());
  out.containers = std::move(*containers);
  std::set<std::uint16_t> ports;
  for (const DrainContainer& c : out.containers) ports.insert(c.fence_ports.begin(), c.fence_ports.end());
  out.ports.assign(ports.begin(), ports.end());
  return out;
}

Result<DrainingHosts, DrainError> Drain::draining_now() {
  auto draining = systems_.locks.budget_claims();
  if (!draining) return unexpected(std::move(draining).error());
  // Hosts Mesos has going away (a window or a drain set by hand, another tool) count as
  // draining too. They are outside the claim's atomic step: etcd cannot hold Mesos's state.
  auto in_mesos = systems_.mesos.unavailable_hosts();
  if (!in_mesos) return unexpected(std::move(in_mesos).error());
  for (const std::string& h : *in_mesos) {
    if (!same_host(h, options_.hostname)) draining->hostnames.push_back(h);
  }
  return draining;
}

Result<Drain::Survey, DrainError> Drain::budget_decision(const std::string& token) {
  if (!systems_.marathon.configured()) {
    auto found = survey({});
    if (found) emit(DrainEvent::Type::kWarning, "Marathon is not configured: no disruption budget check, no task release");
    return found;
  }
  // One cluster-wide decision: the hosts draining now (their claims, read at a revision),
  // the check without their tasks, and our claim -- which etcd grants only if no claim
  // came since that read. A claim that came meanwhile means reading and checking again,
  // so two drivers never both spend an app's last healthy instance.
  for (int attempt = 1;; ++attempt) {
    auto draining = draining_now();
    if (!draining) return unexpected(std::move(draining).error());
    auto found = survey(draining->hostnames);
    if (!found) return unexpected(std::move(found).error());
    if (!found->shortfalls->empty()) {
      std::string text;
      for (const AppShortfall& s : *found->shortfalls) text += (text.empty() ? "" : "; ") + shortfall_text(s);
      std::string hosts;
      for (const std::string& h : draining->hostnames) hosts += (hosts.empty() ? "'" : ", '") + h + "'";
      return drain_error(DrainError::Kind::kRefused,
                         "disruption budget: " + text +
                             (hosts.empty() ? std::string() : "; hosts draining now: " + hosts + "; try again once they are back"));
    }
    auto claimed = systems_.locks.claim_budget(*draining, options_.hostname, token);
    if (!claimed) return unexpected(std::move(claimed).error());
    if (*claimed) return found;
    if (attempt == kBudgetAttempts) {
      return drain_error(DrainError::Kind::kFailed, "the disruption budget's claims changed " +
                                                        std::to_string(kBudgetAttempts) +
                                                        " times while checking; run again");
    }
    emit(DrainEvent::Type::kInfo, "another host claimed the disruption budget meanwhile: checking again",
         {{"notify", "waiting"}});
  }
}

Result<DrainResult, DrainError> Drain::run() {
  const auto started = Clock::now();
  std::string problem;
  const auto existing = in_progress(journal_, &problem);
  if (!problem.empty()) return drain_error(DrainError::Kind::kUsage, problem + "; inspect it, or move it away");
  DrainPhase start = DrainPhase::kHostLock;
  if (existing) {
    const auto& [phase, facts] = *existing;
    if (facts.kind != options_.kind) {
      return drain_error(DrainError::Kind::kRefused,
                         std::string("a ") + drain_kind_token(facts.kind) + " drain is in progress (phase " +
                             drain_phase_name(phase) + "); finish it or run 'skopos undrain' first");
    }
    facts_ = facts;
    drain_id_ = journal_.last()->drain_id;
    phase_ = phase;
    // The reboot entry was written in the boot that was to end; another boot now means
    // the reboot happened.
    const bool rebooted = phase == DrainPhase::kReboot && journal_.last()->boot_id != systems_.host.boot_id();
    if (phase > DrainPhase::kReboot || rebooted) {
      emit(DrainEvent::Type::kInfo, phase == DrainPhase::kReboot ? "this host rebooted (boot id changed): recovering"
                                                                 : "recovery in progress: resuming it");
      return recover(true);
    }
    start = phase;
    // Drained -- unless its drained hook has not run to its end yet (failed, or the
    // driver stopped in it): then the phase is run again for it.
    const auto drained_hook = facts_.hooks.find(hook_point_name(HookPoint::kDrained));
    const bool drained_hook_pending = !options_.hooks[static_cast<std::size_t>(HookPoint::kDrained)].argv.empty() &&
                                      (drained_hook == facts_.hooks.end() || drained_hook->second != "done");
    if (phase == DrainPhase::kDrained && options_.kind != DrainKind::kReboot && !drained_hook_pending) {
      emit(DrainEvent::Type::kInfo, "already drained (drain '" + drain_id_ + "'); 'skopos undrain' brings it back");
      DrainResult result;
      result.reached = phase;
      result.facts = facts_;
      return result;
    }
    if (!options_.dry_run) {
      emit(DrainEvent::Type::kInfo, "resuming drain '" + drain_id_ + "' at phase " + drain_phase_name(phase),
           {{"drain_id", drain_id_}, {"phase", drain_phase_name(phase)}});
    }
  } else {
    drain_id_ = new_drain_id();
    facts_.kind = options_.kind;
    facts_.tier = tier_name(options_.tier);
    facts_.trigger = options_.trigger;
    // A reboot's validation after the boot is journaled now: whoever recovers the host
    // (the agent, another configuration) runs the same.
    if (options_.kind == DrainKind::kReboot) {
      const auto& argv = options_.hooks[static_cast<std::size_t>(HookPoint::kPostBoot)].argv;
      facts_.post_boot_hook = argv.empty() ? "-" : join(argv, " ");  // "-": none
    }
  }
  if (options_.dry_run) {
    if (auto planned = plan(); !planned) return unexpected(std::move(planned).error());
    DrainResult result;
    result.reached = start;
    result.facts = facts_;
    return result;
  }
  const DrainPhase last = options_.kind == DrainKind::kReboot ? DrainPhase::kReboot : DrainPhase::kDrained;
  for (DrainPhase phase = start; phase <= last; phase = next(phase)) {
    if (phase == DrainPhase::kSurge && facts_.surges.empty()) continue;  // nothing surges: no phase to show
    if (auto entered = enter(phase); !entered) return unexpected(std::move(entered).error());
    auto done = step(phase);
    if (!done) {
      const auto kind = done.error().kind;
      if ((kind == DrainError::Kind::kRefused || kind == DrainError::Kind::kTimedOut) && phase == DrainPhase::kSurge) {
        // The replacements did not come (no host could take them, a deployment held the
        // app): nothing was stopped yet. Every surge is taken back, the host is brought
        // back and the locks given back -- the drain is refused, leaving nothing behind.
        emit(DrainEvent::Type::kWarning, done.error().message + "; taking the surges back and giving everything back");
        if (auto undone = recover_steps(DrainPhase::kRecoverChecks, false, false); !undone) {
          emit(DrainEvent::Type::kWarning, "could not give everything back: " + undone.error().message +
                                               "; 'skopos undrain' finishes it");
        }
      } else if ((kind == DrainError::Kind::kRefused || kind == DrainError::Kind::kTimedOut ||
           kind == DrainError::Kind::kGated) &&
          phase <= DrainPhase::kBudget) {
        // Nothing but the locks was taken and the answer is final (refused, or no slot
        // in time): give them back, so the drain leaves nothing behind. A host lock
        // refused to us was never ours. A failure (etcd, Docker, Mesos unreachable)
        // keeps the journal: running again resumes, undrain gives everything back.
        const bool nothing_taken = phase == DrainPhase::kHostLock && done.error().kind == DrainError::Kind::kRefused;
        emit(DrainEvent::Type::kWarning, done.error().message + (nothing_taken ? "" : "; releasing the locks taken"));
        auto undone = nothing_taken ? journal_finish() : recover_steps(DrainPhase::kReleaseLocks, false, false);
        if (!undone) emit(DrainEvent::Type::kWarning, "could not give the locks back: " + undone.error().message);
      }
      if (done.error().kind != DrainError::Kind::kInterrupted && done.error().kind != DrainError::Kind::kGated) {
        systems_.host.notify(drain_kind_token(facts_.kind), std::string("failed at ") + drain_phase_name(phase), drain_id_);
      }
      return unexpected(std::move(done).error());
    }
  }
  DrainResult result;
  result.reached = phase_;
  result.facts = facts_;
  result.wait = wait_;
  result.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  result.rebooting = phase_ == DrainPhase::kReboot;
  result.fence_reapplied = fence_reapplied_;
  return result;
}

Result<void, DrainError> Drain::step(DrainPhase phase) {
  switch (phase) {
    case DrainPhase::kHostLock: return take_host_lock();
    case DrainPhase::kClusterLock: return take_cluster_lock();
    case DrainPhase::kBudget: return check_budget();
    case DrainPhase::kAnnounce: return announce();
    case DrainPhase::kSurge: return surge();
    case DrainPhase::kFence: return fence();
    case DrainPhase::kWait: return wait_for_connections();
    case DrainPhase::kStop: return stop_containers();
    case DrainPhase::kReleaseTasks: return release_tasks();
    case DrainPhase::kTakeDown: return take_down();
    case DrainPhase::kDrained: return drained();
    case DrainPhase::kReboot: return reboot();
    default:
      return drain_error(DrainError::Kind::kUsage, std::string("phase ") + drain_phase_name(phase) + " is not a drain step");
  }
}

// ---- the decisions the phases and the dry run share -----------------------------------

Result<Drain::Verdict, DrainError> Drain::zookeeper_verdict() {
  if (options_.tier != Tier::kControl) return Verdict{};
  std::string summary;
  auto healthy = systems_.host.zookeeper_healthy(summary);
  if (!healthy) return unexpected(std::move(healthy).error());
  if (!*healthy) {
    return Verdict{true, "ZooKeeper is not healthy (" + summary + "): taking a control host down could lose its quorum"};
  }
  return Verdict{false, "ZooKeeper is healthy (" + summary + ")"};
}

Drain::Verdict Drain::mesos_verdict(const MesosMachine& machine) const {
  if (!systems_.mesos.configured() || machine.mode != MesosMachine::Mode::kNone) return Verdict{};
  // A worker's tasks are Mesos's: draining a host Mesos does not know by this name would
  // tell Mesos nothing and leave its offers coming. Other tiers may run outside Mesos.
  if (options_.tier == Tier::kWorker) {
    return Verdict{true, "Mesos knows no agent or machine named '" + options_.hostname +
                             "'; give the name it registered with (--hostname)"};
  }
  return Verdict{false, "Mesos knows no agent named '" + options_.hostname + "': not telling Mesos"};
}

Result<std::optional<std::string>, DrainError> Drain::leader_here() {
  if (options_.tier != Tier::kControl || !systems_.marathon.configured() || options_.marathon_self.empty()) {
    return std::optional<std::string>{};
  }
  auto leader = systems_.marathon.leader();
  if (!leader) return unexpected(std::move(leader).error());
  if (*leader != options_.marathon_self) return std::optional<std::string>{};
  return std::optional<std::string>{*leader};
}

bool Drain::marks_gone() const { return facts_.kind == DrainKind::kBooster && options_.mark_gone; }

// ---- the drain's phases ---------------------------------------------------------------

Result<void, DrainError> Drain::take_host_lock() {
  const std::string token = drain_kind_token(facts_.kind);
  auto host = systems_.locks.host_lock(token);
  if (!host) return unexpected(std::move(host).error());
  facts_.host_lock_revision = host->revision;
  emit(DrainEvent::Type::kInfo, "host locked for " + token, {{"revision", std::to_string(host->revision)}});
  return {};
}

Result<void, DrainError> Drain::take_cluster_lock() {
  // The lock is named in this phase's journal entry (enter() wrote it before the wait),
  // and the fencing token is journaled the moment the slot is granted: a stop or crash
  // at any instant leaves undrain knowing what to give back (it releases this machine's
  // slot of the named group, whatever its token).
  if (facts_.lock.empty()) return {};
  // The start gate, before joining the line and again with the slot held: the window
  // may have closed while this host waited. Closed: the slot goes back (run()), and the
  // drain ends having changed nothing.
  if (auto gated = check_start_gate(); !gated) return gated;
  emit(DrainEvent::Type::kInfo, "waiting (up to " + seconds_text(options_.lock_wait) + ") for a slot of lock '" +
                                    facts_.lock + "' group '" + facts_.tier + "'");
  // In slices of the stuck report's interval: between them the wait keeps its place in
  // line (on this driver's liveness lease), and a long one says who holds the slots.
  const auto since = Clock::now();
  const auto deadline = since + options_.lock_wait;
  std::chrono::milliseconds next_stuck = options_.stuck_after;
  Result<std::int64_t, DrainError> token_held = drain_error(DrainError::Kind::kTimedOut, "");
  const std::string waiting_for = "waiting for a slot of lock '" + facts_.lock + "' group '" + facts_.tier + "'";
  for (;;) {
    if (stopping()) {
      return drain_error(DrainError::Kind::kInterrupted,
                         "stopped while " + waiting_for + "; run again to resume, or undrain");
    }
    const auto slice_end =
        options_.stuck_after.count() > 0 ? std::min(deadline, since + next_stuck) : deadline;
    token_held = systems_.locks.acquire(facts_.lock, facts_.tier, drain_kind_token(facts_.kind), slice_end, stop_);
    if (token_held || Clock::now() >= deadline) break;
    const DrainError::Kind kind = token_held.error().kind;
    if (kind == DrainError::Kind::kFailed) {
      // etcd away at a slice's end: the wait as a whole keeps trying until its own
      // deadline, as one acquire over the whole wait would have.
      emit(DrainEvent::Type::kWarning, waiting_for + ": " + token_held.error().message + "; trying again");
      for (int i = 0; i < 20 && !stopping(); ++i) std::this_thread::sleep_for(50ms);
      continue;
    }
    if (kind != DrainError::Kind::kTimedOut) break;  // refused, interrupted: as the acquire says
    if (stopping()) continue;                       // said at the top
    auto holders = systems_.locks.describe(facts_.lock, facts_.tier);
    stuck_check(since, next_stuck, waiting_for, holders ? *holders : "holders unknown: " + holders.error().message);
  }
  if (!token_held) return unexpected(std::move(token_held).error());
  facts_.fencing_token = *token_held;
  if (auto recorded = record(DrainPhase::kClusterLock); !recorded) return recorded;
  emit(DrainEvent::Type::kInfo, "holding lock '" + facts_.lock + "' group '" + facts_.tier + "'",
       {{"fencing_token", std::to_string(*token_held)}});
  return check_start_gate();
}

Result<void, DrainError> Drain::check_start_gate() {
  if (!options_.start_gate) return {};
  const StartGateVerdict verdict = options_.start_gate();
  if (!verdict.open) return drain_error(DrainError::Kind::kGated, "not starting: " + verdict.reason);
  emit(DrainEvent::Type::kInfo, "start gate open: " + verdict.reason);
  return {};
}

Result<void, DrainError> Drain::check_budget() {
  // Read-only: what is here, and whether taking it away is allowed. Everything later
  // phases need is put into the facts, so it is journaled before any side effect.
  auto zookeeper = zookeeper_verdict();
  if (!zookeeper) return unexpected(std::move(zookeeper).error());
  if (zookeeper->refused) return drain_error(DrainError::Kind::kRefused, zookeeper->text);
  auto found = budget_decision(drain_kind_token(facts_.kind));
  if (!found) return unexpected(std::move(found).error());
  if (const Verdict mesos = mesos_verdict(found->machine); mesos.refused) {
    return drain_error(DrainError::Kind::kRefused, mesos.text);
  } else if (!mesos.text.empty()) {
    emit(DrainEvent::Type::kWarning, mesos.text);
  }
  host_tasks_ = std::move(found->tasks);
  containers_ = std::move(found->containers);
  facts_.machine = found->machine;
  facts_.fenced_ports = found->ports;
  facts_.apps.clear();
  facts_.tasks.clear();
  for (const HostTasks::App& app : host_tasks_.apps) {
    facts_.apps.push_back(app.id);
    facts_.tasks.insert(facts_.tasks.end(), app.task_ids.begin(), app.task_ids.end());
  }
  facts_.containers.clear();
  for (const DrainContainer& c : containers_) facts_.containers.push_back(c.id + ":" + c.name);
  facts_.surges = found->surges;
  for (const AppShortfall& s : found->surged) {
    emit(DrainEvent::Type::kInfo, shortfall_text(s) + ": its surge starts the replacements first");
  }
  emit(DrainEvent::Type::kInfo,
       "budget ok: " + std::to_string(facts_.apps.size()) + " app(s), " + std::to_string(containers_.size()) +
           " container(s), ports " + (facts_.fenced_ports.empty() ? std::string("none") : ports_text(facts_.fenced_ports)) +
           ", Mesos " + mesos_mode_name(facts_.machine.mode));
  // The operator's veto, last before anything is taken away: a refusal gives the locks
  // back (as the budget's does).
  return run_hook(HookPoint::kPreDrain);
}

Result<void, DrainError> Drain::announce() {
  if (facts_.machine.mode != MesosMachine::Mode::kNone) {
    auto announced = systems_.mesos.announce(facts_.machine);
    if (!announced) return unexpected(std::move(announced).error());
  }
  auto leader = leader_here();
  if (!leader) return unexpected(std::move(leader).error());
  if (*leader) {
    emit(DrainEvent::Type::kInfo, "Marathon leader is this host ('" + **leader + "'): abdicating");
    auto moved = systems_.marathon.abdicate(Clock::now() + options_.leader_wait);
    if (!moved) return unexpected(std::move(moved).error());
    facts_.leader_moved = true;
    emit(DrainEvent::Type::kInfo, "Marathon leader is now '" + *moved + "'");
  }
  return {};
}

Result<void, DrainError> Drain::fence() {
  if (facts_.fenced_ports.empty()) {
    emit(DrainEvent::Type::kWarning, "no task ports to fence");
    return {};
  }
  if (auto applied = systems_.fence.apply(facts_.fenced_ports); !applied) return unexpected(std::move(applied).error());
  auto counts = systems_.connections.counts(containers_);
  emit(DrainEvent::Type::kInfo, "fenced ports " + ports_text(facts_.fenced_ports),
       {{"notify", "fenced"},
        {"ports", ports_text(facts_.fenced_ports)},
        {"connections", counts ? std::to_string(counts->total) + (counts->unknown ? "+?" : "") : "?"}});
  return {};
}

Result<void, DrainError> Drain::wait_for_connections() {
  if (auto resumed = resume_containers(); !resumed) return resumed;
  if (containers_.empty()) return {};
  // While waiting, the fence must stay first in its hooks: Docker re-inserts its own
  // FORWARD jumps at the top when it restarts or creates a network, and new connections
  // would then get through. Checked every kFenceCheckInterval (at the progress ticks),
  // applied again when pushed down, and counted.
  auto next_check = Clock::now() + kFenceCheckInterval;
  const auto wait_since = Clock::now();
  std::chrono::milliseconds next_stuck = options_.stuck_after;
  auto outcome = systems_.connections.wait_zero(
      containers_, options_.progress_interval,
      [&](const WaitProgress& progress) {
        if (Clock::now() >= next_check && !facts_.fenced_ports.empty()) {
          next_check = Clock::now() + kFenceCheckInterval;
          auto reapplied = systems_.fence.ensure(facts_.fenced_ports);
          if (!reapplied) {
            emit(DrainEvent::Type::kWarning, "could not check the fence: " + reapplied.error().message);
          } else if (*reapplied) {
            ++fence_reapplied_;
            emit(DrainEvent::Type::kWarning,
                 "the fence was no longer first in its hooks (another program put rules above it): applied again",
                 {{"fence_reapplied", std::to_string(fence_reapplied_)}});
          }
        }
        DrainEvent event;
        event.type = DrainEvent::Type::kProgress;
        event.phase = phase_;
        event.progress = &progress;
        if (on_event_) on_event_(event);
        if (options_.stuck_after.count() > 0 && Clock::now() - wait_since >= next_stuck) {
          const std::string holders = still_holding(progress);
          stuck_check(wait_since, next_stuck, "waiting for inbound connections to close",
                      std::to_string(progress.total) + " left" + (holders.empty() ? "" : ": " + holders));
        }
      },
      stop_);
  if (!outcome) return unexpected(std::move(outcome).error());
  facts_.connections_zero = outcome->all_zero;
  wait_ = *outcome;
  if (outcome->all_zero) {
    emit(DrainEvent::Type::kInfo, "every container reached 0 inbound connections in " + seconds_text(outcome->waited),
         {{"reason", "zero"}, {"waited_ms", std::to_string(outcome->waited.count())}});
  } else {
    // Who still holds connections: the busiest containers and the oldest peer.
    const std::string holders = still_holding(outcome->last);
    emit(DrainEvent::Type::kWarning,
         "deadline reached with " + std::to_string(outcome->last.total) + " inbound connection(s) left" +
             (outcome->last.unknown ? " and " + std::to_string(outcome->last.unknown) + " unknown count(s)" : "") +
             (holders.empty() ? "" : " (" + holders + ")") + ": stopping anyway",
         {{"reason", "deadline"}, {"waited_ms", std::to_string(outcome->waited.count())}, {"notify", "deadline"}});
  }
  return {};
}

Result<void, DrainError> Drain::stop_containers() {
  if (auto resumed = resume_containers(); !resumed) return resumed;
  if (containers_.empty()) return {};
  if (auto stopped = systems_.containers.stop(containers_); !stopped) return unexpected(std::move(stopped).error());
  emit(DrainEvent::Type::kInfo, "stopped " + std::to_string(containers_.size()) + " container(s)");
  return {};
}

Result<void, DrainError> Drain::release_tasks() {
  if (!systems_.marathon.configured() || facts_.tasks.empty()) return {};
  // The surges first: their tasks here killed with scale, so each app shrinks by exactly
  // what its surge added. The rest (and a surge's whose count the operator changed) are
  // killed without scale: Marathon replaces them elsewhere.
  if (auto down = surges_down(true); !down) return down;
  auto released = systems_.marathon.release_tasks(facts_.tasks, Clock::now() + options_.leader_wait, false);
  if (!released) return unexpected(std::move(released).error());
  emit(DrainEvent::Type::kInfo, "Marathon released " + std::to_string(facts_.tasks.size()) + " task(s) of this host");
  return {};
}

Result<void, DrainError> Drain::take_down() {
  if (facts_.machine.mode == MesosMachine::Mode::kNone) return {};
  return systems_.mesos.take_down(facts_.machine, marks_gone());
}

Result<void, DrainError> Drain::drained() {
  if (facts_.kind == DrainKind::kBooster) {
    // Its tasks are gone and replaced elsewhere: its claim on the budget has done its
    // work, and the host is not coming back to withdraw it.
    if (auto withdrawn = systems_.locks.release_budget_claim(); !withdrawn) return unexpected(std::move(withdrawn).error());
    if (!facts_.lock.empty() && facts_.fencing_token != 0) {
      // The booster slot limits drains in progress; a drained host is on its way out.
      auto released = systems_.locks.release(facts_.lock, facts_.tier, facts_.fencing_token);
      if (!released) return unexpected(std::move(released).error());
      facts_.fencing_token = 0;
      facts_.lock.clear();
      if (auto recorded = record(DrainPhase::kDrained); !recorded) return recorded;
    }
  }
  if (auto hooked = run_hook(HookPoint::kDrained); !hooked) return hooked;
  emit(DrainEvent::Type::kDone, "drained", {{"drain_id", drain_id_}, {"notify", "drained"}});
  if (facts_.kind != DrainKind::kReboot) systems_.host.notify(drain_kind_token(facts_.kind), "drained", drain_id_);
  return {};
}

Result<void, DrainError> Drain::reboot() {
  if (auto hooked = run_hook(HookPoint::kPreReboot); !hooked) return hooked;
  if (options_.external_reboot) {
    // The OS's updater reboots (FleetLock): the host is drained and holds its slot, and
    // the journal says so; the updater hears it on its next call.
    emit(DrainEvent::Type::kInfo, "ready for the updater's reboot (boot id " + journal_.last()->boot_id + ")",
         {{"notify", "rebooting"}});
    systems_.host.notify(drain_kind_token(facts_.kind), "rebooting", drain_id_);
    return {};
  }
  emit(DrainEvent::Type::kInfo, "rebooting (boot id " + journal_.last()->boot_id + ")", {{"notify", "rebooting"}});
  systems_.host.notify(drain_kind_token(facts_.kind), "rebooting", drain_id_);
  return systems_.host.reboot();
}

void Drain::stuck_check(Clock::time_point since, std::chrono::milliseconds& next, const std::string& what,
                        const std::string& why) {
  if (options_.stuck_after.count() <= 0) return;
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since);
  if (waited < next) return;
  // Once at stuck_after, then at twice, four times... that long: told, not nagged.
  while (next <= waited) next *= 2;
  const auto minutes = std::chrono::duration_cast<std::chrono::minutes>(waited).count();
  emit(DrainEvent::Type::kWarning,
       "stuck: " + what + " for " + std::to_string(minutes) + " min" + (why.empty() ? "" : " (" + why + ")"),
       {{"notify", "stuck"}, {"stuck_seconds", std::to_string(waited.count() / 1000)}});
}

Result<void, DrainError> Drain::run_hook(HookPoint point) {
  DrainHook hook = options_.hooks[static_cast<std::size_t>(point)];
  if (point == HookPoint::kPostBoot && !facts_.post_boot_hook.empty()) {
    // The validation the drain promised when it went down, whoever recovers it.
    const std::vector<std::string> promised =
        facts_.post_boot_hook == "-" ? std::vector<std::string>{} : split_list(facts_.post_boot_hook, ' ');
    if (hook.argv != promised) {
      emit(DrainEvent::Type::kWarning,
           promised.empty() ? "hook post-boot: none was configured when the drain began; '" + join(hook.argv, " ") +
                                  "', configured here, is not run"
                            : "hook post-boot: running '" + facts_.post_boot_hook +
                                  "', journaled when the drain began (configured here: '" + join(hook.argv, " ") +
                                  "')");
    }
    hook.argv = promised;
  }
  if (hook.argv.empty()) return {};
  const std::string name = hook_point_name(point);
  const std::string what = "hook " + name + " '" + join(hook.argv, " ") + "'";
  // A veto is a refusal (the locks go back); any other hook's failure stops the drain
  // where it is, to be run again or undrained.
  const DrainError::Kind failure =
      point == HookPoint::kPreDrain ? DrainError::Kind::kRefused : DrainError::Kind::kFailed;
  const auto state = facts_.hooks.find(name);
  if (state != facts_.hooks.end() && state->second == "done") {
    emit(DrainEvent::Type::kInfo, what + " ran already (the journal says so)");
    return {};
  }
  if (state != facts_.hooks.end() && state->second == "started" && !hook.idempotent) {
    return drain_error(DrainError::Kind::kFailed,
                       what + " was running when the driver stopped, and is not declared idempotent: not run again. "
                              "Check what it did; then 'skopos undrain' gives the host back, or declare it idempotent "
                              "(--hook-idempotent " + name + ") to run it again");
  }
  // Journaled before it runs: a crash in its middle is known as one.
  facts_.hooks[name] = "started";
  if (auto recorded = record(phase_); !recorded) return recorded;
  std::vector<std::string> environment = {
      "SKOPOS_HOOK=" + name,
      "SKOPOS_MACHINE_ID=" + options_.machine_id,
      "SKOPOS_HOSTNAME=" + options_.hostname,
      "SKOPOS_TIER=" + facts_.tier,
      "SKOPOS_KIND=" + std::string(drain_kind_token(facts_.kind)),
      "SKOPOS_PHASE=" + std::string(drain_phase_name(phase_)),
      "SKOPOS_DRAIN_ID=" + drain_id_,
      "SKOPOS_JOURNAL=" + journal_.path(),
      "SKOPOS_TRIGGER=" + facts_.trigger};
  std::string input;
  JsonWriter json(input);
  json.begin_object().key("hook").value(name).key("machine_id").value(options_.machine_id);
  json.key("hostname").value(options_.hostname).key("tier").value(facts_.tier);
  json.key("kind").value(drain_kind_token(facts_.kind)).key("phase").value(drain_phase_name(phase_));
  json.key("drain_id").value(drain_id_).key("journal").value(journal_.path()).key("trigger").value(facts_.trigger);
  json.key("facts").raw_value(facts_.to_json()).end_object();
  input += '\n';
  emit(DrainEvent::Type::kInfo, "running " + what + " (up to " + seconds_text(hook.timeout) + ")");
  auto ran = systems_.host.run_hook(hook.argv, environment, input, hook.timeout, stop_);
  // Its output to the log, a line per event (bounded: a hook that prints a book) --
  // also when it was killed: what it said last is what tells why it hung.
  if (ran) {
    for (const std::string* stream : {&ran->out, &ran->err}) {
      const std::string label = "hook " + name + (stream == &ran->err ? " (stderr): " : ": ");
      std::istringstream text(*stream);
      int lines = 0;
      for (std::string line; std::getline(text, line);) {
        if (++lines > 50) {
          emit(DrainEvent::Type::kInfo, label + "(more lines not shown)");
          break;
        }
        emit(DrainEvent::Type::kInfo, label + line.substr(0, 500));
      }
    }
  }
  if (ran && ran->stopped) {
    // Stopped in its middle (SIGTERM, Ctrl-C): as after a crash, the journal keeps it
    // "started" -- run again only when idempotent.
    return drain_error(DrainError::Kind::kInterrupted,
                       "stopped while " + what + " ran (it was ended); run again to resume, or undrain");
  }
  const bool ok = ran && ran->exit_code == 0 && !ran->timed_out;
  facts_.hooks[name] = ok ? "done" : "failed";
  if (auto recorded = record(phase_); !recorded) return recorded;
  if (!ran) return drain_error(failure, what + " did not finish: " + ran.error().message);
  if (ran->timed_out) {
    return drain_error(failure, what + " did not finish within " + seconds_text(hook.timeout) +
                                    " and was killed (its output is above)" +
                                    (point == HookPoint::kPreDrain ? ": the drain is refused" : ""));
  }
  if (!ok) {
    const std::string first = ran->err.substr(0, ran->err.find('\n')).substr(0, 200);
    return drain_error(failure, what + " exited " + std::to_string(ran->exit_code) +
                                    (first.empty() ? "" : " (" + first + ")") +
                                    (point == HookPoint::kPreDrain ? ": the drain is refused" : ""));
  }
  emit(DrainEvent::Type::kInfo, what + " done");
  return {};
}

Result<void, DrainError> Drain::journal_finish() {
  if (auto finished = journal_.finish(); !finished) {
    return drain_error(DrainError::Kind::kFailed, "journal: " + finished.error().message());
  }
  return {};
}

Result<void, DrainError> Drain::resume_containers() {
  // Resumed past the budget phase: the containers it chose, if still running.
  if (!containers_.empty() || facts_.containers.empty()) return {};
  if (host_tasks_.apps.empty() && systems_.marathon.configured()) {
    // For the apps' override labels; without Marathon the containers' own labels apply.
    if (auto tasks = systems_.marathon.on_host(options_.hostname)) host_tasks_ = std::move(*tasks);
  }
  auto running = targets(host_tasks_);
  if (!running) return unexpected(std::move(running).error());
  std::set<std::string> chosen;
  for (const std::string& entry : facts_.containers) chosen.insert(entry.substr(0, entry.find(':')));
  for (DrainContainer& container : *running) {
    if (chosen.count(container.id) != 0) containers_.push_back(std::move(container));
  }
  return {};
}

Result<void, DrainError> Drain::plan() {
  const std::string token = drain_kind_token(facts_.kind);
  const auto line = [&](std::string text) { emit(DrainEvent::Type::kPlan, std::move(text)); };
  line(std::string("drain ") + token + " of '" + options_.hostname + "', tier " + tier_name(options_.tier) +
       " (dry run: nothing is changed)");
  auto host = systems_.locks.host_status();
  if (!host) return unexpected(std::move(host).error());
  line("host lock: take " + token + (host->locked ? " (now held for " + host->token + ")" : " (now free)"));
  if (const std::string lock = lock_name(); !lock.empty()) {
    auto group = systems_.locks.describe(lock, tier_name(options_.tier));
    if (!group) return unexpected(std::move(group).error());
    line("cluster lock: a slot of '" + lock + "' group '" + tier_name(options_.tier) + "' (" + *group + ")");
  }
  // Each phase's decision as the drain makes it, with what it sees now.
  auto zookeeper = zookeeper_verdict();
  if (!zookeeper) return unexpected(std::move(zookeeper).error());
  if (!zookeeper->text.empty()) line((zookeeper->refused ? "REFUSED: " : "") + zookeeper->text);
  // The dry run checks as the drain would (without the hosts draining now), but claims nothing.
  std::vector<std::string> draining;
  if (systems_.marathon.configured()) {
    auto now = draining_now();
    if (!now) return unexpected(std::move(now).error());
    draining = std::move(now->hostnames);
    for (const std::string& h : draining) line("draining now (its tasks do not count): '" + h + "'");
  }
  auto found = survey(draining);
  if (!found) return unexpected(std::move(found).error());
  if (found->shortfalls) {
    for (const HostTasks::App& app : found->tasks.apps) {
      const bool surges = std::any_of(found->surges.begin(), found->surges.end(),
                                      [&](const DrainFacts::Surge& s) { return s.app == app.id; });
      const std::string here = std::to_string(app.task_ids.size());
      line("app '" + app.id + "': " + here + " task(s) here of " + std::to_string(app.instances) +
           (surges ? "; surge: scaled up by " + here + " before the fence, waiting (up to " +
                         seconds_text(options_.surge_timeout) +
                         ") until the new instances are healthy elsewhere; scaled back by " + here +
                         " at release-tasks (this host's tasks killed with scale)"
                   : "; Marathon will replace them elsewhere"));
    }
    for (const AppShortfall& s : found->surged) line("budget: " + shortfall_text(s) + ": covered by its surge");
    for (const AppShortfall& s : *found->shortfalls) line("REFUSED by the budget: " + shortfall_text(s));
    if (found->shortfalls->empty()) line("disruption budget: ok");
  } else {
    line("Marathon: not configured (no budget check, no task release)");
  }
  if (const Verdict mesos = mesos_verdict(found->machine); !mesos.text.empty()) {
    line((mesos.refused ? "REFUSED: " : "Mesos: ") + mesos.text);
  }
  for (const std::string& call : systems_.mesos.describe(found->machine, marks_gone())) line("Mesos: " + call);
  // A plan goes on where a read fails: it says what it could not find out.
  if (auto leader = leader_here(); !leader) {
    line("Marathon leader: unknown (" + leader.error().message + ")");
  } else if (*leader) {
    line("Marathon leader is this host ('" + **leader + "'): it abdicates, and the drain waits for another");
  }
  const std::vector<DrainContainer>& containers = found->containers;
  for (const DrainContainer& c : containers) {
    line("container '" + c.name + "' (" + c.id.substr(0, 12) + ", " + (c.host_network ? "host" : "bridge") +
         "): fence ports " + (c.fence_ports.empty() ? std::string("none") : ports_text(c.fence_ports)) + ", deadline " +
         seconds_text(c.deadline) + ", stop grace " + seconds_text(c.grace) +
         (c.ignore_ports.empty() ? "" : ", ignoring ports " + ports_text(c.ignore_ports)));
  }
  if (containers.empty()) line("containers: none to take out");
  if (!found->ports.empty()) {
    auto rules = systems_.fence.plan(found->ports);
    if (!rules) return unexpected(std::move(rules).error());
    line("fence:\n" + *rules);
  }
  auto counts = systems_.connections.counts(containers);
  if (counts) {
    for (const ContainerCount& c : counts->containers) {
      line("now: '" + c.name + "' " + (c.inbound < 0 ? std::string("? (unknown)") : std::to_string(c.inbound)) +
           " inbound connection(s)");
    }
  } else {
    line("now: connection counts unknown (" + counts.error().message + ")");
  }
  if (facts_.kind == DrainKind::kReboot) line("then: reboot, holding the cluster lock; recovery after boot");
  for (std::size_t i = 0; i < kHookPoints; ++i) {
    const DrainHook& hook = options_.hooks[i];
    if (hook.argv.empty()) continue;
    line(std::string("hook ") + hook_point_name(static_cast<HookPoint>(i)) + ": '" + join(hook.argv, " ") +
         "' (up to " + seconds_text(hook.timeout) + (hook.idempotent ? ", idempotent" : "") + ")");
  }
  return {};
}

// ---- recovery ------------------------------------------------------------------------

Result<DrainResult, DrainError> Drain::recover(bool wait_apps) {
  const auto started = Clock::now();
  std::string problem;
  const auto existing = in_progress(journal_, &problem);
  if (!problem.empty()) return drain_error(DrainError::Kind::kUsage, problem + "; inspect it, or move it away");
  DrainResult result;
  if (!existing) {
    // Nothing recorded. A fence without a journal is what a crash before the journal
    // existed, or a hand-made fence, leaves: say so, never guess at locks.
    auto fenced = systems_.fence.fenced();
    auto host = systems_.locks.host_status();
    bool clean = true;
    if (fenced && !fenced->empty()) {
      clean = false;
      emit(DrainEvent::Type::kWarning, "no drain in progress, but ports " + ports_text(*fenced) +
                                           " are fenced; 'skopos fence remove' removes the fence");
    }
    // A budget claim without a drain in progress only keeps other hosts from counting
    // this host's tasks: withdraw it.
    if (auto withdrawn = systems_.locks.release_budget_claim(); withdrawn && *withdrawn) {
      clean = false;
      emit(DrainEvent::Type::kWarning, "no drain in progress, but this host held a disruption budget claim: withdrawn");
    }
    if (host && host->locked) {
      clean = false;
      emit(DrainEvent::Type::kWarning, "no drain in progress here, but this host is locked for " + host->token +
                                           "; 'skopos lock host-unlock " + host->token + "' releases it");
    }
    if (clean) emit(DrainEvent::Type::kInfo, "no drain in progress on this host");
    result.reached = DrainPhase::kDone;
    return result;
  }
  facts_ = existing->second;
  drain_id_ = journal_.last()->drain_id;
  // Whether this drain went down (or was to): its reboot phase is in the journal (which
  // is finished below, so look now).
  // And whether it took anything away (announced, fenced, ...): one that ended before
  // that -- refused, timed out, its gate closed -- only gives its locks back, quietly.
  bool went_out = false;
  for (const JournalEntry& entry : journal_.entries()) {
    DrainPhase phase = DrainPhase::kHostLock;
    if (entry.drain_id != drain_id_ || !parse_drain_phase(entry.phase, phase)) continue;
    if (phase == DrainPhase::kReboot) result.rebooted = true;
    if (phase > DrainPhase::kBudget && phase <= DrainPhase::kReboot) went_out = true;
  }
  // The post-boot hook: only after a reboot that happened (the reboot entry was written
  // in another boot than this one: not after a failed pre-reboot hook, nor before the
  // updater's reboot), and again after every boot (a state from an earlier boot is
  // stale). Its command is the one journaled when the drain began, if any.
  const std::string boot = systems_.host.boot_id();
  rebooted_ = std::any_of(journal_.entries().begin(), journal_.entries().end(), [&](const JournalEntry& entry) {
    return entry.drain_id == drain_id_ && entry.phase == drain_phase_name(DrainPhase::kReboot) && entry.boot_id != boot;
  });
  if (journal_.last()->boot_id != boot) facts_.hooks.erase(hook_point_name(HookPoint::kPostBoot));
  const DrainPhase from = std::max(existing->first, DrainPhase::kRecoverChecks);
  emit(DrainEvent::Type::kInfo, "bringing the host back from phase " + std::string(drain_phase_name(existing->first)) +
                                    " (drain '" + drain_id_ + "')");
  if (auto done = recover_steps(from, wait_apps, went_out); !done) return unexpected(std::move(done).error());
  result.reached = DrainPhase::kDone;
  result.facts = facts_;
  result.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  return result;
}

Result<void, DrainError> Drain::wait_until(const std::string& what,
                                           FunctionRef<Result<bool, DrainError>(std::string& last)> ready) {
  emit(DrainEvent::Type::kInfo, "waiting (up to " + seconds_text(options_.recover_timeout) + ") for " + what);
  DeadlineBackoff backoff(200ms, 2000ms, Clock::now() + options_.recover_timeout);
  std::string last;
  const auto since = Clock::now();
  std::chrono::milliseconds next_stuck = options_.stuck_after;
  for (;;) {
    if (stopping()) return drain_error(DrainError::Kind::kInterrupted, "stopped while waiting for " + what);
    auto ok = ready(last);
    if (!ok) return unexpected(std::move(ok).error());
    if (*ok) return {};
    stuck_check(since, next_stuck, "waiting for " + what, last.empty() ? "no reason reported" : last);
    if (!backoff.sleep()) {
      return drain_error(DrainError::Kind::kTimedOut,
                         "gave up waiting for " + what + (last.empty() ? "" : " (" + last + ")") +
                             "; the locks are kept so no other host of the tier goes down; run again to keep waiting");
    }
  }
}

Result<void, DrainError> Drain::recover_steps(DrainPhase from, bool wait_apps, bool announce) {
  announce_ = announce;
  for (DrainPhase phase = from; phase <= DrainPhase::kDone; phase = next(phase)) {
    if (phase == DrainPhase::kDone) {
      phase_ = phase;
      if (auto finished = journal_finish(); !finished) return finished;
      if (!announce) {
        emit(DrainEvent::Type::kInfo, "locks given back", {{"drain_id", drain_id_}});
        return {};
      }
      emit(DrainEvent::Type::kDone, "back in service", {{"drain_id", drain_id_}, {"notify", "recovered"}});
      systems_.host.notify(drain_kind_token(facts_.kind), "recovered", drain_id_);
      return {};
    }
    if (phase == DrainPhase::kSurgeBack &&
        std::all_of(facts_.surges.begin(), facts_.surges.end(), [](const DrainFacts::Surge& s) { return s.state == "down"; })) {
      continue;  // no surge to take back
    }
    if (auto entered = enter(phase); !entered) {
      // Bringing the host back is safe even when the cluster lock was taken from us
      // meanwhile: say so and go on. Everything else stops here.
      if (entered.error().kind != DrainError::Kind::kRefused) return entered;
      emit(DrainEvent::Type::kWarning, entered.error().message + "; recovering anyway");
    }
    if (auto done = recovery_step(phase, wait_apps); !done) return done;
  }
  return {};
}

Result<void, DrainError> Drain::recovery_step(DrainPhase phase, bool wait_apps) {
  switch (phase) {
    case DrainPhase::kRecoverChecks: return recover_checks();
    case DrainPhase::kUnfence: return unfence();
    case DrainPhase::kSurgeBack: return surge_back();
    case DrainPhase::kBringUp: return bring_up();
    case DrainPhase::kAgentBack: return agent_back();
    case DrainPhase::kAppsHealthy: return wait_apps ? apps_healthy() : Result<void, DrainError>{};
    case DrainPhase::kReleaseLocks: return release_locks();
    default: return {};
  }
}

// ---- recovery's phases ----------------------------------------------------------------

Result<void, DrainError> Drain::recover_checks() {
  if (options_.tier != Tier::kControl) return {};
  return wait_until("a healthy ZooKeeper quorum", [&](std::string& last) -> Result<bool, DrainError> {
    return systems_.host.zookeeper_healthy(last);
  });
}

Result<void, DrainError> Drain::unfence() {
  auto removed = systems_.fence.remove();
  if (!removed) return unexpected(std::move(removed).error());
  emit(DrainEvent::Type::kInfo, *removed ? "fence removed" : "no fence to remove");
  return {};
}

Result<void, DrainError> Drain::bring_up() {
  if (facts_.machine.mode == MesosMachine::Mode::kNone) return {};
  return systems_.mesos.bring_up(facts_.machine);
}

Result<void, DrainError> Drain::agent_back() {
  if (facts_.machine.mode == MesosMachine::Mode::kNone || facts_.machine.agent_id.empty()) return {};
  return wait_until("the Mesos agent of '" + facts_.machine.hostname + "' to be registered and active",
                    [&](std::string&) { return systems_.mesos.agent_active(facts_.machine); });
}

Result<void, DrainError> Drain::apps_healthy() {
  if (!systems_.marathon.configured() || facts_.apps.empty()) return {};
  return wait_until("the apps that were here at full healthy strength",
                    [&](std::string& last) -> Result<bool, DrainError> {
                      auto below = systems_.marathon.below_strength(facts_.apps);
                      if (!below) return unexpected(std::move(below).error());
                      last = join(*below, ", ");
                      return below->empty();
                    });
}

Result<void, DrainError> Drain::release_locks() {
  // After a host that went out is back: the health gates before the next host may take
  // its slot (bounded by the recovery's wait; past it the slot is kept, and the roll
  // waits for a person). A drain wound up before it took anything away just lets go.
  // Back from a reboot: the operator's validation first; a failure keeps the slot.
  if (announce_ && rebooted_) {
    if (auto hooked = run_hook(HookPoint::kPostBoot); !hooked) return hooked;
  }
  if (announce_ && options_.release_gate && !facts_.lock.empty()) {
    std::string reason;
    auto healthy = wait_until("the health gates to open before the slot goes back",
                              [&](std::string& last) -> Result<bool, DrainError> {
                                const StartGateVerdict verdict = options_.release_gate();
                                last = reason = verdict.reason;
                                return verdict.open;
                              });
    if (!healthy) return healthy;
    emit(DrainEvent::Type::kInfo, "health gates open: " + reason);
  }
  if (!facts_.lock.empty()) {
    // Token 0 (a stop between the grant and its journal entry): this machine's slot of
    // the group, whatever its token; nothing held is fine.
    auto released = systems_.locks.release(facts_.lock, facts_.tier, facts_.fencing_token);
    if (!released && released.error().kind != DrainError::Kind::kRefused) return unexpected(std::move(released).error());
    if (!released) emit(DrainEvent::Type::kWarning, released.error().message);
  }
  if (auto withdrawn = systems_.locks.release_budget_claim(); !withdrawn) return unexpected(std::move(withdrawn).error());
  auto unlocked = systems_.locks.host_unlock(drain_kind_token(facts_.kind));
  if (!unlocked && unlocked.error().kind != DrainError::Kind::kRefused) return unexpected(std::move(unlocked).error());
  if (!unlocked) emit(DrainEvent::Type::kWarning, unlocked.error().message);
  emit(DrainEvent::Type::kInfo, "locks released");
  return {};
}

}  // namespace skopos::driver
