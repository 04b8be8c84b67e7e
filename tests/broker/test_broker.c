/*
 * test_broker.c - the broker state machine, driven event by event.
 *
 * Every client is a test record that collects the frames the broker sends
 * it; the invariants are checked after every event.  T1..T16 are the
 * conformance scenarios of the 2013 broker adapted to this protocol (the
 * bidi clients answer by hand instead of from reader threads, which makes
 * the "paused" states explicit); the defect_* tests are regressions for
 * the defects listed against that broker.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "mb_log.h"
#include "mb_wire.h"

#define INBOX 4096
#define REQ_DL 1000
#define SHARE_DL 500
#define PAGE 4096

struct tc {
	struct bclient *bc;
	struct mb_msg inbox[INBOX];
	size_t head, n;
	int closed;
	uint32_t seq;
	uint32_t query_seq;
	uint64_t id;
};

static struct broker *b;
static uint64_t now;
static struct broker_config cfg;

static void t_send(void *ctx, struct bclient *bc, const struct mb_msg *m)
{
	struct tc *c = broker_client_user(bc);
	(void)ctx;
	ck_assert_msg(!c->closed, "frame %s after close", mb_wire_type_name(m->type));
	ck_assert_uint_lt(c->n, INBOX);
	c->inbox[(c->head + c->n++) % INBOX] = *m;
}

static void t_close(void *ctx, struct bclient *bc)
{
	struct tc *c = broker_client_user(bc);
	(void)ctx;
	c->closed = 1;
}

static const struct broker_ops ops = { .send = t_send, .close = t_close };

static void check(void)
{
	ck_assert_int_eq(broker_check_invariants(b), 0);
}

/* The test clients run as uid 1000, which may be a source here. */
static uid_t source_uids[] = { 1000 };

static void setup_cfg(uint64_t initial)
{
	memset(&cfg, 0, sizeof(cfg));
	cfg.page_size = PAGE;
	cfg.initial = initial;
	cfg.source_uids = source_uids;
	cfg.nsource_uids = 1;
	cfg.source_max = MB_WIRE_MAX_PAGES;
	cfg.request_deadline_ms = REQ_DL;
	cfg.share_deadline_ms = SHARE_DL;
}

/* The pid and start time of the connections made next (start() sets
 * 100 and 0). */
static pid_t tc_pid = 100;
static uint64_t tc_start;

static void start(uint64_t initial)
{
	mb_log_init("test_broker", 2, getenv("TB_DEBUG") ? MB_LOG_DEBUG : MB_LOG_ERR);
	now = 1000;
	tc_pid = 100;
	tc_start = 0;
	setup_cfg(initial);
	b = broker_new(&cfg, &ops, NULL, now);
	ck_assert_ptr_nonnull(b);
	check();
}

static void finish(void)
{
	check();
	broker_free(b);
	b = NULL;
}

static struct tc *tc_conn_as(uid_t uid, gid_t gid)
{
	struct tc *c = calloc(1, sizeof(*c));
	ck_assert_ptr_nonnull(c);
	struct broker_peer p = { .pid = tc_pid, .uid = uid, .gid = gid, .start = tc_start };
	strcpy(p.comm, "tc");
	c->bc = broker_connect(b, &p, c, now);
	ck_assert_ptr_nonnull(c->bc);
	return c;
}

static void deliver(struct tc *c, const struct mb_msg *m)
{
	broker_message(b, c->bc, m, now);
	check();
}

static void send2(struct tc *c, unsigned type, uint64_t w0, uint64_t w1)
{
	struct mb_msg m;
	mb_msg_init(&m, type, ++c->seq);
	m.w[0] = w0;
	m.w[1] = w1;
	deliver(c, &m);
}

static struct mb_msg pop(struct tc *c)
{
	ck_assert_msg(c->n > 0, "client %lu: no frame", (unsigned long)c->id);
	struct mb_msg m = c->inbox[c->head];
	c->head = (c->head + 1) % INBOX;
	c->n--;
	return m;
}

static struct mb_msg expect(struct tc *c, unsigned type)
{
	struct mb_msg m = pop(c);
	ck_assert_msg(m.type == type, "client %lu: got %s, expected %s", (unsigned long)c->id,
		      mb_wire_type_name(m.type), mb_wire_type_name(type));
	return m;
}

static void none(struct tc *c)
{
	ck_assert_msg(c->n == 0, "client %lu: unexpected %s", (unsigned long)c->id,
		      mb_wire_type_name(c->inbox[c->head].type));
}

static struct tc *hello(unsigned kind, uint64_t src)
{
	struct tc *c = tc_conn_as(1000, 1000);
	struct mb_msg m;
	mb_msg_init(&m, MB_MSG_HELLO, ++c->seq);
	m.w[MB_W_HELLO_VERSION] = MB_WIRE_VERSION;
	m.w[MB_W_HELLO_KIND] = kind;
	m.w[MB_W_HELLO_SOURCE_PAGES] = src;
	mb_wire_put_comm(&m.w[MB_W_HELLO_COMM], "client");
	deliver(c, &m);
	struct mb_msg a = expect(c, MB_MSG_HELLO_ACK);
	ck_assert_uint_eq(a.w[MB_W_ACK_STATUS], MB_ST_OK);
	ck_assert_uint_eq(a.seq, c->seq);
	ck_assert_uint_eq(a.w[MB_W_ACK_PAGE_SIZE], PAGE);
	c->id = a.w[MB_W_ACK_CLIENT_ID];
	ck_assert_uint_ne(c->id, 0);
	return c;
}

static void bye(struct tc *c)
{
	broker_disconnect(b, c->bc, now);
	check();
	free(c);
}

static void expect_grant(struct tc *c, unsigned status, uint64_t pages)
{
	struct mb_msg m = expect(c, MB_MSG_GRANT);
	ck_assert_msg(m.w[MB_W_GRANT_STATUS] == status && m.w[MB_W_GRANT_PAGES] == pages,
		      "client %lu: GRANT %s %lu, expected %s %lu", (unsigned long)c->id,
		      mb_wire_status_name((unsigned)m.w[0]), (unsigned long)m.w[1],
		      mb_wire_status_name(status), (unsigned long)pages);
	ck_assert_int_eq((int64_t)m.w[MB_W_GRANT_BALANCE], broker_client_balance(c->bc));
}

static void expect_query(struct tc *c, unsigned urg, uint64_t pages)
{
	struct mb_msg m = expect(c, MB_MSG_SHARE_QUERY);
	ck_assert_msg(m.w[MB_W_SQ_URGENCY] == urg && m.w[MB_W_SQ_PAGES] == pages,
		      "client %lu: query urgency %lu pages %lu, expected %u %lu",
		      (unsigned long)c->id, (unsigned long)m.w[0], (unsigned long)m.w[1],
		      urg, (unsigned long)pages);
	ck_assert_uint_eq(m.w[MB_W_SQ_DEADLINE_MS], SHARE_DL);
	c->query_seq = m.seq;
}

static void answer(struct tc *c, uint64_t pages)
{
	struct mb_msg m;
	mb_msg_init(&m, MB_MSG_SHARE_ANSWER, c->query_seq);
	m.w[MB_W_ANS_PAGES] = pages;
	deliver(c, &m);
}

static void expect_repay(struct tc *c, uint64_t pages)
{
	struct mb_msg m = expect(c, MB_MSG_REPAY);
	ck_assert_uint_eq(m.w[MB_W_REPAY_PAGES], pages);
	ck_assert_int_eq((int64_t)m.w[MB_W_REPAY_BALANCE], broker_client_balance(c->bc));
}

static void ret(struct tc *c, uint64_t pages, unsigned status)
{
	send2(c, MB_MSG_RETURN, pages, 0);
	struct mb_msg m = expect(c, MB_MSG_RETURN_ACK);
	ck_assert_uint_eq(m.w[MB_W_RETACK_STATUS], status);
	ck_assert_int_eq((int64_t)m.w[MB_W_RETACK_BALANCE], broker_client_balance(c->bc));
}

static struct mb_msg query(struct tc *c)
{
	send2(c, MB_MSG_QUERY, 0, 0);
	return expect(c, MB_MSG_QUERY_REPLY);
}

static void pool_is(int64_t pool)
{
	ck_assert_int_eq(broker_pool(b), pool);
}

static void bal(struct tc *c, int64_t v)
{
	ck_assert_int_eq(broker_client_balance(c->bc), v);
}

static void advance(uint64_t ms)
{
	now += ms;
	broker_tick(b, now);
	check();
}

/* Read a whole STATUS reply; returns the number of client rows. */
static unsigned status_rows(struct tc *c, struct mb_msg *head)
{
	send2(c, MB_MSG_STATUS, 0, 0);
	*head = expect(c, MB_MSG_STATUS_HEAD);
	unsigned rows = 0;
	for (;;) {
		struct mb_msg m = pop(c);
		if (m.type == MB_MSG_STATUS_END)
			break;
		ck_assert_uint_eq(m.type, MB_MSG_STATUS_CLIENT);
		rows++;
	}
	return rows;
}

/* ---- conformance T1..T16 ------------------------------------------------ */

START_TEST(t01_init_and_terminate)
{
	start(0);
	struct tc *bidi = hello(MB_KIND_BIDI, 0);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	ck_assert_uint_ne(bidi->id, sink->id);
	/* A second HELLO is refused and changes nothing. */
	struct mb_msg m;
	mb_msg_init(&m, MB_MSG_HELLO, ++sink->seq);
	m.w[MB_W_HELLO_VERSION] = MB_WIRE_VERSION;
	m.w[MB_W_HELLO_KIND] = MB_KIND_BIDI;
	deliver(sink, &m);
	ck_assert_uint_eq(expect(sink, MB_MSG_HELLO_ACK).w[0], MB_ST_NOTREG);
	send2(sink, MB_MSG_REQUEST, 0, 0);
	expect_grant(sink, MB_ST_OK, 0);
	ret(sink, 0, MB_ST_OK);
	send2(sink, MB_MSG_TERMINATE, 0, 0);
	ck_assert_uint_eq(expect(sink, MB_MSG_TERMINATE_ACK).w[0], MB_ST_OK);
	ck_assert(sink->closed);
	send2(bidi, MB_MSG_TERMINATE, 0, 0);
	expect(bidi, MB_MSG_TERMINATE_ACK);
	ck_assert(bidi->closed);
	ck_assert_uint_eq(broker_nclients(b), 0);
	bye(sink);
	bye(bidi);
	finish();
}
END_TEST

START_TEST(t02_normal_request)
{
	start(5);
	struct tc *src = hello(MB_KIND_SOURCE, 10);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	struct mb_msg q = query(sink);
	ck_assert_uint_eq(q.w[MB_W_QR_TOTAL], 15);
	ck_assert_uint_eq(q.w[MB_W_QR_POOL], 5);
	send2(sink, MB_MSG_REQUEST, 4, 0);
	expect_grant(sink, MB_ST_OK, 4);
	none(src);
	pool_is(1);
	ret(sink, 5, MB_ST_OVERRETURN); /* holding 4 */
	ret(sink, 4, MB_ST_OK);
	pool_is(5);
	send2(sink, MB_MSG_REQUEST, 8, 0);
	expect_query(src, MB_URG_REQUEST, 3);
	none(sink);
	answer(src, 3);
	expect_grant(sink, MB_ST_OK, 8);
	bal(src, -3);
	pool_is(0);
	ret(sink, 2, MB_ST_OK);
	expect_repay(src, 2);
	pool_is(0);
	bal(sink, 6);
	ret(sink, 3, MB_ST_OK);
	expect_repay(src, 1);
	bal(src, 0);
	pool_is(2);
	ret(sink, 3, MB_ST_OK);
	pool_is(5);
	bal(sink, 0);
	none(src);
	bye(src);
	bye(sink);
	finish();
}
END_TEST

