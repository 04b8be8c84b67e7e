/*
 * walk.c - the live blocks of a heap: walking them all, and finding the
 * block around an address.
 */
#include "config.h"

#include "anrcore_internal.h"

#include "mb_log.h"

#include <pthread.h>
#include <string.h>

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
	void *block = NULL;
	size_t off, i = anrc_data_page(h, p, &off), hd;

	if (i >= h->npages)
		return NULL;
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
			size_t idx = anrc_slab_index(k, off - ((size_t)hd << h->page_shift));
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
