/*
 * broker.c - the brokering state machine (see broker.h).
 *
 * Accounting.  The broker owns `initial` pages.  Sources declare pages
 * they own; those count in the total but enter the pool only when a source
 * gives some up, which drives its balance below zero.  At every moment
 *
 *     pool + sum(balances) + sum(acquired by queued requests) = initial
 *     total = initial + sum(declared source pages)
 *
 * and every balance is >= 0, except a source's, which is >= -declared.
 * Counting what a source holds as its balance plus its declared pages,
 * the same equation reads pool + sum(holdings) + in flight = total.
 * The pool goes negative (a debt) when a source leaves with pages lent out
 * or a reload shrinks the total below what is lent; nothing is handed out
 * from the pool until returns pay the debt.  broker_check_invariants()
 * verifies all of this.
 *
 * Brokering.  A REQUEST or RESERVE is granted at once when the queue is
 * empty and the pool covers it; otherwise it joins the FIFO queue, takes
 * what the pool has, and an assignment pass asks clients that hold pages,
 * several at once (sources first, then the largest holders; newest source
 * first among equals), each for no more than it holds, until the pages
 * asked cover what the request still needs.  Clients holding nothing are
 * never asked.  The deferral rules of the pass (decide()) say whether a
 * busy client is skipped or must be waited for; a request with no one to
 * ask, no open ask and nothing to wait for ends at once: a REQUEST with
 * what it holds, a RESERVE with everything or nothing.  A RESERVE asks a
 * source at REQUEST urgency before RESERVE urgency.  Several requests
 * asking the same client in one pass are merged into one query; a client
 * has at most one open query.  Answers go to the requests that asked,
 * oldest first, and the rest to the pool; an answer that arrives after its
 * requests are gone goes to the pool too.
 *
 * Trust.  What a client declares is bounded by the configuration: only
 * root and source_uids may be sources, each declaring at most source_max
 * pages, and the total never passes MB_WIRE_MAX_PAGES; uid_cap bounds what
 * all the connections of one uid hold (queued requests counted at their
 * full size), uid_connections how many it has open.  Unregistered
 * connections are closed after handshake_ms without a frame or idle_ms of
 * silence.  When the queue is empty the pool repays sources
 * first.  Every wait is bounded: a REQUEST by the configured deadline (or
 * the client's shorter one), a RESERVE by the client's deadline if any, a
 * share query by the share deadline, after which it counts as a denial.
 *
 * Claims.  After a broker restart, clients still hold the memory the old
 * broker lent them.  A client declares it with one CLAIM per connection:
 * its balance becomes the claim as far as the pool allows (the rest is
 * reported as refused, never taken from another client).  A client that
 * said HELLO with MB_HELLO_KEEP and leaves without TERMINATE has its
 * balance kept out of the pool for claim_grace; the same uid and name
 * saying HELLO with KEEP gets it back, otherwise it returns to the pool
 * when the grace is over.  Kept pages count with the balances in the
 * accounting equation.
 */
#include "broker.h"
#include "mb_log.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar) \
	for ((var) = TAILQ_FIRST(head); \
	     (var) && ((tvar) = TAILQ_NEXT(var, field), 1); (var) = (tvar))
#endif

enum cl_state { CL_NEW, CL_REG, CL_GONE };

struct bclient;
TAILQ_HEAD(clist, bclient);

#define SHARE_NONE (-1)
#define NO_DEADLINE UINT64_MAX

/* What one request knows of one client: the urgency levels at which it
 * already answered, and the query it has yet to answer for it. */
struct answered {
	uint64_t id;
	unsigned levels;       /* bit per enum mb_urgency */
	struct bclient *asked; /* open ask, or NULL */
	uint64_t pages;        /* pages asked of it for this request */
};

struct breq {
	int active;
	int complete;
	unsigned urg;      /* MB_URG_REQUEST or MB_URG_RESERVE */
	unsigned status;   /* reply status once complete */
	uint32_t seq;
	uint64_t asked, need, acquired;
	uint64_t started, deadline;
	unsigned nsharers; /* clients asked for this request, not answered yet */
	struct answered *ans;
	size_t nans, capans;
	TAILQ_ENTRY(bclient) qlink;
};

struct bclient {
	uint64_t id;
	enum cl_state state;
	int allowed;
	int heard;          /* sent at least one frame */
	uint64_t since;     /* connected, or last frame while unregistered */
	struct clist *timer; /* fresh or quiet list it is on, or NULL */
	TAILQ_ENTRY(bclient) tlink;
	unsigned kind;
	struct broker_peer peer;
	char comm[MB_WIRE_COMM_WORDS * 8 + 1];
	int64_t balance;
	uint64_t source_pages;
	unsigned events;
	struct breq req;
	/* The one share query of a bidi client: built during a pass, then sent. */
	int keep;          /* HELLO asked to keep the balance after a disconnect */
	int claim_done;    /* its one CLAIM was made */
	int sh_level;
	int sh_sent;
	int sh_building;
	uint64_t sh_pages, sh_sent_at, sh_deadline;
	uint32_t sh_seq;
	int last;              /* served after the others */
	uint64_t flags;        /* HELLO flags */
	uint64_t private_word; /* MB_W_SC_PRIVATE */
	TAILQ_ENTRY(bclient) link;  /* every connection */
	TAILQ_ENTRY(bclient) alink; /* askable: sources (newest first), then bidi */
	void *user;
};

/* A balance kept for a client that left with MB_HELLO_KEEP. */
struct kept {
	uid_t uid;
	char comm[MB_WIRE_COMM_WORDS * 8 + 1];
	uint64_t pages;
	uint64_t expires;
	int last;              /* the client was served after the others */
	TAILQ_ENTRY(kept) link;
};

TAILQ_HEAD(keptlist, kept);

#define LAST_PROCS 64

struct broker {
	struct broker_config cfg;
	struct broker_ops ops;
	void *ctx;
	int64_t pool;
	uint64_t source_total;
	uint64_t next_id;
	uint32_t seq;
	uint64_t start;
	uint64_t nclients; /* registered */
	uint64_t nqueued;
	uint64_t last_total;
	int pool_low_state;
	struct clist all;
	struct clist askable;
	struct clist queue;
	struct clist fresh; /* no frame yet, oldest connection first */
	struct clist quiet; /* unregistered, least recently heard first */
	struct keptlist kept;
	uint64_t nkept, kept_pages;
	/* Processes whose connection left served after the others: a new
	 * connection of theirs is so too (LAST_PROCS, oldest overwritten). */
	struct { pid_t pid; uid_t uid; uint64_t start; } last_proc[LAST_PROCS];
	unsigned nlast_proc, last_proc_next;
};

#define DEFAULT_ANS_CAP 4

static void cycle(struct broker *b, uint64_t now);

