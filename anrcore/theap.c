/*
 * theap.c - thread heaps: small objects without the heap lock.
 *
 * Each thread that allocates small objects claims one of the heap's
 * ANR_THEAPS thread heaps (struct anrc_theap, inside struct anrc_heap, so
 * inside the reservation: no mapping, no allocation).  A theap owns slabs:
 * the page map entry of an owned slab's first page links it into its
 * owner's ring for its class, and h->owner[] holds the owner's id.
 *
 *   malloc (owner):  find a clear bit in the current slab's bitmap, set
 *                    it.  No lock, no atomic operation.
 *   free (owner):    check the bit is set (and the remote bit clear), clear
 *                    it.  No lock, no atomic operation.
 *   free (other):    check the bit is set, then one atomic fetch_or into
 *                    the slab's remote-free bitmap (out of band, beside its
 *                    allocation bitmap);
 *                    a bit already set there is a double free.  The owner
 *                    folds those bits into its bitmap when its current slab
 *                    runs out (collect()).
 *
 * So every pointer is judged from metadata before anything is written,
 * and nothing is ever written into a free block.  When the current slab is
 * full the owner looks at up to ANR_THEAP_SCAN other slabs of its ring
 * without the lock; only then does it take the lock to adopt a shared
 * slab with free objects or to take new pages from the page allocator,
 * which charges the budget (and may call the need-more-memory hook from
 * heap.c's retry loop).  The budget is thus charged per slab that moves
 * between the shared page allocator and a thread, never per object.
 *
 * A slab a local free empties stays the current one or becomes one of its
 * class's spares (ANR_THEAP_SPARES at most: a thread with five live
 * objects of a class of two per slab needs three slabs, and with one spare
 * it gave one back and took one again, under the lock, each time it freed
 * and allocated them; the bound below is in pages, whatever the number of
 * spares), or the current one if that is full, while the
 * theap keeps at most ANR_EMPTY_CACHE_PAGES pages of empty slabs (and the
 * room its kept runs leave); past that it goes back under the lock.  A
 * refill whose scan finds no free object takes the newest spare, wherever
 * it is in the ring.  A thread's exit (destructor of the heap's
 * pthread key) parks its theap when none of its objects is live (up to
 * ANR_PARKED_MAX at a time): the theap keeps what a live one may keep
 * empty, and the next new thread claims it whole (park_locked).  Otherwise
 * it abandons it: under the lock every owned slab becomes shared again (on
 * its class's partial list, kept empty, or given back) and the slot is free
 * for the next thread, which adopts shared slabs before it takes new
 * pages.  A remote free that raced with an abandonment sees the
 * owner gone after its fetch_or and folds the bit in itself under the lock
 * (the owner's store and the freer's fetch_or are both sequentially
 * consistent, so one of the two sees the other).
 *
 * The thread -> theap map is a pthread key per heap, with a one-entry
 * thread-local cache in front of it (the heap and its unique id).  A
 * thread that is inside pthread_setspecific (which may call malloc) or is
 * exiting uses the locked shared path.
 */
#include "config.h"

#include "anrcore_internal.h"
#include "mb_clock.h"
#include "theap_fast.h"
#include "vg.h"

#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

__thread struct anrc_tl anrc_tl __attribute__((tls_model("initial-exec"))) = {
	.last_off = ANR_LAST_NONE,
};
static uint64_t next_uid;

static struct anrc_heap *
heap_of(struct anrc_theap *t)
{
	return (struct anrc_heap *)((char *)(t - (t->id - 1)) - offsetof(struct anrc_heap, th));
}

static int park_locked(struct anrc_heap *h, struct anrc_theap *t);

static void
theap_exit(void *v)
{
	struct anrc_theap *t = v;
	struct anrc_heap *h = heap_of(t);
	int parked;

	anrc_tl.exiting = 1;
	if (anrc_tl.t == t)
		anrc_tl.uid = 0;
	anrc_lock_and_drain(h);
	parked = park_locked(h, t);
	if (!parked)
		anrc_theap_abandon_locked(h, t);
	anrc_unlock_and_return_pages(h);
	__atomic_store_n(&t->claimed, parked ? ANR_TH_PARKED : ANR_TH_FREE, __ATOMIC_RELEASE);
}

/* Claim theap t in state from (ANR_TH_FREE or ANR_TH_PARKED): 1 if done. */
static int
claim(struct anrc_heap *h, struct anrc_theap *t, int from)
{
	int expected = from;

	if (__atomic_load_n(&t->claimed, __ATOMIC_RELAXED) != from ||
	    !__atomic_compare_exchange_n(&t->claimed, &expected, ANR_TH_OWNED, 0, __ATOMIC_ACQUIRE,
					 __ATOMIC_RELAXED))
		return 0;
	if (from == ANR_TH_PARKED)
		__atomic_sub_fetch(&h->th_parked, 1, __ATOMIC_RELAXED);
	return 1;
}

/* Give back claimed theap t, which was in state from. */
static void
unclaim(struct anrc_heap *h, struct anrc_theap *t, int from)
{
	if (from == ANR_TH_PARKED)
		__atomic_add_fetch(&h->th_parked, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&t->claimed, from, __ATOMIC_RELEASE);
}

/* Set up theap t of h, claimed for the first time (left as it is when a
 * thread's exit gives it back, for the next thread). */
static void
first_claim(struct anrc_heap *h, struct anrc_theap *t)
{
	unsigned used = __atomic_load_n(&h->th_used, __ATOMIC_RELAXED);

	t->id = (uint8_t)(t - h->th + 1);
	t->pair = ANR_NIL;
	t->hole_c = ANR_NCLASSES;
	t->probe = ANR_NIL;
	t->holes_seen = __atomic_load_n(&h->trims, __ATOMIC_RELAXED);
	for (unsigned c = 0; c < ANR_NCLASSES; c++) {
		t->cur[c] = ANR_NIL;
		t->nspare[c] = 0;
		t->cl[c].size = h->cls[c].size;
		t->cl[c].magic = h->cls[c].magic;
		t->cl[c].nobjs = h->cls[c].nobjs;
		t->cl[c].words = h->cls[c].words;
	}
	/* set up, then counted in */
	while (used < t->id &&
	       !__atomic_compare_exchange_n(&h->th_used, &used, t->id, 0, __ATOMIC_RELEASE,
					    __ATOMIC_RELAXED))
		;
}

unsigned
anrc_theaps_used(const struct anrc_heap *h)
{
	return __atomic_load_n(&h->th_used, __ATOMIC_ACQUIRE);
}

/*
 * Keys made when the library is loaded, for the heaps made later.  glibc
 * keeps a thread's values of keys 32 and up in blocks it callocs at the
 * thread's first pthread_setspecific of such a key: a heap made after
 * the program's own 32 keys called malloc (and, in a new thread, mapped an
 * arena) from inside its allocation.  Keys made at load come before the
 * program's; a heap destroyed puts a fresh one back (the same slot, the
 * first free one, as a rule).  Heaps past the pool make their own.
 */
