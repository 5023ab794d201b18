// TCP socket states with the kernel's numbering and names (include/net/tcp_states.h).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace skopos::tracker {

enum class TcpState : std::uint8_t {
  kEstablished = 1,
  kSynSent = 2,
  kSynRecv = 3,
  kFinWait1 = 4,
  kFinWait2 = 5,
  kTimeWait = 6,
  kClose = 7,
  kCloseWait = 8,
  kLastAck = 9,
  kListen = 10,
  kClosing = 11,
  kNewSynRecv = 12,
  // Since Linux 6.8: bound but neither listening nor connected. Such sockets live only
  // in the bind hash, so /proc/net/tcp never lists them; accepted for completeness.
  kBoundInactive = 13,
};

inline constexpr int kFirstTcpState = 1;
inline constexpr int kLastTcpState = 13;
// Arrays indexed by state number use this many slots (index 0 is unused).
inline constexpr int kTcpStateSlots = 16;

// The kernel's name for a state ("ESTABLISHED", "NEW_SYN_RECV", ...).
constexpr std::string_view tcp_state_name(TcpState state) {
  constexpr std::array<std::string_view, kLastTcpState + 1> kNames = {
      "?",         "ESTABLISHED", "SYN_SENT",   "SYN_RECV", "FIN_WAIT1",
      "FIN_WAIT2", "TIME_WAIT",   "CLOSE",      "CLOSE_WAIT", "LAST_ACK",
      "LISTEN",    "CLOSING",     "NEW_SYN_RECV", "BOUND_INACTIVE"};
  const auto index = static_cast<std::size_t>(state);
  return index < kNames.size() ? kNames[index] : "?";
}

// The state with this kernel number, if it is one.
constexpr std::optional<TcpState> tcp_state_from_number(unsigned number) {
  if (number < static_cast<unsigned>(kFirstTcpState) ||
      number > static_cast<unsigned>(kLastTcpState)) {
    return std::nullopt;
  }
  return static_cast<TcpState>(number);
}

}  // namespace skopos::tracker
