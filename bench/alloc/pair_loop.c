/*
 * pair_loop.c - N malloc(size)+free pairs, for counting instructions per
 * pair under callgrind (bench/alloc/core.sh runs it at two N and takes
 * the difference, so start-up costs cancel out).
 * usage: pair_loop SIZE N [THREADS [LIVE]]  (THREADS: run the loop in that
 * many threads at once and print pairs per second; for the scaling figure.
 * LIVE, with THREADS 0: keep LIVE objects and free the oldest of them
 * before each malloc, so that no free is of the object malloc handed out
 * last.)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static size_t size;
static long n;

static void *
loop(void *arg)
{
	(void)arg;
	for (long i = 0; i < n; i++) {
		void *p = malloc(size);
		__asm__ volatile("" : : "r"(p) : "memory");
		free(p);
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	int threads = argc > 3 ? atoi(argv[3]) : 0;
	pthread_t t[64];
	struct timespec a, b;
	double s;

	if (argc < 3)
		return 2;
	size = (size_t)atol(argv[1]);
	n = atol(argv[2]);
	if (threads <= 0 && argc > 4) {
		int live = atoi(argv[4]);
		void *ring[256];

		if (live < 1 || live > 256)
			return 2;
		for (int i = 0; i < live; i++)
			ring[i] = malloc(size);
		for (long i = 0; i < n; i++) {
			int j = (int)(i % live);
			free(ring[j]);
			ring[j] = malloc(size);
			__asm__ volatile("" : : "r"(ring[j]) : "memory");
		}
		for (int i = 0; i < live; i++)
			free(ring[i]);
		return 0;
	}
	if (threads <= 0) {
		loop(NULL);
		return 0;
	}
	if (threads > 64)
		threads = 64;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, loop, NULL);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	printf("%.0f\n", (double)n * threads / s);
	return 0;
}
