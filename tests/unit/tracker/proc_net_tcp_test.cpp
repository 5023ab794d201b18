#include "tracker/proc_net_tcp.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "decode_test_support.h"
#include "proc_net_tcp_gen.h"

namespace skopos::tracker {
namespace {

using testing::chunks_of;
using testing::count;
using testing::count_records;
using testing::Outcome;
using testing::records_of;
using testing::runnable_kernels;
using testing::split_at;
using testing::testdata;

constexpr std::string_view kIpv4Header =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
    "timeout inode";
constexpr std::string_view kIpv6Header =
    "  sl  local_address                         remote_address                        "
    "st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";

// Lines captured from this kernel (tests/unit/tracker/testdata/netns.tcp{,6}), one of
// each shape, without padding or newline.
constexpr std::string_view kV4Listen =
    "   0: 0100007F:1E61 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 "
    "8472 2 000000007cadabfe 100 0 0 10 0";
constexpr std::string_view kV4Established =
    "   2: 0100007F:B842 0100007F:2382 01 00000000:00000000 00:00000000 00000000     0        0 "
    "8464 2 000000008ed97614 20 0 0 10 -1";
constexpr std::string_view kV4TimeWait =
    "   4: 0100007F:ED66 0100007F:1F90 06 00000000:00000000 03:0000174C 00000000     0        0 "
    "0 3 00000000fb8aa117";
constexpr std::string_view kV4Request =
    "   9: 0100007F:1E61 0100007F:A7CC 03 00000000:00000000 01:00000045 00000000     0        0 "
    "0 0 000000006ba8343b";
constexpr std::string_view kV6Listen =
    "   0: 00000000000000000000000000000000:2382 00000000000000000000000000000000:0000 0A "
    "00000000:00000000 00:00000000 00000000     0        0 8461 1 000000005a56d3e4 100 0 0 10 0";
constexpr std::string_view kV6Mapped =
    "   3: 0000000000000000FFFF00000100007F:2382 0000000000000000FFFF00000100007F:B842 01 "
    "00000000:00000000 00:00000000 00000000     0        0 8465 1 0000000053778509 20 0 0 10 -1";
constexpr std::string_view kV6Loopback =
    "   4: 00000000000000000000000001000000:2382 00000000000000000000000001000000:CFF6 01 "
    "00000000:00000000 00:00000000 00000000     0        0 8463 1 00000000b0595b8f 20 0 0 10 -1";
constexpr std::string_view kV6TimeWait =
    "   7: 00000000000000000000000001000000:D004 00000000000000000000000001000000:2382 06 "
    "00000000:00000000 03:00001751 00000000     0        0 0 3 00000000cc471616";

// A table as the kernel prints it: IPv4 lines padded to 149 columns.
std::string v4_table(const std::vector<std::string_view>& lines) {
  std::string text(kIpv4Header);
  text.append(149 - text.size(), ' ');
  text += '\n';
  for (std::string_view line : lines) {
    text += line;
    if (line.size() < 149) text.append(149 - line.size(), ' ');
    text += '\n';
  }
  return text;
}

std::string v6_table(const std::vector<std::string_view>& lines) {
  std::string text(kIpv6Header);
  text += '\n';
  for (std::string_view line : lines) {
    text += line;
    text += '\n';
  }
  return text;
}

std::string address_text(const std::array<std::uint8_t, 16>& bytes) {
  char text[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, bytes.data(), text, sizeof text);
  return text;
}

// Both paths, every kernel, whole input: all must agree; returns the records' outcome.
Outcome decode_everywhere(std::string_view text) {
  const Outcome reference = count_records({text});
  for (ScanKernel kernel : runnable_kernels()) {
    EXPECT_EQ(count({text}, kernel), reference) << "kernel " << scan_kernel_name(kernel);
  }
  return reference;
}

TEST(ProcNetTcpRecords, EveryKernelMakesTheSameRecordsOfTheCaptures) {
  for (const char* name : {"netns.tcp", "netns.tcp6"}) {
    // Repeated, so that most lines have the read-ahead the SIMD kernels need.
    std::string text = testdata(name);
    const std::string body = text.substr(text.find('\n') + 1);
    for (int i = 0; i < 3; ++i) text += body;
    const auto reference = records_of(text, ScanKernel::kParser);
    for (ScanKernel kernel : runnable_kernels()) {
      EXPECT_EQ(records_of(text, kernel), reference) << scan_kernel_name(kernel) << " " << name;
    }
  }
}

TEST(ProcNetTcpRecords, DecodesEveryFieldOfCapturedIpv4Table) {
  const auto records = records_of(testdata("netns.tcp"));
  ASSERT_EQ(records.size(), 10u);

  const TcpSocketRecord& listen = records[0];
  EXPECT_EQ(listen.family, TcpTableFamily::kIpv4);
  EXPECT_EQ(listen.kind, SocketKind::kFull);
  EXPECT_EQ(listen.state, TcpState::kListen);
  EXPECT_EQ(listen.line, 2u);
  EXPECT_EQ(listen.slot, 0u);
  EXPECT_EQ(address_text(listen.local_address), "::ffff:127.0.0.1");
  EXPECT_EQ(listen.local_port, 7777);
  EXPECT_EQ(address_text(listen.remote_address), "::ffff:0.0.0.0");
  EXPECT_EQ(listen.remote_port, 0);
  EXPECT_EQ(listen.uid, 0u);
  EXPECT_EQ(listen.inode, 8472u);
  EXPECT_EQ(listen.refcount, 2);
  EXPECT_EQ(listen.kernel_pointer, 0x7cadabfeu);
  EXPECT_EQ(listen.rto, 100u);
  EXPECT_EQ(listen.snd_cwnd, 10u);
  EXPECT_EQ(listen.ssthresh, 0);

  const TcpSocketRecord& established = records[2];
  EXPECT_EQ(established.state, TcpState::kEstablished);
  EXPECT_EQ(established.local_port, 47170);
  EXPECT_EQ(established.remote_port, 9090);
  EXPECT_EQ(established.rto, 20u);
  EXPECT_EQ(established.ssthresh, -1);

  const TcpSocketRecord& time_wait = records[4];
  EXPECT_EQ(time_wait.kind, SocketKind::kTimeWait);
  EXPECT_EQ(time_wait.state, TcpState::kTimeWait);
  EXPECT_EQ(time_wait.timer, 3);
  EXPECT_EQ(time_wait.timer_expires, 0x174Cu);
  EXPECT_EQ(time_wait.inode, 0u);
  EXPECT_EQ(time_wait.refcount, 3);
  EXPECT_EQ(time_wait.kernel_pointer, 0xfb8aa117u);

  // An orphaned FIN_WAIT2 socket becomes a time-wait mini-socket printed as FIN_WAIT2.
  EXPECT_EQ(records[5].kind, SocketKind::kTimeWait);
  EXPECT_EQ(records[5].state, TcpState::kFinWait2);

  const TcpSocketRecord& close_wait = records[6];
  EXPECT_EQ(close_wait.state, TcpState::kCloseWait);
  EXPECT_EQ(close_wait.rx_queue, 1u);
  EXPECT_EQ(close_wait.ato, 4u);

  const TcpSocketRecord& request = records[9];
  EXPECT_EQ(request.kind, SocketKind::kRequest);
  EXPECT_EQ(request.state, TcpState::kSynRecv);
  EXPECT_EQ(request.timer, 1);
  EXPECT_EQ(request.timer_expires, 0x45u);
  EXPECT_EQ(request.local_port, 7777);
  EXPECT_EQ(request.remote_port, 42956);
  EXPECT_EQ(request.line, 11u);
}

TEST(ProcNetTcpRecords, DecodesCapturedIpv6TableWithMappedAddresses) {
  const auto records = records_of(testdata("netns.tcp6"));
  ASSERT_EQ(records.size(), 8u);
  EXPECT_EQ(records[0].family, TcpTableFamily::kIpv6);
  EXPECT_EQ(address_text(records[0].local_address), "::");
  EXPECT_EQ(records[0].local_port, 9090);
  EXPECT_EQ(records[0].state, TcpState::kListen);
  EXPECT_EQ(address_text(records[1].local_address), "::1");
  EXPECT_EQ(records[1].local_port, 7777);
  EXPECT_EQ(records[1].rx_queue, 1u);  // a connection waiting in the accept queue
  EXPECT_EQ(address_text(records[3].local_address), "::ffff:127.0.0.1");
  EXPECT_EQ(address_text(records[3].remote_address), "::ffff:127.0.0.1");
  EXPECT_EQ(records[3].remote_port, 47170);
  EXPECT_EQ(records[7].kind, SocketKind::kTimeWait);
  EXPECT_EQ(records[7].local_port, 53252);
}

TEST(ProcNetTcpCounting, CapturedNamespaceCountsMatchWhatSsReported) {
  // The capture's namespace held, per `ss -tan`: listeners on 127.0.0.1:7777,
  // 127.0.0.1:8080, *:9090 and [::1]:7777; 9 ESTABLISHED sockets of which 4 are
  // accepted connections (to 7777, 8080 and twice 9090).
  const std::string tcp = testdata("netns.tcp");
  const std::string tcp6 = testdata("netns.tcp6");
  for (ScanKernel kernel : runnable_kernels()) {
    SCOPED_TRACE(scan_kernel_name(kernel));
    PortStateTally tally;
    TcpTableCounter counter(tally, kernel);
    ASSERT_TRUE(counter.feed(tcp));
    ASSERT_TRUE(counter.finish());
    EXPECT_EQ(counter.family(), TcpTableFamily::kIpv4);
    EXPECT_EQ(counter.lines(), 11u);
    counter.reset();
    ASSERT_TRUE(counter.feed(tcp6));
    ASSERT_TRUE(counter.finish());
    EXPECT_EQ(counter.family(), TcpTableFamily::kIpv6);

    EXPECT_EQ(tally.count(7777, TcpState::kListen), 2u);
    EXPECT_EQ(tally.count(7777, TcpState::kSynRecv), 1u);
    EXPECT_EQ(tally.count(8080, TcpState::kCloseWait), 1u);
    EXPECT_EQ(tally.count(9090, TcpState::kEstablished), 2u);
    EXPECT_EQ(tally.count(60774, TcpState::kTimeWait), 1u);
    EXPECT_EQ(tally.count(60780, TcpState::kFinWait2), 1u);

    const TallySummary summary = tally.summarize();
    EXPECT_EQ(summary.sockets, 18u);
    EXPECT_EQ(summary.count(TcpState::kEstablished), 9u);
    EXPECT_EQ(summary.count(TcpState::kListen), 4u);
    EXPECT_EQ(summary.count(TcpState::kTimeWait), 2u);
    EXPECT_EQ(summary.established_inbound, 4u);
    EXPECT_EQ(summary.established_outbound, 5u);
  }
}

TEST(ProcNetTcpRecords, AcceptsWideSlotNumbers) {
  // "%4d" widens past 9999 sockets; every width takes the same path in both decoders.
  const std::string v6_line(kV6Loopback);
  for (std::string slot : {"12345", "999999", "1234567", "12345678", "123456789", "18446744073709551615"}) {
    SCOPED_TRACE(slot);
    const std::string line = slot + v6_line.substr(4);
    const std::string text = v6_table({line});
    const Outcome outcome = decode_everywhere(text);
    ASSERT_FALSE(outcome.error) << outcome.error->message();
    EXPECT_EQ(records_of(text).at(0).slot, std::stoull(slot));
  }
  // Past 2^64 - 1 the slot no longer fits.
  const Outcome outcome = decode_everywhere(v6_table({"18446744073709551616" + v6_line.substr(4)}));
  ASSERT_TRUE(outcome.error);
  EXPECT_EQ(outcome.error->kind, DecodeErrorKind::kNumberOutOfRange);
}

TEST(ProcNetTcpRecords, ToleratesLowercaseHexUnpaddedIpv4AndTrailingSpaces) {
  std::string lower(kV6Mapped);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  }
  const Outcome mixed = decode_everywhere(v6_table({lower, std::string(kV6Loopback) + "   "}));
  ASSERT_FALSE(mixed.error) << mixed.error->message();
  EXPECT_EQ(mixed.summary.count(TcpState::kEstablished), 2u);