static int is_askable_kind(unsigned kind)
{
	return kind == MB_KIND_BIDI || kind == MB_KIND_SOURCE;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t umin(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static const char *kind_name(unsigned kind)
{
	static const char *const names[MB_KIND_COUNT] = { "sink", "bidi", "source", "observer" };
	return kind < MB_KIND_COUNT ? names[kind] : "?";
}

static const char *urg_name(unsigned urg)
{
	return urg == MB_URG_RESERVE ? "RESERVE" : "REQUEST";
}

/* A command name is shown in logs and status: printable ASCII only. */
static void sanitize_name(char *name)
{
	for (; *name; name++)
		if (*name < 0x20 || *name > 0x7e)
			*name = '?';
}

/* ---- output ---------------------------------------------------------- */

static void emit(struct broker *b, struct bclient *c, const struct mb_msg *m)
{
	if (c->state == CL_GONE)
		return;
	b->ops.send(b->ctx, c, m);
}

/* The reply type of each request type, for replies that carry only a status. */
static unsigned reply_type(unsigned type)
{
	switch (type) {
	case MB_MSG_HELLO: return MB_MSG_HELLO_ACK;
	case MB_MSG_REQUEST:
	case MB_MSG_RESERVE: return MB_MSG_GRANT;
	case MB_MSG_RETURN: return MB_MSG_RETURN_ACK;
	case MB_MSG_CANCEL: return MB_MSG_CANCEL_ACK;
	case MB_MSG_QUERY: return MB_MSG_QUERY_REPLY;
	case MB_MSG_STATUS: return MB_MSG_STATUS_HEAD; /* and nothing follows */
	case MB_MSG_TERMINATE: return MB_MSG_TERMINATE_ACK;
	case MB_MSG_SUBSCRIBE: return MB_MSG_SUBSCRIBE_ACK;
	case MB_MSG_CONTROL: return MB_MSG_CONTROL_ACK;
	default: return MB_MSG_ERROR;
	}
}

/* Refuse a frame: its own reply type with the status, or ERROR. */
static void refuse(struct broker *b, struct bclient *c, const struct mb_msg *m,
		   unsigned status)
{
	struct mb_msg r;
	unsigned rt = reply_type(m->type);
	mb_msg_init(&r, rt, m->seq);
	r.w[0] = status;
	if (rt == MB_MSG_ERROR)
		r.w[MB_W_ERR_TYPE] = m->type;
	if (rt == MB_MSG_GRANT)
		r.w[MB_W_GRANT_BALANCE] = (uint64_t)c->balance;
	if (rt == MB_MSG_RETURN_ACK)
		r.w[MB_W_RETACK_BALANCE] = (uint64_t)c->balance;
	mb_log(MB_LOG_INFO, "client %lu (pid %d): %s refused: %s",
	       (unsigned long)c->id, (int)c->peer.pid, mb_wire_type_name(m->type),
	       mb_wire_status_name(status));
	emit(b, c, &r);
}

static void send_grant(struct broker *b, struct bclient *c, uint32_t seq,
		       unsigned status, uint64_t pages)
{
	struct mb_msg r;
	mb_msg_init(&r, MB_MSG_GRANT, seq);
	r.w[MB_W_GRANT_STATUS] = status;
	r.w[MB_W_GRANT_PAGES] = pages;
	r.w[MB_W_GRANT_BALANCE] = (uint64_t)c->balance;
	emit(b, c, &r);
}

static void post_event(struct broker *b, unsigned event, uint64_t value)
{
	struct bclient *c;
	TAILQ_FOREACH(c, &b->all, link) {
		if (c->state != CL_REG || !(c->events & event))
			continue;
		struct mb_msg m;
		mb_msg_init(&m, MB_MSG_EVENT, ++b->seq);
		m.w[MB_W_EV_EVENT] = event;
		m.w[MB_W_EV_POOL] = (uint64_t)b->pool;
		m.w[MB_W_EV_TOTAL] = b->cfg.initial + b->source_total;
		m.w[MB_W_EV_VALUE] = value;
		emit(b, c, &m);
	}
}

void broker_post_event(struct broker *b, unsigned event, uint64_t value)
{
	post_event(b, event, value);
}

static void note_events(struct broker *b)
{
	uint64_t total = b->cfg.initial + b->source_total;
	if (total != b->last_total) {
		uint64_t old = b->last_total;
		b->last_total = total;
		mb_log(MB_LOG_INFO, "total %lu -> %lu pages", (unsigned long)old,
		       (unsigned long)total);
		post_event(b, MB_EV_TOTAL_CHANGED, old);
	}
	int low = b->pool <= (int64_t)b->cfg.pool_low;
	if (low != b->pool_low_state) {
		b->pool_low_state = low;
		post_event(b, low ? MB_EV_POOL_LOW : MB_EV_POOL_OK, b->cfg.pool_low);
	}
}

/* ---- requests -------------------------------------------------------- */

static struct answered *ans_find(const struct breq *r, const struct bclient *c)
{
	for (size_t i = 0; i < r->nans; i++)
		if (r->ans[i].id == c->id)
			return &r->ans[i];
	return NULL;
}

static int answered(const struct breq *r, const struct bclient *c, unsigned urg)
{
	const struct answered *a = ans_find(r, c);
	return a && (a->levels & (1u << urg)) != 0;
}

static int answered_any(const struct breq *r, const struct bclient *c)
{
	const struct answered *a = ans_find(r, c);
	return a && a->levels != 0;
}

static int asked(const struct breq *r, const struct bclient *c)
{
	const struct answered *a = ans_find(r, c);
	return a && a->asked;
}

/* The record of c in r, made if missing; NULL when out of memory, which
 * only means c is not asked for r (or may be asked again): the deadlines
 * keep that bounded. */
static struct answered *ans_get(struct breq *r, const struct bclient *c)
{
	struct answered *a = ans_find(r, c);
	if (a)
		return a;
	if (r->nans == r->capans) {
		size_t ncap = r->capans ? r->capans * 2 : DEFAULT_ANS_CAP;
		struct answered *n = realloc(r->ans, ncap * sizeof(*n));
		if (!n) {
			mb_log(MB_LOG_WARNING, "out of memory recording a share query");
			return NULL;
		}
		r->ans = n;
		r->capans = ncap;
	}
	a = &r->ans[r->nans++];
	memset(a, 0, sizeof(*a));
	a->id = c->id;
	return a;
}

/* c answered (or left): r no longer waits for it. */
static struct answered *ans_close(struct breq *r, const struct bclient *c)
{
	struct answered *a = ans_find(r, c);
	if (!a || !a->asked)
		return NULL;
	a->asked = NULL;
	a->pages = 0;
	r->nsharers--;
	return a;
}

/* Pages asked for r and not answered yet. */
static uint64_t covered(const struct breq *r)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < r->nans; i++)
		if (r->ans[i].asked)
			sum = sat_add(sum, r->ans[i].pages);
	return sum;
}

static void req_clear(struct breq *r)
{
	free(r->ans);
	memset(r, 0, sizeof(*r));
}

static void req_complete(struct breq *r, unsigned status)
{
	r->complete = 1;
	r->status = status;
}

/* End a queued request now with what it holds (a REQUEST) or all or
 * nothing (a RESERVE). */
static void req_finish(struct broker *b, struct bclient *c, unsigned fail_status)
{
	struct breq *r = &c->req;
	if (r->urg == MB_URG_RESERVE && r->need > 0) {
		b->pool += (int64_t)r->acquired;
		r->acquired = 0;
		r->need = r->asked;
		req_complete(r, fail_status);
	} else {
		req_complete(r, MB_ST_OK);
	}
}

/* Hand the pool to waiting requests, oldest first. */
static void feed_queue(struct broker *b)
{
	struct bclient *c;
	TAILQ_FOREACH(c, &b->queue, req.qlink) {
		if (b->pool <= 0)
			return;
		struct breq *r = &c->req;
		if (r->complete)
			continue;
		uint64_t give = umin((uint64_t)b->pool, r->need);
		b->pool -= (int64_t)give;
		r->acquired += give;
		r->need -= give;
		if (r->need == 0)
			req_complete(r, MB_ST_OK);
	}
}

static void dequeue(struct broker *b, struct bclient *c)
{
	TAILQ_REMOVE(&b->queue, c, req.qlink);
	b->nqueued--;
	req_clear(&c->req);
}

/* FIFO, except that clients served last queue behind all others. */
static void enqueue(struct broker *b, struct bclient *c)
{
	struct bclient *o;
	if (!c->last)
		TAILQ_FOREACH(o, &b->queue, req.qlink)
			if (o->last) {
				TAILQ_INSERT_BEFORE(o, c, req.qlink);
				return;
			}
	TAILQ_INSERT_TAIL(&b->queue, c, req.qlink);
}

/* Answer completed requests and take them off the queue. */
static int deliver(struct broker *b, uint64_t now)
{
	int progress = 0;
	struct bclient *c, *tmp;
	TAILQ_FOREACH_SAFE(c, &b->queue, req.qlink, tmp) {
		struct breq *r = &c->req;
		if (!r->complete)
			continue;
		uint64_t pages = r->status == MB_ST_OK ? r->acquired : 0;
		if (r->status != MB_ST_OK)
			b->pool += (int64_t)r->acquired;
		c->balance += (int64_t)pages;
		mb_log(MB_LOG_INFO, "client %lu: %s %lu of %lu pages after %lu ms (%s)",
		       (unsigned long)c->id, urg_name(r->urg), (unsigned long)pages,
		       (unsigned long)r->asked, (unsigned long)(now - r->started),
		       mb_wire_status_name(r->status));
		uint32_t seq = r->seq;
		unsigned status = r->status;
		dequeue(b, c);
		send_grant(b, c, seq, status, pages);
		progress = 1;
	}
	return progress;
}

/* ---- the assignment pass ---------------------------------------------- */

enum decision { D_SKIP, D_WAIT, D_ASK };

/*
 * May request r ask client c at urgency lvl now?  A client that is itself
 * requesting is never asked; a REQUEST skips it, a RESERVE waits for a
 * requesting client's REQUEST to end.  A client busy with a query at
 * REQUEST urgency is waited for; one busy at RESERVE urgency is waited for
 * by a RESERVE only.  A query being built in this pass at the same urgency
 * takes the request in (merge); one being built at the other urgency
 * counts as busy at that urgency, exactly as if it were already sent.
 */
static enum decision decide(const struct breq *r, const struct bclient *c,
			    unsigned lvl)
{
	if (c->req.active) {
		if (c->req.urg == MB_URG_REQUEST)
			return r->urg == MB_URG_REQUEST ? D_SKIP : D_WAIT;
		return D_SKIP;
	}
	if (c->sh_level == SHARE_NONE)
		return D_ASK;
	if (!c->sh_sent && (unsigned)c->sh_level == lvl)
		return D_ASK;
	if (c->sh_level == MB_URG_REQUEST)
		return D_WAIT;
	return r->urg == MB_URG_REQUEST ? D_SKIP : D_WAIT;
}

static void build_query(struct bclient *c, unsigned lvl, uint64_t pages)
{
	if (!c->sh_building) {
		c->sh_building = 1;
		c->sh_level = (int)lvl;
		c->sh_pages = 0;
		c->sh_sent = 0;
	}
	c->sh_pages = sat_add(c->sh_pages, pages);
}

/* Pages a client can give: what it holds plus, for a source, what it owns. */
static uint64_t holdings(const struct bclient *c)
{
	int64_t h = c->balance + (int64_t)c->source_pages;
	return h > 0 ? (uint64_t)h : 0;
}

/* Is a ranked before b?  Sources first, then the largest holder. */
static int ranks_before(const struct bclient *a, const struct bclient *b)
{
	int as = a->kind == MB_KIND_SOURCE, bs = b->kind == MB_KIND_SOURCE;
	if (as != bs)
		return as;
	return holdings(a) > holdings(b);
}

/* The best client to ask next for owner's request, or NULL; *wait is set
 * when a busy client may still answer later. */
