/*
 * anrcore_internal.h - state of one heap and the interfaces between the
 * files of the core.  heap.c explains the design; each file owns one idea:
 *
 *   bitmap.c    bit ranges and multi-level bitmaps
 *   pages.c     resident accounting and the budget
 *   release.c   page return: madvise hysteresis, slices, metadata pages
 *   spans.c     spans: good-fit allocator of page runs (two-level bitmaps)
 *   slab.c      size classes and slabs of small objects (shared, under the lock)
 *   theap.c     thread heaps: slabs owned by one thread, no lock on their
 *               fast paths, frees from other threads with one atomic op
 *   theap_fast.h  their inlined fast paths
 *   runcache.c  page runs of medium blocks a thread keeps for itself
 *   returner.c  the optional page-return thread
 *   stats.c     statistics
 *   report.c    the heap report
 *   walk.c      walking live blocks, the block around an address
 *   check.c     the consistency check
 *   layer.c     the heap lock lent to anr_malloc
 *   backtrace.c call stacks and code addresses
 *   heap.c      creation, locking, deferred frees, the public calls
 */
#ifndef ANRCORE_INTERNAL_H
#define ANRCORE_INTERNAL_H

#include "anrcore.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Page map entry kinds.  NONE: interior page of a span (or never used). */
enum anrc_kind {
	ANR_PG_NONE = 0,
	ANR_PG_FREE,      /* first page of a free span; npages = length */
	ANR_PG_FREE_TAIL, /* last page of a free span of >= 2 pages; npages = length */
	ANR_PG_LARGE,     /* first page of a large block; npages = length */
	ANR_PG_SLAB,      /* first page of a slab; cls, nfree */
	ANR_PG_SLAB_BODY, /* later page of a slab; npages = distance to its first page, cls */
	ANR_PG_TRIM,      /* first page of free pages being given back; npages */
	ANR_PG_CACHED,    /* first page of a freed run a thread keeps (runcache.c) */
};

/* One entry per data page, in the metadata area (never next to user data). */
struct anrc_page {
	uint32_t npages;
	uint32_t next;    /* free list (free spans) or partial list (slabs) */
	uint32_t prev;
	uint8_t kind;
	uint8_t cls;
	uint16_t nfree;   /* slabs: free objects */
};

#define ANR_NIL UINT32_MAX
/* The code of malloc's and free's short ways (gmalloc's entry points, the
 * one-call refill and free of a thread's slabs and kept runs) in one
 * section, which the linker puts together: a call whose code went cold
 * fetches one or two pages of it, not four or five. */
#define ANRC_HOT __attribute__((section(".text.hot.anrc")))
#define ANR_DEFER_SLOTS 256 /* a power of two */
#define ANR_TRIM_BATCH 8     /* page runs given back per unlocked round */
#define ANR_TRIM_ROUNDS 1    /* rounds at most per unlock */
#define ANR_TRIM_SLICE_PAGES 1024 /* pages given back per round at most */
#define ANR_DRAIN_MAX 16     /* deferred frees done per lock taken at most */
#define ANR_MARK_SHIFT_MAX 5 /* marks grow to 32 x under page churn at most */
/* A trim with grown marks keeps this much (or the low mark set) at most. */
#define ANR_KEEP_GROWN_MAX ((size_t)1 << 20)
#define ANR_SHRINK_DIV 4 /* a shrinking heap's band: the marks / this (release.c) */

/* Size classes: see slab.c for the mapping.  Larger requests are page
 * runs (a thread keeps its own up to ANR_RUN_CACHE_MAX, runcache.c): a
 * class of a few objects per slab built and tore down a slab under the
 * lock on most calls, and kept whole slabs resident for one object. */
#define ANR_SLAB_MAX ((size_t)4096)
#define ANR_NCLASSES 28
#define ANR_SLAB_SPAN_MAX 16 /* pages of one slab at most */
/*
 * Objects of one slab at least (where ANR_SLAB_SPAN_MAX pages hold them):
 * a class of one to six objects a slab (640 B to 4 KiB in one to three pages)
 * took a new slab every few allocations and emptied one every few frees,
 * each a longer path than the held word's; the pages of a large slab that
 * no live object touches go back as holes (theap.c).
 */
#define ANR_SLAB_MIN_OBJS 16
/*
 * Slabs of classes up to ANR_SLAB_GROUPED_MAX bytes span a multiple of
 * ANR_SLAB_GROUP pages and start at a page index that is one: the page map
 * entries, allocation bitmaps and remote-free bitmaps of one slab then fill
 * cache lines no other slab shares, so two threads working on their own
 * small objects never write to the same line.  Larger classes (fewer than
 * eight objects a page) span any number of pages.
 */
#define ANR_CACHE_LINE 64
#define ANR_SLAB_GROUP (ANR_CACHE_LINE / sizeof(struct anrc_page))
#define ANR_SLAB_GROUPED_MAX 512
#define ANR_EMPTY_CACHE_PAGES 16 /* pages of empty slabs kept for reuse */
/* Empty slabs a thread keeps per class at most (within its bound of pages
 * of empty slabs): a class of few objects per slab needs several for a
 * few dozen live objects. */
#define ANR_THEAP_SPARES 16
/* Slabs a call looks at for pages to give back (theap.c's holes). */
#define ANR_HOLE_SLABS 2
/* The page-return helper's pass over every thread's slabs: slabs looked
 * at per hold of the lock, and pages given back in one batch at most
 * (what a thread that takes a page of the batch again waits for). */
#define ANR_HOLE_HELPER_SLABS 16
#define ANR_HOLE_BATCH 64
/* The helper begins a pass at most once in this long (ms) while the
 * program works, so that churn does not keep it looking. */
#define ANR_HOLE_PASS_MS 1000

/* A run of pages to give back: n from page s. */
struct anrc_run {
	uint32_t s, n;
};

struct anrc_class {
	uint32_t size;
	uint32_t npages;
	uint32_t nobjs;
	uint32_t words;  /* bitmap words of a slab: ceil(nobjs / 64) */
	uint64_t magic; /* ceil(2^64 / size) */
};

/*
 * Object index of byte offset o in a slab without a division, and whether
 * o is an object's first byte, from one multiplication.  With
 * m = ceil(2^64 / size) = (2^64 + e) / size, 0 <= e < size, and
 * o = q size + r:  o m = q 2^64 + (r 2^64 + o e) / size, where
 * (r 2^64 + o e) / size < 2^64 because o e < 2^64 (o < 2^20: 16 pages of
 * up to 64 KiB; e < size <= 2^12).  So the high 64 bits of the product
 * are q, and the low ones, (r 2^64 + o e) / size, are below m exactly when
 * r = 0 (for r >= 1 they are at least (2^64 + o e) / size >= m).  The
 * tests compare both with a division for every offset of every class.
 */
