#include "driver/health_gates.h"

#include <re2/re2.h>
#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <limits>

#include "driver/reboot_windows.h"
#include "skopos/json_writer.h"

namespace skopos::driver {

namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

std::string label_of(const Labels& labels, std::string_view name);

// name{label="value",...}: the value of `name_label` (the metric's __name__, the alert's
// alertname) in front, the other labels in braces.
std::string labels_text(std::string_view name_label, const Labels& labels) {
  std::string out = label_of(labels, name_label) + "{";
  bool first = true;
  for (const auto& [label, value] : labels) {
    if (label == name_label) continue;
    out += (first ? "" : ",") + label + "=\"" + value + "\"";
    first = false;
  }
  return out + "}";
}

Labels read_labels(simdjson::dom::object object) {
  Labels labels;
  for (auto field : object) {
    std::string_view value;
    if (field.value.get(value) == simdjson::SUCCESS) labels.emplace_back(std::string(field.key), std::string(value));
  }
  std::sort(labels.begin(), labels.end());
  return labels;
}

std::string label_of(const Labels& labels, std::string_view name) {
  for (const auto& [label, value] : labels) {
    if (label == name) return value;
  }
  return {};
}

HealthVerdict closed(std::string reason) {
  HealthVerdict verdict;
  verdict.reason = std::move(reason);
  return verdict;
}
HealthVerdict opened(std::string reason) {
  HealthVerdict verdict;
  verdict.open = true;
  verdict.reason = std::move(reason);
  return verdict;
}
// Closed because it could not be evaluated.
HealthVerdict unknown(std::string reason) {
  HealthVerdict verdict = closed(std::move(reason));
  verdict.unknown = true;
  return verdict;
}

// A failed request's reason; `what` names the gate.
std::string unreachable(const std::string& what, const HttpError& error) {
  return what + " cannot be evaluated: " + error.message();
}

std::string trim(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  return std::string(text);
}

}  // namespace

// ---- selectors ----------------------------------------------------------------------------

bool AlertMatcher::matches(const Labels& labels) const {
  const std::string actual = label_of(labels, label);  // a missing label matches as ""
  switch (op) {
    case Op::kEqual: return actual == value;
    case Op::kNotEqual: return actual != value;
    case Op::kRegex:
    case Op::kNotRegex: {
      // Alertmanager anchors its regexes: the whole value must match.
      const bool hit = regex != nullptr && re2::RE2::FullMatch(actual, *regex);
      return op == Op::kRegex ? hit : !hit;
    }
  }
  return false;
}

std::string AlertMatcher::text() const {
  const char* ops[] = {"=", "!=", "=~", "!~"};
  std::string out;
  JsonWriter(out).value(value);  // a JSON string is a valid quoted matcher value
  return label + ops[static_cast<int>(op)] + out;
}

Result<std::vector<AlertMatcher>, std::string> parse_alert_selector(std::string_view text) {
  std::vector<AlertMatcher> out;
  // Split on commas outside quotes.
  std::vector<std::string> parts;
  std::string current;
  bool quoted = false;
  for (char c : text) {
    if (c == '"') quoted = !quoted;
    if (c == ',' && !quoted) {
      parts.push_back(current);
      current.clear();
      continue;
    }
    current += c;
  }
  if (!trim(current).empty() || !parts.empty()) parts.push_back(current);
  for (const std::string& raw : parts) {
    const std::string part = trim(raw);
    const auto at = part.find_first_of("=!");
    if (part.empty() || at == std::string::npos || at == 0) {
      return unexpected("matcher '" + part + "': write label=value, label!=value, label=~regex or label!~regex");
    }
    AlertMatcher matcher;
    matcher.label = trim(std::string_view(part).substr(0, at));
    std::string_view rest = std::string_view(part).substr(at);
    if (rest.starts_with("=~")) {
      matcher.op = AlertMatcher::Op::kRegex;
      rest.remove_prefix(2);
    } else if (rest.starts_with("!~")) {
      matcher.op = AlertMatcher::Op::kNotRegex;
      rest.remove_prefix(2);
    } else if (rest.starts_with("!=")) {
      matcher.op = AlertMatcher::Op::kNotEqual;
      rest.remove_prefix(2);
    } else if (rest.starts_with("=")) {
      rest.remove_prefix(1);
    } else {
      return unexpected("matcher '" + part + "': write label=value, label!=value, label=~regex or label!~regex");
    }
    std::string value = trim(rest);
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    const bool label_ok = std::all_of(matcher.label.begin(), matcher.label.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    });
    if (matcher.label.empty() || !label_ok) {
      return unexpected("matcher '" + part + "': '" + matcher.label + "' is not a label name");
    }
    if (matcher.op == AlertMatcher::Op::kRegex || matcher.op == AlertMatcher::Op::kNotRegex) {
      re2::RE2::Options options;
      options.set_log_errors(false);
      auto regex = std::make_shared<const re2::RE2>(value, options);
      if (!regex->ok()) return unexpected("matcher '" + part + "': not a regular expression (" + regex->error() + ")");
      matcher.regex = std::move(regex);
    }
    matcher.value = std::move(value);
    out.push_back(std::move(matcher));
  }
  return out;
}

