// The floor of bench_proc_net_tcp's whole-process rows: a C++ program that does next to
// nothing, linked as tracker-cli is against the shared C++ runtime (libstdc++, and
// libgcc_s and libm, which it needs). Timed against `cat /dev/null`, it is what starting
// any C++ program costs over a C one on the machine at hand. The string outlives the
// small-string buffer, so operator new keeps libstdc++ linked.
#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  const std::string name = std::string(argv[0]) + " started with " + std::to_string(argc) + " arguments";
  return std::fputs(name.c_str(), stdout) < 0 ? 1 : 0;
}