static inline size_t
anrc_slab_index(const struct anrc_class *k, size_t o)
{
	return (size_t)(((unsigned __int128)o * k->magic) >> 64);
}

/* 1 if offset o is an object's first byte, its index in *idx (magic: the
 * class's, k->magic). */
static inline int
anrc_slab_start(uint64_t magic, size_t o, size_t *idx)
{
	unsigned __int128 x = (unsigned __int128)o * magic;

	*idx = (size_t)(x >> 64);
	return (uint64_t)x < magic;
}

/* Bits set in v, without a call into libgcc on CPUs built without popcnt. */
static inline unsigned
anrc_popcount64(uint64_t v)
{
#ifdef __POPCNT__
	return (unsigned)__builtin_popcountll(v);
#else
	v = v - ((v >> 1) & UINT64_C(0x5555555555555555));
	v = (v & UINT64_C(0x3333333333333333)) + ((v >> 2) & UINT64_C(0x3333333333333333));
	v = (v + (v >> 4)) & UINT64_C(0x0f0f0f0f0f0f0f0f);
	return (unsigned)((v * UINT64_C(0x0101010101010101)) >> 56);
#endif
}

/* Good-fit allocator of page runs: first level by power of two, second
 * level splits each power of two into ANR_SL_COUNT lists. */
#define ANR_SL_LOG2 4
#define ANR_SL_COUNT (1u << ANR_SL_LOG2)
#define ANR_FL_COUNT (32 - ANR_SL_LOG2 + 1)
/* Zones of the data pages (spans.c): slabs come from the first, page runs
 * from the second, each from the other when its own has no room.  A heap
 * of fewer than ANR_ZONE_MIN_PAGES data pages has one zone (the second);
 * a larger one gives the first 1 / 2^ANR_ZONE_SHIFT of its pages to slabs. */
enum { ANR_ZONE_SLABS, ANR_ZONE_RUNS, ANR_ZONES };
#define ANR_ZONE_MIN_PAGES ((uint32_t)1 << 18)
#define ANR_ZONE_SHIFT 4

/*
 * A bitmap with summary levels: bit k of level L+1 says word k of level L
 * is not zero, up to a level of one word, so the highest set bit below a
 * position is found by looking at two words per level at most (see
 * anrc_bm2_prev), whatever the size of the heap.  Level 0 is w.
 *
 * The heap's four page bitmaps (resident, dirty, heads, fheads: a bit per
 * data page) are interleaved a word at a time, each level of them in one
 * area: word k of one of them is w[k * ANR_PB_WAYS], the next
 * ANR_PB_WAYS - 1 words being the others' word k.  A small heap thus finds
 * the bits of its first pages in two metadata pages (the level-0 words and
 * the summaries), where four bitmaps laid end to end took eight or more,
 * each a fault of its own when a process starts.
 */
#define ANR_BM_LEVELS 6 /* 2^32 bits need 6 levels of 64-bit words */
#define ANR_PB_WAYS 4
enum { ANR_PB_RESIDENT, ANR_PB_DIRTY, ANR_PB_HEADS, ANR_PB_FHEADS };
struct anrc_bm2 {
	uint64_t *w;            /* = lv[0] */
	unsigned nlevels;
	uint64_t *lv[ANR_BM_LEVELS]; /* word k of level l: lv[l][k * ANR_PB_WAYS] */
	size_t nw[ANR_BM_LEVELS];
};

/*
 * A thread heap (theap.c): the slabs one thread owns.  Only the owner
 * touches its fields and the allocation bitmaps of its slabs; other
 * threads read the counters (relaxed) for statistics.  For each class the
 * owned slabs form a ring linked through their page map entries
 * (next/prev); cur is the one allocated from, spare an empty one kept.
 */
/*
 * Page runs a thread keeps (runcache.c): blocks of more than ANR_SLAB_MAX
 * and at most ANR_RUN_CACHE_MAX bytes that a thread allocated, freed by
 * it, stay charged and resident in its cache (at most ANR_RUN_CACHE_BYTES,
 * ANR_RUN_CACHE_SLOTS runs) for its next blocks of that page count down
 * to half of it.
 */
#define ANR_RUN_CACHE_MAX ((size_t)64 << 10)
#define ANR_RUN_CACHE_BYTES ((size_t)512 << 10)
#define ANR_RUN_CACHE_SLOTS 16
#define ANR_RC_HEADLESS 0x80000000u
struct anrc_runcache {
	int busy;                /* atomic: the owner or a flush is using it */
	int flush_wanted;        /* atomic: give the runs back at the next use */
	unsigned n;              /* runs kept, oldest first */
	/* of them rests of a cut run (a free looks for one) */
	unsigned short headless;
	/* atomic: a fork waits for busy (anrc_runs_hold): no one else enters */
	unsigned short hold_wanted;
	size_t pages;            /* their pages */
	/* Bytes of the live blocks the theap owns: in_use - gone, modulo
	 * 2^64 (anrc_rc_in_use).  in_use is the owner's (blocks it made or
	 * resized, less those it freed; plain stores, no atomic
	 * read-modify-write: a lock-prefixed one waits for every store
	 * before it, a memset of the block just freed too); gone is what
	 * other threads' frees took off (atomic, under the heap lock).
	 * Both stay with the theap when its thread exits, as do the
	 * blocks, which the theap's next owner may free.  At 0 the newest
	 * kept run may be cut. */
	size_t in_use, gone;
	/* first page and length of each (together: the newest run is one
	 * line's read); ANR_RC_HEADLESS in a length: the rest of a cut run,
	 * without a head bit (runcache.c) */
	struct {
		uint32_t s, len;
	} run[ANR_RUN_CACHE_SLOTS];
	uint64_t locks;          /* heap lock taken for the cache (tests) */
};

/* Bytes of the live blocks of c's theap (read by any thread). */
static inline size_t
anrc_rc_in_use(const struct anrc_runcache *c)
{
	return __atomic_load_n(&c->in_use, __ATOMIC_RELAXED) -
	       __atomic_load_n(&c->gone, __ATOMIC_RELAXED);
}

/* Pages of kept run i of c. */
static inline size_t
anrc_rc_len(const struct anrc_runcache *c, unsigned i)
{
	return c->run[i].len & ~ANR_RC_HEADLESS;
}

#define ANR_THEAPS 127         /* thread heaps per heap (owner ids 1..127) */
/*
 * A thread that exits with none of its slab objects live leaves its theap
 * parked, with the empty slabs a live thread may keep, for the next thread
 * (theap.c); at most ANR_PARKED_MAX theaps are parked at a time.
 */
#define ANR_PARKED_MAX 4
/* struct anrc_theap's claimed */
enum { ANR_TH_FREE, ANR_TH_OWNED, ANR_TH_PARKED };
#define ANR_THEAP_SCAN 4       /* slabs looked at per refill without the lock */
#define ANR_FREED_PUBLISH ((int64_t)1 << 20) /* bytes noted before they are published */
/* What the fast paths of one class use, together: one cache line, at a
 * power-of-two stride. */
