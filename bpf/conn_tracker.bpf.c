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
/* errno's EEXIST, which vmlinux.h (types only) lacks. */
#define SKOPOS_EEXIST 17

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
	/* 8 KiB a run, so allocated only while a snapshot runs. */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, SKOPOS_SNAPSHOT_MAX_RUNS);
	__type(key, __u32);
	__type(value, struct skopos_snapshot_run);
} snapshot_runs SEC(".maps");

/* Written and read by userspace only (see the ABI header). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, SKOPOS_PROVEN_MAX_NAMESPACES);
	__type(key, __u32);
	__type(value, __u64);
} proven_netns SEC(".maps");

static __always_inline void send_event(const struct skopos_conn_key *key)
{
	struct skopos_conn_event *event;

	event = bpf_ringbuf_reserve(&conn_events, sizeof(*event), 0);
	if (!event) {
		/* Userspace re-reads every key after lost events, clearing every flag. */
		__sync_fetch_and_add(&stats.lost_events, 1);
		return;
	}
	event->key = *key;
	bpf_ringbuf_submit(event, 0);
}

static __always_inline bool same_key(const struct skopos_conn_key *a, const struct skopos_conn_key *b);

/*
 * Names the key of `value` to userspace, unless an event already has and userspace has
 * not read it since (see the ABI header). The element may have been reclaimed and handed
 * to another key since the caller changed it (a reclaim pass between the two): the flag
 * set is then that key's, so that key is named, and `key` too, without a flag.
 */
static __always_inline void notify(struct skopos_conn_count *value, const struct skopos_conn_key *key)
{
	struct skopos_conn_key owner;

	if (value->pending || __sync_lock_test_and_set(&value->pending, 1))
		return;
	owner = value->key;
	send_event(&owner);
	if (!same_key(&owner, key))
		send_event(key);
}

static __always_inline bool same_key(const struct skopos_conn_key *a, const struct skopos_conn_key *b)
{
	return a->netns == b->netns && a->port == b->port && a->direction == b->direction;
}

/* Unmarks a counted socket: back to idle, in place, for the next socket at its address. */
static __always_inline void unmark_socket(struct skopos_sock_mark *mark)
{
	mark->state = SKOPOS_MARK_IDLE;
}

/* Takes 1 off `key`, which a counted socket added it to. A key brought to 0 stays, for
 * the reclaim program. */
static __always_inline void take_count(const struct skopos_conn_key *key)
{
	struct skopos_conn_count *value;
	__u64 before;

	value = bpf_map_lookup_elem(&conn_counts, key);
	/* A counted socket added 1 to a live key, and the reclaim program deletes only keys
	 * at 0. */
	if (!value) {
		__sync_fetch_and_add(&stats.underflows, 1);
		return;
	}
	before = __sync_fetch_and_add(&value->count, -1);
	if ((before & ~SKOPOS_COUNT_AGED) == 0 || (before & SKOPOS_COUNT_RECLAIMED)) {
		/* Taken back, so the markers' bits stay as they were. */
		__sync_fetch_and_add(&value->count, 1);
		__sync_fetch_and_add(&stats.underflows, 1);
		return;
	}
	notify(value, key);
}

/* Takes a counted socket (its mark `mark`) off its key and unmarks it. */
static __always_inline void uncount_socket(struct skopos_sock_mark *mark)
{
	struct skopos_conn_key key = mark->key;

	unmark_socket(mark);
	take_count(&key);
}

/*
 * Marks the socket at `addr` as counted under `key`: an idle mark at this address claimed
 * in place (compare-and-exchange, against the reclaim program), or a new one. A counted
 * mark here belongs to a socket freed at this address while counted, which
 * tcp_set_state() rules out: its count is taken back first, and stats.stale_marks says
 * it happened. A mark being reclaimed is left to its delete, and a fresh one made after
 * it. False when there is no room (or a lock was busy, or the reclaim's delete did not
 * come in time): stats.storage_failures.
 */
