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
#include "cli_options.h"
#include "stream_common.h"
#include "tracker/stream_client.h"

namespace skopos::tracker::cli {

namespace {

constexpr const char* kSnapshotHelp =
    "usage: tracker-cli snapshot [--json] [--socket PATH] [--name N,...] [--id ID,...]\n"
    "                            [--app APP,...] [--task TASK,...]\n"
    "\n"
    "One snapshot of the running tracker's counts: per container, inbound and outbound\n"
    "established connections and the ports that carry them (--json: the stream's\n"
    "container objects).\n"
    "\n"
    "%s"
    "\n"
    "Exit status: 0, 2 for usage errors, 3 when the tracker cannot be reached.\n";

const std::vector<std::string_view> kSnapshotOptions = {"json", "socket", "name", "id", "app", "task"};

constexpr const char* kWatchHelp =
    "usage: tracker-cli watch CONTAINER... [--until-zero] [--timeout D] [--socket PATH]\n"
    "\n"
    "Follows the named containers (names, or ids / 12+ character id prefixes) and prints\n"
    "their inbound connection counts as they change.\n"
    "\n"
    "%s"
    "\n"
    "It reconnects by itself if the tracker restarts. A container the tracker does not\n"
    "know, or whose count is unknown, is never taken for 0.\n"
    "Exit status: 0 drained (or the timeout passed without --until-zero), 1 timed out\n"
    "with connections left, 2 usage errors, 3 the tracker cannot be reached or refused us.\n";

const std::vector<std::string_view> kWatchOptions = {"until-zero", "timeout", "socket"};

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

int snapshot_command(int argc, char** argv) {
  const auto command_line = parse_command_line("tracker-cli snapshot", kSnapshotOptions, kSnapshotHelp, argc, argv);
  if (!command_line) return 0;
  if (!command_line->positional.empty()) throw FatalError("tracker-cli snapshot: unexpected argument '" + command_line->positional[0] + "'");
  auto client = TrackerClient::connect(client_options(command_line->config));
  if (!client) {
    std::fprintf(stderr, "tracker-cli snapshot: %s\n", client.error().message().c_str());
    return 3;
  }
  const TrackerClient& c = **client;
  std::string out;
  if (command_line->config.json) {
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
  const auto command_line = parse_command_line("tracker-cli watch", kWatchOptions, kWatchHelp, argc, argv);
  if (!command_line) return 0;
  if (command_line->positional.empty()) throw FatalError("tracker-cli watch: name at least one container", "see --help");
  const auto timeout = command_line->config.timeout;
  const bool until_zero = command_line->config.until_zero;
  ClientOptions options = client_options(command_line->config);
  for (const std::string& wanted : command_line->positional) {
    options.filter.names.push_back(wanted);
    options.filter.ids.push_back(wanted);
  }
  ReconnectingClient client(options);
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  std::vector<Watched> watched;
  for (const std::string& wanted : command_line->positional) watched.push_back(Watched{wanted, nullptr});
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
