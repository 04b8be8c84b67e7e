/*
 * The side table and the plain path: block records live outside the heap
 * (a write just before a block reaches none of them), the table holds and
 * gives back records for many blocks, anr_free and anr_realloc are the
 * functions of the older names, and a plain heap's malloc+free pair takes
 * no lock.  Lock operations are counted by this program's own
 * pthread_mutex_lock, _trylock and _unlock, which stand in front of the C
 * library's for the whole process (the library is linked in statically).
 */
#include "config.h"

#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_MEMCHECK_H
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#else
#define UNDER_VALGRIND() 0
#endif

#include "anrmalloc/anrmalloc.h"
#include "mb_log.h"
#include "tests/testlib/mbt_check.h"

#define MIB (1024u * 1024u)
#define MANY 100000u
#define PAIRS 1000

/* ---- counting the lock operations of this thread ---- */

static __thread int counting;
static __thread unsigned long lock_ops;

#define COUNTED_MUTEX_CALL(name)                                              \
	int name(pthread_mutex_t *m);                                         \
	int name(pthread_mutex_t *m)                                          \
	{                                                                     \
		static int (*real)(pthread_mutex_t *);                        \
		int (*fn)(pthread_mutex_t *) =                                \
			__atomic_load_n(&real, __ATOMIC_RELAXED);             \
		if (fn == NULL) {                                             \
			fn = (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT, #name); \
			__atomic_store_n(&real, fn, __ATOMIC_RELAXED);        \
		}                                                             \
		if (counting)                                                 \
			lock_ops++;                                           \
		return fn(m);                                                 \
	}
COUNTED_MUTEX_CALL(pthread_mutex_lock)
COUNTED_MUTEX_CALL(pthread_mutex_trylock)
COUNTED_MUTEX_CALL(pthread_mutex_unlock)

static anr_heap_t *heap(int track, uint64_t max_blocks, uint64_t info)
{
	struct anr_malloc_config c;
	anr_heap_t *h;

	anr_config_init(&c);
	c.reserve = 256 * MIB;
	c.budget = 64 * MIB;
	c.on_error = ANR_ERROR_REPORT;
	c.track_blocks = track;
	c.max_blocks = max_blocks;
	c.debug_info_size = info;
	h = anr_heap_create(&c);
	ck_assert_ptr_nonnull(h);
	return h;
}

/* ---- no header: a write before a block reaches no record ---- */

START_TEST(underflow_before_block_keeps_its_record)
{
	anr_heap_t *h = heap(1, 4096, 0);
	struct anr_malloc_stats st;
	struct anr_block_info in;
	char *b[256], *p = NULL, *q = NULL;
	int line = 0;

	/* Two blocks that touch: q starts where p's usable bytes end. */
	for (int i = 0; i < 256 && q == NULL; i++) {
		line = __LINE__ + 1;
		b[i] = ANR_MALLOC(h, 64);
		ck_assert_ptr_nonnull(b[i]);
		for (int j = 0; j < i && q == NULL; j++)
			if (b[j] + anr_malloc_usable_size(h, b[j]) == b[i])
				p = b[j], q = b[i];
	}
	ck_assert_msg(q != NULL, "no two adjacent blocks");
	/* 16 bytes before q: the last bytes of p, which p's owner may write. */
	memset(q - 16, 0xff, 16);
	ck_assert_int_eq(anr_block_info(h, q, &in), 0);
	ck_assert_ptr_eq(in.ptr, q);
	ck_assert_uint_eq(in.size, 64);
	ck_assert_str_eq(in.file, __FILE__);
	ck_assert_int_eq(in.line, line);
	ck_assert_str_eq(in.func, __func__);
	ck_assert_int_eq(anr_verify(h), 0);
	anr_heap_stats(h, &st);
	size_t live = st.live_blocks;
	anr_free(h, q);
	anr_heap_stats(h, &st);
	ck_assert_uint_eq(st.bad_frees, 0);
	ck_assert_uint_eq(st.live_blocks, live - 1);
	ck_assert_int_eq(anr_block_info(h, q, &in), -1);
	/* p is untouched as a block. */
	ck_assert_int_eq(anr_block_info(h, p, &in), 0);
	ck_assert_ptr_eq(in.ptr, p);
	anr_heap_destroy(h);
}
END_TEST

/* ---- the side table holds many records and gives them back ---- */

static char *many[MANY];

START_TEST(side_table_holds_and_frees_many_records)
{
	anr_heap_t *h = heap(1, MANY, sizeof(uint32_t));
	struct anr_malloc_stats st;
	struct anr_block_info in;

	for (int round = 0; round < 2; round++) {
		for (uint32_t i = 0; i < MANY; i++) {
			many[i] = ANR_MALLOC(h, 16 + i % 64);
			ck_assert_ptr_nonnull(many[i]);
			ck_assert_int_eq(anr_set_debug_info(many[i], &i, sizeof(i)), 0);
		}
		/* Every record is taken: the next allocation is refused. */
		ck_assert_ptr_null(anr_malloc(h, 16));
		anr_heap_stats(h, &st);
		ck_assert_uint_eq(st.live_blocks, MANY);
		for (uint32_t i = 0; i < MANY; i += 997) {
			uint32_t got = 0;

			ck_assert_int_eq(anr_block_info(h, many[i] + 5, &in), 0);
			ck_assert_ptr_eq(in.ptr, many[i]);
			ck_assert_uint_eq(in.size, 16 + i % 64);
			ck_assert_str_eq(in.file, __FILE__);
			ck_assert_int_eq(anr_get_debug_info(many[i], &got, sizeof(got)),
					 (int)sizeof(got));
			ck_assert_uint_eq(got, i);
		}
		for (uint32_t i = 0; i < MANY; i++)
			anr_free(h, many[i]);
		anr_heap_stats(h, &st);
		ck_assert_uint_eq(st.live_blocks, 0);
		ck_assert_uint_eq(st.live_bytes, 0);
		ck_assert_uint_eq(st.bad_frees, 0);
		ck_assert_int_eq(anr_verify(h), 0);
	}
	anr_heap_destroy(h);
}
END_TEST

/* ---- the 2013 names ---- */

START_TEST(new_names_are_the_old_functions)
{
	ck_assert_ptr_eq((void *)anr_free, (void *)anr_malloc_free);
	ck_assert_ptr_eq((void *)anr_realloc, (void *)anr_malloc_realloc);
	ck_assert_ptr_eq((void *)anr_realloc_dbg, (void *)anr_malloc_realloc_dbg);
	for (int track = 0; track < 2; track++) {
		anr_heap_t *h = heap(track, 1024, 0);
		struct anr_malloc_stats st;
		char *p = anr_malloc(h, 10);

		memcpy(p, "0123456789", 10);
		p = anr_realloc(h, p, 5000);
		ck_assert_ptr_nonnull(p);
		ck_assert_int_eq(memcmp(p, "0123456789", 10), 0);
		p = ANR_REALLOC(h, p, 100);
		ck_assert_int_eq(memcmp(p, "0123456789", 10), 0);
		ck_assert_ptr_null(anr_realloc(h, p, 0)); /* frees */
		anr_free(h, NULL);
		anr_heap_stats(h, &st);
		ck_assert_uint_eq(st.live_blocks, 0);
		ck_assert_uint_eq(st.bad_frees, 0);
		anr_heap_destroy(h);
	}
}
END_TEST

/* ---- the plain path ---- */

static unsigned long ops_per_pairs(anr_heap_t *h, size_t size)
{
	anr_free(h, anr_malloc(h, size)); /* the thread's slab, set up first */
	lock_ops = 0;
	counting = 1;
	for (int i = 0; i < PAIRS; i++) {
		void *p = anr_malloc(h, size);
		__asm__ volatile("" : : "r"(p) : "memory");
		anr_free(h, p);
	}
	counting = 0;
	return lock_ops;
}

/*
 * Under valgrind the core hands every block over under its lock (to tell
 * valgrind of it), so a plain pair takes the core's lock there; the layer
 * must still add none of its own.
 */
START_TEST(plain_pair_takes_no_lock)
{
	anr_heap_t *h = heap(0, 1024, 0);
	static const size_t sizes[] = { 16, 64, 256, 4096 };
	unsigned long plain64 = 0, track64;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		unsigned long n = ops_per_pairs(h, sizes[i]);

		if (sizes[i] == 64)
			plain64 = n;
		ck_assert_msg(n == 0 || UNDER_VALGRIND(),
			      "%d pairs of %zu bytes: %lu lock operations", PAIRS,
			      sizes[i], n);
	}
	anr_heap_destroy(h);
	/* The count sees the lock when there is one: a heap with records
	 * takes it for each of them, on top of what the core takes. */
	h = heap(1, 1024, 0);
	track64 = ops_per_pairs(h, 64);
	ck_assert_uint_ge(track64, plain64 + 2 * PAIRS);
	anr_heap_destroy(h);
}
END_TEST

