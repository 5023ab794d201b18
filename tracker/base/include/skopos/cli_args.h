// Command-line parsing for our CLIs: `--flag`, `--option=value` or `--option value`,
// and positional arguments. Anything unknown or malformed is a FatalError that names
// it, so a typo never silently changes what a command does.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace skopos {

struct CliSpec {
  std::string command;               // for messages: "tracker-cli decode"
  std::set<std::string> flags;       // names without "--", take no value
  std::set<std::string> options;     // names without "--", take a value
};

// Value parsers for options, labels and stored facts (no exceptions: callers name what
// was wrong in their own words).
// "250us", "500ms", "5s", "2m", "1h"; a bare number is seconds. nullopt for anything else,
// and for a value too large for std::chrono::microseconds.
std::optional<std::chrono::microseconds> parse_duration(std::string_view text);
// The largest duration an option takes (CliArgs::duration): 30 days.
inline constexpr std::chrono::hours kMaxOptionDuration{30 * 24};
// A duration as options take it: the largest unit that divides it exactly ("250us",
// "4ms", "5s", "2m", "1h"; "0" for zero).
std::string format_duration(std::chrono::microseconds value);
// A duration for people, in seconds with one decimal: "0.5 s", "12.0 s".
std::string format_seconds(std::chrono::milliseconds value);
// A TCP/UDP port, 1-65535, and nothing else.
std::optional<std::uint16_t> parse_port(std::string_view text);
// The non-empty parts of `text` between `separator`s: "a,,b" -> {"a", "b"}.
std::vector<std::string> split_list(std::string_view text, char separator = ',');

// Moves the first `words` command words found in argv[first..argc) -- arguments that are
// neither options ("--name", "--name=value") nor the value of an option in
// `value_options` -- to argv[first..first+words), keeping the order of the rest. So
// options may stand before or after a (sub)command, as `etcdctl --endpoints X get` and
// `kubectl -n X get` allow: `skopos --etcd-endpoints X lock status` and `skopos lock
// --etcd-endpoints X status` both read as `skopos lock status --etcd-endpoints X`.
// "--" ends the search. Fewer words than asked for leaves argv as it was.
void commands_first(int argc, char** argv, int first, int words, const std::set<std::string>& value_options);

class CliArgs {
 public:
  // Parses argv[first..argc). Throws FatalError on an unknown option, a flag given a
  // value, or an option missing its value. "--" ends option parsing.
  static CliArgs parse(const CliSpec& spec, int argc, char** argv, int first);

  bool flag(const std::string& name) const { return flags_.count(name) > 0; }
  // The option's value, or `fallback` when it was not given.
  std::string option(const std::string& name, std::string_view fallback = {}) const;
  bool has(const std::string& name) const { return options_.count(name) > 0; }
  const std::vector<std::string>& positional() const { return positional_; }

  // Adds the options of a config file that the command line did not give: one
  // `name = value` per line (names as the long options, without "--"), '#' comments,
  // blank lines. Command-line values win. Throws FatalError naming the file and line
  // for an unreadable file, a malformed line or an unknown name. A file several commands
  // share names in `skip` the settings that are another command's: this command ignores
  // them, even one whose name it also takes with another meaning (a typo is still an
  // unknown name).
  void merge_config_file(const CliSpec& spec, const std::string& path, const std::set<std::string>& skip = {});

  // The option as a duration ("250ms", "5s", "2m", "1h"; a bare number is seconds), or
  // `fallback`. Throws FatalError naming the option for anything else.
  std::chrono::milliseconds duration(const std::string& name, std::chrono::milliseconds fallback) const;
  // The same with microseconds, which also accepts "us" ("250us").
  std::chrono::microseconds duration_us(const std::string& name, std::chrono::microseconds fallback) const;

 private:
  std::set<std::string> flags_;
  std::map<std::string, std::string> options_;
  std::vector<std::string> positional_;
};

}  // namespace skopos
