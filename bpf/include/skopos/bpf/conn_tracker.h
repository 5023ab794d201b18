/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * ABI of bpf/conn_tracker.bpf.c, the one definition that both the BPF program and its
 * userspace owner (tracker/src/bpf_connection_source.cpp) include.
 *
 * The program keeps, for every network namespace, the number of ESTABLISHED TCP sockets
 * per (port, direction) in the hash map `conn_counts`, and sends the key of every change
 * through the ring buffer `conn_events`. The map is the truth; an event only says which
 * key to read again, so lost or reordered events can never make a count wrong.
 *
 * A socket is counted at most once: the hash map `sock_marks`, keyed by the socket's
 * address, holds the key it was counted under while it is counted (`counted` = 1). The
 * mark is set when the socket enters ESTABLISHED (or when the snapshot iterator finds it
 * ESTABLISHED and not counted) and cleared when it leaves: `counted` set to 0 in place,
 * which cannot fail, then the entry deleted, which can (a busy bucket lock); a mark left
 * so is reused in place by the next socket at that address. A socket that leaves
 * ESTABLISHED not counted changes nothing. Both the tracepoint and the iterator run
 * under the socket's lock (the iterator since kernel 5.15), so the two can never both
 * count one socket. Every TCP socket leaves ESTABLISHED (through tcp_set_state(), which
 * fires the tracepoint) before it is freed, so a socket entering ESTABLISHED is never
 * counted already. Should it be even so (a socket freed at that address while counted),
 * its count is taken back before the new socket is counted, and stats.stale_marks says
 * it happened. (The marks were
 * socket-local storage before: its allocation, memory charge and RCU free per socket
 * were most of the program's cost per connection. The socket cookie would be a key
 * never reused, but making one cost a third as much again.)
 *
 * Keys are reclaimed: the decrement that brings a count to 0 turns the value into
 * SKOPOS_COUNT_RECLAIMED (compare-and-exchange from exactly 0) and deletes the key. An
 * increment that finds the reclaimed marker (atomic fetch-and-add returns it) did not
 * count and tries again on a fresh key; so no increment is ever lost with a deleted
 * key, and the map holds only keys with live sockets. Readers take a value with the
 * marker bit set as 0. The kernel may hand a deleted element to another key at once
 * (a preallocated hash map's free list), so an increment that looked its key up just
 * before another CPU reclaimed it can land on an element that now counts a different
 * key. Each value therefore carries its key: an increment that finds another key there
 * after adding tries again on its own key, takes its 1 back from the other key only if
 * that count is still exactly what the add made it (compare-and-exchange; a blind
 * subtraction could wrap a count the new owner rewrote meanwhile), and otherwise leaves
 * it one too high -- the safe side: a drain waits rather than stops a live connection --
 * and counts stats.misplaced_counts. It sends an event for that key either way. Known
 * gaps (see tracker/README.md): a reclaim whose delete the kernel refuses leaves its key
 * reclaimed, so later sockets of that key count as failures (unknown, never 0) until
 * the tracker restarts.
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
 * SKOPOS_COUNT_RECLAIMED bit while the key is being reclaimed. */
struct skopos_conn_count {
	struct skopos_conn_key key;
	__u64 count;
};

/* What sock_marks holds for a socket (keyed by its address, as a __u64). */
struct skopos_sock_mark {
	struct skopos_conn_key key; /* where the socket is counted */
	__u32 counted;              /* 1 while counted; 0: a mark whose delete failed, reusable */
};

/* One ring buffer record: the count of `key` changed by `delta`. */
struct skopos_conn_event {
	struct skopos_conn_key key;
	__s32 delta; /* +1 or -1; 0: re-read it (an addition taken back) */
	__u32 pad;
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
	__u64 unmark_failures;  /* a mark's delete failed: it stays, uncounted, to be reused */
	__u64 misplaced_counts; /* an increment left on a reused element: that key one too high */
};

/*
 * Capacity of conn_counts: (namespace, port, direction) keys WITH live sockets (keys at
 * zero are reclaimed). The worst case is one key per established socket: 2^18 covers
 * every remote port of four busy namespaces, or thousands of containers with dozens of
 * distinct ports each; beyond it, sockets make their namespace unknown, never 0.
 * Userspace may lower it before loading (tests build a small map on purpose).
 */
#define SKOPOS_CONN_MAX_KEYS 262144
/*
 * Capacity of sock_marks: ESTABLISHED sockets counted at once, host-wide. The kernel
 * allocates the entries as sockets come (64-96 bytes each) and a bucket array of 16
 * bytes per entry up front (16 MiB), all charged to the tracker's memory cgroup; beyond
 * it, sockets make counts unknown, never 0.
 * Userspace may set it before loading (tests build a small map on purpose).
 */
#define SKOPOS_CONN_MAX_SOCKETS (1 << 20)
/* The top bit of a conn_counts value: this key is being reclaimed (see above). */
#define SKOPOS_COUNT_RECLAIMED (1ULL << 63)
/* How often an increment that met a reclaimed key tries a fresh one. */
#define SKOPOS_COUNT_TRIES 4
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
#define SKOPOS_SNAPSHOT_MAX_RUNS 64

#endif /* SKOPOS_BPF_CONN_TRACKER_H */
