/*
 * heap.c - configuration, heap creation and destruction, the process-wide
 * heap registry, callback tables, the sticky out-of-memory state and
 * statistics.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include "am_internal.h"
#include "mb_addr.h"
#include "mb_conf.h"
#include "mb_log.h"
#include "mb_thread.h"

#define API __attribute__((visibility("default")))
#define AM_REGISTRY_MAX 64
#define AM_ENV_PREFIX "ANRMALLOC_"

extern char **environ;

#define OFF(f) offsetof(struct anr_malloc_config, f)
#define SZ(f) sizeof(((struct anr_malloc_config *)0)->f)

static const char *const am_error_choices[] = { "abort", "report", "ignore",
						NULL };

/* The one table of config keys; man/anrmalloc.3 documents each of them. */
static const struct mb_conf_key am_keys[] = {
	{ "name", MB_CONF_STRING, OFF(name), SZ(name), "anrmalloc",
	  "heap name in reports and on the broker", NULL },
	{ "reserve", MB_CONF_SIZE, OFF(reserve), 0, "1G",
	  "address space reserved once at creation", NULL },
	{ "budget", MB_CONF_SIZE, OFF(budget), 0, "64M",
	  "initial budget: bytes that may be resident", NULL },
	{ "free_low", MB_CONF_SIZE, OFF(free_low), 0, "256K",
	  "free resident bytes a trim keeps", NULL },
	{ "free_high", MB_CONF_SIZE, OFF(free_high), 0, "1M",
	  "trim when free resident bytes pass this", NULL },
	{ "page_return_thread", MB_CONF_BOOL, OFF(page_return_thread), 0, "no",
	  "give free pages back from a helper thread: no malloc or free calls madvise", NULL },
	{ "idle_return", MB_CONF_DURATION, OFF(idle_return), 0, "1s",
	  "with page_return_thread: once no page has been handed out or given back for this long, "
	  "every free page goes back, those under free_low too; 0: never", NULL },
	{ "max_blocks", MB_CONF_U64, OFF(max_blocks), AM_MAX_BLOCKS, "262144",
	  "live blocks the side table can hold records of (1 to 2147483648)", NULL },
	{ "track_blocks", MB_CONF_BOOL, OFF(track_blocks), 0, "yes",
	  "keep a record of every block (caller, size, GC mark); no: the plain path", NULL },
	{ "need_more_retries", MB_CONF_U64, OFF(need_more_retries), 0, "4",
	  "rounds of need-more callbacks per allocation", NULL },
	{ "on_error", MB_CONF_ENUM, OFF(on_error), 0, "abort",
	  "bad free or damaged guard: abort, report or ignore",
	  am_error_choices },
	{ "priority_inherit", MB_CONF_BOOL, OFF(priority_inherit), 0, "no",
	  "priority-inheriting heap lock (on with debug_socket)", NULL },
	{ "oom_fail_fast", MB_CONF_BOOL, OFF(oom_fail_fast), 0, "no",
	  "fail allocations at once while the out-of-memory state is set",
	  NULL },
	{ "gc_scan", MB_CONF_BOOL, OFF(gc_scan), 0, "no",
	  "scan marked blocks for pointers to further blocks", NULL },
	{ "gc_on_need_more", MB_CONF_BOOL, OFF(gc_on_need_more), 0, "no",
	  "collect garbage when an allocation runs out of budget", NULL },
	{ "gc_on_give_back", MB_CONF_BOOL, OFF(gc_on_give_back), 0, "no",
	  "collect garbage when asked to give memory back", NULL },
	{ "recorder", MB_CONF_U64, OFF(recorder), AM_MAX_RECORDER, "0",
	  "flight recorder: last operations kept (0: off; at most 16777216)", NULL },
	{ "guards", MB_CONF_BOOL, OFF(guards), 0, "no",
	  "guard words before and after every block", NULL },
	{ "stack_depth", MB_CONF_U64, OFF(stack_depth), AM_MAX_STACK_DEPTH, "0",
	  "return addresses kept per block (at most 64)", NULL },
	{ "debug_info_size", MB_CONF_U64, OFF(debug_info_size), AM_MAX_DEBUG_INFO, "0",
	  "client debug bytes kept per block (at most 4096)", NULL },
	{ "trash_free", MB_CONF_BOOL, OFF(trash_free), 0, "no",
	  "fill freed memory with a trash pattern", NULL },
	{ "debug_socket", MB_CONF_STRING, OFF(debug_socket), SZ(debug_socket),
	  "", "AF_UNIX path that serves the heap report (empty: off)", NULL },
	{ "broker", MB_CONF_BOOL, OFF(broker), 0, "no",
	  "connect to membroker as a bidirectional client", NULL },
	{ "broker_socket", MB_CONF_STRING, OFF(broker_socket),
	  SZ(broker_socket), "",
	  "broker socket (empty: $MEMBROKER_SOCKET or the default)", NULL },
	{ "broker_thread", MB_CONF_BOOL, OFF(broker_thread), 0, "no",
	  "answer the broker from a helper thread", NULL },
	{ "broker_chunk", MB_CONF_SIZE, OFF(broker_chunk), 0, "1M",
	  "smallest amount asked from the broker at a time", NULL },
	{ "broker_timeout", MB_CONF_DURATION, OFF(broker_timeout), 0, "250ms",
	  "deadline of every broker call; past it the heap lives on its own budget", NULL },
	{ "broker_initial", MB_CONF_SIZE, OFF(broker_initial), 0, "0",
	  "quota reserved from the broker at creation", NULL },
	MB_CONF_END
};

