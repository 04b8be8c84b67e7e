/*
 * heap.c - one heap: creation, locking, deferred frees and the public calls.
 *
 * Data structure.  A heap is one reservation made by anrc_create():
 *
 *   base                                                     base + reserve
 *   | struct anrc_heap | page bitmaps | owners | page map | slab bitmaps |G| data ...|
 *   |<----------------- metadata (never handed out) -------->| |<- npages ---->|
 *
 * G is one PROT_NONE guard page set up at creation, so that running off
 * the front of the first block faults instead of reaching the metadata.
 * Nothing about a block is stored next to it: the page map has one
 * 16-byte entry per data page, slabs keep their allocation bitmaps and
 * their remote-free bitmaps in two arrays indexed by the slab's first page
 * (with a byte naming the owning thread heap), and four bitmaps of one
 * bit per page (interleaved, see struct anrc_bm2) say which pages may be
 * resident, which of those are free (returnable), and which pages start
 * a live span or a free one.  A user overrun can damage user data but
 * never the allocator's bookkeeping, and every pointer given to free()
 * is judged from that bookkeeping alone.  The metadata costs about 2 % of
 * the reservation in address space; it becomes resident only for pages
 * that are used.
 *
 *   data page:   | obj | obj | obj | ... | obj |tail|   (a one-page slab)
 *   page map:    [SLAB cls=3 nfree=17 next/prev: partial list or owner's ring]
 *   slab bitmap: 1101110...  (one bit per object, out of band)
 *
 * The data pages are cut into spans (spans.c): free spans, large blocks
 * (requests above ANR_SLAB_MAX, rounded up to pages, pointer = first
 * page) and slabs of small objects (slab.c).  In a large heap slabs come
 * from the first sixteenth of the pages and blocks from the rest (zones,
 * spans.c).  Pages are charged to the budget when a span is handed out
 * and become returnable when it is given back (release.c).
 *
 * Invariants (checked by anrc_check()):
 *  1. The spans tile the data pages; no span crosses zone_split, and no
 *     two free spans are adjacent but the two that may meet there.
 *  2. Page map: the first page of every span says its kind and length; the
 *     last page of a free span of >= 2 pages says FREE_TAIL and the length
 *     (unless the span ends a zone);
 *     the other pages of a slab say SLAB_BODY and their distance to its
 *     first page; all other entries are NONE.
 *  3. Every free span is on exactly the free list its length maps to, and
 *     the list bitmaps say which lists are non-empty.
 *  4. A slab is shared (owner 0) or owned by one thread heap (theap.c).
 *     A shared slab's bitmap has one set bit per live object plus the bits
 *     past its last object; nfree counts the clear ones; the shared slabs
 *     with nfree > 0 are exactly those on their class's partial list; an
 *     entirely free shared slab is its class's empty_slab, and those hold
 *     empty_pages pages.  An owned slab is on its owner's ring for its
 *     class, and only the owner changes its bitmap and nfree; its nfree
 *     leaves out the free objects of the bitmap word its owner holds for
 *     malloc (the current slab's, theap.c).  An object is live when its
 *     bit is set and its remote-free bit (rfree) is not.
 *  5. resident = pages of live spans + dirty pages + pages being given back
 *     (TRIM spans, outside the free lists while madvise runs unlocked);
 *     dirty pages are exactly the resident pages of free spans; resident <=
 *     budget except after the budget was lowered below what is live.  The
 *     resident bits are set for all these pages but the holes of owned
 *     slabs (theap.c), which slab_holes counts (and each theap its own).
 *  6. heads has a bit exactly at the first page of each live span, fheads
 *     exactly at the first page of each free span; each summary level of
 *     these bitmaps says which words of the level below are not zero.
 *
 * Locking.  Small objects go through the calling thread's theap
 * (theap.c): allocation and free by the owning thread take no lock and do
 * no atomic read-modify-write, a free by another thread is one fetch_or.
 * Everything else - spans, shared slabs, pages, the budget, a theap
 * taking or giving back a slab - is guarded by one mutex per heap; there
 * is no global state but a counter that gives each heap a unique id.  The
 * lock is never held while the need-more-memory hook runs, nor while
 * pages go back to the kernel after a free (release.c).  A free that finds
 * the lock taken does not wait: it puts the pointer in a lock-free ring
 * of slots in the heap state and a later lock holder frees it (see
 * defer()).  When the ring is full the free waits for the lock: nothing
 * is ever written into a block before the pointer has been judged.
 *
 * Bounded work.  No call does work that grows with the heap or with
 * other threads' backlog: a lock holder runs at most ANR_DRAIN_MAX queued
 * frees, gives back at most one slice of ANR_TRIM_SLICE_PAGES pages (plus
 * the pages of a block it freed itself) in at most ANR_TRIM_BATCH madvise
 * calls, and every bitmap search looks at two words per level of the
 * multi-level bitmaps.  ANR_CALL_STEPS_MAX is the bound; the steps test
 * counts it over a long random workload.  Explicit calls (anrc_trim,
 * anrc_release_free, lowering the budget or the marks, statistics, walks,
 * checks) and a thread's exit may do more.
 */
#include "config.h"

#include "anrcore_internal.h"
#include "theap_fast.h"
#include "vg.h"

#include "mb_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CACHE_LINE ANR_CACHE_LINE
#define MIN_DATA_PAGES 16