  // An IPv4 table whose padding was stripped (an editor, a copy-and-paste).
  std::string text(kIpv4Header);
  text += '\n';
  text += kV4Established;
  text += '\n';
  const Outcome unpadded = decode_everywhere(text);
  ASSERT_FALSE(unpadded.error) << unpadded.error->message();
  EXPECT_EQ(unpadded.summary.count(TcpState::kEstablished), 1u);
}

TEST(ProcNetTcpRecords, FieldLimitsAreExact) {
  struct Case {
    std::string line;
    bool accepted;
  };
  const std::string base(kV4Established);
  const auto with_tail = [&](std::string_view tail) {
    // Everything up to and including retrnsmt's trailing space, then `tail`.
    return base.substr(0, 76) + std::string(tail);
  };
  const std::vector<Case> cases = {
      {with_tail("4294967295        0 8464 2 000000008ed97614 20 0 0 10 -1"), true},
      {with_tail("4294967296        0 8464 2 000000008ed97614 20 0 0 10 -1"), false},
      {with_tail("    0 -2147483648 8464 2 000000008ed97614 20 0 0 10 -1"), true},
      {with_tail("    0 2147483648 8464 2 000000008ed97614 20 0 0 10 -1"), false},
      {with_tail("    0        0 18446744073709551615 2 000000008ed97614 20 0 0 10 -1"), true},
      {with_tail("    0        0 18446744073709551616 2 000000008ed97614 20 0 0 10 -1"), false},
      {with_tail("    0        0 8464 -7 ffffffffffffffff 20 0 0 10 -2147483648"), true},
      {with_tail("    0        0 8464 2 1ffffffffffffffff 20 0 0 10 -1"), false},
      {with_tail("    0        0 8464 2 000000008ed97614 20 0 0 10 -2147483649"), false},
      {with_tail("    0        0 8464 2 000000008ed97614 18446744073709551615 0 4294967295 10 2147483647"), true},
      {with_tail("    0        0 8464 2 000000008ed97614 20 0 4294967296 10 -1"), false},
      {with_tail("    0        0 8464 2 0 20 0 0 10 -1"), true},
      {base.substr(0, 58) + "0123456789ABCDEF" + base.substr(66), true},   // tm->when, 16 digits
      {base.substr(0, 58) + "0123456789ABCDEF0" + base.substr(66), false},  // 17 digits
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.line);
    const Outcome outcome = decode_everywhere(v4_table({c.line}));
    EXPECT_EQ(!outcome.error.has_value(), c.accepted) << (outcome.error ? outcome.error->message() : "");
    if (outcome.error) {
      EXPECT_EQ(outcome.error->kind, DecodeErrorKind::kNumberOutOfRange);
    }
  }
}

