/*
 * stats.c - a heap's figures: its own counts and its thread heaps',
 * gathered into struct anrc_stats, and the metadata that is resident.
 */
#include "config.h"

#include "anrcore_internal.h"

#include "mb_log.h"

#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

void
anrc_fill_stats(struct anrc_heap *h, struct anrc_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->in_use = h->in_use;
	st->resident = h->resident_pages << h->page_shift;
	/* with the pages being given back right now (TRIM spans) */
	st->free_resident = (h->dirty_pages + h->inflight_pages) << h->page_shift;
	st->budget = __atomic_load_n(&h->budget, __ATOMIC_RELAXED);
	st->reserved = h->reserve;
	/* what each zone used: not the gap below the runs' zone */
	st->address_used = (h->top <= h->zone_split ? h->top
						    : h->top_slabs + (h->top - h->zone_split))
			   << h->page_shift;
	st->peak_in_use = h->peak_in_use;
	st->slab_holes = h->slab_holes << h->page_shift;
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
	st->in_use += anrc_runs_in_use(h);
	st->metadata = (size_t)(h->data - h->base);
	st->meta_madvise_calls = __atomic_load_n(&h->meta_madvise_calls, __ATOMIC_RELAXED);
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

size_t
anrc_resident(struct anrc_heap *h)
{
	size_t bytes;

	anrc_lock_and_drain(h);
	bytes = h->resident_pages << h->page_shift;
	anrc_unlock_and_return_pages(h);
	return bytes;
}

void
anrc_get_stats(struct anrc_heap *h, struct anrc_stats *st)
{
	anrc_lock_and_drain_all(h);
	anrc_fill_stats(h, st);
	anrc_unlock_and_return_pages(h);
}

size_t
anrc_meta_resident(const struct anrc_heap *h)
{
	unsigned char vec[1024];
	char *p = h->base, *end = h->data - h->page; /* the guard page is no metadata */
	size_t n = 0;

	while (p < end) {
		size_t pages = (size_t)(end - p) >> h->page_shift;
		if (pages > sizeof(vec))
			pages = sizeof(vec);
		if (mincore(p, pages << h->page_shift, vec) != 0)
			return 0;
		for (size_t i = 0; i < pages; i++)
			n += vec[i] & 1;
		p += pages << h->page_shift;
	}
	return n << h->page_shift;
}
