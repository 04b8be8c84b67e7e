/*
 * gm_family.c - exercises every function libgmalloc replaces.  Linked
 * normally (against glibc only) and run under LD_PRELOAD=libgmalloc.so by
 * the shell tests; it finds gmalloc's extensions with dlsym, so it fails
 * if the library is not really in front of glibc.
 *
 *   gm_family family       every entry point, alignment, contents, errors
 *   gm_family fill N       allocate 64 KiB blocks up to N MiB or NULL;
 *                          print "allocated K MiB errno E"
 *   gm_family churn MiB    allocate and free MiB of mixed sizes, touching
 *   gm_family badfree      free a pointer gmalloc never handed out
 *   gm_family refree       free a small block twice, then a pointer inside
 *                          a live one; the heap must stay sound
 *   gm_family leak         leak one 1234-byte block (valgrind test)
 *   gm_family overflow     write past a block, then free it (guard test)
 *   gm_family sites        blocks from known call sites (site_*), then
 *                          the report on stdout (backtrace_depth test)
 *   gm_family sigreport N  threads allocate while the report signal
 *                          (SIGUSR2) is raised N times
 *   gm_family canary       print the canary secret of a block's trailer
 *                          (guard test: two processes must differ)
 *   gm_family forge        rewrite a block's trailer as the constant-XOR-
 *                          address scheme would, then free it
 *   gm_family table T U    malloc a T MiB table, touch U MiB of it, print
 *                          "table ok" or "table refused errno E"
 *   gm_family two_needs F M G
 *                          keep F MiB, then a thread mallocs M MiB and G ms
 *                          later another one does; print "a ok|null b
 *                          ok|null" (broker test: two needs for quota)
 *   gm_family seccomp      after the first malloc, forbid every system call
 *                          that changes the memory map, then run the family
 *                          (a violation kills the process with SIGSYS)
 *   gm_family noadvise [thread]
 *                          after the first malloc (and with "thread" a
 *                          thread made and joined), forbid madvise to this
 *                          thread, then free large blocks and small ones;
 *                          print "no madvise in the calls" once gmalloc's
 *                          page_return_thread has given the pages back
 *   gm_family tasks        print "tasks A B": the process's threads after
 *                          allocations and frees (A), and while one thread
 *                          made by the program runs (B); then in a fork
 *                          child of it "child C D", the same counts
 *   gm_family names        while a thread of the program's runs, print
 *                          "thread NAME" for each thread but the main one
 *   gm_family signal [thread]
 *                          after the first malloc (and with "thread" a
 *                          thread made and joined), block SIGUSR1, send it
 *                          to the process and wait for it: "signal taken
 *                          by the program", or killed by SIGUSR1 when a
 *                          thread of gmalloc's took it
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mbt_seccomp.h"
#include "mbt_threads.h"

static int failures;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
		failures++; \
	} \
} while (0)

static int (*owns)(const void *);

static int aligned(const void *p, size_t a)
{
	return ((uintptr_t)p & (a - 1)) == 0;
}

/* Keep the compiler from removing or folding allocator calls whose results
 * the test only inspects. */
static void *volatile sink;

static void *opaque(void *p)
{
	sink = p;
	return sink;
}

static size_t opaque_size(size_t v)
{
	volatile size_t s = v;
	return s;
}

static void check_ours(const void *p)
{
	CHECK(p != NULL);
	CHECK(owns(p));
	CHECK(aligned(p, 16));
}

static void test_malloc(void)
{
	for (size_t n = 0; n < 70000; n = n < 64 ? n + 1 : n * 5 / 4 + 3) {
		unsigned char *p = malloc(n);
		check_ours(p);
		if (!p)
			return;
		CHECK(malloc_usable_size(p) >= n);
		memset(p, 0x5a, n);
		free(p);
	}
	void *big = malloc(64 << 20);
	check_ours(big);
	if (big)
		memset(big, 1, 64 << 20);
	free(big);
	errno = 0;
	CHECK(malloc(opaque_size(SIZE_MAX)) == NULL && errno == ENOMEM);
	errno = 0;
	CHECK(malloc(opaque_size(SIZE_MAX - 64)) == NULL && errno == ENOMEM);
	errno = 0;
	CHECK(malloc(opaque_size((size_t)1 << 62)) == NULL && errno == ENOMEM);
	free(NULL);
	CHECK(malloc_usable_size(NULL) == 0);
}

