/*
 * mbt_anrheap.h - the small anr_malloc heap that unit tests start from
 * and add their own settings to.
 */
#ifndef MBT_ANRHEAP_H
#define MBT_ANRHEAP_H

#include <stdint.h>

#include "anrmalloc/anrmalloc.h"

/* 64 MiB reserved, budget bytes, bad frees reported (not fatal), room
 * for 65,536 block records. */
static inline void mbt_small_config(struct anr_malloc_config *c, uint64_t budget)
{
	anr_config_init(c);
	c->reserve = (uint64_t)64 << 20;
	c->budget = budget;
	c->on_error = ANR_ERROR_REPORT;
	c->max_blocks = 65536;
}

#endif /* MBT_ANRHEAP_H */
