/*
 * check.c - checking every invariant listed in heap.c, from the metadata
 * alone.
 */
#include "config.h"

#include "anrcore_internal.h"

#include "mb_log.h"

#include <pthread.h>
#include <string.h>

struct tally {
	size_t used, dirty, in_use, slab_free, free_spans, free_pages;
	size_t live_spans, empty, inflight, holes, partial[ANR_NCLASSES];
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

/* Kept run i+n: 1 if its cache slot says it has a head bit, 0 if it is
 * the headless rest of a cut run (runcache.c), -1 if no cache holds it. */
static int
kept_headed(const struct anrc_heap *h, size_t i, size_t n)
{
	unsigned id = h->owner[i];
	const struct anrc_runcache *c;

	if (id == 0 || id > anrc_theaps_used(h))
		return -1;
	c = &h->th[id - 1].rc;
	for (unsigned j = 0; j < c->n; j++)
		if (c->run[j].s == i && anrc_rc_len(c, j) == n)
			return (c->run[j].len & ANR_RC_HEADLESS) == 0;
	return -1;
}

/* Each kept-run cache counts its headless rests right (a free looks for
 * one only when the count is not 0). */
static int
check_headless(struct anrc_heap *h)
{
	for (unsigned id = 1; id <= anrc_theaps_used(h); id++) {
		const struct anrc_runcache *c = &h->th[id - 1].rc;
		unsigned n = 0;
		for (unsigned j = 0; j < c->n; j++)
			n += (c->run[j].len & ANR_RC_HEADLESS) != 0;
		if (n != c->headless)
			FAIL("%s: check: theap %u keeps %u headless rests, counts %u", h->name,
			     id, n, c->headless);
	}
	return 0;
}

static int
check_slab(struct anrc_heap *h, size_t i, struct tally *t)
{
	struct anrc_page *pg = &h->pm[i];
	const struct anrc_class *k;
	uint64_t *bits;
	size_t nbits, live, held;

	if (pg->cls >= ANR_NCLASSES)
		FAIL("%s: check: slab %zu has class %u", h->name, i, pg->cls);
	k = &h->cls[pg->cls];
	nbits = (size_t)k->words * 64;
	if (k->size <= ANR_SLAB_GROUPED_MAX && (i & (ANR_SLAB_GROUP - 1)) != 0)
		FAIL("%s: check: slab %zu does not start a group of %zu pages", h->name, i,
		     (size_t)ANR_SLAB_GROUP);
	if (pg->npages != k->npages)
		FAIL("%s: check: slab %zu has %u pages, class wants %u", h->name, i,
		     pg->npages, k->npages);
	for (uint32_t j = 1; j < k->npages; j++)
		if (h->pm[i + j].kind != ANR_PG_SLAB_BODY || h->pm[i + j].npages != j ||
		    h->pm[i + j].cls != pg->cls)
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
		/* the held word's objects are left out of nfree */
		held = me->cur[pg->cls] == i ? (size_t)anrc_popcount64(me->cl[pg->cls].avail) : 0;
		if (k->nobjs - live != pg->nfree + held)
			FAIL("%s: check: owned slab %zu nfree %u (and %zu held), bitmap says %zu",
			     h->name, i, pg->nfree, held, k->nobjs - live);
		/* a kept empty slab is empty and not the current one */
		for (unsigned j = 0; j < me->nspare[pg->cls]; j++)
			if (me->spare[pg->cls][j] == i && (live != 0 || me->cur[pg->cls] == i))
				FAIL("%s: check: spare slab %zu has %zu live objects%s", h->name, i,
				     live, me->cur[pg->cls] == i ? " and is the current one" : "");
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
		/* a kept run: 1 with a head bit, 0 the rest of a cut run, -1 in no cache */
		int headed = pg->kind == ANR_PG_CACHED ? kept_headed(h, i, n) : 1, tail;

		if (n == 0 || i + n > h->npages)
			FAIL("%s: check: span at page %zu has length %zu", h->name, i, n);
		if (i < h->zone_split && i + n > h->zone_split)
			FAIL("%s: check: span %zu+%zu crosses the zones' boundary", h->name, i, n);
		if (i == h->zone_split)
			prev_free = 0; /* free spans meet there */
		if (anrc_pb_bit(h->heads.w, i) !=
		    (pg->kind == ANR_PG_LARGE || pg->kind == ANR_PG_SLAB ||
		     (pg->kind == ANR_PG_CACHED && headed != 0)))
			FAIL("%s: check: head bit of page %zu wrong", h->name, i);
		if (anrc_pb_bit(h->fheads.w, i) != (pg->kind == ANR_PG_FREE))
			FAIL("%s: check: free head bit of page %zu wrong", h->name, i);
		res = anrc_pb_count(h->resident, i, n);
		switch (pg->kind) {
		case ANR_PG_FREE:
			if (prev_free)
				FAIL("%s: check: free spans meet at page %zu", h->name, i);
			tail = n > 1 && anrc_span_has_tail(h, i, n);
			if (tail && (h->pm[i + n - 1].kind != ANR_PG_FREE_TAIL ||
				     h->pm[i + n - 1].npages != n))
				FAIL("%s: check: free span %zu+%zu has a bad tail", h->name, i, n);
			if (check_interior(h, i, n, 1, tail ? n - 1 : n) != 0)
				return -1;
			if (anrc_pb_count(h->dirty.w, i, n) != res)
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
			if (headed < 0)
				FAIL("%s: check: kept run %zu+%zu is in no cache", h->name, i, n);
			/* fall through */
		case ANR_PG_SLAB:
			if (pg->kind == ANR_PG_SLAB && check_slab(h, i, t) != 0)
				return -1;
			if (pg->kind == ANR_PG_LARGE && h->owner[i] == 0)
				t->in_use += n << h->page_shift;
			/* an owned slab's holes (theap.c) are not */
			if (pg->kind == ANR_PG_SLAB && res < n && h->owner[i] != 0) {
				t->holes += n - res;
				res = n;
			}
			if (res != n || anrc_pb_count(h->dirty.w, i, n) != 0)
				FAIL("%s: check: live span %zu+%zu not all resident", h->name, i, n);
			t->used += n;
			t->live_spans += headed == 1;
			prev_free = 0;
			break;
		case ANR_PG_TRIM:
			if (check_interior(h, i, n, 1, n) != 0)
				return -1;
			if (res != n || anrc_pb_count(h->dirty.w, i, n) != 0)
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
			if (anrc_pb_bit(b->lv[l], k) != (*anrc_pb_word(b->lv[l - 1], k) != 0))
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
	    anrc_pb_count(h->resident, 0, h->npages) + h->slab_holes != h->resident_pages ||
	    t.holes != h->slab_holes ||
	    t.inflight != h->inflight_pages ||
	    h->resident_pages != h->used_pages + h->dirty_pages + h->inflight_pages)
		FAIL("%s: check: page counts wrong (used %zu/%zu dirty %zu/%zu resident %zu)",
		     h->name, t.used, h->used_pages, t.dirty, h->dirty_pages, h->resident_pages);
	{
		size_t holes = 0;
		for (unsigned i = 0, nt = anrc_theaps_used(h); i < nt; i++)
			holes += h->th[i].holes;
		if (holes != h->slab_holes)
			FAIL("%s: check: theaps hold %zu holes, heap counts %zu", h->name, holes,
			     h->slab_holes);
	}
	if (t.in_use != h->in_use || t.slab_free != h->slab_free)
		FAIL("%s: check: in use %zu (counted %zu), slab free %zu (counted %zu)",
		     h->name, h->in_use, t.in_use, h->slab_free, t.slab_free);
	if (anrc_pb_count(h->fheads.w, 0, h->npages) != t.free_spans)
		FAIL("%s: check: free head bitmap count wrong", h->name);
	if (t.empty != h->empty_pages)
		FAIL("%s: check: %zu pages of empty slabs, %zu counted", h->name,
		     t.empty, h->empty_pages);
	if (anrc_pb_count(h->heads.w, 0, h->npages) != t.live_spans)
		FAIL("%s: check: head bitmap count wrong", h->name);
	if (check_levels(h, &h->dirty) != 0 || check_levels(h, &h->heads) != 0 ||
	    check_levels(h, &h->fheads) != 0 || check_headless(h) != 0)
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