static void test_calloc(void)
{
	for (size_t n = 1; n < 300000; n *= 3) {
		unsigned char *p = calloc(n, 3);
		check_ours(p);
		size_t zero = 1;
		for (size_t i = 0; i < n * 3; i++)
			zero &= p[i] == 0;
		CHECK(zero);
		memset(p, 0xff, n * 3);
		free(p);
	}
	errno = 0;
	CHECK(calloc(opaque_size(SIZE_MAX / 2), 3) == NULL && errno == ENOMEM);
	errno = 0;
	CHECK(calloc(opaque_size((size_t)1 << 32), (size_t)1 << 32) == NULL && errno == ENOMEM);
	void *z = calloc(0, 16);
	CHECK(z != NULL);
	free(z);
}

static void test_realloc(void)
{
	unsigned char *p = realloc(NULL, 10);
	check_ours(p);
	for (int i = 0; i < 10; i++)
		p[i] = (unsigned char)i;
	size_t n = 10;
	while (n < (4 << 20)) {
		size_t m = n * 3;
		unsigned char *q = realloc(p, m);
		check_ours(q);
		size_t same = 1;
		for (size_t i = 0; i < n; i++)
			same &= q[i] == (unsigned char)i;
		CHECK(same);
		for (size_t i = n; i < m; i++)
			q[i] = (unsigned char)i;
		p = q;
		n = m;
	}
	p = realloc(p, 100);
	check_ours(p);
	size_t same = 1;
	for (size_t i = 0; i < 100; i++)
		same &= p[i] == (unsigned char)i;
	CHECK(same);
	errno = 0;
	/* Called through pointers: the compiler must not assume a failed
	 * realloc freed the block. */
	void *(*volatile re)(void *, size_t) = realloc;
	void *(*volatile rea)(void *, size_t, size_t) = reallocarray;
	CHECK(re(p, opaque_size(SIZE_MAX)) == NULL && errno == ENOMEM);
	CHECK(p[99] == 99); /* the old block survives a failed realloc */
	CHECK(realloc(p, 0) == NULL);

	unsigned char *r = reallocarray(NULL, 100, 8);
	check_ours(r);
	memset(r, 7, 800);
	errno = 0;
	CHECK(rea(r, opaque_size(SIZE_MAX / 4), 8) == NULL && errno == ENOMEM);
	CHECK(r[799] == 7);
	r = reallocarray(r, 200, 8);
	check_ours(r);
	CHECK(r[799] == 7);
	free(r);
}

static void test_aligned(void)
{
	void *p;
	for (size_t a = sizeof(void *); a <= (1 << 20); a *= 2) {
		for (size_t n = 1; n < 100000; n = n * 7 + 1) {
			p = NULL;
			CHECK(posix_memalign(&p, a, n) == 0);
			check_ours(p);
			CHECK(aligned(p, a));
			CHECK(malloc_usable_size(p) >= n);
			memset(p, 0x33, n);
			free(p);
		}
		p = aligned_alloc(a, 3 * a);
		check_ours(p);
		CHECK(aligned(p, a));
		free(p);
		p = memalign(a, 5);
		check_ours(p);
		CHECK(aligned(p, a));
		free(p);
	}
	static const size_t bad[] = { 0, 3, 4, 24, 48, 1000 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p = (void *)1;
		CHECK(posix_memalign(&p, opaque_size(bad[i]), 16) == EINVAL);
		CHECK(p == (void *)1);
	}
	errno = 0;
	CHECK(aligned_alloc(opaque_size(24), 48) == NULL && errno == EINVAL);
	CHECK(posix_memalign(&p, 64, opaque_size(SIZE_MAX - 8)) == ENOMEM);
	p = memalign(24, 100); /* rounded up to 32 as glibc does */
	check_ours(p);
	CHECK(aligned(p, 32));
	free(p);

	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	p = valloc(10);
	check_ours(p);
	CHECK(aligned(p, page));
	free(p);
	p = pvalloc(page + 1);
	check_ours(p);
	CHECK(aligned(p, page));
	CHECK(malloc_usable_size(p) >= 2 * page);
	free(p);
	errno = 0;
	CHECK(pvalloc(opaque_size(SIZE_MAX - 10)) == NULL && errno == ENOMEM);
}