START_TEST(t03_normal_reserve)
{
	start(5);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	struct tc *src = hello(MB_KIND_SOURCE, 10);
	send2(sink, MB_MSG_REQUEST, 10, 0);
	expect_query(src, MB_URG_REQUEST, 5);
	answer(src, 4); /* cheap capacity 4 */
	expect_grant(sink, MB_ST_OK, 9);
	none(src);
	bal(src, -4);
	pool_is(0);
	send2(sink, MB_MSG_RESERVE, 4, 0);
	expect_query(src, MB_URG_REQUEST, 4);
	answer(src, 0);
	expect_query(src, MB_URG_RESERVE, 4);
	answer(src, 4);
	expect_grant(sink, MB_ST_OK, 4);
	bal(sink, 13);
	bal(src, -8);
	ret(sink, 13, MB_ST_OK);
	expect_repay(src, 8);
	pool_is(5);
	send2(sink, MB_MSG_RESERVE, 10, 0);
	expect_query(src, MB_URG_REQUEST, 5);
	answer(src, 4);
	expect_query(src, MB_URG_RESERVE, 1);
	answer(src, 1);
	expect_grant(sink, MB_ST_OK, 10);
	bal(src, -5);
	pool_is(0);
	ret(sink, 10, MB_ST_OK);
	expect_repay(src, 5);
	pool_is(5);
	send2(sink, MB_MSG_RESERVE, 15, 0);
	expect_query(src, MB_URG_REQUEST, 10);
	answer(src, 4);
	expect_query(src, MB_URG_RESERVE, 6);
	answer(src, 0);
	expect_grant(sink, MB_ST_DENIED, 0);
	expect_repay(src, 4);
	bal(sink, 0);
	bal(src, 0);
	pool_is(5);
	bye(sink);
	bye(src);
	finish();
}
END_TEST

/* T4..T6: source2 asks q1 for 15, source1 (being asked) asks q2 for 18 and
 * ends at once: the only other candidate is requesting. */
static void request_on_requesting(unsigned q1, unsigned q2)
{
	start(5);
	struct tc *s1 = hello(MB_KIND_SOURCE, 10);
	struct tc *s2 = hello(MB_KIND_SOURCE, 5);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	struct mb_msg q = query(sink);
	ck_assert_uint_eq(q.w[MB_W_QR_TOTAL], 20);
	send2(s2, q1, 15, 0);
	expect_query(s1, MB_URG_REQUEST, 10);
	send2(s1, q2, 18, 0);
	expect_grant(s1, q2 == MB_MSG_RESERVE ? MB_ST_DENIED : MB_ST_OK, 0);
	struct mb_msg head;
	ck_assert_uint_eq(status_rows(sink, &head), 3);
	ck_assert_uint_eq(head.w[MB_W_SH_QUEUED], 1);
	answer(s1, 10);
	expect_grant(s2, MB_ST_OK, 15);
	bal(s1, -10);
	bal(s2, 15);
	pool_is(0);
	none(s1);
	none(s2);
	bye(s1);
	bye(s2);
	bye(sink);
	finish();
}

START_TEST(t04_request_on_requesting)
{
	request_on_requesting(MB_MSG_REQUEST, MB_MSG_REQUEST);
}
END_TEST

START_TEST(t05_request_on_reserving)
{
	request_on_requesting(MB_MSG_RESERVE, MB_MSG_REQUEST);
}
END_TEST

START_TEST(t06_reserve_on_reserving)
{
	request_on_requesting(MB_MSG_RESERVE, MB_MSG_RESERVE);
}
END_TEST

START_TEST(t07_reserve_on_requesting)
{
	start(5);
	struct tc *s1 = hello(MB_KIND_SOURCE, 10);
	struct tc *s2 = hello(MB_KIND_SOURCE, 5);
	send2(s2, MB_MSG_REQUEST, 15, 0);
	expect_query(s1, MB_URG_REQUEST, 10);
	send2(s1, MB_MSG_RESERVE, 18, 0);
	none(s1); /* waits: source2 is requesting */
	answer(s1, 10);
	expect_grant(s2, MB_ST_OK, 15);
	expect_query(s2, MB_URG_REQUEST, 18);
	answer(s2, 18);
	expect_grant(s1, MB_ST_OK, 18);
	bal(s1, 8);  /* holds 18 of its own 10 lent: local 18 */
	bal(s2, -3); /* local 2 */
	pool_is(0);
	bye(s1);
	bye(s2);
	finish();
}
END_TEST

START_TEST(t08_request_on_reserved)
{
	start(15);
	struct tc *b1 = hello(MB_KIND_BIDI, 0);
	struct tc *b2 = hello(MB_KIND_BIDI, 0);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	send2(b1, MB_MSG_REQUEST, 10, 0);
	expect_grant(b1, MB_ST_OK, 10);
	struct mb_msg q = query(sink);
	ck_assert_uint_eq(q.w[MB_W_QR_TOTAL], 15);
	ck_assert_uint_eq(q.w[MB_W_QR_POOL], 5);
	send2(b2, MB_MSG_RESERVE, 10, 0);
	expect_query(b1, MB_URG_RESERVE, 5);
	send2(sink, MB_MSG_REQUEST, 5, 0);
	expect_grant(sink, MB_ST_OK, 0);
	answer(b1, 5);
	expect_grant(b2, MB_ST_OK, 10);
	bal(b1, 5);
	bal(b2, 10);
	bal(sink, 0);
	pool_is(0);
	bye(b1);
	bye(b2);
	bye(sink);
	finish();
}
END_TEST

static void request_on_requested(unsigned q1, unsigned q2)
{
	unsigned u1 = q1 == MB_MSG_RESERVE ? MB_URG_RESERVE : MB_URG_REQUEST;
	unsigned u2 = q2 == MB_MSG_RESERVE ? MB_URG_RESERVE : MB_URG_REQUEST;
	start(15);
	struct tc *b1 = hello(MB_KIND_BIDI, 0);
	struct tc *b2 = hello(MB_KIND_BIDI, 0);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	send2(b1, MB_MSG_REQUEST, 10, 0);
	expect_grant(b1, MB_ST_OK, 10);
	send2(b2, q1, 10, 0);
	expect_query(b1, u1, 5);
	send2(sink, q2, 5, 0);
	none(sink); /* waits on bidi1's open query */
	answer(b1, 5);
	expect_grant(b2, MB_ST_OK, 10);
	/* The largest holder is asked now. */
	expect_query(b2, u2, 5);
	none(sink);
	answer(b2, 5);
	expect_grant(sink, MB_ST_OK, 5);
	bal(b1, 5);
	bal(b2, 5);
	bal(sink, 5);
	pool_is(0);
	bye(b1);
	bye(b2);
	bye(sink);
	finish();
}

START_TEST(t09_request_on_requested)
{
	request_on_requested(MB_MSG_REQUEST, MB_MSG_REQUEST);
}
END_TEST

START_TEST(t10_reserve_on_requested)
{
	request_on_requested(MB_MSG_REQUEST, MB_MSG_RESERVE);
}
END_TEST

START_TEST(t11_reserve_on_reserved)
{
	request_on_requested(MB_MSG_RESERVE, MB_MSG_RESERVE);
}
END_TEST

START_TEST(t12_return_on_request)
{
	start(0);
	struct tc *src = hello(MB_KIND_SOURCE, 10);
	struct tc *s1 = hello(MB_KIND_SINK, 0);
	struct tc *s2 = hello(MB_KIND_SINK, 0);
	send2(s1, MB_MSG_REQUEST, 5, 0);
	expect_query(src, MB_URG_REQUEST, 5);
	answer(src, 5);
	expect_grant(s1, MB_ST_OK, 5);
	struct mb_msg q = query(s1);
	ck_assert_uint_eq(q.w[MB_W_QR_TOTAL], 10);
	ck_assert_uint_eq(q.w[MB_W_QR_POOL], 0);
	bal(src, -5);
	send2(s2, MB_MSG_REQUEST, 4, 0);
	expect_query(src, MB_URG_REQUEST, 4);
	ret(s1, 5, MB_ST_OK);
	expect_grant(s2, MB_ST_OK, 4); /* from the pool, the query still open */
	expect_repay(src, 1);
	answer(src, 4); /* late: to the pool, then back to the source */
	expect_repay(src, 4);
	bal(src, -4); /* local 6 */
	pool_is(0);
	bye(src);
	bye(s1);
	bye(s2);
	finish();
}
END_TEST

START_TEST(t13_multiple_requests)
{
	start(0);
	struct tc *src = hello(MB_KIND_SOURCE, 100);
	struct tc *e2 = hello(MB_KIND_BIDI, 0);
	struct tc *e3 = hello(MB_KIND_BIDI, 0);
	struct tc *k[4];
	for (int i = 0; i < 4; i++)
		k[i] = hello(MB_KIND_SINK, 0);
	send2(k[0], MB_MSG_REQUEST, 10, 0);
	expect_query(src, MB_URG_REQUEST, 10);
	/* e2 and e3 hold nothing: they are never asked; the others wait for
	 * the source's open query. */
	send2(k[1], MB_MSG_REQUEST, 20, 0);
	send2(k[2], MB_MSG_RESERVE, 30, 0);
	send2(k[3], MB_MSG_RESERVE, 40, 0);
	none(e2);
	none(e3);
	for (int i = 0; i < 4; i++)
		none(k[i]);
	struct mb_msg head;
	ck_assert_uint_eq(status_rows(k[0], &head), 7);
	ck_assert_uint_eq(head.w[MB_W_SH_QUEUED], 4);
	send2(e2, MB_MSG_TERMINATE, 0, 0);
	expect(e2, MB_MSG_TERMINATE_ACK);
	send2(e3, MB_MSG_TERMINATE, 0, 0);
	expect(e3, MB_MSG_TERMINATE_ACK);
	ck_assert_uint_eq(status_rows(k[0], &head), 5);
	answer(src, 10);
	expect_grant(k[0], MB_ST_OK, 10);
	expect_query(src, MB_URG_REQUEST, 90);
	answer(src, 40);
	expect_grant(k[1], MB_ST_OK, 20);
	expect_query(src, MB_URG_RESERVE, 50);
	none(k[2]);
	answer(src, 50);
	expect_grant(k[2], MB_ST_OK, 30);
	expect_grant(k[3], MB_ST_OK, 40);
	for (int i = 0; i < 4; i++)
		none(k[i]);
	bal(src, -100);
	for (int i = 0; i < 4; i++)
		bye(k[i]);
	bye(src);
	bye(e2);
	bye(e3);
	finish();
}
END_TEST

START_TEST(t14_client_termination)
{
	start(0);
	struct tc *src = hello(MB_KIND_SOURCE, 10);
	struct tc *bidi = hello(MB_KIND_BIDI, 0);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	/* A requester goes away. */
	send2(bidi, MB_MSG_REQUEST, 10, 0);
	expect_query(src, MB_URG_REQUEST, 10);
	send2(bidi, MB_MSG_TERMINATE, 0, 0);
	expect_grant(bidi, MB_ST_CANCELED, 0);
	expect(bidi, MB_MSG_TERMINATE_ACK);
	answer(src, 10);
	expect_repay(src, 10);
	bal(src, 0);
	/* A sharer goes away. */
	send2(sink, MB_MSG_REQUEST, 10, 0);
	expect_query(src, MB_URG_REQUEST, 10);
	send2(src, MB_MSG_TERMINATE, 0, 0);
	expect(src, MB_MSG_TERMINATE_ACK);
	expect_grant(sink, MB_ST_OK, 0);
	ck_assert_uint_eq(broker_total(b), 0);
	bye(src);
	bye(bidi);
	bye(sink);
	finish();
}
END_TEST

START_TEST(t15_io_errors)
{
	start(0);
	struct tc *src = hello(MB_KIND_SOURCE, 10);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	struct tc *bidi = hello(MB_KIND_BIDI, 0);
	/* Bad counts are refused on the wire. */
	send2(sink, MB_MSG_REQUEST, (uint64_t)-1, 0);
	expect_grant(sink, MB_ST_INVAL, 0);
	send2(sink, MB_MSG_RESERVE, (uint64_t)-3, 0);
	expect_grant(sink, MB_ST_INVAL, 0);
	ret(sink, (uint64_t)-3, MB_ST_INVAL);
	/* A second request while one is active is refused, not dropped. */
	send2(sink, MB_MSG_REQUEST, 1, 0);
	expect_query(src, MB_URG_REQUEST, 1);
	send2(sink, MB_MSG_REQUEST, 2, 0);
	expect_grant(sink, MB_ST_BUSY, 0);
	answer(src, 1);
	expect_grant(sink, MB_ST_OK, 1);
	none(sink);
	bal(sink, 1);
	/* A source vanishes while owed one page. */
	bye(src);
	send2(sink, MB_MSG_REQUEST, 5, 0);
	none(bidi); /* it holds nothing: not asked */
	expect_grant(sink, MB_ST_OK, 0);
	struct mb_msg q = query(sink);
	ck_assert_uint_eq(q.w[MB_W_QR_TOTAL], 0);
	ck_assert_int_eq((int64_t)q.w[MB_W_QR_POOL], -1);
	ret(sink, 1, MB_ST_OK);
	q = query(sink);
	ck_assert_uint_eq(q.w[MB_W_QR_TOTAL], 0);
	ck_assert_int_eq((int64_t)q.w[MB_W_QR_POOL], 0);
	bye(sink);
	bye(bidi);
	finish();
}
END_TEST