static pthread_mutex_t am_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct anr_malloc_heap *am_registry[AM_REGISTRY_MAX];

/* For tests: the table, to compare against the man page. */
const struct mb_conf_key *am_config_table(void);
const struct mb_conf_key *am_config_table(void)
{
	return am_keys;
}

API void anr_config_init(struct anr_malloc_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	if (mb_conf_defaults(am_keys, cfg) != 0)
		mb_log(MB_LOG_ERR, "anrmalloc: a default of the key table does not parse");
}

API int anr_config_load(struct anr_malloc_config *cfg, const char *path)
{
	return mb_conf_load(am_keys, cfg, path);
}

API int anr_config_set(struct anr_malloc_config *cfg, const char *key,
		       const char *value)
{
	char err[MB_CONF_ERR_MAX];

	if (mb_conf_set(am_keys, cfg, key, value, err, sizeof(err)) != 0) {
		mb_log(MB_LOG_ERR, "anrmalloc: %s", err);
		return -1;
	}
	return 0;
}

/* A setuid or setgid program does not take its configuration from the
 * environment of whoever runs it. */
API int anr_config_env(struct anr_malloc_config *cfg, const char *prefix)
{
	if (getauxval(AT_SECURE) != 0)
		return 0;
	return mb_conf_env(am_keys, cfg, prefix ? prefix : AM_ENV_PREFIX,
			   environ, NULL);
}

API void anr_config_help(int fd)
{
	mb_conf_help(am_keys, fd);
}