static void test_info(void)
{
	void *p = malloc(1 << 20);
	memset(p, 1, 1 << 20);
	struct mallinfo2 mi = mallinfo2();
	CHECK(mi.uordblks >= (1 << 20));
	CHECK(mi.arena >= mi.uordblks);
	free(p);
	CHECK(mallopt(M_ARENA_MAX, 1) == 1);
	CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1);
	CHECK(mallopt(M_TRIM_THRESHOLD, 1 << 20) == 1);
	CHECK(mallopt(12345, 1) == 0);
	int trimmed = malloc_trim(0);
	CHECK(trimmed == 0 || trimmed == 1);
	malloc_stats();
	FILE *f = tmpfile();
	CHECK(f != NULL);
	if (f) {
		char buf[4096];
		CHECK(malloc_info(0, f) == 0);
		rewind(f);
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = '\0';
		CHECK(strstr(buf, "<malloc version=\"1\">") != NULL);
		CHECK(strstr(buf, "</malloc>") != NULL);
		fclose(f);
	}
	CHECK(malloc_info(1, stdout) == -1);
}

/* The glibc names and what libc allocates for the program are ours too. */
static void test_glibc_paths(void)
{
	static const char *const names[] = { "__libc_malloc", "__libc_calloc",
		"__libc_realloc", "__libc_memalign", "__libc_valloc",
		"__libc_pvalloc", "__libc_free", NULL };
	for (int i = 0; names[i]; i++) {
		void *sym = dlsym(RTLD_DEFAULT, names[i]);
		Dl_info info;
		CHECK(sym != NULL);
		CHECK(dladdr(sym, &info) && strstr(info.dli_fname, "gmalloc") != NULL);
	}
	void *(*lm)(size_t) = (void *(*)(size_t))dlsym(RTLD_DEFAULT, "__libc_malloc");
	void (*lf)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "__libc_free");
	if (lm && lf) {
		void *p = lm(100);
		check_ours(p);
		lf(p);
	}
	char *s = strdup("hello");
	check_ours(s);
	free(s);
	char *a = NULL;
	CHECK(asprintf(&a, "%d-%s", 42, "x") > 0);
	check_ours(a);
	free(a);
	FILE *f = fopen("/proc/self/maps", "r");
	CHECK(f != NULL);
	if (!f)
		return;
	check_ours(f);
	char *line = NULL;
	size_t cap = 0;
	int heap_lines = 0;
	while (getline(&line, &cap, f) > 0)
		heap_lines += strstr(line, "[heap]") != NULL;
	check_ours(line);
	free(line);
	fclose(f);
	/* glibc's allocator would have grown the brk heap by now. */
	CHECK(heap_lines == 0);
	DIR *d = opendir("/");
	CHECK(d != NULL);
	if (d) {
		check_ours(d);
		closedir(d);
	}
}

struct thr {
	unsigned seed;
	int bad;
};

static void *thread_main(void *arg)
{
	struct thr *t = arg;
	enum { SLOTS = 256 };
	unsigned char *slot[SLOTS] = { 0 };
	size_t len[SLOTS] = { 0 };
	for (int i = 0; i < 100000; i++) {
		unsigned r = rand_r(&t->seed);
		int k = (int)(r % SLOTS);
		if (slot[k]) {
			for (size_t j = 0; j < len[k]; j++)
				if (slot[k][j] != (unsigned char)k)
					t->bad++;
			free(slot[k]);
			slot[k] = NULL;
		} else {
			len[k] = (r >> 8) % 3000;
			slot[k] = malloc(len[k]);
			if (!slot[k] || !owns(slot[k])) {
				t->bad++;
				continue;
			}
			memset(slot[k], k, len[k]);
		}
	}
	for (int k = 0; k < SLOTS; k++)
		free(slot[k]);
	return NULL;
}

/* Blocks made by one thread and freed by another, threads that exit with
 * blocks still live (freed later by main). */
enum { XFER = 20000 };
static void *xfer[XFER];

static void *producer(void *arg)
{
	(void)arg;
	for (int i = 0; i < XFER; i++) {
		xfer[i] = malloc((size_t)(i % 500) + 1);
		if (xfer[i])
			memset(xfer[i], i & 0xff, (size_t)(i % 500) + 1);
	}
	return NULL;
}

static void *consumer(void *arg)
{
	int *bad = arg;
	for (int i = 0; i < XFER; i += 2) {
		const unsigned char *p = xfer[i];
		if (!p || !owns(p) || p[0] != (unsigned char)(i & 0xff))
			(*bad)++;
		free(xfer[i]);
		xfer[i] = NULL;
	}
	return NULL;
}

