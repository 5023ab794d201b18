#include "proc_net_tcp_gen.h"

#include <array>
#include <cstdio>

namespace skopos::bench {

using tracker::TcpState;
using tracker::TcpTableFamily;

namespace {

// splitmix64: small, fast and good enough to make varied tables.
class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::uint32_t below(std::uint32_t n) { return static_cast<std::uint32_t>(next() % n); }
  std::uint32_t word() { return static_cast<std::uint32_t>(next()); }

 private:
  std::uint64_t state_;
};

constexpr std::array<std::uint16_t, 16> kServicePorts = {
    80, 443, 8080, 8443, 9090, 31000, 31001, 31002, 31500, 31777, 32000, 5000, 5001, 3000, 22, 9100};
constexpr std::array<std::uint16_t, 6> kRemoteServices = {5432, 3306, 6379, 9092, 2181, 2379};

// One socket line's content.
struct Line {
  TcpState state = TcpState::kEstablished;
  enum class Shape { kFull, kTimeWait, kRequest } shape = Shape::kFull;
  std::array<std::uint32_t, 4> local{}, remote{};
  std::uint16_t local_port = 0, remote_port = 0;
  bool inbound = false;  // the local port is a listening port
};

// The state mix after the listeners, in percent.
TcpState pick_state(Random& random) {
  const std::uint32_t r = random.below(100);
  if (r < 80) return TcpState::kEstablished;
  if (r < 90) return TcpState::kTimeWait;
  if (r < 94) return TcpState::kCloseWait;
  if (r < 95) return TcpState::kSynSent;
  if (r < 96) return TcpState::kSynRecv;  // request sockets
  if (r < 97) return TcpState::kFinWait1;
  if (r < 98) return TcpState::kFinWait2;
  if (r < 99) return TcpState::kLastAck;
  return TcpState::kClosing;
}

std::size_t listeners_for(std::size_t sockets) {
  return std::min<std::size_t>(kServicePorts.size(), std::max<std::size_t>(1, sockets / 100));
}

class Generator {
 public:
  Generator(TcpTableFamily family, std::uint64_t seed) : family_(family), random_(seed) {}

  Line next(std::size_t index, std::size_t listeners) {
    Line line;
    line.local = address();
    line.remote = address();
    if (family_ == TcpTableFamily::kIpv6 && random_.below(2) == 0) {
      // Keep both ends in the same family, as real connections are.
      line.local = mapped(random_.word());
      line.remote = mapped(random_.word());
    }
    if (index < listeners) {
      line.state = TcpState::kListen;
      line.local_port = kServicePorts[index];
      line.remote = {};
      return line;
    }
    line.state = pick_state(random_);
    const bool inbound = random_.below(100) < 60;
    const auto ephemeral = static_cast<std::uint16_t>(32768 + random_.below(28232));
    if (inbound && line.state != TcpState::kSynSent) {
      line.inbound = true;
      line.local_port = kServicePorts[random_.below(static_cast<std::uint32_t>(listeners))];
      line.remote_port = ephemeral;
    } else {
      line.local_port = ephemeral;
      line.remote_port = kRemoteServices[random_.below(kRemoteServices.size())];
    }
    if (line.state == TcpState::kTimeWait ||
        (line.state == TcpState::kFinWait2 && random_.below(2) == 0)) {
      line.shape = Line::Shape::kTimeWait;
    } else if (line.state == TcpState::kSynRecv) {
      line.shape = Line::Shape::kRequest;
    }
    return line;
  }

 private:
  std::array<std::uint32_t, 4> address() {
    if (family_ == TcpTableFamily::kIpv4) return {random_.word(), 0, 0, 0};
    // fd00::/8 unique local addresses.
    return {0x000000fdu | (random_.word() & 0xffffff00u), random_.word(), random_.word(),
            random_.word()};
  }
  static std::array<std::uint32_t, 4> mapped(std::uint32_t v4) { return {0, 0, 0xFFFF0000u, v4}; }

  TcpTableFamily family_;
  Random random_;
};

// The kernel prints "%08X%08X%08X%08X" of the four address words for IPv6 and
// "%08X" of the one word for IPv4.
int print_address(char* out, std::size_t size, TcpTableFamily family,
                  const std::array<std::uint32_t, 4>& words, std::uint16_t port) {
  if (family == TcpTableFamily::kIpv4) {
    return std::snprintf(out, size, "%08X:%04X", words[0], port);
  }
  return std::snprintf(out, size, "%08X%08X%08X%08X:%04X", words[0], words[1], words[2], words[3],
                       port);
}

}  // namespace

