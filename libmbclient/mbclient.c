/*
 * mbclient.c - the membroker client library (see mbclient.h).
 *
 * Invariants:
 *  - All state lives in the caller's mb_client storage (struct mbc).  No
 *    heap, no stdio; diagnostics go through mb_log.
 *  - s->lock serialises API calls on a handle: only its holder reads the
 *    socket, changes the connection state or touches rbuf.  s->wlock
 *    serialises writes, so that mb_cancel() can send CANCEL while another
 *    thread sleeps in a request holding s->lock.  The fd is only closed
 *    with both locks held, so a writer never writes to a reused fd.
 *  - fd < 0 means "not connected"; the next call that needs the server
 *    connects and says HELLO again (then CLAIM, when the caller declares
 *    holdings).
 *  - Every wait has a deadline (connect, HELLO, each reply, each send
 *    through SO_SNDTIMEO); only mb_dispatch(-1) waits as long as its
 *    caller asked.  Any transport error, malformed frame
 *    or reply that does not fit the conversation drops the connection.
 *  - A handle remembers the pid that opened it.  In another process (after
 *    fork) every call fails with MB_ENOTCONN before touching a lock or the
 *    socket: the child never speaks on its parent's connection.
 *  - rbuf may hold complete frames after a call has its reply; they are
 *    handled before the call returns, so an event loop that polls the fd
 *    never misses a share query that already sits in the buffer.
 */
#include <config.h>

#include "mbclient.h"

#include "mb_clock.h"
#include "mb_log.h"
#include "mb_thread.h"
#include "mb_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MB_API __attribute__((visibility("default")))

#define MBC_MAGIC 0x4d42434cU          /* marks initialised storage */
#define MBC_RBUF (2 * MB_WIRE_MAX_FRAME) /* room for a frame after compaction */
#define MBC_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)
#define MBC_NAME_MAX (MB_WIRE_COMM_WORDS * 8)
#define MBC_CONNECT_TIMEOUT_MS 1000    /* mb_options.connect_timeout_ms == 0 */
#define MBC_REPLY_TIMEOUT_MS 10000     /* mb_options.call_timeout_ms == 0 */
#define MBC_SLICE_MS 1000              /* longest single blocking recv(2) */
#define MBC_CONNECT_RETRY_NS 1000000L  /* backlog full: retry after 1 ms */
#define NS_PER_MS 1000000LL
#define NS_PER_S 1000000000LL

struct mbc {
	uint32_t magic;
	pid_t pid;
	int fd;
	int wdead;              /* a write failed half-way: stream unusable */
	pthread_mutex_t lock;
	pthread_mutex_t wlock;
	/* under wlock */
	uint32_t seq;
	uint32_t req_seq;
	int req_inflight;
	/* options */
	enum mb_client_kind kind;
	uint64_t source_pages;
	mb_share_fn share;
	mb_repay_fn repay;
	mb_event_fn event;
	void *arg;
	int connect_timeout_ms;
	int call_timeout_ms;
	int64_t lock_wait_ns;  /* the last call's wait for its turn (mbc_lock) */
	unsigned flags;
	mb_claim_fn claim;
	int64_t retry_at;       /* mb_reconnect(): next attempt (monotonic ns) */
	int up;                 /* HELLO and CLAIM done: mb_fd() shows the fd */
	unsigned sub_mask;
	/* learned from the server */
	uint64_t page_size;
	uint64_t client_id;
	uint64_t total;
	int64_t balance;
	/* Share answers sent, and their count when the current call sent its
	 * request: a reply's balance is only current if none went out since. */
	uint64_t nanswers, call_answers;
	char path[MBC_PATH_MAX];
	char name[MBC_NAME_MAX + 1];
	size_t rlen;
	unsigned char rbuf[MBC_RBUF];
};

/* The public constants are the protocol's (compared as plain ints). */
#define MBC_SAME(a, b) ((int)(a) == (int)(b))
_Static_assert(MBC_SAME(MB_CLIENT_SINK, MB_KIND_SINK) &&
	       MBC_SAME(MB_CLIENT_BIDI, MB_KIND_BIDI) &&
	       MBC_SAME(MB_CLIENT_SOURCE, MB_KIND_SOURCE) &&
	       MBC_SAME(MB_CLIENT_OBSERVER, MB_KIND_OBSERVER), "client kinds");
_Static_assert(MBC_SAME(MB_URGENCY_REQUEST, MB_URG_REQUEST) &&
	       MBC_SAME(MB_URGENCY_RESERVE, MB_URG_RESERVE), "urgencies");
_Static_assert(MBC_SAME(MB_EVENT_POOL_LOW, MB_EV_POOL_LOW) &&
	       MBC_SAME(MB_EVENT_POOL_OK, MB_EV_POOL_OK) &&
	       MBC_SAME(MB_EVENT_TOTAL_CHANGED, MB_EV_TOTAL_CHANGED) &&
	       MBC_SAME(MB_EVENT_MEM_NOTIFY, MB_EV_MEM_NOTIFY) &&
	       MBC_SAME(MB_EVENT_MEM_DENY, MB_EV_MEM_DENY) &&
	       MBC_SAME(MB_EVENT_MEM_OK, MB_EV_MEM_OK) &&
	       MBC_SAME(MB_EVENT_MEM_EARLY, MB_EV_MEM_EARLY) &&
	       MBC_SAME(MB_EVENT_ALL, MB_EV_ALL), "events");
_Static_assert(MBC_SAME(MB_MARK_COUNT, MB_CTL_MARK_COUNT) &&
	       MBC_SAME(MB_MARK_OFF, MB_CTL_OFF) &&
	       MBC_SAME(MB_MEM_LEVEL_DENY, MB_MEM_DENY), "marks");

_Static_assert(sizeof(struct mbc) <= MB_CLIENT_STORAGE,
	       "struct mbc does not fit in mb_client");
_Static_assert(_Alignof(struct mbc) <= _Alignof(mb_client),
	       "mb_client is not aligned enough for struct mbc");

static struct mbc *mbc_of(mb_client *c)
{
	return (struct mbc *)(void *)c->opaque;
}

static const struct mbc *mbc_cof(const mb_client *c)
{
	return (const struct mbc *)(const void *)c->opaque;
}

static int64_t mbc_now_ns(void)
{
	return (int64_t)mb_clock_ns();
}

/* Absolute deadline ms from now; -1 for none. */
static int64_t mbc_deadline(long ms)
{
	return ms < 0 ? -1 : mbc_now_ns() + (int64_t)ms * NS_PER_MS;
}

/* poll(2) timeout until an absolute deadline (-1: none), rounded up. */
static int mbc_poll_ms(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t left = deadline - mbc_now_ns();
	if (left <= 0)
		return 0;
	return (int)((left + NS_PER_MS - 1) / NS_PER_MS);
}

