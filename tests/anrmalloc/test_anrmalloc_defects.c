/*
 * Regression tests of anr_malloc: the collector scans blocks marked
 * before a collection, children forked while another thread allocates
 * can allocate, and a need-more callback that allocates from its own heap
 * gets a plain failure instead of a nested callback, and a bad free's
 * line is written after the lock.  They also run under
 * ASan+UBSan and valgrind.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <sys/ioctl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_MEMCHECK_H
#include <valgrind/valgrind.h>
#endif

#include "anrmalloc/anrmalloc.h"
#include "anrmalloc/am_internal.h" /* to hold the heap lock from a test thread */
#include "libmbclient/mbclient.h"
#include "mb_log.h"
#include "tests/testlib/mbt_anrheap.h"
#include "tests/testlib/mbt_check.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define TRUE_PROGRAM "/bin/true"
#define FORK_CHILDREN 200
#define FORK_CHILDREN_VALGRIND 20 /* each fork under valgrind is slow */
#define CHILD_DEADLINE_S 5 /* a child that has not finished by then hangs */

static anr_heap_t *heap_of(const struct anr_malloc_config *c)
{
	anr_heap_t *h = anr_heap_create(c);

	ck_assert_ptr_nonnull(h);
	return h;
}

static anr_heap_t *small_heap(int scan)
{
	struct anr_malloc_config c;

	mbt_small_config(&c, 1 * MIB);
	c.gc_scan = scan;
	return heap_of(&c);
}

/* ---- mark, then collect ---- */

START_TEST(gc_scans_blocks_marked_before_collect)
{
	anr_heap_t *h = small_heap(1);
	struct anr_gc_result res;
	void **root = anr_malloc(h, 4 * sizeof(void *));
	void **mid = anr_malloc(h, 4 * sizeof(void *));
	char *leaf = anr_malloc(h, 100);
	void *garbage = anr_malloc(h, 100);

	ck_assert_ptr_nonnull(root);
	ck_assert_ptr_nonnull(mid);
	ck_assert_ptr_nonnull(leaf);
	ck_assert_ptr_nonnull(garbage);
	memset(root, 0, 4 * sizeof(void *));
	memset(mid, 0, 4 * sizeof(void *));
	memset(leaf, 0, 100);
	memset(garbage, 0, 100);
	root[1] = mid;
	mid[2] = leaf + 10;            /* interior pointer */
	strcpy(leaf, "still in use");

	/* The documented manual way: mark the root, collect without
	 * callbacks.  What the root reaches must survive. */
	ck_assert_int_eq(anr_gc_mark(h, root), 1);
	ck_assert_int_eq(anr_gc_collect(h, ANR_GC_FREE, -1, &res), 0);
	ck_assert_uint_eq(res.live_blocks, 3);
	ck_assert_uint_eq(res.freed_blocks, 1);
	ck_assert_int_eq(anr_check_block(h, mid), 0);
	ck_assert_int_eq(anr_check_block(h, leaf), 0);
	ck_assert_str_eq(leaf, "still in use");

	/* Marks do not outlive the collection: the next one frees all. */
	ck_assert_int_eq(anr_gc_collect(h, ANR_GC_FREE, -1, &res), 0);
	ck_assert_uint_eq(res.freed_blocks, 3);
	anr_heap_destroy(h);
}
END_TEST

/* ---- fork while another thread allocates ---- */

struct churn {
	anr_heap_t *h;
	volatile int stop;
};

/* Global, so that a child's copy still reaches the blocks (valgrind). */
static void *churn_keep[16];

static void *churn_thread(void *arg)
{
	struct churn *c = arg;
	void **keep = churn_keep;
	unsigned i = 0;

	while (!c->stop) {
		unsigned k = i++ % 16;
		anr_malloc_free(c->h, keep[k]);
		keep[k] = anr_malloc(c->h, 16 + (i * 37) % (8 * KIB));
	}
	for (unsigned k = 0; k < 16; k++)
		anr_malloc_free(c->h, keep[k]);
	return NULL;
}

/*
 * The child's verdict goes through a pipe and the child then becomes
 * /bin/true instead of exiting: a block the other thread had just
 * allocated and not yet stored is lost in the child, which is no fault of
 * the child, and must not fail valgrind's leak check at exit.
 */
static void child_verdict(int fd, char verdict)
{
	if (write(fd, &verdict, 1) != 1)
		_exit(4);
	execl(TRUE_PROGRAM, "true", (char *)NULL);
	_exit(5);
}

