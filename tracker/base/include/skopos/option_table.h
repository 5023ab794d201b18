// OptionTable: a command's options declared once. Each option is one entry -- its name,
// the value it takes, what it does, and where its value goes in the command's one
// config value -- and everything else is made from the table:
//
//  * spec(): the names CliArgs parses (command line and `--config` file alike);
//  * read(): every option given, read into the config, in table order;
//  * help(): the options section of --help, each with the default the config holds;
//  * markdown(): the same as a Markdown table, which the README carries and a test
//    compares with the binary's, so --help, the config file and the README agree by
//    construction;
//  * config_example(): a commented `--config` file with every option at its default,
//    which the package installs under /etc/skopos/ (a test compares those files too).
//
//   OptionTable<DaemonOptions> table("skopos-tracker");
//   table.duration("docker-timeout", "deadline of each Docker request", &DaemonOptions::docker_timeout);
//
// Errors are CliArgs's: a FatalError that names the option and the bad value.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <string>
#include <utility>
#include <vector>

#include "skopos/cli_args.h"
#include "skopos/result.h"

namespace skopos {

template <class Config>
class OptionTable {
 public:
  struct Option {
    std::string name;   // without "--"
    std::string value;  // "" for a flag; else what it takes: "D", "PATH", "auto|bpf|proc"
    std::string help;   // what it does; '\n' starts another line
    // The default as --help shows it, from a default config; "" shows none.
    std::function<std::string(const Config&)> shown_default;
    // Reads the option's value (a flag: "") into the config; throws FatalError, naming
    // `command` (the table's, as it is being read: a shared table's options name the
    // command that includes them).
    std::function<void(const CliArgs& args, Config& config, const std::string& command)> read;
  };

  explicit OptionTable(std::string command) : command_(std::move(command)) {}

  const std::vector<Option>& options() const { return options_; }

  // Anything the typed helpers below do not cover.
  OptionTable& add(Option option) {
    options_.push_back(std::move(option));
    return *this;
  }
  // The typed helpers take where the value goes as a member pointer (&Config::once) or
  // as a callable that gives the field of a config, const or not
  // ([](auto& c) -> auto& { return c.daemon.once; }).
  template <class Get>
  OptionTable& flag(std::string name, std::string help, Get get) {
    return add({name, "", std::move(help), {}, [get](const CliArgs&, Config& c, const std::string&) { std::invoke(get, c) = true; }});
  }
  template <class Get>
  OptionTable& text(std::string name, std::string value, std::string help, Get get) {
    return add({name, std::move(value), std::move(help), [get](const Config& c) { return std::string(std::invoke(get, c)); },
                [name, get](const CliArgs& args, Config& c, const std::string&) { std::invoke(get, c) = args.option(name); }});
  }
  // A duration field (milliseconds or microseconds): "250us", "5s", "2m".
  template <class Get>
  OptionTable& duration(std::string name, std::string help, Get get) {
    return add({name, "D", std::move(help), [get](const Config& c) { return format_duration(std::invoke(get, c)); },
                [name, get](const CliArgs& args, Config& c, const std::string&) {
                  auto& field = std::invoke(get, c);
                  using Field = std::remove_reference_t<decltype(field)>;
                  field = std::chrono::duration_cast<Field>(args.duration_us(name, field));
                }});
  }
  // One of `choices` (name, value); the placeholder lists them: "auto|on|off".
  template <class Get, class Value>
  OptionTable& choice(std::string name, std::string help, Get get, std::vector<std::pair<std::string, Value>> choices) {
    std::string value;
    for (const auto& choice : choices) value += (value.empty() ? "" : "|") + choice.first;
    return add({name, value, std::move(help),
                [get, choices](const Config& c) {
                  for (const auto& [text, candidate] : choices) {
                    if (candidate == std::invoke(get, c)) return text;
                  }
                  return std::string();
                },
                [name, get, choices, value](const CliArgs& args, Config& c, const std::string& command) {
                  const std::string given = args.option(name);
                  for (const auto& [text, candidate] : choices) {
                    if (text == given) {
                      std::invoke(get, c) = candidate;
                      return;
                    }
                  }
                  throw FatalError(command + ": --" + name + " '" + given + "' is not " + one_of(value));
                }});
  }

  // Every option of `sub`, reading into the part of this table's config that `get`
  // gives (a member pointer, or [](auto& c) -> auto& { return c.part; }): options that
  // several commands share are declared once, in their own table.
  template <class Sub, class Get>
  OptionTable& include(const OptionTable<Sub>& sub, Get get) {
    for (const auto& option : sub.options()) {
      add({option.name, option.value, option.help,
           [shown = option.shown_default, get](const Config& c) {
             return shown ? shown(std::invoke(get, c)) : std::string();
           },
           [read = option.read, get](const CliArgs& args, Config& c, const std::string& command) {
             read(args, std::invoke(get, c), command);
           }});
    }
    return *this;
  }