START_TEST(t16_dump_debug)
{
	start(0);
	struct tc *src = hello(MB_KIND_SOURCE, 10);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	send2(sink, MB_MSG_RESERVE, 1, 0);
	expect_query(src, MB_URG_REQUEST, 1);
	send2(sink, MB_MSG_RESERVE, 2, 0);
	expect_grant(sink, MB_ST_BUSY, 0);
	/* A status reader (not registered) gets a full snapshot mid-transaction. */
	struct tc *rd = tc_conn_as(1000, 1000);
	struct mb_msg head;
	now += 7;
	ck_assert_uint_eq(status_rows(rd, &head), 2);
	ck_assert_uint_eq(head.w[MB_W_SH_QUEUED], 1);
	ck_assert_uint_eq(head.w[MB_W_SH_CLIENTS], 2);
	bye(rd);
	answer(src, 0);
	expect_query(src, MB_URG_RESERVE, 1);
	answer(src, 1);
	expect_grant(sink, MB_ST_OK, 1);
	bal(sink, 1);
	bye(src);
	bye(sink);
	finish();
}
END_TEST

/* ---- regressions for the defects of the 2013 broker --------------------- */

/* 7.1-1: a RESERVE must wait for a client about to be asked at REQUEST level. */
START_TEST(defect_reserve_fails_early_on_query_built_at_other_level)
{
	start(25);
	struct tc *bidi = hello(MB_KIND_BIDI, 0);
	struct tc *s0 = hello(MB_KIND_SINK, 0);
	struct tc *s1 = hello(MB_KIND_SINK, 0);
	struct tc *s2 = hello(MB_KIND_SINK, 0);
	send2(bidi, MB_MSG_REQUEST, 25, 0);
	expect_grant(bidi, MB_ST_OK, 25);
	send2(s0, MB_MSG_REQUEST, 5, 0);
	expect_query(bidi, MB_URG_REQUEST, 5);
	send2(s1, MB_MSG_REQUEST, 10, 0);
	send2(s2, MB_MSG_RESERVE, 10, 0);
	none(s1);
	none(s2);
	answer(bidi, 0); /* denies s0; the REQUEST of s1 claims it next */
	expect_grant(s0, MB_ST_OK, 0);
	expect_query(bidi, MB_URG_REQUEST, 10);
	none(s2); /* the RESERVE waits instead of failing */
	answer(bidi, 0);
	expect_grant(s1, MB_ST_OK, 0);
	expect_query(bidi, MB_URG_RESERVE, 10);
	answer(bidi, 10);
	expect_grant(s2, MB_ST_OK, 10);
	bal(bidi, 15);
	bye(bidi);
	bye(s0);
	bye(s1);
	bye(s2);
	finish();
}
END_TEST

/* 7.1-2: a zero-page request while the queue is busy must not wedge. */
START_TEST(defect_zero_page_request_wedges)
{
	start(0);
	struct tc *src = hello(MB_KIND_SOURCE, 10);
	struct tc *s1 = hello(MB_KIND_SINK, 0);
	struct tc *s2 = hello(MB_KIND_SINK, 0);
	send2(s1, MB_MSG_REQUEST, 5, 0);
	expect_query(src, MB_URG_REQUEST, 5);
	send2(s2, MB_MSG_REQUEST, 0, 0);
	expect_grant(s2, MB_ST_OK, 0);
	send2(s2, MB_MSG_RESERVE, 0, 0);
	expect_grant(s2, MB_ST_OK, 0);
	answer(src, 5);
	expect_grant(s1, MB_ST_OK, 5);
	none(src);
	ck_assert_uint_eq(broker_nqueued(b), 0);
	bye(src);
	bye(s1);
	bye(s2);
	finish();
}
END_TEST

/* 7.1-3: a pool in debt never turns into a negative repayment. */
START_TEST(defect_negative_pool_negative_return)
{
	start(0);
	struct tc *a = hello(MB_KIND_SOURCE, 10);
	struct tc *bsrc = hello(MB_KIND_SOURCE, 10);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	send2(sink, MB_MSG_REQUEST, 15, 0);
	/* Both at once, newest source first among equals. */
	expect_query(bsrc, MB_URG_REQUEST, 10);
	expect_query(a, MB_URG_REQUEST, 5);
	answer(bsrc, 10);
	none(sink);
	answer(a, 5);
	expect_grant(sink, MB_ST_OK, 15);
	bye(a); /* leaves with 5 lent: the pool takes the debt */
	pool_is(-5);
	ret(sink, 3, MB_ST_OK);
	pool_is(-2);
	none(bsrc);
	bal(bsrc, -10);
	ret(sink, 12, MB_ST_OK);
	expect_repay(bsrc, 10);
	pool_is(0);
	none(bsrc);
	bye(bsrc);
	bye(sink);
	finish();
}
END_TEST

/* 7.1-4: TERMINATE is acknowledged before the connection is closed. */
START_TEST(defect_terminate_ack_ordering)
{
	start(10);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	send2(sink, MB_MSG_REQUEST, 4, 0);
	expect_grant(sink, MB_ST_OK, 4);
	send2(sink, MB_MSG_TERMINATE, 0, 0);
	struct mb_msg m = expect(sink, MB_MSG_TERMINATE_ACK);
	ck_assert_uint_eq(m.w[MB_W_TERMACK_STATUS], MB_ST_OK);
	ck_assert_uint_eq(m.w[MB_W_TERMACK_RECLAIMED], 4);
	ck_assert(sink->closed);
	pool_is(10);
	/* Frames after TERMINATE are ignored, not acted upon. */
	send2(sink, MB_MSG_REQUEST, 4, 0);
	none(sink);
	pool_is(10);
	bye(sink);
	finish();
}
END_TEST

/* 7.1-5: registering again neither duplicates nor alters a source. */
START_TEST(defect_repeat_source_registration)
{
	start(0);
	struct tc *src = hello(MB_KIND_SOURCE, 10);
	struct mb_msg m;
	mb_msg_init(&m, MB_MSG_HELLO, ++src->seq);
	m.w[MB_W_HELLO_VERSION] = MB_WIRE_VERSION;
	m.w[MB_W_HELLO_KIND] = MB_KIND_SOURCE;
	m.w[MB_W_HELLO_SOURCE_PAGES] = 10;
	deliver(src, &m);
	ck_assert_uint_eq(expect(src, MB_MSG_HELLO_ACK).w[0], MB_ST_NOTREG);
	ck_assert_uint_eq(broker_total(b), 10);
	ck_assert_uint_eq(broker_nclients(b), 1);
	struct mb_msg q = query(src);
	ck_assert_uint_eq(q.w[MB_W_QR_SOURCE_PAGES], 10);
	bye(src);
	finish();
}
END_TEST

/* 7.1-6: a new connection after a lost one is a fresh client. */
START_TEST(defect_reconnect_after_failure)
{
	start(10);
	struct tc *a = hello(MB_KIND_SINK, 0);
	send2(a, MB_MSG_REQUEST, 6, 0);
	expect_grant(a, MB_ST_OK, 6);
	uint64_t old = a->id;
	bye(a);
	pool_is(10);
	struct tc *a2 = hello(MB_KIND_SINK, 0);
	ck_assert_uint_ne(a2->id, old);
	bal(a2, 0);
	send2(a2, MB_MSG_REQUEST, 10, 0);
	expect_grant(a2, MB_ST_OK, 10);
	bye(a2);
	finish();
}
END_TEST

/* 7.1-7: immediate and queued grants both go to the requesting connection. */
START_TEST(defect_grant_to_other_connection)
{
	start(4);
	struct tc *src = hello(MB_KIND_SOURCE, 10);
	struct tc *c1 = hello(MB_KIND_SINK, 0); /* same pid as c2 */
	struct tc *c2 = hello(MB_KIND_SINK, 0);
	send2(c1, MB_MSG_REQUEST, 4, 0);
	expect_grant(c1, MB_ST_OK, 4);
	none(c2);
	send2(c2, MB_MSG_REQUEST, 3, 0);
	expect_query(src, MB_URG_REQUEST, 3);
	answer(src, 3);
	expect_grant(c2, MB_ST_OK, 3);
	none(c1);
	bye(src);
	bye(c1);
	bye(c2);
	finish();
}
END_TEST

/* 7.1-8: status reports ages from the monotonic clock, not dates. */
START_TEST(defect_status_dates)
{
	start(0);
	struct tc *src = hello(MB_KIND_SOURCE, 10);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	send2(sink, MB_MSG_REQUEST, 5, 0);
	expect_query(src, MB_URG_REQUEST, 5);
	now += 123;
	send2(sink, MB_MSG_STATUS, 0, 0);
	struct mb_msg h = expect(sink, MB_MSG_STATUS_HEAD);
	ck_assert_uint_eq(h.w[MB_W_SH_UPTIME_MS], 123);
	int seen = 0;
	for (;;) {
		struct mb_msg m = pop(sink);
		if (m.type == MB_MSG_STATUS_END)
			break;
		if (m.w[MB_W_SC_ID] == sink->id) {
			ck_assert_uint_eq(m.w[MB_W_SC_REQ_TYPE], MB_MSG_REQUEST);
			ck_assert_uint_eq(m.w[MB_W_SC_REQ_AGE_MS], 123);
			seen++;
		}
		if (m.w[MB_W_SC_ID] == src->id) {
			ck_assert_uint_eq(m.w[MB_W_SC_SHARE_URG], MB_URG_REQUEST + 1);
			ck_assert_uint_eq(m.w[MB_W_SC_SHARE_AGE_MS], 123);
			ck_assert_int_eq((int64_t)m.w[MB_W_SC_BALANCE], 0);
			seen++;
		}
	}
	ck_assert_int_eq(seen, 2);
	answer(src, 5);
	expect_grant(sink, MB_ST_OK, 5);
	bye(src);
	bye(sink);
	finish();
}
END_TEST

/* 7.1-9: a failed RESERVE leaves the queue at once and for good. */
START_TEST(defect_reserve_revived)
{
	start(6);
	struct tc *bidi = hello(MB_KIND_BIDI, 0);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	send2(bidi, MB_MSG_REQUEST, 1, 0);
	expect_grant(bidi, MB_ST_OK, 1);
	send2(sink, MB_MSG_RESERVE, 8, 0);
	expect_query(bidi, MB_URG_RESERVE, 1); /* all it holds */
	answer(bidi, 0);
	expect_grant(sink, MB_ST_DENIED, 0);
	ck_assert_uint_eq(broker_nqueued(b), 0);
	pool_is(5);
	ret(bidi, 0, MB_ST_OK);
	none(sink);
	send2(sink, MB_MSG_REQUEST, 5, 0);
	expect_grant(sink, MB_ST_OK, 5);
	bye(bidi);
	bye(sink);
	finish();
}
END_TEST

/* 7.1-10: a second request while one is pending gets BUSY. */
START_TEST(defect_second_request_dropped)
{
	start(0);
	struct tc *bidi = hello(MB_KIND_BIDI, 0);
	struct tc *src = hello(MB_KIND_SOURCE, 10);
	send2(bidi, MB_MSG_RESERVE, 3, 0);
	expect_query(src, MB_URG_REQUEST, 3);
	send2(bidi, MB_MSG_REQUEST, 1, 0);
	expect_grant(bidi, MB_ST_BUSY, 0);
	send2(bidi, MB_MSG_RESERVE, 1, 0);
	expect_grant(bidi, MB_ST_BUSY, 0);
	answer(src, 3);
	expect_grant(bidi, MB_ST_OK, 3);
	bye(bidi);
	bye(src);
	finish();
}
END_TEST

