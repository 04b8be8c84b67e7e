/*
 * spans.c - spans: a good-fit allocator of runs of data pages.
 *
 * Every data page belongs to exactly one span: free, a large block or a
 * slab.  Free spans sit in segregated lists indexed like TLSF: the first
 * level is the power of two of the length, the second splits that power
 * into ANR_SL_COUNT equal ranges.  One bit per list (sl_map) and one bit
 * per first level (fl_map) make the search two find-first-set operations.
 * A request is rounded up to the next list boundary before the search, so
 * every span of the list found fits; the exact list's first span is tried
 * too, which keeps requests of odd lengths from splitting bigger spans.
 *
 * Boundary tags are out of band: the page map entry of a free span's first
 * page says FREE and its length, the entry of its last page FREE_TAIL and
 * the length (but at the end of a zone, see anrc_span_has_tail).  Freeing
 * a span looks at the entry just before it and the entry just after it
 * and merges at once, so two free spans are never adjacent.  Entries of
 * pages inside a span are NONE; merging clears the entries that become
 * inner ones.  Every operation is O(1) apart from the two bitmap
 * look-ups.
 *
 * A large heap has two zones, each with its own lists: slabs are taken
 * from the first (the lowest 1 / 2^ANR_ZONE_SHIFT of the pages), page runs
 * from the rest, and either from the other zone when its own has no span
 * long enough.  Slabs thus lie close together whatever the sizes of the
 * blocks between them: after most blocks are freed, the slabs still
 * holding live objects share a few pages of slab bitmaps and of page map,
 * where slabs strewn between medium blocks kept one page of bitmaps and
 * one of page map resident each.  No span crosses the boundary: a free
 * span just below it and one just above it stay two (a block longer than
 * either zone's longest free span does not fit, so the first zone is
 * small and only heaps of ANR_ZONE_MIN_PAGES pages or more have it).
 */
#include "config.h"

#include "anrcore_internal.h"

static unsigned
fls32(uint32_t v)
{
	return 31u - (unsigned)__builtin_clz(v);
}

void
anrc_span_mapping(size_t n, unsigned *fl, unsigned *sl)
{
	if (n < ANR_SL_COUNT) {
		*fl = 0;
		*sl = (unsigned)n;
	} else {
		unsigned f = fls32((uint32_t)n);
		*sl = (unsigned)(n >> (f - ANR_SL_LOG2)) - ANR_SL_COUNT;
		*fl = f - ANR_SL_LOG2 + 1;
	}
}

static unsigned
zone_of(const struct anrc_heap *h, uint32_t s)
{
	return s >= h->zone_split;
}

static void
list_add(struct anrc_heap *h, uint32_t s, uint32_t n)
{
	unsigned fl, sl, z = zone_of(h, s);
	struct anrc_page *pg = &h->pm[s];

	anrc_span_mapping(n, &fl, &sl);
	pg->kind = ANR_PG_FREE;
	pg->npages = n;
	pg->prev = ANR_NIL;
	pg->next = h->free_head[z][fl][sl];
	if (pg->next != ANR_NIL)
		h->pm[pg->next].prev = s;
	h->free_head[z][fl][sl] = s;
	h->sl_map[z][fl] |= 1u << sl;
	h->fl_map[z] |= 1u << fl;
	anrc_bm2_set(&h->fheads, s, 1);
	if (n > 1 && anrc_span_has_tail(h, s, n)) {
		struct anrc_page *t = &h->pm[s + n - 1];
		t->kind = ANR_PG_FREE_TAIL;
		t->npages = n;
	}
}