static struct bclient *candidate(struct broker *b, struct bclient *owner,
				 unsigned *lvl_out, int *wait)
{
	struct breq *r = &owner->req;
	struct bclient *c, *best = NULL;
	unsigned best_lvl = r->urg;
	TAILQ_FOREACH(c, &b->askable, alink) {
		if (c == owner || holdings(c) == 0 || answered(r, c, r->urg) || asked(r, c))
			continue;
		unsigned lvl = r->urg;
		if (r->urg == MB_URG_RESERVE && c->kind == MB_KIND_SOURCE &&
		    !answered_any(r, c))
			lvl = MB_URG_REQUEST;
		enum decision d = decide(r, c, lvl);
		if (d == D_WAIT)
			*wait = 1;
		if (d == D_ASK && (!best || ranks_before(c, best))) {
			best = c;
			best_lvl = lvl;
		}
	}
	*lvl_out = best_lvl;
	return best;
}

/*
 * Ask holders for each waiting request, in parallel: the largest holders
 * first, until the pages asked cover what the request still needs.
 * Clients that hold nothing are never asked.
 */
static int assign(struct broker *b)
{
	int progress = 0;
	struct bclient *owner;
	TAILQ_FOREACH(owner, &b->queue, req.qlink) {
		struct breq *r = &owner->req;
		if (r->complete)
			continue;
		int wait = 0;
		uint64_t cov = covered(r);
		while (cov < r->need) {
			unsigned lvl;
			struct bclient *c = candidate(b, owner, &lvl, &wait);
			struct answered *a = c ? ans_get(r, c) : NULL;
			if (!a)
				break;
			uint64_t k = umin(r->need - cov, holdings(c));
			build_query(c, lvl, k);
			a->asked = c;
			a->pages = k;
			r->nsharers++;
			cov = sat_add(cov, k);
		}
		if (r->nsharers == 0 && !wait) {
			req_finish(b, owner, MB_ST_DENIED);
			progress = 1;
		}
	}
	return progress;
}

static void send_query(struct broker *b, struct bclient *c, uint64_t now)
{
	struct mb_msg m;
	uint64_t pages = umin(c->sh_pages, MB_WIRE_MAX_PAGES);
	c->sh_building = 0;
	c->sh_sent = 1;
	c->sh_seq = ++b->seq;
	c->sh_sent_at = now;
	c->sh_deadline = sat_add(now, b->cfg.share_deadline_ms);
	mb_msg_init(&m, MB_MSG_SHARE_QUERY, c->sh_seq);
	m.w[MB_W_SQ_URGENCY] = (uint64_t)c->sh_level;
	m.w[MB_W_SQ_PAGES] = pages;
	m.w[MB_W_SQ_DEADLINE_MS] = b->cfg.share_deadline_ms;
	mb_log(MB_LOG_INFO, "asking client %lu (%s) to give back %lu pages at %s urgency",
	       (unsigned long)c->id, c->comm, (unsigned long)pages,
	       urg_name((unsigned)c->sh_level));
	emit(b, c, &m);
}

static void send_built(struct broker *b, uint64_t now)
{
	struct bclient *c;
	TAILQ_FOREACH(c, &b->askable, alink)
		if (c->sh_building)
			send_query(b, c, now);
}

/* Pay the pool back to sources that lent pages, newest source first. */
static void repay_sources(struct broker *b)
{
	struct bclient *c;
	TAILQ_FOREACH(c, &b->askable, alink) {
		if (b->pool <= 0 || c->kind != MB_KIND_SOURCE)
			break;
		if (c->balance >= 0)
			continue;
		uint64_t k = umin((uint64_t)b->pool, (uint64_t)-c->balance);
		b->pool -= (int64_t)k;
		c->balance += (int64_t)k;
		struct mb_msg m;
		mb_msg_init(&m, MB_MSG_REPAY, ++b->seq);
		m.w[MB_W_REPAY_PAGES] = k;
		m.w[MB_W_REPAY_BALANCE] = (uint64_t)c->balance;
		mb_log(MB_LOG_INFO, "repaying source %lu (%s) %lu pages",
		       (unsigned long)c->id, c->comm, (unsigned long)k);
		emit(b, c, &m);
	}
}

/*
 * The update cycle: pool to the queue, answer what is complete, look for
 * clients to ask, send the queries; repeat while anything ended.  Each
 * round ends at least one request, so it terminates.
 */
static void cycle(struct broker *b, uint64_t now)
{
	for (;;) {
		feed_queue(b);
		int progress = deliver(b, now);
		progress |= assign(b);
		send_built(b, now);
		if (!progress)
			break;
	}
	if (TAILQ_EMPTY(&b->queue))
		repay_sources(b);
	note_events(b);
#ifdef MB_BROKER_DEBUG
	if (broker_check_invariants(b) != 0)
		abort();
#endif
}

/* ---- share answers ----------------------------------------------------- */

/* Client c gives k pages (k already checked and taken from its balance) in
 * answer to its open query (open != 0) or unsolicited. */
static void take_share(struct broker *b, struct bclient *c, uint64_t k, int open)
{
	uint64_t left = k;
	if (open) {
		unsigned lvl = (unsigned)c->sh_level;
		struct bclient *o;
		TAILQ_FOREACH(o, &b->queue, req.qlink) {
			struct breq *r = &o->req;
			struct answered *a = ans_close(r, c);
			if (!a)
				continue;
			a->levels |= 1u << lvl;
			if (r->complete)
				continue;
			uint64_t give = umin(left, r->need);
			r->acquired += give;
			r->need -= give;
			left -= give;
			if (r->need == 0)
				req_complete(r, MB_ST_OK);
		}
		c->sh_level = SHARE_NONE;
		c->sh_sent = 0;
		c->sh_pages = 0;
	}
	b->pool += (int64_t)left;
}

static void on_share_answer(struct broker *b, struct bclient *c,
			    const struct mb_msg *m, uint64_t now)
{
	uint64_t k = m->w[MB_W_ANS_PAGES];
	int open = c->sh_sent && m->seq == c->sh_seq;
	if (!is_askable_kind(c->kind)) {
		refuse(b, c, m, MB_ST_PERM);
		return;
	}
	if (!mb_wire_count_ok(k) || k > holdings(c)) {
		/* Pages it does not have would be phantom pages: refuse them,
		 * and count the answer as a denial so no one waits for it. */
		refuse(b, c, m, mb_wire_count_ok(k) ? MB_ST_OVERRETURN : MB_ST_INVAL);
		k = 0;
	}
	if (!open && c->sh_sent)
		mb_log(MB_LOG_NOTICE, "client %lu: answer seq %u does not match query seq %u",
		       (unsigned long)c->id, m->seq, c->sh_seq);
	c->balance -= (int64_t)k;
	mb_log(MB_LOG_INFO, "client %lu (%s) gives back %lu pages%s",
	       (unsigned long)c->id, c->comm, (unsigned long)k,
	       open ? "" : " (late or unsolicited: to the pool)");
	if (open && b->ops.answered)
		b->ops.answered(b->ctx, c, c->sh_pages, k, 0);
	take_share(b, c, k, open);
	cycle(b, now);
}

/* ---- client lifecycle ------------------------------------------------- */

/*
 * Time limits of unregistered connections.  A connection is on `fresh`
 * until its first frame (handshake_ms), then on `quiet` while it stays
 * unregistered (idle_ms since its last frame); registering takes it off.
 * Both lists are ordered by `since`, so their heads are the next deadlines.
 */
static void timer_disarm(struct broker *b, struct bclient *c)
{
	(void)b;
	if (c->timer)
		TAILQ_REMOVE(c->timer, c, tlink);
	c->timer = NULL;
}

static void timer_arm(struct broker *b, struct bclient *c, struct clist *l)
{
	timer_disarm(b, c);
	TAILQ_INSERT_TAIL(l, c, tlink);
	c->timer = l;
}

static void timer_heard(struct broker *b, struct bclient *c, uint64_t now)
{
	c->heard = 1;
	c->since = now;
	timer_arm(b, c, &b->quiet);
}

static uint64_t timer_due(const struct broker *b, const struct clist *l,
			  uint64_t limit)
{
	const struct bclient *c = TAILQ_FIRST(l);
	(void)b;
	return c && limit ? sat_add(c->since, limit) : NO_DEADLINE;
}

/* ---- kept balances and claims ----------------------------------------- */

/* Most balances kept at once: each costs the daemon memory.  Of them,
 * a user other than root keeps KEPT_PER_UID at most, and all such users
 * together leave KEPT_FOR_ROOT for root's clients (track_fs): one user's
 * departures must not take the room another's need. */
#define KEPT_MAX 1024
#define KEPT_PER_UID 16
#define KEPT_FOR_ROOT 64

/* Whether a balance of a client of uid may be kept as a new entry. */
static int kept_room(const struct broker *b, uid_t uid)
{
	if (b->nkept >= KEPT_MAX)
		return 0;
	if (uid == 0)
		return 1;
	unsigned mine = 0, others = 0;
	const struct kept *k;
	TAILQ_FOREACH(k, &b->kept, link) {
		if (k->uid == uid)
			mine++;
		if (k->uid != 0)
			others++;
	}
	return mine < KEPT_PER_UID && others < KEPT_MAX - KEPT_FOR_ROOT;
}

static struct kept *kept_find(struct broker *b, uid_t uid, const char *comm)
{
	struct kept *k;
	TAILQ_FOREACH(k, &b->kept, link)
		if (k->uid == uid && strcmp(k->comm, comm) == 0)
			return k;
	return NULL;
}