/* 7.1-11 and 7.2: REQUEST is bounded; a silent bidi client cannot hang it. */
START_TEST(defect_no_timeouts)
{
	start(2);
	struct tc *bidi = hello(MB_KIND_BIDI, 0);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	send2(bidi, MB_MSG_REQUEST, 2, 0);
	expect_grant(bidi, MB_ST_OK, 2);
	send2(sink, MB_MSG_REQUEST, 2, 0);
	expect_query(bidi, MB_URG_REQUEST, 2);
	ck_assert_uint_eq(broker_next_deadline(b), now + SHARE_DL);
	advance(SHARE_DL - 1);
	none(sink);
	advance(1); /* the bidi client never answers: a denial */
	expect_grant(sink, MB_ST_OK, 0);
	bye(bidi);
	bye(sink);
	finish();
}
END_TEST

/* 7.3: hostile input is refused and never changes the accounting. */
START_TEST(defect_trust_everything)
{
	start(100);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	struct tc *bidi = hello(MB_KIND_BIDI, 0);
	/* REQUEST -N used to grow the pool. */
	send2(sink, MB_MSG_REQUEST, (uint64_t)-50, 0);
	expect_grant(sink, MB_ST_INVAL, 0);
	pool_is(100);
	ck_assert_uint_eq(broker_total(b), 100);
	/* RETURN -N used to take pages from the pool. */
	ret(sink, (uint64_t)-50, MB_ST_INVAL);
	pool_is(100);
	/* Over-return used to exit the server. */
	ret(sink, 1, MB_ST_OVERRETURN);
	/* SHARE from a sink used to exit the server. */
	struct mb_msg m;
	mb_msg_init(&m, MB_MSG_SHARE_ANSWER, 1);
	m.w[0] = 5;
	deliver(sink, &m);
	struct mb_msg e = expect(sink, MB_MSG_ERROR);
	ck_assert_uint_eq(e.w[MB_W_ERR_STATUS], MB_ST_PERM);
	ck_assert_uint_eq(e.w[MB_W_ERR_TYPE], MB_MSG_SHARE_ANSWER);
	/* A bidi client sharing pages it does not hold made phantom pages. */
	deliver(bidi, &m);
	ck_assert_uint_eq(expect(bidi, MB_MSG_ERROR).w[0], MB_ST_OVERRETURN);
	m.w[0] = (uint64_t)-5;
	deliver(bidi, &m);
	ck_assert_uint_eq(expect(bidi, MB_MSG_ERROR).w[0], MB_ST_INVAL);
	pool_is(100);
	bal(bidi, 0);
	/* A source declaring absurd amounts, or amounts overflowing the total. */
	struct tc *s = tc_conn_as(1000, 1000);
	mb_msg_init(&m, MB_MSG_HELLO, 1);
	m.w[MB_W_HELLO_VERSION] = MB_WIRE_VERSION;
	m.w[MB_W_HELLO_KIND] = MB_KIND_SOURCE;
	m.w[MB_W_HELLO_SOURCE_PAGES] = MB_WIRE_MAX_PAGES + 1;
	deliver(s, &m);
	ck_assert_uint_eq(expect(s, MB_MSG_HELLO_ACK).w[0], MB_ST_INVAL);
	/* The total never passes what the wire can carry. */
	m.w[MB_W_HELLO_SOURCE_PAGES] = MB_WIRE_MAX_PAGES;
	deliver(s, &m);
	ck_assert_uint_eq(expect(s, MB_MSG_HELLO_ACK).w[0], MB_ST_INVAL);
	m.w[MB_W_HELLO_SOURCE_PAGES] = MB_WIRE_MAX_PAGES - 100;
	deliver(s, &m);
	ck_assert_uint_eq(expect(s, MB_MSG_HELLO_ACK).w[0], MB_ST_OK);
	ck_assert_uint_eq(broker_total(b), MB_WIRE_MAX_PAGES);
	struct tc *s2 = tc_conn_as(1000, 1000);
	m.w[MB_W_HELLO_SOURCE_PAGES] = 1;
	deliver(s2, &m);
	ck_assert_uint_eq(expect(s2, MB_MSG_HELLO_ACK).w[0], MB_ST_INVAL);
	/* A sink may not declare source pages. */
	m.w[MB_W_HELLO_KIND] = MB_KIND_SINK;
	m.w[MB_W_HELLO_SOURCE_PAGES] = 1;
	deliver(s2, &m);
	ck_assert_uint_eq(expect(s2, MB_MSG_HELLO_ACK).w[0], MB_ST_INVAL);
	ck_assert_uint_eq(broker_total(b), MB_WIRE_MAX_PAGES);
	bye(s);
	bye(s2);
	bye(sink);
	bye(bidi);
	finish();
}
END_TEST

static struct tc *hello_as(uid_t uid, unsigned kind, uint64_t src, unsigned status)
{
	struct tc *c = tc_conn_as(uid, uid);
	struct mb_msg m;
	mb_msg_init(&m, MB_MSG_HELLO, ++c->seq);
	m.w[MB_W_HELLO_VERSION] = MB_WIRE_VERSION;
	m.w[MB_W_HELLO_KIND] = kind;
	m.w[MB_W_HELLO_SOURCE_PAGES] = src;
	deliver(c, &m);
	struct mb_msg a = expect(c, MB_MSG_HELLO_ACK);
	ck_assert_msg(a.w[MB_W_ACK_STATUS] == status, "HELLO as uid %u: %s, expected %s",
		      (unsigned)uid, mb_wire_status_name((unsigned)a.w[0]),
		      mb_wire_status_name(status));
	c->id = a.w[MB_W_ACK_CLIENT_ID];
	return c;
}

/* Issue 10: a source declared 1,000,000 pages on a 100-page broker,
 * returned them, and another client was granted 900,000.  Who may be a
 * source and how much it may declare come from the configuration. */
START_TEST(source_declaration_bounded)
{
	start(0);
	broker_free(b);
	setup_cfg(100);
	cfg.nsource_uids = 0; /* the default: root only */
	cfg.source_max = 100; /* the default: the broker's own total */
	b = broker_new(&cfg, &ops, NULL, now);
	struct tc *user = hello_as(1000, MB_KIND_SOURCE, 1000000, MB_ST_PERM);
	ck_assert_uint_eq(broker_total(b), 100);
	struct tc *root = hello_as(0, MB_KIND_SOURCE, 1000000, MB_ST_CAP);
	ck_assert_uint_eq(broker_total(b), 100);
	struct tc *root2 = hello_as(0, MB_KIND_SOURCE, 100, MB_ST_OK);
	ck_assert_uint_eq(broker_total(b), 200);
	/* Returning declared pages and asking for them gives no more. */
	struct tc *sink = hello(MB_KIND_SINK, 0);
	send2(sink, MB_MSG_REQUEST, 900000, 0);
	expect_query(root2, MB_URG_REQUEST, 100);
	answer(root2, 100);
	expect_grant(sink, MB_ST_OK, 200);
	/* A listed uid may be a source, within source_max. */
	setup_cfg(100);
	cfg.source_max = 50;
	broker_reconfigure(b, &cfg, now);
	check();
	struct tc *listed = hello_as(1000, MB_KIND_SOURCE, 51, MB_ST_CAP);
	struct tc *listed2 = hello_as(1000, MB_KIND_SOURCE, 50, MB_ST_OK);
	bye(user);
	bye(root);
	bye(root2);
	bye(sink);
	bye(listed);
	bye(listed2);
	finish();
}
END_TEST

/* 7.3: 64-bit amounts near the limit do not overflow. */
START_TEST(defect_32bit_overflow)
{
	start(MB_WIRE_MAX_PAGES);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	send2(sink, MB_MSG_REQUEST, MB_WIRE_MAX_PAGES, 0);
	expect_grant(sink, MB_ST_OK, MB_WIRE_MAX_PAGES);
	pool_is(0);
	ret(sink, MB_WIRE_MAX_PAGES, MB_ST_OK);
	pool_is((int64_t)MB_WIRE_MAX_PAGES);
	bye(sink);
	finish();
}
END_TEST

/* ---- deadlines, cancel, cap, reload, events, bad input ------------------ */

START_TEST(request_deadline_partial)
{
	start(3);
	struct tc *bidi = hello(MB_KIND_BIDI, 0);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	send2(bidi, MB_MSG_REQUEST, 3, 0);
	expect_grant(bidi, MB_ST_OK, 3);
	ret(bidi, 1, MB_ST_OK);
	/* A client deadline shorter than the share deadline ends it first. */
	send2(sink, MB_MSG_REQUEST, 5, 100);
	expect_query(bidi, MB_URG_REQUEST, 2); /* no more than it holds */
	ck_assert_uint_eq(broker_next_deadline(b), now + 100);
	advance(100);
	expect_grant(sink, MB_ST_OK, 1); /* partial: what it held */
	bal(sink, 1);
	/* The late answer goes to the pool. */
	answer(bidi, 2);
	pool_is(2);
	bal(bidi, 0);
	/* A client deadline longer than the server's is cut to it. */
	ret(sink, 1, MB_ST_OK);
	struct tc *b2 = hello(MB_KIND_BIDI, 0);
	send2(b2, MB_MSG_REQUEST, 3, 0);
	expect_grant(b2, MB_ST_OK, 3);
	send2(sink, MB_MSG_REQUEST, 5, 100000);
	expect_query(b2, MB_URG_REQUEST, 3);
	none(bidi); /* it holds nothing now */
	advance(SHARE_DL - 1);
	none(sink);
	advance(1);
	expect_grant(sink, MB_ST_OK, 0); /* b2 denied by silence */
	bye(bidi);
	bye(b2);
	bye(sink);
	finish();
}
END_TEST

START_TEST(reserve_deadline_fails_cleanly)
{
	start(4);
	struct tc *bidi = hello(MB_KIND_BIDI, 0);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	send2(bidi, MB_MSG_REQUEST, 2, 0);
	expect_grant(bidi, MB_ST_OK, 2);
	send2(sink, MB_MSG_RESERVE, 4, 50);
	expect_query(bidi, MB_URG_RESERVE, 2);
	pool_is(0);
	advance(50);
	expect_grant(sink, MB_ST_TIMEDOUT, 0);
	pool_is(2); /* what it held is back */
	bal(sink, 0);
	ck_assert_uint_eq(broker_nqueued(b), 0);
	answer(bidi, 2);
	pool_is(4);
	/* Without a deadline a RESERVE waits for the query however long. */
	send2(bidi, MB_MSG_REQUEST, 2, 0);
	expect_grant(bidi, MB_ST_OK, 2);
	send2(sink, MB_MSG_RESERVE, 4, MB_WIRE_NO_DEADLINE);
	expect_query(bidi, MB_URG_RESERVE, 2);
	advance(SHARE_DL - 1);
	none(sink);
	answer(bidi, 2);
	expect_grant(sink, MB_ST_OK, 4);
	bye(bidi);
	bye(sink);
	finish();
}
END_TEST

START_TEST(share_deadline_counts_as_denial)
{
	start(0);
	struct tc *src = hello(MB_KIND_SOURCE, 10);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	send2(sink, MB_MSG_RESERVE, 4, 0);
	expect_query(src, MB_URG_REQUEST, 4);
	advance(SHARE_DL);
	/* Silence at REQUEST urgency is a denial; RESERVE urgency comes next. */
	expect_query(src, MB_URG_RESERVE, 4);
	advance(SHARE_DL);
	expect_grant(sink, MB_ST_DENIED, 0);
	none(src);
	answer(src, 4); /* far too late: to the pool, then repaid */
	expect_repay(src, 4);
	bal(src, 0);
	bye(src);
	bye(sink);
	finish();
}
END_TEST

