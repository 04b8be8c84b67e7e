/*
 * anrmalloc.h - the full anr_malloc API: heaps with their own reservation,
 * budget and configuration, need-more-memory callbacks, mark-and-sweep
 * garbage collection, membroker integration as a bidirectional client, and
 * run-time switchable debug features.
 *
 * Heaps.  A process may create any number of heaps.  Each one reserves its
 * own address space once (see anrcore: no later mmap/munmap on any
 * allocation path, pages are returned with madvise), has its own budget
 * (bytes that may be resident) and its own configuration, given as a
 * struct anr_malloc_config or read from a file.  Every call is thread-safe.
 *
 * Allocation.  anr_malloc() may call the need-more-memory callbacks (which
 * may free caches, run a collection or ask the broker, and may block);
 * anr_malloc_if_available() never calls them and fails at once when the
 * budget is spent.  A callback that keeps claiming success cannot make an
 * allocation loop for ever: each allocation runs at most need_more_retries
 * rounds of callbacks.  The heap calls are anr_free() and anr_realloc()
 * (the 2013 names); anr_malloc_free() and anr_malloc_realloc() are the
 * same functions under their older names.
 *
 * Records.  With track_blocks (the default) every block has a record in
 * the heap's side table: the plain calls record their return address, the
 * *_dbg calls (normally used through the ANR_MALLOC()-style macros) record
 * __FILE__, __LINE__ and __func__, and with stack_depth > 0 each block
 * also keeps that many return addresses.  Collection, leak reports and
 * block reports work on records.  guards, stack_depth, debug_info_size,
 * recorder and the gc_* keys turn records on too.
 *
 * Plain heaps.  With track_blocks = no and none of those features, a heap
 * keeps no records: anr_malloc() and anr_free() are the allocator core's
 * fast paths (no lock on the way for a small block of the calling thread),
 * anr_block_info() reports the core block and its usable size only, the
 * *_dbg calls' file and line are not kept, and anr_gc_collect() fails
 * with ENOTSUP.  Bad frees are judged (and counted) by the core.
 *
 * Blocks.  Nothing is written into or next to a block but the guard words
 * (guards = yes): the records, stacks, client debug info, mark bits and
 * the flight recorder live in mappings made when the heap is created,
 * outside the heap, so an overrun or underrun of a block cannot damage
 * them.  A realloc records its own caller.  Results are 16-byte aligned.
 *
 * Out of memory.  When anr_malloc() fails after the callbacks, the heap
 * enters a sticky out-of-memory state (anr_oom_get(), anr_oom_clear()),
 * calls the out-of-memory callback once, and, with oom_fail_fast, fails
 * every later allocation at once until the application clears the state.
 *
 * Nothing in this library writes to stdio: reports go to a file descriptor
 * and diagnostics through the process's mb_log destination (stderr).
 */
#ifndef ANRMALLOC_H
#define ANRMALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 2: struct anr_malloc_config has track_blocks; anr_free, anr_realloc. */
#define ANR_MALLOC_API_VERSION 2

typedef struct anr_malloc_heap anr_heap_t;

/* ------------------------------------------------------------------ */
/* Configuration                                                      */

#define ANR_NAME_MAX 32
#define ANR_PATH_MAX 108 /* sun_path */

/* Bad frees and damaged guard words. */
enum anr_error_action {
	ANR_ERROR_ABORT = 0,  /* report, then abort() */
	ANR_ERROR_REPORT = 1, /* report and go on */
	ANR_ERROR_IGNORE = 2, /* count only */
};

/*
 * Every field is a config key of the same name (man anrmalloc(3) lists
 * them with their defaults); anr_config_init() fills in the defaults.
 * Amounts are bytes, durations milliseconds, booleans 0 or 1.
 */
