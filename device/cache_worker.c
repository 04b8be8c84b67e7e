/*
 * cache_worker - a service with a large cache in an anr_malloc heap, a
 * bidirectional broker client (with --broker): it answers lookups, keeps
 * what it fetched, and gives memory back when another process needs it.
 *
 * Lookups arrive in small batches on the workload's schedule.  A key in the
 * cache is a hit; a miss "fetches" the object (fills it) and keeps it,
 * evicting the oldest objects while the cache is at its target size.  With
 * the broker, the heap asks for quota as the cache grows (a short request
 * deadline: a lookup does not wait long for memory) and the broker may ask
 * for pages back; the give-back callback evicts, the target drops to what
 * is left and grows again slowly while lookups miss.  A miss that gets no
 * memory is served without keeping the object.  Without the broker the
 * heap's budget is simply the largest cache.  Work: lookups served.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anrmalloc/anrmalloc.h"
#include "workload.h"

#define OBJECT_SIZE (256u << 10)
#define LOOKUPS_PER_JOB 8
#define KEYS_PER_SLOT 2         /* key space / objects that fit: hit rate ~1/2 */
#define REGROW_PER_S (4 * WL_MIB) /* target growth after a give-back */
#define REQUEST_DEADLINE_MS 100
#define POLL_MAX_MS 20

struct cache {
	anr_heap_t *heap;
	void **slot;          /* key -> object or NULL */
	size_t *fifo;         /* keys, oldest at head */
	size_t nkeys, head, count;
	size_t target, max;   /* bytes */
	uint64_t hits, misses, uncached, evicted;
};

static size_t cache_bytes(const struct cache *c)
{
	return c->count * OBJECT_SIZE;
}

static size_t evict(struct cache *c, size_t want)
{
	size_t freed = 0;

	while (c->count && freed < want) {
		size_t key = c->fifo[c->head];

		c->head = (c->head + 1) % c->nkeys;
		c->count--;
		anr_malloc_free(c->heap, c->slot[key]);
		c->slot[key] = NULL;
		c->evicted++;
		freed += OBJECT_SIZE;
	}
	return freed;
}

static size_t on_need(void *arg, anr_heap_t *h, size_t bytes,
		      enum anr_need_reason why, unsigned round)
{
	struct cache *c = arg;
	size_t freed;

	(void)h;
	switch (why) {
	case ANR_NEED_GIVE_BACK:
		freed = evict(c, bytes);
		c->target = cache_bytes(c); /* it grows back slowly from here */
		return freed;
	case ANR_NEED_ALLOC:
	default:
		/* The heap asks the broker in round 0; after that the cache's
		 * own oldest objects make room. */
		return round == 0 ? 0 : evict(c, bytes);
	}
}

static void on_mark(void *arg, anr_heap_t *h)
{
	struct cache *c = arg;

	for (size_t i = 0, k = c->head; i < c->count; i++, k = (k + 1) % c->nkeys)
		anr_gc_mark(h, c->slot[c->fifo[k]]);
}

static void lookup(struct cache *c, struct workload *w)
{
	size_t key = (size_t)wl_below(w, c->nkeys);
	unsigned char *o = c->slot[key];

	if (o) {
		c->hits++;
		if (o[OBJECT_SIZE - 1] != (unsigned char)key)
			abort(); /* a cached object must never change */
		return;
	}
	c->misses++;
	if (cache_bytes(c) + OBJECT_SIZE > c->target)
		evict(c, cache_bytes(c) + OBJECT_SIZE - c->target);
	if (cache_bytes(c) + OBJECT_SIZE > c->target ||
	    (o = ANR_MALLOC(c->heap, OBJECT_SIZE)) == NULL) {
		anr_oom_clear(c->heap);
		c->uncached++;
		return;
	}
	wl_fill(o, OBJECT_SIZE, (unsigned)key);
	o[OBJECT_SIZE - 1] = (unsigned char)key;
	c->slot[key] = o;
	c->fifo[(c->head + c->count) % c->nkeys] = key;
	c->count++;
}

