/*
 * Unit tests of the anr_malloc API (no broker).  They also run under
 * ASan+UBSan and valgrind.
 */
#include "config.h"

#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "anrcore/anrcore.h"
#include "anrmalloc/anrmalloc.h"
#include "mb_conf.h"
#include "mb_log.h"
#include "tests/testlib/mbt_anrheap.h"
#include "tests/testlib/mbt_threads.h"

/* Test-only paths of the implementation library. */
size_t am_test_peek(anr_heap_t *h, const void *p, void *buf, size_t n);
const struct mb_conf_key *am_config_table(void);
void am_test_lock(anr_heap_t *h);
void am_test_unlock(anr_heap_t *h);

#define KIB 1024u
#define MIB (1024u * 1024u)
#define REPORT_MAX (256 * 1024)

static anr_heap_t *heap_with(void (*tweak)(struct anr_malloc_config *))
{
	struct anr_malloc_config c;
	anr_heap_t *h;

	mbt_small_config(&c, 4 * MIB);
	if (tweak)
		tweak(&c);
	h = anr_heap_create(&c);
	ck_assert_ptr_nonnull(h);
	return h;
}

/* Everything written to fd, as a NUL-terminated string (static buffer). */
static char report_buf[REPORT_MAX];

static int mem_fd(void)
{
	int fd = memfd_create("anrmalloc-test", 0);
	ck_assert_int_ge(fd, 0);
	return fd;
}

static const char *fd_text(int fd)
{
	ssize_t n;
	size_t len = 0;

	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	while ((n = read(fd, report_buf + len, sizeof(report_buf) - 1 - len)) > 0)
		len += (size_t)n;
	report_buf[len] = 0;
	close(fd);
	return report_buf;
}

static const char *heap_report(anr_heap_t *h, unsigned what)
{
	int fd = mem_fd();
	ck_assert_int_eq(anr_heap_report(h, fd, what), 0);
	return fd_text(fd);
}

static char *ptr_text(const void *p)
{
	static char buf[32];
	mb_format(buf, sizeof(buf), "%p", p);
	return buf;
}

/* ---- configuration ---- */

START_TEST(config_defaults_and_keys)
{
	struct anr_malloc_config c;
	const struct mb_conf_key *t = am_config_table();

	memset(&c, 0xff, sizeof(c));
	ck_assert_int_eq(mb_conf_defaults(t, &c), 0);
	anr_config_init(&c);
	ck_assert_str_eq(c.name, "anrmalloc");
	ck_assert_uint_eq(c.reserve, 1u << 30);
	ck_assert_uint_eq(c.need_more_retries, 4);
	ck_assert_uint_eq(c.broker_timeout, 250);
	ck_assert_int_eq(anr_config_set(&c, "guards", "yes"), 0);
	ck_assert_int_eq(c.guards, 1);
	ck_assert_int_eq(anr_config_set(&c, "budget", "3M"), 0);
	ck_assert_uint_eq(c.budget, 3 * MIB);
	ck_assert_int_eq(anr_config_set(&c, "on_error", "ignore"), 0);
	ck_assert_int_eq(c.on_error, ANR_ERROR_IGNORE);
	ck_assert_int_eq(anr_config_set(&c, "no_such_key", "1"), -1);
	ck_assert_int_eq(anr_config_set(&c, "budget", "lots"), -1);
	ck_assert_uint_eq(c.budget, 3 * MIB);
	ck_assert_int_eq(anr_config_set(&c, "stack_depth", "65"), -1);
	ck_assert_int_eq(anr_config_set(&c, "stack_depth", "64"), 0);
	ck_assert_uint_eq(c.stack_depth, 64);
}
END_TEST

