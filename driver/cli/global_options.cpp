#include "global_options.h"

#include <unistd.h>

#include <cstdio>

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
    "  --json                  machine-readable output\n"
    "  --log-level L           error, warning, notice, info (default), debug\n";

namespace {

constexpr const char* kDefaultConfig = "/etc/skopos/skopos.conf";

}  // namespace

CliSpec with_global_options(std::string command, std::set<std::string> flags, std::set<std::string> options) {
  flags.insert({"json", "help"});
  options.insert({"config", "etcd-endpoints", "etcd-prefix", "etcd-cacert", "etcd-cert", "etcd-key", "etcd-timeout",
                  "machine-id", "log-level"});
  return CliSpec{std::move(command), std::move(flags), std::move(options)};
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
  options.prefix = args.option("etcd-prefix", "/skopos");
  if (options.prefix.empty() || options.prefix.front() != '/') {
    throw FatalError(spec.command + ": --etcd-prefix '" + options.prefix + "' must start with '/'");
  }
  const std::string endpoints = args.option("etcd-endpoints", "http://127.0.0.1:2379");
  std::size_t start = 0;
  while (start <= endpoints.size()) {
    const std::size_t comma = std::min(endpoints.find(',', start), endpoints.size());
    const std::string one = endpoints.substr(start, comma - start);
    auto endpoint = HttpEndpoint::parse(one);
    if (!endpoint || endpoint->scheme == HttpEndpoint::Scheme::kUnix) {
      throw FatalError(spec.command + ": --etcd-endpoints: '" + one + "' is not an http:// or https:// URL",
                       "give URLs such as http://10.0.0.5:2379,http://10.0.0.6:2379");
    }
    options.etcd.http.endpoints.push_back(std::move(*endpoint));
    start = comma + 1;
  }
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
  auto identity = HostIdentity::detect(options.machine_id);
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
    case LockError::Kind::kEtcd:
    case LockError::Kind::kBadData: return kExitFailed;
  }
  return kExitFailed;
}

}  // namespace skopos::driver::cli
