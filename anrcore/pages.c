/*
 * pages.c - which data pages may be resident, the budget, and giving free
 * pages back to the kernel.
 *
 * Two page bitmaps live in the metadata area:
 *   resident: the page may be resident (it was handed out since it was
 *             last given back).  Every page of a live span is resident.
 *   dirty:    resident and inside a free span, i.e. returnable.
 * so resident = live pages + dirty pages, and the budget bounds resident.
 *
 * A span handed out turns its dirty pages live and charges its other
 * pages to the budget; a span given back turns all its pages dirty.  When
 * the dirty pages pass the high mark they are returned with
 * madvise(MADV_DONTNEED), highest address first (the allocator hands out
 * low addresses first, so high free pages are the least likely to be
 * needed again), down to the low mark.  That madvise runs after the heap
 * lock is released, by the thread that freed: the chosen runs are first
 * taken out of the free spans, so no other thread waits for the kernel
 * and none can be handed pages that are being dropped.  Only a shortage
 * of budget, an explicit trim and a lowered budget give pages back with
 * the lock held, because the caller needs them gone before going on.
 *
 * Hysteresis that does not thrash: when at least half of the pages given
 * back since the last trim have been charged again by the time the next
 * trim starts, giving back is being undone, and both marks double (up to
 * 2^ANR_MARK_SHIFT_MAX times the configured ones); a trim that finds
 * nothing taken back halves them again, down to the configured marks.
 * anrc_set_marks() and anrc_trim() start from the configured marks.
 */
#include "config.h"

#include "anrcore_internal.h"
#include "vg.h"

#include "mb_log.h"

#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>

#define WORD_BITS 64

__thread uint64_t anrc_step_count __attribute__((tls_model("initial-exec")));
__thread uint64_t anrc_return_rounds __attribute__((tls_model("initial-exec")));

static uint64_t
range_mask(size_t lo, size_t hi)
{
	/* bits lo..hi-1 of one word, 0 <= lo < hi <= 64 */
	uint64_t m = hi == WORD_BITS ? ~UINT64_C(0) : (UINT64_C(1) << hi) - 1;
	return m & ~((UINT64_C(1) << lo) - 1);
}

/* Bits set in v, without a call into libgcc on CPUs built without popcnt. */
static unsigned
popcount64(uint64_t v)
{
#ifdef __POPCNT__
	return (unsigned)__builtin_popcountll(v);
#else
	v = v - ((v >> 1) & UINT64_C(0x5555555555555555));
	v = (v & UINT64_C(0x3333333333333333)) + ((v >> 2) & UINT64_C(0x3333333333333333));
	v = (v + (v >> 4)) & UINT64_C(0x0f0f0f0f0f0f0f0f);
	return (unsigned)((v * UINT64_C(0x0101010101010101)) >> 56);
#endif
}

size_t
anrc_bits_count(const uint64_t *w, size_t start, size_t n)
{
	size_t c = 0, i = start, end = start + n;

	while (i < end) {
		size_t lo = i & 63, hi = end - (i & ~(size_t)63);
		if (hi > WORD_BITS)
			hi = WORD_BITS;
		c += popcount64(w[i >> 6] & range_mask(lo, hi));
		i = (i & ~(size_t)63) + hi;
	}
	return c;
}

void
anrc_bits_set(uint64_t *w, size_t start, size_t n)
{
	size_t i = start, end = start + n;

	while (i < end) {
		size_t lo = i & 63, hi = end - (i & ~(size_t)63);
		if (hi > WORD_BITS)
			hi = WORD_BITS;
		w[i >> 6] |= range_mask(lo, hi);
		i = (i & ~(size_t)63) + hi;
	}
}

void
anrc_bits_clear(uint64_t *w, size_t start, size_t n)
{
	size_t i = start, end = start + n;

	while (i < end) {
		size_t lo = i & 63, hi = end - (i & ~(size_t)63);
		if (hi > WORD_BITS)
			hi = WORD_BITS;
		w[i >> 6] &= ~range_mask(lo, hi);
		i = (i & ~(size_t)63) + hi;
	}
}

