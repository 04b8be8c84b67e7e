/*
 * stats.c - looking at a heap: statistics, the report, walking the live
 * blocks, finding the block around an address, and checking every
 * invariant listed in heap.c.
 */
#include "config.h"

#include "anrcore_internal.h"

#include "mb_log.h"

#include <pthread.h>
#include <string.h>

static void
fill_stats(struct anrc_heap *h, struct anrc_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->in_use = h->in_use;
	st->resident = h->resident_pages << h->page_shift;
	/* with the pages being given back right now (TRIM spans) */
	st->free_resident = (h->dirty_pages + h->inflight_pages) << h->page_shift;
	st->budget = __atomic_load_n(&h->budget, __ATOMIC_RELAXED);
	st->reserved = h->reserve;
	st->address_used = h->top << h->page_shift;
	st->peak_in_use = h->peak_in_use;
	st->peak_resident = h->peak_resident;
	st->allocs = h->allocs;
	st->frees = h->frees;
	st->hook_calls = __atomic_load_n(&h->hook_calls, __ATOMIC_RELAXED);
	st->failures = __atomic_load_n(&h->failures, __ATOMIC_RELAXED);
	st->madvise_calls = h->madvise_calls;
	st->madvised_bytes = h->madvised_bytes;
	st->deferred_frees = __atomic_load_n(&h->deferred_frees, __ATOMIC_RELAXED);
	st->bad_frees = __atomic_load_n(&h->bad_frees, __ATOMIC_RELAXED);
	/* Runs threads keep count as free slab space; blocks their owners
	 * may keep later are in use. */
	st->slab_free = h->slab_free + anrc_runs_kept_bytes(h);
	st->in_use += __atomic_load_n(&h->run_in_use, __ATOMIC_RELAXED);
	st->metadata = (size_t)(h->data - h->base);
	/* Thread heaps: their owners' counts, read without stopping them. */
	{
		size_t in_use, slab_bytes;
		uint64_t allocs, frees;
		anrc_theap_totals(h, &in_use, &slab_bytes, &allocs, &frees);
		st->in_use += in_use;
		st->slab_free += slab_bytes - in_use;
		st->allocs += allocs;
		st->frees += frees;
		if (st->in_use > h->peak_in_use)
			h->peak_in_use = st->in_use;
		st->peak_in_use = h->peak_in_use;
	}
}

void
anrc_get_stats(struct anrc_heap *h, struct anrc_stats *st)
{
	anrc_lock_and_drain_all(h);
	fill_stats(h, st);
	anrc_unlock_and_return_pages(h);
}