/* Unlink a free span; its first and last entries become NONE. */
static void
list_del(struct anrc_heap *h, uint32_t s)
{
	struct anrc_page *pg = &h->pm[s];
	uint32_t n = pg->npages;
	unsigned fl, sl, z = zone_of(h, s);

	anrc_span_mapping(n, &fl, &sl);
	if (pg->prev != ANR_NIL)
		h->pm[pg->prev].next = pg->next;
	else
		h->free_head[z][fl][sl] = pg->next;
	if (pg->next != ANR_NIL)
		h->pm[pg->next].prev = pg->prev;
	if (h->free_head[z][fl][sl] == ANR_NIL) {
		h->sl_map[z][fl] &= ~(1u << sl);
		if (h->sl_map[z][fl] == 0)
			h->fl_map[z] &= ~(1u << fl);
	}
	if (n > 1 && anrc_span_has_tail(h, s, n))
		h->pm[s + n - 1] = (struct anrc_page){ 0 };
	*pg = (struct anrc_page){ 0 };
	anrc_bm2_clear(&h->fheads, s, 1);
}

void
anrc_span_init(struct anrc_heap *h)
{
	for (unsigned z = 0; z < ANR_ZONES; z++) {
		h->fl_map[z] = 0;
		for (unsigned f = 0; f < ANR_FL_COUNT; f++) {
			h->sl_map[z][f] = 0;
			for (unsigned s = 0; s < ANR_SL_COUNT; s++)
				h->free_head[z][f][s] = ANR_NIL;
		}
	}
	/* A multiple of the page size (so of ANR_BITS_GROUP), so that no
	 * page of metadata (an owner byte per data page is the densest)
	 * describes pages of both zones: a free span on either side gives
	 * back its own. */
	h->zone_split = 0;
	if (h->npages >= ANR_ZONE_MIN_PAGES) {
		size_t split = ((size_t)(h->npages >> ANR_ZONE_SHIFT) + h->page - 1) & ~(h->page - 1);
		if (split <= h->npages / 4)
			h->zone_split = (uint32_t)split;
	}
	if (h->zone_split > 0)
		list_add(h, 0, h->zone_split);
	list_add(h, h->zone_split, h->npages - h->zone_split);
}

static uint32_t
find_fit(struct anrc_heap *h, size_t n, unsigned z)
{
	unsigned fl, sl;
	uint32_t s, map;
	uint64_t r = n;

	/* The first span of n's own list may be long enough. */
	anrc_span_mapping(n, &fl, &sl);
	s = h->free_head[z][fl][sl];
	if (s != ANR_NIL && h->pm[s].npages >= n)
		return s;
	/* Round up to the next list: all of its spans fit. */
	if (n >= ANR_SL_COUNT)
		r = n + (UINT64_C(1) << (fls32((uint32_t)n) - ANR_SL_LOG2)) - 1;
	if (r > UINT32_MAX)
		return ANR_NIL;
	anrc_span_mapping((size_t)r, &fl, &sl);
	if (fl >= ANR_FL_COUNT)
		return ANR_NIL;
	map = h->sl_map[z][fl] & (~0u << sl);
	if (map == 0) {
		map = fl + 1 < ANR_FL_COUNT ? h->fl_map[z] & (~0u << (fl + 1)) : 0;
		if (map == 0)
			return ANR_NIL;
		fl = (unsigned)__builtin_ctz(map);
		map = h->sl_map[z][fl];
	}
	sl = (unsigned)__builtin_ctz(map);
	return h->free_head[z][fl][sl];
}

uint32_t
anrc_span_take(struct anrc_heap *h, size_t n, unsigned zone)
{
	uint32_t s, len;

	if (n == 0 || n > h->npages)
		return ANR_NIL;
	s = find_fit(h, n, zone);
	if (s == ANR_NIL)
		s = find_fit(h, n, !zone);
	if (s == ANR_NIL)
		return ANR_NIL;
	len = h->pm[s].npages;
	list_del(h, s);
	if (len > n)
		list_add(h, (uint32_t)(s + n), (uint32_t)(len - n));
	return s;
}

