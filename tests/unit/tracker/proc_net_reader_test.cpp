// ProcNetReader on saved tables: a large file is counted in parts at once (one thread
// each), and whatever the parts, the counts and every error are what one counter gives
// -- the same line, byte and offset.
#include "tracker/proc_net_reader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "decode_runs.h"
#include "proc_net_tcp_gen.h"

namespace skopos::tracker {
namespace {

// A temporary file holding `text`, removed on destruction.
class TempTable {
 public:
  explicit TempTable(const std::string& text) {
    char name[] = "/tmp/skopos-reader-test-XXXXXX";
    const int fd = ::mkstemp(name);
    if (fd < 0) return;
    ::close(fd);
    path_ = name;
    std::ofstream(path_, std::ios::binary) << text;
  }
  ~TempTable() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct Counted {
  std::string error;  // the error's message, empty when the file counted
  TallySummary summary;
  std::size_t parts = 0;
};

// Counts `text` as a file with `reader`.
Counted count_file(ProcNetReader& reader, const std::string& text) {
  TempTable file(text);
  EXPECT_FALSE(file.path().empty());
  PortStateTally tally;
  Counted counted;
  if (auto status = reader.count_file(file.path(), tally); !status) {
    // The message names the file; the rest must match.
    counted.error = status.error().message();
    const auto at = counted.error.find(file.path());
    if (at != std::string::npos) counted.error.replace(at, file.path().size(), "FILE");
  }
  counted.summary = tally.summarize();
  counted.parts = reader.parts();
  return counted;
}

void expect_same(const Counted& parts, const Counted& one, const std::string& what) {
  EXPECT_EQ(parts.error, one.error) << what;
  if (!one.error.empty()) return;  // a tally after an error is to be discarded, whatever it holds
  EXPECT_EQ(parts.summary.ports, one.summary.ports) << what;
  EXPECT_EQ(parts.summary.by_state, one.summary.by_state) << what;
  EXPECT_EQ(parts.summary.sockets, one.summary.sockets) << what;
  EXPECT_EQ(parts.summary.established_inbound, one.summary.established_inbound) << what;
}

// Parts of 4 KiB, up to 5 of them (whatever the CPUs), against one counter.
constexpr std::size_t kPart = 4096;
constexpr std::size_t kParts = 5;

TEST(ProcNetReaderParts, ALargeFileCountedInPartsCountsAsOneCounterOnEveryKernel) {
  for (TcpTableFamily family : {TcpTableFamily::kIpv4, TcpTableFamily::kIpv6}) {
    // Past 9999 sockets the slot numbers widen: parts start at either width.
    const std::string table = bench::generate_tcp_table(family, 12'000, 3);
    const bench::GeneratedCounts truth = bench::generated_counts(family, 12'000, 3);
    for (ScanKernel kernel : testing::runnable_kernels()) {
      const std::string what = std::string(tcp_table_name(family)) + " " + std::string(scan_kernel_name(kernel));
      ProcNetReader parts(kernel, kPart, kParts);
      ProcNetReader one(kernel, SIZE_MAX);
      const Counted in_parts = count_file(parts, table);
      ASSERT_TRUE(in_parts.error.empty()) << in_parts.error;
      EXPECT_EQ(in_parts.parts, kParts) << what;
      expect_same(in_parts, count_file(one, table), what);
      EXPECT_EQ(in_parts.summary.sockets, truth.sockets) << what;
      EXPECT_EQ(in_parts.summary.count(TcpState::kEstablished), truth.established) << what;
      EXPECT_EQ(in_parts.summary.established_inbound, truth.established_inbound) << what;
    }
  }
}

// The first hex digit of the local address on the line around `at` (a share of the
// text) made a 'G'.
void spoil_line_at(std::string& text, double at) {
  const std::size_t line = text.find('\n', static_cast<std::size_t>(static_cast<double>(text.size()) * at)) + 1;
  text[text.find(": ", line) + 2] = 'G';
}

// A bad byte in the first, a middle or the last part, bad bytes in two parts (the
// first wins), a line too long across a part's start, a last line without its newline,
// a line cut short at the end, and a bad header: the same error as one counter's, on
// every kernel.
TEST(ProcNetReaderParts, AnErrorInAnyPartIsTheOneCounterReports) {
  const std::string table = bench::generate_tcp_table(TcpTableFamily::kIpv6, 3'000, 5);
  std::vector<std::pair<std::string, std::string>> cases;
  for (double at : {0.05, 0.5, 0.97}) {
    std::string bad = table;
    spoil_line_at(bad, at);
    cases.emplace_back("a bad byte at " + std::to_string(at), bad);
  }
  std::string two = table;
  spoil_line_at(two, 0.9);
  spoil_line_at(two, 0.3);
  cases.emplace_back("bad bytes in two parts", two);
  std::string long_line = table;
  const std::size_t middle = long_line.find('\n', long_line.size() / 2) + 1;
  long_line.insert(middle, std::string(2 * kMaxLineLength, '0') + "\n");
  cases.emplace_back("a line too long in the middle", long_line);
  cases.emplace_back("no newline at the end", table.substr(0, table.size() - 1));
  cases.emplace_back("a line cut short at the end", table.substr(0, table.size() - 40));
  cases.emplace_back("a bad header", "x" + table);
  for (ScanKernel kernel : testing::runnable_kernels()) {
    for (const auto& [what, text] : cases) {
      const std::string label = what + " (" + std::string(scan_kernel_name(kernel)) + ")";
      ProcNetReader parts(kernel, kPart, kParts);
      ProcNetReader one(kernel, SIZE_MAX);
      const Counted in_parts = count_file(parts, text);
      EXPECT_FALSE(in_parts.error.empty()) << label;
      expect_same(in_parts, count_file(one, text), label);
    }
  }
}

}  // namespace
}  // namespace skopos::tracker
