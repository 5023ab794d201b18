// EtcdClient: etcd v3 through its JSON gateway, as etcd 3.4 serves it (POST only;
// keys and values base64; int64 as strings; default fields omitted: a failed txn has
// no "succeeded", a range without matches no "kvs"). See ../shared/fixtures/etcd/.
//
// Reads are linearizable unless asked otherwise. Errors distinguish a refusal (etcd
// answered with an error: nothing was applied) from an unknown outcome (timeout or reset
// after sending): after the latter, callers re-read before deciding.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "skopos/http_client.h"
#include "skopos/outside_error.h"
#include "skopos/result.h"

namespace simdjson::dom {
class parser;
class object;
}  // namespace simdjson::dom

namespace skopos::driver {

struct KeyValue {
  std::string key;
  std::string value;
  std::int64_t create_revision = 0;
  std::int64_t mod_revision = 0;
  std::int64_t version = 0;
  std::int64_t lease = 0;
};

struct RangeResult {
  std::int64_t revision = 0;  // the store's revision when read
  std::vector<KeyValue> kvs;
  std::int64_t count = 0;
  bool more = false;
};

// One comparison of a transaction.
struct Compare {
  enum class Target : std::uint8_t { kCreateRevision, kModRevision, kVersion, kValue };
  enum class Result : std::uint8_t { kEqual, kNotEqual, kGreater, kLess };
  std::string key;
  Target target = Target::kCreateRevision;
  Result result = Result::kEqual;
  std::int64_t number = 0;  // for the revision/version targets
  std::string value;        // for kValue
  // Non-empty: the comparison holds for every key in [key, range_end) (etcd 3.3+); with
  // no key in the range it is made against an absent key (revisions and version 0).
  std::string range_end;
};

// One operation of a transaction.
struct TxnOp {
  enum class Kind : std::uint8_t { kPut, kDelete, kRange };
  Kind kind = Kind::kPut;
  std::string key;
  std::string value;         // put
  std::int64_t lease = 0;    // put
  std::string range_end;     // delete/range: "" for the key alone
  // range only: at most `limit` keys (0: all), only those created at or before
  // `max_create_revision` (0: any), newest created first, keys without values.
  std::int64_t limit = 0;
  std::int64_t max_create_revision = 0;
  bool newest_first = false;
  bool keys_only = false;
};

// One key or range a watch follows. `deletes_only`: puts are not reported (etcd's
// NOPUT filter), so rewriting a value wakes nobody.
struct WatchSpec {
  std::string key;
  std::string range_end;  // "" for the key alone
  bool deletes_only = false;
};

struct TxnResult {
  bool succeeded = false;
  std::int64_t revision = 0;
  std::vector<RangeResult> ranges;  // the range operations' results, in order
};

struct WatchEvent {
  enum class Type : std::uint8_t { kPut, kDelete };
  Type type = Type::kPut;
  KeyValue kv;
};

struct WatchResult {
  std::vector<WatchEvent> events;  // empty: nothing changed before the deadline
  std::int64_t revision = 0;       // the header revision of the events' message
  bool compacted = false;          // start_revision is older than etcd keeps
  std::int64_t compact_revision = 0;
};

struct EtcdOptions {
  HttpOptions http;  // endpoints, deadlines, TLS, auth
};

// Errors are OutsideError (system "etcd"). A refusal carries etcd's gRPC status in
// `code` (5 NOT_FOUND, 9 FAILED_PRECONDITION, 16 UNAUTHENTICATED for a refused
// certificate, ...). A write refused with UNAVAILABLE ("leader changed", "request timed
// out") or DEADLINE_EXCEEDED is kUnknownOutcome, not kRefused: raft may still apply it;
// so is a write answered by a 5xx without a gRPC code (a proxy's 502).
//
// A client starts at a member chosen at random (HttpOptions::spread) and stays with the
// one that last answered: a fleet given the same endpoints spreads over the members.
class EtcdClient {
 public:
  ~EtcdClient();
  static Result<std::unique_ptr<EtcdClient>, OutsideError> create(EtcdOptions options);

  // `range_end` "" reads one key; prefix_end(p) reads a prefix.
  Result<RangeResult, OutsideError> range(const std::string& key, const std::string& range_end = {},
                                       std::int64_t limit = 0);
  // The revision of the put.
  Result<std::int64_t, OutsideError> put(const std::string& key, const std::string& value, std::int64_t lease = 0);
  Result<std::int64_t, OutsideError> delete_range(const std::string& key, const std::string& range_end = {});
  Result<TxnResult, OutsideError> txn(const std::vector<Compare>& compares, const std::vector<TxnOp>& success,
                                   const std::vector<TxnOp>& failure);
  // A lease of `ttl_seconds` (etcd raises it to its minimum); its id.
  Result<std::int64_t, OutsideError> lease_grant(std::int64_t ttl_seconds);
  // Refreshes the lease; its remaining TTL, 0 when the lease no longer exists.
  Result<std::int64_t, OutsideError> lease_keepalive(std::int64_t id);
  Result<void, OutsideError> lease_revoke(std::int64_t id);