static void child_allocates(anr_heap_t *h, int fd)
{
	void *p;

	signal(SIGALRM, SIG_DFL);
	alarm(CHILD_DEADLINE_S);
	p = anr_malloc(h, 200);
	if (p == NULL)
		child_verdict(fd, 'n');
	anr_malloc_free(h, p);
	p = anr_malloc(h, 64 * KIB);
	anr_malloc_free(h, p);
	child_verdict(fd, anr_verify(h) == 0 ? 'y' : 'v');
}

static int children(void)
{
#ifdef HAVE_VALGRIND_MEMCHECK_H
	if (RUNNING_ON_VALGRIND)
		return FORK_CHILDREN_VALGRIND;
#endif
	return FORK_CHILDREN;
}

START_TEST(fork_while_another_thread_allocates)
{
	struct churn c = { small_heap(0), 0 };
	pthread_t t;
	int hung = 0, failed = 0;

	ck_assert_int_eq(pthread_create(&t, NULL, churn_thread, &c), 0);
	for (int i = 0; i < children() && hung + failed == 0; i++) {
		int st, fds[2];
		char verdict = 0;
		pid_t pid;

		ck_assert_int_eq(pipe(fds), 0);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			close(fds[0]);
			child_allocates(c.h, fds[1]);
		}
		close(fds[1]);
		ck_assert_int_eq(waitpid(pid, &st, 0), pid);
		if (read(fds[0], &verdict, 1) != 1)
			verdict = 0;
		close(fds[0]);
		if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
			hung++;
		else if (verdict != 'y')
			failed++;
	}
	c.stop = 1;
	pthread_join(t, NULL);
	ck_assert_int_eq(hung, 0);
	ck_assert_int_eq(failed, 0);
	ck_assert_int_eq(anr_verify(c.h), 0);
	anr_heap_destroy(c.h);
}
END_TEST

/* ---- fork while another thread collects ---- */

struct held_mark {
	pid_t parent;
	volatile int in_mark, release;
};

static void slow_mark(void *arg, anr_heap_t *h)
{
	struct held_mark *m = arg;

	(void)h;
	if (getpid() != m->parent)
		return;         /* the child's own collection */
	m->in_mark = 1;
	while (!m->release)
		usleep(1000);
}

static void *collect_thread(void *arg)
{
	anr_heap_t *h = arg;
	struct anr_gc_result r;

	return (void *)(intptr_t)anr_gc_collect(h, 0, -1, &r);
}

START_TEST(fork_while_another_thread_collects)
{
	struct held_mark m = { getpid(), 0, 0 };
	anr_heap_t *h = small_heap(1);
	void *p = anr_malloc(h, 100);
	pthread_t t;
	void *rc;
	int st;
	pid_t pid;

	ck_assert_int_eq(anr_add_mark_callback(h, slow_mark, &m), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, collect_thread, h), 0);
	while (!m.in_mark)
		usleep(1000);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct anr_gc_result r;

		signal(SIGALRM, SIG_DFL);
		alarm(CHILD_DEADLINE_S);
		/* The parent's collection is not the child's: it can collect. */
		_exit(anr_gc_collect(h, ANR_GC_FREE, -1, &r) == 0 &&
		      r.freed_blocks == 1 ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	m.release = 1;
	pthread_join(t, &rc);
	ck_assert_int_eq((int)(intptr_t)rc, 0);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "child could not collect (status %d)", st);
	anr_malloc_free(h, p);
	anr_heap_destroy(h);
}
END_TEST

/* ---- a need-more callback that allocates from its own heap ---- */

struct greedy {
	void *held[64];
	int n;
	int calls, depth, max_depth, nested_null;
};

static size_t greedy_need(void *arg, anr_heap_t *h, size_t bytes,
			  enum anr_need_reason why, unsigned round)
{
	struct greedy *g = arg;
	size_t freed = 0;
	void *p;

	(void)bytes;
	(void)why;
	(void)round;
	g->calls++;
	if (++g->depth > g->max_depth)
		g->max_depth = g->depth;
	/* What the man page warns against: allocate while short. */
	p = anr_malloc(h, 512 * KIB);
	if (p == NULL)
		g->nested_null++;
	anr_malloc_free(h, p);
	if (g->n > 0) {
		anr_malloc_free(h, g->held[--g->n]);
		freed = 256 * KIB;
	}
	g->depth--;
	return freed;
}

