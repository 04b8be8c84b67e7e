/*
 * cache_holder - a bidirectional membroker client that keeps a cache in an
 * anr_malloc heap and gives memory back when another process needs it.
 *
 *   cache_holder [--cache SIZE] [--object SIZE] [--seconds N] [--name NAME]
 *
 * It fills its cache with objects, asking the broker for quota as the heap
 * runs out of budget (the heap does that by itself), then serves the broker
 * from its own poll loop.  When the broker asks for pages back, the heap
 * calls the cache's give-back callback, which evicts the oldest objects;
 * the heap trims, lowers its budget and answers with the pages freed.  The
 * broker socket comes from $MEMBROKER_SOCKET.  Ends after N seconds (0:
 * never) or on SIGINT/SIGTERM, with a leak check through the collector.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "anrmalloc/anrmalloc.h"

#define DEFAULT_CACHE (32u << 20)
#define DEFAULT_OBJECT (64u << 10)
#define FILL_STEP_MS 5
#define MIB (1024.0 * 1024.0)

struct object {
	struct object *next;
	size_t size;
	unsigned char data[];
};

struct cache {
	anr_heap_t *heap;
	struct object *head, *tail; /* oldest first */
	size_t bytes, objects, evicted;
	size_t target; /* shrinks when the broker takes memory away */
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void cache_add(struct cache *c, struct object *o)
{
	o->next = NULL;
	if (c->tail)
		c->tail->next = o;
	else
		c->head = o;
	c->tail = o;
	c->bytes += o->size;
	c->objects++;
}

static size_t cache_evict(struct cache *c, size_t want)
{
	size_t freed = 0;

	while (c->head && freed < want) {
		struct object *o = c->head;

		c->head = o->next;
		if (c->head == NULL)
			c->tail = NULL;
		freed += o->size;
		c->bytes -= o->size;
		c->objects--;
		c->evicted++;
		anr_free(c->heap, o);
	}
	return freed;
}

/*
 * Need-more callback.  An allocation first lets the heap ask the broker
 * (round 0 gives nothing); only if that did not help does the cache make
 * room for its own new objects.  A give-back request evicts at once.
 */
static size_t cache_need(void *arg, anr_heap_t *h, size_t bytes,
			 enum anr_need_reason why, unsigned round)
{
	struct cache *c = arg;
	size_t freed;

	(void)h;
	if (why == ANR_NEED_ALLOC && round == 0)
		return 0;
	freed = cache_evict(c, bytes);
	if (why == ANR_NEED_GIVE_BACK)
		c->target = c->bytes;
	printf("%s: evicted %.1f MiB (%zu objects left, %.1f MiB) for %s\n",
	       anr_heap_name(c->heap), freed / MIB, c->objects, c->bytes / MIB,
	       why == ANR_NEED_GIVE_BACK ? "the broker" : "a new object");
	return freed;
}

/* The cache's objects are its roots: mark them for the collector. */
static void cache_mark(void *arg, anr_heap_t *h)
{
	struct cache *c = arg;

	for (struct object *o = c->head; o; o = o->next)
		anr_gc_mark(h, o);
}

static void usage(int code)
{
	fprintf(code ? stderr : stdout,
		"usage: cache_holder [--cache SIZE] [--object SIZE] [--seconds N] [--name NAME]\n"
		"  SIZE in bytes, or with K/M/G; the broker is $MEMBROKER_SOCKET\n");
	exit(code);
}

static size_t parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	switch (*end) {
	case 'G': case 'g': v <<= 10; /* fall through */
	case 'M': case 'm': v <<= 10; /* fall through */
	case 'K': case 'k': v <<= 10; end++; break;
	default: break;
	}
	if (*end || v == 0)
		usage(2);
	return (size_t)v;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Add one object; 0 when the heap (the broker) has no memory for it. */
static int fill_one(struct cache *c, size_t object)
{
	struct object *o = ANR_MALLOC(c->heap, sizeof(*o) + object);

	if (o == NULL) {
		anr_oom_clear(c->heap);
		return 0;
	}
	o->size = sizeof(*o) + object;
	memset(o->data, (int)(c->objects & 0xff), object);
	cache_add(c, o);
	return 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cache", required_argument, NULL, 'c' },
		{ "object", required_argument, NULL, 'o' },
		{ "seconds", required_argument, NULL, 's' },
		{ "name", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct anr_malloc_config cfg;
	struct anr_malloc_stats st;
	struct anr_gc_result gr;
	struct cache c = { 0 };
	size_t object = DEFAULT_OBJECT;
	double seconds = 0, start;
	const char *name = "cache_holder";
	int ch, filled = 0;

	while ((ch = getopt_long(argc, argv, "c:o:s:n:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': c.target = parse_size(optarg); break;
		case 'o': object = parse_size(optarg); break;
		case 's': seconds = atof(optarg); break;
		case 'n': name = optarg; break;
		case 'h': usage(0); break;
		default: usage(2);
		}
	}
	if (c.target == 0)
		c.target = DEFAULT_CACHE;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	anr_config_init(&cfg);
	snprintf(cfg.name, sizeof(cfg.name), "%s", name);
	cfg.reserve = (uint64_t)c.target * 4;
	cfg.budget = 64 << 10;     /* a small allowance; the rest is quota */
	cfg.broker = 1;
	cfg.broker_chunk = 1 << 20;
	cfg.free_low = 0;
	cfg.free_high = 256 << 10;
	c.heap = anr_heap_create(&cfg);
	if (c.heap == NULL) {
		fprintf(stderr, "cache_holder: cannot create the heap: %s\n",
			strerror(errno));
		return 1;
	}
	anr_add_need_callback(c.heap, cache_need, &c);
	anr_add_mark_callback(c.heap, cache_mark, &c);
	printf("%s: filling a %.1f MiB cache with %.0f KiB objects\n", name,
	       c.target / MIB, object / 1024.0);

	start = now_s();
	while (!stop && (seconds <= 0 || now_s() - start < seconds)) {
		struct pollfd p = { anr_broker_fd(c.heap), POLLIN, 0 };

		/* Not connected (fd -1): dispatch reconnects when it is due. */
		if (poll(&p, 1, filled ? 100 : FILL_STEP_MS) > 0 || p.fd < 0)
			anr_broker_dispatch(c.heap);
		if (c.bytes + object <= c.target) {
			if (!fill_one(&c, object)) {
				/* The broker has nothing more for us: the cache
				 * stays at what it got instead of retrying. */
				printf("%s: no more quota: the cache stops at %.1f MiB\n",
				       name, c.bytes / MIB);
				c.target = c.bytes;
			}
		} else if (!filled) {
			anr_heap_stats(c.heap, &st);
			printf("%s: cache filled: %zu objects, %.1f MiB; holding %lld broker pages\n",
			       name, c.objects, c.bytes / MIB,
			       (long long)st.broker_balance);
			filled = 1;
		}
	}

	anr_heap_stats(c.heap, &st);
	printf("%s: done: %zu objects (%.1f MiB) in cache, %zu evicted, "
	       "%llu give-back requests, %.1f MiB given back\n", name,
	       c.objects, c.bytes / MIB, c.evicted,
	       (unsigned long long)st.give_back_requests,
	       st.given_back_bytes / MIB);
	anr_leak_report(c.heap, 1, &gr);
	cache_evict(&c, (size_t)-1);
	anr_heap_destroy(c.heap);
	return gr.unmarked_blocks == 0 ? 0 : 1;
}