static void kept_remove(struct broker *b, struct kept *k)
{
	TAILQ_REMOVE(&b->kept, k, link);
	b->kept_pages -= k->pages;
	b->nkept--;
	free(k);
}

/* A KEEP client leaves holding pages: they wait for it instead of going
 * back to the pool.  Leaves the balance at 0 when kept. */
static void keep_balance(struct broker *b, struct bclient *c, uint64_t now)
{
	if (!c->keep || c->balance <= 0 || b->cfg.claim_grace_ms == 0)
		return;
	struct kept *k = kept_find(b, c->peer.uid, c->comm);
	if (k == NULL) {
		if (!kept_room(b, c->peer.uid) || (k = calloc(1, sizeof(*k))) == NULL) {
			mb_log(MB_LOG_WARNING, "client %lu (%s): no room to keep its %ld pages",
			       (unsigned long)c->id, c->comm, (long)c->balance);
			return;
		}
		k->uid = c->peer.uid;
		memcpy(k->comm, c->comm, sizeof(k->comm));
		TAILQ_INSERT_TAIL(&b->kept, k, link);
		b->nkept++;
	}
	k->pages += (uint64_t)c->balance;
	k->last |= c->last;
	k->expires = sat_add(now, b->cfg.claim_grace_ms);
	b->kept_pages += (uint64_t)c->balance;
	mb_log(MB_LOG_NOTICE, "client %lu (%s, uid %u) left holding %ld pages: kept for it "
	       "for %lu ms", (unsigned long)c->id, c->comm, (unsigned)c->peer.uid,
	       (long)c->balance, (unsigned long)b->cfg.claim_grace_ms);
	c->balance = 0;
}

static uint64_t cap_room(const struct broker *b, const struct bclient *c,
			 unsigned *status);

/* The same process: pid, uid and start time (a reused pid differs). */
static int same_proc(const struct broker_peer *a, pid_t pid, uid_t uid, uint64_t start)
{
	return a->pid == pid && a->uid == uid && a->start == start;
}

/* A client served after the others leaves: its process stays so. */
static void last_proc_note(struct broker *b, const struct bclient *c)
{
	if (!c->last || c->peer.pid <= 0)
		return;
	for (unsigned i = 0; i < b->nlast_proc; i++)
		if (same_proc(&c->peer, b->last_proc[i].pid, b->last_proc[i].uid,
			      b->last_proc[i].start))
			return;
	unsigned i = b->nlast_proc < LAST_PROCS ? b->nlast_proc++
						: b->last_proc_next++ % LAST_PROCS;
	b->last_proc[i].pid = c->peer.pid;
	b->last_proc[i].uid = c->peer.uid;
	b->last_proc[i].start = c->peer.start;
}

/* A new connection of a process served after the others (one of its
 * connections is, or one that left was) is served after the others:
 * reconnecting does not clear the flag. */
static void last_proc_inherit(struct broker *b, struct bclient *c)
{
	const struct bclient *o;
	int found = 0;
	if (c->last || c->peer.pid <= 0)
		return;
	for (unsigned i = 0; i < b->nlast_proc && !found; i++)
		found = same_proc(&c->peer, b->last_proc[i].pid, b->last_proc[i].uid,
				  b->last_proc[i].start);
	TAILQ_FOREACH(o, &b->all, link) {
		if (found)
			break;
		found = o != c && o->state == CL_REG && o->last &&
			same_proc(&c->peer, o->peer.pid, o->peer.uid, o->peer.start);
	}
	if (!found)
		return;
	c->last = 1;
	mb_log(MB_LOG_NOTICE, "client %lu (%s, pid %d): its process is served after the others",
	       (unsigned long)c->id, c->comm, (int)c->peer.pid);
}

/* HELLO flags: a KEEP client takes back what was kept for its uid and
 * name, as far as client_cap and uid_cap allow (the kept pages count in
 * the uid's holding while they wait, but several departures of one name
 * are kept as one); the rest goes to the pool.  A client served after
 * the others stays so. */
static void hello_keep(struct broker *b, struct bclient *c, uint64_t flags)
{
	c->keep = (flags & MB_HELLO_KEEP) &&
		(c->kind == MB_KIND_SINK || c->kind == MB_KIND_BIDI);
	if (!c->keep)
		return;
	struct kept *k = kept_find(b, c->peer.uid, c->comm);
	if (k == NULL)
		return;
	uint64_t pages = k->pages;
	c->last |= k->last;
	kept_remove(b, k);
	unsigned st;
	uint64_t back = umin(pages, cap_room(b, c, &st));
	mb_log(MB_LOG_NOTICE, "client %lu (%s, uid %u) takes back its %lu kept pages",
	       (unsigned long)c->id, c->comm, (unsigned)c->peer.uid, (unsigned long)back);
	if (back < pages) {
		mb_log(MB_LOG_WARNING, "client %lu (%s, uid %u): %lu more kept pages pass its %s; "
		       "they go to the pool", (unsigned long)c->id, c->comm,
		       (unsigned)c->peer.uid, (unsigned long)(pages - back),
		       st == MB_ST_UIDCAP ? "uid_cap" : "client_cap");
		b->pool += (int64_t)(pages - back);
	}
	c->balance += (int64_t)back;
}

static void expire_kept(struct broker *b, uint64_t now)
{
	struct kept *k, *tmp;
	TAILQ_FOREACH_SAFE(k, &b->kept, link, tmp) {
		if (k->expires > now)
			continue;
		mb_log(MB_LOG_NOTICE, "%lu pages kept for %s (uid %u) go back to the pool: "
		       "it did not return in time", (unsigned long)k->pages, k->comm,
		       (unsigned)k->uid);
		b->pool += (int64_t)k->pages;
		kept_remove(b, k);
	}
}

static uint64_t kept_next_deadline(const struct broker *b, uint64_t next)
{
	const struct kept *k;
	TAILQ_FOREACH(k, &b->kept, link)
		if (k->expires < next)
			next = k->expires;
	return next;
}

static int kept_check(const struct broker *b)
{
	uint64_t pages = 0, n = 0;
	const struct kept *k;
	TAILQ_FOREACH(k, &b->kept, link) {
		if (k->pages == 0) {
			mb_log(MB_LOG_ERR, "invariant broken: empty kept balance of %s", k->comm);
			return -1;
		}
		pages += k->pages;
		n++;
	}
	if (pages != b->kept_pages || n != b->nkept) {
		mb_log(MB_LOG_ERR, "invariant broken: kept %lu pages in %lu entries, "
		       "counted %lu in %lu", (unsigned long)pages, (unsigned long)n,
		       (unsigned long)b->kept_pages, (unsigned long)b->nkept);
		return -1;
	}
	return 0;
}

/* STATUS rows for kept balances: client id 0, pid 0. */
static void status_kept(struct broker *b, struct bclient *c, uint32_t seq)
{
	const struct kept *k;
	TAILQ_FOREACH(k, &b->kept, link) {
		struct mb_msg r;
		mb_msg_init(&r, MB_MSG_STATUS_CLIENT, seq);
		r.w[MB_W_SC_UID] = k->uid;
		r.w[MB_W_SC_KIND] = MB_KIND_SINK;
		r.w[MB_W_SC_BALANCE] = k->pages;
		mb_wire_put_comm(&r.w[MB_W_SC_COMM], k->comm);
		emit(b, c, &r);
	}
}

int broker_peer_listed(const struct broker_peer *p, const uid_t *uids, size_t nuids,
		       const gid_t *gids, size_t ngids)
{
	if (p->uid == 0)
		return 1;
	for (size_t i = 0; i < nuids; i++)
		if (uids[i] == p->uid)
			return 1;
	for (size_t i = 0; i < ngids; i++)
		if (gids[i] == p->gid)
			return 1;
	return 0;
}

static int allowed(const struct broker_config *cfg, const struct broker_peer *p)
{
	return (cfg->nuids == 0 && cfg->ngids == 0) ||
	       broker_peer_listed(p, cfg->uids, cfg->nuids, cfg->gids, cfg->ngids);
}

struct bclient *broker_connect(struct broker *b, const struct broker_peer *peer,
			       void *user, uint64_t now)
{
	struct bclient *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->peer = *peer;
	c->peer.comm[sizeof(c->peer.comm) - 1] = '\0';
	sanitize_name(c->peer.comm);
	memcpy(c->comm, c->peer.comm, sizeof(c->comm));
	c->user = user;
	c->state = CL_NEW;
	c->sh_level = SHARE_NONE;
	c->private_word = MB_SC_PRIVATE_UNKNOWN;
	c->allowed = allowed(&b->cfg, peer);
	TAILQ_INSERT_TAIL(&b->all, c, link);
	c->since = now;
	timer_arm(b, c, &b->fresh);
	return c;
}

/* Forget a client's pages and requests: it left, died or terminated. */
static void detach(struct broker *b, struct bclient *c, uint64_t now)
{
	if (c->state != CL_REG) {
		c->state = CL_GONE;
		return;
	}
	if (c->req.active) {
		b->pool += (int64_t)c->req.acquired;
		dequeue(b, c);
	}
	struct bclient *o;
	TAILQ_FOREACH(o, &b->queue, req.qlink)
		ans_close(&o->req, c);
	keep_balance(b, c, now);
	last_proc_note(b, c);
	if (c->balance != 0)
		mb_log(MB_LOG_INFO, "client %lu (%s, pid %d) leaves holding %ld pages%s",
		       (unsigned long)c->id, c->comm, (int)c->peer.pid, (long)c->balance,
		       c->balance < 0 ? ": the pool takes the debt" : "");
	b->pool += c->balance;
	c->balance = 0;
	b->source_total -= c->source_pages;
	c->source_pages = 0;
	if (is_askable_kind(c->kind))
		TAILQ_REMOVE(&b->askable, c, alink);
	b->nclients--;
	c->state = CL_GONE;
	cycle(b, now);
}