static int mbc_status_err(uint64_t st)
{
	switch (st) {
	case MB_ST_OK: return MB_OK;
	case MB_ST_VERSION: return MB_EVERSION;
	case MB_ST_INVAL: return MB_EINVAL;
	case MB_ST_BUSY: return MB_EBUSY;
	case MB_ST_PERM: return MB_EPERM;
	case MB_ST_DENIED: return MB_EDENIED;
	case MB_ST_TIMEDOUT: return MB_ETIMEDOUT;
	case MB_ST_CANCELED: return MB_ECANCELED;
	case MB_ST_OVERRETURN: return MB_EOVERRETURN;
	case MB_ST_CAP:
	case MB_ST_UIDCAP: return MB_ECAP;
	case MB_ST_SHUTDOWN: return MB_ESHUTDOWN;
	case MB_ST_NOREQ: return MB_EINVAL;
	case MB_ST_LOWMEM: return MB_ELOWMEM;
	default: return MB_EPROTO; /* PROTO, NOTREG, UNKNOWN: we broke the rules */
	}
}

/* mb_balance() reads the balance without the handle's lock. */
static void mbc_set_balance(struct mbc *s, int64_t b)
{
	__atomic_store_n(&s->balance, b, __ATOMIC_RELAXED);
}

/* Close the connection; the next call reconnects.  Caller holds s->lock. */
static void mbc_drop(struct mbc *s)
{
	pthread_mutex_lock(&s->wlock);
	if (s->fd >= 0)
		close(s->fd);
	/* mb_fd(), mb_is_open() and mb_balance() read these without a lock. */
	__atomic_store_n(&s->up, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->fd, -1, __ATOMIC_RELAXED);
	s->wdead = 0;
	s->req_inflight = 0;
	s->rlen = 0;
	mbc_set_balance(s, 0);
	pthread_mutex_unlock(&s->wlock);
}

/* A balance (signed: a source lends) no broker can report. */
static int mbc_balance_bad(int64_t b)
{
	return b > (int64_t)MB_WIRE_MAX_PAGES || b < -(int64_t)MB_WIRE_MAX_PAGES;
}

/*
 * Take the balance a reply reports, unless share answers left after the
 * request (the server had not seen them yet): then apply delta instead.
 * A balance beyond the wire's range is MB_EPROTO (and never stored, so no
 * later sum with it can overflow).
 */
static int mbc_adopt(struct mbc *s, uint64_t reported, int64_t delta)
{
	int64_t b = s->balance + delta;
	if (s->nanswers == s->call_answers)
		b = (int64_t)reported;
	if (mbc_balance_bad(b))
		return MB_EPROTO;
	mbc_set_balance(s, b);
	return MB_OK;
}

static uint32_t mbc_next_seq(struct mbc *s)
{
	if (++s->seq == 0)
		s->seq = 1;
	return s->seq;
}

/* Write one frame.  Caller holds s->wlock. */
static int mbc_send_locked(struct mbc *s, const struct mb_msg *m)
{
	unsigned char buf[MB_WIRE_MAX_FRAME];
	int len = mb_wire_encode(m, buf, sizeof(buf));
	if (len < 0)
		return MB_EINVAL;
	if (s->fd < 0)
		return MB_ENOTCONN;
	if (__atomic_load_n(&s->wdead, __ATOMIC_RELAXED))
		return MB_ECONNLOST;
	/* Blocking send: SO_SNDTIMEO bounds a server that stopped reading. */
	size_t off = 0;
	while (off < (size_t)len) {
		ssize_t n = send(s->fd, buf + off, (size_t)len - off, MSG_NOSIGNAL);
		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && errno == EINTR)
			continue;
		else
			break;
	}
	if (off == (size_t)len)
		return MB_OK;
	mb_log(MB_LOG_DEBUG, "mbclient: send %s failed after %zu bytes",
	       mb_wire_type_name(m->type), off);
	/* Part of a frame may be out: the stream is unusable.  Only the lock
	 * holder closes it (mbc_read_frame), never a cancelling thread. */
	__atomic_store_n(&s->wdead, 1, __ATOMIC_RELAXED);
	return MB_ECONNLOST;
}

static int mbc_send(struct mbc *s, struct mb_msg *m, uint32_t *seq)
{
	pthread_mutex_lock(&s->wlock);
	m->seq = mbc_next_seq(s);
	s->call_answers = s->nanswers;
	if (seq)
		*seq = m->seq;
	int r = mbc_send_locked(s, m);
	pthread_mutex_unlock(&s->wlock);
	return r;
}

/*
 * Next frame from the connection: 1 with *m filled, 0 when the deadline
 * passed, or an error (the connection is then dropped).  Caller holds
 * s->lock.
 */
static int mbc_read_frame(struct mbc *s, struct mb_msg *m, int64_t deadline)
{
	for (;;) {
		if (__atomic_load_n(&s->wdead, __ATOMIC_RELAXED)) {
			mbc_drop(s);
			return MB_ECONNLOST;
		}
		int n = mb_wire_decode(s->rbuf, s->rlen, m);
		if (n > 0) {
			s->rlen -= (size_t)n;
			memmove(s->rbuf, s->rbuf + n, s->rlen);
			return 1;
		}
		if (n < 0) {
			mb_log(MB_LOG_WARNING, "mbclient: malformed frame from the broker (%s)",
			       mb_wire_status_name((unsigned)-n));
			mbc_drop(s);
			return n == -MB_ST_VERSION ? MB_EVERSION : MB_EPROTO;
		}
		/*
		 * Waits of a slice or more (or for ever) block in recv(2),
		 * which SO_RCVTIMEO wakes every slice to look at the
		 * deadline: one system call per reply on the usual path.
		 * Shorter waits poll first; an expired one only peeks.
		 */
		int ms = mbc_poll_ms(deadline);
		int flags = 0;
		if (ms == 0) {
			flags = MSG_DONTWAIT;
		} else if (ms > 0 && ms < MBC_SLICE_MS) {
			struct pollfd p = { .fd = s->fd, .events = POLLIN };
			int pr = poll(&p, 1, ms);
			if (pr < 0 && errno != EINTR) {
				mbc_drop(s);
				return MB_ESYS;
			}
			if (pr <= 0)
				continue;
			flags = MSG_DONTWAIT;
		}
		ssize_t got = recv(s->fd, s->rbuf + s->rlen, sizeof(s->rbuf) - s->rlen,
				   flags);
		if (got > 0) {
			s->rlen += (size_t)got;
			continue;
		}
		if (got == 0) {
			mbc_drop(s);
			return MB_ECONNLOST;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			mbc_drop(s);
			return MB_ECONNLOST;
		}
		if (ms == 0)
			return 0;
	}
}

/* Pages this handle may give away: what it holds, plus a source's own. */
static uint64_t mbc_can_give(const struct mbc *s)
{
	int64_t have = s->balance;
	if (s->kind == MB_CLIENT_SOURCE)
		have += (int64_t)s->source_pages;
	return have > 0 ? (uint64_t)have : 0;
}