static __always_inline bool mark_socket(__u64 addr, const struct skopos_conn_key *key)
{
	struct skopos_sock_mark fresh = { .key = *key, .state = SKOPOS_MARK_COUNTED, .addr = addr };
	struct skopos_sock_mark *mark;
	__u32 state;
	int tries;

	for (tries = 0; tries < SKOPOS_MARK_TRIES; tries++) {
		mark = bpf_map_lookup_elem(&sock_marks, &addr);
		if (!mark) {
			long err = bpf_map_update_elem(&sock_marks, &addr, &fresh, BPF_NOEXIST);

			if (err == 0) {
				__sync_fetch_and_add(&stats.marks_created, 1);
				return true;
			}
			if (err != -SKOPOS_EEXIST)
				break; /* full, or a lock busy */
			continue; /* a reclaimed mark not deleted yet */
		}
		state = mark->state;
		if (state == SKOPOS_MARK_IDLE || state == SKOPOS_MARK_AGED) {
			if (__sync_val_compare_and_swap(&mark->state, state, SKOPOS_MARK_COUNTED) != state)
				continue; /* the reclaim took it first */
			if (mark->addr != addr) {
				/* Reclaimed and handed to another address since the lookup: not
				 * ours. Given back as it was, and a fresh look. */
				__sync_val_compare_and_swap(&mark->state, SKOPOS_MARK_COUNTED, state);
				continue;
			}
			/* Ours: the key is read only under this socket's lock, which we hold. */
			mark->key = *key;
			return true;
		}
		if (state == SKOPOS_MARK_COUNTED) {
			__sync_fetch_and_add(&stats.stale_marks, 1);
			uncount_socket(mark); /* back to idle: the next try claims it */
		}
	}
	__sync_fetch_and_add(&stats.storage_failures, 1);
	return false;
}

/*
 * Adds 1 to `key`, making the key if it is missing; false when it could not (the map
 * full, or the retries ran out).
 */
static __always_inline bool add_count(const struct skopos_conn_key *key)
{
	struct skopos_conn_count zero = { .key = *key, .count = 0 };
	struct skopos_conn_count *value;
	__u64 before;
	int i;

	for (i = 0; i < SKOPOS_COUNT_TRIES; i++) {
		value = bpf_map_lookup_elem(&conn_counts, key);
		if (!value) {
			/* -EEXIST means another CPU created it first: fine. -E2BIG: full. */
			if (bpf_map_update_elem(&conn_counts, key, &zero, BPF_NOEXIST) == 0)
				__sync_fetch_and_add(&stats.keys_created, 1);
			value = bpf_map_lookup_elem(&conn_counts, key);
			if (!value)
				break;
		}
		/* The old value tells whether this key was alive when we added to it. */
		before = __sync_fetch_and_add(&value->count, 1);
		if (before & SKOPOS_COUNT_RECLAIMED)
			continue; /* being deleted by the reclaim program: a fresh key */
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
			notify(value, &other);
			continue;
		}
		if (before & SKOPOS_COUNT_AGED) /* in use again: not the reclaim's any more */
			__sync_fetch_and_and(&value->count, ~SKOPOS_COUNT_AGED);
		notify(value, key);
		return true;
	}
	__sync_fetch_and_add(&stats.count_failures, 1);
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
	struct skopos_sock_mark *mark;

	if (!mark_socket(addr, key))
		return false;
	if (add_count(key))
		return true;
	mark = bpf_map_lookup_elem(&sock_marks, &addr);
	if (mark)
		unmark_socket(mark);
	return false;
}

/*
 * A socket leaving ESTABLISHED with no mark at its address: nobody counted it (it was
 * ESTABLISHED before we loaded, or its mark could not be made). A walk of the shared hash
 * (which holds no socket lock) may have read it ESTABLISHED a moment ago and be about to
 * count it, or read it after its memory goes to another socket: an idle mark at its
 * address, made before its state changes, keeps any walk from counting it (a walk counts
 * only where there is no mark), and should a walk have marked it first after all, it is
 * taken back here. Sockets counted since we loaded never come here. A mark that cannot
 * be made is a storage failure: counts are unknown until a snapshot proves them again.
 */