std::string url_query_escape(std::string_view text) {
  std::string out;
  for (const char raw : text) {
    const auto c = static_cast<unsigned char>(raw);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char escaped[4];
      std::snprintf(escaped, sizeof escaped, "%%%02X", c);
      out += escaped;
    }
  }
  return out;
}

// ---- the soak's record ---------------------------------------------------------------------

Result<void, std::string> SoakRecord::back(const std::string& tier, const std::string& hostname, std::int64_t at) {
  std::string value;
  JsonWriter(value).begin_object().key("at").value(at).key("hostname").value(hostname).end_object();
  auto put = etcd_.put(prefix_ + "/soak/" + tier, value);
  if (!put) return unexpected("record the soak's start: " + put.error().message);
  return {};
}

Result<std::optional<std::pair<std::int64_t, std::string>>, std::string> SoakRecord::last(const std::string& tier) {
  const std::string key = prefix_ + "/soak/" + tier;
  auto found = etcd_.range(key);
  if (!found) return unexpected("read " + key + ": " + found.error().message);
  if (found->kvs.empty()) return std::optional<std::pair<std::int64_t, std::string>>{};
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  std::int64_t at = 0;
  std::string_view hostname;
  if (parser.parse(found->kvs.front().value.data(), found->kvs.front().value.size(), true).get(object) !=
          simdjson::SUCCESS ||
      object["at"].get(at) != simdjson::SUCCESS || object["hostname"].get(hostname) != simdjson::SUCCESS) {
    return unexpected(key + " holds '" + found->kvs.front().value.substr(0, 100) + "', not {\"at\",\"hostname\"}");
  }
  return std::optional<std::pair<std::int64_t, std::string>>(std::pair{at, std::string(hostname)});
}

// ---- the gates --------------------------------------------------------------------------------

HealthGates::HealthGates(HealthGateOptions options, SoakRecord* soak, std::string tier)
    : options_(std::move(options)), soak_(soak), tier_(std::move(tier)) {}

Result<std::unique_ptr<HealthGates>, std::string> HealthGates::create(HealthGateOptions options, SoakRecord* soak,
                                                                      std::string tier) {
  if (options.soak.count() > 0 && soak == nullptr) return unexpected(std::string("a soak time needs etcd"));
  if (!options.query.empty() && !options.prometheus) return unexpected(std::string("a query needs a Prometheus URL"));
  std::unique_ptr<HealthGates> gates(new HealthGates(std::move(options), soak, std::move(tier)));
  const auto client = [&](const HttpEndpoint& endpoint) -> Result<std::unique_ptr<HttpClient>, std::string> {
    HttpOptions http;
    http.endpoints = {endpoint};
    http.timeout = gates->options_.timeout;
    http.attempts = 1;  // the gate is checked again anyway: a slow answer is a closed gate now
    auto made = HttpClient::create(http);
    if (!made) return unexpected(made.error().message());
    return std::move(made).value();
  };
  if (gates->options_.prometheus && !gates->options_.query.empty()) {
    auto made = client(*gates->options_.prometheus);
    if (!made) return unexpected("Prometheus: " + made.error());
    gates->prometheus_ = std::move(made).value();
  }
  if (gates->options_.alertmanager) {
    auto made = client(*gates->options_.alertmanager);
    if (!made) return unexpected("Alertmanager: " + made.error());
    gates->alertmanager_ = std::move(made).value();
  }
  return gates;
}

