#include "driver/etcd_client.h"

#include <simdjson.h>

#include <boost/beast/core/detail/base64.hpp>

#include <algorithm>
#include <charconv>

#include "skopos/json_writer.h"

namespace skopos::driver {

namespace dom = simdjson::dom;
namespace base64 = boost::beast::detail::base64;

namespace {

// etcd's errors carry its gRPC status code (5 NOT_FOUND, 9 FAILED_PRECONDITION, ...).
OutsideError etcd_error(OutsideError::Kind kind, int code, std::string message) {
  OutsideError error = OutsideError::answered("etcd", kind, 0, std::move(message));
  error.code = code;
  return error;
}

// Drops the events from `from` on that `events` already had: a watcher and its twin
// (wait_for_news) both deliver a change made after the twin was created. An event is
// its key, its kind and the revision that made it.
void drop_repeats(std::vector<WatchEvent>& events, std::size_t from) {
  const auto same = [](const WatchEvent& a, const WatchEvent& b) {
    return a.type == b.type && a.kv.mod_revision == b.kv.mod_revision && a.kv.key == b.kv.key;
  };
  std::size_t kept = from;
  for (std::size_t i = from; i < events.size(); ++i) {
    const auto seen = events.begin() + static_cast<std::ptrdiff_t>(kept);
    if (std::find_if(events.begin(), seen, [&](const WatchEvent& e) { return same(e, events[i]); }) != seen) continue;
    if (kept != i) events[kept] = std::move(events[i]);
    ++kept;
  }
  events.resize(kept);
}

std::string encode64(const std::string& raw) {
  std::string out(base64::encoded_size(raw.size()), '\0');
  out.resize(base64::encode(out.data(), raw.data(), raw.size()));
  return out;
}

// Strict: every character must be base64, with at most two '=' of padding at the end.
bool decode64(std::string_view text, std::string& out) {
  // First: the output is sized for whole quads, and a partial last quad would decode
  // past it (found by fuzzing: a 23-character key overran the string by 2 bytes).
  if (text.size() % 4 != 0) return false;
  std::size_t padding = 0;
  while (padding < 2 && padding < text.size() && text[text.size() - 1 - padding] == '=') ++padding;
  const std::string_view body = text.substr(0, text.size() - padding);
  out.assign(base64::decoded_size(text.size()), '\0');
  const auto [written, read] = base64::decode(out.data(), body.data(), body.size());
  if (read != body.size() || (text.size() % 4) != 0) return false;
  out.resize(written);
  return true;
}

OutsideError bad_response(const std::string& what) { return etcd_error(OutsideError::Kind::kBadResponse, 0, what); }

// int64 fields arrive as strings ("12"), occasionally as numbers; absent means 0.
bool read_int64(dom::object object, std::string_view key, std::int64_t& out) {
  out = 0;
  dom::element value;
  if (object[key].get(value) != simdjson::SUCCESS) return true;
  std::string_view text;
  if (value.get(text) == simdjson::SUCCESS) {
    const auto parsed = std::from_chars(text.data(), text.data() + text.size(), out);
    return parsed.ec == std::errc{} && parsed.ptr == text.data() + text.size();
  }
  return value.get(out) == simdjson::SUCCESS;
}

Result<KeyValue, OutsideError> parse_kv(dom::element element) {
  dom::object object;
  if (element.get(object) != simdjson::SUCCESS) return unexpected(bad_response("kvs[] is not an object"));
  KeyValue kv;
  std::string_view text;
  if (object["key"].get(text) != simdjson::SUCCESS || !decode64(text, kv.key)) {
    return unexpected(bad_response("kvs[].key is not base64"));
  }
  if (object["value"].get(text) == simdjson::SUCCESS) {
    if (!decode64(text, kv.value)) return unexpected(bad_response("kvs[].value is not base64"));
  }
  if (!read_int64(object, "create_revision", kv.create_revision) || !read_int64(object, "mod_revision", kv.mod_revision) ||
      !read_int64(object, "version", kv.version) || !read_int64(object, "lease", kv.lease)) {
    return unexpected(bad_response("kvs[] has a revision that is not an integer"));
  }
  return kv;
}

Result<RangeResult, OutsideError> parse_range(dom::object object, std::int64_t header_revision) {
  RangeResult range;
  range.revision = header_revision;
  dom::array kvs;
  if (object["kvs"].get(kvs) == simdjson::SUCCESS) {
    for (dom::element element : kvs) {
      auto kv = parse_kv(element);
      if (!kv) return unexpected(std::move(kv).error());
      range.kvs.push_back(std::move(*kv));
    }
  }
  if (!read_int64(object, "count", range.count)) return unexpected(bad_response("count is not an integer"));
  bool more = false;
  if (object["more"].get(more) == simdjson::SUCCESS) range.more = more;
  return range;
}

Result<std::int64_t, OutsideError> header_revision(dom::object object) {
  dom::object header;
  if (object["header"].get(header) != simdjson::SUCCESS) return unexpected(bad_response("no header"));
  std::int64_t revision = 0;
  if (!read_int64(header, "revision", revision)) return unexpected(bad_response("header.revision is not an integer"));
  return revision;
}

const char* target_name(Compare::Target target) {
  switch (target) {
    case Compare::Target::kCreateRevision: return "CREATE";
    case Compare::Target::kModRevision: return "MOD";
    case Compare::Target::kVersion: return "VERSION";
    case Compare::Target::kValue: return "VALUE";
  }
  return "CREATE";
}

const char* result_name(Compare::Result result) {
  switch (result) {
    case Compare::Result::kEqual: return "EQUAL";
    case Compare::Result::kNotEqual: return "NOT_EQUAL";
    case Compare::Result::kGreater: return "GREATER";
    case Compare::Result::kLess: return "LESS";
  }
  return "EQUAL";
}

void write_ops(JsonWriter& json, const char* name, const std::vector<TxnOp>& ops) {
  json.key(name).begin_array();
  for (const TxnOp& op : ops) {
    json.begin_object();
    switch (op.kind) {
      case TxnOp::Kind::kPut:
        json.key("request_put").begin_object().key("key").value(encode64(op.key)).key("value").value(encode64(op.value));
        if (op.lease != 0) json.key("lease").value(std::to_string(op.lease));
        json.end_object();
        break;
      case TxnOp::Kind::kDelete:
        json.key("request_delete_range").begin_object().key("key").value(encode64(op.key));
        if (!op.range_end.empty()) json.key("range_end").value(encode64(op.range_end));
        json.end_object();
        break;
      case TxnOp::Kind::kRange:
        json.key("request_range").begin_object().key("key").value(encode64(op.key));
        if (!op.range_end.empty()) json.key("range_end").value(encode64(op.range_end));
        if (op.limit > 0) json.key("limit").value(std::to_string(op.limit));
        if (op.max_create_revision > 0) json.key("max_create_revision").value(std::to_string(op.max_create_revision));
        if (op.newest_first) json.key("sort_order").value("DESCEND").key("sort_target").value("CREATE");
        if (op.keys_only) json.key("keys_only").value(true);
        json.end_object();
        break;
    }
    json.end_object();
  }
  json.end_array();
}

}  // namespace

std::string EtcdClient::prefix_end(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

EtcdClient::EtcdClient(std::unique_ptr<HttpClient> http)
    : http_(std::move(http)), parser_(std::make_unique<dom::parser>()) {}
EtcdClient::~EtcdClient() = default;

Result<dom::object, OutsideError> EtcdClient::parse_object(std::string_view text, const char* what) {
  dom::object object;
  if (parser_->parse(text.data(), text.size(), true).get(object) != simdjson::SUCCESS) {
    return unexpected(bad_response(std::string(what) + ": not a JSON object"));
  }
  return object;
}

Result<std::unique_ptr<EtcdClient>, OutsideError> EtcdClient::create(EtcdOptions options) {
  options.http.spread = true;  // every member serves reads, writes and watches
  auto http = HttpClient::create(std::move(options.http));
  if (!http) return unexpected(etcd_error(OutsideError::Kind::kUnavailable, 0, http.error().message()));
  return std::unique_ptr<EtcdClient>(new EtcdClient(std::move(*http)));
}

Result<std::string, OutsideError> EtcdClient::call(const std::string& path, const std::string& body, bool idempotent) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  HttpRequest request;
  request.method = "POST";
  request.target = path;
  request.body = body;
  request.content_type = "application/json";
  request.idempotent = idempotent;
  auto response = http_->request(request);
  if (!response) {
    const HttpError& error = response.error();
    if (error.kind == HttpError::Kind::kTls) {
      // A certificate problem is configuration: refused, nothing applied, not worth a retry.
      return unexpected(etcd_error(OutsideError::Kind::kRefused, 16, "etcd " + path + ": " + error.message()));
    }
    return unexpected(OutsideError::from_http("etcd", error, "etcd " + path + ": "));
  }
  if (response->status != 200) {
    // {"error":"...","message":"...","code":N}; the gateway's own 404/405 are text.
    OutsideError error = OutsideError::answered("etcd", OutsideError::Kind::kRefused, response->status,
                                                "etcd " + path + ": HTTP " + std::to_string(response->status));
    dom::element root;
    std::string_view message;
    std::int64_t code = 0;
    if (parser_->parse(response->body).get(root) == simdjson::SUCCESS) {
      if (root["message"].get(message) == simdjson::SUCCESS) error.message += ": " + std::string(message);
      if (root["code"].get(code) == simdjson::SUCCESS) error.code = static_cast<int>(code);
    } else {
      error.message += ": " + response->body.substr(0, 200);
    }
    // A 5xx other than a clean gRPC refusal (e.g. a proxy's 502) says nothing about
    // whether a write happened.
    if (response->status >= 500 && error.code == 0 && !idempotent) error.kind = OutsideError::Kind::kUnknownOutcome;
    // etcd's "leader changed", "request timed out" and "timed out due to leader failure"
    // are gRPC UNAVAILABLE (14) or DEADLINE_EXCEEDED (4) after the proposal went to raft:
    // the write may still be applied.
    if ((error.code == 14 || error.code == 4) && !idempotent) error.kind = OutsideError::Kind::kUnknownOutcome;
    return unexpected(std::move(error));
  }
  return std::move(response->body);
}

Result<RangeResult, OutsideError> EtcdClient::range(const std::string& key, const std::string& range_end,
                                                 std::int64_t limit) {
  std::string body;
  JsonWriter json(body);
  json.begin_object().key("key").value(encode64(key));
  if (!range_end.empty()) json.key("range_end").value(encode64(range_end));
  if (limit > 0) json.key("limit").value(std::to_string(limit));
  json.end_object();
  auto text = call("/v3/kv/range", body, true);
  if (!text) return unexpected(std::move(text).error());
  return parse_etcd_range(*parser_, *text);
}

Result<std::int64_t, OutsideError> EtcdClient::put(const std::string& key, const std::string& value, std::int64_t lease) {
  std::string body;
  JsonWriter json(body);
  json.begin_object().key("key").value(encode64(key)).key("value").value(encode64(value));
  if (lease != 0) json.key("lease").value(std::to_string(lease));
  json.end_object();
  auto text = call("/v3/kv/put", body, false);
  if (!text) return unexpected(std::move(text).error());
  auto parsed = parse_object(*text, "put");
  if (!parsed) return unexpected(std::move(parsed).error());
  const dom::object object = *parsed;
  return header_revision(object);
}

Result<std::int64_t, OutsideError> EtcdClient::delete_range(const std::string& key, const std::string& range_end) {
  std::string body;
  JsonWriter json(body);
  json.begin_object().key("key").value(encode64(key));
  if (!range_end.empty()) json.key("range_end").value(encode64(range_end));
  json.end_object();
  auto text = call("/v3/kv/deleterange", body, false);
  if (!text) return unexpected(std::move(text).error());
  auto parsed = parse_object(*text, "deleterange");
  if (!parsed) return unexpected(std::move(parsed).error());
  const dom::object object = *parsed;
  std::int64_t deleted = 0;
  if (!read_int64(object, "deleted", deleted)) return unexpected(bad_response("deleted is not an integer"));
  return deleted;
}

Result<TxnResult, OutsideError> EtcdClient::txn(const std::vector<Compare>& compares, const std::vector<TxnOp>& success,
                                             const std::vector<TxnOp>& failure) {
  std::string body;
  JsonWriter json(body);
  json.begin_object().key("compare").begin_array();
  for (const Compare& c : compares) {
    json.begin_object()
        .key("key")
        .value(encode64(c.key))
        .key("target")
        .value(target_name(c.target))
        .key("result")
        .value(result_name(c.result));
    if (!c.range_end.empty()) json.key("range_end").value(encode64(c.range_end));
    switch (c.target) {
      case Compare::Target::kCreateRevision: json.key("create_revision").value(std::to_string(c.number)); break;
      case Compare::Target::kModRevision: json.key("mod_revision").value(std::to_string(c.number)); break;
      case Compare::Target::kVersion: json.key("version").value(std::to_string(c.number)); break;
      case Compare::Target::kValue: json.key("value").value(encode64(c.value)); break;
    }
    json.end_object();
  }
  json.end_array();
  write_ops(json, "success", success);
  write_ops(json, "failure", failure);
  json.end_object();
  auto text = call("/v3/kv/txn", body, false);
  if (!text) return unexpected(std::move(text).error());
  return parse_etcd_txn(*parser_, *text);
}

Result<WatchResult, OutsideError> EtcdClient::wait_for_change(const std::string& key, const std::string& range_end,
                                                           std::int64_t start_revision,
                                                           std::chrono::steady_clock::time_point until) {
  return wait_for_change({WatchSpec{key, range_end, false}}, start_revision, until);
}

Result<WatchResult, OutsideError> EtcdClient::wait_for_change(const std::vector<WatchSpec>& watches,
                                                           std::int64_t start_revision,
                                                           std::chrono::steady_clock::time_point until,
                                                           const std::atomic<bool>* stop) {
  return first_batch(watches, start_revision, false, until, stop, {});
}

Result<WatchResult, OutsideError> EtcdClient::wait_for_news(const std::vector<WatchSpec>& watches,
                                                         std::int64_t start_revision,
                                                         std::chrono::steady_clock::time_point until,
                                                         const std::atomic<bool>* stop,
                                                         const std::function<bool(const WatchResult&)>& enough) {
  return first_batch(watches, start_revision, true, until, stop, enough);
}

Result<WatchResult, OutsideError> EtcdClient::first_batch(const std::vector<WatchSpec>& watches,
                                                       std::int64_t start_revision, bool twins,
                                                       std::chrono::steady_clock::time_point until,
                                                       const std::atomic<bool>* stop,
                                                       const std::function<bool(const WatchResult&)>& enough) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  // The gateway reads one WatchRequest after another from the body: each creates a
  // watcher on the same stream. With `twins` (wait_for_news), a watcher from a revision
  // has a twin from now; the first batch either brings ends the wait.
  std::string body;
  for (const WatchSpec& watch : watches) {
    for (const bool from_revision : {true, false}) {
      if (!from_revision && (!twins || start_revision <= 0)) continue;
      JsonWriter json(body);
      json.begin_object().key("create_request").begin_object().key("key").value(encode64(watch.key));
      if (!watch.range_end.empty()) json.key("range_end").value(encode64(watch.range_end));
      if (from_revision && start_revision > 0) json.key("start_revision").value(std::to_string(start_revision));
      if (watch.deletes_only) json.key("filters").begin_array().value("NOPUT").end_array();
      json.end_object().end_object();
      body += '\n';
    }
  }
  HttpRequest request;
  request.method = "POST";
  request.target = "/v3/watch";
  request.body = body;
  request.content_type = "application/json";

