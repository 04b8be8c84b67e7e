/*
 * rt.c - a real-time thread inside an allocating process (bench/alloc/suite.sh).
 *
 * usage: rt churn|apart|quiet SECONDS
 * One SCHED_FIFO thread (priority 50) wakes every 1 ms (clock_nanosleep on
 * an absolute deadline), then mallocs a block of 4..64 KiB, writes all of
 * it (memset) and frees it.  It records its wake-up latency (now - deadline)
 * and the time of malloc+memset+free.  With "churn" a second, ordinary
 * thread allocates and frees blocks of 1..8 MiB (one byte written per page)
 * with its live set swinging between 10 and 300 MiB, and records the time of
 * each of its free() calls.  "apart" is churn with the real-time thread
 * pinned to CPU 0 and the churning thread to CPU 1, as a real-time thread
 * on a CPU of its own runs.  No mlockall: page faults
 * are part of what is measured.  Samples go to arrays mapped before the
 * threads start, so the measuring itself does not allocate.
 * Prints, in microseconds:
 *   wake p99 X p999 X max X
 *   op p99 X p999 X max X
 *   p50 malloc X memset X free X       (each part of the operation timed)
 *   p99 malloc X memset X free X
 *   rtfaults N                         (the real-time thread's page faults)
 *   tlb n N                            (TLB shootdown interrupts the CPUs
 *                                       took during the run, from
 *                                       /proc/interrupts; with "apart",
 *                                       CPU 0's alone; -1 if unreadable)
 *   churnfree n N p9999 X max X        (with churn)
 * With RT_SLOW=N (microseconds) it also prints every round slower than N,
 * after the run:
 *   slow at MS op X malloc X memset X free X faults N absent N churnfrees N
 * (MS: milliseconds since the start; faults: the real-time thread's page
 * faults in the round; absent: pages of the block not resident before the
 * memset, by mincore; churnfrees: frees the churning thread began in the
 * 2 ms before the round or during it.)
 * Each madvise or munmap that drops pages of the process interrupts the
 * other CPUs running it (or makes them flush their TLB when they come back
 * to it): the real-time thread then finds its block's and the allocator's
 * pages missing from the TLB.
 * Exits 77 when SCHED_FIFO is not allowed (it needs root or CAP_SYS_NICE)
 * and, for "apart", when CPU 0 or CPU 1 is not one the process may use.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_clock.h"

#define PERIOD_NS 1000000L
#define MIB (1024u * 1024u)

static volatile int stop;
static uint32_t *wake_ns, *op_ns, *free_ns, *part_ns[3];
/* RT_SLOW: per round, its start, faults and absent pages; per churning
 * free, its start (all in ns since t_start, or counts) */
static int64_t t_start, *round_t, *free_t;
static uint32_t *round_faults, *round_absent;
static long slow_us = -1;
static size_t nwake, nfree, free_cap;
static long rt_faults;
static int pin_apart;

/* Pin the calling thread to CPU cpu (for "apart"). */
static void
pin(int cpu)
{
	cpu_set_t cs;

	CPU_ZERO(&cs);
	CPU_SET(cpu, &cs);
	pthread_setaffinity_np(pthread_self(), sizeof cs, &cs);
}

/* TLB shootdown interrupts taken so far by CPU cpu, or by all CPUs when
 * cpu < 0; -1 when /proc/interrupts has no such line. */
static long
tlb_interrupts(int cpu)
{
	char line[4096];
	long sum = -1;
	FILE *f = fopen("/proc/interrupts", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL) {
		char *p = line, *end;
		int k = 0;

		while (*p == ' ')
			p++;
		if (strncmp(p, "TLB:", 4) != 0)
			continue;
		p += 4;
		sum = 0;
		for (;;) {
			long v = strtol(p, &end, 10);
			if (end == p)
				break;
			if (cpu < 0 || k == cpu)
				sum += v;
			k++;
			p = end;
		}
		break;
	}
	fclose(f);
	return sum;
}

