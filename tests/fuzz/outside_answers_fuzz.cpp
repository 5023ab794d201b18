// libFuzzer target for what the servers we call send back: every parser of Marathon's,
// the Mesos master's and agent's and the Docker Engine's answers runs on each input.
// An answer is outside input -- a proxy, a bug, a version we never saw -- so a parser
// must never crash, and a refusal must say what was wrong (a non-empty message). Seeded
// with the upstream examples in tests/fixtures/upstream.
#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "driver/marathon.h"
#include "driver/mesos_agent.h"
#include "driver/mesos_master.h"
#include "tracker/docker_api.h"

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
  check(parse_agent_get_tasks(parser, input));
  check(parse_agent_state(parser, input));
  using namespace skopos::tracker;
  check_error(parse_container_list(input));
  check_error(parse_container_inspect(input));
  check_error(parse_docker_event(input));
  (void)parse_docker_error(input);
  return 0;
}