  WatchResult result;
  std::optional<OutsideError> failure;
  std::string pending;
  bool finished = false;
  const auto on_line = [&](std::string_view line) {
    const std::size_t heard = result.events.size();
    auto done = parse_etcd_watch_line(*parser_, line, result);
    if (!done) {
      failure = std::move(done).error();
      return;
    }
    if (twins) drop_repeats(result.events, heard);
    finished = *done && (result.compacted || !enough || enough(result));
  };
  unsigned status = 0;
  auto streamed = http_->stream(request, until, [&](std::string_view data) {
    pending.append(data);
    for (auto newline = pending.find('\n'); newline != std::string::npos; newline = pending.find('\n')) {
      on_line(std::string_view(pending).substr(0, newline));
      pending.erase(0, newline + 1);
      if (failure || finished) return false;
    }
    return pending.size() < 16 * 1024 * 1024;
  }, status, {}, stop);
  if (!streamed) {
    return unexpected(etcd_error(OutsideError::Kind::kUnavailable, 0, "etcd watch: " + streamed.error().message()));
  }
  if (status != 200) return unexpected(etcd_error(OutsideError::Kind::kRefused, 0, "etcd watch: HTTP " + std::to_string(status)));
  if (failure) return unexpected(std::move(*failure));
  return result;
}

