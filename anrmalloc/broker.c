/*
 * broker.c - the heap as a bidirectional membroker client.
 *
 * Quota from the broker is budget: pages granted raise the core's budget,
 * pages given back lower it.  Asking happens in the need-more hook of an
 * allocation (after the subsystems' callbacks); giving back happens in the
 * share callback, which runs wherever the connection is served: the
 * application's poll loop (anr_broker_fd, anr_broker_dispatch), the
 * helper thread, or inside a blocking request of our own.  It runs the
 * give-back callbacks, trims, and answers with the pages that really left
 * the budget.
 *
 * Every broker call has the deadline broker_timeout; when it passes or the
 * broker goes away, the heap lives on its own budget (the no-broker
 * behaviour) and reconnects from wherever the connection is served: the
 * helper thread polls the library's reconnect timer, anr_broker_dispatch()
 * retries when it is due.  A new connection claims the pages the heap has
 * resident beyond its own budget, and what the broker accepts raises the
 * budget again.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "am_internal.h"
#include "mb_log.h"
#include "mb_thread.h"

#define API __attribute__((visibility("default")))
#define AM_POLL_MS 1000
#define AM_BUSY_MS 10   /* the helper's pause while another thread holds the handle */

/* The core's budget from its two parts.  budget_lock held.  The own part
 * is never 0 while connected (0 reads as "no limit" to the core). */
static void am_budget_apply(struct anr_malloc_heap *h)
{
	size_t held = h->mb_held > 0 ? (size_t)h->mb_held * h->mb_page : 0;

	anrc_set_budget(h->core, h->own_budget + held);
}

/* Whether this thread is inside the heap's share callback.  budget_lock held. */
static int am_serving_here(const struct anr_malloc_heap *h)
{
	return h->mb_serving && pthread_equal(h->mb_server, pthread_self());
}

/* The same, taking budget_lock. */
static int am_serving(struct anr_malloc_heap *h)
{
	int serving;

	pthread_mutex_lock(&h->budget_lock);
	serving = am_serving_here(h);
	pthread_mutex_unlock(&h->budget_lock);
	return serving;
}

/*
 * Make mb_held what the client library says we hold, less the pages on
 * their way back that it still counts: grants raise it, a lost connection
 * (the broker took everything back) sets it to 0, a RETURN or share answer
 * that did not go out puts pages back.  budget_lock held.
 */
static void am_sync_locked(struct anr_malloc_heap *h)
{
	int64_t bal, held;
	uint64_t out;

	/* This thread's library call that answered the share has returned:
	 * the library's balance has dropped by it (or taken it back). */
	if (h->mb_share_pages && pthread_equal(h->mb_share_thread, pthread_self()))
		h->mb_share_pages = 0;
	if (!h->mb_connected)
		return;
	bal = mb_balance(&h->mb);
	if (bal < 0)
		bal = 0;
	out = h->mb_out;
	/* Not taken off yet while the balance is the one it was given at. */
	if (h->mb_share_pages && bal == h->mb_share_before)
		out += h->mb_share_pages;
	held = (uint64_t)bal > out ? bal - (int64_t)out : 0;
	if (held != h->mb_held) {
		h->mb_held = held;
		am_budget_apply(h);
	}
}

/* After every call of the client library on the heap's handle. */
void am_broker_sync(struct anr_malloc_heap *h)
{
	pthread_mutex_lock(&h->budget_lock);
	am_sync_locked(h);
	pthread_mutex_unlock(&h->budget_lock);
}

/*
 * The deadlines given to the client library, so that no broker call of
 * the heap waits longer than broker_timeout in all: a request waits its
 * own deadline plus two graces (mb_request), a reconnect its lock, HELLO
 * and CLAIM, a RETURN its lock and reply.  0 keeps the library's defaults;
 * more than 24 hours counts as 24 hours.
 */
