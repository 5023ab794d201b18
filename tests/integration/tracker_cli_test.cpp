// tracker-cli as operators run it: the real binary on saved tables, checked for what it
// prints, what its JSON says, and how it exits on bad input.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <fstream>
#include <sstream>
#include <string>

#include "process.h"

namespace {

using skopos::testing::ProcessResult;
using skopos::testing::read_file;
using skopos::testing::run_process;

const std::string kCli = SKOPOS_TRACKER_CLI;
const std::string kData = SKOPOS_TESTDATA_DIR;
const std::string kTcp = kData + "/netns.tcp";
const std::string kTcp6 = kData + "/netns.tcp6";

ProcessResult cli(std::vector<std::string> args, const std::string& input = {}) {
  args.insert(args.begin(), kCli);
  return run_process(args, input);
}

simdjson::dom::element parse(simdjson::dom::parser& parser, const std::string& text) {
  simdjson::dom::element doc;
  const auto error = parser.parse(text).get(doc);
  EXPECT_EQ(error, simdjson::SUCCESS) << simdjson::error_message(error) << "\n" << text;
  return doc;
}

std::uint64_t number(simdjson::dom::element e, std::string_view pointer) {
  std::uint64_t value = 0;
  const auto error = e.at_pointer(pointer).get(value);
  EXPECT_EQ(error, simdjson::SUCCESS) << pointer << ": " << simdjson::error_message(error);
  return value;
}

// A temporary file with the given content, removed afterwards.
class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    char name[] = "/tmp/skopos-cli-XXXXXX";
    const int fd = ::mkstemp(name);
    EXPECT_GE(fd, 0);
    path_ = name;
    EXPECT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    ::close(fd);
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(TrackerCliDecode, PrintsPerPortStateCountsAndTheInboundOutboundSplit) {
  const ProcessResult r = cli({"decode", kTcp, kTcp6});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  // The header names the states present, in the kernel's order.
  EXPECT_NE(r.out.find("PORT  ESTABLISHED  SYN_RECV  FIN_WAIT2  TIME_WAIT  CLOSE_WAIT  LISTEN"), std::string::npos)
      << r.out;
  // Port 7777: an accepted IPv6 connection, a request socket and two listeners.
  EXPECT_NE(r.out.find(" 7777            1         1          0          0           0       2\n"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("18 sockets on 11 ports; ESTABLISHED: 4 inbound, 5 outbound\n"), std::string::npos) << r.out;
}

TEST(TrackerCliDecode, JsonCarriesTheSameCounts) {
  const ProcessResult r = cli({"decode", "--json", kTcp, kTcp6});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  simdjson::dom::parser parser;
  const auto doc = parse(parser, r.out);
  EXPECT_EQ(number(doc, "/sockets"), 18u);
  EXPECT_EQ(number(doc, "/established/inbound"), 4u);
  EXPECT_EQ(number(doc, "/established/outbound"), 5u);
  EXPECT_EQ(number(doc, "/states/ESTABLISHED"), 9u);
  EXPECT_EQ(number(doc, "/states/LISTEN"), 4u);
  simdjson::dom::array ports;
  ASSERT_EQ(doc["ports"].get(ports), simdjson::SUCCESS);
  EXPECT_EQ(ports.size(), 11u);
  // Ports ascend; 7777 comes first and listens.
  EXPECT_EQ(number(doc, "/ports/0/port"), 7777u);
  bool listening = false;
  ASSERT_EQ(doc.at_pointer("/ports/0/listening").get(listening), simdjson::SUCCESS);
  EXPECT_TRUE(listening);
  EXPECT_EQ(number(doc, "/ports/0/states/LISTEN"), 2u);
  EXPECT_EQ(number(doc, "/ports/0/states/SYN_RECV"), 1u);
}

TEST(TrackerCliDecode, RecordsAsJsonHaveEveryFieldOfEveryLine) {
  const ProcessResult r = cli({"decode", "--records", "--json", kTcp6});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  simdjson::dom::parser parser;
  const auto doc = parse(parser, r.out);
  simdjson::dom::array records;
  ASSERT_EQ(doc["records"].get(records), simdjson::SUCCESS);
  EXPECT_EQ(records.size(), 8u);
  std::string_view address;
  ASSERT_EQ(doc.at_pointer("/records/3/local/address").get(address), simdjson::SUCCESS);
  EXPECT_EQ(address, "::ffff:127.0.0.1");
  EXPECT_EQ(number(doc, "/records/3/local/port"), 9090u);
  EXPECT_EQ(number(doc, "/records/3/remote/port"), 47170u);
  EXPECT_EQ(number(doc, "/records/3/inode"), 8465u);
  std::string_view kind;
  ASSERT_EQ(doc.at_pointer("/records/7/kind").get(kind), simdjson::SUCCESS);
  EXPECT_EQ(kind, "time-wait");
  std::int64_t ssthresh = 0;
  ASSERT_EQ(doc.at_pointer("/records/2/ssthresh").get(ssthresh), simdjson::SUCCESS);
  EXPECT_EQ(ssthresh, -1);
}

TEST(TrackerCliDecode, RecordsTableShowsEachLine) {
  const ProcessResult r = cli({"decode", "--records", kTcp});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // A header and one row per socket line.
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 11);
  EXPECT_NE(r.out.find("SYN_RECV     request   127.0.0.1:7777"), std::string::npos) << r.out;
}

TEST(TrackerCliDecode, ReadsStandardInput) {
  const ProcessResult r = cli({"decode", "--json", "-"}, read_file(kTcp));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  simdjson::dom::parser parser;
  EXPECT_EQ(number(parse(parser, r.out), "/sockets"), 10u);
}

TEST(TrackerCliDecode, ALargeFileDecodesAsItsBytesDoOnStandardInput) {
  // Past one read buffer (64 KiB), a saved table is decoded in place (mapped), standard
  // input through the buffer: the same counts, and the same error at the same line.
  std::string table = read_file(kTcp6);
  const std::string body = table.substr(table.find('\n') + 1);
  while (table.size() < 300'000) table += body;
  const TempFile big(table);
  const ProcessResult mapped = cli({"decode", "--json", big.path()});
  const ProcessResult piped = cli({"decode", "--json", "-"}, table);
  ASSERT_EQ(mapped.exit_code, 0) << mapped.err;
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  simdjson::dom::parser parser;
  const std::uint64_t sockets = number(parse(parser, mapped.out), "/sockets");
  EXPECT_GT(sockets, 1000u);
  EXPECT_EQ(number(parse(parser, piped.out), "/sockets"), sockets);

  std::string garbled = table;
  garbled[garbled.size() - 10] = '\x01';  // in the last line
  const TempFile bad(garbled);
  const ProcessResult refused = cli({"decode", bad.path()});
  const ProcessResult refused_piped = cli({"decode", "-"}, garbled);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_EQ(refused.out, "");
  const auto where = [](const std::string& err) { return err.substr(err.find("line ")); };
  ASSERT_NE(refused.err.find("line "), std::string::npos) << refused.err;
  ASSERT_NE(refused_piped.err.find("line "), std::string::npos) << refused_piped.err;
  EXPECT_EQ(where(refused.err), where(refused_piped.err));
}

TEST(TrackerCliDecode, AGarbledFileIsAnErrorNamingFileLineAndByte) {
  std::string table = read_file(kTcp);
  table[table.find("0100007F:1F90")] = 'X';  // line 3, the first byte of the local address
  const TempFile bad(table);
  const ProcessResult r = cli({"decode", kTcp6, bad.path()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "") << "counts are all or nothing";
  EXPECT_EQ(r.err, "tracker-cli decode: decode \"" + bad.path() +
                       "\": line 3, byte 6 (offset 306): expected hex digit, found 'X'\n");
}

TEST(TrackerCliDecode, JsonRecordsEndWithTheErrorAndStayValid) {
  std::string table = read_file(kTcp6);
  table.resize(table.size() - 5);  // the last line loses its end
  const TempFile bad(table);
  const ProcessResult r = cli({"decode", "--records", "--json", bad.path()});
  EXPECT_EQ(r.exit_code, 1);
  simdjson::dom::parser parser;
  const auto doc = parse(parser, r.out);
  simdjson::dom::array records;
  ASSERT_EQ(doc["records"].get(records), simdjson::SUCCESS);
  EXPECT_EQ(records.size(), 7u) << "the lines before the bad one";
  EXPECT_EQ(number(doc, "/error/line"), 9u);
  EXPECT_NE(r.err.find("input ends inside a line"), std::string::npos) << r.err;
}

TEST(TrackerCliDecode, UsageErrorsExitWithTwoAndAHint) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"decode"}, "tracker-cli decode: no FILE given\n"},
      {{"decode", "--bogus", kTcp}, "tracker-cli decode: unknown option '--bogus'\n"},
      {{"decode", "--kernel=sse9", kTcp}, "tracker-cli decode: unknown --kernel 'sse9'\n"},
      {{"decode", "--json=yes", kTcp}, "tracker-cli decode: option '--json' takes no value\n"},
      {{"decode", "--kernel"}, "tracker-cli decode: option '--kernel' needs a value\n"},
      {{"frobnicate"}, "tracker-cli: unknown command 'frobnicate'\n"},
  };
  for (const Case& c : cases) {
    const ProcessResult r = cli(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.message;
    EXPECT_EQ(r.err.substr(0, c.message.size()), c.message);
    EXPECT_EQ(r.out, "");
  }
}

TEST(TrackerCliDecode, AMissingFileIsAnErrorWithTheSystemsReason) {
  const ProcessResult r = cli({"decode", "/nonexistent/tcp"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "tracker-cli decode: open \"/nonexistent/tcp\": No such file or directory\n");
}

TEST(TrackerCliDecode, EveryKernelGivesTheSameOutput) {
  for (const char* mode : {"--json", "--records"}) {
    const ProcessResult reference = cli({"decode", mode, "--kernel=portable", kTcp, kTcp6});
    ASSERT_EQ(reference.exit_code, 0);
    for (const char* kernel : {"auto", "avx2", "avx512"}) {
      const ProcessResult r = cli({"decode", mode, std::string("--kernel=") + kernel, kTcp, kTcp6});
      if (r.exit_code == 2 && r.err.find("this CPU cannot run") != std::string::npos) continue;
      EXPECT_EQ(r.exit_code, 0) << kernel << ": " << r.err;
      EXPECT_EQ(r.out, reference.out) << kernel << " " << mode;
    }
  }
}

}  // namespace