struct anrc_tclass {
	/*
	 * The word malloc takes objects from: avail holds free objects of
	 * the bitmap word *wbits of slab cur[c] (a subset of its clear bits),
	 * the first of that word's objects is woff bytes from h->data (an
	 * offset, not a pointer: a leak checker scanning memory must not find
	 * a free object's address here).  Zero when cur[c] changes (wbits
	 * NULL then); only this thread sets bits in its slabs' bitmaps, so the
	 * objects stay free until it takes them, and its free of an object of
	 * that word puts the object back in it.
	 */
	uint64_t avail;
	uint64_t *wbits;
	size_t woff;
	/* Objects handed out and freed locally: with in_use_adj (bytes
	 * adopted, less those folded in from other threads' frees and those
	 * disowned; modulo 2^64) they make the bytes in use, so that a fast
	 * path adds 1 to one counter. */
	uint64_t nalloc, nfreed;
	/* The class's facts (h->cls[c]'s), on the line the fast paths
	 * touch anyway: a free judges its object from these. */
	size_t size;
	uint64_t magic;
	uint32_t nobjs, words;
} __attribute__((aligned(64)));

struct anrc_theap {
	/* What the fast paths of small objects use, a line per class, first:
	 * a class's line is the theap plus 64 times its class. */
	struct anrc_tclass cl[ANR_NCLASSES];
	/* What a block of a kept run touches comes next, in two lines (with
	 * up to six runs kept): the owner id, the kept slab pages that share
	 * the cache's bound, the freed bytes to publish, the counts of such
	 * blocks, then the cache (runcache.c). */
	uint8_t id __attribute__((aligned(64))); /* owner id (index + 1) */
	size_t empty_pages;      /* pages of empty slabs kept: spares, empty curs */
	/* Freed bytes not yet added to h->freed_bytes: the local frees' bytes
	 * (cl[].nfreed times the class sizes) less published, which is what
	 * they were at the last publication, plus ANR_FREED_PUBLISH -
	 * publish_left noted by other paths (at 0 or below they are added;
	 * set when claimed).  The slow paths publish (anrc_theap_publish). */
	int64_t publish_left;
	uint64_t run_allocs, run_frees; /* runcache.c: blocks of kept runs */
	struct anrc_runcache rc; /* runcache.c */
	int claimed;             /* atomic ANR_TH_*: free, a thread's, or parked */
	int flush_wanted;        /* atomic: give the spare slabs back */
	/* Holes (theap.c): pages of its slabs given back, and the pass over
	 * its slabs that looks for more after a page-return round (class
	 * hole_c, ANR_NCLASSES when none is under way; slab hole_s next,
	 * hole_left more of its ring). */
	size_t holes;
	unsigned holes_seen;     /* h->trims when the last pass done began */
	unsigned hole_trims;     /* h->trims when the pass under way began */
	unsigned hole_c;
	uint32_t hole_s, hole_left;
	/* atomic: the slab the helper looks at for holes (ANR_NIL: none);
	 * see set_cur */
	uint32_t probe;
	int in_lock;             /* allocating under the heap lock (heap.c) */
	uint64_t published;
	uint32_t cur[ANR_NCLASSES];
	/* kept empty slabs of each class, in its ring and counted in
	 * empty_pages: spare[c][0 .. nspare[c] - 1] */
	uint32_t spare[ANR_NCLASSES][ANR_THEAP_SPARES];
	uint8_t nspare[ANR_NCLASSES];
	uint32_t nslabs[ANR_NCLASSES];   /* slabs in each ring */
	uint8_t cur_empty[ANR_NCLASSES]; /* cur is empty and counted in empty_pages
					  * (it has no held word then) */
	uint32_t pair;           /* the group beside the last new slab's (pages.c) */
	size_t in_use_adj;
	size_t slab_bytes;       /* bytes of owned slab pages */
	/* Frees of other threads' objects by this thread, and frees of this
	 * thread's objects by others that it has folded in: their difference,
	 * summed, is what waits in the remote-free bitmaps. */
	uint64_t rcount, rbytes, ccount, cbytes;
} __attribute__((aligned(64)));

/* A bad pointer found under the heap lock, told after it: the operation,
 * what is wrong, and where the pointer lies (0: elsewhere, 1: data, 2:
 * metadata; off from the start of that area). */
#define ANR_BAD_NOTES 8
struct anrc_bad_note {
	const char *op, *what;
	unsigned where;
	size_t off;
};

struct anrc_heap {
	/* Fixed at creation (class sizes, name and modes included).  What
	 * the fast paths read of it but class_of (layout, page map, slab
	 * bitmaps, owners, the uids and modes) fills the first cache line
	 * (the heap starts the reservation): a free whose lines went cold
	 * reads one line of the heap, not three. */
	char *data;            /* first data page */
	struct anrc_page *pm;   /* page map */
	/* Slab bitmaps, 2 x bmw words per data page (a slab uses those of
	 * its pages from its first: its allocation bitmap, then its
	 * remote-free bitmap of objects freed by other threads, atomic), in
	 * groups of ANR_BITS_GROUP pages that fill one metadata page (see
	 * anrc_slab_word). */
	uint64_t *slabbits;
	uint8_t *owner;        /* per page (slab heads): owning theap id, 0 shared */
	/* The uid (below) when the fast allocation path may be taken (no
	 * valgrind requests due), resp. the fast free path (fast_free);
	 * ANR_UID_NONE otherwise: one comparison with the thread's cached uid
	 * decides both the heap and the mode. */
	uint64_t alloc_uid, free_uid;
	unsigned page_shift;
	uint32_t npages;       /* data pages */
	unsigned bmw;
	int fast_free;         /* neither trash fill nor valgrind requests */
	char *base;            /* the reservation */
	size_t reserve;
	size_t page;
	uint64_t *resident;    /* page may be resident (a page bitmap, no levels) */
	struct anrc_bm2 dirty;  /* resident and free (returnable) */
	struct anrc_bm2 heads;  /* first page of a live span */
	struct anrc_bm2 fheads; /* first page of a free span */
	enum anrc_bad_free_action bad_free;
	int trash_free;
	int vg;                /* valgrind client requests are on */
	/* Size class of a request of s <= ANR_SLAB_MAX bytes: class_of[(s + 15) / 16]
	 * (every class size is a multiple of 16). */
	uint8_t class_of[ANR_SLAB_MAX / ANR_ALIGN + 1];
	struct anrc_class cls[ANR_NCLASSES];
	char name[32];

