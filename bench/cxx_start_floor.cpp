// The floor of bench_proc_net_tcp's whole-process rows: a C++ program that does next to
// nothing. Built twice: cxx_start_floor links the shared C++ runtime as tracker-cli does
// (libstdc++, and libgcc_s and libm, which it needs); cxx_start_floor_static has libstdc++
// and libgcc linked in. Timed against `cat /dev/null`, the first is what starting any C++
// program with the shared runtime costs over a C one on the machine at hand, the second
// what is left without it. The string outlives the small-string buffer, so operator new
// keeps libstdc++ linked.
#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  const std::string name = std::string(argv[0]) + " started with " + std::to_string(argc) + " arguments";
  return std::fputs(name.c_str(), stdout) < 0 ? 1 : 0;
}
