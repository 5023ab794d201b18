// TrackerDrainConnections: waiting on skopos-tracker's stream until the containers'
// inbound connections reach zero. The tracker pushes every change, so the wait notices
// the last connection closing as soon as the tracker publishes it -- no polling. The
// oldest connection's peer comes from the containers' own /proc/<pid>/net/tcp{,6}, read
// once per progress tick (the stream carries counts, not peers).
#include <algorithm>
#include <cerrno>
#include <deque>
#include <map>
#include <set>
#include <thread>
#include <tuple>

#include "driver/drain_systems_impl.h"
#include "skopos/log.h"
#include "tracker/stream_client.h"

namespace skopos::driver {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string age_text(Clock::duration age) {
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(age).count();
  if (seconds < 120) return std::to_string(seconds) + " s";
  return std::to_string(seconds / 60) + " min";
}

// The waited-for inbound count of one container from the tracker's view; -1 unknown.
std::int64_t waited_inbound(const tracker::StreamContainer& seen, const DrainContainer& container) {
  if (!seen.known || seen.inbound < 0) return -1;
  if (container.ignore_ports.empty()) return seen.inbound;
  std::int64_t total = 0;
  for (const tracker::StreamPort& port : seen.ports) {
    if (std::find(container.ignore_ports.begin(), container.ignore_ports.end(), port.port) == container.ignore_ports.end()) {
      total += port.inbound;
    }
  }
  return total;
}

}  // namespace

// First-seen times of inbound established sockets, by inode, to name the oldest one.
struct TrackerDrainConnections::Peers {
  explicit Peers(std::string root) : proc_root(std::move(root)) {}
  std::string proc_root;
  tracker::ProcNetReader reader;
  std::map<std::uint64_t, Clock::time_point> first_seen;

  std::string oldest(const std::vector<DrainContainer>& containers, const std::vector<ContainerCount>& counts) {
    struct Candidate {
      Clock::time_point seen;
      std::uint64_t inode = 0;
      std::string text;
    };
    std::optional<Candidate> best;
    std::set<std::uint64_t> present;
    const auto now = Clock::now();
    for (std::size_t i = 0; i < containers.size(); ++i) {
      const DrainContainer& c = containers[i];
      if (c.pid <= 0 || counts[i].gone || counts[i].inbound == 0) continue;
      const auto sink = [&](const tracker::TcpSocketRecord& record) {
        if (record.state != tracker::TcpState::kEstablished || record.inode == 0) return;
        if (std::find(c.listen_ports.begin(), c.listen_ports.end(), record.local_port) == c.listen_ports.end()) return;
        if (std::find(c.ignore_ports.begin(), c.ignore_ports.end(), record.local_port) != c.ignore_ports.end()) return;
        present.insert(record.inode);
        const auto seen = first_seen.emplace(record.inode, now).first->second;
        // Earliest seen wins; among those seen together, the lower inode is the older
        // socket (the kernel numbers inodes in creation order).
        if (!best || seen < best->seen || (seen == best->seen && record.inode < best->inode)) {
          best = Candidate{seen, record.inode,
                           tracker::format_address(record.family, record.remote_address) + ":" +
                               std::to_string(record.remote_port) + " -> " + c.name + ":" +
                               std::to_string(record.local_port)};
        }
      };
      // A container that exits meanwhile has no tables: no peers, not an error.
      (void)reader.decode_namespace(proc_root + "/" + std::to_string(c.pid) + "/net", sink);
    }
    std::erase_if(first_seen, [&](const auto& entry) { return present.count(entry.first) == 0; });
    if (!best) return {};
    return best->text + " (seen " + age_text(now - best->seen) + ")";
  }
};

TrackerDrainConnections::TrackerDrainConnections(TrackerConnectionsOptions options)
    : options_(std::move(options)), peers_(std::make_unique<Peers>(options_.proc_root)) {}
TrackerDrainConnections::~TrackerDrainConnections() = default;

namespace {

// The counts of `containers` in what the tracker publishes now.
void fill_counts(const std::map<std::string, tracker::StreamContainer>& seen, bool known,
                 const std::vector<DrainContainer>& containers, const std::vector<Clock::time_point>& deadlines,
                 WaitProgress& progress) {
  progress.containers.clear();
  progress.total = 0;
  progress.unknown = 0;
  const auto now = Clock::now();
  for (std::size_t i = 0; i < containers.size(); ++i) {
    ContainerCount count;
    count.id = containers[i].id;
    count.name = containers[i].name;
    count.deadline_passed = i < deadlines.size() && now >= deadlines[i];
    const auto it = seen.find(containers[i].id);
    if (it != seen.end()) {
      count.inbound = waited_inbound(it->second, containers[i]);
    } else if (known) {
      // The tracker follows Docker's events: a container it does not list is not running.
      count.gone = true;
      count.inbound = 0;
    }
    if (count.inbound < 0) {
      ++progress.unknown;
    } else {
      progress.total += count.inbound;
    }
    progress.containers.push_back(std::move(count));
  }
}

// A subscription to exactly these containers.
tracker::ClientOptions subscription(const TrackerConnectionsOptions& options,
                                    const std::vector<DrainContainer>& containers) {
  tracker::ClientOptions out;
  out.path = options.socket;
  out.timeout = options.timeout;
  for (const DrainContainer& c : containers) out.filter.ids.push_back(c.id);
  return out;
}

// The closing rate over the last 10 s of complete readings, and the ETA from it.
void update_rate(std::deque<std::pair<Clock::time_point, std::int64_t>>& history, Clock::time_point at,
                 WaitProgress& progress) {
  if (progress.connected && progress.unknown == 0) history.emplace_back(at, progress.total);
  while (history.size() > 1 && at - history.front().first > 10s) history.pop_front();
  const double span = history.empty() ? 0 : std::chrono::duration<double>(at - history.front().first).count();
  const double closed = history.empty() ? 0 : static_cast<double>(history.front().second - progress.total);
  progress.closing_per_second = span > 0.5 && closed > 0 ? closed / span : 0;
  progress.eta.reset();
  if (progress.closing_per_second > 0 && progress.unknown == 0) {
    progress.eta = std::chrono::seconds(
        static_cast<std::int64_t>(static_cast<double>(progress.total) / progress.closing_per_second + 0.5));
  }
}

}  // namespace

