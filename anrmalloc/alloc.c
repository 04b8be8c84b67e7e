/*
 * alloc.c - allocation entry points: the plain path straight to the core,
 * the path that keeps records (records.c), guard words, the flight
 * recorder, deferred frees, client debug info and the need-more-memory
 * loop.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "am_internal.h"
#include "anrcore/theap_fast.h"
#include "mb_log.h"

#define API __attribute__((visibility("default")))
#define AM_CALLER() __builtin_extract_return_addr(__builtin_return_address(0))
#define AM_SIZE_MAX (SIZE_MAX / 2)
#define AM_LIKELY(x) __builtin_expect(!!(x), 1)
/* The library is loaded with the program (never dlopen'ed late), as the
 * core's own thread state: no __tls_get_addr call per access. */
#define AM_TLS __thread __attribute__((tls_model("initial-exec")))

static AM_TLS struct am_call *am_cur_call;
static AM_TLS uint32_t am_tid;

static uint32_t am_gettid(void)
{
	if (am_tid == 0)
		am_tid = (uint32_t)syscall(SYS_gettid);
	return am_tid;
}

/* ---- guards ---- */

static uint64_t am_guard_value(const void *user, int back)
{
	return AM_GUARD_PATTERN ^ (uint64_t)(uintptr_t)user ^ (back ? ~UINT64_C(0) : 0);
}

static void am_guards_set(struct anr_malloc_heap *h, unsigned char *user,
			  size_t size)
{
	uint64_t g;

	if (!h->cfg.guards)
		return;
	g = am_guard_value(user, 0);
	memcpy(user - AM_GUARD_SIZE, &g, sizeof(g));
	g = am_guard_value(user, 1);
	memcpy(user + size, &g, sizeof(g));
}

int am_guards_ok(struct anr_malloc_heap *h, const struct am_slot *r)
{
	const unsigned char *user = AM_USER(r);
	uint64_t front, back;

	if (!h->cfg.guards)
		return 1;
	memcpy(&front, user - AM_GUARD_SIZE, sizeof(front));
	memcpy(&back, user + r->size, sizeof(back));
	return front == am_guard_value(user, 0) && back == am_guard_value(user, 1);
}

/* An error line under the lock: written now when the process is to
 * abort, else noted for am_unlock. */