size_t
anrc_bm2_words(size_t nbits)
{
	size_t total = 0, n = (nbits + 63) / 64;

	for (unsigned l = 0; l < ANR_BM_LEVELS; l++) {
		total += n;
		if (n == 1)
			break;
		n = (n + 63) / 64;
	}
	return total;
}

void
anrc_bm2_place(struct anrc_bm2 *b, uint64_t *mem, size_t nbits)
{
	size_t n = (nbits + 63) / 64;

	b->nlevels = 0;
	for (unsigned l = 0; l < ANR_BM_LEVELS; l++) {
		b->lv[l] = mem;
		b->nw[l] = n;
		b->nlevels++;
		mem += n;
		if (n == 1)
			break;
		n = (n + 63) / 64;
	}
	b->w = b->lv[0];
	b->sum = b->nlevels > 1 ? b->lv[1] : b->lv[0];
	b->nwords = b->nw[0];
}

/* Words first_word..last_word of level 0 changed: fix the levels above. */
static void
bm2_sync(struct anrc_bm2 *b, size_t first_word, size_t last_word)
{
	for (unsigned l = 1; l < b->nlevels; l++) {
		uint64_t *below = b->lv[l - 1], *up = b->lv[l];
		for (size_t k = first_word; k <= last_word; k++) {
			uint64_t bit = UINT64_C(1) << (k & 63);
			if (below[k] != 0)
				up[k >> 6] |= bit;
			else
				up[k >> 6] &= ~bit;
		}
		first_word >>= 6;
		last_word >>= 6;
	}
}

void
anrc_bm2_set(struct anrc_bm2 *b, size_t start, size_t n)
{
	if (n == 0)
		return;
	anrc_bits_set(b->w, start, n);
	bm2_sync(b, start >> 6, (start + n - 1) >> 6);
}

void
anrc_bm2_clear(struct anrc_bm2 *b, size_t start, size_t n)
{
	if (n == 0)
		return;
	anrc_bits_clear(b->w, start, n);
	bm2_sync(b, start >> 6, (start + n - 1) >> 6);
}

static size_t
highest_bit(uint64_t v)
{
	return (size_t)(63 - __builtin_clzll(v));
}

/*
 * The highest set bit at or below i: at each level look at the word
 * holding the position, masked; if it is empty go up a level to find the
 * nearest non-empty word below, then come down one word per level.  At
 * most two words per level: ANR_BM_STEPS_MAX in all.
 */
size_t
anrc_bm2_prev(const struct anrc_bm2 *b, size_t i)
{
	size_t pos = i;

	for (unsigned l = 0; l < b->nlevels; l++) {
		size_t k = pos >> 6;
		uint64_t v;

		if (k >= b->nw[l]) {
			k = b->nw[l] - 1;
			v = b->lv[l][k];
		} else {
			v = b->lv[l][k] & range_mask(0, (pos & 63) + 1);
		}
		anrc_steps(1);
		if (v != 0) {
			pos = (k << 6) + highest_bit(v);
			while (l-- > 0) {
				anrc_steps(1);
				pos = (pos << 6) + highest_bit(b->lv[l][pos]);
			}
			return pos;
		}
		if (k == 0)
			return SIZE_MAX;
		pos = k - 1; /* the words below k, one level up */
	}
	return SIZE_MAX;
}

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
		uint64_t m;
		if (hi > WORD_BITS)
			hi = WORD_BITS;
		m = range_mask(lo, hi);
		h->dirty.w[i >> 6] = (h->dirty.w[i >> 6] & ~m) | (h->resident[i >> 6] & m);
		i = (i & ~(size_t)63) + hi;
	}
	bm2_sync(&h->dirty, s >> 6, (end - 1) >> 6);
}

