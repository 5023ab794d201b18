// skopos-tracker: counts established connections per container and network namespace.
// Wiring only: flags and config file (one table, options_table()) -> DaemonOptions ->
// TrackerDaemon.
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <vector>

#include "skopos/build_info.h"
#include "skopos/cli_args.h"
#include "skopos/option_table.h"
#include "skopos/log.h"
#include "tracker/daemon.h"

namespace {

using skopos::FatalError;
using skopos::tracker::DaemonOptions;
using skopos::tracker::FeatureChoice;
using skopos::tracker::SourceChoice;

// Everything the command line and the config file set: the daemon's options, and what
// only main() uses.
struct TrackerConfig {
  DaemonOptions daemon;
  std::string config;  // --config FILE
  std::string log_level = "info";
  bool help = false;
  bool help_markdown = false;
  bool version = false;
  skopos::LogFormat log_format = skopos::LogFormat::kText;
  bool example_config = false;
  bool bpf_unpin = false;  // --bpf-unpin: remove the pinned state and exit
};

constexpr const char* kUsageHead =
    "usage: skopos-tracker [options]\n"
    "\n"
    "Counts established TCP connections per container (Docker Engine API) and per\n"
    "network namespace, inbound and outbound, per port. Runs in the foreground; logs to\n"
    "stderr (journald priorities under systemd); stops cleanly on SIGTERM.\n"
    "\n"
    "options (each may also be set in the --config file as 'name = value'):\n";

constexpr const char* kUsageTail =
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
      throw FatalError("skopos-tracker: --" + name + ": '" + std::string(item) + "' is not a number");
    }
    ids.push_back(value);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
  }
  return ids;
}

// Where the stream's settings go: nowhere once --stream-socket none removed the stream.
template <class Apply>
void on_stream(TrackerConfig& config, Apply apply) {
  if (config.daemon.stream) apply(*config.daemon.stream);
}

