// tracker-cli top: a live view of every container's connections, like top(1). Plain
// ANSI escapes (no curses dependency): each frame rewrites the screen in place, line by
// line, clearing only to the end of each line, so nothing flickers over ssh.
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <string>
#include <vector>

#include "commands.h"
#include "cli_options.h"
#include "stream_common.h"
#include "tracker/stream_client.h"

namespace skopos::tracker::cli {

namespace {

constexpr const char* kTopHelp =
    "usage: tracker-cli top [--socket PATH] [--name N,...] [--id ID,...] [--app APP,...]\n"
    "                       [--task TASK,...]\n"
    "\n"
    "A live view of the tracker: one row per container with its Marathon app or Mesos\n"
    "task, network mode, inbound connections by port, inbound and outbound totals and\n"
    "how fast inbound changes. It redraws on every change.\n"
    "\n"
    "keys: q quit   s next sort column   r reverse   / filter (Enter applies, Esc clears)\n"
    "\n"
    "%s";

const std::vector<std::string_view> kTopOptions = {"socket", "name", "id", "app", "task"};

volatile sig_atomic_t g_stop = 0;
volatile sig_atomic_t g_resized = 0;

using Clock = std::chrono::steady_clock;

// The terminal in raw mode on the alternate screen, restored on destruction.
class Terminal {
 public:
  Terminal() {
    ::tcgetattr(STDIN_FILENO, &saved_);
    termios raw = saved_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    ::tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    write("\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J");
  }
  ~Terminal() {
    write("\x1b[?25h\x1b[?1049l");
    ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  static void write(const std::string& text) {
    std::size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = ::write(STDOUT_FILENO, text.data() + done, text.size() - done);
      if (n <= 0) return;
      done += static_cast<std::size_t>(n);
    }
  }
  static std::pair<int, int> size() {
    winsize ws{};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) return {ws.ws_col, ws.ws_row};
    return {80, 24};
  }

 private:
  termios saved_{};
};

enum class SortBy { kInbound, kOutbound, kRate, kName };
const char* sort_name(SortBy by) {
  switch (by) {
    case SortBy::kInbound: return "inbound";
    case SortBy::kOutbound: return "outbound";
    case SortBy::kRate: return "rate";
    case SortBy::kName: return "name";
  }
  return "";
}

struct Rate {
  std::int64_t last_inbound = -1;
  Clock::time_point last_time{};
  double per_second = 0;  // exponentially smoothed change of inbound per second
};

std::string fit(std::string text, std::size_t width, bool right = false) {
  if (text.size() > width) text = width > 1 ? text.substr(0, width - 1) + "~" : text.substr(0, width);
  if (text.size() < width) text = right ? std::string(width - text.size(), ' ') + text : text + std::string(width - text.size(), ' ');
  return text;
}

}  // namespace

