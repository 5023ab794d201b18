// libFuzzer target for what the servers we call send back: every parser of Marathon's,
// the Mesos master's, the Docker Engine's, the etcd gateway's (range, txn, watch)
// and ZooKeeper's (srvr, mntr) answers runs on each input.
// An answer is outside input -- a proxy, a bug, a version we never saw -- so a parser
// must never crash, and a refusal must say what was wrong (a non-empty message). Seeded
// with the upstream examples in tests/fixtures/upstream.
#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "driver/etcd_client.h"
#include "driver/marathon.h"
#include "driver/mesos_master.h"
#include "driver/zookeeper_health.h"
#include "skopos/docker_api.h"

namespace {

template <typename Parsed>
void check(const Parsed& parsed) {
  if (!parsed && parsed.error().empty()) std::abort();  // a refusal names what was wrong
}

template <typename Parsed>
void check_error(const Parsed& parsed) {
  if (!parsed && parsed.error().message().empty()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  static simdjson::dom::parser parser;
  using namespace skopos::driver;
  check(parse_marathon_apps(parser, input));
  check(parse_marathon_tasks(parser, input));
  check(parse_marathon_deployments(parser, input));
  check(parse_marathon_info(parser, input));
  check(parse_marathon_leader(parser, input));
  (void)marathon_error_text(parser, std::string(input));
  check(parse_schedule(parser, input));
  check(parse_maintenance_status(parser, input));
  check(parse_get_agents(parser, input));
  if (auto range = parse_etcd_range(parser, input); !range && range.error().message.empty()) std::abort();
  if (auto txn = parse_etcd_txn(parser, input); !txn && txn.error().message.empty()) std::abort();
  // The watch stream, a line at a time into one result, as the client reads it.
  skopos::driver::WatchResult watch;
  for (std::size_t at = 0; at < input.size();) {
    const std::size_t newline = std::min(input.find('\n', at), input.size());
    auto done = parse_etcd_watch_line(parser, input.substr(at, newline - at), watch);
    if (!done && done.error().message.empty()) std::abort();
    if (!done || *done) break;
    at = newline + 1;
  }
  check_error(skopos::parse_container_list(input));
  check_error(skopos::parse_container_inspect(input));
  check_error(skopos::parse_docker_event(input));
  (void)skopos::parse_docker_error(input);
  // ZooKeeper's four-letter words (srvr, mntr): plain text from a TCP peer.
  const std::string text(input);
  ZkServerHealth health;
  health.endpoint = "zk:2181";
  if (read_srvr(text, health)) {
    if (health.mode.empty()) std::abort();  // serving means a mode was read
  } else if (health.error.empty()) {
    std::abort();  // not serving says why
  }
  if (read_synced_followers(text) < -1) std::abort();
  return 0;
}
