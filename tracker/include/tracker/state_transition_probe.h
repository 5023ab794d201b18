// StateTransitionProbe: counts TCP state transitions in the kernel with the BPF
// program bpf/state_transitions.bpf.c, attached to the inet_sock_set_state tracepoint
// through BTF (tp_btf). Proves the BPF chain end to end; the tracker's eBPF source grows
// from it.
#pragma once

#include <array>
#include <cstdint>
#include <memory>

#include "skopos/result.h"

struct state_transitions;  // the bpftool skeleton

namespace skopos::tracker {

class StateTransitionProbe {
 public:
  // Transitions counted since attach, indexed by TCP state number.
  struct Counts {
    std::array<std::uint64_t, 16> into{};    // by the state entered
    std::array<std::uint64_t, 16> out_of{};  // by the state left
    std::uint64_t out_of_range = 0;          // states past the table (a newer kernel)
  };

  // Loads, verifies and attaches the program. With `netns_inode` nonzero only sockets
  // of that network namespace are counted. Needs CAP_BPF and CAP_PERFMON (or root) and
  // a kernel with BTF; errors name the step that failed and carry errno.
  static Result<std::unique_ptr<StateTransitionProbe>> create(std::uint32_t netns_inode = 0);

  // Detaches the program and frees everything; nothing stays pinned.
  ~StateTransitionProbe();
  StateTransitionProbe(const StateTransitionProbe&) = delete;
  StateTransitionProbe& operator=(const StateTransitionProbe&) = delete;

  // A snapshot of the counters. Thread-safe; the kernel keeps counting meanwhile.
  Counts counts() const;

  // The kernel's id of the loaded program, as `bpftool prog show id N` lists it.
  std::uint32_t program_id() const { return program_id_; }

 private:
  explicit StateTransitionProbe(state_transitions* skeleton) : skeleton_(skeleton) {}
  state_transitions* skeleton_;
  std::uint32_t program_id_ = 0;
};

}  // namespace skopos::tracker