// The SIMD kernels read a proven line's fields several at a time (VectorConvert in
// scan_convert_avx2.h, Avx512Convert in scan_avx512.cpp): decimal fields from the eight
// bytes ending at each, with the longer ones read one by one. Every width around those
// edges, on lines the kernels prove, must give the parser's records.
TEST(ProcNetTcpRecords, ProvenLinesWithFieldsOfEveryWidthDecodeAsTheParserDoes) {
  // Each at most the tail window's 64 bytes, so that the kernels prove the line.
  const std::vector<std::string_view> tails = {
      "    0        0 8464 2 000000008ed97614 20 0 0 10 -1",
      "123456789        0 8464 2 000000008ed97614 20 0 0 10 -1",
      "    0 87654321 123456789 1 00000000b0595b8f 200 40 1 10 7",
      "    0        0 1234567890123456 2 ffffffffffffffff 1 2 3 4 -5",
      "    0        0 12345678901234567 2 0 1 0 0 10 -1",
      "    0        0 1234567890123456789 2 123456789abcdef 1 2 3 4 -1",
      "    0        0 8464 123456789 0123456789abcdef 1 2 3 4 5",
      "    0        0 8464 2 0 123456789 0 0 10 -1",
      "    0        0 8464 2 0 12345678 87654321 12345678 87654321 -1",
      "    0        0 8464 2 0 1 987654321 1 1 1",
      "    0        0 8464 2 0 1 1 123456789 1 1",
      "    0        0 8464 2 0 1 1 1 123456789 1",
      "    0        0 8464 2 0 1 1 1 1 -12345678",
      "    0        0 8464 2 0 1 1 1 1 123456789",
      "12345678 12345678 12345678 12345678 0 12345678 12345678 1 1 1",
      "    0        0 0 3 00000000fb8aa117",
      "    0        0 987654321 3 0",
      "   99 12345678 12345678901 0 0000000000000001",
      // Short inodes after a probes count that is not 0, and the widest the vector path
      // reads whole: the upper half of the inode's lanes holds other fields' digits
      // (VectorConvert stops at the last non-digit, Avx512Convert at the field's start).
      "    0        1 1234567 2 0000000000000000 20 4 30 10 -1",
      " 1000       12 123456 1 00000000b0595b8f 20 4 30 10 -1",
      "    7  1234567 12 1 00000000b0595b8f 20 4 30 10 -1",
      " 4321     7654 1 1 00000000b0595b8f 1 2 3 4 5",
      "    0        3 123456789012345 2 0 20 4 30 10 -1",
      "    5        9 1234567890 2 abc 20 4 30 10 -1",
      "    0        1 1234567 3 00000000fb8aa117",
      // A lane's first byte at a field's own first byte, neither a digit of eight nor a
      // long field: a minus and seven digits, an inode of exactly eight, a uid of seven
      // at the tail's start.
      "    0        0 8464 2 0 1 1 1 1 -1234567",
      "    0        0 12345678 2 00000000b0595b8f 20 4 30 10 -1",
      "1234567        0 8464 2 0 1 1 1 1 5",
  };
  const std::vector<std::string_view> heads = {
      "   2: 0100007F:B842 0100007F:2382 01 00000000:00000000 00:00000000 00000000 ",
      "99999: 0A0B0C0D:FFFF FFFFFFFF:0001 06 FFFFFFFF:12345678 04:ABCDEF01 7FFFFFFF ",
      "   4: 00000000000000000000000001000000:2382 00000000000000000000000001000000:CFF6 01 "
      "00000000:00000000 00:00000000 00000000 ",
      "12345678: 0123456789ABCDEF0123456789ABCDEF:FFFF FEDCBA9876543210FEDCBA9876543210:0000 0B "
      "ABCDEF01:23456789 03:FFFFFFFF 00000009 ",
  };
  for (std::string_view head : heads) {
    const bool v6 = head.size() > 100;
    for (std::string_view tail : tails) {
      const std::string line = std::string(head) + std::string(tail);
      SCOPED_TRACE(line);
      // Twenty copies: whole batches of eight, and all but the last two lines have the
      // kernels' read-ahead.
      const std::vector<std::string_view> lines(20, line);
      const std::string table = v6 ? v6_table(lines) : v4_table(lines);
      const auto reference = records_of(table, ScanKernel::kParser);
      ASSERT_EQ(reference.size(), 20u);
      for (ScanKernel kernel : runnable_kernels()) {
        if (kernel == ScanKernel::kParser) continue;
        EXPECT_LE(count({table}, kernel).fallback_lines, 2u) << scan_kernel_name(kernel) << ": not proven";
        EXPECT_EQ(records_of(table, kernel), reference) << scan_kernel_name(kernel);
      }
    }
  }
}

