/*
 * anrcore.h - the allocator core shared by gmalloc and anr_malloc.
 *
 * One heap = one large reservation made once, by anrc_create(), with
 * mmap(PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE).
 * After that no allocation, free, realloc, trim or statistics path calls
 * mmap, munmap, mremap, mprotect or brk: real-time threads of the process
 * never wait on the kernel's mmap lock because of us.  Pages are made
 * resident by touching them and given back with madvise(MADV_DONTNEED).
 *
 * The core knows nothing of the broker.  Quota reaches it as a budget
 * (bytes that may be resident), raised and lowered at run time; an
 * allocation that would pass the budget first calls the need-more-memory
 * hook, which may raise the budget (by asking a broker, freeing caches, or
 * collecting garbage), and fails if the hook cannot help.
 *
 * All state of a heap lives in its struct anrc_heap and its reservation:
 * there are no globals, several heaps can live in one process, and a heap
 * is safe to use from any thread.  No function here allocates from another
 * allocator or calls stdio; reports go through mb_log.
 */
#ifndef ANRCORE_H
#define ANRCORE_H

#include <stddef.h>
#include <stdint.h>

struct anrc_heap;

/* What to do on an invalid free, a double free or a foreign pointer. */
enum anrc_bad_free_action {
	ANR_BAD_FREE_ABORT = 0,  /* one-line report, then abort() (default) */
	ANR_BAD_FREE_REPORT = 1, /* one-line report, the call is ignored */
	ANR_BAD_FREE_IGNORE = 2, /* silently ignored */
};

struct anrc_config {
	size_t reserve;     /* address space to reserve; 0: ANR_DEFAULT_RESERVE */
	size_t budget;      /* bytes of data pages that may be resident; 0: unlimited
			     * (= reserve).  Metadata (about 1 % of the pages ever
			     * used) is not counted. */
	size_t free_low;    /* resident free bytes kept when trimming */
	size_t free_high;   /* trim when resident free bytes pass this.  When
			     * pages given back are soon taken again, both
			     * marks double, up to 32 x; they halve again when
			     * giving back is no longer undone (while the
			     * program allocates).  A trim keeps
			     * the low mark, but with grown marks at most
			     * 1 MiB (or free_low if larger).  While the
			     * heap shrinks (since a trim, less than a
			     * quarter of free_high charged) both marks
			     * count a quarter (release.c). */
	enum anrc_bad_free_action bad_free;
	int trash_free;     /* fill freed memory with ANR_TRASH_BYTE */
	int valgrind;       /* tell valgrind about blocks (when running under it) */
	const char *name;   /* for reports ("gmalloc", a heap's name) */
	int priority_inherit; /* the heap lock is PTHREAD_PRIO_INHERIT */
	unsigned idle_return_ms; /* with a page-return helper: once no page
				  * has been handed out or given back for this
				  * long, every free page goes back, those under
				  * free_low too; 0: never */
};

#define ANR_DEFAULT_RESERVE ((size_t)32 << 30) /* 32 GiB of address space */
#define ANR_DEFAULT_FREE_LOW ((size_t)256 << 10)
#define ANR_DEFAULT_FREE_HIGH ((size_t)1 << 20)
#define ANR_ALIGN 16
#define ANR_TRASH_BYTE 0xa5

/* Flags of the allocation calls. */
#define ANR_ZERO 0x1      /* return zeroed memory */
#define ANR_NO_HOOK 0x2   /* never call the need-more-memory hook: fail fast */
/* The caller uses the block up to its usable size (a trailer at its end):
 * valgrind is told of all of it, not only of the size asked for. */
#define ANR_USABLE 0x4

/*
 * Need-more-memory hook: the heap needs `bytes` more budget than it has
 * (a whole number of pages).  `call` counts the hook's calls for the one
 * allocation, from 0: a hook that gives itself a deadline for a need sets
 * it at call 0 and keeps it for the calls that follow.  The hook may block, may call
 * anrc_set_budget() or anrc_free() on this heap (the heap lock is not held
 * while it runs), and returns non-zero if it made progress (the allocation
 * is retried) or 0 if it cannot help (the allocation fails).  A hook that
 * keeps claiming progress while the budget missing does not shrink is
 * called at most ANR_HOOK_MAX_RETRIES times per allocation; one that gives
 * a little each time, at most ANR_HOOK_MAX_CALLS times.  Running out of
 * address space (not budget) fails without calling the hook.
 */
typedef int (*anrc_more_fn)(void *arg, struct anrc_heap *h, size_t bytes, unsigned call);
#define ANR_HOOK_MAX_RETRIES 8
#define ANR_HOOK_MAX_CALLS 1024