START_TEST(cancel_pending)
{
	start(2);
	struct tc *src = hello(MB_KIND_SOURCE, 10);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	send2(sink, MB_MSG_CANCEL, 0, 0);
	ck_assert_uint_eq(expect(sink, MB_MSG_CANCEL_ACK).w[0], MB_ST_NOREQ);
	send2(sink, MB_MSG_RESERVE, 5, 0);
	expect_query(src, MB_URG_REQUEST, 3);
	pool_is(0);
	send2(sink, MB_MSG_CANCEL, 0, 0);
	expect_grant(sink, MB_ST_CANCELED, 0);
	ck_assert_uint_eq(expect(sink, MB_MSG_CANCEL_ACK).w[0], MB_ST_OK);
	pool_is(2);
	ck_assert_uint_eq(broker_nqueued(b), 0);
	answer(src, 3);
	expect_repay(src, 3);
	send2(sink, MB_MSG_REQUEST, 2, 0);
	expect_grant(sink, MB_ST_OK, 2);
	bye(src);
	bye(sink);
	finish();
}
END_TEST

START_TEST(per_client_cap)
{
	start(0);
	broker_free(b);
	setup_cfg(100);
	cfg.cap = 10;
	b = broker_new(&cfg, &ops, NULL, now);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	send2(sink, MB_MSG_REQUEST, 8, 0);
	expect_grant(sink, MB_ST_OK, 8);
	send2(sink, MB_MSG_REQUEST, 5, 0);
	expect_grant(sink, MB_ST_OK, 2); /* cut to the cap */
	send2(sink, MB_MSG_REQUEST, 1, 0);
	expect_grant(sink, MB_ST_CAP, 0);
	ret(sink, 4, MB_ST_OK);
	send2(sink, MB_MSG_RESERVE, 5, 0);
	expect_grant(sink, MB_ST_CAP, 0); /* all or nothing */
	send2(sink, MB_MSG_RESERVE, 4, 0);
	expect_grant(sink, MB_ST_OK, 4);
	bal(sink, 10);
	bye(sink);
	finish();
}
END_TEST

START_TEST(allowed_uids)
{
	start(10);
	broker_free(b);
	setup_cfg(10);
	uid_t uids[] = { 1000 };
	gid_t gids[] = { 50 };
	cfg.uids = uids;
	cfg.nuids = 1;
	cfg.gids = gids;
	cfg.ngids = 1;
	b = broker_new(&cfg, &ops, NULL, now);
	struct tc *ok = hello(MB_KIND_SINK, 0);   /* uid 1000 */
	struct tc *byg = tc_conn_as(2000, 50);
	struct tc *root = tc_conn_as(0, 0);
	struct tc *no = tc_conn_as(2000, 2000);
	send2(byg, MB_MSG_QUERY, 0, 0);
	ck_assert_uint_eq(expect(byg, MB_MSG_QUERY_REPLY).w[0], MB_ST_OK);
	send2(root, MB_MSG_QUERY, 0, 0);
	ck_assert_uint_eq(expect(root, MB_MSG_QUERY_REPLY).w[0], MB_ST_OK);
	send2(no, MB_MSG_STATUS, 0, 0);
	ck_assert_uint_eq(expect(no, MB_MSG_STATUS_HEAD).w[0], MB_ST_PERM);
	none(no);
	ck_assert(no->closed);
	/* A reload that drops uid 1000 refuses it from its next frame on. */
	setup_cfg(10);
	cfg.gids = gids;
	cfg.ngids = 1;
	broker_reconfigure(b, &cfg, now);
	check();
	send2(ok, MB_MSG_REQUEST, 1, 0);
	expect_grant(ok, MB_ST_PERM, 0);
	ck_assert(ok->closed);
	bye(ok);
	bye(byg);
	bye(root);
	bye(no);
	finish();
}
END_TEST

START_TEST(reload_shrinks_total)
{
	start(100);
	struct tc *bidi = hello(MB_KIND_BIDI, 0);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	struct tc *obs = hello(MB_KIND_OBSERVER, 0);
	send2(obs, MB_MSG_SUBSCRIBE, MB_EV_ALL, 0);
	ck_assert_uint_eq(expect(obs, MB_MSG_SUBSCRIBE_ACK).w[MB_W_SUBACK_MASK], MB_EV_ALL);
	send2(bidi, MB_MSG_REQUEST, 60, 0);
	expect_grant(bidi, MB_ST_OK, 60);
	send2(sink, MB_MSG_REQUEST, 30, 0);
	expect_grant(sink, MB_ST_OK, 30);
	setup_cfg(50); /* 90 lent, 50 total: 40 in debt */
	broker_reconfigure(b, &cfg, now);
	check();
	pool_is(-40);
	ck_assert_uint_eq(broker_total(b), 50);
	expect_query(bidi, MB_URG_REQUEST, 40);
	struct mb_msg e = expect(obs, MB_MSG_EVENT);
	ck_assert_uint_eq(e.w[MB_W_EV_EVENT], MB_EV_TOTAL_CHANGED);
	ck_assert_uint_eq(e.w[MB_W_EV_TOTAL], 50);
	ck_assert_uint_eq(e.w[MB_W_EV_VALUE], 100);
	e = expect(obs, MB_MSG_EVENT);
	ck_assert_uint_eq(e.w[MB_W_EV_EVENT], MB_EV_POOL_LOW);
	/* Nothing is handed out while in debt; the request waits for the
	 * give-back query, then asks the bidi client itself. */
	send2(sink, MB_MSG_REQUEST, 1, 0);
	none(sink);
	answer(bidi, 40);
	pool_is(0);
	bal(bidi, 20);
	expect_query(bidi, MB_URG_REQUEST, 1);
	answer(bidi, 0);
	expect_grant(sink, MB_ST_OK, 0);
	ret(sink, 30, MB_ST_OK);
	pool_is(30);
	e = expect(obs, MB_MSG_EVENT);
	ck_assert_uint_eq(e.w[MB_W_EV_EVENT], MB_EV_POOL_OK);
	/* Growing the total feeds waiting requests. */
	send2(sink, MB_MSG_REQUEST, 40, 0);
	expect_query(bidi, MB_URG_REQUEST, 10);
	setup_cfg(60);
	broker_reconfigure(b, &cfg, now);
	check();
	expect_grant(sink, MB_ST_OK, 40);
	answer(bidi, 0);
	ck_assert_uint_eq(expect(obs, MB_MSG_EVENT).w[0], MB_EV_POOL_LOW);
	ck_assert_uint_eq(expect(obs, MB_MSG_EVENT).w[0], MB_EV_TOTAL_CHANGED);
	none(obs);
	/* Observers may not take pages. */
	send2(obs, MB_MSG_REQUEST, 1, 0);
	expect_grant(obs, MB_ST_PERM, 0);
	ret(obs, 1, MB_ST_PERM);
	bye(bidi);
	bye(sink);
	bye(obs);
	finish();
}
END_TEST

START_TEST(disconnect_reclaims)
{
	start(10);
	struct tc *src = hello(MB_KIND_SOURCE, 5);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	struct tc *s2 = hello(MB_KIND_SINK, 0);
	send2(sink, MB_MSG_REQUEST, 10, 0);
	expect_grant(sink, MB_ST_OK, 10);
	send2(s2, MB_MSG_REQUEST, 3, 0);
	expect_query(src, MB_URG_REQUEST, 3);
	bye(sink); /* dies holding 10: they go to the waiting request first */
	expect_grant(s2, MB_ST_OK, 3);
	pool_is(7);
	answer(src, 3); /* late: pool, then repaid at once */
	expect_repay(src, 3);
	pool_is(7);
	bye(s2);
	pool_is(10);
	bye(src);
	finish();
}
END_TEST

START_TEST(bad_inputs)
{
	start(10);
	struct tc *c = tc_conn_as(1000, 1000);
	/* Before HELLO: requests are refused with NOTREG, read-only is fine. */
	send2(c, MB_MSG_REQUEST, 1, 0);
	expect_grant(c, MB_ST_NOTREG, 0);
	ret(c, 1, MB_ST_NOTREG);
	send2(c, MB_MSG_SUBSCRIBE, 1, 0);
	ck_assert_uint_eq(expect(c, MB_MSG_SUBSCRIBE_ACK).w[0], MB_ST_NOTREG);
	send2(c, MB_MSG_SHARE_ANSWER, 1, 0);
	ck_assert_uint_eq(expect(c, MB_MSG_ERROR).w[0], MB_ST_NOTREG);
	send2(c, MB_MSG_GRANT, 1, 0); /* a server-to-client type */
	struct mb_msg e = expect(c, MB_MSG_ERROR);
	ck_assert_uint_eq(e.w[MB_W_ERR_STATUS], MB_ST_UNKNOWN);
	ck_assert_uint_eq(e.w[MB_W_ERR_TYPE], MB_MSG_GRANT);
	query(c);
	/* Bad kind: refused, the connection may try again. */
	struct mb_msg m;
	mb_msg_init(&m, MB_MSG_HELLO, 9);
	m.w[MB_W_HELLO_VERSION] = MB_WIRE_VERSION;
	m.w[MB_W_HELLO_KIND] = 77;
	deliver(c, &m);
	ck_assert_uint_eq(expect(c, MB_MSG_HELLO_ACK).w[0], MB_ST_INVAL);
	ck_assert(!c->closed);
	/* Wrong version: refused and closed. */
	m.w[MB_W_HELLO_VERSION] = 99;
	m.w[MB_W_HELLO_KIND] = MB_KIND_SINK;
	deliver(c, &m);
	ck_assert_uint_eq(expect(c, MB_MSG_HELLO_ACK).w[0], MB_ST_VERSION);
	ck_assert(c->closed);
	bye(c);
	/* After registration: unknown type is an error reply, not a close. */
	struct tc *r = hello(MB_KIND_SINK, 0);
	send2(r, MB_MSG_EVENT, 0, 0);
	ck_assert_uint_eq(expect(r, MB_MSG_ERROR).w[0], MB_ST_UNKNOWN);
	ck_assert(!r->closed);
	send2(r, MB_MSG_REQUEST, 3, 0);
	expect_grant(r, MB_ST_OK, 3);
	/* A malformed frame from the daemon's decoder: ERROR, then closed, pages back. */
	broker_bad_frame(b, r->bc, MB_ST_PROTO, 0, now);
	check();
	ck_assert_uint_eq(expect(r, MB_MSG_ERROR).w[0], MB_ST_PROTO);
	ck_assert(r->closed);
	pool_is(10);
	bye(r);
	finish();
}
END_TEST

START_TEST(source_repaid_before_pool)
{
	start(5);
	struct tc *s1 = hello(MB_KIND_SOURCE, 10);
	struct tc *s2 = hello(MB_KIND_SOURCE, 10);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	send2(sink, MB_MSG_REQUEST, 25, 0);
	expect_query(s2, MB_URG_REQUEST, 10); /* newest source first */
	expect_query(s1, MB_URG_REQUEST, 10);
	answer(s2, 10);
	answer(s1, 10);
	expect_grant(sink, MB_ST_OK, 25);
	ret(sink, 12, MB_ST_OK);
	expect_repay(s2, 10);
	expect_repay(s1, 2);
	ret(sink, 13, MB_ST_OK);
	expect_repay(s1, 8);
	pool_is(5); /* the broker's own pages stay, taken back last */
	bye(s1);
	bye(s2);
	bye(sink);
	finish();
}
END_TEST

START_TEST(events_and_policy_hook)
{
	start(10);
	broker_free(b);
	setup_cfg(10);
	cfg.pool_low = 2;
	b = broker_new(&cfg, &ops, NULL, now);
	struct tc *obs = hello(MB_KIND_OBSERVER, 0);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	send2(obs, MB_MSG_SUBSCRIBE, MB_EV_POOL_LOW | MB_EV_POOL_OK | MB_EV_MEM_DENY | (1u << 30), 0);
	ck_assert_uint_eq(expect(obs, MB_MSG_SUBSCRIBE_ACK).w[MB_W_SUBACK_MASK],
			  MB_EV_POOL_LOW | MB_EV_POOL_OK | MB_EV_MEM_DENY);
	send2(sink, MB_MSG_REQUEST, 7, 0);
	expect_grant(sink, MB_ST_OK, 7);
	none(obs);
	send2(sink, MB_MSG_REQUEST, 1, 0);
	expect_grant(sink, MB_ST_OK, 1);
	struct mb_msg e = expect(obs, MB_MSG_EVENT);
	ck_assert_uint_eq(e.w[MB_W_EV_EVENT], MB_EV_POOL_LOW);
	ck_assert_uint_eq(e.w[MB_W_EV_POOL], 2);
	ret(sink, 8, MB_ST_OK);
	ck_assert_uint_eq(expect(obs, MB_MSG_EVENT).w[0], MB_EV_POOL_OK);
	broker_post_event(b, MB_EV_MEM_DENY, 42);
	e = expect(obs, MB_MSG_EVENT);
	ck_assert_uint_eq(e.w[MB_W_EV_EVENT], MB_EV_MEM_DENY);
	ck_assert_uint_eq(e.w[MB_W_EV_VALUE], 42);
	broker_post_event(b, MB_EV_MEM_NOTIFY, 1); /* not subscribed */
	none(obs);
	none(sink);
	bye(obs);
	bye(sink);
	finish();
}
END_TEST

