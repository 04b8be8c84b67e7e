/*
 * gc.c - mark-and-sweep collection.
 *
 * Mark bytes live in the block table, outside the heap.  The sweep clears
 * them, so marks set between collections count for the next one.  A
 * collection runs the subsystems' mark callbacks (anr_gc_mark), scans
 * the blocks marked before it began and the newly marked blocks for further pointers when gc_scan is on (the grey
 * list is threaded through the table's .next field, so it needs no
 * memory), and then sweeps in chunks of AM_CHUNK slots: the lock is
 * dropped between chunks and blocks are handed to the core outside it.
 * Blocks allocated during the collection in slots the sweep has not
 * reached yet are born marked; a block being reallocated counts as marked.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "am_internal.h"
#include "mb_log.h"

#define API __attribute__((visibility("default")))

/* Mark under h->lock; 1 new, 0 already, -1 not a block. */
int am_mark_locked(struct anr_malloc_heap *h, const void *p)
{
	void *base;
	uint32_t slot;
	struct am_slot *s;

	if (!anrc_owns(h->core, p) || am_lookup(h, p, 1, &base, &slot) != 0)
		return -1;
	s = &h->slots[slot];
	if (s->mark)
		return 0;
	s->mark = 1;
	if (h->cfg.gc_scan && h->gc_running && !s->grey) {
		s->grey = 1;
		s->next = h->grey_head;
		h->grey_head = slot;
	}
	return 1;
}

API int anr_gc_mark(anr_heap_t *h, const void *p)
{
	int rc;

	pthread_mutex_lock(&h->lock);
	rc = am_mark_locked(h, p);
	pthread_mutex_unlock(&h->lock);
	return rc;
}

/* Conservative scan of one block's user words for pointers into h. */
static void am_scan_block(struct anr_malloc_heap *h, uint32_t slot)
{
	unsigned char *base = h->slots[slot].base;
	struct am_hdr *hd = (struct am_hdr *)base;
	const unsigned char *u = base + hd->user_off;
	size_t words = hd->size / sizeof(uintptr_t);

	for (size_t i = 0; i < words; i++) {
		uintptr_t w;

		memcpy(&w, u + i * sizeof(w), sizeof(w));
		if (w != 0 && anrc_owns(h->core, (const void *)w))
			am_mark_locked(h, (const void *)w);
	}
}

/*
 * Blocks marked before the collection began (anr_gc_mark outside one:
 * "mark, then collect") were not put on the grey list; put them there so
 * that what they point to is scanned too.  AM_CHUNK slots per lock hold.
 */
static void am_grey_premarked(struct anr_malloc_heap *h)
{
	for (size_t i = 0;; i += AM_CHUNK) {
		pthread_mutex_lock(&h->lock);
		if (i >= h->slots_hw) {
			pthread_mutex_unlock(&h->lock);
			return;
		}
		size_t end = i + AM_CHUNK < h->slots_hw ? i + AM_CHUNK : h->slots_hw;
		for (size_t j = i; j < end; j++) {
			struct am_slot *s = &h->slots[j];

			if (s->state != AM_SLOT_LIVE || !s->mark || s->grey)
				continue;
			s->grey = 1;
			s->next = h->grey_head;
			h->grey_head = (uint32_t)j;
		}
		pthread_mutex_unlock(&h->lock);
	}
}

/* Drain the grey list one block per lock hold. */
static void am_scan(struct anr_malloc_heap *h)
{
	for (;;) {
		uint32_t slot;

		pthread_mutex_lock(&h->lock);
		slot = h->grey_head;
		if (slot == AM_NO_SLOT) {
			pthread_mutex_unlock(&h->lock);
			return;
		}
		h->grey_head = h->slots[slot].next;
		h->slots[slot].next = AM_NO_SLOT;
		h->slots[slot].grey = 0;
		if (h->slots[slot].state == AM_SLOT_LIVE)
			am_scan_block(h, slot);
		pthread_mutex_unlock(&h->lock);
	}
}

/* One leak line, then the block's stack named with map. */
static void am_leak_line(int fd, const char *heap, const struct anrc_modmap *map,
			 const struct am_row *d)
{
	char line[MB_LOG_LINE_MAX];
	size_t n;

	if (fd < 0)
		return;
	n = mb_format(line, sizeof(line), "leak: %p size=%zu alloc=#%llu caller=%p",
		      d->user, d->size, (unsigned long long)d->seq, d->caller);
	if (d->file)
		n += mb_format(line + n, sizeof(line) - n, " at %s:%d (%s)",
			       d->file, d->line, d->func ? d->func : "?");
	n += mb_format(line + n, sizeof(line) - n, " heap=%s\n", heap);
	mb_write_all(fd, line, n);
	am_frame_lines(fd, NULL, map, d->frames, d->nframes);
}

