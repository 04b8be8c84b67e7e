/*
 * churn.c - madvise calls of the core under two churns (bench/alloc/run.sh
 * links it with libanrcore): a producer thread passing 4 KiB blocks to a
 * consumer thread that frees them, and a mix of allocations, frees
 * (some across threads) and reallocs on two threads.  Prints
 * "<workload> ops <n> madvise <calls> KiB <given back> metadata-madvise <calls>"
 * (the madvise calls that gave back data pages, and those that gave back
 * metadata pages).
 * usage: churn [OPS]   (default 10000000 in all)
 */
#include "anrcore.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define RING 1024
static struct anrc_heap *heap;
static void *volatile ring[RING];
static long ops;

static void *
producer(void *arg)
{
	(void)arg;
	for (long i = 0; i < ops / 2; i++) {
		void *p = anrc_alloc(heap, 4096, 0);
		*(volatile char *)p = 1;
		while (__atomic_load_n(&ring[i % RING], __ATOMIC_ACQUIRE) != NULL)
			;
		__atomic_store_n(&ring[i % RING], p, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void *
consumer(void *arg)
{
	(void)arg;
	for (long i = 0; i < ops / 2; i++) {
		void *p;
		while ((p = __atomic_exchange_n(&ring[i % RING], NULL, __ATOMIC_ACQ_REL)) == NULL)
			;
		anrc_free(heap, p);
	}
	return NULL;
}

static void *volatile shared[256];

static void *
mixed(void *arg)
{
	uint64_t x = (uint64_t)(uintptr_t)arg;
	void *mine[512] = { 0 };

	for (long i = 0; i < ops / 2; i++) {
		unsigned k, op;
		size_t size;
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		k = (unsigned)(x % 512);
		op = (unsigned)((x >> 20) % 16);
		size = (x >> 30) % 1000 < 900 ? (x >> 40) % 1024 + 1
		       : (x >> 30) % 1000 < 990 ? (x >> 40) % 65536 + 1 : (x >> 40) % 1048576 + 1;
		if (mine[k] == NULL) {
			mine[k] = anrc_alloc(heap, size, 0);
			*(volatile char *)mine[k] = 1;
		} else if (op < 2) {
			mine[k] = anrc_realloc(heap, mine[k], size, 0);
		} else if (op == 2) {
			anrc_free(heap, __atomic_exchange_n(&shared[k % 256], mine[k], __ATOMIC_ACQ_REL));
			mine[k] = NULL;
		} else {
			anrc_free(heap, mine[k]);
			mine[k] = NULL;
		}
	}
	for (int k = 0; k < 512; k++)
		anrc_free(heap, mine[k]);
	return NULL;
}

static void
run(const char *name, void *(*a)(void *), void *(*b)(void *))
{
	struct anrc_stats st;
	pthread_t t[2];

	heap = anrc_create(NULL);
	pthread_create(&t[0], NULL, a, (void *)(uintptr_t)88172645463325252ull);
	pthread_create(&t[1], NULL, b, (void *)(uintptr_t)1234567891ull);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	anrc_get_stats(heap, &st);
	printf("%s ops %ld madvise %llu KiB %zu metadata-madvise %llu\n", name, ops,
	       (unsigned long long)st.madvise_calls, st.madvised_bytes >> 10,
	       (unsigned long long)st.meta_madvise_calls);
	anrc_destroy(heap);
}

int
main(int argc, char **argv)
{
	ops = argc > 1 ? atol(argv[1]) : 10000000;
	run("producer-consumer-4k", producer, consumer);
	run("mixed-2-threads", mixed, mixed);
	return 0;
}
