// Command-line parsing for our CLIs: `--flag`, `--option=value` or `--option value`,
// and positional arguments. Anything unknown or malformed is a FatalError that names
// it, so a typo never silently changes what a command does.
#pragma once

#include <map>
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

 private:
  std::set<std::string> flags_;
  std::map<std::string, std::string> options_;
  std::vector<std::string> positional_;
};

}  // namespace skopos
