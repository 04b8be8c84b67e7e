/*
 * charge.c - quota accounting of track_fs against the broker.
 *
 * track_fs is free software; you can redistribute it and/or modify it
 * under the terms of the GNU General Public License version 2 as
 * published by the Free Software Foundation (see COPYING.GPL-2).
 *
 * Three byte counts, all under one lock:
 *   held  quota the broker granted us (whole broker pages);
 *   used  the sum of the charged blocks of every inode in the backing dir;
 *   resv  bytes set aside: charges in flight plus inode reserves.
 * A change may start only while used + resv + its bound <= held; the
 * shortfall is asked from the broker in `step` chunks.  Spare quota
 * (held - used - resv) above `release_hysteresis` is handed back down to
 * half the hysteresis, so a run of small writes costs no round trip.
 * While the broker is unreachable `held` is zero and the limit is either
 * nothing (deny) or `cap`.  The dispatcher thread tries to reconnect every
 * retry_interval, idle or not; every new connection claims (CLAIM) what
 * is in use and set aside, which a restarted broker did not know, and what
 * the broker accepts is `held`.  The connection asks the broker to keep the
 * balance for a while if track_fs dies (MB_OPEN_KEEP): the files stay in
 * the backing directory, and a restarted track_fs takes the balance back.
 * track_fs is a bidirectional client: asked to give back, it gives its
 * spare quota (never what files use); a dispatcher thread answers such
 * queries while no file operation is in a call to the broker.  After every
 * call `held` is taken from the library's balance.
 *
 * One thread at a time talks to the broker (ch.talking), and it lets the
 * lock go while it does: a broker that is slow or stopped holds up only
 * the changes that need more quota than is held, each for at most its own
 * deadline (broker_timeout), never the bookkeeping of other operations
 * (unlink, truncate, close, statfs).  A thread that needs quota while
 * another talks waits for that talk by its deadline, then looks again; a
 * return of spare quota or a statfs query waits out a dispatch (which
 * only answers what came), never a talk that may wait for the broker:
 * then the asker returns the spare when done, and statfs shows the last
 * query's figures.
 * Only the talker touches the handle; the library's callbacks, which run
 * inside its calls, take the lock themselves.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#include "mb_clock.h"
#include "mb_log.h"
#include "mb_size.h"
#include "mb_thread.h"
#include "mbclient.h"
#include "tfs.h"

#define TFS_NS_PER_MS 1000000ULL
#define TFS_STREAM_MS 100ULL
#define TFS_DISPATCH_MS 200
/* Failed attempts in a row stretch the retry interval up to this many times
 * (a stopped broker costs the thread of each attempt broker_timeout). */
#define TFS_RETRY_BACKOFF_MAX 4

static struct {
	pthread_mutex_t lock;
	const struct tfs_conf *cf;
	int enabled;
	int up;
	mb_client cl;
	uint64_t ps;
	uint64_t held;
	int64_t used;
	uint64_t resv;
	uint64_t last_try_ms;
	uint64_t retry_factor; /* 1, doubled per failed attempt */
	uint64_t last_ask_ms;
	int said_down;
	pthread_t dispatcher;
	int dispatching;
	int lowmem;         /* the broker's device is in deny state */
	int talking;        /* a thread is in a call on cl, without the lock */
	int talk_dispatch;  /* ... and it only answers what came */
	pthread_cond_t talked; /* a talk ended */
	uint64_t total;     /* the broker's total and pool (bytes) as last */
	uint64_t pool;      /* queried, for a statfs while another talks */
} ch = { .lock = PTHREAD_MUTEX_INITIALIZER, .talked = PTHREAD_COND_INITIALIZER };

/* The client library takes deadlines up to MB_MAX_TIMEOUT_MS (24 h). */
static int broker_timeout(void)
{
	uint64_t t = ch.cf->broker_timeout;

	if (t > (uint64_t)MB_MAX_TIMEOUT_MS)
		t = (uint64_t)MB_MAX_TIMEOUT_MS;
	return t == 0 ? 1 : (int)t;
}

