/*
 * gm_broker.c - gmalloc as a sink client of the membroker daemon.
 *
 * While a broker is in use, the core's budget is the quota we hold,
 * capped by the fixed limit: the limit is never passed, whatever the
 * broker would grant.  The core calls gm_broker_more() (without its heap
 * lock) when an allocation would pass the budget; we ask for quota in
 * multiples of quota_step with REQUEST and, when configured, RESERVE the
 * rest.  After frees, quota held above resident use by more than
 * quota_release goes back, keeping one step of slack so that a program
 * freeing and allocating around the mark does not ping-pong with the
 * broker.
 *
 * The broker's notify and deny events (subscribed at connection) are read
 * on the same free path: after one, cached free pages go back to the
 * kernel and every quota page above resident use goes back to the broker,
 * without the slack.
 *
 * The connection is opened lazily by the first need.  Every broker call
 * has the deadline broker_timeout.  One thread at a time speaks to the
 * broker (gm_mb_lock); a need for quota has one deadline for all of it
 * (gm_need_deadline, set at the hook's first call for an allocation and
 * kept for the calls that follow), its wait for another thread's call
 * included: a thread that waited finds the quota that call brought, or
 * asks for what is left of its own time, and a thread whose time ran out
 * while it waited fails as at a refusal.  So N threads short of quota at
 * once wait no longer than one, not N times as long.
 *
 * If the broker cannot be reached, stops answering or the connection
 * breaks, one warning is printed and the fixed limit applies (LOST) until
 * a retry, on the next need or after frees, at most every
 * MB_RECONNECT_INTERVAL_MS backing off to GM_RETRY_MAX_MS, reaches it
 * again; the new connection then claims what the heap has resident, and
 * what the broker accepts is the quota held.  A broker that refuses us for
 * good (permissions, protocol) leaves the fixed limit for the rest of the
 * process (DEAD).  A forked child holds no quota: it reconnects on its
 * first need with a fresh handle.
 *
 * Counters are atomics so that the report, which may run in a signal
 * handler, reads them without the lock.
 */
#include "config.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gm_internal.h"
#include "mb_clock.h"
#include "mb_log.h"
#include "mb_size.h"
#include "mb_thread.h"
#include "mbclient.h"

/* Retries of a silent broker back off up to this: each may cost a
 * broker_timeout, and a broker that comes back is still found within it. */
#define GM_RETRY_MAX_MS 1000

static mb_client gm_mb;
static pthread_mutex_t gm_mb_lock = PTHREAD_MUTEX_INITIALIZER;
_Atomic int gm_mb_state;
static _Atomic uint64_t gm_held;       /* quota bytes held */
static _Atomic uint64_t gm_freed_mark; /* anrc_freed_bytes() at the last check */
static uint64_t gm_page;               /* bytes per quota page */
static int gm_mb_opened;               /* gm_mb went through mb_open() */
static _Atomic int64_t gm_retry_at;    /* LOST: next attempt (monotonic ms) */
static int64_t gm_retry_ms;            /* LOST: current interval */
static int gm_warned;                  /* the fallback was announced */
static _Atomic int gm_low;             /* notify or deny came: give back */

static _Atomic uint64_t st_requests, st_reserves, st_granted, st_returns,
	st_returned, st_refused, st_lost, st_expired;

static const char *gm_state_names[] = { "off", "not connected", "connected",
					"refused (fixed limit)",
					"unreachable (fixed limit until it answers)" };

size_t gm_fixed_budget(void)
{
	return (size_t)gm_cfg.limit;
}

static size_t gm_capped(uint64_t held)
{
	if (gm_cfg.limit && held > gm_cfg.limit)
		return (size_t)gm_cfg.limit;
	return (size_t)held;
}

void gm_broker_init(struct anrc_heap *h)
{
	if (!gm_cfg.broker) {
		atomic_store(&gm_mb_state, GM_MB_OFF);
		return;
	}
	atomic_store(&gm_mb_state, GM_MB_UNTRIED);
	anrc_set_hook(h, gm_broker_more, NULL);
	/* No quota yet: the first allocation asks for it. */
	anrc_set_budget(h, 0);
}

static int64_t gm_now_ms(void)
{
	return (int64_t)mb_clock_ms();
}

/* Failures that may pass: the broker is away, stopped or restarting. */
static int gm_transient(int err)
{
	return err == MB_ECONNECT || err == MB_ECONNLOST || err == MB_ETIMEDOUT ||
	       err == MB_ESHUTDOWN || err == MB_ENOTCONN || err == MB_ESYS;
}