int top_command(int argc, char** argv) {
  const auto command_line = parse_command_line("tracker-cli top", kTopOptions, kTopHelp, argc, argv);
  if (!command_line) return 0;
  if (!::isatty(STDIN_FILENO) || !::isatty(STDOUT_FILENO)) {
    std::fprintf(stderr, "tracker-cli top: needs a terminal; use 'tracker-cli snapshot' or 'watch' in scripts\n");
    return 2;
  }
  ReconnectingClient client(client_options(command_line->config));
  // First connection before taking over the screen, so its error is readable.
  auto first = client.next(Clock::now() + std::chrono::seconds(5));
  if (!first) {
    std::fprintf(stderr, "tracker-cli top: %s\n", first.error().message().c_str());
    return 3;
  }
  struct sigaction stop {};
  stop.sa_handler = [](int) { g_stop = 1; };
  ::sigaction(SIGINT, &stop, nullptr);
  ::sigaction(SIGTERM, &stop, nullptr);
  struct sigaction resize {};
  resize.sa_handler = [](int) { g_resized = 1; };
  ::sigaction(SIGWINCH, &resize, nullptr);

  Terminal terminal;
  SortBy sort = SortBy::kInbound;
  bool reverse = false;
  std::string filter;
  std::string typing;
  bool editing = false;
  std::string status = "connected";
  std::map<std::string, Rate> rates;
  bool dirty = true;

  while (!g_stop) {
    // Keys first, so q is never stuck behind a busy stream.
    char keys[64];
    const ssize_t n = ::read(STDIN_FILENO, keys, sizeof keys);
    for (ssize_t i = 0; i < n; ++i) {
      const char key = keys[i];
      dirty = true;
      if (editing) {
        if (key == '\n' || key == '\r') {
          filter = typing;
          editing = false;
        } else if (key == 27) {
          filter.clear();
          editing = false;
        } else if (key == 127 || key == 8) {
          if (!typing.empty()) typing.pop_back();
        } else if (key >= 32) {
          typing.push_back(key);
        }
        continue;
      }
      if (key == 'q' || key == 'Q') g_stop = 1;
      if (key == 's') sort = static_cast<SortBy>((static_cast<int>(sort) + 1) % 4);
      if (key == 'r') reverse = !reverse;
      if (key == '/') {
        editing = true;
        typing = filter;
      }
    }
    if (g_stop) break;
    if (g_resized) {
      g_resized = 0;
      dirty = true;
      Terminal::write("\x1b[2J");
    }

    if (dirty) {
      const auto [width, height] = Terminal::size();
      const auto now = Clock::now();
      struct Row {
        const StreamContainer* c;
        double rate;
      };
      std::vector<Row> rows;
      std::uint64_t total_in = 0;
      for (const auto& [id, c] : client.containers()) {
        Rate& rate = rates[id];
        if (c.inbound >= 0) {
          if (rate.last_inbound >= 0) {
            const double dt = std::chrono::duration<double>(now - rate.last_time).count();
            if (dt > 0.05) {
              const double instant = static_cast<double>(c.inbound - rate.last_inbound) / dt;
              const double weight = std::min(1.0, dt / 2.0);
              rate.per_second = rate.per_second * (1 - weight) + instant * weight;
              rate.last_inbound = c.inbound;
              rate.last_time = now;
            }
          } else {
            rate.last_inbound = c.inbound;
            rate.last_time = now;
          }
          total_in += static_cast<std::uint64_t>(c.inbound);
        }
        if (!filter.empty() && c.name.find(filter) == std::string::npos &&
            app_text(c).find(filter) == std::string::npos) {
          continue;
        }
        rows.push_back({&c, rate.per_second});
      }
      std::sort(rows.begin(), rows.end(), [&](const Row& a, const Row& b) {
        bool less = false;
        switch (sort) {
          case SortBy::kInbound: less = a.c->inbound > b.c->inbound; break;
          case SortBy::kOutbound: less = a.c->outbound > b.c->outbound; break;
          case SortBy::kRate: less = std::fabs(a.rate) > std::fabs(b.rate); break;
          case SortBy::kName: less = a.c->name < b.c->name; break;
        }
        if (a.c->inbound == b.c->inbound && sort != SortBy::kName) less = a.c->name < b.c->name;
        return reverse ? !less : less;
      });

      const std::size_t w = static_cast<std::size_t>(std::max(width, 40));
      std::vector<std::string> lines;
      char clock[16];
      const std::time_t wall = std::time(nullptr);
      std::strftime(clock, sizeof clock, "%H:%M:%S", std::localtime(&wall));
      lines.push_back("skopos top  " + std::string(clock) + "  " + (client.connected() ? "connected" : "DISCONNECTED") +
                      "  " +
                      std::to_string(client.containers().size()) + " containers  " + std::to_string(total_in) +
                      " inbound" + (client.containers_known() ? "" : "  (no docker: list may be stale)"));
      lines.push_back(editing ? "filter: " + typing + "_"
                              : "sort " + std::string(sort_name(sort)) + (reverse ? " (reversed)" : "") +
                                    (filter.empty() ? "" : "  filter '" + filter + "'") +
                                    "   q quit  s sort  r reverse  / filter");
      if (!client.connected()) lines.push_back("tracker connection lost: " + client.last_error() + "; reconnecting");
      // Columns: name, app, mode, in, out, rate, ports (whatever width remains).
      const std::size_t name_w = w >= 100 ? 24 : 16, app_w = w >= 100 ? 22 : 14, mode_w = 7, num_w = 6, rate_w = 8;
      const std::size_t fixed = name_w + app_w + mode_w + 2 * num_w + rate_w + 6;
      const std::size_t ports_w = w > fixed + 6 ? w - fixed : 6;
      lines.push_back("\x1b[7m" + fit("CONTAINER", name_w) + " " + fit("APP/TASK", app_w) + " " + fit("MODE", mode_w) + " " +
                      fit("IN", num_w, true) + " " + fit("OUT", num_w, true) + " " + fit("IN/s", rate_w, true) + " " +
                      fit("INBOUND BY PORT", ports_w - 1) + "\x1b[0m");
      for (const Row& row : rows) {
        const StreamContainer& c = *row.c;
        char rate_text[32];
        std::snprintf(rate_text, sizeof rate_text, "%+.1f", std::fabs(row.rate) < 0.05 ? 0.0 : row.rate);
        lines.push_back(fit(c.name, name_w) + " " + fit(app_text(c), app_w) + " " + fit(c.network_mode, mode_w) + " " +
                        fit(count_text(c.inbound), num_w, true) + " " +
                        fit(c.known && c.outbound < 0 ? "n/a" : count_text(c.outbound), num_w, true) + " " +
                        fit(c.known ? rate_text : "?", rate_w, true) + " " + fit(inbound_ports_text(c), ports_w - 1));
      }
      std::string frame = "\x1b[H";
      const std::size_t rows_fit = static_cast<std::size_t>(std::max(height, 3));
      for (std::size_t i = 0; i < lines.size() && i < rows_fit; ++i) {
        // Escape sequences do not take columns: cut plain lines only.
        std::string line = lines[i];
        if (line.find('\x1b') == std::string::npos && line.size() > w) line.resize(w);
        frame += line + "\x1b[K";
        if (i + 1 < rows_fit && i + 1 < lines.size()) frame += "\r\n";
      }
      frame += "\x1b[J";
      Terminal::write(frame);
      dirty = false;
    }

    // Wait for the stream or a key, whichever comes first (bounded, so the clock and
    // rates keep moving on a quiet tracker).
    pollfd in{STDIN_FILENO, POLLIN, 0};
    if (::poll(&in, 1, 0) > 0) continue;
    auto event = client.next(Clock::now() + std::chrono::milliseconds(100));
    if (event) {
      dirty = true;
    } else if (event.error().code != ETIMEDOUT) {
      status = event.error().message();
      break;
    } else {
      // A quiet 100 ms: redraw once a second for the clock.
      static auto last_tick = Clock::now();
      if (Clock::now() - last_tick >= std::chrono::seconds(1)) {
        last_tick = Clock::now();
        dirty = true;
      }
    }
  }
  return 0;
}

}  // namespace skopos::tracker::cli