void broker_disconnect(struct broker *b, struct bclient *c, uint64_t now)
{
	if (c->state == CL_REG)
		mb_log(MB_LOG_INFO, "client %lu (%s, pid %d) disconnected",
		       (unsigned long)c->id, c->comm, (int)c->peer.pid);
	detach(b, c, now);
	timer_disarm(b, c);
	TAILQ_REMOVE(&b->all, c, link);
	free(c);
}

static void drop(struct broker *b, struct bclient *c, uint64_t now)
{
	detach(b, c, now);
	b->ops.close(b->ctx, c);
}

int broker_admit(struct broker *b, struct bclient *c, uint64_t now)
{
	uint64_t limit = b->cfg.uid_connections, n = 0;
	if (!limit || c->peer.uid == 0)
		return 0;
	const struct bclient *o;
	TAILQ_FOREACH(o, &b->all, link)
		if (o != c && o->state != CL_GONE && o->peer.uid == c->peer.uid)
			n++;
	if (n < limit)
		return 0;
	struct mb_msg r;
	mb_msg_init(&r, MB_MSG_ERROR, 0);
	r.w[MB_W_ERR_STATUS] = MB_ST_UIDCAP;
	mb_log(MB_LOG_NOTICE, "pid %d uid %u: already %lu connections (uid_connections): "
	       "refused", (int)c->peer.pid, (unsigned)c->peer.uid, (unsigned long)n);
	emit(b, c, &r);
	drop(b, c, now);
	return -1;
}

void broker_bad_frame(struct broker *b, struct bclient *c, unsigned status,
		      unsigned type, uint64_t now)
{
	struct mb_msg r;
	mb_msg_init(&r, MB_MSG_ERROR, 0);
	r.w[MB_W_ERR_STATUS] = status;
	r.w[MB_W_ERR_TYPE] = type;
	mb_log(MB_LOG_NOTICE, "client %lu (pid %d): malformed frame (%s): disconnecting",
	       (unsigned long)c->id, (int)c->peer.pid, mb_wire_status_name(status));
	emit(b, c, &r);
	drop(b, c, now);
}

/*
 * May c register as a source declaring src pages?  Only root and the
 * configured source_uids lend, at most source_max pages each, and the
 * total stays within what the wire can carry.
 */
static unsigned source_verdict(const struct broker *b, const struct bclient *c,
			       uint64_t src)
{
	uint64_t total = b->cfg.initial + b->source_total;
	if (!broker_peer_listed(&c->peer, b->cfg.source_uids, b->cfg.nsource_uids,
				NULL, 0)) {
		mb_log(MB_LOG_NOTICE, "pid %d uid %u may not be a source (source_uids)",
		       (int)c->peer.pid, (unsigned)c->peer.uid);
		return MB_ST_PERM;
	}
	if (src > b->cfg.source_max) {
		mb_log(MB_LOG_NOTICE, "pid %d uid %u declares %lu source pages, more than "
		       "source_max (%lu)", (int)c->peer.pid, (unsigned)c->peer.uid,
		       (unsigned long)src, (unsigned long)b->cfg.source_max);
		return MB_ST_CAP;
	}
	if (total > MB_WIRE_MAX_PAGES || src > MB_WIRE_MAX_PAGES - total)
		return MB_ST_INVAL;
	return MB_ST_OK;
}

static void on_hello(struct broker *b, struct bclient *c, const struct mb_msg *m,
		     uint64_t now)
{
	uint64_t kind = m->w[MB_W_HELLO_KIND];
	uint64_t src = m->w[MB_W_HELLO_SOURCE_PAGES];
	if (c->state == CL_REG) {
		refuse(b, c, m, MB_ST_NOTREG);
		return;
	}
	if (m->w[MB_W_HELLO_VERSION] != MB_WIRE_VERSION) {
		refuse(b, c, m, MB_ST_VERSION);
		drop(b, c, now);
		return;
	}
	if (kind >= MB_KIND_COUNT || (kind != MB_KIND_SOURCE && src != 0) ||
	    !mb_wire_count_ok(src)) {
		refuse(b, c, m, MB_ST_INVAL);
		return;
	}
	if (kind == MB_KIND_SOURCE) {
		unsigned st = source_verdict(b, c, src);
		if (st != MB_ST_OK) {
			refuse(b, c, m, st);
			return;
		}
	}
	c->id = ++b->next_id;
	c->state = CL_REG;
	timer_disarm(b, c);
	c->kind = (unsigned)kind;
	c->source_pages = src;
	c->flags = m->w[MB_W_HELLO_FLAGS];
	char name[MB_WIRE_COMM_WORDS * 8 + 1];
	mb_wire_get_comm(&m->w[MB_W_HELLO_COMM], name);
	sanitize_name(name);
	if (name[0])
		memcpy(c->comm, name, sizeof(c->comm));
	b->source_total += src;
	b->nclients++;
	hello_keep(b, c, m->w[MB_W_HELLO_FLAGS]);
	last_proc_inherit(b, c);
	if (kind == MB_KIND_SOURCE)
		TAILQ_INSERT_HEAD(&b->askable, c, alink);
	else if (kind == MB_KIND_BIDI)
		TAILQ_INSERT_TAIL(&b->askable, c, alink);
	struct mb_msg r;
	mb_msg_init(&r, MB_MSG_HELLO_ACK, m->seq);
	r.w[MB_W_ACK_STATUS] = MB_ST_OK;
	r.w[MB_W_ACK_VERSION] = MB_WIRE_VERSION;
	r.w[MB_W_ACK_PAGE_SIZE] = b->cfg.page_size;
	r.w[MB_W_ACK_TOTAL] = b->cfg.initial + b->source_total;
	r.w[MB_W_ACK_CLIENT_ID] = c->id;
	r.w[MB_W_ACK_POOL] = (uint64_t)b->pool;
	mb_log(MB_LOG_INFO, "client %lu: %s (pid %d uid %u) registered as %s, %lu source pages",
	       (unsigned long)c->id, c->comm, (int)c->peer.pid, (unsigned)c->peer.uid,
	       kind_name(c->kind), (unsigned long)src);
	emit(b, c, &r);
	/* A new bidi client or source is a new candidate for waiting requests. */
	cycle(b, now);
}

/* Pages held by the uid's clients, counting what their queued requests
 * may still receive and their balances kept after they left. */
static uint64_t uid_held(const struct broker *b, uid_t uid)
{
	uint64_t sum = 0;
	const struct bclient *o;
	TAILQ_FOREACH(o, &b->all, link) {
		if (o->state != CL_REG || o->peer.uid != uid)
			continue;
		if (o->balance > 0)
			sum = sat_add(sum, (uint64_t)o->balance);
		if (o->req.active)
			sum = sat_add(sum, o->req.asked);
	}
	const struct kept *k;
	TAILQ_FOREACH(k, &b->kept, link)
		if (k->uid == uid)
			sum = sat_add(sum, k->pages);
	return sum;
}

/* How many more pages c may ask for: the per-connection cap and the cap
 * of its uid (root has none); *status names the one that binds. */
static uint64_t cap_room(const struct broker *b, const struct bclient *c,
			 unsigned *status)
{
	uint64_t room = UINT64_MAX;
	*status = MB_ST_CAP;
	if (b->cfg.cap)
		room = c->balance >= (int64_t)b->cfg.cap ? 0 :
			(uint64_t)((int64_t)b->cfg.cap - c->balance);
	if (b->cfg.uid_cap && c->peer.uid != 0) {
		uint64_t held = uid_held(b, c->peer.uid);
		uint64_t uroom = held >= b->cfg.uid_cap ? 0 : b->cfg.uid_cap - held;
		if (uroom < room) {
			room = uroom;
			*status = MB_ST_UIDCAP;
		}
	}
	return room;
}

static uint64_t req_deadline(const struct broker *b, unsigned urg, uint64_t ms,
			     uint64_t now)
{
	int none = ms == 0 || ms == MB_WIRE_NO_DEADLINE;
	if (urg == MB_URG_REQUEST) {
		if (none || ms > b->cfg.request_deadline_ms)
			ms = b->cfg.request_deadline_ms;
	} else if (none) {
		return NO_DEADLINE;
	}
	return sat_add(now, ms);
}