HealthVerdict HealthGates::check(std::chrono::system_clock::time_point now, FunctionRef<void()> between) {
  // Nothing here may throw out of a gate (a regex too complex to match, an allocation):
  // a gate that cannot be evaluated is closed -- and so is each configured gate, so none
  // shows the state of an earlier check.
  try {
    return check_all(now, between);
  } catch (const std::exception& error) {
    HealthVerdict verdict = unknown(std::string("health gates cannot be evaluated: ") + error.what());
    for (const auto& [gate, configured] : {std::pair{"soak", options_.soak.count() > 0},
                                           std::pair{"query", prometheus_ != nullptr},
                                           std::pair{"alerts", alertmanager_ != nullptr}}) {
      if (configured) verdict.gates.push_back({gate, false, true, verdict.reason});
    }
    return verdict;
  }
}

HealthVerdict HealthGates::check_all(std::chrono::system_clock::time_point now, FunctionRef<void()> between) {
  // Every gate, so each shows its own state; the first closed one decides.
  std::vector<std::pair<const char*, HealthVerdict>> each;
  if (options_.soak.count() > 0) each.emplace_back("soak", check_soak(now));
  if (prometheus_) {
    between();
    each.emplace_back("query", check_query());
  }
  if (alertmanager_) {
    between();
    each.emplace_back("alerts", check_alerts());
  }
  HealthVerdict verdict;
  verdict.open = true;
  for (auto& [gate, one] : each) {
    verdict.gates.push_back({gate, one.open, one.unknown, one.reason});
    if (!one.open && verdict.open) {
      verdict.open = false;
      verdict.unknown = one.unknown;
      verdict.reason = one.reason;
      verdict.opens_at = one.opens_at;
    }
    if (verdict.open) verdict.reason += (verdict.reason.empty() ? "" : "; ") + one.reason;
  }
  if (verdict.open && verdict.reason.empty()) verdict.reason = "no health gates";
  return verdict;
}

HealthVerdict HealthGates::check_soak(std::chrono::system_clock::time_point now) {
  auto last = soak_->last(tier_);
  if (!last) return unknown("soak time cannot be evaluated: " + last.error());
  if (!*last) return opened("no host of tier " + tier_ + " came back yet: no soak");
  const auto back = std::chrono::system_clock::time_point(std::chrono::seconds((*last)->first));
  const auto ends = back + options_.soak;
  if (now >= ends) return opened("soaked after '" + (*last)->second + "' came back");
  HealthVerdict soaking = closed("soaking after '" + (*last)->second + "' came back: " +
                                 format_wait(std::chrono::ceil<std::chrono::seconds>(ends - now)) + " left");
  soaking.opens_at = ends;
  return soaking;
}