// skopos-tracker's options, each declared once (see skopos/option_table.h).
const skopos::OptionTable<TrackerConfig>& options_table() {
  using Table = skopos::OptionTable<TrackerConfig>;
  using Option = Table::Option;
  static const Table table = [] {
    Table t("skopos-tracker");
    t.text("config", "FILE", "read settings from FILE; command-line options win", &TrackerConfig::config);
    t.choice("source", "counting source: auto is bpf, else /proc", [](auto& c) -> auto& { return c.daemon.source; },
             std::vector<std::pair<std::string, SourceChoice>>{
                 {"auto", SourceChoice::kAuto}, {"bpf", SourceChoice::kBpf}, {"proc", SourceChoice::kProc}});
    t.text("bpf-pin-dir", "DIR",
           "keep the bpf maps and program pinned in DIR (on a\nBPF filesystem) between runs: a restart then\n"
           "needs no snapshots; empty: nothing is pinned",
           [](auto& c) -> auto& { return c.daemon.bpf_pin_dir; });
    t.flag("bpf-unpin", "detach and remove what --bpf-pin-dir holds, and\nexit (an uninstall)",
           &TrackerConfig::bpf_unpin);
    t.add(Option{"docker-socket", "PATH", "Docker Engine API socket; 'none' disables\ncontainer discovery",
                 [](const TrackerConfig& c) { return c.daemon.docker_socket; },
                 [](const skopos::CliArgs& args, TrackerConfig& c, const std::string&) {
                   c.daemon.docker_socket = args.option("docker-socket");
                   if (c.daemon.docker_socket == "none") c.daemon.docker_socket.clear();
                 }});
    t.duration("docker-timeout", "deadline of each Docker request",
               [](auto& c) -> auto& { return c.daemon.docker_timeout; });
    t.duration("proc-interval", "/proc source re-read period", [](auto& c) -> auto& { return c.daemon.proc_interval; });
    t.duration("rescan-interval", "namespace rescan period", [](auto& c) -> auto& { return c.daemon.rescan_interval; });
    t.duration("check-interval", "bpf vs /proc consistency check period; 0 off",
               [](auto& c) -> auto& { return c.daemon.check_interval; });
    t.choice("conntrack", "conntrack cross-check of DNAT'ed flows", [](auto& c) -> auto& { return c.daemon.conntrack; },
             std::vector<std::pair<std::string, FeatureChoice>>{
                 {"auto", FeatureChoice::kAuto}, {"on", FeatureChoice::kOn}, {"off", FeatureChoice::kOff}});
    t.duration("conntrack-resync", "full conntrack dump period",
               [](auto& c) -> auto& { return c.daemon.conntrack_resync; });
    t.duration("print-interval", "print a snapshot every D; 0 off", [](auto& c) -> auto& { return c.daemon.print_interval; });
    t.duration("coalesce",
               "when bpf events stream in faster than one per D,\nwait D after each batch; 0: never",
               [](auto& c) -> auto& { return c.daemon.coalesce; });
    t.duration("coalesce-max",
               "while events keep coming, each wait doubles, up\nto D: the longest a change waits to be seen;\n"
               "unset, never below --coalesce",
               [](auto& c) -> auto& { return c.daemon.coalesce_max; });
    t.choice("format", "snapshot format (json: one object per line)", [](auto& c) -> auto& { return c.daemon.print_json; },
             std::vector<std::pair<std::string, bool>>{{"json", true}, {"table", false}});
    t.flag("once", "print one snapshot once containers are known,\nand exit",
           [](auto& c) -> auto& { return c.daemon.once; });
    t.add(Option{"stream-socket", "PATH", "the subscribers' socket (tracker/PROTOCOL.md);\n'none' disables it",
                 [](const TrackerConfig& c) { return c.daemon.stream ? c.daemon.stream->path : std::string("none"); },
                 [](const skopos::CliArgs& args, TrackerConfig& c, const std::string&) {
                   const std::string path = args.option("stream-socket");
                   if (path == "none") c.daemon.stream.reset();
                   on_stream(c, [&](skopos::tracker::StreamOptions& s) { s.path = path; });
                 }});
    t.add(Option{"stream-group", "GROUP", "group of the socket (mode 0660); empty: ours", {},
                 [](const skopos::CliArgs& args, TrackerConfig& c, const std::string&) {
                   on_stream(c, [&](skopos::tracker::StreamOptions& s) { s.group = args.option("stream-group"); });
                 }});
    t.add(Option{"stream-allow-uids", "L", "uids allowed to subscribe, comma-separated;\nempty: 0 and ours", {},
                 [](const skopos::CliArgs& args, TrackerConfig& c, const std::string&) {
                   on_stream(c, [&](skopos::tracker::StreamOptions& s) {
                     s.allow_uids = parse_ids<uid_t>(args, "stream-allow-uids");
                   });
                 }});
    t.add(Option{"stream-allow-gids", "L", "gids allowed to subscribe; empty: the socket's group", {},
                 [](const skopos::CliArgs& args, TrackerConfig& c, const std::string&) {
                   on_stream(c, [&](skopos::tracker::StreamOptions& s) {
                     s.allow_gids = parse_ids<gid_t>(args, "stream-allow-gids");
                   });
                 }});
    t.add(Option{"stream-max-clients", "N", "most subscribers at once",
                 [](const TrackerConfig& c) { return std::to_string(c.daemon.stream->max_clients); },
                 [](const skopos::CliArgs& args, TrackerConfig& c, const std::string&) {
                   const auto max_clients = parse_ids<std::size_t>(args, "stream-max-clients");
                   if (max_clients.empty()) return;  // "name =" in a config file: the default
                   if (max_clients.size() != 1 || max_clients.front() == 0) {
                     throw FatalError("skopos-tracker: --stream-max-clients must be one number above 0");
                   }
                   on_stream(c, [&](skopos::tracker::StreamOptions& s) { s.max_clients = max_clients.front(); });
                 }});
    t.add(Option{"heartbeat", "D", "heartbeat period to quiet subscribers; at least 4ms",
                 [](const TrackerConfig& c) { return skopos::format_duration(c.daemon.stream->heartbeat); },
                 [](const skopos::CliArgs& args, TrackerConfig& c, const std::string&) {
                   on_stream(c, [&](skopos::tracker::StreamOptions& s) { s.heartbeat = args.duration("heartbeat", s.heartbeat); });
                 }});
    t.add(Option{"stream-stall-timeout", "D", "drop a subscriber whose message is in flight\nthis long",
                 [](const TrackerConfig& c) { return skopos::format_duration(c.daemon.stream->stall_timeout); },
                 [](const skopos::CliArgs& args, TrackerConfig& c, const std::string&) {
                   on_stream(c, [&](skopos::tracker::StreamOptions& s) {
                     s.stall_timeout = args.duration("stream-stall-timeout", s.stall_timeout);
                   });
                 }});
    t.text("metrics-listen", "A:P",
           "serve Prometheus metrics on this loopback\naddress (e.g. 127.0.0.1:9464); empty: off. Any\n"
           "local user can read them (container and app\nnames): for trusted hosts only",
           [](auto& c) -> auto& { return c.daemon.metrics_listen; });
    t.text("log-level", "LEVEL", "error, warning, notice, info or debug", &TrackerConfig::log_level);
    t.choice("log-format", "text: a line per event; json: one JSON object per\nline (time, level, program, pid, message), for log\nshippers",
             &TrackerConfig::log_format, std::vector<std::pair<std::string, skopos::LogFormat>>{
                 {"text", skopos::LogFormat::kText}, {"json", skopos::LogFormat::kJson}});
    t.flag("help", "this text", &TrackerConfig::help);
    t.flag("help-markdown", "the options as a Markdown table (the README's)", &TrackerConfig::help_markdown);
    t.flag("version", "the version, source revision and build, then exit", &TrackerConfig::version);
    t.flag("example-config", "a commented --config file with every option at\nits default, then exit",
           &TrackerConfig::example_config);
    return t;
  }();
  return table;
}

