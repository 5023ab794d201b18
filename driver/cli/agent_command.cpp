// skopos agent: the reboot daemon under systemd, and skopos rolling-reboot, which asks
// every agent of a tier to take its turn.
//
// The agent waits for a trigger -- the file /var/lib/skopos/needs_reboot (inotify), or a
// rolling reboot request for its tier in etcd (an etcd watch on a thread of its own) --
// then drains with the REBOOT token, reboots through the configured command and, after
// boot, recovers (the journal says where it was). It keeps its heartbeat alive all the
// time and speaks sd_notify (READY, STATUS, WATCHDOG).
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "commands.h"
#include "drain_runtime.h"
#include "driver/rolling_reboot.h"
#include "skopos/json_writer.h"
#include "skopos/log.h"
#include "skopos/sd_notify.h"

namespace skopos::driver::cli {

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr const char* kAgentUsage =
    "usage: skopos agent [options]\n"
    "\n"
    "The reboot daemon (run it under systemd: driver/systemd/skopos-agent.service). It\n"
    "waits for a trigger -- the trigger file, or a rolling reboot request for its tier\n"
    "('skopos rolling-reboot') -- then drains this host with the REBOOT token, holding a\n"
    "slot of the tier's reboot lock, reboots through --reboot-command, and after boot:\n"
    "checks that the boot id changed, ZooKeeper's quorum (control tier), removes the fence,\n"
    "brings the machine up in Mesos, waits for the agent to register and the apps that\n"
    "were here to be back at full strength, then releases the lock. A drain interrupted by\n"
    "a crash is resumed when it starts.\n"
    "\n"
    "agent options:\n"
    "  --trigger-file PATH       the file whose existence asks for a reboot (default\n"
    "                            /var/lib/skopos/needs_reboot); removed when the reboot is\n"
    "                            recorded, before the reboot command runs\n"
    "  --recheck D               re-read the triggers at least this often (default 60s)\n"
    "  --reboot-wait D           after the reboot command, how long to wait for the\n"
    "                            shutdown before trying again (default 10m)\n"
    "\n"
    "%s\n%s";

constexpr const char* kRollingUsage =
    "usage: skopos rolling-reboot --tier T [--hosts H,...]   ask every host (or these) to reboot\n"
    "       skopos rolling-reboot --tier T --status          the request and each host's turn\n"
    "       skopos rolling-reboot --tier T --cancel          withdraw the request\n"
    "\n"
    "Every 'skopos agent' of the tier watches the request; each reboots once for it, at\n"
    "most the tier's reboot-lock max at a time ('skopos lock set-max reboot T N').\n"
    "\n"
    "%s";

// Wakes the main loop when the trigger file appears or the rolling request changes.
class TriggerWatcher {
 public:
  TriggerWatcher(const std::string& trigger_file, const EtcdOptions& etcd, const std::string& prefix,
                 const std::string& tier)
      : wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), inotify_(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK)) {
    const fs::path dir = fs::path(trigger_file).parent_path();
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (!inotify_ || ::inotify_add_watch(inotify_.get(), dir.c_str(), IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
      log_warning("inotify on '" + dir.string() + "': " + std::strerror(errno) + "; the trigger file is read every recheck");
    }
    auto client = EtcdClient::create(etcd);
    if (!client) throw FatalError("skopos agent: etcd client: " + client.error().message);
    etcd_ = std::move(*client);
    rolling_ = std::make_unique<RollingReboot>(*etcd_, prefix);
    thread_ = std::thread([this, tier] { watch(tier); });
  }
  ~TriggerWatcher() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
  }

  // Waits until something may have changed, `timeout` passes, or `stop`; calls `tick`
  // every 200 ms meanwhile (the watchdog's sign of life).
  void wait(std::chrono::milliseconds timeout, const std::atomic<bool>& stop, FunctionRef<void()> tick) {
    const auto until = Clock::now() + timeout;
    while (!stop.load() && Clock::now() < until) {
      tick();
      pollfd fds[2] = {{wake_.get(), POLLIN, 0}, {inotify_ ? inotify_.get() : -1, POLLIN, 0}};
      if (::poll(fds, 2, 200) > 0) {
        char buffer[4096];
        while (::read(wake_.get(), buffer, 8) > 0) {
        }
        while (inotify_ && ::read(inotify_.get(), buffer, sizeof buffer) > 0) {
        }
        return;
      }
    }
  }

 private:
  void watch(const std::string& tier) {
    std::int64_t revision = 0;
    while (!stopping_) {
      if (revision == 0) {
        auto status = rolling_->status(tier);
        if (!status) {
          std::this_thread::sleep_for(std::chrono::seconds(1));
          continue;
        }
        revision = status->revision;
      }
      // A watch, not a poll; its window bounds how long the agent takes to stop.
      auto changed = rolling_->wait_for_change(tier, revision, Clock::now() + std::chrono::seconds(5));
      if (!changed) {
        revision = 0;
        std::this_thread::sleep_for(std::chrono::seconds(1));
        continue;
      }
      if (*changed) {
        revision = 0;  // re-read for the new revision
        const std::uint64_t one = 1;
        (void)::write(wake_.get(), &one, sizeof one);
      }
    }
  }

  UniqueFd wake_;
  UniqueFd inotify_;
  std::unique_ptr<EtcdClient> etcd_;
  std::unique_ptr<RollingReboot> rolling_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// Pings systemd's watchdog while the main loop shows signs of life. Waits inside a