TEST(ProcNetTcpRecords, LongPaddingMayHoldOnlySpaces) {
  // Lines this long send the SIMD kernels through more than one 64-byte window after
  // the fields; four valid lines after each give them the read-ahead to do so.
  for (bool v6 : {false, true}) {
    const std::string shape(v6 ? kV6Loopback : kV4Established);
    const std::string padded = shape + std::string(300, ' ');
    const std::string dirty = shape + std::string(250, ' ') + "x" + std::string(49, ' ');
    const auto table = [&](const std::string& first) {
      const std::vector<std::string_view> lines = {first, shape, shape, shape, shape};
      return v6 ? v6_table(lines) : v4_table(lines);
    };
    const Outcome clean = decode_everywhere(table(padded));
    ASSERT_FALSE(clean.error) << clean.error->message();
    EXPECT_EQ(clean.summary.count(TcpState::kEstablished), 5u);
    const Outcome bad = decode_everywhere(table(dirty));
    ASSERT_TRUE(bad.error);
    EXPECT_EQ(bad.error->line, 2u);
    EXPECT_EQ(bad.error->column, shape.size() + 250);
    EXPECT_EQ(bad.error->expected, "end of line");

    // kMaxLineLength counts the newline: 511 characters fit, 512 do not.
    std::string longest = shape;
    longest.resize(kMaxLineLength - 1, ' ');
    const Outcome fits = decode_everywhere(table(longest));
    EXPECT_FALSE(fits.error) << fits.error->message();
    const Outcome too_long = decode_everywhere(table(longest + " "));
    ASSERT_TRUE(too_long.error);
    EXPECT_EQ(too_long.error->kind, DecodeErrorKind::kLineTooLong);
  }
}

struct ErrorCase {
  std::string name;
  std::string input;
  DecodeErrorKind kind;
  std::uint64_t line;
  std::uint64_t column;
  std::string_view expected;
  int found;
};

std::string replace_at(std::string_view line, std::size_t at, std::string_view with, std::size_t erase = 1) {
  std::string out(line);
  out.replace(at, erase, with);
  return out;
}

std::vector<ErrorCase> error_cases() {
  const std::string v4_established(kV4Established);
  const std::string v6_loopback(kV6Loopback);
  std::string long_line(600, '7');
  return {
      {"empty", "", DecodeErrorKind::kEmptyInput, 1, 0, "the table's header line", -1},
      {"not a header", "hello\n", DecodeErrorKind::kBadHeader, 1, 0,
       "the /proc/net/tcp or /proc/net/tcp6 header", 'h'},
      {"header without newline", std::string(kIpv6Header), DecodeErrorKind::kMissingNewline, 1,
       kIpv6Header.size(), "newline", -1},
      {"bad hex in address", v4_table({replace_at(kV4Established, 13, "G")}),
       DecodeErrorKind::kUnexpectedByte, 2, 13, "hex digit", 'G'},
      {"state 00", v4_table({replace_at(kV4Established, 34, "00", 2)}), DecodeErrorKind::kUnknownState,
       2, 34, "a TCP state, 01 to 0D", '0'},
      {"state 0E", v6_table({replace_at(kV6Loopback, 82, "0E", 2)}), DecodeErrorKind::kUnknownState, 2,
       82, "a TCP state, 01 to 0D", '0'},
      {"negative uid", v4_table({replace_at(kV4Established, 80, "-")}),
       DecodeErrorKind::kUnexpectedByte, 2, 80, "decimal digit", '-'},
      {"tab separator", v4_table({replace_at(kV4Established, 75, "\t")}),
       DecodeErrorKind::kUnexpectedByte, 2, 75, "' '", '\t'},
      {"CRLF", v6_table({v6_loopback + "\r"}), DecodeErrorKind::kUnexpectedByte, 2,
       v6_loopback.size(), "end of line", '\r'},
      {"mini-socket without pointer", v6_table({std::string(kV6TimeWait.substr(0, kV6TimeWait.size() - 17))}),
       DecodeErrorKind::kUnexpectedByte, 2, kV6TimeWait.size() - 17, "' '", -1},
      {"extra field", v6_table({v6_loopback + " 7"}), DecodeErrorKind::kUnexpectedByte, 2,
       v6_loopback.size() + 1, "end of line", '7'},
      {"two spaces after pointer", v6_table({std::string(kV6TimeWait) + "  5"}),
       DecodeErrorKind::kUnexpectedByte, 2, kV6TimeWait.size() + 1, "decimal digit", ' '},
      {"missing ssthresh", v6_table({v6_loopback.substr(0, v6_loopback.size() - 3)}),
       DecodeErrorKind::kUnexpectedByte, 2, v6_loopback.size() - 3, "' '", -1},
      {"IPv4 line in the tcp6 table", v6_table({std::string(kV4Established)}),
       DecodeErrorKind::kUnexpectedByte, 2, 14, "hex digit", ':'},
      {"blank line", v6_table({""}), DecodeErrorKind::kUnexpectedByte, 2, 0, "decimal digit", -1},
      {"no slot", v6_table({replace_at(kV6Loopback, 3, " ")}), DecodeErrorKind::kUnexpectedByte, 2, 4,
       "decimal digit", ':'},
      {"NUL byte", v6_table({replace_at(kV6Loopback, 100, std::string(1, '\0'))}),
       DecodeErrorKind::kUnexpectedByte, 2, 100, "hex digit", 0},
      {"byte 0xFF", v6_table({replace_at(kV6Loopback, 5, "\xFF")}), DecodeErrorKind::kUnexpectedByte,
       2, 5, "' '", 0xFF},
      {"line too long", v6_table({std::string(kV6Loopback), long_line}), DecodeErrorKind::kLineTooLong,
       3, kMaxLineLength - 1, "newline", '7'},
      {"truncated last line", v6_table({v6_loopback}) + v6_loopback.substr(0, 40),
       DecodeErrorKind::kMissingNewline, 3, 40, "newline", -1},
  };
}

class ProcNetTcpErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ProcNetTcpErrors, NameLineByteAndExpectationOnEveryPath) {
  const ErrorCase& c = GetParam();
  const Outcome records = count_records({c.input});
  ASSERT_TRUE(records.error) << "accepted";
  const DecodeError& error = *records.error;
  EXPECT_EQ(error.kind, c.kind) << error.message();
  EXPECT_EQ(error.line, c.line) << error.message();
  EXPECT_EQ(error.column, c.column) << error.message();
  EXPECT_EQ(error.expected, c.expected) << error.message();
  EXPECT_EQ(error.found, c.found) << error.message();
  // The offset is the line's start in the file plus the column.
  std::size_t line_start = 0;
  for (std::uint64_t line = 1; line < c.line; ++line) line_start = c.input.find('\n', line_start) + 1;
  EXPECT_EQ(error.offset, line_start + c.column) << error.message();

  for (ScanKernel kernel : runnable_kernels()) {
    EXPECT_EQ(count({c.input}, kernel), records) << scan_kernel_name(kernel);
    EXPECT_EQ(count(chunks_of(c.input, 7), kernel), records) << scan_kernel_name(kernel) << " in 7-byte chunks";
  }
  EXPECT_EQ(count_records(chunks_of(c.input, 7)), records) << "records in 7-byte chunks";
}

