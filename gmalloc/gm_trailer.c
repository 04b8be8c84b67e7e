/*
 * gm_trailer.c - what a block carries after its data when guard or
 * backtrace_depth is on, and the report of live blocks by call site.
 *
 * The trailer lies at the end of the block's usable size:
 *
 *   [data: size bytes][fill, guard on][frames: depth words][size][canary]
 *
 * The size word and the canary are mixed with the block's address, so a
 * block copied elsewhere does not look valid, and with two secrets drawn
 * once per process at init (getrandom; never redrawn, so a fork child
 * still reads its parent's blocks), so an overflow cannot write a
 * trailer that looks valid without first reading one.  free and realloc check
 * them (and the fill, with guard on): a write past the end of the block
 * is reported with its address and size, then abort().
 *
 * The frames are return addresses captured at allocation by anrcore's
 * unwinder, starting at the program's call into the malloc family.
 * Capture runs after the core has released its lock; the unwinder does
 * not call malloc on Debian 12's libgcc and glibc, and if it ever does,
 * that inner call simply gets no stack (anrc_backtrace does not recurse).
 */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "gm_internal.h"
#include "mb_log.h"

#define GM_GUARD_FILL 0xfd
#define GM_TRAILER_WORDS 16     /* size word + canary */
#define GM_AT_RANDOM_BYTES 16

size_t gm_trailer_size;
static size_t gm_depth;
/* Drawn once by gm_trailer_setup, before any block has a trailer. */
static uint64_t gm_size_key, gm_canary_key;

/* A 64-bit mixing function (the finaliser of splitmix64). */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/*
 * The secrets come from getrandom without blocking.  Early in boot the
 * kernel may have no entropy yet: then the kernel's per-process random
 * bytes (AT_RANDOM) are used, passed through mix64 so that the values
 * glibc derives from them (the stack protector's canary) cannot be read
 * back from a trailer.  No allocation either way.
 */
static void draw_secrets(void)
{
	uint64_t k[2];
	ssize_t n;

	do
		n = getrandom(k, sizeof(k), GRND_NONBLOCK);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(k)) {
		const unsigned char *r = (const unsigned char *)getauxval(AT_RANDOM);
		uint64_t a = 0, b = 0;

		if (r) {
			memcpy(&a, r, sizeof(a));
			memcpy(&b, r + sizeof(a), GM_AT_RANDOM_BYTES - sizeof(a));
		}
		a ^= (uint64_t)(uintptr_t)&gm_size_key ^ (uint64_t)getpid();
		b ^= (uint64_t)time(NULL);
		k[0] = mix64(a ^ mix64(b));
		k[1] = mix64(k[0] ^ b);
	}
	gm_size_key = k[0];
	gm_canary_key = k[1];
}

void gm_trailer_setup(void)
{
	gm_depth = (size_t)gm_cfg.backtrace_depth;
	if (gm_cfg.guard || gm_depth) {
		draw_secrets();
		gm_trailer_size = GM_TRAILER_WORDS + gm_depth * sizeof(uintptr_t);
	}
}

static uint64_t size_word(const void *p, uint64_t size)
{
	return size ^ gm_size_key ^ (uint64_t)(uintptr_t)p;
}

static uint64_t canary_word(const void *p)
{
	return gm_canary_key ^ (uint64_t)(uintptr_t)p;
}

void gm_trailer_set(void *p, size_t size, size_t usable, const void *caller)
{
	unsigned char *b = p;
	size_t words = usable - GM_TRAILER_WORDS;
	size_t frames = words - gm_depth * sizeof(uintptr_t);
	uint64_t w[2];

	if (gm_cfg.guard)
		memset(b + size, GM_GUARD_FILL, frames - size);
	/* usable is a multiple of 16 and p is 16-aligned: the frames are
	 * word-aligned. */
	if (gm_depth)
		(void)anrc_backtrace((uintptr_t *)(void *)(b + frames), gm_depth, caller);
	w[0] = size_word(p, size);
	w[1] = canary_word(p);
	memcpy(b + words, w, sizeof(w));
}

