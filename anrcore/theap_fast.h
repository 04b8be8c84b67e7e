/*
 * theap_fast.h - the fast paths of thread heaps (theap.c explains them),
 * inlined into the public calls of heap.c and into gmalloc's malloc and
 * free: an allocation from the current slab and a free into a slab of the
 * calling thread, neither taking a lock nor doing an atomic
 * read-modify-write.
 */
#ifndef ANRCORE_THEAP_FAST_H
#define ANRCORE_THEAP_FAST_H

#include "anrcore_internal.h"

/* The owner's store of a counter other threads read with atomic loads
 * (statistics): one aligned store, which the compiler keeps whole and
 * addresses from the registers it already has (an __atomic_store_n here
 * made it compute the address again). */
#define ANR_TH_STORE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))
/* The owner's increment of such a 64-bit counter: on x86-64 one add to
 * memory, which is one aligned store too (the volatile store above costs
 * a load, an add and a store). */
#if defined(__x86_64__)
#define ANR_TH_INC(x) __asm__("addq $1, %0" : "+m"(x) : : "cc")
#else
#define ANR_TH_INC(x) ANR_TH_STORE(x, (x) + 1)
#endif

/* The index of the lowest set bit of a (not 0), as a size_t: on x86-64
 * without the sign extension __builtin_ctzll's int costs (tzcnt, which
 * a processor without it runs as bsf: the same for a nonzero a). */
static inline __attribute__((always_inline)) size_t
anrc_lowest_bit(uint64_t a)
{
#if defined(__x86_64__)
	size_t r;

	__asm__("tzcntq %1, %0" : "=r"(r) : "rm"(a) : "cc");
	return r;
#else
	return (size_t)__builtin_ctzll(a);
#endif
}

/*
 * An object of class c from t's current slab, without a call: the lowest
 * object of the word held in t->cl[c].avail.  NULL when that word is used up
 * (anrc_theap_alloc loads the next one, or refills the slab), so that the
 * inlined path needs no saved register.
 */
static inline __attribute__((always_inline)) void *
anrc_theap_alloc_nocall(struct anrc_heap *h, struct anrc_theap *t, unsigned c)
{
	struct anrc_tclass *k = &t->cl[c];
	uint64_t a, m;
	size_t off;
	char *p;

	/* (k once in a register: the compiler otherwise addresses the line
	 * from t and computes k again for anrc_tl.last_k) */
	__asm__("" : "+r"(k));
	a = k->avail;
	if (__builtin_expect(a == 0, 0))
		return NULL;
	/* The slab's nfree already left out the held word's objects
	 * (anrc_theap_load_word), and a current slab counted as empty has
	 * no held word: nothing but the bitmap and one counter to write. */
	k->avail = a & (a - 1);
	m = a ^ k->avail; /* the lowest bit of a */
	*k->wbits |= m;
	ANR_TH_INC(k->nalloc);
	off = k->woff + anrc_lowest_bit(a) * k->size;
	anrc_tl.last_off = off;
	anrc_tl.last_k = k;
	anrc_tl.last_m = m;
	p = h->data + off;
	/* (an object in the data pages is never NULL: the callers' test of
	 * the result then goes) */
	if (p == NULL)
		__builtin_unreachable();
	return p;
}

/* An object of class c from t's slabs, the current one refilled (without
 * the lock) when full; NULL: the slow path. */
static inline __attribute__((always_inline)) void *
anrc_theap_alloc(struct anrc_heap *h, struct anrc_theap *t, unsigned c)
{
	if (t->cl[c].avail == 0 && anrc_theap_load_word(h, t, c) == 0 &&
	    (anrc_theap_refill_unlocked(h, t, c) != 0 || anrc_theap_load_word(h, t, c) == 0))
		return NULL;
	return anrc_theap_alloc_nocall(h, t, c);
}

/*
 * Judge the object at data_off (bytes from h->data) of slab s, of class
 * k: 1 when t owns the slab and the offset is a live object's start (not
 * freed by another thread either), with its bitmap word in *bpp, its bit
 * in *mp and the word's value in *vp; 0 otherwise.  Nothing is written.
 */