START_TEST(shutdown_answers_waiters)
{
	start(0);
	struct tc *src = hello(MB_KIND_SOURCE, 10);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	send2(sink, MB_MSG_RESERVE, 3, 0);
	expect_query(src, MB_URG_REQUEST, 3);
	broker_shutdown(b, now);
	expect_grant(sink, MB_ST_SHUTDOWN, 0);
	check();
	bye(src);
	bye(sink);
	finish();
}
END_TEST

/* Forget every queued frame, remembering the last query of each client. */
static void drain_all(struct tc **c, int n)
{
	for (int i = 0; i < n; i++) {
		while (c[i]->n) {
			struct mb_msg m = pop(c[i]);
			if (m.type == MB_MSG_SHARE_QUERY)
				c[i]->query_seq = m.seq;
		}
	}
}

/* Many clients, many requests, random answers and departures: the
 * invariants hold after every single event. */
START_TEST(random_soak)
{
	enum { N = 40, STEPS = 4000 };
	start(50);
	struct tc *c[N];
	unsigned seed = 12345;
	for (int i = 0; i < N; i++)
		c[i] = hello(i % 4 == 0 ? MB_KIND_SOURCE : i % 4 == 1 ? MB_KIND_BIDI : MB_KIND_SINK,
			     i % 4 == 0 ? 20 : 0);
	for (int step = 0; step < STEPS; step++) {
		seed = seed * 1103515245 + 12345;
		int i = (int)((seed >> 16) % N);
		unsigned op = (seed >> 8) % 8;
		drain_all(c, N);
		switch (op) {
		case 0: case 1:
			send2(c[i], MB_MSG_REQUEST, (seed >> 4) % 30, (seed >> 2) % 3 ? 0 : 30);
			break;
		case 2:
			send2(c[i], MB_MSG_RESERVE, (seed >> 4) % 30, (seed >> 3) % 2 ? 0 : 200);
			break;
		case 3: {
			int64_t h = broker_client_balance(c[i]->bc);
			send2(c[i], MB_MSG_RETURN, h > 0 ? (uint64_t)h / 2 : 0, 0);
			break;
		}
		case 4: case 5: {
			int64_t h = broker_client_balance(c[i]->bc);
			/* Answers the last query, or is a late answer to the pool. */
			answer(c[i], h > 0 ? (uint64_t)h / 3 : 0);
			break;
		}
		case 6:
			advance(37);
			break;
		case 7:
			if ((seed >> 5) % 8 == 0) {
				unsigned kind = i % 4 == 0 ? MB_KIND_SOURCE : i % 4 == 1 ? MB_KIND_BIDI : MB_KIND_SINK;
				bye(c[i]);
				c[i] = hello(kind, kind == MB_KIND_SOURCE ? 20 : 0);
			} else {
				send2(c[i], MB_MSG_CANCEL, 0, 0);
			}
			break;
		}
	}
	for (int i = 0; i < N; i++)
		bye(c[i]);
	pool_is(50);
	finish();
}
END_TEST

/* Issue 10: client_cap was per connection: three connections of one user
 * held three times the cap.  uid_cap bounds them together. */
START_TEST(uid_cap_across_connections)
{
	start(0);
	broker_free(b);
	setup_cfg(100);
	cfg.cap = 10;
	cfg.uid_cap = 10;
	b = broker_new(&cfg, &ops, NULL, now);
	struct tc *c[3];
	for (int i = 0; i < 3; i++)
		c[i] = hello(MB_KIND_SINK, 0); /* all uid 1000 */
	send2(c[0], MB_MSG_REQUEST, 6, 0);
	expect_grant(c[0], MB_ST_OK, 6);
	send2(c[1], MB_MSG_REQUEST, 10, 0);
	expect_grant(c[1], MB_ST_OK, 4); /* cut to what the uid has left */
	send2(c[2], MB_MSG_REQUEST, 1, 0);
	expect_grant(c[2], MB_ST_UIDCAP, 0);
	send2(c[2], MB_MSG_RESERVE, 1, 0);
	expect_grant(c[2], MB_ST_UIDCAP, 0);
	/* Another user and root are not charged for it. */
	struct tc *other = hello_as(2000, MB_KIND_SINK, 0, MB_ST_OK);
	send2(other, MB_MSG_REQUEST, 10, 0);
	expect_grant(other, MB_ST_OK, 10);
	struct tc *root = hello_as(0, MB_KIND_SINK, 0, MB_ST_OK);
	send2(root, MB_MSG_REQUEST, 10, 0);
	expect_grant(root, MB_ST_OK, 10);
	/* Returning frees room for the uid. */
	ret(c[0], 6, MB_ST_OK);
	send2(c[2], MB_MSG_RESERVE, 6, 0);
	expect_grant(c[2], MB_ST_OK, 6);
	for (int i = 0; i < 3; i++)
		bye(c[i]);
	bye(other);
	bye(root);
	finish();
}
END_TEST

/* A pending request counts against the uid's cap while it waits. */
START_TEST(uid_cap_counts_pending)
{
	start(0);
	broker_free(b);
	setup_cfg(10);
	cfg.uid_cap = 8;
	b = broker_new(&cfg, &ops, NULL, now);
	struct tc *holder = hello_as(2000, MB_KIND_BIDI, 0, MB_ST_OK);
	send2(holder, MB_MSG_REQUEST, 8, 0);
	expect_grant(holder, MB_ST_OK, 8);
	struct tc *a = hello(MB_KIND_SINK, 0);
	struct tc *a2 = hello(MB_KIND_SINK, 0);
	send2(a, MB_MSG_REQUEST, 6, 0); /* 2 from the pool, waits for 4 */
	expect_query(holder, MB_URG_REQUEST, 4);
	send2(a2, MB_MSG_REQUEST, 6, 0); /* cut to the 2 left for uid 1000 */
	none(a2);
	answer(holder, 4);
	expect_grant(a, MB_ST_OK, 6);
	expect_query(holder, MB_URG_REQUEST, 2);
	answer(holder, 0);
	expect_grant(a2, MB_ST_OK, 0);
	bye(a);
	bye(a2);
	bye(holder);
	finish();
}
END_TEST

/* uid_connections: one connection too many is refused at once. */
START_TEST(uid_connection_limit)
{
	start(0);
	broker_free(b);
	setup_cfg(10);
	cfg.uid_connections = 2;
	b = broker_new(&cfg, &ops, NULL, now);
	struct tc *c[3];
	for (int i = 0; i < 3; i++) {
		c[i] = tc_conn_as(1000, 1000);
		ck_assert_int_eq(broker_admit(b, c[i]->bc, now), i < 2 ? 0 : -1);
	}
	struct mb_msg e = expect(c[2], MB_MSG_ERROR);
	ck_assert_uint_eq(e.w[MB_W_ERR_STATUS], MB_ST_UIDCAP);
	ck_assert(c[2]->closed);
	bye(c[2]);
	struct tc *root = tc_conn_as(0, 0);
	ck_assert_int_eq(broker_admit(b, root->bc, now), 0);
	struct tc *again = tc_conn_as(1000, 1000);
	ck_assert_int_eq(broker_admit(b, again->bc, now), -1);
	bye(c[0]);
	bye(again);
	again = tc_conn_as(1000, 1000);
	ck_assert_int_eq(broker_admit(b, again->bc, now), 0);
	bye(again);
	bye(c[1]);
	bye(root);
	finish();
}
END_TEST

/* Silent connections, even of users not allowed, are closed after
 * handshake_ms; unregistered readers after idle_ms of silence;
 * registered clients never. */
START_TEST(handshake_and_idle_timeouts)
{
	start(0);
	broker_free(b);
	setup_cfg(10);
	uid_t uids[] = { 1000 };
	cfg.uids = uids;
	cfg.nuids = 1;
	cfg.handshake_ms = 100;
	cfg.idle_ms = 1000;
	b = broker_new(&cfg, &ops, NULL, now);
	struct tc *silent = tc_conn_as(1000, 1000);
	struct tc *stranger = tc_conn_as(3000, 3000);
	struct tc *reader = tc_conn_as(1000, 1000);
	struct tc *reg = hello(MB_KIND_SINK, 0);
	ck_assert_uint_eq(broker_next_deadline(b), now + 100);
	advance(50);
	query(reader);
	advance(49);
	ck_assert(!silent->closed && !stranger->closed);
	advance(1);
	ck_assert(silent->closed && stranger->closed);
	ck_assert(!reader->closed && !reg->closed);
	ck_assert_uint_eq(broker_next_deadline(b), now - 50 + 1000);
	advance(949);
	ck_assert(!reader->closed);
	advance(1);
	ck_assert(reader->closed);
	ck_assert_uint_eq(broker_next_deadline(b), UINT64_MAX);
	advance(100000);
	ck_assert(!reg->closed);
	bye(silent);
	bye(stranger);
	bye(reader);
	bye(reg);
	finish();
}
END_TEST

/* Issue 10: with 20 silent bidi clients registered first, a REQUEST got 0
 * pages after 2 s and a RESERVE took 20 s while a holder of 100 pages was
 * connected.  Clients holding nothing are not asked; holders are asked in
 * parallel, the largest first. */
START_TEST(give_back_asks_holders_in_parallel)
{
	start(0);
	broker_free(b);
	setup_cfg(100);
	b = broker_new(&cfg, &ops, NULL, now);
	struct tc *idle[20];
	for (int i = 0; i < 20; i++)
		idle[i] = hello(MB_KIND_BIDI, 0);
	struct tc *small = hello(MB_KIND_BIDI, 0);
	struct tc *big = hello(MB_KIND_BIDI, 0);
	send2(small, MB_MSG_REQUEST, 30, 0);
	expect_grant(small, MB_ST_OK, 30);
	send2(big, MB_MSG_REQUEST, 70, 0);
	expect_grant(big, MB_ST_OK, 70);
	struct tc *sink = hello(MB_KIND_SINK, 0);
	send2(sink, MB_MSG_REQUEST, 80, 0);
	expect_query(big, MB_URG_REQUEST, 70);
	expect_query(small, MB_URG_REQUEST, 10);
	for (int i = 0; i < 20; i++)
		none(idle[i]);
	answer(small, 10);
	none(sink);
	answer(big, 70);
	expect_grant(sink, MB_ST_OK, 80); /* no clock moved */
	ret(sink, 80, MB_ST_OK);
	send2(big, MB_MSG_REQUEST, 70, 0);
	expect_grant(big, MB_ST_OK, 70);
	send2(small, MB_MSG_REQUEST, 10, 0);
	expect_grant(small, MB_ST_OK, 10);
	/* A RESERVE with one silent holder and one that answers ends at the
	 * first share deadline, not one deadline per client. */
	send2(sink, MB_MSG_RESERVE, 90, 0);
	expect_query(big, MB_URG_RESERVE, 70);
	expect_query(small, MB_URG_RESERVE, 20);
	answer(small, 20);
	advance(SHARE_DL - 1);
	none(sink);
	advance(1);
	expect_grant(sink, MB_ST_DENIED, 0);
	pool_is(20);
	for (int i = 0; i < 20; i++) {
		none(idle[i]);
		bye(idle[i]);
	}
	bye(small);
	bye(big);
	bye(sink);
	finish();
}
END_TEST

/* Issue 10: the command name shown in status was whatever the client
 * sent, control characters included. */
