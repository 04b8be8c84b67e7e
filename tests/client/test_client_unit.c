/*
 * Unit tests of libmbclient without a broker: a scripted peer thread
 * listens on a private socket, speaks the wire format through mb_wire and
 * checks every frame the library sends.
 */
#include <config.h>

#include "mbclient.h"
#include "mb_wire.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define TOTAL 1000

struct peer;
typedef void (*script_fn)(struct peer *);

struct peer {
	char dir[64];
	char path[108];
	int lfd;
	int fd;
	pthread_t th;
	script_fn script;
	int failed;       /* the script saw something it did not expect */
	char why[128];
	uint32_t sseq;    /* server-side sequence for unsolicited frames */
	unsigned char buf[4096];
	size_t len;
	/* what the script learned, for the test to check */
	struct mb_msg hello;
	uint64_t answer;
	unsigned answers;
};

#define PEER_CHECK(p, cond) do { \
	if (!(cond)) { \
		if (!(p)->failed) \
			snprintf((p)->why, sizeof((p)->why), "line %d: %s", __LINE__, #cond); \
		(p)->failed = 1; \
	} } while (0)

/* Blocking read of one frame; 0 on success, -1 on EOF or a bad frame. */
static int peer_recv(struct peer *p, struct mb_msg *m)
{
	for (;;) {
		int n = mb_wire_decode(p->buf, p->len, m);
		if (n > 0) {
			p->len -= (size_t)n;
			memmove(p->buf, p->buf + n, p->len);
			return 0;
		}
		if (n < 0)
			return -1;
		ssize_t got = read(p->fd, p->buf + p->len, sizeof(p->buf) - p->len);
		if (got <= 0) {
			if (got < 0 && errno == EINTR)
				continue;
			return -1;
		}
		p->len += (size_t)got;
	}
}

static void peer_send(struct peer *p, const struct mb_msg *m)
{
	unsigned char b[MB_WIRE_MAX_FRAME];
	int n = mb_wire_encode(m, b, sizeof(b));
	PEER_CHECK(p, n > 0);
	PEER_CHECK(p, write(p->fd, b, (size_t)n) == n);
}

static void peer_reply(struct peer *p, unsigned type, uint32_t seq,
		       uint64_t w0, uint64_t w1, uint64_t w2)
{
	struct mb_msg m;
	mb_msg_init(&m, type, seq);
	m.w[0] = w0;
	m.w[1] = w1;
	m.w[2] = w2;
	peer_send(p, &m);
}

static void peer_accept(struct peer *p)
{
	p->fd = accept(p->lfd, NULL, NULL);
	p->len = 0;
	PEER_CHECK(p, p->fd >= 0);
}

/* Accept a connection and acknowledge its HELLO. */
static void peer_hello(struct peer *p)
{
	peer_accept(p);
	struct mb_msg m;
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_HELLO);
	p->hello = m;
	struct mb_msg a;
	mb_msg_init(&a, MB_MSG_HELLO_ACK, m.seq);
	a.w[MB_W_ACK_STATUS] = MB_ST_OK;
	a.w[MB_W_ACK_VERSION] = MB_WIRE_VERSION;
	a.w[MB_W_ACK_PAGE_SIZE] = PAGE;
	a.w[MB_W_ACK_TOTAL] = TOTAL;
	a.w[MB_W_ACK_CLIENT_ID] = 7;
	a.w[MB_W_ACK_POOL] = TOTAL;
	peer_send(p, &a);
}

/* Expect TERMINATE and acknowledge it, then close. */
static void peer_bye(struct peer *p)
{
	struct mb_msg m;
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_TERMINATE);
	peer_reply(p, MB_MSG_TERMINATE_ACK, m.seq, MB_ST_OK, 0, 0);
	close(p->fd);
	p->fd = -1;
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	p->script(p);
	if (p->fd >= 0)
		close(p->fd);
	return NULL;
}

