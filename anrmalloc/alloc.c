/*
 * alloc.c - allocation entry points: headers, guard words, the block
 * table, the flight recorder, call-stack capture, client debug info and
 * the need-more-memory loop.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "am_internal.h"
#include "mb_log.h"

#define API __attribute__((visibility("default")))
#define AM_CALLER() __builtin_extract_return_addr(__builtin_return_address(0))
#define AM_SIZE_MAX (SIZE_MAX / 2)

_Static_assert(sizeof(struct am_hdr) == 64, "anrmalloc.h documents a 64-byte header");
_Static_assert(sizeof(struct am_hdr) % ANR_ALIGN == 0, "the header keeps user data aligned");

static __thread struct am_call *am_cur_call;
static __thread uint32_t am_tid;

static uint32_t am_gettid(void)
{
	if (am_tid == 0)
		am_tid = (uint32_t)syscall(SYS_gettid);
	return am_tid;
}

/* ---- block table ---- */

static uint32_t am_take_slot(struct anr_malloc_heap *h)
{
	uint32_t s;

	if (h->free_head != AM_NO_SLOT) {
		s = h->free_head;
		h->free_head = h->slots[s].next;
	} else if (h->slots_hw < h->slots_cap) {
		s = (uint32_t)h->slots_hw++;
	} else {
		return AM_NO_SLOT;
	}
	h->slots[s].state = AM_SLOT_RESERVED;
	h->slots[s].base = NULL;
	h->slots[s].mark = 0;
	h->slots[s].grey = 0;
	h->slots[s].next = AM_NO_SLOT;
	return s;
}

void am_release_slot(struct anr_malloc_heap *h, uint32_t s)
{
	h->slots[s].state = AM_SLOT_FREE;
	h->slots[s].base = NULL;
	h->slots[s].mark = 0;
	h->slots[s].next = h->free_head;
	h->free_head = s;
}

/* ---- guards ---- */

static uint64_t am_guard_value(const void *user, int back)
{
	return AM_GUARD_PATTERN ^ (uint64_t)(uintptr_t)user ^ (back ? ~UINT64_C(0) : 0);
}

static void am_guards_set(struct anr_malloc_heap *h, struct am_hdr *hd,
			  unsigned char *base)
{
	unsigned char *user = base + hd->user_off;
	uint64_t g;

	if (!h->cfg.guards)
		return;
	g = am_guard_value(user, 0);
	memcpy(user - AM_GUARD_SIZE, &g, sizeof(g));
	g = am_guard_value(user, 1);
	memcpy(user + hd->size, &g, sizeof(g));
}

int am_guards_ok(struct anr_malloc_heap *h, const struct am_hdr *hd,
		 const void *base)
{
	const unsigned char *user = (const unsigned char *)base + hd->user_off;
	uint64_t front, back;

	if (!h->cfg.guards)
		return 1;
	memcpy(&front, user - AM_GUARD_SIZE, sizeof(front));
	memcpy(&back, user + hd->size, sizeof(back));
	return front == am_guard_value(user, 0) && back == am_guard_value(user, 1);
}

void am_guard_error(struct anr_malloc_heap *h, const void *user,
		    const struct am_hdr *hd, const char *when)
{
	if (h->cfg.on_error != ANR_ERROR_IGNORE)
		mb_log(MB_LOG_ERR, "anrmalloc %s: guard word damaged at %s: "
		       "block %p size %zu allocated by %p %s:%d",
		       h->cfg.name, when, user, (size_t)hd->size, hd->caller,
		       hd->file ? hd->file : "?", hd->line);
	am_error_action(h);
}

void am_error_action(struct anr_malloc_heap *h)
{
	if (h->cfg.on_error == ANR_ERROR_ABORT)
		abort();
}

/* ---- header helpers ---- */

size_t am_frames(const struct anr_malloc_heap *h, const struct am_hdr *hd,
		 const uintptr_t **frames)
{
	const uintptr_t *f = (const uintptr_t *)((const char *)hd + h->frames_off);
	size_t n = 0;

	while (n < h->cfg.stack_depth && f[n] != 0)
		n++;
	*frames = f;
	return n;
}

