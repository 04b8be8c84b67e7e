/*
 * mbclient.h - client library of the membroker memory-quota broker.
 *
 * A process asks the broker (mbserver) for quota in pages, returns it, and,
 * as a bidirectional client, is asked to give some back.  The library
 * makes no heap allocation and no stdio call on any path: the handle lives
 * in storage the caller provides (static, stack or inside another object),
 * so it can be used from inside a malloc implementation.
 *
 * Threads: every call on one handle is serialised by the handle's lock, so
 * a handle may be shared by threads.  mb_cancel() may be called from
 * another thread while a request on the same handle is blocked.
 *
 * Fork: a child must never speak on its parent's connection.  The library
 * notices that getpid() changed and treats the handle as disconnected: the
 * child's calls return MB_ENOTCONN without touching the socket or the
 * handle's locks; mb_close() in the child only closes the child's copy of
 * the descriptor (no TERMINATE), after which mb_open() on that storage, or
 * on fresh storage, makes the child a client of its own.  The parent's
 * connection is unaffected.  The socket is close-on-exec.
 *
 * mb_open() takes uninitialised storage; a handle that failed to open
 * keeps its options, and later calls retry the connection (so a client
 * started before the broker recovers).  mb_close() releases it in every
 * case.
 *
 * Errors: functions return 0 or a negative MB_E* code; mb_strerror() names
 * it.  A lost server is MB_ECONNLOST; the next call reconnects and says
 * HELLO again (not with MB_OPEN_NO_AUTOCONNECT: mb_reconnect() does).  The broker reclaimed the old balance when the connection
 * closed (or, after a restart, never knew it): a client that still uses
 * that memory sets opt.claim, and the library declares what it returns
 * with CLAIM right after every HELLO; the broker accepts it as far as its
 * pool allows and mb_balance() says how much.  A frame from the server
 * that is malformed or does not fit the conversation is MB_EPROTO and
 * drops the connection the same way.  After a reconnect mb_fd() returns a
 * new descriptor: event loops fetch it again after MB_ECONNLOST.
 *
 * Deadlines: no call waits without one.  Connecting (HELLO included) is
 * bounded by opt.connect_timeout_ms, every other exchange by
 * opt.call_timeout_ms, a request by its own deadline (see mb_request).
 * When the broker stays silent past it (stopped, hung), the call returns
 * MB_ETIMEDOUT and drops the connection, so the next call reconnects.
 * Calls on one handle from several threads take turns; the wait for a
 * turn counts in the call's deadline (a call that finds another thread's
 * mb_dispatch(-1) or long mb_reserve() under way returns MB_ETIMEDOUT by
 * its own deadline; the connection stays).
 *
 * Reconnecting an idle client: while mb_fd() says MB_ENOTCONN, an event
 * loop polls with mb_reconnect_ms() as its timeout and calls
 * mb_reconnect() when it expires; attempts are MB_RECONNECT_INTERVAL_MS
 * apart, so a broker that comes back is found within that interval plus
 * the connect timeout.
 */
#ifndef MBCLIENT_H
#define MBCLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MB_CLIENT_API_VERSION 2

/* Least time between two attempts of mb_reconnect(). */
#define MB_RECONNECT_INTERVAL_MS 250
/* Most a request waits locally past its own deadline, twice: a caller with
 * a hard limit L picks timeout_ms + 2 * min(call_timeout_ms, MB_GRACE_MAX_MS)
 * <= L (see mb_request). */
#define MB_GRACE_MAX_MS 1000
/* Longest deadline a call accepts (24 hours); longer is MB_EINVAL. */
#define MB_MAX_TIMEOUT_MS (24L * 3600 * 1000)

/* Default socket path; MEMBROKER_SOCKET in the environment overrides it. */
#define MB_DEFAULT_SOCKET "/run/membroker/membroker.sock"
#define MB_SOCKET_ENV "MEMBROKER_SOCKET"

/* Opaque handle storage; the library keeps its state inside. */
#define MB_CLIENT_STORAGE 1024
typedef struct mb_client {
	unsigned char opaque[MB_CLIENT_STORAGE] __attribute__((aligned(16)));
} mb_client;