static void peer_start(struct peer *p, script_fn script)
{
	memset(p, 0, sizeof(*p));
	p->fd = -1;
	strcpy(p->dir, "/tmp/mbcunit.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(p->dir));
	snprintf(p->path, sizeof(p->path), "%s/s", p->dir);
	p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(p->lfd, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, p->path);
	ck_assert_int_eq(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(p->lfd, 8), 0);
	p->script = script;
	ck_assert_int_eq(pthread_create(&p->th, NULL, peer_main, p), 0);
}

static void peer_finish(struct peer *p)
{
	pthread_join(p->th, NULL);
	close(p->lfd);
	unlink(p->path);
	rmdir(p->dir);
	ck_assert_msg(!p->failed, "peer: %s", p->why);
}

static uint64_t share_pages = 0;
static enum mb_client_urgency share_urg;
static unsigned share_calls;

static uint64_t give_back(void *arg, enum mb_client_urgency urg, uint64_t pages)
{
	(void)arg;
	share_calls++;
	share_urg = urg;
	return pages < share_pages ? pages : share_pages;
}

static void opts(struct mb_options *o, struct peer *p, enum mb_client_kind kind)
{
	memset(o, 0, sizeof(*o));
	o->socket_path = p->path;
	o->kind = kind;
	o->name = "unit";
	if (kind == MB_CLIENT_BIDI || kind == MB_CLIENT_SOURCE)
		o->share = give_back;
}

/* --- open and close --- */

static void s_open_close(struct peer *p)
{
	peer_hello(p);
	peer_bye(p);
}

START_TEST(open_close)
{
	struct peer p;
	peer_start(&p, s_open_close);
	mb_client c;
	struct mb_options o;
	opts(&o, &p, MB_CLIENT_SINK);
	ck_assert_int_eq(mb_open(&c, &o), MB_OK);
	ck_assert_int_eq(mb_is_open(&c), 1);
	ck_assert_uint_eq(mb_page_size(&c), PAGE);
	ck_assert_int_ge(mb_fd(&c), 0);
	ck_assert_int_eq(mb_close(&c), MB_OK);
	ck_assert_int_eq(mb_is_open(&c), 0);
	ck_assert_int_eq(mb_fd(&c), MB_ENOTCONN);
	peer_finish(&p);
	ck_assert_uint_eq(p.hello.w[MB_W_HELLO_VERSION], MB_WIRE_VERSION);
	ck_assert_uint_eq(p.hello.w[MB_W_HELLO_KIND], MB_KIND_SINK);
	char comm[MB_WIRE_COMM_WORDS * 8 + 1];
	mb_wire_get_comm(&p.hello.w[MB_W_HELLO_COMM], comm);
	ck_assert_str_eq(comm, "unit");
	/* Calls on a closed handle, and a second close, fail cleanly. */
	uint64_t g;
	ck_assert_int_eq(mb_request(&c, 1, 0, &g), MB_ENOTCONN);
	ck_assert_int_eq(mb_close(&c), MB_ENOTCONN);
}
END_TEST

START_TEST(bad_arguments)
{
	mb_client c;
	struct mb_options o = { .socket_path = "/nonexistent/x", .kind = MB_CLIENT_BIDI };
	ck_assert_int_eq(mb_open(NULL, &o), MB_EINVAL);
	ck_assert_int_eq(mb_open(&c, NULL), MB_EINVAL);
	/* bidi without a give-back callback */
	ck_assert_int_eq(mb_open(&c, &o), MB_EINVAL);
	o.kind = MB_CLIENT_SINK;
	o.source_pages = 5; /* only a source declares pages */
	ck_assert_int_eq(mb_open(&c, &o), MB_EINVAL);
	o.source_pages = 0;
	o.kind = (enum mb_client_kind)9;
	ck_assert_int_eq(mb_open(&c, &o), MB_EINVAL);
	o.kind = MB_CLIENT_SINK;
	ck_assert_int_eq(mb_open(&c, &o), MB_ECONNECT);
	/* The handle stays usable: calls retry the connection. */
	uint64_t g = 99;
	ck_assert_int_eq(mb_request(&c, 1, 0, &g), MB_ECONNECT);
	ck_assert_uint_eq(g, 0);
	ck_assert_int_eq(mb_request(&c, MB_WIRE_MAX_PAGES + 1, 0, &g), MB_EINVAL);
	ck_assert_int_eq(mb_request(&c, 1, -2, &g), MB_EINVAL);
	ck_assert_int_eq(mb_close(&c), MB_OK);
	ck_assert_int_eq(mb_request(NULL, 1, 0, &g), MB_EINVAL);
	ck_assert_int_eq(mb_query(NULL, NULL), MB_EINVAL);
	ck_assert_int_eq(mb_fd(NULL), MB_EINVAL);
}
END_TEST

/* --- request, reserve, return --- */

static void s_request(struct peer *p)
{
	struct mb_msg m;
	peer_hello(p);
	/* partial REQUEST */
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_REQUEST && m.w[MB_W_REQ_PAGES] == 5);
	PEER_CHECK(p, m.w[MB_W_REQ_DEADLINE_MS] == MB_WIRE_NO_DEADLINE);
	peer_reply(p, MB_MSG_GRANT, m.seq, MB_ST_OK, 3, 3);
	/* full REQUEST with a deadline */
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_REQUEST && m.w[MB_W_REQ_DEADLINE_MS] == 250);
	peer_reply(p, MB_MSG_GRANT, m.seq, MB_ST_OK, 4, 7);
	/* RESERVE denied */
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_RESERVE && m.w[MB_W_REQ_PAGES] == 900);
	peer_reply(p, MB_MSG_GRANT, m.seq, MB_ST_DENIED, 0, 7);
	/* RESERVE granted */
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_RESERVE && m.w[MB_W_REQ_PAGES] == 10);
	peer_reply(p, MB_MSG_GRANT, m.seq, MB_ST_OK, 10, 17);
	/* RETURN */
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_RETURN && m.w[MB_W_RET_PAGES] == 7);
	peer_reply(p, MB_MSG_RETURN_ACK, m.seq, MB_ST_OK, 10, 0);
	/* a RETURN the server refuses */
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_RETURN && m.w[MB_W_RET_PAGES] == 10);
	peer_reply(p, MB_MSG_RETURN_ACK, m.seq, MB_ST_OVERRETURN, 10, 0);
	/* QUERY */
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_QUERY);
	struct mb_msg q;
	mb_msg_init(&q, MB_MSG_QUERY_REPLY, m.seq);
	q.w[MB_W_QR_STATUS] = MB_ST_OK;
	q.w[MB_W_QR_POOL] = (uint64_t)-5;
	q.w[MB_W_QR_TOTAL] = TOTAL;
	q.w[MB_W_QR_BALANCE] = 10;
	q.w[MB_W_QR_PAGE_SIZE] = PAGE;
	q.w[MB_W_QR_CLIENTS] = 3;
	peer_send(p, &q);
	peer_bye(p);
}