void am_broker_times(uint64_t timeout_ms, struct am_broker_times *t)
{
	/* The library takes no deadline past MB_MAX_TIMEOUT_MS (24 h). */
	int64_t all = timeout_ms > MB_MAX_TIMEOUT_MS ? MB_MAX_TIMEOUT_MS : (int64_t)timeout_ms;
	int64_t call, grace;

	if (all == 0) {
		t->connect = t->call = t->request = 0;
		return;
	}
	call = all / 4 > 0 ? all / 4 : 1;
	grace = call < MB_GRACE_MAX_MS ? call : MB_GRACE_MAX_MS;
	t->call = (int)call;
	t->connect = all / 2 > 0 ? (int)(all / 2) : 1;
	t->request = all - 2 * grace > 0 ? (int)(all - 2 * grace) : 1;
}

/* Pages the caller took off mb_held and added to mb_out: give them to
 * the broker.  Returns whether it took them; if it did not, the sync
 * counts them again. */
static int am_return_pages(struct anr_malloc_heap *h, uint64_t pages)
{
	int rc = mb_return(&h->mb, pages);

	pthread_mutex_lock(&h->budget_lock);
	/* less only if the connection was forgotten meanwhile */
	h->mb_out -= pages < h->mb_out ? pages : h->mb_out;
	am_sync_locked(h);
	pthread_mutex_unlock(&h->budget_lock);
	if (rc != 0)
		mb_log(MB_LOG_WARNING, "anrmalloc %s: returning %llu pages: %s",
		       h->cfg.name, (unsigned long long)pages, mb_strerror(rc));
	return rc == 0;
}

/*
 * The broker asks for up to `bytes`: the unused part of its own pages
 * leaves the budget, never the heap's own budget.  Called by
 * am_give_back, in the thread that serves the share query.
 */
size_t am_budget_share(struct anr_malloc_heap *h, size_t bytes)
{
	struct anrc_stats st;
	size_t spare, pages, held;

	if (h->mb_page == 0)
		return 0;
	pthread_mutex_lock(&h->budget_lock);
	/* Just synced, so within the library's balance, which stays as it is
	 * (this thread holds the handle) until the library takes the answer
	 * off it. */
	am_sync_locked(h);
	held = h->mb_held > 0 ? (size_t)h->mb_held : 0;
	anrc_get_stats(h->core, &st);
	spare = st.budget > st.resident ? st.budget - st.resident : 0;
	pages = (bytes < spare ? bytes : spare) / h->mb_page;
	if (pages > held)
		pages = held;
	if (pages) {
		h->mb_held -= (int64_t)pages;
		h->mb_share_pages = pages;
		h->mb_share_before = mb_balance(&h->mb);
		h->mb_share_thread = pthread_self();
		am_budget_apply(h);
	}
	pthread_mutex_unlock(&h->budget_lock);
	return pages * h->mb_page;
}

/*
 * anr_give_back's cut of up to `bytes` of unused budget, in system pages:
 * the broker's pages first, given back to it, then the heap's own budget
 * (never below one page).  Inside the heap's share callback it cuts
 * nothing: the broker is asking already, and its answer takes the pages.
 */
size_t am_budget_cut(struct anr_malloc_heap *h, size_t bytes)
{
	struct anrc_stats st;
	size_t unit = (size_t)sysconf(_SC_PAGESIZE), spare, give, rest, cut_max;
	uint64_t bp = 0;

	pthread_mutex_lock(&h->budget_lock);
	am_sync_locked(h);
	if (am_serving_here(h)) {
		pthread_mutex_unlock(&h->budget_lock);
		return 0;
	}
	anrc_get_stats(h->core, &st);
	spare = st.budget > st.resident ? st.budget - st.resident : 0;
	give = bytes < spare ? bytes : spare;
	give -= give % unit;
	if (h->mb_connected && h->mb_page && h->mb_held > 0 && mb_fd(&h->mb) >= 0) {
		bp = give / h->mb_page;
		if (bp > (uint64_t)h->mb_held)
			bp = (uint64_t)h->mb_held;
	}
	rest = give - (size_t)bp * h->mb_page;
	cut_max = h->own_budget > unit ? h->own_budget - unit : 0;
	if (rest > cut_max)
		rest = cut_max;
	h->own_budget -= rest;
	if (bp) {
		h->mb_held -= (int64_t)bp;
		h->mb_out += bp;
	}
	if (rest || bp)
		am_budget_apply(h);
	pthread_mutex_unlock(&h->budget_lock);
	if (bp && !am_return_pages(h, bp))
		bp = 0;
	return rest + (size_t)bp * h->mb_page;
}