#define ANR_KEY_POOL 8
static pthread_key_t key_pool[ANR_KEY_POOL];
static unsigned key_free; /* atomic: bit i, key_pool[i] is free */

__attribute__((constructor)) static void
key_pool_init(void)
{
	unsigned bits = 0;

	for (unsigned i = 0; i < ANR_KEY_POOL; i++)
		if (pthread_key_create(&key_pool[i], theap_exit) == 0)
			bits |= 1u << i;
	__atomic_store_n(&key_free, bits, __ATOMIC_RELEASE);
}

static void
key_get(struct anrc_heap *h)
{
	unsigned bits = __atomic_load_n(&key_free, __ATOMIC_ACQUIRE);

	while (bits != 0) {
		unsigned i = (unsigned)__builtin_ctz(bits);
		if (__atomic_compare_exchange_n(&key_free, &bits, bits & ~(1u << i), 0,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			h->key = key_pool[i];
			h->key_slot = (int)i;
			h->key_ok = 1;
			return;
		}
	}
	h->key_slot = -1;
	h->key_ok = pthread_key_create(&h->key, theap_exit) == 0;
}

static void
key_put(struct anrc_heap *h)
{
	/* Deleted: no thread's exit runs the destructor for this heap. */
	pthread_key_delete(h->key);
	if (h->key_slot >= 0 && pthread_key_create(&key_pool[h->key_slot], theap_exit) == 0)
		__atomic_fetch_or(&key_free, 1u << h->key_slot, __ATOMIC_ACQ_REL);
}

void
anrc_theap_init(struct anrc_heap *h)
{
	h->uid = __atomic_add_fetch(&next_uid, 1, __ATOMIC_RELAXED);
	h->alloc_uid = h->vg ? ANR_UID_NONE : h->uid;
	h->free_uid = h->fast_free ? h->uid : ANR_UID_NONE;
	/* The theaps are set up when first claimed (first_claim): a heap
	 * whose process has few threads keeps few of their pages resident. */
	key_get(h);
}

void
anrc_theap_fini(struct anrc_heap *h)
{
	if (h->key_ok)
		key_put(h);
	if (anrc_tl.uid == h->uid)
		anrc_tl.uid = 0;
}

struct anrc_theap *
anrc_theap_peek(const struct anrc_heap *h)
{
	if (anrc_tl.uid == h->uid)
		return anrc_tl.t;
	if (!h->key_ok || anrc_tl.busy || anrc_tl.exiting)
		return NULL;
	return pthread_getspecific(h->key);
}

struct anrc_theap *
anrc_theap_lookup(struct anrc_heap *h)
{
	struct anrc_theap *t;

	if (!h->key_ok || anrc_tl.busy || anrc_tl.exiting)
		return NULL;
	t = pthread_getspecific(h->key);
	if (t == NULL) {
		/* A parked theap first: its slabs are ready. */
		int from = ANR_TH_PARKED;
		if (__atomic_load_n(&h->th_parked, __ATOMIC_RELAXED) > 0)
			for (unsigned i = 0, nt = anrc_theaps_used(h); i < nt && t == NULL; i++)
				if (claim(h, &h->th[i], ANR_TH_PARKED))
					t = &h->th[i];
		if (t == NULL)
			from = ANR_TH_FREE;
		for (unsigned i = 0; i < ANR_THEAPS && t == NULL; i++)
			if (claim(h, &h->th[i], ANR_TH_FREE))
				t = &h->th[i];
		if (t == NULL)
			return NULL;
		if (t->id == 0)
			first_claim(h, t);
		STORE(t->publish_left, ANR_FREED_PUBLISH);
		anrc_tl.busy = 1;
		if (pthread_setspecific(h->key, t) != 0) {
			anrc_tl.busy = 0;
			unclaim(h, t, from);
			return NULL;
		}
		anrc_tl.busy = 0;
	}
	anrc_tl.h = h;
	anrc_tl.uid = h->uid;
	anrc_tl.t = t;
	anrc_tl.last_off = ANR_LAST_NONE;
	return t;
}

/* Bytes of t's local frees, slow or fast (the fast path adds 1 to a
 * counter per class and nothing else). */
static uint64_t
local_freed(const struct anrc_heap *h, const struct anrc_theap *t)
{
	uint64_t bytes = 0;

	for (unsigned c = 0; c < ANR_NCLASSES; c++)
		bytes += LOAD(t->cl[c].nfreed) * h->cls[c].size;
	return bytes;
}

/* Freed bytes of t not yet published, local being local_freed(h, t):
 * local frees since the last publication, and the bytes noted by
 * anrc_theap_note_freed. */
static uint64_t
pending_of(const struct anrc_theap *t, uint64_t local)
{
	return local - LOAD(t->published) + (uint64_t)(ANR_FREED_PUBLISH - LOAD(t->publish_left));
}

static uint64_t
freed_pending(const struct anrc_heap *h, const struct anrc_theap *t)
{
	return pending_of(t, local_freed(h, t));
}

void
anrc_theap_publish(struct anrc_heap *h, struct anrc_theap *t)
{
	uint64_t local = local_freed(h, t);

	__atomic_add_fetch(&h->freed_bytes, pending_of(t, local), __ATOMIC_RELAXED);
	STORE(t->published, local);
	STORE(t->publish_left, ANR_FREED_PUBLISH);
}

/* Only the bytes noted are added: the class counts stay for the next
 * publication, so that a free of a kept run does not read every class's
 * line. */
void
anrc_theap_note_freed(struct anrc_heap *h, struct anrc_theap *t, size_t bytes)
{
	int64_t left = t->publish_left - (int64_t)bytes;

	if (left <= 0) {
		__atomic_add_fetch(&h->freed_bytes, (uint64_t)(ANR_FREED_PUBLISH - left),
				   __ATOMIC_RELAXED);
		left = ANR_FREED_PUBLISH;
	}
	STORE(t->publish_left, left);
}

/*
 * Bytes of t's live objects.  Other threads read it while t runs: the
 * frees are read before the allocations, and a sum that a race still
 * makes negative counts as 0, so a snapshot is never absurdly large.
 */
static size_t
theap_in_use(const struct anrc_heap *h, const struct anrc_theap *t)
{
	int64_t bytes = 0;

	for (unsigned c = 0; c < ANR_NCLASSES; c++)
		bytes -= (int64_t)(LOAD(t->cl[c].nfreed) * h->cls[c].size);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	for (unsigned c = 0; c < ANR_NCLASSES; c++)
		bytes += (int64_t)(LOAD(t->cl[c].nalloc) * h->cls[c].size);
	bytes += (int64_t)LOAD(t->in_use_adj);
	return bytes > 0 ? (size_t)bytes : 0;
}

/*
 * The held word's objects are left out of its slab's nfree from the moment
 * it is loaded, so that malloc and a free into that word do not touch the
 * page map; dropping the word (before the current slab changes, and
 * whenever nfree must be exact) adds back those still held.
 */
static inline __attribute__((always_inline)) void
drop_word(struct anrc_heap *h, struct anrc_theap *t, unsigned c)
{
	if (t->cl[c].avail != 0)
		h->pm[t->cur[c]].nfree =
			(uint16_t)(h->pm[t->cur[c]].nfree + anrc_popcount64(t->cl[c].avail));
	t->cl[c].avail = 0;
	t->cl[c].wbits = NULL;
	/* (the caller's: a word is dropped by its theap's owner, or of a
	 * theap with none) */
	anrc_tl.last_off = ANR_LAST_NONE;
}

/* Drop class c's held word (locked); a current slab whose objects are all
 * free then, some of them in that word, is empty too: counted among the
 * slabs t keeps. */
static void
drop_word_count_empty(struct anrc_heap *h, struct anrc_theap *t, unsigned c)
{
	uint32_t s = t->cur[c];

	drop_word(h, t, c);
	if (s != ANR_NIL && !t->cur_empty[c] && h->pm[s].nfree == h->cls[c].nobjs) {
		t->cur_empty[c] = 1;
		t->empty_pages += h->cls[c].npages;
	}
}

/*
 * Holes.  After most objects are freed, a slab of a few pages often
 * keeps one live object, or none (a kept empty slab): its other pages
 * stay resident for nothing.  After a page-return round (h->trims moved
 * on) the owner looks through its slabs, ANR_HOLE_SLABS a call (at the
 * end of a free that emptied a slab), and gives back the pages that no
 * allocated object touches.  It alone hands out its slabs' objects, so
 * it alone may: a page of objects freed by another thread is not one
 * (their allocation bits stay set until it folds them in), and a held
 * word is dropped first.  The pages stay counted in resident_pages (a
 * limit on resident memory counts them until the slab goes back); their
 * resident bit is clear and h->slab_holes and the theap's holes count
 * them.  Before the owner hands out an object of a hole page (loading a
 * word) the bit is set again, under the lock; so it is when the slab goes
 * back or becomes shared.
 */

/* The lock alone, for the holes: no deferred frees, no page return (the
 * call that emptied a slab or loads a word may have done its share of
 * both, and a pass adds no foreign work to a call). */
static void
holes_lock(struct anrc_heap *h)
{
	pthread_mutex_lock(&h->lock);
	anrc_lock_count++;
}

/*
 * Set again the resident bits of pages [p, p + n) of t's slab (locked).
 * If the helper's batch in flight has some of them, its madvise is waited
 * out first (hole_lock: at most ANR_HOLE_BATCH pages, and the helper is
 * lent this thread's priority), lest it take back what is written next.
 */
static void
holes_fill_locked(struct anrc_heap *h, struct anrc_theap *t, size_t p, size_t n)
{
	size_t clear = n - anrc_pb_count(h->resident, p, n);

	if (clear == 0)
		return;
	for (unsigned i = 0; i < h->hf_n; i++) {
		if (h->hf[i].s < p + n && p < (size_t)h->hf[i].s + h->hf[i].n) {
			pthread_mutex_lock(&h->hole_lock);
			pthread_mutex_unlock(&h->hole_lock);
			break;
		}
	}
	anrc_pb_set(h->resident, p, n);
	h->slab_holes -= clear;
	STORE(t->holes, t->holes - clear);
}

/* The objects of v (free objects of word w of t's slab s, class k) are
 * about to be handed out: their pages become resident again.  Returns v. */
static __attribute__((noinline)) uint64_t
holes_refill(struct anrc_heap *h, struct anrc_theap *t, uint32_t s, const struct anrc_class *k,
	     unsigned w, uint64_t v)
{
	size_t first = ((size_t)w * 64 + (size_t)__builtin_ctzll(v)) * k->size;
	size_t last = ((size_t)w * 64 + 63 - (size_t)__builtin_clzll(v)) * k->size + k->size - 1;
	size_t p = s + (first >> h->page_shift), n = s + (last >> h->page_shift) - p + 1, i;

	/* Only this thread changes these bits while the slab is current
	 * (the helper's pass leaves it alone): a look without the lock (at
	 * the words, which others change under it) is enough. */
	for (i = p; i < p + n; i++) {
		uint64_t bits = __atomic_load_n(anrc_pb_word(h->resident, i >> 6),
						__ATOMIC_RELAXED);
		if (((bits >> (i & 63)) & 1) == 0)
			break;
	}
	if (i == p + n)
		return v;
	if (!t->in_lock)
		holes_lock(h);
	holes_fill_locked(h, t, p, n);
	if (!t->in_lock)
		pthread_mutex_unlock(&h->lock);
	return v;
}

ANRC_HOT uint64_t
anrc_theap_load_word(struct anrc_heap *h, struct anrc_theap *t, unsigned c)
{
	const struct anrc_class *k = &h->cls[c];
	uint32_t s = t->cur[c];
	uint64_t *bits, v;
	unsigned w;

	drop_word(h, t, c);
	if (s == ANR_NIL || h->pm[s].nfree == 0)
		return 0;
	if (t->cur_empty[c]) {
		/* no longer empty once the word is held */
		t->cur_empty[c] = 0;
		t->empty_pages -= k->npages;
	}
	bits = anrc_slab_bits(h, s);
	w = anrc_slab_free_word(h, s);
	v = ~bits[w];
	t->cl[c].wbits = &bits[w];
	t->cl[c].woff = ((size_t)s << h->page_shift) + (size_t)w * 64 * k->size;
	t->cl[c].avail = v;
	h->pm[s].nfree = (uint16_t)(h->pm[s].nfree - anrc_popcount64(v));
	/* (a tail call: its pages count again before any object is handed out) */
	if (__builtin_expect(__atomic_load_n(&t->holes, __ATOMIC_RELAXED) != 0, 0) && v != 0)
		return holes_refill(h, t, s, k, w, v);
	return v;
}

/* collect(), once a remote free was seen. */
static __attribute__((noinline)) void
collect_found(struct anrc_heap *h, struct anrc_theap *t, uint32_t s)
{
	uint64_t *rf = anrc_slab_rfree(h, s);
	uint64_t *bits = anrc_slab_bits(h, s);
	struct anrc_page *pg = &h->pm[s];
	size_t n = 0, size = h->cls[pg->cls].size;

	for (unsigned w = 0; w < h->cls[pg->cls].words; w++) {
		uint64_t x;
		anrc_steps(1);
		if (__atomic_load_n(&rf[w], __ATOMIC_RELAXED) == 0)
			continue;
		x = __atomic_exchange_n(&rf[w], 0, __ATOMIC_ACQUIRE);
		bits[w] &= ~x;
		n += (size_t)anrc_popcount64(x);
	}
	if (n == 0)
		return;
	pg->nfree = (uint16_t)(pg->nfree + n);
	STORE(t->in_use_adj, t->in_use_adj - n * size);
	STORE(t->ccount, t->ccount + n);
	STORE(t->cbytes, t->cbytes + n * size);
	anrc_theap_note_freed(h, t, n * size);
}

/*
 * Fold the remote frees of owned slab s into its bitmap.  Most slabs a
 * refill looks at have none: their remote-free words are looked at first,
 * here, and only a word with a bit set takes the out-of-line part (whose
 * set-up, saved registers and constants, cost a look at a slab without
 * remote frees about 50 instructions).
 */
static inline void
collect(struct anrc_heap *h, struct anrc_theap *t, uint32_t s)
{
	const uint64_t *rf = anrc_slab_rfree(h, s);
	unsigned words = h->cls[h->pm[s].cls].words;
	uint64_t any = 0;

	anrc_steps(words);
	for (unsigned w = 0; w < words; w++)
		any |= __atomic_load_n(&rf[w], __ATOMIC_RELAXED);
	if (any != 0)
		collect_found(h, t, s);
}

static void
ring_add(struct anrc_heap *h, struct anrc_theap *t, unsigned c, uint32_t s)
{
	uint32_t cur = t->cur[c];

	drop_word(h, t, c);
	STORE(t->nslabs[c], t->nslabs[c] + 1);
	if (cur == ANR_NIL) {
		h->pm[s].next = h->pm[s].prev = s;
	} else {
		uint32_t nx = h->pm[cur].next;
		h->pm[s].prev = cur;
		h->pm[s].next = nx;
		h->pm[nx].prev = s;
		h->pm[cur].next = s;
	}
	t->cur[c] = s;
	t->cur_empty[c] = 0;
}

/* Where s is among class c's kept empty slabs; -1 if it is not one. */
static int
spare_find(const struct anrc_theap *t, unsigned c, uint32_t s)
{
	for (unsigned i = 0; i < t->nspare[c]; i++)
		if (t->spare[c][i] == s)
			return (int)i;
	return -1;
}

/* If s is one of class c's kept empty slabs, it stops being one: 1. */
static int
spare_take(struct anrc_theap *t, unsigned c, uint32_t s)
{
	int i = spare_find(t, c, s);

	if (i < 0)
		return 0;
	t->spare[c][i] = t->spare[c][--t->nspare[c]];
	return 1;
}

/* Make s (in the ring) the slab class c allocates from. */
static void
set_cur(struct anrc_heap *h, struct anrc_theap *t, unsigned c, uint32_t s)
{
	if (t->cur[c] == s)
		return;
	drop_word(h, t, c);
	/* The helper's pass for holes leaves current slabs alone: it names
	 * the slab it looks at in t->probe, then reads t->cur[c]; this
	 * stores t->cur[c], then reads t->probe, all four in one order, so
	 * one side sees the other.  A thread whose new current slab is under
	 * the helper's look waits for the look to end (the helper holds the
	 * lock for it, so a caller that holds it never finds its slab
	 * there); the holes found are then counted and come back with the
	 * first word of them handed out (holes_refill). */
	__atomic_store_n(&t->cur[c], s, __ATOMIC_SEQ_CST);
	if (__builtin_expect(__atomic_load_n(&t->probe, __ATOMIC_SEQ_CST) == s, 0)) {
		holes_lock(h);
		pthread_mutex_unlock(&h->lock);
	}
	/* a kept empty slab stays counted, now as the current slab */
	t->cur_empty[c] = (uint8_t)spare_take(t, c, s);
}

static void
ring_del(struct anrc_heap *h, struct anrc_theap *t, unsigned c, uint32_t s)
{
	uint32_t nx = h->pm[s].next, pv = h->pm[s].prev;
	size_t np = h->cls[c].npages;

	if (t->cur[c] == s)
		drop_word(h, t, c);
	STORE(t->nslabs[c], t->nslabs[c] - 1);
	if (spare_take(t, c, s))
		t->empty_pages -= np;
	if (t->cur[c] == s && t->cur_empty[c]) {
		t->cur_empty[c] = 0;
		t->empty_pages -= np;
	}
	if (nx == s) {
		t->cur[c] = ANR_NIL;
	} else {
		h->pm[pv].next = nx;
		h->pm[nx].prev = pv;
		if (t->cur[c] == s)
			set_cur(h, t, c, nx);
	}
	h->pm[s].next = h->pm[s].prev = ANR_NIL;
}

/* Give owned empty slab s back to the page allocator (locked). */
static void
release_owned(struct anrc_heap *h, struct anrc_theap *t, uint32_t s)
{
	unsigned c = h->pm[s].cls;

	holes_fill_locked(h, t, s, h->cls[c].npages);
	ring_del(h, t, c, s);
	STORE(t->slab_bytes, t->slab_bytes - ((size_t)h->cls[c].npages << h->page_shift));
	anrc_slab_release_unlisted(h, s);
	anrc_want_release_if_over_mark(h);
}

/* The empty slabs t keeps go back (the owner only, locked). */
static size_t
flush_spares(struct anrc_heap *h, struct anrc_theap *t)
{
	size_t given = 0;

	__atomic_store_n(&t->flush_wanted, 0, __ATOMIC_RELAXED);
	for (unsigned c = 0; c < ANR_NCLASSES; c++) {
		size_t bytes = (size_t)h->cls[c].npages << h->page_shift;
		while (t->nspare[c] > 0) {
			given += bytes;
			release_owned(h, t, t->spare[c][t->nspare[c] - 1]);
		}
		drop_word_count_empty(h, t, c);
		while (t->cur[c] != ANR_NIL && t->cur_empty[c]) {
			given += bytes;
			release_owned(h, t, t->cur[c]);
		}
	}
	return given;
}

/* Current slab of class c is full: find free objects without the lock. */
ANRC_HOT int
anrc_theap_refill_unlocked(struct anrc_heap *h, struct anrc_theap *t, unsigned c)
{
	uint32_t s = t->cur[c], n = s;

	if (s == ANR_NIL)
		return -1;
	collect(h, t, s);
	if (h->pm[s].nfree > 0)
		return 0;
	for (unsigned i = 0; i < ANR_THEAP_SCAN; i++) {
		n = h->pm[n].next;
		if (n == s)
			break;
		/* A slab with free objects is taken as it is; its remote
		 * frees are folded in when it is full. */
		if (h->pm[n].nfree == 0)
			collect(h, t, n);
		if (h->pm[n].nfree > 0) {
			set_cur(h, t, c, n);
			return 0;
		}
	}
	/* The kept empty slab, wherever it is in the ring (a ring of full
	 * slabs of a class of few objects is long). */
	if (t->nspare[c] > 0) {
		set_cur(h, t, c, t->spare[c][t->nspare[c] - 1]);
		return 0;
	}
	/* Start the next search past the slabs just seen. */
	set_cur(h, t, c, n);
	return -1;
}

ANRC_HOT void *
anrc_alloc_small(struct anrc_heap *h, size_t size)
{
	int c = anrc_fast_class(h, size);

	return c < 0 ? NULL : anrc_theap_alloc(h, anrc_tl.t, (unsigned)c);
}

int
anrc_theap_refill_locked(struct anrc_heap *h, struct anrc_theap *t, unsigned c,
			size_t *short_pages)
{
	const struct anrc_class *k = &h->cls[c];
	size_t bytes = (size_t)k->npages << h->page_shift;
	uint32_t s;

	*short_pages = 0;
	if (__atomic_load_n(&t->flush_wanted, __ATOMIC_RELAXED))
		flush_spares(h, t);
	/* Objects in the held word or elsewhere in the current slab: the
	 * current slab stays (so it never stops being current with objects
	 * left out of its nfree, which could leave it empty and uncounted). */
	if (t->cl[c].avail != 0 || (t->cur[c] != ANR_NIL && h->pm[t->cur[c]].nfree > 0))
		return 0;
	if (anrc_theap_refill_unlocked(h, t, c) == 0)
		return 0;
	s = h->partial[c];
	if (s != ANR_NIL) {
		/* Adopt a shared slab with free objects. */
		size_t live = k->nobjs - h->pm[s].nfree;
		anrc_partial_del(h, c, s);
		if (h->empty_slab[c] == s) {
			h->empty_slab[c] = ANR_NIL;
			h->empty_pages -= k->npages;
		}
		h->class_slabs[c]--;
		h->class_live[c] -= live;
		h->slab_free -= bytes - live * k->size;
		h->in_use -= live * k->size;
		STORE(t->in_use_adj, t->in_use_adj + live * k->size);
		__atomic_store_n(&h->owner[s], t->id, __ATOMIC_SEQ_CST);
	} else {
		s = anrc_slab_new_owned(h, c, &t->pair, short_pages);
		if (s == ANR_NIL)
			return -1;
		__atomic_store_n(&h->owner[s], t->id, __ATOMIC_RELEASE);
	}
	STORE(t->slab_bytes, t->slab_bytes + bytes);
	ring_add(h, t, c, s);
	collect(h, t, s);
	return 0;
}

/* Page i of slab s (class k, allocation bitmap bits) holds no allocated
 * object: neither one that starts on it nor one that reaches into it. */
static int
page_unused(const struct anrc_heap *h, const uint64_t *bits, const struct anrc_class *k,
	    unsigned i)
{
	size_t lo = ((size_t)i << h->page_shift) / k->size;
	size_t hi = ((((size_t)i + 1) << h->page_shift) - 1) / k->size;

	if (hi >= k->nobjs)
		hi = k->nobjs - 1; /* the slab's tail holds no object */
	return lo > hi || anrc_bits_count(bits, lo, hi - lo + 1) == 0;
}

/* The pass goes on with the next class that has slabs (none: done). */
static void
holes_next_class(struct anrc_theap *t, unsigned from)
{
	for (t->hole_c = from; t->hole_c < ANR_NCLASSES; t->hole_c++)
		if (t->cur[t->hole_c] != ANR_NIL) {
			t->hole_s = t->cur[t->hole_c];
			t->hole_left = t->nslabs[t->hole_c];
			return;
		}
}

/* Runs of unused pages in a slab of n pages: at most (n + 1) / 2, no more
 * than ANR_SLAB_SPAN_MAX / 2 when that is even. */
#define HOLE_RUNS (ANR_HOLE_SLABS * (ANR_SLAB_SPAN_MAX / 2))
_Static_assert(ANR_SLAB_SPAN_MAX % 2 == 0, "a slab's runs of holes fit in HOLE_RUNS");

/* Give back the holes of runs r[0 .. n - 1]. */
static void
runs_advise(struct anrc_heap *h, const struct anrc_run *r, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		anrc_steps(1);
		(void)madvise(anrc_page_addr(h, r[i].s), (size_t)r[i].n << h->page_shift,
			      MADV_DONTNEED);
	}
}