	/* What changes while the heap runs starts on a cache line of its own:
	 * the fields above, read by every fast path, share none with it. */
	pthread_mutex_t lock __attribute__((aligned(ANR_CACHE_LINE)));
	/* Frees that found the lock busy: a ring of slots taken with
	 * compare-and-swap, emptied by the next lock holder.  A free that
	 * finds the ring full waits for the lock. */
	void *defer_slot[ANR_DEFER_SLOTS];
	unsigned defer_hint;   /* atomic: where the next push starts looking */
	unsigned defer_count;  /* atomic: pointers in defer_slot */
	unsigned drain_pos;    /* where the last drain stopped (locked) */

	/* Spans: two zones of free lists (spans.c), pages below zone_split
	 * (slabs) and from it on (runs). */
	uint32_t zone_split;
	uint32_t fl_map[ANR_ZONES];
	uint32_t sl_map[ANR_ZONES][ANR_FL_COUNT];
	uint32_t free_head[ANR_ZONES][ANR_FL_COUNT][ANR_SL_COUNT];

	/* Slabs. */
	uint32_t partial[ANR_NCLASSES];
	uint32_t empty_slab[ANR_NCLASSES]; /* an empty slab kept, or ANR_NIL */
	size_t class_slabs[ANR_NCLASSES];  /* slabs of each class */
	size_t class_live[ANR_NCLASSES];   /* live objects of each class */

	/* Accounting, in pages unless named bytes. */
	size_t budget;          /* bytes; read without the lock */
	size_t free_low, free_high;
	size_t resident_pages;  /* bits set in resident */
	size_t used_pages;      /* pages of live spans (all resident) */
	size_t dirty_pages;     /* bits set in dirty */
	size_t top;             /* high-water mark of pages ever handed out */
	size_t top_slabs;       /* the same below zone_split */
	size_t in_use;          /* bytes, usable sizes */
	size_t slab_free;       /* bytes of slab pages not in live objects */
	size_t empty_pages;     /* pages of empty slabs kept (slab.c) */
	size_t peak_in_use, peak_resident;
	uint64_t allocs, frees, hook_calls, failures, madvise_calls;
	size_t madvised_bytes;
	size_t meta_madvised;    /* atomic: bytes of metadata given back */
	uint64_t meta_madvise_calls; /* atomic: the madvise calls that did */
	uint64_t freed_bytes;    /* usable bytes ever freed; written under the
				  * lock, read without it (anrc_freed_bytes) */
	uint64_t deferred_frees; /* atomic */
	uint64_t bad_frees;      /* atomic */
	/* Bad pointers found under the lock, for the unlocking thread to
	 * report (anrc_unlock_telling); those past ANR_BAD_NOTES are counted
	 * only. */
	struct anrc_bad_note bad_note[ANR_BAD_NOTES];
	unsigned bad_n;
	size_t bad_untold;
	uint64_t madvise_errors;
	/* Pages [last_res_lo, last_res_hi) of the last span charged, counted
	 * from its first, hold every page of it that was resident: the rest
	 * read as zero (an empty range when none was). */
	size_t last_res_lo, last_res_hi;

	/* Giving pages back outside the lock (release.c). */
	int trim_wanted;        /* dirty pages passed the high mark */
	int trimming;           /* a thread is giving pages back */
	unsigned trim_n;
	uint32_t trim_s[ANR_TRIM_BATCH], trim_len[ANR_TRIM_BATCH];
	size_t inflight_pages;  /* resident pages of ANR_PG_TRIM spans */
	unsigned mark_shift;    /* the marks in force are free_low/high << this */
	size_t given_recent;    /* pages given back since the last trim began */
	size_t refaulted;       /* of those, pages charged again since */
	size_t charged_recent;  /* pages charged since the marks' counts started */
	size_t charged_since_trim; /* pages charged since the last trim began */
	size_t trim_credit;     /* pages the lock holder freed itself: it may
				 * give that many back besides the slice */
	size_t helper_credit;   /* credit of the calls that woke the helper */
	/* The helper's idle return (returner.c). */
	unsigned idle_ms;       /* atomic: anrc_config.idle_return_ms */
	uint64_t page_moves;    /* spans handed out and given back */
	int trim_idle;          /* the trim under way keeps no free page */
	int idle_armed;         /* the helper waits without a deadline: the
				 * next span given back wakes it */
	int idle_kick;          /* wake it at this unlock */
	int return_all;         /* atomic: the helper gives back every free
				 * page (anrc_return_all_by_helper) */
	unsigned trims;         /* atomic: page-return rounds that gave pages back */
	size_t slab_holes;      /* pages of live slabs given back (theap.c's
				 * holes): counted in resident_pages, their
				 * resident bit clear */

	anrc_more_fn hook;
	void *hook_arg;

	/* Page return by a helper thread (returner.c): while helper_on, a
	 * thread whose call left pages to give back posts helper_sem instead
	 * of calling madvise itself. */
	int helper_on;          /* atomic */
	int helper_stop;        /* atomic */
	int helper_posted;      /* atomic: helper_sem posted, not yet taken */
	sem_t helper_sem;
	/* The helper's pass for holes (theap.c): where it is (theap hp_i,
	 * class hp_c, slab hp_s next, hp_left more of the ring), h->trims
	 * when it began, and the batch in flight, given back while the
	 * helper holds hole_lock (priority inheriting). */
	unsigned hp_i, hp_c, hp_seen;
	uint32_t hp_s, hp_left;
	uint64_t hp_last;       /* CLOCK_MONOTONIC ms when the last began */
	pthread_mutex_t hole_lock;
	unsigned hf_n;
	struct anrc_run hf[ANR_HOLE_BATCH];

	int lock_pi;            /* the lock inherits priority (heap_lock_init) */
	unsigned fork_held;     /* run caches whose flags a fork holds (heap.c) */
	/* Thread heaps (theap.c). */
	uint64_t uid;            /* unique per heap made in this process */
	pthread_key_t key;       /* thread -> its theap; destructor abandons it */
	int key_ok;
	int key_slot;            /* theap.c's pool of keys made at load, or -1 */
	/* The same counts for threads without a theap and for theaps that
	 * were abandoned (atomic). */
	uint64_t th_rcount, th_rbytes, th_ccount, th_cbytes;
	/* Theaps ever claimed are th[0 .. th_used - 1] (atomic; claims take
	 * the lowest free one): what looks at every theap stops there, so
	 * that the pages of theaps no thread used are never touched. */
	unsigned th_used;
	unsigned th_parked;      /* atomic: theaps parked (theap.c) */
	struct anrc_theap th[ANR_THEAPS];
};

/*
 * Steps: the units of work the bound in ARCHITECTURE.md counts (a bitmap
 * word looked at in a search, a deferred free done, a madvise call).  The
 * counter is per thread and costs one add on slow paths only; the tests
 * read it around each call.  Bitmap ranges set or cleared for a span
 * (n / 64 words for n pages, like the kernel's own work on those pages)
 * are not steps.
 */
extern __thread uint64_t anrc_step_count __attribute__((tls_model("initial-exec")));
/* Times the calling thread took the heap lock in a malloc, free or
 * realloc (heap.c; read by the tests). */
