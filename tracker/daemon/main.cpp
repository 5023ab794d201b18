// skopos-tracker: counts established connections per container and network namespace.
// Wiring only: flags and config file -> DaemonOptions -> TrackerDaemon.
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <vector>

#include "skopos/cli_args.h"
#include "skopos/log.h"
#include "tracker/daemon.h"

namespace {

constexpr const char* kUsage =
    "usage: skopos-tracker [options]\n"
    "\n"
    "Counts established TCP connections per container (Docker Engine API) and per\n"
    "network namespace, inbound and outbound, per port. Runs in the foreground; logs to\n"
    "stderr (journald priorities under systemd); stops cleanly on SIGTERM.\n"
    "\n"
    "options (each may also be set in the --config file as 'name = value'):\n"
    "  --config FILE            read settings from FILE; command-line options win\n"
    "  --source auto|bpf|proc   counting source (default auto: bpf, else /proc)\n"
    "  --docker-socket PATH     Docker Engine API socket (default /var/run/docker.sock;\n"
    "                           'none' disables container discovery)\n"
    "  --docker-timeout D       deadline of each Docker request (default 5s)\n"
    "  --proc-interval D        /proc source re-read period (default 1s)\n"
    "  --rescan-interval D      namespace rescan period (default 5s)\n"
    "  --check-interval D       bpf vs /proc consistency check period (default 30s; 0 off)\n"
    "  --conntrack auto|on|off  conntrack cross-check of DNAT'ed flows (default auto)\n"
    "  --conntrack-resync D     full conntrack dump period (default 30s)\n"
    "  --print-interval D       print a snapshot every D (default 0: off)\n"
    "  --coalesce D             when bpf events stream in faster than one per D, wait D\n"
    "                           after each batch (default 250us; 0: never)\n"
    "  --coalesce-max D         while events keep coming, each wait doubles, up to D\n"
    "                           (default 4ms, or --coalesce if longer): the longest a\n"
    "                           change waits to be seen\n"
    "  --format json|table      snapshot format (default json: one object per line)\n"
    "  --once                   print one snapshot once containers are known, and exit\n"
    "  --stream-socket PATH     the subscribers' socket (default /run/skopos/tracker.sock;\n"
    "                           'none' disables it); see tracker/PROTOCOL.md\n"
    "  --stream-group GROUP     group of the socket (mode 0660); default ours\n"
    "  --stream-allow-uids L    uids allowed to subscribe, comma-separated (default 0 and ours)\n"
    "  --stream-allow-gids L    gids allowed to subscribe (default the socket's group)\n"
    "  --stream-max-clients N   most subscribers at once (default 256)\n"
    "  --heartbeat D            heartbeat period to quiet subscribers (default 1s)\n"
    "  --stream-stall-timeout D drop a subscriber whose message is in flight this long (default 10s)\n"
    "  --metrics-listen A:P     serve Prometheus metrics on this loopback address (e.g.\n"
    "                           127.0.0.1:9464; default off). Any local user can read\n"
    "                           them (container and app names): for trusted hosts only\n"
    "  --log-level LEVEL        error, warning, notice, info (default) or debug\n"
    "\n"
    "Durations: 250us, 500ms, 5s, 2m, 1h (a bare number is seconds).\n"
    "Exit status: 0 after SIGTERM/SIGINT or --once; 1 when the tracker cannot start;\n"
    "2 for a usage or configuration error.\n";

// A comma-separated list of numbers ("0,1000"); FatalError naming the option otherwise.
template <class Number>
std::vector<Number> parse_ids(const skopos::CliArgs& args, const std::string& name) {
  std::vector<Number> ids;
  const std::string list = args.option(name);
  std::string_view text = list;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    Number value{};
    const auto parsed = std::from_chars(item.data(), item.data() + item.size(), value);
    if (parsed.ec != std::errc{} || parsed.ptr != item.data() + item.size() || item.empty()) {
      throw skopos::FatalError("skopos-tracker: --" + name + ": '" + std::string(item) + "' is not a number");
    }
    ids.push_back(value);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
  }
  return ids;
}