static inline __attribute__((always_inline)) int
anrc_theap_judge_local(struct anrc_heap *h, struct anrc_theap *t, const struct anrc_tclass *k,
		       size_t data_off, uint32_t s, uint64_t **bpp, uint64_t *mp, uint64_t *vp)
{
	size_t off = data_off - ((size_t)s << h->page_shift), idx, w;
	uint64_t m, v, *bp;

	if (h->owner[s] != t->id)
		return 0;
	if (__builtin_expect(!anrc_slab_start(k->magic, off, &idx) || idx >= k->nobjs, 0))
		return 0;
	w = anrc_slab_word(h, s) + (idx >> 6);
	m = UINT64_C(1) << (idx & 63);
	bp = &h->slabbits[w];
	v = *bp;
	/* the remote-free word, anrc_slab_rfree_k's, k->words words on
	 * (written from bp: through that call the compiler computes the
	 * slab's word again, five instructions a free) */
	if (__builtin_expect((v & m) == 0 || (bp[k->words] & m) != 0, 0))
		return 0;
	*bpp = bp;
	*mp = m;
	*vp = v;
	return 1;
}

/*
 * Free the object at data_off (bytes from h->data) of slab s, of class c,
 * which the calling thread's t owns, when no trash fill and no valgrind
 * request is due and the free does not empty the slab, so that no call is
 * needed.  Returns 1 when done; 0, having written nothing, when this is
 * not that case or the offset is not a live object's start:
 * anrc_theap_free() decides then.
 */
static inline __attribute__((always_inline)) int
anrc_theap_free_local(struct anrc_heap *h, struct anrc_theap *t, size_t data_off, uint32_t s,
		      unsigned c)
{
	struct anrc_tclass *tc = &t->cl[c];
	uint64_t m, v, *bp;

	if (!anrc_theap_judge_local(h, t, tc, data_off, s, &bp, &m, &v))
		return 0;
	/* Judged: now the writes. */
	if (tc->wbits == bp) {
		/* In the word malloc holds: handed out again first, and
		 * still left out of the slab's nfree. */
		tc->avail |= m;
	} else {
		struct anrc_page *pg = &h->pm[s];
		unsigned nfree = pg->nfree + 1u;
		/* Emptied: anrc_theap_free keeps it or gives it back. */
		if (__builtin_expect(nfree == tc->nobjs, 0))
			return 0;
		pg->nfree = (uint16_t)nfree;
	}
	*bp = v & ~m;
	ANR_TH_INC(tc->nfreed);
	return 1;
}

/*
 * The public calls' fast paths, also inlined by gmalloc's malloc and free.
 * anrc_fast_class: the class of a request of size bytes when it is small,
 * the calling thread's theap is of h and no valgrind request is due; -1
 * otherwise.  anrc_alloc_fast: an object of that theap's held word; NULL:
 * call anrc_alloc.
 */
static inline __attribute__((always_inline)) int
anrc_fast_class(struct anrc_heap *h, size_t size)
{
	if (__builtin_expect(size > ANR_SLAB_MAX || anrc_tl.uid != h->alloc_uid, 0))
		return -1;
	return h->class_of[(size + ANR_ALIGN - 1) / ANR_ALIGN];
}

static inline __attribute__((always_inline)) void *
anrc_alloc_fast(struct anrc_heap *h, size_t size)
{
	int c = anrc_fast_class(h, size);

	return c < 0 ? NULL : anrc_theap_alloc_nocall(h, anrc_tl.t, (unsigned)c);
}

/* Page i (entry pg, kind read once) is a slab's: 1, its first page in *sp. */
static inline __attribute__((always_inline)) int
anrc_slab_at(const struct anrc_page *pg, uint32_t kind, size_t i, uint32_t *sp)
{
	size_t dist;

	/* A slab's first page or a later one, told apart without a branch:
	 * objects of either kind come in any order, and a branch on it was
	 * mispredicted on a third of the frees of a random churn. */
	if (__builtin_expect((kind | 1u) != ANR_PG_SLAB_BODY, 0))
		return 0;
	dist = pg->npages & -(size_t)(kind & 1u); /* a later page: its distance */
	*sp = (uint32_t)(i - dist);
	/* (a bad pointer into a page another thread is turning into a slab
	 * under the lock may read the kind new and the distance old) */
	return dist <= i;
}