START_TEST(command_name_sanitised)
{
	start(10);
	struct tc *c = tc_conn_as(1000, 1000);
	struct mb_msg m;
	mb_msg_init(&m, MB_MSG_HELLO, 1);
	m.w[MB_W_HELLO_VERSION] = MB_WIRE_VERSION;
	m.w[MB_W_HELLO_KIND] = MB_KIND_SINK;
	mb_wire_put_comm(&m.w[MB_W_HELLO_COMM], "a\033[2J\n\"\x80z");
	deliver(c, &m);
	expect(c, MB_MSG_HELLO_ACK);
	struct tc *p = calloc(1, sizeof(*p));
	struct broker_peer peer = { .pid = 1, .uid = 0, .gid = 0 };
	strcpy(peer.comm, "x\ty\x7f");
	p->bc = broker_connect(b, &peer, p, now);
	send2(p, MB_MSG_HELLO, MB_WIRE_VERSION, MB_KIND_SINK);
	expect(p, MB_MSG_HELLO_ACK);
	send2(c, MB_MSG_STATUS, 0, 0);
	expect(c, MB_MSG_STATUS_HEAD);
	char name[MB_WIRE_COMM_WORDS * 8 + 1];
	mb_wire_get_comm(&expect(c, MB_MSG_STATUS_CLIENT).w[MB_W_SC_COMM], name);
	ck_assert_str_eq(name, "a?[2J?\"?z");
	mb_wire_get_comm(&expect(c, MB_MSG_STATUS_CLIENT).w[MB_W_SC_COMM], name);
	ck_assert_str_eq(name, "x?y?");
	expect(c, MB_MSG_STATUS_END);
	bye(c);
	bye(p);
}
END_TEST

/* ---- claims after a restart, balances kept for a returning client ------ */

#define GRACE 30000

/* A broker that keeps a leaving KEEP client's balance for GRACE ms. */
static void start_with_grace(uint64_t initial)
{
	start(initial);
	cfg.claim_grace_ms = GRACE;
	broker_reconfigure(b, &cfg, now);
}

/* HELLO as uid with a name and flags. */
static struct tc *hello_named(unsigned kind, uid_t uid, const char *name, uint64_t flags)
{
	struct tc *c = tc_conn_as(uid, uid);
	struct mb_msg m;
	mb_msg_init(&m, MB_MSG_HELLO, ++c->seq);
	m.w[MB_W_HELLO_VERSION] = MB_WIRE_VERSION;
	m.w[MB_W_HELLO_KIND] = kind;
	m.w[MB_W_HELLO_FLAGS] = flags;
	mb_wire_put_comm(&m.w[MB_W_HELLO_COMM], name);
	deliver(c, &m);
	struct mb_msg a = expect(c, MB_MSG_HELLO_ACK);
	ck_assert_uint_eq(a.w[MB_W_ACK_STATUS], MB_ST_OK);
	c->id = a.w[MB_W_ACK_CLIENT_ID];
	return c;
}

static void claim(struct tc *c, uint64_t pages, unsigned status, uint64_t balance)
{
	send2(c, MB_MSG_CLAIM, pages, 0);
	struct mb_msg a = expect(c, MB_MSG_CLAIM_ACK);
	ck_assert_msg(a.w[MB_W_CLAIMACK_STATUS] == status &&
		      a.w[MB_W_CLAIMACK_BALANCE] == balance,
		      "CLAIM %lu: %s balance %lu, expected %s %lu", (unsigned long)pages,
		      mb_wire_status_name((unsigned)a.w[0]), (unsigned long)a.w[1],
		      mb_wire_status_name(status), (unsigned long)balance);
	ck_assert_uint_eq(a.seq, c->seq);
	bal(c, (int64_t)balance);
}

/* Defect 6: a new broker learns what clients hold and never lends it twice. */
START_TEST(claim_after_restart)
{
	start(100);
	struct tc *fs = hello(MB_KIND_BIDI, 0);
	struct tc *app = hello(MB_KIND_SINK, 0);
	claim(fs, 60, MB_ST_OK, 60);
	pool_is(40);
	/* More than what remains: the rest is refused, nobody is asked. */
	claim(app, 70, MB_ST_CLAIM_PARTIAL, 40);
	none(fs);
	pool_is(0);
	/* A sink asking now gets nothing: every page is claimed. */
	struct tc *sink = hello(MB_KIND_SINK, 0);
	send2(sink, MB_MSG_REQUEST, 50, 0);
	expect_query(fs, MB_URG_REQUEST, 50);
	answer(fs, 0);
	expect_grant(sink, MB_ST_OK, 0);
	/* One claim per connection. */
	claim(fs, 80, MB_ST_INVAL, 60);
	/* A claim below the balance gives the rest back. */
	struct tc *fs2 = hello(MB_KIND_BIDI, 0);
	send2(app, MB_MSG_RETURN, 40, 0);
	expect(app, MB_MSG_RETURN_ACK);
	send2(fs2, MB_MSG_REQUEST, 10, 0);
	expect_grant(fs2, MB_ST_OK, 10);
	claim(fs2, 4, MB_ST_OK, 4);
	pool_is(36);
	bye(fs);
	bye(fs2);
	bye(app);
	bye(sink);
	pool_is(100);
	finish();
}
END_TEST

START_TEST(claim_refusals)
{
	start(100);
	cfg.cap = 30;
	broker_reconfigure(b, &cfg, now);
	struct tc *obs = hello(MB_KIND_OBSERVER, 0);
	struct tc *src = hello(MB_KIND_SOURCE, 10);
	claim(obs, 5, MB_ST_PERM, 0);
	claim(src, 5, MB_ST_PERM, 0);
	claim(src, 5, MB_ST_PERM, 0); /* a refusal does not use up the claim */
	/* The per-client cap bounds a claim as it bounds a request. */
	struct tc *a = hello(MB_KIND_SINK, 0);
	claim(a, 50, MB_ST_CLAIM_PARTIAL, 30);
	struct tc *c = hello(MB_KIND_SINK, 0);
	claim(c, MB_WIRE_MAX_PAGES + 1, MB_ST_INVAL, 0);
	/* Not while a request of the same client waits. */
	struct tc *x = hello(MB_KIND_SINK, 0);
	send2(x, MB_MSG_REQUEST, 30, 0);
	expect_grant(x, MB_ST_OK, 30);
	send2(c, MB_MSG_REQUEST, 30, 0);
	expect_grant(c, MB_ST_OK, 30);
	struct tc *d = hello(MB_KIND_SINK, 0);
	send2(d, MB_MSG_RESERVE, 20, 5000);
	expect_query(src, MB_URG_REQUEST, 10);
	claim(d, 5, MB_ST_BUSY, 0);
	send2(d, MB_MSG_CANCEL, 0, 0);
	expect_grant(d, MB_ST_CANCELED, 0);
	expect(d, MB_MSG_CANCEL_ACK);
	answer(src, 0);
	bye(x);
	/* Before HELLO a claim is refused. */
	struct tc *e = tc_conn_as(1000, 1000);
	send2(e, MB_MSG_CLAIM, 5, 0);
	ck_assert_uint_eq(expect(e, MB_MSG_ERROR).w[MB_W_ERR_STATUS], MB_ST_NOTREG);
	bye(e);
	bye(d);
	bye(c);
	bye(a);
	bye(src);
	bye(obs);
	pool_is(100);
	finish();
}
END_TEST

/* A claim is bounded by the uid's cap like a request: a user cannot
 * reconnect its way past uid_cap. */
START_TEST(claim_bounded_by_uid_cap)
{
	start(0);
	broker_free(b);
	setup_cfg(100);
	cfg.uid_cap = 10;
	b = broker_new(&cfg, &ops, NULL, now);
	struct tc *a = hello_named(MB_KIND_SINK, 1000, "a", 0);
	struct tc *c = hello_named(MB_KIND_SINK, 1000, "c", 0);
	send2(a, MB_MSG_REQUEST, 6, 0);
	expect_grant(a, MB_ST_OK, 6);
	claim(c, 50, MB_ST_CLAIM_PARTIAL, 4);
	pool_is(90);
	bye(a);
	bye(c);
	finish();
}
END_TEST

/* A deny like policy.c's: uid 1000 refused, root served. */
static int t_deny;
static unsigned t_admit(void *ctx, struct bclient *c, unsigned type, uint64_t pages)
{
	(void)ctx;
	(void)type;
	(void)pages;
	return t_deny && broker_client_peer(c)->uid != 0 ? MB_ST_LOWMEM : MB_ST_OK;
}

/* A claim is refused what a request would be: a user could reconnect and
 * claim quota past deny, where its requests got LOWMEM. */
START_TEST(claim_refused_in_deny)
{
	static const struct broker_ops deny_ops = { .send = t_send, .close = t_close,
						    .admit = t_admit };
	start(0);
	broker_free(b);
	setup_cfg(100);
	b = broker_new(&cfg, &deny_ops, NULL, now);
	t_deny = 1;
	struct tc *a = hello_named(MB_KIND_SINK, 1000, "a", 0);
	send2(a, MB_MSG_REQUEST, 10, 0);
	expect_grant(a, MB_ST_LOWMEM, 0);
	claim(a, 20, MB_ST_CLAIM_PARTIAL, 0);
	pool_is(100);
	struct tc *root = hello_named(MB_KIND_SINK, 0, "fs", 0);
	claim(root, 20, MB_ST_OK, 20);
	pool_is(80);
	/* Once deny ends the next connection's claim is accepted. */
	t_deny = 0;
	struct tc *a2 = hello_named(MB_KIND_SINK, 1000, "a", 0);
	claim(a2, 20, MB_ST_OK, 20);
	pool_is(60);
	bye(a);
	bye(a2);
	bye(root);
	finish();
}
END_TEST

/* A KEEP client that dies finds its balance again when it comes back. */
START_TEST(kept_balance_reclaimed)
{
	start_with_grace(100);
	struct tc *fs = hello_named(MB_KIND_BIDI, 1000, "track_fs", MB_HELLO_KEEP);
	send2(fs, MB_MSG_REQUEST, 50, 0);
	expect_grant(fs, MB_ST_OK, 50);
	bye(fs); /* killed */
	pool_is(50);
	ck_assert_uint_eq(broker_kept(b), 50);
	ck_assert_uint_eq(broker_next_deadline(b), now + GRACE);
	/* The kept balance shows in STATUS as a row with no pid. */
	struct tc *obs = hello(MB_KIND_OBSERVER, 0);
	send2(obs, MB_MSG_STATUS, 0, 0);
	expect(obs, MB_MSG_STATUS_HEAD);
	struct mb_msg row = expect(obs, MB_MSG_STATUS_CLIENT); /* the observer */
	row = expect(obs, MB_MSG_STATUS_CLIENT);
	ck_assert_uint_eq(row.w[MB_W_SC_PID], 0);
	ck_assert_uint_eq(row.w[MB_W_SC_BALANCE], 50);
	expect(obs, MB_MSG_STATUS_END);
	/* Nobody else gets it: another uid, another name, no KEEP flag. */
	struct tc *other = hello_named(MB_KIND_SINK, 1001, "track_fs", MB_HELLO_KEEP);
	struct tc *named = hello_named(MB_KIND_SINK, 1000, "sink", MB_HELLO_KEEP);
	struct tc *plain = hello_named(MB_KIND_BIDI, 1000, "track_fs", 0);
	send2(other, MB_MSG_REQUEST, 100, 0);
	expect_grant(other, MB_ST_OK, 50); /* nobody holding anything is asked */
	bal(named, 0);
	bal(plain, 0);
	/* The same uid and name with KEEP takes it back, then claims what it uses. */
	advance(GRACE - 1);
	struct tc *back = hello_named(MB_KIND_BIDI, 1000, "track_fs", MB_HELLO_KEEP);
	bal(back, 50);
	ck_assert_uint_eq(broker_kept(b), 0);
	claim(back, 45, MB_ST_OK, 45);
	pool_is(5);
	/* TERMINATE gives everything back: nothing is kept. */
	send2(back, MB_MSG_TERMINATE, 0, 0);
	expect(back, MB_MSG_TERMINATE_ACK);
	bye(back);
	ck_assert_uint_eq(broker_kept(b), 0);
	pool_is(50);
	bye(other); /* its own balance is kept for it */
	ck_assert_uint_eq(broker_kept(b), 50);
	bye(named);
	bye(plain);
	bye(obs);
	advance(GRACE);
	pool_is(100);
	finish();
}
END_TEST

