/*
 * gc.c - mark-and-sweep collection.
 *
 * Mark bytes live in the block records of the side table, outside the
 * heap.  The sweep clears them, so marks set between collections count
 * for the next one.  A collection runs the subsystems' mark callbacks
 * (anr_gc_mark), scans the blocks marked before it began and the newly
 * marked blocks for further pointers when gc_scan is on (the grey list is
 * threaded through the records' .next field, so it needs no memory), and
 * then sweeps in chunks of AM_CHUNK records: the lock is dropped between
 * chunks and blocks are handed to the core outside it.  Blocks allocated
 * during the collection in records the sweep has not reached yet are born
 * marked; a block being reallocated is never freed, can be marked, and is
 * scanned where it is (with gc_scan, a realloc keeps the old block until
 * its record points at the new one, alloc.c).  Frees queued while the
 * lock was taken (alloc.c, am_defer) are all done before the marks are
 * read and again before each chunk is swept, so a block the program freed
 * is neither reported nor freed a second time.  A plain heap keeps no
 * records and cannot collect.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "am_internal.h"
#include "mb_log.h"

#ifdef HAVE_VALGRIND_MEMCHECK_H
#include <valgrind/memcheck.h>
/* A conservative scan reads whatever a block holds, bytes the program
 * never wrote too: under memcheck the copy counts as defined. */
#define AM_VG_DEFINED(p, n) VALGRIND_MAKE_MEM_DEFINED((p), (n))
#else
#define AM_VG_DEFINED(p, n) do { } while (0)
#endif

#define API __attribute__((visibility("default")))
#define AM_SCAN_WORDS 64 /* words of a block copied per lock hold */