START_TEST(config_file_and_env)
{
	char path[] = "/tmp/anrmalloc-cfg.XXXXXX";
	/* Values out of their keys' ranges are bad lines too (they were
	 * taken, and anr_heap_open then failed naming no file or line). */
	const char text[] = "# heap for the test\nname = fromfile\n"
			    "recorder = 16\nrecorder = 99999999\nbogus line\nguards = on\n"
			    "stack_depth = 100\ndebug_info_size = 5000\n";
	struct anr_malloc_config c;
	anr_heap_t *h;
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	anr_config_init(&c);
	ck_assert_int_eq(anr_config_load(&c, path), 4);
	ck_assert_str_eq(c.name, "fromfile");
	ck_assert_uint_eq(c.recorder, 16);
	ck_assert_int_eq(c.guards, 1);
	ck_assert_uint_eq(c.stack_depth, 0);
	ck_assert_uint_eq(c.debug_info_size, 0);
	h = anr_heap_open(path);
	ck_assert_ptr_nonnull(h);
	ck_assert_str_eq(anr_heap_name(h), "fromfile");
	anr_heap_destroy(h);
	unlink(path);
	ck_assert_ptr_null(anr_heap_open("/nonexistent/anrmalloc.conf"));
	ck_assert_int_eq(errno, ENOENT);

	setenv("ANRMALLOC_STACK_DEPTH", "5", 1);
	anr_config_init(&c);
	ck_assert_int_eq(anr_config_env(&c, NULL), 0);
	ck_assert_uint_eq(c.stack_depth, 5);
	unsetenv("ANRMALLOC_STACK_DEPTH");

	/* broker = 1 and no broker: creation fails and says why. */
	anr_config_init(&c);
	c.broker = 1;
	snprintf(c.broker_socket, sizeof(c.broker_socket), "/nonexistent/mb.sock");
	errno = 0;
	ck_assert_ptr_null(anr_heap_create(&c));
	ck_assert_int_ne(errno, 0);

	anr_config_init(&c);
	c.stack_depth = 1000; /* beyond the limit */
	ck_assert_ptr_null(anr_heap_create(&c));
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(example_config_parses)
{
	const char *top = getenv("top_srcdir");
	struct anr_malloc_config c;
	char path[4096];

	snprintf(path, sizeof(path), "%s/conf/anrmalloc.conf", top ? top : "..");
	anr_config_init(&c);
	ck_assert_int_eq(anr_config_load(&c, path), 0);
	ck_assert_str_eq(c.name, "imaging");
	ck_assert_uint_eq(c.budget, 16 * MIB);
	ck_assert_int_eq(c.broker, 1);
	ck_assert_uint_eq(c.stack_depth, 6);
	ck_assert_str_eq(c.debug_socket, "/run/imaging-heap.sock");
}
END_TEST

START_TEST(config_keys_in_man_page)
{
	const char *top = getenv("top_srcdir");
	char path[4096], needle[128];
	const char *text;
	int fd;

	if (top == NULL)
		top = "..";
	snprintf(path, sizeof(path), "%s/man/anrmalloc.3", top);
	fd = open(path, O_RDONLY);
	ck_assert_msg(fd >= 0, "cannot open %s", path);
	{
		int m = mem_fd();
		char buf[4096];
		ssize_t n;
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			ck_assert_int_eq(write(m, buf, (size_t)n), n);
		close(fd);
		text = fd_text(m);
	}
	for (const struct mb_conf_key *k = am_config_table(); k->name; k++) {
		snprintf(needle, sizeof(needle), "\n.B %s\n", k->name);
		ck_assert_msg(strstr(text, needle) != NULL,
			      "key %s is not documented in anrmalloc.3", k->name);
	}
}
END_TEST

/* ---- allocation ---- */

START_TEST(malloc_free_basic)
{
	anr_heap_t *h = heap_with(NULL);
	struct anr_malloc_stats st;
	unsigned char *p[64];

	for (int i = 0; i < 64; i++) {
		size_t n = (size_t)(i * 37 + 1);
		p[i] = anr_malloc(h, n);
		ck_assert_ptr_nonnull(p[i]);
		ck_assert_uint_eq((uintptr_t)p[i] % 16, 0);
		ck_assert_uint_ge(anr_malloc_usable_size(h, p[i]), n);
		memset(p[i], i, n);
		ck_assert_ptr_eq(anr_heap_of(p[i]), h);
	}
	anr_heap_stats(h, &st);
	ck_assert_uint_eq(st.live_blocks, 64);
	for (int i = 0; i < 64; i++) {
		for (size_t j = 0; j < (size_t)(i * 37 + 1); j++)
			ck_assert_uint_eq(p[i][j], (unsigned)i);
		anr_malloc_free(h, p[i]);
	}
	anr_heap_stats(h, &st);
	ck_assert_uint_eq(st.live_blocks, 0);
	ck_assert_uint_eq(st.live_bytes, 0);
	ck_assert_uint_eq(st.allocs, 64);
	ck_assert_uint_eq(st.frees, 64);
	anr_malloc_free(h, NULL);
	p[0] = anr_malloc(h, 0);
	ck_assert_ptr_nonnull(p[0]);
	anr_malloc_free(h, p[0]);
	ck_assert_ptr_null(anr_heap_of(&st));
	anr_heap_destroy(h);
}
END_TEST

START_TEST(calloc_zero_and_overflow)
{
	anr_heap_t *h = heap_with(NULL);
	unsigned char *p = anr_malloc(h, 4096);

	memset(p, 0x77, 4096);
	anr_malloc_free(h, p);
	p = anr_calloc(h, 512, 8);
	ck_assert_ptr_nonnull(p);
	for (int i = 0; i < 4096; i++)
		ck_assert_uint_eq(p[i], 0);
	errno = 0;
	ck_assert_ptr_null(anr_calloc(h, SIZE_MAX / 2, 4));
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_ptr_null(anr_malloc(h, SIZE_MAX - 8));
	anr_malloc_free(h, p);
	anr_heap_destroy(h);
}
END_TEST

START_TEST(realloc_semantics)
{
	anr_heap_t *h = heap_with(NULL);
	unsigned char *p = anr_malloc_realloc(h, NULL, 100), *q;
	struct anr_malloc_stats st;

	ck_assert_ptr_nonnull(p);
	for (int i = 0; i < 100; i++)
		p[i] = (unsigned char)i;
	q = anr_malloc_realloc(h, p, 100000);
	ck_assert_ptr_nonnull(q);
	for (int i = 0; i < 100; i++)
		ck_assert_uint_eq(q[i], (unsigned)i);
	q = anr_malloc_realloc(h, q, 10);
	ck_assert_ptr_nonnull(q);
	for (int i = 0; i < 10; i++)
		ck_assert_uint_eq(q[i], (unsigned)i);
	anr_heap_stats(h, &st);
	ck_assert_uint_eq(st.live_bytes, 10);
	ck_assert_uint_ge(st.reallocs, 2);
	/* Too big: NULL, and the old block is intact. */
	ck_assert_ptr_null(anr_malloc_realloc(h, q, 1024 * MIB));
	ck_assert_uint_eq(q[9], 9);
	ck_assert_ptr_null(anr_malloc_realloc(h, q, 0));
	anr_heap_stats(h, &st);
	ck_assert_uint_eq(st.live_blocks, 0);
	anr_heap_destroy(h);
}
END_TEST

START_TEST(memalign_alignments)
{
	anr_heap_t *h = heap_with(NULL);

	for (size_t a = 8; a <= 8192; a <<= 1) {
		unsigned char *p = anr_memalign(h, a, 300);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq((uintptr_t)p % a, 0);
		memset(p, 1, 300);
		ck_assert_uint_ge(anr_malloc_usable_size(h, p), 300);
		ck_assert_int_eq(anr_check_block(h, p), 0);
		anr_malloc_free(h, p);
	}
	errno = 0;
	ck_assert_ptr_null(anr_memalign(h, 24, 10));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(anr_memalign(h, 0, 10));
	ck_assert_ptr_null(anr_memalign(h, 2, 10));
	anr_heap_destroy(h);
}
END_TEST

/* ---- need-more callbacks ---- */

struct cache {
	anr_heap_t *h;
	void *obj[64];
	int n;
	int calls;
	int lie;
	enum anr_need_reason last_why;
};

static size_t cache_need(void *arg, anr_heap_t *h, size_t bytes,
			 enum anr_need_reason why, unsigned round)
{
	struct cache *c = arg;
	size_t freed = 0;

	(void)round;
	ck_assert_ptr_eq(h, c->h);
	c->calls++;
	c->last_why = why;
	if (c->lie)
		return SIZE_MAX / 4; /* claims success, frees nothing */
	while (c->n > 0 && freed < bytes) {
		void *o = c->obj[--c->n];
		freed += anr_malloc_usable_size(h, o);
		anr_malloc_free(h, o);
	}
	return freed;
}

static void budget_1m(struct anr_malloc_config *c)
{
	c->budget = 1 * MIB;
	c->free_low = 0;
	c->free_high = 0;
}

static void fill_cache(struct cache *c, int n, size_t size)
{
	for (int i = 0; i < n; i++) {
		c->obj[c->n] = anr_malloc_if_available(c->h, size);
		ck_assert_ptr_nonnull(c->obj[c->n]);
		c->n++;
	}
}

START_TEST(need_more_frees_cache)
{
	struct cache c = { 0 };
	void *p;

	c.h = heap_with(budget_1m);
	fill_cache(&c, 12, 64 * KIB);
	ck_assert_int_eq(anr_add_need_callback(c.h, cache_need, &c), 0);
	/* Over the budget: if_available fails at once and calls nobody. */
	ck_assert_ptr_null(anr_malloc_if_available(c.h, 400 * KIB));
	ck_assert_int_eq(c.calls, 0);
	ck_assert_int_eq(anr_oom_get(c.h, NULL), 0);
	/* anr_malloc makes the cache give up objects. */
	p = anr_malloc(c.h, 400 * KIB);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_ge(c.calls, 1);
	ck_assert_int_eq(c.last_why, ANR_NEED_ALLOC);
	ck_assert_int_lt(c.n, 12);
	ck_assert_int_eq(anr_oom_get(c.h, NULL), 0);
	ck_assert_int_eq(anr_remove_need_callback(c.h, cache_need, &c), 0);
	ck_assert_int_eq(anr_remove_need_callback(c.h, cache_need, &c), -1);
	anr_heap_destroy(c.h);
}
END_TEST

START_TEST(need_more_lying_callback_bounded)
{
	struct cache c = { 0 };
	struct anr_malloc_stats st;

	c.h = heap_with(budget_1m);
	c.lie = 1;
	ck_assert_int_eq(anr_add_need_callback(c.h, cache_need, &c), 0);
	ck_assert_ptr_null(anr_malloc(c.h, 2 * MIB));
	ck_assert_int_ge(c.calls, 1);
	ck_assert_int_le(c.calls, 4); /* need_more_retries */
	anr_heap_stats(c.h, &st);
	ck_assert_uint_eq(st.need_calls, (uint64_t)c.calls);
	anr_heap_destroy(c.h);
}
END_TEST

START_TEST(callback_table_limits)
{
	anr_heap_t *h = heap_with(NULL);
	struct cache c[ANR_MAX_CALLBACKS + 1];

	for (int i = 0; i < ANR_MAX_CALLBACKS; i++)
		ck_assert_int_eq(anr_add_need_callback(h, cache_need, &c[i]), 0);
	ck_assert_int_eq(anr_add_need_callback(h, cache_need, &c[ANR_MAX_CALLBACKS]), -1);
	ck_assert_int_eq(errno, ENOSPC);
	ck_assert_int_eq(anr_add_need_callback(h, NULL, NULL), -1);
	anr_heap_destroy(h);
}
END_TEST

/* ---- sticky out-of-memory ---- */

static int oom_calls;
static size_t oom_size;

static void on_oom(void *arg, anr_heap_t *h, size_t requested)
{
	(void)arg;
	(void)h;
	oom_calls++;
	oom_size = requested;
}

static void fail_fast(struct anr_malloc_config *c)
{
	budget_1m(c);
	c->oom_fail_fast = 1;
}

START_TEST(sticky_oom_set_and_cleared)
{
	anr_heap_t *h = heap_with(budget_1m);
	struct anr_oom_info info;
	void *p;

	oom_calls = 0;
	anr_set_oom_callback(h, on_oom, NULL);
	ck_assert_ptr_null(anr_malloc_if_available(h, 2 * MIB));
	ck_assert_int_eq(anr_oom_get(h, NULL), 0);
	ck_assert_ptr_null(anr_malloc(h, 2 * MIB));
	ck_assert_int_eq(anr_oom_get(h, &info), 1);
	ck_assert_uint_eq(info.requested, 2 * MIB);
	ck_assert_uint_eq(info.count, 1);
	ck_assert_ptr_nonnull(info.caller);
	ck_assert_int_eq(oom_calls, 1);
	ck_assert_uint_eq(oom_size, 2 * MIB);
	ck_assert_ptr_null(anr_malloc(h, 3 * MIB));
	ck_assert_int_eq(anr_oom_get(h, &info), 1);
	ck_assert_uint_eq(info.count, 2);
	ck_assert_uint_eq(info.requested, 2 * MIB); /* the first one */
	ck_assert_int_eq(oom_calls, 1);             /* once per state */
	/* Without oom_fail_fast, small allocations still work. */
	p = anr_malloc(h, 100);
	ck_assert_ptr_nonnull(p);
	anr_malloc_free(h, p);
	anr_oom_clear(h);
	ck_assert_int_eq(anr_oom_get(h, &info), 0);
	ck_assert_uint_eq(info.count, 0);
	ck_assert_ptr_null(anr_malloc(h, 2 * MIB));
	ck_assert_int_eq(oom_calls, 2);
	anr_heap_destroy(h);

	h = heap_with(fail_fast);
	ck_assert_ptr_null(anr_malloc(h, 2 * MIB));
	ck_assert_ptr_null(anr_malloc(h, 100)); /* fails fast while set */
	anr_oom_clear(h);
	p = anr_malloc(h, 100);
	ck_assert_ptr_nonnull(p);
	anr_malloc_free(h, p);
	anr_heap_destroy(h);
}
END_TEST

/* ---- several heaps ---- */

static void budget_2m(struct anr_malloc_config *c)
{
	c->budget = 2 * MIB;
	snprintf(c->name, sizeof(c->name), "second");
}

START_TEST(heaps_independent)
{
	anr_heap_t *a = heap_with(budget_1m), *b = heap_with(budget_2m);
	struct anr_malloc_stats sa, sb;
	void *pa, *pb;

	pa = anr_malloc(a, 1500 * KIB);
	ck_assert_ptr_null(pa);                 /* over a's budget */
	ck_assert_int_eq(anr_oom_get(a, NULL), 1);
	pb = anr_malloc(b, 1500 * KIB);         /* fits in b's */
	ck_assert_ptr_nonnull(pb);
	ck_assert_int_eq(anr_oom_get(b, NULL), 0);
	pa = anr_malloc(a, 100);
	ck_assert_ptr_nonnull(pa);
	ck_assert_ptr_eq(anr_heap_of(pa), a);
	ck_assert_ptr_eq(anr_heap_of(pb), b);
	ck_assert_str_eq(anr_heap_name(b), "second");
	/* A block freed into the wrong heap is refused and stays live. */
	anr_malloc_free(b, pa);
	anr_heap_stats(a, &sa);
	anr_heap_stats(b, &sb);
	ck_assert_uint_eq(sb.bad_frees, 1);
	ck_assert_uint_eq(sa.bad_frees, 0);
	ck_assert_uint_eq(sa.live_blocks, 1);
	ck_assert_uint_eq(sb.live_blocks, 1);
	ck_assert_uint_eq(sa.budget, 1 * MIB);
	ck_assert_uint_eq(sb.budget, 2 * MIB);
	anr_malloc_free(a, pa);
	anr_malloc_free(b, pb);
	anr_heap_destroy(a);
	anr_heap_destroy(b);
}
END_TEST

START_TEST(bad_and_double_free)
{
	anr_heap_t *h = heap_with(NULL);
	struct anr_malloc_stats st;
	char local[16];
	char *p = anr_malloc(h, 64), *q = anr_malloc(h, 64);

	anr_malloc_free(h, p + 8);   /* interior pointer */
	anr_malloc_free(h, local);   /* foreign */
	anr_malloc_free(h, p);
	anr_malloc_free(h, p);       /* double */
	anr_heap_stats(h, &st);
	ck_assert_uint_eq(st.bad_frees, 3);
	ck_assert_uint_eq(st.live_blocks, 1);
	ck_assert_ptr_null(anr_malloc_realloc(h, local, 10));
	ck_assert_int_eq(anr_verify(h), 0);
	anr_malloc_free(h, q);
	anr_heap_destroy(h);
}
END_TEST

/* ---- guard words ---- */

static void guards_on(struct anr_malloc_config *c)
{
	c->guards = 1;
}

START_TEST(guard_overrun_caught_at_free)
{
	anr_heap_t *h = heap_with(guards_on);
	struct anr_malloc_stats st;
	char *p = anr_malloc(h, 40), *q = anr_malloc(h, 40);

	ck_assert_uint_eq(anr_malloc_usable_size(h, p), 40);
	memset(p, 'a', 40);
	anr_malloc_free(h, p);
	anr_heap_stats(h, &st);
	ck_assert_uint_eq(st.guard_errors, 0);
	q[40] = 'X';                 /* one byte too far */
	anr_malloc_free(h, q);
	anr_heap_stats(h, &st);
	ck_assert_uint_eq(st.guard_errors, 1);
	ck_assert_uint_eq(st.live_blocks, 0);
	anr_heap_destroy(h);
}
END_TEST

START_TEST(guard_damage_caught_by_verify)
{
	anr_heap_t *h = heap_with(guards_on);
	char *p = anr_malloc(h, 100), *q = anr_malloc(h, 33);

	ck_assert_int_eq(anr_verify(h), 0);
	ck_assert_int_eq(anr_check_block(h, q), 0);
	q[-1] = 0;                   /* underrun into the front guard */
	ck_assert_int_eq(anr_check_block(h, q), -1);
	ck_assert_int_eq(anr_check_block(h, p), 0);
	ck_assert_int_eq(anr_verify(h), 1);
	p[100] ^= 1;
	ck_assert_int_eq(anr_verify(h), 2);
	anr_malloc_free(h, p);
	anr_malloc_free(h, q);
	ck_assert_int_eq(anr_verify(h), 0);
	anr_heap_destroy(h);
}
END_TEST

/* ---- callers, stacks, leaks and collection ---- */

static void stack_on(struct anr_malloc_config *c)
{
	c->stack_depth = 4;
}

__attribute__((noinline)) static void *alloc_here(anr_heap_t *h, size_t n)
{
	void *p = anr_malloc(h, n);
	__asm__ volatile("" ::: "memory");
	return p;
}

#define NEAR(addr, fn) \
	((uintptr_t)(addr) >= (uintptr_t)(fn) && \
	 (uintptr_t)(addr) < (uintptr_t)(fn) + 1024)

START_TEST(caller_and_stack_recorded)
{
	anr_heap_t *h = heap_with(stack_on);
	struct anr_block_info in;
	void *p = alloc_here(h, 24);
	int line = __LINE__ + 1;
	char *q = ANR_MALLOC(h, 48);

	ck_assert_int_eq(anr_block_info(h, p, &in), 0);
	ck_assert_ptr_eq(in.ptr, p);
	ck_assert_uint_eq(in.size, 24);
	ck_assert_msg(NEAR(in.caller, alloc_here), "caller %p not in alloc_here %p",
		      in.caller, (void *)alloc_here);
	ck_assert_ptr_null(in.file);
	ck_assert_uint_ge(in.nframes, 2);
	ck_assert_ptr_eq(in.frames[0], in.caller);
	ck_assert_int_eq(anr_block_info(h, q + 47, &in), 0); /* interior */
	ck_assert_ptr_eq(in.ptr, q);
	ck_assert_str_eq(in.file, __FILE__);
	ck_assert_int_eq(in.line, line);
	ck_assert_str_eq(in.func, __func__);
	ck_assert_uint_gt(in.seq, 1);
	ck_assert_int_eq(anr_block_info(h, &in, &in), -1);
	anr_malloc_free(h, p);
	anr_malloc_free(h, q);
	anr_heap_destroy(h);
}
END_TEST

/* How the reports name a frame of this program: "exe+0xaddress", the
 * address nm shows (relative to the load base for a PIE). */
static void frame_text(const void *ip, char *buf, size_t len)
{
	char exe[512];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	Dl_info di;
	uintptr_t a = (uintptr_t)ip;

	ck_assert_int_gt(n, 0);
	exe[n] = '\0';
	ck_assert_int_ne(dladdr(ip, &di), 0);
	if (((const unsigned char *)di.dli_fbase)[16] != 2 /* not ET_EXEC */)
		a -= (uintptr_t)di.dli_fbase;
	snprintf(buf, len, "%s+0x%lx", exe, (unsigned long)a);
}

START_TEST(reports_name_stack_frames)
{
	anr_heap_t *h = heap_with(stack_on);
	struct anr_gc_result res;
	struct anr_block_info in;
	void *p = alloc_here(h, 77);
	char frame[600], want[700];
	const char *text;
	int fd;

	ck_assert_int_eq(anr_block_info(h, p, &in), 0);
	ck_assert_uint_ge(in.nframes, 2);
	frame_text(in.frames[0], frame, sizeof(frame));
	/* The block report: the block line, then its frames a line each. */
	text = heap_report(h, ANR_REPORT_BLOCKS);
	snprintf(want, sizeof(want), "size=77 ");
	ck_assert_msg(strstr(text, want), "no '%s' in:\n%s", want, text);
	snprintf(want, sizeof(want), "\n    #0 %s\n    #1 ", frame);
	ck_assert_msg(strstr(text, want), "no '%s' in:\n%s", want, text);
	/* The leak report names the same frame under the leak line. */
	fd = mem_fd();
	ck_assert_int_eq(anr_leak_report(h, fd, &res), 0);
	text = fd_text(fd);
	snprintf(want, sizeof(want), "size=77 alloc=");
	ck_assert_msg(strstr(text, want), "no '%s' in:\n%s", want, text);
	snprintf(want, sizeof(want), "\n    #0 %s\n", frame);
	ck_assert_msg(strstr(text, want), "no '%s' in:\n%s", want, text);
	anr_malloc_free(h, p);
	anr_heap_destroy(h);
}
END_TEST

struct roots {
	void *keep[4];
	int n;
	int calls;
};

static void mark_roots(void *arg, anr_heap_t *h)
{
	struct roots *r = arg;

	r->calls++;
	for (int i = 0; i < r->n; i++)
		ck_assert_int_ge(anr_gc_mark(h, r->keep[i]), 0);
}

START_TEST(leak_report_names_caller)
{
	anr_heap_t *h = heap_with(NULL);
	struct roots r = { { 0 }, 0, 0 };
	struct anr_gc_result res;
	char *kept = ANR_MALLOC(h, 111);
	int leak_line = __LINE__ + 1;
	char *leaked = ANR_MALLOC(h, 222);
	void *leaked2 = alloc_here(h, 333);
	char want[256];
	const char *text;
	int fd;

	memset(kept, 0x5c, 111);
	r.keep[r.n++] = kept + 50;   /* an interior pointer is enough */
	ck_assert_int_eq(anr_add_mark_callback(h, mark_roots, &r), 0);
	fd = mem_fd();
	ck_assert_int_eq(anr_leak_report(h, fd, &res), 0);
	text = fd_text(fd);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_uint_eq(res.live_blocks, 1);
	ck_assert_uint_eq(res.live_bytes, 111);
	ck_assert_uint_eq(res.unmarked_blocks, 2);
	ck_assert_uint_eq(res.unmarked_bytes, 555);
	ck_assert_uint_eq(res.freed_blocks, 0);
	snprintf(want, sizeof(want), "leak: %s size=222", ptr_text(leaked));
	ck_assert_msg(strstr(text, want), "no '%s' in:\n%s", want, text);
	snprintf(want, sizeof(want), "at %s:%d (%s)", __FILE__, leak_line,
		 __func__);
	ck_assert_msg(strstr(text, want), "no '%s' in:\n%s", want, text);
	snprintf(want, sizeof(want), "leak: %s size=333", ptr_text(leaked2));
	ck_assert_msg(strstr(text, want), "no '%s' in:\n%s", want, text);
	{
		struct anr_block_info in;
		ck_assert_int_eq(anr_block_info(h, leaked2, &in), 0);
		ck_assert(NEAR(in.caller, alloc_here));
		snprintf(want, sizeof(want), "caller=%s", ptr_text(in.caller));
		ck_assert_msg(strstr(text, want), "no '%s' in:\n%s", want, text);
	}
	snprintf(want, sizeof(want), "leak: %s size=", ptr_text(kept));
	ck_assert(strstr(text, want) == NULL);
	/* Marks are out of band: the kept block's bytes are untouched. */
	for (int i = 0; i < 111; i++)
		ck_assert_uint_eq((unsigned char)kept[i], 0x5c);

	/* Now collect for real: the two leaks go, the root stays. */
	ck_assert_int_eq(anr_gc_collect(h, ANR_GC_FREE, -1, &res), 0);
	ck_assert_uint_eq(res.freed_blocks, 2);
	ck_assert_uint_eq(res.freed_bytes, 555);
	ck_assert_int_eq(anr_block_info(h, leaked, &(struct anr_block_info){ 0 }), -1);
	ck_assert_int_eq(anr_block_info(h, kept, &(struct anr_block_info){ 0 }), 0);
	ck_assert_int_eq(anr_gc_mark(h, leaked), -1);
	ck_assert_int_eq(anr_remove_mark_callback(h, mark_roots, &r), 0);
	/* Without callbacks nothing is marked: all garbage. */
	ck_assert_int_eq(anr_gc_collect(h, ANR_GC_FREE, -1, &res), 0);
	ck_assert_uint_eq(res.freed_blocks, 1);
	ck_assert_int_eq(anr_verify(h), 0);
	anr_heap_destroy(h);
}
END_TEST

static void scan_on(struct anr_malloc_config *c)
{
	c->gc_scan = 1;
}

struct node {
	struct node *next;
	char *interior;
	char pad[40];
};

static void build_chain(anr_heap_t *h, struct roots *r)
{
	struct node *a = anr_malloc(h, sizeof(*a));
	struct node *b = anr_malloc(h, sizeof(*b));
	char *c = anr_malloc(h, 64);

	memset(a, 0, sizeof(*a));
	memset(b, 0, sizeof(*b));
	memset(c, 0, 64);
	a->next = b;
	b->interior = c + 30;        /* only an interior pointer to c */
	r->keep[0] = a;
	r->n = 1;
	ck_assert_ptr_nonnull(anr_malloc(h, 64)); /* garbage */
}

START_TEST(gc_conservative_scan)
{
	struct roots r = { { 0 }, 0, 0 };
	struct anr_gc_result res;
	anr_heap_t *h = heap_with(scan_on);

	build_chain(h, &r);
	anr_add_mark_callback(h, mark_roots, &r);
	ck_assert_int_eq(anr_gc_collect(h, ANR_GC_FREE, -1, &res), 0);
	ck_assert_uint_eq(res.live_blocks, 3);
	ck_assert_uint_eq(res.freed_blocks, 1);
	anr_heap_destroy(h);

	/* Without the scan only the root survives. */
	h = heap_with(NULL);
	build_chain(h, &r);
	anr_add_mark_callback(h, mark_roots, &r);
	ck_assert_int_eq(anr_gc_collect(h, ANR_GC_FREE, -1, &res), 0);
	ck_assert_uint_eq(res.live_blocks, 1);
	ck_assert_uint_eq(res.freed_blocks, 3);
	anr_heap_destroy(h);
}
END_TEST

/* ---- flight recorder ---- */

static void recorder_8(struct anr_malloc_config *c)
{
	c->recorder = 8;
}

START_TEST(recorder_keeps_last_n)
{
	anr_heap_t *h = heap_with(recorder_8);
	struct anr_op ops[16];
	void *p[10];
	size_t n;

	for (int i = 0; i < 10; i++)
		p[i] = anr_malloc(h, (size_t)(100 + i));
	for (int i = 0; i < 10; i++)
		anr_malloc_free(h, p[i]);
	/* 20 operations; the ring holds the last 8: frees of p[2..9]. */
	n = anr_recorder_read(h, ops, 16);
	ck_assert_uint_eq(n, 8);
	for (int i = 0; i < 8; i++) {
		ck_assert_uint_eq(ops[i].kind, ANR_OP_FREE);
		ck_assert_ptr_eq(ops[i].ptr, p[i + 2]);
		ck_assert_uint_eq(ops[i].size, (size_t)(102 + i));
		ck_assert_uint_eq(ops[i].seq, (uint64_t)(12 + i));
		ck_assert_ptr_nonnull(ops[i].caller);
	}
	p[0] = anr_malloc(h, 7);
	p[0] = anr_malloc_realloc(h, p[0], 9000);
	ck_assert_ptr_null(anr_malloc_if_available(h, 1024 * MIB));
	n = anr_recorder_read(h, ops, 3);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(ops[0].kind, ANR_OP_MALLOC);
	ck_assert_uint_eq(ops[0].size, 7);
	ck_assert_uint_eq(ops[1].kind, ANR_OP_REALLOC);
	ck_assert_ptr_eq(ops[1].ptr, p[0]);
	ck_assert_uint_eq(ops[1].size, 9000);
	ck_assert_uint_eq(ops[2].kind, ANR_OP_FAIL);
	anr_malloc_free(h, p[0]);
	ck_assert_ptr_nonnull(strstr(heap_report(h, ANR_REPORT_RECORDER), "realloc"));
	anr_heap_destroy(h);

	/* Off: nothing recorded. */
	h = heap_with(NULL);
	anr_malloc_free(h, anr_malloc(h, 1));
	ck_assert_uint_eq(anr_recorder_read(h, ops, 16), 0);
	anr_heap_destroy(h);
}
END_TEST

/* ---- client debug info ---- */

static void dinfo_on(struct anr_malloc_config *c)
{
	c->debug_info_size = 24;
}

START_TEST(debug_info_round_trip)
{
	anr_heap_t *h = heap_with(dinfo_on), *off = heap_with(NULL);
	char *p = anr_malloc(h, 10), *q = anr_malloc(off, 10);
	char buf[64], big[25] = { 0 };

	memset(p, 'u', 10);
	ck_assert_int_eq(anr_get_debug_info(p, buf, sizeof(buf)), 0);
	ck_assert_int_eq(anr_set_debug_info(p, "job 42 / jpeg", 13), 0);
	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(anr_get_debug_info(p + 5, buf, sizeof(buf)), 13);
	ck_assert_str_eq(buf, "job 42 / jpeg");
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(p[i], 'u');       /* user data untouched */
	ck_assert_int_eq(anr_set_debug_info(p, big, sizeof(big)), -1);
	ck_assert_int_eq(errno, ENOSPC);
	ck_assert_int_eq(anr_set_debug_info(q, "x", 1), -1);
	ck_assert_int_eq(errno, ENOSPC);
	ck_assert_int_eq(anr_set_debug_info(buf, "x", 1), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_nonnull(strstr(heap_report(h, ANR_REPORT_BLOCKS), "debug_info=13"));
	anr_malloc_free(h, p);
	ck_assert_int_eq(anr_get_debug_info(p, buf, sizeof(buf)), -1);
	anr_malloc_free(off, q);
	anr_heap_destroy(h);
	anr_heap_destroy(off);
}
END_TEST

/* ---- trash fill ---- */

static void trash_on(struct anr_malloc_config *c)
{
	c->trash_free = 1;
}

START_TEST(trash_fill_after_free)
{
	anr_heap_t *h = heap_with(trash_on);
	unsigned char *keep = anr_malloc(h, 256);
	unsigned char *p = anr_malloc(h, 256), *keep2 = anr_malloc(h, 256);
	unsigned char seen[128];

	memset(p, 'x', 256);
	anr_malloc_free(h, p);
	ck_assert_uint_eq(am_test_peek(h, p + 64, seen, sizeof(seen)), sizeof(seen));
	for (size_t i = 0; i < sizeof(seen); i++)
		ck_assert_uint_eq(seen[i], ANR_TRASH_BYTE);
	anr_malloc_free(h, keep);
	anr_malloc_free(h, keep2);
	anr_heap_destroy(h);
}
END_TEST

/* ---- report and debug socket ---- */

START_TEST(report_lists_stats_and_blocks)
{
	anr_heap_t *h = heap_with(NULL);
	void *p = ANR_MALLOC(h, 1234);
	const char *text = heap_report(h, ANR_REPORT_ALL);
	char want[128];

	ck_assert_ptr_nonnull(strstr(text, "== heap anrmalloc"));
	ck_assert_ptr_nonnull(strstr(text, "live_blocks 1 live_bytes 1234"));
	snprintf(want, sizeof(want), "block %s size=1234", ptr_text(p));
	ck_assert_msg(strstr(text, want), "no '%s' in:\n%s", want, text);
	ck_assert_ptr_nonnull(strstr(text, "== 1 live blocks"));
	anr_malloc_free(h, p);
	ck_assert_ptr_nonnull(strstr(heap_report(h, ANR_REPORT_BLOCKS), "== 0 live blocks"));
	anr_heap_destroy(h);
}
END_TEST

static char sock_path[108];

static void socket_on(struct anr_malloc_config *c)
{
	snprintf(c->debug_socket, sizeof(c->debug_socket), "%s", sock_path);
	c->recorder = 32;
}

static const char *read_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0), m = mem_fd();
	char buf[4096];
	ssize_t n;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		ck_assert_int_eq(write(m, buf, (size_t)n), n);
	close(fd);
	return fd_text(m);
}

