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

/*
 * The budget counts mb_held broker pages; make it count what the client
 * library says we hold.  Grants raise it; a lost connection (the broker
 * took everything back) lowers it; a give-back answer that could not be
 * sent puts the pages back.  Pages given back or returned are taken off
 * mb_held by whoever lowered the budget, so they are not counted twice.
 */
void am_broker_sync(struct anr_malloc_heap *h)
{
	int64_t bal, delta;
	size_t budget;

	if (!h->mb_connected)
		return;
	pthread_mutex_lock(&h->budget_lock);
	bal = mb_balance(&h->mb);
	if (bal < 0)
		bal = 0;
	delta = bal - h->mb_held;
	if (delta != 0) {
		budget = anrc_get_budget(h->core);
		if (delta > 0)
			budget += (size_t)delta * h->mb_page;
		else if ((size_t)-delta * h->mb_page < budget)
			budget -= (size_t)-delta * h->mb_page;
		else
			budget = h->mb_page; /* never 0: the core reads 0 as unlimited */
		anrc_set_budget(h->core, budget);
		h->mb_held = bal;
	}
	pthread_mutex_unlock(&h->budget_lock);
}

/* broker_timeout as the client's int milliseconds: a configuration the
 * program filled in may hold more than a file can (mb_conf). */
static int am_broker_ms(const struct anr_malloc_heap *h)
{
	return h->cfg.broker_timeout > INT_MAX ? INT_MAX : (int)h->cfg.broker_timeout;
}

static uint64_t am_share(void *arg, enum mb_client_urgency urgency,
			 uint64_t pages)
{
	struct anr_malloc_heap *h = arg;
	int64_t bal = mb_balance(&h->mb);
	size_t limit, got;

	if (bal <= 0 || h->mb_page == 0)
		return 0;
	limit = (size_t)bal * h->mb_page;
	if (pages > limit / h->mb_page)
		pages = limit / h->mb_page;
	got = am_give_back(h, (size_t)pages * h->mb_page, limit, h->mb_page, 1);
	mb_log(MB_LOG_INFO, "anrmalloc %s: broker asked for %llu pages (%s), "
	       "giving %zu", h->cfg.name, (unsigned long long)pages,
	       urgency == MB_URGENCY_RESERVE ? "reserve" : "request",
	       got / h->mb_page);
	return got / h->mb_page;
}

/* What a new connection declares: resident pages beyond the heap's own budget. */
static uint64_t am_claim(void *arg)
{
	struct anr_malloc_heap *h = arg;
	struct anrc_stats st;
	size_t over;

	if (h->mb_page == 0)
		return 0; /* the first connection: nothing is held yet */
	anrc_get_stats(h->core, &st);
	over = st.resident > h->cfg.budget ? st.resident - h->cfg.budget : 0;
	return (over + h->mb_page - 1) / h->mb_page;
}

/* Not connected: reconnect when the library's timer says so. */
static void am_broker_retry(struct anr_malloc_heap *h)
{
	if (mb_fd(&h->mb) >= 0 || mb_reconnect(&h->mb) != 0)
		return;
	mb_log(MB_LOG_NOTICE, "anrmalloc %s: broker reachable again, %lld pages claimed",
	       h->cfg.name, (long long)mb_balance(&h->mb));
	am_broker_sync(h);
}

API int anr_broker_connect(anr_heap_t *h, const char *socket_path)
{
	struct mb_options o;
	uint64_t granted = 0;
	int rc;

	if (h->mb_connected)
		return 0;
	memset(&o, 0, sizeof(o));
	o.socket_path = socket_path ? socket_path :
		(h->cfg.broker_socket[0] ? h->cfg.broker_socket : NULL);
	o.kind = MB_CLIENT_BIDI;
	o.name = h->cfg.name;
	o.share = am_share;
	o.claim = am_claim;
	o.arg = h;
	o.connect_timeout_ms = am_broker_ms(h);
	o.call_timeout_ms = am_broker_ms(h);
	rc = mb_open(&h->mb, &o);
	if (rc != 0) {
		mb_log(MB_LOG_ERR, "anrmalloc %s: cannot reach the broker: %s",
		       h->cfg.name, mb_strerror(rc));
		errno = rc == MB_ESYS ? errno : ECONNREFUSED;
		return -1;
	}
	h->mb_page = mb_page_size(&h->mb);
	h->mb_connected = 1;
	if (h->cfg.broker_initial && h->mb_page) {
		uint64_t pages = (h->cfg.broker_initial + h->mb_page - 1) / h->mb_page;

		rc = mb_reserve(&h->mb, pages, am_broker_ms(h), &granted);
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

size_t am_broker_ask(struct anr_malloc_heap *h, size_t bytes)
{
	uint64_t granted = 0, pages;
	size_t want = bytes > h->cfg.broker_chunk ? bytes : h->cfg.broker_chunk;
	int rc;

	if (h->mb_page == 0)
		return 0;
	pages = (want + h->mb_page - 1) / h->mb_page;
	rc = mb_request(&h->mb, pages, am_broker_ms(h), &granted);
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

API size_t anr_broker_return_unused(anr_heap_t *h)
{
	struct anrc_stats st;
	int64_t bal;
	size_t spare, pages;
	int rc;

	if (!h->mb_connected || h->mb_page == 0)
		return 0;
	anrc_trim(h->core, h->cfg.free_high);
	pthread_mutex_lock(&h->budget_lock);
	anrc_get_stats(h->core, &st);
	bal = mb_balance(&h->mb);
	spare = st.budget > st.resident + h->cfg.free_high ?
		st.budget - st.resident - h->cfg.free_high : 0;
	pages = spare / h->mb_page;
	/* A budget of 0 would read as "no limit" to the core. */
	if (pages && pages * h->mb_page >= st.budget)
		pages = (st.budget - 1) / h->mb_page;
	if (bal < 0)
		bal = 0;
	if (pages > (uint64_t)bal)
		pages = (size_t)bal;
	if (pages) {
		anrc_set_budget(h->core, st.budget - pages * h->mb_page);
		h->mb_held -= (int64_t)pages;
	}
	pthread_mutex_unlock(&h->budget_lock);
	if (pages == 0)
		return 0;
	rc = mb_return(&h->mb, pages);
	/* If the broker did not take them, the sync puts them back. */
	am_broker_sync(h);
	return rc == 0 ? pages * h->mb_page : 0;
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
			if (rc < 0 && rc != MB_EAGAIN)
				mb_log(MB_LOG_WARNING, "anrmalloc %s: broker: %s",
				       h->cfg.name, mb_strerror(rc));
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
	size_t budget, held;

	if (h->mb_thread_on) {
		am_close_pipe(h->mb_stop);
		h->mb_thread_on = 0;
	}
	if (!h->mb_connected)
		return;
	budget = anrc_get_budget(h->core);
	held = h->mb_held > 0 ? (size_t)h->mb_held * h->mb_page : 0;
	/* never 0: the core reads 0 as unlimited */
	anrc_set_budget(h->core, budget > held ? budget - held : h->mb_page);
	mb_close(&h->mb);
	h->mb_connected = 0;
	h->mb_held = 0;
}

void am_broker_close(struct anr_malloc_heap *h)
{
	if (!h->mb_connected)
		return;
	mb_close(&h->mb);
	h->mb_connected = 0;
	h->mb_held = 0;
}
