#include "tracker/snapshot_output.h"

#include "skopos/json_writer.h"
#include "skopos/text_table.h"

namespace skopos::tracker {

namespace {

std::string ports_text(std::span<const PortConnections> ports, bool inbound) {
  std::string text;
  for (const PortConnections& port : ports) {
    const std::uint32_t count = inbound ? port.inbound : port.outbound;
    if (count == 0) continue;
    if (!text.empty()) text += ' ';
    text += std::to_string(port.port) + ":" + std::to_string(count);
  }
  return text.empty() ? "-" : text;
}

}  // namespace

std::string snapshot_json(const TrackerSnapshot& snapshot) {
  std::string out;
  JsonWriter json(out);
  json.begin_object()
      .key("version")
      .value(TrackerSnapshot::kVersion)
      .key("source")
      .value(source_name(snapshot.source))
      .key("timestamp_ns")
      .value(snapshot.timestamp_ns)
      .key("containers_known")
      .value(snapshot.containers_known);
  json.key("containers").begin_array();
  for (const StreamContainer& c : snapshot.containers) write_container(json, view_of(c));
  json.end_array();
  json.key("namespaces").begin_array();
  for (const NamespaceEntry& ns : snapshot.namespaces) {
    json.begin_object().key("inode").value(ns.inode).key("known").value(ns.known);
    json.key("pid").value(static_cast<std::int64_t>(ns.pid)).key("command").value(ns.command);
    json.key("names").begin_array();
    for (const std::string& name : ns.names) json.value(name);
    json.end_array().key("containers").begin_array();
    for (const std::string& id : ns.container_ids) json.value(id);
    json.end_array();
    if (ns.known) {
      json.key("inbound").value(ns.counts.inbound()).key("outbound").value(ns.counts.outbound());
    } else {
      json.key("inbound").null().key("outbound").null();
    }
    write_ports(json, ns.counts.ports());
    json.end_object();
  }
  json.end_array().end_object();
  return out;
}

std::string snapshot_table(const TrackerSnapshot& snapshot) {
  std::string out;
  if (snapshot.containers_known || !snapshot.containers.empty()) {
    TextTable containers({"CONTAINER", "MODE", "APP", "IN", "OUT", "INBOUND BY PORT"}, {false, false, false, true, true, false});
    for (const StreamContainer& c : snapshot.containers) {
      const std::string app = !c.marathon_app_id.empty() ? c.marathon_app_id : (c.mesos_task_id.empty() ? "-" : c.mesos_task_id);
      containers.add_row({c.name, c.network_mode, app, c.known ? std::to_string(c.inbound) : "?",
                          c.known && c.outbound >= 0 ? std::to_string(c.outbound) : (c.known ? "n/a" : "?"),
                          c.known ? ports_text(c.ports, true) : "unknown"});
    }
    out += containers.render();
    if (!snapshot.containers_known) out += "(docker API unavailable: container list may be stale)\n";
    out += '\n';
  }
  TextTable namespaces({"NETNS", "PID", "COMMAND", "IN", "OUT", "INBOUND BY PORT"}, {true, true, false, true, true, false});
  for (const NamespaceEntry& ns : snapshot.namespaces) {
    std::string command = ns.command;
    if (!ns.names.empty()) command += (command.empty() ? "" : " ") + std::string("[") + ns.names.front() + "]";
    namespaces.add_row({std::to_string(ns.inode), ns.pid >= 0 ? std::to_string(ns.pid) : "-", command.empty() ? "-" : command,
                        ns.known ? std::to_string(ns.counts.inbound()) : "?",
                        ns.known ? std::to_string(ns.counts.outbound()) : "?",
                        ns.known ? ports_text(ns.counts.ports(), true) : "unknown"});
  }
  out += namespaces.render();
  out += "source: " + std::string(source_name(snapshot.source)) + "\n";
  return out;
}

}  // namespace skopos::tracker
