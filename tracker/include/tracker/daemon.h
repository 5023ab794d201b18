// TrackerDaemon: skopos-tracker's event loop (Boost.Asio, one thread). It wires the
// Tracker to its inputs -- the BPF ring buffer's descriptor, timers for /proc reads,
// namespace rescans and consistency checks, container updates posted by
// ContainerDiscovery -- and stops cleanly on SIGTERM or SIGINT: discovery joined, BPF
// programs detached, nothing left pinned.
#pragma once

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include <optional>

#include "skopos/result.h"
#include "tracker/stream_server.h"
#include "tracker/metrics.h"
#include "tracker/tracker.h"

namespace skopos::tracker {

enum class SourceChoice : std::uint8_t { kAuto, kBpf, kProc };
// An optional input: kAuto uses it when it can be opened (warning otherwise), kOn
// refuses to start without it.
enum class FeatureChoice : std::uint8_t { kAuto, kOn, kOff };

struct DaemonOptions {
  SourceChoice source = SourceChoice::kAuto;
  // BPF source: where its maps and program stay pinned between runs, so that a restart
  // needs no snapshots (BpfConnectionSource::Options::pin_dir); empty: nothing pinned.
  std::string bpf_pin_dir;
  std::string docker_socket = "/var/run/docker.sock";  // empty: no container discovery
  std::chrono::milliseconds docker_timeout{5000};
  std::chrono::milliseconds proc_interval{1000};    // /proc source: re-read period
  std::chrono::milliseconds rescan_interval{5000};  // namespace and host-port rescan
  std::chrono::milliseconds check_interval{30000};  // BPF vs /proc check; 0: off
  std::chrono::milliseconds print_interval{0};      // print snapshots; 0: off
  // When BPF events come in faster than this, wait this long after handling a batch
  // before waiting for more, so a churning host costs one wakeup per window instead of
  // one per event; it bounds how late a change is seen then. A change after a quiet
  // spell is handled at once. 0 handles every wakeup at once.
  std::chrono::microseconds coalesce{250};
  // While every pause finds events waiting, the next pause is twice as long, up to this:
  // a host churning thousands of connections a second costs a few hundred wakeups a
  // second, not thousands, and no change waits longer than this to be seen.
  std::chrono::microseconds coalesce_max{4000};
  FeatureChoice conntrack = FeatureChoice::kAuto;
  std::chrono::milliseconds conntrack_resync{30000};  // full conntrack dump period
  bool print_json = true;
  bool once = false;  // print one snapshot once containers are known, then exit
  std::optional<StreamOptions> stream = StreamOptions{};  // nullopt: no stream socket
  std::string metrics_listen;  // "127.0.0.1:9464"; empty: no metrics listener
  Tracker::Options tracker;
};

// Builds the source --source asks for: kAuto tries BPF and falls back to /proc with a
// warning that says why; kBpf fails if BPF cannot load.
// `health`, when given, says what was given up on the way (metrics.h).
Result<std::unique_ptr<ConnectionSource>> make_source(SourceChoice choice, const std::string& bpf_pin_dir = {},
                                                      SourceHealth* health = nullptr);

// Detaches and removes the BPF state a tracker pinned in `pin_dir` (--bpf-unpin).
Result<void> remove_bpf_pins(const std::string& pin_dir);

class TrackerDaemon {
 public:
  static Result<std::unique_ptr<TrackerDaemon>> create(DaemonOptions options);
  ~TrackerDaemon();

  // Runs until SIGTERM/SIGINT (or, with `once`, until the snapshot is printed).
  // Returns the process exit code.
  int run();

 private:
  TrackerDaemon(DaemonOptions options, std::unique_ptr<Tracker> tracker, SourceHealth health)
      : options_(std::move(options)), tracker_(std::move(tracker)), health_(health) {}
  class Loop;
  DaemonOptions options_;
  std::unique_ptr<Tracker> tracker_;
  SourceHealth health_;
};

}  // namespace skopos::tracker