HealthVerdict HealthGates::check_query() {
  const std::string what = "Prometheus query '" + options_.query + "'";
  HttpRequest request;
  request.target = "/api/v1/query?query=" + url_query_escape(options_.query);
  request.idempotent = true;
  auto response = prometheus_->request(request);
  if (!response) return unknown(unreachable(what, response.error()));
  simdjson::dom::parser parser;
  simdjson::dom::object root;
  std::string_view status;
  if (parser.parse(response->body.data(), response->body.size(), true).get(root) != simdjson::SUCCESS ||
      root["status"].get(status) != simdjson::SUCCESS) {
    return unknown(what + " cannot be evaluated: HTTP " + std::to_string(response->status) +
                  ", not Prometheus's answer");
  }
  if (status != "success") {
    std::string_view error;
    if (root["error"].get(error) != simdjson::SUCCESS) error = "no error given";
    return unknown(what + " cannot be evaluated: " + std::string(error));
  }
  std::string_view type;
  simdjson::dom::element result;
  if (root["data"]["resultType"].get(type) != simdjson::SUCCESS ||
      root["data"]["result"].get(result) != simdjson::SUCCESS) {
    return unknown(what + " cannot be evaluated: no data.resultType and data.result in the answer");
  }
  // A sample's value is [time, "text"]; Prometheus writes NaN and infinities as text too.
  const auto sample = [](simdjson::dom::array pair, double& value) {
    std::string_view text;
    if (pair.at(1).get(text) != simdjson::SUCCESS) return false;
    if (text == "+Inf" || text == "Inf") {
      value = std::numeric_limits<double>::infinity();
      return true;
    }
    if (text == "-Inf") {
      value = -std::numeric_limits<double>::infinity();
      return true;
    }
    if (text == "NaN") {
      value = std::numeric_limits<double>::quiet_NaN();
      return true;
    }
    const auto parsed = std::from_chars(text.data(), text.data() + text.size(), value);
    return parsed.ec == std::errc{} && parsed.ptr == text.data() + text.size();
  };
  std::vector<std::pair<std::string, double>> series;
  if (type == "vector") {
    simdjson::dom::array items;
    if (result.get(items) != simdjson::SUCCESS)
      return unknown(what + " cannot be evaluated: data.result is not a list");
    for (simdjson::dom::element item : items) {
      simdjson::dom::object metric;
      simdjson::dom::array pair;
      double value = 0;
      if (item["metric"].get(metric) != simdjson::SUCCESS || item["value"].get(pair) != simdjson::SUCCESS ||
          !sample(pair, value)) {
        return unknown(what + " cannot be evaluated: a series without a metric and a float value (a histogram?)");
      }
      const Labels labels = read_labels(metric);
      series.emplace_back(labels_text("__name__", labels), value);
    }
  } else if (type == "scalar") {
    simdjson::dom::array pair;
    double value = 0;
    if (result.get(pair) != simdjson::SUCCESS || !sample(pair, value)) {
      return unknown(what + " cannot be evaluated: a scalar without a numeric value");
    }
    series.emplace_back("scalar", value);
  } else {
    return unknown(what + " cannot be evaluated: a " + std::string(type) +
                  " result (write a query that gives a vector)");
  }
  const auto over = [&](const std::pair<std::string, double>& s) {
    return !options_.query_max || !(s.second <= *options_.query_max);  // NaN is over any bound
  };
  const auto bad = std::find_if(series.begin(), series.end(), over);
  if (bad == series.end()) {
    return opened(what +
                  (options_.query_max ? " within " + std::to_string(*options_.query_max) : " returns no series"));
  }
  char value[32];
  std::snprintf(value, sizeof value, "%g", bad->second);
  const auto count = std::count_if(series.begin(), series.end(), over);
  return closed(what + " returns " + bad->first + " = " + value +
                (count > 1 ? " and " + std::to_string(count - 1) + " more" : "") +
                (options_.query_max ? " (bound " + std::to_string(*options_.query_max) + ")" : ""));
}

HealthVerdict HealthGates::check_alerts() {
  HttpRequest request;
  request.target = "/api/v2/alerts?active=true&silenced=false&inhibited=false&unprocessed=true";
  for (const AlertMatcher& matcher : options_.alerts) request.target += "&filter=" + url_query_escape(matcher.text());
  request.idempotent = true;
  auto response = alertmanager_->request(request);
  if (!response) return unknown(unreachable("Alertmanager", response.error()));
  simdjson::dom::parser parser;
  simdjson::dom::array alerts;
  if (response->status != 200 ||
      parser.parse(response->body.data(), response->body.size(), true).get(alerts) != simdjson::SUCCESS) {
    return unknown("Alertmanager cannot be evaluated: HTTP " + std::to_string(response->status) +
                  ", not a list of alerts (" + response->body.substr(0, 200) + ")");
  }
  std::vector<std::string> firing;
  for (simdjson::dom::element alert : alerts) {
    simdjson::dom::object labels_object;
    std::string_view state;
    if (alert["labels"].get(labels_object) != simdjson::SUCCESS ||
        alert["status"]["state"].get(state) != simdjson::SUCCESS) {
      return unknown("Alertmanager cannot be evaluated: an alert without labels and status.state");
    }
    if (state == "suppressed") continue;  // silenced or inhibited; "unprocessed" counts (fail closed)
    const Labels labels = read_labels(labels_object);
    // The API filtered by the selector; checked again here, so an Alertmanager that
    // ignores the filter cannot open the gate.
    const auto all = [&](const std::vector<AlertMatcher>& matchers) {
      return std::all_of(matchers.begin(), matchers.end(), [&](const AlertMatcher& m) { return m.matches(labels); });
    };
    if (!all(options_.alerts)) continue;
    if (!options_.ignore.empty() && all(options_.ignore)) continue;
    firing.push_back(labels_text("alertname", labels));
  }
  if (firing.empty()) {
    return opened("no firing alerts" + std::string(options_.alerts.empty() ? "" : " matching the selector"));
  }
  std::sort(firing.begin(), firing.end());
  return closed("firing alert " + firing.front() +
                (firing.size() > 1 ? " and " + std::to_string(firing.size() - 1) + " more" : ""));
}

}  // namespace skopos::driver