static __always_inline void leave_unmarked(const struct sock *sk, __u64 addr)
{
	/* The namespace in the key only says whose it was (occupancy()). */
	struct skopos_sock_mark idle = {
		.key.netns = sk->__sk_common.skc_net.net->ns.inum, .state = SKOPOS_MARK_IDLE, .addr = addr
	};
	struct skopos_sock_mark *mark;
	long err;
	int tries;

	for (tries = 0; tries < SKOPOS_MARK_TRIES; tries++) {
		err = bpf_map_update_elem(&sock_marks, &addr, &idle, BPF_NOEXIST);
		if (err == 0) {
			__sync_fetch_and_add(&stats.marks_created, 1);
			return;
		}
		if (err != -SKOPOS_EEXIST)
			break;
		mark = bpf_map_lookup_elem(&sock_marks, &addr);
		if (!mark)
			continue; /* deleted since: make ours */
		if (mark->state == SKOPOS_MARK_COUNTED && mark->addr == addr)
			uncount_socket(mark); /* a walk counted it first */
		return;
	}
	__sync_fetch_and_add(&stats.storage_failures, 1);
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
		/* Not counted, as every socket entering ESTABLISHED is (mark_socket finds
		 * out if not). */
		fill_key(&key, sk, oldstate == TCP_SYN_RECV);
		count_socket(addr, &key);
		return 0;
	}

	/* Leaving ESTABLISHED. Not counted: established before we loaded and not yet
	 * found by a snapshot, so there is nothing to take back -- but a mark to leave
	 * (see leave_unmarked). */
	mark = bpf_map_lookup_elem(&sock_marks, &addr);
	if (mark && mark->state == SKOPOS_MARK_COUNTED && mark->addr == addr)
		uncount_socket(mark);
	else if (!mark)
		leave_unmarked(sk, addr);
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

		if (mark && mark->state == SKOPOS_MARK_COUNTED && mark->addr == addr)
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

/* The walk's arguments and results (see struct skopos_walk): userspace writes and reads
 * them through the global data's mapping, from one thread at a time. */
struct skopos_walk walk_args = {};

/* Where a walk stands, on the program's stack, for its bpf_loop() steps. */
struct walk_state {
	__u64 heads;  /* the address of bucket 0's list head */
	__u64 stride; /* bytes from one bucket's head to the next */
	__u64 node;   /* the list node in hand; 0: the bucket's head is to be read */
	__u64 net;    /* the last socket's namespace (struct net *), and its inode */
	__u32 inum;
	__u32 bucket;
	__u32 to;
	__u32 nulls_base;
	__u32 chain; /* sockets met in this bucket so far */
	__u32 max_chain; /* and at most */
	__u32 tries; /* walks of this bucket so far */
	__u32 table;
	__s32 error;
	__u64 unclaimed;
	__u64 hash; /* the hash walked (struct inet_hashinfo *) */
	__u64 net_hash; /* the hash of `net`'s namespace */
};

/* Reads a kernel value the walk passes (no socket lock: it may change under us). */
#define WALK_READ(dst, src) bpf_probe_read_kernel(&(dst), sizeof(dst), (const void *)(src))

/*
 * One socket the walk met; 1 when it belongs to a namespace with an established hash of
 * its own, where a socket freed and reused meanwhile led the walk (its bucket is walked
 * again). A global function, so that the verifier checks it once, on its own, rather
 * than along every path of the walk's loop (which made loading take seconds).
 */