static int mbc_share_query(struct mbc *s, const struct mb_msg *m)
{
	uint64_t urg = m->w[MB_W_SQ_URGENCY], pages = m->w[MB_W_SQ_PAGES];
	if (urg >= MB_URG_COUNT || !mb_wire_count_ok(pages))
		return MB_EPROTO;
	uint64_t freed = 0;
	if ((s->kind == MB_CLIENT_BIDI || s->kind == MB_CLIENT_SOURCE) && s->share)
		freed = s->share(s->arg, (enum mb_client_urgency)urg, pages);
	else
		mb_log(MB_LOG_WARNING, "mbclient: share query to a client that cannot share");
	uint64_t can = mbc_can_give(s);
	if (freed > can)
		freed = can;
	struct mb_msg a;
	mb_msg_init(&a, MB_MSG_SHARE_ANSWER, m->seq);
	a.w[MB_W_ANS_PAGES] = freed;
	/* The balance drops before the answer leaves: once the broker has it,
	 * another thread reading mb_balance() must not see the pages still. */
	mbc_set_balance(s, s->balance - (int64_t)freed);
	s->nanswers++;
	pthread_mutex_lock(&s->wlock);
	int r = mbc_send_locked(s, &a);
	pthread_mutex_unlock(&s->wlock);
	if (r != MB_OK) {
		mbc_set_balance(s, s->balance + (int64_t)freed);
		s->nanswers--;
	}
	return r;
}

/*
 * Frames the server sends on its own: 1 if m was one and was handled, 0 if
 * it is something else, or an error.
 */
static int mbc_unsolicited(struct mbc *s, const struct mb_msg *m)
{
	switch (m->type) {
	case MB_MSG_SHARE_QUERY: {
		int r = mbc_share_query(s, m);
		return r < 0 ? r : 1;
	}
	case MB_MSG_REPAY:
		if (!mb_wire_count_ok(m->w[MB_W_REPAY_PAGES]) ||
		    mbc_balance_bad(s->balance + (int64_t)m->w[MB_W_REPAY_PAGES]))
			return MB_EPROTO;
		/* The balance word may predate answers still in flight. */
		mbc_set_balance(s, s->balance + (int64_t)m->w[MB_W_REPAY_PAGES]);
		if (s->repay)
			s->repay(s->arg, m->w[MB_W_REPAY_PAGES]);
		return 1;
	case MB_MSG_EVENT:
		if (s->event)
			s->event(s->arg, (unsigned)m->w[MB_W_EV_EVENT],
				 (int64_t)m->w[MB_W_EV_POOL], m->w[MB_W_EV_TOTAL],
				 m->w[MB_W_EV_VALUE]);
		return 1;
	case MB_MSG_CANCEL_ACK:
		/* A cancel that raced with the reply it meant to stop. */
		return 1;
	case MB_MSG_ERROR:
		/* Refusals of frames that have no reply of their own. */
		if (m->w[MB_W_ERR_TYPE] == MB_MSG_CANCEL ||
		    m->w[MB_W_ERR_TYPE] == MB_MSG_SHARE_ANSWER) {
			mb_log(MB_LOG_DEBUG, "mbclient: broker refused %s: %s",
			       mb_wire_type_name((unsigned)m->w[MB_W_ERR_TYPE]),
			       mb_wire_status_name((unsigned)m->w[MB_W_ERR_STATUS]));
			return 1;
		}
		/* The server ends the conversation (shutdown, our bad frame). */
		if (m->seq == 0) {
			int err = m->w[MB_W_ERR_STATUS] == MB_ST_SHUTDOWN ?
				MB_ESHUTDOWN : MB_EPROTO;
			mb_log(MB_LOG_DEBUG, "mbclient: broker closes: %s",
			       mb_wire_status_name((unsigned)m->w[MB_W_ERR_STATUS]));
			mbc_drop(s);
			return err;
		}
		return 0;
	default:
		return 0;
	}
}

static int mbc_fail(struct mbc *s, int err)
{
	if (err == MB_EPROTO || err == MB_ECONNLOST || err == MB_EVERSION ||
	    err == MB_ESYS)
		mbc_drop(s);
	return err;
}

/*
 * Wait for the reply of type `type` (or an ERROR) to request `seq`,
 * handling what the server sends meanwhile.  1 with *m, 0 on timeout, or an
 * error.  Caller holds s->lock.
 */
static int mbc_wait(struct mbc *s, uint32_t seq, unsigned type,
		    struct mb_msg *m, int64_t deadline)
{
	for (;;) {
		int r = mbc_read_frame(s, m, deadline);
		if (r <= 0)
			return r;
		if (m->seq == seq && (m->type == type || m->type == MB_MSG_ERROR)) {
			if (m->type == MB_MSG_ERROR &&
			    m->w[MB_W_ERR_STATUS] == MB_ST_OK)
				return mbc_fail(s, MB_EPROTO);
			return 1;
		}
		r = mbc_unsolicited(s, m);
		if (r < 0)
			return mbc_fail(s, r);
		if (r == 0) {
			mb_log(MB_LOG_WARNING, "mbclient: unexpected %s (seq %u) from the broker",
			       mb_wire_type_name(m->type), (unsigned)m->seq);
			return mbc_fail(s, MB_EPROTO);
		}
	}
}

/* Handle the complete frames left in rbuf (see the invariants). */
static int mbc_drain(struct mbc *s)
{
	int handled = 0;
	while (s->fd >= 0) {
		struct mb_msg m;
		int n = mb_wire_decode(s->rbuf, s->rlen, &m);
		if (n == 0)
			break;
		if (n < 0)
			return mbc_fail(s, n == -MB_ST_VERSION ? MB_EVERSION : MB_EPROTO);
		s->rlen -= (size_t)n;
		memmove(s->rbuf, s->rbuf + n, s->rlen);
		int r = mbc_unsolicited(s, &m);
		if (r == 0) {
			mb_log(MB_LOG_WARNING, "mbclient: unexpected %s (seq %u) from the broker",
			       mb_wire_type_name(m.type), (unsigned)m.seq);
			r = MB_EPROTO;
		}
		if (r < 0)
			return mbc_fail(s, r);
		handled++;
	}
	return handled;
}

/* One request/reply exchange with the usual reply timeout. */
static int mbc_call(struct mbc *s, struct mb_msg *m, unsigned reply)
{
	uint32_t seq;
	int r = mbc_send(s, m, &seq);
	if (r < 0)
		return mbc_fail(s, r);
	r = mbc_wait(s, seq, reply, m, mbc_deadline(s->call_timeout_ms));
	if (r == 0) {
		mb_log(MB_LOG_WARNING, "mbclient: no %s from the broker in time",
		       mb_wire_type_name(reply));
		mbc_drop(s);
		return MB_ETIMEDOUT;
	}
	return r < 0 ? r : MB_OK;
}

