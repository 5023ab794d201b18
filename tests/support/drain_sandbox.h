// tools/drain-sandbox as a test fixture: the two-host cluster in miniature (podman
// containers on this host behind haproxy, replicas in a namespace of their own, etcd,
// skopos-tracker, mesos-sim, marathon-sim), the `skopos` command line that drains it,
// and the checks that nothing was left behind. Needs root; one sandbox at a time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "skopos/result.h"

namespace skopos::testing {

class DrainSandbox {
 public:
  struct App {
    std::string name;       // "web", "api", ...
    std::string frontend;   // haproxy's 127.0.0.1:port for it
    std::uint16_t published = 0;  // the container's published port on this host
    std::string container;  // its name, mesos-<uuid>
  };

  // `source_dir`: the repository (tools/drain-sandbox); `bin_dir`: our binaries.
  static Result<std::unique_ptr<DrainSandbox>> up(const std::string& source_dir, const std::string& bin_dir, int apps = 2);
  ~DrainSandbox();
  DrainSandbox(const DrainSandbox&) = delete;
  DrainSandbox& operator=(const DrainSandbox&) = delete;

  // Host A as it was: containers re-created, simulators fresh, etcd's keys and the
  // journal gone.
  Result<void> reset();

  // argv of `skopos COMMAND` (drain, undrain, booster, agent) with the sandbox's
  // options (its skopos.conf), then `extra` (the command line wins).
  std::vector<std::string> skopos(const std::string& command, const std::vector<std::string>& extra = {}) const;
  // A new boot id in the file the drain reads it from (a simulated reboot).
  void new_boot();
  // The phase of the journal's last line, "" when no drain is in progress.
  std::string journal_phase() const;
  // What a drain left behind: the fence chain, etcd keys (locks, host lock; not
  // heartbeats, which expire), Mesos maintenance, a journal in progress. Empty: nothing.
  std::vector<std::string> leftovers() const;
  // GET `path` of the Mesos or Marathon simulator.
  std::string mesos_get(const std::string& path) const;
  std::string marathon_get(const std::string& path) const;

  const std::vector<App>& apps() const { return apps_; }
  const std::string& dir() const { return dir_; }
  const std::string& etcd() const { return etcd_; }
  const std::string& mesos() const { return mesos_; }
  const std::string& marathon() const { return marathon_; }
  const std::string& journal() const { return journal_; }
  const std::string& docker() const { return docker_; }
  const std::string& chain() const { return chain_; }

 private:
  DrainSandbox() = default;
  Result<void> read_state();
  Result<std::string> script(const std::vector<std::string>& args) const;

  std::string source_dir_;
  std::string bin_dir_;
  std::string dir_;
  std::string etcd_, mesos_, marathon_, docker_, journal_, chain_;
  std::vector<App> apps_;
};

}  // namespace skopos::testing