INSTANTIATE_TEST_SUITE_P(Malformed, ProcNetTcpErrors, ::testing::ValuesIn(error_cases()),
                         [](const ::testing::TestParamInfo<ErrorCase>& param) {
                           std::string name;
                           for (char c : param.param.name) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

TEST(ProcNetTcpErrors, MessageNamesTheProblem) {
  const Outcome outcome = count_records({v4_table({replace_at(kV4Established, 13, "G")})});
  ASSERT_TRUE(outcome.error);
  EXPECT_EQ(outcome.error->message(), "line 2, byte 13 (offset 163): expected hex digit, found 'G'");
  const Outcome range = count_records({v4_table({replace_at(kV4Established, 34, "0E", 2)})});
  ASSERT_TRUE(range.error);
  EXPECT_EQ(range.error->message(),
            "line 2, byte 34 (offset 184): unknown TCP state; expected a TCP state, 01 to 0D, found '0'");
}

TEST(ProcNetTcpErrors, AreStickyUntilReset) {
  PortStateTally tally;
  TcpTableCounter counter(tally);
  const std::string bad = v6_table({"garbage"});
  const auto first = counter.feed(bad);
  ASSERT_FALSE(first);
  const auto again = counter.feed(v6_table({std::string(kV6Loopback)}));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), first.error());
  EXPECT_FALSE(counter.finish());
  counter.reset();
  EXPECT_TRUE(counter.feed(v6_table({std::string(kV6Loopback)})));
  EXPECT_TRUE(counter.finish());
}

// The sample every split test uses: both captures' shapes, wide and narrow slots,
// lowercase hex (which the SIMD kernels hand to the full parser) and a padded table.
std::vector<std::string> split_samples() {
  std::string lower(kV6Mapped);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  }
  const std::string wide = "12345" + std::string(kV6Loopback.substr(4));
  return {
      testdata("netns.tcp"),
      v6_table({kV6Listen, kV6Mapped, wide, kV6TimeWait, lower, kV6Loopback, kV6Mapped, kV6Loopback,
                kV6TimeWait, wide, kV6Loopback}),
  };
}

TEST(ProcNetTcpChunking, EverySplitOffsetGivesTheSameResultOnEveryPath) {
  for (const std::string& sample : split_samples()) {
    const Outcome whole = count_records({sample});
    ASSERT_FALSE(whole.error) << whole.error->message();
    for (std::size_t cut = 0; cut <= sample.size(); ++cut) {
      const auto parts = split_at(sample, {cut});
      for (ScanKernel kernel : runnable_kernels()) {
        ASSERT_EQ(count_records(parts, kernel), whole) << scan_kernel_name(kernel) << " records, cut at " << cut;
        ASSERT_EQ(count(parts, kernel), whole) << scan_kernel_name(kernel) << ", cut at " << cut;
      }
    }
  }
}

TEST(ProcNetTcpChunking, AnyChunkSizeGivesTheSameResult) {
  for (const std::string& sample : split_samples()) {
    const Outcome whole = count_records({sample});
    for (std::size_t size = 1; size <= 64; ++size) {
      ASSERT_EQ(count_records(chunks_of(sample, size)), whole) << "records, chunk " << size;
      for (ScanKernel kernel : runnable_kernels()) {
        ASSERT_EQ(count(chunks_of(sample, size), kernel), whole) << scan_kernel_name(kernel) << ", chunk " << size;
      }
    }
  }
}

// `pages` readable and writable pages between two inaccessible ones.
class GuardedPages {
 public:
  GuardedPages(std::size_t page, std::size_t pages) : size_((pages + 2) * page) {
    void* mapped = ::mmap(nullptr, size_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) return;
    mapped_ = static_cast<char*>(mapped);
    if (::mprotect(mapped_ + page, pages * page, PROT_READ | PROT_WRITE) == 0) inside_ = mapped_ + page;
  }
  ~GuardedPages() {
    if (mapped_ != nullptr) ::munmap(mapped_, size_);
  }
  GuardedPages(const GuardedPages&) = delete;
  GuardedPages& operator=(const GuardedPages&) = delete;

  // The first accessible byte; nullptr when the mapping failed (errno says why).
  char* inside() const { return inside_; }

 private:
  std::size_t size_;
  char* mapped_ = nullptr;
  char* inside_ = nullptr;
};

// The socket lines of a table in memory with an inaccessible page on either side: a
// kernel that read one byte before its input or past its end would crash the test. The
// lines end exactly where the accessible pages do, or start exactly where they do
// (the header line is a chunk of its own: the decoder reads it in a buffer of its own),
// and span several 4 KiB pages, so that the scan crosses pages (stage A reads ahead of
// each line, and each batch reads a byte of the page after its first line's).
TEST(ProcNetTcpChunking, NoKernelReadsOutsideItsInput) {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  for (TcpTableFamily family : {TcpTableFamily::kIpv4, TcpTableFamily::kIpv6}) {
    SCOPED_TRACE(tcp_table_name(family));
    const std::string table = bench::generate_tcp_table(family, 300, 11);
    const Outcome reference = count_records({table});
    ASSERT_FALSE(reference.error) << reference.error->message();
    const std::string_view header = std::string_view(table).substr(0, table.find('\n') + 1);
    const std::string_view lines = std::string_view(table).substr(header.size());
    const std::size_t pages = (lines.size() + page - 1) / page;
    const GuardedPages memory(page, pages);
    ASSERT_NE(memory.inside(), nullptr) << std::strerror(errno);
    for (const bool at_end : {true, false}) {
      SCOPED_TRACE(at_end ? "the lines end at a guard page" : "the lines start at a guard page");
      char* start = memory.inside() + (at_end ? pages * page - lines.size() : 0);
      std::memcpy(start, lines.data(), lines.size());
      const std::vector<std::string_view> chunks{header, {start, lines.size()}};
      for (ScanKernel kernel : runnable_kernels()) {
        EXPECT_EQ(count(chunks, kernel), reference) << scan_kernel_name(kernel);
        EXPECT_EQ(count_records(chunks, kernel), reference) << scan_kernel_name(kernel) << " records";
      }
    }
  }
}

