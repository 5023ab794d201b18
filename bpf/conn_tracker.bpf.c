// SPDX-License-Identifier: GPL-2.0
/*
 * Exact counts of ESTABLISHED TCP sockets per (network namespace, port, direction),
 * in every namespace, kept by the kernel as sockets change state. See the ABI header
 * for the contract; this file states the kernel facts the contract rests on.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "skopos/bpf/conn_tracker.h"

char LICENSE[] SEC("license") = "GPL";

/* IPPROTO_TCP; the uapi enum is not in vmlinux.h on every kernel. */
#define SKOPOS_IPPROTO_TCP 6

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SKOPOS_CONN_MAX_KEYS);
	__type(key, struct skopos_conn_key);
	__type(value, struct skopos_conn_count);
} conn_counts SEC(".maps");

/*
 * The counted sockets, by socket address (see the ABI header). Not preallocated: entries
 * come from the kernel's per-CPU BPF allocator as sockets are counted, which costs a
 * fraction of socket-local storage's allocation, memcg charge and RCU free per socket.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, SKOPOS_CONN_MAX_SOCKETS);
	__type(key, __u64);
	__type(value, struct skopos_sock_mark);
} sock_marks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, SKOPOS_CONN_RINGBUF_BYTES);
} conn_events SEC(".maps");

struct skopos_conn_stats stats = {};

/*
 * The snapshot runs in progress (see struct skopos_snapshot_run): userspace adds a
 * namespace's entry, zeroed, before it runs the iterator there and deletes it after. The
 * iterator sees a namespace's listeners before its established sockets (bpf_iter_tcp
 * walks the listening hash first), so the bitmap is complete by the time it is needed.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SKOPOS_SNAPSHOT_MAX_RUNS);
	__type(key, __u32);
	__type(value, struct skopos_snapshot_run);
} snapshot_runs SEC(".maps");

static __always_inline void send_event(const struct skopos_conn_key *key, __s32 delta)
{
	struct skopos_conn_event *event;

	event = bpf_ringbuf_reserve(&conn_events, sizeof(*event), 0);
	if (!event) {
		__sync_fetch_and_add(&stats.lost_events, 1);
		return;
	}
	event->key = *key;
	event->delta = delta;
	event->pad = 0;
	bpf_ringbuf_submit(event, 0);
}

static __always_inline bool same_key(const struct skopos_conn_key *a, const struct skopos_conn_key *b)
{
	return a->netns == b->netns && a->port == b->port && a->direction == b->direction;
}

/*
 * Unmarks the socket: `counted` cleared in place first, which cannot fail, then the mark
 * deleted. A hash map delete can fail (its bucket lock busy on this CPU, when this runs
 * in a softirq that interrupted a run holding it); the mark then stays, uncounted, for
 * the next socket at this address to reuse in place, and stats.unmark_failures says so.
 */
static __always_inline void unmark_socket(__u64 addr, struct skopos_sock_mark *mark)
{
	mark->counted = 0;
	if (bpf_map_delete_elem(&sock_marks, &addr))
		__sync_fetch_and_add(&stats.unmark_failures, 1);
}

/* Takes a counted socket (its mark found under `addr`) off its key and unmarks it. */
static __always_inline void uncount_socket(__u64 addr, struct skopos_sock_mark *mark)
{
	struct skopos_conn_key key = mark->key;
	struct skopos_conn_count *value;
	__u64 before;

	unmark_socket(addr, mark);
	value = bpf_map_lookup_elem(&conn_counts, &key);
	/* A marked socket added 1 to a live key, and a live key is neither deleted nor
	 * handed to another key while it is. */
	if (!value) {
		__sync_fetch_and_add(&stats.underflows, 1);
		return;
	}
	before = __sync_fetch_and_add(&value->count, -1);
	if (before == 0 || (before & SKOPOS_COUNT_RECLAIMED)) {
		__sync_fetch_and_add(&stats.underflows, 1);
		return;
	}
	/* The last socket of the key: reclaim it, unless another CPU added one meanwhile. */
	if (before == 1 && __sync_val_compare_and_swap(&value->count, 0, SKOPOS_COUNT_RECLAIMED) == 0)
		bpf_map_delete_elem(&conn_counts, &key);
	send_event(&key, -1);
}

