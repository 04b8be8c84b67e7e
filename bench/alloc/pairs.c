/*
 * pairs.c - malloc/free pairs of 64..319 bytes made three calls deep, for
 * the cost of gmalloc's backtrace_depth (bench/alloc/run.sh).
 * Prints the mean nanoseconds per pair.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define LEVEL(name, next) \
	__attribute__((noinline)) static void *name(size_t n) \
	{ void *p = next(n); __asm__ volatile("" ::: "memory"); return p; }

LEVEL(level3, malloc)
LEVEL(level2, level3)
LEVEL(level1, level2)

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		free(level1(64 + (size_t)(i & 255)));
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.1f\n", ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / (double)n);
	return 0;
}
