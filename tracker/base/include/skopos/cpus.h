// The CPUs this process may run on.
#pragma once

#include <cstddef>

namespace skopos {

// The CPUs in this process's affinity mask (as a cgroup cpuset or systemd's CPUAffinity
// set it), at least 1: what sizing a pool of threads should go by, not the machine's
// CPU count.
std::size_t usable_cpus();

}  // namespace skopos