/* The stack starts at the allocating caller (anrcore/backtrace.c). */
static void am_capture_stack(struct anr_malloc_heap *h, struct am_hdr *hd)
{
	uintptr_t *f = (uintptr_t *)((char *)hd + h->frames_off);

	if (h->cfg.stack_depth != 0)
		(void)anrc_backtrace(f, h->cfg.stack_depth, hd->caller);
}

/* ---- flight recorder ---- */

static void am_record(struct anr_malloc_heap *h, unsigned kind, const void *ptr,
		      const void *old, size_t size, const void *caller)
{
	struct anr_op *op;

	if (h->ring_n == 0)
		return;
	op = &h->ring[h->ring_pos % h->ring_n];
	op->seq = h->ring_pos++;
	op->kind = kind;
	op->tid = am_gettid();
	op->ptr = ptr;
	op->old = old;
	op->size = size;
	op->caller = caller;
}

API size_t anr_recorder_read(anr_heap_t *h, struct anr_op *ops, size_t n)
{
	size_t have, first, i;

	pthread_mutex_lock(&h->lock);
	have = h->ring_pos < h->ring_n ? (size_t)h->ring_pos : h->ring_n;
	if (n > have)
		n = have;
	first = (size_t)(h->ring_pos - n);
	for (i = 0; i < n; i++)
		ops[i] = h->ring[(first + i) % h->ring_n];
	pthread_mutex_unlock(&h->lock);
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
static __thread struct am_need_run *am_need_running;

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
	pthread_mutex_lock(&h->lock);
	n = h->n_need;
	memcpy(cb, h->need, n * sizeof(cb[0]));
	h->need_calls += n;
	pthread_mutex_unlock(&h->lock);
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
int am_core_hook(void *arg, struct anrc_heap *core, size_t bytes)
{
	struct anr_malloc_heap *h = arg;
	struct am_call *c = am_cur_call;
	struct anr_gc_result gr;

	(void)core;
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

/*
 * Give back up to `bytes` (at most `limit`), in units of `unit` bytes:
 * callbacks, collection, trim, then the budget is lowered by what is no
 * longer resident.  `unit` is the broker's page when the broker asks (the
 * pages are then no longer held from it), the system page otherwise.
 */
size_t am_give_back(struct anr_malloc_heap *h, size_t bytes, size_t limit,
		    size_t unit, int broker)
{
	struct anrc_stats st;
	struct anr_gc_result gr;
	size_t spare, give;

	pthread_mutex_lock(&h->lock);
	h->give_back_requests++;
	pthread_mutex_unlock(&h->lock);
	am_run_need(h, bytes, ANR_NEED_GIVE_BACK, 0);
	if (h->cfg.gc_on_give_back)
		anr_gc_collect(h, ANR_GC_FREE, -1, &gr);
	pthread_mutex_lock(&h->lock);
	am_drain_locked(h);     /* queued frees count too */
	pthread_mutex_unlock(&h->lock);
	anrc_trim(h->core, 0);
	pthread_mutex_lock(&h->lock);
	anrc_get_stats(h->core, &st);
	spare = st.budget > st.resident ? st.budget - st.resident : 0;
	give = bytes < spare ? bytes : spare;
	if (give > limit)
		give = limit;
	/* A budget of 0 would read as "no limit" to the core. */
	if (give >= st.budget)
		give = st.budget > unit ? st.budget - unit : 0;
	give -= give % unit;
	if (give) {
		anrc_set_budget(h->core, st.budget - give);
		h->given_back_bytes += give;
		if (broker)
			h->mb_held -= (int64_t)(give / unit);
	}
	pthread_mutex_unlock(&h->lock);
	if (give)
		mb_log(MB_LOG_INFO, "anrmalloc %s: gave back %zu bytes",
		       h->cfg.name, give);
	return give;
}

API size_t anr_give_back(anr_heap_t *h, size_t bytes)
{
	return am_give_back(h, bytes, SIZE_MAX, (size_t)sysconf(_SC_PAGESIZE), 0);
}

/* ---- allocation ---- */

static void am_set_oom(struct anr_malloc_heap *h, size_t size,
		       const void *caller)
{
	anr_oom_fn fn = NULL;
	void *arg = NULL;

	pthread_mutex_lock(&h->lock);
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
	pthread_mutex_unlock(&h->lock);
	if (fn)
		fn(arg, h, size);
}

static void am_fail(struct anr_malloc_heap *h, size_t size, const void *caller,
		    int hooks, uint32_t slot)
{
	pthread_mutex_lock(&h->lock);
	if (slot != AM_NO_SLOT)
		am_release_slot(h, slot);
	h->failures++;
	am_record(h, ANR_OP_FAIL, NULL, NULL, size, caller);
	pthread_mutex_unlock(&h->lock);
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

static void am_hdr_init(struct anr_malloc_heap *h, struct am_hdr *hd,
			uint32_t slot, size_t size, size_t off,
			const struct am_site *site)
{
	hd->magic = AM_MAGIC_LIVE;
	hd->slot = slot;
	hd->size = size;
	hd->caller = site->caller;
	hd->file = site->file;
	hd->func = site->func;
	hd->line = site->line;
	hd->user_off = (uint32_t)off;
	hd->dinfo_len = 0;
	hd->tid = am_gettid();
	am_capture_stack(h, hd);
	am_guards_set(h, hd, (unsigned char *)hd);
}

static void *am_alloc(struct anr_malloc_heap *h, size_t align, size_t size,
		      unsigned flags, const struct am_site *site)
{
	int hooks;
	size_t off, total;
	uint32_t slot;
	unsigned char *base;
	struct am_hdr *hd;

	if (h == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if (am_in_callbacks(h))
		flags |= ANR_NO_HOOK;
	hooks = !(flags & ANR_NO_HOOK);
	off = h->hdr_size;
	if (align > ANR_ALIGN)
		off = (off + align - 1) & ~(align - 1);
	if (size > AM_SIZE_MAX - off - h->tail) {
		am_fail(h, size, site->caller, 0, AM_NO_SLOT);
		return NULL;
	}
	total = off + size + h->tail;
	if (h->cfg.oom_fail_fast && __atomic_load_n(&h->oom.set, __ATOMIC_RELAXED)) {
		am_fail(h, size, site->caller, hooks, AM_NO_SLOT);
		return NULL;
	}
	base = am_core_alloc(h, align, total, flags);
	if (base == NULL) {
		am_fail(h, size, site->caller, hooks, AM_NO_SLOT);
		return NULL;
	}
	hd = (struct am_hdr *)base;
	am_hdr_init(h, hd, AM_NO_SLOT, size, off, site);
	/* One lock hold: take a slot, publish the block, record. */
	pthread_mutex_lock(&h->lock);
	am_drain_locked(h);
	slot = am_take_slot(h);
	if (slot == AM_NO_SLOT) {
		pthread_mutex_unlock(&h->lock);
		anrc_free(h->core, base);
		mb_log(MB_LOG_WARNING, "anrmalloc %s: block table full (max_blocks %zu)",
		       h->cfg.name, h->slots_cap);
		am_fail(h, size, site->caller, hooks, AM_NO_SLOT);
		return NULL;
	}
	hd->slot = slot;
	hd->seq = ++h->seq;
	h->slots[slot].base = base;
	h->slots[slot].mark = (uint8_t)(h->gc_running && slot >= h->sweep_pos);
	h->slots[slot].state = AM_SLOT_LIVE;
	h->live_blocks++;
	h->live_bytes += size;
	am_record(h, align > ANR_ALIGN ? ANR_OP_MEMALIGN : ANR_OP_MALLOC,
		  base + off, NULL, size, site->caller);
	pthread_mutex_unlock(&h->lock);
	return base + off;
}

/*
 * Find the live block of p under h->lock.  With interior, p may point
 * anywhere inside the block; otherwise it must be the user pointer.
 * Returns 0, or -1 when p is not a live block of h.
 */
int am_lookup(struct anr_malloc_heap *h, const void *p, int interior,
	      void **basep, uint32_t *slotp)
{
	size_t bsize = 0;
	void *base = anrc_block_of(h->core, p, &bsize);
	struct am_hdr *hd = base;

	if (base == NULL || bsize < sizeof(*hd) || hd->magic != AM_MAGIC_LIVE ||
	    hd->slot >= h->slots_hw || h->slots[hd->slot].base != base ||
	    h->slots[hd->slot].state != AM_SLOT_LIVE)
		return -1;
	if (!interior && (const unsigned char *)base + hd->user_off != p)
		return -1;
	*basep = base;
	*slotp = hd->slot;
	return 0;
}

static void am_bad_free_locked(struct anr_malloc_heap *h, const void *p,
			       const char *what, const void *caller)
{
	h->bad_frees++;
	if (h->cfg.on_error != ANR_ERROR_IGNORE)
		mb_log(MB_LOG_ERR, "anrmalloc %s: %s of %p, not a live block "
		       "(caller %p)", h->cfg.name, what, p, caller);
	am_error_action(h);
}

static void am_bad_free(struct anr_malloc_heap *h, const void *p,
			const char *what, const void *caller)
{
	pthread_mutex_lock(&h->lock);
	am_bad_free_locked(h, p, what, caller);
	pthread_mutex_unlock(&h->lock);
}

/*
 * Take the block of p out of the table under h->lock; returns the core
 * block to hand to the core's free, or NULL for a bad free (reported).
 */
static void *am_release_locked(struct anr_malloc_heap *h, void *p,
			       const void *caller)
{
	void *base;
	uint32_t slot;
	struct am_hdr *hd;

	if (am_lookup(h, p, 0, &base, &slot) != 0) {
		am_bad_free_locked(h, p, "free", caller);
		return NULL;
	}
	hd = base;
	if (!am_guards_ok(h, hd, base)) {
		h->guard_errors++;
		am_guard_error(h, p, hd, "free");
	}
	h->live_blocks--;
	h->live_bytes -= hd->size;
	am_release_slot(h, slot);
	hd->magic = AM_MAGIC_FREED;
	am_record(h, ANR_OP_FREE, p, NULL, hd->size, caller);
	return base;
}

/*
 * Deferred frees: a free that finds the heap lock taken queues the
 * pointer in a bounded lock-free ring (one sequence number per cell) and
 * returns; whoever holds the lock next drains the ring.  Many threads
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

void am_drain_locked(struct anr_malloc_heap *h)
{
	for (;;) {
		uint64_t pos = h->defer_out;
		struct am_defer_cell *c = &h->defer[pos % AM_DEFER_CELLS];
		void *base;

		if (__atomic_load_n(&c->seq, __ATOMIC_ACQUIRE) != pos + 1)
			return; /* empty, or a cell still being written */
		base = am_release_locked(h, c->ptr, c->caller);
		h->defer_out = pos + 1;
		__atomic_store_n(&c->seq, pos + AM_DEFER_CELLS, __ATOMIC_RELEASE);
		if (base)
			anrc_free(h->core, base);
	}
}

static void am_free(struct anr_malloc_heap *h, void *p, const void *caller)
{
	void *base;

	if (p == NULL)
		return;
	/* free never waits for the lock while the queue has room. */
	if (pthread_mutex_trylock(&h->lock) != 0) {
		if (am_defer(h, p, caller) == 0)
			return;
		pthread_mutex_lock(&h->lock);
	}
	am_drain_locked(h);
	base = am_release_locked(h, p, caller);
	pthread_mutex_unlock(&h->lock);
	if (base)
		anrc_free(h->core, base);
}

static void *am_realloc(struct anr_malloc_heap *h, void *p, size_t size,
			const struct am_site *site)
{
	void *base;
	uint32_t slot;
	struct am_hdr *hd;
	size_t off, old_size;
	unsigned char *nb;
	struct am_call call = { h, 0, am_cur_call };

	if (p == NULL)
		return am_alloc(h, 0, size, 0, site);
	if (size == 0) {
		am_free(h, p, site->caller);
		return NULL;
	}
	pthread_mutex_lock(&h->lock);
	if (am_lookup(h, p, 0, &base, &slot) != 0) {
		pthread_mutex_unlock(&h->lock);
		am_bad_free(h, p, "realloc", site->caller);
		errno = EINVAL;
		return NULL;
	}
	hd = base;
	off = hd->user_off;
	old_size = hd->size;
	if (!am_guards_ok(h, hd, base)) {
		h->guard_errors++;
		pthread_mutex_unlock(&h->lock);
		am_guard_error(h, p, hd, "realloc");
		pthread_mutex_lock(&h->lock);
	}
	if (size > AM_SIZE_MAX - off - h->tail) {
		pthread_mutex_unlock(&h->lock);
		am_fail(h, size, site->caller, 0, AM_NO_SLOT);
		return NULL;
	}
	/* Walkers skip the block while the core may move it. */
	h->slots[slot].state = AM_SLOT_MOVING;
	pthread_mutex_unlock(&h->lock);

	am_cur_call = &call;
	nb = anrc_realloc(h->core, base, off + size + h->tail, 0);
	am_cur_call = call.outer;

	pthread_mutex_lock(&h->lock);
	if (nb == NULL) {
		h->slots[slot].state = AM_SLOT_LIVE;
		pthread_mutex_unlock(&h->lock);
		am_fail(h, size, site->caller, !am_in_callbacks(h), AM_NO_SLOT);
		return NULL;
	}
	hd = (struct am_hdr *)nb;
	hd->size = size;
	hd->caller = site->caller;
	hd->file = site->file;
	hd->func = site->func;
	hd->line = site->line;
	am_guards_set(h, hd, nb);
	h->slots[slot].base = nb;
	h->slots[slot].state = AM_SLOT_LIVE;
	h->live_bytes = h->live_bytes - old_size + size;
	h->reallocs++;
	am_record(h, ANR_OP_REALLOC, nb + off, p, size, site->caller);
	pthread_mutex_unlock(&h->lock);
	return nb + off;
}

static int am_align_ok(size_t align)
{
	return align >= sizeof(void *) && (align & (align - 1)) == 0;
}

/* ---- public entry points ---- */

#define AM_SITE_RA(ra) { (ra), NULL, NULL, 0 }
#define AM_SITE_DBG(ra, f, l, fn) { (ra), (f), (fn), (l) }

API void *anr_malloc(anr_heap_t *h, size_t size)
{
	struct am_site s = AM_SITE_RA(AM_CALLER());
	return am_alloc(h, 0, size, 0, &s);
}

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
		errno = ENOMEM;
		return NULL;
	}
	return am_alloc(h, 0, n * m, ANR_ZERO, s);
}

