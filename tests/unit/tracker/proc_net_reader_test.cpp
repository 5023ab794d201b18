// ProcNetReader on saved tables: a large file is counted in parts at once (one thread
// each), and whatever the parts, the counts and every error are what one counter gives
// -- the same line, byte and offset.
#include "tracker/proc_net_reader.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "decode_runs.h"
#include "proc_net_tcp_gen.h"
#include "skopos/unique_fd.h"

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

// --- count_tables: several tables read at once ----------------------------------

// A pipe's read end holding `text`, its write end closed. The text fits in one page: a
// pipe holds at least that much, whatever the user's pipe quota, so the write cannot
// block.
UniqueFd pipe_holding(const std::string& text) {
  int ends[2];
  if (text.size() >= 4096 || ::pipe2(ends, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "no pipe for " << text.size() << " bytes";
    return UniqueFd();
  }
  UniqueFd read_end(ends[0]);
  UniqueFd write_end(ends[1]);
  EXPECT_EQ(::write(write_end.get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
  return read_end;
}

// `inputs` counted one after another by one reader (what count_tables must equal),
// into a tally that starts with `start`: the message of the first error, or the summary.
Counted one_after_another(const std::vector<TableInput>& inputs, const std::string& start) {
  ProcNetReader reader(ScanKernel::kAuto, SIZE_MAX);
  PortStateTally tally;
  TempTable first(start);
  EXPECT_TRUE(reader.count_file(first.path(), tally));
  Counted counted;
  for (const TableInput& input : inputs) {
    auto status = input.fd >= 0 ? reader.count_fd(input.fd, input.path, tally) : reader.count_file(input.path, tally);
    if (!status) {
      counted.error = status.error().message();
      break;
    }
  }
  counted.summary = tally.summarize();
  return counted;
}

// The same through count_tables() on `workers` CPUs, saved tables of two 4 KiB parts
// or more counted in parts.
Counted at_once(const std::vector<TableInput>& inputs, const std::string& start, std::size_t workers) {
  PortStateTally tally;
  TempTable first(start);
  EXPECT_TRUE(ProcNetReader().count_file(first.path(), tally));
  Counted counted;
  if (auto status = count_tables(inputs, ScanKernel::kAuto, tally, workers, kPart); !status) {
    counted.error = status.error().message();
  }
  counted.summary = tally.summarize();
  return counted;
}

// Tables of both families, small and in parts, a file given twice, and a pipe given
// twice, as a descriptor and by a path (read in order: the second time it is empty, an
// error either way), on one worker and on four (whatever the CPUs): the counts, added
// to what the tally held, or the error, are one reader's.
TEST(CountTables, SeveralTablesCountAsOneReaderOneAfterAnother) {
  const std::string start = bench::generate_tcp_table(TcpTableFamily::kIpv4, 500, 9);
  TempTable tcp(bench::generate_tcp_table(TcpTableFamily::kIpv4, 30, 1));
  TempTable tcp6(bench::generate_tcp_table(TcpTableFamily::kIpv6, 5'000, 2));  // in parts
  TempTable more(bench::generate_tcp_table(TcpTableFamily::kIpv4, 2'000, 3));  // in parts
  const std::string small = bench::generate_tcp_table(TcpTableFamily::kIpv6, 15, 4);
  for (std::size_t workers : {std::size_t{1}, std::size_t{4}}) {
    const std::string what = std::to_string(workers) + " worker(s)";
    const std::vector<TableInput> files = {{tcp.path()}, {tcp6.path()}, {more.path()}, {tcp.path()}};
    const Counted expected = one_after_another(files, start);
    ASSERT_TRUE(expected.error.empty()) << expected.error;
    const Counted got = at_once(files, start, workers);
    expect_same(got, expected, what);
    EXPECT_TRUE(got.error.empty()) << got.error;

    // A pipe among the files: read once.
    UniqueFd pipe = pipe_holding(small);
    UniqueFd same = pipe_holding(small);
    const Counted with_pipe = at_once({{tcp.path()}, {"pipe", pipe.get()}, {tcp6.path()}}, start, workers);
    const Counted pipe_expected = one_after_another({{tcp.path()}, {"pipe", same.get()}, {tcp6.path()}}, start);
    ASSERT_TRUE(pipe_expected.error.empty()) << pipe_expected.error;
    expect_same(with_pipe, pipe_expected, what + ", a pipe");

    // Given twice, as a descriptor and by its /proc/self/fd path (a FIFO to stat()).
    UniqueFd twice = pipe_holding(small);
    UniqueFd twice_too = pipe_holding(small);
    const std::string by_path = "/proc/self/fd/" + std::to_string(twice.get());
    const std::string by_path_too = "/proc/self/fd/" + std::to_string(twice_too.get());
    const Counted got_twice = at_once({{"pipe", twice.get()}, {more.path()}, {by_path}}, start, workers);
    const Counted expected_twice =
        one_after_another({{"pipe", twice_too.get()}, {more.path()}, {by_path_too}}, start);
    EXPECT_NE(expected_twice.error.find("empty input"), std::string::npos) << expected_twice.error;
    const auto at = expected_twice.error.find(by_path_too);
    ASSERT_NE(at, std::string::npos) << expected_twice.error;
    EXPECT_EQ(got_twice.error, std::string(expected_twice.error).replace(at, by_path_too.size(), by_path)) << what;
  }
}

// Many tables, more than workers: each worker takes the next table when it is done with
// one, and the counts of every worker's tables reach the caller's tally.
TEST(CountTables, EveryWorkersCountsReachTheTally) {
  const std::string start = bench::generate_tcp_table(TcpTableFamily::kIpv4, 100, 10);
  std::vector<std::unique_ptr<TempTable>> files;
  std::vector<TableInput> inputs;
  for (std::uint64_t seed = 0; seed < 24; ++seed) {
    const TcpTableFamily family = seed % 2 == 0 ? TcpTableFamily::kIpv4 : TcpTableFamily::kIpv6;
    const std::string text = bench::generate_tcp_table(family, 40, 20 + seed);
    // No larger than the read buffer: never counted in parts, so read by the workers.
    ASSERT_LE(text.size(), std::size_t{64 * 1024});
    files.push_back(std::make_unique<TempTable>(text));
    inputs.push_back({files.back()->path()});
  }
  const Counted expected = one_after_another(inputs, start);
  ASSERT_TRUE(expected.error.empty()) << expected.error;
  for (int run = 0; run < 5; ++run) expect_same(at_once(inputs, start, 4), expected, "run " + std::to_string(run));
}

// A stream after an input that fails is not read, as one after another would not read
// it (a terminal would wait for input, a pipe would be drained): after a bad small table,
// after a bad table counted in parts (on four workers; on one there are no parts), and
// after a good table in parts that comes before a bad small one (read after it).
TEST(CountTables, AStreamAfterAFailedInputIsNotRead) {
  const std::string good_text = bench::generate_tcp_table(TcpTableFamily::kIpv6, 4'000, 6);
  std::string bad_large_text = good_text;
  spoil_line_at(bad_large_text, 0.6);
  std::string bad_small_text = bench::generate_tcp_table(TcpTableFamily::kIpv4, 20, 7);
  spoil_line_at(bad_small_text, 0.5);
  TempTable good_large(good_text);
  TempTable bad_large(bad_large_text);
  TempTable bad_small(bad_small_text);
  TempTable small(bench::generate_tcp_table(TcpTableFamily::kIpv4, 20, 8));
  const std::string stream = bench::generate_tcp_table(TcpTableFamily::kIpv6, 15, 4);
  for (std::size_t workers : {std::size_t{1}, std::size_t{4}}) {
    const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
        {bad_small.path(), {small.path(), bad_small.path()}},
        {bad_large.path(), {small.path(), bad_large.path()}},
        {bad_small.path(), {good_large.path(), bad_small.path()}},
    };
    for (const auto& [bad, before] : cases) {
      const std::string what = bad + " after " + before.front() + ", " + std::to_string(workers) + " worker(s)";
      UniqueFd pipe = pipe_holding(stream);
      UniqueFd pipe_too = pipe_holding(stream);
      std::vector<TableInput> inputs;
      for (const std::string& path : before) inputs.push_back({path});
      inputs.push_back({"pipe", pipe.get()});
      inputs.push_back({small.path()});
      std::vector<TableInput> same = inputs;
      same[before.size()].fd = pipe_too.get();
      const Counted got = at_once(inputs, good_text, workers);
      EXPECT_NE(got.error.find(bad), std::string::npos) << what << ": " << got.error;
      EXPECT_EQ(got.error, one_after_another(same, good_text).error) << what;
      char byte = 0;
      EXPECT_EQ(::read(pipe.get(), &byte, 1), 1) << what << ": the pipe was read";
    }
  }
}

// The error is that of the first input in the order given that fails, wherever the
// inputs are read: a bad byte before a missing file, a missing file before a bad byte,
// a bad table counted in parts after a missing file and before one, on one worker and
// on four.
TEST(CountTables, TheFirstInputInOrderThatFailsGivesTheError) {
  const std::string good_text = bench::generate_tcp_table(TcpTableFamily::kIpv6, 4'000, 6);
  std::string bad_text = good_text;
  spoil_line_at(bad_text, 0.6);
  TempTable good(good_text);
  TempTable bad(bad_text);
  TempTable small(bench::generate_tcp_table(TcpTableFamily::kIpv4, 20, 7));
  const std::string missing = "/nonexistent/skopos-count-tables-test";
  const std::vector<std::vector<TableInput>> cases = {
      {{small.path()}, {bad.path()}, {good.path()}, {missing}},
      {{good.path()}, {missing}, {bad.path()}},
      {{missing}, {small.path()}, {good.path()}, {bad.path()}},
      {{small.path()}, {good.path()}, {small.path()}, {bad.path()}},
      {{bad.path()}, {small.path()}, {missing}},
  };
  for (std::size_t workers : {std::size_t{1}, std::size_t{4}}) {
    for (std::size_t c = 0; c < cases.size(); ++c) {
      const std::string what = "case " + std::to_string(c) + ", " + std::to_string(workers) + " worker(s)";
      const Counted expected = one_after_another(cases[c], good_text);
      ASSERT_FALSE(expected.error.empty()) << what;
      EXPECT_EQ(at_once(cases[c], good_text, workers).error, expected.error) << what;
    }
  }
}

}  // namespace
}  // namespace skopos::tracker