extern __thread uint64_t anrc_lock_count __attribute__((tls_model("initial-exec")));
/* Rounds of page return (madvise without the lock) the calling thread
 * did (pages.c; read by the tests). */
extern __thread uint64_t anrc_return_rounds __attribute__((tls_model("initial-exec")));
static inline void
anrc_steps(uint64_t n)
{
	anrc_step_count += n;
}
/* Steps of one call at most: ANR_DRAIN_MAX deferred frees (each judged
 * with at most one 2 x ANR_BM_LEVELS-word search), one trim round of
 * ANR_TRIM_BATCH runs (three searches, the run's extension by words, one
 * madvise of the run, and ANR_META_ADVISE_MAX of its metadata and as many
 * of its free span's each) over at most ANR_TRIM_SLICE_PAGES pages, one search of the call itself
 * and one for a thread's new slab (anrc_pages_get_slab's pair), and the
 * slab bitmap words of a thread's allocation (ANR_THEAP_STEPS_MAX), and
 * for a free that empties a slab, ANR_HOLE_SLABS slabs looked at for holes
 * (theap.c: their bitmap words, a word more a page, and a madvise for at
 * most every other page).  A call that frees a block of n pages may give
 * those n pages back too: n / 64 more words. */
#define ANR_BM_STEPS_MAX (2 * ANR_BM_LEVELS)
/* Bitmap words of a slab at most (4 KiB pages; steps_bounded checks it):
 * 1,024 objects of 16 bytes in four pages. */
#define ANR_SLAB_WORDS_MAX 16
/* The words of slab bitmaps an allocation of a thread looks at, at most:
 * its current word used up, the next one loaded (one slab's words), the
 * current slab and ANR_THEAP_SCAN more collected without the lock, a word
 * loaded again; then under the lock the same scan, the new or adopted
 * slab collected and a word loaded from it. */
#define ANR_THEAP_STEPS_MAX ((2 * ANR_THEAP_SCAN + 6) * ANR_SLAB_WORDS_MAX)
#define ANR_META_ADVISE_MAX 3 /* page map, slab bitmaps, owners */
#define ANR_CALL_STEPS_MAX (ANR_DRAIN_MAX * (1 + ANR_BM_STEPS_MAX) + \
	ANR_TRIM_BATCH * (3 * ANR_BM_STEPS_MAX + ANR_TRIM_SLICE_PAGES / 64 + 2 + 1 + \
			  2 * ANR_META_ADVISE_MAX) + \
	2 * ANR_BM_STEPS_MAX + ANR_THEAP_STEPS_MAX + \
	ANR_HOLE_SLABS * (ANR_SLAB_WORDS_MAX + ANR_SLAB_SPAN_MAX + ANR_SLAB_SPAN_MAX / 2))
/* ARCHITECTURE.md gives the bound as a number: a change of the terms
 * above changes it there too. */
_Static_assert(ANR_CALL_STEPS_MAX == 1024, "ARCHITECTURE.md states ANR_CALL_STEPS_MAX");

/* bitmap.c */
static inline int
anrc_bit(const uint64_t *w, size_t i)
{
	return (int)((w[i >> 6] >> (i & 63)) & 1);
}
/* Word k of a page bitmap (interleaved, ANR_PB_WAYS). */
static inline uint64_t *
anrc_pb_word(uint64_t *w, size_t k)
{
	return w + k * ANR_PB_WAYS;
}
static inline int
anrc_pb_bit(const uint64_t *w, size_t i)
{
	return (int)((w[(i >> 6) * ANR_PB_WAYS] >> (i & 63)) & 1);
}
/* Bits lo..hi-1 of one word, 0 <= lo < hi <= 64. */
static inline uint64_t
anrc_range_mask(size_t lo, size_t hi)
{
	uint64_t m = hi == 64 ? ~UINT64_C(0) : (UINT64_C(1) << hi) - 1;
	return m & ~((UINT64_C(1) << lo) - 1);
}
static inline size_t
anrc_highest_bit(uint64_t v)
{
	return (size_t)(63 - __builtin_clzll(v));
}
size_t anrc_bits_count(const uint64_t *w, size_t start, size_t n);
void anrc_bits_set(uint64_t *w, size_t start, size_t n);
void anrc_bits_clear(uint64_t *w, size_t start, size_t n);
/* The same on a page bitmap (interleaved, ANR_PB_WAYS). */
size_t anrc_pb_count(const uint64_t *w, size_t start, size_t n);
void anrc_pb_set(uint64_t *w, size_t start, size_t n);
void anrc_pb_clear(uint64_t *w, size_t start, size_t n);
int anrc_pb_bounds(const uint64_t *w, size_t start, size_t n, size_t *first, size_t *last);
void anrc_bm2_set(struct anrc_bm2 *b, size_t start, size_t n);
void anrc_bm2_clear(struct anrc_bm2 *b, size_t start, size_t n);
size_t anrc_bm2_prev(const struct anrc_bm2 *b, size_t i); /* SIZE_MAX if none */
/* The words of each level of a bitmap of nbits bits (into nw); returns
 * the number of levels.  anrc_bm2_place puts a bitmap at way `way` of
 * level areas of ANR_PB_WAYS * nw[l] words each. */
unsigned anrc_bm2_shape(size_t nbits, size_t nw[ANR_BM_LEVELS]);
void anrc_bm2_place(struct anrc_bm2 *b, uint64_t *const area[ANR_BM_LEVELS], unsigned way,
		    size_t nbits);
/* Recompute the upper levels over words first..last of the lowest one
 * after it was written directly. */
void anrc_bm2_sync(struct anrc_bm2 *b, size_t first_word, size_t last_word);

/* pages.c */
/* Take n pages aligned to align_pages (power of two) and charge them to
 * the budget.  ANR_NIL on failure; *short_pages > 0 if the budget was the
 * reason (the number of pages missing). */
uint32_t anrc_pages_get(struct anrc_heap *h, size_t n, size_t align_pages,
		       size_t *short_pages);
/*
 * The same for a slab, from the slabs' zone if it has room: n pages, and
 * if grouped (a class of at most ANR_SLAB_GROUPED_MAX bytes) from a page
 * index that is a multiple of ANR_SLAB_GROUP and of the power of two at
 * or above n (so that a slab never crosses a group of ANR_BITS_GROUP
 * pages).  For a thread's slab of one group (pair not NULL): the group
 * *pair (beside the thread's last one) if it lies free, else an even
 * group, and *pair becomes the odd one beside it: the page map lines of
 * two neighbouring groups, which the CPU fetches together, then mostly
 * belong to one thread.
 */
uint32_t anrc_pages_get_slab(struct anrc_heap *h, size_t n, int grouped, uint32_t *pair,
			     size_t *short_pages);
