/*
 * workloads.c - allocator workloads for bench/alloc/suite.sh, run under
 * each allocator by LD_PRELOAD and timed from outside with /usr/bin/time.
 *
 * usage: workloads NAME [SCALE]   (SCALE multiplies the work; default 1)
 *   churn        one thread: 4096 live objects of 16..512 bytes, each
 *                operation replaces a random one
 *   churn-mt     the same on two threads, each with its own objects
 *   prodcons     a producer thread allocates 16..1024 bytes and hands the
 *                blocks over a ring to a consumer thread that frees them
 *   larson       two threads replace random slots of one shared array of
 *                8192 objects of 16..4096 bytes; the object taken out
 *                (often allocated by the other thread) is freed
 *   medium-mt    two threads, each with 1024 live blocks of 4 bytes..64 KiB
 *                (as many of each power of two), each operation replaces
 *                a random one: the thread-local churn of every size up to
 *                64 KiB, beyond the small objects of churn-mt
 *   rounds       eight threads, each in rounds: 64 objects of 16 bytes..4 KiB
 *                (log-uniform) allocated and written, then all freed (a
 *                request handler's pattern)
 *   threads      short-lived threads, four at a time: each allocates 256
 *                objects of 16 bytes..3 KiB and frees them, four times, and
 *                exits (a thread per request)
 *   generations  four threads at a time, each with 4,000 objects of
 *                8..1,007 bytes replaced at random 20,000 times; then it
 *                frees the 1,024 objects a thread of the last generation
 *                left and leaves 1,024 of its own as it exits (objects
 *                that outlive the thread that made them)
 *   large        one thread: 8 live blocks of 256 KiB..8 MiB, one byte
 *                written per page of each new block
 *   realloc      strings grown by doubling (16 B -> 1 MiB) and by steps of
 *                16 bytes (to 64 KiB), 16 strings at a time, with small
 *                allocations in between
 *   realloc-mt   the same on two threads, each with its own strings
 * Prints "NAME ops N check X" (the check keeps the work from being
 * optimised away).  Built with -DCOUNT_LOCKS -rdynamic (and -ldl), it also
 * prints "locks N": the pthread mutex lock, trylock and unlock calls
 * made while the workload ran (../count_locks.h).
 */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../count_locks.h"

static long scale = 1;

static uint64_t
rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void
die(const char *what)
{
	fprintf(stderr, "workloads: %s failed\n", what);
	exit(1);
}

static void *
xmalloc(size_t n)
{
	char *p = malloc(n);

	if (p == NULL)
		die("malloc");
	p[0] = (char)n;
	return p;
}

/* churn: OPS replacements among 4096 objects; returns a checksum */
struct churn_arg {
	long ops;
	uint64_t seed;
	uint64_t sum;
	unsigned index; /* of the thread in its run_threads() call */
};

/* live objects of min .. min + span - 1 bytes, then ops replacements of
 * a random one; returns the sum of the first bytes of those replaced */
static uint64_t
fill_and_replace(char **obj, unsigned live, long ops, uint64_t *x, size_t min, size_t span)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < live; i++)
		obj[i] = xmalloc(min + rnd(x) % span);
	for (long i = 0; i < ops; i++) {
		uint64_t r = rnd(x);
		unsigned k = (unsigned)(r % live);
		sum += (unsigned char)obj[k][0];
		free(obj[k]);
		obj[k] = xmalloc(min + (r >> 20) % span);
	}
	return sum;
}

static void *
churn_thread(void *v)
{
	struct churn_arg *a = v;
	enum { LIVE = 4096 };
	static __thread char *obj[LIVE];
	uint64_t x = a->seed, sum;

	sum = fill_and_replace(obj, LIVE, a->ops, &x, 16, 497);
	for (int i = 0; i < LIVE; i++)
		free(obj[i]);
	a->sum = sum;
	return NULL;
}

