#include "driver/reboot_windows.h"

#include <date/tz.h>
#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <stdexcept>

#include "skopos/cli_args.h"
#include "skopos/json_writer.h"

namespace skopos::driver {

namespace {

constexpr const char* kDayNames[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
constexpr std::uint8_t kEveryDay = 0x7F;
// Occurrences are computed over [now - a week and a day, now + two weeks]: enough for a
// window of a week that started before now, and for the next opening of any weekly set.
constexpr std::chrono::hours kLookBehind{8 * 24};
constexpr std::chrono::hours kLookAhead{14 * 24};

std::optional<unsigned> day_index(std::string_view name) {
  for (unsigned i = 0; i < 7; ++i) {
    if (name == kDayNames[i]) return i;
  }
  return std::nullopt;
}

Result<std::uint8_t, std::string> parse_days(std::string_view text) {
  if (text == "daily" || text == "*") return kEveryDay;
  std::uint8_t days = 0;
  for (const std::string& part : split_list(text)) {
    const auto dash = part.find('-');
    const auto first = day_index(std::string_view(part).substr(0, dash));
    const auto last = dash == std::string::npos ? first : day_index(std::string_view(part).substr(dash + 1));
    if (!first || !last) {
      return unexpected("days '" + std::string(text) + "': '" + part +
                        "' is not a day or a range of days (mon tue wed thu fri sat sun, e.g. mon-fri or sat,sun)");
    }
    for (unsigned day = *first;; day = (day + 1) % 7) {  // a range may wrap: fri-mon
      days = static_cast<std::uint8_t>(days | (1u << day));
      if (day == *last) break;
    }
  }
  if (days == 0) return unexpected("days '" + std::string(text) + "': no day given (e.g. mon-fri, sat,sun or daily)");
  return days;
}

std::string days_text(std::uint8_t days) {
  if (days == kEveryDay) return "daily";
  const auto on = [days](unsigned day) { return (days >> (day % 7) & 1u) != 0; };
  // From Monday, or from the first day of a run that wraps past Sunday ("fri-mon").
  unsigned begin = 7;
  while (on(begin) && on(begin - 1)) --begin;
  std::string out;
  for (unsigned k = 0; k < 7; ++k) {
    const unsigned day = begin + k;
    if (!on(day)) continue;
    unsigned run = 0;  // days on right after `day`, within this week's lap
    while (k + run + 1 < 7 && on(day + run + 1)) ++run;
    if (!out.empty()) out += ',';
    out += kDayNames[day % 7];
    if (run > 0) out += std::string(run == 1 ? "," : "-") + kDayNames[(day + run) % 7];
    k += run;
  }
  return out;
}

Result<std::chrono::minutes, std::string> parse_start(std::string_view text) {
  unsigned hours = 24;
  unsigned minutes = 60;
  const char* end = text.data() + text.size();
  const auto h = std::from_chars(text.data(), end, hours);
  bool ok = h.ec == std::errc{} && h.ptr - text.data() == 2 && h.ptr < end &&
            *h.ptr == ':';
  if (ok) {
    const auto m = std::from_chars(h.ptr + 1, end, minutes);
    ok = m.ec == std::errc{} && m.ptr == end && m.ptr - h.ptr == 3;
  }
  if (!ok || hours > 23 || minutes > 59) {
    return unexpected("start '" + std::string(text) + "': not a time of day as HH:MM (00:00 to 23:59)");
  }
  return std::chrono::minutes(hours * 60 + minutes);
}

std::string two_digits(long value) {
  return std::string(1, static_cast<char>('0' + value / 10)) + static_cast<char>('0' + value % 10);
}

std::string start_text(std::chrono::minutes start) {
  return two_digits(start.count() / 60) + ":" + two_digits(start.count() % 60);
}

// The zone, or why there is none. locate_zone throws for a name the tz database lacks;
// the zone's file is read only when first used, so it is used here once, inside the
// try: a file that is missing or damaged is reported, not thrown later.
Result<const date::time_zone*, std::string> find_zone(std::string_view name) {
  try {
    const date::time_zone* zone = date::locate_zone(name);
    (void)zone->get_info(date::sys_seconds{});
    return zone;
  } catch (const std::exception& error) {
    return unexpected("zone '" + std::string(name) + "': not a time zone this host knows (" + error.what() +
                      "); use an IANA name such as UTC or Europe/Berlin");
  }
}

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

// ---- occurrences -----------------------------------------------------------------------

struct Interval {
  SysSeconds begin;
  SysSeconds end;
  const RebootWindow* opener;  // the window whose occurrence opens it
  const RebootWindow* closer;  // and the one whose occurrence closes it
};

// When local time `local` first happens in `zone`: itself, the first of two (a fall-back
// repeats it), or the end of the gap it falls in (a spring-forward skips it).
SysSeconds first_instant(const date::time_zone& zone, date::local_seconds local) {
  const date::local_info info = zone.get_info(local);
  switch (info.result) {
    case date::local_info::unique:
    case date::local_info::ambiguous: return SysSeconds(local.time_since_epoch() - info.first.offset);
    case date::local_info::nonexistent: return info.first.end;
  }
  return SysSeconds(local.time_since_epoch() - info.first.offset);
}

void add_occurrences(const RebootWindow& window, const date::time_zone& zone, SysSeconds from, SysSeconds to,
                     std::vector<Interval>& out) {
  const auto first_day = date::floor<date::days>(zone.to_local(from));
  const auto last_day = date::floor<date::days>(zone.to_local(to)) + date::days(1);
  for (auto day = first_day; day <= last_day; day += date::days(1)) {
    const unsigned weekday = date::weekday(day).iso_encoding() - 1;  // Monday 0
    if ((window.days >> weekday & 1u) == 0) continue;
    const SysSeconds begin = first_instant(zone, date::local_seconds(day) + window.start);
    const SysSeconds end = begin + window.duration;
    if (end > from && begin < to) out.push_back({begin, end, &window, &window});
  }
}

// The union of a set of intervals, sorted.
std::vector<Interval> merged(std::vector<Interval> intervals) {
  std::sort(intervals.begin(), intervals.end(), [](const Interval& a, const Interval& b) { return a.begin < b.begin; });
  std::vector<Interval> out;
  for (const Interval& next : intervals) {
    if (!out.empty() && next.begin <= out.back().end) {
      if (next.end > out.back().end) {
        out.back().end = next.end;
        out.back().closer = next.closer;
      }
      continue;
    }
    out.push_back(next);
  }
  return out;
}

std::vector<Interval> intersected(const std::vector<Interval>& a, const std::vector<Interval>& b) {
  std::vector<Interval> out;
  std::size_t i = 0;
  std::size_t j = 0;
  while (i < a.size() && j < b.size()) {
    const Interval& x = a[i];
    const Interval& y = b[j];
    const SysSeconds begin = std::max(x.begin, y.begin);
    const SysSeconds end = std::min(x.end, y.end);
    if (begin < end) {
      // The window that opens the overlap is the side that opens last; a side without
      // windows names none.
      const auto pick = [](const RebootWindow* first, const RebootWindow* second) {
        return first != nullptr ? first : second;
      };
      out.push_back({begin, end, x.begin >= y.begin ? pick(x.opener, y.opener) : pick(y.opener, x.opener),
                     x.end <= y.end ? pick(x.closer, y.closer) : pick(y.closer, x.closer)});
    }
    if (x.end < y.end) {
      ++i;
    } else {
      ++j;
    }
  }
  return out;
}

// "Tue 01:00 Europe/Berlin".
std::string local_text(SysSeconds at, const RebootWindow& window) {
  auto zone = find_zone(window.zone);
  if (!zone) return date::format("%a %H:%M UTC", at);
  return date::format("%a %H:%M ", date::make_zoned(*zone, at)) + window.zone;
}

std::string window_names(const std::vector<RebootWindow>& windows) {
  std::string out;
  for (const RebootWindow& window : windows) out += (out.empty() ? "'" : ", '") + window.name + "'";
  return out;
}

}  // namespace

std::string RebootWindow::describe() const {
  return days_text(days) + " " + start_text(start) + " " + format_duration(duration) + " " + zone;
}

std::string RebootWindow::to_json() const {
  std::string out;
  JsonWriter w(out);
  w.begin_object().key("days").value(days_text(days)).key("start").value(start_text(start));
  w.key("duration").value(format_duration(duration)).key("zone").value(zone).end_object();
  return out;
}

Result<RebootWindow, std::string> make_window(std::string_view name, std::string_view days,
                                                   std::string_view start, std::string_view duration,
                                                   std::string_view zone) {
  if (!valid_name(name)) {
    return unexpected("window name '" + std::string(name) + "': use 1 to 64 of A-Z a-z 0-9 . _ -");
  }
  RebootWindow window;
  window.name = std::string(name);
  auto parsed_days = parse_days(days);
  if (!parsed_days) return unexpected(std::move(parsed_days).error());
  window.days = *parsed_days;
  auto parsed_start = parse_start(start);
  if (!parsed_start) return unexpected(std::move(parsed_start).error());
  window.start = *parsed_start;
  const auto parsed_duration = parse_duration(duration);
  if (!parsed_duration || *parsed_duration < std::chrono::minutes(1) || *parsed_duration > kMaxWindowDuration ||
      *parsed_duration % std::chrono::seconds(1) != std::chrono::microseconds(0)) {
    return unexpected("duration '" + std::string(duration) +
                      "': not a duration of whole seconds from 1m to 168h (e.g. 90m or 4h)");
  }
  window.duration = std::chrono::duration_cast<std::chrono::seconds>(*parsed_duration);
  auto found = find_zone(zone);
  if (!found) return unexpected(std::move(found).error());
  window.zone = std::string(zone);
  return window;
}

Result<std::vector<RebootWindow>, std::string> parse_window_specs(std::string_view text) {
  std::vector<RebootWindow> out;
  for (const std::string& part : split_list(text, ';')) {
    const std::vector<std::string> words = split_list(part, ' ');
    if (words.empty()) continue;
    std::string spec;  // as written, without the spaces around it
    for (const std::string& word : words) spec += (spec.empty() ? "" : " ") + word;
    if (words.size() < 3 || words.size() > 4) {
      return unexpected("window '" + spec + "': write DAYS HH:MM DURATION [ZONE], e.g. mon-fri 01:00 4h Europe/Berlin");
    }
    auto window = make_window("local-" + std::to_string(out.size() + 1), words[0], words[1], words[2],
                              words.size() == 4 ? words[3] : "UTC");
    if (!window) return unexpected("window '" + spec + "': " + window.error());
    out.push_back(std::move(window).value());
  }
  return out;
}

Result<RebootWindow, std::string> parse_window_json(std::string_view name, std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  if (parser.parse(json.data(), json.size()).get(object) != simdjson::SUCCESS) {
    return unexpected(std::string("not a JSON object"));
  }
  std::string_view parts[4];
  const char* keys[4] = {"days", "start", "duration", "zone"};
  for (int i = 0; i < 4; ++i) {
    if (object[keys[i]].get(parts[i]) != simdjson::SUCCESS) {
      return unexpected(std::string("no string \"") + keys[i] + "\"");
    }
  }
  return make_window(name, parts[0], parts[1], parts[2], parts[3]);
}

std::string format_wait(std::chrono::seconds wait) {
  const long total = std::max<long>(0, wait.count());
  if (total < 60) return std::to_string(total) + " s";
  const long minutes = (total + 59) / 60;  // "in 1 min" until it is due
  if (minutes < 60) return std::to_string(minutes) + " min";
  if (minutes < 48 * 60) {
    return std::to_string(minutes / 60) + " h" + (minutes % 60 != 0 ? " " + std::to_string(minutes % 60) + " min" : "");
  }
  return std::to_string(minutes / (24 * 60)) + " days " + std::to_string(minutes / 60 % 24) + " h";
}

namespace {

WindowVerdict evaluate(const WindowSet& windows, SysSeconds now) {
  WindowVerdict verdict;
  if (!windows.problems.empty()) {
    verdict.reason = "maintenance windows cannot be evaluated: " + windows.problems.front();
    verdict.unknown = true;
    return verdict;
  }
  if (windows.tier.empty() && windows.host.empty() && windows.local.empty()) {
    verdict.open = true;
    verdict.reason = "no maintenance windows";
    return verdict;
  }
  const SysSeconds from = now - kLookBehind;
  const SysSeconds to = now + kLookAhead;
  // A side without windows is open over the whole horizon.
  const auto side = [&](const std::vector<RebootWindow>& list) -> Result<std::vector<Interval>, std::string> {
    if (list.empty()) return std::vector<Interval>{{from, to, nullptr, nullptr}};
    std::vector<Interval> all;
    for (const RebootWindow& window : list) {
      auto zone = find_zone(window.zone);
      if (!zone) return unexpected("window '" + window.name + "': " + zone.error());
      add_occurrences(window, **zone, from, to, all);
    }
    return merged(std::move(all));
  };
  auto tier = side(windows.tier);
  auto host = side(windows.host);
  auto local = side(windows.local);
  for (const auto* failed : {&tier, &host, &local}) {
    if (!*failed) {
      verdict.reason = "maintenance windows cannot be evaluated: " + failed->error();
      verdict.unknown = true;
      return verdict;
    }
  }
  const std::vector<Interval> open = intersected(intersected(*tier, *host), *local);
  const auto names = [&](const RebootWindow* window) {
    if (window == nullptr) return std::string("?");
    const auto in = [window](const std::vector<RebootWindow>& list) {
      return std::any_of(list.begin(), list.end(), [&](const RebootWindow& w) { return &w == window; });
    };
    return "'" + window->name + "'" + (in(windows.tier) ? " (tier)" : in(windows.host) ? " (host)" : " (local)");
  };
  for (const Interval& interval : open) {
    if (interval.begin <= now && now < interval.end) {
      verdict.open = true;
      verdict.next_change = interval.end;
      verdict.reason = "inside window " + names(interval.opener) + " until " +
                       local_text(interval.end, interval.closer != nullptr ? *interval.closer : *interval.opener) +
                       ", in " + format_wait(interval.end - now);
      return verdict;
    }
    if (interval.begin > now) {
      verdict.next_change = interval.begin;
      verdict.reason = "outside window " + names(interval.opener) + ": opens " +
                       local_text(interval.begin, *interval.opener) + ", in " + format_wait(interval.begin - now);
      return verdict;
    }
  }
  std::string which;
  for (const auto& [list, label] : {std::pair{&windows.tier, "tier's "}, std::pair{&windows.host, "host's "},
                                   std::pair{&windows.local, "local "}}) {
    if (!list->empty()) which += (which.empty() ? "" : "; ") + std::string(label) + window_names(*list);
  }
  const int sides = !windows.tier.empty() + !windows.host.empty() + !windows.local.empty();
  verdict.reason = "outside windows " + which + ": none opens in the next 14 days" +
                   (sides > 1 ? " (do they overlap?)" : "");
  return verdict;
}

}  // namespace

WindowVerdict evaluate_windows(const WindowSet& windows, SysSeconds now) {
  // The date library throws when a zone's file turns bad after it was first read (a
  // tzdata upgrade under a running agent): a gate that cannot be evaluated is closed.
  try {
    return evaluate(windows, now);
  } catch (const std::exception& error) {
    return {false, std::string("maintenance windows cannot be evaluated: ") + error.what(), std::nullopt, true, {}};
  }
}

// ---- WindowStore -------------------------------------------------------------------------

WindowStore::WindowStore(EtcdClient& etcd, std::string prefix) : etcd_(etcd), prefix_(std::move(prefix)) {}

bool WindowStore::valid_part(std::string_view name) { return valid_name(name); }

std::string WindowStore::key(Scope scope, const std::string& owner, const std::string& name) const {
  return owner_root(prefix_, scope, owner) + name;
}

Result<std::vector<WindowStore::Stored>, std::string> WindowStore::list() {
  auto found = etcd_.range(root(), EtcdClient::prefix_end(root()));
  if (!found) return unexpected("maintenance windows: " + found.error().message);
  std::vector<Stored> out;
  for (const KeyValue& kv : found->kvs) {
    // root()/<tier|host>/<owner>/<name>
    const std::string_view rest = std::string_view(kv.key).substr(root().size());
    const auto slash = rest.find('/');
    const auto second = slash == std::string_view::npos ? slash : rest.find('/', slash + 1);
    Stored stored;
    const std::string_view scope = rest.substr(0, slash);
    if (second == std::string_view::npos || (scope != "tier" && scope != "host")) {
      stored.problem = "key " + kv.key + " is not <tier|host>/<owner>/<name>";
      out.push_back(std::move(stored));
      continue;
    }
    stored.scope = scope == "tier" ? Scope::kTier : Scope::kHost;
    stored.owner = std::string(rest.substr(slash + 1, second - slash - 1));
    const std::string name(rest.substr(second + 1));
    auto window = parse_window_json(name, kv.value);
    if (window) {
      stored.window = std::move(window).value();
    } else {
      stored.window.name = name;
      stored.problem = "window " + kv.key + ": " + window.error();
    }
    out.push_back(std::move(stored));
  }
  return out;
}

WindowSet WindowStore::select(const std::vector<Stored>& all, const std::string& tier, const std::string& hostname) {
  WindowSet set;
  for (const Stored& stored : all) {
    const bool applies = stored.scope == Scope::kTier ? stored.owner == tier : stored.owner == hostname;
    // A key that cannot be placed might be ours: closed.
    if (!stored.problem.empty() && (applies || stored.owner.empty())) {
      set.problems.push_back(stored.problem);
      continue;
    }
    if (!applies) continue;
    (stored.scope == Scope::kTier ? set.tier : set.host).push_back(stored.window);
  }
  return set;
}

Result<WindowSet, std::string> WindowStore::for_host(const std::string& tier, const std::string& hostname) {
  auto all = list();
  if (!all) return unexpected(std::move(all).error());
  return select(*all, tier, hostname);
}

Result<void, std::string> WindowStore::set(Scope scope, const std::string& owner, const RebootWindow& window) {
  if (!valid_name(owner)) return unexpected("'" + owner + "' is not a tier or host name");
  auto put = etcd_.put(key(scope, owner, window.name), window.to_json());
  if (!put) return unexpected("maintenance window " + window.name + ": " + put.error().message);
  return {};
}

Result<std::int64_t, std::string> WindowStore::clear(Scope scope, const std::string& owner, const std::string& name) {
  if (!valid_name(owner)) return unexpected("'" + owner + "' is not a tier or host name");
  const std::string first = key(scope, owner, name);
  auto removed = name.empty() ? etcd_.delete_range(first, EtcdClient::prefix_end(first)) : etcd_.delete_range(first);
  if (!removed) return unexpected("maintenance windows: " + removed.error().message);
  return *removed;
}

}  // namespace skopos::driver
