// libFuzzer target for the stream protocol's parsers: the first byte picks the
// direction. Client lines are hostile input to the tracker: the parser must never
// crash, must accept only version-1 subscribes within the limits, and must refuse
// everything else with one of the documented error codes. Server lines are what the
// client library parses.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tracker/stream_protocol.h"

using skopos::tracker::ClientMessageParser;
using skopos::tracker::ServerMessageParser;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    static ClientMessageParser parser;
    auto message = parser.parse(input);
    if (message) {
      if (message->protocol != skopos::tracker::kStreamProtocol) std::abort();
      if (input.size() >= skopos::tracker::kMaxClientLine) std::abort();
      for (const auto* list : {&message->filter.ids, &message->filter.names, &message->filter.mesos_task_ids,
                               &message->filter.marathon_app_ids}) {
        if (list->size() > skopos::tracker::kMaxFilterStrings) std::abort();
      }
      // Matching must be total.
      (void)message->filter.matches("0123456789abcdef", "web", "task", "/app");
    } else {
      const std::string& code = message.error().code;
      if (code != "bad_message" && code != "protocol_version" && code != "message_too_large") std::abort();
      if (message.error().message.empty()) std::abort();
    }
  } else {
    static ServerMessageParser parser;
    auto message = parser.parse(input);
    if (!message && message.error().message().empty()) std::abort();
  }
  return 0;
}
