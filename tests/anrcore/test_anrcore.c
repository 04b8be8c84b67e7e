/*
 * Unit tests of the allocator core: size classes, a random workload
 * against a shadow model, page return and hysteresis, budget and hook,
 * bad frees, deferred frees, threads and fork, walking and lookup.
 */
#include "config.h"

#include "anrcore.h"
#include "anrcore_internal.h"
#include "theap_fast.h"
#include "mb_log.h"

#include "fastcheck.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_MEMCHECK_H
#include <valgrind/memcheck.h>
#define UNDER_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#else
#define UNDER_VALGRIND() 0
#endif

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)
/* Valgrind shadows a whole mapping when it is made and unmade, which
 * costs seconds per GiB: heaps under valgrind reserve less. */
#define TEST_RESERVE (UNDER_VALGRIND() ? 192 * MiB : 4 * GiB)

/* Iteration counts are cut down under valgrind, which is ~50x slower. */
static unsigned
scaled(unsigned n)
{
	return UNDER_VALGRIND() ? n / 20 + 1 : n;
}

static struct anrc_heap *
heap_with(size_t budget, enum anrc_bad_free_action bad)
{
	struct anrc_config c = {
		.reserve = TEST_RESERVE,
		.budget = budget,
		.bad_free = bad,
		.valgrind = 1,
		.name = "test",
	};
	struct anrc_heap *h = anrc_create(&c);
	ck_assert_ptr_nonnull(h);
	return h;
}

static struct anrc_heap *
heap_plain(void)
{
	return heap_with(0, ANR_BAD_FREE_ABORT);
}

static void
stats(struct anrc_heap *h, struct anrc_stats *st)
{
	anrc_get_stats(h, st);
	ck_assert_uint_eq(st->resident, st->in_use + st->slab_free + st->free_resident);
}

static uint64_t rng_state = 88172645463325252ull;

static uint64_t
rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* ---- size classes ---- */

START_TEST(size_class_mapping)
{
	unsigned prev = 0;

	ck_assert_uint_eq(anrc_size_class(0), 0);
	ck_assert_uint_eq(anrc_class_size(0), 16);
	for (size_t s = 1; s <= ANR_SLAB_MAX; s++) {
		unsigned c = anrc_size_class(s);
		size_t cs = anrc_class_size(c);
		ck_assert_uint_lt(c, ANR_NCLASSES);
		ck_assert_uint_ge(cs, s);
		ck_assert_uint_eq(cs % ANR_ALIGN, 0);
		/* smallest class that holds s */
		if (c > 0)
			ck_assert_uint_lt(anrc_class_size(c - 1), s);
		ck_assert_uint_ge(c, prev);
		ck_assert_uint_le(c, prev + 1);
		/* rounding loses < 25 % above 128 bytes, < 16 bytes below */
		if (s > 128)
			ck_assert_uint_lt((cs - s) * 4, cs);
		else
			ck_assert_uint_lt(cs - s, 16);
		prev = c;
	}
	ck_assert_uint_eq(anrc_size_class(ANR_SLAB_MAX), ANR_NCLASSES - 1);
	ck_assert_uint_eq(anrc_class_size(ANR_NCLASSES - 1), ANR_SLAB_MAX);
	for (unsigned c = 0; c < ANR_NCLASSES; c++)
		ck_assert_uint_eq(anrc_size_class(anrc_class_size(c)), c);
}
END_TEST

START_TEST(size_class_table)
{
	/* The fast paths' class table gives the computed class of every size. */
	struct anrc_heap *h = heap_plain();

	for (size_t s = 0; s <= ANR_SLAB_MAX; s++)
		ck_assert_uint_eq(h->class_of[(s + ANR_ALIGN - 1) / ANR_ALIGN], anrc_size_class(s));
	anrc_destroy(h);
}
END_TEST

START_TEST(slab_index_exact)
{
	/* The division-free object index and object-start test, for every
	 * offset of every slab. */
	struct anrc_heap *h = heap_plain();

	for (unsigned c = 0; c < ANR_NCLASSES; c++) {
		const struct anrc_class *k = &h->cls[c];
		size_t span = (size_t)k->npages * h->page;
		ck_assert_uint_ge(k->nobjs, 1);
		ck_assert_uint_le((size_t)k->nobjs * k->size, span);
		/* at most 1/8 of a slab is lost, or one object fits per slab */
		ck_assert(k->nobjs == 1 || (span - (size_t)k->nobjs * k->size) * 8 <= span);
		/* ANR_SLAB_MIN_OBJS objects at least, unless the slab has the
		 * most pages a slab may have (4 KiB pages: every class) */
		ck_assert(k->nobjs >= ANR_SLAB_MIN_OBJS || k->npages == ANR_SLAB_SPAN_MAX);
		if (h->page == 4096)
			ck_assert_uint_ge(k->nobjs, ANR_SLAB_MIN_OBJS);
		for (size_t o = 0; o < span; o++) {
			size_t idx = SIZE_MAX;
			ck_assert_uint_eq(anrc_slab_index(k, o), o / k->size);
			ck_assert_int_eq(anrc_slab_start(k->magic, o, &idx), o % k->size == 0);
			ck_assert_uint_eq(idx, o / k->size);
		}
	}
	anrc_destroy(h);
}
END_TEST

/* Every summary bit of b says whether the word below it is not zero. */
static int
bm2_levels_right(const struct anrc_bm2 *b)
{
	for (unsigned l = 1; l < b->nlevels; l++)
		for (size_t k = 0; k < b->nw[l - 1]; k++)
			if (anrc_pb_bit(b->lv[l], k) != (*anrc_pb_word(b->lv[l - 1], k) != 0))
				return 0;
	return 1;
}

/*
 * A multi-level bitmap against a plain array of bits: random ranges set
 * and cleared (the summary levels above a changed word are brought up to
 * date only as far as they change), every level checked after each, and
 * the highest set bit at or below random positions compared with a scan.
 * A second bitmap interleaved with it (as the heap's page bitmaps are)
 * takes the opposite of every change: neither may reach the other's words.
 */
START_TEST(bm2_levels_follow)
{
	enum { NBITS = 300000, OPS = 3000 };
	size_t nw[ANR_BM_LEVELS];
	unsigned levels = anrc_bm2_shape(NBITS, nw);
	uint64_t *area[ANR_BM_LEVELS] = { NULL };
	unsigned char *plain = calloc(NBITS, 1);
	struct anrc_bm2 b, c;
	uint64_t x = 2463534242ull;

	ck_assert_uint_ge(levels, 3);
	for (unsigned l = 0; l < levels; l++) {
		area[l] = calloc(ANR_PB_WAYS * nw[l], sizeof(uint64_t));
		ck_assert_ptr_nonnull(area[l]);
	}
	ck_assert_ptr_nonnull(plain);
	anrc_bm2_place(&b, area, ANR_PB_DIRTY, NBITS);
	anrc_bm2_place(&c, area, ANR_PB_HEADS, NBITS);
	ck_assert_uint_eq(b.nlevels, levels);
	anrc_bm2_set(&c, 0, NBITS);
	for (unsigned op = 0; op < scaled(OPS); op++) {
		size_t start, n;
		int set;
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		start = (size_t)(x % NBITS);
		/* short ranges mostly, some across many words */
		n = 1 + (size_t)((x >> 24) % ((x >> 40) % 8 == 0 ? 5000 : 70));
		if (start + n > NBITS)
			n = NBITS - start;
		/* more clears than sets once a third is set, so words empty again */
		set = (x >> 48) % 3 != 0 && op < scaled(OPS) / 2 ? 1 : (x >> 50) % 4 == 0;
		if (set) {
			anrc_bm2_set(&b, start, n);
			anrc_bm2_clear(&c, start, n);
		} else {
			anrc_bm2_clear(&b, start, n);
			anrc_bm2_set(&c, start, n);
		}
		memset(plain + start, set, n);
		ck_assert_msg(bm2_levels_right(&b), "levels wrong after op %u", op);
		ck_assert_msg(bm2_levels_right(&c), "levels of the second wrong after op %u", op);
		for (int q = 0; q < 4; q++) {
			size_t i = (size_t)((x >> (q * 8)) * 2654435761u % NBITS), want = SIZE_MAX;
			for (size_t j = i + 1; j-- > 0;)
				if (plain[j]) {
					want = j;
					break;
				}
			ck_assert_uint_eq(anrc_bm2_prev(&b, i), want);
		}
	}
	for (size_t i = 0; i < NBITS; i++) {
		ck_assert_int_eq(anrc_pb_bit(b.w, i), plain[i]);
		ck_assert_int_eq(anrc_pb_bit(c.w, i), !plain[i]);
	}
	ck_assert_uint_eq(anrc_pb_count(b.w, 0, NBITS) + anrc_pb_count(c.w, 0, NBITS), NBITS);
	free(plain);
	for (unsigned l = 0; l < levels; l++)
		free(area[l]);
}
END_TEST

START_TEST(size_class_heap)
{
	/* Every small size through the heap: usable size is its class size. */
	struct anrc_heap *h = heap_plain();
	struct anrc_stats st;

	for (size_t s = 0; s <= ANR_SLAB_MAX; s++) {
		char *p = anrc_alloc(h, s, 0);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq((uintptr_t)p % ANR_ALIGN, 0);
		ck_assert_uint_eq(anrc_usable_size(h, p), anrc_class_size(anrc_size_class(s)));
		if (s > 0) {
			p[0] = 1;
			p[s - 1] = 2;
		}
		anrc_free(h, p);
	}
	/* Just above: whole pages. */
	char *p = anrc_alloc(h, ANR_SLAB_MAX + 1, 0);
	ck_assert_uint_eq(anrc_usable_size(h, p), ANR_SLAB_MAX + (size_t)sysconf(_SC_PAGESIZE));
	anrc_free(h, p);
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, 0);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/* ---- random operations against a shadow model ---- */

struct slot {
	unsigned char *p;
	size_t size, usable, align;
	unsigned char seed;
};

#define PATTERN_EDGE 64

static unsigned char
pat(unsigned char seed, size_t i)
{
	return (unsigned char)(seed + i * 7);
}

/* The bytes of a block that carry the pattern: its first and last
 * PATTERN_EDGE bytes and one byte per KiB, enough to catch overlaps. */
static size_t
next_pos(size_t i, size_t size)
{
	i++;
	if (i < PATTERN_EDGE || i + PATTERN_EDGE >= size || (i & 1023) == 0)
		return i;
	i = (i | 1023) + 1;
	return i + PATTERN_EDGE >= size && size > PATTERN_EDGE ? size - PATTERN_EDGE : i;
}

static void
fill(struct slot *s)
{
	for (size_t i = 0; i < s->size; i = next_pos(i, s->size))
		s->p[i] = pat(s->seed, i);
}

/* Bytes below upto that were written for a block of s->size bytes. */
static void
verify(const struct slot *s, size_t upto)
{
	for (size_t i = 0; i < s->size; i = next_pos(i, s->size))
		if (i < upto)
			ck_assert_msg(s->p[i] == pat(s->seed, i), "byte %zu of %zu-byte block",
				      i, s->size);
}

static size_t
random_size(void)
{
	unsigned r = (unsigned)(rnd() % 1000);

	if (r < 700)
		return rnd() % 512;
	if (r < 900)
		return rnd() % (ANR_SLAB_MAX + 1);
	if (r < 990)
		return rnd() % (256 * KiB);
	if (rnd() % 64 != 0)
		return rnd() % (4 * MiB);
	return rnd() % (UNDER_VALGRIND() ? 12 * MiB : 48 * MiB); /* now and then a huge one */
}

#define NSLOTS 512

/* Pages of one slab of every class: what a thread's current slabs, all
 * empty, hold at most. */
static size_t
current_slabs_pages(const struct anrc_heap *h)
{
	size_t n = 0;

	for (unsigned c = 0; c < ANR_NCLASSES; c++)
		n += h->cls[c].npages;
	return n;
}

START_TEST(random_shadow)
{
	struct anrc_heap *h = heap_plain();
	static struct slot slots[NSLOTS];
	size_t live_usable = 0;
	unsigned iters = scaled(60000);
	struct anrc_stats st;

	memset(slots, 0, sizeof(slots));
	for (unsigned it = 0; it < iters; it++) {
		struct slot *s = &slots[rnd() % NSLOTS];
		unsigned op = (unsigned)(rnd() % 10);

		if (s->p != NULL && op < 4) {
			verify(s, s->size);
			live_usable -= s->usable;
			anrc_free(h, s->p);
			s->p = NULL;
		} else if (s->p != NULL && op < 7) {
			size_t ns = random_size();
			unsigned char *q;
			verify(s, s->size);
			q = anrc_realloc(h, s->p, ns, 0);
			if (ns == 0) {
				ck_assert_ptr_null(q);
				live_usable -= s->usable;
				s->p = NULL;
				continue;
			}
			ck_assert_ptr_nonnull(q);
			s->p = q;
			verify(s, ns < s->size ? ns : s->size);
			live_usable -= s->usable;
			s->size = ns;
			s->align = ANR_ALIGN;
			s->usable = anrc_usable_size(h, q);
			live_usable += s->usable;
			fill(s);
		} else if (s->p == NULL) {
			size_t size = random_size(), align = ANR_ALIGN;
			if (op == 7) {
				align = (size_t)1 << (3 + rnd() % 15);
				s->p = anrc_alloc_aligned(h, align, size, 0);
			} else if (op == 8) {
				s->p = anrc_alloc(h, size, ANR_ZERO);
				ck_assert_ptr_nonnull(s->p);
				for (size_t i = 0; i < size; i++)
					ck_assert_uint_eq(s->p[i], 0);
			} else {
				s->p = anrc_alloc(h, size, 0);
			}
			ck_assert_msg(s->p != NULL, "op %u size %zu align %zu errno %d", op,
				      size, align, errno);
			ck_assert_uint_eq((uintptr_t)s->p % align, 0);
			ck_assert_uint_eq((uintptr_t)s->p % ANR_ALIGN, 0);
			s->size = size;
			s->align = align;
			s->usable = anrc_usable_size(h, s->p);
			ck_assert_uint_ge(s->usable, size);
			s->seed = (unsigned char)rnd();
			live_usable += s->usable;
			fill(s);
		}
		if (it % 997 == 0) {
			stats(h, &st);
			ck_assert_uint_eq(st.in_use, live_usable);
			ck_assert_uint_le(st.free_resident, ANR_DEFAULT_FREE_HIGH << h->mark_shift);
		}
		if (it % scaled(10000) == 0)
			ck_assert_int_eq(anrc_check(h), 0);
	}
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, live_usable);
	ck_assert_int_eq(anrc_check(h), 0);
	for (unsigned i = 0; i < NSLOTS; i++)
		if (slots[i].p != NULL) {
			verify(&slots[i], slots[i].size);
			anrc_free(h, slots[i].p);
		}
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, 0);
	/* only the empty slabs and the runs the thread keeps for reuse: its
	 * current slab of each class, ANR_EMPTY_CACHE_PAGES more and its runs */
	ck_assert_uint_le(st.slab_free, (current_slabs_pages(h) + ANR_EMPTY_CACHE_PAGES) *
						(size_t)sysconf(_SC_PAGESIZE) +
					ANR_RUN_CACHE_BYTES);
	ck_assert_uint_eq(st.bad_frees, 0);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_trim(h, 0);
	stats(h, &st);
	ck_assert_uint_eq(st.slab_free, 0);
	ck_assert_uint_eq(st.resident, 0);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

START_TEST(huge_requests)
{
	struct anrc_heap *h = heap_plain();
	size_t sizes[] = { SIZE_MAX, SIZE_MAX - 15, SIZE_MAX / 2, (size_t)1 << 62,
			   TEST_RESERVE, TEST_RESERVE + 1 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		errno = 0;
		ck_assert_ptr_null(anrc_alloc(h, sizes[i], 0));
		ck_assert_int_eq(errno, ENOMEM);
		errno = 0;
		ck_assert_ptr_null(anrc_alloc(h, sizes[i], ANR_ZERO));
		ck_assert_int_eq(errno, ENOMEM);
		errno = 0;
		ck_assert_ptr_null(anrc_alloc_aligned(h, 4096, sizes[i], 0));
		ck_assert_int_eq(errno, ENOMEM);
	}
	void *p = anrc_alloc(h, 100, 0);
	errno = 0;
	ck_assert_ptr_null(anrc_realloc(h, p, SIZE_MAX, 0));
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_uint_eq(anrc_usable_size(h, p), 112);
	/* A huge alignment. */
	errno = 0;
	ck_assert_ptr_null(anrc_alloc_aligned(h, (size_t)1 << 62, 16, 0));
	ck_assert_int_eq(errno, ENOMEM);
	anrc_free(h, p);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

START_TEST(aligned_all_powers)
{
	struct anrc_heap *h = heap_plain();
	size_t sizes[] = { 1, 16, 100, 4096, 5000, 70000 };

	errno = 0;
	ck_assert_ptr_null(anrc_alloc_aligned(h, 24, 16, 0));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(anrc_alloc_aligned(h, 4, 16, 0));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(anrc_alloc_aligned(h, 0, 16, 0));
	ck_assert_int_eq(errno, EINVAL);
	for (size_t a = sizeof(void *); a <= 64 * MiB; a <<= 1)
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			char *p = anrc_alloc_aligned(h, a, sizes[i], ANR_ZERO);
			ck_assert_ptr_nonnull(p);
			ck_assert_uint_eq((uintptr_t)p % a, 0);
			ck_assert_uint_eq((uintptr_t)p % ANR_ALIGN, 0);
			ck_assert_uint_ge(anrc_usable_size(h, p), sizes[i]);
			ck_assert_int_eq(p[sizes[i] - 1], 0);
			memset(p, 0x5a, sizes[i]);
			anrc_free(h, p);
		}
	ck_assert_int_eq(anrc_check(h), 0);
	struct anrc_stats st;
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, 0);
	anrc_destroy(h);
}
END_TEST

/* The end of a test that freed everything: nothing in use, the heap
 * consistent, then destroyed. */
static void
empty_heap_end(struct anrc_heap *h)
{
	struct anrc_stats st;

	stats(h, &st);
	ck_assert_uint_eq(st.in_use, 0);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}

START_TEST(realloc_cases)
{
	struct anrc_heap *h = heap_plain();
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct anrc_stats st;
	char *p, *q;

	/* realloc(NULL) allocates; size 0 frees. */
	p = anrc_realloc(h, NULL, 40, 0);
	ck_assert_ptr_nonnull(p);
	memset(p, 7, 40);
	ck_assert_ptr_null(anrc_realloc(h, p, 0, 0));
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, 0);

	/* Small to large and back keeps the contents. */
	p = anrc_alloc(h, 100, 0);
	for (int i = 0; i < 100; i++)
		p[i] = (char)i;
	p = anrc_realloc(h, p, 100 * KiB, 0);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(p[i], (char)i);
	p = anrc_realloc(h, p, 50, 0);
	for (int i = 0; i < 50; i++)
		ck_assert_int_eq(p[i], (char)i);
	anrc_free(h, p);

	/* A large block grows into the free pages after it and shrinks. */
	anrc_trim(h, 0); /* no kept empty slab in the way */
	p = anrc_alloc(h, 64 * KiB, 0);
	memset(p, 3, 64 * KiB);
	q = anrc_realloc(h, p, 128 * KiB, ANR_ZERO);
	ck_assert_ptr_nonnull(q);
	if (!UNDER_VALGRIND())
		ck_assert_ptr_eq(q, p);
	ck_assert_int_eq(q[64 * KiB - 1], 3);
	ck_assert_int_eq(q[64 * KiB], 0);
	ck_assert_int_eq(q[128 * KiB - 1], 0);
	p = anrc_realloc(h, q, 20 * KiB, 0);
	ck_assert_int_eq(p[20 * KiB - 1], 3);
	ck_assert_uint_eq(anrc_usable_size(h, p), (20 * KiB + page - 1) / page * page);
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, anrc_usable_size(h, p));
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_free(h, p);

	/* A blocked large block moves. */
	p = anrc_alloc(h, 64 * KiB, 0);
	q = anrc_alloc(h, 64 * KiB, 0);
	memset(p, 9, 64 * KiB);
	char *r = anrc_realloc(h, p, 256 * KiB, 0);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r[64 * KiB - 1], 9);
	anrc_free(h, q);
	anrc_free(h, r);
	empty_heap_end(h);
}
END_TEST

START_TEST(zeroed_reuse)
{
	struct anrc_heap *h = heap_plain();

	for (int round = 0; round < 3; round++) {
		size_t sizes[] = { 24, 3000, 20000, 300 * KiB };
		for (size_t i = 0; i < 4; i++) {
			char *p = anrc_alloc(h, sizes[i], 0);
			memset(p, 0xee, sizes[i]);
			anrc_free(h, p);
			p = anrc_alloc(h, sizes[i], ANR_ZERO);
			for (size_t j = 0; j < sizes[i]; j++)
				ck_assert_int_eq(p[j], 0);
			anrc_free(h, p);
		}
	}
	anrc_destroy(h);
}
END_TEST

/* ---- page return ---- */

static size_t
resident_pages(void *p, size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), n = len / page, count = 0;
	static unsigned char vec[65536];

	ck_assert_uint_le(n, sizeof(vec));
	ck_assert_int_eq(mincore(p, len, vec), 0);
	for (size_t i = 0; i < n; i++)
		count += vec[i] & 1;
	return count;
}

/*
 * Blocks a and then b written and freed in a heap with marks low..high
 * (a_kept: how many of a's pages may stay resident, all of b's must), then
 * a zeroed block of len bytes where a was: it reads as zero, and the
 * pages past b, never used, stay untouched.
 */
static void
zeroed_over(size_t low, size_t high, size_t a_len, size_t a_kept, size_t b_len, size_t len)
{
	struct anrc_config c = { .reserve = TEST_RESERVE, .free_low = low,
				.free_high = high, .valgrind = 1 };
	struct anrc_heap *h = anrc_create(&c);
	size_t page = h->page;
	char *a = anrc_alloc(h, a_len, 0), *b = anrc_alloc(h, b_len, 0), *p;

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_eq(b, a + a_len);
	memset(a, 0x5a, a_len);
	memset(b, 0x5a, b_len);
	anrc_free(h, a);
	anrc_free(h, b);
	ck_assert_uint_le(resident_pages(a, a_len), a_kept / page);
	ck_assert_uint_eq(resident_pages(b, b_len), b_len / page);
	p = anrc_alloc(h, len, ANR_ZERO);
	ck_assert_ptr_eq(p, a);
	ck_assert_uint_eq(resident_pages(b + b_len, len - a_len - b_len), 0);
	for (size_t i = 0; i < len; i += sizeof(uint64_t))
		ck_assert_msg(*(uint64_t *)(p + i) == 0, "byte %zu of a zeroed block is not 0", i);
	anrc_free(h, p);
	anrc_destroy(h);
}

/*
 * A zeroed run carved from a free span that starts with pages freed
 * blocks left resident and goes on into pages never used clears only up
 * to the last resident page: the others already read as zero.  git's
 * 512 KiB callocs made all 128 pages resident, where git wrote a few.
 * Then with pages given back between resident ones: 4 MiB freed (all but
 * its lowest 256 KiB go back, down to the low mark) and the block after
 * it, whose data must be cleared (with the low mark's 256 KiB, its 128 KiB
 * stay under a quarter of the high mark, where frees in a row trim).
 */
START_TEST(zeroed_block_leaves_fresh_pages)
{
	zeroed_over(1 * MiB, 2 * MiB, 128 * KiB, 128 * KiB, 128 * KiB, 1 * MiB);
	zeroed_over(256 * KiB, 2 * MiB, 4 * MiB, 256 * KiB, 128 * KiB, 8 * MiB);
}
END_TEST

/*
 * Frees in a row, after the first trim: the heap is shrinking, so it trims
 * at a quarter of the high mark down to a quarter of the low mark, and
 * keeps at most 256 KiB free where the band of 256 KiB..1 MiB kept up to
 * 1 MiB (RSS after the frees of bench/alloc/run.sh's driver: 932 KiB of
 * free pages kept, 224 KiB now).  A small block allocated on the way (less
 * than a quarter of the high mark charged) changes nothing; the first
 * trim, with the full band and at most ANR_TRIM_BATCH runs, may leave more
 * until the next one, so what follows it is measured.  Charging a quarter
 * of the high mark gives the full band back: a block freed then stays
 * resident under the high mark.
 */
START_TEST(shrinking_heap_keeps_a_quarter_band)
{
	struct anrc_config c = { .reserve = TEST_RESERVE, .free_low = 256 * KiB,
				.free_high = 1 * MiB, .valgrind = 1 };
	struct anrc_heap *h = anrc_create(&c);
	struct anrc_stats st;
	size_t most = 0;
	enum { N = 64 };
	char *v[N];

	/* Blocks of more than 64 KiB: page runs, not kept by the thread. */
	for (int i = 0; i < N; i++) {
		v[i] = anrc_alloc(h, 96 * KiB, 0);
		ck_assert_ptr_nonnull(v[i]);
		memset(v[i], 3, 96 * KiB);
	}
	for (int i = N - 1; i > 0; i--) {
		int j = (int)(rnd() % (unsigned)(i + 1));
		char *t = v[i]; v[i] = v[j]; v[j] = t;
	}
	int trimmed = 0;
	char *small = NULL;
	for (int i = 0; i < N; i++) {
		anrc_free(h, v[i]);
		if (i == N / 2) {
			small = anrc_alloc(h, 40 * KiB, 0);
			ck_assert_ptr_nonnull(small);
			memset(small, 5, 40 * KiB);
		}
		stats(h, &st);
		if (trimmed && st.free_resident > most)
			most = st.free_resident;
		trimmed = st.madvise_calls > 0;
	}
	anrc_free(h, small);
	stats(h, &st);
	ck_assert_uint_gt(st.madvise_calls, 0);
	ck_assert_msg(most <= 256 * KiB, "%zu KiB kept free while the heap shrank", most >> 10);
	ck_assert_uint_le(st.free_resident, 256 * KiB);
	ck_assert_int_eq(anrc_check(h), 0);

	/* A charge: the band is 256 KiB..1 MiB again. */
	uint64_t calls = st.madvise_calls;
	char *p = anrc_alloc(h, 512 * KiB, 0);
	ck_assert_ptr_nonnull(p);
	memset(p, 4, 512 * KiB);
	anrc_free(h, p);
	stats(h, &st);
	ck_assert_uint_eq(st.madvise_calls, calls);
	ck_assert_uint_ge(st.free_resident, 512 * KiB);
	anrc_destroy(h);
}
END_TEST