static void test_cross_thread(void)
{
	pthread_t a, b;
	int bad = 0;
	CHECK(pthread_create(&a, NULL, producer, NULL) == 0);
	CHECK(pthread_join(a, NULL) == 0);
	CHECK(pthread_create(&b, NULL, consumer, &bad) == 0);
	CHECK(pthread_join(b, NULL) == 0);
	CHECK(bad == 0);
	for (int i = 1; i < XFER; i += 2)
		free(xfer[i]);
}

static void test_threads_fork(void)
{
	enum { N = 4 };
	pthread_t th[N];
	struct thr t[N];
	for (int i = 0; i < N; i++) {
		t[i].seed = (unsigned)i * 7919u + 1;
		t[i].bad = 0;
		CHECK(pthread_create(&th[i], NULL, thread_main, &t[i]) == 0);
	}
	/* fork while the other threads allocate: the child's heap works. */
	for (int f = 0; f < 30; f++) {
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			void *ps[100];
			for (int i = 0; i < 100; i++) {
				ps[i] = malloc((size_t)i * 100 + 1);
				if (!ps[i] || !owns(ps[i]))
					_exit(1);
			}
			for (int i = 0; i < 100; i++)
				free(ps[i]);
			_exit(0);
		}
		int st = 0;
		CHECK(waitpid(pid, &st, 0) == pid);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	for (int i = 0; i < N; i++) {
		CHECK(pthread_join(th[i], NULL) == 0);
		CHECK(t[i].bad == 0);
	}
}

static int fill(long mib)
{
	size_t total = 0;
	const size_t chunk = 64 << 10;
	errno = 0;
	for (;;) {
		if (mib > 0 && total >= (size_t)mib << 20)
			break;
		void *p = malloc(chunk);
		if (!p)
			break;
		memset(p, 0x11, chunk);
		total += chunk;
	}
	printf("allocated %zu MiB errno %d\n", total >> 20, errno);
	return 0;
}

/*
 * Medium blocks only (40,000 bytes, kept runs of the thread when freed):
 * 80 MB allocated and written, all freed, then dir/ready and a wait for
 * dir/go (at most 20 s), so that a test can look at the quota held after
 * the frees.
 */
static int medium(const char *dir)
{
	enum { NB = 2000, SZ = 40000 };
	static void *b[NB];
	char path[4096];
	FILE *f;

	for (int i = 0; i < NB; i++) {
		b[i] = malloc(SZ);
		if (!b[i]) {
			fprintf(stderr, "medium: malloc failed at block %d\n", i);
			return 1;
		}
		memset(b[i], 0x22, SZ);
	}
	for (int i = 0; i < NB; i++)
		free(b[i]);
	snprintf(path, sizeof(path), "%s/ready", dir);
	f = fopen(path, "w");
	if (!f)
		return 1;
	fclose(f);
	snprintf(path, sizeof(path), "%s/go", dir);
	for (int i = 0; i < 2000 && access(path, F_OK) != 0; i++)
		usleep(10000);
	printf("medium done\n");
	return 0;
}

/* Mixed sizes, freed in a scrambled order, several rounds. */
static int churn(long mib)
{
	enum { MAXB = 1 << 16 };
	static void *blk[MAXB];
	size_t budget = (size_t)mib << 20;
	unsigned seed = 12345;
	for (int round = 0; round < 3; round++) {
		size_t total = 0;
		int n = 0;
		while (total < budget && n < MAXB) {
			size_t sz = 16 + (size_t)rand_r(&seed) % 32768;
			blk[n] = malloc(sz);
			if (!blk[n] || !owns(blk[n])) {
				fprintf(stderr, "churn: malloc failed after %zu bytes\n", total);
				return 1;
			}
			memset(blk[n], n & 0xff, sz);
			total += sz;
			n++;
		}
		for (int i = 0; i < n; i++) {
			int j = (int)((unsigned)i * 40503u % (unsigned)n);
			int k = i;
			void *tmp = blk[j];
			blk[j] = blk[k];
			blk[k] = tmp;
		}
		for (int i = 0; i < n; i++)
			free(blk[i]);
	}
	printf("churn done\n");
	return 0;
}

/* Kill the process on any call that changes the memory map.  Returns 0,
 * or -1 if the filter cannot be installed here (the test then skips). */