enum mb_client_kind {
	MB_CLIENT_SINK = 0,   /* asks and returns */
	MB_CLIENT_BIDI = 1,   /* also asked to give back */
	MB_CLIENT_SOURCE = 2, /* bidi that lends pages it owns */
	MB_CLIENT_OBSERVER = 3, /* query and status only */
};

enum mb_client_urgency {
	MB_URGENCY_REQUEST = 0, /* fast, may be partial */
	MB_URGENCY_RESERVE = 1, /* all or nothing, may wait */
};

/* Events for mb_subscribe() (a mask) and the event callback. */
enum mb_client_event {
	MB_EVENT_POOL_LOW = 1u << 0,      /* the pool fell to the broker's low mark */
	MB_EVENT_POOL_OK = 1u << 1,       /* the pool is back above it */
	MB_EVENT_TOTAL_CHANGED = 1u << 2, /* total changed (value: the old total) */
	MB_EVENT_MEM_NOTIFY = 1u << 3,    /* system memory above the notify mark */
	MB_EVENT_MEM_DENY = 1u << 4,      /* system memory above the deny mark */
	MB_EVENT_MEM_OK = 1u << 5,        /* system memory back to normal */
	MB_EVENT_MEM_EARLY = 1u << 8,     /* deny is near at the lending rate
					     (value: estimated milliseconds) */
	MB_EVENT_ALL = ((1u << 6) - 1) | MB_EVENT_MEM_EARLY,
};

/* Error codes (negative return values). */
enum {
	MB_OK = 0,
	MB_EINVAL = -1,      /* bad argument (NULL, count too large) */
	MB_ECONNECT = -2,    /* cannot connect to the broker socket */
	MB_ECONNLOST = -3,   /* the connection broke; next call reconnects */
	MB_EPROTO = -4,      /* the server sent something malformed */
	MB_EVERSION = -5,    /* protocol version not supported */
	MB_EDENIED = -6,     /* RESERVE could not be satisfied */
	MB_ETIMEDOUT = -7,   /* deadline passed */
	MB_ECANCELED = -8,   /* request cancelled by mb_cancel() */
	MB_EBUSY = -9,       /* a request is already pending on this handle */
	MB_EPERM = -10,      /* refused: uid not allowed, or wrong client kind */
	MB_EOVERRETURN = -11, /* returning more than the handle holds */
	MB_ECAP = -12,       /* per-client cap reached */
	MB_ENOTCONN = -13,   /* handle not open (or opened in the parent) */
	MB_ESHUTDOWN = -14,  /* the broker is shutting down */
	MB_EAGAIN = -15,     /* nothing to do now (dispatch without a message) */
	MB_ESYS = -16,       /* a system call failed; see errno */
	MB_ELOWMEM = -17,    /* refused: the device is past the deny watermark */
};

/*
 * Give-back callback of a bidi or source client: free up to `pages` pages
 * (quota pages, mb_page_size() bytes each) at the given urgency and return
 * how many were really freed.  It runs inside mb_dispatch() or inside a
 * blocking call on the same handle; it must not call the handle itself.
 */
typedef uint64_t (*mb_share_fn)(void *arg, enum mb_client_urgency urgency,
				uint64_t pages);

/* Optional: a source is told here when lent pages come back to it. */
typedef void (*mb_repay_fn)(void *arg, uint64_t pages);

/* Optional: subscribed events (one MB_EVENT_* bit per call). */
typedef void (*mb_event_fn)(void *arg, unsigned event, int64_t pool,
			    uint64_t total, uint64_t value);

/* mb_options.flags */
enum mb_open_flags {
	/* When the connection ends without mb_close() (a crash, a lost
	 * broker), ask the broker to keep the balance for this uid and name
	 * for its claim grace; the next connection with the same name and
	 * this flag takes it back (it shows in mb_balance() after the HELLO). */
	MB_OPEN_KEEP = 1u << 0,
	/* The broker may signal this process as a last resort when the device
	 * stays past its deny mark (only if it is configured to). */
	MB_OPEN_EXPENDABLE = 1u << 1,
	/* Calls never connect by themselves: while the connection is down
	 * they return MB_ENOTCONN at once, and only mb_reconnect() connects
	 * (for callers whose calls must not pay for a connection). */
	MB_OPEN_NO_AUTOCONNECT = 1u << 2,
};