static void
line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
line(int fd, const char *fmt, ...)
{
	char buf[MB_LOG_LINE_MAX];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = mb_vformat(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	(void)mb_write_all(fd, buf, n);
}

#define KiB(x) ((x) >> 10)

/* Slabs per class and the longest free run; skipped if the heap is busy. */
static void
report_detail(struct anrc_heap *h, int fd)
{
	size_t longest = 0;

	if (pthread_mutex_trylock(&h->lock) != 0)
		return;
	if (h->fl_map != 0) {
		unsigned fl = 31u - (unsigned)__builtin_clz(h->fl_map);
		unsigned sl = 31u - (unsigned)__builtin_clz(h->sl_map[fl]);
		longest = (size_t)h->pm[h->free_head[fl][sl]].npages << h->page_shift;
	}
	line(fd, "  longest free run %zu KiB\n", KiB(longest));
	for (unsigned c = 0; c < ANR_NCLASSES; c++) {
		const struct anrc_class *k = &h->cls[c];
		size_t slabs, live;
		anrc_theap_class_counts(h, c, &slabs, &live);
		slabs += h->class_slabs[c];
		live += h->class_live[c];
		if (slabs == 0)
			continue;
		line(fd, "  class %5u B: %zu slabs of %u pages, %zu of %zu objects live\n",
		     k->size, slabs, k->npages, live, slabs * k->nobjs);
	}
	pthread_mutex_unlock(&h->lock);
}

void
anrc_report(struct anrc_heap *h, int fd)
{
	struct anrc_stats st;
	/* A report may be asked for from a signal handler: never wait. */
	int locked = pthread_mutex_trylock(&h->lock) == 0;

	fill_stats(h, &st);
	if (locked)
		pthread_mutex_unlock(&h->lock);
	line(fd, "%s heap report%s\n", h->name,
	     locked ? "" : " (heap busy: figures may be inconsistent)");
	line(fd, "  in use         %10zu KiB (peak %zu KiB)\n", KiB(st.in_use),
	     KiB(st.peak_in_use));
	line(fd, "  resident       %10zu KiB (peak %zu KiB)\n", KiB(st.resident),
	     KiB(st.peak_resident));
	line(fd, "  free resident  %10zu KiB (marks %zu..%zu KiB)\n",
	     KiB(st.free_resident), KiB(h->free_low), KiB(h->free_high));
	line(fd, "  free in slabs  %10zu KiB\n", KiB(st.slab_free));
	line(fd, "  budget         %10zu KiB\n", KiB(st.budget));
	line(fd, "  address used   %10zu KiB of %zu KiB reserved (metadata %zu KiB)\n",
	     KiB(st.address_used), KiB(st.reserved), KiB(st.metadata));
	line(fd, "  allocs %llu frees %llu deferred frees %llu bad frees %llu\n",
	     (unsigned long long)st.allocs, (unsigned long long)st.frees,
	     (unsigned long long)st.deferred_frees, (unsigned long long)st.bad_frees);
	if (locked)
		report_detail(h, fd);
	line(fd, "  hook calls %llu failures %llu madvise calls %llu (%zu KiB given back,"
	     " %zu KiB of metadata)\n",
	     (unsigned long long)st.hook_calls, (unsigned long long)st.failures,
	     (unsigned long long)st.madvise_calls, KiB(st.madvised_bytes),
	     KiB(__atomic_load_n(&h->meta_madvised, __ATOMIC_RELAXED)));
}

static int
walk_locked(struct anrc_heap *h, int (*fn)(void *arg, void *block, size_t size),
	    void *arg)
{
	size_t i = 0;
	int r = 0;

	while (i < h->top && r == 0) {
		struct anrc_page *pg = &h->pm[i];
		if (pg->kind == ANR_PG_LARGE) {
			r = fn(arg, anrc_page_addr(h, i), (size_t)pg->npages << h->page_shift);
		} else if (pg->kind == ANR_PG_SLAB) {
			const struct anrc_class *k = &h->cls[pg->cls];
			for (size_t o = 0; o < k->nobjs && r == 0; o++)
				if (anrc_slab_live(h, (uint32_t)i, o))
					r = fn(arg, anrc_page_addr(h, i) + o * k->size, k->size);
		}
		i += pg->npages;
	}
	return r;
}

int
anrc_walk(struct anrc_heap *h, int (*fn)(void *arg, void *block, size_t size),
	 void *arg)
{
	int r;

	anrc_lock_and_drain_all(h);
	r = walk_locked(h, fn, arg);
	anrc_unlock_and_return_pages(h);
	return r;
}

int
anrc_walk_try(struct anrc_heap *h, int (*fn)(void *arg, void *block, size_t size),
	     void *arg, int *busy)
{
	int r;

	*busy = anrc_trylock_and_drain(h) != 0;
	if (*busy)
		return 0;
	r = walk_locked(h, fn, arg);
	anrc_unlock_and_return_pages(h);
	return r;
}

void *
anrc_block_of(struct anrc_heap *h, const void *p, size_t *size)
{
	const char *cp = p;
	void *block = NULL;
	size_t i, hd;

	if (cp < h->data || cp >= h->data + ((size_t)h->npages << h->page_shift))
		return NULL;
	i = (size_t)(cp - h->data) >> h->page_shift;
	anrc_lock_and_drain_all(h);
	hd = anrc_bm2_prev(&h->heads, i);
	if (hd != SIZE_MAX && hd + h->pm[hd].npages > i) {
		struct anrc_page *pg = &h->pm[hd];
		char *start = anrc_page_addr(h, hd);
		if (pg->kind == ANR_PG_LARGE) {
			block = start;
			if (size != NULL)
				*size = (size_t)pg->npages << h->page_shift;
		} else if (pg->kind == ANR_PG_SLAB) {
			const struct anrc_class *k = &h->cls[pg->cls];
			size_t idx = anrc_slab_index(k, (size_t)(cp - start));
			if (idx < k->nobjs && anrc_slab_live(h, (uint32_t)hd, idx)) {
				block = start + idx * k->size;
				if (size != NULL)
					*size = k->size;
			}
		}
	}
	anrc_unlock_and_return_pages(h);
	return block;
}

/* ---- consistency check ---- */

struct tally {
	size_t used, dirty, in_use, slab_free, free_spans, free_pages;
	size_t live_spans, empty, inflight, partial[ANR_NCLASSES];
	size_t slabs[ANR_NCLASSES], live[ANR_NCLASSES];
};

#define FAIL(...) do { mb_log(MB_LOG_ERR, __VA_ARGS__); return -1; } while (0)

static int
check_interior(struct anrc_heap *h, size_t i, size_t n, size_t from, size_t to)
{
	/* entries from..to-1 of the span must be NONE (only below top) */
	if (to > h->top)
		to = h->top;
	for (size_t j = i + from; j < i + to; j++)
		if (h->pm[j].kind != ANR_PG_NONE)
			FAIL("%s: check: page %zu inside span %zu+%zu has kind %u",
			     h->name, j, i, n, h->pm[j].kind);
	return 0;
}

static int
check_slab(struct anrc_heap *h, size_t i, struct tally *t)
{
	struct anrc_page *pg = &h->pm[i];
	const struct anrc_class *k;
	uint64_t *bits;
	size_t nbits = (size_t)h->bmw * 64, live;

	if (pg->cls >= ANR_NCLASSES)
		FAIL("%s: check: slab %zu has class %u", h->name, i, pg->cls);
	k = &h->cls[pg->cls];
	if (pg->npages != k->npages)
		FAIL("%s: check: slab %zu has %u pages, class wants %u", h->name, i,
		     pg->npages, k->npages);
	for (uint32_t j = 1; j < k->npages; j++)
		if (h->pm[i + j].kind != ANR_PG_SLAB_BODY || h->pm[i + j].npages != j)
			FAIL("%s: check: slab %zu page %u not marked", h->name, i, j);
	bits = anrc_slab_bits(h, (uint32_t)i);
	if (h->owner[i] != 0) {
		/* A thread's slab: its owner changes it without the lock, so
		 * only the caller's own slabs can be looked at closely. */
		struct anrc_theap *me = anrc_theap_peek(h);
		if (h->owner[i] > ANR_THEAPS)
			FAIL("%s: check: slab %zu has owner %u", h->name, i, h->owner[i]);
		if (me == NULL || me->id != h->owner[i])
			return 0;
		live = anrc_bits_count(bits, 0, k->nobjs);
		if (k->nobjs - live != pg->nfree)
			FAIL("%s: check: owned slab %zu nfree %u, bitmap says %zu", h->name, i,
			     pg->nfree, k->nobjs - live);
		return 0;
	}
	if (anrc_bits_count(bits, k->nobjs, nbits - k->nobjs) != nbits - k->nobjs)
		FAIL("%s: check: slab %zu has free bits past its end", h->name, i);
	live = anrc_bits_count(bits, 0, k->nobjs);
	if (k->nobjs - live != pg->nfree)
		FAIL("%s: check: slab %zu nfree %u, bitmap says %zu", h->name, i,
		     pg->nfree, k->nobjs - live);
	if (live == 0) {
		if (h->empty_slab[pg->cls] != i)
			FAIL("%s: check: slab %zu is empty but not kept", h->name, i);
		t->empty += k->npages;
	}
	if (pg->nfree > 0)
		t->partial[pg->cls]++;
	t->slabs[pg->cls]++;
	t->live[pg->cls] += live;
	t->in_use += live * k->size;
	t->slab_free += ((size_t)k->npages << h->page_shift) - live * k->size;
	return 0;
}

static int
check_spans(struct anrc_heap *h, struct tally *t)
{
	size_t i = 0;
	int prev_free = 0;

	while (i < h->npages) {
		struct anrc_page *pg = &h->pm[i];
		size_t n = pg->npages, res;

		if (n == 0 || i + n > h->npages)
			FAIL("%s: check: span at page %zu has length %zu", h->name, i, n);
		if (anrc_bit(h->heads.w, i) != (pg->kind == ANR_PG_LARGE || pg->kind == ANR_PG_SLAB ||
						pg->kind == ANR_PG_CACHED))
			FAIL("%s: check: head bit of page %zu wrong", h->name, i);
		if (anrc_bit(h->fheads.w, i) != (pg->kind == ANR_PG_FREE))
			FAIL("%s: check: free head bit of page %zu wrong", h->name, i);
		res = anrc_bits_count(h->resident, i, n);
		switch (pg->kind) {
		case ANR_PG_FREE:
			if (prev_free)
				FAIL("%s: check: free spans meet at page %zu", h->name, i);
			if (n > 1 && (h->pm[i + n - 1].kind != ANR_PG_FREE_TAIL ||
				      h->pm[i + n - 1].npages != n))
				FAIL("%s: check: free span %zu+%zu has a bad tail", h->name, i, n);
			if (check_interior(h, i, n, 1, n - 1) != 0)
				return -1;
			if (anrc_bits_count(h->dirty.w, i, n) != res)
				FAIL("%s: check: free span %zu: dirty != resident", h->name, i);
			t->dirty += res;
			t->free_spans++;
			t->free_pages += n;
			prev_free = 1;
			break;
		case ANR_PG_LARGE:
		case ANR_PG_CACHED: /* runcache.c: a thread's, in use or kept */
			if (check_interior(h, i, n, 1, n) != 0)
				return -1;
			/* fall through */
		case ANR_PG_SLAB:
			if (pg->kind == ANR_PG_SLAB && check_slab(h, i, t) != 0)
				return -1;
			if (pg->kind == ANR_PG_LARGE && h->owner[i] == 0)
				t->in_use += n << h->page_shift;
			if (res != n || anrc_bits_count(h->dirty.w, i, n) != 0)
				FAIL("%s: check: live span %zu+%zu not all resident", h->name, i, n);
			t->used += n;
			t->live_spans++;
			prev_free = 0;
			break;
		case ANR_PG_TRIM:
			if (check_interior(h, i, n, 1, n) != 0)
				return -1;
			if (res != n || anrc_bits_count(h->dirty.w, i, n) != 0)
				FAIL("%s: check: pages %zu+%zu being given back are wrong",
				     h->name, i, n);
			t->inflight += n;
			prev_free = 0;
			break;
		default:
			FAIL("%s: check: page %zu starts a span but has kind %u", h->name,
			     i, pg->kind);
		}
		i += n;
	}
	return 0;
}

static int
check_partial(struct anrc_heap *h, const struct tally *t)
{
	for (unsigned c = 0; c < ANR_NCLASSES; c++) {
		size_t count = 0;
		uint32_t prev = ANR_NIL;
		for (uint32_t s = h->partial[c]; s != ANR_NIL; s = h->pm[s].next) {
			if (s >= h->npages || h->pm[s].kind != ANR_PG_SLAB ||
			    h->pm[s].cls != c || h->pm[s].nfree == 0 ||
			    h->pm[s].prev != prev || ++count > t->partial[c])
				FAIL("%s: check: partial list of class %u is bad at %u",
				     h->name, c, s);
			prev = s;
		}
		if (count != t->partial[c])
			FAIL("%s: check: class %u has %zu partial slabs, list has %zu",
			     h->name, c, t->partial[c], count);
		if (t->slabs[c] != h->class_slabs[c] || t->live[c] != h->class_live[c])
			FAIL("%s: check: class %u counts wrong", h->name, c);
	}
	return 0;
}

/* Each summary bit says whether the word below it is not zero. */
static int
check_levels(struct anrc_heap *h, const struct anrc_bm2 *b)
{
	for (unsigned l = 1; l < b->nlevels; l++)
		for (size_t k = 0; k < b->nw[l - 1]; k++)
			if ((int)((b->lv[l][k >> 6] >> (k & 63)) & 1) != (b->lv[l - 1][k] != 0))
				FAIL("%s: check: bitmap level %u wrong at word %zu", h->name, l, k);
	return 0;
}

static int
check_locked(struct anrc_heap *h)
{
	struct tally t;
	size_t nfree, free_pages;

	memset(&t, 0, sizeof(t));
	if (check_spans(h, &t) != 0 || check_partial(h, &t) != 0)
		return -1;
	if (anrc_span_check(h, &nfree, &free_pages) != 0)
		FAIL("%s: check: free lists are inconsistent", h->name);
	if (nfree != t.free_spans || free_pages != t.free_pages)
		FAIL("%s: check: free lists hold %zu spans/%zu pages, map %zu/%zu",
		     h->name, nfree, free_pages, t.free_spans, t.free_pages);
	if (t.used != h->used_pages || t.dirty != h->dirty_pages ||
	    anrc_bits_count(h->resident, 0, h->npages) != h->resident_pages ||
	    t.inflight != h->inflight_pages ||
	    h->resident_pages != h->used_pages + h->dirty_pages + h->inflight_pages)
		FAIL("%s: check: page counts wrong (used %zu/%zu dirty %zu/%zu resident %zu)",
		     h->name, t.used, h->used_pages, t.dirty, h->dirty_pages, h->resident_pages);
	if (t.in_use != h->in_use || t.slab_free != h->slab_free)
		FAIL("%s: check: in use %zu (counted %zu), slab free %zu (counted %zu)",
		     h->name, h->in_use, t.in_use, h->slab_free, t.slab_free);
	if (anrc_bits_count(h->fheads.w, 0, h->npages) != t.free_spans)
		FAIL("%s: check: free head bitmap count wrong", h->name);
	if (t.empty != h->empty_pages)
		FAIL("%s: check: %zu pages of empty slabs, %zu counted", h->name,
		     t.empty, h->empty_pages);
	if (anrc_bits_count(h->heads.w, 0, h->npages) != t.live_spans)
		FAIL("%s: check: head bitmap count wrong", h->name);
	if (check_levels(h, &h->dirty) != 0 || check_levels(h, &h->heads) != 0 ||
	    check_levels(h, &h->fheads) != 0)
		return -1;
	return 0;
}

int
anrc_check(struct anrc_heap *h)
{
	int r;

	anrc_lock_and_drain_all(h);
	r = check_locked(h);
	anrc_unlock_and_return_pages(h);
	return r;
}
