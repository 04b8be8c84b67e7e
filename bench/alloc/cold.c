/*
 * cold.c - what one medium block costs, with the CPU's caches warm or
 * cold (bench/alloc/core.sh, section "cold").
 *
 * usage: cold hot|cold|sleep [ROUNDS]
 * Each round mallocs a block of 4..64 KiB (the sizes of rt.c's real-time
 * thread), writes all of it (memset) and frees it, timing each of the
 * three.  "cold" first writes one byte of every line of a 32 MiB buffer,
 * which pushes the allocator's metadata, code and the block out of the
 * caches and the TLB; "sleep" first sleeps 1 ms, as rt.c's thread does
 * between rounds; "hot" does neither.  A second thread exists (blocked until the end), so that an
 * allocator that skips its locks in a single-threaded process takes them
 * as it does in a real-time program.  Prints the medians and 90th
 * percentiles in nanoseconds:
 *   malloc P50 P90 memset P50 P90 free P50 P90
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bench_clock.h"

#define EVICT_BYTES (32u << 20)

static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;

static int
cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static void *
idle(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&idle_lock);
	pthread_mutex_unlock(&idle_lock);
	return NULL;
}

int
main(int argc, char **argv)
{
	size_t rounds = argc > 2 ? strtoul(argv[2], NULL, 10) : 2000;
	int mode;
	uint64_t x = 88172645463325252ull;
	int64_t *t[3];
	volatile char *evict;
	pthread_t other;

	mode = argc < 2 ? -1 : strcmp(argv[1], "hot") == 0 ? 0 : strcmp(argv[1], "cold") == 0 ? 1
		: strcmp(argv[1], "sleep") == 0 ? 2 : -1;
	if (mode < 0 || rounds == 0) {
		fprintf(stderr, "usage: cold hot|cold|sleep [ROUNDS]\n");
		return 2;
	}
	evict = map_populated("cold", EVICT_BYTES);
	for (int k = 0; k < 3; k++)
		t[k] = map_populated("cold", rounds * sizeof(int64_t));
	pthread_mutex_lock(&idle_lock);
	if (pthread_create(&other, NULL, idle, NULL) != 0) {
		fprintf(stderr, "cold: pthread_create failed\n");
		return 1;
	}
	for (size_t i = 0; i < rounds; i++) {
		int64_t t0, t1, t2, t3;
		size_t size;
		char *p;

		if (mode == 1)
			for (size_t o = 0; o < EVICT_BYTES; o += 64)
				evict[o]++;
		if (mode == 2) {
			struct timespec ms = { 0, 1000000 };
			nanosleep(&ms, NULL);
		}
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		size = 4096 + (size_t)(x % (60 * 1024 + 1));
		t0 = now_ns();
		p = malloc(size);
		t1 = now_ns();
		if (p == NULL) {
			fprintf(stderr, "cold: malloc(%zu) failed\n", size);
			return 1;
		}
		memset(p, (int)i, size);
		__asm__ volatile("" : : "r"(p) : "memory");
		t2 = now_ns();
		free(p);
		t3 = now_ns();
		t[0][i] = t1 - t0;
		t[1][i] = t2 - t1;
		t[2][i] = t3 - t2;
	}
	pthread_mutex_unlock(&idle_lock);
	pthread_join(other, NULL);
	for (int k = 0; k < 3; k++)
		qsort(t[k], rounds, sizeof(int64_t), cmp64);
	printf("malloc %lld %lld memset %lld %lld free %lld %lld\n",
	       (long long)t[0][rounds / 2], (long long)t[0][rounds * 9 / 10],
	       (long long)t[1][rounds / 2], (long long)t[1][rounds * 9 / 10],
	       (long long)t[2][rounds / 2], (long long)t[2][rounds * 9 / 10]);
	return 0;
}
