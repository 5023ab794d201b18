#include "tracker/proc_net_tcp.h"

#include <arpa/inet.h>
#if defined(SKOPOS_X86_KERNELS)
// glibc's header returns C's _Bool, which C++ has only as an extension: g++'s
// <stdbool.h> defines it, clang's does not under -std=c++20.
#if !defined(_Bool)
#define _Bool bool
#define SKOPOS_DEFINED_BOOL
#endif
#include <sys/platform/x86.h>
#if defined(SKOPOS_DEFINED_BOOL)
#undef _Bool
#undef SKOPOS_DEFINED_BOOL
#endif
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "proc_net_tcp_line.h"
#include "scan_kernel.h"

namespace skopos::tracker {

static_assert(detail::kScanMaxLine == kMaxLineLength);

std::string_view tcp_table_name(TcpTableFamily family) {
  return family == TcpTableFamily::kIpv4 ? "tcp" : "tcp6";
}

std::string_view socket_kind_name(SocketKind kind) {
  switch (kind) {
    case SocketKind::kFull: return "full";
    case SocketKind::kTimeWait: return "time-wait";
    case SocketKind::kRequest: return "request";
  }
  return "?";
}

std::string format_address(TcpTableFamily family, const std::array<std::uint8_t, 16>& address) {
  char text[INET6_ADDRSTRLEN];
  if (family == TcpTableFamily::kIpv4) {
    ::inet_ntop(AF_INET, &address[12], text, sizeof text);
  } else {
    ::inet_ntop(AF_INET6, address.data(), text, sizeof text);
  }
  return text;
}

std::string DecodeError::message() const {
  std::string text = "line " + std::to_string(line) + ", byte " + std::to_string(column) +
                     " (offset " + std::to_string(offset) + "): ";
  switch (kind) {
    case DecodeErrorKind::kEmptyInput: text += "empty input"; break;
    case DecodeErrorKind::kBadHeader:  // `expected` says it all
    case DecodeErrorKind::kUnexpectedByte: break;
    case DecodeErrorKind::kNumberOutOfRange: text += "number out of range"; break;
    case DecodeErrorKind::kUnknownState: text += "unknown TCP state"; break;
    case DecodeErrorKind::kLineTooLong:
      text += "line longer than " + std::to_string(kMaxLineLength) + " bytes";
      break;
    case DecodeErrorKind::kMissingNewline: text += "input ends inside a line"; break;
  }
  if (!expected.empty()) {
    if (kind != DecodeErrorKind::kUnexpectedByte && kind != DecodeErrorKind::kBadHeader) text += "; ";
    text += "expected ";
    text += expected;
    text += ", found ";
    if (found < 0) {
      text += "end of line";
    } else if (found == '\n') {
      text += "newline";
    } else if (found >= 0x20 && found < 0x7f) {
      text += '\'';
      text += static_cast<char>(found);
      text += '\'';
    } else {
      char hex[16];
      std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned>(found));
      text += hex;
    }
  }
  return text;
}

// ---------------------------------------------------------------------------------
// Kernel selection.

std::string_view scan_kernel_name(ScanKernel kernel) {
  switch (kernel) {
    case ScanKernel::kAuto: return "auto";
    case ScanKernel::kParser: return "parser";
    case ScanKernel::kPortable: return "portable";
    case ScanKernel::kAvx2: return "avx2";
    case ScanKernel::kAvx512: return "avx512";
  }
  return "?";
}

