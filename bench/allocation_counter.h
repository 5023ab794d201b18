// Counts the program's heap allocations, for benchmarks and tests that show what a
// piece of code allocates. Linking skopos_allocation_counter replaces the global
// operator new of the whole binary with a counting one (on malloc).
#pragma once

#include <cstdint>

namespace skopos::bench {

// Allocations since the program started.
std::uint64_t allocations();

// Allocations made while `work` runs.
template <class F>
std::uint64_t allocations_during(F&& work) {
  const std::uint64_t before = allocations();
  work();
  return allocations() - before;
}

}  // namespace skopos::bench