/*
 * The broker is not asked for now: the fixed limit applies.  A transient
 * failure is retried later (LOST); a refusal lasts (DEAD).  One warning.
 */
static void gm_give_up(struct anrc_heap *h, const char *why, int err)
{
	int retry = gm_transient(err);
	if (!gm_warned || !retry) {
		const char *sock = gm_cfg.broker_socket[0] ? gm_cfg.broker_socket : NULL;
		char lim[32];
		if (gm_cfg.limit)
			mb_format_size(lim, sizeof(lim), gm_cfg.limit);
		else
			mb_format(lim, sizeof(lim), "none");
		mb_log(MB_LOG_WARNING, "broker at %s: %s: %s; fixed limit %s applies%s",
		       sock ? sock : "the default socket", why, mb_strerror(err), lim,
		       retry ? " until it answers" : "");
		gm_warned = 1;
	}
	/* Hand back whatever we hold: the broker is no longer asked. */
	if (atomic_load(&gm_mb_state) == GM_MB_OPEN && !retry)
		(void)mb_close(&gm_mb);
	atomic_store(&gm_held, 0);
	if (atomic_load(&gm_mb_state) != GM_MB_LOST)
		gm_retry_ms = MB_RECONNECT_INTERVAL_MS;
	else if (gm_retry_ms < GM_RETRY_MAX_MS)
		gm_retry_ms *= 2;
	atomic_store(&gm_retry_at, gm_now_ms() + gm_retry_ms);
	atomic_store(&gm_mb_state, retry ? GM_MB_LOST : GM_MB_DEAD);
	struct anrc_stats st;
	anrc_get_stats(h, &st);
	anrc_set_budget(h, gm_cfg.limit ? (size_t)gm_cfg.limit : st.reserved);
}

/* What a new connection declares: the quota pages the heap has resident. */
static uint64_t gm_claim(void *arg)
{
	struct anrc_heap *h = arg;
	uint64_t page = mb_page_size(&gm_mb);
	if (page == 0)
		return 0;
	struct anrc_stats st;
	anrc_get_stats(h, &st);
	uint64_t bytes = gm_capped(st.resident);
	return (bytes + page - 1) / page;
}

/* Runs inside a library call on gm_mb: only notes the event. */
static void gm_on_event(void *arg, unsigned event, int64_t pool, uint64_t total,
			uint64_t value)
{
	(void)arg;
	(void)pool;
	(void)total;
	(void)value;
	if (event == MB_EVENT_MEM_NOTIFY || event == MB_EVENT_MEM_DENY)
		atomic_store(&gm_low, 1);
}

static int gm_connect(struct anrc_heap *h)
{
	struct mb_options opt;
	memset(&opt, 0, sizeof(opt));
	opt.socket_path = gm_cfg.broker_socket[0] ? gm_cfg.broker_socket : NULL;
	opt.kind = MB_CLIENT_SINK;
	opt.connect_timeout_ms = (int)gm_cfg.broker_timeout;
	opt.call_timeout_ms = (int)gm_cfg.broker_timeout;
	opt.claim = gm_claim;
	opt.arg = h;
	opt.event = gm_on_event;
	/* A handle left by a parent process or a lost connection is closed
	 * without speaking on it, then started afresh. */
	if (gm_mb_opened)
		(void)mb_close(&gm_mb);
	memset(&gm_mb, 0, sizeof(gm_mb));
	gm_mb_opened = 1;
	int rc = mb_open(&gm_mb, &opt);
	if (rc != 0) {
		gm_give_up(h, "connect", rc);
		return -1;
	}
	gm_page = mb_page_size(&gm_mb);
	if (gm_page == 0)
		gm_page = (uint64_t)sysconf(_SC_PAGESIZE);
	/* What the broker accepted of our claim is the quota we hold. */
	int64_t bal = mb_balance(&gm_mb);
	uint64_t held = bal > 0 ? (uint64_t)bal * gm_page : 0;
	atomic_store(&gm_held, held);
	atomic_store(&gm_mb_state, GM_MB_OPEN);
	anrc_set_budget(h, gm_capped(held));
	if (mb_subscribe(&gm_mb, MB_EVENT_MEM_NOTIFY | MB_EVENT_MEM_DENY) != 0)
		mb_log(MB_LOG_INFO, "the broker sends no memory events");
	mb_log(MB_LOG_INFO, "connected to the broker (quota page %lu bytes, %lu held)",
	       (unsigned long)gm_page, (unsigned long)held);
	return 0;
}