START_TEST(debug_socket_dumps_live_blocks)
{
	char dir[] = "/tmp/anrmalloc-dbg.XXXXXX";
	void *p[100];
	anr_heap_t *h;
	const char *text;
	char want[128];
	struct stat st;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sock_path, sizeof(sock_path), "%s/dbg.sock", dir);
	h = heap_with(socket_on);
	ck_assert_int_eq(stat(sock_path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	/* More blocks than one chunk of the snapshot. */
	for (int i = 0; i < 100; i++)
		p[i] = ANR_MALLOC(h, (size_t)(1000 + i));
	anr_malloc_free(h, p[50]);
	text = read_socket(sock_path);
	ck_assert_ptr_nonnull(strstr(text, "== heap anrmalloc"));
	ck_assert_ptr_nonnull(strstr(text, "== recorder (32 slots, 101 operations)"));
	ck_assert_ptr_nonnull(strstr(text, "== 99 live blocks"));
	for (int i = 0; i < 100; i++) {
		snprintf(want, sizeof(want), "block %s size=%d", ptr_text(p[i]), 1000 + i);
		if (i == 50)
			ck_assert(strstr(text, want) == NULL);
		else
			ck_assert_msg(strstr(text, want), "no '%s'", want);
	}
	ck_assert_ptr_nonnull(strstr(text, __FILE__));
	/* A second reader gets a fresh dump. */
	anr_malloc_free(h, p[0]);
	ck_assert_ptr_nonnull(strstr(read_socket(sock_path), "== 98 live blocks"));
	for (int i = 1; i < 100; i++)
		if (i != 50)
			anr_malloc_free(h, p[i]);
	anr_heap_destroy(h);
	ck_assert_int_eq(stat(sock_path, &st), -1); /* removed */
	ck_assert_int_eq(errno, ENOENT);
	rmdir(dir);
}
END_TEST

/*
 * A fork child has none of the parent's threads.  Its destroy of the
 * heap it inherited must neither wait for the debug thread nor stop the
 * parent's (the stop pipe is shared) nor remove the parent's socket.
 */
START_TEST(fork_child_leaves_the_debug_thread_to_the_parent)
{
	char dir[] = "/tmp/anrmalloc-dbg.XXXXXX";
	anr_heap_t *h;
	struct stat st;
	int status;
	pid_t pid;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sock_path, sizeof(sock_path), "%s/dbg.sock", dir);
	h = heap_with(socket_on);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		alarm(5); /* a child that has not finished by then hangs */
		anr_heap_destroy(h);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the child's destroy did not finish (status %d)", status);
	ck_assert_int_eq(stat(sock_path, &st), 0);
	ck_assert_ptr_nonnull(strstr(read_socket(sock_path), "== heap anrmalloc"));
	anr_heap_destroy(h);
	ck_assert_int_eq(stat(sock_path, &st), -1);
	rmdir(dir);
}
END_TEST

