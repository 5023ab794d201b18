#include "proc_net_tcp_line.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

namespace skopos::tracker::detail {

namespace {

// The headers exactly as tcp4_seq_show and tcp6_seq_show print them, without the
// IPv4 header's padding and without the newline.
constexpr std::string_view kIpv4Header =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
    "timeout inode";
constexpr std::string_view kIpv6Header =
    "  sl  local_address                         remote_address                        "
    "st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";

constexpr int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool header_is(std::string_view line, std::string_view header) {
  if (line.substr(0, header.size()) != header) return false;
  for (char c : line.substr(header.size())) {
    if (c != ' ') return false;
  }
  return true;
}

// Reads one line left to right. Every method either consumes what it promises and
// returns true, or records where and why it stopped and returns false.
class Cursor {
 public:
  Cursor(const char* begin, const char* end, LineError& error)
      : begin_(begin), p_(begin), end_(end), error_(error) {}

  bool at_end() const { return p_ == end_; }

  bool literal(char c, std::string_view expected) {
    if (p_ == end_ || *p_ != c) return fail(DecodeErrorKind::kUnexpectedByte, expected);
    ++p_;
    return true;
  }

  // Zero or more spaces; returns how many.
  std::size_t skip_spaces() {
    const char* start = p_;
    while (p_ != end_ && *p_ == ' ') ++p_;
    return static_cast<std::size_t>(p_ - start);
  }

  // At least one space.
  bool spaces() {
    if (skip_spaces() > 0) return true;
    return fail(DecodeErrorKind::kUnexpectedByte, "' '");
  }

  // Between min_digits and max_digits (at most 16) hex digits; more is a number out of
  // range, fewer a wrong byte.
  bool hex(int min_digits, int max_digits, std::uint64_t& value) {
    const char* start = p_;
    std::uint64_t v = 0;
    int digits = 0;
    while (p_ != end_) {
      const int d = hex_value(static_cast<unsigned char>(*p_));
      if (d < 0) break;
      if (digits == max_digits) {
        p_ = start;
        return fail(DecodeErrorKind::kNumberOutOfRange, "at most 16 hex digits");
      }
      v = (v << 4) | static_cast<std::uint64_t>(d);
      ++digits;
      ++p_;
    }
    if (digits < min_digits) return fail(DecodeErrorKind::kUnexpectedByte, "hex digit");
    value = v;
    return true;
  }

  // Exactly `digits` hex digits, as %0<digits>X prints them; a further hex digit is
  // reported where the separator should have been.
  bool hex_fixed(int digits, std::uint64_t& value) {
    std::uint64_t v = 0;
    for (int i = 0; i < digits; ++i) {
      const int d = p_ == end_ ? -1 : hex_value(static_cast<unsigned char>(*p_));
      if (d < 0) return fail(DecodeErrorKind::kUnexpectedByte, "hex digit");
      v = (v << 4) | static_cast<std::uint64_t>(d);
      ++p_;
    }
    value = v;
    return true;
  }

  // One or more decimal digits whose value is at most `max`.
  bool decimal(std::uint64_t max, std::uint64_t& value) {
    const char* start = p_;
    std::uint64_t v = 0;
    if (p_ == end_ || *p_ < '0' || *p_ > '9') {
      return fail(DecodeErrorKind::kUnexpectedByte, "decimal digit");
    }
    while (p_ != end_ && *p_ >= '0' && *p_ <= '9') {
      const auto d = static_cast<std::uint64_t>(*p_ - '0');
      if (v > (max - d) / 10) {
        p_ = start;
        return fail(DecodeErrorKind::kNumberOutOfRange, "a number that fits the field");
      }
      v = v * 10 + d;
      ++p_;
    }
    value = v;
    return true;
  }