START_TEST(page_return_mincore)
{
	struct anrc_config c = { .reserve = TEST_RESERVE, .free_low = 256 * KiB,
				.free_high = 1 * MiB, .valgrind = 1 };
	struct anrc_heap *h = anrc_create(&c);
	size_t page = (size_t)sysconf(_SC_PAGESIZE), len = 64 * MiB;
	struct anrc_stats st;
	char *p = anrc_alloc(h, len, 0);

	ck_assert_ptr_nonnull(p);
	memset(p, 1, len);
	ck_assert_uint_eq(resident_pages(p, len), len / page);
	stats(h, &st);
	ck_assert_uint_ge(st.resident, len);
	anrc_free(h, p);
	/* Given back down to the low mark; the highest pages went first. */
	ck_assert_uint_le(resident_pages(p, len), 256 * KiB / page);
	ck_assert_uint_eq(resident_pages(p + len - 256 * KiB, 256 * KiB), 0);
	stats(h, &st);
	ck_assert_uint_le(st.free_resident, 256 * KiB);
	ck_assert_uint_le(st.resident, 256 * KiB);
	ck_assert_uint_ge(st.madvise_calls, 1);
	ck_assert_uint_ge(st.madvised_bytes, len - 256 * KiB);
	/* The page map entries of the returned pages went back as well. */
	{
		size_t first = (size_t)(p - h->data) / page;
		uintptr_t a = (uintptr_t)&h->pm[first + 1];
		uintptr_t b = (uintptr_t)&h->pm[first + len / page - 256 * KiB / page];
		a = (a + page - 1) & ~(page - 1);
		b &= ~(page - 1);
		ck_assert_uint_gt(b, a);
		ck_assert_uint_eq(resident_pages((void *)a, b - a), 0);
	}

	/* Many medium blocks freed in random order: still bounded. */
	enum { N = 200 };
	char *v[N];
	for (int i = 0; i < N; i++) {
		v[i] = anrc_alloc(h, 40 * KiB + (size_t)i * 100, 0);
		memset(v[i], 2, 40 * KiB);
	}
	for (int i = N - 1; i > 0; i--) {
		int j = (int)(rnd() % (unsigned)(i + 1));
		char *t = v[i]; v[i] = v[j]; v[j] = t;
	}
	for (int i = 0; i < N; i++) {
		anrc_free(h, v[i]);
		stats(h, &st);
		ck_assert_uint_le(st.free_resident, 1 * MiB);
	}
	ck_assert_int_eq(anrc_check(h), 0);

	/* Explicit trim to nothing. */
	p = anrc_alloc(h, 512 * KiB, 0);
	memset(p, 1, 512 * KiB);
	anrc_free(h, p);
	anrc_trim(h, 0);
	stats(h, &st);
	ck_assert_uint_eq(st.free_resident, 0);
	ck_assert_uint_eq(st.resident, 0);
	ck_assert_uint_eq(resident_pages(p, 512 * KiB), 0);
	anrc_destroy(h);
}
END_TEST

/*
 * Bookkeeping goes back with the pages: 2,000 small blocks aligned to
 * 1 MiB spread over 2 GiB make 2,000 pages of the page map resident; once
 * they are freed and the pages given back, so is that page map.  (It
 * once stayed: only the entries inside each returned run went back.)
 */
