#include "global_options.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "driver/fence.h"
#include "skopos/json_writer.h"
#include "skopos/log.h"
#include "skopos/result.h"

namespace skopos::driver::cli {

const char* const kGlobalOptionsHelp =
    "global options (each may also be set in the config file as 'name = value'):\n"
    "  --config FILE           settings file; command-line options win (default\n"
    "                          /etc/skopos/skopos.conf when it exists)\n"
    "  --etcd-endpoints URLS   comma-separated etcd client URLs (default\n"
    "                          http://127.0.0.1:2379); https:// uses TLS\n"
    "  --etcd-prefix P         key prefix of every skopos key (default /skopos)\n"
    "  --etcd-cacert FILE      CA bundle that signs etcd's certificate\n"
    "  --etcd-cert FILE        client certificate, with --etcd-key FILE\n"
    "  --etcd-timeout D        deadline of each etcd request (default 5s)\n"
    "  --machine-id ID         this machine (default $MACHINEID, else /etc/machine-id)\n"
    "  --boot-id-file FILE     where this boot's id is read (default\n"
    "                          /proc/sys/kernel/random/boot_id)\n"
    "  --json                  machine-readable output\n"
    "  --log-level L           error, warning, notice, info (default), debug\n";

namespace {

constexpr const char* kDefaultConfig = "/etc/skopos/skopos.conf";

}  // namespace

CliSpec with_global_options(std::string command, std::set<std::string> flags, std::set<std::string> options) {
  flags.insert({"json", "help"});
  options.insert({"config", "etcd-endpoints", "etcd-prefix", "etcd-cacert", "etcd-cert", "etcd-key", "etcd-timeout",
                  "machine-id", "boot-id-file", "log-level"});
  return CliSpec{std::move(command), std::move(flags), std::move(options)};
}

const std::set<std::string>& global_value_options() {
  static const std::set<std::string> options = with_global_options("", {}, {}).options;
  return options;
}

void subcommand_first(int argc, char** argv, std::set<std::string> own) {
  own.insert(global_value_options().begin(), global_value_options().end());
  commands_first(argc, argv, 2, 1, own);
}

GlobalOptions parse_global_options(const CliSpec& spec, CliArgs& args) {
  if (args.has("config")) {
    args.merge_config_file(spec, args.option("config"));
  } else if (::access(kDefaultConfig, F_OK) == 0) {
    args.merge_config_file(spec, kDefaultConfig);
  }
  LogLevel level = LogLevel::kInfo;
  if (!parse_log_level(args.option("log-level", "info"), level)) {
    throw FatalError(spec.command + ": --log-level '" + args.option("log-level") + "' is not a level",
                     "use error, warning, notice, info or debug");
  }
  set_log_level(level);

  GlobalOptions options;
  options.json = args.flag("json");
  options.machine_id = args.option("machine-id");
  options.boot_id_file = args.option("boot-id-file", HostIdentity::kBootIdPath);
  options.prefix = args.option("etcd-prefix", "/skopos");
  if (options.prefix.empty() || options.prefix.front() != '/') {
    throw FatalError(spec.command + ": --etcd-prefix '" + options.prefix + "' must start with '/'");
  }
  options.etcd.http.endpoints =
      parse_url_list(args.option("etcd-endpoints", "http://127.0.0.1:2379"), spec.command + ": --etcd-endpoints");
  options.etcd.http.tls.ca_file = args.option("etcd-cacert");
  options.etcd.http.tls.cert_file = args.option("etcd-cert");
  options.etcd.http.tls.key_file = args.option("etcd-key");
  if (options.etcd.http.tls.cert_file.empty() != options.etcd.http.tls.key_file.empty()) {
    throw FatalError(spec.command + ": --etcd-cert and --etcd-key go together");
  }
  options.etcd.http.timeout = args.duration("etcd-timeout", std::chrono::seconds(5));
  if (options.etcd.http.timeout.count() <= 0) throw FatalError(spec.command + ": --etcd-timeout must be positive");
  return options;
}

LockContext connect_locks(const GlobalOptions& options) {
  auto identity = HostIdentity::detect(options.machine_id, options.boot_id_file);
  if (!identity) {
    throw FatalError("skopos: cannot tell which machine this is: " + identity.error().message(),
                     "pass --machine-id ID or set MACHINEID");
  }
  auto etcd = EtcdClient::create(options.etcd);
  if (!etcd) throw FatalError("skopos: etcd client: " + etcd.error().message);
  LockContext context;
  context.etcd = std::move(*etcd);
  LockServiceOptions lock_options;
  lock_options.prefix = options.prefix;
  context.locks = std::make_unique<LockService>(*context.etcd, std::move(*identity), lock_options);
  return context;
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

std::uint16_t port_value(const std::string& what, const std::string& text) {
  const auto port = parse_port(text);
  if (!port) throw FatalError(what + " '" + text + "' is not a port (1-65535)");
  return *port;
}

std::vector<std::string> allow_list(const std::string& what, const std::string& text) {
  std::vector<std::string> out;
  for (const std::string& item : split_list(text)) {
    const auto cidr = parse_cidr(item);
    if (!cidr) throw FatalError(what + " '" + item + "' is not an address or CIDR (e.g. 10.0.0.7, 10.0.0.0/24, fd00::/64)");
    out.push_back(*cidr);
  }
  return out;
}

std::vector<HttpEndpoint> parse_url_list(const std::string& text, const std::string& what) {
  std::vector<HttpEndpoint> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    const std::string one = text.substr(start, comma - start);
    auto endpoint = HttpEndpoint::parse(one);
    if (!endpoint || endpoint->scheme == HttpEndpoint::Scheme::kUnix) {
      throw FatalError(what + ": '" + one + "' is not an http:// or https:// URL",
                       "give comma-separated URLs such as http://10.0.0.5:2379,http://10.0.0.6:2379");
    }
    out.push_back(std::move(*endpoint));
    start = comma + 1;
  }
  return out;
}

void read_basic_auth(const CliArgs& args, const std::string& command, const std::string& system,
                     const std::string& env_prefix, HttpOptions& http) {
  http.basic_user = args.option(system + "-user", env_or((env_prefix + "_USER").c_str(), ""));
  http.basic_password = env_or((env_prefix + "_PASSWORD").c_str(), "");
  const std::string file_option = system + "-password-file";
  if (args.has(file_option)) {
    std::ifstream in(args.option(file_option));
    if (!in) throw FatalError(command + ": cannot read --" + file_option + " '" + args.option(file_option) + "'");
    std::getline(in, http.basic_password);
  }
}

const std::set<std::string> kMesosOptions = {"mesos-master", "mesos-user", "mesos-password-file", "mesos-cacert",
                                             "mesos-cert",   "mesos-key",  "mesos-timeout",       "leader-wait"};

const char* const kMesosOptionsHelp =
    "Mesos options (also in the config file, or from the environment as noted):\n"
    "  --mesos-master URLS       comma-separated master URLs, any of them; the leader is\n"
    "                            found by following redirects ($SKOPOS_MESOS_MASTER)\n"
    "  --mesos-user U            basic auth user ($SKOPOS_MESOS_USER)\n"
    "  --mesos-password-file F   basic auth password, first line of F\n"
    "                            ($SKOPOS_MESOS_PASSWORD holds it directly)\n"
    "  --mesos-cacert FILE, --mesos-cert FILE, --mesos-key FILE   TLS\n"
    "  --mesos-timeout D         deadline per request (default 10s)\n"
    "  --leader-wait D           how long to wait for a leader to be elected (default 30s)\n";

MesosMasterOptions mesos_options(const CliArgs& args, const std::string& command, const std::string& default_master) {
  MesosMasterOptions options;
  const std::string masters = args.option("mesos-master", env_or("SKOPOS_MESOS_MASTER", default_master));
  if (!masters.empty()) options.http.endpoints = parse_url_list(masters, command + ": --mesos-master");
  read_basic_auth(args, command, "mesos", "SKOPOS_MESOS", options.http);
  options.http.tls.ca_file = args.option("mesos-cacert");
  options.http.tls.cert_file = args.option("mesos-cert");
  options.http.tls.key_file = args.option("mesos-key");
  options.http.timeout = args.duration("mesos-timeout", std::chrono::seconds(10));
  options.leader_wait = args.duration("leader-wait", std::chrono::seconds(30));
  return options;
}

int report(const LockError& error, bool json) {
  std::fprintf(stderr, "skopos: %s\n", error.message.c_str());
  if (json) {
    std::string out;
    JsonWriter writer(out);
    writer.begin_object().key("error").begin_object().key("kind").value(lock_error_kind_name(error.kind));
    writer.key("message").value(error.message).end_object().end_object();
    std::printf("%s\n", out.c_str());
  }
  switch (error.kind) {
    case LockError::Kind::kTimedOut: return kExitTimedOut;
    case LockError::Kind::kConflict: return kExitRefused;
    case LockError::Kind::kInvalid: return kExitUsage;
    case LockError::Kind::kInterrupted: return kExitInterrupted;
    case LockError::Kind::kEtcd:
    case LockError::Kind::kBadData: return kExitFailed;
  }
  return kExitFailed;
}

}  // namespace skopos::driver::cli