// Every byte of every line shape replaced by each interesting byte, removed, or
// doubled: the SIMD kernels must accept exactly what the full parser accepts and
// report the same error when they do not.
TEST(ProcNetTcpEquivalence, SingleByteMutationsAgreeOnEveryPath) {
  // Bytes >= 0x80 whose low seven bits are a byte the line allows (' ', '0', 'A' plus
  // 0x80): a kernel that classifies by those bits alone must still refuse them.
  const std::string replacements("\0\t -:09ADEFGafg\n\r\x7f\xff\xa0\xb0\xc1", 22);
  std::size_t variants = 0;
  // The portable kernel learns each valid line's tail shape and proves later lines
  // against it: that path is in use here (counted below; the mutants themselves meet it
  // whenever their spaces and length are a learned line's).
  const std::uint64_t known_before = known_tail_shape_lines();
  for (bool v6 : {false, true}) {
    const std::vector<std::string_view> shapes =
        v6 ? std::vector<std::string_view>{kV6Listen, kV6Mapped, kV6TimeWait}
           : std::vector<std::string_view>{kV4Listen, kV4Established, kV4TimeWait, kV4Request};
    for (std::string_view shape : shapes) {
      // IPv4 lines with their padding, so that the padding is mutated too.
      std::string line(shape);
      if (!v6) line.resize(149, ' ');
      // Unmutated, all but the last line are judged by the SIMD kernels themselves
      // (the last lacks read-ahead), so a mutant in first place tests the fast path.
      for (ScanKernel kernel : runnable_kernels()) {
        if (kernel == ScanKernel::kParser) continue;
        const std::string plain = v6 ? v6_table({line, line, line, line, line})
                                     : v4_table({line, line, line, line, line});
        ASSERT_EQ(count({plain}, kernel).fallback_lines, 1u) << scan_kernel_name(kernel) << " on " << line;
      }
      for (std::size_t at = 0; at <= line.size(); ++at) {
        std::vector<std::string> mutants;
        for (char c : replacements) mutants.push_back(replace_at(line, at, std::string(1, c), at < line.size() ? 1 : 0));
        if (at < line.size()) {
          mutants.push_back(replace_at(line, at, ""));
          mutants.push_back(replace_at(line, at, std::string(2, line[at])));
        }
        for (const std::string& mutant : mutants) {
          // Valid lines after the mutant give the SIMD kernels the read-ahead they need
          // to judge it themselves rather than pass it to the full parser. The mutant is
          // first in its batch of eight, and sixth (the second half of a batch, which
          // AVX2 judges four lines at a time).
          for (const std::size_t before : {std::size_t{0}, std::size_t{5}}) {
            std::vector<std::string_view> lines(before, line);
            lines.push_back(mutant);
            lines.insert(lines.end(), 4, line);
            const std::string text = v6 ? v6_table(lines) : v4_table(lines);
            const Outcome reference = count_records({text});
            const testing::RecordsOutcome reference_records = testing::decode_records({text}, ScanKernel::kParser);
            for (ScanKernel kernel : runnable_kernels()) {
              ASSERT_EQ(count({text}, kernel), reference)
                  << scan_kernel_name(kernel) << " on \"" << mutant << "\" after " << before << " lines";
              ASSERT_TRUE(testing::decode_records({text}, kernel) == reference_records)
                  << scan_kernel_name(kernel) << " records of \"" << mutant << "\" after " << before << " lines";
            }
            ++variants;
          }
        }
      }
    }
  }
  EXPECT_GT(variants, 30000u);
  EXPECT_GT(known_tail_shape_lines() - known_before, variants) << "lines proven by a learned tail shape";
}

// The portable kernel proves a line against a tail shape learned from earlier lines: the
// same spaces, and the newline in the same place. A line like a learned one but longer
// -- its last field a byte wider, or a byte the tail grammar refuses added at its end --
// has bytes past the learned newline that the learned template never checks: it must be
// a shape of its own. Every tail length and both kinds of byte, after the learned line
// and in the same batch.
TEST(ProcNetTcpEquivalence, ALineLongerThanALearnedShapeIsNotProvenByIt) {
  const std::string_view full = kV6Mapped.substr(0, kV6Mapped.rfind(' ') + 1);  // up to ssthresh
  for (const std::string_view last : {"1", "12", "123", "1234", "12345", "123456"}) {
    const std::string learned = std::string(full) + std::string(last);
    for (const std::string_view extra : {"7", "G", "x", ":", "-"}) {
      const std::string longer = learned + std::string(extra);
      const std::string text = v6_table({learned, learned, learned, longer, learned, learned, longer, learned,
                                         learned, learned});
      const Outcome reference = count_records({text});
      for (ScanKernel kernel : runnable_kernels()) {
        EXPECT_EQ(count({text}, kernel), reference)
            << scan_kernel_name(kernel) << " on \"" << longer << "\" after \"" << learned << "\"";
      }
    }
  }
}

TEST(ProcNetTcpCounting, GeneratedTablesMatchTheGeneratorOnEveryPathAndChunking) {
  for (TcpTableFamily family : {TcpTableFamily::kIpv4, TcpTableFamily::kIpv6}) {
    SCOPED_TRACE(tcp_table_name(family));
    // Past 9999 sockets the kernel's slot numbers widen to 5 digits.
    constexpr std::size_t kSockets = 20'000;
    const std::string table = bench::generate_tcp_table(family, kSockets, 7);
    const bench::GeneratedCounts truth = bench::generated_counts(family, kSockets, 7);
    const Outcome records = count_records({table});
    ASSERT_FALSE(records.error) << records.error->message();
    EXPECT_EQ(records.lines, kSockets + 1);
    EXPECT_EQ(records.summary.sockets, truth.sockets);
    EXPECT_EQ(records.summary.count(TcpState::kListen), truth.listening);
    EXPECT_EQ(records.summary.count(TcpState::kEstablished), truth.established);
    EXPECT_EQ(records.summary.established_inbound, truth.established_inbound);
    EXPECT_EQ(records.summary.established_outbound, truth.established - truth.established_inbound);
    const testing::RecordsOutcome reference = testing::decode_records({table}, ScanKernel::kParser);
    ASSERT_EQ(reference.records.size(), kSockets);
    for (ScanKernel kernel : runnable_kernels()) {
      for (std::size_t chunk : {std::size_t{4096}, std::size_t{65536}, table.size()}) {
        EXPECT_EQ(count(chunks_of(table, chunk), kernel), records)
            << scan_kernel_name(kernel) << " in chunks of " << chunk;
        EXPECT_EQ(count_records(chunks_of(table, chunk), kernel), records)
            << scan_kernel_name(kernel) << " records in chunks of " << chunk;
        EXPECT_TRUE(testing::decode_records(chunks_of(table, chunk), kernel) == reference)
            << scan_kernel_name(kernel) << " records in chunks of " << chunk;
      }
    }
  }
}

