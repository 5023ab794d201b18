#include "tracker/daemon.h"

#include "tracker/snapshot_output.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <optional>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "skopos/handler_memory.h"
#include "skopos/log.h"
#include "skopos/sd_notify.h"
#include "tracker/container_discovery.h"
#include "tracker/metrics.h"
#include "tracker/proc_net_tcp.h"
#if SKOPOS_HAVE_BPF
#include "tracker/bpf_connection_source.h"
#endif

namespace skopos::tracker {

namespace asio = boost::asio;
using boost::system::error_code;

#if SKOPOS_HAVE_BPF
namespace {

// A number from a /proc/sys file, or nullopt when it cannot be read.
std::optional<long long> read_sysctl(const char* path) {
  std::FILE* file = std::fopen(path, "re");
  if (file == nullptr) return std::nullopt;
  long long value = 0;
  const bool read = std::fscanf(file, "%lld", &value) == 1;
  std::fclose(file);
  return read ? std::optional<long long>(value) : std::nullopt;
}

// Without the shared-hash walk (a kernel before 6.1, or a tracker whose own namespace
// has a TCP hash of its own), each container's snapshot is the kernel's iterator, which
// reads the whole established hash its namespace uses -- by default the host's
// (net.ipv4.tcp_child_ehash_entries = 0): milliseconds each, whatever the container
// holds. Said once at start then, with the way out: a hash of their own for namespaces
// created afterwards.
void advise_on_shared_tcp_hash() {
  const auto child = read_sysctl("/proc/sys/net/ipv4/tcp_child_ehash_entries");
  const auto host = read_sysctl("/proc/sys/net/ipv4/tcp_ehash_entries");
  if (!child || *child != 0 || !host) return;  // an older kernel, or already set
  log_notice("new network namespaces share the host's TCP established hash (net.ipv4.tcp_child_ehash_entries = 0): "
             "each container's snapshot walks all " + std::to_string(*host < 0 ? -*host : *host) +
             " of its buckets; setting it (e.g. to 1024) before containers start makes their snapshots, and a "
             "tracker restart on a dense host, several times faster (see tracker/README.md)");
}

}  // namespace
#endif

// The /proc source decodes with the kernel measured fastest on this CPU; said once.
std::unique_ptr<ConnectionSource> make_proc_source() {
  log_info("counting with /proc/net/tcp{,6}: decoder kernel " + scan_kernel_choice().describe());
  return std::make_unique<ProcConnectionSource>();
}

// (Without BPF, `bpf_pin_dir` has nothing to pin.)
Result<std::unique_ptr<ConnectionSource>> make_source(SourceChoice choice,
                                                      [[maybe_unused]] const std::string& bpf_pin_dir,
                                                      SourceHealth* health) {
  SourceHealth ignored;
  [[maybe_unused]] SourceHealth& noted = health != nullptr ? *health : ignored;
  if (choice == SourceChoice::kProc) return make_proc_source();
#if SKOPOS_HAVE_BPF
  BpfConnectionSource::Options options;
  options.pin_dir = bpf_pin_dir;
  auto bpf = BpfConnectionSource::create(options);
  if (!bpf && !options.pin_dir.empty()) {
    // Pinning only makes restarts fast: a pin directory we cannot use (no BPF filesystem
    // mounted, read-only, another tracker's) costs that, not the BPF source.
    auto unpinned = BpfConnectionSource::create();
    if (unpinned) {
      log_warning("bpf: not pinning (" + bpf.error().message() +
                  "); the program stops with this tracker, and the next start snapshots every namespace");
      bpf = std::move(unpinned);
      options.pin_dir.clear();
      noted.bpf_unpinned = true;
    }
  }
  if (bpf) {
    log_info("counting with bpf: tp_btf/inet_sock_set_state program id " + std::to_string((*bpf)->program_id()) +
             (options.pin_dir.empty() ? std::string()
              : (*bpf)->restored() ? ", taken over from the pinned state in " + options.pin_dir
                                   : ", pinned in " + options.pin_dir));
    log_info(std::string("bpf snapshots: ") +
             ((*bpf)->walks_shared_hash() ? "one walk of the host's TCP hash for every namespace sharing it"
                                          : "the kernel's iterator, one namespace at a time"));
    if (!(*bpf)->walks_shared_hash()) advise_on_shared_tcp_hash();
    return std::unique_ptr<ConnectionSource>(std::move(*bpf));
  }
  if (choice == SourceChoice::kBpf) return unexpected(std::move(bpf).error());
  log_warning("bpf source unavailable, falling back to /proc: " + bpf.error().message());
  noted.bpf_fallback = true;
#else
  if (choice == SourceChoice::kBpf) {
    return unexpected(Error::invalid("select source", "bpf", "this build has no BPF support (SKOPOS_BPF=OFF)"));
  }
#endif
  return make_proc_source();
}

Result<void> remove_bpf_pins(const std::string& pin_dir) {
#if SKOPOS_HAVE_BPF
  return BpfConnectionSource::remove_pins(pin_dir);
#else
  return unexpected(Error::invalid("unpin", pin_dir, "this build has no BPF support (SKOPOS_BPF=OFF)"));
#endif
}

Result<std::unique_ptr<TrackerDaemon>> TrackerDaemon::create(DaemonOptions options) {
  SourceHealth health;
  auto source = make_source(options.source, options.bpf_pin_dir, &health);
  if (!source) return unexpected(std::move(source).error());
  std::unique_ptr<ProcConnectionSource> checker;
  if ((*source)->kind() == SourceKind::kBpf && options.check_interval.count() > 0) {
    checker = std::make_unique<ProcConnectionSource>();
  }
  auto tracker = std::make_unique<Tracker>(std::move(*source), std::move(checker), options.tracker);
  if (options.conntrack != FeatureChoice::kOff) {
    auto conntrack = ConntrackSource::create();
    if (conntrack) {
      tracker->set_conntrack(std::move(*conntrack));
    } else if (options.conntrack == FeatureChoice::kOn) {
      return unexpected(std::move(conntrack).error());
    } else {
      log_warning("conntrack cross-check unavailable: " + conntrack.error().message());
    }
  }
  return std::unique_ptr<TrackerDaemon>(new TrackerDaemon(std::move(options), std::move(tracker), health));
}

TrackerDaemon::~TrackerDaemon() = default;

// Everything that lives for one run().
class TrackerDaemon::Loop {
 public:
  Loop(const DaemonOptions& options, Tracker& tracker, SourceHealth health)
      : options_(options),
        tracker_(tracker),
        health_(health),
        signals_(context_, SIGTERM, SIGINT),
        rescan_timer_(context_),
        proc_timer_(context_),
        maintain_timer_(context_),
        check_timer_(context_),
        print_timer_(context_),
        once_timer_(context_),
        conntrack_timer_(context_),
        coalesce_timer_(context_),
        watchdog_timer_(context_),
        source_fd_(context_),
        conntrack_fd_(context_) {}

