/*
 * slab.c - small objects.
 *
 * Size classes.  A request of 1..ANR_SLAB_MAX bytes is served from the
 * smallest class that holds it:
 *
 *   classes 0..7:    16, 32, ..., 128          (steps of 16 bytes)
 *   classes 8 and up: four per power of two:   160, 192, 224, 256,
 *                    320, 384, 448, 512, ..., 2560, 3072, 3584, 4096
 *
 * i.e. above 128 bytes the range (2^b, 2^(b+1)] is cut into four equal
 * steps of 2^(b-2), so the space lost to rounding is below 25 % (12.5 % on
 * average) and every class size is a multiple of 16.  anrc_size_class() is
 * the only place that maps a size to a class; tests check it for every size.
 *
 * A slab is a span of 1..ANR_SLAB_SPAN_MAX pages cut into objects of one
 * class (for classes up to ANR_SLAB_GROUPED_MAX bytes a multiple of
 * ANR_SLAB_GROUP pages from a page index that is one), with no header: its state is the page map entry of its first page
 * (class, free count, partial-list links), the page map entries of its
 * other pages (distance to the first), and an allocation bitmap in the
 * metadata area, one bit per object, in the bmw words per page of its
 * pages (objects are at least ANR_ALIGN bytes, so the bits fit).  Being
 * aligned, a slab of a small class shares no cache line of page map or
 * bitmaps with another slab.
 * Bits past the last object are set, so they are never handed out.
 * Slabs with free objects are on their class's partial list.  A slab whose
 * objects are all free goes back to the span allocator, except that each
 * class may keep one empty slab (up to ANR_EMPTY_CACHE_PAGES in all), so
 * that a loop allocating and freeing one object does not build and tear
 * down a slab each time.
 */
#include "config.h"

#include "anrcore_internal.h"

#include <string.h>

#define LINEAR_MAX ANR_LINEAR_MAX
#define LINEAR_STEP ANR_LINEAR_STEP
#define LINEAR_CLASSES (LINEAR_MAX / LINEAR_STEP)
#define STEPS_LOG2 ANR_STEPS_LOG2
#define FIRST_LOG_B ANR_FIRST_LOG_B
#define WASTE_DIV 8   /* a slab may lose at most 1/8 of its span to the tail */

size_t
anrc_class_size(unsigned c)
{
	unsigned k, b;

	if (c < LINEAR_CLASSES)
		return (size_t)(c + 1) * LINEAR_STEP;
	k = c - LINEAR_CLASSES;
	b = FIRST_LOG_B + (k >> STEPS_LOG2);
	return (size_t)((1u << STEPS_LOG2) + (k & ((1u << STEPS_LOG2) - 1)) + 1)
	       << (b - STEPS_LOG2);
}

void
anrc_slab_init(struct anrc_heap *h)
{
	for (unsigned c = 0; c < ANR_NCLASSES; c++) {
		struct anrc_class *k = &h->cls[c];
		size_t size = anrc_class_size(c), best = 0, best_waste = SIZE_MAX;

		size_t step = size <= ANR_SLAB_GROUPED_MAX ? ANR_SLAB_GROUP : 1;
		/* The fewest pages that hold ANR_SLAB_MIN_OBJS objects (or the
		 * most pages a slab may have) and lose little to the tail. */
		for (size_t p = step; p <= ANR_SLAB_SPAN_MAX; p += step) {
			size_t span = p * h->page, waste;
			if (span < size * ANR_SLAB_MIN_OBJS && p + step <= ANR_SLAB_SPAN_MAX)
				continue;
			waste = span % size;
			if (waste * WASTE_DIV <= span) {
				best = p;
				break;
			}
			/* compare waste fractions waste/span */
			if (best == 0 || waste * best * h->page < best_waste * span) {
				best = p;
				best_waste = waste;
			}
		}
		k->size = (uint32_t)size;
		k->npages = (uint32_t)best;
		k->nobjs = (uint32_t)(best * h->page / size);
		k->words = (k->nobjs + 63) / 64;
		k->magic = UINT64_MAX / size + 1; /* ceil(2^64 / size), size > 1 */
		h->partial[c] = ANR_NIL;
		h->empty_slab[c] = ANR_NIL;
	}
	for (size_t i = 0; i < sizeof(h->class_of); i++)
		h->class_of[i] = (uint8_t)anrc_size_class(i * ANR_ALIGN);
}