START_TEST(metadata_returned)
{
	struct anrc_heap *h = heap_plain();
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	enum { N = 2000 };
	static void *v[N];
	size_t pm_bytes, before, after;
	char *pm0;
	unsigned n = UNDER_VALGRIND() ? 150 : N;

	for (unsigned i = 0; i < n; i++) {
		v[i] = anrc_alloc_aligned(h, MiB, 16, 0);
		ck_assert_ptr_nonnull(v[i]);
		memset(v[i], 1, 16);
	}
	pm0 = (char *)((uintptr_t)h->pm & ~(uintptr_t)(page - 1));
	pm_bytes = (size_t)((char *)&h->pm[h->top] - pm0);
	before = resident_pages(pm0, pm_bytes);
	ck_assert_uint_ge(before, n / 2);
	for (unsigned i = 0; i < n; i++)
		anrc_free(h, v[i]);
	/* The free pages passed the high mark (not under valgrind, where the
	 * reservation holds too few 1 MiB steps): some went back, and with
	 * them the page map of their free span. */
	after = resident_pages(pm0, pm_bytes);
	if (n * page > ANR_DEFAULT_FREE_HIGH)
		ck_assert_msg(after <= 64, "%zu of %zu page map pages still resident after "
			      "the frees", after, before);
	anrc_release_free(h);
	after = resident_pages(pm0, pm_bytes);
	ck_assert_uint_le(after, 16);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/*
 * What stays resident after most of a heap is freed (ARCHITECTURE.md,
 * "What stays resident"): a mixed set of blocks, 99% freed in random
 * order, then anrc_release_free.  The data pages resident are exactly
 * those of live spans (no free page kept), and each part of the metadata
 * holds no page beyond those the spans need: in the page map the pages
 * holding the first and last entry of every span (and every entry of a
 * slab), in the slab bitmaps one page per group of ANR_BITS_GROUP pages
 * touched by a live span (the allocation and remote-free bitmaps share
 * it: once they took a page each), in the owner bytes the pages under
 * live spans.  Then everything is freed and the metadata goes back to
 * what an empty heap holds.
 */
static unsigned char meta_need[1 << 16];

static void
need(const struct anrc_heap *h, const void *a, const void *b)
{
	size_t first = (size_t)((const char *)a - h->base) / h->page;
	size_t last = (size_t)((const char *)b - h->base) / h->page;

	ck_assert_uint_lt(last, sizeof(meta_need));
	for (size_t i = first; i <= last; i++)
		meta_need[i] = 1;
}

static size_t
needed_in(const struct anrc_heap *h, const void *a, size_t len)
{
	size_t first = (size_t)((const char *)a - h->base) / h->page, n = 0;
	size_t last = (size_t)((const char *)a + len - 1 - h->base) / h->page;

	for (size_t i = first; i <= last; i++)
		n += meta_need[i];
	return n;
}

/*
 * Resident pages of each metadata part vs those the spans need, and the
 * whole metadata vs what an empty heap holds (empty_meta bytes) plus the
 * four page bitmaps (a bit per page of address used and their summary
 * levels) plus the pages needed: one page of slab bitmaps per group of
 * ANR_BITS_GROUP data pages touched by a live span.
 */
static unsigned char group_need[1 << 16];

static void
meta_within_need(struct anrc_heap *h, size_t empty_meta, size_t *live_spans)
{
	size_t n_groups = 0, bitmap_pages = 4 * (h->top / (8 * h->page) + 1 + ANR_BM_LEVELS);
	size_t page = h->page, top = h->top;
	char *pm0 = (char *)((uintptr_t)h->pm & ~(uintptr_t)(page - 1));
	char *pm1 = (char *)(((uintptr_t)&h->pm[top] + page - 1) & ~(uintptr_t)(page - 1));
	char *b0 = (char *)h->slabbits;
	size_t blen = (top + ANR_BITS_GROUP - 1) / ANR_BITS_GROUP * 2 * ANR_BITS_GROUP *
		      h->bmw * sizeof(uint64_t);
	char *o0 = (char *)((uintptr_t)h->owner & ~(uintptr_t)(page - 1));
	char *o1 = (char *)(((uintptr_t)&h->owner[top] + page - 1) & ~(uintptr_t)(page - 1));
	size_t r_pm, r_bits, r_owner, n_pm, n_bits, n_owner;

	memset(meta_need, 0, sizeof(meta_need));
	memset(group_need, 0, sizeof(group_need));
	ck_assert_uint_lt(top / ANR_BITS_GROUP, sizeof(group_need));
	*live_spans = 0;
	/* Only the first entry of each span is read here: reading one never
	 * written would map a page (the zero page) that mincore counts. */
	for (size_t i = 0; i < top;) {
		const struct anrc_page *pg = &h->pm[i];
		size_t n = pg->npages;
		ck_assert_uint_gt(n, 0);
		need(h, &h->pm[i], &h->pm[i]);
		need(h, &h->pm[i + n - 1], &h->pm[i + n - 1]);
		if (pg->kind == ANR_PG_SLAB || pg->kind == ANR_PG_LARGE) {
			(*live_spans)++;
			if (pg->kind == ANR_PG_SLAB)
				need(h, &h->pm[i], &h->pm[i + n - 1]);
			need(h, anrc_slab_bits(h, (uint32_t)(i / ANR_BITS_GROUP * ANR_BITS_GROUP)),
			     anrc_slab_bits(h, (uint32_t)((i + n - 1) / ANR_BITS_GROUP *
							  ANR_BITS_GROUP)));
			need(h, &h->owner[i], &h->owner[i + n - 1]);
			for (size_t g = i / ANR_BITS_GROUP; g <= (i + n - 1) / ANR_BITS_GROUP; g++) {
				n_groups += !group_need[g];
				group_need[g] = 1;
			}
		} else {
			ck_assert_uint_eq(pg->kind, ANR_PG_FREE);
		}
		i += n;
	}
	r_pm = resident_pages(pm0, (size_t)(pm1 - pm0));
	r_bits = resident_pages(b0, blen);
	r_owner = resident_pages(o0, (size_t)(o1 - o0));
	n_pm = needed_in(h, pm0, (size_t)(pm1 - pm0));
	n_bits = needed_in(h, b0, blen);
	n_owner = needed_in(h, o0, (size_t)(o1 - o0));
	ck_assert_msg(r_pm <= n_pm, "page map: %zu pages resident, %zu needed", r_pm, n_pm);
	ck_assert_msg(r_bits <= n_bits, "slab bitmaps: %zu pages resident, %zu needed",
		      r_bits, n_bits);
	ck_assert_msg(r_owner <= n_owner, "owners: %zu pages resident, %zu needed",
		      r_owner, n_owner);
	ck_assert_msg(anrc_meta_resident(h) <= empty_meta +
		      (bitmap_pages + n_pm + n_groups + n_owner) * h->page,
		      "metadata: %zu pages resident; empty %zu + page bitmaps %zu + page map %zu "
		      "+ slab bitmaps %zu + owners %zu", anrc_meta_resident(h) / h->page,
		      empty_meta / h->page, bitmap_pages, n_pm, n_groups, n_owner);
}

/*
 * What a new heap makes resident: a process pays a page fault for each
 * metadata page its first blocks touch (about 13 us each on a virtual
 * machine, where the host faults the page in too).  With a small block
 * and a large one: the page map entry, slab bitmaps and owner of the
 * first slab, the page map entry and owner of the large block, and the
 * page bitmaps of both (their level-0 words near each zone's start, the
 * summary levels on one page, shared with the end of the heap state).
 */
START_TEST(new_heap_metadata_pages)
{
	struct anrc_heap *h = heap_plain();
	char *state_end = (char *)h->base + ((sizeof(*h) + h->page - 1) & ~(h->page - 1));
	size_t state = resident_pages(h->base, (size_t)(state_end - (char *)h->base));
	size_t meta, bound = h->zone_split > 0 ? 8 : 6;
	void *small = anrc_alloc(h, 64, 0), *large = anrc_alloc(h, 64 * 1024, 0);

	ck_assert_ptr_nonnull(small);
	ck_assert_ptr_nonnull(large);
	meta = anrc_meta_resident(h) / h->page;
	ck_assert_msg(meta <= state + bound, "%zu metadata pages resident besides the heap "
		      "state's %zu, more than %zu", meta - state, state, bound);
	anrc_free(h, small);
	anrc_free(h, large);
	anrc_destroy(h);
}
END_TEST

START_TEST(resident_after_free_bound)
{
	struct anrc_heap *h = heap_plain();
	size_t page = (size_t)sysconf(_SC_PAGESIZE), total = 0;
	size_t limit = UNDER_VALGRIND() ? 40 * MiB : 128 * MiB, empty_meta, full_meta;
	size_t live_spans, live_pages = 0, keep;
	enum { N = 60000 };
	static void *v[N];
	static int order[N];
	struct anrc_stats st;
	unsigned n = 0;

	empty_meta = anrc_meta_resident(h);
	while (total < limit && n < N) {
		size_t size;
		if (n % 500 == 499) {
			size = MiB;
		} else {
			unsigned bits = 4 + (unsigned)(rnd() % 12); /* 16 B .. 64 KiB */
			size = ((size_t)1 << bits) + (size_t)(rnd() % ((size_t)1 << bits));
		}
		v[n] = anrc_alloc(h, size, 0);
		ck_assert_ptr_nonnull(v[n]);
		memset(v[n], 1, size);
		total += size;
		order[n] = (int)n;
		n++;
	}
	full_meta = anrc_meta_resident(h);
	for (unsigned i = n - 1; i > 0; i--) {
		unsigned j = (unsigned)(rnd() % (i + 1));
		int t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	keep = n / 100;
	for (unsigned i = keep; i < n; i++)
		anrc_free(h, v[order[i]]);
	anrc_release_free(h);
	stats(h, &st);
	/* Data: nothing but the pages of live spans. */
	ck_assert_uint_eq(st.free_resident, 0);
	for (size_t i = 0; i < h->top; i += h->pm[i].npages)
		if (h->pm[i].kind == ANR_PG_SLAB || h->pm[i].kind == ANR_PG_LARGE)
			live_pages += h->pm[i].npages;
	ck_assert_uint_eq(st.resident, live_pages * page);
	/* Metadata: nothing but what the spans need. */
	meta_within_need(h, empty_meta, &live_spans);
	ck_assert_uint_le(live_spans, keep + ANR_NCLASSES);
	/* Slabs lie in their own zone: the page map and slab bitmaps the
	 * live ones keep are about half of what all blocks needed (2.9 x
	 * less when slabs lay between the medium blocks). */
	ck_assert_uint_lt(anrc_meta_resident(h), full_meta * 3 / 5);

	/* Emptied: the metadata of the whole region goes back. */
	for (unsigned i = 0; i < keep; i++)
		anrc_free(h, v[order[i]]);
	anrc_release_free(h);
	stats(h, &st);
	ck_assert_uint_eq(st.resident, 0);
	meta_within_need(h, empty_meta, &live_spans);
	ck_assert_uint_eq(live_spans, 0);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/*
 * Slabs come from their own zone at the bottom of a large heap, page runs
 * from above it, whatever the order of the requests: after most blocks
 * are freed, the slabs still in use share a few pages of slab bitmaps.
 * (Taken from one list of free spans, the slabs lay between the medium
 * blocks and each kept a page of bitmaps of its own.)  Each zone lends
 * to the other when it has no room; no span crosses the boundary.
 */
enum { ZONE_ROUNDS = 3000, ZONE_KEEP_ONE_IN = 50 };

START_TEST(slabs_in_their_zone)
{
	struct anrc_config c = { .reserve = 2 * GiB, .valgrind = 1 };
	struct anrc_heap *h = anrc_create(&c);
	static void *small[ZONE_ROUNDS], *medium[ZONE_ROUNDS];
	struct anrc_stats st;
	size_t split, top_slab = 0, blen;
	void *big[64], *lent;
	unsigned nbig = 0;

	ck_assert_ptr_nonnull(h);
	split = h->zone_split;
	ck_assert_uint_gt(split, 0);
	ck_assert_uint_eq(split % h->page, 0);
	for (unsigned i = 0; i < ZONE_ROUNDS; i++) {
		/* 2 KiB objects fill a slab of one page in two allocations */
		small[i] = anrc_alloc(h, 2000, 0);
		medium[i] = anrc_alloc(h, 40000, 0);
		ck_assert_ptr_nonnull(small[i]);
		ck_assert_ptr_nonnull(medium[i]);
		memset(small[i], 1, 2000);
	}
	for (size_t i = 0; i < h->top; i += h->pm[i].npages) {
		const struct anrc_page *pg = &h->pm[i];
		if (pg->kind == ANR_PG_SLAB) {
			ck_assert_uint_lt(i + pg->npages, split + 1);
			if (i + pg->npages > top_slab)
				top_slab = i + pg->npages;
		} else if (pg->kind == ANR_PG_LARGE || pg->kind == ANR_PG_CACHED) {
			ck_assert_uint_ge(i, split);
		}
	}
	/* Address used: what each zone used, not the gap between them. */
	anrc_get_stats(h, &st);
	ck_assert_uint_eq(st.address_used, (top_slab + h->top - split) << h->page_shift);
	for (unsigned i = 0; i < ZONE_ROUNDS; i++) {
		anrc_free(h, medium[i]);
		if (i % ZONE_KEEP_ONE_IN != 0)
			anrc_free(h, small[i]);
	}
	anrc_release_free(h);
	/* The live slabs' bitmaps: no more pages than the groups below the
	 * highest slab (ZONE_ROUNDS / 2 pages of slabs: 24 groups). */
	blen = (top_slab + ANR_BITS_GROUP - 1) / ANR_BITS_GROUP * h->page;
	ck_assert_uint_le(resident_pages(h->slabbits, (size_t)h->npages / ANR_BITS_GROUP * h->page),
			  blen / h->page);
	ck_assert_uint_le(blen / h->page, ZONE_ROUNDS / 2 / ANR_BITS_GROUP + 1);
	ck_assert_int_eq(anrc_check(h), 0);

	/* Runs fill their zone (64 MiB blocks, never touched), then the
	 * slabs' zone lends: the next one lies below the boundary. */
	while (nbig < 64 && (big[nbig] = anrc_alloc(h, 64 * MiB, 0)) != NULL &&
	       (size_t)((char *)big[nbig] - h->data) >> h->page_shift >= split)
		nbig++;
	ck_assert_uint_lt(nbig, 64);
	ck_assert_ptr_nonnull(big[nbig]);
	lent = big[nbig++];
	ck_assert_uint_lt((size_t)((char *)lent - h->data) >> h->page_shift, split);
	ck_assert_int_eq(anrc_check(h), 0);
	while (nbig > 0)
		anrc_free(h, big[--nbig]);
	for (unsigned i = 0; i < ZONE_ROUNDS; i += ZONE_KEEP_ONE_IN)
		anrc_free(h, small[i]);
	anrc_release_free(h);
	/* Two free spans meet at the boundary and stay two. */
	ck_assert_int_eq(h->pm[0].kind, ANR_PG_FREE);
	ck_assert_uint_eq(h->pm[0].npages, split);
	ck_assert_int_eq(h->pm[split].kind, ANR_PG_FREE);
	ck_assert_uint_eq(h->pm[split].npages, h->npages - split);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/*
 * Holes: after a page-return round, the pages of a thread's live slabs
 * that no allocated object touches go back (a slice of ANR_HOLE_SLABS
 * slabs at the next free that empties a slab; every slab on an explicit
 * release), still counted as resident; the live objects keep their
 * contents; handing out objects there makes the pages count as resident
 * pages again.  (Without holes, a four-page slab with one live object
 * kept all four pages resident.)
 */
enum { HOLE_SLABS = 64, HOLE_OBJS = 256 };

/*
 * A page-return round (an 8 MiB block written and freed), then a free
 * that empties a slab of the 4 KiB class, whose end starts a slice of
 * holes.  Returns the one more object of that class allocated first (so
 * that the emptied slab is not the current one), for the caller to free.
 */
static char *
page_return_then_emptied_slab(struct anrc_heap *h)
{
	unsigned n = h->cls[anrc_size_class(ANR_SLAB_MAX)].nobjs;
	/* (a 4 KiB object a page: at most ANR_SLAB_SPAN_MAX of them a slab) */
	char *big = anrc_alloc(h, 8 * MiB, 0), *one[ANR_SLAB_SPAN_MAX], *two;

	ck_assert_ptr_nonnull(big);
	memset(big, 1, 8 * MiB);
	anrc_free(h, big);
	ck_assert_uint_le(n, ANR_SLAB_SPAN_MAX);
	for (unsigned i = 0; i < n; i++)
		one[i] = anrc_alloc(h, ANR_SLAB_MAX, 0);
	two = anrc_alloc(h, ANR_SLAB_MAX, 0);
	for (unsigned i = 0; i < n; i++)
		anrc_free(h, one[i]); /* the last empties the slab */
	return two;
}

/* The free slots of p[0 .. n - 1] get 64-byte objects again, written:
 * their pages count as resident again, no hole is left. */
static void
holes_handed_out_again(struct anrc_heap *h, char **p, size_t n)
{
	struct anrc_stats st;

	for (size_t i = 0; i < n; i++) {
		if (p[i] != NULL)
			continue;
		p[i] = anrc_alloc(h, 64, 0);
		ck_assert_ptr_nonnull(p[i]);
		memset(p[i], 0x6b, 64);
	}
	stats(h, &st);
	ck_assert_uint_eq(st.slab_holes, 0);
	ck_assert_int_eq(anrc_check(h), 0);
}

START_TEST(holes_of_live_slabs)
{
	struct anrc_heap *h = heap_plain();
	const struct anrc_class *k = &h->cls[anrc_size_class(64)];
	size_t page = h->page, span, n = HOLE_SLABS * HOLE_OBJS, kept = 0;
	static char *p[HOLE_SLABS * HOLE_OBJS];
	struct anrc_stats st;
	char *two;

	ck_assert_uint_eq(k->nobjs, HOLE_OBJS);
	span = k->npages * page;
	for (size_t i = 0; i < n; i++) {
		p[i] = anrc_alloc(h, 64, 0);
		ck_assert_ptr_nonnull(p[i]);
		memset(p[i], 0x5a, 64);
	}
	/* one object on the first page of each slab stays */
	for (size_t i = 0; i < n; i++) {
		if (((size_t)(p[i] - h->data) & (span - 1)) == 0) {
			kept++;
			continue;
		}
		anrc_free(h, p[i]);
		p[i] = NULL;
	}
	ck_assert_uint_eq(kept, HOLE_SLABS);
	stats(h, &st);
	ck_assert_uint_eq(st.slab_holes, 0);
	if (UNDER_VALGRIND()) {
		/* no fast paths, no holes: the pages stay */
		anrc_release_free(h);
		stats(h, &st);
		ck_assert_uint_eq(st.slab_holes, 0);
		goto out;
	}
	/* A page-return round, then a free that empties a slab: a slice. */
	two = page_return_then_emptied_slab(h);
	stats(h, &st);
	ck_assert_uint_gt(st.slab_holes, 0);
	ck_assert_uint_le(st.slab_holes, (size_t)ANR_HOLE_SLABS * ANR_SLAB_SPAN_MAX * page);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_free(h, two);
	/* An explicit release looks at every slab. */
	anrc_release_free(h);
	stats(h, &st);
	ck_assert_uint_eq(st.slab_holes, HOLE_SLABS * (k->npages - 1) * page);
	for (size_t i = 0; i < n; i++) {
		if (p[i] == NULL)
			continue;
		ck_assert_uint_eq(resident_pages(p[i], page), 1);
		ck_assert_uint_eq(resident_pages(p[i] + page, span - page), 0);
		for (int j = 0; j < 64; j++)
			ck_assert_int_eq(p[i][j], 0x5a);
	}
	ck_assert_int_eq(anrc_check(h), 0);
	holes_handed_out_again(h, p, n);
out:
	for (size_t i = 0; i < n; i++)
		anrc_free(h, p[i]);
	empty_heap_end(h);
}
END_TEST

/* A thread that made holes in its slabs, then waits while main forks. */
struct holes_arg {
	struct anrc_heap *h;
	pthread_barrier_t *bar;
	char **p;
	size_t n, holes;
};

static void *
holes_then_wait(void *arg)
{
	struct holes_arg *a = arg;
	struct anrc_stats st;
	size_t span = a->h->cls[anrc_size_class(64)].npages * a->h->page;

	for (size_t i = 0; i < a->n; i++) {
		a->p[i] = anrc_alloc(a->h, 64, 0);
		memset(a->p[i], 0x5a, 64);
	}
	for (size_t i = 0; i < a->n; i++)
		if (((size_t)(a->p[i] - a->h->data) & (span - 1)) != 0) {
			anrc_free(a->h, a->p[i]);
			a->p[i] = NULL;
		}
	anrc_release_free(a->h); /* every slab of this thread: holes */
	stats(a->h, &st);
	a->holes = st.slab_holes;
	pthread_barrier_wait(a->bar); /* main forks */
	pthread_barrier_wait(a->bar);
	for (size_t i = 0; i < a->n; i++)
		anrc_free(a->h, a->p[i]);
	return NULL;
}

/*
 * In a fork child the theap of a thread that did not survive is
 * abandoned: its slabs become shared with their holes counted resident
 * again (the bits set, the heap's and the theap's counts back to zero),
 * and objects handed out there are usable.  The parent keeps its holes.
 */
START_TEST(holes_in_a_fork_child)
{
	struct anrc_heap *h = heap_plain();
	static char *p[HOLE_SLABS * HOLE_OBJS];
	pthread_barrier_t bar;
	struct holes_arg a = { .h = h, .bar = &bar, .p = p, .n = HOLE_SLABS * HOLE_OBJS };
	struct anrc_stats st;
	pthread_t t;
	pid_t pid;
	int status;

	ck_assert_int_eq(pthread_barrier_init(&bar, NULL, 2), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, holes_then_wait, &a), 0);
	pthread_barrier_wait(&bar);
	if (UNDER_VALGRIND())
		ck_assert_uint_eq(a.holes, 0); /* no fast paths, no holes */
	else
		ck_assert_uint_gt(a.holes, 0);
	anrc_fork_prepare(h);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		static char *q[HOLE_SLABS * HOLE_OBJS];
		int ok;

		anrc_fork_child(h);
		stats(h, &st);
		ok = st.slab_holes == 0 && anrc_check(h) == 0;
		for (size_t i = 0; ok && i < a.n; i++) {
			q[i] = anrc_alloc(h, 64, 0);
			ok = q[i] != NULL;
			if (ok)
				memset(q[i], 0x6b, 64);
		}
		for (size_t i = 0; ok && i < a.n; i++)
			ok = p[i] == NULL || (p[i][0] == 0x5a && p[i][63] == 0x5a);
		ok = ok && anrc_check(h) == 0;
		for (size_t i = 0; i < a.n; i++)
			anrc_free(h, q[i]);
		/* the thread's objects have no owner here */
		anrc_destroy(h);
		_exit(ok ? 0 : 1);
	}
	anrc_fork_parent(h);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %x", status);
	stats(h, &st);
	ck_assert_uint_eq(st.slab_holes, a.holes);
	ck_assert_int_eq(anrc_check(h), 0);
	pthread_barrier_wait(&bar);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	pthread_barrier_destroy(&bar);
	empty_heap_end(h);
}
END_TEST

/*
 * A holes pass drops the held word of a current slab first; when that
 * word held every free object, the slab is empty from then on and counts
 * as one the thread keeps (empty_pages), as when a flush drops it.  It
 * went uncounted until the next word was loaded.
 */
START_TEST(holes_pass_counts_an_emptied_current_slab)
{
	struct anrc_heap *h = heap_plain();
	unsigned c = anrc_size_class(64);
	char *x, *two;
	struct anrc_theap *t;
	struct anrc_stats st;

	/* (the pass looks at classes in order: this one before 4 KiB's) */
	ck_assert_uint_lt(c, anrc_size_class(ANR_SLAB_MAX));
	x = anrc_alloc(h, 64, 0);
	ck_assert_ptr_nonnull(x);
	anrc_free(h, x); /* back into the held word: the slab is not emptied */
	t = anrc_theap_peek(h);
	ck_assert_ptr_nonnull(t);
	if (UNDER_VALGRIND()) {
		/* no fast paths, no holes passes */
		anrc_destroy(h);
		return;
	}
	ck_assert_int_eq(t->cur_empty[c], 0);
	/* a page-return round, then a free that empties a slab: a pass */
	two = page_return_then_emptied_slab(h);
	stats(h, &st);
	ck_assert_uint_gt(st.slab_holes, 0);
	/* the 64-byte class's slab: no word held, every object free */
	ck_assert_uint_eq(t->cl[c].avail, 0);
	ck_assert_uint_eq(h->pm[t->cur[c]].nfree, h->cls[c].nobjs);
	ck_assert_int_eq(t->cur_empty[c], 1);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_free(h, two);
	/* allocated from again: not empty, the count goes down */
	x = anrc_alloc(h, 64, 0);
	ck_assert_ptr_nonnull(x);
	ck_assert_int_eq(t->cur_empty[c], 0);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_free(h, x);
	empty_heap_end(h);
}
END_TEST

START_TEST(hysteresis_churn)
{
	struct anrc_config c = { .reserve = TEST_RESERVE, .free_low = 256 * KiB,
				.free_high = 1 * MiB, .valgrind = 1 };
	struct anrc_heap *h = anrc_create(&c);
	struct anrc_stats st;
	unsigned n = scaled(20000);

	/* Allocate/free churn below the high mark never gives pages back. */
	for (unsigned i = 0; i < n; i++) {
		char *a = anrc_alloc(h, 200 * KiB, 0);
		char *b = anrc_alloc(h, 64, 0);
		a[0] = b[0] = 1;
		anrc_free(h, a);
		anrc_free(h, b);
	}
	stats(h, &st);
	ck_assert_uint_eq(st.madvise_calls, 0);
	ck_assert_uint_le(st.free_resident, 1 * MiB);

	/* Churn across the marks: pages given back are taken again at once,
	 * so the marks grow (never past 32 x) until the churn fits under
	 * them; then nothing more is given back. */
	for (unsigned i = 0; i < n; i++) {
		char *a = anrc_alloc(h, 600 * KiB, 0);
		a[0] = 1;
		char *b = anrc_alloc(h, 600 * KiB, 0);
		b[0] = 1;
		anrc_free(h, a);
		anrc_free(h, b);
		stats(h, &st);
		ck_assert_uint_le(st.free_resident, (1 * MiB) << h->mark_shift);
		ck_assert_uint_le(h->mark_shift, ANR_MARK_SHIFT_MAX);
	}
	stats(h, &st);
	ck_assert_uint_gt(h->mark_shift, 0);
	ck_assert_uint_le(st.madvise_calls, 8);
	ck_assert_int_eq(anrc_check(h), 0);
	/* Once the churn stops, an explicit trim goes back to the marks set. */
	anrc_trim(h, 256 * KiB);
	stats(h, &st);
	ck_assert_uint_le(st.free_resident, 256 * KiB);
	ck_assert_uint_eq(h->mark_shift, 0);

	/* Raising the marks stops it. */
	anrc_set_marks(h, 4 * MiB, 8 * MiB);
	uint64_t before = st.madvise_calls;
	for (unsigned i = 0; i < n; i++) {
		char *a = anrc_alloc(h, 600 * KiB, 0);
		char *b = anrc_alloc(h, 600 * KiB, 0);
		anrc_free(h, a);
		anrc_free(h, b);
	}
	stats(h, &st);
	ck_assert_uint_eq(st.madvise_calls, before);
	/* Lowering them gives back at once. */
	anrc_set_marks(h, 0, 0);
	stats(h, &st);
	ck_assert_uint_eq(st.free_resident, 0);
	anrc_destroy(h);
}
END_TEST

/*
 * Marks grown by churn space the trims out, but a trim keeps at most
 * ANR_KEEP_GROWN_MAX: a large free after the churn leaves little resident.
 * (It once kept the low mark times the growth: 8 MiB with these marks.)
 */
static void
touch_pages(char *p, size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	for (size_t o = 0; o < len; o += page)
		p[o] = 1;
}

START_TEST(grown_marks_keep_little)
{
	struct anrc_config c = { .reserve = TEST_RESERVE, .free_low = 256 * KiB,
				.free_high = 1 * MiB, .valgrind = 1 };
	struct anrc_heap *h = anrc_create(&c);
	struct anrc_stats st;
	char *p;

	ck_assert_ptr_nonnull(h);
	for (int i = 0; i < 40; i++) {
		p = anrc_alloc(h, 6 * MiB, 0);
		ck_assert_ptr_nonnull(p);
		touch_pages(p, 6 * MiB);
		anrc_free(h, p);
	}
	/* Each 6 MiB given back was taken again: the marks grew to 8 x. */
	ck_assert_uint_ge(h->mark_shift, 3);
	stats(h, &st);
	ck_assert_uint_le(st.free_resident, (1 * MiB) << h->mark_shift);
	p = anrc_alloc(h, 48 * MiB, 0);
	ck_assert_ptr_nonnull(p);
	touch_pages(p, 48 * MiB);
	anrc_free(h, p);
	stats(h, &st);
	ck_assert_msg(st.free_resident <= ANR_KEEP_GROWN_MAX,
		      "%zu KiB of free pages kept after a 48 MiB free (marks x %u)",
		      st.free_resident >> 10, 1u << h->mark_shift);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/*
 * Giving back the metadata of a free span stops at the address ever used:
 * past it nothing was written.  The span around the highest run given back
 * reaches the end of the reservation, and its metadata (about 2 % of the
 * reservation) was once advised whole on every trim.
 */
START_TEST(meta_release_stops_at_top)
{
	struct anrc_config c = { .reserve = TEST_RESERVE, .free_low = 0, .free_high = 0,
				.valgrind = 1 };
	struct anrc_heap *h = anrc_create(&c);
	struct anrc_stats st;
	size_t per_page, limit;

	ck_assert_ptr_nonnull(h);
	for (int i = 0; i < 20; i++) {
		char *p = anrc_alloc(h, 2 * MiB, 0);
		ck_assert_ptr_nonnull(p);
		touch_pages(p, 2 * MiB);
		anrc_free(h, p);
	}
	stats(h, &st);
	ck_assert_uint_gt(st.madvise_calls, 0);
	ck_assert_uint_gt(st.meta_madvise_calls, 0);
	/* what one call may advise at most: the metadata of the pages below
	 * top, rounded up to a page of owner bytes */
	per_page = sizeof(struct anrc_page) + 2 * h->bmw * sizeof(uint64_t) + 1;
	limit = (h->top + h->page - 1) & ~(h->page - 1);
	ck_assert_msg(h->meta_madvised <= st.meta_madvise_calls * limit * per_page,
		      "%zu KiB of metadata advised in %llu calls, top %zu pages",
		      h->meta_madvised >> 10, (unsigned long long)st.meta_madvise_calls, h->top);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/*
 * Madvise calls in the last 20 of 40 rounds of eight 1 MiB blocks built
 * and then all freed, with a small block (a page of a slab, charged)
 * allocated after each free when with_small; the heap is left checked
 * and empty of those blocks.
 */
static uint64_t
madvise_in_rounds(struct anrc_heap *h, int with_small)
{
	struct anrc_stats st;
	char *p[8], *small[8 * 40];
	unsigned ns = 0;
	uint64_t before = 0;

	for (int round = 0; round < 40; round++) {
		if (round == 20) {
			stats(h, &st);
			before = st.madvise_calls;
		}
		for (int i = 0; i < 8; i++) {
			p[i] = anrc_alloc(h, 1 * MiB, 0);
			ck_assert_ptr_nonnull(p[i]);
			touch_pages(p[i], 1 * MiB);
		}
		for (int i = 0; i < 8; i++) {
			anrc_free(h, p[i]);
			if (with_small) {
				small[ns] = anrc_alloc(h, 2048, 0);
				ck_assert_ptr_nonnull(small[ns]);
				small[ns++][0] = 1;
			}
		}
	}
	stats(h, &st);
	ck_assert_uint_gt(h->mark_shift, 0);
	ck_assert_uint_le(st.free_resident, (1 * MiB) << h->mark_shift);
	while (ns > 0)
		anrc_free(h, small[--ns]);
	ck_assert_int_eq(anrc_check(h), 0);
	return st.madvise_calls - before;
}

/*
 * Frees in a row, with nothing allocated between them, each start a trim:
 * they say nothing about whether giving back is undone, so the marks stay;
 * nor does a little allocated between them (another thread's, say): fewer
 * pages charged since the last trim than were given back.  A program that
 * builds eight 1 MiB blocks and frees them all, over and over, grows its
 * marks once and then gives nothing back.  (The marks once halved on each
 * of those frees and were small again by the time the blocks were rebuilt:
 * a trim, and the pages taken back, every round: 140 madvise calls in 20
 * rounds; and once frees in a row left them, a small block between the
 * frees still made each trim halve them, back to the marks set.)
 */
START_TEST(marks_hold_across_frees_in_a_row)
{
	struct anrc_config c = { .reserve = TEST_RESERVE, .free_low = 256 * KiB,
				.free_high = 1 * MiB, .valgrind = 1 };

	for (int with_small = 0; with_small < 2; with_small++) {
		struct anrc_heap *h = anrc_create(&c);
		uint64_t calls;

		ck_assert_ptr_nonnull(h);
		calls = madvise_in_rounds(h, with_small);
		ck_assert_msg(calls == 0, "%llu madvise calls in the last 20 rounds (marks x %u, %s)",
			      (unsigned long long)calls, 1u << h->mark_shift,
			      with_small ? "small blocks between the frees" : "frees in a row");
		anrc_destroy(h);
	}
}
END_TEST

/* ---- budget and hook ---- */

struct hook_state {
	int calls;
	int mode; /* 0 raise budget, 1 refuse, 2 lie, 3 free a block, 4 one page */
	size_t last_bytes;
	unsigned last_call; /* the hook's count of its calls for one allocation */
	void *victim;
};

static int
hook_fn(void *arg, struct anrc_heap *h, size_t bytes, unsigned call)
{
	struct hook_state *hs = arg;

	hs->calls++;
	hs->last_bytes = bytes;
	hs->last_call = call;
	switch (hs->mode) {
	case 0:
		anrc_set_budget(h, anrc_get_budget(h) + bytes);
		return 1;
	case 1:
		return 0;
	case 2:
		return 1;
	case 4:
		anrc_set_budget(h, anrc_get_budget(h) + (size_t)sysconf(_SC_PAGESIZE));
		return 1;
	default:
		if (hs->victim == NULL)
			return 0;
		anrc_free(h, hs->victim);
		hs->victim = NULL;
		return 1;
	}
}

START_TEST(budget_and_hook)
{
	struct anrc_heap *h = heap_with(1 * MiB, ANR_BAD_FREE_ABORT);
	struct hook_state hs = { 0 };
	struct anrc_stats st;
	char *p, *q;

	ck_assert_uint_eq(anrc_get_budget(h), 1 * MiB);
	/* Without a hook: fails at the budget. */
	p = anrc_alloc(h, 768 * KiB, 0);
	ck_assert_ptr_nonnull(p);
	errno = 0;
	ck_assert_ptr_null(anrc_alloc(h, 512 * KiB, 0));
	ck_assert_int_eq(errno, ENOMEM);
	stats(h, &st);
	ck_assert_uint_le(st.resident, 1 * MiB);
	ck_assert_uint_eq(st.failures, 1);

	anrc_set_hook(h, hook_fn, &hs);
	/* A hook that raises the budget: success. */
	q = anrc_alloc(h, 512 * KiB, 0);
	ck_assert_ptr_nonnull(q);
	ck_assert_int_eq(hs.calls, 1);
	ck_assert_uint_ge(hs.last_bytes, 256 * KiB);
	ck_assert_uint_ge(anrc_get_budget(h), 1280 * KiB);
	anrc_free(h, q);

	/* ANR_NO_HOOK never calls it. */
	hs.calls = 0;
	errno = 0;
	ck_assert_ptr_null(anrc_alloc(h, 64 * MiB, ANR_NO_HOOK));
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_int_eq(hs.calls, 0);

	/* A refusing hook: one call, NULL and ENOMEM. */
	hs.mode = 1;
	errno = 0;
	ck_assert_ptr_null(anrc_alloc(h, 64 * MiB, 0));
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_int_eq(hs.calls, 1);

	/* A lying hook: bounded retries. */
	hs.mode = 2;
	hs.calls = 0;
	ck_assert_ptr_null(anrc_alloc(h, 64 * MiB, 0));
	ck_assert_int_eq(hs.calls, ANR_HOOK_MAX_RETRIES);
	ck_assert_ptr_null(anrc_realloc(h, p, 64 * MiB, 0));
	ck_assert_int_eq(hs.calls, 2 * ANR_HOOK_MAX_RETRIES);
	ck_assert_int_eq(p[0], p[0]); /* the old block is still ours */
	ck_assert_uint_eq(anrc_usable_size(h, p), 768 * KiB);

	/* A hook that frees memory (it may call into the heap). */
	hs.mode = 3;
	hs.calls = 0;
	anrc_set_budget(h, 1 * MiB);
	hs.victim = p;
	q = anrc_alloc(h, 600 * KiB, 0);
	ck_assert_ptr_nonnull(q);
	ck_assert_int_eq(hs.calls, 1);
	anrc_free(h, q);

	/* A hook that gives one page at a time: called until it suffices. */
	hs.mode = 4;
	hs.calls = 0;
	anrc_set_budget(h, 0);
	anrc_set_hook(h, hook_fn, &hs);
	q = anrc_alloc(h, 20 * (size_t)sysconf(_SC_PAGESIZE), 0);
	ck_assert_ptr_nonnull(q);
	ck_assert_int_eq(hs.calls, 20);
	ck_assert_uint_eq(hs.last_call, 19); /* counted from 0 for this allocation */
	anrc_free(h, q);

	/* Small objects in existing slabs need no budget; new pages do. */
	anrc_set_hook(h, NULL, NULL);
	anrc_set_budget(h, 0);
	stats(h, &st);
	ck_assert_uint_eq(st.resident, 0);
	ck_assert_ptr_null(anrc_alloc(h, 16, 0));
	anrc_set_budget(h, 64 * KiB);
	p = anrc_alloc(h, 16, 0);
	ck_assert_ptr_nonnull(p);
	anrc_set_budget(h, 0);
	q = anrc_alloc(h, 16, 0);
	ck_assert_ptr_nonnull(q);
	anrc_free(h, p);
	anrc_free(h, q);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

START_TEST(budget_lowered)
{
	struct anrc_config c = { .reserve = TEST_RESERVE, .free_low = 8 * MiB,
				.free_high = 16 * MiB, .valgrind = 1 };
	struct anrc_heap *h = anrc_create(&c);
	struct anrc_stats st;
	char *p = anrc_alloc(h, 4 * MiB, 0), *q;

	memset(p, 1, 4 * MiB);
	anrc_free(h, p);
	stats(h, &st);
	ck_assert_uint_eq(st.free_resident, 4 * MiB);
	/* Lowering the budget gives back free pages at once. */
	anrc_set_budget(h, 1 * MiB);
	stats(h, &st);
	ck_assert_uint_le(st.resident, 1 * MiB);
	/* Free resident pages are given back to make room. */
	p = anrc_alloc(h, 512 * KiB, 0);
	ck_assert_ptr_nonnull(p);
	q = anrc_alloc(h, 512 * KiB, 0);
	ck_assert_ptr_nonnull(q);
	ck_assert_ptr_null(anrc_alloc(h, 64 * KiB, 0));
	stats(h, &st);
	ck_assert_uint_le(st.resident, 1 * MiB);
	anrc_free(h, p);
	anrc_free(h, q);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/* ---- bad frees ---- */

static char sink_buf[4096];
static size_t sink_len;
static int sink_lines;

static void
sink_fn(int level, const char *line, size_t len)
{
	(void)level;
	sink_lines++;
	if (sink_len + len < sizeof(sink_buf)) {
		memcpy(sink_buf + sink_len, line, len);
		sink_len += len;
		sink_buf[sink_len] = '\0';
	}
}

static void
sink_reset(void)
{
	sink_len = 0;
	sink_lines = 0;
	sink_buf[0] = '\0';
}

struct bad_case {
	const char *name;
	const char *expect;
};

/* Make one bad free of kind k; returns the pointer used. */
static void *
bad_free(struct anrc_heap *h, int k, void **keep)
{
	static char not_ours[64];
	char *p;

	*keep = NULL;
	switch (k) {
	case 0: /* double free of a small object */
		p = anrc_alloc(h, 40, 0);
		*keep = anrc_alloc(h, 40, 0); /* keeps the slab alive */
		anrc_free(h, p);
		anrc_free(h, p);
		return p;
	case 1: /* double free of a large block */
		p = anrc_alloc(h, 100 * KiB, 0);
		anrc_free(h, p);
		anrc_free(h, p);
		return p;
	case 2: /* interior pointer of a small object */
		p = anrc_alloc(h, 100, 0);
		*keep = p;
		anrc_free(h, p + 16);
		return p + 16;
	case 3: /* interior pointer of a large block, page aligned */
		p = anrc_alloc(h, 100 * KiB, 0);
		*keep = p;
		anrc_free(h, p + 2 * sysconf(_SC_PAGESIZE));
		return p + 2 * sysconf(_SC_PAGESIZE);
	case 4: /* misaligned pointer */
		p = anrc_alloc(h, 100, 0);
		*keep = p;
		anrc_free(h, p + 3);
		return p + 3;
	case 5: /* foreign pointer */
		anrc_free(h, not_ours);
		return not_ours;
	case 6: /* pointer into the metadata */
		anrc_free(h, (char *)h + 4096);
		return (char *)h + 4096;
	default: /* a page never handed out */
		p = (char *)h->data + ((size_t)h->npages - 1) * (size_t)sysconf(_SC_PAGESIZE);
		anrc_free(h, p);
		return p;
	}
}

#define NBAD 8
static const char *const bad_expect[NBAD] = {
	"double free", "double free", "inside a block", "inside a block",
	"inside a block", "not from this heap", "metadata", "double free",
};

/* The end of a test of bad pointers: nbad of them counted, nothing left
 * in use, the heap consistent; the log goes back to stderr. */
static void
bad_test_end(struct anrc_heap *h, uint64_t nbad)
{
	struct anrc_stats st;

	stats(h, &st);
	ck_assert_uint_eq(st.bad_frees, nbad);
	ck_assert_uint_eq(st.in_use, 0);
	ck_assert_int_eq(anrc_check(h), 0);
	mb_log_set_sink(NULL);
	anrc_destroy(h);
}

START_TEST(bad_free_report)
{
	struct anrc_heap *h = heap_with(0, ANR_BAD_FREE_REPORT);
	struct anrc_stats st;

	mb_log_set_sink(sink_fn);
	for (int k = 0; k < NBAD; k++) {
		void *keep;
		sink_reset();
		void *p = bad_free(h, k, &keep);
		ck_assert_int_eq(sink_lines, 1);
		ck_assert_msg(strstr(sink_buf, bad_expect[k]) != NULL, "case %d: %s", k, sink_buf);
		ck_assert_msg(strstr(sink_buf, "free(") != NULL, "%s", sink_buf);
		/* the line names no raw address */
		char addr[32];
		snprintf(addr, sizeof(addr), "%p", p);
		ck_assert_msg(strstr(sink_buf, addr + 2) == NULL, "%s", sink_buf);
		stats(h, &st);
		ck_assert_uint_eq(st.bad_frees, (uint64_t)k + 1);
		ck_assert_int_eq(anrc_check(h), 0);
		anrc_free(h, keep);
	}
	/* realloc of a bad pointer: reported, NULL, nothing changed */
	sink_reset();
	char *p = anrc_alloc(h, 100, 0);
	errno = 0;
	ck_assert_ptr_null(anrc_realloc(h, p + 16, 200, 0));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(sink_lines, 1);
	ck_assert_ptr_nonnull(strstr(sink_buf, "realloc("));
	anrc_free(h, p);
	ck_assert_ptr_null(anrc_realloc(h, p, 200, 0));
	/* usable size of a bad pointer is 0 */
	ck_assert_uint_eq(anrc_usable_size(h, p), 0);
	bad_test_end(h, NBAD + 2);
}
END_TEST

/* A log sink that blocks, as a full pipe or a paused terminal would,
 * until the test lets it go. */
static int slow_sink_in, slow_sink_go;

static void
slow_sink(int level, const char *line, size_t len)
{
	sink_fn(level, line, len);
	__atomic_store_n(&slow_sink_in, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&slow_sink_go, __ATOMIC_ACQUIRE))
		usleep(1000);
}

struct bad_arg {
	struct anrc_heap *h;
	char *p;
	int done;
};

static void *
bad_free_main(void *arg)
{
	struct bad_arg *a = arg;

	anrc_free(a->h, a->p);
	__atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *
big_alloc_main(void *arg)
{
	struct bad_arg *a = arg;

	a->p = anrc_alloc(a->h, 4 * MiB, 0);
	__atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * bad_free=report: the line for a bad pointer found under the heap lock
 * is written after the lock is let go.  Here the free of a pointer inside
 * a large block (judged under the lock) meets a log that blocks; another
 * thread's 4 MiB allocation, which needs the lock, must complete
 * meanwhile.  Before, the line was written under the lock and every
 * allocation that needed it waited for the log's reader.
 */
START_TEST(bad_free_told_after_the_lock)
{
	struct anrc_heap *h = heap_with(0, ANR_BAD_FREE_REPORT);
	char *big = anrc_alloc(h, 1 * MiB, 0);
	struct bad_arg bad = { .h = h, .p = big + 64 }, more = { .h = h };
	pthread_t tb, tm;
	int done = 0;

	ck_assert_ptr_nonnull(big);
	sink_reset();
	slow_sink_in = slow_sink_go = 0;
	mb_log_set_sink(slow_sink);
	ck_assert_int_eq(pthread_create(&tb, NULL, bad_free_main, &bad), 0);
	for (int i = 0; i < 10000 && !__atomic_load_n(&slow_sink_in, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	ck_assert_int_eq(slow_sink_in, 1);
	ck_assert_int_eq(bad.done, 0);
	ck_assert_int_eq(pthread_create(&tm, NULL, big_alloc_main, &more), 0);
	/* a bound on the wait, not a timing: ten seconds is a hang */
	for (int i = 0; i < 10000 && !done; i++) {
		done = __atomic_load_n(&more.done, __ATOMIC_ACQUIRE);
		if (!done)
			usleep(1000);
	}
	__atomic_store_n(&slow_sink_go, 1, __ATOMIC_RELEASE);
	pthread_join(tm, NULL);
	pthread_join(tb, NULL);
	ck_assert_msg(done, "the allocation waited for the log of a bad free");
	ck_assert_ptr_nonnull(more.p);
	ck_assert_int_eq(sink_lines, 1);
	ck_assert_ptr_nonnull(strstr(sink_buf, "inside a block"));
	anrc_free(h, more.p);
	anrc_free(h, big);
	bad_test_end(h, 1);
}
END_TEST

/* Bad pointers past the notes one lock holder keeps are counted in one
 * line, and none is lost from the count. */
START_TEST(bad_free_notes_overflow)
{
	struct anrc_heap *h = heap_with(0, ANR_BAD_FREE_REPORT);
	char *big = anrc_alloc(h, 1 * MiB, 0);

	ck_assert_ptr_nonnull(big);
	mb_log_set_sink(sink_fn);
	sink_reset();
	anrc_lock_and_drain(h);
	for (int i = 0; i < ANR_BAD_NOTES + 3; i++)
		anrc_bad(h, "free", "pointer inside a block", big + 64 * (i + 1), 1);
	ck_assert_int_eq(sink_lines, 0); /* nothing under the lock */
	anrc_unlock_and_return_pages(h);
	ck_assert_int_eq(sink_lines, ANR_BAD_NOTES + 1);
	ck_assert_ptr_nonnull(strstr(sink_buf, "3 more bad pointers"));
	anrc_free(h, big);
	bad_test_end(h, ANR_BAD_NOTES + 3);
}
END_TEST

START_TEST(bad_free_ignore)
{
	struct anrc_heap *h = heap_with(0, ANR_BAD_FREE_IGNORE);

	mb_log_set_sink(sink_fn);
	sink_reset();
	for (int k = 0; k < NBAD; k++) {
		void *keep;
		bad_free(h, k, &keep);
		anrc_free(h, keep);
	}
	ck_assert_int_eq(sink_lines, 0);
	bad_test_end(h, NBAD);
}
END_TEST

START_TEST(bad_free_abort)
{
	/* Each kind in a child: it dies with SIGABRT after one report line.
	 * The children share the parent's heap (made once: cheaper under
	 * valgrind), which each changes only in its own copy. */
	struct anrc_heap *h = heap_with(0, ANR_BAD_FREE_ABORT);
	/* every kind, or under valgrind (seconds per dying child) a third */
	int step = UNDER_VALGRIND() ? 3 : 1;

	for (int k = 0; k < NBAD; k += step) {
		int fds[2], status;
		char buf[1024];
		ssize_t n, total = 0;
		pid_t pid;

		ck_assert_int_eq(pipe(fds), 0);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			void *keep;
			struct sigaction sa = { .sa_handler = SIG_DFL };
			struct rlimit nocore = { 0, 0 };
			/* no core file (valgrind's would hold the reservation) */
			setrlimit(RLIMIT_CORE, &nocore);
			sigaction(SIGABRT, &sa, NULL);
			dup2(fds[1], 2);
			close(fds[0]);
			mb_log_init("t", 2, MB_LOG_NOTICE);
			bad_free(h, k, &keep);
			_exit(0);
		}
		close(fds[1]);
		while ((n = read(fds[0], buf + total, sizeof(buf) - 1 - (size_t)total)) > 0)
			total += n;
		buf[total] = '\0';
		close(fds[0]);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
			      "case %d: status %x", k, status);
		ck_assert_msg(strstr(buf, bad_expect[k]) != NULL, "case %d: %s", k, buf);
		ck_assert_msg(strchr(buf, '\n') == buf + total - 1, "not one line: %s", buf);
	}
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

START_TEST(two_heaps)
{
	struct anrc_heap *a = heap_with(0, ANR_BAD_FREE_REPORT);
	struct anrc_heap *b = heap_with(0, ANR_BAD_FREE_REPORT);
	struct anrc_stats st;
	void *p = anrc_alloc(a, 64, 0);

	mb_log_set_sink(sink_fn);
	sink_reset();
	ck_assert(anrc_owns(a, p));
	ck_assert(!anrc_owns(b, p));
	anrc_free(b, p);
	ck_assert_ptr_nonnull(strstr(sink_buf, "not from this heap"));
	stats(a, &st);
	ck_assert_uint_eq(st.in_use, 64);
	anrc_free(a, p);
	mb_log_set_sink(NULL);
	anrc_destroy(a);
	anrc_destroy(b);
}
END_TEST

/* The theap of a heap the calling thread used last (in a thread of the
 * test: the one its first allocation from *arg gave it). */
static void *
theap_of_new_thread(void *arg)
{
	struct anrc_heap *h = arg;
	void *p = anrc_alloc(h, 64, 0);
	struct anrc_theap *t = anrc_theap_peek(h);

	anrc_free(h, p);
	return t;
}

/*
 * A fork child keeps the forking thread's theap of every heap as that
 * thread's, not only of the heap its last call used: the theap of the
 * other heap, still named by that heap's thread key, was abandoned and
 * marked free, so a new thread of the child took it too and two threads
 * shared one theap without a lock.
 */
START_TEST(fork_child_keeps_theaps_of_two_heaps)
{
	struct anrc_heap *a = heap_plain(), *b = heap_plain();
	void *pa = anrc_alloc(a, 64, 0), *pb;
	struct anrc_theap *ta = anrc_theap_peek(a);
	pid_t pid;
	int status;

	ck_assert_ptr_nonnull(ta);
	pb = anrc_alloc(b, 64, 0); /* the thread's last heap is b now */
	anrc_fork_prepare(a);
	anrc_fork_prepare(b);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		pthread_t t;
		void *other = NULL, *q;
		int code = 0;

		anrc_fork_child(a);
		anrc_fork_child(b);
		if (__atomic_load_n(&ta->claimed, __ATOMIC_RELAXED) != ANR_TH_OWNED)
			code |= 1;
		q = anrc_alloc(a, 64, 0);
		if (q == NULL || anrc_theap_peek(a) != ta)
			code |= 2;
		if (pthread_create(&t, NULL, theap_of_new_thread, a) != 0 ||
		    pthread_join(t, &other) != 0 || other == NULL || other == ta)
			code |= 4;
		if (anrc_check(a) != 0 || anrc_check(b) != 0)
			code |= 8;
		anrc_free(a, q);
		anrc_free(a, pa);
		anrc_free(b, pb);
		anrc_destroy(a);
		anrc_destroy(b);
		_exit(code);
	}
	anrc_fork_parent(a);
	anrc_fork_parent(b);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	/* 1: the theap was marked free; 2: the thread lost it; 4: a new
	 * thread was given it; 8: a check failed */
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %x", status);
	anrc_free(a, pa);
	anrc_free(b, pb);
	anrc_destroy(a);
	anrc_destroy(b);
}
END_TEST

/* ---- deferred frees ---- */

/*
 * A second thread holds the heap lock from hold_lock_begin() until
 * hold_lock_end() or, at the latest, HOLD_MS later: a free that must wait
 * for the lock waits that long, never for ever.
 */
#define HOLD_MS 300
static struct {
	struct anrc_heap *h;
	pthread_t t;
	int locked, release;
} holder;

static void *
holder_fn(void *arg)
{
	(void)arg;
	anrc_lock_and_drain(holder.h);
	__atomic_store_n(&holder.locked, 1, __ATOMIC_RELEASE);
	for (int ms = 0; ms < HOLD_MS && !__atomic_load_n(&holder.release, __ATOMIC_ACQUIRE); ms++)
		usleep(1000);
	anrc_unlock_and_return_pages(holder.h);
	return NULL;
}

static void
hold_lock_begin(struct anrc_heap *h)
{
	holder.h = h;
	holder.locked = holder.release = 0;
	ck_assert_int_eq(pthread_create(&holder.t, NULL, holder_fn, NULL), 0);
	while (!__atomic_load_n(&holder.locked, __ATOMIC_ACQUIRE))
		usleep(100);
}

static void
hold_lock_end(void)
{
	__atomic_store_n(&holder.release, 1, __ATOMIC_RELEASE);
	pthread_join(holder.t, NULL);
}

START_TEST(deferred_free)
{
	struct anrc_heap *h = heap_with(0, ANR_BAD_FREE_REPORT);
	struct anrc_stats st;
	enum { N = 3 * ANR_DEFER_SLOTS };
	static char *v[N];
	char *p = anrc_alloc(h, 100 * KiB, 0), *q = anrc_alloc(h, 300 * KiB, 0);

	/* The lock is busy: the frees of large blocks are queued, not waited
	 * for (small objects of a thread's own slabs and medium blocks it
	 * keeps for itself never need the lock). */
	anrc_lock_and_drain(h);
	anrc_free(h, p);
	anrc_free(h, q);
	anrc_unlock_and_return_pages(h);
	stats(h, &st);
	ck_assert_uint_eq(st.deferred_frees, 2);
	ck_assert_uint_eq(st.in_use, 0);
	ck_assert_uint_eq(st.frees, 2);
	ck_assert_int_eq(anrc_check(h), 0);

	/* More than the ring holds: the frees past it wait for the lock
	 * (a second thread holds it for a while), nothing is lost. */
	for (int i = 0; i < N; i++)
		v[i] = anrc_alloc(h, ANR_RUN_CACHE_MAX + 1 + (size_t)(i % 7) * 1000, 0);
	hold_lock_begin(h);
	for (int i = 0; i < N; i++)
		anrc_free(h, v[i]);
	hold_lock_end();
	stats(h, &st);
	ck_assert_uint_eq(st.deferred_frees, 2 + ANR_DEFER_SLOTS);
	ck_assert_uint_eq(st.in_use, 0);
	ck_assert_int_eq(anrc_check(h), 0);

	/* A double free while busy: judged later, the block is not written. */
	mb_log_set_sink(sink_fn);
	sink_reset();
	p = anrc_alloc(h, 64, 0);
	q = anrc_alloc(h, 64, 0);
	anrc_free(h, p);
	memset(q, 0x11, 64);
	anrc_lock_and_drain(h);
	anrc_free(h, p);
	anrc_free(h, q + 16); /* interior pointer of a live block */
	anrc_unlock_and_return_pages(h);
	stats(h, &st);
	ck_assert_uint_eq(st.bad_frees, 2);
	ck_assert_int_eq(sink_lines, 2);
	for (int i = 0; i < 64; i++)
		ck_assert_int_eq(q[i], 0x11);
	anrc_free(h, q);
	mb_log_set_sink(NULL);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/*
 * anrc_resident() reads the resident figure within a call's bound: it
 * runs ANR_DRAIN_MAX deferred frees at most, where anrc_get_stats() runs
 * them all (gmalloc's free path asked for the statistics every quota_step
 * of frees, and so ran up to ANR_DEFER_SLOTS other threads' frees).
 */
START_TEST(resident_runs_few_deferred_frees)
{
	struct anrc_heap *h = heap_plain();
	enum { N = 3 * ANR_DRAIN_MAX };
	static char *v[N];
	struct anrc_stats st;

	for (int i = 0; i < N; i++)
		v[i] = anrc_alloc(h, ANR_RUN_CACHE_MAX + 4096, 0);
	anrc_lock_and_drain(h);
	for (int i = 0; i < N; i++)
		anrc_free(h, v[i]);
	anrc_unlock_and_return_pages(h);
	ck_assert_uint_eq(__atomic_load_n(&h->defer_count, __ATOMIC_RELAXED), N);
	size_t r = anrc_resident(h);
	ck_assert_uint_eq(__atomic_load_n(&h->defer_count, __ATOMIC_RELAXED), N - ANR_DRAIN_MAX);
	ck_assert_uint_ge(r, (size_t)(N - ANR_DRAIN_MAX) * (ANR_RUN_CACHE_MAX + 4096));
	stats(h, &st);
	ck_assert_uint_eq(__atomic_load_n(&h->defer_count, __ATOMIC_RELAXED), 0);
	ck_assert_uint_eq(st.in_use, 0);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/*
 * The ring full, a double free and a free of an interior pointer: both
 * are judged before anything is written into a block.  (They once went
 * on a list linked through the blocks: the double free made a cycle that
 * the next lock holder followed for ever, the interior pointer's link
 * overwrote 8 bytes of a live block.)
 */
START_TEST(deferred_ring_full_bad_frees)
{
	struct anrc_heap *h = heap_with(0, ANR_BAD_FREE_REPORT);
	struct anrc_stats st;
	static char *v[ANR_DEFER_SLOTS];
	char *p, *q;

	for (int i = 0; i < ANR_DEFER_SLOTS; i++)
		v[i] = anrc_alloc(h, ANR_SLAB_MAX + 1, 0);
	p = anrc_alloc(h, ANR_SLAB_MAX + 1, 0);
	q = anrc_alloc(h, ANR_SLAB_MAX + 1, 0);
	memset(q, 0x11, 64);
	mb_log_set_sink(sink_fn);
	sink_reset();
	hold_lock_begin(h);
	for (int i = 0; i < ANR_DEFER_SLOTS; i++)
		anrc_free(h, v[i]); /* fills the ring */
	anrc_free(h, p);
	anrc_free(h, p);
	anrc_free(h, q + 16);
	hold_lock_end();
	stats(h, &st);
	mb_log_set_sink(NULL);
	ck_assert_uint_eq(st.bad_frees, 2);
	ck_assert_int_eq(sink_lines, 2);
	for (int i = 0; i < 64; i++)
		ck_assert_int_eq(q[i], 0x11);
	ck_assert_uint_eq(st.in_use, anrc_usable_size(h, q));
	anrc_free(h, q);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/* ---- thread heaps ---- */

/* A slab emptied and kept as the spare, then allocated from again, is
 * live: giving the kept empty slabs back must leave it alone. */
START_TEST(theap_spare_reused_then_trim)
{
	struct anrc_heap *h = heap_plain();
	/* objects in one slab of the 16-byte class */
	const int PER = (int)h->cls[0].nobjs, N = 3 * PER, MORE = 1;
	static unsigned char *v[3 * 4096 + 1];
	struct anrc_stats st, st2;

	ck_assert_int_le(N + MORE, 3 * 4096 + 1);

	for (int i = 0; i < N; i++) {
		v[i] = anrc_alloc(h, 16, 0);
		memset(v[i], i & 0xff, 16);
	}
	/* Free a whole slab's worth in the middle: it becomes the spare; the
	 * next allocation finds the last slab full and takes the spare. */
	for (int i = PER; i < 2 * PER; i++) {
		anrc_free(h, v[i]);
		v[i] = NULL;
	}
	stats(h, &st);
	for (int i = N; i < N + MORE; i++) {
		v[i] = anrc_alloc(h, 16, 0);
		memset(v[i], i & 0xff, 16);
	}
	/* the spare was taken: no new pages */
	stats(h, &st2);
	ck_assert_uint_eq(st2.resident, st.resident);
	anrc_trim(h, 0);
	ck_assert_int_eq(anrc_check(h), 0);
	for (int i = 0; i < N + MORE; i++)
		if (v[i] != NULL)
			for (int j = 0; j < 16; j++)
				ck_assert_int_eq(v[i][j], i & 0xff);
	for (int i = 0; i < N + MORE; i++)
		anrc_free(h, v[i]);
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, 0);
	ck_assert_uint_eq(st.allocs, st.frees);
	anrc_destroy(h);
}
END_TEST

struct xfree {
	struct anrc_heap *h;
	char **v;
	int n;
};

static void *
xfree_fn(void *arg)
{
	struct xfree *x = arg;

	for (int i = 0; i < x->n; i++)
		anrc_free(x->h, x->v[i]);
	return NULL;
}

static void *
alloc_and_exit_fn(void *arg)
{
	struct xfree *x = arg;

	for (int i = 0; i < x->n; i++) {
		x->v[i] = anrc_alloc(x->h, 48, 0);
		memset(x->v[i], 0x5a, 48);
	}
	return NULL;
}

/*
 * Frees from another thread: counted at once, reused by the owner, and a
 * second free of the same object or a free of an interior pointer is
 * reported before anything is written into the block.
 */
START_TEST(theap_remote_frees)
{
	struct anrc_heap *h = heap_with(0, ANR_BAD_FREE_REPORT);
	enum { N = 2000 };
	static char *v[N];
	struct xfree x = { .h = h, .v = v, .n = N };
	struct anrc_stats st, st2;
	pthread_t t;
	char *live;

	for (int i = 0; i < N; i++)
		v[i] = anrc_alloc(h, 64, 0);
	live = anrc_alloc(h, 64, 0);
	memset(live, 0x33, 64);
	stats(h, &st);
	ck_assert_int_eq(pthread_create(&t, NULL, xfree_fn, &x), 0);
	pthread_join(t, NULL);
	stats(h, &st2);
	ck_assert_uint_eq(st2.in_use, st.in_use - (size_t)N * 64);
	ck_assert_uint_eq(st2.frees, st.frees + N);
	ck_assert_uint_eq(st2.resident, st.resident);

	/* The owner gets the objects back without new pages. */
	for (int i = 0; i < N; i++)
		v[i] = anrc_alloc(h, 64, 0);
	stats(h, &st2);
	ck_assert_uint_eq(st2.resident, st.resident);
	ck_assert_uint_eq(st2.in_use, st.in_use);

	/* Bad frees from another thread. */
	mb_log_set_sink(sink_fn);
	sink_reset();
	x.n = 1;
	ck_assert_int_eq(pthread_create(&t, NULL, xfree_fn, &x), 0);
	pthread_join(t, NULL);
	ck_assert_int_eq(pthread_create(&t, NULL, xfree_fn, &x), 0);
	pthread_join(t, NULL); /* double free */
	v[0] = live + 16;
	ck_assert_int_eq(pthread_create(&t, NULL, xfree_fn, &x), 0);
	pthread_join(t, NULL); /* interior pointer */
	anrc_free(h, live + 32); /* interior pointer, owner */
	mb_log_set_sink(NULL);
	stats(h, &st2);
	ck_assert_uint_eq(st2.bad_frees, 3);
	ck_assert_int_eq(sink_lines, 3);
	for (int i = 0; i < 64; i++)
		ck_assert_int_eq(live[i], 0x33);
	anrc_free(h, live);
	for (int i = 1; i < N; i++)
		anrc_free(h, v[i]);
	stats(h, &st2);
	ck_assert_uint_eq(st2.in_use, 0);
	ck_assert_uint_eq(st2.allocs, st2.frees);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/* malloc takes objects from a bitmap word the thread holds: an object
 * freed while its word is held is free in the bitmap (a second free is
 * reported) and is handed out again only once, and the counts stay
 * exact. */
/*
 * The objects of the word malloc holds are left out of their slab's nfree;
 * a current slab must not stop being current with objects held (its
 * nfree would then say empty while no count has it): an aligned
 * allocation, which refills under the lock, used to add a new slab while
 * the held word still had the freed object, and the old slab stayed in
 * the ring empty, past the trim.
 */
START_TEST(held_word_kept_through_locked_refill)
{
	struct anrc_heap *h = heap_plain();
	const size_t size = ANR_SLAB_MAX; /* the fewest objects per slab */
	unsigned c = anrc_size_class(size);
	struct anrc_theap *t;
	struct anrc_stats st;
	void *a, *b;

	a = anrc_alloc(h, size, 0);
	ck_assert_ptr_nonnull(a);
	anrc_free(h, a); /* back into the held word */
	t = anrc_theap_peek(h);
	ck_assert_ptr_nonnull(t);
	if (!UNDER_VALGRIND()) {
		/* (under valgrind every free takes the full path, which
		 * drops the held word) */
		ck_assert_uint_eq(__builtin_popcountll(t->cl[c].avail), h->cls[c].nobjs);
		ck_assert_uint_eq(h->pm[t->cur[c]].nfree, 0);
	}
	ck_assert_int_eq(anrc_check(h), 0);
	b = anrc_alloc_aligned(h, 4096, size, 0);
	ck_assert_ptr_eq(b, a); /* the held object, no new slab */
	ck_assert_uint_eq(t->nslabs[c], 1);
	anrc_free(h, b);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_trim(h, 0);
	stats(h, &st);
	ck_assert_uint_eq(st.slab_free, 0);
	ck_assert_uint_eq(t->nslabs[c], 0);
	anrc_destroy(h);
}
END_TEST

START_TEST(held_word_frees)
{
	struct anrc_heap *h = heap_with(0, ANR_BAD_FREE_REPORT);
	enum { N = 300 };
	static char *v[N];
	struct anrc_stats st;

	mb_log_set_sink(sink_fn);
	for (int round = 0; round < 3; round++) {
		sink_reset();
		for (int i = 0; i < N; i++) {
			v[i] = anrc_alloc(h, 48, 0);
			ck_assert_ptr_nonnull(v[i]);
			memset(v[i], i & 0xff, 48);
		}
		/* every third goes back, then twice: the second is refused */
		for (int i = 0; i < N; i += 3)
			anrc_free(h, v[i]);
		anrc_free(h, v[3]);
		ck_assert_int_eq(sink_lines, 1);
		for (int i = 0; i < N; i += 3)
			v[i] = anrc_alloc(h, 48, 0);
		/* no object is handed out twice: each holds its own mark */
		for (int i = 0; i < N; i++)
			memset(v[i], i & 0xff, 48);
		for (int i = 0; i < N; i++)
			for (int j = 0; j < 48; j++)
				ck_assert_int_eq((unsigned char)v[i][j], i & 0xff);
		stats(h, &st);
		ck_assert_uint_eq(st.in_use, (size_t)N * 48);
		ck_assert_int_eq(anrc_check(h), 0);
		for (int i = 0; i < N; i++)
			anrc_free(h, v[i]);
		stats(h, &st);
		ck_assert_uint_eq(st.in_use, 0);
		ck_assert_uint_eq(st.allocs, st.frees);
		ck_assert_uint_eq(st.bad_frees, (uint64_t)round + 1);
	}
	mb_log_set_sink(NULL);
	anrc_destroy(h);
}
END_TEST

/* A thread's allocations look at no more slab bitmap words than
 * ANR_THEAP_STEPS_MAX (plus one page search for a new slab): one thread,
 * no frees of other threads, no page return, so nothing else counts.
 * Its slabs of 16-byte objects (the most words) are kept nearly full, so
 * that allocations load words, scan rings and take new slabs. */
START_TEST(theap_steps_bounded)
{
	struct anrc_config c = { .reserve = 256 * MiB, .free_low = 64 * MiB,
				.free_high = 128 * MiB, .bad_free = ANR_BAD_FREE_ABORT,
				.valgrind = 1 };
	struct anrc_heap *h = anrc_create(&c);
	enum { N = 40000 };
	static char *v[N];
	uint64_t before, used, worst = 0, slow = 0;

	ck_assert_ptr_nonnull(h);
	for (unsigned round = 0; round < 4; round++) {
		for (unsigned i = 0; i < N; i++) {
			before = anrc_step_count;
			v[i] = anrc_alloc(h, 16, 0);
			used = anrc_step_count - before;
			ck_assert_ptr_nonnull(v[i]);
			ck_assert_uint_le(used, ANR_THEAP_STEPS_MAX + ANR_BM_STEPS_MAX);
			if (used > worst)
				worst = used;
			slow += used > 0;
		}
		/* free all but one in 97: every slab keeps objects live */
		for (unsigned i = 0; i < N; i++)
			if ((i + round) % 97 != 0) {
				anrc_free(h, v[i]);
				v[i] = NULL;
			}
	}
	/* the counted paths ran: words loaded, slabs scanned */
	ck_assert_uint_gt(slow, N / 64);
	ck_assert_uint_gt(worst, ANR_SLAB_WORDS_MAX);
	for (unsigned i = 0; i < N; i++)
		anrc_free(h, v[i]);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/* Every small class's slabs start a page group and fill it, so the
 * metadata lines one thread writes on its fast paths (page map entry,
 * allocation and remote-free bitmaps) hold nothing of another thread's
 * slabs. */
struct grab {
	struct anrc_heap *h;
	pthread_barrier_t *bar; /* the thread lives on until the checks are done */
	void *p[ANR_NCLASSES];
};

static void *
grab_fn(void *arg)
{
	struct grab *g = arg;

	for (unsigned c = 0; c < ANR_NCLASSES; c++)
		g->p[c] = anrc_alloc(g->h, g->h->cls[c].size, 0);
	if (g->bar != NULL) {
		pthread_barrier_wait(g->bar);
		pthread_barrier_wait(g->bar);
	}
	return NULL;
}

static void
slab_lines(struct anrc_heap *h, void *p, uintptr_t lo[3], uintptr_t hi[3])
{
	uint32_t s = anrc_slab_head(h, (size_t)((char *)p - h->data) >> h->page_shift);
	const struct anrc_class *k = &h->cls[h->pm[s].cls];

	if (k->size <= ANR_SLAB_GROUPED_MAX) {
		ck_assert_uint_eq(s % ANR_SLAB_GROUP, 0);
		ck_assert_uint_eq(k->npages % ANR_SLAB_GROUP, 0);
	}
	lo[0] = (uintptr_t)&h->pm[s] / ANR_CACHE_LINE;
	hi[0] = ((uintptr_t)&h->pm[s + k->npages] - 1) / ANR_CACHE_LINE;
	lo[1] = (uintptr_t)anrc_slab_bits(h, s) / ANR_CACHE_LINE;
	hi[1] = ((uintptr_t)(anrc_slab_bits(h, s) + k->words) - 1) / ANR_CACHE_LINE;
	lo[2] = (uintptr_t)anrc_slab_rfree(h, s) / ANR_CACHE_LINE;
	hi[2] = ((uintptr_t)(anrc_slab_rfree(h, s) + k->words) - 1) / ANR_CACHE_LINE;
	/* The lines are the slab's own: its pages' share, nothing more. */
	ck_assert_uint_le(hi[1], ((uintptr_t)anrc_slab_bits(h, s + k->npages) - 1) / ANR_CACHE_LINE);
}

START_TEST(slab_lines_not_shared)
{
	struct anrc_heap *h = heap_plain();
	pthread_barrier_t bar;
	struct grab a = { .h = h, .bar = &bar }, b = { .h = h };
	pthread_t t;

	ck_assert_uint_eq((uintptr_t)h->pm % ANR_CACHE_LINE, 0);
	ck_assert_uint_eq((uintptr_t)h->slabbits % ANR_CACHE_LINE, 0);
	pthread_barrier_init(&bar, NULL, 2);
	ck_assert_int_eq(pthread_create(&t, NULL, grab_fn, &a), 0);
	pthread_barrier_wait(&bar);
	grab_fn(&b);
	for (unsigned c = 0; c < ANR_NCLASSES; c++) {
		uintptr_t alo[3], ahi[3], blo[3], bhi[3];
		ck_assert_ptr_nonnull(a.p[c]);
		ck_assert_ptr_nonnull(b.p[c]);
		slab_lines(h, a.p[c], alo, ahi);
		/* the words a free checks: one line from 64-byte objects up */
		if (h->cls[c].size >= 64)
			ck_assert_msg(alo[1] == ahi[2], "class %u: allocation and remote-free "
				      "bitmaps on lines %zu and %zu", c, (size_t)(alo[1] & 0xffff),
				      (size_t)(ahi[2] & 0xffff));
		if (h->cls[c].size > ANR_SLAB_GROUPED_MAX)
			continue; /* large classes: single pages, lines may be shared */
		for (unsigned d = 0; d < ANR_NCLASSES; d++) {
			slab_lines(h, b.p[d], blo, bhi);
			for (int i = 0; i < 3; i++)
				ck_assert_msg(ahi[i] < blo[i] || bhi[i] < alo[i],
					      "classes %u and %u share a line of array %d", c, d, i);
		}
	}
	pthread_barrier_wait(&bar);
	pthread_join(t, NULL);
	pthread_barrier_destroy(&bar);
	for (unsigned c = 0; c < ANR_NCLASSES; c++) {
		anrc_free(h, a.p[c]);
		anrc_free(h, b.p[c]);
	}
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/*
 * Two threads that take new slabs of a small class in turn: the two
 * four-page groups of each aligned pair (whose page map lines the CPU
 * fetches together) go to one thread.  First-fit handed them out
 * alternately, one group to each thread.
 */
enum { PAIR_ROUNDS = 6, PAIR_SIZE = 512 };

struct pair_turns {
	struct anrc_heap *h;
	pthread_barrier_t bar;
	void *p[2][PAIR_ROUNDS];
};

static void
pair_take(struct pair_turns *pt, int me)
{
	const struct anrc_class *k = &pt->h->cls[anrc_size_class(PAIR_SIZE)];

	for (int r = 0; r < PAIR_ROUNDS; r++) {
		for (int turn = 0; turn < 2; turn++) {
			/* a whole slab's objects: the first one takes a new slab */
			if (turn == me)
				for (unsigned i = 0; i < k->nobjs; i++) {
					void *q = anrc_alloc(pt->h, PAIR_SIZE, 0);
					ck_assert_ptr_nonnull(q);
					if (i == 0)
						pt->p[me][r] = q;
				}
			pthread_barrier_wait(&pt->bar);
		}
	}
}

static void *
pair_fn(void *arg)
{
	pair_take(arg, 1);
	return NULL;
}

START_TEST(slab_pairs_per_thread)
{
	static struct pair_turns pt;
	const struct anrc_class *k;
	pthread_t t;
	int shared = 0;

	pt.h = heap_plain();
	k = &pt.h->cls[anrc_size_class(PAIR_SIZE)];
	ck_assert_uint_eq(k->npages, ANR_SLAB_GROUP);
	pthread_barrier_init(&pt.bar, NULL, 2);
	ck_assert_int_eq(pthread_create(&t, NULL, pair_fn, &pt), 0);
	pair_take(&pt, 0);
	pthread_join(t, NULL);
	pthread_barrier_destroy(&pt.bar);
	for (int me = 0; me < 2; me++)
		for (int r = 0; r < PAIR_ROUNDS; r++) {
			size_t i = (size_t)((char *)pt.p[me][r] - pt.h->data) >> pt.h->page_shift;
			uint32_t s = anrc_slab_head(pt.h, i), b = s ^ ANR_SLAB_GROUP;
			ck_assert_uint_eq(s % ANR_SLAB_GROUP, 0);
			if (pt.h->pm[b].kind == ANR_PG_SLAB && pt.h->owner[b] != pt.h->owner[s])
				shared++;
		}
	ck_assert_msg(shared == 0, "%d slabs share their pair of groups with the other thread",
		      shared);
	anrc_destroy(pt.h);
}
END_TEST

/* The slabs of a thread that exits become shared; the next thread adopts
 * them instead of taking new pages. */
START_TEST(theap_exit_adopted)
{
	struct anrc_heap *h = heap_plain();
	enum { N = 3000 };
	static char *v[N];
	struct xfree x = { .h = h, .v = v, .n = N };
	struct anrc_stats st, st2;
	pthread_t t;

	ck_assert_int_eq(pthread_create(&t, NULL, alloc_and_exit_fn, &x), 0);
	pthread_join(t, NULL);
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, (size_t)N * 48);
	ck_assert_int_eq(anrc_check(h), 0);
	/* Free every other one here (the slabs are shared now). */
	for (int i = 0; i < N; i += 2)
		anrc_free(h, v[i]);
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, (size_t)N / 2 * 48);
	/* A new thread fills the holes. */
	x.n = N / 2;
	x.v = v + N; /* unused below: the thread writes into a second array */
	{
		static char *w[N / 2];
		x.v = w;
		ck_assert_int_eq(pthread_create(&t, NULL, alloc_and_exit_fn, &x), 0);
		pthread_join(t, NULL);
		stats(h, &st2);
		ck_assert_uint_eq(st2.resident, st.resident);
		for (int i = 0; i < N / 2; i++)
			anrc_free(h, w[i]);
	}
	for (int i = 1; i < N; i += 2) {
		for (int j = 0; j < 48; j++)
			ck_assert_int_eq(v[i][j], 0x5a);
		anrc_free(h, v[i]);
	}
	stats(h, &st2);
	ck_assert_uint_eq(st2.in_use, 0);
	ck_assert_uint_eq(st2.allocs, st2.frees);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

struct keeper {
	struct anrc_heap *h;
	pthread_barrier_t *b;
};

/* Allocates and frees small objects of many classes (keeping empty slabs),
 * waits, then allocates once more (a class it never used). */
static void *
keeper_fn(void *arg)
{
	struct keeper *k = arg;
	static void *v[40][32];
	void *q;

	for (int c = 0; c < 40; c++)
		for (int i = 0; i < 32; i++)
			v[c][i] = anrc_alloc(k->h, (size_t)c * 96 + 1, 0);
	for (int c = 0; c < 40; c++)
		for (int i = 0; i < 32; i++)
			anrc_free(k->h, v[c][i]);
	pthread_barrier_wait(k->b); /* 1: empties kept */
	pthread_barrier_wait(k->b); /* 2: release asked for */
	q = anrc_alloc(k->h, 48, 0);
	anrc_free(k->h, q);
	pthread_barrier_wait(k->b); /* 3 */
	pthread_barrier_wait(k->b); /* 4: stay alive until checked */
	return NULL;
}

/* anrc_release_free gives back every free page and has the other threads
 * give back their kept empty slabs, without waiting for them. */
START_TEST(release_free_all_threads)
{
	struct anrc_heap *h = heap_plain();
	pthread_barrier_t b;
	struct keeper k = { .h = h, .b = &b };
	struct anrc_stats st, st2;
	pthread_t t;
	char *big;
	size_t given;

	pthread_barrier_init(&b, NULL, 2);
	ck_assert_int_eq(pthread_create(&t, NULL, keeper_fn, &k), 0);
	pthread_barrier_wait(&b);
	big = anrc_alloc(h, 300 * KiB, 0);
	memset(big, 1, 300 * KiB);
	anrc_free(h, big);
	stats(h, &st);
	ck_assert_uint_gt(st.slab_free, 0);
	given = anrc_release_free(h);
	stats(h, &st2);
	ck_assert_uint_ge(given, st.free_resident);
	ck_assert_uint_eq(st2.free_resident, 0);
	pthread_barrier_wait(&b);
	pthread_barrier_wait(&b);
	anrc_release_free(h);
	stats(h, &st2);
	/* what the thread kept went back; only its one current slab stays */
	ck_assert_uint_eq(st2.slab_free, (size_t)h->cls[anrc_size_class(48)].npages *
					  (size_t)sysconf(_SC_PAGESIZE));
	ck_assert_uint_lt(st2.slab_free, st.slab_free);
	ck_assert_uint_eq(st2.free_resident, 0);
	pthread_barrier_wait(&b);
	pthread_join(t, NULL);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/* ---- runs a thread keeps for its medium blocks (runcache.c) ---- */

/* A heap whose thread caches are on under valgrind too (its client
 * requests turn them off). */
static struct anrc_heap *
heap_cached(size_t budget, enum anrc_bad_free_action bad)
{
	struct anrc_config c = { .reserve = TEST_RESERVE, .budget = budget, .bad_free = bad };
	struct anrc_heap *h = anrc_create(&c);
	ck_assert_ptr_nonnull(h);
	return h;
}

static long
thread_minflt(void)
{
	struct rusage r;

	getrusage(RUSAGE_THREAD, &r);
	return r.ru_minflt;
}

/*
 * The real-time pattern: one thread mallocs, writes and frees a block of
 * 4..64 KiB in a loop, with the marks at zero so that any free page would
 * go back to the kernel at once.  After every size has been seen once,
 * the loop takes the heap lock no more, calls no madvise and takes no
 * page fault: the thread's own empty slabs and kept runs serve it.  (The
 * pages used to go back to the span allocator under the lock, were given
 * to the kernel and faulted in again: 8 faults per 32 KiB block.)
 */
START_TEST(runcache_rt_loop)
{
	struct anrc_heap *h = heap_cached(0, ANR_BAD_FREE_ABORT);
	struct anrc_stats st, st2;
	uint64_t x = 88172645463325252ull, locks = 0;
	unsigned n = scaled(4000);
	long faults = 0;

	anrc_set_marks(h, 0, 0);
	for (int round = 0; round < 2; round++) {
		if (round == 1) {
			stats(h, &st);
			locks = anrc_lock_count;
			faults = thread_minflt();
		}
		/* the 32 KiB block first, then every size from 4 to 64 KiB */
		for (unsigned i = 0; i < n; i++) {
			size_t size = 32 * KiB;
			char *p;
			if (i >= n / 4) {
				x ^= x << 13; x ^= x >> 7; x ^= x << 17;
				size = 4 * KiB + (size_t)(x % (60 * KiB + 1));
			}
			if (round == 0 && i >= n / 4)
				size = 4 * KiB + (size_t)(i % 61) * KiB; /* all sizes once */
			p = anrc_alloc(h, size, 0);
			ck_assert_ptr_nonnull(p);
			memset(p, (int)i, size);
			anrc_free(h, p);
		}
	}
	ck_assert_uint_eq(anrc_lock_count - locks, 0);
	if (!UNDER_VALGRIND())
		ck_assert_int_le(thread_minflt() - faults, 2);
	stats(h, &st2);
	ck_assert_uint_eq(st2.madvise_calls, st.madvise_calls);
	ck_assert_uint_eq(st2.in_use, 0);
	ck_assert_uint_le(anrc_runs_kept_bytes(h), ANR_RUN_CACHE_BYTES);
	ck_assert_int_eq(anrc_check(h), 0);
	/* A give-back takes all of it. */
	anrc_release_free(h);
	ck_assert_int_eq(anrc_check(h), 0);
	ck_assert_uint_eq(anrc_runs_kept_bytes(h), 0);
	stats(h, &st);
	ck_assert_uint_eq(st.resident, 0);
	anrc_destroy(h);
}
END_TEST

/*
 * Locks the calling thread takes while it replaces random ones of 8 live
 * blocks of min..max bytes 4,000 times, after 1,000 replacements to warm
 * up; everything is freed at the end.
 */
static uint64_t
locks_replacing(struct anrc_heap *h, size_t min, size_t max)
{
	enum { LIVE = 8, WARM = 1000, N = 4000 };
	char *v[LIVE] = { 0 };
	uint64_t x = 88172645463325252ull, locks = 0;

	for (unsigned i = 0; i < N + WARM; i++) {
		unsigned k;
		size_t size;
		if (i == WARM)
			locks = anrc_lock_count;
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		k = (unsigned)(x % LIVE);
		size = min + (size_t)((x >> 20) % (max - min + 1));
		anrc_free(h, v[k]);
		v[k] = anrc_alloc(h, size, 0);
		ck_assert_ptr_nonnull(v[k]);
		v[k][size - 1] = 1;
	}
	locks = anrc_lock_count - locks;
	for (unsigned k = 0; k < LIVE; k++)
		anrc_free(h, v[k]);
	return locks;
}

/*
 * The class of the fewest objects per slab (ANR_SLAB_MAX, one a slab when
 * this test was written, ANR_SLAB_MIN_OBJS now): a thread replacing
 * random ones of a few live objects takes the heap lock on few calls.
 * Its kept empty slab serves a refill wherever it is in the ring, and a
 * slab a free empties becomes the current one when that one is full.
 * (The refill looked at the next four slabs of the ring only, and an
 * emptied slab went back under the lock when the spare was taken: 1,512
 * locks in 4,000 replacements here; none now.)
 */
START_TEST(few_object_class_rarely_locks)
{
	struct anrc_heap *h = heap_plain();
	uint64_t locks;

	ck_assert_uint_eq(h->cls[anrc_size_class(ANR_SLAB_MAX)].nobjs, ANR_SLAB_MIN_OBJS);
	locks = locks_replacing(h, ANR_SLAB_MAX, ANR_SLAB_MAX);
	if (!UNDER_VALGRIND())
		ck_assert_uint_le(locks, 400);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/*
 * Locks the calling thread takes in rounds 2..rounds of allocating n
 * blocks of sizes[] (each written) and freeing them all; the heap is
 * checked and destroyed.
 */
static uint64_t
locks_in_rounds(struct anrc_heap *h, const size_t *sizes, unsigned n, unsigned rounds)
{
	char *v[256];
	uint64_t locks = 0;

	ck_assert_uint_le(n, 256);
	for (unsigned round = 0; round < rounds; round++) {
		if (round == 1)
			locks = anrc_lock_count;
		for (unsigned i = 0; i < n; i++) {
			v[i] = anrc_alloc(h, sizes[i], 0);
			ck_assert_ptr_nonnull(v[i]);
			v[i][sizes[i] - 1] = 1;
		}
		for (unsigned i = 0; i < n; i++)
			anrc_free(h, v[i]);
	}
	locks = anrc_lock_count - locks;
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
	return locks;
}

/*
 * A thread that allocates objects of a class enough for three slabs (two
 * objects a slab when this test was written), and a few of other classes,
 * then frees them all, over and over (a request handler), needs several
 * slabs of a class and keeps them empty between rounds: after the first round it takes the heap lock on no call.  (With
 * one kept empty slab per class, the third went back under the lock on
 * each round and was taken again under it on the next: 200 locks in 100
 * rounds here.)  Under valgrind every call takes the lock (valgrind is
 * told of each block).
 */
START_TEST(emptied_slabs_kept_per_class)
{
	struct anrc_heap *h = heap_plain();
	const size_t others[] = { 1792, 1792, 1280, 64, 300 };
	size_t sizes[256];
	unsigned n = 2 * h->cls[anrc_size_class(2048)].nobjs + 1;

	ck_assert_uint_le(n + 5, 256);
	for (unsigned i = 0; i < n; i++)
		sizes[i] = 2048;
	for (unsigned i = 0; i < 5; i++)
		sizes[n++] = others[i];
	uint64_t locks = locks_in_rounds(h, sizes, n, 101);
	if (!UNDER_VALGRIND())
		ck_assert_msg(locks == 0, "%llu locks in 100 rounds", (unsigned long long)locks);
}
END_TEST

/*
 * The same with 256 objects of 16 bytes to 3 KiB, some classes needing
 * several slabs (eight and more when they held one to four objects a slab): within the bound of
 * kept empty pages, the rounds after the first take no lock.  (With four
 * kept empty slabs per class: 162 locks in those three rounds.)
 */
START_TEST(emptied_slabs_kept_many_classes)
{
	size_t sizes[256];
	uint64_t locks;

	for (unsigned k = 0; k < 256; k++)
		sizes[k] = 16 + (size_t)(k * 97) % 3000;
	locks = locks_in_rounds(heap_cached(0, ANR_BAD_FREE_ABORT), sizes, 256, 4);
	if (!UNDER_VALGRIND())
		ck_assert_msg(locks == 0, "%llu locks in three rounds", (unsigned long long)locks);
}
END_TEST

/*
 * realloc and the usable size of an object of the calling thread's slabs
 * take no lock: the object is judged from the metadata as its free is,
 * kept where the locked path keeps it, else moved by the fast paths.  A
 * string grown 8 bytes at a time up to 4 KiB keeps its bytes, and what is
 * judged not live (freed, interior) still takes the locked path, which
 * reports it.  (Every realloc took the heap lock: 2,100 locks in the two
 * rounds after the first.)
 */
START_TEST(realloc_small_takes_no_lock)
{
	struct anrc_heap *h = heap_with(0, ANR_BAD_FREE_REPORT);
	uint64_t locks = 0;
	char *p = NULL;

	mb_log_set_sink(sink_fn);
	for (int round = 0; round < 3; round++) {
		if (round == 1)
			locks = anrc_lock_count;
		p = NULL;
		for (size_t n = 8; n <= ANR_SLAB_MAX; n += 8) {
			p = anrc_realloc(h, p, n, 0);
			ck_assert_ptr_nonnull(p);
			p[n - 1] = (char)(n / 8);
			ck_assert_uint_ge(anrc_usable_size(h, p), n);
		}
		for (size_t n = 8; n <= ANR_SLAB_MAX; n += 8)
			ck_assert_int_eq(p[n - 1], (char)(n / 8));
		anrc_free(h, p);
	}
	locks = anrc_lock_count - locks;
	if (!UNDER_VALGRIND())
		ck_assert_msg(locks == 0, "%llu locks in two rounds", (unsigned long long)locks);

	/* freed or interior: not judged live, reported by the locked path */
	sink_reset();
	p = anrc_alloc(h, 100, 0);
	ck_assert_uint_eq(anrc_usable_size(h, p + 16), 0);
	ck_assert_ptr_null(anrc_realloc(h, p + 16, 50, 0));
	anrc_free(h, p);
	ck_assert_uint_eq(anrc_usable_size(h, p), 0);
	ck_assert_ptr_null(anrc_realloc(h, p, 50, 0));
	ck_assert_int_eq(sink_lines, 2);
	bad_test_end(h, 2);
}
END_TEST

/*
 * The inlined free serves an object on any page of its slab: on a later
 * page it finds the slab's first page from the distance in the page's
 * entry, without a branch on which kind of page it is (anrc_fast_slab),
 * and judges the object as on the first page; a pointer inside an object
 * on such a page is refused with nothing written.  Under valgrind the
 * fast paths are off (every block is reported to it on the full path).
 */
START_TEST(fast_free_on_every_page_of_a_slab)
{
	enum { N = 256 };
	struct anrc_heap *h = heap_plain();
	char *p[N];
	int later = 0;

	for (int i = 0; i < N; i++) {
		p[i] = anrc_alloc(h, 64, 0);
		ck_assert_ptr_nonnull(p[i]);
		memset(p[i], 0x3c, 64);
	}
	for (int i = 0; i < N; i++) {
		size_t off, pg = anrc_data_page(h, p[i], &off);
		later += h->pm[pg].kind == ANR_PG_SLAB_BODY;
	}
	ck_assert_int_gt(later, N / 2);
	if (UNDER_VALGRIND()) {
		ck_assert_int_eq(anrc_free_fast(h, p[1]), 0);
	} else {
		/* one object stays, so that no slab empties (that free is
		 * the out-of-line path's) */
		for (int i = 1; i < N; i++) {
			size_t off, pg = anrc_data_page(h, p[i], &off);
			if (h->pm[pg].kind == ANR_PG_SLAB_BODY) {
				ck_assert_int_eq(anrc_free_fast(h, p[i] + 16), 0);
				ck_assert_int_eq(p[i][16], 0x3c);
			}
			ck_assert_int_eq(anrc_free_fast(h, p[i]), 1);
			p[i] = NULL;
		}
	}
	for (int i = 0; i < N; i++)
		anrc_free(h, p[i]);
	empty_heap_end(h);
}
END_TEST

/*
 * The object malloc handed out last is freed from its two bits
 * (anrc_free_last), and only while it is live and its word still held:
 * taken once and handed out again next; refused after a free by the slab
 * path or by another thread (the next free is a double free, reported with
 * nothing written); refused once its word was dropped (a give-back), the
 * slab path freeing it then; refused for another heap's object at the same
 * offset, which is freed in its own heap.
 */
START_TEST(free_of_the_last_object)
{
	struct anrc_heap *h = heap_with(0, ANR_BAD_FREE_REPORT), *other;
	struct anrc_stats st;
	char *p, *q, *o = NULL, *v[64];
	struct xfree x = { .h = h, .v = &p, .n = 1 };
	int n;
	pthread_t t;

	p = anrc_alloc(h, 64, 0);
	if (UNDER_VALGRIND()) { /* no fast paths under valgrind */
		ck_assert_int_eq(anrc_free_last(h, p), 0);
		anrc_free(h, p);
		empty_heap_end(h);
		return;
	}
	mb_log_set_sink(sink_fn);
	sink_reset();
	ck_assert_int_eq(anrc_free_last(h, p + 16), 0);
	ck_assert_int_eq(anrc_free_last(h, p), 1);
	ck_assert_uint_eq(anrc_usable_size(h, p), 0);
	ck_assert_int_eq(anrc_free_last(h, p), 0);
	q = anrc_alloc(h, 64, 0);
	ck_assert_ptr_eq(q, p);

	/* Freed by the slab path, then again. */
	ck_assert_int_eq(anrc_free_slab_fast(h, p), 1);
	ck_assert_int_eq(anrc_free_last(h, p), 0);
	anrc_free(h, p);
	stats(h, &st);
	ck_assert_uint_eq(st.bad_frees, 1);

	/* Freed by another thread, then by the owner. */
	q = anrc_alloc(h, 64, 0);
	ck_assert_ptr_eq(q, p);
	memset(p, 0x22, 64);
	ck_assert_int_eq(pthread_create(&t, NULL, xfree_fn, &x), 0);
	pthread_join(t, NULL);
	ck_assert_int_eq(anrc_free_last(h, p), 0);
	anrc_free(h, p);
	stats(h, &st);
	ck_assert_uint_eq(st.bad_frees, 2);
	ck_assert_int_eq(sink_lines, 2);
	ck_assert_ptr_nonnull(strstr(sink_buf, "double free"));
	ck_assert_int_eq(p[0], 0x22);
	ck_assert_uint_eq(st.in_use, 0);

	/* Its word dropped by a give-back. */
	p = anrc_alloc(h, 64, 0);
	(void)anrc_release_free(h);
	ck_assert_int_eq(anrc_free_last(h, p), 0);
	anrc_free(h, p);
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, 0);
	ck_assert_uint_eq(st.bad_frees, 2);

	/* Another heap's last object at the same offset. */
	p = anrc_alloc(h, 64, 0);
	other = heap_with(0, ANR_BAD_FREE_REPORT);
	for (n = 0; n < 64; n++) {
		o = v[n] = anrc_alloc(other, 64, 0);
		if (o - other->data >= p - h->data)
			break;
	}
	ck_assert_uint_eq((size_t)(p - h->data), (size_t)(o - other->data));
	anrc_free(h, p);
	ck_assert_uint_eq(anrc_usable_size(other, o), 64);
	ck_assert_uint_eq(anrc_usable_size(h, p), 0);
	for (int i = 0; i <= n; i++)
		anrc_free(other, v[i]);
	empty_heap_end(other);
	mb_log_set_sink(NULL);
	empty_heap_end(h);
}
END_TEST

/*
 * A free the inlined path declines because it empties its slab takes one
 * call (anrc_free_short, gmalloc's next step): judged there (a pointer
 * inside the object reported, nothing written), and with the current slab
 * full the emptied slab becomes current, so that the next allocation of
 * its class takes it without a search of the ring (one step counted, the
 * slab's bitmap word; a search reads each slab's remote-free words too).  NULL, a large block and anything under
 * valgrind (no fast paths) are left to anrc_free.
 */
START_TEST(emptied_slab_takes_one_call)
{
	struct anrc_heap *h = heap_with(0, ANR_BAD_FREE_REPORT);
	const unsigned m = h->cls[anrc_size_class(ANR_SLAB_MAX)].nobjs, n = 2 * m;
	struct anrc_stats st;
	char *p[2 * ANR_SLAB_SPAN_MAX], *q, *big = anrc_alloc(h, MiB, 0);
	uint64_t before;

	/* two slabs, full: p[0] .. p[m - 1] fill the first */
	ck_assert_uint_le(n, 2 * ANR_SLAB_SPAN_MAX);
	for (unsigned i = 0; i < n; i++) {
		p[i] = anrc_alloc(h, ANR_SLAB_MAX, 0);
		memset(p[i], 0x6b, ANR_SLAB_MAX);
	}
	ck_assert_int_eq(anrc_free_short(h, NULL), 0);
	ck_assert_int_eq(anrc_free_short(h, big), 0);
	if (UNDER_VALGRIND()) {
		ck_assert_int_eq(anrc_free_short(h, p[0]), 0);
	} else {
		for (unsigned i = 1; i < m; i++) {
			ck_assert_int_eq(anrc_free_slab_fast(h, p[i]), 1);
			p[i] = NULL;
		}
		mb_log_set_sink(sink_fn);
		sink_reset();
		ck_assert_int_eq(anrc_free_slab_fast(h, p[0]), 0); /* the last */
		ck_assert_int_eq(anrc_free_short(h, p[0] + 16), 2);
		stats(h, &st);
		ck_assert_uint_eq(st.bad_frees, 1);
		ck_assert_int_eq(p[0][16], 0x6b);
		mb_log_set_sink(NULL);
		ck_assert_int_eq(anrc_free_short(h, p[0]), 2);
		ck_assert_uint_eq(anrc_usable_size(h, p[0]), 0);
		before = anrc_step_count;
		q = anrc_alloc(h, ANR_SLAB_MAX, 0);
		ck_assert_uint_eq(anrc_step_count - before, 1); /* its word */
		ck_assert_ptr_eq(q, p[0]);
	}
	for (unsigned i = 0; i < n; i++)
		anrc_free(h, p[i]);
	anrc_free(h, big);
	ck_assert_int_eq(anrc_check(h), 0);
	empty_heap_end(h);
}
END_TEST

/*
 * The short way gmalloc's malloc takes when the held word is used up
 * (anrc_alloc_small): the next word of the current slab, without the lock,
 * for as long as the thread's slabs have free objects; NULL for a request
 * past the small classes and for a heap whose theap the thread has not
 * cached (another heap's is), so that the caller takes the full path.
 */
START_TEST(small_refill_takes_no_lock)
{
	enum { N = 200 };
	struct anrc_heap *h = heap_plain(), *other;
	char *p[N], *q;
	uint64_t locks;
	int got = 0;

	for (int i = 0; i < N; i++) {
		p[i] = anrc_alloc(h, 64, 0);
		ck_assert_ptr_nonnull(p[i]);
	}
	for (int i = 0; i < N; i += 2)
		anrc_free(h, p[i]);
	if (UNDER_VALGRIND()) {
		/* Valgrind's records are written on the full path only. */
		ck_assert_ptr_null(anrc_alloc_small(h, 64));
		for (int i = 1; i < N; i += 2)
			anrc_free(h, p[i]);
		empty_heap_end(h);
		return;
	}
	locks = anrc_lock_count;
	/* The held word first (the fast path), then the words after it. */
	while ((q = anrc_alloc_fast(h, 64)) != NULL || (q = anrc_alloc_small(h, 64)) != NULL) {
		ck_assert_uint_eq(anrc_usable_size(h, q), 64);
		memset(q, 0x5a, 64);
		p[2 * got] = q;
		if (++got == N / 2)
			break;
	}
	ck_assert_int_eq(got, N / 2);
	ck_assert_uint_eq(anrc_lock_count - locks, 0);
	ck_assert_ptr_null(anrc_alloc_small(h, ANR_SLAB_MAX + 1));

	/* The thread's cached theap is another heap's now. */
	other = heap_plain();
	q = anrc_alloc(other, 64, 0);
	ck_assert_ptr_null(anrc_alloc_small(h, 64));
	anrc_free(other, q);
	empty_heap_end(other);

	for (int i = 0; i < N; i++)
		anrc_free(h, p[i]);
	empty_heap_end(h);
}
END_TEST

/*
 * A thread that exits with none of its small objects live leaves its
 * theap parked, slabs and all: the next thread allocates the same objects
 * without the lock and without new pages (it took about 85 holds before,
 * one slab at a time).  A thread that exits with a live object is not
 * parked (its slabs become shared); at most ANR_PARKED_MAX theaps are; a
 * fork child keeps them, consistent; a trim takes them over and gives
 * every slab back.  Under valgrind (no fast paths) nothing is parked.
 */
static const size_t park_sizes[] = { 16, 48, 64, 200, 512, 1000, 3000 };
enum { PARK_KINDS = sizeof park_sizes / sizeof park_sizes[0], PARK_N = 40 };

struct park_arg {
	struct anrc_heap *h;
	uint64_t locks;          /* heap lock taken while allocating */
	char *kept;              /* one object left live, if keep */
	int keep;
	pthread_barrier_t *bar;  /* waited on after the frees, if set */
};

static void *
park_round(void *v)
{
	struct park_arg *a = v;
	static __thread char *p[PARK_KINDS][PARK_N];
	uint64_t l0 = anrc_lock_count;

	for (int k = 0; k < PARK_KINDS; k++)
		for (int i = 0; i < PARK_N; i++) {
			p[k][i] = anrc_alloc(a->h, park_sizes[k], 0);
			if (p[k][i] != NULL)
				memset(p[k][i], k, park_sizes[k]);
		}
	a->locks = anrc_lock_count - l0;
	a->kept = a->keep ? p[PARK_KINDS - 1][0] : NULL;
	for (int k = 0; k < PARK_KINDS; k++)
		for (int i = 0; i < PARK_N; i++)
			if (p[k][i] != a->kept)
				anrc_free(a->h, p[k][i]);
	if (a->bar != NULL)
		pthread_barrier_wait(a->bar);
	return NULL;
}

/* Parked theaps, each checked: every page of its slabs counted as kept
 * empty (so that its next owner's bound and a give-back see them); their
 * slab bytes added to *bytes if not NULL. */
static unsigned
parked_counted(struct anrc_heap *h, size_t *bytes)
{
	unsigned n = 0;

	for (unsigned i = 0; i < anrc_theaps_used(h); i++) {
		const struct anrc_theap *t = &h->th[i];
		if (t->claimed != ANR_TH_PARKED)
			continue;
		ck_assert_uint_gt(t->slab_bytes, 0);
		ck_assert_uint_eq(t->empty_pages << h->page_shift, t->slab_bytes);
		if (bytes != NULL)
			*bytes += t->slab_bytes;
		n++;
	}
	return n;
}

static void
park_run(struct park_arg *a)
{
	pthread_t t;

	ck_assert_int_eq(pthread_create(&t, NULL, park_round, a), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
}

START_TEST(exited_thread_parks_its_slabs)
{
	struct anrc_heap *h = heap_plain();
	struct park_arg a = { .h = h }, many[ANR_PARKED_MAX + 2];
	pthread_t t[ANR_PARKED_MAX + 2];
	pthread_barrier_t bar;
	struct anrc_stats st, st2;
	unsigned want = UNDER_VALGRIND() ? 0 : 1;
	pid_t pid;
	int status;

	park_run(&a);
	ck_assert_uint_gt(a.locks, 0);
	ck_assert_uint_eq(h->th_parked, want);
	ck_assert_uint_eq(parked_counted(h, NULL), want);
	ck_assert_int_eq(anrc_check(h), 0);
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, 0);
	ck_assert_uint_gt(st.slab_free, 0);

	/* The next thread: no lock, no new page. */
	park_run(&a);
	if (want)
		ck_assert_uint_eq(a.locks, 0);
	ck_assert_uint_eq(h->th_parked, want);
	stats(h, &st2);
	ck_assert_uint_eq(st2.resident, st.resident);
	ck_assert_uint_eq(st2.in_use, 0);

	/* One object left live: not parked; the object is still good. */
	a.keep = 1;
	park_run(&a);
	ck_assert_ptr_nonnull(a.kept);
	ck_assert_uint_eq(h->th_parked, 0);
	for (size_t i = 0; i < park_sizes[PARK_KINDS - 1]; i++)
		ck_assert_int_eq(a.kept[i], PARK_KINDS - 1);
	anrc_free(h, a.kept);
	stats(h, &st2);
	ck_assert_uint_eq(st2.in_use, 0);

	/* Threads exiting together: ANR_PARKED_MAX parked at most. */
	ck_assert_int_eq(pthread_barrier_init(&bar, NULL, ANR_PARKED_MAX + 2), 0);
	for (int i = 0; i < ANR_PARKED_MAX + 2; i++) {
		many[i] = (struct park_arg){ .h = h, .bar = &bar };
		ck_assert_int_eq(pthread_create(&t[i], NULL, park_round, &many[i]), 0);
	}
	for (int i = 0; i < ANR_PARKED_MAX + 2; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	pthread_barrier_destroy(&bar);
	ck_assert_uint_eq(h->th_parked, want * ANR_PARKED_MAX);
	ck_assert_uint_eq(parked_counted(h, NULL), want * ANR_PARKED_MAX);
	ck_assert_int_eq(anrc_check(h), 0);

	/* A fork child keeps them, consistent, and a thread of its own
	 * takes one without the lock. */
	anrc_fork_prepare(h);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		anrc_fork_child(h);
		struct park_arg c = { .h = h };
		pthread_t ct;
		int ok = h->th_parked == want * ANR_PARKED_MAX && anrc_check(h) == 0;
		ok = ok && pthread_create(&ct, NULL, park_round, &c) == 0 &&
		     pthread_join(ct, NULL) == 0 && (!want || c.locks == 0) && anrc_check(h) == 0;
		_exit(ok ? 0 : 1);
	}
	anrc_fork_parent(h);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	/* A trim takes every parked theap over: their slabs go back. */
	anrc_trim(h, 0);
	ck_assert_uint_eq(h->th_parked, 0);
	stats(h, &st2);
	ck_assert_uint_eq(st2.in_use, 0);
	ck_assert_uint_eq(st2.slab_free, 0);
	empty_heap_end(h);
}
END_TEST

/* An allocation short of budget takes the parked theaps' slabs back, and
 * the heap's kept empty slabs (which it did not: a request within 64 KiB
 * of the budget failed with them kept), and so does a budget lowered
 * below what is resident: parked pages are never lost to the budget. */
START_TEST(parked_slabs_go_back_when_short)
{
	const size_t budget = 4 * MiB;
	struct anrc_heap *h = heap_with(budget, ANR_BAD_FREE_ABORT);
	struct park_arg a = { .h = h };
	size_t page = (size_t)sysconf(_SC_PAGESIZE), parked = 0;
	struct anrc_stats st;
	char *big;

	park_run(&a);
	ck_assert_uint_eq(h->th_parked, UNDER_VALGRIND() ? 0 : 1);
	ck_assert_uint_eq(parked_counted(h, &parked), h->th_parked);
	if (!UNDER_VALGRIND())
		ck_assert_uint_gt(parked, 16 * page);
	big = anrc_alloc(h, budget - 4 * page, 0);
	ck_assert_ptr_nonnull(big);
	ck_assert_uint_eq(h->th_parked, 0);
	memset(big, 1, budget - 4 * page);
	anrc_free(h, big);

	/* So does a budget lowered below what is resident. */
	park_run(&a);
	ck_assert_uint_eq(h->th_parked, UNDER_VALGRIND() ? 0 : 1);
	anrc_set_budget(h, 8 * page);
	ck_assert_uint_eq(h->th_parked, 0);
	stats(h, &st);
	ck_assert_uint_le(st.resident, 8 * page);
	empty_heap_end(h);
}
END_TEST

struct idle_run_keeper {
	struct anrc_heap *h;
	pthread_barrier_t bar;
};

/* A touched 40 KiB block freed: its run stays the calling thread's. */
static void
keep_a_run(struct anrc_heap *h)
{
	char *p = anrc_alloc(h, 40 * KiB, 0);

	ck_assert_ptr_nonnull(p);
	memset(p, 3, 40 * KiB);
	anrc_free(h, p);
}

/* Keeps a run, then waits for the test twice: while the run is kept,
 * and to end. */
static void *
idle_run_keeper_main(void *arg)
{
	struct idle_run_keeper *a = arg;

	keep_a_run(a->h);
	pthread_barrier_wait(&a->bar);
	pthread_barrier_wait(&a->bar);
	return NULL;
}

/*
 * A budget lowered below what is resident takes back the runs threads
 * keep for their next medium blocks, the caller's and an idle thread's,
 * as it takes back their empty slabs.  Before, only the slabs went: the
 * kept runs stayed resident above the new budget.
 */
START_TEST(budget_lowered_takes_kept_runs)
{
	struct anrc_heap *h = heap_cached(0, ANR_BAD_FREE_ABORT);
	struct idle_run_keeper a = { .h = h };
	struct anrc_stats st;
	pthread_t t;

	if (UNDER_VALGRIND()) {
		anrc_destroy(h); /* no kept runs under valgrind */
		return;
	}
	pthread_barrier_init(&a.bar, NULL, 2);
	ck_assert_int_eq(pthread_create(&t, NULL, idle_run_keeper_main, &a), 0);
	pthread_barrier_wait(&a.bar);
	keep_a_run(h);
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, 0);
	ck_assert_uint_ge(st.resident, 80 * KiB); /* two kept runs */
	anrc_set_budget(h, 8 * KiB);
	stats(h, &st);
	ck_assert_uint_le(st.resident, 8 * KiB);
	pthread_barrier_wait(&a.bar);
	pthread_join(t, NULL);
	pthread_barrier_destroy(&a.bar);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/*
 * A medium block (4..64 KiB) its thread grows by realloc stays the
 * thread's: a step within its pages takes no lock, a step past them grows
 * it in place under the lock and it stays owned (so the next steps take no
 * lock again); past 64 KiB it is an ordinary large block.  The bytes in
 * use stay exact all along.  (A resize under the lock made it an ordinary
 * block: every later step took the lock, and two threads growing strings
 * to 64 KiB waited on each other.)
 */
START_TEST(realloc_medium_stays_owned)
{
	struct anrc_heap *h = heap_cached(0, ANR_BAD_FREE_ABORT);
	struct anrc_stats st;
	uint64_t locks, steps = 0, page_steps = 0;
	size_t page = h->page, last_pages = 0;
	char *p = anrc_alloc(h, ANR_SLAB_MAX + 16, 0), *blocker;

	ck_assert_ptr_nonnull(p);
	p[0] = 42;
	locks = anrc_lock_count;
	for (size_t n = ANR_SLAB_MAX + 32; n <= ANR_RUN_CACHE_MAX; n += 16) {
		char *q = anrc_realloc(h, p, n, 0);
		ck_assert_ptr_nonnull(q);
		if (!UNDER_VALGRIND())
			ck_assert_ptr_eq(q, p); /* the pages after it are free */
		p = q;
		p[n - 1] = 1;
		if (anrc_usable_size(h, p) / page != last_pages) {
			last_pages = anrc_usable_size(h, p) / page;
			page_steps++;
		}
		steps++;
	}
	locks = anrc_lock_count - locks;
	ck_assert_int_eq(p[0], 42);
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, anrc_usable_size(h, p));
	ck_assert_int_eq(anrc_check(h), 0);
	/* a lock (for the heap's span allocator) per step onto a new page,
	 * none for the steps within a page */
	if (!UNDER_VALGRIND()) {
		ck_assert_uint_gt(steps, 10 * page_steps);
		ck_assert_msg(locks <= page_steps, "%llu locks for %llu steps onto new pages",
			      (unsigned long long)locks, (unsigned long long)page_steps);
		ck_assert_uint_eq(h->owner[(size_t)(p - h->data) / page],
				  anrc_theap_peek(h)->id);
	}
	/* past 64 KiB: an ordinary large block, counted as one */
	p = anrc_realloc(h, p, ANR_RUN_CACHE_MAX + page, 0);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(p[0], 42);
	ck_assert_uint_eq(h->owner[(size_t)(p - h->data) / page], 0);
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, anrc_usable_size(h, p));
	/* and back down to a medium block: still ordinary, exact counts */
	p = anrc_realloc(h, p, 5 * page, 0);
	ck_assert_int_eq(p[0], 42);
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, anrc_usable_size(h, p));
	/* an owned block that cannot grow in place moves, and its old run is
	 * kept by its thread as any freed block */
	anrc_free(h, p);
	p = anrc_alloc(h, 5 * page, 0);
	blocker = anrc_alloc(h, 5 * page, 0);
	p[0] = 7;
	p = anrc_realloc(h, p, 40 * page, 0);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(p[0], 7);
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, anrc_usable_size(h, p) + anrc_usable_size(h, blocker));
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_free(h, blocker);
	anrc_free(h, p);
	empty_heap_end(h);
}
END_TEST

/*
 * Blocks of 4..16 KiB are page runs, kept by their thread when it frees
 * them, like larger medium blocks: a thread replacing random ones of a
 * few live blocks takes the heap lock on few calls (none here).  (They
 * were slab classes of one to three objects per slab: an allocation often
 * built a slab and a free tore one down, both under the lock: 779 locks
 * in 4,000 replacements here, and bench/alloc's medium-mt took 1.6 times
 * as long.)
 */
START_TEST(medium_blocks_rarely_lock)
{
	struct anrc_heap *h = heap_cached(0, ANR_BAD_FREE_ABORT);
	uint64_t locks;

	ck_assert_uint_eq(ANR_SLAB_MAX, 4096);
	locks = locks_replacing(h, 4 * KiB + 1, 16 * KiB);
	if (!UNDER_VALGRIND())
		ck_assert_uint_le(locks, 200);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

struct two_blocks {
	struct anrc_heap *h;
	char *p[2];
	int free_one;
	unsigned id;
};

static void *
two_blocks_fn(void *arg)
{
	struct two_blocks *b = arg;

	if (b->free_one) {
		void *q = anrc_alloc(b->h, 16, 0); /* claims a theap */
		anrc_free(b->h, b->p[0]);
		anrc_free(b->h, q);
	} else {
		b->p[0] = anrc_alloc(b->h, 32 * KiB, 0);
		b->p[1] = anrc_alloc(b->h, 48 * KiB, 0);
	}
	b->id = anrc_theap_peek(b->h)->id;
	return NULL;
}

/* Bytes in use stay exact for blocks of kept runs whose owner exits: the
 * next thread with its theap frees one as their owner, another thread
 * the other. */
START_TEST(run_blocks_in_use_across_exit)
{
	struct anrc_heap *h = heap_cached(0, ANR_BAD_FREE_ABORT);
	struct two_blocks b = { .h = h };
	struct anrc_stats st;
	unsigned first;
	pthread_t t;

	ck_assert_int_eq(pthread_create(&t, NULL, two_blocks_fn, &b), 0);
	pthread_join(t, NULL);
	first = b.id;
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, 80 * KiB);
	b.free_one = 1;
	ck_assert_int_eq(pthread_create(&t, NULL, two_blocks_fn, &b), 0);
	pthread_join(t, NULL);
	ck_assert_uint_eq(b.id, first); /* the same theap: freed as its owner */
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, 48 * KiB);
	anrc_free(h, b.p[1]);
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, 0);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/*
 * A thread that frees each medium block before it allocates the next
 * keeps using the same pages, whatever the sizes: the newest kept run is
 * cut to fit and joined again (the real-time pattern of bench/alloc/rt.c,
 * whose blocks were spread over up to 512 KiB of runs, one per size,
 * mostly cold in the CPU's caches after its 1 ms sleep).
 */
START_TEST(runs_cut_keep_pages_hot)
{
	struct anrc_heap *h = heap_cached(0, ANR_BAD_FREE_ABORT);
	uint64_t x = 88172645463325252ull;
	char *first, *p;

	first = anrc_alloc(h, 64 * KiB, 0);
	ck_assert_ptr_nonnull(first);
	anrc_free(h, first);
	for (unsigned i = 0; i < scaled(2000); i++) {
		size_t size;
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		size = 4 * KiB + 1 + (size_t)(x % (60 * KiB));
		p = anrc_alloc(h, size, 0);
		ck_assert_ptr_nonnull(p);
		if (!UNDER_VALGRIND()) /* (no thread caches under valgrind) */
			ck_assert_ptr_eq(p, first);
		memset(p, 1, size);
		anrc_free(h, p);
		if (i % 256 == 0)
			ck_assert_int_eq(anrc_check(h), 0);
	}
	if (!UNDER_VALGRIND())
		ck_assert_uint_eq(anrc_runs_kept_bytes(h), 64 * KiB);
	/* A block another thread frees no longer counts as live for its
	 * owner (that free takes its bytes off under the lock, the owner's
	 * count being its own): with it gone, the next block is cut from
	 * the newest kept run again. */
	{
		char *a = anrc_alloc(h, 64 * KiB, 0), *b = anrc_alloc(h, 40 * KiB, 0), *c;
		struct xfree xf = { .h = h, .v = &a, .n = 1 };
		pthread_t t;

		ck_assert_ptr_nonnull(a);
		ck_assert_ptr_nonnull(b);
		anrc_free(h, b);
		ck_assert_int_eq(pthread_create(&t, NULL, xfree_fn, &xf), 0);
		pthread_join(t, NULL);
		c = anrc_alloc(h, 8 * KiB, 0);
		ck_assert_ptr_nonnull(c);
		if (!UNDER_VALGRIND())
			ck_assert_ptr_eq(c, b);
		anrc_free(h, c);
	}
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

struct run_keeper {
	struct anrc_heap *h;
	pthread_barrier_t *b;
	size_t kept;
	struct anrc_theap *t;
};

/* Keeps some runs, waits while the main thread gives back, then exits. */
static void *
run_keeper_fn(void *arg)
{
	struct run_keeper *k = arg;
	char *v[4];

	for (int i = 0; i < 4; i++)
		v[i] = anrc_alloc(k->h, (20 + 8 * (size_t)i) * KiB, 0);
	for (int i = 0; i < 4; i++)
		anrc_free(k->h, v[i]);
	k->kept = anrc_runs_kept_bytes(k->h);
	k->t = anrc_theap_peek(k->h);
	pthread_barrier_wait(k->b);
	pthread_barrier_wait(k->b); /* the main thread gave back meanwhile */
	for (int i = 0; i < 4; i++)
		v[i] = anrc_alloc(k->h, (20 + 8 * (size_t)i) * KiB, 0);
	for (int i = 0; i < 4; i++)
		anrc_free(k->h, v[i]);
	pthread_barrier_wait(k->b);
	pthread_barrier_wait(k->b); /* asked to give back while "busy" */
	v[0] = anrc_alloc(k->h, 40 * KiB, 0);
	anrc_free(k->h, v[0]);
	pthread_barrier_wait(k->b);
	pthread_barrier_wait(k->b);
	return NULL;
}

/* The cache is bounded in bytes and runs, and goes back on give-back
 * (another thread's too) and at thread exit. */
START_TEST(runcache_bounded_and_flushed)
{
	struct anrc_heap *h = heap_cached(0, ANR_BAD_FREE_ABORT);
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	enum { N = 64 };
	static char *v[N];
	struct anrc_stats st;
	pthread_barrier_t b;
	struct run_keeper k = { .h = h, .b = &b };
	size_t kept4 = 0;
	pthread_t t;

	for (int i = 0; i < N; i++) {
		v[i] = anrc_alloc(h, 32 * KiB, 0);
		ck_assert_ptr_nonnull(v[i]);
	}
	for (int i = 0; i < N; i++)
		anrc_free(h, v[i]);
	ck_assert_uint_le(anrc_runs_kept_bytes(h), ANR_RUN_CACHE_BYTES);
	ck_assert_uint_ge(anrc_runs_kept_bytes(h), ANR_RUN_CACHE_BYTES - 32 * KiB);
	ck_assert_uint_le(anrc_theap_peek(h)->rc.n, ANR_RUN_CACHE_SLOTS);
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, 0);
	ck_assert_uint_ge(st.slab_free, anrc_runs_kept_bytes(h));
	ck_assert_int_eq(anrc_check(h), 0);
	/* Medium page counts are rounded up: four per power of two. */
	ck_assert_uint_eq(anrc_run_pages(h, 9 * page), 10);
	ck_assert_uint_eq(anrc_run_pages(h, 13 * page + 1), 14);
	ck_assert_uint_eq(anrc_run_pages(h, 16 * page), 16);
	ck_assert_uint_eq(anrc_run_pages(h, 300 * KiB), 300 * KiB / page);

	pthread_barrier_init(&b, NULL, 2);
	ck_assert_int_eq(pthread_create(&t, NULL, run_keeper_fn, &k), 0);
	pthread_barrier_wait(&b);
	ck_assert_uint_gt(k.kept, 0);
	anrc_release_free(h);
	ck_assert_uint_eq(anrc_runs_kept_bytes(h), 0);
	stats(h, &st);
	ck_assert_uint_eq(st.free_resident, 0);
	pthread_barrier_wait(&b);
	pthread_barrier_wait(&b);
	/* The thread is inside its cache (as far as a give-back can tell):
	 * the give-back does not wait, it flags the cache, which the thread
	 * empties at its next use. */
	for (int i = 0; i < 4; i++)
		kept4 += anrc_run_pages(h, (20 + 8 * (size_t)i) * KiB) * page;
	ck_assert_uint_eq(anrc_runs_kept_bytes(h), kept4);
	__atomic_store_n(&k.t->rc.busy, 1, __ATOMIC_RELEASE);
	anrc_release_free(h);
	ck_assert_uint_eq(anrc_runs_kept_bytes(h), kept4);
	__atomic_store_n(&k.t->rc.busy, 0, __ATOMIC_RELEASE);
	pthread_barrier_wait(&b);
	pthread_barrier_wait(&b);
	/* the flagged runs went back; the block of 40 KiB is kept */
	ck_assert_uint_eq(anrc_runs_kept_bytes(h), anrc_run_pages(h, 40 * KiB) * page);
	pthread_barrier_wait(&b);
	pthread_join(t, NULL);
	ck_assert_uint_eq(anrc_runs_kept_bytes(h), 0); /* its exit gave it back */
	ck_assert_int_eq(anrc_check(h), 0);
	pthread_barrier_destroy(&b);
	anrc_destroy(h);
}
END_TEST

/* Kept runs are charged: an allocation short of budget takes them back
 * first, so it is refused at the same point as without the cache. */
START_TEST(runcache_budget_exact)
{
	struct anrc_heap *h = heap_cached(2 * MiB, ANR_BAD_FREE_ABORT);
	char *p, *a, *b;

	p = anrc_alloc(h, 48 * KiB, ANR_NO_HOOK);
	ck_assert_ptr_nonnull(p);
	anrc_free(h, p);
	ck_assert_uint_eq(anrc_runs_kept_bytes(h), 48 * KiB);
	a = anrc_alloc(h, MiB, ANR_NO_HOOK);
	b = anrc_alloc(h, MiB, ANR_NO_HOOK);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_uint_eq(anrc_runs_kept_bytes(h), 0);
	ck_assert_ptr_null(anrc_alloc(h, 20 * KiB, ANR_NO_HOOK));
	ck_assert_ptr_null(anrc_alloc(h, 16, ANR_NO_HOOK));
	anrc_free(h, a);
	anrc_free(h, b);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

struct foreign {
	struct anrc_heap *h;
	void *p;
};

static void *
foreign_free_fn(void *arg)
{
	struct foreign *f = arg;

	anrc_free(f->h, f->p);
	return NULL;
}

/* A kept run freed again is a double free; a block freed by another
 * thread goes back to the span allocator, not to anybody's cache. */
START_TEST(runcache_double_and_foreign_free)
{
	struct anrc_heap *h = heap_cached(0, ANR_BAD_FREE_REPORT);
	struct anrc_stats st;
	struct foreign f = { .h = h };
	pthread_t t;
	char *p, *q;

	mb_log_set_sink(sink_fn);
	sink_reset();
	p = anrc_alloc(h, 32 * KiB, 0);
	anrc_free(h, p);
	anrc_free(h, p);
	ck_assert_uint_eq(anrc_usable_size(h, p), 0);
	stats(h, &st);
	ck_assert_uint_eq(st.bad_frees, 1);
	ck_assert_int_eq(sink_lines, 1);
	q = anrc_alloc(h, 30 * KiB, 0);
	ck_assert_ptr_eq(q, p); /* the kept run, same page count */
	ck_assert_uint_eq(anrc_usable_size(h, q), 32 * KiB);
	f.p = q;
	ck_assert_int_eq(pthread_create(&t, NULL, foreign_free_fn, &f), 0);
	pthread_join(t, NULL);
	ck_assert_uint_eq(anrc_runs_kept_bytes(h), 0);
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, 0);
	anrc_free(h, q);
	stats(h, &st);
	ck_assert_uint_eq(st.bad_frees, 2);
	mb_log_set_sink(NULL);
	/* A kept run serves blocks down to half its pages; while none of
	 * the thread's blocks is live, the newest is cut to fit any smaller
	 * one and joined again when it is freed (4 KiB pages).  The foreign
	 * free above took its bytes off this thread's count. */
	if (sysconf(_SC_PAGESIZE) == 4096) {
		struct anrc_runcache *c = &anrc_theap_peek(h)->rc;
		char *r;
		p = anrc_alloc(h, 64 * KiB, 0);
		anrc_free(h, p);
		q = anrc_alloc(h, 36 * KiB, 0);
		ck_assert_ptr_eq(q, p);
		ck_assert_uint_eq(anrc_usable_size(h, q), 64 * KiB);
		anrc_free(h, q);
		q = anrc_alloc(h, 20 * KiB, 0);
		ck_assert_ptr_eq(q, p);
		ck_assert_uint_eq(anrc_usable_size(h, q), 20 * KiB);
		ck_assert_uint_eq(anrc_runs_kept_bytes(h), 44 * KiB);
		ck_assert_int_eq(anrc_check(h), 0);
		/* the rest has no head bit: only a join uses it */
		r = anrc_alloc(h, 40 * KiB, 0);
		ck_assert_ptr_nonnull(r);
		ck_assert_ptr_ne(r, p + 20 * KiB);
		anrc_free(h, r);
		anrc_free(h, q);
		ck_assert_uint_eq(c->run[c->n - 1].len, 64 * KiB / 4096); /* joined, the newest */
		ck_assert_ptr_eq(anrc_page_addr(h, c->run[c->n - 1].s), p);
		ck_assert_int_eq(anrc_check(h), 0);
		/* a block kept live stops the cutting */
		q = anrc_alloc(h, 20 * KiB, 0);
		ck_assert_ptr_eq(q, p);
		r = anrc_alloc(h, 20 * KiB, 0);
		ck_assert_ptr_ne(r, p + 20 * KiB);
		anrc_free(h, r);
		anrc_free(h, q);
		ck_assert_int_eq(anrc_check(h), 0);
	}
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/* Another thread with its own kept run tries the short free on f->p. */
static void *
foreign_fast_free_fn(void *arg)
{
	struct foreign *f = arg;
	char *own = anrc_alloc(f->h, 40 * KiB, 0);

	anrc_free(f->h, own);
	own = anrc_alloc_medium(f->h, 40 * KiB);
	if (own == NULL || anrc_free_short(f->h, f->p) != 0)
		return (void *)1;
	anrc_free(f->h, f->p);
	anrc_free(f->h, own);
	return NULL;
}

/*
 * A medium block whose run the thread keeps takes the short way that
 * gmalloc's malloc and free try after the inlined paths, without the
 * layers of the slow ones; what it cannot judge (a double free, a pointer
 * inside the block, another thread's block, a large block) it leaves to
 * anrc_free, having written nothing.
 */
START_TEST(medium_blocks_take_the_short_way)
{
	struct anrc_heap *h = heap_cached(0, ANR_BAD_FREE_REPORT);
	struct foreign f = { .h = h };
	struct anrc_stats st;
	pthread_t t;
	void *r;
	char *p, *q, *big;

	if (UNDER_VALGRIND()) { /* no thread caches under valgrind */
		ck_assert_ptr_null(anrc_alloc_medium(h, 40 * KiB));
		anrc_destroy(h);
		return;
	}
	mb_log_set_sink(sink_fn);
	sink_reset();
	p = anrc_alloc(h, 40 * KiB, 0);
	anrc_free(h, p);
	ck_assert_ptr_null(anrc_alloc_medium(h, 64 * KiB)); /* no kept run fits */
	q = anrc_alloc_medium(h, 40 * KiB);
	ck_assert_ptr_eq(q, p);
	memset(q, 1, 40 * KiB);
	ck_assert_int_eq(anrc_free_short(h, q), 1);
	ck_assert_uint_eq(anrc_usable_size(h, q), 0);
	ck_assert_int_eq(anrc_free_short(h, q), 0);
	anrc_free(h, q);
	stats(h, &st);
	ck_assert_uint_eq(st.bad_frees, 1);
	q = anrc_alloc_medium(h, 36 * KiB);
	ck_assert_ptr_eq(q, p);
	ck_assert_int_eq(anrc_free_short(h, q + 16), 0);
	anrc_free(h, q + 16);
	stats(h, &st);
	ck_assert_uint_eq(st.bad_frees, 2);
	ck_assert_uint_eq(anrc_usable_size(h, q), 40 * KiB);
	f.p = q;
	ck_assert_int_eq(pthread_create(&t, NULL, foreign_fast_free_fn, &f), 0);
	pthread_join(t, &r);
	ck_assert_ptr_null(r);
	ck_assert_uint_eq(anrc_usable_size(h, q), 0);
	big = anrc_alloc(h, MiB, 0);
	ck_assert_ptr_nonnull(big);
	ck_assert_int_eq(anrc_free_short(h, big), 0);
	anrc_free(h, big);
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, 0);
	ck_assert_uint_eq(st.bad_frees, 2);
	ck_assert_int_eq(anrc_check(h), 0);
	mb_log_set_sink(NULL);
	anrc_destroy(h);
}
END_TEST

/* ---- page return by a helper thread (returner.c) ---- */

static void *
helper_fn(void *arg)
{
	return (void *)(intptr_t)anrc_return_helper_run(arg);
}

/* A thread runs the helper; back once it is on. */
static void
helper_start(struct anrc_heap *h, pthread_t *t)
{
	ck_assert_int_eq(pthread_create(t, NULL, helper_fn, h), 0);
	while (!__atomic_load_n(&h->helper_on, __ATOMIC_ACQUIRE))
		usleep(1000);
}

static void
helper_stop(struct anrc_heap *h, pthread_t t)
{
	void *rc;

	anrc_return_helper_stop(h);
	ck_assert_int_eq(pthread_join(t, &rc), 0);
	ck_assert_ptr_null(rc);
}

/* Frees of large blocks past the high mark give nothing back themselves
 * while a helper runs (they did a round of madvise each before): the
 * helper does, and the free pages come down under the mark. */
START_TEST(return_helper_does_the_madvise)
{
	struct anrc_heap *h = heap_cached(0, ANR_BAD_FREE_ABORT);
	struct anrc_stats st;
	uint64_t rounds;
	pthread_t t;
	char *p;

	helper_start(h, &t);
	ck_assert_int_eq(anrc_return_helper_run(h), -1); /* one helper at most */
	rounds = anrc_return_rounds;
	for (int i = 0; i < 20; i++) {
		p = anrc_alloc(h, 4 * MiB + (size_t)i * 64 * KiB, 0);
		ck_assert_ptr_nonnull(p);
		memset(p, i, 4 * MiB);
		anrc_free(h, p);
	}
	ck_assert_uint_eq(anrc_return_rounds - rounds, 0);
	/* The helper gives back; wait for it (a hang is the failure). */
	for (;;) {
		stats(h, &st);
		if (st.free_resident <= (ANR_DEFAULT_FREE_HIGH << ANR_MARK_SHIFT_MAX) &&
		    st.madvise_calls > 0)
			break;
		usleep(1000);
	}
	ck_assert_int_eq(anrc_check(h), 0);
	helper_stop(h, t);
	/* Without it the freeing thread gives back again. */
	anrc_set_marks(h, 0, 0);
	p = anrc_alloc(h, 4 * MiB, 0);
	memset(p, 1, 4 * MiB);
	anrc_free(h, p);
	ck_assert_uint_gt(anrc_return_rounds - rounds, 0);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/* With grown marks the helper gives back down to what a trim keeps (at
 * most ANR_KEEP_GROWN_MAX), as the free would have itself with its credit.
 * It stopped just under the grown high mark before: 15 MiB of free pages
 * stayed resident after this 48 MiB free for as long as the heap lived
 * (a hang is the failure). */
START_TEST(return_helper_goes_down_to_the_keep)
{
	struct anrc_heap *h = heap_cached(0, ANR_BAD_FREE_ABORT);
	struct anrc_stats st;
	pthread_t t;
	char *p;

	helper_start(h, &t);
	pthread_mutex_lock(&h->lock);
	h->mark_shift = ANR_MARK_SHIFT_MAX; /* as after a churn */
	pthread_mutex_unlock(&h->lock);
	p = anrc_alloc(h, 48 * MiB, 0);
	ck_assert_ptr_nonnull(p);
	touch_pages(p, 48 * MiB);
	anrc_free(h, p);
	for (;;) {
		stats(h, &st);
		if (st.free_resident <= ANR_KEEP_GROWN_MAX)
			break;
		usleep(1000);
	}
	ck_assert_uint_gt(h->mark_shift, 0); /* the marks were still grown */
	ck_assert_int_eq(anrc_check(h), 0);
	helper_stop(h, t);
	anrc_destroy(h);
}
END_TEST

/* A stop that comes before the helper's thread has started (a heap
 * destroyed right after it was created) is not lost: the helper returns
 * at once and the join ends.  It waited for ever before (a hang is the
 * failure). */
START_TEST(return_helper_stopped_before_it_runs)
{
	struct anrc_heap *h = heap_cached(0, ANR_BAD_FREE_ABORT);
	pthread_t t;
	void *rc;

	anrc_return_helper_stop(h);
	ck_assert_int_eq(pthread_create(&t, NULL, helper_fn, h), 0);
	ck_assert_int_eq(pthread_join(t, &rc), 0);
	ck_assert_ptr_null(rc);
	ck_assert_int_eq(__atomic_load_n(&h->helper_on, __ATOMIC_ACQUIRE), 0);
	anrc_destroy(h);
}
END_TEST

/* Waits for the helper until the heap keeps no free page (a minute at
 * most: the failure then says so). */
static void
wait_for_no_free_pages(struct anrc_heap *h)
{
	struct anrc_stats st;

	for (int i = 0; i < 60000; i++) {
		stats(h, &st);
		if (st.free_resident == 0)
			return;
		usleep(1000);
	}
	ck_abort_msg("the helper left %zu bytes of free pages", st.free_resident);
}

/*
 * Idle return: once no span has been handed out or given back for
 * idle_return_ms, the helper gives back every free page, those under the
 * low mark too, and the marks start afresh; with none kept it waits
 * without a deadline, and a span given back starts the period again.
 * Before, up to the low mark (256 KiB; 1 MiB with grown marks) stayed
 * resident for the heap's life.
 */
START_TEST(helper_idle_return)
{
	struct anrc_config c = { .reserve = TEST_RESERVE, .idle_return_ms = 20 };
	struct anrc_heap *h = anrc_create(&c);
	struct anrc_stats st;
	pthread_t t;
	char *p;

	ck_assert_ptr_nonnull(h);
	helper_start(h, &t);
	pthread_mutex_lock(&h->lock);
	h->mark_shift = 2; /* as after some churn */
	pthread_mutex_unlock(&h->lock);
	p = anrc_alloc(h, 8 * MiB, 0);
	ck_assert_ptr_nonnull(p);
	touch_pages(p, 8 * MiB);
	anrc_free(h, p);
	wait_for_no_free_pages(h);
	ck_assert_uint_eq(h->mark_shift, 0);
	/* Under the high mark: no round is due, the span given back wakes
	 * the helper, which had no deadline. */
	p = anrc_alloc(h, 512 * KiB, 0);
	ck_assert_ptr_nonnull(p);
	touch_pages(p, 512 * KiB);
	anrc_free(h, p);
	wait_for_no_free_pages(h);
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, 0);
	ck_assert_int_eq(anrc_check(h), 0);
	/* Off: what is under the low mark stays. */
	anrc_set_idle_return(h, 0);
	p = anrc_alloc(h, 512 * KiB, 0);
	touch_pages(p, 512 * KiB);
	anrc_free(h, p);
	usleep(100 * 1000);
	stats(h, &st);
	ck_assert_uint_eq(st.free_resident, 512 * KiB);
	helper_stop(h, t);
	anrc_destroy(h);
}
END_TEST

/*
 * On demand, the helper gives back every free page, those under the low
 * mark and those of the threads' kept runs too, and the call that asks
 * does no page return itself (gmalloc's free path on the broker's notify
 * trimmed the whole heap in that free, 1.2 s in one free here).
 */
START_TEST(return_all_by_the_helper)
{
	struct anrc_config c = { .reserve = TEST_RESERVE };
	struct anrc_heap *h = anrc_create(&c);
	struct anrc_stats st;
	pthread_t t;

	ck_assert_ptr_nonnull(h);
	ck_assert_int_eq(anrc_return_all_by_helper(h), 0); /* no helper yet */
	helper_start(h, &t);
	char *p = anrc_alloc(h, 768 * KiB, 0), *q = anrc_alloc(h, 32 * KiB, 0);
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(q);
	touch_pages(p, 768 * KiB);
	touch_pages(q, 32 * KiB);
	anrc_free(h, p);
	anrc_free(h, q); /* kept in this thread's runs */
	stats(h, &st);
	ck_assert_uint_ge(st.free_resident, 768 * KiB); /* under the high mark */
	uint64_t rounds = anrc_return_rounds;
	ck_assert_int_eq(anrc_return_all_by_helper(h), 1);
	ck_assert_uint_eq(anrc_return_rounds, rounds);
	wait_for_no_free_pages(h);
	anrc_lock_and_drain(h);
	size_t kept = anrc_theap_peek(h) ? anrc_theap_peek(h)->rc.pages : 0;
	anrc_unlock_and_return_pages(h);
	ck_assert_uint_eq(kept, 0);
	ck_assert_uint_eq(anrc_return_rounds, rounds);
	ck_assert_int_eq(anrc_check(h), 0);
	helper_stop(h, t);
	anrc_destroy(h);
}
END_TEST

/*
 * The idle return from the helper's start: a span given back under the
 * high mark before any round (no round is due for it) goes back too, and
 * so do free pages kept before the helper started.  Before, the helper's
 * first wait had no deadline and did not arm the idle period: those pages
 * stayed until a round of page return came.
 */
START_TEST(helper_idle_return_from_the_start)
{
	struct anrc_config c = { .reserve = TEST_RESERVE, .idle_return_ms = 20 };
	struct anrc_heap *h = anrc_create(&c);
	pthread_t t;
	char *p;

	ck_assert_ptr_nonnull(h);
	for (int kept_before = 0; kept_before < 2; kept_before++) {
		if (!kept_before)
			helper_start(h, &t);
		p = anrc_alloc(h, 512 * KiB, 0);
		ck_assert_ptr_nonnull(p);
		touch_pages(p, 512 * KiB);
		anrc_free(h, p);
		if (kept_before)
			helper_start(h, &t);
		wait_for_no_free_pages(h);
		helper_stop(h, t);
	}
	anrc_destroy(h);
}
END_TEST

/* Slab holes of the calling thread, by the stats; waits for the helper
 * until it has given back at least want bytes of them (a minute at most:
 * the failure then says so). */
static size_t
wait_for_holes(struct anrc_heap *h, size_t want)
{
	struct anrc_stats st;

	for (int i = 0; i < 60000; i++) {
		stats(h, &st);
		if (st.slab_holes >= want)
			return st.slab_holes;
		usleep(1000);
	}
	ck_abort_msg("the helper gave back %zu bytes of holes, not %zu", st.slab_holes, want);
	return 0;
}

/*
 * With a page-return helper the threads' calls give nothing back
 * themselves, their slabs' holes included: after a page-return round the
 * helper looks through every thread's slabs, the current ones aside, and
 * gives back the pages no object uses.  They were left resident before
 * (a multi-threaded gmalloc program kept 17.3 MiB after freeing 99 % of
 * 512 MiB, against 12.0 single-threaded; a hang is the failure).  The
 * live objects keep their contents, and objects handed out there again
 * make the pages count as resident again.
 */
START_TEST(holes_given_back_by_the_helper)
{
	struct anrc_heap *h = heap_plain();
	const struct anrc_class *k = &h->cls[anrc_size_class(64)];
	size_t page = h->page, span, n = HOLE_SLABS * HOLE_OBJS, holes, gone;
	static char *p[HOLE_SLABS * HOLE_OBJS];
	struct anrc_stats st;
	pthread_t t;
	char *big;

	if (UNDER_VALGRIND()) {
		anrc_destroy(h); /* no fast paths, no holes */
		return;
	}
	span = k->npages * page;
	helper_start(h, &t);
	for (size_t i = 0; i < n; i++) {
		p[i] = anrc_alloc(h, 64, 0);
		ck_assert_ptr_nonnull(p[i]);
		memset(p[i], 0x5a, 64);
	}
	/* one object on the first page of each slab stays */
	for (size_t i = 0; i < n; i++) {
		if (((size_t)(p[i] - h->data) & (span - 1)) != 0) {
			anrc_free(h, p[i]);
			p[i] = NULL;
		}
	}
	stats(h, &st);
	ck_assert_uint_eq(st.slab_holes, 0);
	/* A page-return round, which the helper does. */
	big = anrc_alloc(h, 8 * MiB, 0);
	ck_assert_ptr_nonnull(big);
	memset(big, 1, 8 * MiB);
	anrc_free(h, big);
	/* Every slab's but the current one's. */
	holes = wait_for_holes(h, (HOLE_SLABS - 1) * (k->npages - 1) * page);
	/* The helper counts a batch's holes under the heap lock and advises
	 * them away after it, holding hole_lock, which it takes before the
	 * heap lock goes: once the count is seen, hole_lock is free when the
	 * madvise calls are done. */
	pthread_mutex_lock(&h->hole_lock);
	pthread_mutex_unlock(&h->hole_lock);
	ck_assert_uint_le(holes, HOLE_SLABS * (k->npages - 1) * page);
	ck_assert_int_eq(anrc_check(h), 0);
	gone = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == NULL)
			continue;
		ck_assert_uint_eq(resident_pages(p[i], page), 1);
		gone += resident_pages(p[i] + page, span - page) == 0;
		for (int j = 0; j < 64; j++)
			ck_assert_int_eq(p[i][j], 0x5a);
	}
	ck_assert_uint_ge(gone, HOLE_SLABS - 1); /* mincore agrees */
	holes_handed_out_again(h, p, n);
	helper_stop(h, t);
	for (size_t i = 0; i < n; i++)
		anrc_free(h, p[i]);
	empty_heap_end(h);
}
END_TEST

/*
 * A bad free deferred while the heap was busy, then run by the page-return
 * helper's drain, is reported by the helper when it lets the lock go.
 * Before, the note waited for some other call's unlock, and a program
 * that made none lost the line.
 */
START_TEST(bad_free_told_by_the_helper)
{
	struct anrc_heap *h = heap_with(0, ANR_BAD_FREE_REPORT);
	char *big = anrc_alloc(h, 1 * MiB, 0);
	struct anrc_stats st;
	pthread_t t;

	ck_assert_ptr_nonnull(big);
	helper_start(h, &t);
	mb_log_set_sink(sink_fn);
	sink_reset();
	/* busy: the free is queued for the lock's next holder */
	pthread_mutex_lock(&h->lock);
	anrc_free(h, big + 64);
	pthread_mutex_unlock(&h->lock);
	ck_assert_uint_eq(__atomic_load_n(&h->defer_count, __ATOMIC_ACQUIRE), 1);
	ck_assert_int_eq(sink_lines, 0);
	/* the helper wakes, runs the queued free and tells it */
	anrc_set_idle_return(h, 20);
	for (int i = 0; i < 10000 && __atomic_load_n(&sink_lines, __ATOMIC_ACQUIRE) == 0; i++)
		usleep(1000);
	ck_assert_int_eq(sink_lines, 1);
	ck_assert_ptr_nonnull(strstr(sink_buf, "inside a block"));
	helper_stop(h, t);
	stats(h, &st);
	ck_assert_uint_eq(st.bad_frees, 1);
	anrc_free(h, big);
	bad_test_end(h, 1);
}
END_TEST

/*
 * The helper's pass leaves each thread's current slabs alone: their held
 * word may hand out objects of a page the bitmap shows unused.  Here the
 * only object of a page is freed while its word is held; the pass runs
 * (as the helper would, after a page-return round); the next object,
 * from the same word, must lie on a page still counted resident (on a
 * page the helper had given back it would lose what is written there).
 */
START_TEST(holes_helper_leaves_current_slabs)
{
	struct anrc_heap *h = heap_plain();
	struct anrc_stats st;
	char *a, *b;

	if (UNDER_VALGRIND()) {
		anrc_destroy(h); /* no fast paths, no holes */
		return;
	}
	a = anrc_alloc(h, 16, 0);
	ck_assert_ptr_nonnull(a);
	anrc_free(h, a);
	pthread_mutex_lock(&h->lock);
	h->trims++;
	anrc_holes_give_back(h, 1);
	pthread_mutex_unlock(&h->lock);
	b = anrc_alloc(h, 16, 0);
	ck_assert_ptr_nonnull(b);
	ck_assert_msg(anrc_pb_bit(h->resident, (size_t)(b - h->data) >> h->page_shift),
		      "an object handed out on a page given back");
	memset(b, 1, 16);
	stats(h, &st);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_free(h, b);
	empty_heap_end(h);
}
END_TEST

/* ---- bounded work per call ---- */

struct handover {
	struct anrc_heap *h;
	void *volatile slot[64];
	volatile int stop;
};

/* Frees whatever the main thread hands over: its frees find the lock busy
 * now and then, so the main thread's calls run deferred frees too. */
static void *
handover_fn(void *arg)
{
	struct handover *x = arg;

	while (!x->stop)
		for (int i = 0; i < 64; i++) {
			void *p = __atomic_exchange_n(&x->slot[i], NULL, __ATOMIC_ACQ_REL);
			if (p != NULL)
				anrc_free(x->h, p);
		}
	for (int i = 0; i < 64; i++)
		anrc_free(x->h, x->slot[i]);
	return NULL;
}

/*
 * Every call does at most ANR_CALL_STEPS_MAX steps (ARCHITECTURE.md),
 * plus n / 64 + 1 for a call that frees n pages of its own, over a long
 * random mix of small, medium and huge blocks (up to 1 GiB), reallocs,
 * aligned blocks and frees from another thread.  A search that went bit
 * by bit or word by word over the heap would pass the bound at once.
 */
/*
 * The heap lock spins a little before it sleeps (glibc's adaptive mutex):
 * it is held for a bounded, short time, and two threads that both take
 * it for medium blocks paid a futex sleep and wake-up per conflict
 * (bench/alloc/suite.sh, medium-mt: 1.12 s, 0.45 s of it in the kernel,
 * against 0.77 s).  With priority_inherit it is a priority-inheriting
 * mutex instead, which cannot spin.  (glibc keeps the type in __kind; its
 * flag for priority inheritance is PTHREAD_MUTEX_PRIO_INHERIT_NP, 32, of
 * its internal pthreadP.h.)
 */
#define MUTEX_KIND_PI 32
START_TEST(lock_spins_unless_pi)
{
	struct anrc_config c = { .reserve = TEST_RESERVE };
	struct anrc_heap *h = anrc_create(&c);

	ck_assert_ptr_nonnull(h);
	ck_assert_int_eq(h->lock.__data.__kind & 3, PTHREAD_MUTEX_ADAPTIVE_NP);
	ck_assert_int_eq(h->lock.__data.__kind & MUTEX_KIND_PI, 0);
	anrc_destroy(h);
	c.priority_inherit = 1;
	h = anrc_create(&c);
	ck_assert_ptr_nonnull(h);
	ck_assert_int_ne(h->lock.__data.__kind & MUTEX_KIND_PI, 0);
	anrc_destroy(h);
}
END_TEST

START_TEST(steps_bounded)
{
	struct anrc_config c = { .reserve = UNDER_VALGRIND() ? 192 * MiB : 8 * GiB,
				.bad_free = ANR_BAD_FREE_ABORT, .valgrind = 1 };
	struct anrc_heap *h = anrc_create(&c);
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t huge = UNDER_VALGRIND() ? 16 * MiB : GiB;
	enum { SLOTS = 1024 };
	static char *v[SLOTS];
	static size_t vsize[SLOTS];
	static struct handover x;
	unsigned n = scaled(400000);
	uint64_t worst = 0, before, used;
	unsigned huge_live = 0;
	pthread_t t;

	/* The bound counts a slab's bitmap words at ANR_SLAB_WORDS_MAX. */
	for (unsigned k = 0; page == 4096 && k < ANR_NCLASSES; k++)
		ck_assert_uint_le(h->cls[k].words, ANR_SLAB_WORDS_MAX);
	memset(&x, 0, sizeof(x));
	x.h = h;
	ck_assert_int_eq(pthread_create(&t, NULL, handover_fn, &x), 0);
	for (unsigned it = 0; it < n; it++) {
		uint64_t r = rnd();
		unsigned k = (unsigned)(r % SLOTS), kind = (unsigned)((r >> 10) % 1000);
		size_t size, freed_pages = 0;

		if (v[k] == NULL) {
			if (kind < 900)
				size = (r >> 20) % 2048 + 1;
			else if (kind < 995)
				size = (r >> 20) % (UNDER_VALGRIND() ? 256 * KiB : 2 * MiB) + 1;
			else if (huge_live < 2)
				size = huge;
			else
				size = 100 * KiB;
			if (size > 2 * MiB)
				huge_live++;
			before = anrc_step_count;
			if (kind % 7 == 0)
				v[k] = anrc_alloc_aligned(h, (size_t)64 << (r % 12), size, 0);
			else
				v[k] = anrc_alloc(h, size, 0);
			used = anrc_step_count - before;
			if (v[k] == NULL) {
				struct anrc_stats fs;
				anrc_get_stats(h, &fs);
				ck_abort_msg("alloc of %zu (kind %u, %u huge) failed: in use %zu, "
					     "resident %zu, address %zu", size, kind, huge_live,
					     fs.in_use, fs.resident, fs.address_used);
			}
			vsize[k] = size;
			v[k][0] = 1;
		} else if (kind < 100) {
			size = (r >> 20) % (2 * MiB) + 1;
			if (vsize[k] > 2 * MiB)
				huge_live--;
			freed_pages = vsize[k] / page + 1;
			before = anrc_step_count;
			v[k] = anrc_realloc(h, v[k], size, 0);
			used = anrc_step_count - before;
			ck_assert_ptr_nonnull(v[k]);
			vsize[k] = size;
		} else if (kind < 200) {
			void *old;
			if (vsize[k] > 2 * MiB) {
				/* huge blocks are freed here, where they are counted */
				it--;
				goto own_free;
			}
			old = __atomic_exchange_n(&x.slot[k % 64], v[k], __ATOMIC_ACQ_REL);
			freed_pages = vsize[k] / page + 1;
			v[k] = NULL;
			before = anrc_step_count;
			anrc_free(h, old);
			used = anrc_step_count - before;
		} else {
own_free:
			if (vsize[k] > 2 * MiB)
				huge_live--;
			freed_pages = vsize[k] / page + 1;
			before = anrc_step_count;
			anrc_free(h, v[k]);
			used = anrc_step_count - before;
			v[k] = NULL;
		}
		ck_assert_uint_le(used, ANR_CALL_STEPS_MAX + freed_pages / 64 + 1);
		if (used > worst)
			worst = used;
	}
	x.stop = 1;
	pthread_join(t, NULL);
	/* one 1 GiB free on its own */
	{
		char *b = anrc_alloc(h, huge, 0);
		ck_assert_ptr_nonnull(b);
		before = anrc_step_count;
		anrc_free(h, b);
		used = anrc_step_count - before;
		ck_assert_uint_le(used, ANR_CALL_STEPS_MAX + huge / page / 64 + 1);
	}
	for (unsigned k = 0; k < SLOTS; k++)
		anrc_free(h, v[k]);
	ck_assert_uint_gt(worst, 0);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/* ---- threads ---- */

struct worker {
	struct anrc_heap *h;
	unsigned iters;
	volatile int *stop;
	uint64_t seed;
	void **shared;   /* cross-thread handoff slots */
};

#define SHARED 64

static void *
worker_fn(void *arg)
{
	struct worker *w = arg;
	void *mine[64] = { 0 };
	uint64_t x = w->seed;

	for (unsigned i = 0; i < w->iters || (w->stop != NULL && !*w->stop); i++) {
		unsigned k;
		size_t size;
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		k = (unsigned)(x % 64);
		size = (x >> 8) % 2000;
		if ((x >> 20) % 50 == 0)
			size = (x >> 8) % (200 * KiB);
		if (mine[k] != NULL) {
			ck_assert_uint_eq(*(unsigned char *)mine[k], (unsigned char)k);
			anrc_free(w->h, mine[k]);
			mine[k] = NULL;
		} else {
			mine[k] = anrc_alloc(w->h, size + 1, 0);
			ck_assert_ptr_nonnull(mine[k]);
			*(unsigned char *)mine[k] = (unsigned char)k;
		}
		if (i % 20000 == 19999)
			ck_assert_int_eq(anrc_check(w->h), 0); /* while others run */
		if (w->shared != NULL && (x >> 30) % 8 == 0) {
			/* hand a block to whoever comes next: frees cross threads */
			void *b = anrc_alloc(w->h, 48, 0);
			void *old = __atomic_exchange_n(&w->shared[k], b, __ATOMIC_ACQ_REL);
			anrc_free(w->h, old);
		}
	}
	for (unsigned k = 0; k < 64; k++)
		anrc_free(w->h, mine[k]);
	return NULL;
}

START_TEST(threads_stress)
{
	struct anrc_heap *h = heap_plain();
	static void *shared[SHARED];
	pthread_t t[4];
	struct worker w[4];
	struct anrc_stats st;

	memset(shared, 0, sizeof(shared));
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ .h = h, .iters = scaled(200000),
					.seed = 1234567u + (uint64_t)i * 7919, .shared = shared };
		ck_assert_int_eq(pthread_create(&t[i], NULL, worker_fn, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < SHARED; i++)
		anrc_free(h, shared[i]);
	stats(h, &st);
	ck_assert_uint_eq(st.in_use, 0);
	ck_assert_uint_eq(st.bad_frees, 0);
	ck_assert_uint_eq(st.allocs, st.frees);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

START_TEST(fork_with_threads)
{
	struct anrc_heap *h = heap_plain();
	volatile int stop = 0;
	pthread_t t[2];
	struct worker w[2];
	unsigned forks = scaled(40);

	for (int i = 0; i < 2; i++) {
		w[i] = (struct worker){ .h = h, .iters = 0, .stop = &stop,
					.seed = 99991u + (uint64_t)i };
		ck_assert_int_eq(pthread_create(&t[i], NULL, worker_fn, &w[i]), 0);
	}
	for (unsigned f = 0; f < forks; f++) {
		pid_t pid;
		int status;

		anrc_fork_prepare(h);
		pid = fork();
		if (pid == 0) {
			anrc_fork_child(h);
			/* The child's heap is whole and usable. */
			void *v[100];
			int ok = anrc_check(h) == 0;
			for (int i = 0; i < 100; i++) {
				v[i] = anrc_alloc(h, (size_t)i * 97 + 1, 0);
				ok = ok && v[i] != NULL;
			}
			for (int i = 0; i < 100; i++)
				anrc_free(h, v[i]);
			ok = ok && anrc_check(h) == 0;
			/* The workers' blocks have no owner here. */
			anrc_destroy(h);
			_exit(ok ? 0 : 1);
		}
		anrc_fork_parent(h);
		ck_assert_int_ge(pid, 0);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %x", status);
	}
	stop = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

struct run_cutter {
	struct anrc_heap *h;
	volatile int *stop;
	unsigned long rounds;
};

/* Allocates and frees one medium block at a time: its kept run is cut
 * and joined on every round (runcache.c). */
static void *
run_cutter_fn(void *arg)
{
	struct run_cutter *r = arg;
	uint64_t x = 88172645463325252ull;

	while (!*r->stop) {
		char *p;
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		p = anrc_alloc(r->h, 4 * KiB + 1 + (size_t)(x % (60 * KiB)), 0);
		if (p != NULL)
			p[0] = 1;
		anrc_free(r->h, p);
		r->rounds++;
	}
	return NULL;
}

/*
 * A fork never cuts a run cache's operation short: the child's heap
 * passes the check.  (Forks while another thread cut and joined its kept
 * runs left, in the child, pages of a cut run that no cache listed; the
 * fork now waits for every cache's operation to end.)
 */
START_TEST(fork_while_runs_are_cut)
{
	struct anrc_heap *h = heap_cached(0, ANR_BAD_FREE_ABORT);
	volatile int stop = 0;
	struct run_cutter r = { .h = h, .stop = &stop };
	unsigned forks = scaled(200), bad = 0;
	pthread_t t;

	ck_assert_int_eq(pthread_create(&t, NULL, run_cutter_fn, &r), 0);
	while (__atomic_load_n(&r.rounds, __ATOMIC_RELAXED) < 100)
		sched_yield();
	for (unsigned f = 0; f < forks; f++) {
		pid_t pid;
		int status;

		anrc_fork_prepare(h);
		pid = fork();
		if (pid == 0) {
			anrc_fork_child(h);
			_exit(anrc_check(h) == 0 ? 0 : 1);
		}
		anrc_fork_parent(h);
		ck_assert_int_ge(pid, 0);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		bad += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	stop = 1;
	pthread_join(t, NULL);
	ck_assert_uint_eq(bad, 0);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/*
 * A kept-run cache a fork waits for (anrc_runs_hold marks it wanted) is
 * not entered again by its owner: the medium blocks' short ways decline
 * and the full paths serve the block without the cache, so that an owner
 * allocating and freeing without a pause cannot keep the forking thread
 * out (a fork under valgrind once waited for minutes).  Unmarked, the
 * short ways enter again.
 */
START_TEST(fork_wanted_cache_not_entered)
{
	struct anrc_heap *h = heap_cached(0, ANR_BAD_FREE_ABORT);
	struct anrc_runcache *c;
	char *p, *q;

	p = anrc_alloc(h, 40 * KiB, 0);
	anrc_free(h, p); /* kept */
	c = &anrc_theap_peek(h)->rc;
	if (UNDER_VALGRIND()) { /* no kept runs under valgrind */
		anrc_destroy(h);
		return;
	}
	ck_assert_uint_eq(c->n, 1);
	__atomic_store_n(&c->hold_wanted, 1, __ATOMIC_SEQ_CST);
	ck_assert_ptr_null(anrc_alloc_medium(h, 40 * KiB));
	q = anrc_alloc(h, 40 * KiB, 0);
	ck_assert_ptr_nonnull(q);
	ck_assert_int_eq(c->busy, 0);
	ck_assert_int_eq(anrc_free_short(h, q), 0);
	anrc_free(h, q);
	ck_assert_int_eq(c->busy, 0);
	__atomic_store_n(&c->hold_wanted, 0, __ATOMIC_SEQ_CST);
	q = anrc_alloc_medium(h, 40 * KiB);
	ck_assert_ptr_nonnull(q);
	ck_assert_int_eq(anrc_free_short(h, q), 1);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/* ---- good fit and coalescing of page runs ---- */

START_TEST(span_reuse_and_merge)
{
	struct anrc_heap *h = heap_plain();
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	char *a, *b, *c, *guard, *x;

	/* A freed run of an odd length is found again for the same length
	 * (it sits in a list whose range starts below its length). */
	for (size_t n = 17; n <= 200; n += 23) {
		a = anrc_alloc(h, n * page, 0);
		guard = anrc_alloc(h, 20000, 0);
		anrc_free(h, a);
		x = anrc_alloc(h, n * page, 0);
		ck_assert_ptr_eq(x, a);
		anrc_free(h, x);
		anrc_free(h, guard);
	}
	/* Three neighbours freed in every order merge into one run. */
	static const int orders[6][3] = {
		{ 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 }, { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 },
	};
	for (int o = 0; o < 6; o++) {
		/* longer than the runs a thread keeps for itself (runcache.c) */
		size_t m = ANR_RUN_CACHE_MAX / page + 1;
		char *v[3];
		anrc_trim(h, 0);
		a = anrc_alloc(h, m * page, 0);
		b = anrc_alloc(h, (m + 2) * page, 0);
		c = anrc_alloc(h, (m + 4) * page, 0);
		guard = anrc_alloc(h, 20000, 0);
		ck_assert_ptr_eq(b, a + m * page);
		ck_assert_ptr_eq(c, b + (m + 2) * page);
		v[0] = a; v[1] = b; v[2] = c;
		for (int i = 0; i < 3; i++) {
			anrc_free(h, v[orders[o][i]]);
			ck_assert_int_eq(anrc_check(h), 0);
		}
		x = anrc_alloc(h, (3 * m + 6) * page, 0);
		ck_assert_ptr_eq(x, a);
		anrc_free(h, x);
		anrc_free(h, guard);
	}
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

/* ---- walk, lookup, report ---- */

struct walk_acc {
	size_t count, bytes;
};

static int
walk_fn(void *arg, void *block, size_t size)
{
	struct walk_acc *a = arg;
	(void)block;
	a->count++;
	a->bytes += size;
	return 0;
}

static int
walk_stop(void *arg, void *block, size_t size)
{
	(void)block;
	(void)size;
	return ++*(int *)arg == 3 ? 42 : 0;
}

START_TEST(walk_and_block_of)
{
	struct anrc_heap *h = heap_plain();
	enum { N = 300 };
	char *v[N];
	struct walk_acc acc = { 0 };
	struct anrc_stats st;
	size_t size;
	int stops = 0;

	for (int i = 0; i < N; i++)
		v[i] = anrc_alloc(h, (size_t)(i % 10 == 0 ? 50000 + i : i * 13 + 1), 0);
	for (int i = 0; i < N; i += 3) {
		anrc_free(h, v[i]);
		v[i] = NULL;
	}
	ck_assert_int_eq(anrc_walk(h, walk_fn, &acc), 0);
	stats(h, &st);
	ck_assert_uint_eq(acc.count, N - (N + 2) / 3);
	ck_assert_uint_eq(acc.bytes, st.in_use);
	ck_assert_int_eq(anrc_walk(h, walk_stop, &stops), 42);
	ck_assert_int_eq(stops, 3);
	for (int i = 0; i < N; i++) {
		if (v[i] == NULL)
			continue;
		size_t u = anrc_usable_size(h, v[i]);
		ck_assert_ptr_eq(anrc_block_of(h, v[i], &size), v[i]);
		ck_assert_uint_eq(size, u);
		ck_assert_ptr_eq(anrc_block_of(h, v[i] + u / 2, &size), v[i]);
		ck_assert_ptr_eq(anrc_block_of(h, v[i] + u - 1, NULL), v[i]);
	}
	/* Freed blocks, metadata and foreign memory are not blocks. */
	ck_assert_ptr_null(anrc_block_of(h, h, &size));
	ck_assert_ptr_null(anrc_block_of(h, &size, &size));
	ck_assert_ptr_null(anrc_block_of(h, h->data + ((size_t)h->npages - 1) * h->page, &size));
	for (int i = 0; i < N; i++)
		if (v[i] != NULL)
			anrc_free(h, v[i]);
	ck_assert_int_eq(anrc_check(h), 0);
	anrc_destroy(h);
}
END_TEST

START_TEST(walk_try_busy)
{
	struct anrc_heap *h = heap_plain();
	struct walk_acc acc = { 0 };
	void *p = anrc_alloc(h, 100, 0), *q = anrc_alloc(h, 70000, 0);
	int busy = -1;

	/* Another holder of the lock: nothing is walked, nothing waits. */
	pthread_mutex_lock(&h->lock);
	ck_assert_int_eq(anrc_walk_try(h, walk_fn, &acc, &busy), 0);
	pthread_mutex_unlock(&h->lock);
	ck_assert_int_eq(busy, 1);
	ck_assert_uint_eq(acc.count, 0);
	ck_assert_int_eq(anrc_walk_try(h, walk_fn, &acc, &busy), 0);
	ck_assert_int_eq(busy, 0);
	ck_assert_uint_eq(acc.count, 2);
	anrc_free(h, p);
	anrc_free(h, q);
	anrc_destroy(h);
}
END_TEST

START_TEST(freed_bytes_counted)
{
	struct anrc_heap *h = heap_plain();
	size_t sizes[] = { 1, 16, 100, 4000, 16384, 16385, 300000 };
	void *p[7], *q;
	size_t u[7], uq;
	uint64_t before = anrc_freed_bytes(h), sum = 0;

	for (int i = 0; i < 7; i++) {
		p[i] = anrc_alloc(h, sizes[i], 0);
		ck_assert_ptr_nonnull(p[i]);
		u[i] = anrc_usable_size(h, p[i]);
	}
	ck_assert_uint_eq(anrc_freed_bytes(h), before);
	for (int i = 0; i < 6; i++) {
		anrc_free(h, p[i]);
		sum += u[i];
		ck_assert_uint_eq(anrc_freed_bytes(h), before + sum);
	}
	/* A free deferred while the heap is busy counts once it is done, by
	 * the next holder of the lock. */
	pthread_mutex_lock(&h->lock);
	anrc_free(h, p[6]);
	pthread_mutex_unlock(&h->lock);
	ck_assert_uint_eq(anrc_freed_bytes(h), before + sum);
	q = anrc_alloc(h, 100 * KiB, 0); /* takes the lock */
	sum += u[6];
	ck_assert_uint_eq(anrc_freed_bytes(h), before + sum);
	uq = anrc_usable_size(h, q);
	anrc_free(h, q);
	ck_assert_uint_eq(anrc_freed_bytes(h), before + sum + uq);
	anrc_destroy(h);
}
END_TEST

/* Return addresses seen by the functions below, to compare the stack with. */
static uintptr_t bt_ret_inner, bt_ret_outer;

static __attribute__((noinline)) size_t
bt_inner(uintptr_t *out, size_t depth)
{
	size_t n;

	bt_ret_inner = (uintptr_t)__builtin_return_address(0);
	n = anrc_backtrace(out, depth, __builtin_return_address(0));
	__asm__ volatile("" ::: "memory"); /* no tail call */
	return n;
}

static __attribute__((noinline)) size_t
bt_outer(uintptr_t *out, size_t depth)
{
	size_t n;

	bt_ret_outer = (uintptr_t)__builtin_return_address(0);
	n = bt_inner(out, depth);
	__asm__ volatile("" ::: "memory");
	return n;
}

START_TEST(backtrace_from_caller)
{
	uintptr_t out[ANR_BT_MAX + 2];
	size_t n;

	memset(out, 0xff, sizeof(out));
	n = bt_outer(out, 4);
	/* The stack starts at bt_inner's caller (inside bt_outer), then
	 * bt_outer's caller (this test); anrc_backtrace's own frames and
	 * bt_inner's are left out; slots past n are zeroed. */
	ck_assert_uint_ge(n, 2);
	ck_assert_uint_le(n, 4);
	ck_assert_uint_eq(out[0], bt_ret_inner);
	ck_assert_uint_eq(out[1], bt_ret_outer);
	for (size_t i = n; i < 4; i++)
		ck_assert_uint_eq(out[i], 0);
	ck_assert_uint_eq(out[4], UINTPTR_MAX);

	n = bt_outer(out, 1);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(out[0], bt_ret_inner);
	ck_assert_uint_eq(bt_outer(out, 0), 0);
	/* Depth is capped at ANR_BT_MAX. */
	memset(out, 0xff, sizeof(out));
	n = bt_outer(out, 1000);
	ck_assert_uint_ge(n, 2);
	ck_assert_uint_le(n, ANR_BT_MAX);
	ck_assert_uint_eq(out[ANR_BT_MAX], UINTPTR_MAX);
	/* A caller that is not on the stack: the caller alone. */
	n = anrc_backtrace(out, 4, (const void *)0x1234);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(out[0], 0x1234);
	ck_assert_uint_eq(out[1], 0);
}
END_TEST

static struct anrc_modmap where_map;

START_TEST(where_names_file_and_address)
{
	char exe[512], want[600], got[600];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	uintptr_t ip = (uintptr_t)&bt_outer + 1;
	Dl_info di;
	const unsigned char *ehdr;
	uintptr_t expect;

	ck_assert_int_gt(len, 0);
	exe[len] = '\0';
	ck_assert_int_eq(anrc_modmap_load(&where_map), 0);
	ck_assert_uint_gt(where_map.n, 2);
	ck_assert_int_eq(where_map.truncated, 0);
	/* Our own code: the executable's path and the address nm would show
	 * (relative to the load base for a position-independent program). */
	ck_assert_int_ne(dladdr((void *)ip, &di), 0);
	ehdr = di.dli_fbase;
	expect = ehdr[16] == 2 /* ET_EXEC */ ? ip : ip - (uintptr_t)di.dli_fbase;
	snprintf(want, sizeof(want), "%s+0x%lx", exe, (unsigned long)expect);
	anrc_where(&where_map, ip, got, sizeof(got));
	ck_assert_str_eq(got, want);
	/* A libc function is named by libc's path (libc's own write, not a
	 * sanitizer's wrapper of it). */
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	ck_assert_ptr_nonnull(libc);
	uintptr_t w = (uintptr_t)dlsym(libc, "write");
	ck_assert_uint_ne(w, 0);
	ck_assert_int_ne(dladdr((void *)w, &di), 0);
	anrc_where(&where_map, w, got, sizeof(got));
	snprintf(want, sizeof(want), "+0x%lx", (unsigned long)(w - (uintptr_t)di.dli_fbase));
	dlclose(libc);
	ck_assert_ptr_nonnull(strstr(got, "libc.so"));
	ck_assert_ptr_nonnull(strstr(got, want));
	/* Outside every mapping, or without a table: the bare address. */
	anrc_where(&where_map, 0x10, got, sizeof(got));
	ck_assert_str_eq(got, "0x10");
	anrc_where(NULL, ip, got, sizeof(got));
	snprintf(want, sizeof(want), "0x%lx", (unsigned long)ip);
	ck_assert_str_eq(got, want);
	/* A short buffer is cut, never overrun. */
	memset(got, 'x', sizeof(got));
	ck_assert_uint_eq(anrc_where(&where_map, ip, got, 8), 7);
	ck_assert_uint_eq(strlen(got), 7);
	ck_assert_int_eq(got[8], 'x');
}
END_TEST

/*
 * A heap made after the program's own keys still gets a key below 32:
 * glibc keeps a thread's values of keys 32 and up in a block it callocs
 * at that thread's first pthread_setspecific of one, and the heap's
 * first allocation in a new thread called malloc from inside itself (and
 * in a new thread mapped an arena).  The heap takes a key made when the
 * library was loaded; destroyed, it puts a fresh one back.
 */
static void *
alloc_in_thread(void *v)
{
	struct anrc_heap *h = v;
	void *p = anrc_alloc(h, 64, 0);
	anrc_free(h, p);
	return p;
}

START_TEST(heap_key_made_at_load)
{
	pthread_key_t k[40];
	for (int i = 0; i < 40; i++)
		ck_assert_int_eq(pthread_key_create(&k[i], NULL), 0);
	for (int round = 0; round < 3; round++) {
		struct anrc_heap *h = heap_plain();
		ck_assert_int_eq(h->key_ok, 1);
		ck_assert_int_ge(h->key_slot, 0);
		ck_assert_uint_lt((unsigned)h->key, 32);
		pthread_t t;
		void *p;
		ck_assert_int_eq(pthread_create(&t, NULL, alloc_in_thread, h), 0);
		ck_assert_int_eq(pthread_join(t, &p), 0);
		ck_assert_ptr_nonnull(p);
		ck_assert_int_eq(anrc_check(h), 0);
		anrc_destroy(h);
	}
	for (int i = 0; i < 40; i++)
		pthread_key_delete(k[i]);
}
END_TEST


START_TEST(report_and_defaults)
{
	struct anrc_heap *h;
	struct anrc_stats st;
	char buf[4096];
	int fds[2];
	ssize_t n;

	if (!UNDER_VALGRIND()) {
		/* The default reservation (too slow to shadow under valgrind). */
		h = anrc_create(NULL);
		ck_assert_ptr_nonnull(h);
		anrc_get_stats(h, &st);
		ck_assert_uint_ge(st.reserved, ANR_DEFAULT_RESERVE - 64 * KiB);
		ck_assert_uint_le(st.reserved, ANR_DEFAULT_RESERVE);
		ck_assert_uint_eq(st.budget + st.metadata, st.reserved);
		/* metadata is a small share of the reservation */
		ck_assert_uint_lt(st.metadata, st.reserved / 50);
		anrc_destroy(h);
	}
	h = heap_plain();
	void *p = anrc_alloc(h, 1000, 0);
	ck_assert_int_eq(pipe(fds), 0);
	anrc_report(h, fds[1]);
	close(fds[1]);
	n = read(fds[0], buf, sizeof(buf) - 1);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	close(fds[0]);
	ck_assert_ptr_nonnull(strstr(buf, "test heap report"));
	ck_assert_ptr_nonnull(strstr(buf, "in use"));
	ck_assert_ptr_nonnull(strstr(buf, "1 KiB"));
	ck_assert_ptr_nonnull(strstr(buf, "class  1024 B: 1 slabs of 4 pages, 1 of 16 objects live"));
	ck_assert_ptr_nonnull(strstr(buf, "longest free run"));
	anrc_free(h, p);
	anrc_destroy(h);
}
END_TEST

/*
 * A report writes without the heap lock: a reader that stops reading (a
 * full pipe, a paused terminal) holds up the report, not the heap.  The
 * per-class lines were written under the lock, and another thread's
 * large malloc waited for the reader.  Here the pipe has room for the
 * report's first lines and not for the per-class ones.
 */
struct report_arg {
	struct anrc_heap *h;
	int fd;
	volatile int done;
};

static void *
report_main(void *v)
{
	struct report_arg *a = v;
	anrc_report(a->h, a->fd);
	a->done = 1;
	return NULL;
}

START_TEST(report_writes_without_the_lock)
{
	struct anrc_heap *h = heap_plain();
	void *small[8];
	for (int i = 0; i < 8; i++)
		small[i] = anrc_alloc(h, (size_t)16 << i, 0);
	/* The report's lines before the per-class ones, measured. */
	char buf[8192];
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	anrc_report(h, fds[1]);
	ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	char *detail = strstr(buf, "  longest free run");
	ck_assert_ptr_nonnull(detail);
	size_t head = (size_t)(detail - buf);
	/* A pipe of one page, filled but for the head and a little (less
	 * than the detail's first line). */
	ck_assert_int_eq(fcntl(fds[1], F_SETPIPE_SZ, 4096), 4096);
	memset(buf, 'x', sizeof(buf));
	ck_assert_int_eq(write(fds[1], buf, 4096 - head - 8), (ssize_t)(4096 - head - 8));
	struct report_arg a = { .h = h, .fd = fds[1] };
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, report_main, &a), 0);
	/* The reporter writes the head and waits for the reader. */
	int queued = 0;
	for (int i = 0; i < 2000 && queued < 4096 - 8; i++) {
		usleep(5000);
		ck_assert_int_eq(ioctl(fds[0], FIONREAD, &queued), 0);
	}
	ck_assert_int_eq(queued, 4096 - 8);
	/* A block from the span allocator needs the heap lock. */
	void *big = anrc_alloc(h, 4 * MiB, 0);
	ck_assert_ptr_nonnull(big);
	anrc_free(h, big);
	ck_assert_int_eq(a.done, 0);
	ck_assert_int_eq(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
	while (read(fds[0], buf, sizeof(buf)) > 0 || !a.done)
		usleep(1000);
	pthread_join(t, NULL);
	close(fds[0]);
	close(fds[1]);
	for (int i = 0; i < 8; i++)
		anrc_free(h, small[i]);
	anrc_destroy(h);
}
END_TEST

START_TEST(trash_on_free)
{
	struct anrc_config c = { .reserve = TEST_RESERVE, .trash_free = 1 };
	struct anrc_heap *h = anrc_create(&c);
	unsigned char *p = anrc_alloc(h, 64, 0), *keep = anrc_alloc(h, 64, 0);

	if (UNDER_VALGRIND()) {
		/* reading freed memory is what valgrind is there to catch */
		anrc_free(h, p);
		anrc_free(h, keep);
		anrc_destroy(h);
		return;
	}
	memset(p, 0, 64);
	anrc_free(h, p);
	for (int i = 0; i < 64; i++)
		ck_assert_uint_eq(p[i], ANR_TRASH_BYTE);
	anrc_free(h, keep);
	anrc_destroy(h);
}
END_TEST

/* ANRCORE_TEST=name runs one test (Check of this version has no filter). */
#define ADD(t) do { if (only == NULL || strcmp(only, #t) == 0) tcase_add_test(tc, t); } while (0)

static Suite *
anrcore_suite(void)
{
	Suite *s = suite_create("anrcore");
	TCase *tc = tcase_create("core");
	const char *only = getenv("ANRCORE_TEST");

	tcase_set_timeout(tc, 120);
	ADD(size_class_mapping);
	ADD(size_class_table);
	ADD(slab_index_exact);
	ADD(bm2_levels_follow);
	ADD(size_class_heap);
	ADD(random_shadow);
	ADD(huge_requests);
	ADD(aligned_all_powers);
	ADD(realloc_cases);
	ADD(zeroed_reuse);
	ADD(zeroed_block_leaves_fresh_pages);
	ADD(page_return_mincore);
	ADD(shrinking_heap_keeps_a_quarter_band);
	ADD(metadata_returned);
	ADD(new_heap_metadata_pages);
	ADD(resident_after_free_bound);
	ADD(slabs_in_their_zone);
	ADD(holes_of_live_slabs);
	ADD(holes_in_a_fork_child);
	ADD(holes_pass_counts_an_emptied_current_slab);
	ADD(hysteresis_churn);
	ADD(grown_marks_keep_little);
	ADD(marks_hold_across_frees_in_a_row);
	ADD(meta_release_stops_at_top);
	ADD(budget_and_hook);
	ADD(budget_lowered);
	ADD(bad_free_report);
	ADD(bad_free_ignore);
	ADD(bad_free_abort);
	ADD(two_heaps);
	ADD(fork_child_keeps_theaps_of_two_heaps);
	ADD(deferred_free);
	ADD(resident_runs_few_deferred_frees);
	ADD(deferred_ring_full_bad_frees);
	ADD(theap_spare_reused_then_trim);
	ADD(theap_remote_frees);
	ADD(slab_lines_not_shared);
	ADD(held_word_frees);
	ADD(held_word_kept_through_locked_refill);
	ADD(slab_pairs_per_thread);
	ADD(theap_steps_bounded);
	ADD(theap_exit_adopted);
	ADD(release_free_all_threads);
	ADD(lock_spins_unless_pi);
	ADD(steps_bounded);
	ADD(runcache_rt_loop);
	ADD(medium_blocks_rarely_lock);
	ADD(few_object_class_rarely_locks);
	ADD(emptied_slabs_kept_per_class);
	ADD(emptied_slabs_kept_many_classes);
	ADD(realloc_small_takes_no_lock);
	ADD(small_refill_takes_no_lock);
	ADD(exited_thread_parks_its_slabs);
	ADD(parked_slabs_go_back_when_short);
	ADD(fast_free_on_every_page_of_a_slab);
	ADD(free_of_the_last_object);
	ADD(emptied_slab_takes_one_call);
	ADD(realloc_medium_stays_owned);
	ADD(runs_cut_keep_pages_hot);
	ADD(medium_blocks_take_the_short_way);
	ADD(run_blocks_in_use_across_exit);
	ADD(runcache_bounded_and_flushed);
	ADD(runcache_budget_exact);
	ADD(runcache_double_and_foreign_free);
	ADD(return_helper_does_the_madvise);
	ADD(return_helper_stopped_before_it_runs);
	ADD(return_helper_goes_down_to_the_keep);
	ADD(holes_given_back_by_the_helper);
	ADD(bad_free_told_by_the_helper);
	ADD(helper_idle_return);
	ADD(helper_idle_return_from_the_start);
	ADD(return_all_by_the_helper);
	ADD(holes_helper_leaves_current_slabs);
	ADD(threads_stress);
	ADD(fork_with_threads);
	ADD(fork_while_runs_are_cut);
	ADD(fork_wanted_cache_not_entered);
	ADD(span_reuse_and_merge);
	ADD(walk_and_block_of);
	ADD(walk_try_busy);
	ADD(freed_bytes_counted);
	ADD(backtrace_from_caller);
	ADD(where_names_file_and_address);
	ADD(report_and_defaults);
	ADD(heap_key_made_at_load);
	ADD(report_writes_without_the_lock);
	ADD(budget_lowered_takes_kept_runs);
	ADD(bad_free_told_after_the_lock);
	ADD(bad_free_notes_overflow);
	ADD(trash_on_free);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(anrcore_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
