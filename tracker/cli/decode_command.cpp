// tracker-cli decode FILE...: decode saved or live tcp tables.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "output.h"
#include "cli_options.h"
#include "skopos/cli_args.h"
#include "skopos/unique_fd.h"
#include "tracker/proc_net_reader.h"

namespace skopos::tracker::cli {

namespace {

constexpr const char* kHelp =
    "usage: tracker-cli decode [--json] [--records] [--kernel=NAME] FILE...\n"
    "\n"
    "Decodes /proc/net/tcp and /proc/net/tcp6 files, live or saved from another host\n"
    "('-' reads standard input). The files are taken as one network namespace: give a\n"
    "host's tcp and tcp6 together so that connections to IPv6 listeners count as inbound.\n"
    "Counting reads live tables at once, a CPU each; standard input, large saved files\n"
    "and --records are read in turn.\n"
    "\n"
    "Prints, per local port, the number of sockets in each TCP state, and the ESTABLISHED\n"
    "sockets split into inbound (the local port is a listening port) and outbound.\n"
    "\n"
    "%s"
    "\n"
    "Exit status: 0 decoded, 1 a file could not be read or decoded (the error names the\n"
    "file, line and byte), 2 usage error.\n";

const std::vector<std::string_view> kOptions = {"json", "records", "kernel"};

// `text` right-aligned in `width` columns.
void append_right(std::string& out, std::string_view text, std::size_t width) {
  if (width > text.size()) out.append(width - text.size(), ' ');
  out += text;
}

void append_right(std::string& out, std::uint64_t value, std::size_t width) {
  char digits[24];
  const char* end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  append_right(out, std::string_view(digits, static_cast<std::size_t>(end - digits)), width);
}

std::size_t decimal_width(std::uint64_t value) {
  std::size_t width = 1;
  for (; value >= 10; value /= 10) ++width;
  return width;
}

// One port's JSON object, as JsonWriter writes it -- {"port":80,"listening":true,
// "states":{"ESTABLISHED":9,...}} with the nonzero states in kernel order -- into `to`,
// which holds kPortJsonMax bytes; returns its length. A busy host's tens of thousands of
// ports went through the writer's key escaping and comma bookkeeping at a quarter of a
// 1M-line decode's time; every name here is a constant that needs no escaping.
constexpr std::size_t kPortJsonMax = 64 + kTcpStateSlots * 32;

std::size_t port_json(const PortCounts& port, char* to) {
  char* p = to;
  const auto append = [&](std::string_view text) {
    std::memcpy(p, text.data(), text.size());
    p += text.size();
  };
  const auto number = [&](std::uint64_t value) { p = std::to_chars(p, to + kPortJsonMax, value).ptr; };
  append(R"({"port":)");
  number(port.port);
  append(port.listening() ? R"(,"listening":true,"states":{)" : R"(,"listening":false,"states":{)");
  bool first = true;
  for (int state = kFirstTcpState; state <= kLastTcpState; ++state) {
    const std::uint32_t n = port.counts[static_cast<std::size_t>(state)];
    if (n == 0) continue;
    if (!first) *p++ = ',';
    first = false;
    *p++ = '"';
    append(tcp_state_name(static_cast<TcpState>(state)));
    append(R"(":)");
    number(n);
  }
  append("}}");
  return static_cast<std::size_t>(p - to);
}

// Live tables are read at once, a CPU each (count_tables: streams and large saved
// tables after them, in turn): a host's tcp and tcp6 take as long as the longer of the
// two, not both. The counts print straight from the tally into the output buffer, a port
// at a time: a busy host has tens of thousands of ports, and a list of them, then a table
// of strings, cost more in allocations and page faults than decoding its tables.
int print_counts(const std::vector<std::string>& files, bool json, ScanKernel kernel) {
  std::vector<TableInput> inputs;
  for (const std::string& file : files) {
    inputs.push_back(file == "-" ? TableInput{"stdin", STDIN_FILENO} : TableInput{file});
  }
  PortStateTally tally;
  if (auto status = count_tables(inputs, kernel, tally); !status) {
    std::fprintf(stderr, "tracker-cli decode: %s\n", status.error().message().c_str());
    return 1;
  }
  const TallySummary totals = tally.totals();
  Output out;
  if (json) {
    JsonWriter w(out.text());
    w.begin_object().key("files").begin_array();
    for (const std::string& file : files) w.value(file);
    w.end_array();
    w.key("sockets").value(totals.sockets);
    w.key("established").begin_object();
    w.key("inbound").value(totals.established_inbound);
    w.key("outbound").value(totals.established_outbound);
    w.end_object();
    w.key("states");
    write_states(w, totals.by_state);
    w.key("ports").begin_array();
    tally.for_each_port_counts([&](const PortCounts& port) {
      char object[kPortJsonMax];
      w.raw_value(std::string_view(object, port_json(port, object)));
      out.maybe_flush();
    });
    w.end_array().end_object();
    out.text() += '\n';
    return 0;
  }

  // Right-aligned columns, two spaces apart, each as wide as its header or its widest
  // number (as TextTable lays them out).
  const std::vector<TcpState> states = states_present(totals);
  std::size_t ports = 0;
  std::size_t port_width = 4;  // "PORT"
  std::array<std::size_t, kTcpStateSlots> widths{};
  for (TcpState state : states) widths[static_cast<std::size_t>(state)] = tcp_state_name(state).size();
  tally.for_each_port_counts([&](const PortCounts& port) {
    ++ports;
    port_width = std::max(port_width, decimal_width(port.port));
    for (TcpState state : states) {
      std::size_t& width = widths[static_cast<std::size_t>(state)];
      width = std::max(width, decimal_width(port.count(state)));
    }
  });
  std::string& text = out.text();
  append_right(text, "PORT", port_width);
  for (TcpState state : states) {
    text += "  ";
    append_right(text, tcp_state_name(state), widths[static_cast<std::size_t>(state)]);
  }
  text += '\n';
  tally.for_each_port_counts([&](const PortCounts& port) {
    append_right(text, port.port, port_width);
    for (TcpState state : states) {
      text += "  ";
      append_right(text, port.count(state), widths[static_cast<std::size_t>(state)]);
    }
    text += '\n';
    out.maybe_flush();
  });
  text += std::to_string(totals.sockets) + " sockets on " + std::to_string(ports) +
          " ports; ESTABLISHED: " + std::to_string(totals.established_inbound) + " inbound, " +
          std::to_string(totals.established_outbound) + " outbound\n";
  return 0;
}

void write_record_json(JsonWriter& w, const std::string& file, const TcpSocketRecord& r) {
  const auto endpoint = [&](const char* name, const std::array<std::uint8_t, 16>& address, std::uint16_t port) {
    w.key(name).begin_object();
    w.key("address").value(format_address(r.family, address));
    w.key("port").value(static_cast<unsigned>(port));
    w.end_object();
  };
  char pointer[24];
  std::snprintf(pointer, sizeof pointer, "%016" PRIx64, r.kernel_pointer);
  w.begin_object();
  w.key("file").value(file);
  w.key("line").value(r.line);
  w.key("slot").value(r.slot);
  w.key("kind").value(socket_kind_name(r.kind));
  w.key("state").value(tcp_state_name(r.state));
  endpoint("local", r.local_address, r.local_port);
  endpoint("remote", r.remote_address, r.remote_port);
  w.key("tx_queue").value(r.tx_queue).key("rx_queue").value(r.rx_queue);
  w.key("timer").value(static_cast<unsigned>(r.timer)).key("timer_expires").value(r.timer_expires);
  w.key("retransmits").value(r.retransmits).key("uid").value(r.uid);
  w.key("probes").value(r.probes).key("inode").value(r.inode);
  w.key("refcount").value(r.refcount).key("kernel_pointer").value(pointer);
  if (r.kind == SocketKind::kFull) {
    w.key("rto").value(r.rto).key("ato").value(r.ato);
    w.key("ack_quick_pingpong").value(r.ack_quick_pingpong);
    w.key("snd_cwnd").value(r.snd_cwnd).key("ssthresh").value(r.ssthresh);
  }
  w.end_object();
}

// Fixed columns, so that records stream out as they are decoded. An endpoint column
// fits every IPv4 and IPv4-mapped endpoint; longer IPv6 ones push the row right.
constexpr int kEndpointWidth = 31;

void write_record_text(std::string& out, const std::string* file, const TcpSocketRecord& r) {
  const auto endpoint = [&](const std::array<std::uint8_t, 16>& address, std::uint16_t port) {
    const std::string text = format_address(r.family, address);
    return (r.family == TcpTableFamily::kIpv6 ? "[" + text + "]" : text) + ":" + std::to_string(port);
  };
  if (file != nullptr) {
    out += *file;
    out += ' ';
  }
  char line[512];
  std::snprintf(line, sizeof line, "%7" PRIu64 "  %-12s %-9s %-*s %-*s %8u %8u %10u %10" PRIu64 "\n", r.line,
                std::string(tcp_state_name(r.state)).c_str(), std::string(socket_kind_name(r.kind)).c_str(),
                kEndpointWidth, endpoint(r.local_address, r.local_port).c_str(), kEndpointWidth,
                endpoint(r.remote_address, r.remote_port).c_str(), r.tx_queue, r.rx_queue, r.uid, r.inode);
  out += line;
}

// Decodes one file, calling the decoder's sink per record. Returns the error text, or
// empty on success.
std::string decode_file(const std::string& file, TcpTableDecoder& decoder, TcpTableDecoder::RecordSink sink,
                        std::optional<DecodeError>& decode_error) {
  UniqueFd owned;
  int fd = STDIN_FILENO;
  if (file != "-") {
    owned.reset(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!owned) return Error::from_errno(errno, "open", file).message();
    fd = owned.get();
  }
  decoder.reset();
  auto buffer = std::make_unique_for_overwrite<char[]>(1 << 16);
  for (;;) {
    const ssize_t n = ::read(fd, buffer.get(), 1 << 16);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "read", file).message();
    }
    auto status = n == 0 ? decoder.finish() : decoder.feed({buffer.get(), static_cast<std::size_t>(n)}, sink);
    if (!status) {
      decode_error = status.error();
      return Error::invalid("decode", file, status.error().message()).message();
    }
    if (n == 0) return {};
  }
}

