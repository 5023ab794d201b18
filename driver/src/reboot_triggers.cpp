#include "driver/reboot_triggers.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <vector>

#include "driver/pauses.h"
#include "driver/reboot_windows.h"
#include "skopos/log.h"
#include "skopos/subprocess.h"

namespace skopos::driver {

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;


}  // namespace

WatchedRebootTriggers::WatchedRebootTriggers(Options options, EtcdClient& etcd, std::unique_ptr<EtcdClient> watch_etcd)
    : options_(std::move(options)),
      watch_etcd_(std::move(watch_etcd)),
      rolling_(etcd, options_.prefix),
      watch_rolling_(*watch_etcd_, options_.prefix),
      wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      inotify_(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK)) {
  const fs::path dir = fs::path(options_.trigger_file).parent_path();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!inotify_ || ::inotify_add_watch(inotify_.get(), dir.c_str(), IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
    log_warning("inotify on '" + dir.string() + "': " + std::strerror(errno) + "; the trigger file is read every recheck");
  }
  if (!options_.reboot_required_file.empty()) {
    const fs::path required = fs::path(options_.reboot_required_file).parent_path();
    if (!inotify_ ||
        ::inotify_add_watch(inotify_.get(), required.c_str(), IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
      log_info("inotify on '" + required.string() + "': " + std::strerror(errno) + "; '" +
               options_.reboot_required_file + "' is looked at every recheck");
    }
  }
  thread_ = std::thread([this] { watch(); });
}

WatchedRebootTriggers::~WatchedRebootTriggers() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

std::string WatchedRebootTriggers::describe() const {
  std::string out = "'" + options_.trigger_file + "'";
  if (!options_.reboot_required_file.empty()) out += ", '" + options_.reboot_required_file + "'";
  if (!options_.sentinel.empty()) out += ", the reboot sentinel '" + options_.sentinel.front() + "'";
  if (options_.fleetlock != nullptr) out += ", the updater's FleetLock calls";
  return out + " and rolling reboots of " + tier_name(options_.tier);
}

namespace {

// When this boot began (unix seconds, /proc/stat's btime); 0 if unknown.
std::int64_t boot_time() {
  std::ifstream stat("/proc/stat");
  std::string word;
  while (stat >> word) {
    if (word == "btime") {
      std::int64_t at = 0;
      stat >> at;
      return at;
    }
  }
  return 0;
}

}  // namespace

std::string WatchedRebootTriggers::sentinel_record() const {
  return (fs::path(options_.trigger_file).parent_path() / "sentinel-rebooted").string();
}

std::string WatchedRebootTriggers::own_signs(std::string& note) {
  if (!options_.reboot_required_file.empty()) {
    struct stat st {};
    if (::stat(options_.reboot_required_file.c_str(), &st) == 0) {
      // On /run the file cannot outlive a boot: one older than this boot survived the
      // reboot it asked for (not on /run, or not removed), and would ask again forever.
      const std::int64_t booted = boot_time();
      if (booted == 0 || st.st_mtime >= booted) return "reboot-required";
      note = "'" + options_.reboot_required_file +
             "' is older than this boot: it survived the reboot it asked for, and asks for no other (remove it, or "
             "touch it to ask again)";
    }
  }
  if (options_.sentinel.empty()) return "";
  // Its last answer while it is fresh: a closed health gate makes the agent take a turn
  // every second, and the sentinel is a process to start.
  const auto now = std::chrono::steady_clock::now();
  if (sentinel_ran_ && now - *sentinel_ran_ < options_.sentinel_every) {
    note = sentinel_note_;
    return sentinel_answer_;
  }
  sentinel_ran_ = now;
  sentinel_answer_ = run_sentinel(sentinel_note_);
  note = sentinel_note_;
  return sentinel_answer_;
}

std::string WatchedRebootTriggers::run_sentinel(std::string& note) {
  note.clear();
  std::string command;
  for (const std::string& word : options_.sentinel) command += (command.empty() ? "" : " ") + word;
  auto ran = run_program(options_.sentinel, "", options_.sentinel_timeout);
  if (!ran) {
    note = "reboot sentinel '" + command + "' did not answer: " + ran.error().message() + "; it asks for no reboot";
    ++sentinel_failures_;
    return "";
  }
  if (ran->exit_code == 1) {
    std::error_code ignored;
    fs::remove(sentinel_record(), ignored);  // it said "not needed": it may ask again
    return "";
  }
  if (ran->exit_code != 0) {
    std::string err = ran->err.substr(0, ran->err.find('\n')).substr(0, 200);
    note = "reboot sentinel '" + command + "' exited " + std::to_string(ran->exit_code) +
           (err.empty() ? "" : " (" + err + ")") +
           ", neither 0 (reboot needed) nor 1 (not needed): it asks for no reboot";
    ++sentinel_failures_;
    return "";
  }
  // Asking again in a later boot than the one whose reboot it asked for, without having
  // said "not needed" in between, is a loop (kept on disk: an agent restart does not
  // forget it).
  std::string asked_in;
  std::ifstream(sentinel_record()) >> asked_in;
  if (!asked_in.empty() && asked_in != options_.boot_id) {
    note = "reboot sentinel '" + command +
           "' still asks for a reboot after the one it asked for: not rebooting again for it until it has said "
           "that none is needed (exit 1)";
    ++sentinel_failures_;
    return "";
  }
  return "sentinel";
}

void WatchedRebootTriggers::wake() {
  const std::uint64_t one = 1;
  (void)::write(wake_.get(), &one, sizeof one);
}

Result<std::string, std::string> WatchedRebootTriggers::requested() {
  if (::access(options_.trigger_file.c_str(), F_OK) == 0) return std::string("file");
  if (options_.fleetlock != nullptr) {
    if (std::string asked = options_.fleetlock->requested(); !asked.empty()) return asked;
  }
  std::string note;
  const std::string own = own_signs(note);
  if (!own.empty()) return own;
  // A problem is reported once (the agent logs a returned error as a warning), and the
  // other sources are still looked at; it counts as told only when it was returned.
  const bool tell = !note.empty() && note != told_;
  if (note.empty()) told_.clear();
  auto pending = rolling_.pending(tier_name(options_.tier), options_.machine_id, options_.hostname);
  if (!pending) {
    if (tell) told_ = note;
    return unexpected("rolling reboot: " + pending.error().message + (tell ? "; " + note : ""));
  }
  if (*pending) return rolling_trigger((*pending)->id);
  if (tell) {
    told_ = note;
    return unexpected(note);
  }
  return std::string();
}

Result<void, std::string> WatchedRebootTriggers::mark_rolling_done(const std::string& trigger, bool pending_too) {
  // When the reboot is journaled, one reboot answers every request there was: a rolling
  // request waiting for this host then is done too, whatever asked (or the host would
  // reboot again for the roll). Back after it, only the trigger's own (a request made
  // during the recovery was not answered by this reboot).
  std::optional<std::string> id = rolling_request_id(trigger);
  if (!id) {
    if (!pending_too) return {};
    auto pending = rolling_.pending(tier_name(options_.tier), options_.machine_id, options_.hostname);
    if (!pending) return unexpected("rolling reboot: " + pending.error().message);
    if (!*pending) return {};
    id = (*pending)->id;
  }
  auto done = rolling_.mark_done(tier_name(options_.tier), options_.machine_id, options_.hostname, *id);
  if (!done) return unexpected("rolling reboot: " + done.error().message);
  return {};
}

Result<void, std::string> WatchedRebootTriggers::consumed(const std::string& trigger) {
  // The file goes whatever asked: one reboot answers every request there was.
  std::error_code ec;
  fs::remove(options_.trigger_file, ec);
  if (options_.fleetlock != nullptr) options_.fleetlock->taken(trigger);
  sentinel_ran_.reset();  // asked afresh after this reboot
  if (trigger == "sentinel") {
    // The boot whose reboot the sentinel asked for; written before the reboot command.
    std::ofstream(sentinel_record()) << options_.boot_id << "\n";
  }
  return mark_rolling_done(trigger, true);
}

Result<void, std::string> WatchedRebootTriggers::completed(const std::string& trigger) {
  return mark_rolling_done(trigger, false);
}

void WatchedRebootTriggers::rebooting(const std::string& trigger) {
  if (options_.fleetlock != nullptr) options_.fleetlock->ready(trigger);
}

Result<void, std::string> WatchedRebootTriggers::failed(const std::string& trigger, const std::string& why) {
  const auto id = rolling_request_id(trigger);
  if (!id) return {};
  auto noted = rolling_.mark_failed(tier_name(options_.tier), options_.machine_id, options_.hostname, *id, why);
  if (!noted) return unexpected("rolling reboot: " + noted.error().message);
  return {};
}

void WatchedRebootTriggers::wait(std::chrono::milliseconds timeout, const std::atomic<bool>& stop,
                                 FunctionRef<void()> alive) {
  const auto until = Clock::now() + timeout;
  while (!stop.load() && Clock::now() < until) {
    alive();
    pollfd fds[2] = {{wake_.get(), POLLIN, 0}, {inotify_ ? inotify_.get() : -1, POLLIN, 0}};
    if (::poll(fds, 2, 200) > 0) {
      alignas(inotify_event) char buffer[4096];
      bool woken = false;
      while (::read(wake_.get(), buffer, 8) > 0) woken = true;
      // Only the files watched count: /run sees pid files and utmp all day long.
      const std::string names[2] = {fs::path(options_.trigger_file).filename().string(),
                                    fs::path(options_.reboot_required_file).filename().string()};
      ssize_t n = 0;
      while (inotify_ && (n = ::read(inotify_.get(), buffer, sizeof buffer)) > 0) {
        for (ssize_t at = 0; at + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
          const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
          const std::string name = event->len > 0 ? std::string(event->name) : std::string();
          if (!name.empty() && (name == names[0] || name == names[1])) woken = true;
          at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
        }
      }
      if (woken) return;
    }
  }
}

void WatchedRebootTriggers::watch() {
  const std::string tier = tier_name(options_.tier);
  std::int64_t revision = 0;
  bool member = false;  // this host is recorded as one of the tier's
  while (!stopping_) {
    if (!member) member = static_cast<bool>(watch_rolling_.join_tier(tier, options_.machine_id, options_.hostname));
    if (revision == 0) {
      auto status = watch_rolling_.status(tier);
      if (!status) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        continue;
      }
      revision = status->revision;
    }
    // A watch, not a poll: it stays open (the destructor's stop ends it within 100 ms)
    // and is only re-armed after a change, or every few minutes in case a proxy on the
    // way closes quiet connections. It watches the request, this host's maintenance
    // windows (its tier's and its own) and pauses: a window set to open now, or a resume,
    // wakes the agent at once rather than at its next recheck.
    std::vector<WatchSpec> watched = {WatchSpec{watch_rolling_.request_key(tier), {}, false}};
    for (const std::string& windows :
         {WindowStore::owner_root(options_.prefix, WindowStore::Scope::kTier, tier),
          WindowStore::owner_root(options_.prefix, WindowStore::Scope::kHost, options_.hostname)}) {
      watched.push_back(WatchSpec{windows, EtcdClient::prefix_end(windows), false});
    }
    for (const WindowStore::Scope scope : {WindowStore::Scope::kTier, WindowStore::Scope::kHost}) {
      watched.push_back(WatchSpec{
          PauseStore::key(options_.prefix, scope, scope == WindowStore::Scope::kTier ? tier : options_.hostname), {},
          false});
    }
    auto changed =
        watch_etcd_->wait_for_change(watched, revision + 1, Clock::now() + std::chrono::minutes(5), &stopping_);
    if (!changed) {
      revision = 0;
      std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }
    if (!changed->events.empty() || changed->compacted) {
      // Go on from the change (a change made while the agent reads is not missed); after
      // a compaction, from a fresh read.
      revision = changed->compacted ? 0 : changed->revision;
      wake();
    }
  }
}

}  // namespace skopos::driver