/*
 * Optional: called after every successful HELLO (the first and each
 * reconnect), before any other message; returns the pages this client
 * holds now, which the library declares with CLAIM.  Runs with the
 * handle's lock held: it must not call the handle.
 */
typedef uint64_t (*mb_claim_fn)(void *arg);

struct mb_options {
	const char *socket_path;   /* NULL: $MEMBROKER_SOCKET or MB_DEFAULT_SOCKET */
	enum mb_client_kind kind;
	uint64_t source_pages;     /* MB_CLIENT_SOURCE: pages it owns and can lend */
	const char *name;          /* shown in mbstatus; NULL: the command name */
	mb_share_fn share;         /* bidi and source: required */
	mb_repay_fn repay;
	mb_event_fn event;
	void *arg;                 /* passed to the callbacks */
	int connect_timeout_ms;    /* 0: default (1000 ms); -1: the longest (24 h) */
	int call_timeout_ms;       /* replies that need no brokering: RETURN, QUERY,
				    * STATUS, CLAIM...; 0: default (10000 ms) */
	unsigned flags;            /* enum mb_open_flags */
	mb_claim_fn claim;         /* see mb_claim_fn; NULL: nothing is claimed */
};

struct mb_info {
	uint64_t page_size; /* bytes per quota page */
	int64_t pool;       /* pages the broker holds (negative: a debt) */
	uint64_t total;     /* pages under management */
	int64_t balance;    /* pages this client holds (a source: negative when lending) */
	uint64_t source_pages;
	uint64_t clients;
	uint64_t client_id;
};

/* One row of mb_status(). */
struct mb_status_client {
	uint64_t id;
	int64_t pid;
	uint64_t uid;
	enum mb_client_kind kind;
	int64_t balance;
	uint64_t source_pages;
	int req_type;          /* 0 none, 1 REQUEST, 2 RESERVE */
	uint64_t req_pages, req_acquired, req_age_ms;
	int share_urgency;     /* -1 none, else enum mb_client_urgency */
	uint64_t share_pages, share_age_ms;
	char comm[17];
	/* Private resident memory the broker last measured (device view on). */
	int private_known;
	uint64_t private_bytes;
	int dishonoured;       /* said it gave memory back and did not */
};

struct mb_status_head {
	int64_t pool;
	uint64_t total, initial, page_size, clients, queued, uptime_ms;
};

/* The device and its watermarks, from mb_memstate() and mb_set_mark(). */
enum mb_mem_level { MB_MEM_LEVEL_NORMAL = 0, MB_MEM_LEVEL_NOTIFY = 1, MB_MEM_LEVEL_DENY = 2 };
enum mb_mark { MB_MARK_NOTIFY_HIGH = 0, MB_MARK_NOTIFY_LOW = 1, MB_MARK_DENY_HIGH = 2,
	       MB_MARK_DENY_LOW = 3, MB_MARK_HEADROOM = 4, MB_MARK_COUNT };
enum mb_mark_unit {
	MB_MARK_BYTES = 0,
	MB_MARK_PERCENT = 1, /* hundredths of a percent of the device: 9000 is 90% */
	MB_MARK_OFF = 2,
};
#define MB_MARK_UNSET UINT64_MAX
struct mb_memstate {
	enum mb_mem_level level;
	int source;              /* 0 no device view, 1 meminfo, 2 cgroup v1, 3 cgroup v2 */
	uint64_t device_total;   /* bytes */
	uint64_t device_used;    /* bytes compared with the marks */
	uint64_t mark[MB_MARK_COUNT]; /* bytes; MB_MARK_UNSET when off */
	uint64_t lendable;       /* pages the broker may own now */
	uint64_t lent;           /* pages lent */
	int64_t rate;            /* pages lent per second, smoothed */
	uint64_t estimate_ms;    /* until deny at that rate; UINT64_MAX: never */
	uint64_t overuse_percent; /* private memory past this share of a grant is flagged */
	uint64_t poll_ms;        /* device poll interval; 0: no device view */
};

typedef int (*mb_status_row_fn)(void *arg, const struct mb_status_client *row);

/* Open: connect, say HELLO and wait for the acknowledgement. */
int mb_open(mb_client *c, const struct mb_options *opt);
/* TERMINATE (the broker reclaims the balance) and close.  Safe on a
 * handle that failed to open or lost its server. */
int mb_close(mb_client *c);

