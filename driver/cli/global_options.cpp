#include "global_options.h"

#include "commands.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "driver/fence.h"
#include "skopos/enum_names.h"
#include "skopos/json_writer.h"
#include "skopos/log.h"
#include "skopos/result.h"

namespace skopos::driver::cli {

namespace {

constexpr const char* kDefaultConfig = "/etc/skopos/skopos.conf";

}  // namespace

const OptionTable<GlobalConfig>& global_options_table() {
  static const OptionTable<GlobalConfig> table = [] {
    OptionTable<GlobalConfig> t("skopos");
    t.text("config", "FILE", "settings file; command-line options win (default\n" + std::string(kDefaultConfig) +
                                 " when it exists)",
           &GlobalConfig::config);
    t.text("etcd-endpoints", "URLS", "comma-separated etcd client URLs; https:// uses TLS",
           &GlobalConfig::etcd_endpoints);
    t.text("etcd-prefix", "P", "key prefix of every skopos key", &GlobalConfig::etcd_prefix);
    t.text("etcd-cacert", "FILE", "CA bundle that signs etcd's certificate", &GlobalConfig::etcd_cacert);
    t.text("etcd-cert", "FILE", "client certificate, with --etcd-key", &GlobalConfig::etcd_cert);
    t.text("etcd-key", "FILE", "the client certificate's key", &GlobalConfig::etcd_key);
    t.duration("etcd-timeout", "deadline of each etcd request", &GlobalConfig::etcd_timeout);
    t.text("machine-id", "ID", "this machine (default $MACHINEID, else /etc/machine-id)", &GlobalConfig::machine_id);
    t.text("boot-id-file", "FILE", "where this boot's id is read", &GlobalConfig::boot_id_file);
    t.flag("json", "machine-readable output", &GlobalConfig::json);
    t.choice("log-level", "the least important lines logged", &GlobalConfig::log_level, enum_choices(kLogLevelNames));
    t.choice("log-format", "text: a line per event; json: one JSON object per\nline (time, level, program, pid, message), for log\nshippers", &GlobalConfig::log_format,
             enum_choices(kLogFormatNames));
    t.flag("help", "this help", &GlobalConfig::help);
    return t;
  }();
  return table;
}

const std::string& global_options_help() {
  static const std::string help =
      "global options (each may also be set in the config file as 'name = value'):\n" + global_options_table().help();
  return help;
}

const std::set<std::string>& global_value_options() {
  static const std::set<std::string> options = global_options_table().spec().options;
  return options;
}

void subcommand_first(int argc, char** argv, std::set<std::string> own) {
  own.insert(global_value_options().begin(), global_value_options().end());
  commands_first(argc, argv, 2, 1, own);
}

std::optional<std::string> pick_subcommand(int argc, char** argv, const std::string& command,
                                           const std::set<std::string>& own,
                                           std::initializer_list<std::string_view> subcommands,
                                           void (*print_usage)(std::FILE*), int& exit_code) {
  subcommand_first(argc, argv, own);
  if (argc < 3 || std::string_view(argv[2]) == "--help" || std::string_view(argv[2]) == "-h") {
    print_usage(argc < 3 ? stderr : stdout);
    exit_code = argc < 3 ? kExitUsage : kExitOk;
    return std::nullopt;
  }
  const std::string_view sub = argv[2];
  if (std::find(subcommands.begin(), subcommands.end(), sub) == subcommands.end()) {
    std::fprintf(stderr, "skopos %s: unknown command '%s'\n\n", command.c_str(), argv[2]);
    print_usage(stderr);
    exit_code = kExitUsage;
    return std::nullopt;
  }
  return std::string(sub);
}

void merge_config_file(const CliSpec& spec, CliArgs& args) {
  // The file is every command's, and the agent's too (skopos-agent.service reads it; the
  // installed example lists the agent's settings). Those are the drain's and the agent's
  // own: `skopos agent`, `drain`, `undrain` and `booster` take the ones they declare;
  // every other command takes only those that mean the same everywhere (etcd, identity,
  // logging, Mesos, the balancer's health check) and ignores the rest -- also a name it
  // declares with another meaning (lock status's metrics-file, maintenance's lock-wait,
  // rolling-reboot's tier and stuck-after). A name no command knows is still an error.
  static const std::set<std::string> owners = {"skopos agent", "skopos drain", "skopos undrain", "skopos booster"};
  static const std::set<std::string> same_everywhere = [] {
    std::set<std::string> names = {"health-check-port", "health-check-match"};
    for (const CliSpec& table : {global_options_table().spec(), mesos_options_table().spec()}) {
      names.insert(table.options.begin(), table.options.end());
      names.insert(table.flags.begin(), table.flags.end());
    }
    return names;
  }();
  const bool owner = owners.count(spec.command) > 0;
  std::set<std::string> skip;
  for (const std::string& name : agent_setting_names()) {
    const bool takes = spec.flags.count(name) > 0 || spec.options.count(name) > 0;
    if (owner ? !takes : same_everywhere.count(name) == 0) skip.insert(name);
  }
  if (args.has("config")) {
    args.merge_config_file(spec, args.option("config"), skip);
  } else if (::access(kDefaultConfig, F_OK) == 0) {
    args.merge_config_file(spec, kDefaultConfig, skip);
  }
}

GlobalOptions global_options(const GlobalConfig& config, const std::string& command) {
  set_log_level(config.log_level);
  set_log_format(config.log_format);
  GlobalOptions options;
  options.json = config.json;
  options.machine_id = config.machine_id;
  options.boot_id_file = config.boot_id_file;
  options.prefix = config.etcd_prefix;
  if (options.prefix.empty() || options.prefix.front() != '/') {
    throw FatalError(command + ": --etcd-prefix '" + options.prefix + "' must start with '/'");
  }
  options.etcd.http.endpoints = parse_url_list(config.etcd_endpoints, command + ": --etcd-endpoints");
  options.etcd.http.tls.ca_file = config.etcd_cacert;
  options.etcd.http.tls.cert_file = config.etcd_cert;
  options.etcd.http.tls.key_file = config.etcd_key;
  if (options.etcd.http.tls.cert_file.empty() != options.etcd.http.tls.key_file.empty()) {
    throw FatalError(command + ": --etcd-cert and --etcd-key go together");
  }
  options.etcd.http.timeout = config.etcd_timeout;
  if (options.etcd.http.timeout.count() <= 0) throw FatalError(command + ": --etcd-timeout must be positive");
  return options;
}


LockContext connect_locks(const GlobalOptions& options, std::shared_ptr<const std::atomic<std::int64_t>> waiter_lease) {
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
  lock_options.waiter_lease = std::move(waiter_lease);
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

OptionTable<FenceConfig> fence_options_table(const std::string& prefix) {
  using C = FenceConfig;
  OptionTable<C> t("skopos");
  t.text(prefix + "chain", "NAME", "the iptables chain (1-28 characters)", &C::chain);
  t.choice(prefix + "ipv6",
           "fence IPv6 too, with ip6tables (default on where the kernel\nhas IPv6); an ip6tables failure fails the step",
           &C::ipv6, std::vector<std::pair<std::string, std::optional<bool>>>{{"on", true}, {"off", false}});
  t.text(prefix + "allow", "CIDR,...",
         "sources whose new connections pass the fence: the hosts\nof health checkers that must keep seeing a fenced "
         "task\nalive (Marathon's own HTTP/TCP checks come from the\nMarathon hosts; failing, they make Marathon kill "
         "it)",
         &C::allow);
  t.text("health-check-port", "P",
         "with --health-check-match: also reset the cloud balancer's\nhealth check; off by default: an autoscaler may "
         "terminate\na host whose health check fails, even one holding the\nreboot lock",
         &C::health_check_port);
  t.text("health-check-match", "TEXT", "what the balancer's health check request contains", &C::health_check_match);
  return t;
}

FenceOptions FenceConfig::options(const std::string& command, const std::string& prefix) const {
  FenceOptions out;
  out.chain = chain;
  if (out.chain.empty() || out.chain.size() > 28) throw FatalError(command + ": --" + prefix + "chain must be 1-28 characters");
  if (health_check_port.empty() != health_check_match.empty()) {
    throw FatalError(command + ": --health-check-port and --health-check-match go together");
  }
  if (!health_check_port.empty()) {
    out.health_check = HealthCheckFence{port_value(command + ": --health-check-port", health_check_port), health_check_match};
  }
  out.allow_sources = allow_list(command + ": --" + prefix + "allow", allow);
  return out;
}

bool FenceConfig::ipv6_on() const { return ipv6.value_or(kernel_has_ipv6()); }

void basic_auth(const std::string& user, const std::string& password_file, const std::string& command,
                const std::string& system, const std::string& env_prefix, HttpOptions& http) {
  http.basic_user = user.empty() ? env_or((env_prefix + "_USER").c_str(), "") : user;
  http.basic_password = env_or((env_prefix + "_PASSWORD").c_str(), "");
  if (!password_file.empty()) {
    std::ifstream in(password_file);
    if (!in) throw FatalError(command + ": cannot read --" + system + "-password-file '" + password_file + "'");
    std::getline(in, http.basic_password);
  }
}

const OptionTable<MesosConfig>& mesos_options_table() {
  static const OptionTable<MesosConfig> table = [] {
    OptionTable<MesosConfig> t("skopos");
    t.text("mesos-master", "URLS",
           "comma-separated master URLs, any of them; the leader is\nfound by following redirects "
           "($SKOPOS_MESOS_MASTER)",
           &MesosConfig::masters);
    t.text("mesos-user", "U", "basic auth user ($SKOPOS_MESOS_USER)", &MesosConfig::user);
    t.text("mesos-password-file", "F",
           "basic auth password, first line of F\n($SKOPOS_MESOS_PASSWORD holds it directly)",
           &MesosConfig::password_file);
    t.text("mesos-cacert", "FILE", "CA bundle that signs the masters' certificates", &MesosConfig::cacert);
    t.text("mesos-cert", "FILE", "client certificate, with --mesos-key", &MesosConfig::cert);
    t.text("mesos-key", "FILE", "the client certificate's key", &MesosConfig::key);
    t.duration("mesos-timeout", "deadline of each Mesos request", &MesosConfig::timeout);
    t.duration("leader-wait", "how long to wait for a leader to be elected", &MesosConfig::leader_wait);
    return t;
  }();
  return table;
}

MesosMasterOptions mesos_master_options(const MesosConfig& config, const std::string& command,
                                        const std::string& default_master) {
  MesosMasterOptions options;
  const std::string masters = config.masters.empty() ? env_or("SKOPOS_MESOS_MASTER", default_master) : config.masters;
  if (!masters.empty()) options.http.endpoints = parse_url_list(masters, command + ": --mesos-master");
  basic_auth(config.user, config.password_file, command, "mesos", "SKOPOS_MESOS", options.http);
  options.http.tls.ca_file = config.cacert;
  options.http.tls.cert_file = config.cert;
  options.http.tls.key_file = config.key;
  options.http.timeout = config.timeout;
  options.leader_wait = config.leader_wait;
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
