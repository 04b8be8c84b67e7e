/*
 * gm_internal.h - shared state of libgmalloc's modules.
 *
 * Everything here runs inside malloc: no heap allocation (other than our
 * own heap, outside its lock), no stdio; messages go through mb_log.
 */
#ifndef GM_INTERNAL_H
#define GM_INTERNAL_H

#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#include "anrcore.h"
#include "mb_conf.h"
#include "mbclient.h"

/* What libgmalloc.so exports (libgmalloc.map names the same). */
#define GM_API __attribute__((visibility("default")))

#define GM_SOCKET_MAX 108 /* sizeof(sun_path) */
#define GM_SIGNAL_MAX 16
#define GM_BT_MAX 16      /* backtrace_depth at most */
#define GM_TIMEOUT_MAX_MS ((uint64_t)MB_MAX_TIMEOUT_MS) /* broker deadlines at most */

enum gm_on_limit { GM_ON_LIMIT_NULL = 0, GM_ON_LIMIT_ABORT = 1 };
enum gm_urgency { GM_URGENCY_REQUEST = 0, GM_URGENCY_THEN_RESERVE = 1 };
/* page_return_thread: when gmalloc's page-return thread starts */
enum gm_prt { GM_PRT_OFF = 0, GM_PRT_ON = 1, GM_PRT_AUTO = 2 };

struct gm_config {
	uint64_t limit;          /* fixed maximum; 0: none */
	uint64_t reserve;        /* address space of the heap */
	uint64_t free_low;
	uint64_t free_high;
	int page_return_thread;  /* enum gm_prt */
	uint64_t idle_return;    /* ms: the page-return thread's idle return; 0: off */
	int on_limit;            /* enum gm_on_limit */
	int broker;
	char broker_socket[GM_SOCKET_MAX];
	uint64_t broker_timeout; /* ms: deadline of every broker call */
	uint64_t quota_step;
	uint64_t quota_release;
	int urgency;             /* enum gm_urgency */
	uint64_t reserve_timeout; /* ms; 0: wait for ever */
	int bad_free;            /* enum anrc_bad_free_action */
	int trash;
	int guard;
	uint64_t backtrace_depth; /* frames per block; 0: off */
	int report_at_exit;
	char report_signal[GM_SIGNAL_MAX];
	int log_level;
};

/* gm_config.c */
extern const struct mb_conf_key gm_conf_table[];
/* Defaults, then the file, then GMALLOC_* variables; bad entries are
 * reported and leave the default.  Returns the number of bad entries. */
int gm_config_read(struct gm_config *cfg, char *const *envp);
/* Signal number of a report_signal value ("USR1", "SIGUSR2", "12", "0"),
 * or -1 if it names no usable signal. */
int gm_signal_parse(const char *s);

/* gm_init.c */
extern struct gm_config gm_cfg;
extern struct anrc_heap *gm_heap_ptr;
/* The heap once it is ready in plain mode (no trailer), else NULL: the
 * only thing malloc and free read before their inlined fast paths
 * (hidden: the compiler then reads it in one instruction, not through the
 * GOT). */
extern struct anrc_heap *gm_fast_heap __attribute__((visibility("hidden")));
/* The heap, initialising it on first use.  NULL while the calling thread
 * is itself initialising (use the bootstrap arena) or if init failed. */
struct anrc_heap *gm_heap(void);
int gm_init_failed(void);
void *gm_boot_alloc(size_t align, size_t size);
int gm_boot_owns(const void *p);
size_t gm_boot_size(const void *p);

/* gm_broker.c */
enum gm_mb_state {
	GM_MB_OFF = 0,     /* broker = off */
	GM_MB_UNTRIED = 1, /* not connected yet (or lost, or forked) */
	GM_MB_OPEN = 2,
	GM_MB_DEAD = 3,    /* refused for good: the fixed limit applies */
	GM_MB_LOST = 4,    /* unreachable or silent: fixed limit, retried */
};
extern _Atomic int gm_mb_state;
void gm_broker_init(struct anrc_heap *h);
int gm_broker_more(void *arg, struct anrc_heap *h, size_t bytes, unsigned call);
/* Called after frees: return surplus quota above the hysteresis mark. */
void gm_broker_note_free(void);
size_t gm_broker_release(int force);
void gm_broker_fork_child(void);
void gm_broker_report(int fd);
uint64_t gm_broker_held(void);
/* Connected, or lost and retried: frees are counted so surplus quota can
 * go back, or the broker be tried again (read on every free: inline). */
static inline int gm_broker_open(void)
{
	int s = atomic_load_explicit(&gm_mb_state, memory_order_relaxed);
	return s == GM_MB_OPEN || s == GM_MB_LOST;
}
/* The budget the core should have without any quota from the broker. */
size_t gm_fixed_budget(void);

/* gm_report.c */
void gm_report_fd(int fd);
void gm_out_of_memory(size_t size);

/*
 * gm_trailer.c: with guard or backtrace_depth on, each block carries a
 * trailer at the end of its usable size:
 *   [data: size bytes][fill (guard)][frames: depth words][size][canary]
 * The block is asked of the core gm_trailer_bytes() larger.
 */
extern size_t gm_trailer_size;  /* 0: blocks have no trailer */
void gm_trailer_setup(void);
void gm_trailer_set(void *p, size_t size, size_t usable, const void *caller);
/* Verifies the trailer of a live block (aborting if it was overwritten);
 * returns the requested size. */
size_t gm_trailer_check(void *p, size_t usable);
/* The report's "live blocks by call site" (backtrace_depth > 0). */
void gm_trailer_report(int fd);

#endif /* GM_INTERNAL_H */
