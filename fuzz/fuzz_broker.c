/*
 * fuzz_broker.c - libFuzzer harness of the broker state machine
 * (mbserver/broker.c), driven as the daemon drives it.
 *
 * The input is a configuration followed by a script of events: a peer
 * connects (uid, gid, pid, command name), a client sends a frame (built
 * field by field, or raw bytes through the decoder as server.c does), a
 * client answers the last give-back query it was sent, a client goes
 * away, the clock moves (by an amount or to the next deadline), the
 * configuration changes (SIGHUP), a policy event is posted.  After every
 * event the harness runs broker_check_invariants() -- pool + balances +
 * pages held by queued requests = the broker's own pages, and the rest of
 * its accounting -- and aborts if one is broken.  It also checks, from
 * outside, that every frame the broker sends is a valid server frame
 * (encodes, decodes back, counts within the wire maximum), that nothing is
 * sent to a client after its close, and that when every client is gone
 * the pool holds every page again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "fz_input.h"
#include "mb_log.h"
#include "mb_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FZ_CLIENTS 12
#define FZ_MAX_MS (UINT64_C(1) << 40)
#define FZ_UID 1000
#define FZ_GID 3000

struct fc {
	struct bclient *bc;
	int closed;        /* the broker asked to close it */
	uint32_t seq;      /* last sequence number the client used */
	uint32_t sq_seq;   /* last SHARE_QUERY received, 0: none */
	uint64_t sq_pages;
};

static struct fc clients[FZ_CLIENTS];
static struct broker *b;
static uint64_t now;
static uint64_t initial; /* pages of the current configuration */
static uid_t uids[1] = { FZ_UID };
static gid_t gids[1] = { FZ_GID };

/* A frame from the broker must be one a client can decode. */
static void check_out(const struct mb_msg *m)
{
	unsigned char buf[MB_WIRE_MAX_FRAME];
	FZ_CHECK(m->type >= MB_MSG_HELLO_ACK);
	int n = mb_wire_encode(m, buf, sizeof(buf));
	FZ_CHECK(n > 0);
	struct mb_msg d;
	FZ_CHECK(mb_wire_decode(buf, (size_t)n, &d) == n);
	switch (m->type) {
	case MB_MSG_GRANT:
		FZ_CHECK(m->w[MB_W_GRANT_STATUS] < MB_ST_COUNT);
		FZ_CHECK(mb_wire_count_ok(m->w[MB_W_GRANT_PAGES]));
		break;
	/* The total the clients see must be one they accept. */
	case MB_MSG_HELLO_ACK:
		FZ_CHECK(mb_wire_count_ok(m->w[MB_W_ACK_TOTAL]));
		break;
	case MB_MSG_QUERY_REPLY:
		FZ_CHECK(mb_wire_count_ok(m->w[MB_W_QR_TOTAL]));
		break;
	case MB_MSG_STATUS_HEAD:
		FZ_CHECK(mb_wire_count_ok(m->w[MB_W_SH_TOTAL]));
		break;
	case MB_MSG_SHARE_QUERY:
		FZ_CHECK(m->w[MB_W_SQ_URGENCY] < MB_URG_COUNT);
		FZ_CHECK(mb_wire_count_ok(m->w[MB_W_SQ_PAGES]));
		break;
	case MB_MSG_REPAY:
		FZ_CHECK(mb_wire_count_ok(m->w[MB_W_REPAY_PAGES]));
		break;
	default:
		break;
	}
}

static void f_send(void *ctx, struct bclient *bc, const struct mb_msg *m)
{
	struct fc *c = broker_client_user(bc);
	(void)ctx;
	FZ_CHECK(!c->closed);
	check_out(m);
	if (m->type == MB_MSG_SHARE_QUERY) {
		c->sq_seq = m->seq;
		c->sq_pages = m->w[MB_W_SQ_PAGES];
	}
}

static void f_close(void *ctx, struct bclient *bc)
{
	struct fc *c = broker_client_user(bc);
	(void)ctx;
	c->closed = 1;
}

static const struct broker_ops ops = { .send = f_send, .close = f_close };