/* Extend the live span s of n pages by extra pages in place if the next
 * span is free and the budget allows; 0 on success. */
int anrc_pages_grow(struct anrc_heap *h, uint32_t s, size_t n, size_t extra,
		   size_t *short_pages);
/* Give back pages [s, s+n) of a live span (all of it or its tail). */
void anrc_pages_put(struct anrc_heap *h, uint32_t s, size_t n);

/* release.c */
/* Return free resident pages, highest first, until at most keep remain. */
size_t anrc_release_down_to(struct anrc_heap *h, size_t keep_pages);
/* After pages became free: note that pages should go back if the free
 * ones passed the high mark; anrc_return_pages_and_unlock() gives them
 * back after the lock is released. */
void anrc_want_release_if_over_mark(struct anrc_heap *h);
/* The marks back to 1x and their evidence forgotten, as after an explicit
 * trim or the helper's idle return (locked). */
void anrc_marks_afresh(struct anrc_heap *h);
/* Release the heap lock, giving pages back first if they are wanted back. */
void anrc_return_pages_and_unlock(struct anrc_heap *h);
/* The same, always by the caller (the helper thread, returner.c). */
void anrc_return_pages_and_unlock_here(struct anrc_heap *h);
/* In a fork child: finish the give-backs the parent's threads had begun. */
void anrc_release_fork_child(struct anrc_heap *h);

/* spans.c */
void anrc_span_init(struct anrc_heap *h);
/* n pages from zone's free lists, else from the other zone's. */
uint32_t anrc_span_take(struct anrc_heap *h, size_t n, unsigned zone);
void anrc_span_release(struct anrc_heap *h, uint32_t s, size_t n);
int anrc_span_extend(struct anrc_heap *h, uint32_t s, size_t n, size_t extra);
void anrc_span_carve(struct anrc_heap *h, uint32_t s, size_t n);
/* Take pages [s, s+n) if they lie inside one free span (one search);
 * -1 if not. */
int anrc_span_take_at(struct anrc_heap *h, uint32_t s, size_t n);
void anrc_span_mapping(size_t n, unsigned *fl, unsigned *sl);
int anrc_span_check(struct anrc_heap *h, size_t *nfree_spans, size_t *free_pages);
/*
 * Whether a free span of pages [s, s + n), n >= 2, has a tail entry: not
 * when it ends a zone.  A tail is read only by the merge of a span freed
 * just after it, and nothing merges across the end of a zone; so a new
 * heap writes no page map entry at the end of either zone (two metadata
 * pages a process would fault in for nothing).
 */
static inline int
anrc_span_has_tail(const struct anrc_heap *h, size_t s, size_t n)
{
	return s + n != h->zone_split && s + n != h->npages;
}

/* slab.c */
#define ANR_LINEAR_MAX 128
#define ANR_LINEAR_STEP 16
#define ANR_STEPS_LOG2 2  /* four classes per power of two above ANR_LINEAR_MAX */
#define ANR_FIRST_LOG_B 7 /* 2^7 = ANR_LINEAR_MAX */
static inline unsigned
anrc_size_class(size_t size)
{
	size_t s;
	unsigned b;

	if (size <= ANR_LINEAR_MAX)
		return size == 0 ? 0 : (unsigned)((size - 1) / ANR_LINEAR_STEP);
	s = size - 1;
	b = 63u - (unsigned)__builtin_clzll(s);
	return ANR_LINEAR_MAX / ANR_LINEAR_STEP + ((b - ANR_FIRST_LOG_B) << ANR_STEPS_LOG2) +
	       (unsigned)((s >> (b - ANR_STEPS_LOG2)) - (1u << ANR_STEPS_LOG2));
}
size_t anrc_class_size(unsigned c);
void anrc_slab_init(struct anrc_heap *h);
int anrc_slab_class_for(const struct anrc_heap *h, size_t size, size_t align);
void *anrc_slab_alloc(struct anrc_heap *h, unsigned c, size_t *short_pages);
/* The first bitmap word of slab s (which has a free object) with a clear
 * bit; each word looked at is a step. */
unsigned anrc_slab_free_word(const struct anrc_heap *h, uint32_t s);
void anrc_slab_free(struct anrc_heap *h, uint32_t s, size_t idx);
/* The heap's kept empty slabs go back (locked); returns their bytes. */
size_t anrc_slab_flush(struct anrc_heap *h);

void anrc_partial_push(struct anrc_heap *h, unsigned c, uint32_t s);
void anrc_partial_del(struct anrc_heap *h, unsigned c, uint32_t s);
/* A new slab of class c for a theap (not on the partial list). */
uint32_t anrc_slab_new_owned(struct anrc_heap *h, unsigned c, uint32_t *pair,
			     size_t *short_pages);
/* Give an empty slab that is on no list back to the span allocator. */
void anrc_slab_release_unlisted(struct anrc_heap *h, uint32_t s);
/* Objects of shared slab s freed by other threads: free them (locked). */
void anrc_slab_collect_shared(struct anrc_heap *h, uint32_t s);

/* theap.c */
#define ANR_UID_NONE UINT64_MAX /* never a thread's cached uid */
struct anrc_tl {
	const struct anrc_heap *h;
	uint64_t uid;
	struct anrc_theap *t;
	int busy;     /* inside pthread_setspecific */
	int exiting;  /* the thread's key destructors have run */
	/*
	 * The object malloc handed out last from t's held words: its offset
	 * from h->data (an offset, not a pointer, for the same reason as a
	 * tclass's woff), its class's tclass and its bit (a mask) in that
	 * class's held word.  ANR_LAST_NONE once that word is dropped
	 * (drop_word) or the thread's theap changes, so that while last_off
	 * is set, *last_k->wbits is the word the object came from: a free of
	 * that object is judged from its two bits alone (anrc_free_last).
	 */
	uint64_t last_off;
	struct anrc_tclass *last_k;
	uint64_t last_m;
} __attribute__((aligned(64)));
#define ANR_LAST_NONE UINT64_MAX
extern __thread struct anrc_tl anrc_tl __attribute__((tls_model("initial-exec")));
void anrc_theap_init(struct anrc_heap *h);
/* th[0 .. anrc_theaps_used(h) - 1] are the theaps ever claimed. */
unsigned anrc_theaps_used(const struct anrc_heap *h);
void anrc_theap_fini(struct anrc_heap *h);
/* The calling thread's theap, claimed on first use; NULL if none. */
struct anrc_theap *anrc_theap_lookup(struct anrc_heap *h);
static inline struct anrc_theap *
anrc_theap_get(struct anrc_heap *h)
{
	/* uids are unique in the process: one comparison names the heap */
	if (__builtin_expect(anrc_tl.uid == h->uid, 1))
		return anrc_tl.t;
	return anrc_theap_lookup(h);
}
/* The same without claiming one. */
struct anrc_theap *anrc_theap_peek(const struct anrc_heap *h);
/* Current slab of class c is full: find free objects without the lock. */
int anrc_theap_refill_unlocked(struct anrc_heap *h, struct anrc_theap *t, unsigned c);
/* Load t->cl[c].avail from the first bitmap word of the current slab with a
 * free object; 0 if there is no current slab or it is full. */
