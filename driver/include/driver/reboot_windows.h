// Maintenance windows: when a host may start a reboot drain. A window is days of the
// week, a local start time, a duration and an IANA time zone ("mon-fri 01:00 4h
// Europe/Berlin"); it may cross midnight. A tier has any number of windows, and so may
// one host, which narrows its tier's: a host may start while one of its tier's windows
// AND one of its own are open (a side without windows is always open). An agent's own
// --window windows are a third side, narrowing both. The gate is
// checked when a drain would start, before the host takes its tier slot, and again once
// it holds the slot; a drain that started inside a window finishes whatever the clock.
//
// Local times and daylight saving time (tested on Europe/Berlin's spring-forward and
// fall-back days):
//   - a start time that does not exist that day (skipped by a spring-forward) opens the
//     window at the end of the gap, e.g. 02:30 opens at 03:00 on the day clocks jump;
//   - a start time that exists twice (a fall-back) opens at the first of them;
//   - the duration is elapsed time: a 4 h window is open 4 hours, even across a change.
//
// Fails closed: a window that cannot be read or evaluated (garbage in etcd, an unknown
// time zone) closes the gate, and the reason says which one and why.
//
// Stored in etcd under the prefix P, one key per window, so `rolling-reboot` and every
// agent see the same ones:
//   P/windows/tier/<tier>/<name>   {"days":"mon-fri","start":"01:00","duration":"4h","zone":"Europe/Berlin"}
//   P/windows/host/<hostname>/<name>  (the same)
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "driver/etcd_client.h"
#include "driver/gate_state.h"
#include "skopos/result.h"

namespace skopos::driver {

using SysSeconds = std::chrono::time_point<std::chrono::system_clock, std::chrono::seconds>;

// The longest window: a week (every day of it open is what "no windows" means).
inline constexpr std::chrono::hours kMaxWindowDuration{7 * 24};

struct RebootWindow {
  std::string name;
  std::uint8_t days = 0;            // bit 0 Monday ... bit 6 Sunday
  std::chrono::minutes start{0};    // local time of day, [00:00, 24:00)
  std::chrono::seconds duration{0};  // (0, kMaxWindowDuration]
  std::string zone = "UTC";          // an IANA time zone name

  // "mon-fri 01:00 4h Europe/Berlin".
  std::string describe() const;
  // {"days","start","duration","zone"}, as stored in etcd.
  std::string to_json() const;
};

// Builds a window from its parts as people write them, checking each: a name of
// [A-Za-z0-9._-]{1,64}; days "mon-fri", "sat,sun", "fri-mon" (wrapping), "daily"; start
// "HH:MM"; duration "4h", "90m", "3600s" (1 minute to 7 days); zone an IANA name this
// host's tz database knows ("UTC" included). The error names the part and what is wrong.
Result<RebootWindow, std::string> make_window(std::string_view name, std::string_view days,
                                                   std::string_view start, std::string_view duration,
                                                   std::string_view zone);
// Windows written on one line, as the agent's --window option (and its config file)
// takes them: "DAYS HH:MM DURATION [ZONE]", several separated by ';'. They are named
// local-1, local-2, ...; the error names the one that is wrong.
Result<std::vector<RebootWindow>, std::string> parse_window_specs(std::string_view text);
// A window stored as JSON (to_json()); the error says what is wrong with it.
Result<RebootWindow, std::string> parse_window_json(std::string_view name, std::string_view json);

// The windows that apply to one host: its tier's and its own in etcd, and its agent's
// --window. A host may start while one window of each side that has any is open. A
// window that could not be read is kept as a problem, which closes the gate.
struct WindowSet {
  std::vector<RebootWindow> tier;
  std::vector<RebootWindow> host;
  std::vector<RebootWindow> local;  // the agent's own (--window): only its agent knows them
  std::vector<std::string> problems;
};

// Whether a host may start now, and until or from when.
struct WindowVerdict {
  bool open = false;
  // Always set: "no maintenance windows", "inside window nights (tier worker) until Tue
  // 05:00 Europe/Berlin, in 3 h 12 min", "outside window nights (tier worker): opens Tue
  // 01:00 Europe/Berlin, in 3 h 12 min", or why the gate cannot be evaluated.
  std::string reason;
  // Open: when it closes; closed: when it opens (nullopt: not within two weeks, or never
  // without a change of the windows).
  std::optional<SysSeconds> next_change;
  bool unknown = false;  // closed because it could not be evaluated
  // pauses_and_windows(): each of its gates ("pause", "window") evaluated on its own.
  std::vector<GateState> gates;
};

// Pure and thread-safe (the tz database is read-only once loaded); never throws: a zone
// that cannot be used closes the gate with the reason.
WindowVerdict evaluate_windows(const WindowSet& windows, SysSeconds now);

// "3 h 12 min", "45 s": how long until `then`, for people.
std::string format_wait(std::chrono::seconds wait);

// The windows in etcd. Not thread-safe: one per EtcdClient.
class WindowStore {
 public:
  WindowStore(EtcdClient& etcd, std::string prefix);

  enum class Scope : std::uint8_t { kTier, kHost };
  struct Stored {
    Scope scope = Scope::kTier;
    std::string owner;  // the tier or the host name
    RebootWindow window;
    std::string problem;  // non-empty: the stored value is not a window
  };

  // The windows that apply to a host of `tier` named `hostname`.
  Result<WindowSet, std::string> for_host(const std::string& tier, const std::string& hostname);
  // Every stored window, for `skopos window show`.
  Result<std::vector<Stored>, std::string> list();
  // Of `all` (list()), the windows that apply to a host of `tier` named `hostname`: one
  // read for many hosts (rolling-reboot --status).
  static WindowSet select(const std::vector<Stored>& all, const std::string& tier, const std::string& hostname);
  Result<void, std::string> set(Scope scope, const std::string& owner, const RebootWindow& window);
  // Removes one window (`name`), or every window of the owner when `name` is empty;
  // returns how many were removed.
  Result<std::int64_t, std::string> clear(Scope scope, const std::string& owner, const std::string& name);

  // A name that may stand in a window's key: a tier, a host name or a window name of 1 to
  // 64 of A-Z a-z 0-9 . _ -.
  static bool valid_part(std::string_view name);

  // The keys every window lives under, and those of one tier or host (for a watch: the
  // agent wakes when its windows change).
  static std::string root(const std::string& prefix) { return prefix + "/windows/"; }
  static std::string owner_root(const std::string& prefix, Scope scope, const std::string& owner) {
    return root(prefix) + (scope == Scope::kTier ? "tier/" : "host/") + owner + "/";
  }
  std::string root() const { return root(prefix_); }

 private:
  std::string key(Scope scope, const std::string& owner, const std::string& name = {}) const;

  EtcdClient& etcd_;
  std::string prefix_;
};

}  // namespace skopos::driver
