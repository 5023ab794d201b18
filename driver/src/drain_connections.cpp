// TrackerDrainConnections: waiting on skopos-tracker's stream until the containers'
// inbound connections reach zero. The tracker pushes every change, so the wait notices
// the last connection closing as soon as the tracker publishes it -- no polling. The
// oldest connection's peer comes from the tracker too: a "peers" question per busy
// container once per progress tick, answered from the container's own tables.
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
  std::map<std::uint64_t, Clock::time_point> first_seen;

  // Asks the tracker about each container that still has connections: on the ports
  // the drain waits on (those it listens on, less the ignored ones).
  static void ask(tracker::ReconnectingClient& client, const std::vector<DrainContainer>& containers,
                  const std::vector<ContainerCount>& counts) {
    for (std::size_t i = 0; i < containers.size() && i < counts.size(); ++i) {
      const DrainContainer& c = containers[i];
      if (counts[i].gone || counts[i].inbound <= 0) continue;
      tracker::PeersRequest request;
      request.id = c.id;
      for (const std::uint16_t port : c.listen_ports) {
        if (std::find(c.ignore_ports.begin(), c.ignore_ports.end(), port) == c.ignore_ports.end()) {
          request.ports.push_back(port);
        }
      }
      if (request.ports.empty()) continue;  // nothing the drain waits on
      request.limit = kPeersPerContainer;
      if (!client.ask_peers(request)) return;  // not connected, or an older tracker
    }
  }

  // The oldest of the connections the tracker's latest answers name.
  std::string oldest(const tracker::ReconnectingClient& client, const std::vector<DrainContainer>& containers,
                     const std::vector<ContainerCount>& counts) {
    struct Candidate {
      Clock::time_point seen;
      std::uint64_t inode = 0;
      std::string text;
    };
    std::optional<Candidate> best;
    std::set<std::uint64_t> present;
    const auto now = Clock::now();
    for (std::size_t i = 0; i < containers.size() && i < counts.size(); ++i) {
      const DrainContainer& c = containers[i];
      if (counts[i].gone || counts[i].inbound <= 0) continue;  // none, or unknown: not asked
      const tracker::PeersAnswer* answer = client.peers(c.id);
      if (answer == nullptr || !answer->known) continue;
      for (const tracker::StreamPeer& peer : answer->peers) {
        present.insert(peer.inode);
        const auto seen = first_seen.emplace(peer.inode, now).first->second;
        // Earliest seen wins; among those seen together, the lower inode is the older
        // socket (the kernel numbers inodes in creation order).
        if (!best || seen < best->seen || (seen == best->seen && peer.inode < best->inode)) {
          best = Candidate{seen, peer.inode,
                           peer.remote_address + ":" + std::to_string(peer.remote_port) + " -> " + c.name + ":" +
                               std::to_string(peer.local_port)};
        }
      }
    }
    std::erase_if(first_seen, [&](const auto& entry) { return present.count(entry.first) == 0; });
    if (!best) return {};
    return best->text + " (seen " + age_text(now - best->seen) + ")";
  }

  // The tracker answers with the oldest first (lowest inodes): a few name the oldest.
  static constexpr std::uint32_t kPeersPerContainer = 8;
};

TrackerDrainConnections::TrackerDrainConnections(TrackerConnectionsOptions options)
    : options_(std::move(options)), peers_(std::make_unique<Peers>()) {}
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
  auto next_peers_question = started;
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
    // Ask who holds the connections once per tick, from the first counts on, so that
    // each tick's line names the oldest from an answer the tick before asked for.
    if (progress.connected && Clock::now() >= next_peers_question) {
      Peers::ask(client, containers, progress.containers);
      next_peers_question = Clock::now() + tick;
    }
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
        progress.oldest_peer = peers_->oldest(client, containers, progress.containers);
        next_tick = at + tick;
      }
      // No connection left: no oldest one (the name of the last tick's is stale).
      if (progress.connected && progress.unknown == 0 && progress.total == 0) progress.oldest_peer.clear();
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