static int forbid_map_changes(void)
{
	static const long deny[] = { SYS_mmap, SYS_munmap, SYS_mremap, SYS_mprotect, SYS_brk };

	return mbt_deny_syscalls(deny, sizeof(deny) / sizeof(deny[0]), 0);
}

/* Static TLS larger than a small thread stack (glibc puts it on every
 * thread's stack): gmalloc's own thread must start all the same. */
static __thread volatile char tls_big[256 * 1024];

static void *wait_for_byte(void *fd)
{
	char c;

	tls_big[sizeof(tls_big) - 1] = 1;
	return read(*(int *)fd, &c, 1) == 1 ? fd : NULL;
}

/* Threads of the process: entries of /proc/self/task. */
static int count_tasks(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The names of the process's threads other than the calling one, one a
 * line (mbt_threads.h: /proc/self/task/TID/comm). */
static void print_thread_names(void)
{
	char names[16][MBT_COMM_MAX];
	int n = mbt_thread_names(names, 16);

	for (int i = 0; i < n; i++)
		printf("thread %s\n", names[i]);
}

/* One thread of the program's, made and joined; with running, the
 * process's threads counted while it runs; with names, the names of the
 * others printed then. */
static int one_thread(int *running, int names)
{
	int fds[2];
	pthread_t t;
	void *res = NULL;

	if (pipe(fds) != 0 || pthread_create(&t, NULL, wait_for_byte, &fds[0]) != 0)
		return -1;
	if (running != NULL)
		*running = count_tasks();
	if (names)
		print_thread_names();
	if (write(fds[1], "x", 1) != 1)
		return -1;
	pthread_join(t, &res);
	close(fds[0]);
	close(fds[1]);
	return res != NULL ? 0 : -1;
}

/* madvise is forbidden to the calling thread (the program's only one, or
 * with make_thread the one left after a thread of the program's ended):
 * with page_return_thread no malloc-family call may make it, and gmalloc's
 * own thread gives the pages back.  Without that thread the first free
 * past the high mark kills the process (SIGSYS).
 * Ends with _exit: nothing at exit may count as a call of the family. */
static int noadvise(int make_thread)
{
	static const long deny[] = { SYS_madvise };
	void (*stats)(size_t *, size_t *, size_t *, size_t *) =
		(void (*)(size_t *, size_t *, size_t *, size_t *))dlsym(RTLD_DEFAULT, "gmalloc_stats");
	size_t in_use = 0, resident = 0, budget, quota;
	static void *small[2000];

	free(malloc(1));
	if (stats == NULL)
		return 2;
	if (make_thread && one_thread(NULL, 0) != 0) {
		perror("thread");
		return 2;
	}
	if (mbt_deny_syscalls(deny, 1, 0) != 0) {
		printf("seccomp unavailable\n");
		return 77;
	}
	for (int round = 0; round < 20; round++) {
		void *big[8];

		for (int i = 0; i < 8; i++) {
			big[i] = malloc((size_t)(i + 1) << 20);
			if (big[i] != NULL)
				memset(big[i], i, (size_t)(i + 1) << 20);
		}
		for (int k = 0; k < 2000; k++)
			small[k] = malloc((size_t)(16 + k % 3000));
		for (int k = 0; k < 2000; k++)
			free(small[k]);
		for (int i = 0; i < 8; i++)
			free(big[i]);
	}
	/* Pages freed and soon taken again grow the marks, up to 32 times
	 * (free_high 1M: 32 MiB), as far as the helper's timing makes them:
	 * one free larger than that must leave little behind, as it would
	 * without the helper (its free would give back its own pages). */
	{
		char *last = malloc((size_t)96 << 20);

		if (last != NULL)
			memset(last, 1, (size_t)96 << 20);
		free(last);
	}
	/* the helper's work: up to 10 s */
	for (int i = 0; i < 2000; i++) {
		stats(&in_use, &resident, &budget, &quota);
		if (resident < ((size_t)8 << 20))
			break;
		usleep(5000);
	}
	if (resident >= ((size_t)8 << 20)) {
		printf("not given back: in use %zu resident %zu\n", in_use, resident);
		_exit(1);
	}
	printf("no madvise in the calls\n");
	_exit(0);
}

/* How many threads: after allocations and frees, while a thread of the
 * program's runs, and the same in a fork child made after that. */
static int tasks_run(int in_child)
{
	int a, b = -1, rc;

	for (int i = 0; i < 64; i++) {
		char *p = malloc((size_t)(i + 1) << 16);
		if (p != NULL)
			memset(p, i, (size_t)(i + 1) << 16);
		free(p);
	}
	a = count_tasks();
	rc = one_thread(&b, 0);
	printf("%s %d %d\n", in_child ? "child" : "tasks", a, b);
	if (in_child)
		_exit(rc == 0 ? 0 : 1);
	pid_t pid = fork();
	int st = 0;
	if (pid == 0)
		tasks_run(1);
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return 1;
	return rc == 0 ? 0 : 1;
}

/* A signal the program blocks in every thread of its own and waits for
 * must reach its wait, never a thread of gmalloc's: the program blocks
 * SIGUSR1 only after its first allocation (when page_return_thread = on
 * has made the thread) or after a thread of its own ended (auto), sends
 * it to the process and waits for it (mbt_threads.h).  A thread of
 * gmalloc's with SIGUSR1 open takes it, and the process ends. */
static int signal_run(int make_thread)
{
	char *p = malloc(100);

	memset(p, 1, 100);
	free(p);
	if (make_thread && one_thread(NULL, 0) != 0) {
		perror("thread");
		return 2;
	}
	if (!mbt_signal_reaches_wait()) {
		printf("signal not taken\n");
		return 1;
	}
	printf("signal taken by the program\n");
	return 0;
}

/* Single-threaded (thread stacks are mmapped): the family without threads. */
static int seccomp_run(void)
{
	free(malloc(1));
	if (forbid_map_changes() != 0) {
		printf("seccomp unavailable\n");
		return 77;
	}
	for (int round = 0; round < 20; round++) {
		test_malloc();
		test_calloc();
		test_realloc();
		test_aligned();
		void *big[8];
		for (int i = 0; i < 8; i++) {
			big[i] = malloc((size_t)(i + 1) << 22);
			if (big[i])
				memset(big[i], i, (size_t)(i + 1) << 22);
		}
		for (int i = 0; i < 8; i++)
			free(big[i]);
		malloc_trim(0);
	}
	if (failures) {
		fprintf(stderr, "%d checks failed\n", failures);
		return 1;
	}
	printf("no map changes\n");
	return 0;
}

/* The leaked block is not the first of its slab: memcheck finds a slab's
 * own address in the core's metadata and counts that object reachable. */
__attribute__((noinline)) static void leak_one(void)
{
	char *p = opaque(malloc(1234));
	if (!p || !owns(p)) {
		fprintf(stderr, "leak: the block is not gmalloc's\n");
		exit(3);
	}
	memset(p, 1, 1234);
	sink = NULL;
}

/* ---- call sites (backtrace_depth) ---- */

static void *kept[4096];

__attribute__((noinline)) static void *site_small(size_t n)
{
	void *p = malloc(n);
	__asm__ volatile("" ::: "memory"); /* a call, not a jump */
	return p;
}

__attribute__((noinline)) static void *site_zeroed(size_t n)
{
	void *p = calloc(1, n);
	__asm__ volatile("" ::: "memory");
	return p;
}

__attribute__((noinline)) static void *site_grow(void *p, size_t n)
{
	void *q = realloc(p, n);
	__asm__ volatile("" ::: "memory");
	return q;
}

__attribute__((noinline)) static void *site_aligned(size_t n)
{
	void *p = NULL;
	if (posix_memalign(&p, 256, n) != 0)
		return NULL;
	__asm__ volatile("" ::: "memory");
	return p;
}

/* 1000 x 100 bytes, 10 x 50000 zeroed, one block grown to 30000 and
 * 3 x 7000 aligned to 256: each site's count and bytes are exact. */
static int sites(void)
{
	void (*report)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "gmalloc_report");
	size_t k = 0;
	char *g = NULL;

	for (int i = 0; i < 1000; i++) {
		kept[k] = site_small(100);
		CHECK(kept[k] && malloc_usable_size(kept[k]) >= 100);
		k++;
	}
	for (int i = 0; i < 10; i++) {
		unsigned char *z = site_zeroed(50000);
		CHECK(z && z[0] == 0 && z[49999] == 0);
		kept[k++] = z;
	}
	for (size_t n = 1000; n <= 30000; n += 1000) {
		g = site_grow(g, n);
		CHECK(g != NULL);
		memset(g + n - 1000, (int)(n / 1000), 1000);
	}
	for (size_t n = 1000; n <= 30000; n += 1000)
		CHECK(g[n - 1] == (char)(n / 1000));
	kept[k++] = g;
	for (int i = 0; i < 3; i++) {
		kept[k] = site_aligned(7000);
		CHECK(aligned(kept[k], 256));
		k++;
	}
	CHECK(report != NULL);
	/* The loader allocates while it holds its own lock: stacks are
	 * captured there too. */
	void *m = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
	CHECK(m != NULL && dlsym(m, "cbrt") != NULL);
	if (m)
		dlclose(m);
	if (failures)
		return 1;
	report(STDOUT_FILENO);
	for (size_t i = 0; i < k; i++)
		free(kept[i]);
	return 0;
}

