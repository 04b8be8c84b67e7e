/*
 * bitmap.c - bit ranges and the multi-level bitmaps (struct anrc_bm2):
 * every level's word says which words below it are not zero, so a search
 * for the previous set bit looks at two words per level.  The page
 * bitmaps are interleaved (ANR_PB_WAYS, anrcore_internal.h).
 */
#include "config.h"

#include "anrcore_internal.h"

/* The bits of the first word of [start, start + n), resp. of its last. */
static inline uint64_t
head_mask(size_t start)
{
	return ~UINT64_C(0) << (start & 63);
}

static inline uint64_t
tail_mask(size_t start, size_t n)
{
	return ~UINT64_C(0) >> (63 - ((start + n - 1) & 63));
}

/*
 * Bits [start, start + n) of the words w[0], w[stride], w[2 * stride]...:
 * stride 1 for a slab's bitmap, ANR_PB_WAYS for a page bitmap.  A partial
 * word at each end, whole words between.
 */
static inline size_t
count_bits(const uint64_t *w, size_t stride, size_t start, size_t n)
{
	size_t k = start >> 6, last = (start + n - 1) >> 6, c;

	if (n == 0)
		return 0;
	if (k == last)
		return anrc_popcount64(w[k * stride] & head_mask(start) & tail_mask(start, n));
	c = anrc_popcount64(w[k * stride] & head_mask(start));
	while (++k < last)
		c += anrc_popcount64(w[k * stride]);
	return c + anrc_popcount64(w[last * stride] & tail_mask(start, n));
}

static inline void
put_bits(uint64_t *w, size_t stride, size_t start, size_t n, int set)
{
	size_t k = start >> 6, last = (start + n - 1) >> 6;
	uint64_t first = head_mask(start), end = tail_mask(start, n);

	if (n == 0)
		return;
	if (k == last)
		first &= end;
	if (set)
		w[k * stride] |= first;
	else
		w[k * stride] &= ~first;
	if (k == last)
		return;
	while (++k < last)
		w[k * stride] = set ? ~UINT64_C(0) : 0;
	if (set)
		w[last * stride] |= end;
	else
		w[last * stride] &= ~end;
}

size_t
anrc_bits_count(const uint64_t *w, size_t start, size_t n)
{
	return count_bits(w, 1, start, n);
}

void
anrc_bits_set(uint64_t *w, size_t start, size_t n)
{
	put_bits(w, 1, start, n, 1);
}

void
anrc_bits_clear(uint64_t *w, size_t start, size_t n)
{
	put_bits(w, 1, start, n, 0);
}

size_t
anrc_pb_count(const uint64_t *w, size_t start, size_t n)
{
	return count_bits(w, ANR_PB_WAYS, start, n);
}

void
anrc_pb_set(uint64_t *w, size_t start, size_t n)
{
	put_bits(w, ANR_PB_WAYS, start, n, 1);
}

void
anrc_pb_clear(uint64_t *w, size_t start, size_t n)
{
	put_bits(w, ANR_PB_WAYS, start, n, 0);
}

/* The first and the last set bit of [start, start + n) of a page bitmap;
 * 0 if none (then *first and *last are not set). */
int
anrc_pb_bounds(const uint64_t *w, size_t start, size_t n, size_t *first, size_t *last)
{
	size_t k = start >> 6, end = (start + n - 1) >> 6, lo = SIZE_MAX, hi = 0;

	if (n == 0)
		return 0;
	for (size_t j = k; j <= end; j++) {
		uint64_t v = w[j * ANR_PB_WAYS];
		if (j == k)
			v &= head_mask(start);
		if (j == end)
			v &= tail_mask(start, n);
		if (v == 0)
			continue;
		if (lo == SIZE_MAX)
			lo = (j << 6) + (size_t)__builtin_ctzll(v);
		hi = (j << 6) + anrc_highest_bit(v);
	}
	if (lo == SIZE_MAX)
		return 0;
	*first = lo;
	*last = hi;
	return 1;
}

unsigned
anrc_bm2_shape(size_t nbits, size_t nw[ANR_BM_LEVELS])
{
	size_t n = (nbits + 63) / 64;
	unsigned l = 0;

	while (l < ANR_BM_LEVELS) {
		nw[l++] = n;
		if (n == 1)
			break;
		n = (n + 63) / 64;
	}
	return l;
}

void
anrc_bm2_place(struct anrc_bm2 *b, uint64_t *const area[ANR_BM_LEVELS], unsigned way,
	       size_t nbits)
{
	b->nlevels = anrc_bm2_shape(nbits, b->nw);
	for (unsigned l = 0; l < b->nlevels; l++)
		b->lv[l] = area[l] + way;
	b->w = b->lv[0];
}

/* Words first_word..last_word of level 0 changed: fix the levels above,
 * up to the first level whose words stay as they were (the levels above
 * it summarise the same words). */
void
anrc_bm2_sync(struct anrc_bm2 *b, size_t first_word, size_t last_word)
{
	for (unsigned l = 1; l < b->nlevels; l++) {
		uint64_t *below = b->lv[l - 1], *up = b->lv[l];
		int changed = 0;
		for (size_t k = first_word; k <= last_word; k++) {
			uint64_t *word = anrc_pb_word(up, k >> 6);
			uint64_t bit = UINT64_C(1) << (k & 63), old = *word;
			uint64_t now = *anrc_pb_word(below, k) != 0 ? old | bit : old & ~bit;
			if (now != old) {
				*word = now;
				changed = 1;
			}
		}
		if (!changed)
			break;
		first_word >>= 6;
		last_word >>= 6;
	}
}

void
anrc_bm2_set(struct anrc_bm2 *b, size_t start, size_t n)
{
	if (n == 0)
		return;
	anrc_pb_set(b->w, start, n);
	anrc_bm2_sync(b, start >> 6, (start + n - 1) >> 6);
}

void
anrc_bm2_clear(struct anrc_bm2 *b, size_t start, size_t n)
{
	if (n == 0)
		return;
	anrc_pb_clear(b->w, start, n);
	anrc_bm2_sync(b, start >> 6, (start + n - 1) >> 6);
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
			v = *anrc_pb_word(b->lv[l], k);
		} else {
			v = *anrc_pb_word(b->lv[l], k) & anrc_range_mask(0, (pos & 63) + 1);
		}
		anrc_steps(1);
		if (v != 0) {
			pos = (k << 6) + anrc_highest_bit(v);
			while (l-- > 0) {
				anrc_steps(1);
				pos = (pos << 6) + anrc_highest_bit(*anrc_pb_word(b->lv[l], pos));
			}
			return pos;
		}
		if (k == 0)
			return SIZE_MAX;
		pos = k - 1; /* the words below k, one level up */
	}
	return SIZE_MAX;
}