static void threads_on(struct anr_malloc_config *c)
{
	socket_on(c);
	c->page_return_thread = 1;
}

static void *heap_with_threads(void)
{
	return heap_with(threads_on);
}

static void destroy_heap(void *h)
{
	anr_heap_destroy(h);
}

/* The heap's own threads have names of their own (ps -L, top -H). */
START_TEST(heap_threads_are_named)
{
	char dir[] = "/tmp/anrmalloc-dbg.XXXXXX";
	anr_heap_t *h;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sock_path, sizeof(sock_path), "%s/dbg.sock", dir);
	h = heap_with(threads_on);
	ck_assert_msg(mbt_thread_named("anrm-return"), "no thread named anrm-return");
	ck_assert_msg(mbt_thread_named("anrm-debug"), "no thread named anrm-debug");
	anr_heap_destroy(h);
	rmdir(dir);
}
END_TEST

/* The heap's own threads (page_return_thread, the debug socket's) take no
 * signal: one the program blocks after creating the heap, sent to the
 * process, reaches the program's wait.  Before, one of them took it and
 * the child died of SIGUSR1. */
START_TEST(heap_threads_take_no_signal)
{
	char dir[] = "/tmp/anrmalloc-dbg.XXXXXX";
	int status;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sock_path, sizeof(sock_path), "%s/dbg.sock", dir);
	status = mbt_signal_in_child(heap_with_threads, destroy_heap);
	rmdir(dir);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the signal did not reach the program's wait (status %#x)", status);
}
END_TEST

