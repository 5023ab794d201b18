// TextTable: aligned columns for people, as `ps` and `ss` print them.
#pragma once

#include <string>
#include <vector>

namespace skopos {

class TextTable {
 public:
  // `right_aligned[i]` right-aligns column i (numbers); missing entries mean left.
  explicit TextTable(std::vector<std::string> header, std::vector<bool> right_aligned = {});

  void add_row(std::vector<std::string> row);
  std::size_t rows() const { return rows_.size(); }
  // The header and rows, columns separated by two spaces, no trailing blanks.
  std::string render() const;

 private:
  std::vector<std::vector<std::string>> rows_;  // rows_[0] is the header
  std::vector<bool> right_aligned_;
};

}  // namespace skopos