START_TEST(request_reserve_return_query)
{
	struct peer p;
	peer_start(&p, s_request);
	mb_client c;
	struct mb_options o;
	opts(&o, &p, MB_CLIENT_SINK);
	ck_assert_int_eq(mb_open(&c, &o), MB_OK);
	uint64_t g;
	ck_assert_int_eq(mb_request(&c, 0, 0, &g), MB_OK); /* no I/O */
	ck_assert_uint_eq(g, 0);
	ck_assert_int_eq(mb_request(&c, 5, 0, &g), MB_OK);
	ck_assert_uint_eq(g, 3);
	ck_assert_int_eq(mb_balance(&c), 3);
	ck_assert_int_eq(mb_request(&c, 4, 250, &g), MB_OK);
	ck_assert_uint_eq(g, 4);
	ck_assert_int_eq(mb_reserve(&c, 900, -1, &g), MB_EDENIED);
	ck_assert_uint_eq(g, 0);
	ck_assert_int_eq(mb_reserve(&c, 10, 0, &g), MB_OK);
	ck_assert_uint_eq(g, 10);
	ck_assert_int_eq(mb_balance(&c), 17);
	/* over-return caught locally, without I/O */
	ck_assert_int_eq(mb_return(&c, 18), MB_EOVERRETURN);
	ck_assert_int_eq(mb_return(&c, 0), MB_OK);
	ck_assert_int_eq(mb_return(&c, 7), MB_OK);
	ck_assert_int_eq(mb_balance(&c), 10);
	ck_assert_int_eq(mb_return(&c, 10), MB_EOVERRETURN);
	ck_assert_int_eq(mb_balance(&c), 10);
	struct mb_info info;
	ck_assert_int_eq(mb_query(&c, &info), MB_OK);
	ck_assert_int_eq(info.pool, -5);
	ck_assert_uint_eq(info.total, TOTAL);
	ck_assert_int_eq(info.balance, 10);
	ck_assert_uint_eq(info.clients, 3);
	ck_assert_uint_eq(info.client_id, 7);
	ck_assert_int_eq(mb_close(&c), MB_OK);
	peer_finish(&p);
}
END_TEST

/* --- give-back inside a blocking call --- */

static void s_share_in_request(struct peer *p)
{
	struct mb_msg m, a;
	peer_hello(p);
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_REQUEST);
	peer_reply(p, MB_MSG_GRANT, m.seq, MB_ST_OK, 20, 20);
	/* Second request: ask the client to share before answering it. */
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_RESERVE && m.w[MB_W_REQ_PAGES] == 30);
	peer_reply(p, MB_MSG_SHARE_QUERY, 900, MB_URG_RESERVE, 12, 1000);
	PEER_CHECK(p, peer_recv(p, &a) == 0);
	PEER_CHECK(p, a.type == MB_MSG_SHARE_ANSWER && a.seq == 900);
	p->answer = a.w[MB_W_ANS_PAGES];
	/* A repay and an event on the way, then the grant. */
	peer_reply(p, MB_MSG_EVENT, 901, MB_EV_POOL_LOW, (uint64_t)-2, TOTAL);
	peer_reply(p, MB_MSG_GRANT, m.seq, MB_ST_OK, 30, 42);
	peer_bye(p);
}

static unsigned events_seen;
static int64_t event_pool;

static void on_event(void *arg, unsigned ev, int64_t pool, uint64_t total,
		     uint64_t value)
{
	(void)arg;
	(void)total;
	(void)value;
	if (ev == MB_EVENT_POOL_LOW)
		events_seen++;
	event_pool = pool;
}