/* free_resident once the heap's page-return thread has given back all it
 * will (a minute at most: the failure then names what stayed). */
static size_t free_resident_settled(anr_heap_t *h, size_t want)
{
	struct anr_malloc_stats st;

	for (int i = 0; i < 60000; i++) {
		anr_heap_stats(h, &st);
		if (st.free_resident <= want)
			break;
		usleep(1000);
	}
	return st.free_resident;
}

static void idle_return_on(struct anr_malloc_config *c)
{
	c->page_return_thread = 1;
	c->budget = 0;
	ck_assert_int_eq(anr_config_set(c, "idle_return", "20ms"), 0);
	ck_assert_uint_eq(c->idle_return, 20);
}

static void idle_return_off(struct anr_malloc_config *c)
{
	c->page_return_thread = 1;
	c->budget = 0;
	ck_assert_int_eq(anr_config_set(c, "idle_return", "0"), 0);
}

/* A 512 KiB block freed: under free_high, so no page-return round is due;
 * with idle_return the thread gives its pages back once the heap is quiet,
 * without it they stay for the heap's next blocks.  Before the key, the
 * free pages under free_low stayed resident for the heap's life. */
START_TEST(idle_return_gives_back_a_quiet_heap)
{
	void (*const tweak[2])(struct anr_malloc_config *) = { idle_return_on,
								idle_return_off };

	for (int i = 0; i < 2; i++) {
		anr_heap_t *h = heap_with(tweak[i]);
		size_t left;
		char *p = anr_malloc(h, 512 * KIB);

		ck_assert_ptr_nonnull(p);
		memset(p, 1, 512 * KIB);
		anr_free(h, p);
		if (i == 0) {
			left = free_resident_settled(h, 0);
			ck_assert_msg(left == 0, "idle_return left %zu bytes of free pages", left);
		} else {
			usleep(100 * 1000);
			left = free_resident_settled(h, 512 * KIB);
			ck_assert_uint_eq(left, 512 * KIB);
		}
		anr_heap_destroy(h);
	}
}
END_TEST