static int mbc_socket(struct mbc *s, int64_t deadline)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, s->path, sizeof(sa.sun_path));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return MB_ESYS;
	for (;;) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		if (errno == EAGAIN && mbc_poll_ms(deadline) != 0) {
			/* Listen backlog full: the server is busy, not gone. */
			struct timespec ts = { 0, MBC_CONNECT_RETRY_NS };
			nanosleep(&ts, NULL);
			continue;
		}
		if (errno == EINTR || errno == EINPROGRESS || errno == EALREADY) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int pr = poll(&p, 1, mbc_poll_ms(deadline));
			if (pr < 0 && errno == EINTR)
				continue;
			int err = 0;
			socklen_t len = sizeof(err);
			if (pr > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
			    err == 0)
				return fd;
		}
		int saved = errno;
		close(fd);
		errno = saved;
		return MB_ECONNECT;
	}
}

/*
 * After HELLO: declare what this client holds (opt.claim), or learn what
 * the broker kept for it (MB_OPEN_KEEP).  A broker that refuses the claim
 * leaves the balance as it is: the client keeps running with less quota.
 */
static int mbc_claim(struct mbc *s)
{
	struct mb_msg m;
	if (s->claim == NULL) {
		if (!(s->flags & MB_OPEN_KEEP))
			return MB_OK;
		mb_msg_init(&m, MB_MSG_QUERY, 0);
		int r = mbc_call(s, &m, MB_MSG_QUERY_REPLY);
		if (r == MB_OK && m.type == MB_MSG_QUERY_REPLY &&
		    m.w[MB_W_QR_STATUS] == MB_ST_OK &&
		    mb_wire_count_ok(m.w[MB_W_QR_BALANCE]))
			mbc_set_balance(s, (int64_t)m.w[MB_W_QR_BALANCE]);
		return r < 0 ? r : MB_OK;
	}
	uint64_t pages = s->claim(s->arg);
	if (!mb_wire_count_ok(pages))
		pages = MB_WIRE_MAX_PAGES;
	if (pages == 0 && !(s->flags & MB_OPEN_KEEP))
		return MB_OK; /* the balance is 0 already */
	mb_msg_init(&m, MB_MSG_CLAIM, 0);
	m.w[MB_W_CLAIM_PAGES] = pages;
	int r = mbc_call(s, &m, MB_MSG_CLAIM_ACK);
	if (r < 0)
		return r;
	uint64_t st = m.w[0];
	if (m.type == MB_MSG_CLAIM_ACK && (st == MB_ST_OK || st == MB_ST_CLAIM_PARTIAL)) {
		uint64_t bal = m.w[MB_W_CLAIMACK_BALANCE];
		if (bal > pages || (st == MB_ST_OK && bal != pages))
			return mbc_fail(s, MB_EPROTO);
		mbc_set_balance(s, (int64_t)bal);
		if (st != MB_ST_OK)
			mb_log(MB_LOG_WARNING, "mbclient: broker accepted %lu of the %lu pages "
			       "claimed", (unsigned long)bal, (unsigned long)pages);
		return MB_OK;
	}
	mb_log(MB_LOG_WARNING, "mbclient: broker refused the claim of %lu pages: %s",
	       (unsigned long)pages, mb_wire_status_name((unsigned)st));
	return MB_OK;
}

/* Connect and say HELLO.  Caller holds s->lock. */
static int mbc_connect(struct mbc *s)
{
	int64_t deadline = mbc_deadline(s->connect_timeout_ms);
	int fd = mbc_socket(s, deadline);
	if (fd < 0) {
		mb_log(MB_LOG_DEBUG, "mbclient: cannot connect to %s", s->path);
		return fd;
	}
	/* Blocking I/O with timeouts (see mbc_read_frame, mbc_send_locked). */
	struct timeval rcv = { MBC_SLICE_MS / 1000, (MBC_SLICE_MS % 1000) * 1000 };
	struct timeval snd = { s->call_timeout_ms / 1000, (s->call_timeout_ms % 1000) * 1000 };
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rcv, sizeof(rcv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof(snd)) < 0) {
		close(fd);
		return MB_ESYS;
	}
	pthread_mutex_lock(&s->wlock);
	__atomic_store_n(&s->fd, fd, __ATOMIC_RELAXED);
	s->wdead = 0;
	s->rlen = 0;
	mbc_set_balance(s, 0);
	pthread_mutex_unlock(&s->wlock);

	struct mb_msg m;
	mb_msg_init(&m, MB_MSG_HELLO, 0);
	m.w[MB_W_HELLO_VERSION] = MB_WIRE_VERSION;
	m.w[MB_W_HELLO_KIND] = (uint64_t)s->kind;
	m.w[MB_W_HELLO_SOURCE_PAGES] = s->source_pages;
	if (s->flags & MB_OPEN_EXPENDABLE)
		m.w[MB_W_HELLO_FLAGS] |= MB_HELLO_EXPENDABLE;
	if (s->flags & MB_OPEN_KEEP)
		m.w[MB_W_HELLO_FLAGS] |= MB_HELLO_KEEP;
	mb_wire_put_comm(&m.w[MB_W_HELLO_COMM], s->name);
	uint32_t seq;
	int r = mbc_send(s, &m, &seq);
	if (r < 0)
		return mbc_fail(s, r);
	r = mbc_wait(s, seq, MB_MSG_HELLO_ACK, &m, deadline);
	if (r == 0) {
		mbc_drop(s);
		return MB_ECONNECT;
	}
	if (r < 0)
		return r == MB_ECONNLOST ? MB_ECONNECT : r;
	if (m.type == MB_MSG_ERROR || m.w[MB_W_ACK_STATUS] != MB_ST_OK) {
		int err = mbc_status_err(m.w[0]);
		mbc_drop(s);
		return err;
	}
	uint64_t ps = m.w[MB_W_ACK_PAGE_SIZE];
	if (ps == 0 || (ps & (ps - 1)) != 0)
		return mbc_fail(s, MB_EPROTO);
	s->page_size = ps;
	/* A total past the wire maximum says nothing about this handle. */
	s->total = m.w[MB_W_ACK_TOTAL] < MB_WIRE_MAX_PAGES ? m.w[MB_W_ACK_TOTAL] :
		MB_WIRE_MAX_PAGES;
	s->client_id = m.w[MB_W_ACK_CLIENT_ID];

	if (s->sub_mask) {
		mb_msg_init(&m, MB_MSG_SUBSCRIBE, 0);
		m.w[MB_W_SUB_MASK] = s->sub_mask;
		r = mbc_call(s, &m, MB_MSG_SUBSCRIBE_ACK);
	}
	if (r >= 0)
		r = mbc_claim(s);
	if (r < 0) {
		if (s->fd >= 0)
			mbc_drop(s);
		return r;
	}
	/* Only now may other threads see a connection: one that found the
	 * fd during the handshake would wait for it (mb_fd, mb_is_open). */
	__atomic_store_n(&s->up, 1, __ATOMIC_RELAXED);
	return MB_OK;
}

/*
 * Take the handle's lock by deadline (-1: none): another thread's call on
 * the same handle holds it for as long as that call may wait, a request
 * or an mb_dispatch(-1) for hours, and this call's own deadline must
 * still hold.
 */