  int run() {
    signals_.async_wait([this](const error_code& ec, int signal) {
      if (ec) return;
      log_notice(std::string("stopping on ") + (signal == SIGTERM ? "SIGTERM" : "SIGINT"));
      (void)sd_notify("STOPPING=1");
      shutdown(0);
    });
    tracker_.rescan();
    const TrackerStats stats = tracker_.stats();
    log_info("tracking " + std::to_string(stats.source.tracked) + " network namespaces with " +
             std::string(source_name(tracker_.source().kind())));

    if (options_.stream && !options_.once) {
      stream_ = std::make_unique<StreamServer>(context_, tracker_, *options_.stream);
      if (auto started = stream_->start(); !started) {
        log_error("cannot serve the stream: " + started.error().message());
        return 1;
      }
    }
    if (!options_.metrics_listen.empty() && !options_.once) {
      metrics_ = std::make_unique<MetricsServer>(context_, [this] {
        if (!stream_) return render_metrics(tracker_, nullptr, health_);
        const StreamStats stream_stats = stream_->stats();
        return render_metrics(tracker_, &stream_stats, health_);
      });
      if (auto started = metrics_->start(options_.metrics_listen); !started) {
        log_error("cannot serve metrics: " + started.error().message());
        return 1;
      }
    }
    if (!options_.docker_socket.empty()) {
      discovery_ = std::make_unique<ContainerDiscovery>(
          options_.docker_socket, options_.docker_timeout, [this](DiscoveryUpdate update) {
            asio::post(context_, [this, update = std::move(update)] {
              tracker_.apply(update);
              publish();
              if (options_.once && !printed_) print_and_finish();
            });
          });
      discovery_->start();
    } else {
      log_notice("no docker socket configured: reporting per network namespace only");
    }

    arm_source();
    arm_conntrack();
    if (tracker_.conntrack() != nullptr) {
      every(conntrack_timer_, options_.conntrack_resync, [this] {
        if (auto status = tracker_.conntrack()->resync(); !status) log_error("conntrack dump failed: " + status.error().message());
      });
    }
    every(rescan_timer_, options_.rescan_interval, [this] {
      tracker_.rescan();
      publish();
    });
    if (tracker_.source().wait_fd() < 0) {
      every(proc_timer_, options_.proc_interval, [this] {
        tracker_.update_source();
        publish();
      });
    } else {
      // Events wake the BPF source; but a namespace left unknown by a socket the kernel
      // could not count is proven again by a snapshot, which no event may prompt.
      every(proc_timer_, options_.proc_interval, [this] {
        if (tracker_.source().stats().unproven == 0) return;
        tracker_.update_source();
        publish();
      });
    }
    every(maintain_timer_, ConnectionSource::kMaintainInterval, [this] {
      if (auto status = tracker_.source().maintain(); !status) log_error("source upkeep failed: " + status.error().message());
    });
    if (options_.check_interval.count() > 0) schedule_check();
    if (auto watchdog = sd_watchdog_interval()) {
      const auto period = std::chrono::duration_cast<std::chrono::milliseconds>(*watchdog / 2);
      every(watchdog_timer_, std::max(period, std::chrono::milliseconds(1)), [] { (void)sd_notify("WATCHDOG=1"); });
    }
    if (options_.print_interval.count() > 0) every(print_timer_, options_.print_interval, [this] { print(); });
    if (options_.once) {
      // Without Docker, or if it does not answer within its deadline, print what we have.
      const auto wait = options_.docker_socket.empty() ? std::chrono::milliseconds(0)
                                                       : options_.docker_timeout + std::chrono::seconds(1);
      once_timer_.expires_after(wait);
      once_timer_.async_wait([this](const error_code& ec) {
        if (!ec && !printed_) print_and_finish();
      });
    }
    if (!options_.once) {
      if (auto notified = sd_notify("READY=1"); !notified) log_warning("sd_notify: " + notified.error().message());
    }
    context_.run();
    // Shutting down: a second SIGTERM (an impatient operator) must not cut the cleanup
    // short -- BPF programs are detached and the socket removed below.
    error_code ignored;
    signals_.clear(ignored);
    ::signal(SIGTERM, SIG_IGN);
    ::signal(SIGINT, SIG_IGN);
    if (discovery_) discovery_->stop();
    if (stream_) stream_->stop();
    if (metrics_) metrics_->stop();
    return exit_code_;
  }