START_TEST(share_inside_request)
{
	struct peer p;
	peer_start(&p, s_share_in_request);
	mb_client c;
	struct mb_options o;
	opts(&o, &p, MB_CLIENT_BIDI);
	o.event = on_event;
	share_pages = 8;
	share_calls = 0;
	events_seen = 0;
	ck_assert_int_eq(mb_open(&c, &o), MB_OK);
	uint64_t g;
	ck_assert_int_eq(mb_request(&c, 20, 0, &g), MB_OK);
	ck_assert_uint_eq(g, 20);
	ck_assert_int_eq(mb_reserve(&c, 30, -1, &g), MB_OK);
	ck_assert_uint_eq(g, 30);
	ck_assert_uint_eq(share_calls, 1);
	ck_assert_int_eq(share_urg, MB_URGENCY_RESERVE);
	ck_assert_uint_eq(events_seen, 1);
	ck_assert_int_eq(event_pool, -2);
	ck_assert_int_eq(mb_balance(&c), 42);
	ck_assert_int_eq(mb_close(&c), MB_OK);
	peer_finish(&p);
	ck_assert_uint_eq(p.answer, 8);
}
END_TEST

/* --- give-back through mb_fd + mb_dispatch, source repay --- */

static void s_dispatch(struct peer *p)
{
	struct mb_msg m, a;
	peer_hello(p);
	/* Two queries in one write: the second must not be stranded in the
	 * library's buffer. */
	struct mb_msg q1, q2;
	unsigned char b[2 * MB_WIRE_MAX_FRAME];
	mb_msg_init(&q1, MB_MSG_SHARE_QUERY, 500);
	q1.w[MB_W_SQ_URGENCY] = MB_URG_REQUEST;
	q1.w[MB_W_SQ_PAGES] = 4;
	mb_msg_init(&q2, MB_MSG_SHARE_QUERY, 501);
	q2.w[MB_W_SQ_URGENCY] = MB_URG_REQUEST;
	q2.w[MB_W_SQ_PAGES] = 50;
	int n1 = mb_wire_encode(&q1, b, sizeof(b));
	int n2 = mb_wire_encode(&q2, b + n1, sizeof(b) - (size_t)n1);
	PEER_CHECK(p, write(p->fd, b, (size_t)(n1 + n2)) == n1 + n2);
	PEER_CHECK(p, peer_recv(p, &a) == 0);
	PEER_CHECK(p, a.type == MB_MSG_SHARE_ANSWER && a.seq == 500 &&
		   a.w[MB_W_ANS_PAGES] == 4);
	PEER_CHECK(p, peer_recv(p, &a) == 0);
	/* A source may give its own pages: 10 declared, 6 left after 4. */
	PEER_CHECK(p, a.type == MB_MSG_SHARE_ANSWER && a.seq == 501 &&
		   a.w[MB_W_ANS_PAGES] == 6);
	peer_reply(p, MB_MSG_REPAY, 502, 3, (uint64_t)-7, 0);
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_TERMINATE);
	peer_reply(p, MB_MSG_TERMINATE_ACK, m.seq, MB_ST_OK, 0, 0);
}

static uint64_t repaid;

static void on_repay(void *arg, uint64_t pages)
{
	(void)arg;
	repaid += pages;
}

START_TEST(dispatch_loop)
{
	struct peer p;
	peer_start(&p, s_dispatch);
	mb_client c;
	struct mb_options o;
	opts(&o, &p, MB_CLIENT_SOURCE);
	o.source_pages = 10;
	o.repay = on_repay;
	share_pages = 1000;
	share_calls = 0;
	repaid = 0;
	ck_assert_int_eq(mb_open(&c, &o), MB_OK);
	ck_assert_int_eq(mb_dispatch(&c, 0) == MB_EAGAIN || share_calls > 0, 1);
	while (share_calls < 2) {
		struct pollfd pf = { .fd = mb_fd(&c), .events = POLLIN };
		ck_assert_int_eq(poll(&pf, 1, 5000), 1);
		ck_assert_int_ge(mb_dispatch(&c, 0), 1);
	}
	while (repaid == 0)
		ck_assert_int_ge(mb_dispatch(&c, -1), 1); /* waits for the repay */
	ck_assert_uint_eq(repaid, 3);
	ck_assert_int_eq(mb_balance(&c), -7);
	ck_assert_int_eq(mb_close(&c), MB_OK);
	peer_finish(&p);
}
END_TEST

/* --- cancel from another thread --- */

static void s_cancel(struct peer *p)
{
	struct mb_msg m, k;
	peer_hello(p);
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_RESERVE);
	PEER_CHECK(p, peer_recv(p, &k) == 0);
	PEER_CHECK(p, k.type == MB_MSG_CANCEL);
	peer_reply(p, MB_MSG_CANCEL_ACK, k.seq, MB_ST_OK, 0, 0);
	peer_reply(p, MB_MSG_GRANT, m.seq, MB_ST_CANCELED, 0, 0);
	peer_bye(p);
}

