/*
 * worst.c - the time of single allocator calls (bench/alloc/suite.sh), run
 * under each allocator by LD_PRELOAD.
 *
 * usage: worst [OPS]   (default 10000000)
 * 1. OPS mixed operations on one thread over 65536 slots: an empty slot
 *    gets malloc (90% 1..1024 bytes, 9% to 64 KiB, 1% to 1 MiB, first byte
 *    written), a full one is freed (7 in 8) or realloc'ed to a new size.
 *    Each call is timed with clock_gettime(CLOCK_MONOTONIC) (about 20 ns
 *    of its own, included).  The machine's own preemptions are in the
 *    maximum; the p99.99 is the steadier figure.
 * 2. A block of 1 GiB is allocated, written (every page) and freed, three
 *    times; the time of the free (and of the malloc) is printed, the worst
 *    of the three.
 * Prints, in microseconds:
 *   mixed ops N p99 X p9999 X max X malloc_max X free_max X realloc_max X
 *   gib malloc_max X free_max X
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"

/* histogram: 1 ns steps to 100 us, then 1 us steps to 100 ms, then one
 * overflow bucket (the exact maximum is kept apart) */
#define FINE 100000u
#define COARSE 100000u
static uint64_t hist[FINE + COARSE + 1];
static uint64_t total;

static void
record(int64_t ns)
{
	uint64_t v = ns < 0 ? 0 : (uint64_t)ns;

	if (v < FINE)
		hist[v]++;
	else if (v / 1000 < FINE / 1000 + COARSE)
		hist[FINE + (v / 1000 - FINE / 1000)]++;
	else
		hist[FINE + COARSE]++;
	total++;
}

/* the q-quantile in microseconds */
static double
quantile_us(double q)
{
	uint64_t want = (uint64_t)(q * (double)total), seen = 0;

	for (size_t i = 0; i <= FINE + COARSE; i++) {
		seen += hist[i];
		if (seen > want)
			return i < FINE ? (double)i / 1000.0 : (double)(FINE / 1000 + (i - FINE));
	}
	return 1e6;
}

#define SLOTS 65536

int
main(int argc, char **argv)
{
	long ops = argc > 1 ? atol(argv[1]) : 10000000;
	static char *slot[SLOTS];
	int64_t max_m = 0, max_f = 0, max_r = 0, gm = 0, gf = 0;
	uint64_t x = 88172645463325252ull;

	for (long i = 0; i < ops; i++) {
		int64_t t0, t1;
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		unsigned k = (unsigned)(x % SLOTS);
		unsigned c = (unsigned)((x >> 16) % 100);
		size_t n = c < 90 ? 1 + (x >> 24) % 1024 : c < 99 ? 1 + (x >> 24) % 65536 : 1 + (x >> 24) % (1u << 20);
		if (slot[k] == NULL) {
			t0 = now_ns();
			slot[k] = malloc(n);
			t1 = now_ns();
			if (slot[k] == NULL)
				return 1;
			slot[k][0] = 1;
			if (t1 - t0 > max_m)
				max_m = t1 - t0;
		} else if (((x >> 40) & 7) != 0) {
			t0 = now_ns();
			free(slot[k]);
			t1 = now_ns();
			slot[k] = NULL;
			if (t1 - t0 > max_f)
				max_f = t1 - t0;
		} else {
			t0 = now_ns();
			char *p = realloc(slot[k], n);
			t1 = now_ns();
			if (p == NULL)
				return 1;
			slot[k] = p;
			if (t1 - t0 > max_r)
				max_r = t1 - t0;
		}
		record(t1 - t0);
	}
	for (int k = 0; k < SLOTS; k++)
		free(slot[k]);
	int64_t mx = max_m > max_f ? max_m : max_f;
	mx = mx > max_r ? mx : max_r;
	printf("mixed ops %ld p99 %.3f p9999 %.3f max %.1f malloc_max %.1f free_max %.1f realloc_max %.1f\n",
	       ops, quantile_us(0.99), quantile_us(0.9999), mx / 1000.0, max_m / 1000.0,
	       max_f / 1000.0, max_r / 1000.0);

	for (int r = 0; r < 3; r++) {
		size_t n = (size_t)1 << 30;
		int64_t t0 = now_ns();
		char *p = malloc(n);
		int64_t t1 = now_ns();
		if (p == NULL) {
			printf("gib malloc failed\n");
			return 0;
		}
		for (size_t o = 0; o < n; o += 4096)
			p[o] = 1;
		__asm__ volatile("" : : "r"(p) : "memory");
		int64_t t2 = now_ns();
		free(p);
		int64_t t3 = now_ns();
		if (t1 - t0 > gm)
			gm = t1 - t0;
		if (t3 - t2 > gf)
			gf = t3 - t2;
	}
	printf("gib malloc_max %.1f free_max %.1f\n", gm / 1000.0, gf / 1000.0);
	return 0;
}