static void gm_trailer_fail(const void *p, size_t size, const char *what)
{
	mb_log(MB_LOG_ERR, "%s of block %p (%zu bytes) %s: write past its end",
	       gm_cfg.guard ? "guard words" : "trailer", p, size, what);
	abort();
}

/* The requested size if the trailer is intact, else SIZE_MAX. */
static size_t trailer_size_of(const void *p, size_t usable)
{
	uint64_t w[2], size;

	if (usable < gm_trailer_size)
		return SIZE_MAX;
	memcpy(w, (const unsigned char *)p + usable - GM_TRAILER_WORDS, sizeof(w));
	size = w[0] ^ gm_size_key ^ (uint64_t)(uintptr_t)p;
	if (w[1] != canary_word(p) || size > usable - gm_trailer_size)
		return SIZE_MAX;
	return (size_t)size;
}

size_t gm_trailer_check(void *p, size_t usable)
{
	const unsigned char *b = p;
	size_t size = trailer_size_of(p, usable);
	size_t fill_end;

	if (usable < gm_trailer_size)
		gm_trailer_fail(p, usable, "missing");
	if (size == SIZE_MAX)
		gm_trailer_fail(p, usable - gm_trailer_size, "overwritten");
	if (gm_cfg.guard) {
		fill_end = usable - gm_trailer_size;
		for (size_t i = size; i < fill_end; i++)
			if (b[i] != GM_GUARD_FILL)
				gm_trailer_fail(p, size, "overwritten");
	}
	return size;
}

/* ---- live blocks by call site ---- */

#define GM_SITES 1024           /* distinct stacks counted */
#define GM_REPORT_SITES 20      /* listed, largest first */
#define GM_WALK_TRIES 50        /* the heap may be busy for a moment */
#define GM_WALK_WAIT_NS 10000000L

struct gm_site {
	uint64_t bytes, blocks;
	int listed;
	uintptr_t frames[GM_BT_MAX];
};

/* The report's working storage is static (it may run in a signal
 * handler, where nothing can be allocated); one report at a time. */
static struct gm_site gm_sites[GM_SITES];
static struct anrc_modmap gm_map;
static atomic_flag gm_sites_busy = ATOMIC_FLAG_INIT;

struct gm_tally {
	size_t used;                 /* sites in the table */
	uint64_t blocks, bytes;
	uint64_t other_blocks, other_bytes;     /* the table was full */
	uint64_t bad;                /* trailer overwritten */
};

