#include "output.h"

#include "skopos/result.h"

namespace skopos::tracker::cli {

ScanKernel parse_kernel(const std::string& command, const std::string& name) {
  for (ScanKernel kernel : {ScanKernel::kAuto, ScanKernel::kParser, ScanKernel::kPortable, ScanKernel::kAvx2, ScanKernel::kAvx512}) {
    if (name == scan_kernel_name(kernel)) {
      if (!scan_kernel_supported(kernel)) {
        throw FatalError(command + ": this CPU cannot run the '" + name + "' kernel",
                         "use --kernel=auto, which picks the fastest one it can");
      }
      return kernel;
    }
  }
  throw FatalError(command + ": unknown --kernel '" + name + "'", "one of auto, parser, portable, avx2, avx512");
}

std::vector<TcpState> states_present(const TallySummary& summary) {
  std::vector<TcpState> states;
  for (int state = kFirstTcpState; state <= kLastTcpState; ++state) {
    if (summary.by_state[static_cast<std::size_t>(state)] != 0) states.push_back(static_cast<TcpState>(state));
  }
  return states;
}

}  // namespace skopos::tracker::cli