/*
 * Ask for pages.  REQUEST may grant fewer (*granted says how many, possibly
 * 0, and the call returns 0); RESERVE grants all or fails with MB_EDENIED.
 * timeout_ms > 0 is the deadline sent to the server; the call also gives
 * up locally a little after it (by the grace, the call timeout but at most
 * MB_GRACE_MAX_MS): it then sends CANCEL and, when the server stays silent
 * for another grace, drops the connection and returns MB_ETIMEDOUT.  So it
 * waits at most timeout_ms + 2 grace, the wait for the handle included.  0 uses the server's
 * default deadline (REQUEST) and waits locally for the default reply
 * timeout (10 s); -1 sends no deadline (a RESERVE the server keeps queued)
 * and waits locally for at most 24 h.  While waiting, a bidi handle still
 * answers share queries.  pages == 0 returns at once without I/O.
 */
int mb_request(mb_client *c, uint64_t pages, int timeout_ms, uint64_t *granted);
int mb_reserve(mb_client *c, uint64_t pages, int timeout_ms, uint64_t *granted);
/* Give pages back; more than the balance (plus source pages) is MB_EOVERRETURN. */
int mb_return(mb_client *c, uint64_t pages);
/* Cancel this handle's pending request; the blocked caller gets MB_ECANCELED
 * (or the grant, if it crossed the cancel).  Returns 0 when CANCEL was sent,
 * MB_EAGAIN when no request is pending.  Callable from any thread. */
int mb_cancel(mb_client *c);
int mb_query(mb_client *c, struct mb_info *out);
/* Snapshot: head, then row() for each client; row() returning non-zero stops. */
int mb_status(mb_client *c, struct mb_status_head *head, mb_status_row_fn row,
	      void *arg);
/* Subscribe to events (mask of MB_EVENT_*; 0 ends the subscription); they
 * arrive through opt.event, and the subscription survives a reconnect. */
int mb_subscribe(mb_client *c, unsigned mask);

/* The device figures, watermark level and estimate (any client). */
int mb_memstate(mb_client *c, struct mb_memstate *out);
/* Change one mark at run time (privileged users only: MB_EPERM otherwise);
 * out (may be NULL) receives the state after the change. */
int mb_set_mark(mb_client *c, enum mb_mark mark, enum mb_mark_unit unit,
		uint64_t value, struct mb_memstate *out);

/* Event-loop use: poll this fd for input, then call mb_dispatch().
 * MB_ENOTCONN until the connection's HELLO and CLAIM are done (so is
 * mb_is_open() 0): a call after it does not wait for a handshake. */
int mb_fd(const mb_client *c);
/*
 * Reconnect a handle that lost its broker: 0 when connected (at once when
 * it still is; CLAIM included, see mb_claim_fn), MB_EAGAIN when the last
 * attempt is less than MB_RECONNECT_INTERVAL_MS old, or the error of this
 * attempt.  Bounded by the connect timeout.
 */
int mb_reconnect(mb_client *c);
/* Milliseconds until mb_reconnect() will try again (0: now), or -1 while
 * connected: a timeout for the event loop's poll. */
int mb_reconnect_ms(const mb_client *c);
/* Read what has arrived and run the callbacks; timeout_ms 0 does not wait,
 * -1 waits for one message (the only wait whose length is the caller's
 * choice alone).  Returns the number of messages handled,
 * MB_EAGAIN when none came in time, or an error (MB_ECONNLOST when the
 * server went away).  Every blocking call also handles what is buffered
 * before it returns, so polling mb_fd() never misses a message. */
int mb_dispatch(mb_client *c, int timeout_ms);

uint64_t mb_page_size(const mb_client *c);
int64_t mb_balance(const mb_client *c);
int mb_is_open(const mb_client *c);

const char *mb_strerror(int err);

/*
 * Where the library's own diagnostics go (a lost server, a malformed frame,
 * a late reply): a file descriptor (-1: nowhere) and the highest syslog
 * level written (3 err .. 7 debug).  Default: fd 2; the library writes
 * warnings and errors only, unless the level asks for debug lines.
 * Process-wide; written with one write(2) per line, no allocation.
 */
void mb_set_log(int fd, int level);

#ifdef __cplusplus
}
#endif

#endif /* MBCLIENT_H */
