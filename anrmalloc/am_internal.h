/*
 * am_internal.h - shared state of the anr_malloc layer (not installed).
 *
 * Every block is one core block laid out as
 *
 *     base                                   user = base + user_off
 *     | struct am_hdr | frames | debug info | pad | front guard | data | back guard |
 *
 * The header is always at the core block's start, so any pointer into the
 * block (anrc_block_of) leads to it.  Everything else the layer keeps lives
 * outside the heap, in mappings made when the heap is created: the block
 * table (one slot per live block, with its mark byte), the flight recorder
 * ring and the heap structure itself.
 *
 * Invariants, all under h->lock:
 *  - a slot is FREE (on the free list through .next), LIVE (base points
 *    at a block whose header names this slot) or MOVING (a realloc is in
 *    progress; walkers skip it and the collector treats it as marked);
 *    RESERVED only exists inside one lock hold, while a slot is filled in;
 *  - a block is only handed to the core's free after its slot left LIVE,
 *    so a walker holding the lock never reads a freed header;
 *  - a free that finds the lock taken is queued (deferred) and done by
 *    the next lock holder of an allocation, free, collection, report or
 *    verification, so a free never waits for the lock;
 *  - the lock is never held across a core call that may run the
 *    need-more hook (allocation, realloc): the hook runs callbacks that may
 *    free into this heap.  Lock order is h->lock, then the core's lock.
 */
#ifndef AM_INTERNAL_H
#define AM_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "anrcore/anrcore.h"
#include "anrmalloc/anrmalloc.h"
#include "libmbclient/mbclient.h"

#define AM_MAGIC_LIVE 0xa11c0a7eU
#define AM_MAGIC_FREED 0xdeadf4eeU
#define AM_GUARD_PATTERN UINT64_C(0x5a17c0de9e3779b9)
#define AM_GUARD_SIZE sizeof(uint64_t)
#define AM_NO_SLOT UINT32_MAX
#define AM_MAX_STACK_DEPTH ANR_BT_MAX
#define AM_MAX_DEBUG_INFO 4096
#define AM_MAX_RECORDER (UINT64_C(1) << 24)
#define AM_MAX_BLOCKS (UINT64_C(1) << 31)
#define AM_CHUNK 64 /* slots or records copied per lock hold */
#define AM_DEFER_CELLS 256 /* frees queued while the lock is taken */

enum am_slot_state {
	AM_SLOT_FREE = 0,
	AM_SLOT_RESERVED = 1,
	AM_SLOT_LIVE = 2,
	AM_SLOT_MOVING = 3,
};

struct am_slot {
	void *base;
	uint32_t next;  /* free list, or the collector's grey list */
	uint8_t state;
	uint8_t mark;
	uint8_t grey;
	uint8_t spare;
};

struct am_hdr {
	uint32_t magic;
	uint32_t slot;
	uint64_t size;        /* requested */
	uint64_t seq;         /* allocation number */
	const void *caller;
	const char *file;
	const char *func;
	int32_t line;
	uint32_t user_off;
	uint32_t dinfo_len;
	uint32_t tid;
};

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

struct anr_malloc_heap {
	struct anr_malloc_config cfg;
	struct anrc_heap *core;
	pthread_mutex_t lock;
	size_t map_size;       /* of this structure's own mapping */

	/* block layout */
	size_t hdr_size;       /* header + frames + info + front guard, 16-aligned */
	size_t frames_off, dinfo_off, tail;

	/* block table */
	struct am_slot *slots;
	size_t slots_map, slots_cap, slots_hw;
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

	/* broker */
	mb_client mb;
	int mb_connected;
	uint64_t mb_page;
	int64_t mb_held;       /* broker pages counted in the budget */
	pthread_t mb_thread;
	int mb_thread_on;
	int mb_stop[2];

	/* debug socket */
	int dbg_fd;
	pthread_t dbg_thread;
	int dbg_on;
	int dbg_stop[2];
	char dbg_path[ANR_PATH_MAX];
};

/* heap.c */
int am_registry_find(const void *p, struct anr_malloc_heap **out);

/* alloc.c */
int am_core_hook(void *arg, struct anrc_heap *core, size_t bytes);
int am_lookup(struct anr_malloc_heap *h, const void *p, int interior,
	      void **basep, uint32_t *slotp);
int am_guards_ok(struct anr_malloc_heap *h, const struct am_hdr *hd,
		 const void *base);
void am_guard_error(struct anr_malloc_heap *h, const void *user,
		    const struct am_hdr *hd, const char *when);
void am_release_slot(struct anr_malloc_heap *h, uint32_t slot);
/* report.c: stack frames named from /proc/self/maps (one shared table,
 * held between acquire and release; NULL if it could not be read), then
 * written a frame a line to o, or to fd when o is NULL. */
struct am_out;
const struct anrc_modmap *am_map_acquire(void);
void am_map_release(void);
void am_frame_lines(int fd, struct am_out *o, const struct anrc_modmap *map,
		    const uintptr_t *frames, size_t n);
size_t am_frames(const struct anr_malloc_heap *h, const struct am_hdr *hd,
		 const uintptr_t **frames);

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
void am_row_fill(const struct anr_malloc_heap *h, void *base, struct am_row *r);

void am_drain_locked(struct anr_malloc_heap *h);

/* gc.c */
int am_mark_locked(struct anr_malloc_heap *h, const void *p);

/* broker.c */
void am_broker_close(struct anr_malloc_heap *h);
size_t am_broker_ask(struct anr_malloc_heap *h, size_t bytes);
void am_broker_sync(struct anr_malloc_heap *h);
size_t am_give_back(struct anr_malloc_heap *h, size_t bytes, size_t limit,
		    size_t unit, int broker);

/* report.c */
void am_error_action(struct anr_malloc_heap *h);

#endif /* AM_INTERNAL_H */
