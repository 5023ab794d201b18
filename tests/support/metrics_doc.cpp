#include "metrics_doc.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "process.h"
#include "text_lines.h"

namespace skopos::testing {
namespace {

constexpr const char* kTableName = "metrics";

std::string unescape_help(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      ++i;
      out += text[i] == 'n' ? '\n' : text[i];
    } else {
      out += text[i];
    }
  }
  return out;
}

// The family a sample belongs to: its name, or the histogram/summary family it extends.
std::string family_of(const std::string& sample, const std::map<std::string, MetricFamily>& families) {
  if (families.count(sample) > 0) return sample;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s(suffix);
    if (sample.size() > s.size() && sample.compare(sample.size() - s.size(), s.size(), s) == 0) {
      const std::string base = sample.substr(0, sample.size() - s.size());
      if (families.count(base) > 0) return base;
    }
  }
  return sample;
}

}  // namespace

std::map<std::string, MetricFamily> metric_families(const std::string& text) {
  std::map<std::string, MetricFamily> families;
  for (const std::string& line : lines_of(text)) {
    if (line.rfind("# TYPE ", 0) == 0 || line.rfind("# HELP ", 0) == 0) {
      const std::size_t name_end = line.find(' ', 7);
      const std::string name = line.substr(7, name_end - 7);
      const std::string rest = name_end == std::string::npos ? "" : line.substr(name_end + 1);
      if (line[2] == 'T') {
        families[name].type = rest;
      } else {
        families[name].help = unescape_help(rest);
      }
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    const std::size_t brace = line.find('{');
    const std::size_t space = line.find(' ');
    const std::string sample = line.substr(0, std::min(brace, space));
    MetricFamily& family = families[family_of(sample, families)];
    ++family.samples;
    if (brace == std::string::npos || brace > space) continue;
    // name="value" pairs; values may hold escaped quotes.
    std::size_t at = brace + 1;
    while (at < line.size() && line[at] != '}') {
      const std::size_t equals = line.find('=', at);
      if (equals == std::string::npos) break;
      if (!(sample.size() > 7 && sample.compare(sample.size() - 7, 7, "_bucket") == 0 && line.compare(at, equals - at, "le") == 0)) {
        family.labels.insert(line.substr(at, equals - at));
      }
      at = equals + 2;  // past ="
      while (at < line.size() && line[at] != '"') at += line[at] == '\\' ? 2u : 1u;
      at += 1;  // past the closing quote
      if (at < line.size() && line[at] == ',') ++at;
    }
  }
  return families;
}

std::string metrics_row(const std::string& name, const MetricFamily& family, const std::string& source) {
  std::string labels;
  for (const std::string& label : family.labels) labels += (labels.empty() ? "`" : ", `") + label + "`";
  std::string help = family.help;
  for (char& c : help) {
    if (c == '\n') c = ' ';
  }
  std::string escaped;
  for (const char c : help) {
    if (c == '|') escaped += '\\';
    escaped += c;
  }
  return "| `" + name + "` | " + family.type + " | " + labels + " | " + escaped + " | " + source + " |";
}

std::vector<std::string> undocumented_metrics(const std::string& text, const std::string& source,
                                              const std::set<std::string>& not_here) {
  std::vector<std::string> problems;
  const auto table = marked_section(SKOPOS_README, kTableName);
  if (!table) return {std::string("README.md has no '") + kTableName + "' table between its markers"};
  std::set<std::string> rows;
  for (const std::string& line : lines_of(*table)) rows.insert(line);
  const auto families = metric_families(text);
  std::set<std::string> seen;
  for (const auto& [name, family] : families) {
    std::string row = metrics_row(name, family, source);
    if (family.samples == 0) {
      // Its labels are unknown here: the documented row with everything else the same.
      const std::string head = "| `" + name + "` | " + family.type + " | ";
      const std::string tail = row.substr(head.size() + 1);  // "| help | source |"
      for (const std::string& candidate : rows) {
        if (candidate.rfind(head, 0) == 0 && candidate.size() >= tail.size() &&
            candidate.compare(candidate.size() - tail.size(), tail.size(), tail) == 0) {
          row = candidate;
        }
      }
    }
    seen.insert(row);
    if (rows.count(row) == 0) problems.push_back("README.md's metrics table lacks (or differs from) this row:\n" + row);
  }
  const std::string tail = " | " + source + " |";
  for (const std::string& row : rows) {
    const std::size_t name_end = row.find('`', 3);
    const std::string name = row.size() > 3 && name_end != std::string::npos ? row.substr(3, name_end - 3) : "";
    if (row.size() > tail.size() && row.compare(row.size() - tail.size(), tail.size(), tail) == 0 && seen.count(row) == 0 &&
        not_here.count(name) == 0) {
      problems.push_back("README.md documents a metric of " + source + " that its output lacks:\n" + row);
    }
  }
  return problems;
}

std::string promtool_check_metrics(const std::string& text) {
  const ProcessResult run = run_process({SKOPOS_PROMTOOL, "check", "metrics"}, text);
  if (run.exit_code == 0 && run.out.empty() && run.err.empty()) return "";
  return "promtool check metrics (exit " + std::to_string(run.exit_code) + "):\n" + run.out + run.err;
}

}  // namespace skopos::testing