/*
 * Kept balances count in the uid's holding and are taken back within the
 * caps; one user's departures cannot fill the table of kept balances.
 * (KEEP once let a user hold many times uid_cap and client_cap: kept
 * pages counted nowhere, several departures of one name came back as one
 * balance, and 1024 entries of one user left none for track_fs; a client
 * served after the others lost that by reconnecting.)
 */
START_TEST(kept_balances_within_caps)
{
	start_with_grace(2000);
	cfg.cap = 10;
	cfg.uid_cap = 20;
	broker_reconfigure(b, &cfg, now);
	struct tc *a = hello_named(MB_KIND_SINK, 1000, "x", MB_HELLO_KEEP);
	struct tc *a2 = hello_named(MB_KIND_SINK, 1000, "x", MB_HELLO_KEEP);
	send2(a, MB_MSG_REQUEST, 10, 0);
	expect_grant(a, MB_ST_OK, 10);
	send2(a2, MB_MSG_REQUEST, 10, 0);
	expect_grant(a2, MB_ST_OK, 10);
	broker_client_set_last(a2->bc, 1);
	bye(a);
	bye(a2);
	ck_assert_uint_eq(broker_kept(b), 20);
	/* The user is at its cap while its pages wait for it. */
	struct tc *y = hello_named(MB_KIND_SINK, 1000, "y", MB_HELLO_KEEP);
	send2(y, MB_MSG_REQUEST, 5, 0);
	expect_grant(y, MB_ST_UIDCAP, 0);
	/* One client takes back what client_cap lets it hold, the rest goes
	 * to the pool, and it is still served after the others. */
	struct tc *back = hello_named(MB_KIND_SINK, 1000, "x", MB_HELLO_KEEP);
	bal(back, 10);
	ck_assert_int_eq(broker_client_last(back->bc), 1);
	ck_assert_uint_eq(broker_kept(b), 0);
	pool_is(1990);
	bye(back);
	bye(y);
	advance(GRACE);
	pool_is(2000);
	/* 16 kept balances a user, and 64 of the 1024 left for root. */
	cfg.uid_cap = 0;
	broker_reconfigure(b, &cfg, now);
	for (uid_t u = 2000; u < 2061; u++) {
		for (int i = 0; i < 17; i++) {
			char name[16];
			snprintf(name, sizeof(name), "n%d", i);
			struct tc *c = hello_named(MB_KIND_SINK, u, name, MB_HELLO_KEEP);
			send2(c, MB_MSG_REQUEST, 1, 0);
			expect_grant(c, MB_ST_OK, 1);
			bye(c);
		}
		ck_assert_uint_eq(broker_kept(b), u < 2060 ? (u - 1999) * 16 : 960);
	}
	pool_is(2000 - 960);
	struct tc *fs = hello_named(MB_KIND_BIDI, 0, "track_fs", MB_HELLO_KEEP);
	send2(fs, MB_MSG_REQUEST, 10, 0);
	expect_grant(fs, MB_ST_OK, 10);
	bye(fs);
	ck_assert_uint_eq(broker_kept(b), 970);
	advance(GRACE);
	pool_is(2000);
	finish();
}
END_TEST

START_TEST(kept_balance_expires)
{
	start_with_grace(100);
	struct tc *a = hello_named(MB_KIND_SINK, 1000, "holder", MB_HELLO_KEEP);
	struct tc *a2 = hello_named(MB_KIND_SINK, 1000, "holder", MB_HELLO_KEEP);
	send2(a, MB_MSG_REQUEST, 20, 0);
	expect_grant(a, MB_ST_OK, 20);
	send2(a2, MB_MSG_REQUEST, 10, 0);
	expect_grant(a2, MB_ST_OK, 10);
	bye(a);
	advance(1000);
	bye(a2); /* same uid and name: one entry, the later grace */
	ck_assert_uint_eq(broker_kept(b), 30);
	advance(GRACE - 1);
	ck_assert_uint_eq(broker_kept(b), 30);
	pool_is(70);
	advance(1);
	ck_assert_uint_eq(broker_kept(b), 0);
	pool_is(100);
	ck_assert_uint_eq(broker_next_deadline(b), UINT64_MAX);
	/* With no grace configured nothing is kept. */
	cfg.claim_grace_ms = 0;
	broker_reconfigure(b, &cfg, now);
	struct tc *c = hello_named(MB_KIND_SINK, 1000, "holder", MB_HELLO_KEEP);
	send2(c, MB_MSG_REQUEST, 20, 0);
	expect_grant(c, MB_ST_OK, 20);
	bye(c);
	ck_assert_uint_eq(broker_kept(b), 0);
	pool_is(100);
	finish();
}
END_TEST

/*
 * A process served after the others stays so when it reconnects, with or
 * without KEEP, and so does its other new connection; another process of
 * the same user does not.  Before, a new connection started afresh: a
 * client found lying about a give-back cleared the flag by reconnecting.
 */
START_TEST(served_last_survives_reconnect)
{
	start(100);
	tc_pid = 300;
	struct tc *liar = hello_named(MB_KIND_BIDI, 1000, "liar", 0);
	struct tc *other = hello_named(MB_KIND_BIDI, 1000, "liar", 0);
	broker_client_set_last(liar->bc, 1);
	/* A connection of the same process while the flagged one is there. */
	struct tc *more = hello_named(MB_KIND_SINK, 1000, "renamed", 0);
	ck_assert_int_eq(broker_client_last(more->bc), 1);
	ck_assert_int_eq(broker_client_last(other->bc), 0); /* made before */
	bye(liar);
	bye(more);
	bye(other);
	struct tc *again = hello_named(MB_KIND_BIDI, 1000, "liar", 0);
	ck_assert_int_eq(broker_client_last(again->bc), 1);
	/* another process of the user, the same name */
	tc_pid = 301;
	struct tc *honest = hello_named(MB_KIND_SINK, 1000, "liar", 0);
	ck_assert_int_eq(broker_client_last(honest->bc), 0);
	bye(again);
	bye(honest);
	/* Another uid with a reused pid is not that process, nor is a later
	 * process of the same user that got the pid again. */
	tc_pid = 300;
	struct tc *stranger = hello_named(MB_KIND_SINK, 2000, "x", 0);
	ck_assert_int_eq(broker_client_last(stranger->bc), 0);
	bye(stranger);
	tc_start = 12345;
	struct tc *reused = hello_named(MB_KIND_SINK, 1000, "liar", 0);
	ck_assert_int_eq(broker_client_last(reused->bc), 0);
	bye(reused);
	finish();
}
END_TEST

/* Claims, kept balances and departures at random: the invariants hold
 * after every event, and every page is back at the end. */
START_TEST(claim_soak)
{
	enum { N = 12, STEPS = 3000 };
	static const char *const names[] = { "fs", "cache", "app" };
	start_with_grace(200);
	struct tc *c[N];
	unsigned seed = 777;
	for (int i = 0; i < N; i++)
		c[i] = hello_named(i % 2 ? MB_KIND_BIDI : MB_KIND_SINK, 1000 + i % 2,
				names[i % 3], MB_HELLO_KEEP);
	for (int step = 0; step < STEPS; step++) {
		seed = seed * 1103515245 + 12345;
		int i = (int)((seed >> 16) % N);
		drain_all(c, N);
		switch ((seed >> 8) % 6) {
		case 0:
			send2(c[i], MB_MSG_REQUEST, (seed >> 4) % 40, 0);
			break;
		case 1: {
			int64_t h = broker_client_balance(c[i]->bc);
			send2(c[i], MB_MSG_RETURN, h > 0 ? (uint64_t)h / 2 : 0, 0);
			break;
		}
		case 2:
			send2(c[i], MB_MSG_CLAIM, (seed >> 4) % 60, 0);
			break;
		case 3:
			answer(c[i], (seed >> 4) % 5);
			break;
		case 4:
			advance(GRACE / 7);
			break;
		case 5:
			bye(c[i]);
			c[i] = hello_named(i % 2 ? MB_KIND_BIDI : MB_KIND_SINK, 1000 + i % 2,
					names[(seed >> 3) % 3], (seed >> 5) % 2 ? MB_HELLO_KEEP : 0);
			break;
		}
	}
	for (int i = 0; i < N; i++)
		bye(c[i]);
	advance(GRACE);
	ck_assert_uint_eq(broker_kept(b), 0);
	pool_is(200);
	finish();
}
END_TEST

static Suite *broker_suite(void)
{
	Suite *s = suite_create("broker");
	TCase *t = tcase_create("conformance");
	tcase_add_test(t, t01_init_and_terminate);
	tcase_add_test(t, t02_normal_request);
	tcase_add_test(t, t03_normal_reserve);
	tcase_add_test(t, t04_request_on_requesting);
	tcase_add_test(t, t05_request_on_reserving);
	tcase_add_test(t, t06_reserve_on_reserving);
	tcase_add_test(t, t07_reserve_on_requesting);
	tcase_add_test(t, t08_request_on_reserved);
	tcase_add_test(t, t09_request_on_requested);
	tcase_add_test(t, t10_reserve_on_requested);
	tcase_add_test(t, t11_reserve_on_reserved);
	tcase_add_test(t, t12_return_on_request);
	tcase_add_test(t, t13_multiple_requests);
	tcase_add_test(t, t14_client_termination);
	tcase_add_test(t, t15_io_errors);
	tcase_add_test(t, t16_dump_debug);
	suite_add_tcase(s, t);
	t = tcase_create("defects");
	tcase_add_test(t, defect_reserve_fails_early_on_query_built_at_other_level);
	tcase_add_test(t, defect_zero_page_request_wedges);
	tcase_add_test(t, defect_negative_pool_negative_return);
	tcase_add_test(t, defect_terminate_ack_ordering);
	tcase_add_test(t, defect_repeat_source_registration);
	tcase_add_test(t, defect_reconnect_after_failure);
	tcase_add_test(t, defect_grant_to_other_connection);
	tcase_add_test(t, defect_status_dates);
	tcase_add_test(t, defect_reserve_revived);
	tcase_add_test(t, defect_second_request_dropped);
	tcase_add_test(t, defect_no_timeouts);
	tcase_add_test(t, defect_trust_everything);
	tcase_add_test(t, source_declaration_bounded);
	tcase_add_test(t, defect_32bit_overflow);
	suite_add_tcase(s, t);
	t = tcase_create("features");
	tcase_add_test(t, request_deadline_partial);
	tcase_add_test(t, reserve_deadline_fails_cleanly);
	tcase_add_test(t, share_deadline_counts_as_denial);
	tcase_add_test(t, cancel_pending);
	tcase_add_test(t, per_client_cap);
	tcase_add_test(t, allowed_uids);
	tcase_add_test(t, reload_shrinks_total);
	tcase_add_test(t, disconnect_reclaims);
	tcase_add_test(t, bad_inputs);
	tcase_add_test(t, source_repaid_before_pool);
	tcase_add_test(t, events_and_policy_hook);
	tcase_add_test(t, shutdown_answers_waiters);
	tcase_add_test(t, random_soak);
	tcase_add_test(t, uid_cap_across_connections);
	tcase_add_test(t, uid_cap_counts_pending);
	tcase_add_test(t, uid_connection_limit);
	tcase_add_test(t, handshake_and_idle_timeouts);
	tcase_add_test(t, give_back_asks_holders_in_parallel);
	tcase_add_test(t, command_name_sanitised);
	suite_add_tcase(s, t);
	t = tcase_create("claims");
	tcase_add_test(t, claim_after_restart);
	tcase_add_test(t, claim_refusals);
	tcase_add_test(t, claim_bounded_by_uid_cap);
	tcase_add_test(t, kept_balances_within_caps);
	tcase_add_test(t, claim_refused_in_deny);
	tcase_add_test(t, kept_balance_reclaimed);
	tcase_add_test(t, kept_balance_expires);
	tcase_add_test(t, served_last_survives_reconnect);
	tcase_add_test(t, claim_soak);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(broker_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
