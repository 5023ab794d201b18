/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * ABI of bpf/state_transitions.bpf.c, the one definition that both the BPF program
 * and its userspace owner (tracker/src/state_transition_probe.cpp) include. Nothing
 * that crosses the kernel/user boundary is defined anywhere else.
 */
#ifndef SKOPOS_BPF_STATE_TRANSITIONS_H
#define SKOPOS_BPF_STATE_TRANSITIONS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/*
 * TCP states are 1..13 in include/net/tcp_states.h (TCP_ESTABLISHED .. TCP_BOUND_INACTIVE);
 * 16 slots leave room for states a future kernel adds without changing the layout.
 */
#define SKOPOS_TCP_STATE_SLOTS 16 /* a power of two: the program masks indices with it */

/* Counts of inet_sock_set_state transitions seen for TCP sockets. */
struct skopos_transition_counts {
	__u64 into[SKOPOS_TCP_STATE_SLOTS];   /* by the state the socket entered */
	__u64 out_of[SKOPOS_TCP_STATE_SLOTS]; /* by the state the socket left */
	__u64 out_of_range;                   /* states >= SKOPOS_TCP_STATE_SLOTS */
};

#endif /* SKOPOS_BPF_STATE_TRANSITIONS_H */