#if defined(SKOPOS_X86_KERNELS)
namespace {

// What the SIMD kernels need, as the dynamic loader found it: glibc runs CPUID once at
// start-up for itself, and <sys/platform/x86.h> (glibc 2.33) reads its answers, "active"
// meaning the CPU has the feature and the OS saves its registers. (CPUID of our own
// cost 0.03 ms per tracker-cli run under this hypervisor, where each leaf traps: six
// microseconds a leaf; __builtin_cpu_supports runs libgcc's own pass over the leaves.)
struct X86Features {
  // With BMI1, BMI2, POPCNT and LZCNT (the SIMD units are built with -mlzcnt: without it
  // the instruction runs as bsr, silently wrong).
  bool avx2 = false;
  bool avx512 = false;  // F, BW, CD, VBMI, VBMI2, VPOPCNTDQ
};

X86Features read_x86_features() {
  X86Features features;
  features.avx2 = CPU_FEATURE_ACTIVE(AVX2) && CPU_FEATURE_ACTIVE(BMI1) && CPU_FEATURE_ACTIVE(BMI2) &&
                  CPU_FEATURE_ACTIVE(POPCNT) && CPU_FEATURE_ACTIVE(LZCNT);
  features.avx512 = features.avx2 && CPU_FEATURE_ACTIVE(AVX512F) && CPU_FEATURE_ACTIVE(AVX512BW) &&
                    CPU_FEATURE_ACTIVE(AVX512CD) && CPU_FEATURE_ACTIVE(AVX512_VBMI) &&
                    CPU_FEATURE_ACTIVE(AVX512_VBMI2) && CPU_FEATURE_ACTIVE(AVX512_VPOPCNTDQ);
  return features;
}

const X86Features& x86_features() {
  static const X86Features features = read_x86_features();
  return features;
}

}  // namespace
#endif

bool scan_kernel_supported(ScanKernel kernel) {
  switch (kernel) {
    case ScanKernel::kAuto:
    case ScanKernel::kParser:
    case ScanKernel::kPortable: return true;
#if defined(SKOPOS_X86_KERNELS)
    case ScanKernel::kAvx2: return x86_features().avx2;
    case ScanKernel::kAvx512: return x86_features().avx512;
#else
    case ScanKernel::kAvx2:
    case ScanKernel::kAvx512: return false;
#endif
  }
  return false;
}

namespace {

// A sample for timing the kernels: kernel-printed tcp6 lines, full sockets and
// TIME_WAIT ones. 256 lines (about 45 KB) fit in the L1 or L2 cache of any CPU with
// AVX2, and their ports in a few pages of the tally, so the timing measures the kernels,
// not the memory or page faults. The lines are formatted by the compiler: choosing is
// paid once per process, tracker-cli pays it on every run (bench_proc_net_tcp prints
// what it costs), and formatting them at run time was a third of it.
constexpr int kSampleLines = 256;

// A table of at most kCapacity bytes, written at compile time.
struct SampleText {
  static constexpr std::size_t kCapacity = 160 + kSampleLines * 200;
  std::array<char, kCapacity> bytes{};
  std::size_t size = 0;