static size_t site_hash(const uintptr_t *f)
{
	uint64_t h = 0x243f6a8885a308d3ULL;

	for (size_t i = 0; i < gm_depth; i++) {
		h ^= (uint64_t)f[i];
		h *= 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	return (size_t)h;
}

static int tally_block(void *arg, void *block, size_t usable)
{
	struct gm_tally *t = arg;
	const uintptr_t *f;
	size_t size = trailer_size_of(block, usable), i;

	if (size == SIZE_MAX) {
		t->bad++;
		return 0;
	}
	t->blocks++;
	t->bytes += size;
	f = (const uintptr_t *)(const void *)((const unsigned char *)block + usable -
					      GM_TRAILER_WORDS - gm_depth * sizeof(uintptr_t));
	i = site_hash(f) % GM_SITES;
	for (size_t probe = 0; probe < GM_SITES; probe++, i = (i + 1) % GM_SITES) {
		struct gm_site *s = &gm_sites[i];
		if (s->blocks == 0) {
			if (t->used >= GM_SITES * 3 / 4)
				break;  /* keep probing short */
			memcpy(s->frames, f, gm_depth * sizeof(uintptr_t));
			t->used++;
		} else if (memcmp(s->frames, f, gm_depth * sizeof(uintptr_t)) != 0) {
			continue;
		}
		s->blocks++;
		s->bytes += size;
		return 0;
	}
	t->other_blocks++;
	t->other_bytes += size;
	return 0;
}

static int walk_with_retries(struct anrc_heap *h, struct gm_tally *t)
{
	for (int i = 0; i < GM_WALK_TRIES; i++) {
		int busy;
		struct timespec ts = { 0, GM_WALK_WAIT_NS };

		(void)anrc_walk_try(h, tally_block, t, &busy);
		if (!busy)
			return 0;
		/* Held by the thread this report interrupted, or by another
		 * thread for a moment: wait a little, never block. */
		nanosleep(&ts, NULL);
	}
	return -1;
}

static void print_site(int fd, const struct anrc_modmap *map, const struct gm_site *s)
{
	char line[MB_LOG_LINE_MAX];
	size_t n;

	n = mb_format(line, sizeof(line), "  %llu bytes in %llu blocks\n",
		      (unsigned long long)s->bytes, (unsigned long long)s->blocks);
	(void)mb_write_all(fd, line, n);
	for (size_t i = 0; i < gm_depth && s->frames[i]; i++) {
		n = mb_format(line, sizeof(line), "    #%zu ", i);
		n += anrc_where(map, s->frames[i], line + n, sizeof(line) - n - 1);
		line[n++] = '\n';
		(void)mb_write_all(fd, line, n);
	}
}

void gm_trailer_report(int fd)
{
	struct anrc_heap *h = gm_heap_ptr;
	struct gm_tally t;
	const struct anrc_modmap *map;
	char line[MB_LOG_LINE_MAX];
	size_t n;

	if (!h || gm_depth == 0)
		return;
	if (atomic_flag_test_and_set(&gm_sites_busy)) {
		n = mb_format(line, sizeof(line),
			      "gmalloc: live blocks by call site: another report is running\n");
		(void)mb_write_all(fd, line, n);
		return;
	}
	memset(&t, 0, sizeof(t));
	memset(gm_sites, 0, sizeof(gm_sites));
	if (walk_with_retries(h, &t) != 0) {
		n = mb_format(line, sizeof(line),
			      "gmalloc: live blocks by call site: heap busy, not listed\n");
		(void)mb_write_all(fd, line, n);
		atomic_flag_clear(&gm_sites_busy);
		return;
	}
	map = anrc_modmap_load(&gm_map) == 0 ? &gm_map : NULL;
	n = mb_format(line, sizeof(line),
		      "gmalloc: live blocks by call site (backtrace_depth %zu): "
		      "%llu blocks, %llu bytes, %zu sites; the largest first:\n",
		      gm_depth, (unsigned long long)t.blocks,
		      (unsigned long long)t.bytes, t.used);
	(void)mb_write_all(fd, line, n);
	for (int k = 0; k < GM_REPORT_SITES; k++) {
		struct gm_site *best = NULL;
		for (size_t i = 0; i < GM_SITES; i++) {
			struct gm_site *s = &gm_sites[i];
			if (s->blocks && !s->listed && (!best || s->bytes > best->bytes))
				best = s;
		}
		if (!best)
			break;
		best->listed = 1;
		print_site(fd, map, best);
	}
	if (t.used > GM_REPORT_SITES) {
		n = mb_format(line, sizeof(line), "  ... %zu smaller sites not listed\n",
			      t.used - GM_REPORT_SITES);
		(void)mb_write_all(fd, line, n);
	}
	if (t.other_blocks) {
		n = mb_format(line, sizeof(line),
			      "  %llu bytes in %llu blocks at sites beyond the table's %d\n",
			      (unsigned long long)t.other_bytes,
			      (unsigned long long)t.other_blocks, GM_SITES);
		(void)mb_write_all(fd, line, n);
	}
	if (t.bad) {
		n = mb_format(line, sizeof(line),
			      "  %llu blocks with an overwritten trailer (write past the end)\n",
			      (unsigned long long)t.bad);
		(void)mb_write_all(fd, line, n);
	}
	atomic_flag_clear(&gm_sites_busy);
}
