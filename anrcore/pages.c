/*
 * pages.c - which data pages may be resident, and the budget.
 *
 * Two page bitmaps live in the metadata area:
 *   resident: the page may be resident (it was handed out since it was
 *             last given back).  Every page of a live span is resident.
 *   dirty:    resident and inside a free span, i.e. returnable.
 * so resident = live pages + dirty pages, and the budget bounds resident.
 *
 * A span handed out turns its dirty pages live and charges its other
 * pages to the budget; a span given back turns all its pages dirty.
 * Giving dirty pages back to the kernel is release.c's.
 */
#include "config.h"

#include "anrcore_internal.h"
#include "vg.h"

#include <errno.h>
#include <pthread.h>

__thread uint64_t anrc_step_count __attribute__((tls_model("initial-exec")));

static void
note_resident(struct anrc_heap *h)
{
	size_t bytes = h->resident_pages << h->page_shift;
	if (bytes > h->peak_resident)
		h->peak_resident = bytes;
}

static size_t
budget_pages(const struct anrc_heap *h)
{
	return __atomic_load_n(&h->budget, __ATOMIC_RELAXED) >> h->page_shift;
}

/* dirty[s, s+n) = resident[s, s+n) */
static void
dirty_from_resident(struct anrc_heap *h, size_t s, size_t n)
{
	size_t i = s, end = s + n;

	if (n == 0)
		return;
	while (i < end) {
		size_t lo = i & 63, hi = end - (i & ~(size_t)63);
		uint64_t m, *d = anrc_pb_word(h->dirty.w, i >> 6);
		if (hi > 64)
			hi = 64;
		m = anrc_range_mask(lo, hi);
		*d = (*d & ~m) | (*anrc_pb_word(h->resident, i >> 6) & m);
		i = (i & ~(size_t)63) + hi;
	}
	anrc_bm2_sync(&h->dirty, s >> 6, (end - 1) >> 6);
}

/*
 * Charge pages [s, s+n) of a span being handed out.  Returns 0, or the
 * number of pages the budget lacks (nothing changed then).
 */
static size_t
charge(struct anrc_heap *h, size_t s, size_t n)
{
	size_t had = anrc_pb_count(h->resident, s, n);
	size_t fresh = n - had, limit = budget_pages(h);

	/* This span's resident pages stop being returnable. */
	anrc_bm2_clear(&h->dirty, s, n);
	h->dirty_pages -= had;
	if (h->resident_pages + fresh > limit) {
		/* Returning other free pages costs nothing but a fault later. */
		size_t need = h->resident_pages + fresh - limit;
		anrc_release_down_to(h, h->dirty_pages > need ? h->dirty_pages - need : 0);
		if (h->resident_pages + fresh > limit) {
			dirty_from_resident(h, s, n);
			h->dirty_pages += had;
			return h->resident_pages + fresh - limit;
		}
	}
	h->charged_recent += n;
	h->charged_since_trim += n;
	h->page_moves++;
	if (fresh > 0 && h->given_recent > 0) {
		size_t r = fresh < h->given_recent ? fresh : h->given_recent;
		h->given_recent -= r;
		h->refaulted += r;
	}
	/* Where the resident pages are, for a block to be zeroed: the others
	 * read as zero (a span carved from a free one often ends in pages
	 * never used, which a calloc need not touch). */
	h->last_res_lo = 0;
	h->last_res_hi = had == 0 ? 0 : n;
	if (had > 0 && had < n) {
		size_t lo, hi;
		if (anrc_pb_bounds(h->resident, s, n, &lo, &hi)) {
			h->last_res_lo = lo - s;
			h->last_res_hi = hi - s + 1;
		}
	}
	anrc_pb_set(h->resident, s, n);
	h->resident_pages += fresh;
	h->used_pages += n;
	if (s < h->zone_split && s + n > h->top_slabs)
		h->top_slabs = s + n;
	if (s + n > h->top) {
		/* Pages never used before: valgrind starts them unaddressable,
		 * so slack behind a block is caught too. */
		ANR_VG_NOACCESS(h, anrc_page_addr(h, h->top), (s + n - h->top) << h->page_shift);
		h->top = s + n;
	}
	note_resident(h);
	return 0;
}