/*
 * Marks the socket at `addr` as counted under `key`: a new mark, or one left uncounted
 * at this address (see unmark_socket) reused in place. A counted mark here belongs to a
 * socket freed at this address while counted, which tcp_set_state() rules out: its count
 * is taken back first, and stats.stale_marks says it happened. False when the map has no
 * room (or its lock was busy): stats.storage_failures.
 */
static __always_inline bool mark_socket(__u64 addr, const struct skopos_conn_key *key)
{
	struct skopos_sock_mark fresh = { .key = *key, .counted = 1 };
	struct skopos_sock_mark *mark;
	int tries;

	for (tries = 0; tries < 2; tries++) {
		if (bpf_map_update_elem(&sock_marks, &addr, &fresh, BPF_NOEXIST) == 0)
			return true;
		mark = bpf_map_lookup_elem(&sock_marks, &addr);
		if (!mark)
			break;
		if (!mark->counted) {
			mark->key = *key;
			mark->counted = 1;
			return true;
		}
		__sync_fetch_and_add(&stats.stale_marks, 1);
		uncount_socket(addr, mark); /* deletes the mark, or leaves it uncounted */
	}
	__sync_fetch_and_add(&stats.storage_failures, 1);
	return false;
}

/*
 * Marks the socket and adds it to `key`; false when it could not be counted (it stays
 * unmarked, stats.storage_failures or stats.count_failures says so, and userspace stops
 * trusting counts until a snapshot has found it). The mark goes first: taking it back
 * cannot fail, while taking back a count could leave a key to reclaim.
 */
static __always_inline bool count_socket(__u64 addr, const struct skopos_conn_key *key)
{
	struct skopos_conn_count zero = { .key = *key, .count = 0 };
	struct skopos_conn_count *value;
	struct skopos_sock_mark *mark;
	__u64 before;
	int i;

	if (!mark_socket(addr, key))
		return false;
	for (i = 0; i < SKOPOS_COUNT_TRIES; i++) {
		value = bpf_map_lookup_elem(&conn_counts, key);
		if (!value) {
			/* -EEXIST means another CPU created it first: fine. -E2BIG: full. */
			bpf_map_update_elem(&conn_counts, key, &zero, BPF_NOEXIST);
			value = bpf_map_lookup_elem(&conn_counts, key);
			if (!value)
				break;
		}
		/* The old value tells whether this key was alive when we added to it. */
		before = __sync_fetch_and_add(&value->count, 1);
		if (before & SKOPOS_COUNT_RECLAIMED)
			continue; /* being deleted by the CPU that brought it to 0: a fresh key */
		if (!same_key(&value->key, key)) {
			/* Reclaimed and handed to another key since the lookup: the 1 went to
			 * that key. Taken back only if its count is still exactly what this add
			 * made it (a compare-and-exchange): the element's new owner may have
			 * rewritten the count under us, and a blind subtraction could then
			 * wrap it. Otherwise it stays one too high -- never too low -- and
			 * stats.misplaced_counts says so. Either way its readers re-read it. */
			struct skopos_conn_key other = value->key;

			if (__sync_val_compare_and_swap(&value->count, before + 1, before) != before + 1)
				__sync_fetch_and_add(&stats.misplaced_counts, 1);
			send_event(&other, 0);
			continue;
		}
		send_event(key, 1);
		return true;
	}
	mark = bpf_map_lookup_elem(&sock_marks, &addr);
	if (mark)
		unmark_socket(addr, mark);
	__sync_fetch_and_add(&stats.count_failures, 1);
	return false;
}

/*
 * Both programs get BTF-typed (trusted) socket pointers, so fields are read with plain
 * loads -- CO-RE-relocated through vmlinux.h's preserve_access_index -- instead of
 * bpf_probe_read_kernel() calls, which cost a helper call each on this hot path.
 */
static __always_inline void fill_key(struct skopos_conn_key *key, const struct sock *sk, bool inbound)
{
	key->netns = sk->__sk_common.skc_net.net->ns.inum;
	key->direction = inbound ? SKOPOS_DIRECTION_INBOUND : SKOPOS_DIRECTION_OUTBOUND;
	key->pad = 0;
	/* skc_num is the local port in host order; skc_dport the remote one, network order. */
	if (inbound)
		key->port = sk->__sk_common.skc_num;
	else
		key->port = bpf_ntohs(sk->__sk_common.skc_dport);
}