/* The unused pages still resident of t's slab s, of class k, become
 * holes, added to the runs r[0 .. nr - 1] (locked); returns the runs. */
static unsigned
slab_holes_pick(struct anrc_heap *h, struct anrc_theap *t, uint32_t s,
		const struct anrc_class *k, struct anrc_run *r, unsigned nr)
{
	const uint64_t *bits = anrc_slab_bits(h, s);

	anrc_steps(k->words + k->npages); /* each page's words, one shared */
	for (unsigned i = 0; i < k->npages; i++) {
		uint32_t p = s + i;
		if (!anrc_pb_bit(h->resident, p) || !page_unused(h, bits, k, i))
			continue;
		anrc_pb_clear(h->resident, p, 1);
		h->slab_holes++;
		STORE(t->holes, t->holes + 1);
		if (nr > 0 && r[nr - 1].s + r[nr - 1].n == p)
			r[nr - 1].n++;
		else
			r[nr++] = (struct anrc_run){ p, 1 };
	}
	return nr;
}

/*
 * The next ANR_HOLE_SLABS slabs of the pass (locked): their unused pages
 * still resident lose the bit, counted as holes; the runs to advise away
 * go in r (at most ANR_SLAB_SPAN_MAX / 2 a slab).  The ring is walked from
 * the class's current slab as it is now; a slab gone meanwhile (given
 * back, or no longer this class's) ends the class.
 */