  constexpr SampleText& raw(std::string_view part) {
    for (char c : part) bytes[size++] = c;
    return *this;
  }
  // `digits` hex digits, zero-padded; upper case as the kernel prints addresses, lower
  // case as it prints socket pointers.
  constexpr SampleText& hex(std::uint64_t value, int digits, bool upper = true) {
    const std::string_view alphabet = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    for (int shift = 4 * (digits - 1); shift >= 0; shift -= 4) bytes[size++] = alphabet[(value >> shift) & 15];
    return *this;
  }
  // Right-aligned in `width` columns, as printf's "%*d"; a leading '-' for negatives.
  constexpr SampleText& decimal(long long value, int width = 0) {
    char digits[24]{};
    int length = 0;
    const bool negative = value < 0;
    auto magnitude = static_cast<unsigned long long>(negative ? -value : value);
    do {
      digits[length++] = static_cast<char>('0' + magnitude % 10);
      magnitude /= 10;
    } while (magnitude != 0);
    if (negative) digits[length++] = '-';
    for (int pad = width - length; pad > 0; --pad) bytes[size++] = ' ';
    while (length > 0) bytes[size++] = digits[--length];
    return *this;
  }
};

constexpr SampleText make_sample_table() {
  SampleText text;
  text.raw("  sl  local_address                         remote_address                        "
           "st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n");
  std::uint32_t seed = 0x2545F491;
  const auto next = [&seed] {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    return seed;
  };
  for (int slot = 0; slot < kSampleLines; ++slot) {
    const std::uint32_t a = next();
    const std::uint32_t b = next();
    const unsigned local_port = 40000 + (a % 512);
    const unsigned remote_port = slot % 3 == 0 ? 443 : 8080;
    text.decimal(slot, 4).raw(": 0000000000000000FFFF0000").hex(a, 8).raw(":").hex(local_port, 4);
    text.raw(" 0000000000000000FFFF0000").hex(b, 8).raw(":").hex(remote_port, 4);
    if (slot % 8 == 7) {
      text.raw(" 06 00000000:00000000 03:").hex(a % 6000, 8).raw(" 00000000     0        0 0 3 ");
      text.hex(0xFFFF888000000000ULL | b, 16, false).raw("\n");
    } else {
      text.raw(" 01 00000000:00000000 02:").hex(b % 9000, 8).raw(" 00000000  ").decimal(1000 + a % 8, 4);
      text.raw("        0 ").decimal(100000 + b % 900000).raw(" 2 ").hex(0xFFFF888000000000ULL | a, 16, false);
      text.raw(" ").decimal(20 + b % 200).raw(" ").decimal(4 + a % 36).raw(" ").decimal((a >> 3) % 32);
      text.raw(" ").decimal(10 + b % 90).raw(" ").decimal(slot % 5 == 0 ? -1 : static_cast<int>(7 + a % 200));
      text.raw("\n");
    }
  }
  return text;
}

constexpr SampleText kSampleTable = make_sample_table();

std::string_view sample_table() { return {kSampleTable.bytes.data(), kSampleTable.size}; }

ScanKernelChoice choose_scan_kernel() {
  // The SIMD kernels this CPU runs are timed against each other. The portable one is
  // timed only where none runs: it measured slower than either on every CPU
  // bench_proc_net_tcp has run on (3-4x on Zen 3, Zen 4 and an AVX-512 Xeon before its
  // known-shape path; 1.6-1.8x after it, on a Zen 5), and timing it would add half again
  // to what choosing costs (ScanKernelChoice::choosing_ms, which bench_proc_net_tcp
  // prints).
  std::vector<ScanKernel> candidates;
  for (ScanKernel kernel : {ScanKernel::kAvx512, ScanKernel::kAvx2}) {
    if (scan_kernel_supported(kernel)) candidates.push_back(kernel);
  }
  if (candidates.empty()) candidates.push_back(ScanKernel::kPortable);
  ScanKernelChoice choice{ScanKernel::kPortable, {}};
  if (candidates.size() == 1) {
    choice.chosen = candidates.front();
    choice.timings.push_back({candidates.front()});
    return choice;
  }
  const auto started_choosing = std::chrono::steady_clock::now();
  const std::string_view sample = sample_table();
  PortStateTally tally;
  std::vector<ScanKernelTiming> timings;
  for (ScanKernel kernel : candidates) timings.push_back({kernel, 1e300});
  // Interleaved rounds, the best of each: a burst of other work on the machine slows
  // one round of every kernel alike rather than all rounds of one.
  for (int round = 0; round < 5; ++round) {
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      TcpTableCounter counter(tally, candidates[i]);
      const auto started = std::chrono::steady_clock::now();
      const bool ok = counter.feed(sample) && counter.finish();
      const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - started).count();
      tally.clear();
      if (!ok) continue;  // never chosen (the tests decode the sample on every kernel)
      timings[i].ns_per_line = std::min(timings[i].ns_per_line, ns / kSampleLines);
      timings[i].lines = counter.lines();
      timings[i].fallback_lines = counter.fallback_lines();
    }
  }
  choice.timings = timings;
  std::stable_sort(choice.timings.begin(), choice.timings.end(),
                   [](const ScanKernelTiming& a, const ScanKernelTiming& b) { return a.ns_per_line < b.ns_per_line; });
  // A kernel that failed the sample is never chosen; if every one did (a bug the tests
  // would show), the portable kernel is the safe choice.
  choice.chosen = choice.timings.front().lines > 0 ? choice.timings.front().kernel : ScanKernel::kPortable;
  choice.choosing_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_choosing).count();
  return choice;
}

}  // namespace

