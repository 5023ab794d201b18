#include "skopos/text_table.h"

#include <algorithm>

namespace skopos {

TextTable::TextTable(std::vector<std::string> header, std::vector<bool> right_aligned)
    : right_aligned_(std::move(right_aligned)) {
  rows_.push_back(std::move(header));
}

void TextTable::add_row(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

std::string TextTable::render() const {
  std::vector<std::size_t> widths;
  for (const auto& row : rows_) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  // Written straight into one string sized up front: a decode of a busy host's tables
  // prints tens of thousands of rows, and a string per line cost a third of that time.
  std::size_t line_width = 0;
  for (std::size_t i = 0; i < widths.size(); ++i) line_width += widths[i] + 2;
  std::string out;
  out.reserve(rows_.size() * (line_width + 1));
  for (const auto& row : rows_) {
    const std::size_t line_start = out.size();
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (i > 0) out.append(2, ' ');
      const std::size_t pad = widths[i] - row[i].size();
      const bool right = i < right_aligned_.size() && right_aligned_[i];
      if (right) out.append(pad, ' ');
      out += row[i];
      if (!right) out.append(pad, ' ');
    }
    while (out.size() > line_start && out.back() == ' ') out.pop_back();
    out += '\n';
  }
  return out;
}

}  // namespace skopos