static unsigned
holes_pick_locked(struct anrc_heap *h, struct anrc_theap *t, struct anrc_run *r)
{
	unsigned nr = 0, slabs = 0;

	while (slabs < ANR_HOLE_SLABS && t->hole_c < ANR_NCLASSES) {
		unsigned c = t->hole_c;
		const struct anrc_class *k = &h->cls[c];
		uint32_t s = t->hole_s;

		if (t->hole_left == 0 || s == ANR_NIL || h->owner[s] != t->id ||
		    h->pm[s].kind != ANR_PG_SLAB || h->pm[s].cls != c) {
			holes_next_class(t, c + 1);
			continue;
		}
		t->hole_s = h->pm[s].next;
		t->hole_left--;
		slabs++;
		if (h->pm[s].nfree == 0 && t->cur[c] != s)
			continue; /* full */
		if (t->cur[c] == s)
			drop_word_count_empty(h, t, c); /* its objects free in the bitmap */
		nr = slab_holes_pick(h, t, s, k, r, nr);
	}
	h->madvise_calls += nr;
	return nr;
}

/* A page-return round happened since the last pass began, or a pass is
 * under way (holes_seen is set when it ends): the test a free that
 * emptied a slab makes. */
static inline int
holes_due(const struct anrc_heap *h, const struct anrc_theap *t)
{
	return __atomic_load_n(&h->trims, __ATOMIC_RELAXED) != t->holes_seen;
}

