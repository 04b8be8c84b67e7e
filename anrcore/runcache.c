/*
 * runcache.c - page runs a thread keeps for its own medium blocks.
 *
 * A block of more than ANR_SLAB_MAX and at most ANR_RUN_CACHE_MAX bytes
 * is a run of pages from the span allocator (spans.c), taken under the
 * heap lock.  Freed, it used to go back to the free spans at once, where
 * another thread could take its pages or the page return could give them
 * to the kernel: the next block of the same size then faulted its pages in
 * again.  A thread that allocates and frees such blocks in a loop (a
 * real-time thread doing its periodic work next to a thread that churns
 * large blocks) paid page faults and the heap lock on every round.
 *
 * So a block of that range allocated by a thread with a theap is owned by
 * it (h->owner[] at its first page, as for slabs), and when its owner
 * frees it the run stays charged and resident in the owner's cache: the
 * page map says ANR_PG_CACHED (a free of it is a double free) and the run
 * waits in a small array of the theap.  The owner's next block of the
 * same page count, or up to twice that, takes it back (the newest that
 * fits: its lines are the likeliest to be cached still), without the lock
 * and without a fault.
 * Page counts in this range are rounded up to four per power of two
 * (below 25 % lost, like the size classes of slabs) so that few runs fit
 * many sizes.
 *
 * While none of the thread's blocks of runs is live (the count of their
 * bytes is 0), the newest kept run serves a block of any smaller size:
 * cut, the block takes its first pages and the rest stays kept; freed by
 * its owner, the block joins that rest again.  A thread that allocates
 * and frees one block at a time (the real-time thread of bench/alloc/rt.c,
 * 4..64 KiB) so writes the same pages every time, the ones most likely
 * still in its CPU's caches, where one run per size spread it over up to
 * ANR_RUN_CACHE_BYTES.  A thread with live blocks keeps the first rule:
 * cutting for blocks that stay would leave its cache in pieces.  The
 * head bitmap (h->heads, which finds the block around an interior
 * pointer) changes only under the lock: the rest has no head bit (it is
 * "headless", ANR_RC_HEADLESS in its length), which is right as long as
 * it is no block; it is never handed out, only joined to the block
 * before it or given back with the other runs.
 *
 *   free (owner):  judge kind LARGE and owner, compare-and-swap the kind
 *                  LARGE -> CACHED, join the headless rest after it if
 *                  the cache has it (ANR_RUN_CACHE_SLOTS compares), append
 *                  the run.  No lock, unless the cache is full: then the
 *                  oldest runs go back under the lock first.
 *   malloc:        a run of the page count, newest first, or the newest
 *                  cut (above): kind CACHED -> LARGE.  No lock.
 *   realloc (owner): a size within the block's pages returns it, no lock;
 *                  else under the lock it grows or shrinks in place (and
 *                  stays owned while it is a medium block) or moves.
 *   free (other):  under the lock, kind LARGE -> NONE by compare-and-swap
 *                  (so that a racing free by the owner is seen as a double
 *                  free by one of the two), its bytes added to the theap's
 *                  count of bytes gone (atomic), then the usual release.
 *
 * The owner's own counts (live bytes, kept pages, statistics) take plain
 * stores: its malloc of a kept run does one atomic read-modify-write (the
 * busy flag), its free two (the flag, the kind).  Each is lock-prefixed
 * on x86 and waits for every store before it to reach the cache, a
 * memset of the block being freed too.
 *
 * Bounds: ANR_RUN_CACHE_SLOTS runs and ANR_RUN_CACHE_BYTES per thread.
 * The budget stays exact: the pages were charged when the run left the
 * span allocator and are given back to it when the cache lets them go, as
 * for slabs.  An allocation short of budget first gives back the calling
 * thread's runs and flags the other threads' caches; anrc_release_free()
 * and anrc_trim() give back every cache not in use at that instant and
 * flag the others, which give back at their next cache operation (it
 * then takes the lock: an allocation misses, a free makes room); a
 * thread's exit gives back its cache.  A call takes the lock once at
 * most for its cache, and releases at most ANR_RUN_CACHE_SLOTS runs
 * then, each in constant work (no search).  Each cache has a busy flag taken by
 * atomic exchange, so that a flush from another thread never waits and
 * never touches a cache its owner is using.
 */
#include "config.h"

#include "anrcore_internal.h"
#include "theap_fast.h"

#include <sched.h>

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

/* The cache is used when frees need neither trash fill nor valgrind. */
static int
cache_on(const struct anrc_heap *h)
{
	return h->fast_free;
}

