/*
 * The heap never changes the process's mappings after anrc_create().
 *
 * A child process creates a heap and two worker threads, then installs a
 * seccomp filter on all its threads that kills the process on mmap,
 * munmap, mremap, mprotect and brk, and runs millions of heap operations
 * in both threads (allocate, free across threads, realloc, aligned,
 * zeroed, trim, budget changes, statistics, check).  The parent expects a
 * clean exit.  A second child proves the filter bites: it calls mmap
 * after installing it and must die.
 *
 * After the filter nothing here may reach glibc's malloc or stdio (they
 * can map memory); output goes through write(2), and the threads never
 * return (thread exit frees memory).
 */
#include "config.h"

#include "anrcore.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mbt_seccomp.h"

#define SKIP 77
#define OPS_PER_THREAD 1500000u
#define SLOTS 512

static void
say(const char *s)
{
	ssize_t r = write(2, s, strlen(s));
	(void)r;
}

static int
install_filter(void)
{
	static const long deny[] = {
		__NR_mmap, __NR_munmap, __NR_mremap, __NR_mprotect,
#ifdef __NR_brk
		__NR_brk,
#endif
	};

	return mbt_deny_syscalls(deny, sizeof(deny) / sizeof(deny[0]), 1);
}

static struct anrc_heap *heap;
static pthread_barrier_t start, done;
static void *shared[SLOTS];
static volatile int failed;

static uint64_t
next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static size_t
pick_size(uint64_t r)
{
	unsigned k = (unsigned)(r % 1000);

	if (k < 900)
		return (r >> 10) % 1024 + 1;
	if (k < 990)
		return (r >> 10) % (64 << 10) + 1;
	return (r >> 10) % (1 << 20) + 1;
}

static void
workload(uint64_t seed)
{
	void *mine[SLOTS] = { 0 };
	uint64_t x = seed;

	for (unsigned i = 0; i < OPS_PER_THREAD; i++) {
		uint64_t r = next(&x);
		unsigned k = (unsigned)(r % SLOTS), op = (unsigned)((r >> 40) % 16);
		void *p = mine[k];

		if (p == NULL) {
			size_t size = pick_size(r);
			if (op == 0)
				p = anrc_alloc_aligned(heap, (size_t)64 << (r % 10), size, 0);
			else
				p = anrc_alloc(heap, size, op == 1 ? ANR_ZERO : 0);
			if (p == NULL) {
				failed = 1;
				return;
			}
			*(unsigned char *)p = (unsigned char)k;
			mine[k] = p;
		} else if (op < 3) {
			p = anrc_realloc(heap, p, pick_size(r), 0);
			if (p == NULL || *(unsigned char *)p != (unsigned char)k) {
				failed = 1;
				return;
			}
			mine[k] = p;
		} else if (op == 3) {
			/* hand over: frees happen in the other thread too */
			p = __atomic_exchange_n(&shared[k], p, __ATOMIC_ACQ_REL);
			anrc_free(heap, p);
			mine[k] = NULL;
		} else {
			if (*(unsigned char *)p != (unsigned char)k) {
				failed = 1;
				return;
			}
			anrc_free(heap, p);
			mine[k] = NULL;
		}
		if (i % 100000 == 0) {
			struct anrc_stats st;
			anrc_get_stats(heap, &st);
			anrc_trim(heap, 0);
			anrc_set_budget(heap, anrc_get_budget(heap));
		}
	}
	for (unsigned k = 0; k < SLOTS; k++)
		anrc_free(heap, mine[k]);
}

static void *
worker(void *arg)
{
	pthread_barrier_wait(&start);
	workload((uint64_t)(uintptr_t)arg);
	pthread_barrier_wait(&done);
	for (;;)
		pause();
	return NULL;
}

static int
run_workload(void)
{
	pthread_t t[2];
	struct anrc_stats st;
	int fd;

	heap = anrc_create(NULL);
	if (heap == NULL)
		return 2;
	if (pthread_barrier_init(&start, NULL, 3) != 0 ||
	    pthread_barrier_init(&done, NULL, 3) != 0)
		return 2;
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(88172645463325252ull + (uint64_t)i)) != 0)
			return 2;
	if (install_filter() != 0) {
		say("anrcore_nomap: cannot install the seccomp filter\n");
		return SKIP;
	}
	pthread_barrier_wait(&start);
	pthread_barrier_wait(&done);
	for (int k = 0; k < SLOTS; k++)
		anrc_free(heap, shared[k]);
	anrc_get_stats(heap, &st);
	if (failed || st.in_use != 0 || st.bad_frees != 0 || anrc_check(heap) != 0) {
		say("anrcore_nomap: workload failed\n");
		return 1;
	}
	if (st.madvise_calls == 0) {
		say("anrcore_nomap: no page was given back during the workload\n");
		return 1;
	}
	fd = 2;
	anrc_report(heap, fd);
	return 0;
}

static int
run_canary(void)
{
	if (install_filter() != 0)
		return SKIP;
	/* Must not return. */
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	(void)p;
	return 0;
}

static int
in_child(int (*fn)(void), int *status)
{
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0)
		_exit(fn());
	return waitpid(pid, status, 0) == pid ? 0 : -1;
}

int
main(void)
{
	int status;

#ifdef MBT_SANITIZED
	/* The sanitizer's runtime maps memory on its own. */
	printf("SKIP: built with a sanitizer\n");
	return SKIP;
#endif
	if (in_child(run_canary, &status) != 0)
		return 1;
	if (WIFEXITED(status) && WEXITSTATUS(status) == SKIP) {
		printf("SKIP: seccomp filters are not available here\n");
		return SKIP;
	}
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS) {
		printf("FAIL: the filter did not stop mmap (status %#x)\n", status);
		return 1;
	}
	if (in_child(run_workload, &status) != 0)
		return 1;
	if (WIFSIGNALED(status)) {
		printf("FAIL: the workload was killed by signal %d%s\n", WTERMSIG(status),
		       WTERMSIG(status) == SIGSYS ? " (a mapping call was made)" : "");
		return 1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("FAIL: the workload exited with %d\n", WEXITSTATUS(status));
		return WEXITSTATUS(status) == SKIP ? SKIP : 1;
	}
	printf("PASS: 2 x %u operations without mmap, munmap, mremap, mprotect or brk\n",
	       OPS_PER_THREAD);
	return 0;
}