static uint64_t busy(void)
{
	return (uint64_t)(ch.used > 0 ? ch.used : 0) + ch.resv;
}

/* What the library says we hold is the truth after every call: bal is
 * its balance read by the talker at the end of the call.  Under the lock. */
static void set_held(int64_t bal)
{
	ch.held = bal > 0 ? (uint64_t)bal * ch.ps : 0;
}

/*
 * Under the lock, while another thread talks: wait for a talk to end, or
 * until deadline_ms (mb_clock_ms; 0: no wait).  -EBUSY once it passed.
 */
static int talk_wait(uint64_t deadline_ms)
{
	if (deadline_ms == 0 || mb_clock_ms() >= deadline_ms)
		return -EBUSY;
	tfs_serve_yield();
	mb_cond_wait_by(&ch.talked, &ch.lock, deadline_ms);
	return 0;
}

/*
 * Under the lock: wait out a dispatch in progress (it only answers what
 * came, without waiting for the broker), by one broker_timeout at most.
 * Any other talk (an ask, a return, a query, connecting) may wait for a
 * stopped broker until its deadline, and is not waited for.  0, or -EBUSY
 * if a talk still runs.
 */
static int settle_wait(void)
{
	uint64_t deadline = mb_clock_ms() + (uint64_t)broker_timeout();

	while (ch.talking && ch.talk_dispatch)
		if (talk_wait(deadline) != 0)
			return -EBUSY;
	return ch.talking ? -EBUSY : 0;
}

/*
 * Begin a talk: under the lock, which is let go while the call runs.  A
 * thread that finds another talking waits for it until deadline_ms, and
 * gets -EBUSY if it still talks then; with want_up, -ENOTCONN if the
 * broker is not (or no longer) connected.  On 0 the caller makes its
 * library calls and ends with talk_end().  is_dispatch: the talk only
 * answers what came (see settle_wait).
 */
static int talk_begin(uint64_t deadline_ms, int want_up, int is_dispatch)
{
	while (ch.talking)
		if (talk_wait(deadline_ms) != 0)
			return -EBUSY;
	if (want_up && !ch.up)
		return -ENOTCONN;
	ch.talking = 1;
	ch.talk_dispatch = is_dispatch;
	pthread_mutex_unlock(&ch.lock);
	tfs_serve_yield();
	return 0;
}

/* End a talk: the lock is taken again; returns the library's balance. */
static int64_t talk_end(void)
{
	int64_t bal = mb_balance(&ch.cl);

	pthread_mutex_lock(&ch.lock);
	ch.talking = 0;
	ch.talk_dispatch = 0;
	pthread_cond_broadcast(&ch.talked);
	return bal;
}

/*
 * The broker asks for quota back (another client is short).  Only spare
 * quota can go: file data stays where it is.  Runs inside a library call
 * on the handle, made by the talker without the lock.
 */
static uint64_t share_cb(void *arg, enum mb_client_urgency urgency,
			 uint64_t pages)
{
	uint64_t b, spare, give = 0;

	pthread_mutex_lock(&ch.lock);
	b = busy();
	if (ch.held > b) {
		spare = (ch.held - b) / ch.ps;
		give = pages < spare ? pages : spare;
		ch.held -= give * ch.ps;
	}
	pthread_mutex_unlock(&ch.lock);
	return give;
}

/*
 * Memory events: in deny state no new quota is taken, even when the broker
 * would serve this (privileged) process: new data gets ENOSPC.  Spare
 * quota goes back through share_cb when the broker asks on notify.
 */