/* A size in [2^b, 2^(b+1)), its low bits from the top half of r. */
static size_t
size_in_octave(uint64_t r, unsigned b)
{
	return ((size_t)1 << b) + (size_t)((r >> 32) & (((size_t)1 << b) - 1));
}

/* One round: n objects of the given sizes allocated (first byte written),
 * then read and freed in the same order; returns the sum of those bytes. */
static uint64_t
fill_and_free(char **obj, const size_t *sizes, int n)
{
	uint64_t sum = 0;

	for (int k = 0; k < n; k++) {
		obj[k] = xmalloc(sizes[k]);
		obj[k][0] = (char)k;
	}
	for (int k = 0; k < n; k++) {
		sum += (unsigned char)obj[k][0];
		free(obj[k]);
	}
	return sum;
}

/* medium-mt: sizes 4 B .. 64 KiB, log-uniform */
static void *
medium_thread(void *v)
{
	struct churn_arg *a = v;
	enum { LIVE = 1024 };
	static __thread char *obj[LIVE];
	uint64_t x = a->seed, sum = 0;

	for (long i = 0; i < a->ops + LIVE; i++) {
		uint64_t r = rnd(&x);
		unsigned k = (unsigned)(r % LIVE), b = 2 + (unsigned)((r >> 20) % 14);
		size_t n = size_in_octave(r, b);
		if (obj[k] != NULL)
			sum += (unsigned char)obj[k][0];
		free(obj[k]);
		obj[k] = xmalloc(n);
	}
	for (int i = 0; i < LIVE; i++)
		free(obj[i]);
	a->sum = sum;
	return NULL;
}

/* rounds: a->ops rounds of 64 objects allocated, then freed */
static void *
rounds_thread(void *v)
{
	struct churn_arg *a = v;
	enum { BATCH = 64 };
	char *obj[BATCH];
	size_t sizes[BATCH];
	uint64_t x = a->seed, sum = 0;

	for (long i = 0; i < a->ops; i++) {
		for (int k = 0; k < BATCH; k++) {
			uint64_t r = rnd(&x);
			sizes[k] = size_in_octave(r, 4 + (unsigned)(r % 8));
		}
		sum += fill_and_free(obj, sizes, BATCH);
	}
	a->sum = sum;
	return NULL;
}

/* threads: one short-lived thread's work */
static void *
short_thread(void *v)
{
	struct churn_arg *a = v;
	enum { N = 256 };
	char *obj[N];
	size_t sizes[N];
	uint64_t sum = 0;

	for (int r = 0; r < 4; r++) {
		for (int k = 0; k < N; k++)
			sizes[k] = 16 + (size_t)(k * 97 + r) % 3000;
		sum += fill_and_free(obj, sizes, N);
	}
	a->sum = sum;
	return NULL;
}

static uint64_t
run_threads(void *(*fn)(void *), int n, long ops)
{
	pthread_t t[8];
	struct churn_arg a[8];
	uint64_t sum = 0;

	for (int i = 0; i < n; i++) {
		a[i].ops = ops;
		a[i].seed = 88172645463325252ull + 7919u * (unsigned)i;
		a[i].sum = 0;
		a[i].index = (unsigned)i;
		if (pthread_create(&t[i], NULL, fn, &a[i]) != 0)
			die("pthread_create");
	}
	for (int i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		sum += a[i].sum;
	}
	return sum;
}

/* generations: what each generation's threads leave to the next */
enum { GEN_THREADS = 4, GEN_LIVE = 4000, GEN_LEFT = 1024, GEN_OPS = 20000 };
static char *left[GEN_THREADS][GEN_LEFT];

/* One thread of generation a->ops (run_threads' ops), which takes over
 * the objects a thread of the last generation left in a slot of left[]. */