// drain are bounded by their own deadlines, so "busy" counts as alive.
class Watchdog {
 public:
  Watchdog() {
    const auto interval = sd_watchdog_interval();
    if (!interval) return;
    const auto period = std::chrono::duration_cast<std::chrono::milliseconds>(*interval) / 2;
    thread_ = std::thread([this, period] {
      while (!stopping_.load()) {
        std::this_thread::sleep_for(period);
        const auto idle_for = Clock::now() - Clock::time_point(Clock::duration(last_.load()));
        if (busy_.load() || idle_for < period * 4) (void)sd_notify("WATCHDOG=1");
      }
    });
  }
  ~Watchdog() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
  }
  void alive() { last_ = Clock::now().time_since_epoch().count(); }
  void busy(bool value) {
    busy_ = value;
    alive();
  }

 private:
  std::atomic<Clock::rep> last_{Clock::now().time_since_epoch().count()};
  std::atomic<bool> busy_{false};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

void status_line(const std::string& text) {
  log_notice(text);
  (void)sd_notify("STATUS=" + text);
}

}  // namespace

int agent_command(int argc, char** argv) {
  if (argc >= 3 && (std::string_view(argv[2]) == "--help" || std::string_view(argv[2]) == "-h")) {
    std::printf(kAgentUsage, kDrainOptionsHelp, kGlobalOptionsHelp);
    return kExitOk;
  }
  std::set<std::string> names = kDrainOptions;
  names.insert({"trigger-file", "recheck", "reboot-wait"});
  const CliSpec spec = with_global_options("skopos agent", {"all-containers"}, names);
  CliArgs args = CliArgs::parse(spec, argc, argv, 2);
  if (args.flag("help")) {
    std::printf(kAgentUsage, kDrainOptionsHelp, kGlobalOptionsHelp);
    return kExitOk;
  }
  const GlobalOptions global = parse_global_options(spec, args);
  if (!args.positional().empty()) throw FatalError("skopos agent: takes no arguments");
  const std::string trigger_file = args.option("trigger-file", "/var/lib/skopos/needs_reboot");
  const auto recheck = args.duration("recheck", std::chrono::seconds(60));
  const auto reboot_wait = args.duration("reboot-wait", std::chrono::minutes(10));
  DrainRuntime runtime(global, args, "skopos agent", DrainKind::kReboot);
  const std::string tier = tier_name(runtime.options().tier);
  const HostIdentity& self = runtime.identity();
  if (args.has("metrics-file")) {
    // Idle until a drain starts (its labels only); a directory that refuses the file
    // stops the agent now, not in the middle of a drain.
    if (auto written = DrainMetrics(args.option("metrics-file"), runtime.options().hostname).write(); !written) {
      throw FatalError("skopos agent: --metrics-file: " + written.error());
    }
  }

  const std::atomic<bool>& stop = install_stop_signals();
  HeartbeatThread heartbeat(global.etcd, self, global.prefix, runtime.heartbeat_ttl());
  TriggerWatcher triggers(trigger_file, global.etcd, global.prefix, tier);
  Watchdog watchdog;
  const auto alive = [&] { watchdog.alive(); };
  RollingReboot rolling(runtime.etcd(), global.prefix);
  (void)sd_notify("READY=1");
  status_line("agent of '" + self.hostname + "' (tier " + tier + ", boot " + self.boot_id + ") watching '" +
              trigger_file + "' and rolling reboots of " + tier);

  bool told_manual = false;
  while (!stop.load()) {
    watchdog.alive();
    // Only a look: a `skopos drain` run by hand may be writing the journal right now.
    auto seen = Journal::inspect(runtime.journal_path());
    if (!seen) {
      log_error("journal: " + seen.error().message());
      triggers.wait(recheck, stop, alive);
      continue;
    }
    std::string problem;
    const auto progress = Drain::in_progress(*seen, &problem);
    if (!problem.empty()) {
      log_error(problem + "; not draining until a person looks at it");
      triggers.wait(recheck, stop, alive);
      continue;
    }
    std::string trigger;
    if (progress) {
      if (progress->second.kind != DrainKind::kReboot) {
        if (!told_manual) status_line(std::string("a ") + drain_kind_token(progress->second.kind) +
                                      " drain is in progress: no reboots until it is undrained");
        told_manual = true;
        triggers.wait(recheck, stop, alive);
        continue;
      }
      trigger = progress->second.trigger;  // resume or recover it
    } else {
      told_manual = false;
      if (::access(trigger_file.c_str(), F_OK) == 0) {
        trigger = "file";
      } else if (auto pending = rolling.pending(tier, self.machine_id, runtime.options().hostname); !pending) {
        log_warning("rolling reboot: " + pending.error().message);
      } else if (*pending) {
        trigger = "rolling:" + (*pending)->id;
      }
      if (trigger.empty()) {
        triggers.wait(recheck, stop, alive);
        continue;
      }
      status_line("reboot requested (" + trigger + ")");
    }

    // Drain (or resume, or recover), holding this host's drain lock for the duration.
    auto local = LocalDrainLock::take(runtime.journal_path(), false, std::chrono::milliseconds(0));
    if (!local) {
      log_warning(local.error().message());
      triggers.wait(recheck, stop, alive);
      continue;
    }
    auto journal = Journal::open(runtime.journal_path());  // ours now: repairs a torn line
    if (!journal) {
      log_error("journal: " + journal.error().message());
      triggers.wait(recheck, stop, alive);
      continue;
    }
    watchdog.busy(true);
    DrainOptions options = runtime.options();
    options.trigger = trigger;
    DrainReporter reporter(false, false, options.progress_interval, args.option("events"), args.option("metrics-file"),
                           options.hostname);
    Drain drain(runtime.systems(), *journal, options,
                [&](const DrainEvent& event) {
                  reporter(event);
                  if (event.type == DrainEvent::Type::kPhase) (void)sd_notify("STATUS=phase " + event.message);
                  // The reboot is journaled: the trigger is consumed, before the command runs.
                  if (event.type == DrainEvent::Type::kPhase && event.phase == DrainPhase::kReboot) {
                    std::error_code ec;
                    fs::remove(trigger_file, ec);
                    if (trigger.rfind("rolling:", 0) == 0) {
                      (void)rolling.mark_done(tier, self.machine_id, runtime.options().hostname, trigger.substr(8));
                    }
                  }
                },
                stop);
    auto result = drain.run();
    watchdog.busy(false);
    reporter.result("skopos agent", result);
    if (!result) {
      if (result.error().kind == DrainError::Kind::kInterrupted) break;
      status_line("drain failed: " + result.error().message + "; trying again in " +
                  std::to_string(std::chrono::duration_cast<std::chrono::seconds>(recheck).count()) + " s");
      triggers.wait(recheck, stop, alive);
      continue;
    }
    if (result->rebooting) {
      status_line("reboot command ran; waiting for the shutdown");
      triggers.wait(reboot_wait, stop, alive);
      if (!stop.load()) log_error("still running " + std::to_string(reboot_wait.count() / 1000) + " s after the reboot command");
      continue;
    }
    if (result->reached == DrainPhase::kDone) {
      if (result->facts.trigger.rfind("rolling:", 0) == 0) {
        if (auto done = rolling.mark_done(tier, self.machine_id, runtime.options().hostname,
                                          result->facts.trigger.substr(8));
            !done) {
          log_warning("rolling reboot: " + done.error().message);
        }
      }
      status_line("back in service after the reboot");
    }
  }
  (void)sd_notify("STOPPING=1");
  // Under a shutdown for our own reboot the lease simply expires; otherwise it goes now.
  heartbeat.stop(true);
  return kExitOk;
}