/* ---- give-back without a broker ---- */

START_TEST(give_back_runs_callbacks_and_lowers_budget)
{
	struct cache c = { 0 };
	struct anr_malloc_stats st;
	size_t given;

	c.h = heap_with(budget_1m);
	fill_cache(&c, 12, 64 * KIB);
	anr_add_need_callback(c.h, cache_need, &c);
	given = anr_give_back(c.h, 512 * KIB);
	ck_assert_int_eq(c.last_why, ANR_NEED_GIVE_BACK);
	ck_assert_int_le(c.n, 4);
	ck_assert_uint_ge(given, 256 * KIB);
	ck_assert_uint_le(given, 512 * KIB);
	anr_heap_stats(c.h, &st);
	ck_assert_uint_eq(st.budget, 1 * MIB - given);
	ck_assert_uint_eq(st.given_back_bytes, given);
	ck_assert_uint_eq(st.give_back_requests, 1);
	ck_assert_uint_le(st.resident, st.budget);
	anr_heap_destroy(c.h);
}
END_TEST


START_TEST(dbg_variants_record_site)
{
	anr_heap_t *h = heap_with(NULL);
	struct anr_block_info in;
	int l1 = __LINE__ + 1;
	char *a = ANR_MALLOC_IF_AVAILABLE(h, 10);
	int l2 = __LINE__ + 1;
	char *b = ANR_CALLOC(h, 3, 5);
	int l3 = __LINE__ + 1;
	char *c = ANR_MEMALIGN(h, 256, 20);
	char *d = anr_malloc_from(h, 30, (const void *)0x1234);
	int l4;

	ck_assert_int_eq(anr_block_info(h, a, &in), 0);
	ck_assert_int_eq(in.line, l1);
	ck_assert_str_eq(in.file, __FILE__);
	ck_assert_int_eq(anr_block_info(h, b, &in), 0);
	ck_assert_int_eq(in.line, l2);
	ck_assert_uint_eq(in.size, 15);
	for (int i = 0; i < 15; i++)
		ck_assert_int_eq(b[i], 0);
	ck_assert_int_eq(anr_block_info(h, c, &in), 0);
	ck_assert_int_eq(in.line, l3);
	ck_assert_uint_eq((uintptr_t)c % 256, 0);
	ck_assert_int_eq(anr_block_info(h, d, &in), 0);
	ck_assert_ptr_eq(in.caller, (const void *)0x1234);
	ck_assert_ptr_null(in.file);
	l4 = __LINE__ + 1;
	a = ANR_REALLOC(h, a, 5000);
	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(anr_block_info(h, a, &in), 0);
	ck_assert_int_eq(in.line, l4);
	ck_assert_uint_eq(in.size, 5000);
	ck_assert_ptr_null(anr_memalign_dbg(h, 3, 1, __FILE__, __LINE__, __func__));
	anr_malloc_free(h, a);
	anr_malloc_free(h, b);
	anr_malloc_free(h, c);
	anr_malloc_free(h, d);
	anr_heap_destroy(h);
}
END_TEST