struct canceller {
	mb_client *c;
	int rc;
};

static void *cancel_main(void *arg)
{
	struct canceller *k = arg;
	/* Retry until the request is on the wire. */
	for (int i = 0; i < 5000; i++) {
		k->rc = mb_cancel(k->c);
		if (k->rc != MB_EAGAIN)
			break;
		usleep(1000);
	}
	return NULL;
}

START_TEST(cancel_from_thread)
{
	struct peer p;
	peer_start(&p, s_cancel);
	mb_client c;
	struct mb_options o;
	opts(&o, &p, MB_CLIENT_SINK);
	ck_assert_int_eq(mb_open(&c, &o), MB_OK);
	ck_assert_int_eq(mb_cancel(&c), MB_EAGAIN); /* nothing pending */
	struct canceller k = { &c, 1 };
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, cancel_main, &k), 0);
	uint64_t g = 5;
	ck_assert_int_eq(mb_reserve(&c, 100, -1, &g), MB_ECANCELED);
	ck_assert_uint_eq(g, 0);
	pthread_join(th, NULL);
	ck_assert_int_eq(k.rc, MB_OK);
	ck_assert_int_eq(mb_close(&c), MB_OK);
	peer_finish(&p);
}
END_TEST

/* --- timeouts: a server that says nothing --- */

static void s_silent(struct peer *p)
{
	struct mb_msg m;
	peer_hello(p);
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_REQUEST && m.w[MB_W_REQ_DEADLINE_MS] == 50);
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_CANCEL);
	/* Say nothing: the library gives up and drops the connection. */
	PEER_CHECK(p, peer_recv(p, &m) == -1);
	close(p->fd);
	/* The next call reconnects. */
	peer_hello(p);
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_RESERVE);
	peer_reply(p, MB_MSG_GRANT, m.seq, MB_ST_TIMEDOUT, 0, 0);
	peer_bye(p);
}

START_TEST(timeouts)
{
	struct peer p;
	peer_start(&p, s_silent);
	mb_client c;
	struct mb_options o;
	opts(&o, &p, MB_CLIENT_SINK);
	ck_assert_int_eq(mb_open(&c, &o), MB_OK);
	uint64_t g;
	ck_assert_int_eq(mb_request(&c, 5, 50, &g), MB_ETIMEDOUT);
	ck_assert_int_eq(mb_is_open(&c), 0);
	ck_assert_int_eq(mb_reserve(&c, 5, 50, &g), MB_ETIMEDOUT);
	ck_assert_int_eq(mb_is_open(&c), 1);
	ck_assert_int_eq(mb_close(&c), MB_OK);
	peer_finish(&p);
}
END_TEST

/* --- defect 2: a broker that accepts, says HELLO_ACK, then never answers --- */

#define STALL_CALL_MS 200

/* Every connection: HELLO, then read whatever comes and never answer. */
static void s_stalled(struct peer *p)
{
	for (int i = 0; i < 3; i++) {
		struct mb_msg m;
		peer_hello(p);
		while (peer_recv(p, &m) == 0)
			;
		close(p->fd);
		p->fd = -1;
	}
}

START_TEST(stalled_broker_deadlines)
{
	struct peer p;
	peer_start(&p, s_stalled);
	mb_client c;
	struct mb_options o;
	opts(&o, &p, MB_CLIENT_SINK);
	o.call_timeout_ms = STALL_CALL_MS;
	ck_assert_int_eq(mb_open(&c, &o), MB_OK);
	uint64_t g = 1;
	/* Timeout 0 ("the broker's default") used to wait for ever. */
	ck_assert_int_eq(mb_request(&c, 5, 0, &g), MB_ETIMEDOUT);
	ck_assert_uint_eq(g, 0);
	ck_assert_int_eq(mb_is_open(&c), 0);
	ck_assert_int_eq(mb_request(&c, 5, 100, &g), MB_ETIMEDOUT);
	ck_assert_int_eq(mb_is_open(&c), 0);
	struct mb_info i;
	ck_assert_int_eq(mb_query(&c, &i), MB_ETIMEDOUT);
	ck_assert_int_eq(mb_is_open(&c), 0);
	ck_assert_int_eq(mb_close(&c), MB_OK);
	peer_finish(&p);
}
END_TEST

/* --- claims after every HELLO, and reconnecting an idle client --- */

static unsigned claims_asked;

static uint64_t claim_held(void *arg)
{
	(void)arg;
	claims_asked++;
	return 40;
}