__thread uint64_t anrc_lock_count __attribute__((tls_model("initial-exec")));

static size_t
round_up(size_t v, size_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static size_t
words_for(size_t bits)
{
	return (bits + 63) / 64;
}

struct layout {
	size_t pb[ANR_BM_LEVELS]; /* each level of the page bitmaps */
	size_t owner, pm, slabbits;
	size_t data; /* offset of the first data page */
};

/*
 * What a small heap uses of each array is its start, so the arrays a
 * new heap writes come first, the largest last: the heap state, the page
 * bitmaps' summary levels (highest first, so that the few words of the
 * top levels share a page with the start of the level below) and their
 * level-0 words, the owners, the page map, the slab bitmaps.
 */
static size_t
plan(size_t npages, size_t page, unsigned bmw, struct layout *l)
{
	size_t nw[ANR_BM_LEVELS], off;
	unsigned levels = anrc_bm2_shape(npages, nw);

	*l = (struct layout){ 0 };
	off = round_up(sizeof(struct anrc_heap), CACHE_LINE);
	for (unsigned i = levels; i-- > 0;) {
		l->pb[i] = off;
		off += ANR_PB_WAYS * nw[i] * sizeof(uint64_t);
	}
	/* Each array from a page of its own: its pages go back with the
	 * free runs they describe (release.c), none shared with another. */
	l->owner = off = round_up(off, page);
	l->pm = off = round_up(off + npages, page);
	off = round_up(off + npages * sizeof(struct anrc_page), CACHE_LINE);
	/* Both bitmaps of a group of ANR_BITS_GROUP pages fill one page. */
	l->slabbits = round_up(off, page);
	off = l->slabbits + round_up(npages, ANR_BITS_GROUP) * 2 * bmw * sizeof(uint64_t);
	l->data = round_up(off, page) + page; /* one guard page */
	return l->data + npages * page;
}

/* The most data pages whose metadata fits in the reservation with them. */
static size_t
fit_pages(size_t reserve, size_t page, unsigned bmw, struct layout *l)
{
	size_t lo = 0, hi = reserve / page;

	if (hi > (size_t)UINT32_MAX - 1)
		hi = (size_t)UINT32_MAX - 1;
	while (lo < hi) {
		size_t mid = lo + (hi - lo + 1) / 2;
		if (plan(mid, page, bmw, l) <= reserve)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

/*
 * The heap lock, priority-inheriting when configured: a real-time thread
 * waiting for it then lends its priority to the holder.  At creation and
 * again in a fork child.
 */
static int
heap_lock_init(struct anrc_heap *h)
{
	pthread_mutexattr_t a;
	int rc;

	if (pthread_mutexattr_init(&a) != 0)
		return -1;
	if (!h->lock_pi)
		rc = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
	else
		rc = pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT);
	if (rc == 0)
		rc = pthread_mutex_init(&h->lock, &a);
	pthread_mutexattr_destroy(&a);
	return rc;
}

/*
 * Only valgrind tools that follow heap blocks want the client requests
 * (memcheck, helgrind, drd, massif, dhat: each preloads its own library);
 * under callgrind or cachegrind they would only add to what is measured.
 */
static int
vg_tool_tracks_blocks(void)
{
	static const char *const tools[] = {
		"vgpreload_memcheck", "vgpreload_helgrind", "vgpreload_drd",
		"vgpreload_massif", "vgpreload_dhat",
	};
	const char *pre = getenv("LD_PRELOAD");

	if (pre == NULL)
		return 1;
	for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
		if (strstr(pre, tools[i]) != NULL)
			return 1;
	return strstr(pre, "vgpreload_") == NULL;
}

struct anrc_heap *
anrc_create(const struct anrc_config *cfg)
{
	struct anrc_config c = { 0 };
	struct anrc_heap *h;
	struct layout l;
	uint64_t *pb[ANR_BM_LEVELS];
	long ps = sysconf(_SC_PAGESIZE);
	size_t page, reserve, npages;
	unsigned bmw;
	void *base;

	if (cfg != NULL)
		c = *cfg;
	if (ps <= 0 || (ps & (ps - 1)) != 0) {
		errno = EINVAL;
		return NULL;
	}
	page = (size_t)ps;
	reserve = c.reserve != 0 ? c.reserve : ANR_DEFAULT_RESERVE;
	reserve &= ~(page - 1);
	bmw = (unsigned)words_for(page / ANR_ALIGN);
	npages = fit_pages(reserve, page, bmw, &l);
	if (npages < MIN_DATA_PAGES) {
		errno = EINVAL;
		return NULL;
	}
	reserve = plan(npages, page, bmw, &l);
	base = mmap(NULL, reserve, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return NULL;
	/* The guard page in front of the data: the only protection change,
	 * made before the heap is used. */
	if (mprotect((char *)base + l.data - page, page, PROT_NONE) != 0)
		mb_log(MB_LOG_WARNING, "anrcore: no guard page (error %d)", errno);

	h = base;
	h->base = base;
	h->reserve = reserve;
	h->data = (char *)base + l.data;
	h->page = page;
	h->page_shift = (unsigned)__builtin_ctzl(page);
	h->npages = (uint32_t)npages;
	h->pm = (struct anrc_page *)((char *)base + l.pm);
	h->slabbits = (uint64_t *)((char *)base + l.slabbits);
	h->owner = (uint8_t *)base + l.owner;
	h->bmw = bmw;
	for (unsigned i = 0; i < ANR_BM_LEVELS; i++)
		pb[i] = (uint64_t *)((char *)base + l.pb[i]);
	h->resident = pb[0] + ANR_PB_RESIDENT;
	anrc_bm2_place(&h->dirty, pb, ANR_PB_DIRTY, npages);
	anrc_bm2_place(&h->heads, pb, ANR_PB_HEADS, npages);
	anrc_bm2_place(&h->fheads, pb, ANR_PB_FHEADS, npages);
	h->bad_free = c.bad_free;
	if (h->bad_free != ANR_BAD_FREE_REPORT && h->bad_free != ANR_BAD_FREE_IGNORE)
		h->bad_free = ANR_BAD_FREE_ABORT;
	h->trash_free = c.trash_free;
	h->vg = c.valgrind && ANR_VG_RUNNING() && vg_tool_tracks_blocks();
	h->fast_free = !h->trash_free && !h->vg;
	mb_format(h->name, sizeof(h->name), "%s", c.name != NULL ? c.name : "anrcore");
	h->budget = c.budget != 0 ? c.budget : npages * page;
	h->free_high = c.free_high != 0 ? c.free_high : ANR_DEFAULT_FREE_HIGH;
	h->free_low = c.free_low != 0 || c.free_high != 0 ? c.free_low : ANR_DEFAULT_FREE_LOW;
	if (h->free_low > h->free_high)
		h->free_low = h->free_high;
	h->lock_pi = c.priority_inherit;
	h->idle_ms = c.idle_return_ms;
	if (heap_lock_init(h) != 0) {
		munmap(base, reserve);
		errno = ENOMEM;
		return NULL;
	}
	anrc_span_init(h);
	anrc_slab_init(h);
	anrc_theap_init(h);
	sem_init(&h->helper_sem, 0, 0);
	if (anrc_holes_init(h, 0) != 0) {
		pthread_mutex_destroy(&h->lock);
		munmap(base, reserve);
		errno = ENOMEM;
		return NULL;
	}
	/* Under valgrind the data pages are no block's until handed out:
	 * besides, its leak check then skips them instead of reading every
	 * page of the reservation (which costs a real page each where the
	 * kernel maps no zero page for a read). */
	ANR_VG_NOACCESS(h, h->data, (size_t)npages << h->page_shift);
	return h;
}

static void
vg_forget(struct anrc_heap *h)
{
	/* Tell valgrind the blocks still live die with the heap. */
	size_t i = 0;

	while (i < h->top) {
		struct anrc_page *pg = &h->pm[i];
		if (pg->kind == ANR_PG_LARGE) {
			ANR_VG_FREE(h, anrc_page_addr(h, i));
		} else if (pg->kind == ANR_PG_SLAB) {
			const struct anrc_class *k = &h->cls[pg->cls];
			for (size_t o = 0; o < k->nobjs; o++)
				if (anrc_slab_live(h, (uint32_t)i, o))
					ANR_VG_FREE(h, anrc_page_addr(h, i) + o * k->size);
		}
		i += pg->npages;
	}
}

void
anrc_destroy(struct anrc_heap *h)
{
	if (h == NULL)
		return;
	anrc_theap_fini(h);
	if (h->vg)
		vg_forget(h);
	pthread_mutex_destroy(&h->lock);
	sem_destroy(&h->helper_sem);
	pthread_mutex_destroy(&h->hole_lock);
	munmap(h->base, h->reserve);
}

/*
 * One line per bad pointer.  It names the pointer by its offset in the
 * heap, not its address, so that logs do not reveal the layout of the
 * process; a pointer from elsewhere is not printed at all.
 */
static struct anrc_bad_note
bad_note(const struct anrc_heap *h, const char *op, const char *what, const void *p)
{
	const char *cp = p;
	struct anrc_bad_note n = { op, what, 0, 0 };

	if (cp >= h->data && cp < h->base + h->reserve) {
		n.where = 1;
		n.off = (size_t)(cp - h->data);
	} else if (cp >= h->base && cp < h->data) {
		n.where = 2;
		n.off = (size_t)(cp - h->base);
	}
	return n;
}

static void
bad_tell(const struct anrc_heap *h, const struct anrc_bad_note *n)
{
	if (n->where == 1)
		mb_log(MB_LOG_ERR, "%s: %s(data+0x%zx): %s", h->name, n->op, n->off, n->what);
	else if (n->where == 2)
		mb_log(MB_LOG_ERR, "%s: %s(metadata+0x%zx): %s", h->name, n->op, n->off,
		       n->what);
	else
		mb_log(MB_LOG_ERR, "%s: %s(): %s", h->name, n->op, n->what);
}

/* Counted, then told now (locked: noted for the unlock, unless the
 * process is to abort), ignored or aborted on. */
void
anrc_bad(struct anrc_heap *h, const char *op, const char *what, const void *p, int locked)
{
	struct anrc_bad_note n = bad_note(h, op, what, p);

	__atomic_add_fetch(&h->bad_frees, 1, __ATOMIC_RELAXED);
	if (h->bad_free == ANR_BAD_FREE_IGNORE)
		return;
	if (locked && h->bad_free != ANR_BAD_FREE_ABORT) {
		if (h->bad_n < ANR_BAD_NOTES)
			h->bad_note[h->bad_n++] = n;
		else
			h->bad_untold++;
		return;
	}
	/* Told now; before an abort, what waits is told first. */
	for (unsigned i = 0; locked && i < h->bad_n; i++)
		bad_tell(h, &h->bad_note[i]);
	bad_tell(h, &n);
	if (h->bad_free == ANR_BAD_FREE_ABORT)
		abort();
}

/* Where a pointer handed to free() or realloc() lives. */
struct loc {
	uint32_t s;      /* first page of its span */
	size_t idx;      /* slabs: object index */
	size_t usable;
	int slab;
};

/* NULL if p is a live block (filling *l), else what is wrong with it. */
static const char *
locate(struct anrc_heap *h, const void *p, struct loc *l)
{
	const char *cp = p;
	size_t off, i;
	struct anrc_page *pg;

	if (cp < h->base || cp >= h->base + h->reserve)
		return "pointer not from this heap";
	if (cp < h->data)
		return "pointer into allocator metadata";
	i = anrc_data_page(h, cp, &off);
	pg = &h->pm[i];
	switch (pg->kind) {
	case ANR_PG_LARGE:
		if ((off & (h->page - 1)) != 0)
			return "pointer inside a block";
		l->s = (uint32_t)i;
		l->slab = 0;
		l->usable = (size_t)pg->npages << h->page_shift;
		return NULL;
	case ANR_PG_SLAB:
	case ANR_PG_SLAB_BODY: {
		uint32_t s = pg->kind == ANR_PG_SLAB ? (uint32_t)i : (uint32_t)(i - pg->npages);
		const struct anrc_class *k = &h->cls[h->pm[s].cls];
		size_t o = (size_t)(cp - anrc_page_addr(h, s)), idx = anrc_slab_index(k, o);
		if (idx * k->size != o || idx >= k->nobjs)
			return "pointer inside a block";
		if (!anrc_slab_live(h, s, idx))
			return "double free (object not allocated)";
		l->s = s;
		l->idx = idx;
		l->slab = 1;
		l->usable = k->size;
		return NULL;
	}
	case ANR_PG_CACHED:
		return "double free (pages not allocated)";
	default: {
		size_t hd = anrc_bm2_prev(&h->heads, i);
		if (hd != SIZE_MAX && hd + h->pm[hd].npages > i)
			return "pointer inside a block";
		return "double free (pages not allocated)";
	}
	}
}

static void
note_in_use(struct anrc_heap *h, size_t usable)
{
	h->in_use += usable;
	h->allocs++;
	if (h->in_use > h->peak_in_use)
		h->peak_in_use = h->in_use;
}

/* Release a located block; the lock is held. */
static void
release(struct anrc_heap *h, void *p, const struct loc *l)
{
	if (h->trash_free) {
		ANR_VG_UNDEFINED(h, p, l->usable);
		memset(p, ANR_TRASH_BYTE, l->usable);
	}
	ANR_VG_FREE(h, p);
	ANR_VG_NOACCESS(h, p, l->usable);
	h->in_use -= l->usable;
	h->frees++;
	__atomic_store_n(&h->freed_bytes, h->freed_bytes + l->usable, __ATOMIC_RELAXED);
	if (l->slab) {
		anrc_slab_free(h, l->s, l->idx);
	} else {
		struct anrc_page *pg = &h->pm[l->s];
		size_t n = pg->npages;
		anrc_bm2_clear(&h->heads, l->s, 1);
		pg->kind = ANR_PG_NONE;
		anrc_pages_put(h, l->s, n);
	}
	anrc_want_release_if_over_mark(h);
}

static void
free_locked(struct anrc_heap *h, void *p, const char *op)
{
	struct loc l;
	const char *bad = locate(h, p, &l);

	if (bad != NULL) {
		anrc_bad(h, op, bad, p, 1);
		return;
	}
	if (l.slab && anrc_theap_free(h, anrc_theap_peek(h), p, l.s, 1))
		return; /* a thread owns the slab: it folds the free in */
	if (!l.slab && anrc_runs_disown_locked(h, l.s, 0) != 0) {
		anrc_bad(h, op, "double free (pages not allocated)", p, 1);
		return;
	}
	release(h, p, &l);
}

/* At most ANR_DRAIN_MAX queued frees per lock taken: a thread does a
 * bounded share of the others' work; the ring is looked at from where the
 * last holder stopped. */
static void
drain(struct anrc_heap *h, unsigned max)
{
	unsigned done = 0, j = h->drain_pos;
	size_t credit = h->trim_credit; /* others' blocks: no credit for us */

	for (unsigned n = 0; n < ANR_DEFER_SLOTS && done < max &&
	     __atomic_load_n(&h->defer_count, __ATOMIC_ACQUIRE) != 0; n++) {
		void *p;
		j = (j + 1) & (ANR_DEFER_SLOTS - 1);
		p = __atomic_exchange_n(&h->defer_slot[j], NULL, __ATOMIC_ACQUIRE);
		if (p != NULL) {
			__atomic_sub_fetch(&h->defer_count, 1, __ATOMIC_RELEASE);
			anrc_steps(1);
			free_locked(h, p, "free");
			done++;
		}
	}
	h->drain_pos = j;
	h->trim_credit = credit;
}

static int
deferred_pending(struct anrc_heap *h)
{
	return __atomic_load_n(&h->defer_count, __ATOMIC_RELAXED) != 0;
}

static void
heap_lock(struct anrc_heap *h)
{
	pthread_mutex_lock(&h->lock);
	anrc_lock_count++;
	if (deferred_pending(h))
		drain(h, ANR_DRAIN_MAX);
}

/*
 * Queue a free for the lock holder without waiting: the pointer goes in a
 * slot of the ring, out of band, because a bad pointer is only judged
 * later and must not make us write into memory.  Returns 0 if the ring is
 * full; the caller then waits for the lock and frees at once.
 */
static int
defer(struct anrc_heap *h, void *p)
{
	unsigned start = __atomic_fetch_add(&h->defer_hint, 1, __ATOMIC_RELAXED);

	for (unsigned i = 0; i < ANR_DEFER_SLOTS; i++) {
		void *expected = NULL;
		unsigned j = (start + i) & (ANR_DEFER_SLOTS - 1);
		if (__atomic_compare_exchange_n(&h->defer_slot[j], &expected, p, 0,
						__ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
			__atomic_add_fetch(&h->defer_count, 1, __ATOMIC_RELEASE);
			__atomic_add_fetch(&h->deferred_frees, 1, __ATOMIC_RELAXED);
			return 1;
		}
	}
	return 0;
}

/* The bad pointers noted under the lock are reported once it is let go. */
static __attribute__((noinline, cold)) void
unlock_and_tell(struct anrc_heap *h)
{
	struct anrc_bad_note n[ANR_BAD_NOTES];
	unsigned k = h->bad_n;
	size_t untold = h->bad_untold;

	memcpy(n, h->bad_note, k * sizeof(n[0]));
	h->bad_n = 0;
	h->bad_untold = 0;
	pthread_mutex_unlock(&h->lock);
	for (unsigned i = 0; i < k; i++)
		bad_tell(h, &n[i]);
	if (untold > 0)
		mb_log(MB_LOG_ERR, "%s: %zu more bad pointers (not told one by one)", h->name,
		       untold);
}

void
anrc_unlock_telling(struct anrc_heap *h)
{
	if (__builtin_expect(h->bad_n != 0, 0))
		unlock_and_tell(h);
	else
		pthread_mutex_unlock(&h->lock);
}

static void
heap_unlock(struct anrc_heap *h)
{
	anrc_return_pages_and_unlock(h);
}

/* The bytes of a new block that a zeroed allocation must clear: [from, to). */
struct zero_range {
	size_t from, to;
};

/*
 * Allocate under the lock.  On failure *short_pages says how many pages
 * the budget lacks (0: no address space or a bad request).
 */
static void *
alloc_locked(struct anrc_heap *h, struct anrc_theap *t, size_t size, size_t align,
	     size_t *usable, struct zero_range *z, size_t *short_pages)
{
	int c = -1;
	uint32_t s;
	size_t n, align_pages;
	void *p;

	*short_pages = 0;
	z->from = 0;
	z->to = SIZE_MAX;
	if (size <= ANR_SLAB_MAX)
		c = align <= ANR_ALIGN ? (int)anrc_size_class(size)
				       : anrc_slab_class_for(h, size, align);
	if (c >= 0 && t != NULL) {
		if (anrc_theap_refill_locked(h, t, (unsigned)c, short_pages) != 0)
			return NULL;
		t->in_lock = 1; /* (a word of hole pages: the lock is held) */
		p = anrc_theap_alloc(h, t, (unsigned)c);
		t->in_lock = 0;
		*usable = h->cls[c].size;
		return p;
	}
	if (c >= 0) {
		p = anrc_slab_alloc(h, (unsigned)c, short_pages);
		if (p == NULL)
			return NULL;
		*usable = h->cls[c].size;
		note_in_use(h, *usable);
		return p;
	}
	n = anrc_run_pages(h, size);
	align_pages = align > h->page ? align >> h->page_shift : 1;
	s = anrc_pages_get(h, n, align_pages, short_pages);
	if (s == ANR_NIL)
		return NULL;
	h->pm[s].kind = ANR_PG_LARGE;
	h->pm[s].npages = (uint32_t)n;
	anrc_bm2_set(&h->heads, s, 1);
	*usable = n << h->page_shift;
	/* Pages never used, or given back since, read as zero. */
	z->from = h->last_res_lo << h->page_shift;
	z->to = h->last_res_hi << h->page_shift;
	if (!anrc_runs_new_locked(h, t, s, n))
		note_in_use(h, *usable);
	return anrc_page_addr(h, s);
}

static void *
alloc_common(struct anrc_heap *h, size_t align, size_t size, unsigned flags)
{
	size_t usable, short_pages, prev_short = SIZE_MAX;
	struct zero_range z;
	void *p;
	/* Claimed before the lock is taken: claiming may call malloc. */
	struct anrc_theap *t = size <= ANR_RUN_CACHE_MAX && align <= h->page ? anrc_theap_get(h) : NULL;

	if (size > ((size_t)h->npages << h->page_shift))
		goto fail;
	for (unsigned calls = 0, stalls = 0;; calls++) {
		anrc_more_fn hook;
		void *arg;

		heap_lock(h);
		anrc_runs_wanted_locked(h, t);
		p = alloc_locked(h, t, size, align, &usable, &z, &short_pages);
		/* Short of budget: the empty slabs and runs this thread keeps
		 * go back first (other threads' at their next change), with
		 * the slabs of parked theaps and the heap's kept empty slabs
		 * (in that order: a parked theap's may become kept ones). */
		if (p == NULL && short_pages > 0) {
			size_t given = anrc_theap_flush_locked(h);
			given += anrc_runs_flush_locked(h, anrc_theap_peek(h));
			given += anrc_slab_flush(h);
			if (given > 0)
				p = alloc_locked(h, t, size, align, &usable, &z, &short_pages);
		}
		/* Valgrind learns of the block under the lock, so that a fork
		 * never finds a block live for us and dead for valgrind. */
		if (p != NULL)
			ANR_VG_ALLOC(h, p, (flags & ANR_USABLE) ? usable : size,
				     (flags & ANR_ZERO) != 0);
		hook = h->hook;
		arg = h->hook_arg;
		heap_unlock(h);
		if (p != NULL)
			break;
		/*
		 * Only a lack of budget is the hook's business.  It runs
		 * without the lock, as long as each call brings the allocation
		 * closer (less budget missing); ANR_HOOK_MAX_RETRIES calls that
		 * do not, or ANR_HOOK_MAX_CALLS in all, and the allocation fails.
		 */
		if (short_pages == 0 || hook == NULL || (flags & ANR_NO_HOOK) ||
		    calls >= ANR_HOOK_MAX_CALLS)
			goto fail;
		if (short_pages >= prev_short && ++stalls >= ANR_HOOK_MAX_RETRIES)
			goto fail;
		prev_short = short_pages;
		__atomic_add_fetch(&h->hook_calls, 1, __ATOMIC_RELAXED);
		if (hook(arg, h, short_pages << h->page_shift, calls) == 0)
			goto fail;
	}
	if ((flags & ANR_ZERO) && z.from < size && z.to > z.from)
		memset((char *)p + z.from, 0, (z.to < size ? z.to : size) - z.from);
	return p;
fail:
	__atomic_add_fetch(&h->failures, 1, __ATOMIC_RELAXED);
	errno = ENOMEM;
	return NULL;
}

static __attribute__((noinline)) void *
alloc_slow(struct anrc_heap *h, size_t size, unsigned flags)
{
	if (size <= ANR_SLAB_MAX && !h->vg) {
		struct anrc_theap *t = anrc_theap_get(h);
		if (t != NULL) {
			void *p = anrc_theap_alloc(h, t, anrc_size_class(size));
			if (p != NULL) {
				if (flags & ANR_ZERO)
					memset(p, 0, size);
				return p;
			}
		}
	} else if (size <= ANR_RUN_CACHE_MAX) {
		struct anrc_theap *t = anrc_theap_get(h);
		void *p = t != NULL ? anrc_runs_alloc(h, t, size) : NULL;
		if (p != NULL) {
			if (flags & ANR_ZERO)
				memset(p, 0, size);
			return p;
		}
	}
	return alloc_common(h, ANR_ALIGN, size, flags);
}

void *
anrc_alloc(struct anrc_heap *h, size_t size, unsigned flags)
{
	/* The fast path: this thread's theap is cached and no valgrind
	 * request is due (under valgrind every block changes hands under
	 * the lock, see alloc_common). */
	void *p = anrc_alloc_fast(h, size);

	if (__builtin_expect(p != NULL, 1)) {
		if (flags & ANR_ZERO)
			memset(p, 0, size);
		return p;
	}
	return alloc_slow(h, size, flags);
}

void *
anrc_alloc_aligned(struct anrc_heap *h, size_t align, size_t size, unsigned flags)
{
	if (align < sizeof(void *) || (align & (align - 1)) != 0) {
		errno = EINVAL;
		return NULL;
	}
	if (align > ((size_t)h->npages << h->page_shift)) {
		errno = ENOMEM;
		return NULL;
	}
	return alloc_common(h, align < ANR_ALIGN ? ANR_ALIGN : align, size, flags);
}

/* Cheap checks that need no lock: the pointer is in the data pages and
 * aligned like every block. */
static const char *
plausible(const struct anrc_heap *h, const void *p)
{
	const char *cp = p;

	if (cp < h->base || cp >= h->base + h->reserve)
		return "pointer not from this heap";
	if (cp < h->data)
		return "pointer into allocator metadata";
	if (((uintptr_t)cp & (ANR_ALIGN - 1)) != 0)
		return "pointer inside a block";
	return NULL;
}

static __attribute__((noinline)) void
free_slow(struct anrc_heap *h, void *p)
{
	const char *bad;
	size_t off, i = anrc_data_page(h, p, &off);

	if (p == NULL)
		return;
	if (__builtin_expect(i < h->npages && (off & (ANR_ALIGN - 1)) == 0, 1)) {
		unsigned kind = __atomic_load_n(&h->pm[i].kind, __ATOMIC_RELAXED);
		if ((kind == ANR_PG_SLAB || kind == ANR_PG_SLAB_BODY) && !h->vg) {
			uint32_t s = anrc_slab_head(h, i);
			struct anrc_theap *t = anrc_tl.uid == h->uid ? anrc_tl.t : anrc_theap_peek(h);
			if (s > i)
				goto locked;
			if (anrc_theap_free(h, t, p, s, 0))
				return;
		} else if (kind == ANR_PG_LARGE && (off & (h->page - 1)) == 0 &&
			   anrc_tl.uid == h->uid && anrc_runs_free(h, anrc_tl.t, (uint32_t)i)) {
			return; /* kept by its owner for its next block */
		}
	} else {
		bad = plausible(h, p);
		if (bad != NULL) {
			anrc_bad(h, "free", bad, p, 0);
			return;
		}
	}
locked:
	if (pthread_mutex_trylock(&h->lock) == 0) {
		anrc_lock_count++;
		if (deferred_pending(h))
			drain(h, ANR_DRAIN_MAX);
	} else if (defer(h, p)) {
		return; /* busy: queued for the lock holder rather than waited */
	} else {
		heap_lock(h); /* the ring is full: wait, judge, then free */
	}
	free_locked(h, p, "free");
	heap_unlock(h);
}

void
anrc_free(struct anrc_heap *h, void *p)
{
	/* The fast path: an object of a slab this thread owns, no trash fill
	 * and no valgrind request due.  Everything else (NULL too) is judged
	 * by free_slow. */
	if (__builtin_expect(anrc_free_fast(h, p), 1))
		return;
	free_slow(h, p);
}

uint64_t
anrc_freed_bytes(const struct anrc_heap *h)
{
	return __atomic_load_n(&h->freed_bytes, __ATOMIC_RELAXED) +
	       anrc_theap_freed_pending(h);
}

size_t
anrc_usable_size(struct anrc_heap *h, const void *p)
{
	struct loc l;
	size_t u = 0;

	if (p == NULL || plausible(h, p) != NULL)
		return 0;
	/* an object of the calling thread's slabs or a block of a run it
	 * owns: no lock */
	u = anrc_usable_local(h, p);
	if (u == 0)
		u = anrc_usable_medium(h, p);
	if (u != 0)
		return u;
	heap_lock(h);
	if (locate(h, p, &l) == NULL)
		u = l.usable;
	heap_unlock(h);
	return u;
}

/* A slab object of usable bytes stays where it is for size bytes: within
 * its class and above half of it (else it moves to the class that fits). */
static int
slab_keeps(size_t usable, size_t size)
{
	return size <= usable && size > usable / 2;
}

/* Pages of a block of size bytes handed out as a page run. */
static size_t
run_pages(const struct anrc_heap *h, size_t size)
{
	return (size + h->page - 1) >> h->page_shift;
}

/* Try to resize in place; returns p on success, NULL if it must move. */
static void *
resize_locked(struct anrc_heap *h, void *p, const struct loc *l, size_t size)
{
	size_t n, nn, short_pages;
	struct anrc_page *pg;
	struct anrc_theap *me = NULL;
	int owned = 0;

	if (h->vg)
		return NULL; /* keep valgrind's view of the block simple */
	if (l->slab)
		return slab_keeps(l->usable, size) ? p : NULL;
	if (size <= ANR_SLAB_MAX)
		return NULL;
	/* A block a thread owns is resized by its owner only (it frees it
	 * without the lock); it stays owned while it is a medium block. */
	if (h->owner[l->s] != 0) {
		me = anrc_theap_peek(h);
		if (me == NULL || me->id != h->owner[l->s])
			return NULL;
		owned = 1;
	}
	pg = &h->pm[l->s];
	n = pg->npages;
	nn = run_pages(h, size);
	if (nn == n)
		return p;
	if (nn > n && anrc_pages_grow(h, l->s, n, nn - n, &short_pages) != 0)
		return NULL;
	if (owned)
		owned = anrc_runs_resize_locked(h, me, l->s, n, nn);
	pg->npages = (uint32_t)nn;
	if (!owned) {
		if (nn < n)
			h->in_use -= (n - nn) << h->page_shift;
		else
			h->in_use += (nn - n) << h->page_shift;
		if (h->in_use > h->peak_in_use)
			h->peak_in_use = h->in_use;
	}
	if (nn < n) {
		anrc_pages_put(h, (uint32_t)(l->s + nn), n - nn);
		anrc_want_release_if_over_mark(h);
	}
	return p;
}

/* Move p (old usable bytes) to a new block of size bytes: copied, the rest
 * zeroed for ANR_ZERO, p freed.  If no block can be had, p stays when
 * shrinking (that never fails) and NULL is returned when growing. */
static void *
move_block(struct anrc_heap *h, void *p, size_t old, size_t size, unsigned flags)
{
	void *q = anrc_alloc(h, size, flags & ~(unsigned)ANR_ZERO);

	if (q == NULL)
		return size <= old ? p : NULL;
	/* Under valgrind the bytes past the requested size of the old block
	 * are unaddressable; copying them is harmless. */
	ANR_VG_QUIET_BEGIN(h);
	memcpy(q, p, size < old ? size : old);
	ANR_VG_QUIET_END(h);
	if ((flags & ANR_ZERO) && size > old)
		memset((char *)q + old, 0, size - old);
	anrc_free(h, p);
	return q;
}

void *
anrc_realloc(struct anrc_heap *h, void *p, size_t size, unsigned flags)
{
	struct loc l;
	const char *bad;
	void *q;
	size_t old;

	if (p == NULL)
		return anrc_alloc(h, size, flags);
	if (size == 0) {
		anrc_free(h, p);
		return NULL;
	}
	bad = plausible(h, p);
	if (bad != NULL) {
		anrc_bad(h, "realloc", bad, p, 0);
		errno = EINVAL;
		return NULL;
	}
	if (size > ((size_t)h->npages << h->page_shift)) {
		errno = ENOMEM;
		return NULL;
	}
	/* An object of the calling thread's slabs (judged from the metadata,
	 * as its free is): no lock.  Kept where resize_locked keeps a slab
	 * object; else moved, by the calls' own fast paths. */
	old = anrc_usable_local(h, p);
	if (old != 0)
		return slab_keeps(old, size) ? p : move_block(h, p, old, size, flags);
	/* A block of a run the calling thread owns, whose page count stays:
	 * nothing changes (resize_locked would change nothing either). */
	old = anrc_usable_medium(h, p);
	if (old != 0 && run_pages(h, size) == old >> h->page_shift)
		return p;
	heap_lock(h);
	bad = locate(h, p, &l);
	if (bad != NULL) {
		heap_unlock(h);
		anrc_bad(h, "realloc", bad, p, 0);
		errno = EINVAL;
		return NULL;
	}
	old = l.usable;
	q = resize_locked(h, p, &l, size);
	heap_unlock(h);
	if (q != NULL) {
		if ((flags & ANR_ZERO) && size > old)
			memset((char *)q + old, 0, size - old);
		return q;
	}
	return move_block(h, p, old, size, flags);
}

int
anrc_owns(const struct anrc_heap *h, const void *p)
{
	const char *cp = p;
	return cp >= h->base && cp < h->base + h->reserve;
}

void
anrc_set_budget(struct anrc_heap *h, size_t bytes)
{
	size_t limit;

	heap_lock(h);
	__atomic_store_n(&h->budget, bytes, __ATOMIC_RELAXED);
	limit = bytes >> h->page_shift;
	if (h->resident_pages > limit) {
		/* what the threads keep: empty slabs, then runs (a thread in
		 * the middle of a change of its runs gives them at its next) */
		anrc_theap_flush_locked(h);
		anrc_runs_flush_all_locked(h);
		anrc_slab_flush(h);
	}
	if (h->resident_pages > limit) {
		size_t over = h->resident_pages - limit;
		anrc_release_down_to(h, over < h->dirty_pages ? h->dirty_pages - over : 0);
	}
	heap_unlock(h);
}

size_t
anrc_get_budget(const struct anrc_heap *h)
{
	return __atomic_load_n(&h->budget, __ATOMIC_RELAXED);
}

void
anrc_set_hook(struct anrc_heap *h, anrc_more_fn fn, void *arg)
{
	heap_lock(h);
	h->hook = fn;
	h->hook_arg = arg;
	heap_unlock(h);
}

void
anrc_set_marks(struct anrc_heap *h, size_t free_low, size_t free_high)
{
	heap_lock(h);
	h->free_high = free_high;
	h->free_low = free_low < free_high ? free_low : free_high;
	h->mark_shift = 0;
	/* An explicit call: what is above the new high mark goes at once. */
	if ((h->dirty_pages << h->page_shift) > h->free_high)
		anrc_release_down_to(h, h->free_low >> h->page_shift);
	heap_unlock(h);
}

void
anrc_flush_caches_locked(struct anrc_heap *h)
{
	anrc_theap_flush_locked(h);
	anrc_runs_flush_all_locked(h);
	anrc_slab_flush(h);
}

size_t
anrc_trim(struct anrc_heap *h, size_t keep)
{
	size_t given;

	/* The calling thread's slabs first: their unused pages too. */
	anrc_theap_holes(h);
	heap_lock(h);
	anrc_flush_caches_locked(h);
	given = anrc_release_down_to(h, keep >> h->page_shift) << h->page_shift;
	/* An explicit trim starts the marks afresh. */
	anrc_marks_afresh(h);
	h->trim_wanted = 0;
	heap_unlock(h);
	return given;
}

size_t
anrc_release_free(struct anrc_heap *h)
{
	return anrc_trim(h, 0);
}

void
anrc_fork_prepare(struct anrc_heap *h)
{
	unsigned held = 0;

	/* every run cache's flag first (runcache.c), then the lock */
	for (;;) {
		unsigned nt = anrc_theaps_used(h);
		anrc_runs_hold(h, held, nt);
		held = nt;
		pthread_mutex_lock(&h->lock);
		if (anrc_theaps_used(h) == held)
			break;
		pthread_mutex_unlock(&h->lock);
	}
	h->fork_held = held;
}

void
anrc_fork_parent(struct anrc_heap *h)
{
	pthread_mutex_unlock(&h->lock);
	anrc_runs_unhold(h, h->fork_held);
}

void
anrc_fork_child(struct anrc_heap *h)
{
	/* The only thread of the child holds the lock; start it afresh.
	 * Frees other threads had queued stay queued and are done later;
	 * pages another thread was giving back are given back here. */
	heap_lock_init(h);
	anrc_runs_unhold(h, h->fork_held);
	anrc_returner_fork_child(h);
	anrc_release_fork_child(h);
	anrc_theap_fork_child(h);
}

void
anrc_lock_and_drain(struct anrc_heap *h)
{
	heap_lock(h);
}

int
anrc_trylock_and_drain(struct anrc_heap *h)
{
	if (pthread_mutex_trylock(&h->lock) != 0)
		return -1;
	if (deferred_pending(h))
		drain(h, ANR_DRAIN_MAX);
	return 0;
}

void
anrc_lock_and_drain_all(struct anrc_heap *h)
{
	pthread_mutex_lock(&h->lock);
	if (deferred_pending(h))
		drain(h, ANR_DEFER_SLOTS);
}

void
anrc_unlock_and_return_pages(struct anrc_heap *h)
{
	heap_unlock(h);
}