static volatile int sig_stop;

static void *sig_worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	void *slot[64] = { 0 };

	while (!sig_stop) {
		unsigned i = (seed = seed * 1103515245u + 12345u) % 64;
		free(slot[i]);
		slot[i] = malloc(16 + (seed >> 8) % 5000);
	}
	for (int i = 0; i < 64; i++)
		free(slot[i]);
	return NULL;
}

/* The report from a signal handler while other threads allocate: it may
 * find the heap busy, it must never deadlock. */
static int sigreport(int n)
{
	pthread_t t[3];

	for (int i = 0; i < 3; i++)
		if (pthread_create(&t[i], NULL, sig_worker, (void *)(uintptr_t)(i + 1)) != 0)
			return 2;
	for (int i = 0; i < n; i++) {
		void *p = malloc(100);
		kill(getpid(), SIGUSR2);
		free(p);
		usleep(2000);
	}
	sig_stop = 1;
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	printf("reports done\n");
	return 0;
}

/* guard = on: the trailer [size word][canary] is the first 16 bytes after
 * the data that are not guard fill (0xfd). */
#define TRAILER_PROBE_SIZE 112
#define TRAILER_PROBE_MAX 4096
static uint64_t *find_trailer(unsigned char *p)
{
	for (size_t o = TRAILER_PROBE_SIZE; o < TRAILER_PROBE_MAX; o += 16) {
		for (size_t i = 0; i < 16; i++)
			if (p[o + i] != 0xfd)
				return (uint64_t *)(void *)(p + o);
	}
	return NULL;
}