struct anr_malloc_config {
	char name[ANR_NAME_MAX];        /* in reports and on the broker */
	uint64_t reserve;               /* address space reserved once */
	uint64_t budget;                /* initial budget (resident bytes) */
	uint64_t free_low;              /* free resident bytes kept by trims */
	uint64_t free_high;             /* trim when free resident passes this */
	uint64_t max_blocks;            /* live blocks the side table holds */
	uint64_t need_more_retries;     /* callback rounds per allocation */
	int on_error;                   /* enum anr_error_action */
	int oom_fail_fast;              /* sticky OOM fails later allocations */
	int priority_inherit;           /* priority-inheriting heap lock */
	/* garbage collection */
	int gc_scan;                    /* scan marked blocks for pointers */
	int gc_on_need_more;            /* collect (and free) when memory runs out */
	int gc_on_give_back;            /* collect (and free) when the broker asks */
	/* debug features */
	uint64_t recorder;              /* flight recorder: operations kept */
	int guards;                     /* guard words at both ends of blocks */
	uint64_t stack_depth;           /* return addresses kept per block */
	uint64_t debug_info_size;       /* client debug bytes kept per block */
	int trash_free;                 /* fill freed memory with trash */
	char debug_socket[ANR_PATH_MAX]; /* AF_UNIX path of the report socket */
	/* membroker */
	int broker;                     /* connect as a bidirectional client */
	char broker_socket[ANR_PATH_MAX]; /* empty: $MEMBROKER_SOCKET or default */
	int broker_thread;              /* serve the broker from a helper thread */
	uint64_t broker_chunk;          /* smallest amount asked for at a time */
	uint64_t broker_timeout;        /* deadline of every broker call (ms) */
	uint64_t broker_initial;        /* quota reserved when the heap is created */
	/* block records */
	int track_blocks;               /* a record (caller, size, mark) per block */
	/* page return */
	int page_return_thread;         /* madvise in a helper thread, not in the calls */
	uint64_t idle_return;           /* ms idle before that thread gives back all (0: never) */
};

/* Defaults into cfg. */
void anr_config_init(struct anr_malloc_config *cfg);
/* Read a config file ("key = value" lines, see mb_conf).  Returns the
 * number of bad lines (each reported as path:line), or -errno when the
 * file cannot be opened. */
int anr_config_load(struct anr_malloc_config *cfg, const char *path);
/* One key from text; 0 or -1 (reported). */
int anr_config_set(struct anr_malloc_config *cfg, const char *key,
		   const char *value);
/* PREFIX_KEY environment variables (ANRMALLOC_ if prefix is NULL); none
 * in a setuid or setgid program (AT_SECURE). */
int anr_config_env(struct anr_malloc_config *cfg, const char *prefix);
/* The key table, one key per line, to fd. */
void anr_config_help(int fd);

/* ------------------------------------------------------------------ */
/* Heaps                                                              */

/* NULL cfg: defaults.  Returns NULL with errno set on failure (ENOMEM: no
 * address space; ECONNREFUSED etc.: broker = 1 and it cannot be reached;
 * EINVAL: bad configuration). */
anr_heap_t *anr_heap_create(const struct anr_malloc_config *cfg);
/* Defaults, then the file (a bad line is reported, not fatal; a missing
 * file is an error). */
anr_heap_t *anr_heap_open(const char *config_path);
/* Stops the helper threads, closes the broker connection (the broker gets
 * the quota back) and unmaps everything. */
void anr_heap_destroy(anr_heap_t *h);
/* The heap whose reservation contains p, or NULL. */
anr_heap_t *anr_heap_of(const void *p);
const char *anr_heap_name(const anr_heap_t *h);

/* ------------------------------------------------------------------ */
/* Allocation                                                         */

void *anr_malloc(anr_heap_t *h, size_t size);
void *anr_malloc_if_available(anr_heap_t *h, size_t size);
void *anr_calloc(anr_heap_t *h, size_t nmemb, size_t size);
/* C realloc: NULL p allocates, size 0 frees and returns NULL; on failure
 * the old block is untouched.  May call the need-more callbacks.
 * anr_malloc_realloc is the same function. */