struct anrc_stats {
	size_t in_use;        /* bytes handed out (usable sizes) */
	size_t resident;      /* bytes of the reservation currently resident */
	size_t free_resident; /* resident bytes not in use (kept by hysteresis) */
	size_t budget;        /* current budget */
	size_t reserved;      /* size of the reservation */
	size_t address_used;  /* address space ever used (high-water marks) */
	size_t peak_in_use;
	size_t peak_resident;
	uint64_t allocs, frees, hook_calls, failures, madvise_calls;
	size_t madvised_bytes;
	uint64_t deferred_frees;  /* frees queued because the heap was busy */
	uint64_t bad_frees;
	/* Extensions: resident = in_use + slab_free + free_resident. */
	size_t slab_free;     /* bytes of slab pages not in live objects, and
			       * of runs threads keep for their next blocks */
	size_t metadata;      /* bytes of the reservation set apart for metadata */
	uint64_t meta_madvise_calls; /* madvise calls giving metadata pages back
				      * (not in madvise_calls) */
	size_t slab_holes;    /* bytes of slab_free given back while their
			       * slabs live (still counted in resident) */
};

/* Reserve and initialise.  Returns NULL (errno set) if the reservation fails. */
struct anrc_heap *anrc_create(const struct anrc_config *cfg);
/* Unmap everything; every pointer of the heap becomes invalid. */
void anrc_destroy(struct anrc_heap *h);

void *anrc_alloc(struct anrc_heap *h, size_t size, unsigned flags);
/* align: any power of two (>= sizeof(void *)); otherwise NULL with EINVAL. */
void *anrc_alloc_aligned(struct anrc_heap *h, size_t align, size_t size,
			unsigned flags);
/* NULL is a no-op; anything not live in this heap is a bad free. */
void anrc_free(struct anrc_heap *h, void *p);
/* realloc semantics of C: NULL p allocates; size 0 frees and returns NULL. */
void *anrc_realloc(struct anrc_heap *h, void *p, size_t size, unsigned flags);
size_t anrc_usable_size(struct anrc_heap *h, const void *p);
/* Usable bytes freed since the heap was made (deferred frees count when
 * they are done); read without the lock, for callers that act every so
 * many bytes freed without asking each block's size. */
uint64_t anrc_freed_bytes(const struct anrc_heap *h);

/* p lies inside this heap's reservation (not necessarily live). */
int anrc_owns(const struct anrc_heap *h, const void *p);
/* The live block containing p (interior pointers too), or NULL. */
void *anrc_block_of(struct anrc_heap *h, const void *p, size_t *size);
/* Call fn for each live block; stop when it returns non-zero.  fn must not
 * allocate or free in this heap. */
int anrc_walk(struct anrc_heap *h, int (*fn)(void *arg, void *block, size_t size),
	     void *arg);
/* The same without waiting (for signal handlers): if the heap is busy,
 * *busy is set and nothing is walked. */
int anrc_walk_try(struct anrc_heap *h, int (*fn)(void *arg, void *block, size_t size),
		 void *arg, int *busy);

void anrc_set_budget(struct anrc_heap *h, size_t bytes);
size_t anrc_get_budget(const struct anrc_heap *h);
void anrc_set_hook(struct anrc_heap *h, anrc_more_fn fn, void *arg);
void anrc_set_marks(struct anrc_heap *h, size_t free_low, size_t free_high);
/* Give resident free pages back now, down to keep bytes; returns bytes given. */
size_t anrc_trim(struct anrc_heap *h, size_t keep);
/*
 * Give back everything that can go: the empty slabs the calling thread
 * keeps, the shared empty slabs, the medium blocks every thread keeps for
 * itself (runcache.c; a thread inside its cache at that instant is
 * flagged and gives back at its next use of it) and every free resident
 * page (madvise).  Other threads' kept empty slabs are flagged and go
 * back at their owner's next call that needs a new slab: the call never
 * waits for them, so it ends in time bounded by the free pages even while
 * threads keep allocating.  Returns the bytes given back.
 */
size_t anrc_release_free(struct anrc_heap *h);
/* Runs every deferred free first (up to ANR_DEFER_SLOTS): not for a call
 * that must stay within its bound; anrc_resident() is. */
void anrc_get_stats(struct anrc_heap *h, struct anrc_stats *st);
/* Resident data bytes (anrc_stats.resident), in a call's bound: the lock
 * taken as by any call, a few deferred frees run. */
