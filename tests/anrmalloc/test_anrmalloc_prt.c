/*
 * page_return_thread: no allocation or free of the program's threads
 * calls madvise; the heap's own thread gives the pages back.
 *
 * The proof is a seccomp filter on one worker thread that kills the
 * process if that thread calls madvise.  Each scenario runs in a child
 * process of its own (the filter would kill the test runner): the worker
 * allocates, touches and frees 4-5 MiB blocks and small ones, which
 * without the option give pages back in the freeing call (the first test
 * shows the child dying of SIGSYS then), and with it must not.  The worker
 * never returns: glibc may madvise a thread's stack when it exits.
 *
 * Not under a sanitizer (its runtime may call madvise in any thread):
 * skipped, as where seccomp filters are not available.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "anrmalloc/anrmalloc.h"
#include "mb_log.h"
#include "tests/testlib/mbt_check.h"
#include "tests/testlib/mbt_seccomp.h"

#define MIB (1024u * 1024u)
#define SKIP 77
#define ROUNDS 20
#define SMALL 1000
#define CHILD_DEADLINE_S 20   /* a child that has not finished by then hangs */
#define GIVEN_BACK_STEPS 2000 /* polls of 5 ms for the helper's madvise */

static volatile int worker_done;

static int deny_madvise(void)
{
	static const long deny[] = { __NR_madvise };

	return mbt_deny_syscalls(deny, 1, 0);
}

static void *worker(void *arg)
{
	anr_heap_t *h = arg;
	void *small[SMALL];

	if (deny_madvise() != 0) {
		__atomic_store_n(&worker_done, 2, __ATOMIC_RELEASE);
		for (;;)
			pause();
	}
	for (int i = 0; i < ROUNDS; i++) {
		size_t n = 4 * MIB + (size_t)i * 64 * 1024;
		char *p = anr_malloc(h, n);

		if (p == NULL)
			_exit(3);
		memset(p, i, n);
		p = anr_realloc(h, p, n / 2);
		if (p == NULL)
			_exit(3);
		anr_free(h, p);
		for (int k = 0; k < SMALL; k++)
			small[k] = anr_malloc(h, (size_t)(16 + k % 5000));
		for (int k = 0; k < SMALL; k++)
			anr_free(h, small[k]);
	}
	__atomic_store_n(&worker_done, 1, __ATOMIC_RELEASE);
	for (;;)
		pause();
	return NULL;
}

static anr_heap_t *heap(int prt)
{
	struct anr_malloc_config c;

	anr_config_init(&c);
	c.reserve = 512 * MIB;
	c.budget = 0;
	c.page_return_thread = prt;
	return anr_heap_create(&c);
}

/* The child: the worker's frees, then (with the helper) the pages it
 * gives back, then the heap's destroy.  Its exit status is the verdict. */
static int scenario(int prt)
{
	anr_heap_t *h = heap(prt);
	struct anr_malloc_stats st;
	pthread_t t;
	int done;

	alarm(CHILD_DEADLINE_S);
	if (h == NULL || pthread_create(&t, NULL, worker, h) != 0)
		return 4;
	while ((done = __atomic_load_n(&worker_done, __ATOMIC_ACQUIRE)) == 0)
		usleep(1000);
	if (done == 2)
		return SKIP;
	for (int i = 0; i < GIVEN_BACK_STEPS; i++) {
		anr_heap_stats(h, &st);
		if (st.madvised_bytes >= 4 * MIB)
			break;
		usleep(5000);
	}
	if (st.madvised_bytes < 4 * MIB)
		return 5;
	anr_heap_destroy(h); /* joins the helper: a hang is the failure */
	return 0;
}

static int in_child(int prt)
{
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(scenario(prt));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

/* Without the option the freeing thread gives back itself: the filter
 * kills it.  This shows the filter bites and the workload gives back. */
START_TEST(frees_call_madvise_without_the_thread)
{
	int status = in_child(0);

	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS,
		      "the worker did not call madvise (status %#x)", status);
}
END_TEST

START_TEST(frees_never_call_madvise_with_the_thread)
{
	int status = in_child(1);

	ck_assert_msg(!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS,
		      "the worker called madvise itself");
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "status %#x (5: nothing given back; SIGALRM: a hang)", status);
}
END_TEST

/* Destroyed at once, before the thread may have run: the join ends. */
START_TEST(destroy_right_after_create_joins_the_thread)
{
	alarm(CHILD_DEADLINE_S);
	for (int i = 0; i < 50; i++) {
		anr_heap_t *h = heap(1);

		ck_assert_ptr_nonnull(h);
		anr_heap_destroy(h);
	}
	alarm(0);
}
END_TEST

static int can_filter(void)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return 0;
	if (pid == 0)
		_exit(deny_madvise() == 0 ? 0 : 1);
	return waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	       WEXITSTATUS(status) == 0;
}

int main(void)
{
	Suite *s = suite_create("anrmalloc-prt");
	TCase *tc = tcase_create("prt");

#ifdef MBT_SANITIZED
	printf("SKIP: built with a sanitizer (its runtime may call madvise)\n");
	return SKIP;
#endif
	if (!can_filter()) {
		printf("SKIP: seccomp filters are not available here\n");
		return SKIP;
	}
	mb_log_init("test_anrmalloc_prt", -1, MB_LOG_ERR);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, frees_call_madvise_without_the_thread);
	tcase_add_test(tc, frees_never_call_madvise_with_the_thread);
	tcase_add_test(tc, destroy_right_after_create_joins_the_thread);
	suite_add_tcase(s, tc);
	return mbt_run_suite(s);
}