/*
 * Charge pages [s, s+n) of a span being handed out.  Returns 0, or the
 * number of pages the budget lacks (nothing changed then).
 */
static size_t
charge(struct anrc_heap *h, size_t s, size_t n)
{
	size_t had = anrc_bits_count(h->resident, s, n);
	size_t fresh = n - had, limit = budget_pages(h);

	/* This span's resident pages stop being returnable. */
	anrc_bm2_clear(&h->dirty, s, n);
	h->dirty_pages -= had;
	if (h->resident_pages + fresh > limit) {
		/* Returning other free pages costs nothing but a fault later. */
		size_t need = h->resident_pages + fresh - limit;
		anrc_pages_trim(h, h->dirty_pages > need ? h->dirty_pages - need : 0);
		if (h->resident_pages + fresh > limit) {
			dirty_from_resident(h, s, n);
			h->dirty_pages += had;
			return h->resident_pages + fresh - limit;
		}
	}
	if (fresh > 0 && h->given_recent > 0) {
		size_t r = fresh < h->given_recent ? fresh : h->given_recent;
		h->given_recent -= r;
		h->refaulted += r;
	}
	anrc_bits_set(h->resident, s, n);
	h->last_had = had;
	h->resident_pages += fresh;
	h->used_pages += n;
	if (s + n > h->top) {
		/* Pages never used before: valgrind starts them unaddressable,
		 * so slack behind a block is caught too. */
		ANR_VG_NOACCESS(h, anrc_page_addr(h, h->top), (s + n - h->top) << h->page_shift);
		h->top = s + n;
	}
	note_resident(h);
	return 0;
}

uint32_t
anrc_pages_get(struct anrc_heap *h, size_t n, size_t align_pages,
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
	s = anrc_span_take(h, total);
	if (s == ANR_NIL)
		return ANR_NIL;
	if (align_pages > 1) {
		uintptr_t a = (uintptr_t)anrc_page_addr(h, s);
		uintptr_t mask = ((uintptr_t)align_pages << h->page_shift) - 1;
		lead = (((a + mask) & ~mask) - a) >> h->page_shift;
		/* Give the unaligned head and the spare tail back unused. */
		if (total - lead - n > 0)
			anrc_span_release(h, (uint32_t)(s + lead + n), total - lead - n);
		if (lead > 0)
			anrc_span_release(h, s, lead);
		s += (uint32_t)lead;
	}
	*short_pages = charge(h, s, n);
	if (*short_pages != 0) {
		anrc_span_release(h, s, n);
		return ANR_NIL;
	}
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
	/* Every page of a live span is resident, so all become dirty. */
	anrc_bm2_set(&h->dirty, s, n);
	h->dirty_pages += n;
	h->used_pages -= n;
	anrc_span_release(h, s, n);
}

/*
 * The metadata of free pages is dead too: the page map entries inside a
 * free run are NONE (zero) and its slab bitmaps are unused, so the whole
 * metadata pages that cover only such entries go back with the run.  They
 * read as zero when touched again, which is what those entries hold.
 */
static void
advise_inner(struct anrc_heap *h, void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr, mask = h->page - 1;
	uintptr_t start = (a + mask) & ~mask, end = (a + len) & ~mask;

	if (end > start && madvise((void *)start, end - start, MADV_DONTNEED) == 0)
		__atomic_add_fetch(&h->meta_madvised, end - start, __ATOMIC_RELAXED);
}

static void
release_meta(struct anrc_heap *h, size_t lo, size_t n)
{
	if (n > 2)
		advise_inner(h, &h->pm[lo + 1], (n - 2) * sizeof(struct anrc_page));
	advise_inner(h, anrc_slab_bits(h, (uint32_t)lo), n * h->bmw * sizeof(uint64_t));
	advise_inner(h, h->rfree + (size_t)lo * h->bmw, n * h->bmw * sizeof(uint64_t));
	advise_inner(h, h->owner + lo, n);
}