std::vector<const ContainerCount*> WaitProgress::busiest(std::size_t n) const {
  std::vector<const ContainerCount*> out;
  out.reserve(containers.size());
  for (const ContainerCount& c : containers) out.push_back(&c);
  // Unknown first (it may hide anything), then by connections, then the deadline.
  const auto rank = [](const ContainerCount* c) {
    return std::tuple(c->inbound < 0 && !c->gone, c->inbound, c->deadline_passed);
  };
  const std::size_t keep = std::min(n, out.size());
  std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(keep), out.end(),
                    [&](const ContainerCount* a, const ContainerCount* b) {
                      if (rank(a) != rank(b)) return rank(a) > rank(b);
                      return a->name < b->name;
                    });
  out.resize(keep);
  return out;
}

Result<WaitOutcome, DrainError> TrackerDrainConnections::wait_zero(const std::vector<DrainContainer>& containers,
                                                                   std::chrono::milliseconds tick,
                                                                   FunctionRef<void(const WaitProgress&)> on_progress,
                                                                   const std::atomic<bool>& stop) {
  if (containers.empty()) return WaitOutcome{true, {}, {}};
  tracker::ReconnectingClient client(subscription(options_, containers));

  const auto started = Clock::now();
  std::vector<Clock::time_point> deadlines;
  for (const DrainContainer& c : containers) deadlines.push_back(started + c.deadline);
  const auto last_deadline = *std::max_element(deadlines.begin(), deadlines.end());
  log_info("waiting for " + std::to_string(containers.size()) + " container(s) to reach 0 inbound connections");

  WaitOutcome outcome;
  WaitProgress& progress = outcome.last;
  std::deque<std::pair<Clock::time_point, std::int64_t>> history;  // (when, total) for the rate
  // The first line comes with the first snapshot (a change), the next after a tick.
  auto next_tick = started + tick;
  std::int64_t reported_total = -2;
  std::int64_t reported_unknown = -2;
  for (;;) {
    if (stop.load(std::memory_order_relaxed)) {
      return drain_error(DrainError::Kind::kInterrupted, "stopped while waiting for connections to close");
    }
    const auto now = Clock::now();
    // Wake for the next tick, the next deadline, or a stop (checked every 200 ms).
    auto wake = std::min(next_tick, now + 200ms);
    for (const auto& d : deadlines) {
      if (d > now) wake = std::min(wake, d);
    }
    auto event = client.next(wake);
    if (!event && event.error().code != ETIMEDOUT) {
      // Not permitted, another protocol: no counts. Unknown is never zero: wait on to the
      // deadlines (the progress says the tracker is not connected).
      std::this_thread::sleep_for(std::min<Clock::duration>(wake - Clock::now(), 200ms));
    }
    progress.connected = client.connected() && client.containers_known();
    fill_counts(client.containers(), client.containers_known(), containers, deadlines, progress);
    const auto at = Clock::now();
    progress.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(at - started);

    bool done = progress.connected;
    bool all_zero = progress.connected;
    for (const ContainerCount& c : progress.containers) {
      const bool zero = c.inbound == 0;
      all_zero = all_zero && zero;
      done = done && (zero || c.deadline_passed);
    }
    if (!progress.connected && at >= last_deadline) done = true;

    // Report a change once connected (before that the counts are placeholders), every
    // tick, and the end.
    const bool changed = progress.total != reported_total || progress.unknown != reported_unknown;
    if ((changed && progress.connected) || at >= next_tick || done) {
      update_rate(history, at, progress);
      if (at >= next_tick && !done) {
        progress.oldest_peer = peers_->oldest(containers, progress.containers);
        next_tick = at + tick;
      }
      reported_total = progress.total;
      reported_unknown = progress.unknown;
      on_progress(progress);
    }
    if (done) {
      outcome.all_zero = all_zero;
      outcome.waited = progress.elapsed;
      return outcome;
    }
  }
}

Result<WaitProgress, DrainError> TrackerDrainConnections::counts(const std::vector<DrainContainer>& containers) {
  if (containers.empty()) return WaitProgress{};
  auto client = tracker::TrackerClient::connect(subscription(options_, containers));
  if (!client) return drain_error(DrainError::Kind::kFailed, "tracker: " + client.error().message());
  WaitProgress progress;
  progress.connected = (*client)->containers_known();
  fill_counts((*client)->containers(), (*client)->containers_known(), containers, {}, progress);
  return progress;
}

}  // namespace skopos::driver