static void s_claim(struct peer *p)
{
	struct mb_msg m;
	peer_hello(p);
	PEER_CHECK(p, (p->hello.w[MB_W_HELLO_FLAGS] & MB_HELLO_KEEP) != 0);
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_CLAIM && m.w[MB_W_CLAIM_PAGES] == 40);
	peer_reply(p, MB_MSG_CLAIM_ACK, m.seq, MB_ST_CLAIM_PARTIAL, 25, 0);
	/* The broker goes away... */
	close(p->fd);
	p->fd = -1;
	/* ...and comes back: the client reconnects and claims again. */
	peer_hello(p);
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_CLAIM && m.w[MB_W_CLAIM_PAGES] == 40);
	peer_reply(p, MB_MSG_CLAIM_ACK, m.seq, MB_ST_OK, 40, 0);
	peer_bye(p);
}

START_TEST(claim_and_reconnect)
{
	struct peer p;
	peer_start(&p, s_claim);
	claims_asked = 0;
	mb_client c;
	struct mb_options o;
	opts(&o, &p, MB_CLIENT_BIDI);
	o.flags = MB_OPEN_KEEP;
	o.claim = claim_held;
	ck_assert_int_eq(mb_open(&c, &o), MB_OK);
	ck_assert_int_eq(mb_balance(&c), 25);
	ck_assert_int_eq(mb_reconnect_ms(&c), -1);
	ck_assert_int_eq(mb_reconnect(&c), MB_OK);
	/* An idle client notices the loss in its loop. */
	ck_assert_int_eq(mb_dispatch(&c, 5000), MB_ECONNLOST);
	ck_assert_int_eq(mb_fd(&c), MB_ENOTCONN);
	ck_assert_int_eq(mb_balance(&c), 0);
	ck_assert_int_eq(mb_reconnect_ms(&c), 0);
	ck_assert_int_eq(mb_reconnect(&c), MB_OK);
	ck_assert_int_ge(mb_fd(&c), 0);
	ck_assert_int_eq(mb_balance(&c), 40);
	ck_assert_uint_eq(claims_asked, 2);
	ck_assert_int_eq(mb_close(&c), MB_OK);
	peer_finish(&p);
	/* Nobody listens: attempts are spaced, and the timer says when.  (What
	 * is asserted depends on how long the machine took, never on luck.) */
	ck_assert_int_eq(mb_open(&c, &o), MB_ECONNECT);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(mb_reconnect(&c), MB_ECONNECT);
	int again = mb_reconnect(&c);
	int ms = mb_reconnect_ms(&c);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long took = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	ck_assert_int_le(ms, MB_RECONNECT_INTERVAL_MS);
	if (took < MB_RECONNECT_INTERVAL_MS / 2) {
		ck_assert_int_eq(again, MB_EAGAIN);
		ck_assert_int_gt(ms, 0);
	} else {
		ck_assert(again == MB_EAGAIN || again == MB_ECONNECT);
	}
	ck_assert_int_eq(mb_close(&c), MB_OK);
	/* Claims and KEEP are for sinks and bidi clients. */
	opts(&o, &p, MB_CLIENT_OBSERVER);
	o.claim = claim_held;
	ck_assert_int_eq(mb_open(&c, &o), MB_EINVAL);
}
END_TEST

/* A claim answered with more than was claimed is a broken broker. */
static void s_claim_bad(struct peer *p)
{
	struct mb_msg m;
	peer_hello(p);
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_CLAIM);
	peer_reply(p, MB_MSG_CLAIM_ACK, m.seq, MB_ST_CLAIM_PARTIAL, 99, 0);
	PEER_CHECK(p, peer_recv(p, &m) == -1);
}

START_TEST(claim_answer_checked)
{
	struct peer p;
	peer_start(&p, s_claim_bad);
	mb_client c;
	struct mb_options o;
	opts(&o, &p, MB_CLIENT_SINK);
	o.claim = claim_held;
	ck_assert_int_eq(mb_open(&c, &o), MB_EPROTO);
	ck_assert_int_eq(mb_balance(&c), 0);
	ck_assert_int_eq(mb_close(&c), MB_OK);
	peer_finish(&p);
}
END_TEST

/* --- malformed frames and a lost server --- */

static void s_malformed(struct peer *p)
{
	struct mb_msg m;
	peer_hello(p);
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	/* garbage instead of a GRANT */
	static const unsigned char junk[MB_WIRE_HDR_SIZE] = "this is no frame";
	PEER_CHECK(p, write(p->fd, junk, sizeof(junk)) == sizeof(junk));
	PEER_CHECK(p, peer_recv(p, &m) == -1);
	close(p->fd);
	/* reconnect; a GRANT to another sequence number */
	peer_hello(p);
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	peer_reply(p, MB_MSG_GRANT, m.seq + 100, MB_ST_OK, 1, 1);
	PEER_CHECK(p, peer_recv(p, &m) == -1);
	close(p->fd);
	/* reconnect; a GRANT of more than asked */
	peer_hello(p);
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	peer_reply(p, MB_MSG_GRANT, m.seq, MB_ST_OK, m.w[MB_W_REQ_PAGES] + 1, 9);
	PEER_CHECK(p, peer_recv(p, &m) == -1);
	close(p->fd);
	/* reconnect; a share query with a bad urgency */
	peer_hello(p);
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	peer_reply(p, MB_MSG_SHARE_QUERY, 77, 9, 1, 0);
	PEER_CHECK(p, peer_recv(p, &m) == -1);
	close(p->fd);
	/* reconnect; the server goes away mid-request */
	peer_hello(p);
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	close(p->fd);
	p->fd = -1;
	/* a HELLO_ACK that refuses the client */
	peer_accept(p);
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_HELLO);
	peer_reply(p, MB_MSG_HELLO_ACK, m.seq, MB_ST_PERM, 0, 0);
	PEER_CHECK(p, peer_recv(p, &m) == -1);
	close(p->fd);
	p->fd = -1;
}

