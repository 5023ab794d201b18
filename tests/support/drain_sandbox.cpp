#include "drain_sandbox.h"

#include <simdjson.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>

#include "driver/journal.h"
#include "process.h"

namespace skopos::testing {

namespace {

std::uint16_t port_of(const std::string& url) { return static_cast<std::uint16_t>(std::stoi(url.substr(url.rfind(':') + 1))); }

}  // namespace

Result<std::string> DrainSandbox::script(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{source_dir_ + "/tools/drain-sandbox"};
  argv.insert(argv.end(), args.begin(), args.end());
  const ProcessResult result = run_process(argv);
  if (result.exit_code != 0) {
    return unexpected(Error::invalid("tools/drain-sandbox", args.empty() ? "" : args[0],
                                     "exit " + std::to_string(result.exit_code) + ": " + result.err));
  }
  return result.out;
}

Result<std::unique_ptr<DrainSandbox>> DrainSandbox::up(const std::string& source_dir, const std::string& bin_dir, int apps) {
  std::unique_ptr<DrainSandbox> sandbox(new DrainSandbox());
  sandbox->source_dir_ = source_dir;
  sandbox->bin_dir_ = bin_dir;
  sandbox->dir_ = "/tmp/skopos-sandbox-" + std::to_string(::getpid());
  ::setenv("SKOPOS_SANDBOX", sandbox->dir_.c_str(), 1);
  ::setenv("SKOPOS_BIN", bin_dir.c_str(), 1);
  (void)sandbox->script({"down"});  // what an interrupted run of this pid left
  if (auto started = sandbox->script({"up", "--apps", std::to_string(apps)}); !started) {
    (void)sandbox->script({"down"});
    return unexpected(started.error());
  }
  if (auto state = sandbox->read_state(); !state) return unexpected(state.error());
  sandbox->new_boot();
  return sandbox;
}

DrainSandbox::~DrainSandbox() {
  ::setenv("SKOPOS_SANDBOX", dir_.c_str(), 1);
  (void)script({"down"});
}

Result<void> DrainSandbox::reset() {
  if (auto done = script({"reset"}); !done) return unexpected(done.error());
  return read_state();
}

Result<void> DrainSandbox::read_state() {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  const std::string text = read_file(dir_ + "/sandbox.json");
  if (parser.parse(text).get(root) != simdjson::SUCCESS) {
    return unexpected(Error::invalid("read", dir_ + "/sandbox.json", "not JSON"));
  }
  const auto get = [&](const char* key) { return std::string(std::string_view(root[key])); };
  etcd_ = get("etcd");
  mesos_ = get("mesos");
  marathon_ = get("marathon");
  docker_ = get("docker");
  journal_ = get("journal");
  chain_ = get("chain");
  apps_.clear();
  for (auto [name, app] : simdjson::dom::object(root["apps"])) {
    App entry;
    entry.name = std::string(name);
    entry.frontend = std::string(std::string_view(app["frontend"]));
    entry.published = static_cast<std::uint16_t>(std::int64_t(app["published"]));
    entry.container = std::string(std::string_view(app["container"]));
    apps_.push_back(std::move(entry));
  }
  return {};
}

std::vector<std::string> DrainSandbox::skopos(const std::string& command, const std::vector<std::string>& extra) const {
  std::vector<std::string> argv{bin_dir_ + "/skopos", command, "--config", dir_ + "/skopos.conf"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

void DrainSandbox::new_boot() {
  std::random_device random;
  char id[40];
  std::snprintf(id, sizeof id, "%08x-%04x-4%03x-8%03x-%08x%04x", random(), random() & 0xffff, random() & 0xfff,
                random() & 0xfff, random(), random() & 0xffff);
  std::ofstream(dir_ + "/boot_id") << id << "\n";
}

std::string DrainSandbox::journal_phase() const {
  // The last line, read as the driver reads it (without repairing: a driver may be
  // writing it right now, and a torn line is not a phase).
  const std::string text = read_file(journal_);
  const auto end = text.find_last_not_of('\n');
  if (end == std::string::npos) return {};
  const auto start = text.rfind('\n', end);
  auto entry = driver::parse_journal_line(std::string_view(text).substr(start == std::string::npos ? 0 : start + 1,
                                                                         end - (start == std::string::npos ? 0 : start + 1) + 1));
  return entry ? entry->phase : "?";
}

std::string DrainSandbox::mesos_get(const std::string& path) const { return loopback_http(port_of(mesos_), "GET", path); }
std::string DrainSandbox::marathon_get(const std::string& path) const {
  return loopback_http(port_of(marathon_), "GET", path);
}

std::vector<std::string> DrainSandbox::leftovers() const {
  std::vector<std::string> out;
  for (const std::string family : {"iptables", "ip6tables"}) {
    if (run_process({family, "-S", chain_}).exit_code == 0) out.push_back(family + " chain " + chain_);
    const std::string saved = run_process({family + "-save"}).out;
    if (saved.find("-j " + chain_) != std::string::npos) out.push_back("an " + family + " jump to " + chain_);
  }
  const ProcessResult keys =
      run_process({"etcdctl", "--endpoints", etcd_, "get", "--prefix", "/skopos", "--keys-only"});
  std::istringstream lines(keys.out);
  for (std::string key; std::getline(lines, key);) {
    // Heartbeats expire by themselves; a rolling reboot's done records are its history,
    // and its member records say which hosts the tier has.
    if (key.empty() || key.rfind("/skopos/heartbeats/", 0) == 0) continue;
    if (key.rfind("/skopos/rolling-reboot/", 0) == 0 &&
        (key.find("/done/") != std::string::npos || key.find("/hosts/") != std::string::npos)) {
      continue;
    }
    out.push_back("etcd key " + key);
  }
  const std::string schedule = mesos_get("/maintenance/schedule");
  if (schedule != "{}") out.push_back("Mesos schedule " + schedule);
  const std::string status = mesos_get("/maintenance/status");
  if (status != "{}") out.push_back("Mesos maintenance status " + status);
  if (!journal_phase().empty()) out.push_back("journal at phase " + journal_phase());
  return out;
}

}  // namespace skopos::testing