/*
 * The class for a request of size bytes aligned to align (a power of two):
 * objects sit at multiples of the class size from a page boundary, so a
 * class whose size is a multiple of align gives aligned objects.
 */
int
anrc_slab_class_for(const struct anrc_heap *h, size_t size, size_t align)
{
	unsigned c;

	if (size > ANR_SLAB_MAX || align > h->page)
		return -1;
	for (c = anrc_size_class(size); c < ANR_NCLASSES; c++)
		if ((h->cls[c].size & (align - 1)) == 0)
			return (int)c;
	return -1;
}

void
anrc_partial_push(struct anrc_heap *h, unsigned c, uint32_t s)
{
	struct anrc_page *pg = &h->pm[s];

	pg->prev = ANR_NIL;
	pg->next = h->partial[c];
	if (pg->next != ANR_NIL)
		h->pm[pg->next].prev = s;
	h->partial[c] = s;
}

void
anrc_partial_del(struct anrc_heap *h, unsigned c, uint32_t s)
{
	struct anrc_page *pg = &h->pm[s];

	if (pg->prev != ANR_NIL)
		h->pm[pg->prev].next = pg->next;
	else
		h->partial[c] = pg->next;
	if (pg->next != ANR_NIL)
		h->pm[pg->next].prev = pg->prev;
	pg->next = pg->prev = ANR_NIL;
}

/* Take and lay out the pages of a new slab of class c (no list, no counts). */
static uint32_t
slab_build(struct anrc_heap *h, unsigned c, uint32_t *pair, size_t *short_pages)
{
	const struct anrc_class *k = &h->cls[c];
	uint32_t s = anrc_pages_get_slab(h, k->npages, k->size <= ANR_SLAB_GROUPED_MAX, pair,
					 short_pages);
	uint64_t *bits;
	size_t words = k->words;

	if (s == ANR_NIL)
		return ANR_NIL;
	h->pm[s].kind = ANR_PG_SLAB;
	h->pm[s].cls = (uint8_t)c;
	h->pm[s].nfree = (uint16_t)k->nobjs;
	h->pm[s].npages = k->npages;
	for (uint32_t i = 1; i < k->npages; i++) {
		h->pm[s + i].kind = ANR_PG_SLAB_BODY;
		h->pm[s + i].npages = i;
		h->pm[s + i].cls = (uint8_t)c; /* a free reads it from the object's page */
	}
	bits = anrc_slab_bits(h, s);
	memset(bits, 0, words * sizeof(*bits));
	anrc_bits_set(bits, k->nobjs, words * 64 - k->nobjs);
	memset(anrc_slab_rfree(h, s), 0, words * sizeof(*bits));
	anrc_bm2_set(&h->heads, s, 1);
	return s;
}

static uint32_t
slab_new(struct anrc_heap *h, unsigned c, size_t *short_pages)
{
	const struct anrc_class *k = &h->cls[c];
	uint32_t s = slab_build(h, c, NULL, short_pages);

	if (s == ANR_NIL)
		return ANR_NIL;
	h->class_slabs[c]++;
	h->slab_free += (size_t)k->npages << h->page_shift;
	anrc_partial_push(h, c, s);
	return s;
}

uint32_t
anrc_slab_new_owned(struct anrc_heap *h, unsigned c, uint32_t *pair, size_t *short_pages)
{
	return slab_build(h, c, pair, short_pages);
}

void *
anrc_slab_alloc(struct anrc_heap *h, unsigned c, size_t *short_pages)
{
	const struct anrc_class *k = &h->cls[c];
	uint32_t s = h->partial[c];
	uint64_t *bits;

	*short_pages = 0;
	if (s == ANR_NIL) {
		s = slab_new(h, c, short_pages);
		if (s == ANR_NIL)
			return NULL;
	} else if (s == h->empty_slab[c]) {
		h->empty_slab[c] = ANR_NIL; /* the kept empty slab is used again */
		h->empty_pages -= k->npages;
	}
	bits = anrc_slab_bits(h, s);
	{
		unsigned w = anrc_slab_free_word(h, s);
		unsigned b = (unsigned)__builtin_ctzll(~bits[w]);
		size_t idx = (size_t)w * 64 + b;
		bits[w] |= UINT64_C(1) << b;
		if (--h->pm[s].nfree == 0)
			anrc_partial_del(h, c, s);
		h->slab_free -= k->size;
		h->class_live[c]++;
		return anrc_page_addr(h, s) + idx * k->size;
	}
}