static int mbc_lock(struct mbc *s, int64_t deadline)
{
	int e = mb_mutex_lock_by(&s->lock, deadline, &s->lock_wait_ns);
	return e == 0 ? MB_OK : e == ETIMEDOUT ? MB_ETIMEDOUT : MB_EINVAL;
}

/*
 * Start an API call: check the handle and the process, take the lock by
 * the call's deadline (mbc_lock) and make sure a connection exists.  On
 * success the caller must mbc_leave().
 */
#define MBC_CALL_DEADLINE INT64_MIN /* mbc_enter: by the call timeout */
static int mbc_enter(mb_client *c, struct mbc **sp, int64_t deadline)
{
	if (c == NULL)
		return MB_EINVAL;
	struct mbc *s = mbc_of(c);
	if (s->magic != MBC_MAGIC || s->pid != getpid())
		return MB_ENOTCONN;
	if (deadline == MBC_CALL_DEADLINE)
		deadline = mbc_deadline(s->call_timeout_ms);
	int l = mbc_lock(s, deadline);
	if (l < 0)
		return l;
	if (s->fd < 0) {
		if (s->flags & MB_OPEN_NO_AUTOCONNECT) {
			pthread_mutex_unlock(&s->lock);
			return MB_ENOTCONN;
		}
		int r = mbc_connect(s);
		if (r < 0) {
			pthread_mutex_unlock(&s->lock);
			return r;
		}
	}
	*sp = s;
	return MB_OK;
}

static int mbc_leave(struct mbc *s, int r)
{
	int d = mbc_drain(s);
	if (d < 0 && r >= 0)
		r = d;
	pthread_mutex_unlock(&s->lock);
	return r;
}

static void mbc_set_name(struct mbc *s, const char *name)
{
	if (name == NULL)
		name = program_invocation_short_name;
	size_t i = 0;
	for (; name && name[i] && i < MBC_NAME_MAX; i++)
		s->name[i] = name[i];
	s->name[i] = '\0';
}

MB_API int mb_open(mb_client *c, const struct mb_options *opt)
{
	if (c == NULL || opt == NULL)
		return MB_EINVAL;
	if ((unsigned)opt->kind > MB_CLIENT_OBSERVER ||
	    !mb_wire_count_ok(opt->source_pages) ||
	    (opt->kind != MB_CLIENT_SOURCE && opt->source_pages != 0) ||
	    ((opt->kind == MB_CLIENT_BIDI || opt->kind == MB_CLIENT_SOURCE) &&
	     opt->share == NULL) ||
	    opt->connect_timeout_ms < -1 || opt->call_timeout_ms < 0 ||
	    opt->connect_timeout_ms > MB_MAX_TIMEOUT_MS ||
	    opt->call_timeout_ms > MB_MAX_TIMEOUT_MS ||
	    (opt->flags & ~(unsigned)(MB_OPEN_KEEP | MB_OPEN_EXPENDABLE | MB_OPEN_NO_AUTOCONNECT)) ||
	    ((opt->claim || (opt->flags & MB_OPEN_KEEP)) &&
	     opt->kind != MB_CLIENT_SINK && opt->kind != MB_CLIENT_BIDI))
		return MB_EINVAL;
	const char *path = opt->socket_path;
	if (path == NULL)
		path = secure_getenv(MB_SOCKET_ENV);
	if (path == NULL || *path == '\0')
		path = MB_DEFAULT_SOCKET;
	if (strlen(path) >= MBC_PATH_MAX)
		return MB_EINVAL;

	/* The storage is taken as uninitialised: never read before this. */
	struct mbc *s = mbc_of(c);
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->wlock, NULL);
	s->pid = getpid();
	s->fd = -1;
	s->kind = opt->kind;
	s->source_pages = opt->source_pages;
	s->share = opt->share;
	s->repay = opt->repay;
	s->event = opt->event;
	s->arg = opt->arg;
	s->connect_timeout_ms = opt->connect_timeout_ms == 0 ?
		MBC_CONNECT_TIMEOUT_MS : opt->connect_timeout_ms < 0 ?
		MB_MAX_TIMEOUT_MS : opt->connect_timeout_ms;
	s->call_timeout_ms = opt->call_timeout_ms == 0 ?
		MBC_REPLY_TIMEOUT_MS : opt->call_timeout_ms;
	s->flags = opt->flags;
	s->claim = opt->claim;
	memcpy(s->path, path, strlen(path) + 1);
	mbc_set_name(s, opt->name);
	s->magic = MBC_MAGIC;

	pthread_mutex_lock(&s->lock);
	int r = mbc_connect(s);
	pthread_mutex_unlock(&s->lock);
	return r;
}

MB_API int mb_close(mb_client *c)
{
	if (c == NULL)
		return MB_EINVAL;
	struct mbc *s = mbc_of(c);
	if (s->magic != MBC_MAGIC)
		return MB_ENOTCONN;
	if (s->pid != getpid()) {
		/* A child closes its copy of the fd and never speaks on it. */
		if (s->fd >= 0)
			close(s->fd);
		s->fd = -1;
		s->magic = 0;
		return MB_OK;
	}
	pthread_mutex_lock(&s->lock);
	int r = MB_OK;
	if (s->fd >= 0) {
		struct mb_msg m;
		mb_msg_init(&m, MB_MSG_TERMINATE, 0);
		r = mbc_call(s, &m, MB_MSG_TERMINATE_ACK);
		if (r == MB_OK)
			r = mbc_status_err(m.w[MB_W_TERMACK_STATUS]);
		/* A lost server has reclaimed everything already. */
		if (r == MB_ECONNLOST)
			r = MB_OK;
		mbc_drop(s);
	}
	s->magic = 0;
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_destroy(&s->wlock);
	pthread_mutex_destroy(&s->lock);
	return r;
}

static int mbc_grant(struct mbc *s, const struct mb_msg *m, unsigned type,
		     uint64_t pages, uint64_t *granted)
{
	if (m->type == MB_MSG_ERROR)
		return mbc_status_err(m->w[MB_W_ERR_STATUS]);
	uint64_t st = m->w[MB_W_GRANT_STATUS], got = m->w[MB_W_GRANT_PAGES];
	if (st >= MB_ST_COUNT || got > pages ||
	    (type == MB_MSG_RESERVE && st == MB_ST_OK && got != pages))
		return mbc_fail(s, MB_EPROTO);
	if (mbc_adopt(s, m->w[MB_W_GRANT_BALANCE], (int64_t)got) < 0)
		return mbc_fail(s, MB_EPROTO);
	if (granted)
		*granted = got;
	return mbc_status_err(st);
}

/* Local wait beyond a deadline the server should have kept. */
static long mbc_grace_ms(const struct mbc *s)
{
	return s->call_timeout_ms < MB_GRACE_MAX_MS ? s->call_timeout_ms : MB_GRACE_MAX_MS;
}

