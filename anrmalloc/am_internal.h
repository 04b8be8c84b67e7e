/*
 * am_internal.h - shared state of the anr_malloc layer (not installed).
 *
 * A block is one core block; nothing of the layer is written into it but
 * the guard words (guards = yes):
 *
 *     base                        user = base + user_off
 *     | front guard (last 8 bytes) | data | back guard |
 *
 * Without guards user == base.  What the layer knows of a block (size
 * asked for, sequence number, caller, file, line, function, thread, client
 * debug info, call stack, GC mark) is a record in the side table, out of
 * band: one mapping made when the heap is created (MAP_NORESERVE, pages
 * touched as records are used), never inside the heap, so a write before
 * or after a block cannot reach it.  Records are found by user pointer
 * through a hash of chains, or from any address inside a block by way of
 * anrc_block_of.  A heap with track_blocks = no and no feature that needs
 * records (h->plain) has no side table: its calls are the core's.
 *
 * Invariants, all under the core's lock (anrc_layer_lock), the heap's
 * only lock:
 *  - a record is FREE (on the free list through .next), LIVE (in the hash,
 *    its block is live) or MOVING (a realloc is in progress; walkers skip
 *    it, the collector marks it, scans it where it is and never frees
 *    it; with gc_scan its old block stays allocated until the record
 *    points at the new one);
 *  - a block is only handed to the core's free after its record left LIVE,
 *    so a walker holding the lock never reads a freed block's record;
 *  - no anrc_ call is made while the lock is held (the core takes it
 *    itself): blocks to free are collected and freed after unlock;
 *  - a free that finds the lock taken is queued (deferred) and done by
 *    the next record holder, so a free never waits for the lock.
 */
#ifndef AM_INTERNAL_H
#define AM_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "anrcore/anrcore.h"
#include "anrmalloc/anrmalloc.h"
#include "libmbclient/mbclient.h"

#define AM_GUARD_PATTERN UINT64_C(0x5a17c0de9e3779b9)
#define AM_GUARD_SIZE sizeof(uint64_t)
#define AM_NO_SLOT UINT32_MAX
#define AM_NIL 0 /* end of a hash chain (chains hold slot + 1) */
#define AM_MAX_STACK_DEPTH ANR_BT_MAX
#define AM_MAX_DEBUG_INFO 4096
#define AM_MAX_RECORDER (UINT64_C(1) << 24)
#define AM_MAX_BLOCKS (UINT64_C(1) << 31)
#define AM_CHUNK 64 /* slots or records copied per lock hold */
#define AM_DEFER_CELLS 256 /* frees queued while the lock is taken */

enum am_slot_state {
	AM_SLOT_FREE = 0,
	AM_SLOT_LIVE = 2,
	AM_SLOT_MOVING = 3,
};

/* One block's record in the side table (64 bytes). */
struct am_slot {
	void *base;           /* the core block; the user pointer is AM_USER() */
	const void *caller;
	const char *file;
	const char *func;
	uint64_t size : 48;   /* requested */
	uint64_t dinfo_len : 16;
	uint64_t seq : 54;    /* allocation number */
	uint64_t state : 2;
	uint64_t mark : 1;
	uint64_t grey : 1;
	uint64_t off_shift : 6; /* user_off: 0, or 1 << off_shift */
	int32_t line;
	uint32_t tid;
	uint32_t next;        /* free list, or the collector's grey list */
	uint32_t hnext;       /* hash chain: slot + 1, AM_NIL at the end */
};

#define AM_OFF(r) ((r)->off_shift ? (size_t)1 << (r)->off_shift : (size_t)0)
#define AM_USER(r) ((void *)((char *)(r)->base + AM_OFF(r)))

struct am_defer_cell {
	uint64_t seq;
	void *ptr;
	const void *caller;
};

struct am_callback {
	void *fn;
	void *arg;
};

/* Per-allocation context the need-more hook finds in its thread. */
struct am_call {
	struct anr_malloc_heap *h;
	unsigned round;
	struct am_call *outer;
};

/* Who asked, as recorded in the header. */
struct am_site {
	const void *caller;
	const char *file;
	const char *func;
	int line;
};

#define AM_NOTES 8
#define AM_NOTE_MAX 256

struct anr_malloc_heap {
	struct anr_malloc_config cfg;
	struct anrc_heap *core;
	int plain;             /* no records: the core's calls alone */
	int track;             /* every block has a record */
	size_t map_size;       /* of this structure's own mapping */

