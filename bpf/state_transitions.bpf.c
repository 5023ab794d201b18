// SPDX-License-Identifier: GPL-2.0
/*
 * Counts TCP state transitions, optionally for one network namespace.
 *
 * This is the smallest real program that proves the build chain (clang CO-RE object,
 * bpftool skeleton, libbpf load, tp_btf attach); the tracker's connection counting
 * grows from it.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "skopos/bpf/state_transitions.h"

char LICENSE[] SEC("license") = "GPL";

/* Load-time configuration: the network namespace inode to count, 0 for all. */
const volatile __u32 target_netns_ino = 0;

struct skopos_transition_counts counts = {};

/* IPPROTO_TCP; the uapi enum is not in vmlinux.h on every kernel. */
#define SKOPOS_IPPROTO_TCP 6

static __always_inline void count_state(__u64 *table, __u32 state)
{
	if (state >= SKOPOS_TCP_STATE_SLOTS) {
		__sync_fetch_and_add(&counts.out_of_range, 1);
		return;
	}
	/*
	 * clang turns the comparison above into a test on a copy of `state` and indexes
	 * with the original register, about which the verifier then knows nothing
	 * ("unbounded memory access"). barrier_var() hides from clang that `state` is
	 * already in range, so the mask stays and bounds the register actually used.
	 */
	barrier_var(state);
	state &= SKOPOS_TCP_STATE_SLOTS - 1;
	__sync_fetch_and_add(&table[state], 1);
}

/*
 * tp_btf gives typed arguments from BTF with no tracefs and no per-event copy: the
 * raw tracepoint passes (const struct sock *sk, int oldstate, int newstate).
 *
 * inet_sock_set_state fires from tcp_set_state() and inet_sk_state_store() for every
 * TCP state change in every network namespace, and also for DCCP, SCTP and MPTCP
 * sockets, which the protocol check drops.
 */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(count_transition, const struct sock *sk, int oldstate, int newstate)
{
	/*
	 * sk_protocol was an 8-bit bitfield before 5.6 and a u16 since; the probed bitfield
	 * read is relocated correctly for both layouts.
	 */
	if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != SKOPOS_IPPROTO_TCP)
		return 0;

	if (target_netns_ino != 0) {
		__u32 ino = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);

		if (ino != target_netns_ino)
			return 0;
	}

	count_state(counts.into, (__u32)newstate);
	count_state(counts.out_of, (__u32)oldstate);
	return 0;
}