/*
 * tp_btf: typed arguments from BTF, no tracefs, no copy. inet_sock_set_state fires from
 * tcp_set_state() and inet_sk_state_store() for every TCP state change in every network
 * namespace (and for DCCP, SCTP and MPTCP sockets, which the protocol check drops), always
 * with the socket locked -- the lock that also serialises this with the iterator below.
 *
 * An accepted socket is cloned from its listener (inet_csk_clone_lock: LISTEN->SYN_RECV)
 * and enters ESTABLISHED from SYN_RECV, including TCP Fast Open and syncookie children;
 * connect() enters it from SYN_SENT.
 */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(track_transition, struct sock *sk, int oldstate, int newstate)
{
	struct skopos_sock_mark *mark;
	struct skopos_conn_key key;
	__u64 addr = (__u64)sk;

	if ((newstate == TCP_ESTABLISHED) == (oldstate == TCP_ESTABLISHED))
		return 0; /* neither entering nor leaving ESTABLISHED */
	/* sk_protocol was an 8-bit bitfield before 5.6 and a u16 since; CO-RE relocates
	 * the bitfield read for both layouts. */
	if (BPF_CORE_READ_BITFIELD(sk, sk_protocol) != SKOPOS_IPPROTO_TCP)
		return 0;

	if (newstate == TCP_ESTABLISHED) {
		/* Not counted, as every socket entering ESTABLISHED is (mark_socket's insert
		 * finds out if not, with no lookup first). */
		fill_key(&key, sk, oldstate == TCP_SYN_RECV);
		count_socket(addr, &key);
		return 0;
	}

	/* Leaving ESTABLISHED. Not counted: established before we loaded and not yet
	 * found by a snapshot, so there is nothing to take back. */
	mark = bpf_map_lookup_elem(&sock_marks, &addr);
	if (mark && mark->counted)
		uncount_socket(addr, mark);
	return 0;
}

/*
 * The snapshot: counts the ESTABLISHED sockets of one namespace that no transition has
 * counted yet. bpf_iter_tcp runs this for each socket of the namespace the iterator was
 * created in, with the socket locked (lock_sock_fast) and skipping sockets already
 * unhashed, so a socket is either counted here or by the tracepoint, never both.
 */
SEC("iter/tcp")
int snapshot_namespace(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct skopos_snapshot_run *run;
	struct skopos_conn_key key;
	struct tcp_sock *tp;
	__u64 addr;
	__u32 netns;
	__u16 port;
	__u8 state;
	bool inbound;

	if (!skc)
		return 0;
	/* The kernel walks only the namespace the iterator was created in; its run holds
	 * that namespace's listeners. */
	netns = skc->skc_net.net->ns.inum;
	run = bpf_map_lookup_elem(&snapshot_runs, &netns);
	if (!run)
		return 0;
	state = skc->skc_state;
	port = skc->skc_num;

	if (state == TCP_LISTEN) {
		__u32 word = port / 64;

		/* clang turns a range test into a test on a copy of `word` and indexes
		 * with the original register, about which the verifier then knows
		 * nothing ("unbounded memory access"). barrier_var() hides from clang
		 * that `word` is already in range, so the mask stays and bounds the
		 * register actually used. */
		barrier_var(word);
		word &= SKOPOS_PORT_BITMAP_WORDS - 1;
		__sync_fetch_and_or(&run->listeners[word], 1ULL << (port % 64));
		return 0;
	}
	if (state != TCP_ESTABLISHED)
		return 0;
	/* Request and time-wait mini-sockets are never ESTABLISHED; only full sockets count. */
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	addr = (__u64)tp;
	{
		struct skopos_sock_mark *mark = bpf_map_lookup_elem(&sock_marks, &addr);

		if (mark && mark->counted)
			return 0; /* counted already */
	}

	{
		__u32 word = port / 64;

		barrier_var(word);
		word &= SKOPOS_PORT_BITMAP_WORDS - 1;
		inbound = (run->listeners[word] >> (port % 64)) & 1;
	}
	fill_key(&key, (struct sock *)tp, inbound);
	if (count_socket(addr, &key))
		__sync_fetch_and_add(&stats.snapshot_counted, 1);
	return 0;
}