	/* block layout */
	size_t front;          /* user_off of a block (16 with guards, else 0) */
	size_t tail;           /* back guard */
	size_t reserved;       /* the core's reservation: no block is larger */

	/* side table: records, hash, stacks and client debug info */
	void *side;
	size_t side_map;
	struct am_slot *slots;
	uint32_t *bucket;      /* slot + 1 of the first record of a chain */
	unsigned bucket_shift;
	uintptr_t *frames;     /* stack_depth words per slot */
	unsigned char *dinfo;  /* dinfo_stride bytes per slot */
	size_t dinfo_stride;
	size_t slots_cap, slots_hw;
	uint32_t free_head;
	size_t live_blocks, live_bytes;
	uint64_t seq;

	/* flight recorder */
	struct anr_op *ring;
	size_t ring_map, ring_n;
	uint64_t ring_pos;

	/* deferred frees */
	struct am_defer_cell defer[AM_DEFER_CELLS];
	uint64_t defer_in, defer_out, deferred_frees;

	/* callbacks */
	struct am_callback need[ANR_MAX_CALLBACKS];
	unsigned n_need;
	struct am_callback mark[ANR_MAX_CALLBACKS];
	unsigned n_mark;
	anr_oom_fn oom_fn;
	void *oom_arg;
	struct anr_oom_info oom;

	/* collector */
	int gc_running;
	size_t sweep_pos;     /* slots below it are swept */
	uint32_t grey_head;

	/* counters (the core keeps the rest) */
	uint64_t reallocs, need_calls, give_back_requests, given_back_bytes;
	uint64_t broker_requests, broker_granted_bytes;
	uint64_t gc_runs, gc_freed_blocks, gc_freed_bytes;
	uint64_t guard_errors, bad_frees, oom_events, failures;
	/* Error lines made under the lock (a bad free, a damaged guard),
	 * written by am_unlock once the lock is let go: a slow log never
	 * holds up the heap.  Past AM_NOTES they are counted only. */
	char notes[AM_NOTES][AM_NOTE_MAX];
	unsigned nnotes;
	uint64_t untold;

	/* Budget: the core's is own_budget + mb_held broker pages, always.
	 * Its changes and the broker client's balance are serialised by
	 * budget_lock: never taken by allocation or free except on the way to
	 * the broker (short of budget), never around a core call that takes
	 * the core's lock second, nor around a call of the client library
	 * (the library's handle lock comes first: am_broker_claim). */
	pthread_mutex_t budget_lock;
	size_t own_budget;     /* the heap's own: config, lowered by anr_give_back */
	mb_client mb;
	int mb_connected;
	uint64_t mb_page;
	int64_t mb_held;       /* broker pages counted in the budget */
	/* Pages taken off mb_held that the library's balance still counts:
	 * RETURNs on their way (mb_out), and the last share answer
	 * (mb_share_pages, given when the balance was mb_share_before) until
	 * the library takes them off, which it does before the thread that
	 * answered (mb_share_thread) gets out of its library call.  A sync
	 * counts mb_held = balance - these. */
	uint64_t mb_out, mb_share_pages;
	int64_t mb_share_before;
	pthread_t mb_share_thread;
	/* The thread inside the share callback: it holds the client handle,
	 * so the heap's own broker calls from there would wait on it. */
	int mb_serving;
	pthread_t mb_server;
	pthread_t mb_thread;
	int mb_thread_on;
	int mb_stop[2];

	/* page_return_thread */
	pthread_t ret_thread;
	int ret_thread_on;

	/* debug socket */
	int dbg_fd;
	pthread_t dbg_thread;
	int dbg_on;
	int dbg_stop[2];
	char dbg_path[ANR_PATH_MAX];
};

/* heap.c */
int am_registry_find(const void *p, struct anr_malloc_heap **out);

/* Close a stop pipe (its two ends) and mark it closed. */
static inline void am_close_pipe(int fds[2])
{
	close(fds[0]);
	close(fds[1]);
	fds[0] = fds[1] = -1;
}

static inline size_t am_round(size_t n, size_t to)
{
	return (n + to - 1) & ~(to - 1);
}