static uint64_t am_share(void *arg, enum mb_client_urgency urgency,
			 uint64_t pages)
{
	struct anr_malloc_heap *h = arg;
	size_t got;

	if (h->mb_page == 0 || mb_balance(&h->mb) <= 0)
		return 0;
	if (pages > SIZE_MAX / h->mb_page)
		pages = SIZE_MAX / h->mb_page;
	pthread_mutex_lock(&h->budget_lock);
	h->mb_serving = 1;
	h->mb_server = pthread_self();
	pthread_mutex_unlock(&h->budget_lock);
	got = am_give_back(h, (size_t)pages * h->mb_page, 1);
	pthread_mutex_lock(&h->budget_lock);
	h->mb_serving = 0;
	pthread_mutex_unlock(&h->budget_lock);
	mb_log(MB_LOG_INFO, "anrmalloc %s: broker asked for %llu pages (%s), "
	       "giving %zu", h->cfg.name, (unsigned long long)pages,
	       urgency == MB_URGENCY_RESERVE ? "reserve" : "request",
	       got / h->mb_page);
	return got / h->mb_page;
}

/*
 * What a new connection declares: the pages resident beyond the heap's own
 * budget, and the pages of RETURNs still on their way: the library sends
 * them on this connection, and they must come off this claim, not off the
 * pages in use.  Runs under the handle's lock (budget_lock comes after it).
 */
uint64_t am_broker_claim(void *arg)
{
	struct anr_malloc_heap *h = arg;
	struct anrc_stats st;
	size_t own, over;
	uint64_t out;

	if (h->mb_page == 0)
		return 0; /* the first connection: nothing is held yet */
	anrc_get_stats(h->core, &st);
	pthread_mutex_lock(&h->budget_lock);
	own = h->own_budget;
	out = h->mb_out;
	pthread_mutex_unlock(&h->budget_lock);
	over = st.resident > own ? st.resident - own : 0;
	return (over + h->mb_page - 1) / h->mb_page + out;
}

/* Not connected: reconnect when the library's timer says so. */
static void am_broker_retry(struct anr_malloc_heap *h)
{
	int rc;

	if (mb_fd(&h->mb) >= 0)
		return;
	rc = mb_reconnect(&h->mb);
	am_broker_sync(h);
	if (rc != 0)
		return;
	mb_log(MB_LOG_NOTICE, "anrmalloc %s: broker reachable again, %lld pages claimed",
	       h->cfg.name, (long long)mb_balance(&h->mb));
}

API int anr_broker_connect(anr_heap_t *h, const char *socket_path)
{
	struct am_broker_times t;
	struct mb_options o;
	uint64_t granted = 0;
	size_t unit = (size_t)sysconf(_SC_PAGESIZE);
	int rc;

	if (h->mb_connected)
		return 0;
	am_broker_times(h->cfg.broker_timeout, &t);
	memset(&o, 0, sizeof(o));
	o.socket_path = socket_path ? socket_path :
		(h->cfg.broker_socket[0] ? h->cfg.broker_socket : NULL);
	o.kind = MB_CLIENT_BIDI;
	o.name = h->cfg.name;
	o.share = am_share;
	o.claim = am_broker_claim;
	o.arg = h;
	o.connect_timeout_ms = t.connect;
	o.call_timeout_ms = t.call;
	/* Allocations and returns never connect: only mb_reconnect() does,
	 * from whoever serves the connection. */
	o.flags = MB_OPEN_NO_AUTOCONNECT;
	rc = mb_open(&h->mb, &o);
	if (rc != 0) {
		mb_log(MB_LOG_ERR, "anrmalloc %s: cannot reach the broker: %s",
		       h->cfg.name, mb_strerror(rc));
		errno = rc == MB_ESYS ? errno : ECONNREFUSED;
		return -1;
	}
	pthread_mutex_lock(&h->budget_lock);
	/* An unlimited heap that connects lives on what the broker grants. */
	if (h->own_budget == 0) {
		h->own_budget = unit;
		am_budget_apply(h);
	}
	h->mb_page = mb_page_size(&h->mb);
	h->mb_held = 0;
	h->mb_out = h->mb_share_pages = 0;
	h->mb_connected = 1;
	/* What a claim on this connection (a fork child's) was granted. */
	am_sync_locked(h);
	pthread_mutex_unlock(&h->budget_lock);
	if (h->cfg.broker_initial && h->mb_page) {
		uint64_t pages = (h->cfg.broker_initial + h->mb_page - 1) / h->mb_page;

		rc = mb_reserve(&h->mb, pages, t.request, &granted);
		am_broker_sync(h);
		if (rc == 0 && granted) {
			am_lock(h);
			h->broker_requests++;
			h->broker_granted_bytes += granted * h->mb_page;
			am_unlock(h);
		} else if (rc != 0) {
			mb_log(MB_LOG_WARNING, "anrmalloc %s: initial quota: %s",
			       h->cfg.name, mb_strerror(rc));
		}
	}
	return 0;
}