static __attribute__((noinline)) void
holes_run(struct anrc_heap *h, struct anrc_theap *t, int whole)
{
	struct anrc_run r[HOLE_RUNS];
	unsigned nr;

	if (!h->fast_free)
		return;
	if (whole || t->hole_c >= ANR_NCLASSES) {
		t->hole_trims = __atomic_load_n(&h->trims, __ATOMIC_RELAXED);
		holes_next_class(t, 0);
	}
	while (t->hole_c < ANR_NCLASSES) {
		holes_lock(h);
		nr = holes_pick_locked(h, t, r);
		pthread_mutex_unlock(&h->lock);
		/* Without the lock: nobody else hands out these objects. */
		runs_advise(h, r, nr);
		if (!whole)
			break;
	}
	if (t->hole_c >= ANR_NCLASSES)
		t->holes_seen = t->hole_trims;
}

/* A local free emptied slab s: keep it (as the current slab or the
 * spare) within the cache limit, else give it back; then, without the
 * lock, a slice of holes when due. */
static void
emptied(struct anrc_heap *h, struct anrc_theap *t, unsigned c, uint32_t s, int locked)
{
	size_t np = h->cls[c].npages;

	if (anrc_runs_room_for_slab(h, t, np)) {
		if (t->cur[c] == s) {
			t->cur_empty[c] = 1;
			t->empty_pages += np;
			goto out;
		}
		/* The current slab is full (none of its objects held): the
		 * emptied one takes its place, so that the next allocation
		 * finds it without a search of the ring (where a class of a
		 * few objects a slab keeps many full slabs). */
		if (t->cl[c].avail == 0 && t->cur[c] != ANR_NIL && h->pm[t->cur[c]].nfree == 0) {
			set_cur(h, t, c, s);
			t->cur_empty[c] = 1;
			t->empty_pages += np;
			goto out;
		}
		if (t->nspare[c] < ANR_THEAP_SPARES) {
			t->spare[c][t->nspare[c]++] = s;
			t->empty_pages += np;
			goto out;
		}
	}
	/* Pages may go back now: the freed bytes are published first (the
	 * broker client looks at them).  A slab kept above goes nowhere, and
	 * publishing reads a line of every class. */
	anrc_theap_publish(h, t);
	if (!locked)
		anrc_lock_and_drain(h);
	release_owned(h, t, s);
	if (__atomic_load_n(&t->flush_wanted, __ATOMIC_RELAXED))
		flush_spares(h, t);
	if (!locked)
		anrc_unlock_and_return_pages(h);
out:
	/* With a page-return helper no call gives pages back itself, and
	 * only the owner may advise its slabs' holes: they wait for an
	 * explicit trim. */
	if (!locked && holes_due(h, t) && !__atomic_load_n(&h->helper_on, __ATOMIC_ACQUIRE))
		holes_run(h, t, 0);
}