static uint32_t
clamp(int64_t v)
{
	return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

struct rt_arg {
	size_t n;
};

static void *
rt_thread(void *v)
{
	struct rt_arg *a = v;
	struct timespec next;
	uint64_t x = 88172645463325252ull;
	struct rusage r0, r1;

	if (pin_apart)
		pin(0);
	getrusage(RUSAGE_THREAD, &r0);
	long prev_faults = r0.ru_minflt;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (size_t i = 0; i < a->n; i++) {
		int64_t dl, t0, ta, tb, t1;
		size_t size;
		char *p;

		next.tv_nsec += PERIOD_NS;
		if (next.tv_nsec >= 1000000000) {
			next.tv_nsec -= 1000000000;
			next.tv_sec++;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
		t0 = now_ns();
		dl = (int64_t)next.tv_sec * 1000000000 + next.tv_nsec;
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		size = 4096 + (size_t)(x % (60 * 1024 + 1));
		p = malloc(size);
		if (slow_us >= 0 && p != NULL) {
			/* mincore between the malloc and the memset, its time
			 * taken out of the round's */
			int64_t m0 = now_ns();
			unsigned char vec[17];
			uintptr_t b = (uintptr_t)p & ~(uintptr_t)4095;
			size_t len = ((uintptr_t)p + size - b + 4095) & ~(size_t)4095;
			uint32_t absent = 0;

			if (mincore((void *)b, len, vec) == 0)
				for (size_t k = 0; k < len / 4096; k++)
					absent += !(vec[k] & 1);
			round_absent[i] = absent;
			round_t[i] = t0 - t_start;
			t0 += now_ns() - m0;
		}
		ta = now_ns();
		if (p != NULL)
			memset(p, (int)i, size);
		/* keep the compiler from dropping the malloc/memset/free */
		__asm__ volatile("" : : "r"(p) : "memory");
		tb = now_ns();
		free(p);
		t1 = now_ns();
		part_ns[0][i] = clamp(ta - t0);
		part_ns[1][i] = clamp(tb - ta);
		part_ns[2][i] = clamp(t1 - tb);
		wake_ns[i] = clamp(t0 - dl);
		op_ns[i] = clamp(t1 - t0);
		if (slow_us >= 0) {
			struct rusage ru;

			getrusage(RUSAGE_THREAD, &ru);
			round_faults[i] = (uint32_t)(ru.ru_minflt - prev_faults);
			prev_faults = ru.ru_minflt;
		}
		nwake = i + 1;
	}
	getrusage(RUSAGE_THREAD, &r1);
	rt_faults = r1.ru_minflt - r0.ru_minflt;
	stop = 1;
	return NULL;
}

static void *
churn_thread(void *v)
{
	enum { SLOTS = 512 };
	char *b[SLOTS] = { 0 };
	size_t sz[SLOTS] = { 0 }, live = 0;
	uint64_t x = 1234567891ull;
	int growing = 1;

	(void)v;
	if (pin_apart)
		pin(1);
	while (!stop) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		unsigned k = (unsigned)(x % SLOTS);
		if (growing && b[k] == NULL) {
			size_t n = MIB + (size_t)((x >> 16) % (7 * MIB + 1));
			b[k] = malloc(n);
			if (b[k] == NULL)
				continue;
			for (size_t o = 0; o < n; o += 4096)
				b[k][o] = 1;
			sz[k] = n;
			live += n;
			if (live >= 300 * (size_t)MIB)
				growing = 0;
		} else if (!growing && b[k] != NULL) {
			int64_t t0 = now_ns();
			__asm__ volatile("" : : "r"(b[k]) : "memory");
			free(b[k]);
			int64_t t1 = now_ns();
			if (nfree < free_cap) {
				if (free_t != NULL)
					free_t[nfree] = t0 - t_start;
				free_ns[nfree++] = clamp(t1 - t0);
			}
			b[k] = NULL;
			live -= sz[k];
			if (live <= 10 * (size_t)MIB)
				growing = 1;
		}
	}
	for (int k = 0; k < SLOTS; k++)
		free(b[k]);
	return NULL;
}

/* RT_SLOW: the rounds slower than slow_us, in time order, with the
 * churning thread's frees begun in the 2 ms before each or during it. */
static void
print_slow(void)
{
	size_t j = 0;

	for (size_t i = 0; i < nwake; i++) {
		int64_t from, to;
		size_t k, n = 0;

		if (op_ns[i] <= (uint64_t)slow_us * 1000)
			continue;
		from = round_t[i] - 2000000;
		to = round_t[i] + op_ns[i];
		while (j < nfree && free_t[j] < from)
			j++;
		for (k = j; k < nfree && free_t[k] <= to; k++)
			n++;
		printf("slow at %.1f op %.1f malloc %.1f memset %.1f free %.1f faults %u absent %u "
		       "churnfrees %zu\n", round_t[i] / 1e6, op_ns[i] / 1e3, part_ns[0][i] / 1e3,
		       part_ns[1][i] / 1e3, part_ns[2][i] / 1e3, round_faults[i], round_absent[i], n);
	}
}

static int
cmp32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* the q-quantile of n sorted values, in microseconds */
static double
q_us(const uint32_t *v, size_t n, double q)
{
	size_t i = (size_t)(q * (double)n);

	if (n == 0)
		return 0;
	if (i >= n)
		i = n - 1;
	return v[i] / 1000.0;
}

int
main(int argc, char **argv)
{
	int churn = argc > 1 && (strcmp(argv[1], "churn") == 0 || strcmp(argv[1], "apart") == 0);
	long secs = argc > 2 ? atol(argv[2]) : 10;
	struct rt_arg a = { (size_t)(secs > 0 ? secs : 10) * 1000 };
	struct sched_param sp = { .sched_priority = 50 };
	pthread_attr_t at;
	pthread_t rt, ch;
	long tlb0, tlb1;
	int e;

	pin_apart = argc > 1 && strcmp(argv[1], "apart") == 0;
	if (pin_apart) {
		cpu_set_t cs;
		if (sched_getaffinity(0, sizeof cs, &cs) != 0 || !CPU_ISSET(0, &cs) ||
		    !CPU_ISSET(1, &cs)) {
			printf("skip: \"apart\" needs CPUs 0 and 1\n");
			return 77;
		}
	}

	wake_ns = map_populated("rt", a.n * sizeof(uint32_t));
	op_ns = map_populated("rt", a.n * sizeof(uint32_t));
	for (int k = 0; k < 3; k++)
		part_ns[k] = map_populated("rt", a.n * sizeof(uint32_t));
	free_cap = 4u << 20;
	if (getenv("RT_SLOW") != NULL) {
		slow_us = atol(getenv("RT_SLOW"));
		round_t = map_populated("rt", a.n * sizeof(int64_t));
		round_faults = map_populated("rt", a.n * sizeof(uint32_t));
		round_absent = map_populated("rt", a.n * sizeof(uint32_t));
		free_t = map_populated("rt", free_cap * sizeof(int64_t));
	}
	free_ns = map_populated("rt", free_cap * sizeof(uint32_t));

	t_start = now_ns();
	tlb0 = tlb_interrupts(pin_apart ? 0 : -1);
	pthread_attr_init(&at);
	pthread_attr_setinheritsched(&at, PTHREAD_EXPLICIT_SCHED);
	pthread_attr_setschedpolicy(&at, SCHED_FIFO);
	pthread_attr_setschedparam(&at, &sp);
	e = pthread_create(&rt, &at, rt_thread, &a);
	if (e == EPERM) {
		printf("skip: SCHED_FIFO not allowed (needs root or CAP_SYS_NICE)\n");
		return 77;
	}
	if (e != 0) {
		fprintf(stderr, "rt: pthread_create: %s\n", strerror(e));
		return 1;
	}
	if (churn && pthread_create(&ch, NULL, churn_thread, NULL) != 0) {
		fprintf(stderr, "rt: pthread_create failed\n");
		return 1;
	}
	pthread_join(rt, NULL);
	if (churn)
		pthread_join(ch, NULL);
	tlb1 = tlb_interrupts(pin_apart ? 0 : -1);

	if (slow_us >= 0)
		print_slow();
	qsort(wake_ns, nwake, sizeof(uint32_t), cmp32);
	qsort(op_ns, nwake, sizeof(uint32_t), cmp32);
	printf("wake p99 %.1f p999 %.1f max %.1f\n", q_us(wake_ns, nwake, 0.99),
	       q_us(wake_ns, nwake, 0.999), q_us(wake_ns, nwake, 1));
	printf("op p99 %.1f p999 %.1f max %.1f\n", q_us(op_ns, nwake, 0.99),
	       q_us(op_ns, nwake, 0.999), q_us(op_ns, nwake, 1));
	for (int k = 0; k < 3; k++)
		qsort(part_ns[k], nwake, sizeof(uint32_t), cmp32);
	printf("p50 malloc %.2f memset %.2f free %.2f\n", q_us(part_ns[0], nwake, 0.5),
	       q_us(part_ns[1], nwake, 0.5), q_us(part_ns[2], nwake, 0.5));
	printf("p99 malloc %.2f memset %.2f free %.2f\n", q_us(part_ns[0], nwake, 0.99),
	       q_us(part_ns[1], nwake, 0.99), q_us(part_ns[2], nwake, 0.99));
	printf("rtfaults %ld\n", rt_faults);
	printf("tlb n %ld\n", tlb0 < 0 || tlb1 < 0 ? -1 : tlb1 - tlb0);
	if (churn) {
		qsort(free_ns, nfree, sizeof(uint32_t), cmp32);
		printf("churnfree n %zu p9999 %.1f max %.1f\n", nfree,
		       q_us(free_ns, nfree, 0.9999), q_us(free_ns, nfree, 1));
	}
	return 0;
}
