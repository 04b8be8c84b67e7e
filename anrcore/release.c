/*
 * release.c - giving free pages back to the kernel.
 *
 * When the dirty pages (pages.c) pass the high mark they are returned with
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
 * nothing taken back, though at least as many pages were charged since as
 * were given back, halves them again, down to the configured marks.  A
 * trim with fewer charged (frees in a row, the next slice of one large
 * free, one thread freeing while another allocates a little) says nothing
 * either way yet and leaves them.
 * The grown high mark is what spaces the trims out under churn; a trim
 * still goes down to at most ANR_KEEP_GROWN_MAX (or the configured low
 * mark, if larger), so a large free leaves a small amount of free pages
 * resident whatever the marks grew to.
 * A heap that shrinks keeps less: from a trim on, while fewer pages than
 * a quarter of the high mark have been charged since and the marks have
 * not grown (frees in a row, the program giving up what it built, other
 * threads taking a slab now and then), the band is a quarter of the
 * configured one (a trim at a quarter of the high mark, down to a quarter
 * of the low mark).  The pages freed then are not about to be taken
 * again, and what the full band keeps of them is memory the program gave
 * up; charging that quarter, or grown marks, restore the band.  The cost:
 * blocks freed in address order go back in more, smaller madvise calls
 * (the trims come four times as often), the same pages in about the same
 * time.
 * anrc_set_marks() and anrc_trim() start from the configured marks (in
 * their shrinking band until a quarter of the high mark is charged).
 */
#include "config.h"

#include "anrcore_internal.h"
#include "vg.h"

#include "mb_log.h"

#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>

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

	if (end <= start)
		return;
	anrc_steps(1);
	__atomic_add_fetch(&h->meta_madvise_calls, 1, __ATOMIC_RELAXED);
	if (madvise((void *)start, end - start, MADV_DONTNEED) == 0)
		__atomic_add_fetch(&h->meta_madvised, end - start, __ATOMIC_RELAXED);
}

/*
 * At most ANR_META_ADVISE_MAX madvise calls.  The run's head and tail page
 * map entries stay (a free span's).  The range stops at limit (a page
 * index), if that comes first: see release_span_meta.
 */
static void
release_meta(struct anrc_heap *h, size_t lo, size_t n, size_t limit)
{
	size_t end = lo + n, last = lo + n - 1, g0, g1;

	if (end > limit)
		end = last = limit;
	if (end <= lo)
		return;
	g0 = (lo + ANR_BITS_GROUP - 1) / ANR_BITS_GROUP;
	g1 = end / ANR_BITS_GROUP;
	/* the entries after the head, up to the tail or limit */
	if (last > lo + 1)
		advise_inner(h, &h->pm[lo + 1], (last - lo - 1) * sizeof(struct anrc_page));
	/* the groups of slab bitmaps the run covers whole, one page each */
	if (g1 > g0)
		advise_inner(h, anrc_slab_bits(h, (uint32_t)(g0 * ANR_BITS_GROUP)),
			     (g1 - g0) * 2 * ANR_BITS_GROUP * h->bmw * sizeof(uint64_t));
	advise_inner(h, h->owner + lo, end - lo);
}

/*
 * The lowest lo <= hi such that pages lo..hi are all dirty and the run
 * is at most max pages, a word at a time.
 */