static int canary(int forge)
{
	unsigned char *p = opaque(malloc(TRAILER_PROBE_SIZE));
	uint64_t *t = p ? find_trailer(p) : NULL;
	uint64_t addr = (uint64_t)(uintptr_t)p;

	if (!t)
		return 2;
	if (!forge) {
		printf("canary secret %016llx\n", (unsigned long long)(t[1] ^ addr));
		free(p);
		return 0;
	}
	/* What an overflow can write without reading anything first. */
	t[0] = TRAILER_PROBE_SIZE ^ 0x5bd1e9955bd1e995ULL ^ addr;
	t[1] = 0xc0ffee0ddba11ad5ULL ^ addr;
	free(p);
	printf("forged trailer accepted\n");
	return 0;
}

/* A large table of which only a part is ever touched. */
static int table(long table_mib, long touch_mib)
{
	size_t len = (size_t)table_mib << 20;
	unsigned char *t = opaque(malloc(len));

	if (!t) {
		int err = errno;

		/* A second refusal, to see that it is reported only once. */
		t = opaque(malloc(len));
		printf("table refused errno %d%s\n", err, t ? "" : " twice");
		free(t);
		return 0;
	}
	for (size_t i = 0; i < ((size_t)touch_mib << 20) && i < len; i += 4096)
		t[i] = 1;
	free(t);
	printf("table ok\n");
	return 0;
}

/* One thread's need for quota: a malloc of mib MiB, touched. */
struct need {
	long mib;
	int ok;
};

static void *need_run(void *arg)
{
	struct need *n = arg;
	char *p = malloc((size_t)n->mib << 20);

	n->ok = p != NULL;
	if (p != NULL) {
		memset(p, 0x22, (size_t)n->mib << 20);
		free(p);
	}
	return NULL;
}

/*
 * Two threads short of quota at once: first_mib MiB are allocated and
 * kept, then thread a and, gap_ms later, thread b each malloc mib MiB.
 * Prints whether each got its block; the broker's log tells how long
 * each request waited there.
 */