/* Sweep slots [i, i + AM_CHUNK): returns the next index, or 0 at the end. */
static size_t am_sweep_chunk(struct anr_malloc_heap *h, size_t i,
			     unsigned flags, int fd, const struct anrc_modmap *map,
			     struct anr_gc_result *r)
{
	struct am_row dead[AM_CHUNK];
	size_t nd = 0, end;

	pthread_mutex_lock(&h->lock);
	if (i >= h->slots_hw) {
		pthread_mutex_unlock(&h->lock);
		return 0;
	}
	end = i + AM_CHUNK < h->slots_hw ? i + AM_CHUNK : h->slots_hw;
	h->sweep_pos = end;
	for (size_t j = i; j < end; j++) {
		struct am_slot *s = &h->slots[j];
		struct am_hdr *hd = s->base;

		if (s->state == AM_SLOT_MOVING) {
			r->live_blocks++;
			continue;
		}
		if (s->state != AM_SLOT_LIVE)
			continue;
		if (s->mark) {
			s->mark = 0;
			r->live_blocks++;
			r->live_bytes += hd->size;
			continue;
		}
		am_row_fill(h, s->base, &dead[nd]);
		r->unmarked_blocks++;
		r->unmarked_bytes += hd->size;
		if (flags & ANR_GC_FREE) {
			h->live_blocks--;
			h->live_bytes -= hd->size;
			hd->magic = AM_MAGIC_FREED;
			am_release_slot(h, (uint32_t)j);
		}
		nd++;
	}
	pthread_mutex_unlock(&h->lock);
	for (size_t k = 0; k < nd; k++) {
		if (flags & ANR_GC_REPORT)
			am_leak_line(fd, h->cfg.name, map, &dead[k]);
		if (flags & ANR_GC_FREE) {
			anrc_free(h->core, dead[k].base);
			r->freed_blocks++;
			r->freed_bytes += dead[k].size;
		}
	}
	return end;
}

static void am_call_markers(struct anr_malloc_heap *h)
{
	struct am_callback cb[ANR_MAX_CALLBACKS];
	unsigned n;

	pthread_mutex_lock(&h->lock);
	n = h->n_mark;
	memcpy(cb, h->mark, n * sizeof(cb[0]));
	pthread_mutex_unlock(&h->lock);
	for (unsigned i = 0; i < n; i++)
		((anr_mark_fn)cb[i].fn)(cb[i].arg, h);
}

API int anr_gc_collect(anr_heap_t *h, unsigned flags, int fd,
		       struct anr_gc_result *res)
{
	struct anr_gc_result r;
	char line[MB_LOG_LINE_MAX];

	memset(&r, 0, sizeof(r));
	pthread_mutex_lock(&h->lock);
	if (h->gc_running) {
		pthread_mutex_unlock(&h->lock);
		errno = EBUSY;
		return -1;
	}
	am_drain_locked(h);
	h->gc_running = 1;
	h->sweep_pos = 0;
	h->grey_head = AM_NO_SLOT;
	pthread_mutex_unlock(&h->lock);

	if (h->cfg.gc_scan)
		am_grey_premarked(h);
	am_call_markers(h);
	if (h->cfg.gc_scan)
		am_scan(h);
	/* Leak lines name their frames: the mapped files are read once for
	 * the whole sweep. */
	int named = (flags & ANR_GC_REPORT) && fd >= 0 && h->cfg.stack_depth;
	const struct anrc_modmap *map = named ? am_map_acquire() : NULL;
	for (size_t i = 0; (i = am_sweep_chunk(h, i, flags, fd, map, &r)) != 0;)
		;
	if (named)
		am_map_release();

	pthread_mutex_lock(&h->lock);
	h->gc_running = 0;
	h->gc_runs++;
	h->gc_freed_blocks += r.freed_blocks;
	h->gc_freed_bytes += r.freed_bytes;
	pthread_mutex_unlock(&h->lock);
	if ((flags & ANR_GC_REPORT) && fd >= 0) {
		size_t n = mb_format(line, sizeof(line),
				     "collection of %s: %zu live blocks (%zu bytes), "
				     "%zu unmarked (%zu bytes), %zu freed\n",
				     h->cfg.name, r.live_blocks, r.live_bytes,
				     r.unmarked_blocks, r.unmarked_bytes,
				     r.freed_blocks);
		mb_write_all(fd, line, n);
	}
	if (res)
		*res = r;
	return 0;
}

API int anr_leak_report(anr_heap_t *h, int fd, struct anr_gc_result *res)
{
	return anr_gc_collect(h, ANR_GC_REPORT, fd, res);
}