API void *anr_calloc(anr_heap_t *h, size_t nmemb, size_t size)
{
	struct am_site s = AM_SITE_RA(AM_CALLER());
	return am_calloc(h, nmemb, size, &s);
}

API void *anr_malloc_realloc(anr_heap_t *h, void *p, size_t size)
{
	struct am_site s = AM_SITE_RA(AM_CALLER());
	return am_realloc(h, p, size, &s);
}

API void *anr_memalign(anr_heap_t *h, size_t align, size_t size)
{
	struct am_site s = AM_SITE_RA(AM_CALLER());

	if (!am_align_ok(align)) {
		errno = EINVAL;
		return NULL;
	}
	return am_alloc(h, align, size, 0, &s);
}

API void anr_malloc_free(anr_heap_t *h, void *p)
{
	am_free(h, p, AM_CALLER());
}

API size_t anr_malloc_usable_size(anr_heap_t *h, const void *p)
{
	void *base;
	uint32_t slot;
	size_t n;
	struct am_hdr *hd;

	if (p == NULL)
		return 0;
	pthread_mutex_lock(&h->lock);
	if (am_lookup(h, p, 0, &base, &slot) != 0) {
		pthread_mutex_unlock(&h->lock);
		return 0;
	}
	hd = base;
	if (h->cfg.guards)
		n = hd->size;
	else
		n = anrc_usable_size(h->core, base) - hd->user_off;
	pthread_mutex_unlock(&h->lock);
	return n;
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

API void *anr_malloc_realloc_dbg(anr_heap_t *h, void *p, size_t size,
				 const char *file, int line, const char *func)
{
	struct am_site s = AM_SITE_DBG(AM_CALLER(), file, line, func);
	return am_realloc(h, p, size, &s);
}

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

/* ---- client debug info and guard checks ---- */

API int anr_set_debug_info(const void *p, const void *data, size_t len)
{
	struct anr_malloc_heap *h;
	void *base;
	uint32_t slot;
	struct am_hdr *hd;

	if (am_registry_find(p, &h) != 0) {
		errno = EINVAL;
		return -1;
	}
	if (len > h->cfg.debug_info_size) {
		errno = ENOSPC;
		return -1;
	}
	pthread_mutex_lock(&h->lock);
	if (am_lookup(h, p, 1, &base, &slot) != 0) {
		pthread_mutex_unlock(&h->lock);
		errno = EINVAL;
		return -1;
	}
	hd = base;
	memcpy((char *)base + h->dinfo_off, data, len);
	hd->dinfo_len = (uint32_t)len;
	pthread_mutex_unlock(&h->lock);
	return 0;
}

API ssize_t anr_get_debug_info(const void *p, void *buf, size_t cap)
{
	struct anr_malloc_heap *h;
	void *base;
	uint32_t slot;
	size_t n;

	if (am_registry_find(p, &h) != 0) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&h->lock);
	if (am_lookup(h, p, 1, &base, &slot) != 0) {
		pthread_mutex_unlock(&h->lock);
		errno = EINVAL;
		return -1;
	}
	n = ((struct am_hdr *)base)->dinfo_len;
	memcpy(buf, (char *)base + h->dinfo_off, n < cap ? n : cap);
	pthread_mutex_unlock(&h->lock);
	return (ssize_t)n;
}