START_TEST(plain_heap_judges_frees_and_reports_blocks)
{
	anr_heap_t *h = heap(0, 1024, 0);
	struct anr_malloc_stats st;
	struct anr_block_info in;
	struct anr_gc_result res;
	char local[16];
	char *p = ANR_MALLOC(h, 100);

	ck_assert_int_eq(anr_block_info(h, p + 50, &in), 0);
	ck_assert_ptr_eq(in.ptr, p);
	ck_assert_uint_ge(in.size, 100);
	ck_assert_ptr_null(in.file);
	anr_heap_stats(h, &st);
	ck_assert_uint_eq(st.live_blocks, 1);
	anr_free(h, local);
	anr_free(h, p + 8);
	anr_free(h, p);
	anr_free(h, p);
	anr_heap_stats(h, &st);
	ck_assert_uint_eq(st.bad_frees, 3);
	ck_assert_uint_eq(st.live_blocks, 0);
	ck_assert_int_eq(anr_gc_collect(h, ANR_GC_FREE, -1, &res), -1);
	ck_assert_int_eq(errno, ENOTSUP);
	{
		/* The block report says why it lists nothing. */
		static char text[4096];
		int fd = memfd_create("anrmalloc-report", 0);
		ssize_t n;

		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(anr_heap_report(h, fd, ANR_REPORT_BLOCKS), 0);
		ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
		n = read(fd, text, sizeof(text) - 1);
		ck_assert_int_gt(n, 0);
		text[n] = 0;
		close(fd);
		ck_assert_msg(strstr(text, "no block records (track_blocks = no)"),
			      "report: %s", text);
	}
	ck_assert_int_eq(anr_verify(h), 0);
	anr_heap_destroy(h);
}
END_TEST

static Suite *records_suite(void)
{
	Suite *s = suite_create("anrmalloc-records");
	TCase *tc = tcase_create("records");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, underflow_before_block_keeps_its_record);
	tcase_add_test(tc, side_table_holds_and_frees_many_records);
	tcase_add_test(tc, new_names_are_the_old_functions);
	tcase_add_test(tc, plain_pair_takes_no_lock);
	tcase_add_test(tc, plain_heap_judges_frees_and_reports_blocks);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	mb_log_init("test_anrmalloc_records", -1, MB_LOG_ERR);
	return mbt_run_suite(records_suite());
}