static size_t
max_pages(const struct anrc_heap *h)
{
	return ANR_RUN_CACHE_MAX >> h->page_shift;
}

static size_t
bound_pages(const struct anrc_heap *h)
{
	return ANR_RUN_CACHE_BYTES >> h->page_shift;
}

size_t
anrc_run_pages(const struct anrc_heap *h, size_t size)
{
	size_t n = size == 0 ? 1 : (size + h->page - 1) >> h->page_shift, step;
	unsigned b;

	if (size <= ANR_SLAB_MAX || size > ANR_RUN_CACHE_MAX || n < 4)
		return n;
	b = 63u - (unsigned)__builtin_clzll(n);
	step = (size_t)1 << (b - 2);
	return (n + step - 1) & ~(step - 1);
}

/* Pages of empty slabs t keeps past ANR_EMPTY_CACHE_PAGES: they share
 * the cache's bound with its runs. */
static size_t
slab_overflow(const struct anrc_theap *t)
{
	size_t e = LOAD(t->empty_pages);
	return e > ANR_EMPTY_CACHE_PAGES ? e - ANR_EMPTY_CACHE_PAGES : 0;
}

/* Room for n more pages, in a new slot if new_slot. */
static int
rc_fits(const struct anrc_heap *h, const struct anrc_theap *t, size_t n, int new_slot)
{
	return (!new_slot || t->rc.n < ANR_RUN_CACHE_SLOTS) &&
	       t->rc.pages + slab_overflow(t) + n <= bound_pages(h);
}

int
anrc_runs_room_for_slab(const struct anrc_heap *h, const struct anrc_theap *t, size_t np)
{
	if (t->empty_pages + np <= ANR_EMPTY_CACHE_PAGES)
		return 1;
	return cache_on(h) && t->rc.pages + slab_overflow(t) + np <= bound_pages(h);
}

/* Enter c unless it is in use or a fork waits for it (anrc_runs_hold):
 * the caller then takes the locked path or leaves the cache alone. */
static int
rc_enter(struct anrc_runcache *c)
{
	return __atomic_load_n(&c->hold_wanted, __ATOMIC_RELAXED) == 0 &&
	       __atomic_exchange_n(&c->busy, 1, __ATOMIC_ACQUIRE) == 0;
}

static void
rc_leave(struct anrc_runcache *c)
{
	__atomic_store_n(&c->busy, 0, __ATOMIC_RELEASE);
}

static inline __attribute__((always_inline)) void
rc_remove(struct anrc_runcache *c, unsigned i)
{
	STORE(c->pages, c->pages - anrc_rc_len(c, i));
	c->headless -= (c->run[i].len & ANR_RC_HEADLESS) != 0;
	/* at most ANR_RUN_CACHE_SLOTS - 1 moves; none for the newest run,
	 * the one usually taken */
	for (unsigned j = i + 1; j < c->n; j++) {
		c->run[j - 1].s = c->run[j].s;
		c->run[j - 1].len = c->run[j].len;
	}
	STORE(c->n, c->n - 1);
}

/* Run i of c goes back to the span allocator (locked, c entered). */
static size_t
rc_release(struct anrc_heap *h, struct anrc_runcache *c, unsigned i)
{
	uint32_t s = c->run[i].s;
	size_t n = anrc_rc_len(c, i);
	struct anrc_page *pg = &h->pm[s];

	rc_remove(c, i);
	/* Only a run still kept (a fork cuts no operation short: it holds
	 * every cache's flag, anrc_runs_hold; this stays as a guard). */
	if (__atomic_load_n(&pg->kind, __ATOMIC_ACQUIRE) != ANR_PG_CACHED || pg->npages != n)
		return 0;
	__atomic_store_n(&pg->kind, ANR_PG_NONE, __ATOMIC_RELAXED);
	__atomic_store_n(&h->owner[s], 0, __ATOMIC_RELAXED);
	anrc_bm2_clear(&h->heads, s, 1);
	anrc_pages_put(h, s, n);
	return n;
}

/* Every run of c back (locked, c entered). */
static size_t
rc_empty(struct anrc_heap *h, struct anrc_runcache *c)
{
	size_t given = 0;

	STORE(c->flush_wanted, 0);
	while (c->n > 0)
		given += rc_release(h, c, c->n - 1);
	STORE(c->pages, 0);
	if (given > 0)
		anrc_want_release_if_over_mark(h);
	return given;
}