static void on_request(struct broker *b, struct bclient *c, const struct mb_msg *m,
		       uint64_t now)
{
	unsigned urg = m->type == MB_MSG_RESERVE ? MB_URG_RESERVE : MB_URG_REQUEST;
	uint64_t n = m->w[MB_W_REQ_PAGES];
	if (c->kind == MB_KIND_OBSERVER) {
		refuse(b, c, m, MB_ST_PERM);
		return;
	}
	if (!mb_wire_count_ok(n)) {
		refuse(b, c, m, MB_ST_INVAL);
		return;
	}
	if (c->req.active) {
		refuse(b, c, m, MB_ST_BUSY);
		return;
	}
	if (b->ops.admit) {
		unsigned st = b->ops.admit(b->ctx, c, m->type, n);
		if (st != MB_ST_OK) {
			refuse(b, c, m, st);
			return;
		}
	}
	unsigned cap_status;
	uint64_t room = cap_room(b, c, &cap_status);
	if (n > room) {
		if (urg == MB_URG_RESERVE || room == 0) {
			refuse(b, c, m, cap_status);
			return;
		}
		n = room;
	}
	if (n == 0) {
		send_grant(b, c, m->seq, MB_ST_OK, 0);
		return;
	}
	if (TAILQ_EMPTY(&b->queue) && b->pool >= (int64_t)n && !c->last) {
		b->pool -= (int64_t)n;
		c->balance += (int64_t)n;
		mb_log(MB_LOG_DEBUG, "client %lu: %s %lu pages granted at once",
		       (unsigned long)c->id, urg_name(urg), (unsigned long)n);
		send_grant(b, c, m->seq, MB_ST_OK, n);
		note_events(b);
		return;
	}
	struct breq *r = &c->req;
	memset(r, 0, sizeof(*r));
	r->active = 1;
	r->urg = urg;
	r->seq = m->seq;
	r->asked = r->need = n;
	r->started = now;
	r->deadline = req_deadline(b, urg, m->w[MB_W_REQ_DEADLINE_MS], now);
	enqueue(b, c);
	b->nqueued++;
	mb_log(MB_LOG_DEBUG, "client %lu: %s %lu pages queued",
	       (unsigned long)c->id, urg_name(urg), (unsigned long)n);
	cycle(b, now);
}

static void on_return(struct broker *b, struct bclient *c, const struct mb_msg *m,
		      uint64_t now)
{
	uint64_t n = m->w[MB_W_RET_PAGES];
	struct mb_msg r;
	if (c->kind == MB_KIND_OBSERVER) {
		refuse(b, c, m, MB_ST_PERM);
		return;
	}
	if (!mb_wire_count_ok(n)) {
		refuse(b, c, m, MB_ST_INVAL);
		return;
	}
	if (n > holdings(c)) {
		refuse(b, c, m, MB_ST_OVERRETURN);
		return;
	}
	c->balance -= (int64_t)n;
	b->pool += (int64_t)n;
	mb_msg_init(&r, MB_MSG_RETURN_ACK, m->seq);
	r.w[MB_W_RETACK_STATUS] = MB_ST_OK;
	r.w[MB_W_RETACK_BALANCE] = (uint64_t)c->balance;
	mb_log(MB_LOG_DEBUG, "client %lu returns %lu pages", (unsigned long)c->id,
	       (unsigned long)n);
	emit(b, c, &r);
	cycle(b, now);
}

static void on_cancel(struct broker *b, struct bclient *c, const struct mb_msg *m,
		      uint64_t now)
{
	struct mb_msg r;
	if (!c->req.active) {
		refuse(b, c, m, MB_ST_NOREQ);
		return;
	}
	uint32_t seq = c->req.seq;
	b->pool += (int64_t)c->req.acquired;
	dequeue(b, c);
	mb_log(MB_LOG_INFO, "client %lu cancels its request", (unsigned long)c->id);
	send_grant(b, c, seq, MB_ST_CANCELED, 0);
	mb_msg_init(&r, MB_MSG_CANCEL_ACK, m->seq);
	r.w[MB_W_CANACK_STATUS] = MB_ST_OK;
	emit(b, c, &r);
	cycle(b, now);
}

static void on_query(struct broker *b, struct bclient *c, const struct mb_msg *m)
{
	struct mb_msg r;
	mb_msg_init(&r, MB_MSG_QUERY_REPLY, m->seq);
	r.w[MB_W_QR_STATUS] = MB_ST_OK;
	r.w[MB_W_QR_POOL] = (uint64_t)b->pool;
	r.w[MB_W_QR_TOTAL] = b->cfg.initial + b->source_total;
	r.w[MB_W_QR_BALANCE] = (uint64_t)c->balance;
	r.w[MB_W_QR_SOURCE_PAGES] = c->source_pages;
	r.w[MB_W_QR_PAGE_SIZE] = b->cfg.page_size;
	r.w[MB_W_QR_CLIENTS] = b->nclients;
	emit(b, c, &r);
}

static uint64_t age(uint64_t now, uint64_t then)
{
	return now > then ? now - then : 0;
}

static void on_status(struct broker *b, struct bclient *c, const struct mb_msg *m,
		      uint64_t now)
{
	struct mb_msg r;
	mb_msg_init(&r, MB_MSG_STATUS_HEAD, m->seq);
	r.w[MB_W_SH_STATUS] = MB_ST_OK;
	r.w[MB_W_SH_POOL] = (uint64_t)b->pool;
	r.w[MB_W_SH_TOTAL] = b->cfg.initial + b->source_total;
	r.w[MB_W_SH_INITIAL] = b->cfg.initial;
	r.w[MB_W_SH_PAGE_SIZE] = b->cfg.page_size;
	r.w[MB_W_SH_CLIENTS] = b->nclients;
	r.w[MB_W_SH_QUEUED] = b->nqueued;
	r.w[MB_W_SH_UPTIME_MS] = age(now, b->start);
	emit(b, c, &r);
	struct bclient *o;
	TAILQ_FOREACH(o, &b->all, link) {
		if (o->state != CL_REG)
			continue;
		mb_msg_init(&r, MB_MSG_STATUS_CLIENT, m->seq);
		r.w[MB_W_SC_ID] = o->id;
		r.w[MB_W_SC_PID] = (uint64_t)(int64_t)o->peer.pid;
		r.w[MB_W_SC_UID] = o->peer.uid;
		r.w[MB_W_SC_KIND] = o->kind;
		r.w[MB_W_SC_BALANCE] = (uint64_t)o->balance;
		r.w[MB_W_SC_SOURCE_PAGES] = o->source_pages;
		if (o->req.active) {
			r.w[MB_W_SC_REQ_TYPE] = o->req.urg == MB_URG_RESERVE ?
				MB_MSG_RESERVE : MB_MSG_REQUEST;
			r.w[MB_W_SC_REQ_PAGES] = o->req.asked;
			r.w[MB_W_SC_REQ_ACQUIRED] = o->req.acquired;
			r.w[MB_W_SC_REQ_AGE_MS] = age(now, o->req.started);
		}
		if (o->sh_sent) {
			r.w[MB_W_SC_SHARE_URG] = (uint64_t)o->sh_level + 1;
			r.w[MB_W_SC_SHARE_PAGES] = o->sh_pages;
			r.w[MB_W_SC_SHARE_AGE_MS] = age(now, o->sh_sent_at);
		}
		mb_wire_put_comm(&r.w[MB_W_SC_COMM], o->comm);
		r.w[MB_W_SC_PRIVATE] = o->private_word;
		emit(b, c, &r);
	}
	status_kept(b, c, m->seq);
	mb_msg_init(&r, MB_MSG_STATUS_END, m->seq);
	r.w[MB_W_SE_STATUS] = MB_ST_OK;
	emit(b, c, &r);
}

static void on_subscribe(struct broker *b, struct bclient *c, const struct mb_msg *m)
{
	struct mb_msg r;
	c->events = (unsigned)(m->w[MB_W_SUB_MASK] & MB_EV_ALL);
	mb_msg_init(&r, MB_MSG_SUBSCRIBE_ACK, m->seq);
	r.w[MB_W_SUBACK_STATUS] = MB_ST_OK;
	r.w[MB_W_SUBACK_MASK] = c->events;
	emit(b, c, &r);
}

static void on_control(struct broker *b, struct bclient *c, const struct mb_msg *m)
{
	if (!b->ops.control) {
		refuse(b, c, m, MB_ST_UNKNOWN);
		return;
	}
	struct mb_msg r;
	mb_msg_init(&r, MB_MSG_CONTROL_ACK, m->seq);
	b->ops.control(b->ctx, c, m, &r);
	emit(b, c, &r);
}

static void on_terminate(struct broker *b, struct bclient *c, const struct mb_msg *m,
			 uint64_t now)
{
	struct mb_msg r;
	mb_msg_init(&r, MB_MSG_TERMINATE_ACK, m->seq);
	r.w[MB_W_TERMACK_STATUS] = MB_ST_OK;
	r.w[MB_W_TERMACK_RECLAIMED] = c->balance > 0 ? (uint64_t)c->balance : 0;
	if (c->state == CL_REG)
		mb_log(MB_LOG_INFO, "client %lu (%s) terminates",
		       (unsigned long)c->id, c->comm);
	c->keep = 0; /* a client that says goodbye gives everything back */
	/* Answer the pending request first so a waiting caller is released. */
	if (c->req.active) {
		uint32_t seq = c->req.seq;
		b->pool += (int64_t)c->req.acquired;
		dequeue(b, c);
		send_grant(b, c, seq, MB_ST_CANCELED, 0);
	}
	emit(b, c, &r);
	drop(b, c, now);
}

static void claim_reply(struct broker *b, struct bclient *c, uint32_t seq,
			unsigned status)
{
	struct mb_msg r;
	mb_msg_init(&r, MB_MSG_CLAIM_ACK, seq);
	r.w[MB_W_CLAIMACK_STATUS] = status;
	r.w[MB_W_CLAIMACK_BALANCE] = (uint64_t)c->balance;
	emit(b, c, &r);
}

/*
 * CLAIM: the client holds `want` pages in all.  Its balance becomes that,
 * as far as the pool (and the per-client cap) allows; pages it holds
 * beyond the claim go back.  Nothing is taken from another client.
 */