/*
 * The slab p lies in, when the calling thread's theap is of h and the
 * fast paths are on (no trash fill, no valgrind requests): 1 with its
 * first page in *sp, its class in *cp (from p's own page: a slab's pages
 * all carry it) and p's offset from h->data in *offp; 0 otherwise (NULL
 * too).
 */
static inline __attribute__((always_inline)) int
anrc_fast_slab(struct anrc_heap *h, const void *p, size_t *offp, uint32_t *sp, unsigned *cp)
{
	size_t i = anrc_data_page(h, p, offp);
	const struct anrc_page *pg;
	uint32_t kind;

	if (__builtin_expect(i >= h->npages || anrc_tl.uid != h->free_uid, 0))
		return 0;
	pg = &h->pm[i];
	kind = __atomic_load_n(&pg->kind, __ATOMIC_RELAXED);
	*cp = pg->cls;
	return anrc_slab_at(pg, kind, i, sp);
}

/*
 * Free p if it is the object malloc handed out last to the calling thread
 * (anrc_tl.last_off is p's offset from h->data) and still live: while
 * last_off is set, the word it came from is still held, so its slab is
 * still the thread's current one and the object's allocation and
 * remote-free bits are known without the page map; a free of that object
 * by any other way cleared the first, another thread's set the second.
 * 1 when done; 0, having written nothing, otherwise.
 */
static inline __attribute__((always_inline)) int
anrc_free_last(struct anrc_heap *h, void *p)
{
	struct anrc_tclass *k;
	uint64_t m, *bp, v;

	if ((size_t)((char *)p - h->data) != anrc_tl.last_off ||
	    __builtin_expect(anrc_tl.uid != h->free_uid, 0))
		return 0;
	k = anrc_tl.last_k;
	m = anrc_tl.last_m;
	bp = k->wbits;
	v = *bp;
	if (__builtin_expect((v & m) == 0 || (bp[k->words] & m) != 0, 0))
		return 0;
	/* In the word malloc holds: handed out again first, and still left
	 * out of the slab's nfree (as in anrc_theap_free_local). */
	k->avail |= m;
	*bp = v & ~m;
	ANR_TH_INC(k->nfreed);
	anrc_tl.last_off = ANR_LAST_NONE;
	return 1;
}

/*
 * anrc_free_slab_fast: 1 if p was a live object of a slab the calling
 * thread owns and it is now free (judged from the metadata first); 0 for
 * everything else, NULL too.  anrc_free_fast: the object malloc handed
 * out last first (anrc_free_last), then that; 0: call anrc_free.
 */
static inline __attribute__((always_inline)) int
anrc_free_slab_fast(struct anrc_heap *h, void *p)
{
	size_t off;
	uint32_t s;
	unsigned c;

	/* No test of p's alignment: an object's start in a slab, which
	 * anrc_theap_free_local requires, is aligned (class sizes are
	 * multiples of ANR_ALIGN). */
	return anrc_fast_slab(h, p, &off, &s, &c) && anrc_theap_free_local(h, anrc_tl.t, off, s, c);
}

static inline __attribute__((always_inline)) int
anrc_free_fast(struct anrc_heap *h, void *p)
{
	return anrc_free_last(h, p) || anrc_free_slab_fast(h, p);
}

/*
 * The usable size of p when it is a live object of a slab the calling
 * thread owns (judged as anrc_free_fast judges; nothing written, no lock);
 * 0 otherwise: the caller takes the locked path.
 */
static inline size_t
anrc_usable_local(struct anrc_heap *h, const void *p)
{
	size_t off;
	uint32_t s;
	uint64_t *bp, m, v;
	const struct anrc_tclass *k;
	unsigned c;

	if (!anrc_fast_slab(h, p, &off, &s, &c))
		return 0;
	k = &anrc_tl.t->cl[c];
	if (!anrc_theap_judge_local(h, anrc_tl.t, k, off, s, &bp, &m, &v))
		return 0;
	return k->size;
}

#endif /* ANRCORE_THEAP_FAST_H */