START_TEST(need_callback_allocating_from_its_heap_fails_fast)
{
	struct greedy g;
	anr_heap_t *h = small_heap(0);
	void *p;

	memset(&g, 0, sizeof(g));
	for (g.n = 0; g.n < 3; g.n++) {
		g.held[g.n] = anr_malloc(h, 256 * KIB);
		ck_assert_ptr_nonnull(g.held[g.n]);
	}
	ck_assert_int_eq(anr_add_need_callback(h, greedy_need, &g), 0);
	p = anr_malloc(h, 512 * KIB);
	/* The callback ran, was never nested, and its own allocation failed
	 * at once instead of calling it again. */
	ck_assert_int_ge(g.calls, 1);
	ck_assert_int_eq(g.max_depth, 1);
	ck_assert_int_ge(g.nested_null, 1);
	ck_assert_ptr_nonnull(p);
	anr_malloc_free(h, p);
	/* Outside the callback, allocations still run it. */
	g.calls = 0;
	p = anr_malloc(h, 2 * MIB);
	ck_assert_ptr_null(p);
	ck_assert_int_ge(g.calls, 1);
	ck_assert_int_eq(g.max_depth, 1);
	for (int i = 0; i < g.n; i++)
		anr_malloc_free(h, g.held[i]);
	anr_heap_destroy(h);
}
END_TEST

/* ---- a reservation under RLIMIT_AS ---- */

/* VmSize, from /proc/self/statm. */
static uint64_t mapped_now(void)
{
	char buf[128] = { 0 };
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long long pages = 0;

	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
	fclose(f);
	ck_assert_int_eq(sscanf(buf, "%llu", &pages), 1);
	return pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* ---- error lines written after the lock ---- */

static int slow_in, slow_go, slow_lines;

/* A log that blocks, as a full pipe or a paused terminal would. */
static void slow_sink(int level, const char *line, size_t len)
{
	(void)level;
	(void)line;
	(void)len;
	__atomic_add_fetch(&slow_lines, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&slow_in, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&slow_go, __ATOMIC_ACQUIRE))
		usleep(1000);
}

struct bad_args {
	anr_heap_t *h;
	void *p;
	int done;
};