START_TEST(malformed_and_lost)
{
	struct peer p;
	peer_start(&p, s_malformed);
	mb_client c;
	struct mb_options o;
	opts(&o, &p, MB_CLIENT_BIDI);
	share_pages = 0;
	ck_assert_int_eq(mb_open(&c, &o), MB_OK);
	uint64_t g;
	ck_assert_int_eq(mb_request(&c, 5, 0, &g), MB_EPROTO);
	ck_assert_int_eq(mb_is_open(&c), 0);
	ck_assert_int_eq(mb_request(&c, 5, 0, &g), MB_EPROTO);
	ck_assert_int_eq(mb_request(&c, 5, 0, &g), MB_EPROTO);
	ck_assert_int_eq(mb_request(&c, 5, 0, &g), MB_EPROTO);
	ck_assert_int_eq(mb_request(&c, 5, 0, &g), MB_ECONNLOST);
	ck_assert_int_eq(mb_request(&c, 5, 0, &g), MB_EPERM);
	ck_assert_int_eq(mb_close(&c), MB_OK);
	peer_finish(&p);
}
END_TEST

/* --- fork --- */

static void s_fork(struct peer *p)
{
	struct mb_msg m;
	peer_hello(p);
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_REQUEST && m.w[MB_W_REQ_PAGES] == 2);
	peer_reply(p, MB_MSG_GRANT, m.seq, MB_ST_OK, 2, 2);
	peer_bye(p);
}

START_TEST(fork_child)
{
	struct peer p;
	peer_start(&p, s_fork);
	mb_client c;
	struct mb_options o;
	opts(&o, &p, MB_CLIENT_SINK);
	ck_assert_int_eq(mb_open(&c, &o), MB_OK);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uint64_t g;
		struct mb_info info;
		int ok = mb_request(&c, 1, 0, &g) == MB_ENOTCONN &&
			 mb_query(&c, &info) == MB_ENOTCONN &&
			 mb_cancel(&c) == MB_ENOTCONN &&
			 mb_dispatch(&c, 0) == MB_ENOTCONN &&
			 mb_fd(&c) == MB_ENOTCONN && !mb_is_open(&c) &&
			 mb_close(&c) == MB_OK;
		_exit(ok ? 0 : 1);
	}
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	uint64_t g;
	ck_assert_int_eq(mb_request(&c, 2, 0, &g), MB_OK);
	ck_assert_uint_eq(g, 2);
	ck_assert_int_eq(mb_close(&c), MB_OK);
	peer_finish(&p);
}
END_TEST

/* --- status rows --- */

static void s_status(struct peer *p)
{
	struct mb_msg m, r;
	peer_hello(p);
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	PEER_CHECK(p, m.type == MB_MSG_STATUS);
	mb_msg_init(&r, MB_MSG_STATUS_HEAD, m.seq);
	r.w[MB_W_SH_POOL] = 40;
	r.w[MB_W_SH_TOTAL] = TOTAL;
	r.w[MB_W_SH_CLIENTS] = 3;
	peer_send(p, &r);
	for (uint64_t i = 0; i < 3; i++) {
		mb_msg_init(&r, MB_MSG_STATUS_CLIENT, m.seq);
		r.w[MB_W_SC_ID] = i + 1;
		r.w[MB_W_SC_PID] = 100 + i;
		r.w[MB_W_SC_KIND] = i;
		r.w[MB_W_SC_BALANCE] = (uint64_t)-(int64_t)i;
		r.w[MB_W_SC_REQ_TYPE] = i == 1 ? MB_MSG_RESERVE : 0;
		r.w[MB_W_SC_SHARE_URG] = i == 2 ? 1 + MB_URG_REQUEST : 0;
		mb_wire_put_comm(&r.w[MB_W_SC_COMM], "cmd\x01");
		peer_send(p, &r);
	}
	peer_reply(p, MB_MSG_STATUS_END, m.seq, MB_ST_OK, 0, 0);
	/* the second STATUS: the reader stops after one row */
	PEER_CHECK(p, peer_recv(p, &m) == 0);
	mb_msg_init(&r, MB_MSG_STATUS_HEAD, m.seq);
	peer_send(p, &r);
	for (int i = 0; i < 3; i++) {
		mb_msg_init(&r, MB_MSG_STATUS_CLIENT, m.seq);
		peer_send(p, &r);
	}
	peer_reply(p, MB_MSG_STATUS_END, m.seq, MB_ST_OK, 0, 0);
	peer_bye(p);
}