/* Local deadline of a request (see mb_request in mbclient.h). */
static int64_t mbc_ask_deadline(const struct mbc *s, int timeout_ms)
{
	if (timeout_ms > 0)
		return mbc_deadline((long)timeout_ms + mbc_grace_ms(s));
	return mbc_deadline(timeout_ms == 0 ? MBC_REPLY_TIMEOUT_MS : MB_MAX_TIMEOUT_MS);
}

static int mbc_ask(mb_client *c, unsigned type, uint64_t pages, int timeout_ms,
		   uint64_t *granted)
{
	if (granted)
		*granted = 0;
	if (!mb_wire_count_ok(pages) || timeout_ms < -1 ||
	    timeout_ms > MB_MAX_TIMEOUT_MS)
		return MB_EINVAL;
	if (c == NULL)
		return MB_EINVAL;
	/* One deadline for the whole call, the wait for another thread's
	 * turn included: the server gets what that wait left of timeout_ms. */
	struct mbc *s;
	int64_t dl = mbc_ask_deadline(mbc_of(c), timeout_ms);
	int r = mbc_enter(c, &s, dl);
	if (r < 0)
		return r;
	if (s->kind == MB_CLIENT_OBSERVER)
		return mbc_leave(s, MB_EPERM);
	if (pages == 0)
		return mbc_leave(s, MB_OK);

	struct mb_msg m;
	mb_msg_init(&m, type, 0);
	m.w[MB_W_REQ_PAGES] = pages;
	m.w[MB_W_REQ_DEADLINE_MS] = MB_WIRE_NO_DEADLINE;
	if (timeout_ms > 0) {
		int64_t left = timeout_ms - s->lock_wait_ns / NS_PER_MS;
		m.w[MB_W_REQ_DEADLINE_MS] = left > 1 ? (uint64_t)left : 1;
	}
	pthread_mutex_lock(&s->wlock);
	m.seq = mbc_next_seq(s);
	s->call_answers = s->nanswers;
	uint32_t seq = m.seq;
	r = mbc_send_locked(s, &m);
	if (r == MB_OK) {
		s->req_seq = seq;
		s->req_inflight = 1;
	}
	pthread_mutex_unlock(&s->wlock);
	if (r < 0)
		return mbc_leave(s, mbc_fail(s, r));

	r = mbc_wait(s, seq, MB_MSG_GRANT, &m, dl);
	int timed_out = r == 0;
	if (r == 0) {
		/* The server let its own deadline pass: stop the request and
		 * give it a moment to say what became of it. */
		struct mb_msg k;
		mb_msg_init(&k, MB_MSG_CANCEL, 0);
		pthread_mutex_lock(&s->wlock);
		k.seq = mbc_next_seq(s);
		int w = mbc_send_locked(s, &k);
		pthread_mutex_unlock(&s->wlock);
		r = w < 0 ? w : mbc_wait(s, seq, MB_MSG_GRANT, &m,
					 mbc_deadline(mbc_grace_ms(s)));
		if (r == 0) {
			mb_log(MB_LOG_WARNING, "mbclient: broker did not answer %s in time",
			       mb_wire_type_name(type));
			mbc_drop(s);
			r = MB_ETIMEDOUT;
		}
	}
	pthread_mutex_lock(&s->wlock);
	s->req_inflight = 0;
	pthread_mutex_unlock(&s->wlock);
	if (r < 0)
		return mbc_leave(s, mbc_fail(s, r));
	r = mbc_grant(s, &m, type, pages, granted);
	/* Our own cancel after the deadline: the caller sees a timeout. */
	if (timed_out && r == MB_ECANCELED)
		r = MB_ETIMEDOUT;
	return mbc_leave(s, r);
}

MB_API int mb_request(mb_client *c, uint64_t pages, int timeout_ms,
		      uint64_t *granted)
{
	return mbc_ask(c, MB_MSG_REQUEST, pages, timeout_ms, granted);
}

MB_API int mb_reserve(mb_client *c, uint64_t pages, int timeout_ms,
		      uint64_t *granted)
{
	return mbc_ask(c, MB_MSG_RESERVE, pages, timeout_ms, granted);
}

MB_API int mb_return(mb_client *c, uint64_t pages)
{
	if (!mb_wire_count_ok(pages))
		return MB_EINVAL;
	struct mbc *s;
	int r = mbc_enter(c, &s, MBC_CALL_DEADLINE);
	if (r < 0)
		return r;
	if (s->kind == MB_CLIENT_OBSERVER)
		return mbc_leave(s, MB_EPERM);
	if (pages == 0)
		return mbc_leave(s, MB_OK);
	if (pages > mbc_can_give(s))
		return mbc_leave(s, MB_EOVERRETURN);
	struct mb_msg m;
	mb_msg_init(&m, MB_MSG_RETURN, 0);
	m.w[MB_W_RET_PAGES] = pages;
	r = mbc_call(s, &m, MB_MSG_RETURN_ACK);
	if (r == MB_OK && m.type == MB_MSG_ERROR)
		r = mbc_status_err(m.w[MB_W_ERR_STATUS]);
	else if (r == MB_OK) {
		r = mbc_status_err(m.w[MB_W_RETACK_STATUS]);
		if (mbc_adopt(s, m.w[MB_W_RETACK_BALANCE],
			      r == MB_OK ? -(int64_t)pages : 0) < 0)
			r = mbc_fail(s, MB_EPROTO);
	}
	return mbc_leave(s, r);
}

/* The handle's state, if it is open in this process (no lock taken). */
static int mbc_own(mb_client *c, struct mbc **sp)
{
	if (c == NULL)
		return MB_EINVAL;
	*sp = mbc_of(c);
	if ((*sp)->magic != MBC_MAGIC || (*sp)->pid != getpid())
		return MB_ENOTCONN;
	return MB_OK;
}

MB_API int mb_cancel(mb_client *c)
{
	struct mbc *s;
	int own = mbc_own(c, &s);
	if (own < 0)
		return own;
	/* Only the write lock: the request being cancelled holds s->lock. */
	pthread_mutex_lock(&s->wlock);
	int r = MB_EAGAIN;
	if (s->fd < 0) {
		r = MB_ENOTCONN;
	} else if (s->req_inflight) {
		struct mb_msg m;
		mb_msg_init(&m, MB_MSG_CANCEL, mbc_next_seq(s));
		r = mbc_send_locked(s, &m);
	}
	pthread_mutex_unlock(&s->wlock);
	return r;
}