static void event_cb(void *arg, unsigned event, int64_t pool, uint64_t total,
		     uint64_t value)
{
	int low = event == MB_EVENT_MEM_DENY;

	(void)arg;
	(void)pool;
	(void)total;
	(void)value;
	pthread_mutex_lock(&ch.lock);
	if (low != ch.lowmem)
		mb_log(MB_LOG_NOTICE, "%s", low ? "memory is low: new data is refused" :
		       "memory is no longer low: new data is accepted");
	ch.lowmem = low;
	pthread_mutex_unlock(&ch.lock);
}

/*
 * Close the handle, as a talk: under the lock, with no other talk under
 * way; the lock is let go meanwhile.  Closing says goodbye to the broker,
 * and the library may run a callback (which takes the lock) for a query
 * that came first.
 */
static void close_handle(void)
{
	ch.talking = 1;
	pthread_mutex_unlock(&ch.lock);
	mb_close(&ch.cl);
	pthread_mutex_lock(&ch.lock);
	ch.talking = 0;
	pthread_cond_broadcast(&ch.talked);
}

/* The broker is lost.  Under the lock, right after a talk of this thread
 * (so no other talk is under way). */
static void broker_lost(int rc)
{
	int was_up = ch.up;

	if (!ch.said_down)
		mb_log(MB_LOG_WARNING, "broker unreachable (%s): %s",
		       mb_strerror(rc), ch.cf->on_broker_down == TFS_DOWN_CAP ?
		       "using the fixed cap" : "new data is refused");
	ch.said_down = 1;
	ch.up = 0;
	ch.held = 0;
	ch.last_try_ms = mb_clock_ms();
	if (was_up)
		close_handle();
}

/* What a new connection declares: the pages in use and set aside.  Runs
 * inside mb_open, made by the talker without the lock. */
static uint64_t claim_cb(void *arg)
{
	(void)arg;
	uint64_t ps = mb_page_size(&ch.cl), b;

	pthread_mutex_lock(&ch.lock);
	b = busy();
	pthread_mutex_unlock(&ch.lock);
	return ps ? (b + ps - 1) / ps : 0;
}

/* Connect, under the lock (let go while connecting).  0 or an error. */
static int broker_open(void)
{
	struct mb_options opt;
	struct mb_memstate ms;
	uint64_t ps;
	int64_t bal;
	int rc, low = 0;

	rc = talk_begin(0, 0, 0);
	if (rc != 0)
		return rc;
	memset(&opt, 0, sizeof(opt));
	opt.socket_path = ch.cf->broker_socket[0] ? ch.cf->broker_socket : NULL;
	opt.kind = MB_CLIENT_BIDI;
	opt.share = share_cb;
	opt.event = event_cb;
	opt.name = ch.cf->client_name;
	opt.connect_timeout_ms = broker_timeout();
	opt.call_timeout_ms = broker_timeout();
	opt.flags = MB_OPEN_KEEP;
	opt.claim = claim_cb;
	rc = mb_open(&ch.cl, &opt);
	if (rc != 0) {
		mb_close(&ch.cl);
	} else {
		low = mb_memstate(&ch.cl, &ms) == 0 && ms.level == MB_MEM_LEVEL_DENY;
		if (mb_subscribe(&ch.cl, MB_EVENT_MEM_NOTIFY | MB_EVENT_MEM_DENY |
				 MB_EVENT_MEM_OK) != 0)
			mb_log(MB_LOG_WARNING, "cannot follow the broker's memory events");
	}
	ps = rc == 0 ? mb_page_size(&ch.cl) : 0;
	bal = talk_end();
	ch.last_try_ms = mb_clock_ms();
	if (rc != 0)
		return rc;
	ch.up = 1;
	ch.ps = ps != 0 ? ps : 4096;
	ch.lowmem = low;
	set_held(bal);
	if (ch.said_down)
		mb_log(MB_LOG_NOTICE, "broker reachable again: %llu bytes claimed",
		       (unsigned long long)ch.held);
	ch.said_down = 0;
	return 0;
}