// The checks that span options, after every option is read.
void check(const skopos::CliArgs& args, TrackerConfig& config) {
  DaemonOptions& options = config.daemon;
  // Unset, the ceiling is never below --coalesce (a configuration that set only
  // --coalesce keeps working); set, it must be at least --coalesce.
  if (!args.has("coalesce-max")) options.coalesce_max = std::max(options.coalesce_max, options.coalesce);
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
  if (options.stream && options.stream->heartbeat.count() < 4) {
    throw FatalError("skopos-tracker: --heartbeat must be at least 4ms");
  }
  if (config.bpf_unpin && options.bpf_pin_dir.empty()) {
    throw FatalError("skopos-tracker: --bpf-unpin needs --bpf-pin-dir, the directory to clear");
  }
  skopos::LogLevel level = skopos::LogLevel::kInfo;
  if (!skopos::parse_log_level(config.log_level, level)) {
    throw FatalError("skopos-tracker: unknown --log-level '" + config.log_level + "'",
                     "one of error, warning, notice, info, debug");
  }
  skopos::set_log_level(level);
  skopos::set_log_format(config.log_format);
}

TrackerConfig parse_options(int argc, char** argv) {
  const auto& table = options_table();
  const skopos::CliSpec spec = table.spec();
  skopos::CliArgs args = skopos::CliArgs::parse(spec, argc, argv, 1);
  TrackerConfig config;
  if (args.flag("help")) {
    std::fputs(kUsageHead, stdout);
    std::fputs(table.help().c_str(), stdout);
    std::fputs(kUsageTail, stdout);
    std::exit(0);
  }
  if (args.flag("help-markdown")) {
    std::fputs(table.markdown().c_str(), stdout);
    std::exit(0);
  }
  if (args.flag("example-config")) {
    std::fputs(table
                   .config_example(
                       "/etc/skopos/tracker.conf: the settings of `skopos-tracker --config`\n"
                       "(skopos-tracker.service). One 'name = value' per line: the long options of\n"
                       "'skopos-tracker --help' without the dashes; the command line wins over this\n"
                       "file. Every line below is commented out at its default. Generated by\n"
                       "'skopos-tracker --example-config'.",
                       {"config", "bpf-unpin", "once", "help", "help-markdown", "version", "example-config"})
                   .c_str(),
               stdout);
    std::exit(0);
  }
  if (args.flag("version")) {
    std::fputs(skopos::version_text("skopos-tracker").c_str(), stdout);
    std::exit(0);
  }
  if (!args.positional().empty()) {
    throw FatalError("skopos-tracker: unexpected argument '" + args.positional().front() + "'", "see --help");
  }
  if (args.has("config")) args.merge_config_file(spec, args.option("config"));
  table.read(args, config);
  check(args, config);
  return config;
}

}  // namespace

int main(int argc, char** argv) {
  TrackerConfig config;
  try {
    config = parse_options(argc, argv);
  } catch (const skopos::FatalError& error) {
    std::fprintf(stderr, "%s\n", error.message().c_str());
    if (!error.hint().empty()) std::fprintf(stderr, "hint: %s\n", error.hint().c_str());
    return 2;
  }
  if (config.bpf_unpin) {
    if (auto removed = skopos::tracker::remove_bpf_pins(config.daemon.bpf_pin_dir); !removed) {
      skopos::log_error("cannot unpin: " + removed.error().message());
      return 1;
    }
    skopos::log_notice("removed the pinned bpf state in " + config.daemon.bpf_pin_dir);
    return 0;
  }
  auto daemon = skopos::tracker::TrackerDaemon::create(std::move(config.daemon));
  if (!daemon) {
    skopos::log_error("cannot start: " + daemon.error().message());
    return 1;
  }
  return (*daemon)->run();
}
