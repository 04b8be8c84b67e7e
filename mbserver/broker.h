/*
 * broker.h - the membroker brokering logic as a pure state machine.
 *
 * Events go in (a connection appeared, a decoded frame arrived, a
 * connection went away, the clock moved, the configuration changed);
 * actions come out through the callbacks of struct broker_ops (send this
 * frame to that client, close that client).  The state machine never reads
 * a clock, never touches a socket and never blocks: the caller passes the
 * monotonic time in milliseconds with every event.  Logging goes through
 * mb_log, which a test can redirect.
 *
 * The daemon (server.c) owns the sockets and maps each connection to the
 * struct bclient returned by broker_connect().
 */
#ifndef MBSERVER_BROKER_H
#define MBSERVER_BROKER_H

#include <stdint.h>
#include <sys/types.h>

#include "mb_wire.h"

struct broker;
struct bclient;

/* Tunables; the daemon fills them from its config table. */
struct broker_config {
	uint64_t page_size;           /* bytes per quota page */
	uint64_t initial;             /* pages owned by the broker itself */
	uint64_t cap;                 /* most pages one client may hold; 0: no cap */
	uint64_t request_deadline_ms; /* default (and longest) wait of a REQUEST */
	uint64_t share_deadline_ms;   /* how long a bidi client has to answer */
	uint64_t claim_grace_ms;      /* balance of a KEEP client kept this long; 0: never */
	uint64_t pool_low;            /* pool at or below this many pages is "low" */
	/* Trust: who may lend declared pages and how many, and what one user
	 * may take.  root (uid 0) may always be a source and has no uid caps. */
	uint64_t source_max;          /* most pages one source may declare */
	uid_t *source_uids;           /* besides root, who may be a source */
	size_t nsource_uids;
	uint64_t uid_cap;             /* most pages all clients of one uid hold; 0: none */
	uint64_t uid_connections;     /* most connections of one uid; 0: no limit */
	uint64_t handshake_ms;        /* first frame due this long after connecting; 0: never */
	uint64_t idle_ms;             /* an unregistered connection silent this long is closed; 0: never */
	/* Who may register; empty lists allow everyone.  uid 0 is always allowed. */
	uid_t *uids;
	size_t nuids;
	gid_t *gids;
	size_t ngids;
};

/* What the daemon knows about a peer before it says anything. */
struct broker_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	char comm[MB_WIRE_COMM_WORDS * 8 + 1]; /* from /proc, may be empty */
	uint64_t start; /* when the process started (/proc/PID/stat, clock
			 * ticks after boot; 0: unknown): a pid reused by
			 * another process differs */
};

/* The peer is root, or its uid is in uids, or its gid in gids. */
int broker_peer_listed(const struct broker_peer *p, const uid_t *uids, size_t nuids,
		       const gid_t *gids, size_t ngids);

struct broker_ops {
	/* Queue one frame for the client; must not call back into the broker. */
	void (*send)(void *ctx, struct bclient *c, const struct mb_msg *m);
	/* Close the client once its queued frames are written.  The broker has
	 * already forgotten the client's pages; the daemon calls
	 * broker_disconnect() when the connection is really gone. */
	void (*close)(void *ctx, struct bclient *c);
	/* Optional hooks of a memory policy (NULL: none). */
	/* May c's REQUEST or RESERVE (type) of pages go ahead?  MB_ST_OK, or the
	 * status it is refused with. */
	unsigned (*admit)(void *ctx, struct bclient *c, unsigned type, uint64_t pages);
	/* Answer a CONTROL frame: fill reply (already a CONTROL_ACK). */
	void (*control)(void *ctx, struct bclient *c, const struct mb_msg *m,
			struct mb_msg *reply);
	/* c answered a give-back query for asked pages with given (0 when its
	 * deadline passed: timedout set). */
	void (*answered)(void *ctx, struct bclient *c, uint64_t asked,
			 uint64_t given, int timedout);
};

struct broker *broker_new(const struct broker_config *cfg,
			  const struct broker_ops *ops, void *ctx, uint64_t now);
void broker_free(struct broker *b);

/* A connection was accepted.  user is the daemon's cookie for it.
 * Returns NULL only when out of memory. */
struct bclient *broker_connect(struct broker *b, const struct broker_peer *peer,
			       void *user, uint64_t now);