/* Down: try again once retry_interval has passed.  Under the lock. */
static void broker_retry(void)
{
	if (ch.retry_factor == 0)
		ch.retry_factor = 1;
	/* A thread talking is connecting, or the broker is up. */
	if (ch.up || ch.talking ||
	    mb_clock_ms() - ch.last_try_ms < ch.cf->retry_interval * ch.retry_factor)
		return;
	int rc = broker_open();

	if (rc == 0) {
		ch.retry_factor = 1;
		return;
	}
	if (ch.retry_factor < TFS_RETRY_BACKOFF_MAX)
		ch.retry_factor *= 2;
	if (!ch.said_down)
		broker_lost(rc);
}

/*
 * Ask for pages; on a broker failure mark it down.  Under the lock (let go
 * while asking); waits for another thread's talk until deadline_ms.
 * Returns the pages granted, 0 when nothing was asked.
 */
static uint64_t broker_ask(uint64_t pages, int reserve, uint64_t deadline_ms)
{
	uint64_t granted = 0, now;
	int64_t bal;
	int rc, open, timeout;

	if (talk_begin(deadline_ms, 1, 0) != 0)
		return 0;
	/* What is left of the change's deadline: a wait for another
	 * thread's talk came out of it. */
	now = mb_clock_ms();
	timeout = now < deadline_ms ? (int)(deadline_ms - now) : 1;
	if (reserve)
		rc = mb_reserve(&ch.cl, pages, timeout, &granted);
	else
		rc = mb_request(&ch.cl, pages, timeout, &granted);
	open = mb_is_open(&ch.cl);
	bal = talk_end();
	/* The broker answered (a RESERVE past its deadline is a refusal);
	 * only a broker that went silent or away is lost, whatever the call
	 * returned (a reply can come before the connection breaks). */
	if (!open)
		broker_lost(rc != 0 ? rc : MB_ECONNLOST);
	else if (rc == 0 || rc == MB_EDENIED || rc == MB_ECAP ||
		 rc == MB_ELOWMEM || rc == MB_ETIMEDOUT)
		set_held(bal);
	else
		broker_lost(rc);
	return rc == 0 ? granted : 0;
}

/* What held lacks for busy() + extra, 0 if nothing. */
static uint64_t shortfall(uint64_t extra)
{
	uint64_t need = busy() + extra;

	return need > ch.held ? need - ch.held : 0;
}

/* Within the cap while the broker is unreachable?  0 or -ENOSPC. */
static int down_verdict(uint64_t extra)
{
	return ch.cf->on_broker_down == TFS_DOWN_CAP &&
		busy() + extra <= ch.cf->cap ? 0 : -ENOSPC;
}

/* Pages to ask for a shortfall: at least `step`, and in a stream of asks
 * at least the hysteresis, so that what is left over after the change
 * stays below it and nothing is handed back at once. */
static uint64_t ask_size(uint64_t shortfall_bytes)
{
	uint64_t pages = (shortfall_bytes + ch.ps - 1) / ch.ps;
	uint64_t step = (ch.cf->step + ch.ps - 1) / ch.ps, now = mb_clock_ms();

	if (now - ch.last_ask_ms < TFS_STREAM_MS) {
		uint64_t burst = ch.cf->release_hysteresis / ch.ps;

		if (burst > step)
			step = burst;
	}
	ch.last_ask_ms = now;
	return pages > step ? pages : step;
}

/*
 * Make held cover busy() + extra.  0 or -ENOSPC.  Under the lock, let go
 * while another thread or this one talks to the broker, so busy() moves
 * meanwhile: a grant that other changes took first is asked again.  Every
 * wait ends by one broker_timeout from the call; a REQUEST granted in part
 * ends the asking (then a RESERVE with urgency = reserve).
 */