static int two_needs(long first_mib, long mib, long gap_ms)
{
	struct need a = { mib, 0 }, b = { mib, 0 };
	pthread_t ta, tb;
	char *first = malloc((size_t)first_mib << 20);

	if (first == NULL) {
		printf("two_needs: the first %ld MiB failed\n", first_mib);
		return 1;
	}
	memset(first, 0x11, (size_t)first_mib << 20);
	if (pthread_create(&ta, NULL, need_run, &a) != 0)
		return 1;
	usleep((useconds_t)gap_ms * 1000);
	if (pthread_create(&tb, NULL, need_run, &b) != 0)
		return 1;
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	free(first);
	printf("a %s b %s\n", a.ok ? "ok" : "null", b.ok ? "ok" : "null");
	return 0;
}

/*
 * Bad frees of the small blocks the inlined fast path serves: each must be
 * judged before anything is written, so the block stays usable and a
 * later allocation never hands out a live block twice.
 */
static int
refree(void)
{
	char *volatile p = malloc(48);
	char *volatile live = malloc(48);
	char *q, *r;

	if (!p || !live)
		return 1;
	memset(live, 0x5a, 48);
	free(p);
	free(p);        /* double free */
	free(live + 16); /* inside a live block */
	q = malloc(48);
	r = malloc(48);
	if (!q || !r || q == r || q == live || r == live) {
		printf("refree: block handed out twice\n");
		return 1;
	}
	for (int i = 0; i < 48; i++)
		if ((unsigned char)live[i] != 0x5a) {
			printf("refree: live block changed\n");
			return 1;
		}
	free(q);
	free(r);
	free(live);
	printf("survived refree\n");
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "family";
	owns = (int (*)(const void *))dlsym(RTLD_DEFAULT, "gmalloc_owns");
	if (!owns) {
		fprintf(stderr, "gmalloc_owns not found: libgmalloc.so is not preloaded\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	if (strcmp(mode, "fill") == 0)
		return fill(argc > 2 ? atol(argv[2]) : 0);
	if (strcmp(mode, "medium") == 0 && argc > 2)
		return medium(argv[2]);
	if (strcmp(mode, "churn") == 0)
		return churn(argc > 2 ? atol(argv[2]) : 64);
	if (strcmp(mode, "seccomp") == 0)
		return seccomp_run();
	if (strcmp(mode, "noadvise") == 0)
		return noadvise(argc > 2 && strcmp(argv[2], "thread") == 0);
	if (strcmp(mode, "tasks") == 0)
		return tasks_run(0);
	if (strcmp(mode, "names") == 0) {
		free(malloc(1));
		return one_thread(NULL, 1) == 0 ? 0 : 1;
	}
	if (strcmp(mode, "signal") == 0)
		return signal_run(argc > 2 && strcmp(argv[2], "thread") == 0);
	if (strcmp(mode, "canary") == 0 || strcmp(mode, "forge") == 0)
		return canary(mode[0] == 'f');
	if (strcmp(mode, "table") == 0)
		return table(argc > 2 ? atol(argv[2]) : 0, argc > 3 ? atol(argv[3]) : 0);
	if (strcmp(mode, "sites") == 0)
		return sites();
	if (strcmp(mode, "two_needs") == 0 && argc > 4)
		return two_needs(atol(argv[2]), atol(argv[3]), atol(argv[4]));
	if (strcmp(mode, "sigreport") == 0)
		return sigreport(argc > 2 ? atoi(argv[2]) : 20);
	if (strcmp(mode, "refree") == 0)
		return refree();
	if (strcmp(mode, "badfree") == 0) {
		static char not_ours[64];
		free(not_ours + 16);
		printf("survived bad free\n");
		return 0;
	}
	if (strcmp(mode, "leak") == 0) {
		void *first = malloc(1234);
		leak_one();
		free(first);
		printf("leaked\n");
		return 0;
	}
	if (strcmp(mode, "overflow") == 0) {
		char *p = opaque(malloc(40));
		memset(p, 'x', 41);
		free(p);
		printf("survived overflow\n");
		return 0;
	}
	test_malloc();
	test_calloc();
	test_realloc();
	test_aligned();
	test_info();
	test_glibc_paths();
	test_threads_fork();
	test_cross_thread();
	if (failures) {
		fprintf(stderr, "%d checks failed\n", failures);
		return 1;
	}
	printf("family ok\n");
	return 0;
}