static void *bad_free_main(void *arg)
{
	struct bad_args *a = arg;

	anr_free(a->h, a->p);
	__atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *alloc_main(void *arg)
{
	struct bad_args *a = arg;

	a->p = anr_malloc(a->h, 64);
	__atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * on_error = report: the line for a bad free is written after the heap's
 * lock is let go.  Here it meets a log that blocks; another thread's
 * anr_malloc, which takes the lock, must complete meanwhile.  Before, the
 * line was written under the lock and every call waited for the log.
 */
START_TEST(bad_free_told_after_the_lock)
{
	anr_heap_t *h = small_heap(0);
	char *live = anr_malloc(h, 64);
	struct bad_args bad = { h, live + 8, 0 }, more = { h, NULL, 0 };
	pthread_t tb, tm;
	int done = 0;

	ck_assert_ptr_nonnull(live);
	slow_in = slow_go = slow_lines = 0;
	mb_log_set_sink(slow_sink);
	ck_assert_int_eq(pthread_create(&tb, NULL, bad_free_main, &bad), 0);
	for (int i = 0; i < 10000 && !__atomic_load_n(&slow_in, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	ck_assert_int_eq(slow_in, 1);
	ck_assert_int_eq(pthread_create(&tm, NULL, alloc_main, &more), 0);
	/* a bound on the wait, not a timing: ten seconds is a hang */
	for (int i = 0; i < 10000 && !done; i++) {
		done = __atomic_load_n(&more.done, __ATOMIC_ACQUIRE);
		if (!done)
			usleep(1000);
	}
	__atomic_store_n(&slow_go, 1, __ATOMIC_RELEASE);
	pthread_join(tm, NULL);
	pthread_join(tb, NULL);
	mb_log_set_sink(NULL);
	ck_assert_msg(done, "anr_malloc waited for the log of a bad free");
	ck_assert_int_eq(slow_lines, 1);
	anr_free(h, more.p);
	anr_free(h, live);
	anr_heap_destroy(h);
}
END_TEST

START_TEST(reserve_fits_the_address_space_limit)
{
	/* Each test runs in its own process: the limit dies with it. */
	const uint64_t room = 200 * (uint64_t)MIB;
	struct rlimit rl;
	struct anr_malloc_config c;
	struct anr_malloc_stats st;
	anr_heap_t *h;
	void *p, *q;

	rl.rlim_cur = rl.rlim_max = mapped_now() + room;
	ck_assert_int_eq(setrlimit(RLIMIT_AS, &rl), 0);
	anr_config_init(&c);
	c.reserve = 1024 * MIB;   /* would not fit */
	c.budget = 0;
	h = anr_heap_create(&c);
	ck_assert_ptr_nonnull(h);
	anr_heap_stats(h, &st);
	/* An eighth of the room, and at least 64 MiB, stay with the program. */
	ck_assert_uint_le(st.reserved, room - 64 * MIB);
	ck_assert_uint_ge(st.reserved, 64 * MIB);
	p = anr_malloc(h, 32 * MIB);
	ck_assert_ptr_nonnull(p);
	/* What was left is still there for the program's own mappings. */
	q = mmap(NULL, 32 * MIB, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ck_assert_ptr_ne(q, MAP_FAILED);
	munmap(q, 32 * MIB);
	anr_malloc_free(h, p);
	anr_heap_destroy(h);
}
END_TEST

/* ---- the collector and a block being reallocated ---- */

static void **moving_root;
static int moving_marks, moving_first_rc;

static void mark_moving_root(void *arg, anr_heap_t *h)
{
	int rc = anr_gc_mark(h, moving_root);

	(void)arg;
	if (moving_marks++ == 0)
		moving_first_rc = rc;
}

/*
 * A collection run by the realloc of the root (out of budget, with
 * gc_on_need_more) while the root's record says "moving": the mark
 * callback's anr_gc_mark of the root returned -1, its contents were not
 * scanned, and the child it points to was freed though the realloc
 * failed and left the root as it was.
 */
START_TEST(gc_marks_and_scans_a_block_being_reallocated)
{
	struct anr_malloc_config c;
	struct anr_gc_result res;
	anr_heap_t *h;
	char *child;

	mbt_small_config(&c, 1 * MIB);
	c.gc_scan = 1;
	c.gc_on_need_more = 1;
	h = heap_of(&c);
	moving_root = anr_malloc(h, 8 * sizeof(void *));
	child = anr_malloc(h, 100);
	ck_assert_ptr_nonnull(moving_root);
	ck_assert_ptr_nonnull(child);
	memset(moving_root, 0, 8 * sizeof(void *));
	strcpy(child, "reached through the root");
	moving_root[0] = child;
	ck_assert_int_eq(anr_add_mark_callback(h, mark_moving_root, NULL), 0);
	ck_assert_int_eq(anr_gc_collect(h, ANR_GC_FREE, -1, &res), 0);
	ck_assert_uint_eq(res.freed_blocks, 0);

	moving_marks = 0;
	errno = 0;
	ck_assert_ptr_null(anr_realloc(h, moving_root, 4 * MIB));
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_int_ge(moving_marks, 1);
	ck_assert_msg(moving_first_rc >= 0, "anr_gc_mark of a block being reallocated: %d",
		      moving_first_rc);
	ck_assert_int_eq(anr_check_block(h, moving_root), 0);
	ck_assert_msg(anr_check_block(h, child) == 0, "the root's child was freed");
	ck_assert_str_eq(child, "reached through the root");
	/* It still moves and keeps what it holds. */
	void **moved = anr_realloc(h, moving_root, 64 * KIB);
	ck_assert_ptr_nonnull(moved);
	ck_assert_ptr_eq(moved[0], child);
	moving_root = moved;
	ck_assert_int_eq(anr_gc_collect(h, ANR_GC_FREE, -1, &res), 0);
	ck_assert_uint_eq(res.freed_blocks, 0);
	ck_assert_int_eq(anr_remove_mark_callback(h, mark_moving_root, NULL), 0);
	anr_free(h, child);
	anr_free(h, moved);
	anr_heap_destroy(h);
}
END_TEST

static anr_heap_t *mv_heap;
static void *mv_block;
static int mv_mark_rc;
static sem_t mv_in_need, mv_go_on, mv_done;

static size_t mv_need(void *arg, anr_heap_t *h, size_t bytes, enum anr_need_reason why,
		      unsigned round)
{
	(void)arg; (void)h; (void)bytes; (void)why;
	if (round == 0) {
		sem_post(&mv_in_need);
		while (sem_wait(&mv_go_on) != 0)
			;
	}
	return 0;
}

static void *mv_realloc_thread(void *arg)
{
	(void)arg;
	void *q = anr_realloc(mv_heap, mv_block, 4 * MIB); /* fails: 1 MiB budget */
	sem_post(&mv_done);
	return q;
}

static void mv_mark(void *arg, anr_heap_t *h)
{
	(void)arg;
	mv_mark_rc = anr_gc_mark(h, mv_block);
	sem_post(&mv_go_on);
	while (sem_wait(&mv_done) != 0)
		;
}

/*
 * Another thread's realloc is under way when the collection marks the
 * block, and ends before the sweep: the mark was refused (-1), the sweep
 * freed the block, and the program's own free of it was a bad free.
 */
START_TEST(gc_keeps_a_block_marked_while_it_moves)
{
	struct anr_malloc_stats st;
	struct anr_gc_result res;
	pthread_t t;
	void *ret;

	mv_heap = small_heap(0);
	sem_init(&mv_in_need, 0, 0);
	sem_init(&mv_go_on, 0, 0);
	sem_init(&mv_done, 0, 0);
	mv_block = anr_malloc(mv_heap, 64);
	ck_assert_ptr_nonnull(mv_block);
	strcpy(mv_block, "precious");
	ck_assert_int_eq(anr_add_need_callback(mv_heap, mv_need, NULL), 0);
	ck_assert_int_eq(anr_add_mark_callback(mv_heap, mv_mark, NULL), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, mv_realloc_thread, NULL), 0);
	while (sem_wait(&mv_in_need) != 0)
		;
	ck_assert_int_eq(anr_gc_collect(mv_heap, ANR_GC_FREE, -1, &res), 0);
	ck_assert_int_eq(pthread_join(t, &ret), 0);
	ck_assert_ptr_null(ret);
	ck_assert_int_ge(mv_mark_rc, 0);
	ck_assert_uint_eq(res.freed_blocks, 0);
	ck_assert_int_eq(anr_check_block(mv_heap, mv_block), 0);
	ck_assert_str_eq(mv_block, "precious");
	anr_remove_mark_callback(mv_heap, mv_mark, NULL);
	anr_remove_need_callback(mv_heap, mv_need, NULL);
	anr_free(mv_heap, mv_block);
	anr_heap_stats(mv_heap, &st);
	ck_assert_uint_eq(st.bad_frees, 0);
	anr_heap_destroy(mv_heap);
	sem_destroy(&mv_in_need);
	sem_destroy(&mv_go_on);
	sem_destroy(&mv_done);
}
END_TEST

/* ---- frees queued while the lock was taken, and the collector ---- */

/* A call that drains the queue, then: no bad free was seen, no block is
 * left; the heap goes. */
static void heap_ends_clean(anr_heap_t *h)
{
	struct anr_malloc_stats st;

	anr_free(h, anr_malloc(h, 16));
	anr_heap_stats(h, &st);
	ck_assert_uint_eq(st.bad_frees, 0);
	ck_assert_uint_eq(st.live_blocks, 0);
	anr_heap_destroy(h);
}

struct lock_holder {
	anr_heap_t *h;
	sem_t locked, release;
	pthread_t t;
};

static void *hold_heap_lock(void *arg)
{
	struct lock_holder *x = arg;

	anrc_layer_lock(x->h->core);
	sem_post(&x->locked);
	while (sem_wait(&x->release) != 0)
		;
	anrc_layer_unlock(x->h->core);
	return NULL;
}

/* Another thread holds the heap's lock until hold_end (frees queue). */
static void hold_start(struct lock_holder *x, anr_heap_t *h)
{
	x->h = h;
	sem_init(&x->locked, 0, 0);
	sem_init(&x->release, 0, 0);
	ck_assert_int_eq(pthread_create(&x->t, NULL, hold_heap_lock, x), 0);
	while (sem_wait(&x->locked) != 0)
		;
}

static void hold_end(struct lock_holder *x)
{
	sem_post(&x->release);
	ck_assert_int_eq(pthread_join(x->t, NULL), 0);
	sem_destroy(&x->locked);
	sem_destroy(&x->release);
}

/*
 * 100 frees queued (more than one drain of 64): the leak report counted
 * 36 of the freed blocks as unmarked, and a collection with ANR_GC_FREE
 * freed them, so that their queued frees were bad frees later.
 */
START_TEST(gc_sees_every_queued_free)
{
	enum { N = 100 };
	anr_heap_t *h = small_heap(0);
	struct anr_gc_result res;
	struct lock_holder x;
	void *b[N];

	for (int i = 0; i < N; i++) {
		b[i] = anr_malloc(h, 32);
		ck_assert_ptr_nonnull(b[i]);
	}
	hold_start(&x, h);
	for (int i = 0; i < N; i++)
		anr_free(h, b[i]);
	hold_end(&x);
	ck_assert_int_eq(anr_leak_report(h, -1, &res), 0);
	ck_assert_msg(res.unmarked_blocks == 0, "%zu freed blocks reported as leaks",
		      res.unmarked_blocks);
	ck_assert_int_eq(anr_gc_collect(h, ANR_GC_FREE, -1, &res), 0);
	ck_assert_uint_eq(res.freed_blocks, 0);
	heap_ends_clean(h);
}
END_TEST

static void *qd_block;

/* The program drops its block during the marking, while another thread
 * is in the heap: the free is queued. */
static void qd_mark(void *arg, anr_heap_t *h)
{
	struct lock_holder x;

	(void)arg;
	hold_start(&x, h);
	anr_free(h, qd_block);
	hold_end(&x);
}

/* A free queued during the marking: the sweep reported the block as a
 * leak and freed it, and the queued free was then a bad free. */
START_TEST(gc_sweep_does_frees_queued_while_marking)
{
	anr_heap_t *h = small_heap(0);
	struct anr_gc_result res;

	qd_block = anr_malloc(h, 48);
	ck_assert_ptr_nonnull(qd_block);
	ck_assert_int_eq(anr_add_mark_callback(h, qd_mark, NULL), 0);
	ck_assert_int_eq(anr_gc_collect(h, ANR_GC_FREE | ANR_GC_REPORT, -1, &res), 0);
	ck_assert_int_eq(anr_remove_mark_callback(h, qd_mark, NULL), 0);
	ck_assert_uint_eq(res.unmarked_blocks, 0);
	ck_assert_uint_eq(res.freed_blocks, 0);
	anr_free(h, anr_malloc(h, 48));
	heap_ends_clean(h);
}
END_TEST

/* ---- a report in progress in the parent, and a fork ---- */

struct reporter {
	anr_heap_t *h;
	int fd;
};

static void *report_thread(void *arg)
{
	struct reporter *r = arg;

	(void)anr_heap_report(r->h, r->fd, ANR_REPORT_BLOCKS);
	return NULL;
}

/*
 * Another thread's report with stack_depth > 0 is stuck writing into a
 * full pipe (holding the table of mapped files) when the program forks:
 * the child's leak report waited for ever for that table.
 */
START_TEST(fork_child_reports_while_the_parent_reported)
{
	struct anr_malloc_config c;
	struct reporter r;
	pthread_t t;
	int pfd[2], queued = 0, status = 0;
	anr_heap_t *h;
	pid_t pid;

	mbt_small_config(&c, 1 * MIB);
	c.stack_depth = 4;
	h = heap_of(&c);
	for (int i = 0; i < 400; i++)
		ck_assert_ptr_nonnull(anr_malloc(h, 32)); /* live until destroy */
	ck_assert_int_eq(pipe(pfd), 0);
	ck_assert_int_ge(fcntl(pfd[1], F_SETPIPE_SZ, 4096), 4096);
	int cap = fcntl(pfd[1], F_GETPIPE_SZ);
	r.h = h;
	r.fd = pfd[1];
	ck_assert_int_eq(pthread_create(&t, NULL, report_thread, &r), 0);
	/* The pipe full, to less than a line: the report waits in write,
	 * inside its listing of blocks (far more than 4 KiB of it). */
	for (int i = 0; i < 2000 && queued <= cap - MB_LOG_LINE_MAX; i++) {
		ck_assert_int_eq(ioctl(pfd[0], FIONREAD, &queued), 0);
		if (queued <= cap - MB_LOG_LINE_MAX)
			usleep(5000);
	}
	ck_assert_int_gt(queued, cap - MB_LOG_LINE_MAX);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct anr_gc_result res;
		int dn = open("/dev/null", O_WRONLY);

		alarm(CHILD_DEADLINE_S);
		_exit(anr_leak_report(h, dn, &res) == 0 ? 0 : 3);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	signal(SIGPIPE, SIG_IGN);
	close(pfd[0]); /* the report ends on EPIPE */
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	close(pfd[1]);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the child's leak report %s", WIFSIGNALED(status) ? "hung" : "failed");
	anr_heap_destroy(h);
}
END_TEST

/* ---- bad arguments ---- */

/* anr_free(NULL, ...) crashed; a calloc overflow was not counted as a
 * failure; a guarded memalign of 2^63 wrapped the size check, reached the
 * core and left the heap in the out-of-memory state. */
START_TEST(bad_arguments_fail_plainly)
{
	struct anr_malloc_config c;
	struct anr_malloc_stats st;
	uint64_t failures;
	anr_heap_t *h;

	anr_free(NULL, NULL);
	anr_free(NULL, &c); /* reported, nothing done */
	errno = 0;
	ck_assert_ptr_null(anr_realloc(NULL, &c, 8));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_uint_eq(anr_malloc_usable_size(NULL, &c), 0);

	mbt_small_config(&c, 1 * MIB);
	c.guards = 1;
	h = heap_of(&c);
	anr_heap_stats(h, &st);
	failures = st.failures;
	errno = 0;
	ck_assert_ptr_null(anr_calloc(h, SIZE_MAX / 2, 3));
	ck_assert_int_eq(errno, ENOMEM);
	anr_heap_stats(h, &st);
	ck_assert_uint_eq(st.failures, failures + 1);
	errno = 0;
	ck_assert_ptr_null(anr_memalign(h, (size_t)1 << 63, SIZE_MAX - 71));
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_ptr_null(anr_malloc(h, (size_t)1 << 40)); /* more than the reservation */
	ck_assert_int_eq(anr_oom_get(h, NULL), 0);
	void *p = anr_malloc(h, 100);
	ck_assert_ptr_nonnull(p);
	anr_free(h, p);
	anr_heap_destroy(h);
}
END_TEST

/* ---- a give-back callback that gives back ---- */

static unsigned gb_depth, gb_deepest;

static size_t give_back_again(void *arg, anr_heap_t *h, size_t bytes,
			      enum anr_need_reason why, unsigned round)
{
	(void)arg; (void)round;
	if (why != ANR_NEED_GIVE_BACK)
		return 0;
	if (++gb_depth > gb_deepest)
		gb_deepest = gb_depth;
	(void)anr_give_back(h, bytes);
	gb_depth--;
	return 0;
}

/* anr_give_back from a give-back callback ran the callbacks again without
 * end (a stack overflow after about 8,000 levels): the nested call now
 * runs none. */
START_TEST(give_back_inside_its_callback_does_not_nest)
{
	anr_heap_t *h = small_heap(0);
	void *p = anr_malloc(h, 256 * KIB);

	ck_assert_ptr_nonnull(p);
	anr_free(h, p);
	ck_assert_int_eq(anr_add_need_callback(h, give_back_again, NULL), 0);
	(void)anr_give_back(h, 128 * KIB);
	ck_assert_uint_eq(gb_deepest, 1);
	anr_remove_need_callback(h, give_back_again, NULL);
	anr_heap_destroy(h);
}
END_TEST

/*
 * A broker call of the heap waits at most broker_timeout in all, as
 * anrmalloc(3) says.  The deadlines went to the library unchanged: a
 * request with broker_timeout T waited T plus two graces of T (3 T), a
 * reconnect the lock, T for HELLO and T for CLAIM.  The bounds are the
 * library's, from mbclient.h: a request waits its timeout plus two graces
 * of min(call timeout, MB_GRACE_MAX_MS); a reconnect waits for the handle
 * and a CLAIM a call timeout each, and HELLO the connect timeout.  Past
 * MB_MAX_TIMEOUT_MS (24 h) the library refused the deadlines (EINVAL), so
 * a heap with broker_timeout=30h could never ask for quota.
 */
START_TEST(broker_deadlines_fit_broker_timeout)
{
	static const uint64_t ts[] = { 1, 2, 3, 4, 5, 7, 10, 99, 250, 1000, 3999,
				       4000, 4001, 10000, 60000, 86400000, UINT64_MAX };

	for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
		struct am_broker_times t;
		uint64_t all = ts[i] > (uint64_t)MB_MAX_TIMEOUT_MS ? (uint64_t)MB_MAX_TIMEOUT_MS : ts[i];
		int64_t grace;

		am_broker_times(ts[i], &t);
		ck_assert_int_ge(t.call, 1);
		ck_assert_int_ge(t.connect, 1);
		ck_assert_int_ge(t.request, 1);
		grace = t.call < MB_GRACE_MAX_MS ? t.call : MB_GRACE_MAX_MS;
		if (all < 3) /* every deadline is at least 1 ms */
			continue;
		ck_assert_msg((uint64_t)t.request + 2 * (uint64_t)grace <= all,
			      "T %llu: request %d + 2 x grace %lld",
			      (unsigned long long)ts[i], t.request, (long long)grace);
		ck_assert_msg((uint64_t)t.connect + 2 * (uint64_t)t.call <= all,
			      "T %llu: connect %d + 2 x call %d",
			      (unsigned long long)ts[i], t.connect, t.call);
		/* and the server gets half of it at least */
		if (all >= 4)
			ck_assert_uint_ge((uint64_t)t.request * 2, all);
	}
	/* past 24 hours: what the library takes */
	{
		struct am_broker_times t;

		am_broker_times((uint64_t)MB_MAX_TIMEOUT_MS + 1, &t);
		ck_assert_int_le(t.request + 2 * MB_GRACE_MAX_MS, MB_MAX_TIMEOUT_MS);
		am_broker_times(UINT64_MAX, &t);
		ck_assert_int_le(t.connect, MB_MAX_TIMEOUT_MS);
		ck_assert_int_le(t.call, MB_MAX_TIMEOUT_MS);
		ck_assert_int_le(t.request, MB_MAX_TIMEOUT_MS);
	}
	/* 0: the library's own defaults */
	{
		struct am_broker_times t;

		am_broker_times(0, &t);
		ck_assert_int_eq(t.call, 0);
		ck_assert_int_eq(t.connect, 0);
		ck_assert_int_eq(t.request, 0);
	}
}
END_TEST

/*
 * A new connection claims the pages resident beyond the heap's own budget
 * and the pages of RETURNs still on their way: the library sends those on
 * the new connection, and they came off the pages in use (after a broker
 * restart, the heap used 1,520 pages beyond its own budget and the broker
 * counted 1,392).
 */
START_TEST(claim_counts_returns_on_their_way)
{
	anr_heap_t *h = small_heap(0);
	struct anr_malloc_stats st;
	void *p = anr_malloc(h, 512 * KIB);
	uint64_t over;

	ck_assert_ptr_nonnull(p);
	memset(p, 1, 512 * KIB);
	ck_assert_uint_eq(am_broker_claim(h), 0); /* never connected */
	h->mb_page = 4096;
	anr_heap_stats(h, &st);
	over = st.resident > h->own_budget ?
		(st.resident - h->own_budget + 4095) / 4096 : 0;
	ck_assert_uint_eq(am_broker_claim(h), over);
	pthread_mutex_lock(&h->budget_lock);
	h->mb_out = 7;
	pthread_mutex_unlock(&h->budget_lock);
	ck_assert_uint_eq(am_broker_claim(h), over + 7);
	h->mb_out = 0;
	h->mb_page = 0;
	anr_free(h, p);
	anr_heap_destroy(h);
}
END_TEST

static Suite *defects_suite(void)
{
	Suite *s = suite_create("anrmalloc-defects");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, gc_scans_blocks_marked_before_collect);
	tcase_add_test(tc, fork_while_another_thread_allocates);
	tcase_add_test(tc, fork_while_another_thread_collects);
	tcase_add_test(tc, need_callback_allocating_from_its_heap_fails_fast);
	tcase_add_test(tc, reserve_fits_the_address_space_limit);
	tcase_add_test(tc, bad_free_told_after_the_lock);
	tcase_add_test(tc, gc_marks_and_scans_a_block_being_reallocated);
	tcase_add_test(tc, gc_keeps_a_block_marked_while_it_moves);
	tcase_add_test(tc, gc_sees_every_queued_free);
	tcase_add_test(tc, gc_sweep_does_frees_queued_while_marking);
	tcase_add_test(tc, fork_child_reports_while_the_parent_reported);
	tcase_add_test(tc, bad_arguments_fail_plainly);
	tcase_add_test(tc, give_back_inside_its_callback_does_not_nest);
	tcase_add_test(tc, broker_deadlines_fit_broker_timeout);
	tcase_add_test(tc, claim_counts_returns_on_their_way);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	mb_log_init("test_anrmalloc_defects", -1, MB_LOG_ERR);
	return mbt_run_suite(defects_suite());
}