static int ensure(uint64_t extra, int may_reserve)
{
	uint64_t deadline = mb_clock_ms() + (uint64_t)broker_timeout();
	uint64_t want, got;

	if (busy() + extra == 0)
		return 0;
	if (!ch.up)
		broker_retry();
	for (;;) {
		if (!ch.up)
			return down_verdict(extra);
		if (shortfall(extra) == 0)
			return 0;
		if (ch.talking) {
			/* Its talk may bring what this needs. */
			if (talk_wait(deadline) != 0)
				return -ENOSPC;
			continue;
		}
		if (ch.lowmem || mb_clock_ms() >= deadline)
			return -ENOSPC;
		want = ask_size(shortfall(extra));
		got = broker_ask(want, 0, deadline);
		if (got < want)
			break;
	}
	if (ch.up && shortfall(extra) > 0 && may_reserve &&
	    ch.cf->urgency == TFS_URG_RESERVE)
		broker_ask((shortfall(extra) + ch.ps - 1) / ch.ps, 1, deadline);
	if (!ch.up)
		return down_verdict(extra);
	return shortfall(extra) == 0 ? 0 : -ENOSPC;
}

/*
 * Hand spare quota back once it passes the hysteresis.  Under the lock
 * (let go while returning).  A dispatch in progress is waited for
 * (settle_wait); another talk is not: the thread that asked returns the
 * spare when done (tfs_charge_begin), and what another thread's return
 * left goes back with the next change.  (The dispatcher returns nothing:
 * a file operation would skip its return while it runs.)
 */
static void release_spare(void)
{
	uint64_t b, spare, keep, pages;
	int64_t bal;
	int rc;

	if (!ch.up || settle_wait() != 0)
		return;
	b = busy();
	if (!ch.up || ch.held <= b)
		return;
	spare = ch.held - b;
	if (spare <= ch.cf->release_hysteresis)
		return;
	keep = ch.cf->release_hysteresis / 2;
	pages = (spare - keep) / ch.ps;
	if (pages == 0 || talk_begin(0, 1, 0) != 0)
		return;
	rc = mb_return(&ch.cl, pages);
	bal = talk_end();
	/* MB_EOVERRETURN: a give-back query took some of it meanwhile. */
	if (rc == 0 || rc == MB_EOVERRETURN)
		set_held(bal);
	else
		broker_lost(rc);
}

/*
 * Answers the broker's give-back queries while no file operation is
 * talking to it (during one, the library answers them itself).
 */
static void *dispatcher(void *arg)
{
	struct timespec pause = { 0, TFS_DISPATCH_MS * (long)TFS_NS_PER_MS };

	while (__atomic_load_n(&ch.dispatching, __ATOMIC_ACQUIRE)) {
		struct pollfd p;
		int fd;

		pthread_mutex_lock(&ch.lock);
		/* An idle mount reconnects too: a restarted broker must learn
		 * what the files use before it lends it to someone else. */
		broker_retry();
		fd = ch.up && !ch.talking ? mb_fd(&ch.cl) : -1;
		pthread_mutex_unlock(&ch.lock);
		if (fd < 0) {
			nanosleep(&pause, NULL);
			continue;
		}
		p.fd = fd;
		p.events = POLLIN;
		p.revents = 0;
		if (poll(&p, 1, TFS_DISPATCH_MS) <= 0)
			continue;
		pthread_mutex_lock(&ch.lock);
		if (ch.talking) {
			/* The talker's call answers what came. */
			pthread_mutex_unlock(&ch.lock);
			nanosleep(&pause, NULL);
			continue;
		}
		if (ch.up && mb_fd(&ch.cl) == fd && talk_begin(0, 1, 1) == 0) {
			int rc = mb_dispatch(&ch.cl, 0);
			int64_t bal = talk_end();

			if (rc < 0 && rc != MB_EAGAIN)
				broker_lost(rc);
			else
				set_held(bal);
		}
		pthread_mutex_unlock(&ch.lock);
	}
	return arg;
}

