// tracker-cli snapshot and watch: the live tracker's counts, through the stream.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "commands.h"
#include "skopos/cli_args.h"
#include "skopos/json_writer.h"
#include "skopos/text_table.h"
#include "stream_common.h"
#include "tracker/stream_client.h"

namespace skopos::tracker::cli {

namespace {

constexpr const char* kSnapshotHelp =
    "usage: tracker-cli snapshot [--json] [--socket PATH] [--name N,...] [--id ID,...]\n"
    "                            [--app APP,...] [--task TASK,...]\n"
    "\n"
    "One snapshot of the running tracker's counts: per container, inbound and outbound\n"
    "established connections and the ports that carry them.\n"
    "\n"
    "  --json          JSON for scripts (the stream's container objects)\n"
    "  --socket PATH   the tracker's stream socket (default $SKOPOS_TRACKER_SOCKET or\n"
    "                  /run/skopos/tracker.sock)\n"
    "  --name, --id, --app, --task   only these containers (names, ids or 12+ character\n"
    "                  id prefixes, Marathon app ids, Mesos task ids; comma-separated)\n"
    "\n"
    "Exit status: 0, 2 for usage errors, 3 when the tracker cannot be reached.\n";

constexpr const char* kWatchHelp =
    "usage: tracker-cli watch CONTAINER... [--until-zero] [--timeout D] [--socket PATH]\n"
    "\n"
    "Follows the named containers (names, or ids / 12+ character id prefixes) and prints\n"
    "their inbound connection counts as they change.\n"
    "\n"
    "  --until-zero    exit 0 as soon as every named container is known to the tracker\n"
    "                  with 0 inbound connections\n"
    "  --timeout D     give up after D (default 300s): with --until-zero, exit 1 and\n"
    "                  print who still holds connections\n"
    "  --socket PATH   the tracker's stream socket (as for snapshot)\n"
    "\n"
    "It reconnects by itself if the tracker restarts. A container the tracker does not\n"
    "know, or whose count is unknown, is never taken for 0.\n"
    "Exit status: 0 drained (or the timeout passed without --until-zero), 1 timed out\n"
    "with connections left, 2 usage errors, 3 the tracker cannot be reached or refused us.\n";

}  // namespace

std::string count_text(std::int64_t value) { return value < 0 ? "?" : std::to_string(value); }

std::string inbound_ports_text(const StreamContainer& c) {
  if (!c.known) return "unknown";
  std::string text;
  for (const StreamPort& port : c.ports) {
    if (port.inbound == 0) continue;
    text += (text.empty() ? "" : " ") + std::to_string(port.port) + ":" + std::to_string(port.inbound);
  }
  return text.empty() ? "-" : text;
}

std::string app_text(const StreamContainer& c) {
  if (!c.marathon_app_id.empty()) return c.marathon_app_id;
  return c.mesos_task_id.empty() ? "-" : c.mesos_task_id;
}

ClientOptions client_options(const CliArgs& args) {
  ClientOptions options;
  const char* env = std::getenv("SKOPOS_TRACKER_SOCKET");
  options.path = args.option("socket", env != nullptr && env[0] != '\0' ? env : "/run/skopos/tracker.sock");
  const auto split = [&](const std::string& name, std::vector<std::string>& into) {
    const std::string value = args.option(name);
    std::string_view text = value;
    while (!text.empty()) {
      const auto comma = text.find(',');
      if (comma != 0) into.emplace_back(text.substr(0, comma));
      text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    }
  };
  split("name", options.filter.names);
  split("id", options.filter.ids);
  split("app", options.filter.marathon_app_ids);
  split("task", options.filter.mesos_task_ids);
  return options;
}

int snapshot_command(int argc, char** argv) {
  const CliSpec spec{"tracker-cli snapshot", {"json", "help"}, {"socket", "name", "id", "app", "task"}};
  const CliArgs args = CliArgs::parse(spec, argc, argv, 2);
  if (args.flag("help")) {
    std::fputs(kSnapshotHelp, stdout);
    return 0;
  }
  if (!args.positional().empty()) throw FatalError("tracker-cli snapshot: unexpected argument '" + args.positional()[0] + "'");
  auto client = TrackerClient::connect(client_options(args));
  if (!client) {
    std::fprintf(stderr, "tracker-cli snapshot: %s\n", client.error().message().c_str());
    return 3;
  }
  const TrackerClient& c = **client;
  std::string out;
  if (args.flag("json")) {
    JsonWriter json(out);
    json.begin_object()
        .key("source")
        .value(c.source())
        .key("timestamp_ns")
        .value(c.timestamp_ns())
        .key("containers_known")
        .value(c.containers_known());
    json.key("containers").begin_array();
    for (const auto& [id, container] : c.containers()) write_container(json, view_of(container));
    json.end_array().end_object();
    out += '\n';
  } else {
    TextTable table({"CONTAINER", "MODE", "APP", "IN", "OUT", "INBOUND BY PORT"}, {false, false, false, true, true, false});
    for (const auto& [id, container] : c.containers()) {
      table.add_row({container.name, container.network_mode, app_text(container), count_text(container.inbound),
                     container.known && container.outbound < 0 ? "n/a" : count_text(container.outbound),
                     inbound_ports_text(container)});
    }
    out = table.render();
    if (!c.containers_known()) out += "(the tracker cannot reach the Docker API: the container list may be stale)\n";
    out += "source: " + c.source() + "\n";
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

namespace {

// Where one named container stands.
struct Watched {
  std::string wanted;
  const StreamContainer* container = nullptr;

  bool drained() const { return container != nullptr && container->known && container->inbound == 0; }
  std::string describe() const {
    if (container == nullptr) return wanted + ": not known to the tracker";
    if (!container->known) return container->name + ": count unknown";
    return container->name + ": " + std::to_string(container->inbound) + " inbound" +
           (container->inbound > 0 ? " (" + inbound_ports_text(*container) + ")" : "");
  }
};

bool wanted_matches(const std::string& wanted, const StreamContainer& c) {
  return wanted == c.name || wanted == c.id || (wanted.size() >= 12 && c.id.starts_with(wanted));
}

}  // namespace

int watch_command(int argc, char** argv) {
  const CliSpec spec{"tracker-cli watch", {"until-zero", "help"}, {"socket", "timeout"}};
  const CliArgs args = CliArgs::parse(spec, argc, argv, 2);
  if (args.flag("help")) {
    std::fputs(kWatchHelp, stdout);
    return 0;
  }
  if (args.positional().empty()) throw FatalError("tracker-cli watch: name at least one container", "see --help");
  const auto timeout = args.duration("timeout", std::chrono::seconds(300));
  const bool until_zero = args.flag("until-zero");
  ClientOptions options = client_options(args);
  for (const std::string& wanted : args.positional()) {
    options.filter.names.push_back(wanted);
    options.filter.ids.push_back(wanted);
  }
  ReconnectingClient client(options);
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  std::vector<Watched> watched;
  for (const std::string& wanted : args.positional()) watched.push_back(Watched{wanted, nullptr});
  std::string last_line;
  auto last_print = Clock::time_point{};
  bool ever_connected = false;

  for (;;) {
    auto event = client.next(deadline);
    if (!event) {
      if (event.error().code != ETIMEDOUT || !ever_connected) {
        std::fprintf(stderr, "tracker-cli watch: %s\n", event.error().message().c_str());
        if (event.error().code != ETIMEDOUT) return 3;
      }
      break;
    }
    if (*event == ReconnectingClient::Event::kDisconnected) {
      std::printf("tracker connection lost (%s); reconnecting\n", client.last_error().c_str());
      std::fflush(stdout);
      continue;
    }
    if (*event == ReconnectingClient::Event::kSnapshot && ever_connected) {
      std::printf("reconnected to the tracker\n");
    }
    ever_connected = true;
    bool all_drained = true;
    std::string line;
    for (Watched& w : watched) {
      w.container = nullptr;
      for (const auto& [id, container] : client.containers()) {
        if (wanted_matches(w.wanted, container)) w.container = &container;
      }
      all_drained = all_drained && w.drained();
      line += (line.empty() ? "" : "; ") + w.describe();
    }
    const auto now = Clock::now();
    const double elapsed = std::chrono::duration<double>(now - start).count();
    // A line per change, and one every 5 s while nothing changes.
    if (line != last_line || now - last_print >= std::chrono::seconds(5)) {
      std::printf("[%6.1fs] %s\n", elapsed, line.c_str());
      std::fflush(stdout);
      last_line = line;
      last_print = now;
    }
    if (until_zero && all_drained) {
      std::printf("all %zu container(s) have 0 inbound connections\n", watched.size());
      return 0;
    }
  }
  if (!until_zero) return 0;
  std::printf("timed out after %lld s; still holding connections or unknown:\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(timeout).count()));
  for (const Watched& w : watched) {
    if (!w.drained()) std::printf("  %s\n", w.describe().c_str());
  }
  return 1;
}

}  // namespace skopos::tracker::cli