uint64_t anrc_theap_load_word(struct anrc_heap *h, struct anrc_theap *t, unsigned c);
/*
 * The short way for a small object (at most ANR_SLAB_MAX bytes) when the
 * inlined path found the held word used up, tried by gmalloc's malloc
 * before its full path: the next word of the current slab or another slab
 * of the calling thread's ring, without the lock (anrc_theap_alloc); NULL
 * when that finds none, or the thread's theap is not cached for h (call
 * anrc_alloc).
 */
void *anrc_alloc_small(struct anrc_heap *h, size_t size);
/*
 * Its counterpart for a free the inlined paths declined (one that empties
 * its slab, another thread's object, a medium block): an object of a slab
 * some thread owns, freed by anrc_theap_free without the layers of
 * anrc_free (a bad pointer reported there): 2 (pages of an emptied slab
 * may have gone back); a block of a run the calling thread keeps,
 * anrc_runs_free's answer (1 kept, 2 kept after older runs went back);
 * 0, with nothing written, for anything else (call anrc_free).  One call
 * either way.
 */
int anrc_free_short(struct anrc_heap *h, void *p);
/*
 * Give back the pages of every live slab of the calling thread that hold
 * no allocated object (holes; a free that empties a slab does a slice of
 * ANR_HOLE_SLABS slabs of the same pass itself).  Takes the lock; not
 * locked.
 */
void anrc_theap_holes(struct anrc_heap *h);
/* The helper's part of the holes (returner.c): after a page-return round,
 * a pass over every thread's slabs but their current ones, a slice of
 * ANR_HOLE_HELPER_SLABS slabs per hold of the lock, each slice's holes
 * given back without it; at most once in ANR_HOLE_PASS_MS unless quiet
 * (no span moved for the helper's whole wait).  Locked on entry and on
 * return. */
void anrc_holes_give_back(struct anrc_heap *h, int quiet);
/* A pass is due (a page-return round since the last began; locked). */
int anrc_holes_due(const struct anrc_heap *h);
/* Start the holes' lock afresh (at creation, and in a fork child, where
 * the helper's batch in flight is given back first). */
int anrc_holes_init(struct anrc_heap *h, int child);
/* Give class c of t a slab with free objects (locked); 0 on success. */
int anrc_theap_refill_locked(struct anrc_heap *h, struct anrc_theap *t, unsigned c,
			    size_t *short_pages);
/* Free an object of a slab some theap owns (checked out of band); returns
 * 0 if the slab is shared (the caller frees it under the lock). */
int anrc_theap_free(struct anrc_heap *h, struct anrc_theap *t, void *p, uint32_t s,
		   int locked);
/* Add t's freed bytes not yet published to h->freed_bytes. */
void anrc_theap_publish(struct anrc_heap *h, struct anrc_theap *t);
/* bytes more freed locally by t (published when due). */
void anrc_theap_note_freed(struct anrc_heap *h, struct anrc_theap *t, size_t bytes);
/* Bytes the calling thread freed and has not yet published. */
uint64_t anrc_theap_freed_pending(const struct anrc_heap *h);
/* Give every slab of t to the shared lists (locked); the slot stays claimed. */
void anrc_theap_abandon_locked(struct anrc_heap *h, struct anrc_theap *t);
/* Totals of all theaps (racy reads of other threads' counters). */
void anrc_theap_totals(struct anrc_heap *h, size_t *in_use, size_t *slab_bytes,
		      uint64_t *allocs, uint64_t *frees);
/* Slabs and live objects of class c in all theaps (racy; for reports). */
void anrc_theap_class_counts(struct anrc_heap *h, unsigned c, size_t *slabs,
			    size_t *live);
/* In a fork child: theaps of the threads that did not survive are abandoned. */
void anrc_theap_fork_child(struct anrc_heap *h);
/* Give-back: the spare slabs of every theap, all slabs of parked ones
 * (locked). */
size_t anrc_theap_flush_locked(struct anrc_heap *h);
/* heap.c: every cache of free pages back to the span allocator (the
 * theaps' spare and parked slabs, the kept runs not in use, the heap's
 * empty slabs), as a trim and the helper's return-all do (locked). */
void anrc_flush_caches_locked(struct anrc_heap *h);

/* returner.c: with a helper thread, hand the page return to it and
 * unlock; 0 (nothing done, still locked) without one or with nothing due. */
int anrc_returner_wake_and_unlock(struct anrc_heap *h);
void anrc_returner_fork_child(struct anrc_heap *h);

/* runcache.c */
/* Pages of a block of size bytes (> ANR_SLAB_MAX): medium blocks are
 * rounded up to four page counts per power of two, so that kept runs fit
 * more requests. */
size_t anrc_run_pages(const struct anrc_heap *h, size_t size);
/* A block of size bytes from the calling thread's kept runs, no lock;
 * NULL if none fits. */
void *anrc_runs_alloc(struct anrc_heap *h, struct anrc_theap *t, size_t size);
/*
 * The short way for a medium block (more than ANR_SLAB_MAX, at most
 * ANR_RUN_CACHE_MAX bytes), tried by gmalloc's malloc and free when the
 * inlined paths could not serve (they stay as short as they are without
 * it): anrc_alloc_medium, a block from the calling thread's kept runs, no
 * lock, or NULL (call anrc_alloc).  Such a block goes back by
 * anrc_free_short.
 */
void *anrc_alloc_medium(struct anrc_heap *h, size_t size);
/* Owner t's block at page s goes from n to nn pages (locked, before the
 * page map changes): 1 if it stays t's (nn is still a medium block's page
 * count; its bytes counted in t's kept-run bytes in use), 0 if it stopped
 * being owned (its n pages then counted in the heap's bytes in use). */
int anrc_runs_resize_locked(struct anrc_heap *h, struct anrc_theap *t, uint32_t s, size_t n,
			    size_t nn);
/* The usable size of p when it is a live block whose run the calling
 * thread owns (judged as anrc_free_short judges, read without the lock:
 * only the owner changes such a block); 0 otherwise. */
size_t anrc_usable_medium(struct anrc_heap *h, const void *p);
/* Large block at page s freed by the calling thread: kept if t owns it
 * (no lock unless a kept run must make room); 0: not kept, free it;
 * 1: kept; 2: kept, and older runs went back to the free spans to make
 * room (pages may have gone back: gmalloc looks at its broker then). */
int anrc_runs_free(struct anrc_heap *h, struct anrc_theap *t, uint32_t s);
/* A new large block of n pages at s (locked): t owns it when it may be
 * kept later and is counted in use here (1), else the caller counts it (0). */