static void on_claim(struct broker *b, struct bclient *c, const struct mb_msg *m,
		     uint64_t now)
{
	uint64_t want = m->w[MB_W_CLAIM_PAGES];
	unsigned st = MB_ST_OK;
	if (c->kind != MB_KIND_SINK && c->kind != MB_KIND_BIDI)
		st = MB_ST_PERM;
	else if (!mb_wire_count_ok(want) || c->claim_done)
		st = MB_ST_INVAL;
	else if (c->req.active)
		st = MB_ST_BUSY;
	if (st != MB_ST_OK) {
		mb_log(MB_LOG_INFO, "client %lu (pid %d): CLAIM refused: %s",
		       (unsigned long)c->id, (int)c->peer.pid, mb_wire_status_name(st));
		claim_reply(b, c, m->seq, st);
		return;
	}
	c->claim_done = 1;
	uint64_t have = (uint64_t)c->balance;
	if (want <= have) {
		b->pool += (int64_t)(have - want);
	} else {
		unsigned cap_status;
		uint64_t room = b->pool > 0 ? (uint64_t)b->pool : 0;
		room = umin(room, cap_room(b, c, &cap_status));
		/* What a request would be refused (deny), a claim gets none of:
		 * else a user could reconnect and claim its way past deny. */
		if (room > 0 && b->ops.admit &&
		    b->ops.admit(b->ctx, c, MB_MSG_CLAIM, want - have) != MB_ST_OK)
			room = 0;
		uint64_t add = umin(want - have, room);
		b->pool -= (int64_t)add;
		want = have + add;
		if (want != m->w[MB_W_CLAIM_PAGES])
			st = MB_ST_CLAIM_PARTIAL;
	}
	c->balance = (int64_t)want;
	mb_log(MB_LOG_NOTICE, "client %lu (%s, pid %d uid %u) claims %lu pages: %lu accepted",
	       (unsigned long)c->id, c->comm, (int)c->peer.pid, (unsigned)c->peer.uid,
	       (unsigned long)m->w[MB_W_CLAIM_PAGES], (unsigned long)want);
	claim_reply(b, c, m->seq, st);
	note_events(b);
	cycle(b, now);
}

void broker_message(struct broker *b, struct bclient *c, const struct mb_msg *m,
		    uint64_t now)
{
	if (c->state == CL_GONE)
		return;
	if (c->state == CL_NEW)
		timer_heard(b, c, now);
	if (!c->allowed) {
		mb_log(MB_LOG_NOTICE, "pid %d uid %u gid %u is not allowed",
		       (int)c->peer.pid, (unsigned)c->peer.uid, (unsigned)c->peer.gid);
		refuse(b, c, m, MB_ST_PERM);
		drop(b, c, now);
		return;
	}
	if (c->state == CL_NEW) {
		switch (m->type) {
		case MB_MSG_HELLO:
			on_hello(b, c, m, now);
			return;
		case MB_MSG_QUERY:
			on_query(b, c, m);
			return;
		case MB_MSG_STATUS:
			on_status(b, c, m, now);
			return;
		case MB_MSG_CONTROL:
			on_control(b, c, m);
			return;
		case MB_MSG_TERMINATE:
			on_terminate(b, c, m, now);
			return;
		default:
			refuse(b, c, m, reply_type(m->type) == MB_MSG_ERROR &&
			       m->type != MB_MSG_SHARE_ANSWER && m->type != MB_MSG_CLAIM ?
			       MB_ST_UNKNOWN : MB_ST_NOTREG);
			return;
		}
	}
	switch (m->type) {
	case MB_MSG_HELLO:
		on_hello(b, c, m, now);
		break;
	case MB_MSG_REQUEST:
	case MB_MSG_RESERVE:
		on_request(b, c, m, now);
		break;
	case MB_MSG_RETURN:
		on_return(b, c, m, now);
		break;
	case MB_MSG_CANCEL:
		on_cancel(b, c, m, now);
		break;
	case MB_MSG_QUERY:
		on_query(b, c, m);
		break;
	case MB_MSG_STATUS:
		on_status(b, c, m, now);
		break;
	case MB_MSG_TERMINATE:
		on_terminate(b, c, m, now);
		break;
	case MB_MSG_SUBSCRIBE:
		on_subscribe(b, c, m);
		break;
	case MB_MSG_SHARE_ANSWER:
		on_share_answer(b, c, m, now);
		break;
	case MB_MSG_CLAIM:
		on_claim(b, c, m, now);
		break;
	case MB_MSG_CONTROL:
		on_control(b, c, m);
		break;
	default:
		refuse(b, c, m, MB_ST_UNKNOWN);
		break;
	}
#ifdef MB_BROKER_DEBUG
	if (broker_check_invariants(b) != 0)
		abort();
#endif
}

/* ---- time, configuration, shutdown ------------------------------------ */

/* Close unregistered connections past their time limit. */
static void expire_silent(struct broker *b, struct clist *l, uint64_t limit,
			  const char *what, uint64_t now)
{
	struct bclient *c;
	while ((c = TAILQ_FIRST(l)) != NULL && timer_due(b, l, limit) <= now) {
		timer_disarm(b, c);
		mb_log(MB_LOG_NOTICE, "pid %d uid %u: %s for %lu ms: closing",
		       (int)c->peer.pid, (unsigned)c->peer.uid, what, (unsigned long)limit);
		drop(b, c, now);
	}
}

void broker_tick(struct broker *b, uint64_t now)
{
	struct bclient *c;
	expire_silent(b, &b->fresh, b->cfg.handshake_ms, "no frame", now);
	expire_silent(b, &b->quiet, b->cfg.idle_ms, "unregistered and silent", now);
	TAILQ_FOREACH(c, &b->queue, req.qlink) {
		struct breq *r = &c->req;
		if (r->complete || r->deadline > now)
			continue;
		mb_log(MB_LOG_INFO, "client %lu: %s deadline passed with %lu of %lu pages",
		       (unsigned long)c->id, urg_name(r->urg), (unsigned long)r->acquired,
		       (unsigned long)r->asked);
		req_finish(b, c, MB_ST_TIMEDOUT);
	}
	TAILQ_FOREACH(c, &b->askable, alink) {
		if (!c->sh_sent || c->sh_deadline > now)
			continue;
		mb_log(MB_LOG_NOTICE, "client %lu (%s, pid %d) did not answer a %s query "
		       "for %lu pages within %lu ms: counted as a denial",
		       (unsigned long)c->id, c->comm, (int)c->peer.pid,
		       urg_name((unsigned)c->sh_level), (unsigned long)c->sh_pages,
		       (unsigned long)b->cfg.share_deadline_ms);
		if (b->ops.answered)
			b->ops.answered(b->ctx, c, c->sh_pages, 0, 1);
		take_share(b, c, 0, 1);
	}
	expire_kept(b, now);
	cycle(b, now);
}

uint64_t broker_next_deadline(const struct broker *b)
{
	uint64_t next = NO_DEADLINE;
	const struct bclient *c;
	TAILQ_FOREACH(c, &b->queue, req.qlink)
		if (!c->req.complete && c->req.deadline < next)
			next = c->req.deadline;
	TAILQ_FOREACH(c, &b->askable, alink)
		if (c->sh_sent && c->sh_deadline < next)
			next = c->sh_deadline;
	next = umin(next, timer_due(b, &b->fresh, b->cfg.handshake_ms));
	next = umin(next, timer_due(b, &b->quiet, b->cfg.idle_ms));
	return kept_next_deadline(b, next);
}

static int copy_ids(uid_t **dst, const uid_t *src, size_t n)
{
	*dst = NULL;
	if (!n)
		return 0;
	*dst = calloc(n, sizeof(**dst));
	if (!*dst)
		return -1;
	memcpy(*dst, src, n * sizeof(**dst));
	return 0;
}

static int copy_config(struct broker_config *dst, const struct broker_config *src)
{
	uid_t *uids = NULL, *suids;
	gid_t *gids = NULL;
	if (copy_ids(&suids, src->source_uids, src->nsource_uids) != 0)
		return -1;
	if (src->nuids) {
		uids = calloc(src->nuids, sizeof(*uids));
		if (!uids) {
			free(suids);
			return -1;
		}
		memcpy(uids, src->uids, src->nuids * sizeof(*uids));
	}
	if (src->ngids) {
		gids = calloc(src->ngids, sizeof(*gids));
		if (!gids) {
			free(uids);
			free(suids);
			return -1;
		}
		memcpy(gids, src->gids, src->ngids * sizeof(*gids));
	}
	free(dst->uids);
	free(dst->gids);
	free(dst->source_uids);
	*dst = *src;
	dst->uids = uids;
	dst->gids = gids;
	dst->source_uids = suids;
	return 0;
}

/* The pool is in debt: ask bidi clients holding pages to give some back. */
static void reclaim_debt(struct broker *b, uint64_t now)
{
	uint64_t debt = b->pool < 0 ? (uint64_t)-b->pool : 0;
	struct bclient *c;
	TAILQ_FOREACH(c, &b->askable, alink) {
		if (debt == 0)
			break;
		if (c->req.active || c->sh_level != SHARE_NONE || c->balance <= 0)
			continue;
		uint64_t k = umin(debt, (uint64_t)c->balance);
		build_query(c, MB_URG_REQUEST, k);
		debt -= k;
	}
	send_built(b, now);
}

