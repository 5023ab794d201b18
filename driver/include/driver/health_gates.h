// Health gates: whether the cluster is healthy enough for a host to go (before it takes
// its tier slot) and for the next one to follow (before it gives the slot back after its
// recovery). Each gate fails closed: one that cannot be evaluated -- unreachable, an
// error, an answer that is not what the API documents -- is a closed gate, and the
// reason says which and why.
//
//   a Prometheus query   GET /api/v1/query: open when it returns no series, or (with a
//                        bound) when every value is at most the bound
//   firing alerts        GET /api/v2/alerts of Alertmanager: every alert not suppressed
//                        (silenced and inhibited ones are; one not yet processed counts:
//                        fail closed; pending alerts never reach Alertmanager), matching a
//                        selector; alerts matching an ignore selector (those the drain
//                        itself causes) do not count
//   a soak time          after a host of the tier came back from its reboot, the next
//                        may start only this long after (the time is in etcd, written by
//                        the agent that came back)
//
// Selectors are Alertmanager's matchers, comma-separated: severity="critical",
// team=~"db|web", alertname!="Watchdog" (quotes optional).
//
// Not thread-safe: one per thread (each holds its HTTP clients).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "driver/etcd_client.h"
#include "driver/gate_state.h"
#include "skopos/function_ref.h"
#include "skopos/http_client.h"
#include "skopos/result.h"

namespace re2 {
class RE2;
}

namespace skopos::driver {

// One label matcher of an alert selector.
struct AlertMatcher {
  enum class Op : std::uint8_t { kEqual, kNotEqual, kRegex, kNotRegex };
  std::string label;
  Op op = Op::kEqual;
  std::string value;
  // The regex, compiled once (RE2, Alertmanager's own dialect: linear time, anchored as
  // Alertmanager anchors it).
  std::shared_ptr<const re2::RE2> regex;

  bool matches(const std::vector<std::pair<std::string, std::string>>& labels) const;
  std::string text() const;  // as Alertmanager's API takes it: label="value"
};
// "severity=critical,team=~"db|web"": the error names the matcher that is wrong.
Result<std::vector<AlertMatcher>, std::string> parse_alert_selector(std::string_view text);

struct HealthGateOptions {
  std::optional<HttpEndpoint> prometheus;
  std::string query;                 // PromQL; "" for none
  std::optional<double> query_max;   // none: the query must return no series
  std::optional<HttpEndpoint> alertmanager;
  std::vector<AlertMatcher> alerts;  // which alerts hold the roll (empty: every alert)
  std::vector<AlertMatcher> ignore;  // alerts that never do (those the drain causes)
  std::chrono::milliseconds timeout{std::chrono::seconds(10)};  // per request to each
  std::chrono::seconds soak{0};      // after a host of the tier is back; 0: none

  bool any() const { return (prometheus && !query.empty()) || alertmanager || soak.count() > 0; }
};

struct HealthVerdict {
  bool open = false;
  std::string reason;  // open: what was checked; closed: which gate and why
  // When a closed gate may open by itself (the soak's end); nullopt: when it changes.
  std::optional<std::chrono::system_clock::time_point> opens_at;
  bool unknown = false;  // closed because it could not be evaluated
  // Each configured gate ("soak", "query", "alerts") evaluated on its own (check()).
  std::vector<GateState> gates;
};

// The soak's record: when a host of a tier last came back from a reboot.
// P/soak/<tier> {"at": unix seconds, "hostname"}.
class SoakRecord {
 public:
  SoakRecord(EtcdClient& etcd, std::string prefix) : etcd_(etcd), prefix_(std::move(prefix)) {}
  Result<void, std::string> back(const std::string& tier, const std::string& hostname, std::int64_t at);
  // {at, hostname}; nullopt when no host of the tier came back yet.
  Result<std::optional<std::pair<std::int64_t, std::string>>, std::string> last(const std::string& tier);

 private:
  EtcdClient& etcd_;
  std::string prefix_;
};

class HealthGates {
 public:
  // `soak`: where the soak's record is read (may be null when options.soak is 0).
  static Result<std::unique_ptr<HealthGates>, std::string> create(HealthGateOptions options, SoakRecord* soak,
                                                                   std::string tier);
  // Every gate, in order (soak, query, alerts), each evaluated (in `gates`); the first
  // closed one decides. `now` is the wall clock (injected for tests); `between` is
  // called before each request to a server (the agent's sign of life: each may take
  // the whole timeout).
  HealthVerdict check(std::chrono::system_clock::time_point now, FunctionRef<void()> between = [] {});

 private:
  HealthGates(HealthGateOptions options, SoakRecord* soak, std::string tier);
  HealthVerdict check_all(std::chrono::system_clock::time_point now, FunctionRef<void()> between);
  HealthVerdict check_query();
  HealthVerdict check_alerts();
  HealthVerdict check_soak(std::chrono::system_clock::time_point now);

  HealthGateOptions options_;
  SoakRecord* soak_;
  std::string tier_;
  std::unique_ptr<HttpClient> prometheus_;
  std::unique_ptr<HttpClient> alertmanager_;
};

// Percent-encodes `text` for a URL's query string (RFC 3986 unreserved kept).
std::string url_query_escape(std::string_view text);

}  // namespace skopos::driver