// The kernels read each line for the slot width the previous line had and read it
// again when the colon says otherwise: widths that change from line to line, inside a
// batch and across batches, and slots too wide or too short for the fast path, decode
// as the parser decodes them.
TEST(ProcNetTcpEquivalence, SlotWidthsChangingFromLineToLineAgreeOnEveryPath) {
  const std::string_view body = kV6Listen.substr(4);  // from the colon on
  const std::vector<std::string> slots = {"   7", "12345", "   8", "12345678", "123456789", "999999", "  10",
                                          "1234567", "  1", "9999", "10000", "   0"};
  std::vector<std::string> lines;
  for (int repeat = 0; repeat < 6; ++repeat) {
    for (std::size_t i = 0; i < slots.size(); ++i) {
      // Runs of equal widths too, so that some batches predict right and some wrong.
      for (std::size_t copies = 0; copies < 1 + (i + static_cast<std::size_t>(repeat)) % 3; ++copies) {
        lines.push_back(slots[i] + std::string(body));
      }
    }
  }
  const std::vector<std::string_view> views(lines.begin(), lines.end());
  const std::string text = v6_table(views);
  const Outcome reference = count_records({text});
  ASSERT_FALSE(reference.error) << reference.error->message();
  const testing::RecordsOutcome reference_records = testing::decode_records({text}, ScanKernel::kParser);
  // Slots of 3 or 9 columns (never printed by "%4d" below 10^8 sockets) are the parser's.
  const auto unusual = static_cast<std::size_t>(std::count_if(
      lines.begin(), lines.end(), [](const std::string& line) { return line[3] == ':' || line[9] == ':'; }));
  for (ScanKernel kernel : runnable_kernels()) {
    EXPECT_EQ(count({text}, kernel), reference) << scan_kernel_name(kernel);
    EXPECT_TRUE(testing::decode_records({text}, kernel) == reference_records) << scan_kernel_name(kernel);
    if (kernel == ScanKernel::kParser) continue;
    // Only those and the last lines (no read-ahead) go to the parser.
    EXPECT_LE(count({text}, kernel).fallback_lines, unusual + 2) << scan_kernel_name(kernel);
  }
}