  // The options named in `names`, in this table's order: what one subcommand of a
  // command takes from the command's table (`command` names it in messages). A name the
  // table lacks is a programming error (std::logic_error).
  OptionTable only(const std::vector<std::string_view>& names, std::string command) const {
    OptionTable out(std::move(command));
    for (const std::string_view name : names) {
      if (std::none_of(options_.begin(), options_.end(), [&](const Option& o) { return o.name == name; })) {
        throw std::logic_error("OptionTable::only: no option --" + std::string(name) + " in " + command_);
      }
    }
    for (const Option& option : options_) {
      if (std::find(names.begin(), names.end(), option.name) != names.end()) out.add(option);
    }
    return out;
  }

  // The parser's names (every option may also be a `name = value` setting of --config).
  CliSpec spec() const {
    CliSpec spec{command_, {}, {}};
    for (const Option& option : options_) (option.value.empty() ? spec.flags : spec.options).insert(option.name);
    return spec;
  }

  // Reads every option `args` holds into `config`, in table order; errors name
  // `command` (by default the table's).
  void read(const CliArgs& args, Config& config) const { read(args, config, command_); }
  void read(const CliArgs& args, Config& config, const std::string& command) const {
    for (const Option& option : options_) {
      if (option.value.empty() ? args.flag(option.name) : args.has(option.name)) option.read(args, config, command);
    }
  }

  // "  --name VALUE   help (default X)", one option after another, the help's further
  // lines indented under its first.
  std::string help() const {
    const Config defaults{};
    std::string out;
    for (const Option& option : options_) {
      std::string head = "  --" + option.name + (option.value.empty() ? "" : " " + option.value);
      std::string text = option.help;
      const std::string shown = option.shown_default ? option.shown_default(defaults) : std::string();
      if (!shown.empty()) {
        // On the help's last line, or a line of its own where that would pass the width.
        const std::size_t last = text.rfind('\n');
        const std::size_t last_length = text.size() - (last == std::string::npos ? 0 : last + 1);
        const std::string note = "(default " + shown + ")";
        text += kHelpColumn + last_length + 1 + note.size() > kHelpWidth ? "\n" + note : " " + note;
      }
      std::size_t start = 0;
      bool first = true;
      while (start <= text.size()) {
        const std::size_t end = std::min(text.find('\n', start), text.size());
        const std::string line = text.substr(start, end - start);
        if (first) {
          if (head.size() < kHelpColumn - 1) head.resize(kHelpColumn, ' ');
          else head += "\n" + std::string(kHelpColumn, ' ');
          out += head + line + "\n";
          first = false;
        } else {
          out += std::string(kHelpColumn, ' ') + line + "\n";
        }
        start = end + 1;
      }
    }
    return out;
  }

  // A `--config` file that changes nothing: `title` as its opening comment, then per
  // option its help as comments and its line commented out at the default
  // ("#name = value"; a flag "#name = false"; an empty default '#name = ""'; an option
  // that shows no default, its placeholder "#name = A:P"). The options in `skip`
  // (--help, --config, ...) are left out.
  std::string config_example(const std::string& title, const std::vector<std::string_view>& skip) const {
    const Config defaults{};
    std::string out;
    std::size_t start = 0;
    while (start < title.size()) {
      const std::size_t end = std::min(title.find('\n', start), title.size());
      out += "# " + title.substr(start, end - start) + "\n";
      start = end + 1;
    }
    for (const Option& option : options_) {
      if (std::find(skip.begin(), skip.end(), option.name) != skip.end()) continue;
      out += "\n# --" + option.name + (option.value.empty() ? "" : " " + option.value) + ": ";
      for (const char c : option.help) out += c == '\n' ? std::string("\n#   ") : std::string(1, c);
      std::string value = "false";
      if (!option.value.empty() && !option.shown_default) {
        value = option.value;  // no default to show: the placeholder
      } else if (!option.value.empty()) {
        value = option.shown_default(defaults);
        if (value.empty()) value = "\"\"";
      }
      out += "\n#" + option.name + " = " + value + "\n";
    }
    return out;
  }

  // | option | default | what it does |, one row per option, for the README.
  std::string markdown() const {
    const Config defaults{};
    std::string out = "| option | default | what it does |\n| --- | --- | --- |\n";
    for (const Option& option : options_) {
      const std::string shown = option.shown_default ? option.shown_default(defaults) : std::string();
      std::string help = option.help;
      for (char& c : help) {
        if (c == '\n') c = ' ';
      }
      out += "| `" + escape_cell("--" + option.name + (option.value.empty() ? "" : " " + option.value)) + "` | " +
             (shown.empty() ? "" : "`" + escape_cell(shown) + "`") + " | " + escape_cell(help) + " |\n";
    }
    return out;
  }

 private:
  static constexpr std::size_t kHelpColumn = 27;
  static constexpr std::size_t kHelpWidth = 80;

  // "auto|on|off" -> "auto, on or off".
  static std::string one_of(const std::string& choices) {
    const auto parts = split_list(choices, '|');
    std::string out;
    for (std::size_t i = 0; i < parts.size(); ++i) {
      out += (i == 0 ? "" : i + 1 == parts.size() ? " or " : ", ") + parts[i];
    }
    return out;
  }
  static std::string escape_cell(const std::string& text) {
    std::string out;
    for (const char c : text) {
      if (c == '|') out += '\\';
      out += c;
    }
    return out;
  }

  std::string command_;
  std::vector<Option> options_;
};

}  // namespace skopos