std::string ScanKernelChoice::describe() const {
  std::string text(scan_kernel_name(chosen));
  if (timings.size() < 2) {
    return text + (chosen == ScanKernel::kPortable ? " (no SIMD kernel runs on this CPU)"
                                                   : " (the only SIMD kernel this CPU runs)");
  }
  char figure[64];
  std::snprintf(figure, sizeof figure, " (measured in %.2f ms:", choosing_ms);
  text += figure;
  for (const ScanKernelTiming& timing : timings) {
    std::snprintf(figure, sizeof figure, " %s %.1f ns/line", std::string(scan_kernel_name(timing.kernel)).c_str(),
                  timing.ns_per_line);
    text += figure;
  }
  return text + ")";
}

const ScanKernelChoice& scan_kernel_choice() {
  static const ScanKernelChoice choice = choose_scan_kernel();
  return choice;
}

ScanKernel best_scan_kernel() { return scan_kernel_choice().chosen; }

std::uint64_t known_tail_shape_lines() { return detail::known_tail_lines(); }

namespace detail {

namespace {

// The portable scan: every complete line of [begin, end) through `step`, which has the
// returns of parse_line_at().
template <class Step>
ScanProgress scan_each(const char* begin, const char* end, Step step) {
  ScanProgress progress{begin, 0, 0, false};
  while (progress.stop < end) {
    const char* next = step(progress.stop);
    if (next == nullptr) {
      progress.failed = true;
      break;
    }
    if (next == progress.stop) break;
    progress.stop = next;
    ++progress.lines;
  }
  progress.fallback_lines = progress.lines;
  return progress;
}

TcpTableFamily family_of(bool ipv6) { return ipv6 ? TcpTableFamily::kIpv6 : TcpTableFamily::kIpv4; }

}  // namespace

const char* count_line_parsed(const char* line, const char* end, bool ipv6, const CountTarget& target) {
  TcpSocketRecord record;
  LineError error;
  const char* next = parse_line_at(line, end, family_of(ipv6), record, error);
  if (next != nullptr && next != line) count_socket(target, record.local_port, static_cast<unsigned>(record.state));
  return next;
}

ScanProgress count_lines_parsed(const char* begin, const char* end, bool ipv6, const CountTarget& target) {
  return scan_each(begin, end, [&](const char* line) { return count_line_parsed(line, end, ipv6, target); });
}

// Splits a file's chunks into lines: reads the header, hands runs of complete lines to
// scan(), and carries a line split across chunks in a fixed buffer until its end
// arrives. Line numbers and file offsets for errors are kept here.
class LineFramer {
 public:
  virtual ~LineFramer() = default;

