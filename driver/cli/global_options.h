// The options every `skopos` subcommand shares: configuration file, etcd endpoints,
// prefix and TLS files, this machine's id, JSON output, log level.
#pragma once

#include <memory>
#include <set>
#include <string>

#include "driver/etcd_client.h"
#include "driver/host_identity.h"
#include "driver/lock_service.h"
#include "driver/mesos_master.h"
#include "skopos/cli_args.h"

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

// The help text of the global options.
extern const char* const kGlobalOptionsHelp;

// The global options that take a value: what commands_first() skips with its value
// when it looks for the (sub)command among options given before it.
const std::set<std::string>& global_value_options();

// Moves a command's subcommand (argv[2]) ahead of the options given before it, which may
// be global ones or `own` (the command's options that take a value): `skopos lock
// --etcd-endpoints X status` reads as `skopos lock status --etcd-endpoints X`.
void subcommand_first(int argc, char** argv, std::set<std::string> own);

// A subcommand's spec with the global options added.
CliSpec with_global_options(std::string command, std::set<std::string> flags, std::set<std::string> options);

struct GlobalOptions {
  EtcdOptions etcd;
  std::string prefix = "/skopos";
  std::string machine_id;  // "" = detect
  std::string boot_id_file = HostIdentity::kBootIdPath;
  bool json = false;
};

// Parses argv[first..) with the spec, merges --config (or /etc/skopos/skopos.conf when it
// exists), applies --log-level and reads the global options. Throws FatalError.
GlobalOptions parse_global_options(const CliSpec& spec, CliArgs& args);

// The pieces a lock subcommand needs, built from the options. Throws FatalError when the
// identity cannot be read (that is configuration).
struct LockContext {
  std::unique_ptr<EtcdClient> etcd;
  std::unique_ptr<LockService> locks;
};
LockContext connect_locks(const GlobalOptions& options);

// The value of the environment variable `name`, or `fallback` when unset or empty.
std::string env_or(const char* name, const std::string& fallback);

// `text` as a port; FatalError "<what> '<text>' is not a port (1-65535)" otherwise.
std::uint16_t port_value(const std::string& what, const std::string& text);

// A comma-separated list of CIDRs (parse_cidr); FatalError naming `what` and the bad one.
std::vector<std::string> allow_list(const std::string& what, const std::string& text);

// A comma-separated list of http(s) URLs; FatalError naming `what` and the bad one.
std::vector<HttpEndpoint> parse_url_list(const std::string& text, const std::string& what);

// Basic auth of `system` ("mesos", "marathon"): --SYSTEM-user (else $PREFIX_USER), the
// password from the first line of --SYSTEM-password-file (else $PREFIX_PASSWORD).
void read_basic_auth(const CliArgs& args, const std::string& command, const std::string& system,
                     const std::string& env_prefix, HttpOptions& http);

// The Mesos master options (--mesos-master, credentials, TLS, deadlines) every command
// that talks to Mesos takes, and their reading. `default_master` empty: the masters
// must be given (flag, config or $SKOPOS_MESOS_MASTER), else no endpoints are returned.
extern const std::set<std::string> kMesosOptions;
extern const char* const kMesosOptionsHelp;
MesosMasterOptions mesos_options(const CliArgs& args, const std::string& command,
                                 const std::string& default_master = "http://127.0.0.1:5050");

// The exit code for a lock error. Prints it to stderr and, with --json, as
// {"error":{"kind":"timed-out","message":"..."}} to stdout.
int report(const LockError& error, bool json);

}  // namespace skopos::driver::cli
