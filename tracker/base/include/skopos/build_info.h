// What a binary is: its version, the source revision it was built from, how it was
// built, and whether it carries the BPF programs. Every program's --version prints it,
// so a report from a host names exactly what ran there.
#pragma once

#include <string>
#include <string_view>

namespace skopos {

struct BuildInfo {
  const char* version;     // the project's, "0.1.0"
  const char* revision;    // `git describe --always --dirty`, or "unknown" outside a checkout
  const char* build_type;  // CMake's: Release, RelWithDebInfo, Debug
  const char* compiler;    // "GNU 12.2.0"
  const char* processor;   // the target: x86_64, aarch64
  bool bpf;                // built with the BPF programs (SKOPOS_BPF)
  const char* bpf_text;    // the same for people
};

// Generated at build time (cmake/BuildInfo.cmake).
const BuildInfo& build_info();

// --version's text: "<program> <version>" then one "name: value" line each.
inline std::string version_text(std::string_view program) {
  const BuildInfo& info = build_info();
  return std::string(program) + " " + info.version + "\nrevision: " + info.revision + "\nbuild: " + info.build_type +
         ", " + info.compiler + ", " + info.processor + "\nbpf: " + info.bpf_text + "\n";
}

}  // namespace skopos