/* The broker went away or stopped answering: it holds nothing for us now. */
static void gm_lost(struct anrc_heap *h, int rc)
{
	atomic_fetch_add(&st_lost, 1);
	mb_log(MB_LOG_WARNING, "broker connection lost (%s): fixed limit until it "
	       "answers again", mb_strerror(rc));
	gm_warned = 1;
	gm_give_up(h, "connection lost", rc);
	/* The broker may be back already (a restart): try at the next need. */
	atomic_store(&gm_retry_at, gm_now_ms());
}

static int gm_conn_error(int rc)
{
	return rc == MB_ECONNLOST || rc == MB_ESHUTDOWN || rc == MB_ENOTCONN ||
	       (rc == MB_ETIMEDOUT && !mb_is_open(&gm_mb));
}

/*
 * A sink hears from the broker only in replies: a closed connection (the
 * broker died or restarted) shows as input on the idle socket.  Lock held.
 */
static void gm_check_alive(struct anrc_heap *h)
{
	struct pollfd p = { .fd = mb_fd(&gm_mb), .events = POLLIN };
	if (p.fd < 0 || poll(&p, 1, 0) <= 0)
		return;
	int rc = mb_dispatch(&gm_mb, 0);
	if (rc < 0 && rc != MB_EAGAIN && gm_conn_error(rc))
		gm_lost(h, rc);
}

/* LOST: reconnect when the retry is due.  Lock held.  0 when connected. */
static int gm_retry(struct anrc_heap *h)
{
	int64_t now = gm_now_ms();
	if (now < atomic_load(&gm_retry_at))
		return -1;
	if (gm_connect(h) != 0)
		return -1;
	mb_log(MB_LOG_NOTICE, "broker answers again: quota from the broker applies");
	return 0;
}

/* The broker said no for now: the allocation fails, we stay connected. */
static int gm_refusal(int rc)
{
	return rc == MB_EDENIED || rc == MB_ETIMEDOUT || rc == MB_ECAP ||
	       rc == MB_ECANCELED || rc == MB_ELOWMEM;
}

static uint64_t round_up(uint64_t v, uint64_t m)
{
	return (v + m - 1) / m * m;
}

/* The deadline of a need for quota that began at start (monotonic ns): a
 * REQUEST's broker_timeout, plus reserve_timeout with request-then-reserve;
 * -1 when a RESERVE may wait for ever (reserve_timeout 0). */
static int64_t gm_need_deadline(uint64_t start)
{
	uint64_t ms = gm_cfg.broker_timeout;
	if (gm_cfg.urgency == GM_URGENCY_THEN_RESERVE) {
		if (gm_cfg.reserve_timeout == 0)
			return -1;
		ms += gm_cfg.reserve_timeout;
	}
	return (int64_t)(start + ms * 1000000u);
}

/* What is left of deadline, in ms for a broker call, at most cap (-1:
 * none); 0 when it has passed. */
static int gm_left_ms(int64_t deadline, uint64_t cap)
{
	if (deadline < 0)
		return cap ? (int)cap : -1;
	int64_t left = deadline - (int64_t)mb_clock_ns();
	if (left <= 0)
		return 0;
	uint64_t ms = ((uint64_t)left + 999999u) / 1000000u;
	return (int)(cap && ms > cap ? cap : ms);
}

/* Ask for enough quota to cover `need` more bytes, by deadline (see
 * gm_need_deadline).  Lock held. */
static int gm_ask(struct anrc_heap *h, size_t need, int64_t deadline)
{
	uint64_t held = atomic_load(&gm_held);
	uint64_t cap = UINT64_MAX;
	if (gm_cfg.limit)
		cap = held < gm_cfg.limit ? gm_cfg.limit - held : 0;
	if (need > cap)
		return 0;
	uint64_t want = round_up(need, gm_cfg.quota_step);
	if (want > cap)
		want = need;
	uint64_t pages = round_up(want, gm_page) / gm_page;
	uint64_t granted = 0, more = 0;
	int timeout = gm_left_ms(deadline, gm_cfg.broker_timeout);
	if (timeout == 0) {
		atomic_fetch_add(&st_expired, 1);
		return 0;
	}
	atomic_fetch_add(&st_requests, 1);
	int rc = mb_request(&gm_mb, pages, timeout, &granted);
	if (rc == 0 && granted * gm_page < need &&
	    gm_cfg.urgency == GM_URGENCY_THEN_RESERVE &&
	    (timeout = gm_left_ms(deadline, 0)) != 0) {
		uint64_t rest = round_up(need - granted * gm_page, gm_page) / gm_page;
		atomic_fetch_add(&st_reserves, 1);
		rc = mb_reserve(&gm_mb, rest, timeout, &more);
		if (rc == MB_EDENIED || rc == MB_ELOWMEM ||
		    (rc == MB_ETIMEDOUT && mb_is_open(&gm_mb))) {
			more = 0;
			rc = 0;
		}
	}
	if (gm_conn_error(rc)) {
		gm_lost(h, rc);
		return 1; /* retried: reconnect, or fall back to the limit */
	}
	if (gm_refusal(rc)) {
		atomic_fetch_add(&st_refused, 1);
		return 0;
	}
	if (rc != 0) {
		/* Refused for good (permissions, protocol): stop asking. */
		gm_give_up(h, "quota request", rc);
		return 1;
	}
	granted += more;
	if (granted == 0) {
		atomic_fetch_add(&st_refused, 1);
		return 0;
	}
	atomic_fetch_add(&st_granted, granted * gm_page);
	held = atomic_fetch_add(&gm_held, granted * gm_page) + granted * gm_page;
	anrc_set_budget(h, gm_capped(held));
	return 1;
}