std::string generate_tcp_table(TcpTableFamily family, std::size_t sockets, std::uint64_t seed) {
  std::string out;
  const bool v4 = family == TcpTableFamily::kIpv4;
  out.reserve((sockets + 1) * (v4 ? 150 : 180));
  // tcp4_seq_show pads every line, the header included, to 149 columns (seq_setwidth
  // with TMPSZ - 1, then seq_pad); tcp6 does not pad.
  const auto pad = [&](std::size_t line_start) {
    if (v4 && out.size() - line_start < 149) out.append(149 - (out.size() - line_start), ' ');
    out += '\n';
  };
  if (v4) {
    out += "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
           "timeout inode";
  } else {
    out += "  sl  local_address                         remote_address                        "
           "st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
  }
  pad(0);

  // Two streams: the generator's decides what each socket is (and is all that
  // generated_counts() replays); `cosmetic` fills the fields nobody counts.
  Generator generator(family, seed);
  Random cosmetic(seed ^ 0x5eed5eed5eed5eedULL);
  const std::size_t listeners = listeners_for(sockets);
  char local[64];
  char remote[64];
  char text[320];
  unsigned long inode = 10'000'000;
  for (std::size_t i = 0; i < sockets; ++i) {
    const Line line = generator.next(i, listeners);
    print_address(local, sizeof local, family, line.local, line.local_port);
    print_address(remote, sizeof remote, family, line.remote, line.remote_port);
    const auto slot = static_cast<int>(i);
    const auto state = static_cast<unsigned>(line.state);
    const unsigned long pointer = cosmetic.word();
    int n = 0;
    switch (line.shape) {
      case Line::Shape::kFull: {
        const bool listen = line.state == TcpState::kListen;
        const std::uint32_t uid_pick = cosmetic.below(20);
        const std::uint32_t uid = uid_pick < 5 ? 1000 : (uid_pick < 7 ? 65534 : 0);
        const unsigned tx = cosmetic.below(10) == 0 ? cosmetic.below(65536) : 0;
        const unsigned rx = cosmetic.below(20) == 0 ? cosmetic.below(4096) : 0;
        const unsigned timer = !listen && cosmetic.below(3) == 0 ? 2 : 0;
        const unsigned long when = timer != 0 ? cosmetic.below(720000) : 0;
        const bool slow_start = cosmetic.below(10) < 7;
        const int ssthresh = listen ? 0 : (slow_start ? -1 : static_cast<int>(7 + cosmetic.below(200)));
        const int refcount = 1 + static_cast<int>(cosmetic.below(3));
        const unsigned long rto = listen ? 100 : 20 + cosmetic.below(185);
        const unsigned long ato = cosmetic.below(41);
        const unsigned quick = cosmetic.below(4);
        const unsigned cwnd = 10 + cosmetic.below(30);
        // get_tcp4_sock / get_tcp6_sock; %pK prints 16 lowercase hex digits.
        n = std::snprintf(text, sizeof text,
                          "%4d: %s %s %02X %08X:%08X %02X:%08lX %08X %5u %8d %lu %d %016lx %lu %lu "
                          "%u %u %d",
                          slot, local, remote, state, tx, rx, timer, when, 0u, uid, 0, inode++,
                          refcount, pointer, rto, ato, quick, cwnd, ssthresh);
        break;
      }
      case Line::Shape::kTimeWait: {
        // get_timewait4_sock / get_timewait6_sock: tr 3, then zeros and the refcount.
        const unsigned long when = cosmetic.below(6000);
        n = std::snprintf(text, sizeof text,
                          "%4d: %s %s %02X %08X:%08X %02X:%08lX %08X %5d %8d %d %d %016lx", slot,
                          local, remote, state, 0u, 0u, 3u, when, 0u, 0, 0, 0, 3, pointer);
        break;
      }
      case Line::Shape::kRequest: {
        // get_openreq4 / get_openreq6: always printed as SYN_RECV, tr 1, no inode.
        const unsigned long when = cosmetic.below(300);
        const unsigned retransmits = cosmetic.below(3);
        n = std::snprintf(text, sizeof text,
                          "%4d: %s %s %02X %08X:%08X %02X:%08lX %08X %5u %8d %u %d %016lx", slot,
                          local, remote, static_cast<unsigned>(TcpState::kSynRecv), 0u, 0u, 1u,
                          when, retransmits, 0u, 0, 0u, 0, pointer);
        break;
      }
    }
    const std::size_t start = out.size();
    out.append(text, static_cast<std::size_t>(n));
    pad(start);
  }
  return out;
}

GeneratedCounts generated_counts(TcpTableFamily family, std::size_t sockets, std::uint64_t seed) {
  GeneratedCounts counts;
  Generator generator(family, seed);
  const std::size_t listeners = listeners_for(sockets);
  for (std::size_t i = 0; i < sockets; ++i) {
    const Line line = generator.next(i, listeners);
    ++counts.sockets;
    if (line.state == TcpState::kListen) ++counts.listening;
    if (line.state == TcpState::kEstablished) {
      ++counts.established;
      if (line.inbound) ++counts.established_inbound;
    }
  }
  return counts;
}

}  // namespace skopos::bench