 private:
  // The BPF vs /proc check, kCheckSlice namespaces at a time, paced so that every
  // namespace is checked once per --check-interval: a check of a dense host never holds
  // the event loop (and every subscriber's update) for more than a slice.
  static constexpr std::size_t kCheckSlice = 8;
  void schedule_check() {
    const std::size_t turns = std::max<std::size_t>(1, (tracker_.namespace_count() + kCheckSlice - 1) / kCheckSlice);
    const auto pause = std::max(options_.check_interval / static_cast<long>(turns), std::chrono::milliseconds(100));
    check_timer_.expires_after(pause);
    check_timer_.async_wait([this](const error_code& ec) {
      if (ec) return;
      tracker_.check_consistency(kCheckSlice);
      publish();
      schedule_check();
    });
  }

  template <class Work>
  void every(asio::steady_timer& timer, std::chrono::milliseconds period, Work work) {
    timer.expires_after(period);
    timer.async_wait([this, &timer, period, work](const error_code& ec) {
      if (ec) return;
      work();
      every(timer, period, work);
    });
  }

  // The BPF ring buffer's epoll descriptor becomes readable when events are pending.
  void arm_source() {
    const int fd = tracker_.source().wait_fd();
    if (fd < 0) return;
    if (!source_fd_.is_open()) {
      const int copy = ::dup(fd);  // the stream_descriptor owns and closes its copy
      if (copy < 0) {
        log_error("cannot watch the bpf ring buffer: dup failed");
        return shutdown(1);
      }
      source_fd_.assign(copy);
    }
    // Both waits reuse their own handler memory: this runs for every batch of events.
    source_fd_.async_wait(asio::posix::stream_descriptor::wait_read, source_memory_.wrap([this](const error_code& ec) {
      if (ec) return;
      tracker_.update_source();
      publish();
      // Coalesce only when busy: a wakeup soon after the previous one means events are
      // streaming in, and waiting a moment batches them; after a quiet spell the next
      // change goes out at once, so an idle host sees every change with no added delay.
      const auto now = std::chrono::steady_clock::now();
      const bool busy = now - last_source_wakeup_ < options_.coalesce;
      last_source_wakeup_ = now;
      if (options_.coalesce.count() == 0 || !busy) return arm_source();
      coalesce(options_.coalesce);
    }));
  }