/* Mark the record of slot under the lock: 1 new, 0 already. */
static int am_mark_slot_locked(struct anr_malloc_heap *h, uint32_t slot)
{
	struct am_slot *s = &h->slots[slot];

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

/* 1 new, 0 already, -1 not a block.  Takes the lock itself (the core
 * finds the block first, without it). */
int am_mark(struct anr_malloc_heap *h, const void *p)
{
	uint32_t slot = am_lookup_interior(h, p, 1);
	int rc;

	if (slot == AM_NO_SLOT)
		return -1;
	rc = am_mark_slot_locked(h, slot);
	am_unlock(h);
	return rc;
}

API int anr_gc_mark(anr_heap_t *h, const void *p)
{
	return am_mark(h, p);
}

/*
 * Conservative scan of one block's words for pointers into h.  The words
 * are copied a few at a time under the lock (the block cannot go while
 * its record is live or moving), then each candidate is marked without
 * it.  A realloc that ends between two copies moved the block (the same
 * allocation number, the words at the same offsets): the scan goes on in
 * the new one.
 */
static void am_scan_block(struct anr_malloc_heap *h, uint32_t slot, uint64_t seq)
{
	uintptr_t w[AM_SCAN_WORDS];

	for (size_t i = 0;; i += AM_SCAN_WORDS) {
		const struct am_slot *s = &h->slots[slot];
		size_t words, n;

		am_lock(h);
		words = s->size / sizeof(uintptr_t);
		if (s->state == AM_SLOT_FREE || s->seq != seq || i >= words) {
			am_unlock(h);
			return;
		}
		n = words - i < AM_SCAN_WORDS ? words - i : AM_SCAN_WORDS;
		memcpy(w, (const uintptr_t *)AM_USER(s) + i, n * sizeof(w[0]));
		am_unlock(h);
		AM_VG_DEFINED(w, n * sizeof(w[0]));
		for (size_t k = 0; k < n; k++)
			if (w[k] != 0 && anrc_owns(h->core, (const void *)w[k]))
				am_mark(h, (const void *)w[k]);
	}
}

/*
 * Blocks marked before the collection began (anr_gc_mark outside one:
 * "mark, then collect") were not put on the grey list; put them there so
 * that what they point to is scanned too.  AM_CHUNK records per lock hold.
 */
static void am_grey_premarked(struct anr_malloc_heap *h)
{
	for (size_t i = 0;; i += AM_CHUNK) {
		am_lock(h);
		if (i >= h->slots_hw) {
			am_unlock(h);
			return;
		}
		size_t end = i + AM_CHUNK < h->slots_hw ? i + AM_CHUNK : h->slots_hw;
		for (size_t j = i; j < end; j++) {
			struct am_slot *s = &h->slots[j];

			if (s->state == AM_SLOT_FREE || !s->mark || s->grey)
				continue;
			s->grey = 1;
			s->next = h->grey_head;
			h->grey_head = (uint32_t)j;
		}
		am_unlock(h);
	}
}

/* Drain the grey list one block at a time. */
static void am_scan(struct anr_malloc_heap *h)
{
	for (;;) {
		uint32_t slot;
		uint64_t seq = 0;
		int live;

		am_lock(h);
		slot = h->grey_head;
		if (slot == AM_NO_SLOT) {
			am_unlock(h);
			return;
		}
		h->grey_head = h->slots[slot].next;
		h->slots[slot].next = AM_NO_SLOT;
		h->slots[slot].grey = 0;
		live = h->slots[slot].state != AM_SLOT_FREE;
		if (live)
			seq = h->slots[slot].seq;
		am_unlock(h);
		if (live)
			am_scan_block(h, slot, seq);
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

/*
 * Do the frees queued while the lock was taken until a hold of the lock
 * finds none, and return holding it.  The queue has AM_DEFER_CELLS cells
 * and fills only while another thread holds the lock, so this takes the
 * lock at most AM_DRAIN_HOLDS times; a queue still refilled then is left
 * to the next chunk.  A free still being queued (its cell not yet
 * written) has not returned to the program: it races with the collection.
 */
#define AM_DRAIN_HOLDS (AM_DEFER_CELLS / AM_CHUNK + 2)
static void am_drain_all_and_lock(struct anr_malloc_heap *h)
{
	struct am_drained d;

	for (unsigned k = 1;; k++) {
		am_lock(h);
		am_drain_locked(h, &d);
		if (d.n == 0 || k == AM_DRAIN_HOLDS)
			break;
		am_unlock(h);
		am_drained_free(h, &d);
	}
	if (d.n > 0) {
		am_unlock(h);
		am_drained_free(h, &d);
		am_lock(h);
	}
}

/* Sweep records [i, i + AM_CHUNK): returns the next index, or 0 at the end. */
static size_t am_sweep_chunk(struct anr_malloc_heap *h, size_t i,
			     unsigned flags, int fd, const struct anrc_modmap *map,
			     struct anr_gc_result *r)
{
	struct am_row dead[AM_CHUNK];
	size_t nd = 0, end;

	/* A free queued since the last chunk is the program's: its block
	 * must not be reported or freed here. */
	am_drain_all_and_lock(h);
	if (i >= h->slots_hw) {
		am_unlock(h);
		return 0;
	}
	end = i + AM_CHUNK < h->slots_hw ? i + AM_CHUNK : h->slots_hw;
	h->sweep_pos = end;
	for (size_t j = i; j < end; j++) {
		struct am_slot *s = &h->slots[j];

		if (s->state == AM_SLOT_MOVING) {
			s->mark = 0;
			r->live_blocks++;
			r->live_bytes += s->size;
			continue;
		}
		if (s->state != AM_SLOT_LIVE)
			continue;
		if (s->mark) {
			s->mark = 0;
			r->live_blocks++;
			r->live_bytes += s->size;
			continue;
		}
		am_row_fill(h, (uint32_t)j, &dead[nd]);
		r->unmarked_blocks++;
		r->unmarked_bytes += s->size;
		if (flags & ANR_GC_FREE)
			am_release_slot_locked(h, (uint32_t)j);
		nd++;
	}
	am_unlock(h);
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

	am_lock(h);
	n = h->n_mark;
	memcpy(cb, h->mark, n * sizeof(cb[0]));
	am_unlock(h);
	for (unsigned i = 0; i < n; i++)
		((anr_mark_fn)cb[i].fn)(cb[i].arg, h);
}

API int anr_gc_collect(anr_heap_t *h, unsigned flags, int fd,
		       struct anr_gc_result *res)
{
	struct anr_gc_result r;
	char line[MB_LOG_LINE_MAX];

	memset(&r, 0, sizeof(r));
	if (!h->track) {
		errno = ENOTSUP;
		return -1;
	}
	am_drain_all_and_lock(h);
	if (h->gc_running) {
		am_unlock(h);
		errno = EBUSY;
		return -1;
	}
	h->gc_running = 1;
	h->sweep_pos = 0;
	h->grey_head = AM_NO_SLOT;
	am_unlock(h);

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

	am_lock(h);
	h->gc_running = 0;
	h->gc_runs++;
	h->gc_freed_blocks += r.freed_blocks;
	h->gc_freed_bytes += r.freed_bytes;
	am_unlock(h);
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