/* records.c: the side table; the *_locked calls run under the heap lock */
int am_side_map(struct anr_malloc_heap *h);
void am_side_unmap(struct anr_malloc_heap *h);
uint32_t am_take_slot_locked(struct anr_malloc_heap *h);
void am_release_slot_locked(struct anr_malloc_heap *h, uint32_t slot);
void am_hash_add_locked(struct anr_malloc_heap *h, uint32_t slot);
void am_hash_del_locked(struct anr_malloc_heap *h, uint32_t slot);
uint32_t am_find_locked(struct anr_malloc_heap *h, const void *user);
uint32_t am_find_base_locked(struct anr_malloc_heap *h, const void *base,
			     size_t bsize);
/* The live record of the block that contains p (any address in it), or
 * with moving one whose realloc is under way, with the lock held;
 * AM_NO_SLOT, lock not held, when there is none. */
uint32_t am_lookup_interior(struct anr_malloc_heap *h, const void *p, int moving);
size_t am_frames(const struct anr_malloc_heap *h, uint32_t slot,
		 const uintptr_t **frames);

/* alloc.c; the *_locked calls run under anrc_layer_lock(h->core) */
int am_core_hook(void *arg, struct anrc_heap *core, size_t bytes, unsigned call);
int am_guards_ok(struct anr_malloc_heap *h, const struct am_slot *r);
void am_guard_error(struct anr_malloc_heap *h, const struct am_slot *r,
		    const char *when);
/* Deferred frees taken out of the queue: up to AM_CHUNK core blocks to
 * free after unlock. */
struct am_drained {
	size_t n;
	void *base[AM_CHUNK];
};
void am_drain_locked(struct anr_malloc_heap *h, struct am_drained *d);
void am_drained_free(struct anr_malloc_heap *h, const struct am_drained *d);
static inline void am_lock(struct anr_malloc_heap *h)
{
	anrc_layer_lock(h->core);
}
void am_unlock_telling(struct anr_malloc_heap *h);
static inline void am_unlock(struct anr_malloc_heap *h)
{
	if (__builtin_expect(h->nnotes != 0 || h->untold != 0, 0))
		am_unlock_telling(h);
	else
		anrc_layer_unlock(h->core);
}
/* report.c: stack frames named from /proc/self/maps (one shared table,
 * held between acquire and release; NULL if it could not be read), then
 * written a frame a line to o, or to fd when o is NULL. */
struct am_out;
const struct anrc_modmap *am_map_acquire(void);
void am_map_release(void);
void am_map_fork_child(void);
void am_frame_lines(int fd, struct am_out *o, const struct anrc_modmap *map,
		    const uintptr_t *frames, size_t n);
/* In a fork child: the debug thread and socket stay the parent's. */
void am_debug_fork_child(struct anr_malloc_heap *h);

/* A live block as the reports print it, copied out under the heap lock
 * (report.c: am_row_fill) so that formatting runs without it. */
#define AM_REPORT_FRAMES 8
struct am_row {
	void *base;
	const void *user;
	size_t size;
	uint64_t seq;
	const void *caller;
	const char *file, *func;
	int line;
	uint32_t tid, dinfo;
	uintptr_t frames[AM_REPORT_FRAMES];
	size_t nframes;
};
void am_row_fill(const struct anr_malloc_heap *h, uint32_t slot, struct am_row *r);

/* gc.c */
int am_mark(struct anr_malloc_heap *h, const void *p);

/* broker.c */
void am_broker_close(struct anr_malloc_heap *h);
/* In a fork child: the broker thread, connection and quota stay the parent's. */
void am_broker_fork_child(struct anr_malloc_heap *h);
size_t am_broker_ask(struct anr_malloc_heap *h, size_t bytes);
void am_broker_sync(struct anr_malloc_heap *h);
size_t am_budget_share(struct anr_malloc_heap *h, size_t bytes);
size_t am_budget_cut(struct anr_malloc_heap *h, size_t bytes);
/* The client library's deadlines for a broker_timeout (milliseconds). */
struct am_broker_times {
	int connect, call, request;
};
void am_broker_times(uint64_t timeout_ms, struct am_broker_times *t);
/* What a new connection claims (the library's claim callback). */
uint64_t am_broker_claim(void *heap);
size_t am_give_back(struct anr_malloc_heap *h, size_t bytes, int broker);

/* report.c */
void am_error_action(struct anr_malloc_heap *h);

#endif /* AM_INTERNAL_H */