static void read_config(struct fz_in *in, struct broker_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->page_size = 4096;
	cfg->initial = fz_num(in);
	if (cfg->initial > MB_WIRE_MAX_PAGES)
		cfg->initial = MB_WIRE_MAX_PAGES;
	cfg->cap = fz_num(in);
	cfg->request_deadline_ms = fz_num(in) % FZ_MAX_MS;
	cfg->share_deadline_ms = fz_num(in) % FZ_MAX_MS;
	cfg->pool_low = fz_num(in);
	uint8_t who = fz_byte(in);
	if (who & 1) {
		cfg->uids = uids;
		cfg->nuids = 1;
	}
	if (who & 2) {
		cfg->gids = gids;
		cfg->ngids = 1;
	}
}

/* The daemon calls broker_disconnect() once a closed client's frames are
 * out; here, before the next event. */
static void reap(void)
{
	for (int i = 0; i < FZ_CLIENTS; i++) {
		struct fc *c = &clients[i];
		if (c->bc && c->closed) {
			broker_disconnect(b, c->bc, now);
			memset(c, 0, sizeof(*c));
		}
	}
}

static void check(void)
{
	reap();
	FZ_CHECK(broker_check_invariants(b) == 0);
	uint64_t reg = 0;
	for (int i = 0; i < FZ_CLIENTS; i++)
		if (clients[i].bc && broker_client_registered(clients[i].bc))
			reg++;
	FZ_CHECK(reg == broker_nclients(b));
}

static struct fc *pick(struct fz_in *in)
{
	struct fc *c = &clients[fz_byte(in) % FZ_CLIENTS];
	return c->bc && !c->closed ? c : NULL;
}

static void ev_connect(struct fz_in *in)
{
	struct fc *c = &clients[fz_byte(in) % FZ_CLIENTS];
	if (c->bc)
		return;
	static const uid_t who[4] = { 0, FZ_UID, 2000, 2001 };
	uint8_t k = fz_byte(in);
	struct broker_peer p;
	memset(&p, 0, sizeof(p));
	p.uid = who[k & 3];
	p.gid = (k & 4) ? FZ_GID : p.uid;
	p.pid = (pid_t)fz_num(in);
	fz_bytes(in, p.comm, fz_byte(in) % sizeof(p.comm));
	memset(c, 0, sizeof(*c));
	c->bc = broker_connect(b, &p, c, now);
	FZ_CHECK(c->bc != NULL);
}

/* A frame built field by field: mostly well formed, any values. */
static void ev_frame(struct fz_in *in)
{
	static const unsigned types[] = {
		MB_MSG_HELLO, MB_MSG_REQUEST, MB_MSG_RESERVE, MB_MSG_RETURN,
		MB_MSG_CANCEL, MB_MSG_QUERY, MB_MSG_STATUS, MB_MSG_TERMINATE,
		MB_MSG_SUBSCRIBE, MB_MSG_SHARE_ANSWER, MB_MSG_HELLO, MB_MSG_REQUEST,
		MB_MSG_RESERVE, MB_MSG_RETURN, MB_MSG_SHARE_ANSWER,
	};
	struct fc *c = pick(in);
	uint8_t t = fz_byte(in);
	unsigned type = t < 0xf0 ? types[t % (sizeof(types) / sizeof(types[0]))] : fz_byte(in);
	if (c == NULL || mb_wire_payload_words(type) < 0)
		return;
	uint8_t s = fz_byte(in);
	uint32_t seq = s == 0xff ? (uint32_t)fz_raw64(in) : c->seq + 1 + s % 4;
	struct mb_msg m;
	mb_msg_init(&m, type, seq);
	c->seq = seq;
	for (int i = 0; i < mb_wire_payload_words(type); i++)
		m.w[i] = fz_num(in);
	if (type == MB_MSG_HELLO && fz_byte(in) < 0xc0)
		m.w[MB_W_HELLO_VERSION] = MB_WIRE_VERSION;
	broker_message(b, c->bc, &m, now);
}

/* Raw bytes through the decoder, as the daemon reads them. */
static void ev_raw(struct fz_in *in)
{
	struct fc *c = pick(in);
	unsigned char buf[MB_WIRE_MAX_FRAME];
	size_t len = fz_bytes(in, buf, fz_byte(in) % (sizeof(buf) + 1));
	if (c == NULL)
		return;
	struct mb_msg m;
	int r = mb_wire_decode(buf, len, &m);
	if (r > 0) {
		c->seq = m.seq;
		broker_message(b, c->bc, &m, now);
	} else if (r < 0) {
		unsigned type = len >= 8 ? (unsigned)(buf[6] | buf[7] << 8) : 0;
		broker_bad_frame(b, c->bc, (unsigned)-r, type, now);
	}
}