MB_API int mb_query(mb_client *c, struct mb_info *out)
{
	if (out == NULL)
		return MB_EINVAL;
	struct mbc *s;
	int r = mbc_enter(c, &s, MBC_CALL_DEADLINE);
	if (r < 0)
		return r;
	struct mb_msg m;
	mb_msg_init(&m, MB_MSG_QUERY, 0);
	r = mbc_call(s, &m, MB_MSG_QUERY_REPLY);
	if (r == MB_OK)
		r = mbc_status_err(m.w[0]);
	if (r == MB_OK && mbc_adopt(s, m.w[MB_W_QR_BALANCE], 0) < 0)
		r = mbc_fail(s, MB_EPROTO);
	if (r == MB_OK) {
		s->total = m.w[MB_W_QR_TOTAL];
		out->page_size = m.w[MB_W_QR_PAGE_SIZE];
		out->pool = (int64_t)m.w[MB_W_QR_POOL];
		out->total = m.w[MB_W_QR_TOTAL];
		out->balance = s->balance;
		out->source_pages = m.w[MB_W_QR_SOURCE_PAGES];
		out->clients = m.w[MB_W_QR_CLIENTS];
		out->client_id = s->client_id;
	}
	return mbc_leave(s, r);
}

static void mbc_row(const struct mb_msg *m, struct mb_status_client *row)
{
	memset(row, 0, sizeof(*row));
	row->id = m->w[MB_W_SC_ID];
	row->pid = (int64_t)m->w[MB_W_SC_PID];
	row->uid = m->w[MB_W_SC_UID];
	row->kind = (enum mb_client_kind)m->w[MB_W_SC_KIND];
	row->balance = (int64_t)m->w[MB_W_SC_BALANCE];
	row->source_pages = m->w[MB_W_SC_SOURCE_PAGES];
	switch (m->w[MB_W_SC_REQ_TYPE]) {
	case MB_MSG_REQUEST: row->req_type = 1; break;
	case MB_MSG_RESERVE: row->req_type = 2; break;
	default: row->req_type = 0; break;
	}
	row->req_pages = m->w[MB_W_SC_REQ_PAGES];
	row->req_acquired = m->w[MB_W_SC_REQ_ACQUIRED];
	row->req_age_ms = m->w[MB_W_SC_REQ_AGE_MS];
	row->share_urgency = m->w[MB_W_SC_SHARE_URG] == 0 ? -1 :
		(int)(m->w[MB_W_SC_SHARE_URG] - 1);
	row->share_pages = m->w[MB_W_SC_SHARE_PAGES];
	row->share_age_ms = m->w[MB_W_SC_SHARE_AGE_MS];
	mb_wire_get_comm(&m->w[MB_W_SC_COMM], row->comm);
	uint64_t priv = m->w[MB_W_SC_PRIVATE];
	row->private_known = (priv & MB_SC_PRIVATE_MASK) != MB_SC_PRIVATE_UNKNOWN;
	row->private_bytes = row->private_known ? priv & MB_SC_PRIVATE_MASK : 0;
	row->dishonoured = (priv & MB_SC_DISHONOURED) != 0;
}

static int mbc_row_ok(const struct mb_msg *m)
{
	uint64_t t = m->w[MB_W_SC_REQ_TYPE];
	return m->w[MB_W_SC_KIND] < MB_KIND_COUNT &&
	       m->w[MB_W_SC_SHARE_URG] <= MB_URG_COUNT &&
	       (t == 0 || t == MB_MSG_REQUEST || t == MB_MSG_RESERVE);
}

MB_API int mb_status(mb_client *c, struct mb_status_head *head,
		     mb_status_row_fn row, void *arg)
{
	struct mbc *s;
	int r = mbc_enter(c, &s, MBC_CALL_DEADLINE);
	if (r < 0)
		return r;
	struct mb_msg m;
	mb_msg_init(&m, MB_MSG_STATUS, 0);
	r = mbc_call(s, &m, MB_MSG_STATUS_HEAD);
	if (r == MB_OK)
		r = mbc_status_err(m.w[0]);
	if (r < 0)
		return mbc_leave(s, r);
	uint32_t seq = m.seq;
	if (head) {
		head->pool = (int64_t)m.w[MB_W_SH_POOL];
		head->total = m.w[MB_W_SH_TOTAL];
		head->initial = m.w[MB_W_SH_INITIAL];
		head->page_size = m.w[MB_W_SH_PAGE_SIZE];
		head->clients = m.w[MB_W_SH_CLIENTS];
		head->queued = m.w[MB_W_SH_QUEUED];
		head->uptime_ms = m.w[MB_W_SH_UPTIME_MS];
	}
	/* Rows, then END; every row is read even after row() says stop. */
	int stop = 0;
	for (;;) {
		int w = mbc_read_frame(s, &m, mbc_deadline(s->call_timeout_ms));
		if (w == 0) {
			mbc_drop(s);
			return mbc_leave(s, MB_ETIMEDOUT);
		}
		if (w < 0)
			return mbc_leave(s, w);
		if (m.seq == seq && m.type == MB_MSG_STATUS_END)
			break;
		if (m.seq == seq && m.type == MB_MSG_STATUS_CLIENT) {
			if (!mbc_row_ok(&m))
				return mbc_leave(s, mbc_fail(s, MB_EPROTO));
			if (row && !stop) {
				struct mb_status_client rc;
				mbc_row(&m, &rc);
				stop = row(arg, &rc);
			}
			continue;
		}
		w = mbc_unsolicited(s, &m);
		if (w == 0)
			w = MB_EPROTO;
		if (w < 0)
			return mbc_leave(s, mbc_fail(s, w));
	}
	return mbc_leave(s, mbc_status_err(m.w[MB_W_SE_STATUS]));
}

MB_API int mb_subscribe(mb_client *c, unsigned mask)
{
	if (mask & ~(unsigned)MB_EVENT_ALL)
		return MB_EINVAL;
	struct mbc *s;
	int r = mbc_enter(c, &s, MBC_CALL_DEADLINE);
	if (r < 0)
		return r;
	struct mb_msg m;
	mb_msg_init(&m, MB_MSG_SUBSCRIBE, 0);
	m.w[MB_W_SUB_MASK] = mask;
	r = mbc_call(s, &m, MB_MSG_SUBSCRIBE_ACK);
	if (r == MB_OK)
		r = mbc_status_err(m.w[0]);
	if (r == MB_OK)
		s->sub_mask = mask;
	return mbc_leave(s, r);
}

static int mbc_control(mb_client *c, uint64_t op, uint64_t mark, uint64_t unit,
		       uint64_t value, struct mb_memstate *out)
{
	struct mbc *s;
	int r = mbc_enter(c, &s, MBC_CALL_DEADLINE);
	if (r < 0)
		return r;
	struct mb_msg m;
	mb_msg_init(&m, MB_MSG_CONTROL, 0);
	m.w[MB_W_CTL_OP] = op;
	m.w[MB_W_CTL_MARK] = mark;
	m.w[MB_W_CTL_UNIT] = unit;
	m.w[MB_W_CTL_VALUE] = value;
	r = mbc_call(s, &m, MB_MSG_CONTROL_ACK);
	if (r == MB_OK)
		r = mbc_status_err(m.w[0]);
	if (r == MB_OK && m.type != MB_MSG_CONTROL_ACK)
		r = MB_EPROTO;
	if (r == MB_OK && out) {
		out->level = (enum mb_mem_level)m.w[MB_W_CA_STATE];
		out->source = (int)m.w[MB_W_CA_SOURCE];
		out->device_total = m.w[MB_W_CA_DEV_TOTAL];
		out->device_used = m.w[MB_W_CA_DEV_USED];
		for (unsigned i = 0; i < MB_MARK_COUNT; i++)
			out->mark[i] = m.w[MB_W_CA_NOTIFY_HIGH + i];
		out->lendable = m.w[MB_W_CA_LENDABLE];
		out->lent = m.w[MB_W_CA_LENT];
		out->rate = (int64_t)m.w[MB_W_CA_RATE];
		out->estimate_ms = m.w[MB_W_CA_ESTIMATE_MS];
		out->overuse_percent = m.w[MB_W_CA_OVERUSE_PCT];
		out->poll_ms = m.w[MB_W_CA_POLL_MS];
	}
	return mbc_leave(s, r);
}