/*
 * An allocation short of budget asks the broker, within broker_timeout.
 * Not while the connection is down: reconnecting is the helper thread's
 * or anr_broker_dispatch()'s, whoever serves the connection, and an
 * allocation never pays for it.
 */
size_t am_broker_ask(struct anr_malloc_heap *h, size_t bytes)
{
	struct am_broker_times t;
	uint64_t granted = 0, pages;
	size_t want = bytes > h->cfg.broker_chunk ? bytes : h->cfg.broker_chunk;
	int rc;


	if (h->mb_page == 0 || mb_fd(&h->mb) < 0)
		return 0;
	/* An allocation in the thread answering the broker (a mark callback
	 * of gc_on_give_back): that thread holds the handle. */
	if (am_serving(h))
		return 0;
	am_broker_times(h->cfg.broker_timeout, &t);
	pages = (want + h->mb_page - 1) / h->mb_page;
	rc = mb_request(&h->mb, pages, t.request, &granted);
	am_broker_sync(h);
	am_lock(h);
	h->broker_requests++;
	h->broker_granted_bytes += granted * h->mb_page;
	am_unlock(h);
	if (rc != 0) {
		/* Low memory is a refusal like any other, and expected to pass. */
		mb_log(rc == MB_ELOWMEM ? MB_LOG_INFO : MB_LOG_WARNING,
		       "anrmalloc %s: quota request: %s", h->cfg.name, mb_strerror(rc));
		return 0;
	}
	return (size_t)(granted * h->mb_page);
}

/*
 * The broker's pages the heap does not use beyond free_high go back to
 * it; the heap's own budget stays.  Inside the heap's share callback it
 * returns nothing: the answer to the broker takes them.
 */
API size_t anr_broker_return_unused(anr_heap_t *h)
{
	struct anrc_stats st;
	size_t spare;
	uint64_t pages;

	if (!h->mb_connected || h->mb_page == 0)
		return 0;
	if (am_serving(h))
		return 0;
	anrc_trim(h->core, h->cfg.free_high);
	pthread_mutex_lock(&h->budget_lock);
	am_sync_locked(h);
	anrc_get_stats(h->core, &st);
	spare = st.budget > st.resident + h->cfg.free_high ?
		st.budget - st.resident - h->cfg.free_high : 0;
	pages = spare / h->mb_page;
	if (h->mb_held <= 0 || mb_fd(&h->mb) < 0)
		pages = 0;
	else if (pages > (uint64_t)h->mb_held)
		pages = (uint64_t)h->mb_held;
	if (pages) {
		h->mb_held -= (int64_t)pages;
		h->mb_out += pages;
		am_budget_apply(h);
	}
	pthread_mutex_unlock(&h->budget_lock);
	if (pages == 0 || !am_return_pages(h, pages))
		return 0;
	return (size_t)pages * h->mb_page;
}

API int anr_broker_fd(anr_heap_t *h)
{
	int fd = h->mb_connected ? mb_fd(&h->mb) : -1;

	return fd >= 0 ? fd : -1;
}

