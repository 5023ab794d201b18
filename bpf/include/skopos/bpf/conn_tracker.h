/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * ABI of bpf/conn_tracker.bpf.c, the one definition that both the BPF program and its
 * userspace owner (tracker/src/bpf_connection_source.cpp) include.
 *
 * The program keeps, for every network namespace, the number of ESTABLISHED TCP sockets
 * per (port, direction) in the hash map `conn_counts`, and names changed keys through the
 * ring buffer `conn_events`. The map is the truth; an event only says which key to read
 * again, so lost or reordered events can never make a count wrong. A key is named once
 * until userspace has read it: a change sets the value's `pending` flag and sends an
 * event only if it was clear, and the `read_keys` program clears the flag before it
 * reads the count. So a change made after a read always sends a fresh event, and a busy
 * port costs one event per read of userspace instead of two per connection (the ring
 * buffer's lock, its cache lines shared with the reader and the reader's wakeup were
 * half of the hot path's cost).
 *
 * A socket is counted at most once: the hash map `sock_marks`, keyed by the socket's
 * address, holds the key it was counted under while it is counted (state
 * SKOPOS_MARK_COUNTED). The mark is set when the socket enters ESTABLISHED (or when the
 * snapshot iterator finds it ESTABLISHED and not counted) and goes back to
 * SKOPOS_MARK_IDLE, in place, when it leaves. A socket that leaves ESTABLISHED not
 * counted leaves an idle mark (for the shared-hash walk, see SKOPOS_WALK_*). Both the tracepoint and the iterator run under the socket's lock (the
 * iterator since kernel 5.15), so the two can never both count one socket; the walk,
 * which holds no lock, counts only where no mark exists at all.
 * Every TCP socket leaves ESTABLISHED (through tcp_set_state(), which fires the
 * tracepoint) before it is freed, so a socket entering ESTABLISHED is never counted
 * already. Should it be even so (a socket freed at that address while counted), its
 * count is taken back before the new socket is counted, and stats.stale_marks says it
 * happened. (The marks were socket-local storage before: its allocation, memory charge
 * and RCU free per socket were most of the program's cost per connection. The socket
 * cookie would be a key never reused, but making one cost a third as much again.)
 *
 * The hot path neither creates nor deletes map entries once they exist. A count that
 * reaches 0 keeps its key, and an idle mark waits for the next socket at its address
 * (the kernel's socket slab hands addresses out again and again), so a connection that
 * opens and closes costs lookups and atomics, not two allocations and two frees per map
 * (bench_tracker measured those at half the added wall time of a connect/accept/close
 * loop). Idle entries are reclaimed in batches by the `reclaim` program, which userspace
 * runs (BPF_PROG_RUN) on an interval and when the maps have grown or a socket could not
 * be counted. An entry goes only
 * once it has stayed idle from one pass to the next, so the entries the hot path keeps
 * reusing (a service's port between connections, a recycled socket address) are never
 * deleted under it:
 *  - a pass turns a count of exactly 0 into SKOPOS_COUNT_AGED (compare-and-exchange);
 *    the first increment after clears the bit again. The next pass turns an
 *    exactly-aged value into SKOPOS_COUNT_RECLAIMED (compare-and-exchange) and deletes
 *    the key. An increment that finds the reclaimed marker (atomic fetch-and-add
 *    returns it) did not count and tries again on a fresh key; so no increment is ever
 *    lost with a deleted key. Readers take a value with the marker bit set as 0, and
 *    ignore the aged bit.
 *  - a pass turns an idle mark into SKOPOS_MARK_AGED, and the next an aged one into
 *    SKOPOS_MARK_RECLAIMING (compare-and-exchange each) and deletes it. A socket
 *    entering ESTABLISHED claims an idle or aged mark by compare-and-exchange to
 *    COUNTED, which keeps it from the reclaim; one that meets a mark being reclaimed
 *    waits for the delete and makes a fresh mark. Each mark carries its address: the
 *    kernel hands a deleted element to the next new one at once, so a claim that finds
 *    another address there after the compare-and-exchange gives the element back.
 *  - an entry a delete failed on stays reclaimed and is deleted by the next pass.
 * The kernel may hand a deleted element to another key at once, so an increment that
 * looked its key up just before the reclaim deleted it can land on an element that now
 * counts a different key. Each value therefore carries its key: an increment that finds
 * another key there after adding tries again on its own key, takes its 1 back from the
 * other key only if that count is still exactly what the add made it (compare-and-
 * exchange; a blind subtraction could wrap a count the new owner rewrote meanwhile), and
 * otherwise leaves it one too high -- the safe side: a drain waits rather than stops a
 * live connection -- and counts stats.misplaced_counts. It sends an event for that key
 * either way. An event names the key the element holds when its pending flag is set,
 * and the caller's key too when that is another.
 *
 * A socket that cannot be counted (either map full or out of memory, a bucket lock busy,
 * or the retries ran out) is left unmarked and counted in stats; userspace then treats every
 * namespace as unknown until a fresh snapshot (which counts every ESTABLISHED unmarked
 * socket) has proven its count again. Never a known 0 for a socket we lost.
 */
#ifndef SKOPOS_BPF_CONN_TRACKER_H
#define SKOPOS_BPF_CONN_TRACKER_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/*
 * Direction of an ESTABLISHED socket, fixed when it is first counted:
 *  - inbound: accepted from a listener (it entered ESTABLISHED from SYN_RECV), keyed by
 *    its local port; for sockets found by the snapshot, a socket whose local port has a
 *    listener in the same namespace.
 *  - outbound: everything else (connect()), keyed by the REMOTE port, because the local
 *    port of an outgoing connection is an ephemeral number that tells nobody anything.
 */
#define SKOPOS_DIRECTION_INBOUND 0
#define SKOPOS_DIRECTION_OUTBOUND 1

/* Keys of conn_counts. `netns` is the inode number of the network namespace (ns.inum). */
struct skopos_conn_key {
	__u32 netns;
	__u16 port;     /* host byte order */
	__u8 direction; /* SKOPOS_DIRECTION_* */
	__u8 pad;       /* always 0: keys are compared as bytes */
};

/* Values of conn_counts. `key` repeats the map key (see above); `count` has the
 * SKOPOS_COUNT_RECLAIMED bit while the key is being reclaimed and SKOPOS_COUNT_AGED while
 * it has stayed at 0 through a reclaim pass; `pending`: an event names the key and
 * userspace has not read it since. */
struct skopos_conn_count {
	struct skopos_conn_key key;
	__u64 count;
	__u32 pending;
	__u32 pad;
};

/* States of a socket mark (see above). */
#define SKOPOS_MARK_IDLE 0       /* not counted: reused in place by the next socket at the address */
#define SKOPOS_MARK_COUNTED 1    /* counted under `key` */
#define SKOPOS_MARK_RECLAIMING 2 /* the reclaim program is deleting it */
#define SKOPOS_MARK_AGED 3       /* idle through a reclaim pass: the next deletes it */

/* What sock_marks holds for a socket (keyed by its address, as a __u64). */
struct skopos_sock_mark {
	struct skopos_conn_key key; /* where the socket is counted */
	__u32 state;                /* SKOPOS_MARK_* */
	__u32 pad;
	__u64 addr; /* the map key again: an element claimed after the reclaim handed it on
		     * to another address is given back (the kernel reuses them at once) */
};

/* One ring buffer record: the count of `key` changed; read it (read_keys). */
struct skopos_conn_event {
	struct skopos_conn_key key;
};

/*
 * The read_keys program's batch (the global `read_batch`, which userspace reaches through
 * the skeleton's mapping of the program's data): userspace fills `keys[0, n)` and runs
 * the program (BPF_PROG_RUN), which clears each key's pending flag, then reads its count
 * into `counts` (SKOPOS_COUNT_MISSING for a key not in the map: reclaimed, so 0).
 */
#define SKOPOS_READ_BATCH 256
#define SKOPOS_COUNT_MISSING (~0ULL)
struct skopos_key_batch {
	__u32 n;
	__u32 pad;
	struct skopos_conn_key keys[SKOPOS_READ_BATCH];
	__u64 counts[SKOPOS_READ_BATCH];
};

/*
 * Things that went wrong in the kernel, as counters (never per-event logs). Any nonzero
 * lost_events makes userspace re-read the whole map; any nonzero count_failures or
 * storage_failures means a count may be off and is reported as such.
 */
struct skopos_conn_stats {
	__u64 lost_events;      /* ring buffer full: an event was not sent */
	__u64 count_failures;   /* conn_counts full, busy or its key reclaimed: a socket not counted */
	__u64 storage_failures; /* sock_marks full (or busy): a socket could not be marked */
	__u64 underflows;       /* a decrement found 0 (must never happen) */
	__u64 snapshot_counted; /* sockets counted by the snapshot iterator */
	__u64 stale_marks;      /* a socket entering ESTABLISHED had a counted mark (must never happen) */
	__u64 reclaim_failures; /* a reclaim's delete failed: the entry waits for the next pass */
	__u64 misplaced_counts; /* an increment left on a reused element: that key one too high */
	__u64 keys_created;     /* conn_counts entries made (reclaim passes delete them) */
	__u64 marks_created;    /* sock_marks entries made (reclaim passes delete them) */
	__u64 walk_counted;     /* of snapshot_counted, sockets the shared-hash walk counted */
};

/*
 * What one reclaim pass deleted and what the maps hold after it: the program's global
 * `reclaim_result`, which userspace reads through the skeleton's mapping of its data.
 */
struct skopos_reclaim {
	__u64 keys_reclaimed;  /* conn_counts keys at 0, deleted */
	__u64 keys_left;       /* conn_counts keys after the pass */
	__u64 keys_idle;       /* of those, keys at 0 this pass aged (the next deletes them) */
	__u64 marks_reclaimed; /* idle sock_marks entries deleted */
	__u64 marks_left;      /* sock_marks entries after the pass */
	__u64 marks_counted;   /* of those, counted sockets; the rest idle (the next pass deletes them) */
	__u64 failures;        /* deletes that failed (retried by the next pass) */
};

/*
 * Capacity of conn_counts: (namespace, port, direction) keys with live sockets, plus the
 * idle ones the next reclaim pass deletes. The worst case is one key per established socket: 2^18 covers
 * every remote port of four busy namespaces, or thousands of containers with dozens of
 * distinct ports each; beyond it, sockets make their namespace unknown, never 0.
 * Userspace may lower it before loading (tests build a small map on purpose).
 */
#define SKOPOS_CONN_MAX_KEYS 262144
/*
 * Capacity of sock_marks: ESTABLISHED sockets counted at once, host-wide, plus idle
 * marks until the next reclaim pass. The kernel allocates the entries as sockets come
 * (64-96 bytes each) and a bucket array of 16 bytes per entry up front (16 MiB), all
 * charged to the tracker's memory cgroup; beyond it, sockets make counts unknown, never 0.
 * Userspace may set it before loading (tests build a small map on purpose).
 */
#define SKOPOS_CONN_MAX_SOCKETS (1 << 20)
/* The top bit of a conn_counts value: this key is being reclaimed (see above). */
#define SKOPOS_COUNT_RECLAIMED (1ULL << 63)
/* The next bit: this key stayed at 0 through a reclaim pass (see above). */
#define SKOPOS_COUNT_AGED (1ULL << 62)
/* How often an increment that met a reclaimed key tries a fresh one. */
#define SKOPOS_COUNT_TRIES 8
/* How often a socket that met a mark being reclaimed looks again. */
#define SKOPOS_MARK_TRIES 32
/* Ring buffer size in bytes (a power of two and a multiple of the page size). */
#define SKOPOS_CONN_RINGBUF_BYTES (1 << 20)
/* The snapshot iterator's listener bitmap: one bit per port. */
#define SKOPOS_PORT_BITMAP_WORDS (65536 / 64)

/*
 * A snapshot run in progress, keyed by its namespace's inode (snapshot_runs): the ports
 * the namespace listens on, filled in as the iterator meets its listeners. Runs in
 * different namespaces go on at once, each from its own thread; userspace starts at most
 * one run per namespace and at most SKOPOS_SNAPSHOT_MAX_RUNS at a time.
 */
struct skopos_snapshot_run {
	__u64 listeners[SKOPOS_PORT_BITMAP_WORDS];
};
#define SKOPOS_SNAPSHOT_MAX_RUNS 256

/*
 * The shared-hash walk (the `walk_hash` program): the snapshot of many namespaces at
 * once. Namespaces that share the host's TCP hash (all of them, unless
 * net.ipv4.tcp_child_ehash_entries gave one a hash of its own) have their sockets in one
 * table, which the kernel's iterator walks whole for each namespace; the walk reads it
 * once for every namespace with a run. It holds no socket lock, so it reads each socket
 * as it passes (RCU and the sockets' type-stable memory make that safe; a walk that a
 * moved socket led off its chain -- the chain ends in another bucket's nulls marker, or
 * the socket now belongs to a namespace with a hash of its own -- walks the bucket
 * again). It counts a socket it read ESTABLISHED only where sock_marks has no entry for
 * its address at all, and counts it before it marks it (a mark insert that fails takes
 * the count back). Every socket leaving ESTABLISHED leaves a mark at its address before
 * its state changes: a counted one's goes idle, and one nobody counted makes an idle one
 * (which costs only the sockets established before the program loaded). So a walk that
 * read a socket ESTABLISHED a moment before it left, or read a socket since freed and
 * reused at that address, finds a mark and does not count it; marks are deleted only by
 * reclaim passes, which userspace never runs during a walk (one thread does both). A
 * socket read ESTABLISHED with a mark that is not COUNTED is either one that just left
 * or one the kernel failed to count: only the iterator, holding the socket's lock, can
 * tell, so the walk reports it (`unclaimed`) and userspace snapshots the batch with the
 * iterator.
 *
 * Userspace fills `table`, `from`, `to` and `max_chain`, runs the program (BPF_PROG_RUN)
 * from a thread in the host's namespace, and reads the rest: buckets [from, next) are
 * walked.
 */
#define SKOPOS_WALK_LISTENING 0   /* the listening hash: fills the runs' listener bitmaps */
#define SKOPOS_WALK_ESTABLISHED 1 /* the established hash: counts */
/* Steps per program run (one per bucket and one per socket) and sockets per bucket at
 * most: a longer chain stops the walk (E2BIG) and the iterator snapshots its batch. */
#define SKOPOS_WALK_STEPS (1 << 16)
#define SKOPOS_WALK_MAX_CHAIN 1024
/* Walks of one bucket before the walk gives up (its chain kept changing under it). */
#define SKOPOS_WALK_TRIES 16
/* The kernel's nulls marker base for the listening hash's buckets (LISTENING_NULLS_BASE). */
#define SKOPOS_LISTENING_NULLS_BASE (1U << 29)
struct skopos_walk {
	__u32 table;    /* SKOPOS_WALK_*: in */
	__u32 from;     /* the first bucket: in */
	__u32 to;       /* one past the last bucket: in */
	__u32 next;     /* out: the first bucket not walked yet */
	__u32 buckets;  /* out: the table's size */
	__s32 error;    /* out: 0, or why the walk stopped (a negative errno) */
	__u64 unclaimed; /* out: sockets read ESTABLISHED with a mark not COUNTED (see above) */
	__u32 max_chain; /* in: sockets per bucket at most (SKOPOS_WALK_MAX_CHAIN, or fewer) */
	__u32 padding;
};
/* Returned by the `hash_shared` program, run from a thread in a namespace. */
#define SKOPOS_HASH_OWN 0       /* the namespace has a TCP hash of its own */
#define SKOPOS_HASH_SHARED 1    /* it shares the host's */
#define SKOPOS_HASH_UNKNOWN 2   /* the kernel predates per-namespace hashes (6.1): not walked */

/*
 * The namespaces userspace has proven (proven_netns): inode -> the kernel's failure total
 * (count_failures + storage_failures) when its count was proven. No program reads or
 * writes it; it lives with the other maps so that, pinned with them, a restarted tracker
 * knows which namespaces need no snapshot: those whose value is still the failure total.
 */
#define SKOPOS_PROVEN_MAX_NAMESPACES 65536

#endif /* SKOPOS_BPF_CONN_TRACKER_H */
