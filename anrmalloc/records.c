/*
 * records.c - the side table: one record per block, out of band.
 *
 * Records (struct am_slot, 64 bytes), hash chains, call stacks and client
 * debug info sit in one mapping made when the heap is created
 * (MAP_NORESERVE: pages are touched as records are used, and freed
 * records are reused last-freed first, so the touched part stays small).
 * A record is found by its user pointer through the hash, whose chains
 * are threaded through the records (slot + 1, 0 ends a chain, so that the
 * untouched mapping is an empty table), or from any address inside a
 * block by asking the core for the block's start.  Everything here but
 * the mapping and am_lookup_interior runs under the heap lock.
 */
#include "config.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "am_internal.h"

#define AM_HASH_MUL UINT64_C(0x9e3779b97f4a7c15) /* 2^64 / golden ratio */

/* The mapping for max_blocks records; 0, or -1 if it cannot be made. */
int am_side_map(struct anr_malloc_heap *h)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t nb = 2, recs, buckets, frames, dinfo;
	unsigned bits = 1;
	void *m;

	h->slots_cap = h->cfg.max_blocks;
	while (nb < h->slots_cap)
		nb *= 2, bits++;
	h->bucket_shift = 64 - bits;
	h->dinfo_stride = am_round(h->cfg.debug_info_size, sizeof(uint64_t));
	recs = am_round(h->slots_cap * sizeof(struct am_slot), pg);
	buckets = am_round(nb * sizeof(uint32_t), pg);
	frames = am_round(h->slots_cap * h->cfg.stack_depth * sizeof(uintptr_t), pg);
	dinfo = am_round(h->slots_cap * h->dinfo_stride, pg);
	h->side_map = recs + buckets + frames + dinfo;
	m = mmap(NULL, h->side_map, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return -1;
	h->side = m;
	h->slots = m;
	h->bucket = (uint32_t *)((char *)m + recs);
	h->frames = (uintptr_t *)((char *)m + recs + buckets);
	h->dinfo = (unsigned char *)m + recs + buckets + frames;
	return 0;
}

void am_side_unmap(struct anr_malloc_heap *h)
{
	if (h->side)
		munmap(h->side, h->side_map);
	h->side = NULL;
}

static uint32_t am_hash(const struct anr_malloc_heap *h, const void *user)
{
	uint64_t k = (uint64_t)(uintptr_t)user / ANR_ALIGN;

	return (uint32_t)((k * AM_HASH_MUL) >> h->bucket_shift);
}

uint32_t am_find_locked(struct anr_malloc_heap *h, const void *user)
{
	for (uint32_t e = h->bucket[am_hash(h, user)]; e != AM_NIL;
	     e = h->slots[e - 1].hnext)
		if (AM_USER(&h->slots[e - 1]) == user)
			return e - 1;
	return AM_NO_SLOT;
}

/*
 * The record of the core block at base (bsize bytes, from anrc_block_of):
 * the user pointer is base + front, or base + align for a block aligned
 * past 16 bytes with guards on.
 */
uint32_t am_find_base_locked(struct anr_malloc_heap *h, const void *base,
			     size_t bsize)
{
	const char *b = base;
	uint32_t s = am_find_locked(h, b + h->front);

	for (size_t off = 2 * ANR_ALIGN; s == AM_NO_SLOT && h->front && off < bsize;
	     off *= 2)
		s = am_find_locked(h, b + off);
	if (s != AM_NO_SLOT && h->slots[s].base != base)
		s = AM_NO_SLOT;
	return s;
}

void am_hash_add_locked(struct anr_malloc_heap *h, uint32_t s)
{
	uint32_t *b = &h->bucket[am_hash(h, AM_USER(&h->slots[s]))];

	h->slots[s].hnext = *b;
	*b = s + 1;
}

void am_hash_del_locked(struct anr_malloc_heap *h, uint32_t s)
{
	uint32_t *e = &h->bucket[am_hash(h, AM_USER(&h->slots[s]))];

	while (*e != AM_NIL && *e != s + 1)
		e = &h->slots[*e - 1].hnext;
	if (*e == s + 1)
		*e = h->slots[s].hnext;
	h->slots[s].hnext = AM_NIL;
}

uint32_t am_take_slot_locked(struct anr_malloc_heap *h)
{
	uint32_t s;

	if (h->free_head != AM_NO_SLOT) {
		s = h->free_head;
		h->free_head = h->slots[s].next;
	} else if (h->slots_hw < h->slots_cap) {
		s = (uint32_t)h->slots_hw++;
	} else {
		return AM_NO_SLOT;
	}
	memset(&h->slots[s], 0, sizeof(h->slots[s]));
	h->slots[s].next = AM_NO_SLOT;
	return s;
}

/* Out of the hash and onto the free list. */
void am_release_slot_locked(struct anr_malloc_heap *h, uint32_t s)
{
	struct am_slot *r = &h->slots[s];

	am_hash_del_locked(h, s);
	h->live_blocks--;
	h->live_bytes -= r->size;
	r->state = AM_SLOT_FREE;
	r->base = NULL;
	r->mark = 0;
	r->next = h->free_head;
	h->free_head = s;
}

size_t am_frames(const struct anr_malloc_heap *h, uint32_t slot,
		 const uintptr_t **frames)
{
	const uintptr_t *f = h->frames + (size_t)slot * h->cfg.stack_depth;
	size_t n = 0;

	while (n < h->cfg.stack_depth && f[n] != 0)
		n++;
	*frames = f;
	return n;
}

/*
 * The record of the live block that contains p (any address inside it),
 * with the lock held on success; AM_NO_SLOT (lock not held) otherwise.
 * moving: a block whose realloc is in progress counts too (the collector
 * marks it; its record keeps the mark).  The core finds the block first,
 * without our lock held.
 */
uint32_t am_lookup_interior(struct anr_malloc_heap *h, const void *p, int moving)
{
	size_t bsize = 0;
	void *base;
	uint32_t slot;

	if (!h->track || !anrc_owns(h->core, p))
		return AM_NO_SLOT;
	base = anrc_block_of(h->core, p, &bsize);
	if (base == NULL)
		return AM_NO_SLOT;
	am_lock(h);
	slot = am_find_base_locked(h, base, bsize);
	if (slot == AM_NO_SLOT || (h->slots[slot].state != AM_SLOT_LIVE &&
				   !(moving && h->slots[slot].state == AM_SLOT_MOVING))) {
		am_unlock(h);
		return AM_NO_SLOT;
	}
	return slot;
}