Result<std::int64_t, OutsideError> EtcdClient::lease_grant(std::int64_t ttl_seconds) {
  auto text = call("/v3/lease/grant", R"({"TTL":")" + std::to_string(ttl_seconds) + "\"}", false);
  if (!text) return unexpected(std::move(text).error());
  auto parsed = parse_object(*text, "lease grant");
  if (!parsed) return unexpected(std::move(parsed).error());
  const dom::object object = *parsed;
  std::int64_t id = 0;
  if (!read_int64(object, "ID", id) || id == 0) return unexpected(bad_response("lease grant: no ID"));
  return id;
}

Result<std::int64_t, OutsideError> EtcdClient::lease_keepalive(std::int64_t id) {
  auto text = call("/v3/lease/keepalive", R"({"ID":")" + std::to_string(id) + "\"}", true);
  if (!text) return unexpected(std::move(text).error());
  // The gateway streams {"result":{...,"TTL":"5"}}; an expired lease has no TTL.
  auto parsed = parse_object(std::string_view(*text).substr(0, text->find('\n')), "lease keepalive");
  if (!parsed) return unexpected(std::move(parsed).error());
  const dom::object object = *parsed;
  dom::object result;
  if (object["result"].get(result) != simdjson::SUCCESS) return unexpected(bad_response("lease keepalive: no result"));
  std::int64_t ttl = 0;
  if (!read_int64(result, "TTL", ttl)) return unexpected(bad_response("lease keepalive: TTL is not an integer"));
  return ttl;
}