void *anr_realloc(anr_heap_t *h, void *p, size_t size);
void *anr_malloc_realloc(anr_heap_t *h, void *p, size_t size);
/* align: a power of two >= sizeof(void *), else NULL with EINVAL. */
void *anr_memalign(anr_heap_t *h, size_t align, size_t size);
/* NULL is a no-op.  A pointer that is not a live block of h is a bad
 * free (reported per on_error; the call does nothing else).  Never waits
 * for the heap lock: if it is taken, the free is queued and done by the
 * next call that takes it (unless the queue is full).  anr_malloc_free is
 * the same function. */
void anr_free(anr_heap_t *h, void *p);
void anr_malloc_free(anr_heap_t *h, void *p);
/* Bytes the caller may use at p (the requested size when guards are on). */
size_t anr_malloc_usable_size(anr_heap_t *h, const void *p);

/* Caller-recording variants. */
void *anr_malloc_dbg(anr_heap_t *h, size_t size, const char *file, int line,
		     const char *func);
void *anr_malloc_if_available_dbg(anr_heap_t *h, size_t size, const char *file,
				  int line, const char *func);
void *anr_calloc_dbg(anr_heap_t *h, size_t nmemb, size_t size,
		     const char *file, int line, const char *func);
void *anr_realloc_dbg(anr_heap_t *h, void *p, size_t size,
		      const char *file, int line, const char *func);
void *anr_malloc_realloc_dbg(anr_heap_t *h, void *p, size_t size,
			     const char *file, int line, const char *func);
void *anr_memalign_dbg(anr_heap_t *h, size_t align, size_t size,
		       const char *file, int line, const char *func);
/* For wrappers: record `caller` (their own return address) instead. */
void *anr_malloc_from(anr_heap_t *h, size_t size, const void *caller);

#define ANR_MALLOC(h, n) anr_malloc_dbg((h), (n), __FILE__, __LINE__, __func__)
#define ANR_MALLOC_IF_AVAILABLE(h, n) \
	anr_malloc_if_available_dbg((h), (n), __FILE__, __LINE__, __func__)
#define ANR_CALLOC(h, n, m) \
	anr_calloc_dbg((h), (n), (m), __FILE__, __LINE__, __func__)
#define ANR_REALLOC(h, p, n) \
	anr_realloc_dbg((h), (p), (n), __FILE__, __LINE__, __func__)
#define ANR_MEMALIGN(h, a, n) \
	anr_memalign_dbg((h), (a), (n), __FILE__, __LINE__, __func__)

/* ------------------------------------------------------------------ */
/* Need-more-memory and give-back callbacks                           */

enum anr_need_reason {
	ANR_NEED_ALLOC = 0,     /* an anr_malloc() is short of budget */
	ANR_NEED_GIVE_BACK = 1, /* the broker (or the application) wants memory back */
};

/*
 * Free what you can towards `bytes` (free cached objects, drop buffers)
 * and return how many bytes you freed (0: nothing).  `round` counts from 0
 * within one allocation and grows with urgency.  Runs in the thread that
 * allocates (or that serves the broker), without any heap lock held: it
 * may call anr_malloc_free() and anr_gc_collect() on any heap, and may
 * block.  It should not allocate from h: if it does, that allocation
 * calls no callback and fails at once when the budget is short (as
 * anr_malloc_if_available), so callbacks never nest.
 */
typedef size_t (*anr_need_fn)(void *arg, anr_heap_t *h, size_t bytes,
			      enum anr_need_reason why, unsigned round);

#define ANR_MAX_CALLBACKS 16

/* 0, or -1 with errno ENOSPC (table full) / EINVAL. */
int anr_add_need_callback(anr_heap_t *h, anr_need_fn fn, void *arg);
int anr_remove_need_callback(anr_heap_t *h, anr_need_fn fn, void *arg);

/* Called once each time the heap enters the out-of-memory state. */
typedef void (*anr_oom_fn)(void *arg, anr_heap_t *h, size_t requested);
void anr_set_oom_callback(anr_heap_t *h, anr_oom_fn fn, void *arg);

