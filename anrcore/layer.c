/*
 * layer.c - the heap lock for a layer above the core.
 *
 * anr_malloc keeps its per-block records under the core's own lock, so
 * that a heap has one lock, the one priority inheritance is configured
 * on and the fork handlers take.  These calls take and release it
 * without the core's housekeeping (deferred frees, page return): the
 * holder changes only its own records and calls no other anrc_ function
 * until it has released it.
 */
#include "config.h"

#include "anrcore_internal.h"

void
anrc_layer_lock(struct anrc_heap *h)
{
	pthread_mutex_lock(&h->lock);
}

int
anrc_layer_trylock(struct anrc_heap *h)
{
	return pthread_mutex_trylock(&h->lock) == 0 ? 0 : -1;
}

void
anrc_layer_unlock(struct anrc_heap *h)
{
	pthread_mutex_unlock(&h->lock);
}
