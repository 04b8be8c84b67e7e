/*
 * bitmap.c - bit ranges and the multi-level bitmaps (struct anrc_bm2):
 * every level's word says which words below it are not zero, so a search
 * for the previous set bit looks at two words per level.
 */
#include "config.h"

#include "anrcore_internal.h"

size_t
anrc_bits_count(const uint64_t *w, size_t start, size_t n)
{
	size_t c = 0, i = start, end = start + n;

	while (i < end) {
		size_t lo = i & 63, hi = end - (i & ~(size_t)63);
		if (hi > 64)
			hi = 64;
		c += anrc_popcount64(w[i >> 6] & anrc_range_mask(lo, hi));
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
		if (hi > 64)
			hi = 64;
		w[i >> 6] |= anrc_range_mask(lo, hi);
		i = (i & ~(size_t)63) + hi;
	}
}

void
anrc_bits_clear(uint64_t *w, size_t start, size_t n)
{
	size_t i = start, end = start + n;

	while (i < end) {
		size_t lo = i & 63, hi = end - (i & ~(size_t)63);
		if (hi > 64)
			hi = 64;
		w[i >> 6] &= ~anrc_range_mask(lo, hi);
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
			uint64_t bit = UINT64_C(1) << (k & 63), old = up[k >> 6];
			uint64_t now = below[k] != 0 ? old | bit : old & ~bit;
			if (now != old) {
				up[k >> 6] = now;
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
	anrc_bits_set(b->w, start, n);
	anrc_bm2_sync(b, start >> 6, (start + n - 1) >> 6);
}

void
anrc_bm2_clear(struct anrc_bm2 *b, size_t start, size_t n)
{
	if (n == 0)
		return;
	anrc_bits_clear(b->w, start, n);
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
			v = b->lv[l][k];
		} else {
			v = b->lv[l][k] & anrc_range_mask(0, (pos & 63) + 1);
		}
		anrc_steps(1);
		if (v != 0) {
			pos = (k << 6) + anrc_highest_bit(v);
			while (l-- > 0) {
				anrc_steps(1);
				pos = (pos << 6) + anrc_highest_bit(b->lv[l][pos]);
			}
			return pos;
		}
		if (k == 0)
			return SIZE_MAX;
		pos = k - 1; /* the words below k, one level up */
	}
	return SIZE_MAX;
}
