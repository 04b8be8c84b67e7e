/*
 * steps.c - the work of single calls of the allocator core, in the steps
 * its written bound counts (anrc_step_count, ANR_CALL_STEPS_MAX in
 * anrcore_internal.h), for bench/alloc/suite.sh; linked with libanrcore.
 *
 * usage: steps [OPS]   (default 10000000)
 * The same mixed operations as worst.c on one thread (65536 slots; malloc
 * of 1..1024 bytes 90%, to 64 KiB 9%, to 1 MiB 1%; free 7 in 8, else
 * realloc), then a 1 GiB block allocated, written and freed.  Prints
 *   bound B
 *   mixed ops N p9999 S max S over F        (F: calls above the bound)
 *   gib free S allowed A                    (A: bound + pages / 64 + 1)
 */
#include "anrcore_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define SLOTS 65536
#define HMAX 4096
static uint64_t hist[HMAX + 1];

int
main(int argc, char **argv)
{
	long ops = argc > 1 ? atol(argv[1]) : 10000000;
	static char *slot[SLOTS];
	struct anrc_heap *h = anrc_create(NULL);
	uint64_t x = 88172645463325252ull, max = 0, over = 0;

	if (h == NULL)
		return 1;
	for (long i = 0; i < ops; i++) {
		uint64_t before = anrc_step_count, used;
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		unsigned k = (unsigned)(x % SLOTS);
		unsigned c = (unsigned)((x >> 16) % 100);
		size_t n = c < 90 ? 1 + (x >> 24) % 1024 : c < 99 ? 1 + (x >> 24) % 65536 : 1 + (x >> 24) % (1u << 20);
		if (slot[k] == NULL) {
			slot[k] = anrc_alloc(h, n, 0);
			used = anrc_step_count - before;
			if (slot[k] == NULL)
				return 1;
			slot[k][0] = 1;
		} else if (((x >> 40) & 7) != 0) {
			anrc_free(h, slot[k]);
			used = anrc_step_count - before;
			slot[k] = NULL;
		} else {
			char *p = anrc_realloc(h, slot[k], n, 0);
			used = anrc_step_count - before;
			if (p == NULL)
				return 1;
			slot[k] = p;
		}
		hist[used < HMAX ? used : HMAX]++;
		if (used > max)
			max = used;
		/* a free may also give back the pages of the block it frees */
		if (used > ANR_CALL_STEPS_MAX + (1u << 20) / 4096 / 64 + 1)
			over++;
	}
	for (int k = 0; k < SLOTS; k++)
		anrc_free(h, slot[k]);

	uint64_t want = (uint64_t)(0.9999 * (double)ops), seen = 0, q = 0;
	for (q = 0; q <= HMAX; q++) {
		seen += hist[q];
		if (seen > want)
			break;
	}
	printf("bound %llu\n", (unsigned long long)ANR_CALL_STEPS_MAX);
	printf("mixed ops %ld p9999 %llu max %llu over %llu\n", ops, (unsigned long long)q,
	       (unsigned long long)max, (unsigned long long)over);

	size_t gib = (size_t)1 << 30;
	char *p = anrc_alloc(h, gib, 0);
	if (p == NULL) {
		printf("gib alloc failed\n");
	} else {
		for (size_t o = 0; o < gib; o += 4096)
			p[o] = 1;
		uint64_t before = anrc_step_count;
		anrc_free(h, p);
		printf("gib free %llu allowed %llu\n", (unsigned long long)(anrc_step_count - before),
		       (unsigned long long)(ANR_CALL_STEPS_MAX + gib / 4096 / 64 + 1));
	}
	anrc_destroy(h);
	return 0;
}