static void am_note_locked(struct anr_malloc_heap *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void am_note_locked(struct anr_malloc_heap *h, const char *fmt, ...)
{
	va_list ap;

	if (h->cfg.on_error == ANR_ERROR_IGNORE)
		return;
	va_start(ap, fmt);
	if (h->cfg.on_error == ANR_ERROR_ABORT) {
		for (unsigned i = 0; i < h->nnotes; i++)
			mb_log(MB_LOG_ERR, "%s", h->notes[i]);
		mb_vlog(MB_LOG_ERR, fmt, ap);
	} else if (h->nnotes < AM_NOTES) {
		mb_vformat(h->notes[h->nnotes++], AM_NOTE_MAX, fmt, ap);
	} else {
		h->untold++;
	}
	va_end(ap);
}

void am_unlock_telling(struct anr_malloc_heap *h)
{
	char notes[AM_NOTES][AM_NOTE_MAX];
	unsigned n = h->nnotes;
	uint64_t untold = h->untold;

	memcpy(notes, h->notes, n * sizeof(notes[0]));
	h->nnotes = 0;
	h->untold = 0;
	anrc_layer_unlock(h->core);
	for (unsigned i = 0; i < n; i++)
		mb_log(MB_LOG_ERR, "%s", notes[i]);
	if (untold > 0)
		mb_log(MB_LOG_ERR, "anrmalloc %s: %llu more errors (not told one by one)",
		       h->cfg.name, (unsigned long long)untold);
}

void am_guard_error(struct anr_malloc_heap *h, const struct am_slot *r,
		    const char *when)
{
	am_note_locked(h, "anrmalloc %s: guard word damaged at %s: "
		       "block %p size %zu allocated by %p %s:%d",
		       h->cfg.name, when, AM_USER(r), (size_t)r->size, r->caller,
		       r->file ? r->file : "?", r->line);
	am_error_action(h);
}

void am_error_action(struct anr_malloc_heap *h)
{
	if (h->cfg.on_error == ANR_ERROR_ABORT)
		abort();
}

/* ---- flight recorder (under the lock) ---- */

static void am_record_op(struct anr_malloc_heap *h, unsigned kind, const void *ptr,
			 const void *old, size_t size, const void *caller)
{
	struct anr_op *op = &h->ring[h->ring_pos % h->ring_n];

	op->seq = h->ring_pos++;
	op->kind = kind;
	op->tid = am_gettid();
	op->ptr = ptr;
	op->old = old;
	op->size = size;
	op->caller = caller;
}

static inline void am_record(struct anr_malloc_heap *h, unsigned kind,
			     const void *ptr, const void *old, size_t size,
			     const void *caller)
{
	if (h->ring_n != 0)
		am_record_op(h, kind, ptr, old, size, caller);
}

API size_t anr_recorder_read(anr_heap_t *h, struct anr_op *ops, size_t n)
{
	size_t have, first, i;

	if (h->ring_n == 0)
		return 0;
	am_lock(h);
	have = h->ring_pos < h->ring_n ? (size_t)h->ring_pos : h->ring_n;
	if (n > have)
		n = have;
	first = (size_t)(h->ring_pos - n);
	for (i = 0; i < n; i++)
		ops[i] = h->ring[(first + i) % h->ring_n];
	am_unlock(h);
	return n;
}

/* ---- the need-more loop ---- */

/*
 * The heaps whose need-more callbacks this thread is running, innermost
 * first.  An allocation from one of them inside its own callbacks would
 * run the callbacks again, without end: it gets no callback at all and
 * fails at once if the budget is short (the re-entry guard).
 */
struct am_need_run {
	const struct anr_malloc_heap *h;
	struct am_need_run *outer;
};
static AM_TLS struct am_need_run *am_need_running;

static int am_in_callbacks(const struct anr_malloc_heap *h)
{
	for (const struct am_need_run *r = am_need_running; r; r = r->outer)
		if (r->h == h)
			return 1;
	return 0;
}

static size_t am_run_need(struct anr_malloc_heap *h, size_t bytes,
			  enum anr_need_reason why, unsigned round)
{
	struct am_callback cb[ANR_MAX_CALLBACKS];
	struct am_need_run run = { h, am_need_running };
	unsigned n;
	size_t got = 0;

	am_need_running = &run;
	am_lock(h);
	n = h->n_need;
	memcpy(cb, h->need, n * sizeof(cb[0]));
	h->need_calls += n;
	am_unlock(h);
	for (unsigned i = 0; i < n; i++) {
		anr_need_fn fn = (anr_need_fn)cb[i].fn;
		got += fn(cb[i].arg, h, bytes, why, round);
		if (why == ANR_NEED_ALLOC && got >= bytes)
			break;
	}
	am_need_running = run.outer;
	return got;
}

/*
 * The core calls this (without its lock) when an allocation would pass the
 * budget.  Each allocation gets need_more_retries rounds at most, whatever
 * the callbacks claim: first the subsystems' callbacks, then the broker,
 * then a collection.
 */
int am_core_hook(void *arg, struct anrc_heap *core, size_t bytes, unsigned call)
{
	struct anr_malloc_heap *h = arg;
	struct am_call *c = am_cur_call;
	struct anr_gc_result gr;

	(void)core;
	(void)call; /* the rounds are counted per call of ours (am_call) */
	if (c == NULL || c->h != h || c->round >= h->cfg.need_more_retries ||
	    am_in_callbacks(h))
		return 0;
	c->round++;
	if (am_run_need(h, bytes, ANR_NEED_ALLOC, c->round - 1) > 0)
		return 1;
	if (h->mb_connected && am_broker_ask(h, bytes) > 0)
		return 1;
	if (h->cfg.gc_on_need_more &&
	    anr_gc_collect(h, ANR_GC_FREE, -1, &gr) == 0 && gr.freed_blocks > 0)
		return 1;
	return 0;
}

/* Queued frees, done now (their blocks go to the core after unlock). */
static void am_flush_deferred(struct anr_malloc_heap *h)
{
	struct am_drained d;

	if (h->plain)
		return;
	do {
		am_lock(h);
		am_drain_locked(h, &d);
		am_unlock(h);
		am_drained_free(h, &d);
	} while (d.n == AM_CHUNK);
}

/*
 * Give back up to `bytes`: callbacks, collection, trim, then the budget is
 * lowered by what is no longer resident.  With `broker` the broker asks
 * (am_share): only its pages leave the budget.  Otherwise (anr_give_back)
 * the broker's pages go first, back to it, then the heap's own budget.
 * Called from one of the heap's own callbacks (anr_give_back in a
 * give-back callback), it runs no callback and no collection: they would
 * nest without end (the re-entry guard, as for allocations).
 */
size_t am_give_back(struct anr_malloc_heap *h, size_t bytes, int broker)
{
	struct anr_gc_result gr;
	size_t give;

	__atomic_add_fetch(&h->give_back_requests, 1, __ATOMIC_RELAXED);
	if (!am_in_callbacks(h)) {
		am_run_need(h, bytes, ANR_NEED_GIVE_BACK, 0);
		if (h->cfg.gc_on_give_back)
			anr_gc_collect(h, ANR_GC_FREE, -1, &gr);
	}
	am_flush_deferred(h);   /* queued frees count too */
	anrc_trim(h->core, 0);
	give = broker ? am_budget_share(h, bytes) : am_budget_cut(h, bytes);
	if (give) {
		__atomic_add_fetch(&h->given_back_bytes, give, __ATOMIC_RELAXED);
		mb_log(MB_LOG_INFO, "anrmalloc %s: gave back %zu bytes",
		       h->cfg.name, give);
	}
	return give;
}

API size_t anr_give_back(anr_heap_t *h, size_t bytes)
{
	return am_give_back(h, bytes, 0);
}

/* ---- allocation ---- */

static void am_set_oom(struct anr_malloc_heap *h, size_t size,
		       const void *caller)
{
	anr_oom_fn fn = NULL;
	void *arg = NULL;

	am_lock(h);
	if (!h->oom.set) {
		h->oom.set = 1;
		h->oom.requested = size;
		h->oom.caller = caller;
		h->oom.count = 1;
		h->oom_events++;
		fn = h->oom_fn;
		arg = h->oom_arg;
	} else {
		h->oom.count++;
	}
	am_unlock(h);
	if (fn)
		fn(arg, h, size);
}

static void am_fail(struct anr_malloc_heap *h, size_t size, const void *caller,
		    int hooks)
{
	am_lock(h);
	h->failures++;
	am_record(h, ANR_OP_FAIL, NULL, NULL, size, caller);
	am_unlock(h);
	if (hooks)
		am_set_oom(h, size, caller);
	errno = ENOMEM;
}

static void *am_core_alloc(struct anr_malloc_heap *h, size_t align,
			   size_t total, unsigned flags)
{
	struct am_call call = { h, 0, am_cur_call };
	void *base;

	am_cur_call = &call;
	if (align > ANR_ALIGN)
		base = anrc_alloc_aligned(h->core, align, total, flags);
	else
		base = anrc_alloc(h->core, total, flags);
	am_cur_call = call.outer;
	return base;
}

/* Record a new block (under the lock); AM_NO_SLOT if the table is full. */
static uint32_t am_publish_locked(struct anr_malloc_heap *h, unsigned char *base,
				  size_t off, size_t size, const struct am_site *site,
				  const uintptr_t *frames)
{
	uint32_t slot = am_take_slot_locked(h);
	struct am_slot *r;

	if (slot == AM_NO_SLOT)
		return slot;
	r = &h->slots[slot];
	r->base = base;
	r->size = size;
	r->seq = ++h->seq;
	r->caller = site->caller;
	r->file = site->file;
	r->func = site->func;
	r->line = site->line;
	r->tid = am_gettid();
	r->off_shift = off ? (uint64_t)__builtin_ctzll(off) : 0;
	r->mark = (uint8_t)(h->gc_running && slot >= h->sweep_pos);
	r->state = AM_SLOT_LIVE;
	if (h->cfg.stack_depth)
		memcpy(h->frames + (size_t)slot * h->cfg.stack_depth, frames,
		       h->cfg.stack_depth * sizeof(frames[0]));
	am_hash_add_locked(h, slot);
	h->live_blocks++;
	h->live_bytes += size;
	return slot;
}

static void *am_alloc(struct anr_malloc_heap *h, size_t align, size_t size,
		      unsigned flags, const struct am_site *site)
{
	uintptr_t frames[AM_MAX_STACK_DEPTH];
	struct am_drained d;
	int hooks;
	size_t off, total;
	uint32_t slot;
	unsigned char *base;

	if (h == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if (am_in_callbacks(h))
		flags |= ANR_NO_HOOK;
	hooks = !(flags & ANR_NO_HOOK);
	off = h->front;
	if (align > ANR_ALIGN && off)
		off = align;
	/* A request no heap could meet fails without the out-of-memory state
	 * (off is an alignment of up to 2^63 with guards: checked first). */
	if (off > AM_SIZE_MAX - h->tail || size > AM_SIZE_MAX - off - h->tail ||
	    off + size + h->tail > h->reserved || align > h->reserved) {
		am_fail(h, size, site->caller, 0);
		return NULL;
	}
	total = off + size + h->tail;
	if (h->cfg.oom_fail_fast && __atomic_load_n(&h->oom.set, __ATOMIC_RELAXED)) {
		am_fail(h, size, site->caller, hooks);
		return NULL;
	}
	base = am_core_alloc(h, align, total, flags);
	if (base == NULL) {
		am_fail(h, size, site->caller, hooks);
		return NULL;
	}
	if (!h->track)
		return base;
	/* What needs no lock first: the stack and the guard words. */
	if (h->cfg.stack_depth)
		(void)anrc_backtrace(frames, h->cfg.stack_depth, site->caller);
	am_guards_set(h, base + off, size);
	am_lock(h);
	am_drain_locked(h, &d);
	slot = am_publish_locked(h, base, off, size, site, frames);
	if (slot != AM_NO_SLOT)
		am_record(h, align > ANR_ALIGN ? ANR_OP_MEMALIGN : ANR_OP_MALLOC,
			  base + off, NULL, size, site->caller);
	am_unlock(h);
	am_drained_free(h, &d);
	if (slot == AM_NO_SLOT) {
		anrc_free(h->core, base);
		mb_log(MB_LOG_WARNING, "anrmalloc %s: block table full (max_blocks %zu)",
		       h->cfg.name, h->slots_cap);
		am_fail(h, size, site->caller, hooks);
		return NULL;
	}
	return base + off;
}

static void am_bad_free_locked(struct anr_malloc_heap *h, const void *p,
			       const char *what, const void *caller)
{
	h->bad_frees++;
	am_note_locked(h, "anrmalloc %s: %s of %p, not a live block (caller %p)",
		       h->cfg.name, what, p, caller);
	am_error_action(h);
}

/*
 * Take the record of p out of the table under the lock; returns the core
 * block to hand to the core's free, or NULL for a bad free (reported).
 */
static void *am_release_locked(struct anr_malloc_heap *h, void *p,
			       const void *caller)
{
	uint32_t slot = am_find_locked(h, p);
	struct am_slot *r;
	void *base;

	if (slot == AM_NO_SLOT || h->slots[slot].state != AM_SLOT_LIVE) {
		am_bad_free_locked(h, p, "free", caller);
		return NULL;
	}
	r = &h->slots[slot];
	if (!am_guards_ok(h, r)) {
		h->guard_errors++;
		am_guard_error(h, r, "free");
	}
	base = r->base;
	am_record(h, ANR_OP_FREE, p, NULL, r->size, caller);
	am_release_slot_locked(h, slot);
	return base;
}

/*
 * Deferred frees: a free that finds the lock taken queues the pointer in
 * a bounded lock-free ring (one sequence number per cell) and returns;
 * whoever holds the lock next for a record drains the ring.  Many threads
 * queue, only a lock holder takes out.
 */
static int am_defer(struct anr_malloc_heap *h, void *p, const void *caller)
{
	uint64_t pos = __atomic_load_n(&h->defer_in, __ATOMIC_RELAXED);

	for (;;) {
		struct am_defer_cell *c = &h->defer[pos % AM_DEFER_CELLS];
		uint64_t seq = __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE);
		int64_t dif = (int64_t)(seq - pos);

		if (dif == 0) {
			if (__atomic_compare_exchange_n(&h->defer_in, &pos, pos + 1,
							1, __ATOMIC_RELAXED,
							__ATOMIC_RELAXED)) {
				c->ptr = p;
				c->caller = caller;
				__atomic_store_n(&c->seq, pos + 1, __ATOMIC_RELEASE);
				__atomic_add_fetch(&h->deferred_frees, 1,
						   __ATOMIC_RELAXED);
				return 0;
			}
		} else if (dif < 0) {
			return -1; /* full */
		} else {
			pos = __atomic_load_n(&h->defer_in, __ATOMIC_RELAXED);
		}
	}
}

void am_drain_locked(struct anr_malloc_heap *h, struct am_drained *d)
{
	d->n = 0;
	if (__atomic_load_n(&h->defer_in, __ATOMIC_RELAXED) == h->defer_out)
		return; /* nothing queued (a cell being queued waits for the next holder) */
	while (d->n < AM_CHUNK) {
		uint64_t pos = h->defer_out;
		struct am_defer_cell *c = &h->defer[pos % AM_DEFER_CELLS];
		void *base;

		if (__atomic_load_n(&c->seq, __ATOMIC_ACQUIRE) != pos + 1)
			return; /* empty, or a cell still being written */
		base = am_release_locked(h, c->ptr, c->caller);
		h->defer_out = pos + 1;
		__atomic_store_n(&c->seq, pos + AM_DEFER_CELLS, __ATOMIC_RELEASE);
		if (base)
			d->base[d->n++] = base;
	}
}

void am_drained_free(struct anr_malloc_heap *h, const struct am_drained *d)
{
	for (size_t i = 0; i < d->n; i++)
		anrc_free(h->core, d->base[i]);
}

static void am_free(struct anr_malloc_heap *h, void *p, const void *caller)
{
	struct am_drained d;
	void *base;

	if (p == NULL)
		return;
	if (h == NULL) {
		mb_log(MB_LOG_ERR, "anrmalloc: free of %p with no heap (caller %p)", p, caller);
		return;
	}
	if (!h->track) {
		anrc_free(h->core, p); /* the core judges the pointer */
		return;
	}
	/* free never waits for the lock while the queue has room. */
	if (anrc_layer_trylock(h->core) != 0) {
		if (am_defer(h, p, caller) == 0)
			return;
		am_lock(h);
	}
	am_drain_locked(h, &d);
	base = am_release_locked(h, p, caller);
	am_unlock(h);
	am_drained_free(h, &d);
	if (base)
		anrc_free(h->core, base);
}

static void *am_realloc(struct anr_malloc_heap *h, void *p, size_t size,
			const struct am_site *site)
{
	struct am_slot *r;
	uint32_t slot;
	size_t off, old_size;
	void *base;
	unsigned char *nb;
	struct am_call call = { h, 0, am_cur_call };

	if (p == NULL || h == NULL)
		return am_alloc(h, 0, size, 0, site); /* EINVAL without a heap */
	if (size == 0) {
		am_free(h, p, site->caller);
		return NULL;
	}
	if (!h->track) {
		if (size > AM_SIZE_MAX) {
			am_fail(h, size, site->caller, 0);
			return NULL;
		}
		am_cur_call = &call;
		nb = anrc_realloc(h->core, p, size, 0);
		am_cur_call = call.outer;
		if (nb == NULL && errno == ENOMEM)
			am_fail(h, size, site->caller, !am_in_callbacks(h));
		else if (nb != NULL)
			__atomic_add_fetch(&h->reallocs, 1, __ATOMIC_RELAXED);
		return nb;
	}
	am_lock(h);
	slot = am_find_locked(h, p);
	if (slot == AM_NO_SLOT || h->slots[slot].state != AM_SLOT_LIVE) {
		am_bad_free_locked(h, p, "realloc", site->caller);
		am_unlock(h);
		errno = EINVAL;
		return NULL;
	}
	r = &h->slots[slot];
	off = AM_OFF(r);
	old_size = r->size;
	base = r->base;
	if (!am_guards_ok(h, r)) {
		h->guard_errors++;
		am_guard_error(h, r, "realloc");
	}
	if (size > AM_SIZE_MAX - off - h->tail) {
		am_unlock(h);
		am_fail(h, size, site->caller, 0);
		return NULL;
	}
	/* Walkers skip the block while the core may move it; a free of it
	 * meanwhile is a bad free.  A collection may mark it, and with gc_scan
	 * read it: then the old block stays allocated until the record points
	 * at the new one (the core's realloc would free it first). */
	r->state = AM_SLOT_MOVING;
	am_unlock(h);

	am_cur_call = &call;
	if (!h->cfg.gc_scan) {
		nb = anrc_realloc(h->core, base, off + size + h->tail, 0);
	} else if (off + size + h->tail <= anrc_usable_size(h->core, base)) {
		nb = base;
	} else {
		nb = anrc_alloc(h->core, off + size + h->tail, 0);
		if (nb != NULL)
			memcpy(nb, base, off + (old_size < size ? old_size : size));
	}
	am_cur_call = call.outer;
	if (nb != NULL)
		am_guards_set(h, nb + off, size);

	am_lock(h);
	r = &h->slots[slot];
	if (nb == NULL) {
		r->state = AM_SLOT_LIVE;
		am_unlock(h);
		am_fail(h, size, site->caller, !am_in_callbacks(h));
		return NULL;
	}
	am_hash_del_locked(h, slot);
	r->base = nb;
	r->size = size;
	r->caller = site->caller;
	r->file = site->file;
	r->func = site->func;
	r->line = site->line;
	r->state = AM_SLOT_LIVE;
	am_hash_add_locked(h, slot);
	h->live_bytes = h->live_bytes - old_size + size;
	h->reallocs++;
	am_record(h, ANR_OP_REALLOC, nb + off, p, size, site->caller);
	am_unlock(h);
	if (h->cfg.gc_scan && nb != base)
		anrc_free(h->core, base);
	return nb + off;
}

static int am_align_ok(size_t align)
{
	return align >= sizeof(void *) && (align & (align - 1)) == 0;
}

/* ---- public entry points ---- */

#define AM_SITE_RA(ra) { (ra), NULL, NULL, 0 }
#define AM_SITE_DBG(ra, f, l, fn) { (ra), (f), (fn), (l) }

/*
 * The plain path: with no records to keep, anr_malloc and anr_free are
 * the core's inlined fast paths (an object of the calling thread's slab,
 * no lock, no atomic read-modify-write); whatever they cannot do goes the
 * full way.
 */
API void *anr_malloc(anr_heap_t *h, size_t size)
{
	if (AM_LIKELY(h != NULL && h->plain)) {
		void *p = anrc_alloc_fast(h->core, size);

		if (AM_LIKELY(p != NULL))
			return p;
	}
	struct am_site s = AM_SITE_RA(AM_CALLER());
	return am_alloc(h, 0, size, 0, &s);
}

API void anr_free(anr_heap_t *h, void *p)
{
	if (AM_LIKELY(h != NULL && h->plain)) {
		if (AM_LIKELY(anrc_free_fast(h->core, p)))
			return;
		anrc_free(h->core, p);
		return;
	}
	am_free(h, p, AM_CALLER());
}

/* The names of 2006-2012 callers: the same functions. */
API void anr_malloc_free(anr_heap_t *h, void *p) __attribute__((alias("anr_free")));

API void *anr_malloc_from(anr_heap_t *h, size_t size, const void *caller)
{
	struct am_site s = AM_SITE_RA(caller);
	return am_alloc(h, 0, size, 0, &s);
}

API void *anr_malloc_if_available(anr_heap_t *h, size_t size)
{
	struct am_site s = AM_SITE_RA(AM_CALLER());
	return am_alloc(h, 0, size, ANR_NO_HOOK, &s);
}

static void *am_calloc(anr_heap_t *h, size_t n, size_t m,
		       const struct am_site *s)
{
	if (m != 0 && n > AM_SIZE_MAX / m) {
		/* Counted and recorded as any failure; no out-of-memory state. */
		if (h == NULL) {
			errno = EINVAL;
			return NULL;
		}
		am_fail(h, SIZE_MAX, s->caller, 0);
		return NULL;
	}
	return am_alloc(h, 0, n * m, ANR_ZERO, s);
}

API void *anr_calloc(anr_heap_t *h, size_t nmemb, size_t size)
{
	struct am_site s = AM_SITE_RA(AM_CALLER());
	return am_calloc(h, nmemb, size, &s);
}

API void *anr_realloc(anr_heap_t *h, void *p, size_t size)
{
	struct am_site s = AM_SITE_RA(AM_CALLER());
	return am_realloc(h, p, size, &s);
}

API void *anr_malloc_realloc(anr_heap_t *h, void *p, size_t size)
	__attribute__((alias("anr_realloc")));

API void *anr_memalign(anr_heap_t *h, size_t align, size_t size)
{
	struct am_site s = AM_SITE_RA(AM_CALLER());

	if (!am_align_ok(align)) {
		errno = EINVAL;
		return NULL;
	}
	return am_alloc(h, align, size, 0, &s);
}

API size_t anr_malloc_usable_size(anr_heap_t *h, const void *p)
{
	uint32_t slot;
	size_t n, off;
	void *base;

	if (p == NULL || h == NULL)
		return 0;
	if (!h->track)
		return anrc_usable_size(h->core, p);
	am_lock(h);
	slot = am_find_locked(h, p);
	if (slot == AM_NO_SLOT || h->slots[slot].state != AM_SLOT_LIVE) {
		am_unlock(h);
		return 0;
	}
	n = h->slots[slot].size;
	off = AM_OFF(&h->slots[slot]);
	base = h->slots[slot].base;
	am_unlock(h);
	if (h->cfg.guards)
		return n;
	return anrc_usable_size(h->core, base) - off;
}

API void *anr_malloc_dbg(anr_heap_t *h, size_t size, const char *file,
			 int line, const char *func)
{
	struct am_site s = AM_SITE_DBG(AM_CALLER(), file, line, func);
	return am_alloc(h, 0, size, 0, &s);
}

API void *anr_malloc_if_available_dbg(anr_heap_t *h, size_t size,
				      const char *file, int line,
				      const char *func)
{
	struct am_site s = AM_SITE_DBG(AM_CALLER(), file, line, func);
	return am_alloc(h, 0, size, ANR_NO_HOOK, &s);
}

API void *anr_calloc_dbg(anr_heap_t *h, size_t nmemb, size_t size,
			 const char *file, int line, const char *func)
{
	struct am_site s = AM_SITE_DBG(AM_CALLER(), file, line, func);
	return am_calloc(h, nmemb, size, &s);
}

API void *anr_realloc_dbg(anr_heap_t *h, void *p, size_t size,
			  const char *file, int line, const char *func)
{
	struct am_site s = AM_SITE_DBG(AM_CALLER(), file, line, func);
	return am_realloc(h, p, size, &s);
}

API void *anr_malloc_realloc_dbg(anr_heap_t *h, void *p, size_t size,
				 const char *file, int line, const char *func)
	__attribute__((alias("anr_realloc_dbg")));

API void *anr_memalign_dbg(anr_heap_t *h, size_t align, size_t size,
			   const char *file, int line, const char *func)
{
	struct am_site s = AM_SITE_DBG(AM_CALLER(), file, line, func);

	if (!am_align_ok(align)) {
		errno = EINVAL;
		return NULL;
	}
	return am_alloc(h, align, size, 0, &s);
}

/* ---- client debug info, guard checks, block info ---- */

API int anr_set_debug_info(const void *p, const void *data, size_t len)
{
	struct anr_malloc_heap *h;
	uint32_t slot;

	if (am_registry_find(p, &h) != 0) {
		errno = EINVAL;
		return -1;
	}
	if (len > h->cfg.debug_info_size) {
		errno = ENOSPC;
		return -1;
	}
	slot = am_lookup_interior(h, p, 0);
	if (slot == AM_NO_SLOT) {
		errno = EINVAL;
		return -1;
	}
	memcpy(h->dinfo + (size_t)slot * h->dinfo_stride, data, len);
	h->slots[slot].dinfo_len = (uint32_t)len;
	am_unlock(h);
	return 0;
}

API ssize_t anr_get_debug_info(const void *p, void *buf, size_t cap)
{
	struct anr_malloc_heap *h;
	uint32_t slot;
	size_t n;

	if (am_registry_find(p, &h) != 0) {
		errno = EINVAL;
		return -1;
	}
	slot = am_lookup_interior(h, p, 0);
	if (slot == AM_NO_SLOT) {
		errno = EINVAL;
		return -1;
	}
	n = h->slots[slot].dinfo_len;
	if (n)
		memcpy(buf, h->dinfo + (size_t)slot * h->dinfo_stride, n < cap ? n : cap);
	am_unlock(h);
	return (ssize_t)n;
}

API int anr_check_block(anr_heap_t *h, const void *p)
{
	struct am_slot copy;
	uint32_t slot;
	int ok;

	if (!h->track)
		return anrc_owns(h->core, p) && anrc_block_of(h->core, p, NULL) ? 0 :
			(errno = EINVAL, -1);
	slot = am_lookup_interior(h, p, 0);
	if (slot == AM_NO_SLOT) {
		errno = EINVAL;
		return -1;
	}
	ok = am_guards_ok(h, &h->slots[slot]);
	copy = h->slots[slot];
	if (!ok) {
		h->guard_errors++;
		/* Reported under the lock: the block cannot go meanwhile. */
		if (h->cfg.on_error != ANR_ERROR_ABORT)
			am_guard_error(h, &copy, "check");
	}
	am_unlock(h);
	if (!ok && h->cfg.on_error == ANR_ERROR_ABORT)
		am_guard_error(h, &copy, "check");
	return ok ? 0 : -1;
}

API int anr_block_info(anr_heap_t *h, const void *p, struct anr_block_info *in)
{
	const struct am_slot *r;
	const uintptr_t *f;
	uint32_t slot;
	size_t nf;

	if (!h->track) {
		/* No record: what the core knows. */
		size_t bsize = 0;
		void *base = anrc_owns(h->core, p) ? anrc_block_of(h->core, p, &bsize) : NULL;

		if (base == NULL) {
			errno = EINVAL;
			return -1;
		}
		memset(in, 0, sizeof(*in));
		in->ptr = base;
		in->size = bsize;
		return 0;
	}
	slot = am_lookup_interior(h, p, 0);
	if (slot == AM_NO_SLOT) {
		errno = EINVAL;
		return -1;
	}
	r = &h->slots[slot];
	memset(in, 0, sizeof(*in));
	in->ptr = AM_USER(r);
	in->size = r->size;
	in->seq = r->seq;
	in->caller = r->caller;
	in->file = r->file;
	in->func = r->func;
	in->line = r->line;
	in->tid = r->tid;
	nf = am_frames(h, slot, &f);
	in->nframes = nf < ANR_INFO_FRAMES ? nf : ANR_INFO_FRAMES;
	for (size_t i = 0; i < in->nframes; i++)
		in->frames[i] = (const void *)f[i];
	am_unlock(h);
	return 0;
}