/*
 * The lowest lo <= hi such that pages lo..hi are all dirty and the run
 * is at most max pages, a word at a time.
 */
static size_t
run_low(const struct anrc_heap *h, size_t hi, size_t max)
{
	size_t lo = hi, floor = hi + 1 > max ? hi + 1 - max : 0;

	while (lo > floor) {
		size_t k = (lo - 1) >> 6;
		uint64_t zeros = ~h->dirty.w[k] & range_mask(0, ((lo - 1) & 63) + 1);
		anrc_steps(1);
		if (zeros != 0) {
			size_t z = (k << 6) + highest_bit(zeros) + 1;
			return z > floor ? z : floor;
		}
		lo = k << 6;
	}
	return floor;
}

/*
 * The metadata of a whole free span goes back, not only that of the run
 * just returned: after many small blocks spread over a large range are
 * freed, the page map entries inside the merged free span are all NONE,
 * but the metadata pages they sit on were made resident by the blocks'
 * head and tail entries.  Locked (others may carve the span otherwise).
 */
static void
release_span_meta(struct anrc_heap *h, size_t page)
{
	size_t f = anrc_bm2_prev(&h->fheads, page);

	if (f != SIZE_MAX && h->pm[f].kind == ANR_PG_FREE && f + h->pm[f].npages > page) {
		anrc_steps(1);
		release_meta(h, f, h->pm[f].npages);
	}
}

void
anrc_pages_settle(struct anrc_heap *h)
{
	if ((h->dirty_pages << h->page_shift) > (h->free_high << h->mark_shift))
		h->trim_wanted = 1;
}

/* A trim begins: see whether the last one was undone and move the marks. */
static void
marks_adapt(struct anrc_heap *h)
{
	size_t given = h->given_recent + h->refaulted;

	if (given > 0 && h->refaulted * 2 >= given) {
		if (h->mark_shift < ANR_MARK_SHIFT_MAX)
			h->mark_shift++;
	} else if (h->refaulted == 0 && h->mark_shift > 0) {
		h->mark_shift--;
	}
	h->given_recent = h->refaulted = 0;
}

/*
 * Choose the runs of dirty pages to give back, highest first, and take
 * them out of the free spans (as TRIM spans) so that nobody can be handed
 * them while madvise runs without the lock.
 */
static void
trim_pick(struct anrc_heap *h)
{
	size_t keep, pos = h->top;

	size_t taken = 0, slice = ANR_TRIM_SLICE_PAGES;

	marks_adapt(h);
	keep = (h->free_low << h->mark_shift) >> h->page_shift;
	if (h->trim_credit > slice)
		slice = h->trim_credit;
	h->trim_credit = 0;
	h->trim_n = 0;
	while (h->dirty_pages > keep && h->trim_n < ANR_TRIM_BATCH && pos > 0 &&
	       taken < slice) {
		size_t hi = anrc_bm2_prev(&h->dirty, pos - 1), lo, n;
		size_t want = h->dirty_pages - keep;

		if (hi == SIZE_MAX)
			break;
		if (want > slice - taken)
			want = slice - taken;
		lo = run_low(h, hi, want);
		n = hi - lo + 1;
		taken += n;
		anrc_span_carve(h, (uint32_t)lo, n);
		h->pm[lo].kind = ANR_PG_TRIM;
		h->pm[lo].npages = (uint32_t)n;
		anrc_bm2_clear(&h->dirty, lo, n);
		h->dirty_pages -= n;
		h->inflight_pages += n;
		h->trim_s[h->trim_n] = (uint32_t)lo;
		h->trim_len[h->trim_n] = (uint32_t)n;
		h->trim_n++;
		pos = lo;
	}
}

static int
trim_advise(struct anrc_heap *h, unsigned i)
{
	anrc_steps(1);
	if (madvise(anrc_page_addr(h, h->trim_s[i]),
		    (size_t)h->trim_len[i] << h->page_shift, MADV_DONTNEED) != 0)
		return errno;
	release_meta(h, h->trim_s[i], h->trim_len[i]);
	return 0;
}