void
anrc_theap_holes(struct anrc_heap *h)
{
	struct anrc_theap *t = anrc_theap_peek(h);

	if (t != NULL)
		holes_run(h, t, 1);
}

/* The helper's pass goes on at the first class from (i, c) on, in theap
 * order, that has slabs (none: hp_i is past the theaps; locked). */
static void
hp_next(struct anrc_heap *h, unsigned i, unsigned c)
{
	unsigned nt = anrc_theaps_used(h);

	for (; i < nt; i++, c = 0) {
		struct anrc_theap *t = &h->th[i];
		int st = __atomic_load_n(&t->claimed, __ATOMIC_ACQUIRE);

		if (st != ANR_TH_OWNED && st != ANR_TH_PARKED)
			continue;
		for (; c < ANR_NCLASSES; c++) {
			/* a slab of the ring, whatever the owner made current
			 * since (the ring changes only under the lock) */
			uint32_t cur = __atomic_load_n(&t->cur[c], __ATOMIC_RELAXED);
			if (cur != ANR_NIL) {
				h->hp_i = i;
				h->hp_c = c;
				h->hp_s = h->pm[cur].next;
				h->hp_left = t->nslabs[c];
				return;
			}
		}
	}
	h->hp_i = nt;
}

/*
 * The next slice of the helper's pass (locked): up to
 * ANR_HOLE_HELPER_SLABS slabs, none of them current (set_cur), whose
 * unused pages still resident become holes of their theap and runs of
 * the batch, up to ANR_HOLE_BATCH pages.  Returns the batch's runs.
 */
static unsigned
hp_pick_locked(struct anrc_heap *h)
{
	unsigned nr = 0, slabs = 0;
	size_t room = ANR_HOLE_BATCH;

	while (slabs < ANR_HOLE_HELPER_SLABS && h->hp_i < anrc_theaps_used(h)) {
		struct anrc_theap *t = &h->th[h->hp_i];
		unsigned c = h->hp_c;
		const struct anrc_class *k = &h->cls[c];
		uint32_t s = h->hp_s;

		if (h->hp_left == 0 || s == ANR_NIL || h->owner[s] != t->id ||
		    h->pm[s].kind != ANR_PG_SLAB || h->pm[s].cls != c) {
			hp_next(h, h->hp_i, c + 1);
			continue;
		}
		if (room < k->npages)
			break;
		h->hp_s = h->pm[s].next;
		h->hp_left--;
		slabs++;
		if (__atomic_load_n(&h->pm[s].nfree, __ATOMIC_RELAXED) == 0)
			continue; /* full (a look: the owner counts without the lock) */
		__atomic_store_n(&t->probe, s, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&t->cur[c], __ATOMIC_SEQ_CST) != s) {
			size_t before = h->slab_holes;

			nr = slab_holes_pick(h, t, s, k, h->hf, nr);
			room -= h->slab_holes - before;
		}
		__atomic_store_n(&t->probe, ANR_NIL, __ATOMIC_SEQ_CST);
	}
	h->madvise_calls += nr;
	return h->hf_n = nr;
}

int
anrc_holes_due(const struct anrc_heap *h)
{
	return h->fast_free && __atomic_load_n(&h->trims, __ATOMIC_RELAXED) != h->hp_seen;
}

void
anrc_holes_give_back(struct anrc_heap *h, int quiet)
{
	uint64_t now;

	if (!anrc_holes_due(h))
		return;
	now = mb_clock_ms();
	if (!quiet && h->hp_last != 0 && now - h->hp_last < ANR_HOLE_PASS_MS)
		return;
	h->hp_last = now;
	h->hp_seen = __atomic_load_n(&h->trims, __ATOMIC_RELAXED);
	hp_next(h, 0, 0);
	while (h->hp_i < anrc_theaps_used(h) &&
	       !__atomic_load_n(&h->helper_stop, __ATOMIC_ACQUIRE)) {
		unsigned nr = hp_pick_locked(h);

		/* Taken before the heap lock goes: a thread that finds its
		 * pages in the batch holds the heap lock and waits for it. */
		if (nr > 0)
			pthread_mutex_lock(&h->hole_lock);
		pthread_mutex_unlock(&h->lock);
		if (nr > 0) {
			runs_advise(h, h->hf, nr);
			pthread_mutex_unlock(&h->hole_lock);
		}
		anrc_lock_and_drain(h);
		h->hf_n = 0;
	}
}

int
anrc_holes_init(struct anrc_heap *h, int child)
{
	pthread_mutexattr_t a;
	int rc;

	/* In a fork child the helper is gone: its batch in flight (holes
	 * whatever the parent's madvise reached of them) goes back here. */
	if (child)
		runs_advise(h, h->hf, h->hf_n);
	h->hf_n = 0;
	h->hp_seen = __atomic_load_n(&h->trims, __ATOMIC_RELAXED);
	if (pthread_mutexattr_init(&a) != 0)
		return -1;
	rc = pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT);
	if (rc == 0)
		rc = pthread_mutex_init(&h->hole_lock, &a);
	pthread_mutexattr_destroy(&a);
	return rc;
}