void broker_reconfigure(struct broker *b, const struct broker_config *cfg,
			uint64_t now)
{
	uint64_t old = b->cfg.initial;
	if (copy_config(&b->cfg, cfg) != 0) {
		mb_log(MB_LOG_ERR, "out of memory applying the new configuration");
		return;
	}
	b->pool += (int64_t)cfg->initial - (int64_t)old;
	struct bclient *c;
	TAILQ_FOREACH(c, &b->all, link)
		if (c->state != CL_GONE)
			c->allowed = allowed(&b->cfg, &c->peer);
	if (b->pool < 0) {
		mb_log(MB_LOG_NOTICE, "new total leaves the pool %ld pages in debt",
		       (long)b->pool);
		reclaim_debt(b, now);
	}
	cycle(b, now);
}

void broker_shutdown(struct broker *b, uint64_t now)
{
	struct bclient *c, *tmp;
	TAILQ_FOREACH_SAFE(c, &b->queue, req.qlink, tmp) {
		uint32_t seq = c->req.seq;
		b->pool += (int64_t)c->req.acquired;
		dequeue(b, c);
		send_grant(b, c, seq, MB_ST_SHUTDOWN, 0);
	}
	(void)now;
}

struct broker *broker_new(const struct broker_config *cfg,
			  const struct broker_ops *ops, void *ctx, uint64_t now)
{
	struct broker *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	if (copy_config(&b->cfg, cfg) != 0) {
		free(b);
		return NULL;
	}
	b->ops = *ops;
	b->ctx = ctx;
	b->pool = (int64_t)cfg->initial;
	b->start = now;
	b->last_total = cfg->initial;
	b->pool_low_state = b->pool <= (int64_t)cfg->pool_low;
	TAILQ_INIT(&b->all);
	TAILQ_INIT(&b->askable);
	TAILQ_INIT(&b->queue);
	TAILQ_INIT(&b->fresh);
	TAILQ_INIT(&b->quiet);
	TAILQ_INIT(&b->kept);
	return b;
}

void broker_free(struct broker *b)
{
	if (!b)
		return;
	struct bclient *c;
	while ((c = TAILQ_FIRST(&b->all)) != NULL) {
		TAILQ_REMOVE(&b->all, c, link);
		if (c->req.active)
			req_clear(&c->req);
		free(c);
	}
	struct kept *k;
	while ((k = TAILQ_FIRST(&b->kept)) != NULL) {
		TAILQ_REMOVE(&b->kept, k, link);
		free(k);
	}
	free(b->cfg.uids);
	free(b->cfg.gids);
	free(b->cfg.source_uids);
	free(b);
}

/* ---- hooks of the memory policy --------------------------------------- */

uint64_t broker_give_back(struct broker *b, uint64_t pages, uint64_t now,
			  void (*chosen)(void *arg, struct bclient *c, uint64_t pages),
			  void *arg)
{
	uint64_t asked = 0;
	while (asked < pages) {
		/* Largest holder not yet asked: clients are few, a scan is fine. */
		struct bclient *c, *best = NULL;
		TAILQ_FOREACH(c, &b->askable, alink) {
			if (c->req.active || c->sh_level != SHARE_NONE || c->sh_building ||
			    holdings(c) == 0)
				continue;
			if (!best || holdings(c) > holdings(best))
				best = c;
		}
		if (!best)
			break;
		uint64_t k = umin(pages - asked, holdings(best));
		build_query(best, MB_URG_REQUEST, k);
		if (chosen)
			chosen(arg, best, k);
		asked += k;
	}
	if (chosen)
		chosen(arg, NULL, 0); /* all chosen: the queries go now */
	send_built(b, now);
	return asked;
}

void broker_set_initial(struct broker *b, uint64_t pages, uint64_t now)
{
	if (pages == b->cfg.initial)
		return;
	b->pool += (int64_t)pages - (int64_t)b->cfg.initial;
	b->cfg.initial = pages;
	if (b->pool < 0)
		reclaim_debt(b, now);
	cycle(b, now);
}

void broker_foreach(struct broker *b, void (*fn)(void *arg, struct bclient *c),
		    void *arg)
{
	struct bclient *c, *tmp;
	TAILQ_FOREACH_SAFE(c, &b->all, link, tmp)
		if (c->state == CL_REG)
			fn(arg, c);
}

uint64_t broker_lent(const struct broker *b)
{
	return b->pool < (int64_t)b->cfg.initial ?
		(uint64_t)((int64_t)b->cfg.initial - b->pool) : 0;
}

const struct broker_peer *broker_client_peer(const struct bclient *c) { return &c->peer; }
int broker_client_kind(const struct bclient *c) { return (int)c->kind; }
const char *broker_client_name(const struct bclient *c) { return c->comm; }
void broker_client_set_private(struct bclient *c, uint64_t word) { c->private_word = word; }
uint64_t broker_client_private(const struct bclient *c) { return c->private_word; }
void broker_client_set_last(struct bclient *c, int last) { c->last = last; }
int broker_client_last(const struct bclient *c) { return c->last; }
uint64_t broker_client_flags(const struct bclient *c) { return c->flags; }

/* ---- accessors and invariants ----------------------------------------- */

void *broker_client_user(const struct bclient *c) { return c->user; }
uint64_t broker_client_id(const struct bclient *c) { return c->id; }
int64_t broker_client_balance(const struct bclient *c) { return c->balance; }
uint64_t broker_client_reserve_waiting(const struct bclient *c)
{
	const struct breq *r = &c->req;

	return r->active && !r->complete && r->urg == MB_URG_RESERVE ? r->need : 0;
}
int broker_client_registered(const struct bclient *c) { return c->state == CL_REG; }
int64_t broker_pool(const struct broker *b) { return b->pool; }
uint64_t broker_total(const struct broker *b) { return b->cfg.initial + b->source_total; }
uint64_t broker_nclients(const struct broker *b) { return b->nclients; }
uint64_t broker_nqueued(const struct broker *b) { return b->nqueued; }
uint64_t broker_kept(const struct broker *b) { return b->kept_pages; }

#define BROKEN(...) do { mb_log(MB_LOG_ERR, "invariant broken: " __VA_ARGS__); return -1; } while (0)

int broker_check_invariants(const struct broker *b)
{
	int64_t sum = b->pool;
	uint64_t sources = 0, nreg = 0, nq = 0;
	const struct bclient *c;
	TAILQ_FOREACH(c, &b->all, link) {
		if (c->state != CL_REG) {
			if (c->balance != 0 || c->req.active)
				BROKEN("unregistered client %lu holds pages", (unsigned long)c->id);
			continue;
		}
		nreg++;
		sum += c->balance;
		sources += c->source_pages;
		if (c->kind != MB_KIND_SOURCE && c->balance < 0)
			BROKEN("client %lu balance %ld", (unsigned long)c->id, (long)c->balance);
		if (c->balance < -(int64_t)c->source_pages)
			BROKEN("source %lu lent %ld of %lu", (unsigned long)c->id,
			       (long)-c->balance, (unsigned long)c->source_pages);
		if (c->sh_building)
			BROKEN("client %lu has an unsent query", (unsigned long)c->id);
		if (c->sh_sent && !is_askable_kind(c->kind))
			BROKEN("client %lu asked but cannot share", (unsigned long)c->id);
		if (c->sh_level == SHARE_NONE && (c->sh_sent || c->sh_pages))
			BROKEN("client %lu share state", (unsigned long)c->id);
	}
	TAILQ_FOREACH(c, &b->queue, req.qlink) {
		const struct breq *r = &c->req;
		nq++;
		sum += (int64_t)r->acquired;
		if (!r->active || r->complete || c->state != CL_REG)
			BROKEN("queued request of client %lu is not live", (unsigned long)c->id);
		if (r->need == 0 || r->need + r->acquired != r->asked)
			BROKEN("request of client %lu: %lu + %lu != %lu", (unsigned long)c->id,
			       (unsigned long)r->need, (unsigned long)r->acquired,
			       (unsigned long)r->asked);
		unsigned open = 0;
		for (size_t i = 0; i < r->nans; i++) {
			const struct bclient *a = r->ans[i].asked;
			if (!a)
				continue;
			open++;
			if (!a->sh_sent || a->state != CL_REG)
				BROKEN("request of client %lu waits on no query", (unsigned long)c->id);
		}
		if (open != r->nsharers)
			BROKEN("request of client %lu: %u open asks, counted %u",
			       (unsigned long)c->id, open, r->nsharers);
	}
	if (kept_check(b) != 0)
		return -1;
	sum += (int64_t)b->kept_pages;
	if (sum != (int64_t)b->cfg.initial)
		BROKEN("pool %ld + balances + in flight = %ld, not %lu", (long)b->pool,
		       (long)sum, (unsigned long)b->cfg.initial);
	if (sources != b->source_total)
		BROKEN("declared source pages %lu != %lu", (unsigned long)sources,
		       (unsigned long)b->source_total);
	if (nreg != b->nclients || nq != b->nqueued)
		BROKEN("counts: %lu clients (%lu), %lu queued (%lu)", (unsigned long)nreg,
		       (unsigned long)b->nclients, (unsigned long)nq, (unsigned long)b->nqueued);
	if (!TAILQ_EMPTY(&b->queue) || b->pool <= 0)
		return 0;
	TAILQ_FOREACH(c, &b->askable, alink)
		if (c->kind == MB_KIND_SOURCE && c->balance < 0)
			BROKEN("source %lu unpaid with pages in the pool", (unsigned long)c->id);
	return 0;
}