struct anr_oom_info {
	int set;              /* the sticky state */
	size_t requested;     /* the allocation that failed first */
	uint64_t count;       /* failed allocations since the state was set */
	const void *caller;   /* who asked */
};
/* Returns the sticky state (0 or 1); info may be NULL. */
int anr_oom_get(anr_heap_t *h, struct anr_oom_info *info);
void anr_oom_clear(anr_heap_t *h);

/* ------------------------------------------------------------------ */
/* Mark-and-sweep garbage collection                                  */

/* Mark your roots: call anr_gc_mark() for every block you still use. */
typedef void (*anr_mark_fn)(void *arg, anr_heap_t *h);
int anr_add_mark_callback(anr_heap_t *h, anr_mark_fn fn, void *arg);
int anr_remove_mark_callback(anr_heap_t *h, anr_mark_fn fn, void *arg);

/*
 * Mark the live block that contains p (any address inside the user area,
 * so interior pointers count).  Returns 1 if newly marked, 0 if it was
 * marked already, -1 if p is not inside a live block of h.  Marks set
 * outside a collection count for the next one (mark, then collect without
 * callbacks, is the manual way).  With gc_scan,
 * a newly marked block's contents are scanned for further pointers into h
 * before the collection sweeps.
 */
int anr_gc_mark(anr_heap_t *h, const void *p);

#define ANR_GC_FREE 0x1   /* free unmarked blocks */
#define ANR_GC_REPORT 0x2 /* write one leak line per unmarked block to fd */

struct anr_gc_result {
	size_t live_blocks, live_bytes;         /* marked */
	size_t unmarked_blocks, unmarked_bytes; /* garbage (or leaks) */
	size_t freed_blocks, freed_bytes;
};

/*
 * Run a collection: clear marks, call every mark callback, (scan), then
 * sweep.  Blocks allocated while it runs count as marked.  fd is where
 * ANR_GC_REPORT writes (-1: nowhere).  0, or -1 (EBUSY: a collection is
 * already running on h; ENOTSUP: a plain heap, which keeps no marks).
 */
int anr_gc_collect(anr_heap_t *h, unsigned flags, int fd,
		   struct anr_gc_result *res);
/* A collection that frees nothing and reports every unmarked block. */
int anr_leak_report(anr_heap_t *h, int fd, struct anr_gc_result *res);

/* ------------------------------------------------------------------ */
/* membroker                                                          */

/* Connect now (broker = 1 in the config does it at creation).  socket
 * NULL: the config's, else $MEMBROKER_SOCKET or the default.  0 or -1. */
int anr_broker_connect(anr_heap_t *h, const char *socket_path);
/* The connection's fd for the application's poll loop (-1 if none). */
int anr_broker_fd(anr_heap_t *h);
/* Handle what arrived on the fd (give-back requests); never waits.
 * Returns the messages handled, or a negative mb error: MB_ETIMEDOUT when
 * another thread's broker call holds the connection (that call handles
 * what arrives meanwhile), MB_EBUSY from the heap's own give-back. */
int anr_broker_dispatch(anr_heap_t *h);
/* Serve the broker from a helper thread instead (0 or -1). */
int anr_broker_start_thread(anr_heap_t *h);
void anr_broker_stop_thread(anr_heap_t *h);
/* Give back the broker's pages that the heap does not use now (beyond
 * free_high of slack); returns bytes returned.  May be called at any
 * time; from a give-back callback the broker caused it returns 0 (the
 * answer to the broker takes the pages). */
size_t anr_broker_return_unused(anr_heap_t *h);

/*
 * Free memory as if the broker had asked for `bytes`: run the need
 * callbacks with ANR_NEED_GIVE_BACK (and a collection with
 * gc_on_give_back), trim, and lower the budget by what became unused, at
 * most `bytes`: the broker's pages first, given back to the broker, then
 * the heap's own budget (never below one page).  Returns the bytes
 * removed from the budget; 0 from a give-back callback the broker caused.
 */
size_t anr_give_back(anr_heap_t *h, size_t bytes);