void
anrc_span_release(struct anrc_heap *h, uint32_t s, size_t n)
{
	uint32_t start = s, len = (uint32_t)n;

	h->pm[s] = (struct anrc_page){ 0 };
	if (s > 0 && s != h->zone_split) {
		struct anrc_page *l = &h->pm[s - 1];
		uint32_t ls = ANR_NIL;
		if (l->kind == ANR_PG_FREE_TAIL)
			ls = s - l->npages;
		else if (l->kind == ANR_PG_FREE)
			ls = s - 1;
		if (ls != ANR_NIL) {
			len += h->pm[ls].npages;
			list_del(h, ls);
			start = ls;
		}
	}
	if ((size_t)s + n < h->npages && s + n != h->zone_split &&
	    h->pm[s + n].kind == ANR_PG_FREE) {
		uint32_t r = (uint32_t)(s + n);
		len += h->pm[r].npages;
		list_del(h, r);
	}
	list_add(h, start, len);
}

static void
carve(struct anrc_heap *h, uint32_t f, uint32_t s, size_t n)
{
	uint32_t len = h->pm[f].npages;

	list_del(h, f);
	if (s > f)
		list_add(h, f, s - f);
	if ((size_t)s + n < (size_t)f + len)
		list_add(h, (uint32_t)(s + n), (uint32_t)(f + len - s - n));
}

/* Take pages [s, s+n), which lie inside one free span, out of it. */
void
anrc_span_carve(struct anrc_heap *h, uint32_t s, size_t n)
{
	carve(h, (uint32_t)anrc_bm2_prev(&h->fheads, s), s, n);
}

int
anrc_span_take_at(struct anrc_heap *h, uint32_t s, size_t n)
{
	size_t f;

	if ((size_t)s + n > h->npages)
		return -1;
	f = anrc_bm2_prev(&h->fheads, s);
	if (f == SIZE_MAX || h->pm[f].kind != ANR_PG_FREE ||
	    f + h->pm[f].npages < (size_t)s + n)
		return -1;
	carve(h, (uint32_t)f, s, n);
	return 0;
}

int
anrc_span_extend(struct anrc_heap *h, uint32_t s, size_t n, size_t extra)
{
	size_t r = (size_t)s + n;
	uint32_t len;

	if (r >= h->npages || r == h->zone_split || h->pm[r].kind != ANR_PG_FREE ||
	    h->pm[r].npages < extra)
		return -1;
	len = h->pm[r].npages;
	list_del(h, (uint32_t)r);
	if (len > extra)
		list_add(h, (uint32_t)(r + extra), (uint32_t)(len - extra));
	return 0;
}

/* Lists agree with the bitmaps and with the page map; counts free spans. */
int
anrc_span_check(struct anrc_heap *h, size_t *nfree_spans, size_t *free_pages)
{
	size_t count = 0, pages = 0;

	for (unsigned z = 0; z < ANR_ZONES; z++) {
		for (unsigned f = 0; f < ANR_FL_COUNT; f++) {
			if (((h->fl_map[z] >> f) & 1) != (h->sl_map[z][f] != 0))
				return -1;
			for (unsigned l = 0; l < ANR_SL_COUNT; l++) {
				uint32_t s = h->free_head[z][f][l], prev = ANR_NIL;
				if (((h->sl_map[z][f] >> l) & 1) != (s != ANR_NIL))
					return -1;
				while (s != ANR_NIL) {
					unsigned ff, ll;
					if (s >= h->npages || h->pm[s].kind != ANR_PG_FREE ||
					    h->pm[s].prev != prev || count > h->npages ||
					    zone_of(h, s) != z ||
					    (s < h->zone_split && s + h->pm[s].npages > h->zone_split))
						return -1;
					anrc_span_mapping(h->pm[s].npages, &ff, &ll);
					if (ff != f || ll != l)
						return -1;
					count++;
					pages += h->pm[s].npages;
					prev = s;
					s = h->pm[s].next;
				}
			}
		}
	}
	*nfree_spans = count;
	*free_pages = pages;
	return 0;
}