/* Charge pages [s, s+n), just taken from the free spans; if the budget
 * is short, put them back and return ANR_NIL (*short_pages says by how
 * much). */
static uint32_t
charge_or_put_back(struct anrc_heap *h, uint32_t s, size_t n, size_t *short_pages)
{
	*short_pages = charge(h, s, n);
	if (*short_pages != 0) {
		anrc_span_release(h, s, n);
		return ANR_NIL;
	}
	return s;
}

/* Pages aligned by address (by_index 0) or by page index (1), from
 * zone if it has room (spans.c). */
static uint32_t
pages_get(struct anrc_heap *h, size_t n, size_t align_pages, int by_index, unsigned zone,
	  size_t *short_pages)
{
	size_t total = n, lead = 0;
	uint32_t s;

	*short_pages = 0;
	if (n == 0 || n > h->npages)
		return ANR_NIL;
	if (align_pages > 1) {
		if (align_pages - 1 > h->npages - n)
			return ANR_NIL;
		total = n + align_pages - 1;
	}
	s = anrc_span_take(h, total, zone);
	if (s == ANR_NIL)
		return ANR_NIL;
	if (align_pages > 1) {
		if (by_index) {
			lead = (align_pages - (s & (align_pages - 1))) & (align_pages - 1);
		} else {
			uintptr_t a = (uintptr_t)anrc_page_addr(h, s);
			uintptr_t mask = ((uintptr_t)align_pages << h->page_shift) - 1;
			lead = (((a + mask) & ~mask) - a) >> h->page_shift;
		}
		/* Give the unaligned head and the spare tail back unused. */
		if (total - lead - n > 0)
			anrc_span_release(h, (uint32_t)(s + lead + n), total - lead - n);
		if (lead > 0)
			anrc_span_release(h, s, lead);
		s += (uint32_t)lead;
	}
	return charge_or_put_back(h, s, n, short_pages);
}

uint32_t
anrc_pages_get(struct anrc_heap *h, size_t n, size_t align_pages,
	      size_t *short_pages)
{
	return pages_get(h, n, align_pages, 0, ANR_ZONE_RUNS, short_pages);
}

uint32_t
anrc_pages_get_slab(struct anrc_heap *h, size_t n, int grouped, uint32_t *pair,
		    size_t *short_pages)
{
	size_t align = ANR_SLAB_GROUP;
	uint32_t s;

	if (!grouped)
		return pages_get(h, n, 1, 1, ANR_ZONE_SLABS, short_pages);
	while (align < n)
		align <<= 1;
	if (pair == NULL || n != ANR_SLAB_GROUP)
		return pages_get(h, n, align, 1, ANR_ZONE_SLABS, short_pages);
	s = *pair;
	*pair = ANR_NIL;
	if (s != ANR_NIL && anrc_span_take_at(h, s, n) == 0)
		return charge_or_put_back(h, s, n, short_pages); /* beside the last one */
	/* An even group: the odd one beside it is the thread's next. */
	s = pages_get(h, n, 2 * align, 1, ANR_ZONE_SLABS, short_pages);
	if (s != ANR_NIL)
		*pair = s + (uint32_t)n;
	return s;
}

int
anrc_pages_grow(struct anrc_heap *h, uint32_t s, size_t n, size_t extra,
	       size_t *short_pages)
{
	*short_pages = 0;
	if (anrc_span_extend(h, s, n, extra) != 0)
		return -1;
	*short_pages = charge(h, s + n, extra);
	if (*short_pages != 0) {
		anrc_span_release(h, (uint32_t)(s + n), extra);
		return -1;
	}
	return 0;
}

void
anrc_pages_put(struct anrc_heap *h, uint32_t s, size_t n)
{
	h->trim_credit += n;
	h->page_moves++;
	if (h->idle_armed) {
		/* the helper's idle period starts (anrc_returner_wake_and_unlock) */
		h->idle_armed = 0;
		h->idle_kick = 1;
	}
	/* Every page of a live span is resident, so all become dirty. */
	anrc_bm2_set(&h->dirty, s, n);
	h->dirty_pages += n;
	h->used_pages -= n;
	anrc_span_release(h, s, n);
}