  // Waits (etcd watch, not polling) until a key in [key, range_end) changes at or after
  // `start_revision`, or until `until`; returns the first batch of events, or none.
  Result<WatchResult, OutsideError> wait_for_change(const std::string& key, const std::string& range_end,
                                                 std::int64_t start_revision,
                                                 std::chrono::steady_clock::time_point until);
  // The same over several keys or ranges at once (one request, one stream). `stop`,
  // when given, ends the wait within 100 ms of being set, with no events: a long wait
  // needs no new request to notice it.
  Result<WatchResult, OutsideError> wait_for_change(const std::vector<WatchSpec>& watches, std::int64_t start_revision,
                                                 std::chrono::steady_clock::time_point until,
                                                 const std::atomic<bool>* stop = nullptr);
  // The same for a waiter that reads again whatever it hears, and must hear it at once.
  // A watcher from a revision etcd has already passed (any write anywhere since the
  // caller read) starts "unsynced": etcd delivers its events, even those committed after
  // it was created, only when the store next syncs such watchers, every 100 ms. (A lock's
  // waiter that had just read the line and watched from there heard releases up to
  // 100 ms late: bench_fleet, 1,000 hosts, faults off -- of the releases that came less
  // than 25 ms after the waiter's watch, the median was heard 48 ms late; of those that
  // came 100 ms after it or later, none later than 15 ms.) So here each watcher from a
  // revision has a twin from now on the same stream, which etcd keeps in step from the
  // start: a change after the watch was created arrives at once; only one between the
  // caller's read and the watch (a round trip's gap) may wait for the sync. The first
  // batch may therefore come before an earlier one: a caller that replays history in
  // order uses wait_for_change.
  //
  // `enough`, when given, decides after each batch whether to return: while it says no,
  // the wait goes on listening on the same stream, and the events heard so far add up
  // in the result (each once: a twin's copy of an event is dropped). A waiter that only
  // counts what it hears until it has heard enough keeps one watcher in step the whole
  // time, instead of opening a new one -- and a new gap -- after every batch. `enough`
  // may send requests of its own on this client: they go on other connections, and the
  // stream stays open meanwhile.
  Result<WatchResult, OutsideError> wait_for_news(const std::vector<WatchSpec>& watches, std::int64_t start_revision,
                                               std::chrono::steady_clock::time_point until,
                                               const std::atomic<bool>* stop = nullptr,
                                               const std::function<bool(const WatchResult&)>& enough = {});

  // Requests this client sent (each call, each watch), for measuring what an operation
  // costs etcd.
  std::uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }

  // The key right after every key that starts with `prefix`, for range_end.
  static std::string prefix_end(const std::string& prefix);

 private:
  explicit EtcdClient(std::unique_ptr<HttpClient> http);
  Result<std::string, OutsideError> call(const std::string& path, const std::string& body, bool idempotent);
  Result<WatchResult, OutsideError> first_batch(const std::vector<WatchSpec>& watches, std::int64_t start_revision,
                                             bool twins, std::chrono::steady_clock::time_point until,
                                             const std::atomic<bool>* stop,
                                             const std::function<bool(const WatchResult&)>& enough);
  // Parses an answer into the client's one reused parser; the object lives until the
  // next parse. `what` names the call in errors.
  Result<simdjson::dom::object, OutsideError> parse_object(std::string_view text, const char* what);

  std::unique_ptr<HttpClient> http_;
  std::unique_ptr<simdjson::dom::parser> parser_;
  std::atomic<std::uint64_t> requests_{0};
};

// The gateway's answers to /v3/kv/range and /v3/kv/txn, exposed for the fuzz target.
// Errors are kBadResponse naming what was wrong.
Result<RangeResult, OutsideError> parse_etcd_range(simdjson::dom::parser& parser, std::string_view json);
Result<TxnResult, OutsideError> parse_etcd_txn(simdjson::dom::parser& parser, std::string_view json);
// One line of the /v3/watch stream, {"result":{...}}: first "created", then events, or
// "canceled" (compacted). Adds what it says to `result`; true when the watch is done
// (events arrived, or it was canceled).
Result<bool, OutsideError> parse_etcd_watch_line(simdjson::dom::parser& parser, std::string_view line,
                                              WatchResult& result);

}  // namespace skopos::driver