struct rows {
	unsigned n;
	struct mb_status_client r[4];
	int stop_after;
};

static int on_row(void *arg, const struct mb_status_client *row)
{
	struct rows *rs = arg;
	if (rs->n < 4)
		rs->r[rs->n] = *row;
	rs->n++;
	return rs->stop_after && (int)rs->n >= rs->stop_after;
}

START_TEST(status_rows)
{
	struct peer p;
	peer_start(&p, s_status);
	mb_client c;
	struct mb_options o;
	opts(&o, &p, MB_CLIENT_OBSERVER);
	ck_assert_int_eq(mb_open(&c, &o), MB_OK);
	uint64_t g;
	ck_assert_int_eq(mb_request(&c, 1, 0, &g), MB_EPERM);
	struct mb_status_head h;
	struct rows rs = { 0 };
	ck_assert_int_eq(mb_status(&c, &h, on_row, &rs), MB_OK);
	ck_assert_int_eq(h.pool, 40);
	ck_assert_uint_eq(h.clients, 3);
	ck_assert_uint_eq(rs.n, 3);
	ck_assert_int_eq(rs.r[1].req_type, 2);
	ck_assert_int_eq(rs.r[0].req_type, 0);
	ck_assert_int_eq(rs.r[2].share_urgency, MB_URGENCY_REQUEST);
	ck_assert_int_eq(rs.r[0].share_urgency, -1);
	ck_assert_int_eq(rs.r[2].balance, -2);
	ck_assert_int_eq(rs.r[2].kind, MB_CLIENT_SOURCE);
	ck_assert_str_eq(rs.r[0].comm, "cmd?");
	struct rows one = { .stop_after = 1 };
	ck_assert_int_eq(mb_status(&c, NULL, on_row, &one), MB_OK);
	ck_assert_uint_eq(one.n, 1);
	ck_assert_int_eq(mb_close(&c), MB_OK);
	peer_finish(&p);
}
END_TEST

START_TEST(log_destination)
{
	/* Diagnostics go where mb_set_log() says: a pipe here. */
	int pfd[2];
	ck_assert_int_eq(pipe(pfd), 0);
	mb_set_log(pfd[1], 7);
	mb_client c;
	struct mb_options o = { .socket_path = "/nonexistent/socket" };
	ck_assert_int_eq(mb_open(&c, &o), MB_ECONNECT);
	mb_close(&c);
	close(pfd[1]);
	char buf[512];
	ssize_t n = read(pfd[0], buf, sizeof(buf) - 1);
	close(pfd[0]);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_ptr_nonnull(strstr(buf, "/nonexistent/socket"));
	mb_set_log(-1, 7);
	ck_assert_int_eq(mb_open(&c, &o), MB_ECONNECT); /* and nowhere */
	mb_close(&c);
	mb_set_log(2, 4);
}
END_TEST

START_TEST(strerror_all)
{
	for (int e = MB_OK; e >= MB_ELOWMEM; e--) {
		const char *s = mb_strerror(e);
		ck_assert_ptr_nonnull(s);
		ck_assert_str_ne(s, "unknown error");
		for (int f = MB_OK; f > e; f--)
			ck_assert_str_ne(s, mb_strerror(f));
	}
	ck_assert_str_eq(mb_strerror(MB_ELOWMEM - 1), "unknown error");
	ck_assert_str_eq(mb_strerror(1), "unknown error");
	ck_assert_str_eq(mb_strerror(-100000), "unknown error");
}
END_TEST

static Suite *client_suite(void)
{
	Suite *s = suite_create("libmbclient");
	TCase *t = tcase_create("scripted");
	tcase_set_timeout(t, 30);
	tcase_add_test(t, open_close);
	tcase_add_test(t, bad_arguments);
	tcase_add_test(t, request_reserve_return_query);
	tcase_add_test(t, share_inside_request);
	tcase_add_test(t, dispatch_loop);
	tcase_add_test(t, cancel_from_thread);
	tcase_add_test(t, timeouts);
	tcase_add_test(t, stalled_broker_deadlines);
	tcase_add_test(t, claim_and_reconnect);
	tcase_add_test(t, claim_answer_checked);
	tcase_add_test(t, malformed_and_lost);
	tcase_add_test(t, fork_child);
	tcase_add_test(t, status_rows);
	tcase_add_test(t, strerror_all);
	tcase_add_test(t, log_destination);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	SRunner *r = srunner_create(client_suite());
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