API int anr_broker_dispatch(anr_heap_t *h)
{
	int rc;

	if (!h->mb_connected)
		return MB_ENOTCONN;
	/* From the share callback: this thread holds the handle already. */
	if (am_serving(h))
		return MB_EBUSY;
	if (mb_fd(&h->mb) < 0) {
		am_broker_retry(h);
		if (mb_fd(&h->mb) < 0)
			return MB_ENOTCONN;
	}
	rc = mb_dispatch(&h->mb, 0);
	am_broker_sync(h);
	return rc;
}

static void *am_broker_main(void *arg)
{
	struct anr_malloc_heap *h = arg;

	for (;;) {
		int fd = mb_fd(&h->mb);
		/* Not connected: sleep until the library's reconnect timer. */
		int ms = fd >= 0 ? AM_POLL_MS : mb_reconnect_ms(&h->mb);
		struct pollfd p[2] = {
			{ fd, POLLIN, 0 },
			{ h->mb_stop[0], POLLIN, 0 },
		};
		int rc;

		if (ms < 0 || ms > AM_POLL_MS)
			ms = AM_POLL_MS;
		rc = poll(p, 2, ms);
		if (rc < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (fd < 0) {
			am_broker_retry(h);
			continue;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			rc = mb_dispatch(&h->mb, 0);
			am_broker_sync(h);
			if (rc == MB_ETIMEDOUT) {
				/* Another thread's broker call holds the handle and
				 * reads what comes meanwhile: let it, a while. */
				struct pollfd s = { h->mb_stop[0], POLLIN, 0 };

				if (poll(&s, 1, AM_BUSY_MS) > 0)
					break;
			} else if (rc < 0 && rc != MB_EAGAIN) {
				mb_log(MB_LOG_WARNING, "anrmalloc %s: broker: %s",
				       h->cfg.name, mb_strerror(rc));
			}
		}
	}
	return NULL;
}

API int anr_broker_start_thread(anr_heap_t *h)
{
	if (!h->mb_connected) {
		errno = ENOTCONN;
		return -1;
	}
	if (h->mb_thread_on)
		return 0;
	if (pipe2(h->mb_stop, O_CLOEXEC) != 0)
		return -1;
	if (mb_thread_start(&h->mb_thread, NULL, "anrm-broker", am_broker_main, h) != 0) {
		am_close_pipe(h->mb_stop);
		errno = EAGAIN;
		return -1;
	}
	h->mb_thread_on = 1;
	return 0;
}

API void anr_broker_stop_thread(anr_heap_t *h)
{
	char c = 0;

	if (!h->mb_thread_on)
		return;
	if (write(h->mb_stop[1], &c, 1) != 1)
		mb_log(MB_LOG_WARNING, "anrmalloc: cannot stop the broker thread");
	pthread_join(h->mb_thread, NULL);
	am_close_pipe(h->mb_stop);
	h->mb_thread_on = 0;
}

/* The connection is gone: the budget is the heap's own again. */
static void am_broker_forget(struct anr_malloc_heap *h)
{
	pthread_mutex_lock(&h->budget_lock);
	h->mb_connected = 0;
	h->mb_held = 0;
	h->mb_out = h->mb_share_pages = 0;
	h->mb_serving = 0;
	am_budget_apply(h);
	pthread_mutex_unlock(&h->budget_lock);
}

/*
 * The helper thread stayed in the parent and its stop pipe is shared: the
 * child closes its copies (a byte written there would stop the parent's
 * thread).  The connection and the quota on it are the parent's too: the
 * child closes its copy of the socket without a word to the broker, takes
 * the broker's pages off its budget and connects for itself
 * (anr_broker_connect) if it wants quota of its own.
 */
void am_broker_fork_child(struct anr_malloc_heap *h)
{
	if (h->mb_thread_on) {
		am_close_pipe(h->mb_stop);
		h->mb_thread_on = 0;
	}
	if (!h->mb_connected)
		return;
	mb_close(&h->mb);
	am_broker_forget(h);
}

void am_broker_close(struct anr_malloc_heap *h)
{
	if (!h->mb_connected)
		return;
	mb_close(&h->mb);
	am_broker_forget(h);
}
