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
    if (message && message->type == skopos::tracker::ClientMessage::Type::kPeers) {
      const auto& peers = message->peers;
      if (peers.id.empty() || peers.limit == 0 || peers.limit > skopos::tracker::kMaxPeersLimit) std::abort();
      if (peers.ports.size() > skopos::tracker::kMaxPeersPorts) std::abort();
      for (const std::uint16_t port : peers.ports) {
        if (port == 0) std::abort();
      }
      // What the client writes reads back the same.
      const std::string line = skopos::tracker::encode_peers_request(peers);
      auto again = parser.parse(std::string_view(line).substr(0, line.size() - 1));
      if (!again || again->peers.id != peers.id || again->peers.ports != peers.ports ||
          again->peers.limit != peers.limit) {
        std::abort();
      }
    } else if (message) {
      if (message->subscribe.protocol != skopos::tracker::kStreamProtocol) std::abort();
      if (input.size() >= skopos::tracker::kMaxClientLine) std::abort();
      for (const auto* list : {&message->subscribe.filter.ids, &message->subscribe.filter.names, &message->subscribe.filter.mesos_task_ids,
                               &message->subscribe.filter.marathon_app_ids}) {
        if (list->size() > skopos::tracker::kMaxFilterStrings) std::abort();
      }
      // Matching must be total.
      (void)message->subscribe.filter.matches("0123456789abcdef", "web", "task", "/app");
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