static void *
generation_thread(void *v)
{
	struct churn_arg *a = v;
	static __thread char *obj[GEN_LIVE];
	unsigned slot = (unsigned)((a->index + (unsigned long)a->ops) % GEN_THREADS);
	uint64_t x = a->seed + 31u * (uint64_t)a->ops, sum;

	sum = fill_and_replace(obj, GEN_LIVE, GEN_OPS, &x, 8, 1000);
	for (int i = 0; i < GEN_LEFT; i++) {
		char **l = &left[slot][i];
		if (*l != NULL)
			sum += (unsigned char)(*l)[0];
		free(*l);
		*l = obj[i];
	}
	for (int i = GEN_LEFT; i < GEN_LIVE; i++)
		free(obj[i]);
	a->sum = sum;
	return NULL;
}

/* prodcons: a ring of RING slots, NULL = empty */
#define RING 4096
static char *volatile ring[RING];

static void *
producer(void *v)
{
	struct churn_arg *a = v;
	uint64_t x = a->seed;

	for (long i = 0; i < a->ops; i++) {
		char *p = xmalloc(16 + rnd(&x) % 1009);
		while (__atomic_load_n(&ring[i % RING], __ATOMIC_ACQUIRE) != NULL)
			sched_yield();
		__atomic_store_n(&ring[i % RING], p, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void *
consumer(void *v)
{
	struct churn_arg *a = v;
	uint64_t sum = 0;

	for (long i = 0; i < a->ops; i++) {
		char *p;
		while ((p = __atomic_exchange_n(&ring[i % RING], NULL, __ATOMIC_ACQ_REL)) == NULL)
			sched_yield();
		sum += (unsigned char)p[0];
		free(p);
	}
	a->sum = sum;
	return NULL;
}

/* larson: one shared array; each operation swaps a new object in */
#define SLOTS 8192
static char *volatile slot[SLOTS];

static void *
larson_thread(void *v)
{
	struct churn_arg *a = v;
	uint64_t x = a->seed, sum = 0;

	for (long i = 0; i < a->ops; i++) {
		uint64_t r = rnd(&x);
		char *p = xmalloc(16 + (r >> 20) % 4081);
		char *old = __atomic_exchange_n(&slot[r % SLOTS], p, __ATOMIC_ACQ_REL);
		if (old != NULL) {
			sum += (unsigned char)old[0];
			free(old);
		}
	}
	a->sum = sum;
	return NULL;
}

static uint64_t
large(long ops)
{
	enum { LIVE = 8 };
	char *b[LIVE] = { 0 };
	uint64_t x = 1234567891ull, sum = 0;

	for (long i = 0; i < ops; i++) {
		uint64_t r = rnd(&x);
		unsigned k = (unsigned)(r % LIVE);
		size_t n = 256 * 1024 + (size_t)((r >> 16) % (8 * 1024 * 1024 - 256 * 1024 + 1));
		if (b[k] != NULL) {
			sum += (unsigned char)b[k][0];
			free(b[k]);
		}
		b[k] = xmalloc(n);
		for (size_t o = 0; o < n; o += 4096)
			b[k][o] = (char)(o >> 12);
	}
	for (int k = 0; k < LIVE; k++)
		free(b[k]);
	return sum;
}

static char *
xrealloc(char *p, size_t n)
{
	p = realloc(p, n);
	if (p == NULL)
		die("realloc");
	p[n - 1] = (char)n;
	return p;
}

static uint64_t
grow(long rounds)
{
	enum { STR = 16 };
	uint64_t x = 42, sum = 0;

	for (long r = 0; r < rounds; r++) {
		char *s[STR] = { 0 }, *small[64] = { 0 };
		size_t len[STR] = { 0 };
		/* by doubling, all strings in turn */
		for (size_t n = 16; n <= 1024 * 1024; n *= 2)
			for (int i = 0; i < STR; i++) {
				s[i] = xrealloc(s[i], n);
				len[i] = n;
				unsigned k = (unsigned)(rnd(&x) % 64);
				free(small[k]);
				small[k] = xmalloc(16 + x % 200);
			}
		for (int i = 0; i < STR; i++) {
			sum += (unsigned char)s[i][len[i] - 1];
			free(s[i]);
			s[i] = NULL;
		}
		/* by small steps */
		for (size_t n = 16; n <= 64 * 1024; n += 16)
			for (int i = 0; i < STR; i++) {
				s[i] = xrealloc(s[i], n);
				len[i] = n;
				if ((n & 255) == 0) {
					unsigned k = (unsigned)(rnd(&x) % 64);
					free(small[k]);
					small[k] = xmalloc(16 + x % 200);
				}
			}
		for (int i = 0; i < STR; i++) {
			sum += (unsigned char)s[i][len[i] - 1];
			free(s[i]);
		}
		for (int k = 0; k < 64; k++)
			free(small[k]);
	}
	return sum;
}

static void *
grow_thread(void *v)
{
	struct churn_arg *a = v;

	a->sum = grow(a->ops);
	return NULL;
}

int
main(int argc, char **argv)
{
	const char *w = argc > 1 ? argv[1] : "";
	uint64_t sum;
	long ops;

	if (argc > 2)
		scale = atol(argv[2]);
	if (scale < 1)
		scale = 1;
#ifdef COUNT_LOCKS
	count_locks_on = 1;
#endif
	if (strcmp(w, "churn") == 0) {
		ops = 5000000 * scale;
		sum = run_threads(churn_thread, 1, ops);
	} else if (strcmp(w, "churn-mt") == 0) {
		ops = 2500000 * scale;
		sum = run_threads(churn_thread, 2, ops);
		ops *= 2;
	} else if (strcmp(w, "medium-mt") == 0) {
		ops = 2000000 * scale;
		sum = run_threads(medium_thread, 2, ops);
		ops *= 2;
	} else if (strcmp(w, "prodcons") == 0) {
		pthread_t t[2];
		struct churn_arg a = { .ops = 1000000 * scale, .seed = 99991 };
		ops = a.ops;
		if (pthread_create(&t[0], NULL, producer, &a) != 0 ||
		    pthread_create(&t[1], NULL, consumer, &a) != 0)
			die("pthread_create");
		pthread_join(t[0], NULL);
		pthread_join(t[1], NULL);
		sum = a.sum;
	} else if (strcmp(w, "larson") == 0) {
		ops = 1000000 * scale;
		sum = run_threads(larson_thread, 2, ops);
		ops *= 2;
		for (int i = 0; i < SLOTS; i++)
			free(slot[i]);
	} else if (strcmp(w, "rounds") == 0) {
		ops = 10000 * scale;
		sum = run_threads(rounds_thread, 8, ops);
		ops *= 8 * 64;
	} else if (strcmp(w, "threads") == 0) {
		ops = 1000 * scale;
		sum = 0;
		for (long i = 0; i < ops; i++)
			sum += run_threads(short_thread, 4, 0);
		ops *= 4 * 4 * 256;
	} else if (strcmp(w, "generations") == 0) {
		ops = 100 * scale;
		sum = 0;
		for (long g = 0; g < ops; g++)
			sum += run_threads(generation_thread, GEN_THREADS, g);
		for (unsigned i = 0; i < GEN_THREADS; i++)
			for (unsigned j = 0; j < GEN_LEFT; j++)
				free(left[i][j]);
		ops *= GEN_THREADS * (GEN_LIVE + GEN_OPS);
	} else if (strcmp(w, "large") == 0) {
		ops = 4000 * scale;
		sum = large(ops);
	} else if (strcmp(w, "realloc") == 0) {
		ops = 40 * scale;
		sum = grow(ops);
	} else if (strcmp(w, "realloc-mt") == 0) {
		ops = 20 * scale;
		sum = run_threads(grow_thread, 2, ops);
		ops *= 2;
	} else {
		fprintf(stderr, "usage: workloads churn|churn-mt|medium-mt|prodcons|larson|rounds|threads|generations|large|realloc|realloc-mt [SCALE]\n");
		return 2;
	}
	printf("%s ops %ld check %llu\n", w, ops, (unsigned long long)sum);
#ifdef COUNT_LOCKS
	printf("locks %ld\n", count_locks_ops);
#endif
	return 0;
}