API int anr_check_block(anr_heap_t *h, const void *p)
{
	void *base;
	uint32_t slot;
	int ok;

	pthread_mutex_lock(&h->lock);
	if (am_lookup(h, p, 1, &base, &slot) != 0) {
		pthread_mutex_unlock(&h->lock);
		errno = EINVAL;
		return -1;
	}
	ok = am_guards_ok(h, base, base);
	if (!ok) {
		h->guard_errors++;
		/* Reported under the lock: the block cannot go meanwhile. */
		if (h->cfg.on_error != ANR_ERROR_ABORT)
			am_guard_error(h, (char *)base + ((struct am_hdr *)base)->user_off,
				       base, "check");
	}
	pthread_mutex_unlock(&h->lock);
	if (!ok && h->cfg.on_error == ANR_ERROR_ABORT)
		am_guard_error(h, p, base, "check");
	return ok ? 0 : -1;
}

API int anr_block_info(anr_heap_t *h, const void *p, struct anr_block_info *in)
{
	void *base;
	uint32_t slot;
	const struct am_hdr *hd;
	const uintptr_t *f;
	size_t nf;

	pthread_mutex_lock(&h->lock);
	if (am_lookup(h, p, 1, &base, &slot) != 0) {
		pthread_mutex_unlock(&h->lock);
		errno = EINVAL;
		return -1;
	}
	hd = base;
	memset(in, 0, sizeof(*in));
	in->ptr = (char *)base + hd->user_off;
	in->size = hd->size;
	in->seq = hd->seq;
	in->caller = hd->caller;
	in->file = hd->file;
	in->func = hd->func;
	in->line = hd->line;
	in->tid = hd->tid;
	nf = am_frames(h, hd, &f);
	in->nframes = nf < ANR_INFO_FRAMES ? nf : ANR_INFO_FRAMES;
	for (size_t i = 0; i < in->nframes; i++)
		in->frames[i] = (const void *)f[i];
	pthread_mutex_unlock(&h->lock);
	return 0;
}