Result<void, OutsideError> EtcdClient::lease_revoke(std::int64_t id) {
  auto text = call("/v3/lease/revoke", R"({"ID":")" + std::to_string(id) + "\"}", false);
  if (!text) return unexpected(std::move(text).error());
  return {};
}

Result<RangeResult, OutsideError> parse_etcd_range(dom::parser& parser, std::string_view json) {
  dom::object object;
  if (parser.parse(json.data(), json.size(), true).get(object) != simdjson::SUCCESS) {
    return unexpected(bad_response("range: not a JSON object"));
  }
  auto revision = header_revision(object);
  if (!revision) return unexpected(std::move(revision).error());
  return parse_range(object, *revision);
}

Result<bool, OutsideError> parse_etcd_watch_line(dom::parser& parser, std::string_view line, WatchResult& result) {
  dom::object object;
  if (parser.parse(line.data(), line.size(), true).get(object) != simdjson::SUCCESS) {
    return unexpected(bad_response("watch: not a JSON object"));
  }
  dom::object message;
  if (object["result"].get(message) != simdjson::SUCCESS) {
    std::string_view error;
    return unexpected(bad_response(object["error"].get(error) == simdjson::SUCCESS ? "watch: " + std::string(error)
                                                                                   : "watch: no result"));
  }
  // A line that is refused leaves `result` as it was.
  bool canceled = false;
  if (message["canceled"].get(canceled) == simdjson::SUCCESS && canceled) {
    std::int64_t compact_revision = 0;
    if (!read_int64(message, "compact_revision", compact_revision)) {
      return unexpected(bad_response("watch: compact_revision is not an integer"));
    }
    result.compacted = true;
    result.compact_revision = compact_revision;
    return true;
  }
  dom::array events;
  if (message["events"].get(events) != simdjson::SUCCESS) return false;  // "created", progress
  auto revision = header_revision(message);
  if (!revision) return unexpected(std::move(revision).error());
  std::vector<WatchEvent> read;
  for (dom::element event : events) {
    WatchEvent out;
    std::string_view type;
    if (event["type"].get(type) == simdjson::SUCCESS && type == "DELETE") out.type = WatchEvent::Type::kDelete;
    dom::element kv_element;
    if (event["kv"].get(kv_element) != simdjson::SUCCESS) return unexpected(bad_response("watch: an event without kv"));
    auto kv = parse_kv(kv_element);
    if (!kv) return unexpected(std::move(kv).error());
    out.kv = std::move(*kv);
    read.push_back(std::move(out));
  }
  result.revision = *revision;
  for (WatchEvent& event : read) result.events.push_back(std::move(event));
  return !result.events.empty();
}

Result<TxnResult, OutsideError> parse_etcd_txn(dom::parser& parser, std::string_view json) {
  dom::object object;
  if (parser.parse(json.data(), json.size(), true).get(object) != simdjson::SUCCESS) {
    return unexpected(bad_response("txn: not a JSON object"));
  }
  TxnResult result;
  auto revision = header_revision(object);
  if (!revision) return unexpected(std::move(revision).error());
  result.revision = *revision;
  bool succeeded = false;
  // Omitted when false.
  if (object["succeeded"].get(succeeded) == simdjson::SUCCESS) result.succeeded = succeeded;
  dom::array responses;
  if (object["responses"].get(responses) == simdjson::SUCCESS) {
    for (dom::element response : responses) {
      dom::object range;
      if (response["response_range"].get(range) != simdjson::SUCCESS) continue;
      auto one = parse_range(range, result.revision);
      if (!one) return unexpected(std::move(one).error());
      result.ranges.push_back(std::move(*one));
    }
  }
  return result;
}

}  // namespace skopos::driver