MB_API int mb_memstate(mb_client *c, struct mb_memstate *out)
{
	if (out == NULL)
		return MB_EINVAL;
	return mbc_control(c, MB_CTL_GET, 0, 0, 0, out);
}

MB_API int mb_set_mark(mb_client *c, enum mb_mark mark, enum mb_mark_unit unit,
		       uint64_t value, struct mb_memstate *out)
{
	if ((unsigned)mark >= MB_MARK_COUNT || (unsigned)unit > MB_MARK_OFF)
		return MB_EINVAL;
	return mbc_control(c, MB_CTL_SET, mark, unit, value, out);
}

MB_API int mb_fd(const mb_client *c)
{
	if (c == NULL)
		return MB_EINVAL;
	const struct mbc *s = mbc_cof(c);
	if (s->magic != MBC_MAGIC || s->pid != getpid())
		return MB_ENOTCONN;
	int fd = __atomic_load_n(&s->fd, __ATOMIC_RELAXED);
	return fd < 0 || !__atomic_load_n(&s->up, __ATOMIC_RELAXED) ? MB_ENOTCONN : fd;
}

MB_API int mb_reconnect(mb_client *c)
{
	struct mbc *s;
	int r = mbc_own(c, &s);
	if (r < 0)
		return r;
	r = mbc_lock(s, mbc_deadline(s->call_timeout_ms));
	if (r < 0)
		return r;
	if (s->fd < 0) {
		int64_t now = mbc_now_ns();
		if (now < __atomic_load_n(&s->retry_at, __ATOMIC_RELAXED)) {
			pthread_mutex_unlock(&s->lock);
			return MB_EAGAIN;
		}
		r = mbc_connect(s);
		if (r < 0) {
			__atomic_store_n(&s->retry_at,
					 now + (int64_t)MB_RECONNECT_INTERVAL_MS * NS_PER_MS,
					 __ATOMIC_RELAXED);
			pthread_mutex_unlock(&s->lock);
			return r;
		}
		mb_log(MB_LOG_INFO, "mbclient: reconnected to %s", s->path);
	}
	return mbc_leave(s, r);
}

MB_API int mb_reconnect_ms(const mb_client *c)
{
	if (c == NULL)
		return MB_EINVAL;
	const struct mbc *s = mbc_cof(c);
	if (s->magic != MBC_MAGIC || s->pid != getpid())
		return MB_ENOTCONN;
	if (__atomic_load_n(&s->fd, __ATOMIC_RELAXED) >= 0)
		return -1;
	return mbc_poll_ms(__atomic_load_n(&s->retry_at, __ATOMIC_RELAXED));
}

MB_API int mb_dispatch(mb_client *c, int timeout_ms)
{
	if (timeout_ms < -1)
		return MB_EINVAL;
	struct mbc *s;
	int64_t deadline = mbc_deadline(timeout_ms);
	int r = mbc_enter(c, &s, deadline);
	if (r < 0)
		return r;
	int n = 0;
	for (;;) {
		struct mb_msg m;
		/* After the first message, take only what is already here. */
		r = mbc_read_frame(s, &m, n > 0 ? mbc_now_ns() : deadline);
		if (r == 0)
			break;
		if (r < 0)
			return mbc_leave(s, r);
		r = mbc_unsolicited(s, &m);
		if (r == 0) {
			mb_log(MB_LOG_WARNING, "mbclient: unexpected %s (seq %u) from the broker",
			       mb_wire_type_name(m.type), (unsigned)m.seq);
			r = MB_EPROTO;
		}
		if (r < 0)
			return mbc_leave(s, mbc_fail(s, r));
		n++;
	}
	return mbc_leave(s, n > 0 ? n : MB_EAGAIN);
}

MB_API uint64_t mb_page_size(const mb_client *c)
{
	if (c == NULL || mbc_cof(c)->magic != MBC_MAGIC)
		return 0;
	return __atomic_load_n(&mbc_cof(c)->page_size, __ATOMIC_RELAXED);
}

MB_API int64_t mb_balance(const mb_client *c)
{
	if (c == NULL || mbc_cof(c)->magic != MBC_MAGIC)
		return 0;
	return __atomic_load_n(&mbc_cof(c)->balance, __ATOMIC_RELAXED);
}

MB_API int mb_is_open(const mb_client *c)
{
	if (c == NULL)
		return 0;
	const struct mbc *s = mbc_cof(c);
	return s->magic == MBC_MAGIC && s->pid == getpid() &&
	       __atomic_load_n(&s->fd, __ATOMIC_RELAXED) >= 0 &&
	       __atomic_load_n(&s->up, __ATOMIC_RELAXED);
}

static const char *const mbc_errors[] = {
	[0] = "success",
	[-MB_EINVAL] = "invalid argument",
	[-MB_ECONNECT] = "cannot connect to the memory broker",
	[-MB_ECONNLOST] = "connection to the memory broker lost",
	[-MB_EPROTO] = "protocol error",
	[-MB_EVERSION] = "protocol version not supported",
	[-MB_EDENIED] = "request denied",
	[-MB_ETIMEDOUT] = "timed out",
	[-MB_ECANCELED] = "request cancelled",
	[-MB_EBUSY] = "a request is already pending",
	[-MB_EPERM] = "not permitted",
	[-MB_EOVERRETURN] = "returning more than held",
	[-MB_ECAP] = "per-client cap reached",
	[-MB_ENOTCONN] = "not connected",
	[-MB_ESHUTDOWN] = "the memory broker is shutting down",
	[-MB_EAGAIN] = "nothing to do now",
	[-MB_ESYS] = "system call failed",
	[-MB_ELOWMEM] = "refused: memory is low",
};

/* The library links its own private copy of the log writer. */
MB_API void mb_set_log(int fd, int level)
{
	mb_log_init("", fd, level);
}

MB_API const char *mb_strerror(int err)
{
	if (err > 0 || -err >= (int)(sizeof(mbc_errors) / sizeof(mbc_errors[0])) ||
	    mbc_errors[-err] == NULL)
		return "unknown error";
	return mbc_errors[-err];
}