static void dispatcher_start(void)
{
	__atomic_store_n(&ch.dispatching, 1, __ATOMIC_RELEASE);
	if (mb_thread_start(&ch.dispatcher, NULL, "track_fs-broker", dispatcher, NULL) != 0) {
		__atomic_store_n(&ch.dispatching, 0, __ATOMIC_RELEASE);
		mb_log(MB_LOG_WARNING, "no thread for the broker's give-back "
		       "queries; they are answered during file operations only");
	}
}

static void dispatcher_stop(void)
{
	if (!__atomic_load_n(&ch.dispatching, __ATOMIC_ACQUIRE))
		return;
	__atomic_store_n(&ch.dispatching, 0, __ATOMIC_RELEASE);
	pthread_join(ch.dispatcher, NULL);
}

int tfs_charge_init(const struct tfs_conf *cf, uint64_t initial_used,
		    char *err, size_t errcap)
{
	char a[32], b[32];
	int rc;

	ch.cf = cf;
	ch.enabled = cf->charge;
	ch.used = (int64_t)initial_used;
	if (!ch.enabled)
		return 0;
	pthread_mutex_lock(&ch.lock);
	rc = broker_open();
	pthread_mutex_unlock(&ch.lock);
	if (rc != 0) {
		ch.said_down = 1;
		mb_log(MB_LOG_WARNING, "broker unreachable at %s: %s",
		       cf->broker_socket[0] ? cf->broker_socket :
		       "the default socket", mb_strerror(rc));
	}
	pthread_mutex_lock(&ch.lock);
	rc = ensure(0, 1);
	pthread_mutex_unlock(&ch.lock);
	if (rc != 0) {
		mb_format_size(a, sizeof(a), initial_used);
		mb_format_size(b, sizeof(b), ch.up ? ch.held : cf->cap);
		if (ch.up)
			mb_format(err, errcap, "the files already there use %s "
				  "but the broker granted only %s", a, b);
		else if (cf->on_broker_down == TFS_DOWN_CAP)
			mb_format(err, errcap, "the files already there use %s, "
				  "over the cap of %s, and the broker is "
				  "unreachable", a, b);
		else
			mb_format(err, errcap, "the files already there use %s "
				  "and the broker is unreachable", a);
		if (ch.up)
			mb_close(&ch.cl);
		ch.up = 0;
		return -1;
	}
	dispatcher_start();
	return 0;
}

void tfs_charge_fini(void)
{
	dispatcher_stop();
	pthread_mutex_lock(&ch.lock);
	while (ch.talking)
		pthread_cond_wait(&ch.talked, &ch.lock);
	if (ch.up) {
		ch.up = 0;
		close_handle();
	}
	ch.held = 0;
	pthread_mutex_unlock(&ch.lock);
}

int tfs_charge_enabled(void)
{
	return ch.enabled;
}

int tfs_charge_begin(struct tfs_inode *in, uint64_t bytes, int mode)
{
	uint64_t take = 0, rest;
	int rc = 0;

	if (!ch.enabled || bytes == 0)
		return 0;
	pthread_mutex_lock(&ch.lock);
	if (in != NULL) {
		take = in->resv < bytes ? in->resv : bytes;
		in->resv -= take;
	}
	/* The part taken from the inode's reserve is already in resv. */
	rest = bytes - take;
	if (ensure(rest, mode != TFS_CHARGE_SOFT) != 0) {
		if (mode != TFS_CHARGE_FORCE) {
			if (in != NULL)
				in->resv += take;
			/* A partial grant is not kept past the hysteresis. */
			release_spare();
			rc = -ENOSPC;
			goto out;
		}
		mb_log(MB_LOG_WARNING, "page writeback of %llu bytes goes "
		       "over the quota", (unsigned long long)rest);
	}
	ch.resv += rest;
	/* What other threads could not return while this one asked. */
	release_spare();
out:
	pthread_mutex_unlock(&ch.lock);
	return rc;
}