unsigned
anrc_slab_free_word(const struct anrc_heap *h, uint32_t s)
{
	const uint64_t *bits = anrc_slab_bits(h, s);
	unsigned w, words = h->cls[h->pm[s].cls].words;

	/* A slab with a free object has a clear bit in one of its words;
	 * the last word is the answer if none before it has one. */
	for (w = 0;; w++) {
		anrc_steps(1);
		if (~bits[w] != 0 || w + 1 >= words)
			return w;
	}
}

void
anrc_slab_release_unlisted(struct anrc_heap *h, uint32_t s)
{
	const struct anrc_class *k = &h->cls[h->pm[s].cls];

	__atomic_store_n(&h->owner[s], 0, __ATOMIC_RELAXED);
	anrc_bm2_clear(&h->heads, s, 1);
	for (uint32_t i = 1; i < k->npages; i++)
		h->pm[s + i] = (struct anrc_page){ 0 };
	anrc_pages_put(h, s, k->npages);
}

/* An empty slab's pages go back to the span allocator. */
static void
slab_release(struct anrc_heap *h, uint32_t s)
{
	unsigned c = h->pm[s].cls;
	const struct anrc_class *k = &h->cls[c];

	anrc_partial_del(h, c, s);
	h->class_slabs[c]--;
	h->slab_free -= (size_t)k->npages << h->page_shift;
	anrc_slab_release_unlisted(h, s);
}

void
anrc_slab_free(struct anrc_heap *h, uint32_t s, size_t idx)
{
	unsigned c = h->pm[s].cls;
	const struct anrc_class *k = &h->cls[c];
	uint64_t *bits = anrc_slab_bits(h, s);

	bits[idx >> 6] &= ~(UINT64_C(1) << (idx & 63));
	h->class_live[c]--;
	h->slab_free += k->size;
	if (h->pm[s].nfree++ == 0)
		anrc_partial_push(h, c, s);
	if (h->pm[s].nfree < k->nobjs)
		return;
	/* Empty: keep one per class, a few pages in all. */
	if (h->empty_slab[c] == ANR_NIL &&
	    h->empty_pages + k->npages <= ANR_EMPTY_CACHE_PAGES) {
		h->empty_slab[c] = s;
		h->empty_pages += k->npages;
		return;
	}
	slab_release(h, s);
}

/* Give the kept empty slabs back (before trimming); returns their bytes. */
size_t
anrc_slab_flush(struct anrc_heap *h)
{
	size_t given = 0;

	for (unsigned c = 0; c < ANR_NCLASSES; c++) {
		uint32_t s = h->empty_slab[c];
		if (s != ANR_NIL) {
			h->empty_slab[c] = ANR_NIL;
			h->empty_pages -= h->cls[c].npages;
			given += (size_t)h->cls[c].npages << h->page_shift;
			slab_release(h, s);
		}
	}
	return given;
}

void
anrc_slab_collect_shared(struct anrc_heap *h, uint32_t s)
{
	uint64_t *rf = anrc_slab_rfree(h, s);
	const struct anrc_class *k = &h->cls[h->pm[s].cls];

	for (unsigned w = 0; w < k->words; w++) {
		uint64_t x;
		if (__atomic_load_n(&rf[w], __ATOMIC_RELAXED) == 0)
			continue;
		x = __atomic_exchange_n(&rf[w], 0, __ATOMIC_ACQ_REL);
		while (x != 0) {
			size_t idx = (size_t)w * 64 + (size_t)__builtin_ctzll(x);
			x &= x - 1;
			/* counted as a remote free by the thread that freed it */
			h->in_use -= k->size;
			__atomic_add_fetch(&h->th_ccount, 1, __ATOMIC_RELAXED);
			__atomic_add_fetch(&h->th_cbytes, k->size, __ATOMIC_RELAXED);
			__atomic_store_n(&h->freed_bytes, h->freed_bytes + k->size,
					 __ATOMIC_RELAXED);
			anrc_slab_free(h, s, idx);
			if (h->pm[s].kind != ANR_PG_SLAB)
				return; /* the slab went back: nothing else was live */
		}
	}
}