__noinline int walk_visit(struct walk_state *w, __u64 addr)
{
	const struct sock_common *skc = (const struct sock_common *)addr;
	struct skopos_snapshot_run *run;
	struct skopos_conn_key key;
	__u64 net = 0;
	__u16 port = 0, dport = 0;
	__u8 state = 0;
	__u32 word;
	bool inbound;

	if (!w)
		return 0;
	if (BPF_CORE_READ_INTO(&net, skc, skc_net.net) || !net)
		return 0;
	if (net != w->net) {
		const struct net *ns = (const struct net *)net;

		if (BPF_CORE_READ_INTO(&w->inum, ns, ns.inum) ||
		    BPF_CORE_READ_INTO(&w->net_hash, ns, ipv4.tcp_death_row.hashinfo))
			return 0;
		w->net = net;
	}
	/* Every namespace shares the listening hash; not every one the established hash. */
	if (w->table == SKOPOS_WALK_ESTABLISHED && w->net_hash != w->hash)
		return 1;
	if (BPF_CORE_READ_INTO(&state, skc, skc_state))
		return 0;
	if (state != (w->table == SKOPOS_WALK_LISTENING ? TCP_LISTEN : TCP_ESTABLISHED))
		return 0;
	run = bpf_map_lookup_elem(&snapshot_runs, &w->inum);
	if (!run)
		return 0; /* not a namespace being snapshotted */
	if (BPF_CORE_READ_INTO(&port, skc, skc_num))
		return 0;
	word = port / 64;
	barrier_var(word); /* see snapshot_namespace */
	word &= SKOPOS_PORT_BITMAP_WORDS - 1;
	if (w->table == SKOPOS_WALK_LISTENING) {
		__sync_fetch_and_or(&run->listeners[word], 1ULL << (port % 64));
		return 0;
	}
	/* Any mark at the address: counted, or a socket there left ESTABLISHED since we
	 * read it (see leave_unmarked). Only full sockets are ESTABLISHED, and a socket's
	 * memory stays a socket of its kind. */
	{
		struct skopos_sock_mark *mark = bpf_map_lookup_elem(&sock_marks, &addr);

		if (mark) {
			if (mark->state != SKOPOS_MARK_COUNTED)
				w->unclaimed++; /* left just now, or failed: the iterator's to tell */
			return 0;
		}
	}
	inbound = (run->listeners[word] >> (port % 64)) & 1;
	if (!inbound && BPF_CORE_READ_INTO(&dport, skc, skc_dport))
		return 0;
	key.netns = w->inum;
	key.direction = inbound ? SKOPOS_DIRECTION_INBOUND : SKOPOS_DIRECTION_OUTBOUND;
	key.port = inbound ? port : bpf_ntohs(dport);
	key.pad = 0;
	/* Counted before it is marked, so that a leave that finds the mark has a count to
	 * take back; a mark that cannot be made takes the count back. */
	if (!add_count(&key))
		return 0;
	{
		struct skopos_sock_mark fresh = { .key = key, .state = SKOPOS_MARK_COUNTED, .addr = addr };
		long err = bpf_map_update_elem(&sock_marks, &addr, &fresh, BPF_NOEXIST);

		if (err) {
			take_count(&key);
			if (err != -SKOPOS_EEXIST) /* -EEXIST: it left meanwhile (leave_unmarked) */
				__sync_fetch_and_add(&stats.storage_failures, 1);
			return 0;
		}
	}
	__sync_fetch_and_add(&stats.marks_created, 1);
	__sync_fetch_and_add(&stats.snapshot_counted, 1);
	__sync_fetch_and_add(&stats.walk_counted, 1);
	return 0;
}

/* The bucket again, from its head (the walk was led off its chain); 1 (stop, EAGAIN)
 * once it has been walked SKOPOS_WALK_TRIES times. */
static __always_inline long walk_again(struct walk_state *w)
{
	w->node = 0;
	if (++w->tries < SKOPOS_WALK_TRIES)
		return 0;
	w->error = -11; /* EAGAIN */
	return 1;
}

/* One step of a walk: a bucket's head read, a socket visited, or a chain's end. */
static long walk_step(__u64 index, struct walk_state *w)
{
	__u64 next = 0;

	if (!w->node) {
		if (WALK_READ(w->node, w->heads + (__u64)w->bucket * w->stride) || !w->node) {
			w->error = -14; /* EFAULT */
			return 1;
		}
		w->chain = 0;
	}
	if (w->node & 1) {
		/* A nulls marker: the chain's end, which names its bucket. Another bucket's
		 * means a socket we stood on moved meanwhile: this bucket again. */
		if ((w->node >> 1) != (__u64)w->nulls_base + w->bucket)
			return walk_again(w);
		w->bucket++;
		w->node = 0;
		w->tries = 0;
		return w->bucket >= w->to;
	}
	if (++w->chain > w->max_chain) {
		w->error = -7; /* E2BIG */
		return 1;
	}
	if (walk_visit(w, w->node - bpf_core_field_offset(struct sock_common, skc_nulls_node)) ||
	    WALK_READ(next, w->node + bpf_core_field_offset(struct hlist_nulls_node, next)) || !next)
		return walk_again(w); /* led off the shared hash, or a node read mid-change */
	w->node = next;
	return 0;
}

