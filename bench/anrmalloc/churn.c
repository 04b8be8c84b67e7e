/*
 * churn MODE [OPS] - allocation workload for bench/anrmalloc/run.sh.
 * MODE: libc (malloc/free), plain (an anr_malloc heap without block
 * records, track_blocks = no), anr (the defaults: records on), debug
 * (guards, a 1024-entry recorder, 16 debug-info bytes) or stack (debug
 * plus 4 frames of call stack per block).
 * OPS alloc-or-free operations over 1024 slots, sizes 16..4111 bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anrmalloc/anrmalloc.h"

#define SLOTS 1024
#define DEFAULT_OPS 4000000UL

int main(int argc, char **argv)
{
	static void *slot[SLOTS];
	unsigned long ops = argc > 2 ? strtoul(argv[2], NULL, 10) : DEFAULT_OPS;
	struct anr_malloc_config cfg;
	anr_heap_t *h = NULL;
	int libc;

	if (argc < 2 || (strcmp(argv[1], "libc") && strcmp(argv[1], "anr") &&
			 strcmp(argv[1], "plain") && strcmp(argv[1], "debug") &&
			 strcmp(argv[1], "stack"))) {
		fprintf(stderr, "usage: churn libc|plain|anr|debug|stack [OPS]\n");
		return 2;
	}
	libc = strcmp(argv[1], "libc") == 0;
	if (!libc) {
		anr_config_init(&cfg);
		cfg.budget = 0;
		/* Keep the working set resident: this measures the layer,
		 * not the give-back hysteresis (FREE_HIGH in the environment
		 * overrides it, e.g. FREE_HIGH=1M for the default). */
		cfg.free_low = 8u << 20;
		cfg.free_high = 16u << 20;
		if (getenv("FREE_HIGH"))
			anr_config_set(&cfg, "free_high", getenv("FREE_HIGH"));
		if (strcmp(argv[1], "plain") == 0)
			anr_config_set(&cfg, "track_blocks", "no");
		else if (strcmp(argv[1], "anr") != 0) {
			cfg.guards = 1;
			cfg.recorder = 1024;
			cfg.debug_info_size = 16;
		}
		if (strcmp(argv[1], "stack") == 0)
			cfg.stack_depth = 4;
		h = anr_heap_create(&cfg);
		if (h == NULL) {
			perror("anr_heap_create");
			return 1;
		}
	}
	for (unsigned long i = 0; i < ops; i++) {
		unsigned k = (unsigned)((i * 2654435761UL) % SLOTS);
		size_t n = 16 + (i * 7919) % 4096;

		if (slot[k]) {
			if (libc)
				free(slot[k]);
			else
				anr_free(h, slot[k]);
			slot[k] = NULL;
		} else {
			slot[k] = libc ? malloc(n) : anr_malloc(h, n);
			if (slot[k] == NULL)
				return 1;
			memset(slot[k], 1, 16);
		}
	}
	for (unsigned k = 0; k < SLOTS; k++) {
		if (libc)
			free(slot[k]);
		else
			anr_free(h, slot[k]);
	}
	anr_heap_destroy(h);
	return 0;
}