  // An optional '-' and one or more decimal digits, within [min, max].
  bool signed_decimal(std::int64_t min, std::int64_t max, std::int64_t& value) {
    const char* start = p_;
    const bool negative = p_ != end_ && *p_ == '-';
    if (negative) ++p_;
    std::uint64_t magnitude = 0;
    const std::uint64_t limit = negative ? static_cast<std::uint64_t>(-(min + 1)) + 1
                                         : static_cast<std::uint64_t>(max);
    if (!decimal(limit, magnitude)) {
      if (error_.kind == DecodeErrorKind::kNumberOutOfRange) error_.column = column_of(start);
      return false;
    }
    // magnitude <= 2^63 - 1 here: the callers' ranges are 32-bit.
    value = negative ? -static_cast<std::int64_t>(magnitude) : static_cast<std::int64_t>(magnitude);
    return true;
  }

  bool fail(DecodeErrorKind kind, std::string_view expected) {
    error_.kind = kind;
    error_.column = column_of(p_);
    error_.expected = expected;
    error_.found = p_ == end_ ? -1 : static_cast<unsigned char>(*p_);
    return false;
  }

  const char* position() const { return p_; }
  void rewind(const char* to) { p_ = to; }

 private:
  std::uint32_t column_of(const char* at) const { return static_cast<std::uint32_t>(at - begin_); }