START_TEST(config_help_lists_keys)
{
	int fd = mem_fd();
	const char *text;

	anr_config_help(fd);
	text = fd_text(fd);
	for (const struct mb_conf_key *k = am_config_table(); k->name; k++)
		ck_assert_msg(strstr(text, k->name), "help lacks %s", k->name);
}
END_TEST

static void gc_need(struct anr_malloc_config *c)
{
	budget_1m(c);
	c->gc_on_need_more = 1;
}

START_TEST(gc_on_need_more_frees_garbage)
{
	anr_heap_t *h = heap_with(gc_need);
	struct roots r = { { 0 }, 0, 0 };
	struct anr_malloc_stats st;
	void *p, *root = anr_malloc(h, 64 * KIB);

	r.keep[r.n++] = root;
	anr_add_mark_callback(h, mark_roots, &r);
	for (int i = 0; i < 12; i++)
		ck_assert_ptr_nonnull(anr_malloc(h, 64 * KIB)); /* dropped */
	p = anr_malloc(h, 400 * KIB);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_ge(r.calls, 1);
	anr_heap_stats(h, &st);
	ck_assert_uint_ge(st.gc_runs, 1);
	ck_assert_uint_ge(st.gc_freed_blocks, 1);
	ck_assert_int_eq(anr_block_info(h, root, &(struct anr_block_info){ 0 }), 0);
	anr_remove_mark_callback(h, mark_roots, &r);
	anr_gc_collect(h, ANR_GC_FREE, -1, NULL);
	anr_heap_destroy(h);
}
END_TEST

static void gc_give(struct anr_malloc_config *c)
{
	budget_1m(c);
	c->gc_on_give_back = 1;
}