static int am_registry_add(struct anr_malloc_heap *h)
{
	int rc = -1;

	pthread_mutex_lock(&am_registry_lock);
	for (size_t i = 0; i < AM_REGISTRY_MAX; i++) {
		if (am_registry[i] == NULL) {
			am_registry[i] = h;
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&am_registry_lock);
	return rc;
}

static void am_registry_del(struct anr_malloc_heap *h)
{
	pthread_mutex_lock(&am_registry_lock);
	for (size_t i = 0; i < AM_REGISTRY_MAX; i++)
		if (am_registry[i] == h)
			am_registry[i] = NULL;
	pthread_mutex_unlock(&am_registry_lock);
}

int am_registry_find(const void *p, struct anr_malloc_heap **out)
{
	int rc = -1;

	pthread_mutex_lock(&am_registry_lock);
	for (size_t i = 0; i < AM_REGISTRY_MAX; i++) {
		if (am_registry[i] && anrc_owns(am_registry[i]->core, p)) {
			*out = am_registry[i];
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&am_registry_lock);
	return rc;
}

API anr_heap_t *anr_heap_of(const void *p)
{
	struct anr_malloc_heap *h;

	return am_registry_find(p, &h) == 0 ? h : NULL;
}

API const char *anr_heap_name(const anr_heap_t *h)
{
	return h->cfg.name;
}

static void *am_map(size_t len, int noreserve)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | (noreserve ? MAP_NORESERVE : 0),
		       -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* A configuration filled in by the program (a file's or anr_config_set's
 * values were checked there, against the key table): the first key out
 * of its range is named.  The largest values are the key table's. */
static int am_config_check(const struct anr_malloc_config *c)
{
	const char *bad = NULL;

	for (const struct mb_conf_key *k = am_keys; k->name; k++) {
		if (k->type == MB_CONF_U64 && k->size != 0 &&
		    *(const uint64_t *)((const char *)c + k->offset) > k->size) {
			mb_log(MB_LOG_ERR, "anrmalloc: invalid configuration: %s above %zu",
			       k->name, k->size);
			return -1;
		}
	}
	if (c->max_blocks == 0)
		bad = "max_blocks is 0";
	else if (c->on_error < ANR_ERROR_ABORT || c->on_error > ANR_ERROR_IGNORE)
		bad = "on_error not abort, report or ignore";
	else if (memchr(c->name, 0, sizeof(c->name)) == NULL)
		bad = "name not terminated";
	else if (memchr(c->debug_socket, 0, sizeof(c->debug_socket)) == NULL)
		bad = "debug_socket not terminated";
	else if (memchr(c->broker_socket, 0, sizeof(c->broker_socket)) == NULL)
		bad = "broker_socket not terminated";
	if (bad != NULL) {
		mb_log(MB_LOG_ERR, "anrmalloc: invalid configuration: %s", bad);
		return -1;
	}
	return 0;
}

/*
 * Does the heap keep records?  Every feature that needs to know a block
 * (its caller, size, stack, debug info, guard words, mark, the recorder's
 * view of frees) turns them on; without any, the heap is plain: its calls
 * are the core's.
 */
static void am_layout(struct anr_malloc_heap *h)
{
	const struct anr_malloc_config *c = &h->cfg;

	h->track = c->track_blocks || c->guards || c->stack_depth ||
		   c->debug_info_size || c->recorder || c->gc_scan ||
		   c->gc_on_need_more || c->gc_on_give_back;
	h->plain = !h->track && !c->oom_fail_fast;
	h->front = c->guards ? ANR_ALIGN : 0;
	h->tail = c->guards ? AM_GUARD_SIZE : 0;
}

/* The side table (records.c) and the flight recorder's ring. */
static int am_tables(struct anr_malloc_heap *h)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	h->free_head = AM_NO_SLOT;
	h->grey_head = AM_NO_SLOT;
	if (h->track && am_side_map(h) != 0)
		return -1;
	if (h->cfg.recorder) {
		h->ring_n = h->cfg.recorder;
		h->ring_map = am_round(h->ring_n * sizeof(struct anr_op), pg);
		h->ring = am_map(h->ring_map, 0);
		if (h->ring == NULL)
			return -1;
	}
	return 0;
}

static struct anrc_heap *am_core_create(const struct anr_malloc_config *c,
					int track)
{
	struct anrc_config cc;

	memset(&cc, 0, sizeof(cc));
	cc.reserve = (size_t)mb_addr_reserve(c->reserve ? c->reserve : ANR_DEFAULT_RESERVE,
					     c->name);
	cc.budget = c->budget;
	/* The core reads 0 as "no limit"; with a broker it means "only what
	 * the broker grants", which starts at one page. */
	if (c->broker && cc.budget == 0)
		cc.budget = (size_t)sysconf(_SC_PAGESIZE);
	cc.free_low = c->free_low;
	cc.free_high = c->free_high;
	cc.idle_return_ms = c->idle_return > UINT_MAX ? UINT_MAX : (unsigned)c->idle_return;
	/* With records the layer validates every pointer before the core
	 * sees it; a plain heap's frees are judged by the core. */
	if (c->on_error == ANR_ERROR_ABORT)
		cc.bad_free = ANR_BAD_FREE_ABORT;
	else if (c->on_error == ANR_ERROR_IGNORE)
		cc.bad_free = ANR_BAD_FREE_IGNORE;
	else
		cc.bad_free = ANR_BAD_FREE_REPORT;
	if (track)
		cc.bad_free = ANR_BAD_FREE_REPORT;
	cc.trash_free = c->trash_free;
	cc.valgrind = 1;
	cc.name = c->name;
	/* The core's lock is the heap's only lock, the one a real-time
	 * thread may wait for. */
	cc.priority_inherit = c->priority_inherit || c->debug_socket[0];
	return anrc_create(&cc);
}

/* page_return_thread: started with the heap, so that its stack is mapped
 * before the heap makes no more mappings; stopped and joined by
 * anr_heap_destroy. */
static int am_returner_start(struct anr_malloc_heap *h)
{
	int rc = mb_thread_start(&h->ret_thread, NULL, "anrm-return", anrc_return_helper_thread,
				 h->core);

	if (rc != 0) {
		mb_log(MB_LOG_ERR, "anrmalloc %s: page_return_thread: %s",
		       h->cfg.name, strerror(rc));
		errno = rc;
		return -1;
	}
	h->ret_thread_on = 1;
	return 0;
}

static void am_returner_stop(struct anr_malloc_heap *h)
{
	if (!h->ret_thread_on)
		return;
	anrc_return_helper_stop(h->core);
	pthread_join(h->ret_thread, NULL);
	h->ret_thread_on = 0;
}

static int am_start_services(struct anr_malloc_heap *h)
{
	if (h->cfg.page_return_thread && am_returner_start(h) != 0)
		return -1;
	if (h->cfg.broker) {
		if (anr_broker_connect(h, NULL) != 0)
			return -1;
		if (h->cfg.broker_thread && anr_broker_start_thread(h) != 0)
			return -1;
	}
	if (h->cfg.debug_socket[0] &&
	    anr_debug_socket_start(h, h->cfg.debug_socket) != 0)
		return -1;
	return 0;
}

/*
 * fork: a child is born with one thread, and every lock another thread
 * held in the parent would stay held for ever.  The handlers take the
 * registry lock, then per heap its budget lock and its lock (the core's,
 * the only one an allocation takes), in the order every path takes them,
 * before the fork, release them after it in the parent; the child starts
 * them afresh.
 */
static void am_fork_prepare(void)
{
	pthread_mutex_lock(&am_registry_lock);
	for (size_t i = 0; i < AM_REGISTRY_MAX; i++) {
		struct anr_malloc_heap *h = am_registry[i];

		if (h == NULL)
			continue;
		pthread_mutex_lock(&h->budget_lock);
		anrc_fork_prepare(h->core);
	}
}

static void am_fork_parent(void)
{
	for (size_t i = AM_REGISTRY_MAX; i-- > 0;) {
		struct anr_malloc_heap *h = am_registry[i];

		if (h == NULL)
			continue;
		anrc_fork_parent(h->core);
		pthread_mutex_unlock(&h->budget_lock);
	}
	pthread_mutex_unlock(&am_registry_lock);
}

static void am_fork_child(void)
{
	for (size_t i = 0; i < AM_REGISTRY_MAX; i++) {
		struct anr_malloc_heap *h = am_registry[i];

		if (h == NULL)
			continue;
		anrc_fork_child(h->core);
		pthread_mutex_init(&h->budget_lock, NULL);
		/* The heap's threads stayed in the parent (the core's helper
		 * state was reset by anrc_fork_child). */
		h->ret_thread_on = 0;
		am_debug_fork_child(h);
		am_broker_fork_child(h);
		/* A collection another thread was running ended with it. */
		if (h->gc_running) {
			h->gc_running = 0;
			h->grey_head = AM_NO_SLOT;
			for (size_t j = 0; j < h->slots_hw; j++)
				h->slots[j].grey = 0;
		}
	}
	pthread_mutex_init(&am_registry_lock, NULL);
	am_map_fork_child();
}

static pthread_once_t am_atfork_once = PTHREAD_ONCE_INIT;

static void am_atfork_register(void)
{
	if (pthread_atfork(am_fork_prepare, am_fork_parent, am_fork_child) != 0)
		mb_log(MB_LOG_WARNING, "anrmalloc: pthread_atfork failed: "
		       "fork is not protected");
}

API anr_heap_t *anr_heap_create(const struct anr_malloc_config *cfg)
{
	struct anr_malloc_config def;
	struct anr_malloc_heap *h;
	size_t len = am_round(sizeof(*h), (size_t)sysconf(_SC_PAGESIZE));
	int err;

	if (cfg == NULL) {
		anr_config_init(&def);
		cfg = &def;
	}
	if (am_config_check(cfg) != 0) {
		errno = EINVAL;
		return NULL;
	}
	/* The structure lives in its own mapping, outside every heap. */
	h = am_map(len, 0);
	if (h == NULL)
		return NULL;
	h->map_size = len;
	h->cfg = *cfg;
	h->dbg_fd = -1;
	h->mb_stop[0] = h->mb_stop[1] = -1;
	h->dbg_stop[0] = h->dbg_stop[1] = -1;
	pthread_mutex_init(&h->budget_lock, NULL);
	am_layout(h);
	for (size_t i = 0; i < AM_DEFER_CELLS; i++)
		h->defer[i].seq = i;
	if (am_tables(h) != 0)
		goto fail;
	h->core = am_core_create(cfg, h->track);
	if (h->core == NULL)
		goto fail;
	{
		struct anrc_stats cs;

		anrc_get_stats(h->core, &cs);
		h->reserved = cs.reserved;
		h->own_budget = cs.budget;
	}
	anrc_set_hook(h->core, am_core_hook, h);
	pthread_once(&am_atfork_once, am_atfork_register);
	if (am_registry_add(h) != 0) {
		errno = EMFILE;
		goto fail;
	}
	if (am_start_services(h) != 0)
		goto fail;
	return h;
fail:
	err = errno;
	anr_heap_destroy(h);
	errno = err;
	return NULL;
}

API anr_heap_t *anr_heap_open(const char *config_path)
{
	struct anr_malloc_config cfg;
	int rc;

	anr_config_init(&cfg);
	rc = anr_config_load(&cfg, config_path);
	if (rc < 0) {
		mb_log(MB_LOG_ERR, "anrmalloc: %s: %s", config_path,
		       strerror(-rc));
		errno = -rc;
		return NULL;
	}
	return anr_heap_create(&cfg);
}

API void anr_heap_destroy(anr_heap_t *h)
{
	if (h == NULL)
		return;
	anr_debug_socket_stop(h);
	anr_broker_stop_thread(h);
	am_returner_stop(h);
	am_broker_close(h);
	am_registry_del(h);
	if (h->core)
		anrc_destroy(h->core);
	am_side_unmap(h);
	if (h->ring)
		munmap(h->ring, h->ring_map);
	pthread_mutex_destroy(&h->budget_lock);
	munmap(h, h->map_size);
}

static int am_cb_add(struct anr_malloc_heap *h, struct am_callback *tab,
		     unsigned *n, void *fn, void *arg)
{
	int rc = 0;

	if (fn == NULL) {
		errno = EINVAL;
		return -1;
	}
	am_lock(h);
	if (*n >= ANR_MAX_CALLBACKS) {
		errno = ENOSPC;
		rc = -1;
	} else {
		tab[*n].fn = fn;
		tab[*n].arg = arg;
		(*n)++;
	}
	am_unlock(h);
	return rc;
}

static int am_cb_del(struct anr_malloc_heap *h, struct am_callback *tab,
		     unsigned *n, void *fn, void *arg)
{
	int rc = -1;

	am_lock(h);
	for (unsigned i = 0; i < *n; i++) {
		if (tab[i].fn == fn && tab[i].arg == arg) {
			memmove(&tab[i], &tab[i + 1],
				(*n - i - 1) * sizeof(tab[0]));
			(*n)--;
			rc = 0;
			break;
		}
	}
	am_unlock(h);
	if (rc != 0)
		errno = ENOENT;
	return rc;
}

API int anr_add_need_callback(anr_heap_t *h, anr_need_fn fn, void *arg)
{
	return am_cb_add(h, h->need, &h->n_need, (void *)fn, arg);
}

API int anr_remove_need_callback(anr_heap_t *h, anr_need_fn fn, void *arg)
{
	return am_cb_del(h, h->need, &h->n_need, (void *)fn, arg);
}

API int anr_add_mark_callback(anr_heap_t *h, anr_mark_fn fn, void *arg)
{
	return am_cb_add(h, h->mark, &h->n_mark, (void *)fn, arg);
}

API int anr_remove_mark_callback(anr_heap_t *h, anr_mark_fn fn, void *arg)
{
	return am_cb_del(h, h->mark, &h->n_mark, (void *)fn, arg);
}

API void anr_set_oom_callback(anr_heap_t *h, anr_oom_fn fn, void *arg)
{
	am_lock(h);
	h->oom_fn = fn;
	h->oom_arg = arg;
	am_unlock(h);
}

API int anr_oom_get(anr_heap_t *h, struct anr_oom_info *info)
{
	int set;

	am_lock(h);
	set = h->oom.set;
	if (info)
		*info = h->oom;
	am_unlock(h);
	return set;
}

API void anr_oom_clear(anr_heap_t *h)
{
	am_lock(h);
	memset(&h->oom, 0, sizeof(h->oom));
	am_unlock(h);
}

API void anr_heap_stats(anr_heap_t *h, struct anr_malloc_stats *st)
{
	struct anrc_stats cs;
	struct am_drained d;

	anrc_get_stats(h->core, &cs);
	memset(st, 0, sizeof(*st));
	st->budget = cs.budget;
	st->reserved = cs.reserved;
	st->resident = cs.resident;
	st->free_resident = cs.free_resident;
	st->in_use = cs.in_use;
	st->peak_in_use = cs.peak_in_use;
	st->madvise_calls = cs.madvise_calls;
	st->madvised_bytes = cs.madvised_bytes;
	am_lock(h);
	am_drain_locked(h, &d);
	if (h->track) {
		st->live_blocks = h->live_blocks;
		st->live_bytes = h->live_bytes;
		st->allocs = h->seq;
		st->frees = h->seq - h->live_blocks;
		st->bad_frees = h->bad_frees;
		st->deferred_frees = __atomic_load_n(&h->deferred_frees, __ATOMIC_RELAXED);
	} else {
		/* No records: the core's counts (usable sizes). */
		st->allocs = cs.allocs;
		st->frees = cs.frees;
		st->live_blocks = (size_t)(cs.allocs - cs.frees);
		st->live_bytes = cs.in_use;
		st->bad_frees = cs.bad_frees;
		st->deferred_frees = cs.deferred_frees;
	}
	st->failures = h->failures;
	st->reallocs = __atomic_load_n(&h->reallocs, __ATOMIC_RELAXED);
	st->need_calls = h->need_calls;
	st->give_back_requests = __atomic_load_n(&h->give_back_requests, __ATOMIC_RELAXED);
	st->given_back_bytes = __atomic_load_n(&h->given_back_bytes, __ATOMIC_RELAXED);
	st->broker_requests = h->broker_requests;
	st->broker_granted_bytes = h->broker_granted_bytes;
	st->gc_runs = h->gc_runs;
	st->gc_freed_blocks = h->gc_freed_blocks;
	st->gc_freed_bytes = h->gc_freed_bytes;
	st->guard_errors = h->guard_errors;
	st->oom_events = h->oom_events;
	am_unlock(h);
	am_drained_free(h, &d);
	st->broker_balance = h->mb_connected ? mb_balance(&h->mb) : 0;
}