/* ------------------------------------------------------------------ */
/* Debug                                                              */

/* Copy len bytes (at most debug_info_size) into the block that contains
 * p.  0, or -1 with errno (EINVAL: not a block; ENOSPC: feature off or
 * len too large). */
int anr_set_debug_info(const void *p, const void *data, size_t len);
/* Copies the block's debug info into buf; returns its length or -1. */
ssize_t anr_get_debug_info(const void *p, void *buf, size_t cap);

#define ANR_INFO_FRAMES 16

/* What is known of the live block that contains p. */
struct anr_block_info {
	void *ptr;                /* the user pointer */
	size_t size;              /* requested */
	uint64_t seq;             /* allocation number */
	const void *caller;       /* return address of the allocating call */
	const char *file, *func;  /* *_dbg calls only, else NULL */
	int line;
	uint32_t tid;
	size_t nframes;           /* call stack (stack_depth > 0) */
	const void *frames[ANR_INFO_FRAMES];
};
/* 0, or -1 (EINVAL) if p is not inside a live block of h. */
int anr_block_info(anr_heap_t *h, const void *p, struct anr_block_info *info);

/* Check the guard words of one block (0 ok, -1 damaged or not a block). */
int anr_check_block(anr_heap_t *h, const void *p);
/* Check the whole heap: every record and guard words, the side table,
 * and the core's metadata.  Returns the number of problems found (each
 * reported). */
int anr_verify(anr_heap_t *h);

enum anr_op_kind {
	ANR_OP_MALLOC = 1,
	ANR_OP_FREE = 2,
	ANR_OP_REALLOC = 3,
	ANR_OP_MEMALIGN = 4,
	ANR_OP_FAIL = 5, /* an allocation that returned NULL */
};

/* One flight-recorder entry. */
struct anr_op {
	uint64_t seq;
	uint32_t kind;   /* enum anr_op_kind */
	uint32_t tid;
	const void *ptr; /* the block (the new one for realloc) */
	const void *old; /* realloc: the old block */
	size_t size;
	const void *caller;
};

/* Copy the last (up to n) operations, oldest first; returns how many. */
size_t anr_recorder_read(anr_heap_t *h, struct anr_op *ops, size_t n);

struct anr_malloc_stats {
	size_t budget, reserved, resident, free_resident, in_use, peak_in_use;
	size_t live_blocks, live_bytes; /* requested sizes */
	uint64_t allocs, frees, failures, reallocs;
	uint64_t need_calls;            /* need-more callback invocations */
	uint64_t give_back_requests;    /* from the broker or anr_give_back */
	uint64_t given_back_bytes;
	uint64_t broker_requests;       /* quota requests sent */
	uint64_t broker_granted_bytes;
	int64_t broker_balance;         /* pages held from the broker */
	uint64_t gc_runs, gc_freed_blocks, gc_freed_bytes;
	uint64_t guard_errors, bad_frees, oom_events;
	uint64_t deferred_frees;        /* frees queued while the heap was busy */
	uint64_t madvise_calls, madvised_bytes;
};
void anr_heap_stats(anr_heap_t *h, struct anr_malloc_stats *st);

#define ANR_REPORT_STATS 0x1
#define ANR_REPORT_RECORDER 0x2
#define ANR_REPORT_BLOCKS 0x4
#define ANR_REPORT_ALL 0x7
/* Write a report to fd.  The heap lock is only held to copy small chunks,
 * so real-time threads are not held up for the length of the report. */
int anr_heap_report(anr_heap_t *h, int fd, unsigned what);

/* Serve the report on an AF_UNIX socket (debug_socket does it at
 * creation): whoever connects gets ANR_REPORT_ALL.  Served by a helper
 * thread at the lowest scheduling priority.  0 or -1. */
int anr_debug_socket_start(anr_heap_t *h, const char *path);
void anr_debug_socket_stop(anr_heap_t *h);

#ifdef __cplusplus
}
#endif

#endif /* ANRMALLOC_H */