/* The deadline of the need this thread is serving (gm_broker_more): set
 * at the hook's first call for an allocation, kept for the calls after. */
static __thread int64_t gm_need_dl __attribute__((tls_model("initial-exec")));

int gm_broker_more(void *arg, struct anrc_heap *h, size_t bytes, unsigned call)
{
	int progress = 0;
	int64_t waited;
	size_t budget = anrc_get_budget(h);
	(void)arg;
	if (call == 0)
		gm_need_dl = gm_need_deadline(mb_clock_ns());
	int64_t deadline = gm_need_dl;
	if (mb_mutex_lock_by(&gm_mb_lock, deadline, &waited) != 0) {
		/* Another thread's call took all our time: what it brought
		 * is tried, else the allocation fails as at a refusal. */
		atomic_fetch_add(&st_expired, 1);
		return anrc_get_budget(h) > budget;
	}
	if (waited > 0 && anrc_get_budget(h) > budget) {
		/* The call we waited for changed the budget: try that first. */
		pthread_mutex_unlock(&gm_mb_lock);
		return 1;
	}
	switch (atomic_load(&gm_mb_state)) {
	case GM_MB_UNTRIED:
		/* Connecting has deadlines of its own: the need's starts after. */
		if (gm_connect(h) == 0) {
			gm_need_dl = gm_need_deadline(mb_clock_ns());
			progress = gm_ask(h, bytes, gm_need_dl);
		} else {
			progress = 1; /* the budget is now the fixed limit */
		}
		break;
	case GM_MB_OPEN:
		progress = gm_ask(h, bytes, deadline);
		break;
	case GM_MB_LOST:
		/* The fixed limit is used up: the broker may be back. */
		if (gm_retry(h) == 0)
			progress = 1;
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&gm_mb_lock);
	return progress;
}

size_t gm_broker_release(int force)
{
	struct anrc_heap *h = gm_heap_ptr;
	size_t given = 0;
	if (atomic_load(&gm_mb_state) != GM_MB_OPEN || !h)
		return 0;
	/* Forced (a trim, memory low), it waits for another thread's call
	 * at most one broker_timeout; else someone is talking to the broker
	 * and it is for next time. */
	if (force ? mb_mutex_lock_by(&gm_mb_lock, (int64_t)(mb_clock_ns() +
						       gm_cfg.broker_timeout * 1000000u), NULL) != 0
		  : pthread_mutex_trylock(&gm_mb_lock) != 0)
		return 0;
	if (atomic_load(&gm_mb_state) != GM_MB_OPEN)
		goto out;
	/* On a free path: the resident figure alone, in a call's bound. */
	uint64_t resident = anrc_resident(h);
	uint64_t held = atomic_load(&gm_held);
	uint64_t keep = round_up(resident, gm_page);
	if (!force)
		keep += gm_cfg.quota_step;
	if (held <= keep || (!force && held - resident <= gm_cfg.quota_release))
		goto out;
	uint64_t pages = (held - keep) / gm_page;
	if (pages == 0)
		goto out;
	/* Lower the budget first so the core cannot grow into what goes back. */
	anrc_set_budget(h, gm_capped(held - pages * gm_page));
	atomic_fetch_add(&st_returns, 1);
	int rc = mb_return(&gm_mb, pages);
	if (rc == 0) {
		atomic_fetch_sub(&gm_held, pages * gm_page);
		atomic_fetch_add(&st_returned, pages * gm_page);
		given = (size_t)(pages * gm_page);
	} else if (gm_conn_error(rc)) {
		gm_lost(h, rc);
	} else {
		mb_log(MB_LOG_WARNING, "returning %lu quota pages failed: %s",
		       (unsigned long)pages, mb_strerror(rc));
		anrc_set_budget(h, gm_capped(held));
	}
out:
	pthread_mutex_unlock(&gm_mb_lock);
	return given;
}