/* Put the runs back as free spans, resident or not as madvise decided. */
static void
trim_finish(struct anrc_heap *h, const int *err)
{
	for (unsigned i = 0; i < h->trim_n; i++) {
		uint32_t s = h->trim_s[i];
		size_t n = h->trim_len[i];

		h->madvise_calls++;
		if (err[i] == 0) {
			anrc_bits_clear(h->resident, s, n);
			h->resident_pages -= n;
			h->given_recent += n;
			h->madvised_bytes += n << h->page_shift;
		} else {
			if (h->madvise_errors++ == 0)
				mb_log(MB_LOG_ERR, "%s: madvise: error %d; keeping free pages",
				       h->name, err[i]);
			anrc_bm2_set(&h->dirty, s, n);
			h->dirty_pages += n;
		}
		h->inflight_pages -= n;
		anrc_span_release(h, s, n);
		release_span_meta(h, s);
	}
	h->trim_n = 0;
}

void
anrc_return_pages_and_unlock(struct anrc_heap *h)
{
	if (anrc_returner_wake_and_unlock(h))
		return;
	anrc_return_pages_and_unlock_here(h);
}

void
anrc_return_pages_and_unlock_here(struct anrc_heap *h)
{
	int err[ANR_TRIM_BATCH];

	for (unsigned round = 0; round < ANR_TRIM_ROUNDS && h->trim_wanted &&
	     !h->trimming; round++) {
		h->trim_wanted = 0;
		trim_pick(h);
		if (h->trim_n == 0)
			break;
		anrc_return_rounds++;
		/* The slow part runs unlocked: other threads allocate and free
		 * meanwhile; the runs are out of everybody's reach. */
		h->trimming = 1;
		pthread_mutex_unlock(&h->lock);
		for (unsigned i = 0; i < h->trim_n; i++)
			err[i] = trim_advise(h, i);
		pthread_mutex_lock(&h->lock);
		trim_finish(h, err);
		h->trimming = 0;
		anrc_pages_settle(h);
	}
	h->trim_credit = 0; /* the credit is for this call only */
	pthread_mutex_unlock(&h->lock);
}

void
anrc_pages_fork_child(struct anrc_heap *h)
{
	int err[ANR_TRIM_BATCH];

	if (!h->trimming)
		return;
	for (unsigned i = 0; i < h->trim_n; i++)
		err[i] = trim_advise(h, i);
	trim_finish(h, err);
	h->trimming = 0;
}

size_t
anrc_pages_trim(struct anrc_heap *h, size_t keep)
{
	size_t given = 0;
	size_t pos = h->top;

	while (h->dirty_pages > keep && pos > 0) {
		size_t hi = anrc_bm2_prev(&h->dirty, pos - 1);
		size_t lo, want = h->dirty_pages - keep;

		if (hi == SIZE_MAX)
			break;
		/* Extend the run downwards while pages stay dirty. */
		lo = run_low(h, hi, want);
		h->madvise_calls++;
		anrc_steps(1);
		if (madvise(anrc_page_addr(h, lo), (hi - lo + 1) << h->page_shift,
			    MADV_DONTNEED) != 0) {
			if (h->madvise_errors++ == 0)
				mb_log(MB_LOG_ERR, "%s: madvise: error %d; keeping free pages",
				       h->name, errno);
			break;
		}
		release_span_meta(h, lo);
		anrc_bm2_clear(&h->dirty, lo, hi - lo + 1);
		anrc_bits_clear(h->resident, lo, hi - lo + 1);
		h->dirty_pages -= hi - lo + 1;
		h->resident_pages -= hi - lo + 1;
		h->madvised_bytes += (hi - lo + 1) << h->page_shift;
		given += hi - lo + 1;
		pos = lo;
	}
	return given;
}