static size_t
run_low(const struct anrc_heap *h, size_t hi, size_t max)
{
	size_t lo = hi, floor = hi + 1 > max ? hi + 1 - max : 0;

	/* Free spans on both sides of the zones' boundary are two. */
	if (hi >= h->zone_split && floor < h->zone_split)
		floor = h->zone_split;

	while (lo > floor) {
		size_t k = (lo - 1) >> 6;
		uint64_t zeros = ~*anrc_pb_word(h->dirty.w, k) &
				 anrc_range_mask(0, ((lo - 1) & 63) + 1);
		anrc_steps(1);
		if (zeros != 0) {
			size_t z = (k << 6) + anrc_highest_bit(zeros) + 1;
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
	/* Nothing at or above h->top was ever written: the range stops at
	 * top rounded up to a whole page of every kind of metadata (h->page
	 * entries).  The span around the highest run given back is the last
	 * span, whose metadata is most of the reservation's; it was advised
	 * whole. */
	size_t limit = (h->top + h->page - 1) & ~(h->page - 1);

	if (f != SIZE_MAX && h->pm[f].kind == ANR_PG_FREE && f + h->pm[f].npages > page)
		release_meta(h, f, h->pm[f].npages, limit);
}

/* Shrinking, with the marks as configured (above). */
static int
shrinking(const struct anrc_heap *h)
{
	return h->mark_shift == 0 &&
	       (h->charged_since_trim << h->page_shift) < h->free_high / ANR_SHRINK_DIV;
}

void
anrc_want_release_if_over_mark(struct anrc_heap *h)
{
	size_t mark = shrinking(h) ? h->free_high / ANR_SHRINK_DIV : h->free_high << h->mark_shift;

	if ((h->dirty_pages << h->page_shift) > mark)
		h->trim_wanted = 1;
}

void
anrc_marks_afresh(struct anrc_heap *h)
{
	h->mark_shift = 0;
	h->given_recent = h->refaulted = h->charged_recent = 0;
	h->charged_since_trim = 0;
}

/* A trim begins: see whether the last one was undone and move the marks. */
static void
marks_adapt(struct anrc_heap *h)
{
	size_t given = h->given_recent + h->refaulted;

	/* Fewer pages charged since then than were given back (frees in a
	 * row, the next slice of one large free, one thread freeing while
	 * another allocates a little): no evidence either way yet, the marks
	 * stay and the counts go on. */
	if (given > 0 && h->charged_recent < given && h->refaulted * 2 < given)
		return;
	if (given > 0 && h->refaulted * 2 >= given) {
		if (h->mark_shift < ANR_MARK_SHIFT_MAX)
			h->mark_shift++;
	} else if (h->refaulted == 0 && h->mark_shift > 0) {
		h->mark_shift--;
	}
	h->given_recent = h->refaulted = h->charged_recent = 0;
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

	if (h->trim_idle) {
		keep = 0; /* the helper's idle return (returner.c) */
	} else if (shrinking(h)) {
		marks_adapt(h);
		keep = (h->free_low / ANR_SHRINK_DIV) >> h->page_shift;
	} else {
		marks_adapt(h);
		/* Grown marks delay the next trim; what a trim keeps stays small. */
		keep = h->free_low << h->mark_shift;
		if (h->mark_shift > 0 && keep > ANR_KEEP_GROWN_MAX)
			keep = h->free_low > ANR_KEEP_GROWN_MAX ? h->free_low : ANR_KEEP_GROWN_MAX;
		keep >>= h->page_shift;
	}
	if (h->trim_credit > slice)
		slice = h->trim_credit;
	h->trim_credit = 0;
	h->trim_n = 0;
	h->charged_since_trim = 0;
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
	if (h->trim_n > 0)
		__atomic_store_n(&h->trims, h->trims + 1, __ATOMIC_RELAXED);
}

static int
trim_advise(struct anrc_heap *h, unsigned i)
{
	anrc_steps(1);
	if (madvise(anrc_page_addr(h, h->trim_s[i]),
		    (size_t)h->trim_len[i] << h->page_shift, MADV_DONTNEED) != 0)
		return errno;
	release_meta(h, h->trim_s[i], h->trim_len[i], SIZE_MAX);
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
			anrc_pb_clear(h->resident, s, n);
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

__thread uint64_t anrc_return_rounds __attribute__((tls_model("initial-exec")));

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
		anrc_want_release_if_over_mark(h);
	}
	h->trim_credit = 0; /* the credit is for this call only */
	anrc_unlock_telling(h);
}

void
anrc_release_fork_child(struct anrc_heap *h)
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
anrc_release_down_to(struct anrc_heap *h, size_t keep)
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
		anrc_pb_clear(h->resident, lo, hi - lo + 1);
		h->dirty_pages -= hi - lo + 1;
		h->resident_pages -= hi - lo + 1;
		h->madvised_bytes += (hi - lo + 1) << h->page_shift;
		given += hi - lo + 1;
		pos = lo;
	}
	if (given > 0)
		__atomic_store_n(&h->trims, h->trims + 1, __ATOMIC_RELAXED);
	return given;
}