skopos::tracker::DaemonOptions parse_options(int argc, char** argv) {
  using skopos::FatalError;
  const skopos::CliSpec spec{
      "skopos-tracker",
      {"once", "help"},
      {"config", "source", "docker-socket", "docker-timeout", "proc-interval", "rescan-interval", "check-interval",
       "print-interval", "format", "log-level", "conntrack", "conntrack-resync", "coalesce", "coalesce-max", "stream-socket", "stream-group", "stream-allow-uids",
       "stream-allow-gids", "stream-max-clients", "heartbeat", "stream-stall-timeout", "metrics-listen"}};
  skopos::CliArgs args = skopos::CliArgs::parse(spec, argc, argv, 1);
  if (args.flag("help")) {
    std::fputs(kUsage, stdout);
    std::exit(0);
  }
  if (!args.positional().empty()) {
    throw FatalError("skopos-tracker: unexpected argument '" + args.positional().front() + "'", "see --help");
  }
  if (args.has("config")) args.merge_config_file(spec, args.option("config"));

  skopos::tracker::DaemonOptions options;
  const std::string source = args.option("source", "auto");
  if (source == "auto") options.source = skopos::tracker::SourceChoice::kAuto;
  else if (source == "bpf") options.source = skopos::tracker::SourceChoice::kBpf;
  else if (source == "proc") options.source = skopos::tracker::SourceChoice::kProc;
  else throw FatalError("skopos-tracker: --source must be auto, bpf or proc, not '" + source + "'");

  const std::string conntrack = args.option("conntrack", "auto");
  if (conntrack == "auto") options.conntrack = skopos::tracker::FeatureChoice::kAuto;
  else if (conntrack == "on") options.conntrack = skopos::tracker::FeatureChoice::kOn;
  else if (conntrack == "off") options.conntrack = skopos::tracker::FeatureChoice::kOff;
  else throw FatalError("skopos-tracker: --conntrack must be auto, on or off, not '" + conntrack + "'");
  options.conntrack_resync = args.duration("conntrack-resync", options.conntrack_resync);

  options.docker_socket = args.option("docker-socket", options.docker_socket);
  if (options.docker_socket == "none") options.docker_socket.clear();
  options.docker_timeout = args.duration("docker-timeout", options.docker_timeout);
  options.proc_interval = args.duration("proc-interval", options.proc_interval);
  options.rescan_interval = args.duration("rescan-interval", options.rescan_interval);
  options.check_interval = args.duration("check-interval", options.check_interval);
  options.print_interval = args.duration("print-interval", options.print_interval);
  options.coalesce = args.duration_us("coalesce", options.coalesce);
  // Unset, the ceiling is never below --coalesce (a configuration that set only
  // --coalesce keeps working); set, it must be at least --coalesce.
  options.coalesce_max = args.has("coalesce-max") ? args.duration_us("coalesce-max", options.coalesce_max)
                                                  : std::max(options.coalesce_max, options.coalesce);
  if (options.coalesce_max < options.coalesce) {
    throw FatalError("skopos-tracker: --coalesce-max (" + std::to_string(options.coalesce_max.count()) +
                     "us) must be at least --coalesce (" + std::to_string(options.coalesce.count()) + "us)");
  }
  for (auto [name, value] : {std::pair{"docker-timeout", options.docker_timeout},
                             std::pair{"proc-interval", options.proc_interval},
                             std::pair{"rescan-interval", options.rescan_interval},
                             std::pair{"conntrack-resync", options.conntrack_resync}}) {
    if (value.count() == 0) throw FatalError(std::string("skopos-tracker: --") + name + " must be more than 0");
  }
  const std::string format = args.option("format", "json");
  if (format != "json" && format != "table") {
    throw FatalError("skopos-tracker: --format must be json or table, not '" + format + "'");
  }
  options.print_json = format == "json";
  options.once = args.flag("once");
  options.metrics_listen = args.option("metrics-listen");
  const std::string stream_socket = args.option("stream-socket", "/run/skopos/tracker.sock");
  if (stream_socket == "none") {
    options.stream.reset();
  } else {
    skopos::tracker::StreamOptions& stream = *options.stream;
    stream.path = stream_socket;
    stream.group = args.option("stream-group");
    stream.allow_uids = parse_ids<uid_t>(args, "stream-allow-uids");
    stream.allow_gids = parse_ids<gid_t>(args, "stream-allow-gids");
    const auto max_clients = parse_ids<std::size_t>(args, "stream-max-clients");
    if (max_clients.size() > 1 || (!max_clients.empty() && max_clients.front() == 0)) {
      throw FatalError("skopos-tracker: --stream-max-clients must be one number above 0");
    }
    if (!max_clients.empty()) stream.max_clients = max_clients.front();
    stream.heartbeat = args.duration("heartbeat", stream.heartbeat);
    stream.stall_timeout = args.duration("stream-stall-timeout", stream.stall_timeout);
    if (stream.heartbeat.count() < 4) throw FatalError("skopos-tracker: --heartbeat must be at least 4ms");
  }
  skopos::LogLevel level = skopos::LogLevel::kInfo;
  if (!skopos::parse_log_level(args.option("log-level", "info"), level)) {
    throw FatalError("skopos-tracker: unknown --log-level '" + args.option("log-level") + "'",
                     "one of error, warning, notice, info, debug");
  }
  skopos::set_log_level(level);
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  skopos::tracker::DaemonOptions options;
  try {
    options = parse_options(argc, argv);
  } catch (const skopos::FatalError& error) {
    std::fprintf(stderr, "%s\n", error.message().c_str());
    if (!error.hint().empty()) std::fprintf(stderr, "hint: %s\n", error.hint().c_str());
    return 2;
  }
  auto daemon = skopos::tracker::TrackerDaemon::create(std::move(options));
  if (!daemon) {
    skopos::log_error("cannot start: " + daemon.error().message());
    return 1;
  }
  return (*daemon)->run();
}