static void
block_dies(struct anrc_heap *h, void *p, size_t size)
{
	if (h->trash_free) {
		ANR_VG_UNDEFINED(h, p, size);
		memset(p, ANR_TRASH_BYTE, size);
	}
	ANR_VG_FREE(h, p);
	ANR_VG_NOACCESS(h, p, size);
}

ANRC_HOT int
anrc_theap_free(struct anrc_heap *h, struct anrc_theap *t, void *p, uint32_t s,
	       int locked)
{
	unsigned o = __atomic_load_n(&h->owner[s], __ATOMIC_ACQUIRE);
	struct anrc_page *pg = &h->pm[s];
	const struct anrc_class *k;
	size_t off, idx;
	uint64_t *bits, *rf, m, old;
	unsigned w;

	if (o == 0)
		return 0;
	k = &h->cls[pg->cls];
	off = (size_t)((char *)p - anrc_page_addr(h, s));
	idx = anrc_slab_index(k, off);
	if (idx * k->size != off || idx >= k->nobjs) {
		anrc_bad(h, "free", "pointer inside a block", p, locked);
		return 1;
	}
	w = (unsigned)(idx >> 6);
	m = UINT64_C(1) << (idx & 63);
	bits = anrc_slab_bits(h, s) + w;
	rf = anrc_slab_rfree(h, s) + w;
	if (t != NULL && o == t->id) {
		if ((*bits & m) == 0 || (LOAD(*rf) & m) != 0) {
			anrc_bad(h, "free", "double free (object not allocated)", p, locked);
			return 1;
		}
		block_dies(h, p, k->size);
		if (t->cur[pg->cls] == s)
			drop_word(h, t, pg->cls); /* nfree exact again */
		*bits &= ~m;
		pg->nfree++;
		STORE(t->cl[pg->cls].nfreed, t->cl[pg->cls].nfreed + 1);
		if (__builtin_expect(pg->nfree == k->nobjs, 0))
			emptied(h, t, pg->cls, s, locked);
		return 1;
	}
	if ((LOAD(*bits) & m) == 0 || (LOAD(*rf) & m) != 0) {
		anrc_bad(h, "free", "double free (object not allocated)", p, locked);
		return 1;
	}
	block_dies(h, p, k->size);
	old = __atomic_fetch_or(rf, m, __ATOMIC_SEQ_CST);
	if ((old & m) != 0) {
		anrc_bad(h, "free", "double free (object not allocated)", p, locked);
		return 1;
	}
	if (t != NULL) {
		STORE(t->rcount, t->rcount + 1);
		STORE(t->rbytes, t->rbytes + k->size);
	} else {
		__atomic_add_fetch(&h->th_rcount, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&h->th_rbytes, k->size, __ATOMIC_RELAXED);
	}
	if (__atomic_load_n(&h->owner[s], __ATOMIC_SEQ_CST) == 0) {
		/* The owner left meanwhile: fold the bit in ourselves. */
		if (!locked)
			anrc_lock_and_drain(h);
		if (h->pm[s].kind == ANR_PG_SLAB &&
		    __atomic_load_n(&h->owner[s], __ATOMIC_RELAXED) == 0)
			anrc_slab_collect_shared(h, s);
		if (!locked)
			anrc_unlock_and_return_pages(h);
	}
	return 1;
}

/* Owned slab s becomes shared (locked). */
static void
disown(struct anrc_heap *h, struct anrc_theap *t, unsigned c, uint32_t s)
{
	const struct anrc_class *k = &h->cls[c];
	size_t bytes = (size_t)k->npages << h->page_shift, live, nbits;
	uint64_t *bits = anrc_slab_bits(h, s);

	collect(h, t, s);
	holes_fill_locked(h, t, s, k->npages);
	ring_del(h, t, c, s);
	__atomic_store_n(&h->owner[s], 0, __ATOMIC_SEQ_CST);
	collect(h, t, s);
	/* Count from the bitmap: a fork may have cut an update short. */
	nbits = (size_t)k->words * 64;
	live = anrc_bits_count(bits, 0, k->nobjs);
	anrc_bits_set(bits, k->nobjs, nbits - k->nobjs);
	h->pm[s].nfree = (uint16_t)(k->nobjs - live);
	STORE(t->slab_bytes, t->slab_bytes - bytes);
	STORE(t->in_use_adj, t->in_use_adj - live * k->size);
	if (live == 0 && (h->empty_slab[c] != ANR_NIL ||
			  h->empty_pages + k->npages > ANR_EMPTY_CACHE_PAGES)) {
		anrc_slab_release_unlisted(h, s);
		return;
	}
	h->class_slabs[c]++;
	h->class_live[c] += live;
	h->slab_free += bytes - live * k->size;
	h->in_use += live * k->size;
	if (live == 0) {
		h->empty_slab[c] = s;
		h->empty_pages += k->npages;
	}
	if (live < k->nobjs)
		anrc_partial_push(h, c, s);
}

/*
 * Park t, whose thread exits (locked): when none of its slab objects is
 * live and fewer than ANR_PARKED_MAX theaps are parked, t keeps its slabs
 * for the next thread that claims a theap, which then takes none under
 * the lock for the classes t used (a thread per request built or adopted
 * some 85 slabs, each under the lock, in its first round).  What it keeps
 * is what a live thread may: in each class the current slab, and spares
 * within the cache bound (anrc_runs_room_for_slab, its kept runs having
 * gone back as at any exit); the rest goes back.  A give-back takes
 * parked theaps over and abandons them (anrc_theap_flush_locked).
 * Returns 1 if t is parked.
 */
static int
park_locked(struct anrc_heap *h, struct anrc_theap *t)
{
	if (!h->fast_free || LOAD(t->flush_wanted) || LOAD(t->slab_bytes) == 0 ||
	    __atomic_load_n(&h->th_parked, __ATOMIC_RELAXED) >= ANR_PARKED_MAX)
		return 0;
	for (unsigned c = 0; c < ANR_NCLASSES; c++) {
		uint32_t s = t->cur[c];
		drop_word(h, t, c);
		for (uint32_t j = 0; j < t->nslabs[c]; j++) {
			collect(h, t, s);
			if (h->pm[s].nfree != h->cls[c].nobjs)
				return 0;
			s = h->pm[s].next;
		}
	}
	__atomic_store_n(&t->rc.busy, 0, __ATOMIC_RELAXED);
	anrc_runs_flush_locked(h, t);
	/* Every slab is empty: each current one counted as kept, then the
	 * others as spares while the bound has room, so that the next owner
	 * starts within it and a give-back finds them all. */
	for (unsigned c = 0; c < ANR_NCLASSES; c++) {
		if (t->cur[c] != ANR_NIL && !t->cur_empty[c]) {
			t->cur_empty[c] = 1;
			t->empty_pages += h->cls[c].npages;
		}
	}
	for (unsigned c = 0; c < ANR_NCLASSES; c++) {
		uint32_t cur = t->cur[c], s = cur, n = t->nslabs[c], np = h->cls[c].npages;
		for (uint32_t j = 0; j < n; j++) {
			uint32_t next = h->pm[s].next;
			if (s != cur && spare_find(t, c, s) < 0) {
				if (t->nspare[c] < ANR_THEAP_SPARES && anrc_runs_room_for_slab(h, t, np)) {
					t->spare[c][t->nspare[c]++] = s;
					t->empty_pages += np;
				} else {
					release_owned(h, t, s);
				}
			}
			s = next;
		}
	}
	anrc_theap_publish(h, t);
	__atomic_add_fetch(&h->th_parked, 1, __ATOMIC_RELAXED);
	return 1;
}