void gm_broker_note_free(void)
{
	int state = atomic_load_explicit(&gm_mb_state, memory_order_relaxed);
	if (state != GM_MB_OPEN && state != GM_MB_LOST)
		return;
	/* Every quota_step of bytes freed, see whether surplus quota can go
	 * back: the core counts the bytes, no block's size is looked up. */
	uint64_t now = anrc_freed_bytes(gm_heap_ptr);
	uint64_t mark = atomic_load_explicit(&gm_freed_mark, memory_order_relaxed);
	if (now - mark < gm_cfg.quota_step)
		return;
	if (!atomic_compare_exchange_strong_explicit(&gm_freed_mark, &mark, now,
						      memory_order_relaxed,
						      memory_order_relaxed))
		return; /* another thread is on it */
	if (pthread_mutex_trylock(&gm_mb_lock) != 0)
		return;
	/* A cheap moment to notice that the broker went away, or is back;
	 * reading what it sent meanwhile runs gm_on_event. */
	if (atomic_load(&gm_mb_state) == GM_MB_OPEN)
		gm_check_alive(gm_heap_ptr);
	if (atomic_load(&gm_mb_state) == GM_MB_LOST)
		(void)gm_retry(gm_heap_ptr);
	pthread_mutex_unlock(&gm_mb_lock);
	if (atomic_exchange(&gm_low, 0)) {
		/* With the page-return thread this free does no madvise: the
		 * thread gives every free page back, and the quota follows at
		 * the next quota_step of frees.  Without it this free trims. */
		if (anrc_return_all_by_helper(gm_heap_ptr)) {
			mb_log(MB_LOG_INFO, "memory is low: the page-return thread gives back "
			       "every free page");
		} else {
			size_t pages = anrc_trim(gm_heap_ptr, 0);
			size_t quota = gm_broker_release(1);
			mb_log(MB_LOG_INFO, "memory is low: %lu bytes of free pages and %lu bytes "
			       "of quota given back", (unsigned long)pages, (unsigned long)quota);
			return;
		}
	}
	(void)gm_broker_release(0);
}

void gm_broker_fork_child(void)
{
	pthread_mutex_init(&gm_mb_lock, NULL);
	int s = atomic_load(&gm_mb_state);
	if (s != GM_MB_OPEN && s != GM_MB_UNTRIED && s != GM_MB_LOST)
		return;
	/* The parent's quota stays the parent's: the child starts at zero
	 * and connects on its first need. */
	atomic_store(&gm_held, 0);
	atomic_store(&gm_freed_mark, anrc_freed_bytes(gm_heap_ptr));
	atomic_store(&st_requests, 0);
	atomic_store(&st_reserves, 0);
	atomic_store(&st_granted, 0);
	atomic_store(&st_returns, 0);
	atomic_store(&st_returned, 0);
	atomic_store(&st_refused, 0);
	atomic_store(&st_lost, 0);
	atomic_store(&st_expired, 0);
	atomic_store(&gm_mb_state, GM_MB_UNTRIED);
	anrc_set_budget(gm_heap_ptr, 0);
}

void gm_broker_report(int fd)
{
	char line[MB_LOG_LINE_MAX], held[32], granted[32], returned[32];
	int s = atomic_load(&gm_mb_state);
	if (s < GM_MB_OFF || s > GM_MB_LOST)
		s = GM_MB_OFF;
	mb_format_size(held, sizeof(held), atomic_load(&gm_held));
	mb_format_size(granted, sizeof(granted), atomic_load(&st_granted));
	mb_format_size(returned, sizeof(returned), atomic_load(&st_returned));
	size_t n = mb_format(line, sizeof(line),
			     "gmalloc: broker %s; quota held %s; requests %lu (reserves %lu, "
			     "refused %lu, out of time %lu), granted %s; returns %lu, "
			     "returned %s; connections lost %lu\n",
			     gm_state_names[s], held,
			     (unsigned long)atomic_load(&st_requests),
			     (unsigned long)atomic_load(&st_reserves),
			     (unsigned long)atomic_load(&st_refused),
			     (unsigned long)atomic_load(&st_expired), granted,
			     (unsigned long)atomic_load(&st_returns), returned,
			     (unsigned long)atomic_load(&st_lost));
	(void)mb_write_all(fd, line, n);
}

uint64_t gm_broker_held(void)
{
	return atomic_load(&gm_held);
}
