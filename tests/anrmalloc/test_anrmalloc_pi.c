/*
 * priority_inherit: a real-time thread that waits for the lock an
 * allocation really takes (the core's) lends its priority to the holder.
 * The kernel shows the holder's effective priority in
 * /proc/thread-self/stat; without inheritance it stays where it was.
 * Needs SCHED_FIFO (root or CAP_SYS_NICE): without it the program exits
 * 77 (skipped).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "anrmalloc/anrmalloc.h"
#include "mb_log.h"
#include "tests/testlib/mbt_check.h"

void am_test_core_lock(anr_heap_t *h);
void am_test_core_unlock(anr_heap_t *h);

#define MIB (1024u * 1024u)
#define RT_PRIO 10
#define WAIT_DEADLINE_MS 5000
#define POLL_MS 2

/* Field 18 of /proc/thread-self/stat: the effective priority (20 for a
 * SCHED_OTHER thread of nice 0, below 0 for a real-time one). */
static long my_priority(void)
{
	char buf[1024];
	int fd = open("/proc/thread-self/stat", O_RDONLY);
	ssize_t n;
	char *p;
	long v = 0;

	ck_assert_int_ge(fd, 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	ck_assert_int_gt(n, 0);
	buf[n] = 0;
	p = strrchr(buf, ')');
	ck_assert_ptr_nonnull(p);
	/* after ") ": state is field 3, priority is field 18 */
	p += 2;
	for (int field = 3; field < 18; field++) {
		p = strchr(p, ' ');
		ck_assert_ptr_nonnull(p);
		p++;
	}
	v = strtol(p, NULL, 10);
	return v;
}

static void *rt_alloc(void *arg)
{
	anr_heap_t *h = arg;
	void *p = anr_malloc(h, 100);

	anr_malloc_free(h, p);
	return p;
}

static int start_rt_thread(pthread_t *t, anr_heap_t *h)
{
	pthread_attr_t a;
	struct sched_param sp = { .sched_priority = RT_PRIO };
	int rc;

	pthread_attr_init(&a);
	pthread_attr_setinheritsched(&a, PTHREAD_EXPLICIT_SCHED);
	pthread_attr_setschedpolicy(&a, SCHED_FIFO);
	pthread_attr_setschedparam(&a, &sp);
	rc = pthread_create(t, &a, rt_alloc, h);
	pthread_attr_destroy(&a);
	return rc;
}

/* The lowest priority this thread reached while rt waited for the core
 * lock it holds. */
static long boost_seen(int pi)
{
	struct anr_malloc_config c;
	anr_heap_t *h;
	pthread_t t;
	long base, low;
	void *res;

	anr_config_init(&c);
	c.reserve = 64 * MIB;
	c.budget = 4 * MIB;
	c.priority_inherit = pi;
	h = anr_heap_create(&c);
	ck_assert_ptr_nonnull(h);
	base = my_priority();
	low = base;
	am_test_core_lock(h);
	ck_assert_int_eq(start_rt_thread(&t, h), 0);
	for (int ms = 0; ms < WAIT_DEADLINE_MS && low >= base; ms += POLL_MS) {
		struct timespec ts = { 0, POLL_MS * 1000000L };
		long now = my_priority();

		if (now < low)
			low = now;
		/* Without inheritance nothing changes: a shorter wait. */
		if (!pi && ms >= 200)
			break;
		nanosleep(&ts, NULL);
	}
	am_test_core_unlock(h);
	ck_assert_int_eq(pthread_join(t, &res), 0);
	ck_assert_ptr_nonnull(res);
	ck_assert_int_eq(my_priority(), base);
	anr_heap_destroy(h);
	return low - base;
}

START_TEST(core_lock_inherits_priority)
{
	/* With priority_inherit the holder runs at the waiter's priority. */
	ck_assert_int_lt(boost_seen(1), 0);
}
END_TEST

START_TEST(plain_lock_without_the_option)
{
	ck_assert_int_eq(boost_seen(0), 0);
}
END_TEST

static void *nothing(void *arg)
{
	return arg;
}

static int can_run_fifo(void)
{
	pthread_attr_t a;
	struct sched_param sp = { .sched_priority = RT_PRIO };
	pthread_t t;
	int rc;

	pthread_attr_init(&a);
	pthread_attr_setinheritsched(&a, PTHREAD_EXPLICIT_SCHED);
	pthread_attr_setschedpolicy(&a, SCHED_FIFO);
	pthread_attr_setschedparam(&a, &sp);
	rc = pthread_create(&t, &a, nothing, NULL);
	pthread_attr_destroy(&a);
	if (rc == 0)
		pthread_join(t, NULL);
	return rc == 0;
}

int main(void)
{
	Suite *s = suite_create("anrmalloc-pi");
	TCase *tc = tcase_create("core");

	if (!can_run_fifo()) {
		printf("SKIP: cannot start a SCHED_FIFO thread (needs root or CAP_SYS_NICE)\n");
		return 77;
	}
	mb_log_init("test_anrmalloc_pi", -1, MB_LOG_ERR);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, core_lock_inherits_priority);
	tcase_add_test(tc, plain_lock_without_the_option);
	suite_add_tcase(s, tc);
	return mbt_run_suite(s);
}
