#include "tracker/state_transition_probe.h"

#include <cerrno>

// The ABI header first: the skeleton refers to its struct by name.
#include "skopos/bpf/state_transitions.h"
#include "state_transitions.skel.h"

#include <bpf/bpf.h>

namespace skopos::tracker {

namespace {

constexpr const char* kObject = "state_transitions";

// libbpf reports failures as negative errno values and sets errno; take whichever
// carries it.
int failure_errno(int ret) { return ret < 0 ? -ret : (errno != 0 ? errno : EINVAL); }

}  // namespace

Result<std::unique_ptr<StateTransitionProbe>> StateTransitionProbe::create(std::uint32_t netns_inode) {
  errno = 0;
  state_transitions* skeleton = state_transitions__open();
  if (skeleton == nullptr) return unexpected(Error::from_errno(failure_errno(0), "bpf open", kObject));
  // Owned from here on, so every error path below frees it.
  std::unique_ptr<StateTransitionProbe> probe(new StateTransitionProbe(skeleton));

  // const volatile globals live in .rodata: set before load, frozen after.
  skeleton->rodata->target_netns_ino = netns_inode;

  if (int ret = state_transitions__load(skeleton); ret != 0) {
    Error error = Error::from_errno(failure_errno(ret), "bpf load", kObject);
    error.detail = "the verifier log is above; loading needs root (CAP_BPF, CAP_PERFMON) and kernel BTF";
    return unexpected(std::move(error));
  }
  if (int ret = state_transitions__attach(skeleton); ret != 0) {
    return unexpected(Error::from_errno(failure_errno(ret), "bpf attach tp_btf/inet_sock_set_state", kObject));
  }
  bpf_prog_info info{};
  std::uint32_t length = sizeof info;
  if (int ret = bpf_obj_get_info_by_fd(bpf_program__fd(skeleton->progs.count_transition), &info, &length); ret != 0) {
    return unexpected(Error::from_errno(failure_errno(ret), "bpf prog info", kObject));
  }
  probe->program_id_ = info.id;
  return probe;
}

StateTransitionProbe::~StateTransitionProbe() { state_transitions__destroy(skeleton_); }

StateTransitionProbe::Counts StateTransitionProbe::counts() const {
  // The program updates these with atomic adds from every CPU; read each word
  // atomically so no read tears.
  const skopos_transition_counts& live = skeleton_->bss->counts;
  Counts counts;
  for (std::size_t i = 0; i < counts.into.size(); ++i) {
    counts.into[i] = __atomic_load_n(&live.into[i], __ATOMIC_RELAXED);
    counts.out_of[i] = __atomic_load_n(&live.out_of[i], __ATOMIC_RELAXED);
  }
  counts.out_of_range = __atomic_load_n(&live.out_of_range, __ATOMIC_RELAXED);
  return counts;
}

}  // namespace skopos::tracker