void tfs_charge_end(struct tfs_inode *in, uint64_t bytes, int64_t delta,
		    int keep_resv)
{
	if (in != NULL)
		in->blocks += delta;
	if (!ch.enabled || (bytes == 0 && delta == 0))
		return;
	pthread_mutex_lock(&ch.lock);
	if (bytes > ch.resv)
		bytes = ch.resv;
	if (keep_resv && in != NULL) {
		/* What the change did not use stays set aside for the inode. */
		uint64_t used_part = delta > 0 ? (uint64_t)delta : 0;
		uint64_t unused = used_part < bytes ? bytes - used_part : 0;

		in->resv += unused;
		ch.resv -= bytes - unused;
	} else {
		ch.resv -= bytes;
	}
	ch.used += delta;
	release_spare();
	pthread_mutex_unlock(&ch.lock);
}

void tfs_charge_trim_resv(struct tfs_inode *in, uint64_t limit)
{
	pthread_mutex_lock(&ch.lock);
	if (in->resv > limit) {
		uint64_t drop = in->resv - limit;

		ch.resv -= drop < ch.resv ? drop : ch.resv;
		in->resv = limit;
		release_spare();
	}
	pthread_mutex_unlock(&ch.lock);
}

void tfs_charge_blocks_to_resv(struct tfs_inode *in, uint64_t bytes)
{
	if (bytes > (uint64_t)(in->blocks > 0 ? in->blocks : 0))
		bytes = (uint64_t)(in->blocks > 0 ? in->blocks : 0);
	in->blocks -= (int64_t)bytes;
	in->resv += bytes;
	if (!ch.enabled || bytes == 0)
		return;
	pthread_mutex_lock(&ch.lock);
	ch.used -= (int64_t)bytes;
	ch.resv += bytes;
	pthread_mutex_unlock(&ch.lock);
}

void tfs_charge_credit(struct tfs_inode *in)
{
	int64_t b = in->blocks;

	in->blocks = 0;
	if (!ch.enabled)
		return;
	pthread_mutex_lock(&ch.lock);
	ch.used -= b;
	release_spare();
	pthread_mutex_unlock(&ch.lock);
}

void tfs_charge_drop_resv(struct tfs_inode *in)
{
	tfs_charge_trim_resv(in, 0);
}

void tfs_charge_adjust(int64_t delta)
{
	if (!ch.enabled)
		return;
	pthread_mutex_lock(&ch.lock);
	ch.used += delta;
	release_spare();
	pthread_mutex_unlock(&ch.lock);
}

void tfs_charge_usage(struct tfs_usage *u, int ask_broker)
{
	struct mb_info info;

	memset(u, 0, sizeof(*u));
	pthread_mutex_lock(&ch.lock);
	/* While another thread asks or returns, the figures of the last
	 * query. */
	if (ch.up && ask_broker && settle_wait() == 0) {
		release_spare();
		if (ch.up && talk_begin(0, 1, 0) == 0) {
			int rc = mb_query(&ch.cl, &info);
			int64_t bal = talk_end();

			if (rc == 0) {
				set_held(bal);
				ch.total = info.total * ch.ps;
				ch.pool = info.pool > 0 ? (uint64_t)info.pool * ch.ps : 0;
			} else if (rc != MB_EPERM) {
				broker_lost(rc);
			}
		}
	}
	u->used = ch.used > 0 ? (uint64_t)ch.used : 0;
	u->reserved = ch.resv;
	u->held = ch.held;
	u->broker_up = ch.up;
	if (ch.up && ask_broker) {
		u->total = ch.total;
		u->available = ch.pool;
	}
	if (!ch.up) {
		u->held = 0;
		if (ch.cf->on_broker_down == TFS_DOWN_CAP)
			u->available = ch.cf->cap;
	}
	pthread_mutex_unlock(&ch.lock);
}
