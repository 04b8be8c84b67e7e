/*
 * bench_clock.h - what the timing programs of bench/alloc share (rt.c,
 * worst.c, cold.c): a monotonic clock in nanoseconds, and arrays mapped
 * and touched before a run, so that recording a sample neither allocates
 * nor faults.
 */
#ifndef BENCH_CLOCK_H
#define BENCH_CLOCK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static inline int64_t
now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* n bytes of zeroed, resident memory, or exit with who's name on stderr. */
static inline void *
map_populated(const char *who, size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	if (p == MAP_FAILED) {
		fprintf(stderr, "%s: mmap: cannot map %zu bytes\n", who, n);
		exit(1);
	}
	return p;
}

#endif /* BENCH_CLOCK_H */
