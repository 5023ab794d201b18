#include "skopos/cli_args.h"
#include "skopos/option_table.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>

#include "skopos/result.h"

namespace skopos {

CliArgs CliArgs::parse(const CliSpec& spec, int argc, char** argv, int first) {
  CliArgs args;
  const std::string help = "see '" + spec.command + " --help'";
  bool options_done = false;
  for (int i = first; i < argc; ++i) {
    const std::string arg = argv[i];
    if (options_done || arg.size() < 2 || arg.rfind("--", 0) != 0) {
      if (!options_done && arg.size() > 1 && arg[0] == '-') {
        throw FatalError(spec.command + ": unknown option '" + arg + "'", help);
      }
      args.positional_.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    const std::size_t equals = arg.find('=');
    const std::string name = arg.substr(2, equals == std::string::npos ? std::string::npos : equals - 2);
    if (spec.flags.count(name) > 0) {
      if (equals != std::string::npos) {
        throw FatalError(spec.command + ": option '--" + name + "' takes no value", help);
      }
      args.flags_.insert(name);
    } else if (spec.options.count(name) > 0) {
      if (equals != std::string::npos) {
        args.options_[name] = arg.substr(equals + 1);
      } else if (i + 1 < argc) {
        args.options_[name] = argv[++i];
      } else {
        throw FatalError(spec.command + ": option '--" + name + "' needs a value", help);
      }
    } else {
      throw FatalError(spec.command + ": unknown option '--" + name + "'", help);
    }
  }
  return args;
}

std::string CliArgs::option(const std::string& name, std::string_view fallback) const {
  const auto it = options_.find(name);
  return it == options_.end() ? std::string(fallback) : it->second;
}

namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) text.remove_suffix(1);
  return text;
}

}  // namespace

void CliArgs::merge_config_file(const CliSpec& spec, const std::string& path, const std::set<std::string>& skip) {
  std::ifstream in(path);
  if (!in) throw FatalError(spec.command + ": cannot read config file '" + path + "'", "check the path given to --config");
  std::string raw;
  int number = 0;
  while (std::getline(in, raw)) {
    ++number;
    const std::string where = path + ":" + std::to_string(number);
    std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#') continue;
    const auto equals = line.find('=');
    if (equals == std::string_view::npos) {
      throw FatalError(spec.command + ": " + where + ": expected 'name = value', found '" + std::string(line) + "'");
    }
    const std::string name(trim(line.substr(0, equals)));
    std::string value(trim(line.substr(equals + 1)));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    if (skip.count(name) > 0) continue;
    if (spec.flags.count(name) > 0) {
      // A flag: "true" sets it (the command line cannot unset it), "false" leaves it.
      if (value == "true") {
        flags_.insert(name);
      } else if (value != "false") {
        throw FatalError(spec.command + ": " + where + ": '" + name + "' is a flag: true or false, not '" + value + "'");
      }
      continue;
    }
    if (spec.options.count(name) == 0 || name == "config") {
      throw FatalError(spec.command + ": " + where + ": unknown setting '" + name + "'",
                       "settings are the long options of '" + spec.command + " --help' without the dashes");
    }
    options_.emplace(name, value);  // keeps a command-line value
  }
}

std::chrono::milliseconds CliArgs::duration(const std::string& name, std::chrono::milliseconds fallback) const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(duration_us(name, fallback));
}

std::optional<std::chrono::microseconds> parse_duration(std::string_view text) {
  std::uint64_t number = 0;
  const auto parsed = std::from_chars(text.data(), text.data() + text.size(), number);
  const std::string_view unit(parsed.ptr, static_cast<std::size_t>(text.data() + text.size() - parsed.ptr));
  std::uint64_t scale = 0;  // microseconds per unit
  if (unit == "us") scale = 1;
  else if (unit == "ms") scale = 1000;
  else if (unit == "s" || unit.empty()) scale = 1'000'000;
  else if (unit == "m") scale = 60'000'000;
  else if (unit == "h") scale = 3'600'000'000;
  // The product must fit the signed count of std::chrono::microseconds.
  if (parsed.ec != std::errc{} || parsed.ptr == text.data() || scale == 0 ||
      number > static_cast<std::uint64_t>(INT64_MAX) / scale) {
    return std::nullopt;
  }
  return std::chrono::microseconds(number * scale);
}

void commands_first(int argc, char** argv, int first, int words, const std::set<std::string>& value_options) {
  std::vector<int> found;
  for (int i = first; i < argc && static_cast<int>(found.size()) < words; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg.size() > 1 && arg.front() == '-') {
      const std::string_view name = arg.substr(arg.starts_with("--") ? 2 : 1);
      // "--name value": the value is the option's, not a word.
      if (name.find('=') == std::string_view::npos && value_options.count(std::string(name)) != 0) ++i;
      continue;
    }
    found.push_back(i);
  }
  if (static_cast<int>(found.size()) < words) return;
  // A stable move: the words first, then everything else in its order.
  std::vector<char*> reordered;
  for (const int i : found) reordered.push_back(argv[i]);
  for (int i = first; i < argc; ++i) {
    if (std::find(found.begin(), found.end(), i) == found.end()) reordered.push_back(argv[i]);
  }
  std::copy(reordered.begin(), reordered.end(), argv + first);
}

std::string format_seconds(std::chrono::milliseconds value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(value.count()) / 1000.0);
  return text;
}

std::string format_duration(std::chrono::microseconds value) {
  const std::int64_t us = value.count();
  if (us == 0) return "0";
  for (const auto& [unit, scale] : {std::pair{"h", std::int64_t{3'600'000'000}}, std::pair{"m", std::int64_t{60'000'000}},
                                    std::pair{"s", std::int64_t{1'000'000}}, std::pair{"ms", std::int64_t{1000}}}) {
    if (us % scale == 0) return std::to_string(us / scale) + unit;
  }
  return std::to_string(us) + "us";
}

std::optional<std::uint16_t> parse_port(std::string_view text) {
  unsigned value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size() || value == 0 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(value);
}

std::vector<std::string> split_list(std::string_view text, char separator) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = std::min(text.find(separator, start), text.size());
    if (end > start) out.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::chrono::microseconds CliArgs::duration_us(const std::string& name, std::chrono::microseconds fallback) const {
  const auto it = options_.find(name);
  if (it == options_.end()) return fallback;
  const auto value = parse_duration(it->second);
  if (!value) {
    throw FatalError("option '--" + name + "': '" + it->second + "' is not a duration", "write e.g. 500ms, 5s, 2m or 1h");
  }
  if (*value > kMaxOptionDuration) {
    // Every wait adds its option to a clock; a value this large is a typo, and one
    // near the type's range would wrap the deadline into the past.
    throw FatalError("option '--" + name + "': '" + it->second + "' is above the ceiling of 30 days");
  }
  return *value;
}

}  // namespace skopos