void
anrc_theap_abandon_locked(struct anrc_heap *h, struct anrc_theap *t)
{
	/* its owner is gone or is the caller: the kept runs go back */
	__atomic_store_n(&t->rc.busy, 0, __ATOMIC_RELAXED);
	anrc_runs_flush_locked(h, t);
	for (unsigned c = 0; c < ANR_NCLASSES; c++)
		while (t->cur[c] != ANR_NIL)
			disown(h, t, c, t->cur[c]);
	/* What the owner counted joins the heap's counts (its bytes in use
	 * went with its slabs, counted from their bitmaps). */
	__atomic_add_fetch(&h->freed_bytes, freed_pending(h, t), __ATOMIC_RELAXED);
	STORE(t->published, 0);
	for (unsigned c = 0; c < ANR_NCLASSES; c++) {
		h->allocs += t->cl[c].nalloc;
		h->frees += t->cl[c].nfreed;
		STORE(t->cl[c].nalloc, 0);
		STORE(t->cl[c].nfreed, 0);
	}
	h->allocs += t->run_allocs;
	h->frees += t->run_frees;
	STORE(t->run_allocs, 0);
	STORE(t->run_frees, 0);
	__atomic_add_fetch(&h->th_rcount, t->rcount, __ATOMIC_RELAXED);
	__atomic_add_fetch(&h->th_rbytes, t->rbytes, __ATOMIC_RELAXED);
	__atomic_add_fetch(&h->th_ccount, t->ccount, __ATOMIC_RELAXED);
	__atomic_add_fetch(&h->th_cbytes, t->cbytes, __ATOMIC_RELAXED);
	STORE(t->in_use_adj, 0);
	STORE(t->rcount, 0);
	STORE(t->rbytes, 0);
	STORE(t->ccount, 0);
	STORE(t->cbytes, 0);
	STORE(t->publish_left, ANR_FREED_PUBLISH);
	STORE(t->slab_bytes, 0);
	anrc_want_release_if_over_mark(h);
}

void
anrc_theap_totals(struct anrc_heap *h, size_t *in_use, size_t *slab_bytes,
		 uint64_t *allocs, uint64_t *frees)
{
	uint64_t rc = LOAD(h->th_rcount), rb = LOAD(h->th_rbytes);
	uint64_t cc = LOAD(h->th_ccount), cb = LOAD(h->th_cbytes);

	*in_use = *slab_bytes = 0;
	*allocs = *frees = 0;
	for (unsigned i = 0, nt = anrc_theaps_used(h); i < nt; i++) {
		struct anrc_theap *t = &h->th[i];
		if (__atomic_load_n(&t->claimed, __ATOMIC_RELAXED) == ANR_TH_FREE)
			continue; /* never used, or abandoned: its counts are h's */
		*in_use += theap_in_use(h, t);
		*slab_bytes += LOAD(t->slab_bytes);
		for (unsigned c = 0; c < ANR_NCLASSES; c++) {
			*allocs += LOAD(t->cl[c].nalloc);
			*frees += LOAD(t->cl[c].nfreed);
		}
		*allocs += LOAD(t->run_allocs);
		*frees += LOAD(t->run_frees);
		rc += LOAD(t->rcount);
		rb += LOAD(t->rbytes);
		cc += LOAD(t->ccount);
		cb += LOAD(t->cbytes);
	}
	/* Frees that wait in remote-free bitmaps are done for the caller;
	 * their bytes count as free slab space. */
	*in_use -= (size_t)(rb - cb);
	*frees += rc;
	(void)cc;
}

uint64_t
anrc_theap_freed_pending(const struct anrc_heap *h)
{
	struct anrc_theap *t = anrc_theap_peek(h);
	return t != NULL ? freed_pending(h, t) : 0;
}

void
anrc_theap_fork_child(struct anrc_heap *h)
{
	/* (the thread's theap of h even when its last call was to another
	 * heap: the thread key still names it) */
	struct anrc_theap *mine = anrc_theap_peek(h);
	unsigned parked = 0;

	/* Parked theaps stay parked (parking is done under the lock the
	 * fork held); one whose thread parked it but had not yet said so is
	 * abandoned, and the count is made again. */
	for (unsigned i = 0, nt = anrc_theaps_used(h); i < nt; i++) {
		struct anrc_theap *t = &h->th[i];
		int st = __atomic_load_n(&t->claimed, __ATOMIC_RELAXED);
		parked += st == ANR_TH_PARKED;
		if (t == mine || st != ANR_TH_OWNED)
			continue;
		anrc_theap_abandon_locked(h, t);
		__atomic_store_n(&t->claimed, ANR_TH_FREE, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&h->th_parked, parked, __ATOMIC_RELAXED);
}

size_t
anrc_theap_flush_locked(struct anrc_heap *h)
{
	struct anrc_theap *mine = anrc_theap_peek(h);
	size_t given = 0;

	for (unsigned i = 0, nt = anrc_theaps_used(h); i < nt; i++) {
		struct anrc_theap *t = &h->th[i];
		if (t == mine) {
			given += flush_spares(h, t);
		} else if (claim(h, t, ANR_TH_PARKED)) {
			/* no thread's: taken over, every slab goes back */
			given += LOAD(t->slab_bytes);
			anrc_theap_abandon_locked(h, t);
			__atomic_store_n(&t->claimed, ANR_TH_FREE, __ATOMIC_RELEASE);
		} else if (__atomic_load_n(&t->claimed, __ATOMIC_RELAXED) == ANR_TH_OWNED) {
			__atomic_store_n(&t->flush_wanted, 1, __ATOMIC_RELAXED);
		}
	}
	return given;
}

void
anrc_theap_class_counts(struct anrc_heap *h, unsigned c, size_t *slabs, size_t *live)
{
	const struct anrc_class *k = &h->cls[c];

	*slabs = *live = 0;
	for (unsigned i = 0, nt = anrc_theaps_used(h); i < nt; i++) {
		struct anrc_theap *t = &h->th[i];
		uint32_t n = LOAD(t->nslabs[c]), s = LOAD(t->cur[c]);
		*slabs += n;
		/* The owner may be changing its ring: stay inside the page map
		 * and stop after as many steps as it had slabs. */
		for (uint32_t j = 0; j < n && s < h->npages; j++) {
			*live += k->nobjs - LOAD(h->pm[s].nfree);
			s = LOAD(h->pm[s].next);
		}
		/* the held word's objects are free but left out of nfree */
		if (n > 0) {
			size_t held = (size_t)anrc_popcount64(LOAD(t->cl[c].avail));
			*live = *live > held ? *live - held : 0;
		}
	}
}
