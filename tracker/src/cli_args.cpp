#include "skopos/cli_args.h"

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

}  // namespace skopos