/* Answer the last give-back query, with some of what was asked or more. */
static void ev_answer(struct fz_in *in)
{
	struct fc *c = pick(in);
	uint8_t k = fz_byte(in);
	if (c == NULL || c->sq_seq == 0)
		return;
	struct mb_msg m;
	mb_msg_init(&m, MB_MSG_SHARE_ANSWER, c->sq_seq);
	uint64_t have = broker_client_balance(c->bc) > 0 ?
		(uint64_t)broker_client_balance(c->bc) : 0;
	m.w[MB_W_ANS_PAGES] = k < 0x80 ? (c->sq_pages < have ? c->sq_pages : have) :
		k < 0xc0 ? have / 2 : fz_num(in);
	c->sq_seq = 0;
	broker_message(b, c->bc, &m, now);
}

static void ev_time(struct fz_in *in, int to_deadline)
{
	if (to_deadline) {
		uint64_t d = broker_next_deadline(b);
		if (d != UINT64_MAX && d > now)
			now = d;
	} else {
		now += fz_num(in) % FZ_MAX_MS;
	}
	if (getenv("FZ_VERBOSE"))
		mb_log(MB_LOG_DEBUG, "tick at %lu", (unsigned long)now);
	broker_tick(b, now);
	/* A deadline of 0 ms falls due at once; the daemon then ticks again
	 * at the same time.  That must settle: each tick can only move on to
	 * a client not asked yet. */
	for (int i = 0; broker_next_deadline(b) <= now; i++) {
		FZ_CHECK(i < 1000);
		check();
		broker_tick(b, now);
	}
}

static void ev_reconfigure(struct fz_in *in)
{
	struct broker_config cfg;
	read_config(in, &cfg);
	initial = cfg.initial;
	broker_reconfigure(b, &cfg, now);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* A broken invariant is logged at ERR before the abort; FZ_VERBOSE=1
	 * shows the broker's whole story when a crash is replayed. */
	mb_log_init("fuzz_broker", 2, getenv("FZ_VERBOSE") ? MB_LOG_DEBUG : MB_LOG_ERR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct broker_config cfg;
	read_config(&in, &cfg);
	initial = cfg.initial;
	memset(clients, 0, sizeof(clients));
	now = 1000;
	b = broker_new(&cfg, &ops, NULL, now);
	FZ_CHECK(b != NULL);
	check();
	int shutdown = 0;
	while (fz_more(&in)) {
		uint8_t op = fz_byte(&in);
		switch (op % 11) {
		case 0: if (!shutdown) ev_connect(&in); break;
		case 1: case 2: if (!shutdown) ev_frame(&in); break;
		case 3: if (!shutdown) ev_raw(&in); break;
		case 4: if (!shutdown) ev_answer(&in); break;
		case 5: {
			struct fc *c = pick(&in);
			if (c) {
				broker_disconnect(b, c->bc, now);
				memset(c, 0, sizeof(*c));
			}
			break;
		}
		case 6: ev_time(&in, 0); break;
		case 7: ev_time(&in, 1); break;
		case 8: if (!shutdown) ev_reconfigure(&in); break;
		case 9: broker_post_event(b, fz_byte(&in), fz_num(&in)); break;
		case 10:
			if (op == 0xff) { /* rare: the daemon stops */
				broker_shutdown(b, now);
				shutdown = 1;
			}
			break;
		}
		check();
	}
	for (int i = 0; i < FZ_CLIENTS; i++)
		if (clients[i].bc) {
			broker_disconnect(b, clients[i].bc, now);
			memset(&clients[i], 0, sizeof(clients[i]));
			check();
		}
	FZ_CHECK(broker_nclients(b) == 0 && broker_nqueued(b) == 0);
	/* Every page is back. */
	FZ_CHECK(broker_pool(b) == (int64_t)initial);
	broker_free(b);
	b = NULL;
	return 0;
}