  DecodeStatus feed(std::span<const char> chunk) {
    if (error_) return unexpected(*error_);
    if (chunk.empty()) return {};
    seen_input_ = true;
    const char* p = chunk.data();
    const char* const end = p + chunk.size();

    // Complete the line carried from earlier chunks (always the case for the header).
    if (carry_size_ > 0 || !family_) {
      const std::size_t room = carry_.size() - carry_size_;
      const auto* newline = static_cast<const char*>(
          std::memchr(p, '\n', std::min(room, static_cast<std::size_t>(end - p))));
      if (newline == nullptr) {
        // The line's byte at column kMaxLineLength - 1 is p[room - 1].
        if (static_cast<std::size_t>(end - p) >= room) return too_long(p[room - 1]);
        std::memcpy(carry_.data() + carry_size_, p, static_cast<std::size_t>(end - p));
        carry_size_ += static_cast<std::size_t>(end - p);
        return {};
      }
      const auto taken = static_cast<std::size_t>(newline + 1 - p);
      std::memcpy(carry_.data() + carry_size_, p, taken);
      const std::size_t size = carry_size_ + taken;
      carry_size_ = 0;
      p += taken;
      if (auto status = consume(carry_.data(), carry_.data() + size); !status) return status;
    }

    if (p < end) {
      if (auto status = consume(p, end); !status) return status;
      // What is left is the start of a line shorter than kMaxLineLength: scan() would
      // have reported a longer one.
      const auto left = static_cast<std::size_t>(end - next_);
      std::memcpy(carry_.data(), next_, left);
      carry_size_ = left;
    }
    return {};
  }

  DecodeStatus finish() {
    if (error_) return unexpected(*error_);
    if (!seen_input_) {
      return fail(DecodeError{.kind = DecodeErrorKind::kEmptyInput,
                              .line = 1,
                              .expected = "the table's header line"});
    }
    if (carry_size_ > 0) {
      return fail(DecodeError{.kind = DecodeErrorKind::kMissingNewline,
                              .line = lines_ + 1,
                              .column = carry_size_,
                              .offset = offset_ + carry_size_,
                              .expected = "newline"});
    }
    return {};
  }

  void reset() {
    carry_size_ = 0;
    family_.reset();
    lines_ = 0;
    offset_ = 0;
    error_.reset();
    seen_input_ = false;
  }

  std::optional<TcpTableFamily> family() const { return family_; }
  std::uint64_t lines() const { return lines_; }

  // Starts in the middle of a table (TcpTableCounter::continue_table).
  void continue_at(TcpTableFamily family, std::uint64_t offset) {
    reset();
    family_ = family;
    offset_ = offset;
    seen_input_ = true;
  }

 protected:
  // Consumes complete socket lines from [begin, end) without reading past end.
  // `first_line` is the line number of the line at begin.
  virtual ScanProgress scan(const char* begin, const char* end, TcpTableFamily family,
                            std::uint64_t first_line) = 0;

 private:
  // Consumes the complete lines of [begin, end); next_ is where it stopped.
  DecodeStatus consume(const char* begin, const char* end) {
    if (!family_) {
      // The header: begin..end is exactly one line, newline included.
      family_ = match_header(begin, end - 1);
      if (!family_) {
        return fail(DecodeError{.kind = DecodeErrorKind::kBadHeader,
                                .line = 1,
                                .expected = "the /proc/net/tcp or /proc/net/tcp6 header",
                                .found = static_cast<unsigned char>(*begin)});
      }
      lines_ = 1;
      offset_ = static_cast<std::uint64_t>(end - begin);
      next_ = end;
      return {};
    }
    const ScanProgress progress = scan(begin, end, *family_, lines_ + 1);
    lines_ += progress.lines;
    offset_ += static_cast<std::uint64_t>(progress.stop - begin);
    next_ = progress.stop;
    if (progress.failed) return diagnose(progress.stop, end);
    return {};
  }

  // The scan found the line at `line` invalid: say exactly why, with the full parser.
  DecodeStatus diagnose(const char* line, const char* end) {
    TcpSocketRecord record;
    LineError error;
    if (parse_line_at(line, end, *family_, record, error) != nullptr) {
      // A kernel and the parser disagree: a bug, and one the fuzzer hunts for.
      error = LineError{.kind = DecodeErrorKind::kUnexpectedByte, .expected = "(internal error)"};
    }
    return fail(DecodeError{.kind = error.kind,
                            .line = lines_ + 1,
                            .column = error.column,
                            .offset = offset_ + error.column,
                            .expected = error.expected,
                            .found = error.found});
  }

