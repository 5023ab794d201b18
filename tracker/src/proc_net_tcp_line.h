// Internal: one line of /proc/net/tcp{,6} at a time. This parser is the definition of
// what the decoder accepts; the SIMD counting kernels only ever accept a subset of it
// and hand every other line back to it.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "scan_kernel.h"
#include "tracker/proc_net_tcp.h"

namespace skopos::tracker::detail {

// A failure within one line; the framer adds line number and file offset.
struct LineError {
  DecodeErrorKind kind = DecodeErrorKind::kUnexpectedByte;
  std::uint32_t column = 0;
  std::string_view expected;
  int found = -1;
};

// The table whose header is [begin, newline), if it is one. The IPv4 header is padded
// with spaces; any trailing spaces are accepted on both.
std::optional<TcpTableFamily> match_header(const char* begin, const char* newline);

// Parses the socket line [begin, newline) (newline points at the '\n' and is not
// read). Fills every field of `out` except `line`. Returns false and fills `error` if
// the line does not follow the grammar.
bool parse_socket_line(const char* begin, const char* newline, TcpTableFamily family,
                       TcpSocketRecord& out, LineError& error);

// Finds and parses the line that starts at `line` within [line, end). Returns the byte
// after its newline; `line` itself when [line, end) holds no newline and is shorter
// than kMaxLineLength (more input needed); nullptr when the line is invalid or too long,
// with `error` saying why.
const char* parse_line_at(const char* line, const char* end, TcpTableFamily family, TcpSocketRecord& out,
                          LineError& error);

}  // namespace skopos::tracker::detail