  // Events that arrive meanwhile wait in the ring buffer. While they keep coming, each
  // pause ends by taking them directly -- not by asking epoll first, whose answer would
  // be "readable" and cost a second wakeup per batch -- and the next pause is twice as
  // long, up to --coalesce-max. The profile under 10k connections/s: most of the
  // tracker's time was its own wakeups (epoll, timerfd, the scheduler), not the events.
  // The first pause that finds nothing goes back to waiting on the ring buffer, so a
  // quiet host sees each change at once again.
  void coalesce(std::chrono::microseconds pause) {
    coalesce_timer_.expires_after(pause);
    coalesce_timer_.async_wait(coalesce_memory_.wrap([this, pause](const error_code& ec) {
      if (ec) return;
      // Events, not changed namespaces: churn in namespaces we do not track drains the
      // ring buffer too, and is load all the same.
      const std::uint64_t events_before = tracker_.source().stats().events;
      tracker_.update_source();
      if (tracker_.source().stats().events == events_before) return arm_source();
      publish();
      last_source_wakeup_ = std::chrono::steady_clock::now();
      coalesce(std::max(options_.coalesce, std::min(pause * 2, options_.coalesce_max)));
    }));
  }

  void arm_conntrack() {
    ConntrackSource* conntrack = tracker_.conntrack();
    if (conntrack == nullptr) return;
    if (!conntrack_fd_.is_open()) {
      const int copy = ::dup(conntrack->wait_fd());
      if (copy < 0) {
        log_error("cannot watch conntrack events: dup failed");
        return shutdown(1);
      }
      conntrack_fd_.assign(copy);
    }
    conntrack_fd_.async_wait(asio::posix::stream_descriptor::wait_read, [this](const error_code& ec) {
      if (ec) return;
      if (auto status = tracker_.conntrack()->update(); !status) {
        log_error("conntrack events failed: " + status.error().message());
      }
      arm_conntrack();
    });
  }

  void publish() {
    if (stream_) stream_->publish();
  }

  void print() {
    tracker_.update_source();
    const TrackerSnapshot snapshot = tracker_.snapshot();
    std::string text = options_.print_json ? snapshot_json(snapshot) + "\n" : snapshot_table(snapshot) + "\n";
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  }

  void print_and_finish() {
    printed_ = true;
    print();
    shutdown(0);
  }

  void shutdown(int code) {
    exit_code_ = code;
    error_code ignored;
    signals_.cancel(ignored);
    for (asio::steady_timer* timer :
         {&rescan_timer_, &proc_timer_, &maintain_timer_, &check_timer_, &print_timer_, &once_timer_, &conntrack_timer_, &coalesce_timer_,
          &watchdog_timer_}) {
      timer->cancel();
    }
    source_fd_.close(ignored);
    conntrack_fd_.close(ignored);
    if (stream_) stream_->stop();
    if (metrics_) metrics_->stop();
    context_.stop();
  }

  const DaemonOptions& options_;
  Tracker& tracker_;
  SourceHealth health_;
  asio::io_context context_;
  asio::signal_set signals_;
  asio::steady_timer rescan_timer_;
  asio::steady_timer proc_timer_;
  asio::steady_timer maintain_timer_;
  asio::steady_timer check_timer_;
  asio::steady_timer print_timer_;
  asio::steady_timer once_timer_;
  asio::steady_timer conntrack_timer_;
  asio::steady_timer coalesce_timer_;
  asio::steady_timer watchdog_timer_;
  asio::posix::stream_descriptor source_fd_;
  asio::posix::stream_descriptor conntrack_fd_;
  std::unique_ptr<ContainerDiscovery> discovery_;
  std::unique_ptr<StreamServer> stream_;
  std::unique_ptr<MetricsServer> metrics_;
  bool printed_ = false;
  int exit_code_ = 0;
  std::chrono::steady_clock::time_point last_source_wakeup_{};
  HandlerMemory source_memory_;
  HandlerMemory coalesce_memory_;
};

int TrackerDaemon::run() {
  Loop loop(options_, *tracker_, health_);
  return loop.run();
}

}  // namespace skopos::tracker
