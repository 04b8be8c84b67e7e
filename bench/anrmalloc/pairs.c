/*
 * pairs.c - N anr_malloc(SIZE)+free pairs on one heap, for counting
 * instructions per pair under callgrind (pairs.sh runs it at N and 2N and
 * takes the difference).  MODE "plain" turns the block records off
 * (track_blocks = no), "track" keeps the defaults.  Built with
 * -DCOUNT_LOCKS it also counts the pthread mutex calls made during the
 * loop (the program's own definitions stand in front of libc's) and
 * prints them per pair.
 * usage: pairs SIZE N MODE
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anrmalloc/anrmalloc.h"

#include "../count_locks.h"

int main(int argc, char **argv)
{
	struct anr_malloc_config c;
	anr_heap_t *h;
	size_t size;
	long n;

	if (argc < 4)
		return 2;
	size = (size_t)atol(argv[1]);
	n = atol(argv[2]);
	anr_config_init(&c);
	c.budget = 256 << 20;
	if (strcmp(argv[3], "plain") == 0 &&
	    anr_config_set(&c, "track_blocks", "no") != 0)
		fprintf(stderr, "pairs: no track_blocks key: the layer keeps records\n");
	h = anr_heap_create(&c);
	if (h == NULL)
		return 1;
	/* One pair first: the thread's slab is set up outside the count. */
	anr_free(h, anr_malloc(h, size));
#ifdef COUNT_LOCKS
	count_locks_on = 1;
#endif
	for (long i = 0; i < n; i++) {
		void *p = anr_malloc(h, size);
		__asm__ volatile("" : : "r"(p) : "memory");
		anr_free(h, p);
	}
#ifdef COUNT_LOCKS
	count_locks_on = 0;
	printf("%.2f\n", (double)count_locks_ops / (double)n);
#endif
	anr_heap_destroy(h);
	return 0;
}