int rolling_reboot_command(int argc, char** argv) {
  const CliSpec spec = with_global_options("skopos rolling-reboot", {"status", "cancel"}, {"tier", "hosts"});
  if (argc >= 3 && (std::string_view(argv[2]) == "--help" || std::string_view(argv[2]) == "-h")) {
    std::printf(kRollingUsage, kGlobalOptionsHelp);
    return kExitOk;
  }
  CliArgs args = CliArgs::parse(spec, argc, argv, 2);
  if (args.flag("help")) {
    std::printf(kRollingUsage, kGlobalOptionsHelp);
    return kExitOk;
  }
  const GlobalOptions global = parse_global_options(spec, args);
  if (!args.has("tier")) throw FatalError("skopos rolling-reboot: which --tier?", "control, proxy or worker");
  const std::string tier = args.option("tier");
  if (!parse_tier(tier)) {
    throw FatalError("skopos rolling-reboot: --tier '" + tier + "' is not control, proxy or worker");
  }
  if (args.flag("status") && args.flag("cancel")) throw FatalError("skopos rolling-reboot: --status or --cancel, not both");
  LockContext context = connect_locks(global);
  RollingReboot rolling(*context.etcd, global.prefix);
  if (args.flag("cancel")) {
    auto cancelled = rolling.cancel(tier);
    if (!cancelled) return report(cancelled.error(), global.json);
    std::printf(global.json ? "{\"cancelled\":%s}\n" : "%s\n",
                global.json ? (*cancelled ? "true" : "false") : (*cancelled ? "request cancelled" : "no request"));
    return kExitOk;
  }
  if (args.flag("status")) {
    auto status = rolling.status(tier);
    if (!status) return report(status.error(), global.json);
    if (global.json) {
      std::string out;
      JsonWriter json(out);
      json.begin_object().key("tier").value(tier).key("request");
      if (status->request) {
        json.begin_object().key("id").value(status->request->id).key("requested_at").value(status->request->requested_at);
        json.key("requested_by").value(status->request->requested_by).end_object();
      } else {
        json.null();
      }
      json.key("done").begin_array();
      for (const RollingDone& done : status->done) {
        if (!status->request || done.id != status->request->id) continue;
        json.begin_object().key("machine_id").value(done.machine_id).key("hostname").value(done.hostname);
        json.key("at").value(done.at).end_object();
      }
      json.end_array().end_object();
      std::printf("%s\n", out.c_str());
      return kExitOk;
    }
    if (!status->request) {
      std::printf("no rolling reboot requested for tier %s\n", tier.c_str());
      return kExitOk;
    }
    std::printf("rolling reboot '%s' of tier %s, requested %s by %s\n", status->request->id.c_str(), tier.c_str(),
                utc_time(status->request->requested_at).c_str(), status->request->requested_by.c_str());
    for (const RollingDone& done : status->done) {
      if (done.id != status->request->id) continue;
      std::printf("  done: %s (%s) at %s\n", done.hostname.c_str(), done.machine_id.c_str(), utc_time(done.at).c_str());
    }
    return kExitOk;
  }
  auto request = rolling.request(tier, context.locks->self().hostname, split_list(args.option("hosts")));
  if (!request) return report(request.error(), global.json);
  if (global.json) {
    std::printf("{\"id\":\"%s\",\"tier\":\"%s\"}\n", request->id.c_str(), tier.c_str());
  } else {
    std::printf("rolling reboot '%s' requested for tier %s\n", request->id.c_str(), tier.c_str());
  }
  return kExitOk;
}

}  // namespace skopos::driver::cli