size_t anrc_resident(struct anrc_heap *h);
/*
 * Bytes of the metadata area present in memory, as mincore(2) sees them
 * (a page only read since it was last given back counts too, though it
 * costs no memory).  One mincore call per 4 MiB of metadata: for reports
 * and tests, not for hot paths.  ARCHITECTURE.md says what stays.
 */
size_t anrc_meta_resident(const struct anrc_heap *h);

/*
 * Page return by a helper thread.  A thread of the caller's making runs
 * anrc_return_helper_run(h): from then on malloc, free and realloc never
 * call madvise to give free pages back (beyond the high mark) themselves;
 * they wake the helper, which gives them back in the same slices.  Free
 * pages may then stay above the high mark for as long as the helper waits
 * for a CPU.  anrc_return_helper_stop(h) makes it return (0), or the
 * next one to start if none runs yet (call it once per helper started);
 * it returns -1 at once if a helper already runs.  A fork child has no helper: its
 * calls give pages back themselves.  Shortage of budget, anrc_trim and
 * anrc_release_free still give back in the calling thread.
 */
int anrc_return_helper_run(struct anrc_heap *h);
/* A thread's start routine (pthread_create(..., anrc_return_helper_thread,
 * h)): anrc_return_helper_run at SCHED_BATCH, so that the helper woken by
 * a free does not preempt the freeing thread.  Returns NULL. */
void *anrc_return_helper_thread(void *heap);
void anrc_return_helper_stop(struct anrc_heap *h);
/* The helper's idle return (anrc_config.idle_return_ms), set again. */
void anrc_set_idle_return(struct anrc_heap *h, unsigned ms);
/* With a helper running: have it flush the caches of kept runs and empty
 * slabs and give back every free page, and return 1 at once (a flag and
 * a semaphore post); 0 when no helper runs (the caller may trim). */
int anrc_return_all_by_helper(struct anrc_heap *h);
/* Verify the metadata; 0 if consistent, else reports and returns -1. */
int anrc_check(struct anrc_heap *h);
/* Write a human-readable statistics report to fd (async-signal-safe). */
void anrc_report(struct anrc_heap *h, int fd);

/* Fork protection: call around fork() (gmalloc registers these with
 * pthread_atfork); the child's heap is consistent and usable. */
void anrc_fork_prepare(struct anrc_heap *h);
void anrc_fork_parent(struct anrc_heap *h);
void anrc_fork_child(struct anrc_heap *h);

/*
 * Call stacks (backtrace.c), for the debug features of the allocators.
 * anrc_backtrace() stores up to `depth` (<= ANR_BT_MAX) return addresses,
 * innermost first, starting at the frame of `caller` (the return address
 * seen by the allocator's entry point) so the allocator's own frames are
 * left out; the rest of out[0..depth) is zeroed.  It returns the number
 * stored.  It never allocates and never recurses: a thread already
 * unwinding (the unwinder called malloc) gets the caller alone.
 */
#define ANR_BT_MAX 64
size_t anrc_backtrace(uintptr_t *out, size_t depth, const void *caller);

/*
 * Naming code addresses as "file+0xaddress", the address in the file
 * (what nm prints, addr2line -e file and gdb's "info symbol" take).  The
 * table is filled from /proc/self/maps by anrc_modmap_load() with open and
 * read only, so both calls are async-signal-safe and take no loader lock;
 * it is large, keep it static.
 */
#define ANR_MODMAP_MAX 256
struct anrc_module {
	uintptr_t start, end;   /* an executable mapping */
	uintptr_t base;         /* ip - base: the address in the file */
	uint32_t path;          /* offset in pool */
};
struct anrc_modmap {
	size_t n, pool_used;
	int truncated;          /* more executable mappings than fit */
	struct anrc_module mod[ANR_MODMAP_MAX];
	char pool[16384];
	/* while loading: the last mapping at file offset 0; the executable */
	uintptr_t first_start, first_end;
	uintptr_t exe_phdr, exe_bias;
	int exe_known;
	size_t first_len;
	char first_path[512];
};
int anrc_modmap_load(struct anrc_modmap *m);
/* Writes "file+0xoffset", or "0xaddress" if no mapping holds ip (m may be
 * NULL); returns the length written (truncated to len - 1). */
size_t anrc_where(const struct anrc_modmap *m, uintptr_t ip, char *buf, size_t len);

/*
 * The heap lock for a layer that keeps records of its own blocks (layer.c):
 * between lock and unlock the caller touches only its own records and
 * calls no other anrc_ function.  trylock returns 0 when taken, -1 when
 * busy.
 */
void anrc_layer_lock(struct anrc_heap *h);
int anrc_layer_trylock(struct anrc_heap *h);
void anrc_layer_unlock(struct anrc_heap *h);

#endif /* ANRCORE_H */