int print_records(const std::vector<std::string>& files, bool json, ScanKernel kernel) {
  const bool several_files = files.size() > 1;
  Output out;
  JsonWriter w(out.text());
  if (json) {
    w.begin_object().key("files").begin_array();
    for (const std::string& file : files) w.value(file);
    w.end_array().key("records").begin_array();
  } else {
    char header[256];
    std::snprintf(header, sizeof header, "%s%7s  %-12s %-9s %-*s %-*s %8s %8s %10s %10s\n",
                  several_files ? "FILE " : "", "LINE", "STATE", "KIND", kEndpointWidth, "LOCAL", kEndpointWidth,
                  "REMOTE", "TX-QUEUE", "RX-QUEUE", "UID", "INODE");
    out.text() += header;
  }
  TcpTableDecoder decoder(kernel);
  for (const std::string& file : files) {
    std::optional<DecodeError> decode_error;
    const std::string error = decode_file(
        file, decoder,
        [&](const TcpSocketRecord& record) {
          if (json) {
            write_record_json(w, file, record);
          } else {
            write_record_text(out.text(), several_files ? &file : nullptr, record);
          }
          out.maybe_flush();
        },
        decode_error);
    if (!error.empty()) {
      if (json) {
        // Scripts still get a valid document, with the error in it.
        w.end_array().key("error").begin_object();
        w.key("file").value(file);
        if (decode_error) {
          w.key("line").value(decode_error->line);
          w.key("byte").value(decode_error->column);
          w.key("offset").value(decode_error->offset);
        }
        w.key("message").value(error);
        w.end_object().end_object();
        out.text() += '\n';
      }
      out.flush();
      std::fprintf(stderr, "tracker-cli decode: %s\n", error.c_str());
      return 1;
    }
  }
  if (json) {
    w.end_array().end_object();
    out.text() += '\n';
  }
  return 0;
}

}  // namespace

int decode_command(int argc, char** argv) {
  const auto command_line = parse_command_line("tracker-cli decode", kOptions, kHelp, argc, argv);
  if (!command_line) return 0;
  if (command_line->positional.empty()) {
    throw FatalError("tracker-cli decode: no FILE given",
                     "tracker-cli decode /proc/net/tcp /proc/net/tcp6 (or - for standard input)");
  }
  const ScanKernel kernel = parse_kernel("tracker-cli decode", command_line->config.kernel);
  if (command_line->config.records) return print_records(command_line->positional, command_line->config.json, kernel);
  return print_counts(command_line->positional, command_line->config.json, kernel);
}

}  // namespace skopos::tracker::cli
