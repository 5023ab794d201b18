// The options every `skopos` subcommand shares: configuration file, etcd endpoints,
// prefix and TLS files, this machine's id, JSON output, log level.
#pragma once

#include <cstdio>
#include <initializer_list>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "driver/etcd_client.h"
#include "driver/fence.h"
#include "driver/host_identity.h"
#include "driver/lock_service.h"
#include "driver/mesos_master.h"
#include "skopos/cli_args.h"
#include "skopos/function_ref.h"
#include "skopos/log.h"
#include "skopos/option_table.h"

namespace skopos::driver::cli {

// Exit statuses of every skopos subcommand (documented in `skopos --help`).
enum ExitCode : int {
  kExitOk = 0,
  kExitTimedOut = 1,  // waited the whole --timeout (not an error)
  kExitUsage = 2,     // bad flag, argument or configuration
  kExitFailed = 3,    // etcd (or another system) unreachable, unknown outcome, bad data
  kExitRefused = 4,   // the state forbids it: held by another, another token, live holder
  kExitInterrupted = 5,  // stopped (SIGTERM, Ctrl-C) at a safe point
};

// The global options as given (command line, then the config file); global_options()
// checks them into GlobalOptions.
struct GlobalConfig {
  std::string config;  // "": /etc/skopos/skopos.conf when it exists
  std::string etcd_endpoints = "http://127.0.0.1:2379";
  std::string etcd_prefix = "/skopos";
  std::string etcd_cacert;
  std::string etcd_cert;
  std::string etcd_key;
  std::chrono::milliseconds etcd_timeout{std::chrono::seconds(5)};
  std::string machine_id;
  std::string boot_id_file = HostIdentity::kBootIdPath;
  bool json = false;
  LogLevel log_level = LogLevel::kInfo;
  LogFormat log_format = LogFormat::kText;
  bool help = false;
};

// The global options, each declared once (skopos/option_table.h); every command's
// options include them.
const OptionTable<GlobalConfig>& global_options_table();

// The help text of the global options: a heading and the table's lines.
const std::string& global_options_help();

// The global options that take a value: what commands_first() skips with its value
// when it looks for the (sub)command among options given before it.
const std::set<std::string>& global_value_options();

// Moves a command's subcommand (argv[2]) ahead of the options given before it, which may
// be global ones or `own` (the command's options that take a value): `skopos lock
// --etcd-endpoints X status` reads as `skopos lock status --etcd-endpoints X`.
void subcommand_first(int argc, char** argv, std::set<std::string> own);

// `skopos <command> SUB ...`: SUB (argv[2], moved ahead of the options as
// subcommand_first() does) when it is one of `subcommands`. Otherwise nullopt, with the
// usage printed -- to stdout for --help (exit 0), to stderr after "unknown command" or
// when none was given (exit 2) -- and the exit code in `exit_code`.
std::optional<std::string> pick_subcommand(int argc, char** argv, const std::string& command,
                                           const std::set<std::string>& own,
                                           std::initializer_list<std::string_view> subcommands,
                                           void (*print_usage)(std::FILE*), int& exit_code);

struct GlobalOptions {
  EtcdOptions etcd;
  std::string prefix = "/skopos";
  std::string machine_id;  // "" = detect
  std::string boot_id_file = HostIdentity::kBootIdPath;
  bool json = false;
};

// Merges --config (or /etc/skopos/skopos.conf when it exists) into `args`, for a
// command whose options are `spec`.
void merge_config_file(const CliSpec& spec, CliArgs& args);

// Checks the global options, applies --log-level. Throws FatalError naming what is wrong.
GlobalOptions global_options(const GlobalConfig& config, const std::string& command);


// `own` with the global options added (read into Config::global).
template <class Config>
OptionTable<Config> with_global_options(OptionTable<Config> own) {
  own.include(global_options_table(), &Config::global);
  return own;
}

// A command's arguments and its checked global options.
struct ParsedCommand {
  CliArgs args;
  GlobalOptions global;
};

// Parses argv[first..) (2 for a command, 3 for a subcommand) with `table` -- the
// command's options and the global ones --, merges the config file and reads every
// option into `config` (seeded beforehand with what the environment says), then checks
// the global options. nullopt when --help was asked: `print_help` has printed it.
// Throws FatalError naming what is wrong.
template <class Config>
std::optional<ParsedCommand> parse_command(const OptionTable<Config>& table, int argc, char** argv, Config& config,
                                           int first, const std::string& command, FunctionRef<void()> print_help) {
  CliSpec spec = table.spec();
  spec.command = command;  // one table may serve several commands (drain, undrain, booster)
  CliArgs args = CliArgs::parse(spec, argc, argv, first);
  merge_config_file(spec, args);
  table.read(args, config, command);
  if (config.global.help) {
    print_help();
    return std::nullopt;
  }
  GlobalOptions global = global_options(config.global, command);
  return ParsedCommand{std::move(args), std::move(global)};
}

// The pieces a lock subcommand needs, built from the options. Throws FatalError when the
// identity cannot be read (that is configuration).
struct LockContext {
  std::unique_ptr<EtcdClient> etcd;
  std::unique_ptr<LockService> locks;
};
// `waiter_lease`: see LockServiceOptions (a drain's heartbeat publishes it).
LockContext connect_locks(const GlobalOptions& options,
                          std::shared_ptr<const std::atomic<std::int64_t>> waiter_lease = nullptr);

// The value of the environment variable `name`, or `fallback` when unset or empty.
std::string env_or(const char* name, const std::string& fallback);

// `text` as a port; FatalError "<what> '<text>' is not a port (1-65535)" otherwise.
std::uint16_t port_value(const std::string& what, const std::string& text);

// A comma-separated list of CIDRs (parse_cidr); FatalError naming `what` and the bad one.
std::vector<std::string> allow_list(const std::string& what, const std::string& text);

// A comma-separated list of http(s) URLs; FatalError naming `what` and the bad one.
std::vector<HttpEndpoint> parse_url_list(const std::string& text, const std::string& what);

// The Mesos master options (--mesos-master, credentials, TLS, deadlines) of every command
// that talks to Mesos, as given.
struct MesosConfig {
  std::string masters;  // "": $SKOPOS_MESOS_MASTER, else the command's default
  std::string user;     // "": $SKOPOS_MESOS_USER
  std::string password_file;  // none: $SKOPOS_MESOS_PASSWORD
  std::string cacert;
  std::string cert;
  std::string key;
  std::chrono::milliseconds timeout{std::chrono::seconds(10)};
  std::chrono::milliseconds leader_wait{std::chrono::seconds(30)};
};
const OptionTable<MesosConfig>& mesos_options_table();
// Checks them, with the environment's values, into the client's options. `default_master`
// empty: no endpoints unless given (Mesos is then not told).
MesosMasterOptions mesos_master_options(const MesosConfig& config, const std::string& command,
                                        const std::string& default_master);

// The fence's options (`skopos fence`, and every drain command, whose names are
// prefixed "fence-"), as given.
struct FenceConfig {
  std::string chain = "SKOPOS";
  std::optional<bool> ipv6;  // unset: where the kernel has IPv6
  std::string allow;
  std::string health_check_port;
  std::string health_check_match;

  // Checked into the fence's options; FatalError naming the option (`prefix` + name) and
  // the bad value.
  FenceOptions options(const std::string& command, const std::string& prefix) const;
  bool ipv6_on() const;
};
// `prefix` "" for `skopos fence` (--chain, --ipv6, --allow), "fence-" for the drain
// commands (--fence-chain, ...); the health check options are named alike in both.
OptionTable<FenceConfig> fence_options_table(const std::string& prefix);

// Basic auth of `system` ("mesos", "marathon"): `user` (else $PREFIX_USER), the
// password from the first line of `password_file` (else $PREFIX_PASSWORD). FatalError
// when the file cannot be read.
void basic_auth(const std::string& user, const std::string& password_file, const std::string& command,
                const std::string& system, const std::string& env_prefix, HttpOptions& http);

// The exit code for a lock error. Prints it to stderr and, with --json, as
// {"error":{"kind":"timed-out","message":"..."}} to stdout.
int report(const LockError& error, bool json);

}  // namespace skopos::driver::cli