TEST(ProcNetTcpCounting, KernelPrintedLinesTakeTheFastPath) {
  // Only lines within one read-ahead window of a chunk's end go to the full parser: on
  // the portable kernel (what arm64 runs) as on the SIMD ones.
  for (ScanKernel kernel : runnable_kernels()) {
    if (kernel == ScanKernel::kParser) continue;
    for (TcpTableFamily family : {TcpTableFamily::kIpv4, TcpTableFamily::kIpv6}) {
      const std::string table = bench::generate_tcp_table(family, 20'000, 3);
      const Outcome outcome = count({table}, kernel);
      ASSERT_FALSE(outcome.error);
      EXPECT_LE(outcome.fallback_lines, 4u) << scan_kernel_name(kernel) << " " << tcp_table_name(family);
      EXPECT_EQ(count({table}, ScanKernel::kParser).fallback_lines, 20'000u);
    }
  }
}

// The portable kernel proves a table's lines against the tail shapes it learned: counted
// again, a generated table's lines all but take that path (its ~20 shapes fit the
// table), and with the same result.
TEST(ProcNetTcpCounting, ThePortableKernelProvesKnownShapesWithoutTheirMasks) {
  for (TcpTableFamily family : {TcpTableFamily::kIpv4, TcpTableFamily::kIpv6}) {
    const std::string table = bench::generate_tcp_table(family, 20'000, 5);
    const Outcome first = count({table}, ScanKernel::kPortable);
    ASSERT_FALSE(first.error);
    const std::uint64_t before = known_tail_shape_lines();
    const Outcome second = count({table}, ScanKernel::kPortable);
    const std::uint64_t known = known_tail_shape_lines() - before;
    EXPECT_EQ(second, first);
    EXPECT_EQ(second.fallback_lines, first.fallback_lines);
    EXPECT_GE(known, 19'000u) << tcp_table_name(family) << ": lines proven by a learned shape, of 20,000";
    EXPECT_EQ(count({table}, ScanKernel::kParser), first) << tcp_table_name(family);
  }
}

// One thread counts a host's tcp and then its tcp6 (proc_net_reader), and the shapes a
// kernel learned from one family stay known for the other. A tcp4 line may end past a
// tcp6 tail's window (trailing spaces past column 149, which the parser takes): its
// shape must never prove a tcp6 line whose window looks the same, neither by taking
// bytes nobody checked nor by putting the newline where the line has none. Both
// directions, on every kernel that learns shapes.
TEST(ProcNetTcpEquivalence, AShapeLearnedFromOneFamilyNeverProvesTheOthersLine) {
  const std::string_view v4_prefix = kV4Established.substr(0, kV4Established.find("    0        0"));
  const std::string_view v6_prefix = kV6Mapped.substr(0, kV6Mapped.find("    0        0"));
  const std::string tail = "    0        0 12345 1 0000000000000000 100 0 0 10 0";
  ASSERT_EQ(v4_prefix.size(), 76u);
  ASSERT_EQ(v6_prefix.size(), 124u);
  // Ends 79 bytes into its tail: 15 spaces past the 64-byte window, then the newline.
  const std::string long_v4 = std::string(v4_prefix) + tail + std::string(79 - tail.size(), ' ');
  const std::string v4_text = v4_table({long_v4, long_v4, long_v4, kV4Established, kV4Established, kV4Established});
  const std::string spaced = std::string(v6_prefix) + tail + std::string(64 - tail.size(), ' ');
  // Bytes the parser refuses where the tcp4 line had spaces; and a valid line whose
  // newline comes before the tcp4 line's.
  const std::string refused = spaced + "garbage!garbage";
  const std::string shorter = spaced + "   ";
  for (const std::string& v6_line : {refused, shorter}) {
    const std::string v6_text =
        v6_table({v6_line, v6_line, std::string_view(kV6Mapped), kV6Mapped, kV6Mapped, kV6Mapped, kV6Mapped});
    const Outcome reference = count_records({v6_text});
    for (ScanKernel kernel : runnable_kernels()) {
      const Outcome v4 = count({v4_text}, kernel);
      ASSERT_FALSE(v4.error) << scan_kernel_name(kernel) << ": " << v4.error->message();
      if (kernel == ScanKernel::kPortable) {
        // The long tcp4 shape is known: counted again, its lines are proven by it.
        const std::uint64_t before = known_tail_shape_lines();
        ASSERT_EQ(count({v4_text}, kernel), v4);
        ASSERT_GE(known_tail_shape_lines() - before, 3u) << "the tcp4 lines ending past the tcp6 window";
      }
      EXPECT_EQ(count({v6_text}, kernel), reference)
          << scan_kernel_name(kernel) << " on a tcp6 line ending \"" << v6_line.substr(124 + 52) << "\"";
    }
  }
}

// The portable kernel keeps the shapes it learned in a cache of fixed size (per
// thread), which it empties when as many shapes were placed in it as it has places. A
// table with hundreds of shapes -- every width of five fields, tails up to and past
// the 64 bytes a tcp6 template covers, ports and states varied -- decodes exactly as
// the parser decodes it while the cache fills, overflows and empties; and once the
// table settles on a few shapes, they are proven by their templates again.
TEST(ProcNetTcpCounting, ThePortableKernelsShapeCacheOverflowsAndSettles) {
  const std::string_view head = kV6Mapped.substr(0, kV6Mapped.find(" 01 ") + 1);  // up to the state
  const std::string_view middle = " 00000000:00000000 00:00000000 00000000 ";
  std::vector<std::string> lines;
  const auto add = [&](unsigned uid, unsigned long inode, unsigned rto, unsigned ato, unsigned cwnd, long ssthresh,
                       unsigned state, unsigned port) {
    char tail[160];
    std::snprintf(tail, sizeof tail, "%02X%s%5u %8d %lu 1 00000000%08x %u %u 0 %u %ld", state, middle.data(), uid, 0,
                  inode, static_cast<unsigned>(inode * 2654435761u), rto, ato, cwnd, ssthresh);
    std::string line(head);
    char port_text[5];
    std::snprintf(port_text, sizeof port_text, "%04X", port);
    line.replace(line.find(':') + 35, 4, port_text);  // the local port, after the address
    lines.push_back(line + tail);
  };
  // Some 600 lines of as many shapes: widths of inode (up to 19 digits), rto, ato, cwnd
  // and ssthresh. The longest tails pass 64 bytes, and the longest lines go to the
  // parser (their newline lies past where the kernels look for it).
  unsigned n = 0;
  for (unsigned long inode : {7ul, 8465ul, 10000000ul, 123456789012ul, 1234567890123456789ul}) {
    for (unsigned rto : {20u, 200u, 120000u}) {
      for (unsigned ato : {0u, 40u}) {
        for (unsigned cwnd : {1u, 10u, 100u, 1000u}) {
          for (long ssthresh : {-1l, 7l, 77l, 777l, 2147483647l}) {
            ++n;
            add(n % 3 == 0 ? 65534u : 0u, inode, rto, ato, cwnd, ssthresh, 1 + n % 11, 1000 + n);
          }
        }
      }
    }
  }
  const std::size_t varied = lines.size();
  ASSERT_GT(varied, 2 * 128u);  // twice the cache's places
  // Then six shapes, line after line.
  for (unsigned i = 0; i < 3000; ++i) {
    add(i % 2 == 0 ? 0u : 1000u, 10000000ul + i, i % 3 == 0 ? 200u : 20u, 4, 10, -1, 1 + i % 2, 40000 + i % 97);
  }
  const std::vector<std::string_view> views(lines.begin(), lines.end());
  const std::string text = v6_table(views);
  const Outcome reference = count_records({text});
  ASSERT_FALSE(reference.error) << reference.error->message();
  for (int pass = 0; pass < 2; ++pass) {
    const std::uint64_t before = known_tail_shape_lines();
    EXPECT_EQ(count({text}, ScanKernel::kPortable), reference) << "pass " << pass;
    const std::uint64_t known = known_tail_shape_lines() - before;
    // All but the first lines of each steady shape, and the few that take the full
    // path for other reasons, at least.
    EXPECT_GE(known, 2900u) << "pass " << pass << ": lines proven by a learned shape, of " << lines.size();
  }
}

// kAuto is the kernel measured fastest on this CPU, not the one with the widest
// instructions: every SIMD kernel it runs is timed on the same sample, which they all
// decode on their fast path. The portable kernel is the choice only where no SIMD
// kernel runs.
TEST(ProcNetTcpCounting, AutoIsTheFastestKernelMeasuredOnThisCpu) {
  const ScanKernelChoice& choice = scan_kernel_choice();
  EXPECT_EQ(best_scan_kernel(), choice.chosen);
  std::vector<ScanKernel> simd;
  for (ScanKernel kernel : runnable_kernels()) {
    if (kernel == ScanKernel::kAvx2 || kernel == ScanKernel::kAvx512) simd.push_back(kernel);
  }
  if (simd.empty()) {
    EXPECT_EQ(choice.chosen, ScanKernel::kPortable);
  } else {
    EXPECT_NE(choice.chosen, ScanKernel::kPortable);
  }
  ASSERT_EQ(choice.timings.size(), std::max<std::size_t>(1, simd.size())) << choice.describe();
  EXPECT_EQ(choice.timings.front().kernel, choice.chosen);
  if (simd.size() > 1) {
    for (std::size_t i = 0; i < choice.timings.size(); ++i) {
      const ScanKernelTiming& timing = choice.timings[i];
      EXPECT_EQ(timing.lines, 257u) << scan_kernel_name(timing.kernel) << ": the sample (header and 256 lines)";
      EXPECT_LE(timing.fallback_lines, 2u) << scan_kernel_name(timing.kernel) << " left its sample to the parser";
      EXPECT_GT(timing.ns_per_line, 0.0);
      if (i > 0) {
        EXPECT_LE(choice.timings[i - 1].ns_per_line, timing.ns_per_line) << choice.describe();
      }
    }
  }
  EXPECT_NE(choice.describe().find(std::string(scan_kernel_name(choice.chosen))), std::string::npos);
}

// The decoder reads CPUID itself (see scan_kernel_supported); it must agree with the
// compiler's own feature checks, which also ask whether the OS saves the registers.
TEST(ProcNetTcpCounting, KernelSupportAgreesWithTheCompilersCpuChecks) {
#if defined(__x86_64__)
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi") &&
                    __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512vbmi") &&
                      __builtin_cpu_supports("avx512vbmi2") && __builtin_cpu_supports("avx512vpopcntdq");
  EXPECT_EQ(scan_kernel_supported(ScanKernel::kAvx2), avx2);
  EXPECT_EQ(scan_kernel_supported(ScanKernel::kAvx512), avx512);
#else
  EXPECT_FALSE(scan_kernel_supported(ScanKernel::kAvx2));
  EXPECT_FALSE(scan_kernel_supported(ScanKernel::kAvx512));
#endif
}

TEST(ProcNetTcpCounting, UnsupportedOrAutoKernelResolvesToOneThatRuns) {
  PortStateTally tally;
  EXPECT_EQ(TcpTableCounter(tally).kernel(), best_scan_kernel());
  EXPECT_TRUE(scan_kernel_supported(best_scan_kernel()));
  for (ScanKernel kernel : {ScanKernel::kAvx2, ScanKernel::kAvx512}) {
    const ScanKernel used = TcpTableCounter(tally, kernel).kernel();
    EXPECT_EQ(used, scan_kernel_supported(kernel) ? kernel : ScanKernel::kPortable);
  }
}

TEST(ProcNetTcpRecords, HeaderAloneIsAnEmptyTable) {
  for (const std::string& text : {v4_table({}), v6_table({})}) {
    const Outcome outcome = decode_everywhere(text);
    ASSERT_FALSE(outcome.error) << outcome.error->message();
    EXPECT_EQ(outcome.summary.sockets, 0u);
    EXPECT_EQ(outcome.lines, 1u);
  }
}

}  // namespace
}  // namespace skopos::tracker