int anrc_runs_new_locked(struct anrc_heap *h, struct anrc_theap *t, uint32_t s, size_t n);
/* Locked free (or, by_owner, resize) of a large block: an owned one stops
 * being owned and counts in h->in_use again; -1 if its owner freed it
 * meanwhile (a double free).  A free leaves its kind NONE. */
int anrc_runs_disown_locked(struct anrc_heap *h, uint32_t s, int by_owner);
/* t was asked to give its runs back: it does (locked). */
void anrc_runs_wanted_locked(struct anrc_heap *h, struct anrc_theap *t);
/* Give t's kept runs back (locked); the pages given. */
size_t anrc_runs_flush_locked(struct anrc_heap *h, struct anrc_theap *t);
/* Give back every thread's kept runs that is not using its cache right
 * now; the others are flagged (locked).  The pages given. */
size_t anrc_runs_flush_all_locked(struct anrc_heap *h);
/* An emptied slab of np pages may stay with t: within
 * ANR_EMPTY_CACHE_PAGES, or past it within the room its kept runs leave
 * (empty slabs and kept runs share ANR_RUN_CACHE_BYTES beyond it). */
int anrc_runs_room_for_slab(const struct anrc_heap *h, const struct anrc_theap *t, size_t np);
/* Bytes kept in all caches (racy; statistics). */
size_t anrc_runs_kept_bytes(const struct anrc_heap *h);
/* Fork: take the busy flags of theaps from..to-1 (waiting for their
 * owners' operations to end; not under the heap lock), and give back
 * those of 0..to-1. */
void anrc_runs_hold(struct anrc_heap *h, unsigned from, unsigned to);
void anrc_runs_unhold(struct anrc_heap *h, unsigned to);
/* Bytes of live blocks owned for run caches. */
size_t anrc_runs_in_use(const struct anrc_heap *h);

static inline uint32_t
anrc_slab_head(const struct anrc_heap *h, size_t i)
{
	const struct anrc_page *pg = &h->pm[i];
	return pg->kind == ANR_PG_SLAB ? (uint32_t)i : (uint32_t)(i - pg->npages);
}

/* heap.c */
void anrc_lock_and_drain(struct anrc_heap *h);   /* also runs a few deferred frees */
/* Also runs every deferred free (statistics, checks: not malloc or free). */
void anrc_lock_and_drain_all(struct anrc_heap *h);
int anrc_trylock_and_drain(struct anrc_heap *h); /* 0 if taken, -1 if busy */
void anrc_unlock_and_return_pages(struct anrc_heap *h);
/* A bad pointer, by bad_free: counted, then reported (a line), aborted on
 * or ignored.  With locked (the caller holds the heap lock) a report is
 * only noted, and the thread that lets the lock go writes it after: a
 * slow log never holds up the heap. */
void anrc_bad(struct anrc_heap *h, const char *op, const char *what, const void *p,
	      int locked);
/* Let the heap lock go, then report the bad pointers noted under it: the
 * last unlock of every path that ran deferred frees (heap.c's calls,
 * release.c, the page-return helper). */
void anrc_unlock_telling(struct anrc_heap *h);

/* stats.c (report.c, walk.c and check.c read the heap the same way) */
void anrc_fill_stats(struct anrc_heap *h, struct anrc_stats *st); /* locked */

/*
 * Where slab s's bitmaps are: its allocation bitmap (the class's words
 * words) and right after it its remote-free bitmap, in the 2 x bmw words
 * per page of its pages from its first (bmw = page / 1024), so that the
 * two words a free checks share a cache line for every class of 64 bytes
 * or more (and sit on adjacent lines below that).  The ANR_BITS_GROUP
 * pages of a group keep theirs in one metadata page, so a live slab keeps
 * one page of bitmaps resident, and a free run gives back those of the
 * groups it covers whole.  A slab's words stay inside its group: a slab
 * of a grouped class never crosses a group (anrc_pages_get_slab), and
 * larger classes need no more than bmw words each.
 */
#define ANR_BITS_GROUP 64
_Static_assert(offsetof(struct anrc_theap, id) % ANR_CACHE_LINE == 0 &&
		       offsetof(struct anrc_theap, rc.run[6]) - offsetof(struct anrc_theap, id) <=
			       2 * ANR_CACHE_LINE,
	       "a kept run's block reads two lines of its theap");
_Static_assert(offsetof(struct anrc_theap, cl) == 0 && sizeof(struct anrc_tclass) == 64,
	       "a class's line is its theap plus 64 times the class");
_Static_assert(offsetof(struct anrc_heap, fast_free) + sizeof(int) <= ANR_CACHE_LINE,
	       "what the fast paths read of the heap fills its first line");
_Static_assert(ANR_SLAB_SPAN_MAX <= ANR_BITS_GROUP, "a slab fits in one group of bitmaps");
_Static_assert((ANR_PG_SLAB & 1) == 0 && ANR_PG_SLAB_BODY == ANR_PG_SLAB + 1,
	       "the fast free tells a slab's pages from others by kind | 1");
static inline size_t
anrc_slab_word(const struct anrc_heap *h, uint32_t s)
{
	return (size_t)s * 2 * h->bmw;
}

static inline uint64_t *
anrc_slab_bits(const struct anrc_heap *h, uint32_t s)
{
	return h->slabbits + anrc_slab_word(h, s);
}

/* The remote-free bitmap of slab s of class k. */
static inline uint64_t *
anrc_slab_rfree_k(const struct anrc_heap *h, uint32_t s, const struct anrc_class *k)
{
	return anrc_slab_bits(h, s) + k->words;
}

static inline uint64_t *
anrc_slab_rfree(const struct anrc_heap *h, uint32_t s)
{
	return anrc_slab_rfree_k(h, s, &h->cls[h->pm[s].cls]);
}

/* Object idx of slab s is live: allocated and not freed by another
 * thread (a remote free waits in rfree until the owner folds it in). */
static inline int
anrc_slab_live(const struct anrc_heap *h, uint32_t s, size_t idx)
{
	uint64_t m = UINT64_C(1) << (idx & 63);
	return (anrc_slab_bits(h, s)[idx >> 6] & m) != 0 &&
	       (__atomic_load_n(&anrc_slab_rfree(h, s)[idx >> 6], __ATOMIC_RELAXED) & m) == 0;
}

static inline char *
anrc_page_addr(const struct anrc_heap *h, size_t i)
{
	return h->data + (i << h->page_shift);
}

/* The data page p is in, its offset from h->data in *off: h->npages or
 * more when p is not in the data pages (below h->data the subtraction
 * wraps, so that one comparison decides). */
static inline size_t
anrc_data_page(const struct anrc_heap *h, const void *p, size_t *off)
{
	*off = (size_t)((const char *)p - h->data);
	return *off >> h->page_shift;
}

#endif /* ANRCORE_INTERNAL_H */