/* The TCP hash of the calling thread's namespace, or NULL on a kernel before per-namespace
 * hashes (6.1), whose one hash the walk does not find. */
static __always_inline struct inet_hashinfo *current_hash(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	if (!bpf_core_field_exists(struct inet_timewait_death_row, hashinfo) ||
	    !bpf_core_field_exists(struct inet_hashinfo, pernet))
		return NULL;
	return BPF_CORE_READ(task, nsproxy, net_ns, ipv4.tcp_death_row.hashinfo);
}

/*
 * The shared-hash walk (see struct skopos_walk): buckets [from, to) of the host's TCP
 * hash, from a thread in a namespace that shares it, as far as SKOPOS_WALK_STEPS go.
 */
SEC("raw_tp")
int walk_hash(void *ctx)
{
	struct walk_state w = {};
	struct inet_hashinfo *hash = current_hash();
	__u32 mask = 0;
	bool pernet = true;

	walk_args.error = 0;
	walk_args.next = walk_args.from;
	if (!hash || BPF_CORE_READ_INTO(&pernet, hash, pernet) || pernet) {
		walk_args.error = -95; /* EOPNOTSUPP: not the shared hash */
		return 0;
	}
	w.table = walk_args.table;
	w.max_chain = walk_args.max_chain < SKOPOS_WALK_MAX_CHAIN ? walk_args.max_chain : SKOPOS_WALK_MAX_CHAIN;
	w.hash = (__u64)hash;
	if (w.table == SKOPOS_WALK_LISTENING) {
		if (BPF_CORE_READ_INTO(&w.heads, hash, lhash2) || BPF_CORE_READ_INTO(&mask, hash, lhash2_mask))
			goto fault;
		w.heads += bpf_core_field_offset(struct inet_listen_hashbucket, nulls_head);
		w.stride = bpf_core_type_size(struct inet_listen_hashbucket);
		w.nulls_base = SKOPOS_LISTENING_NULLS_BASE;
	} else {
		if (BPF_CORE_READ_INTO(&w.heads, hash, ehash) || BPF_CORE_READ_INTO(&mask, hash, ehash_mask))
			goto fault;
		w.stride = bpf_core_type_size(struct inet_ehash_bucket);
	}
	if (!w.heads)
		goto fault;
	walk_args.buckets = mask + 1;
	w.bucket = walk_args.from;
	w.to = walk_args.to < mask + 1 ? walk_args.to : mask + 1;
	if (w.bucket < w.to)
		bpf_loop(SKOPOS_WALK_STEPS, walk_step, &w, 0);
	walk_args.next = w.bucket;
	walk_args.error = w.error;
	walk_args.unclaimed += w.unclaimed;
	return 0;
fault:
	walk_args.error = -14;
	return 0;
}

/* Whether the calling thread's namespace shares the host's TCP hash (SKOPOS_HASH_*). */
SEC("raw_tp")
int hash_shared(void *ctx)
{
	struct inet_hashinfo *hash = current_hash();
	bool pernet = true;

	if (!hash || BPF_CORE_READ_INTO(&pernet, hash, pernet))
		return SKOPOS_HASH_UNKNOWN;
	return pernet ? SKOPOS_HASH_OWN : SKOPOS_HASH_SHARED;
}

/* What the last reclaim pass did, for userspace (through the global data's mapping). */
struct skopos_reclaim reclaim_result = {};

/*
 * Deletes an entry this pass or an earlier one marked reclaimed. A delete that fails is
 * counted, and the entry left, still marked, for the next pass.
 */
static __always_inline bool delete_reclaimed(struct bpf_map *map, const void *key, struct skopos_reclaim *result)
{
	if (!bpf_map_delete_elem(map, key))
		return true;
	__sync_fetch_and_add(&stats.reclaim_failures, 1);
	result->failures++;
	return false;
}

static long reclaim_key(struct bpf_map *map, struct skopos_conn_key *key, struct skopos_conn_count *value,
			struct skopos_reclaim *result)
{
	__u64 count = value->count;

