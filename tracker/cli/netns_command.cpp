// tracker-cli netns: live per-network-namespace connection counts, straight from
// /proc (no tracker needed).
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "output.h"
#include "cli_options.h"
#include "skopos/cli_args.h"
#include "skopos/text_table.h"
#include "tracker/proc_net_reader.h"

namespace skopos::tracker::cli {

namespace {

constexpr const char* kHelp =
    "usage: tracker-cli netns [--json] [--kernel=NAME]\n"
    "\n"
    "Finds every network namespace of this machine (through its processes and the names\n"
    "under /run/netns), decodes its /proc/<pid>/net/tcp and tcp6, and prints its socket\n"
    "counts: ESTABLISHED inbound (to a listening port) and outbound, TIME_WAIT,\n"
    "CLOSE_WAIT and the listening ports. Run as root to see every namespace.\n"
    "\n"
    "%s";

const std::vector<std::string_view> kOptions = {"json", "kernel"};

struct Row {
  NetworkNamespace netns;
  TallySummary summary;
  std::string error;
};

std::string where(const NetworkNamespace& netns) {
  std::string text;
  if (netns.pid >= 0) text = std::to_string(netns.pid) + " (" + netns.command + ")";
  for (const std::string& name : netns.names) text += (text.empty() ? "netns " : ", netns ") + name;
  return text;
}

std::string listening_ports(const TallySummary& summary) {
  std::string text;
  for (const PortCounts& port : summary.ports) {
    if (port.listening()) text += (text.empty() ? "" : ",") + std::to_string(port.port);
  }
  return text.empty() ? "-" : text;
}

}  // namespace

int netns_command(int argc, char** argv) {
  const auto command_line = parse_command_line("tracker-cli netns", kOptions, kHelp, argc, argv);
  if (!command_line) return 0;
  if (!command_line->positional.empty()) {
    throw FatalError("tracker-cli netns: unexpected argument '" + command_line->positional.front() + "'",
                     "see 'tracker-cli netns --help'");
  }
  const ScanKernel kernel = parse_kernel("tracker-cli netns", command_line->config.kernel);

  auto namespaces = list_network_namespaces();
  if (!namespaces) {
    std::fprintf(stderr, "tracker-cli netns: %s\n", namespaces.error().message().c_str());
    return 1;
  }
  ProcNetReader reader(kernel);
  PortStateTally tally;
  std::vector<Row> rows;
  for (NetworkNamespace& netns : *namespaces) {
    Row row;
    row.netns = std::move(netns);
    // A namespace with a process is read through it; one held only by a name is
    // entered (root only).
    auto status = row.netns.pid >= 0
                      ? reader.count_namespace(row.netns.net_dir(), tally)
                      : count_namespace_by_path(reader, "/run/netns/" + row.netns.names.front(), tally);
    if (status) {
      row.summary = tally.summarize();
    } else {
      row.error = status.error().message();
    }
    rows.push_back(std::move(row));
  }

  Output out;
  if (command_line->config.json) {
    JsonWriter w(out.text());
    w.begin_object().key("namespaces").begin_array();
    for (const Row& row : rows) {
      w.begin_object().key("inode").value(row.netns.inode);
      if (row.netns.pid >= 0) {
        w.key("pid").value(static_cast<std::int64_t>(row.netns.pid)).key("command").value(row.netns.command);
      }
      w.key("processes").value(row.netns.processes);
      w.key("names").begin_array();
      for (const std::string& name : row.netns.names) w.value(name);
      w.end_array();
      if (!row.error.empty()) {
        w.key("error").value(row.error);
      } else {
        w.key("sockets").value(row.summary.sockets);
        w.key("established").begin_object();
        w.key("inbound").value(row.summary.established_inbound);
        w.key("outbound").value(row.summary.established_outbound);
        w.end_object().key("states");
        write_states(w, row.summary.by_state);
        w.key("listening_ports").begin_array();
        for (const PortCounts& port : row.summary.ports) {
          if (port.listening()) w.value(static_cast<unsigned>(port.port));
        }
        w.end_array();
      }
      w.end_object();
    }
    w.end_array().end_object();
    out.text() += '\n';
    return 0;
  }

  TextTable table({"NETNS", "PROCESS", "SOCKETS", "ESTAB-IN", "ESTAB-OUT", "TIME_WAIT", "CLOSE_WAIT", "LISTENING"},
                  {true, false, true, true, true, true, true, false});
  std::size_t failed = 0;
  for (const Row& row : rows) {
    if (!row.error.empty()) {
      ++failed;
      table.add_row({std::to_string(row.netns.inode), where(row.netns), "-", "-", "-", "-", "-", row.error});
      continue;
    }
    const TallySummary& s = row.summary;
    table.add_row({std::to_string(row.netns.inode), where(row.netns), std::to_string(s.sockets),
                   std::to_string(s.established_inbound), std::to_string(s.established_outbound),
                   std::to_string(s.count(TcpState::kTimeWait)), std::to_string(s.count(TcpState::kCloseWait)),
                   listening_ports(s)});
  }
  out.text() += table.render();
  out.text() += std::to_string(rows.size()) + " network namespaces";
  if (failed > 0) out.text() += ", " + std::to_string(failed) + " unreadable";
  if (::geteuid() != 0) out.text() += " (not root: other users' namespaces are not visible)";
  out.text() += '\n';
  return 0;
}

}  // namespace skopos::tracker::cli