/* Right after broker_connect: refuse the connection (ERROR MB_ST_UIDCAP
 * and a close action) when its uid already has uid_connections others.
 * Returns 0 when admitted, -1 when refused. */
int broker_admit(struct broker *b, struct bclient *c, uint64_t now);
/* A decoded frame from c. */
void broker_message(struct broker *b, struct bclient *c, const struct mb_msg *m,
		    uint64_t now);
/* The frame from c could not be decoded (status MB_ST_PROTO, MB_ST_VERSION,
 * MB_ST_UNKNOWN): reply with ERROR and close the client. */
void broker_bad_frame(struct broker *b, struct bclient *c, unsigned status,
		      unsigned type, uint64_t now);
/* The connection is gone (EOF, error, or after a close action).  Frees c. */
void broker_disconnect(struct broker *b, struct bclient *c, uint64_t now);
/* Time passed: expire deadlines. */
void broker_tick(struct broker *b, uint64_t now);
/* The earliest pending deadline, or UINT64_MAX when none. */
uint64_t broker_next_deadline(const struct broker *b);
/* New configuration (SIGHUP).  A smaller total may leave the pool in debt;
 * bidi clients holding pages are then asked to give back. */
void broker_reconfigure(struct broker *b, const struct broker_config *cfg,
			uint64_t now);
/* Server shutting down: every waiting request is answered MB_ST_SHUTDOWN. */
void broker_shutdown(struct broker *b, uint64_t now);

/*
 * Policy hook: publish an event (MB_EV_*) to every subscriber of it.  The
 * broker raises POOL_LOW, POOL_OK and TOTAL_CHANGED itself; a memory
 * watermark policy living in the daemon raises MEM_NOTIFY, MEM_DENY and
 * MEM_OK through this call.
 */
void broker_post_event(struct broker *b, unsigned event, uint64_t value);

/*
 * Ask bidi clients and sources for `pages`, largest holders first, each
 * for at most what it holds, skipping those already asked or requesting.
 * chosen (may be NULL) is told of each client, then once with c NULL,
 * before the queries are sent.
 * Returns the pages asked for.
 */
uint64_t broker_give_back(struct broker *b, uint64_t pages, uint64_t now,
			  void (*chosen)(void *arg, struct bclient *c, uint64_t pages),
			  void *arg);
/* The device changed what the broker may own: pages becomes its own total
 * (a pool left in debt asks the difference back, as a reload does). */
void broker_set_initial(struct broker *b, uint64_t pages, uint64_t now);
/* Call fn for each registered client. */
void broker_foreach(struct broker *b, void (*fn)(void *arg, struct bclient *c),
		    void *arg);
/* Pages out of the broker's own pool: lent or in flight. */
uint64_t broker_lent(const struct broker *b);
const struct broker_peer *broker_client_peer(const struct bclient *c);
int broker_client_kind(const struct bclient *c);
/* The name it gave in HELLO, or its command name. */
const char *broker_client_name(const struct bclient *c);
/* Shown in STATUS (MB_W_SC_PRIVATE). */
void broker_client_set_private(struct bclient *c, uint64_t word);
uint64_t broker_client_private(const struct bclient *c);
/* A client served after the others: its requests queue behind theirs. */
void broker_client_set_last(struct bclient *c, int last);
int broker_client_last(const struct bclient *c);
/* The flags it sent in HELLO (MB_HELLO_*). */
uint64_t broker_client_flags(const struct bclient *c);
/* Pages its queued RESERVE still waits for; 0 when none waits. */
uint64_t broker_client_reserve_waiting(const struct bclient *c);

/* Accessors for the daemon and tests. */
void *broker_client_user(const struct bclient *c);
uint64_t broker_client_id(const struct bclient *c);
int64_t broker_client_balance(const struct bclient *c);
int broker_client_registered(const struct bclient *c);
int64_t broker_pool(const struct broker *b);
uint64_t broker_total(const struct broker *b);
uint64_t broker_nclients(const struct broker *b);
uint64_t broker_nqueued(const struct broker *b);
/* Pages kept for clients that left with MB_HELLO_KEEP, awaiting their return. */
uint64_t broker_kept(const struct broker *b);

/*
 * Check every accounting invariant; returns 0, or -1 after logging the
 * first one broken.  Debug builds (-DMB_BROKER_DEBUG) and the tests run it
 * after every event.
 */
int broker_check_invariants(const struct broker *b);

#endif /* MBSERVER_BROKER_H */