static inline __attribute__((always_inline)) void *
runs_alloc(struct anrc_heap *h, struct anrc_theap *t, size_t size)
{
	struct anrc_runcache *c = &t->rc;
	size_t n, len, bytes;
	unsigned i;
	uint32_t s;

	/* Asked to give back: the locked path does (anrc_runs_wanted_locked). */
	if (LOAD(c->n) == 0 || !cache_on(h) || LOAD(c->flush_wanted))
		return NULL;
	if (!rc_enter(c))
		return NULL;
	if (c->n == 0) { /* a give-back emptied it before we entered */
		rc_leave(c);
		return NULL;
	}
	n = anrc_run_pages(h, size);
	i = c->n - 1;
	len = c->run[i].len; /* ANR_RC_HEADLESS makes it too long */
	if (anrc_rc_in_use(c) == 0 && len > 2 * n &&
	    len <= max_pages(h)) {
		/* No block of the thread's runs is live: the newest run, cut
		 * to fit; the block joins the rest again when freed. */
		struct anrc_page *r;
		s = c->run[i].s;
		rc_remove(c, i);
		r = &h->pm[s + n];
		__atomic_store_n(&r->npages, (uint32_t)(len - n), __ATOMIC_RELAXED);
		__atomic_store_n(&h->owner[s + n], t->id, __ATOMIC_RELAXED);
		__atomic_store_n(&r->kind, ANR_PG_CACHED, __ATOMIC_RELEASE);
		__atomic_store_n(&h->pm[s].npages, (uint32_t)n, __ATOMIC_RELAXED);
		c->run[c->n].s = s + (uint32_t)n;
		c->run[c->n].len = (uint32_t)(len - n) | ANR_RC_HEADLESS;
		c->headless++;
		STORE(c->pages, c->pages + len - n);
		STORE(c->n, c->n + 1);
	} else {
		/* The newest run that holds it without wasting more than
		 * half: its pages are the likeliest to be in the CPU's
		 * caches still.  (A headless one never: its length has the
		 * top bit.) */
		for (;; i--) {
			if (c->run[i].len >= n && c->run[i].len <= 2 * n)
				break;
			if (i == 0) {
				rc_leave(c);
				return NULL;
			}
		}
		s = c->run[i].s;
		n = c->run[i].len;
		rc_remove(c, i);
	}
	__atomic_store_n(&h->pm[s].kind, ANR_PG_LARGE, __ATOMIC_RELEASE);
	bytes = n << h->page_shift;
	STORE(c->in_use, c->in_use + bytes);
	STORE(t->run_allocs, t->run_allocs + 1);
	rc_leave(c);
	return anrc_page_addr(h, s);
}

/* The headless rest that starts at page s, ANR_RUN_CACHE_SLOTS if none
 * (no look when the cache holds none: a thread with live blocks of runs
 * does not cut). */
static unsigned
rc_rest_at(const struct anrc_runcache *c, uint32_t s)
{
	if (c->headless == 0)
		return ANR_RUN_CACHE_SLOTS;
	for (unsigned i = 0; i < c->n; i++)
		if (c->run[i].s == s && (c->run[i].len & ANR_RC_HEADLESS))
			return i;
	return ANR_RUN_CACHE_SLOTS;
}