START_TEST(gc_on_give_back_frees_garbage)
{
	anr_heap_t *h = heap_with(gc_give);
	struct anr_gc_result res;
	int fd;
	const char *text;
	size_t given;

	for (int i = 0; i < 8; i++)
		ck_assert_ptr_nonnull(anr_malloc(h, 64 * KIB)); /* dropped */
	given = anr_give_back(h, 256 * KIB);
	ck_assert_uint_eq(given, 256 * KIB);
	fd = mem_fd();
	ck_assert_int_eq(anr_gc_collect(h, ANR_GC_FREE | ANR_GC_REPORT, fd, &res), 0);
	text = fd_text(fd);
	ck_assert_uint_eq(res.unmarked_blocks, 0);
	ck_assert_ptr_nonnull(strstr(text, "0 unmarked"));
	ck_assert_ptr_null(strstr(text, "leak:"));
	anr_heap_destroy(h);
}
END_TEST

/* ---- deferred frees ---- */

struct freer {
	anr_heap_t *h;
	void *p[3];
};

static void *free_them(void *arg)
{
	struct freer *f = arg;

	for (int i = 0; i < 3; i++)
		anr_malloc_free(f->h, f->p[i]);
	return NULL;
}

START_TEST(free_never_waits_for_the_lock)
{
	anr_heap_t *h = heap_with(recorder_8);
	struct freer f = { h, { 0 } };
	struct anr_malloc_stats st;
	struct anr_op ops[8];
	pthread_t t;
	void *q;

	for (int i = 0; i < 3; i++)
		f.p[i] = anr_malloc(h, 100);
	am_test_lock(h);
	/* The frees return although the lock is held (else: no join). */
	ck_assert_int_eq(pthread_create(&t, NULL, free_them, &f), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	am_test_unlock(h);
	ck_assert_uint_eq(anr_recorder_read(h, ops, 8), 3); /* not yet done */
	/* The next call that takes the lock does them. */
	q = anr_malloc(h, 10);
	anr_heap_stats(h, &st);
	ck_assert_uint_eq(st.deferred_frees, 3);
	ck_assert_uint_eq(st.live_blocks, 1);
	ck_assert_uint_eq(anr_recorder_read(h, ops, 8), 7);
	for (int i = 0; i < 3; i++) {
		ck_assert_uint_eq(ops[3 + i].kind, ANR_OP_FREE);
		ck_assert_ptr_eq(ops[3 + i].ptr, f.p[i]);
	}
	ck_assert_uint_eq(ops[6].kind, ANR_OP_MALLOC);
	/* A deferred double free is still caught. */
	am_test_lock(h);
	f.p[0] = f.p[1] = f.p[2] = q;
	ck_assert_int_eq(pthread_create(&t, NULL, free_them, &f), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	am_test_unlock(h);
	anr_heap_stats(h, &st);
	ck_assert_uint_eq(st.live_blocks, 0);
	ck_assert_uint_eq(st.bad_frees, 2);
	ck_assert_int_eq(anr_verify(h), 0);
	anr_heap_destroy(h);
}
END_TEST

/* ---- threads ---- */

#define THREAD_OPS 5000

static void *churn(void *arg)
{
	anr_heap_t *h = arg;
	void *slot[32] = { 0 };

	for (unsigned i = 0; i < THREAD_OPS; i++) {
		unsigned k = (i * 2654435761u) % 32;
		if (slot[k]) {
			anr_malloc_free(h, slot[k]);
			slot[k] = NULL;
		} else {
			slot[k] = anr_malloc(h, 16 + (i % 700));
			ck_assert_ptr_nonnull(slot[k]);
		}
	}
	for (unsigned k = 0; k < 32; k++)
		anr_malloc_free(h, slot[k]);
	return NULL;
}

static void all_debug(struct anr_malloc_config *c)
{
	c->guards = 1;
	c->recorder = 64;
	c->stack_depth = 2;
	c->debug_info_size = 8;
}

START_TEST(threads_share_a_heap)
{
	anr_heap_t *h = heap_with(all_debug);
	pthread_t t[3];
	struct anr_malloc_stats st;
	struct anr_gc_result res;

	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, churn, h), 0);
	/* Concurrent report-only collection and verification. */
	ck_assert_int_eq(anr_leak_report(h, -1, &res), 0);
	ck_assert_int_eq(anr_verify(h), 0);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	anr_heap_stats(h, &st);
	ck_assert_uint_eq(st.live_blocks, 0);
	ck_assert_uint_eq(st.guard_errors, 0);
	ck_assert_int_eq(anr_verify(h), 0);
	anr_heap_destroy(h);
}
END_TEST

static Suite *anrmalloc_suite(void)
{
	Suite *s = suite_create("anrmalloc");
	TCase *tc = tcase_create("api");

	tcase_add_test(tc, config_defaults_and_keys);
	tcase_add_test(tc, config_file_and_env);
	tcase_add_test(tc, config_keys_in_man_page);
	tcase_add_test(tc, example_config_parses);
	tcase_add_test(tc, malloc_free_basic);
	tcase_add_test(tc, calloc_zero_and_overflow);
	tcase_add_test(tc, realloc_semantics);
	tcase_add_test(tc, memalign_alignments);
	tcase_add_test(tc, need_more_frees_cache);
	tcase_add_test(tc, need_more_lying_callback_bounded);
	tcase_add_test(tc, callback_table_limits);
	tcase_add_test(tc, sticky_oom_set_and_cleared);
	tcase_add_test(tc, heaps_independent);
	tcase_add_test(tc, bad_and_double_free);
	tcase_add_test(tc, guard_overrun_caught_at_free);
	tcase_add_test(tc, guard_damage_caught_by_verify);
	tcase_add_test(tc, caller_and_stack_recorded);
	tcase_add_test(tc, leak_report_names_caller);
	tcase_add_test(tc, reports_name_stack_frames);
	tcase_add_test(tc, gc_conservative_scan);
	tcase_add_test(tc, recorder_keeps_last_n);
	tcase_add_test(tc, debug_info_round_trip);
	tcase_add_test(tc, trash_fill_after_free);
	tcase_add_test(tc, report_lists_stats_and_blocks);
	tcase_add_test(tc, debug_socket_dumps_live_blocks);
	tcase_add_test(tc, fork_child_leaves_the_debug_thread_to_the_parent);
	tcase_add_test(tc, heap_threads_take_no_signal);
	tcase_add_test(tc, heap_threads_are_named);
	tcase_add_test(tc, idle_return_gives_back_a_quiet_heap);
	tcase_add_test(tc, give_back_runs_callbacks_and_lowers_budget);
	tcase_add_test(tc, threads_share_a_heap);
	tcase_add_test(tc, free_never_waits_for_the_lock);
	tcase_add_test(tc, dbg_variants_record_site);
	tcase_add_test(tc, config_help_lists_keys);
	tcase_add_test(tc, gc_on_need_more_frees_garbage);
	tcase_add_test(tc, gc_on_give_back_frees_garbage);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(anrmalloc_suite());
	int failed;

	/* Errors the tests provoke on purpose stay out of the log. */
	mb_log_init("test_anrmalloc", -1, MB_LOG_ERR);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