  DecodeStatus too_long(char found) {
    return fail(DecodeError{.kind = DecodeErrorKind::kLineTooLong,
                            .line = lines_ + 1,
                            .column = kMaxLineLength - 1,
                            .offset = offset_ + kMaxLineLength - 1,
                            .expected = "newline",
                            .found = static_cast<unsigned char>(found)});
  }

  DecodeStatus fail(DecodeError error) {
    error_ = error;
    return unexpected(error);
  }

  std::array<char, kMaxLineLength> carry_{};
  std::size_t carry_size_ = 0;
  const char* next_ = nullptr;
  std::optional<TcpTableFamily> family_;
  std::uint64_t lines_ = 0;   // lines consumed, header included
  std::uint64_t offset_ = 0;  // file offset of the first byte not consumed
  std::optional<DecodeError> error_;
  bool seen_input_ = false;
};

}  // namespace detail

// ---------------------------------------------------------------------------------
// The full-record path.

namespace {
ScanKernel resolve(ScanKernel requested) {
  if (requested == ScanKernel::kAuto) return best_scan_kernel();
  // A kernel this CPU cannot run would die of SIGILL; fall back instead.
  return scan_kernel_supported(requested) ? requested : ScanKernel::kPortable;
}
}  // namespace


class TcpTableDecoder::Scanner : public detail::LineFramer {
 public:
  explicit Scanner(ScanKernel kernel) : kernel_(kernel) {}

  RecordSink* sink = nullptr;

 protected:
  detail::ScanProgress scan(const char* begin, const char* end, TcpTableFamily family,
                            std::uint64_t first_line) override {
    family_ = family;
    next_line_ = first_line;
    const bool ipv6 = family == TcpTableFamily::kIpv6;
    const detail::RecordTarget target{this, &Scanner::on_lines, &Scanner::fallback};
    switch (kernel_) {
#if defined(SKOPOS_X86_KERNELS)
      case ScanKernel::kAvx2: return detail::record_lines_avx2(begin, end, ipv6, target);
      case ScanKernel::kAvx512: return detail::record_lines_avx512(begin, end, ipv6, target);
#endif
      case ScanKernel::kParser:
        return detail::scan_each(begin, end, [&](const char* line) { return fallback(this, line, end); });
      default: break;
    }
    return detail::record_lines_portable(begin, end, ipv6, target);
  }

 private:
  // Lines a kernel proved well-formed, decoded.
  static void on_lines(void* context, const detail::LineValues* lines, int count) {
    auto* self = static_cast<Scanner*>(context);
    TcpSocketRecord& r = self->record_;
    r.family = self->family_;
    for (const detail::LineValues& v : std::span(lines, static_cast<std::size_t>(count))) {
      r.state = static_cast<TcpState>(v.state);
      r.kind = v.full ? SocketKind::kFull
                      : (r.state == TcpState::kSynRecv ? SocketKind::kRequest : SocketKind::kTimeWait);
      r.slot = v.slot;
      std::memcpy(r.local_address.data(), v.local_address, 16);
      r.local_port = v.local_port;
      std::memcpy(r.remote_address.data(), v.remote_address, 16);
      r.remote_port = v.remote_port;
      r.tx_queue = v.tx_queue;
      r.rx_queue = v.rx_queue;
      r.timer = v.timer;
      r.timer_expires = v.timer_expires;
      r.retransmits = v.retransmits;
      r.uid = v.uid;
      r.probes = v.probes;
      r.inode = v.inode;
      r.refcount = v.refcount;
      r.kernel_pointer = v.kernel_pointer;
      r.rto = v.rto;
      r.ato = v.ato;
      r.ack_quick_pingpong = v.ack_quick_pingpong;
      r.snd_cwnd = v.snd_cwnd;
      r.ssthresh = v.ssthresh;
      self->emit();
    }
  }