static inline __attribute__((always_inline)) int
runs_free(struct anrc_heap *h, struct anrc_theap *t, uint32_t s)
{
	struct anrc_runcache *c = &t->rc;
	struct anrc_page *pg = &h->pm[s];
	size_t n, bytes;
	uint8_t expected = ANR_PG_LARGE;
	unsigned rest;
	int made_room = 0;

	if (!cache_on(h) || __atomic_load_n(&h->owner[s], __ATOMIC_RELAXED) != t->id)
		return 0;
	n = pg->npages;
	if (n > max_pages(h) || n > bound_pages(h))
		return 0;
	/* Not even an empty cache would hold it (empty slabs fill it). */
	if (slab_overflow(t) + n > bound_pages(h))
		return 0;
	if (!rc_enter(c))
		return 0;
	rest = rc_rest_at(c, s + (uint32_t)n);
	if (LOAD(c->flush_wanted) || !rc_fits(h, t, n, rest == ANR_RUN_CACHE_SLOTS)) {
		/* Asked to give back, or full: the oldest runs make room, under
		 * the lock, taken once (at most ANR_RUN_CACHE_SLOTS span
		 * releases, each of constant work). */
		anrc_lock_and_drain(h);
		c->locks++;
		if (LOAD(c->flush_wanted))
			rc_empty(h, c);
		while (c->n > 0 && !rc_fits(h, t, n, 1))
			rc_release(h, c, 0);
		anrc_want_release_if_over_mark(h);
		anrc_unlock_and_return_pages(h);
		rest = rc_rest_at(c, s + (uint32_t)n);
		made_room = 1;
	}
	if (!__atomic_compare_exchange_n(&pg->kind, &expected, ANR_PG_CACHED, 0,
					 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
		rc_leave(c);
		return 0; /* freed meanwhile: the locked path reports it */
	}
	bytes = n << h->page_shift;
	if (rest < ANR_RUN_CACHE_SLOTS) {
		/* Joined with the rest of the run it was cut from, which has
		 * no head bit: no bitmap changes. */
		size_t m = anrc_rc_len(c, rest);
		struct anrc_page *r = &h->pm[s + n];
		rc_remove(c, rest);
		__atomic_store_n(&r->kind, ANR_PG_NONE, __ATOMIC_RELAXED);
		__atomic_store_n(&r->npages, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&h->owner[s + n], 0, __ATOMIC_RELAXED);
		__atomic_store_n(&pg->npages, (uint32_t)(n + m), __ATOMIC_RELAXED);
		n += m;
	}
	c->run[c->n].s = s;
	c->run[c->n].len = (uint32_t)n;
	STORE(c->pages, c->pages + n);
	STORE(c->n, c->n + 1);
	STORE(c->in_use, c->in_use - bytes);
	STORE(t->run_frees, t->run_frees + 1);
	rc_leave(c);
	anrc_theap_note_freed(h, t, bytes);
	return 1 + made_room;
}

void *
anrc_runs_alloc(struct anrc_heap *h, struct anrc_theap *t, size_t size)
{
	return runs_alloc(h, t, size);
}

ANRC_HOT int
anrc_runs_free(struct anrc_heap *h, struct anrc_theap *t, uint32_t s)
{
	return runs_free(h, t, s);
}

ANRC_HOT void *
anrc_alloc_medium(struct anrc_heap *h, size_t size)
{
	if (size <= ANR_SLAB_MAX || size > ANR_RUN_CACHE_MAX || anrc_tl.uid != h->alloc_uid)
		return NULL;
	return runs_alloc(h, anrc_tl.t, size);
}

/* A page of kind kind at offset off may start a live block of a run. */
static inline int
medium_at(const struct anrc_heap *h, size_t off, uint32_t kind)
{
	return kind == ANR_PG_LARGE && (off & (h->page - 1)) == 0;
}

ANRC_HOT int
anrc_free_short(struct anrc_heap *h, void *p)
{
	size_t off, i = anrc_data_page(h, p, &off);
	const struct anrc_page *pg;
	uint32_t kind, s;

	/* (free_slow's way for a slab object and anrc_runs_free's for a kept
	 * run's block, for the calling thread's theap of h in the fast mode,
	 * from one read of the page map entry) */
	if (i >= h->npages || anrc_tl.uid != h->free_uid)
		return 0;
	pg = &h->pm[i];
	kind = __atomic_load_n(&pg->kind, __ATOMIC_RELAXED);
	if (kind == ANR_PG_LARGE)
		return medium_at(h, off, kind) ? runs_free(h, anrc_tl.t, (uint32_t)i) : 0;
	return anrc_slab_at(pg, kind, i, &s) && anrc_theap_free(h, anrc_tl.t, p, s, 0) ? 2 : 0;
}

size_t
anrc_usable_medium(struct anrc_heap *h, const void *p)
{
	size_t off, i = anrc_data_page(h, p, &off);

	if (i >= h->npages || anrc_tl.uid != h->free_uid ||
	    !medium_at(h, off, __atomic_load_n(&h->pm[i].kind, __ATOMIC_RELAXED)) ||
	    __atomic_load_n(&h->owner[i], __ATOMIC_RELAXED) != anrc_tl.t->id)
		return 0;
	return (size_t)h->pm[i].npages << h->page_shift;
}

int
anrc_runs_new_locked(struct anrc_heap *h, struct anrc_theap *t, uint32_t s, size_t n)
{
	size_t bytes = n << h->page_shift;

	if (t == NULL || !cache_on(h) || bytes <= ANR_SLAB_MAX || n > max_pages(h)) {
		__atomic_store_n(&h->owner[s], 0, __ATOMIC_RELAXED);
		return 0;
	}
	__atomic_store_n(&h->owner[s], t->id, __ATOMIC_RELAXED);
	STORE(t->rc.in_use, t->rc.in_use + bytes); /* t is the caller's */
	h->allocs++;
	return 1;
}

int
anrc_runs_resize_locked(struct anrc_heap *h, struct anrc_theap *t, uint32_t s, size_t n, size_t nn)
{
	if (nn << h->page_shift <= ANR_SLAB_MAX || nn > max_pages(h)) {
		anrc_runs_disown_locked(h, s, 1);
		return 0;
	}
	/* (t is the caller's: only the owner resizes) */
	STORE(t->rc.in_use, t->rc.in_use + (nn << h->page_shift) - (n << h->page_shift));
	return 1;
}

int
anrc_runs_disown_locked(struct anrc_heap *h, uint32_t s, int by_owner)
{
	uint8_t expected = ANR_PG_LARGE;
	size_t bytes = (size_t)h->pm[s].npages << h->page_shift;

	if (__atomic_load_n(&h->owner[s], __ATOMIC_RELAXED) == 0)
		return 0;
	/* Another thread's free races with the owner's, which changes the
	 * kind without the lock: one of the two wins, the other sees a
	 * double free.  The block is released next, so NONE is its kind. */
	if (!by_owner && !__atomic_compare_exchange_n(&h->pm[s].kind, &expected, ANR_PG_NONE, 0,
						      __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		return -1;
	if (by_owner) {
		struct anrc_runcache *c = &h->th[h->owner[s] - 1].rc;
		STORE(c->in_use, c->in_use - bytes);
	} else {
		__atomic_add_fetch(&h->th[h->owner[s] - 1].rc.gone, bytes, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&h->owner[s], 0, __ATOMIC_RELAXED);
	h->in_use += bytes;
	return 0;
}

void
anrc_runs_wanted_locked(struct anrc_heap *h, struct anrc_theap *t)
{
	if (t != NULL && LOAD(t->rc.flush_wanted) && rc_enter(&t->rc)) {
		rc_empty(h, &t->rc);
		rc_leave(&t->rc);
	}
}

size_t
anrc_runs_flush_locked(struct anrc_heap *h, struct anrc_theap *t)
{
	size_t given;

	if (t == NULL)
		return 0;
	if (!rc_enter(&t->rc)) {
		STORE(t->rc.flush_wanted, 1);
		return 0;
	}
	given = rc_empty(h, &t->rc);
	rc_leave(&t->rc);
	return given;
}

size_t
anrc_runs_flush_all_locked(struct anrc_heap *h)
{
	size_t given = 0;

	for (unsigned i = 0, nt = anrc_theaps_used(h); i < nt; i++) {
		struct anrc_theap *t = &h->th[i];
		if (LOAD(t->rc.n) != 0)
			given += anrc_runs_flush_locked(h, t);
	}
	return given;
}

/*
 * Fork: no cache operation may be cut short in the child, where its
 * thread does not run on (a cut run would keep pages no cache lists).
 * The forking thread takes every cache's busy flag before the heap lock:
 * each holder is inside a bounded operation, which may wait for the heap
 * lock but never for a flag, so waiting for the flags cannot deadlock.
 * A theap claimed after its flags were taken cannot start an operation
 * that changes anything while the lock is held (its cache is empty, and
 * a run of its own comes from under the lock).
 */
void
anrc_runs_hold(struct anrc_heap *h, unsigned from, unsigned to)
{
	/* Each cache is first marked wanted, so that its owner, which may
	 * be allocating and freeing without a pause, stops entering it
	 * (rc_enter): the flag is then free as soon as the operation under
	 * way ends.  Without the mark the owner could take the flag again
	 * every time before the forking thread looked (seen under valgrind,
	 * which runs one thread at a time: a fork waited for minutes). */
	for (unsigned i = from; i < to; i++)
		__atomic_store_n(&h->th[i].rc.hold_wanted, 1, __ATOMIC_SEQ_CST);
	for (unsigned i = from; i < to; i++)
		while (__atomic_exchange_n(&h->th[i].rc.busy, 1, __ATOMIC_ACQUIRE) != 0)
			sched_yield();
}

void
anrc_runs_unhold(struct anrc_heap *h, unsigned to)
{
	for (unsigned i = 0; i < to; i++) {
		__atomic_store_n(&h->th[i].rc.hold_wanted, 0, __ATOMIC_RELAXED);
		rc_leave(&h->th[i].rc);
	}
}

size_t
anrc_runs_in_use(const struct anrc_heap *h)
{
	size_t bytes = 0;

	for (unsigned i = 0, nt = anrc_theaps_used(h); i < nt; i++)
		bytes += anrc_rc_in_use(&h->th[i].rc);
	return bytes;
}

size_t
anrc_runs_kept_bytes(const struct anrc_heap *h)
{
	size_t pages = 0;

	for (unsigned i = 0, nt = anrc_theaps_used(h); i < nt; i++)
		pages += LOAD(h->th[i].rc.pages);
	return pages << h->page_shift;
}