	/* At 0: aged by this pass, reclaimed by the next if no socket came meanwhile (the
	 * first increment clears the aged bit). Already reclaimed: a delete that failed in
	 * an earlier pass (this program is the only one that reclaims, one pass at a time),
	 * tried again. Increments meeting the reclaimed marker try a fresh key. */
	if (count == 0) {
		__sync_val_compare_and_swap(&value->count, 0, SKOPOS_COUNT_AGED);
		result->keys_left++;
		result->keys_idle++;
		return 0;
	}
	if (count == SKOPOS_COUNT_AGED &&
	    __sync_val_compare_and_swap(&value->count, SKOPOS_COUNT_AGED, SKOPOS_COUNT_RECLAIMED) == SKOPOS_COUNT_AGED)
		count = SKOPOS_COUNT_RECLAIMED;
	if ((count & SKOPOS_COUNT_RECLAIMED) && delete_reclaimed(map, key, result))
		result->keys_reclaimed++;
	else
		result->keys_left++;
	return 0;
}

static long reclaim_mark(struct bpf_map *map, __u64 *addr, struct skopos_sock_mark *mark,
			 struct skopos_reclaim *result)
{
	__u32 state = mark->state;

	/* Idle: aged by this pass, reclaimed by the next if no socket claimed it meanwhile.
	 * Reclaiming already: a delete that failed in an earlier pass, tried again. */
	if (state == SKOPOS_MARK_IDLE) {
		__sync_val_compare_and_swap(&mark->state, SKOPOS_MARK_IDLE, SKOPOS_MARK_AGED);
		result->marks_left++;
		return 0;
	}
	if (state == SKOPOS_MARK_AGED &&
	    __sync_val_compare_and_swap(&mark->state, SKOPOS_MARK_AGED, SKOPOS_MARK_RECLAIMING) == SKOPOS_MARK_AGED)
		state = SKOPOS_MARK_RECLAIMING;
	if (state == SKOPOS_MARK_RECLAIMING && delete_reclaimed(map, addr, result)) {
		result->marks_reclaimed++;
		return 0;
	}
	result->marks_left++;
	if (mark->state == SKOPOS_MARK_COUNTED)
		result->marks_counted++;
	return 0;
}

/*
 * The reclaim pass: deletes the keys at 0 and the idle marks that the previous pass
 * found so and no socket used since, and ages the rest of those at 0 or idle (see the
 * ABI header). Userspace runs it with BPF_PROG_RUN, one pass at a time, and reads what it
 * did from `reclaim_result`. (A raw_tp program, not a sleepable `syscall` one: before
 * kernel 6.1 sleepable programs could not use sock_marks, a map allocated as it fills.)
 */
SEC("raw_tp")
int reclaim(void *ctx)
{
	struct skopos_reclaim result = {};

	bpf_for_each_map_elem(&conn_counts, reclaim_key, &result, 0);
	bpf_for_each_map_elem(&sock_marks, reclaim_mark, &result, 0);
	reclaim_result = result;
	return 0;
}

/* read_keys' batch: userspace writes it through the global data's mapping. */
struct skopos_key_batch read_batch = {};

/*
 * Reads a batch of counts for userspace (see struct skopos_key_batch), clearing each
 * key's pending flag first: a change after the clear sends a fresh event.
 */
SEC("raw_tp")
int read_keys(void *ctx)
{
	__u32 n = read_batch.n;
	__u32 i;

	for (i = 0; i < SKOPOS_READ_BATCH; i++) {
		struct skopos_conn_key key;
		struct skopos_conn_count *value;

		if (i >= n)
			break;
		key = read_batch.keys[i];
		value = bpf_map_lookup_elem(&conn_counts, &key);
		if (!value) {
			read_batch.counts[i] = SKOPOS_COUNT_MISSING;
			continue;
		}
		__sync_lock_test_and_set(&value->pending, 0);
		read_batch.counts[i] = value->count;
	}
	return 0;
}

static long clear_pending(struct bpf_map *map, struct skopos_conn_key *key, struct skopos_conn_count *value,
			  void *unused)
{
	__sync_lock_test_and_set(&value->pending, 0);
	return 0;
}

/*
 * Clears every key's pending flag: userspace runs it before it re-reads the whole map
 * (after lost events, whose keys would otherwise never be named again).
 */
SEC("raw_tp")
int clear_all_pending(void *ctx)
{
	bpf_for_each_map_elem(&conn_counts, clear_pending, NULL, 0);
	return 0;
}