/* Serve the broker until `until` (elapsed seconds). */
static void serve_until(struct cache *c, struct workload *w, double until)
{
	do {
		struct pollfd p = { anr_broker_fd(c->heap), POLLIN, 0 };
		double left = until - wl_elapsed(w);
		int ms = left <= 0 ? 0 : left * 1000 > POLL_MAX_MS ? POLL_MAX_MS : (int)(left * 1000);

		if (p.fd < 0) {
			wl_sleep(ms / 1000.0);
			continue;
		}
		if (poll(&p, 1, ms) > 0)
			anr_broker_dispatch(c->heap);
	} while (wl_elapsed(w) < until);
}

int main(int argc, char **argv)
{
	struct workload w = {
		.name = "cache", .seed = 1, .seconds = 60,
		.size_min = 96 * WL_MIB, .size_max = 96 * WL_MIB,
		.gap_min = 0.02, .gap_max = 0.08, .broker = 1,
	};
	struct anr_malloc_config cfg;
	struct anr_malloc_stats st;
	struct cache c = { 0 };
	struct wl_job job;
	uint64_t served = 0;
	double last;

	wl_parse(&w, argc, argv);
	c.max = c.target = w.size_max;
	c.nkeys = c.max / OBJECT_SIZE * KEYS_PER_SLOT + 1;
	c.slot = calloc(c.nkeys, sizeof(*c.slot));
	c.fifo = calloc(c.nkeys, sizeof(*c.fifo));
	if (!c.slot || !c.fifo) {
		perror("cache");
		return 1;
	}
	anr_config_init(&cfg);
	snprintf(cfg.name, sizeof(cfg.name), "cache");
	cfg.reserve = (uint64_t)c.max * 4;
	cfg.free_low = 0;
	cfg.free_high = OBJECT_SIZE;
	if (w.broker) {
		cfg.broker = 1;
		cfg.budget = 64 << 10; /* the rest is quota */
		cfg.broker_chunk = 1 << 20;
		cfg.broker_timeout = REQUEST_DEADLINE_MS;
	} else {
		/* Blocks carry a header: leave room for a full cache. */
		cfg.budget = c.max + c.max / 16;
	}
	c.heap = anr_heap_create(&cfg);
	if (c.heap == NULL) {
		fprintf(stderr, "cache: cannot create the heap: %s\n", strerror(errno));
		return 1;
	}
	anr_add_need_callback(c.heap, on_need, &c);
	anr_add_mark_callback(c.heap, on_mark, &c);

	last = 0;
	while (wl_next_job(&w, &job)) {
		serve_until(&c, &w, job.arrive);
		if (c.target < c.max) {
			double now = wl_elapsed(&w);
			size_t grow = (size_t)((now - last) * REGROW_PER_S);

			c.target = c.target + grow > c.max ? c.max : c.target + grow;
		}
		last = wl_elapsed(&w);
		for (int i = 0; i < LOOKUPS_PER_JOB; i++)
			lookup(&c, &w);
		served += LOOKUPS_PER_JOB;
		wl_done(&w, served);
	}

	anr_heap_stats(c.heap, &st);
	wl_stat(&w, "hits", (double)c.hits);
	wl_stat(&w, "misses", (double)c.misses);
	wl_stat(&w, "uncached", (double)c.uncached);
	wl_stat(&w, "evicted", (double)c.evicted);
	wl_stat(&w, "give_back_requests", (double)st.give_back_requests);
	wl_stat(&w, "given_back_mib", (double)st.given_back_bytes / WL_MIB);
	wl_stat(&w, "cache_mib_end", (double)cache_bytes(&c) / WL_MIB);
	wl_end(&w, served);
	printf("cache: %llu lookups, %llu hits, %llu give-back requests, %.1f MiB given back\n",
	       (unsigned long long)served, (unsigned long long)c.hits,
	       (unsigned long long)st.give_back_requests,
	       (double)st.given_back_bytes / WL_MIB);
	evict(&c, (size_t)-1);
	anr_heap_destroy(c.heap);
	free(c.slot);
	free(c.fifo);
	return 0;
}
