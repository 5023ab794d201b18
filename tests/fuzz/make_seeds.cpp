// Writes the fuzz target's seed corpus: small kernel-format tables of every shape (from
// bench/proc_net_tcp_gen.h and the real captures in tests/unit/tracker/testdata), each
// behind the chunking selector byte the target expects. Usage: make_seeds OUT TESTDATA
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "proc_net_tcp_gen.h"

namespace {

void write(const std::filesystem::path& path, char selector, const std::string& table) {
  std::ofstream out(path, std::ios::binary);
  out.put(selector);
  out << table;
}

std::string read(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: make_seeds OUT_DIR TESTDATA_DIR\n";
    return 2;
  }
  const std::filesystem::path out = argv[1];
  std::filesystem::create_directories(out);
  using skopos::tracker::TcpTableFamily;
  int n = 0;
  for (TcpTableFamily family : {TcpTableFamily::kIpv4, TcpTableFamily::kIpv6}) {
    for (std::size_t lines : {std::size_t{3}, std::size_t{12}, std::size_t{40}}) {
      for (std::uint64_t seed : {std::uint64_t{1}, std::uint64_t{2}}) {
        const std::string table = skopos::bench::generate_tcp_table(family, lines, seed);
        write(out / ("generated-" + std::to_string(n++)), static_cast<char>(seed * 77 + lines), table);
      }
    }
  }
  for (const char* name : {"netns.tcp", "netns.tcp6"}) {
    const std::string table = read(std::filesystem::path(argv[2]) / name);
    write(out / name, 5, table);
    // The same lines with slot numbers past 9999, as "%4d" prints them in big tables.
    std::string wide;
    std::istringstream lines(table);
    std::string line;
    std::getline(lines, line);
    wide += line + "\n";
    for (int slot = 12345; std::getline(lines, line); ++slot) {
      wide += std::to_string(slot) + line.substr(line.find(':')) + "\n";
    }
    write(out / (std::string(name) + ".wide"), 9, wide);
  }
  std::cout << "make_seeds: wrote " << n + 4 << " seeds to " << out << "\n";
  return 0;
}