  const char* begin_;
  const char* p_;
  const char* end_;
  LineError& error_;
};

template <class T>
bool unsigned_field(Cursor& c, T& out) {
  std::uint64_t v = 0;
  if (!c.decimal(std::numeric_limits<T>::max(), v)) return false;
  out = static_cast<T>(v);
  return true;
}

bool signed_field(Cursor& c, std::int32_t& out) {
  std::int64_t v = 0;
  if (!c.signed_decimal(std::numeric_limits<std::int32_t>::min(),
                        std::numeric_limits<std::int32_t>::max(), v)) {
    return false;
  }
  out = static_cast<std::int32_t>(v);
  return true;
}

// The kernel prints each 32-bit word of an address with %08X, so the text is the
// word's value and the address bytes are that value in host (little-endian) order.
bool address_word(Cursor& c, std::uint8_t* bytes) {
  std::uint64_t word = 0;
  if (!c.hex_fixed(8, word)) return false;
  for (int i = 0; i < 4; ++i) bytes[i] = static_cast<std::uint8_t>(word >> (8 * i));
  return true;
}

bool endpoint(Cursor& c, TcpTableFamily family, std::array<std::uint8_t, 16>& address,
              std::uint16_t& port) {
  address = {};
  if (family == TcpTableFamily::kIpv4) {
    address[10] = 0xff;
    address[11] = 0xff;
    if (!address_word(c, &address[12])) return false;
  } else {
    for (int word = 0; word < 4; ++word) {
      if (!address_word(c, &address[static_cast<std::size_t>(word) * 4])) return false;
    }
  }
  std::uint64_t p = 0;
  if (!c.literal(':', "':'") || !c.hex_fixed(4, p)) return false;
  port = static_cast<std::uint16_t>(p);
  return true;
}

}  // namespace

std::optional<TcpTableFamily> match_header(const char* begin, const char* newline) {
  const std::string_view line(begin, static_cast<std::size_t>(newline - begin));
  if (header_is(line, kIpv4Header)) return TcpTableFamily::kIpv4;
  if (header_is(line, kIpv6Header)) return TcpTableFamily::kIpv6;
  return std::nullopt;
}

const char* parse_line_at(const char* line, const char* end, TcpTableFamily family, TcpSocketRecord& out,
                          LineError& error) {
  const auto available = static_cast<std::size_t>(end - line);
  const auto* newline = static_cast<const char*>(std::memchr(line, '\n', std::min(available, kMaxLineLength)));
  if (newline == nullptr) {
    if (available < kMaxLineLength) return line;
    error = LineError{.kind = DecodeErrorKind::kLineTooLong,
                      .column = static_cast<std::uint32_t>(kMaxLineLength - 1),
                      .expected = "newline",
                      .found = static_cast<unsigned char>(line[kMaxLineLength - 1])};
    return nullptr;
  }
  return parse_socket_line(line, newline, family, out, error) ? newline + 1 : nullptr;
}

bool parse_socket_line(const char* begin, const char* newline, TcpTableFamily family,
                       TcpSocketRecord& out, LineError& error) {
  Cursor c(begin, newline, error);
  out.family = family;

  // "%4d: " -- the slot number, right-aligned in at least four columns.
  c.skip_spaces();
  if (!c.decimal(std::numeric_limits<std::uint64_t>::max(), out.slot)) return false;
  if (!c.literal(':', "':'") || !c.literal(' ', "' '")) return false;

  if (!endpoint(c, family, out.local_address, out.local_port) || !c.literal(' ', "' '") ||
      !endpoint(c, family, out.remote_address, out.remote_port) || !c.literal(' ', "' '")) {
    return false;
  }

  const char* state_at = c.position();
  std::uint64_t state = 0;
  if (!c.hex_fixed(2, state)) return false;
  const auto tcp_state = tcp_state_from_number(static_cast<unsigned>(state));
  if (!tcp_state) {
    c.rewind(state_at);
    return c.fail(DecodeErrorKind::kUnknownState, "a TCP state, 01 to 0D");
  }
  out.state = *tcp_state;

  std::uint64_t v = 0;
  if (!c.literal(' ', "' '") || !c.hex_fixed(8, v)) return false;
  out.tx_queue = static_cast<std::uint32_t>(v);
  if (!c.literal(':', "':'") || !c.hex_fixed(8, v)) return false;
  out.rx_queue = static_cast<std::uint32_t>(v);
  if (!c.literal(' ', "' '") || !c.hex_fixed(2, v)) return false;
  out.timer = static_cast<std::uint8_t>(v);
  // %08lX of a long: at least 8 digits, at most 16.
  if (!c.literal(':', "':'") || !c.hex(8, 16, out.timer_expires)) return false;
  if (!c.literal(' ', "' '") || !c.hex_fixed(8, v)) return false;
  out.retransmits = static_cast<std::uint32_t>(v);

  // "%5u %8d": right-aligned, so any number of spaces may precede each.
  if (!c.spaces() || !unsigned_field(c, out.uid)) return false;
  if (!c.spaces() || !signed_field(c, out.probes)) return false;
  if (!c.literal(' ', "' '") || !unsigned_field(c, out.inode)) return false;
  if (!c.literal(' ', "' '") || !signed_field(c, out.refcount)) return false;
  if (!c.literal(' ', "' '") || !c.hex(1, 16, out.kernel_pointer)) return false;

  // Mini-sockets end after the pointer; full sockets carry five more fields.
  const char* after_pointer = c.position();
  const std::size_t gap = c.skip_spaces();
  if (c.at_end()) {
    out.kind = out.state == TcpState::kSynRecv ? SocketKind::kRequest : SocketKind::kTimeWait;
    out.rto = out.ato = 0;
    out.ack_quick_pingpong = out.snd_cwnd = 0;
    out.ssthresh = 0;
    return true;
  }
  if (gap != 1) {
    if (gap == 0) return c.fail(DecodeErrorKind::kUnexpectedByte, "' ' or end of line");
    c.rewind(after_pointer + 1);
    return c.fail(DecodeErrorKind::kUnexpectedByte, "decimal digit");
  }
  out.kind = SocketKind::kFull;
  if (!unsigned_field(c, out.rto)) return false;
  if (!c.literal(' ', "' '") || !unsigned_field(c, out.ato)) return false;
  if (!c.literal(' ', "' '") || !unsigned_field(c, out.ack_quick_pingpong)) return false;
  if (!c.literal(' ', "' '") || !unsigned_field(c, out.snd_cwnd)) return false;
  if (!c.literal(' ', "' '") || !signed_field(c, out.ssthresh)) return false;
  c.skip_spaces();
  if (!c.at_end()) return c.fail(DecodeErrorKind::kUnexpectedByte, "end of line");
  return true;
}

}  // namespace skopos::tracker::detail