  // Any other line: the full parser decides.
  static const char* fallback(void* context, const char* line, const char* end) {
    auto* self = static_cast<Scanner*>(context);
    detail::LineError error;
    const char* next = detail::parse_line_at(line, end, self->family_, self->record_, error);
    if (next != nullptr && next != line) self->emit();
    return next;
  }

  void emit() {
    record_.line = next_line_++;
    (*sink)(record_);
  }

  ScanKernel kernel_;
  TcpTableFamily family_ = TcpTableFamily::kIpv4;
  std::uint64_t next_line_ = 0;
  TcpSocketRecord record_;
};

TcpTableDecoder::TcpTableDecoder(ScanKernel kernel) : scanner_(std::make_unique<Scanner>(resolve(kernel))) {}
TcpTableDecoder::~TcpTableDecoder() = default;

DecodeStatus TcpTableDecoder::feed(std::span<const char> chunk, RecordSink sink) {
  scanner_->sink = &sink;
  DecodeStatus status = scanner_->feed(chunk);
  scanner_->sink = nullptr;
  return status;
}

DecodeStatus TcpTableDecoder::finish() { return scanner_->finish(); }
void TcpTableDecoder::reset() { scanner_->reset(); }
std::optional<TcpTableFamily> TcpTableDecoder::family() const { return scanner_->family(); }
std::uint64_t TcpTableDecoder::lines() const { return scanner_->lines(); }

// ---------------------------------------------------------------------------------
// The counting path.

class TcpTableCounter::Scanner : public detail::LineFramer {
 public:
  using Kernel = detail::ScanProgress (*)(const char*, const char*, bool,
                                          const detail::CountTarget&);

  Scanner(PortStateTally& tally, ScanKernel kernel)
      : target_{tally.cells(), tally.in_use(), tally.states_used()}, kernel_(kernel) {
    switch (kernel) {
#if defined(SKOPOS_X86_KERNELS)
      case ScanKernel::kAvx2: run_ = &detail::count_lines_avx2; break;
      case ScanKernel::kAvx512: run_ = &detail::count_lines_avx512; break;
#endif
      case ScanKernel::kParser: run_ = &detail::count_lines_parsed; break;
      default: run_ = &detail::count_lines_portable; break;
    }
  }

  ScanKernel kernel() const { return kernel_; }
  std::uint64_t fallback_lines() const { return fallback_lines_; }
  void reset_counter() {
    reset();
    fallback_lines_ = 0;
  }

 protected:
  detail::ScanProgress scan(const char* begin, const char* end, TcpTableFamily family,
                            std::uint64_t /*first_line*/) override {
    const detail::ScanProgress progress = run_(begin, end, family == TcpTableFamily::kIpv6, target_);
    fallback_lines_ += progress.fallback_lines;
    return progress;
  }

 private:
  std::uint64_t fallback_lines_ = 0;
  detail::CountTarget target_;
  ScanKernel kernel_;
  Kernel run_ = nullptr;
};


TcpTableCounter::TcpTableCounter(PortStateTally& tally, ScanKernel kernel)
    : scanner_(std::make_unique<Scanner>(tally, resolve(kernel))) {}
TcpTableCounter::~TcpTableCounter() = default;

DecodeStatus TcpTableCounter::feed(std::span<const char> chunk) { return scanner_->feed(chunk); }
DecodeStatus TcpTableCounter::finish() { return scanner_->finish(); }
void TcpTableCounter::reset() { scanner_->reset_counter(); }
void TcpTableCounter::continue_table(TcpTableFamily family, std::uint64_t offset) {
  scanner_->reset_counter();
  scanner_->continue_at(family, offset);
}
std::optional<TcpTableFamily> TcpTableCounter::family() const { return scanner_->family(); }
std::uint64_t TcpTableCounter::lines() const { return scanner_->lines(); }
ScanKernel TcpTableCounter::kernel() const { return scanner_->kernel(); }
std::uint64_t TcpTableCounter::fallback_lines() const { return scanner_->fallback_lines(); }

}  // namespace skopos::tracker
