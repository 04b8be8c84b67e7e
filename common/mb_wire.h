/*
 * mb_wire.h - the membroker wire format, defined once for the server and
 * the client library.
 *
 * Transport: AF_UNIX SOCK_STREAM.  Every message is a frame:
 *
 *   offset  size  field
 *   0       4     magic    MB_WIRE_MAGIC, little-endian
 *   4       2     version  MB_WIRE_VERSION
 *   6       2     type     enum mb_msg_type
 *   8       4     seq      chosen by the sender of a request, echoed in the
 *                          reply; server-initiated messages carry the
 *                          server's own sequence (a SHARE_ANSWER echoes the
 *                          seq of the SHARE_QUERY it answers)
 *   12      4     len      payload length in bytes, a multiple of 8, and
 *                          exactly mb_wire_payload_words(type) * 8
 *   16      len   payload  unsigned 64-bit little-endian words
 *
 * The payload of each type is a fixed list of 64-bit words; the MB_W_*
 * enums below name the index of each word.  Text (a command name) travels
 * as MB_WIRE_COMM_WORDS words of NUL-padded bytes.  A frame whose magic,
 * version, type or length is wrong is malformed: the receiver reports
 * MB_ST_PROTO and drops the connection; it never guesses.
 *
 * Amounts are pages of mb_hello_ack.page_size bytes.  A count whose top bit
 * is set (it would be negative as a signed value) or above MB_WIRE_MAX_PAGES
 * is refused with MB_ST_INVAL.
 *
 * Identity is the connection: the server takes pid, uid and gid from
 * SO_PEERCRED and assigns the client id in HELLO_ACK.  The first frame on a
 * connection must be HELLO (or STATUS/QUERY for read-only tools, which are
 * answered without registering).
 */
#ifndef MB_WIRE_H
#define MB_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define MB_WIRE_MAGIC 0x4b52424dU /* "MBRK" read as little-endian bytes */
#define MB_WIRE_VERSION 1
#define MB_WIRE_HDR_SIZE 16
#define MB_WIRE_MAX_WORDS 16
#define MB_WIRE_MAX_FRAME (MB_WIRE_HDR_SIZE + MB_WIRE_MAX_WORDS * 8)
#define MB_WIRE_COMM_WORDS 2 /* 16 bytes of command name */
#define MB_WIRE_MAX_PAGES (UINT64_C(1) << 52)
#define MB_WIRE_NO_DEADLINE UINT64_MAX

/* Client kinds, sent in HELLO. */
enum mb_kind {
	MB_KIND_SINK = 0,   /* asks and returns, never asked to share */
	MB_KIND_BIDI = 1,   /* can also be asked to give back */
	MB_KIND_SOURCE = 2, /* bidi that owns declared pages it can lend */
	MB_KIND_OBSERVER = 3, /* read-only tools: QUERY, STATUS, SUBSCRIBE */
	MB_KIND_COUNT
};

/* Urgency of a request and of a share query. */
enum mb_urgency {
	MB_URG_REQUEST = 0, /* fast, may be partial, bounded wait */
	MB_URG_RESERVE = 1, /* all or nothing, may wait long */
	MB_URG_COUNT
};

enum mb_msg_type {
	MB_MSG_INVALID = 0,
	/* client -> server */
	MB_MSG_HELLO = 1,
	MB_MSG_REQUEST = 2,
	MB_MSG_RESERVE = 3,
	MB_MSG_RETURN = 4,
	MB_MSG_CANCEL = 5,
	MB_MSG_QUERY = 6,
	MB_MSG_STATUS = 7,
	MB_MSG_TERMINATE = 8,
	MB_MSG_SUBSCRIBE = 9,
	MB_MSG_SHARE_ANSWER = 10,
	MB_MSG_CLAIM = 11,        /* after a reconnect: the pages this client holds */
	MB_MSG_CONTROL = 12,      /* read or set the memory watermarks */
	/* server -> client replies */
	MB_MSG_HELLO_ACK = 32,
	MB_MSG_GRANT = 33,        /* reply to REQUEST and RESERVE */
	MB_MSG_RETURN_ACK = 34,
	MB_MSG_CANCEL_ACK = 35,
	MB_MSG_QUERY_REPLY = 36,
	MB_MSG_STATUS_HEAD = 37,  /* STATUS reply: HEAD, one CLIENT per client, END */
	MB_MSG_STATUS_CLIENT = 38,
	MB_MSG_STATUS_END = 39,
	MB_MSG_TERMINATE_ACK = 40,
	MB_MSG_SUBSCRIBE_ACK = 41,
	MB_MSG_ERROR = 42,        /* reply to a frame that has no reply of its own */
	MB_MSG_CLAIM_ACK = 43,
	MB_MSG_CONTROL_ACK = 44,
	/* server -> client, unsolicited */
	MB_MSG_SHARE_QUERY = 64,  /* please give back pages (bidi and source only) */
	MB_MSG_REPAY = 65,        /* pages a source lent come back to it */
	MB_MSG_EVENT = 66,        /* subscribed event */
	MB_MSG_TYPE_MAX = 67
};

/* Status carried in every reply (word 0 of each reply). */
enum mb_status {
	MB_ST_OK = 0,
	MB_ST_PROTO = 1,      /* malformed frame */
	MB_ST_VERSION = 2,    /* unsupported protocol version */
	MB_ST_INVAL = 3,      /* impossible count or field */
	MB_ST_BUSY = 4,       /* a request of this client is already pending */
	MB_ST_PERM = 5,       /* not allowed for this client (uid, kind) */
	MB_ST_DENIED = 6,     /* RESERVE could not be satisfied */
	MB_ST_TIMEDOUT = 7,   /* deadline passed */
	MB_ST_CANCELED = 8,   /* CANCEL by the client */
	MB_ST_OVERRETURN = 9, /* returning more than held */
	MB_ST_CAP = 10,       /* per-client cap reached */
	MB_ST_NOTREG = 11,    /* HELLO missing or repeated */
	MB_ST_SHUTDOWN = 12,  /* server is shutting down */
	MB_ST_NOREQ = 13,     /* CANCEL with nothing pending, or stray answer */
	MB_ST_UNKNOWN = 14,   /* unknown message type */
	MB_ST_UIDCAP = 15,    /* per-uid cap (pages or connections) reached */
	MB_ST_CLAIM_PARTIAL = 17, /* CLAIM accepted in part: the pool had less */
	MB_ST_LOWMEM = 18,    /* the device is past the deny watermark */
	MB_ST_COUNT /* 16 is reserved */
};

/* Events for SUBSCRIBE (bit mask) and EVENT. */
enum mb_event {
	MB_EV_POOL_LOW = 1u << 0,    /* pool fell below the notify mark */
	MB_EV_POOL_OK = 1u << 1,     /* pool back above it */
	MB_EV_TOTAL_CHANGED = 1u << 2,
	MB_EV_MEM_NOTIFY = 1u << 3,  /* system memory above the notify watermark */
	MB_EV_MEM_DENY = 1u << 4,    /* system memory above the deny watermark */
	MB_EV_MEM_OK = 1u << 5,
	/* value: the estimated milliseconds until deny, from the lending rate */
	MB_EV_MEM_EARLY = 1u << 8,
	MB_EV_ALL = ((1u << 6) - 1) | MB_EV_MEM_EARLY
};

/*
 * HELLO flags (word MB_W_HELLO_FLAGS).  KEEP: when this connection ends
 * without TERMINATE, the broker keeps the balance out of the pool for its
 * claim grace; a later HELLO with KEEP from the same uid and name takes it
 * back.  Unknown bits are ignored.
 */
#define MB_HELLO_KEEP (UINT64_C(1) << 8)
/* HELLO flags.  Bits 0..7: memory policy. */
#define MB_HELLO_EXPENDABLE (UINT64_C(1) << 0) /* may be signalled as a last resort */

/* Word indexes of each payload. */
enum { MB_W_HELLO_VERSION, MB_W_HELLO_KIND, MB_W_HELLO_SOURCE_PAGES,
       MB_W_HELLO_FLAGS, MB_W_HELLO_COMM, /* + MB_WIRE_COMM_WORDS */
       MB_W_HELLO_COUNT = MB_W_HELLO_COMM + MB_WIRE_COMM_WORDS };
enum { MB_W_ACK_STATUS, MB_W_ACK_VERSION, MB_W_ACK_PAGE_SIZE, MB_W_ACK_TOTAL,
       MB_W_ACK_CLIENT_ID, MB_W_ACK_POOL, MB_W_ACK_COUNT };
/* REQUEST and RESERVE: deadline in milliseconds from receipt,
 * MB_WIRE_NO_DEADLINE for none (RESERVE) or the server default (REQUEST). */
enum { MB_W_REQ_PAGES, MB_W_REQ_DEADLINE_MS, MB_W_REQ_COUNT };
enum { MB_W_GRANT_STATUS, MB_W_GRANT_PAGES, MB_W_GRANT_BALANCE, MB_W_GRANT_COUNT };
enum { MB_W_RET_PAGES, MB_W_RET_COUNT };
enum { MB_W_RETACK_STATUS, MB_W_RETACK_BALANCE, MB_W_RETACK_COUNT };
enum { MB_W_CANCEL_COUNT = 0 };
enum { MB_W_CANACK_STATUS, MB_W_CANACK_COUNT };
enum { MB_W_QUERY_COUNT = 0 };
enum { MB_W_QR_STATUS, MB_W_QR_POOL, MB_W_QR_TOTAL, MB_W_QR_BALANCE,
       MB_W_QR_SOURCE_PAGES, MB_W_QR_PAGE_SIZE, MB_W_QR_CLIENTS, MB_W_QR_COUNT };
enum { MB_W_STATUS_COUNT = 0 };
/* Pool is signed (a departed source can leave a debt): two's complement. */
enum { MB_W_SH_STATUS, MB_W_SH_POOL, MB_W_SH_TOTAL, MB_W_SH_INITIAL,
       MB_W_SH_PAGE_SIZE, MB_W_SH_CLIENTS, MB_W_SH_QUEUED, MB_W_SH_UPTIME_MS,
       MB_W_SH_COUNT };
/* Balance is signed: a source that lent pages holds a negative balance. */
enum { MB_W_SC_ID, MB_W_SC_PID, MB_W_SC_UID, MB_W_SC_KIND, MB_W_SC_BALANCE,
       MB_W_SC_SOURCE_PAGES, MB_W_SC_REQ_TYPE /* MB_MSG_REQUEST/RESERVE or 0 */,
       MB_W_SC_REQ_PAGES, MB_W_SC_REQ_ACQUIRED, MB_W_SC_REQ_AGE_MS,
       MB_W_SC_SHARE_URG /* urgency + 1, or 0 for no open query */,
       MB_W_SC_SHARE_PAGES, MB_W_SC_SHARE_AGE_MS, MB_W_SC_COMM,
       /* private resident bytes last measured (MB_SC_PRIVATE_UNKNOWN: not
        * measured), or'ed with MB_SC_DISHONOURED */
       MB_W_SC_PRIVATE = MB_W_SC_COMM + MB_WIRE_COMM_WORDS,
       MB_W_SC_COUNT };
#define MB_SC_PRIVATE_MASK ((UINT64_C(1) << 62) - 1)
#define MB_SC_PRIVATE_UNKNOWN MB_SC_PRIVATE_MASK
#define MB_SC_DISHONOURED (UINT64_C(1) << 62) /* did not free what it claimed */
enum { MB_W_SE_STATUS, MB_W_SE_COUNT };
enum { MB_W_TERM_COUNT = 0 };
enum { MB_W_TERMACK_STATUS, MB_W_TERMACK_RECLAIMED, MB_W_TERMACK_COUNT };
enum { MB_W_SUB_MASK, MB_W_SUB_COUNT };
enum { MB_W_SUBACK_STATUS, MB_W_SUBACK_MASK, MB_W_SUBACK_COUNT };
enum { MB_W_ANS_PAGES, MB_W_ANS_COUNT };
/*
 * CLAIM: the pages this client holds in all (memory it kept using while the
 * broker was away).  Sinks and bidi clients only, once per connection,
 * with no request pending; the broker sets the balance to the claim as far
 * as its pool (and the per-client cap) allows and answers OK, or
 * CLAIM_PARTIAL with the balance it accepted.
 */
enum { MB_W_CLAIM_PAGES, MB_W_CLAIM_COUNT };
enum { MB_W_CLAIMACK_STATUS, MB_W_CLAIMACK_BALANCE, MB_W_CLAIMACK_COUNT };
enum { MB_W_ERR_STATUS, MB_W_ERR_TYPE /* type of the offending frame */, MB_W_ERR_COUNT };
enum { MB_W_SQ_URGENCY, MB_W_SQ_PAGES, MB_W_SQ_DEADLINE_MS, MB_W_SQ_COUNT };
enum { MB_W_REPAY_PAGES, MB_W_REPAY_BALANCE, MB_W_REPAY_COUNT };
enum { MB_W_EV_EVENT, MB_W_EV_POOL, MB_W_EV_TOTAL, MB_W_EV_VALUE, MB_W_EV_COUNT };
/*
 * CONTROL: read (MB_CTL_GET, anyone) or set (MB_CTL_SET, privileged callers
 * only) one watermark.  A value is bytes, or hundredths of a percent of the
 * device with MB_CTL_UNIT_PERCENT (11000 is 110%); MB_CTL_OFF turns a mark
 * off.  The reply carries the whole state after the change.
 */
enum mb_ctl_op { MB_CTL_GET = 0, MB_CTL_SET = 1 };
enum mb_ctl_mark { MB_CTL_NOTIFY_HIGH = 0, MB_CTL_NOTIFY_LOW = 1,
		   MB_CTL_DENY_HIGH = 2, MB_CTL_DENY_LOW = 3, MB_CTL_HEADROOM = 4,
		   MB_CTL_MARK_COUNT };
enum mb_ctl_unit { MB_CTL_UNIT_BYTES = 0, MB_CTL_UNIT_PERCENT = 1, MB_CTL_OFF = 2 };
/* Watermark states, in order of severity. */
enum mb_mem_state { MB_MEM_NORMAL = 0, MB_MEM_NOTIFY = 1, MB_MEM_DENY = 2 };
/* Where the device figures come from. */
enum mb_dev_source { MB_DEV_NONE = 0, MB_DEV_MEMINFO = 1, MB_DEV_CGROUP1 = 2,
		     MB_DEV_CGROUP2 = 3 };
enum { MB_W_CTL_OP, MB_W_CTL_MARK, MB_W_CTL_UNIT, MB_W_CTL_VALUE, MB_W_CTL_COUNT };
/* Amounts in bytes; marks that are off read as UINT64_MAX; the estimate is
 * UINT64_MAX when memory is not growing. */
enum { MB_W_CA_STATUS, MB_W_CA_STATE /* enum mb_mem_state */,
       MB_W_CA_SOURCE /* enum mb_dev_source */, MB_W_CA_DEV_TOTAL, MB_W_CA_DEV_USED,
       MB_W_CA_NOTIFY_HIGH, MB_W_CA_NOTIFY_LOW, MB_W_CA_DENY_HIGH, MB_W_CA_DENY_LOW,
       MB_W_CA_HEADROOM, MB_W_CA_LENDABLE /* pages */, MB_W_CA_LENT /* pages */,
       MB_W_CA_RATE /* pages lent per second, signed */, MB_W_CA_ESTIMATE_MS,
       MB_W_CA_OVERUSE_PCT, MB_W_CA_POLL_MS, MB_W_CA_COUNT };

/* A decoded frame. */
struct mb_msg {
	uint16_t type;
	uint32_t seq;
	uint32_t nwords;
	uint64_t w[MB_WIRE_MAX_WORDS];
};

/* Payload words expected for a type; -1 for a type that does not exist. */
int mb_wire_payload_words(unsigned type);

/* Name of a type for logs ("REQUEST"), "?" for an unknown one. */
const char *mb_wire_type_name(unsigned type);
/* Name of a status ("OK", "DENIED"), "?" for an unknown one. */
const char *mb_wire_status_name(unsigned status);

/*
 * Encode m into buf (at least MB_WIRE_MAX_FRAME bytes).  m->nwords is set
 * from the type.  Returns the frame length, or -1 for an unknown type.
 */
int mb_wire_encode(const struct mb_msg *m, unsigned char *buf, size_t cap);

/*
 * Decode one frame from the start of buf.  Returns the number of bytes
 * consumed (> 0), 0 when more bytes are needed, or -MB_ST_PROTO,
 * -MB_ST_VERSION or -MB_ST_UNKNOWN for a malformed frame.  Never reads past
 * len; a complete header is validated before any payload is awaited, so a
 * hostile length cannot make the receiver wait for bytes that never come.
 */
int mb_wire_decode(const unsigned char *buf, size_t len, struct mb_msg *m);

/* Fill a message with a type and a sequence number, words zeroed. */
void mb_msg_init(struct mb_msg *m, unsigned type, uint32_t seq);

/* Copy a command name into / out of MB_WIRE_COMM_WORDS words. */
void mb_wire_put_comm(uint64_t *words, const char *comm);
void mb_wire_get_comm(const uint64_t *words, char out[MB_WIRE_COMM_WORDS * 8 + 1]);

/* A count is acceptable on the wire. */
static inline int mb_wire_count_ok(uint64_t pages)
{
	return pages <= MB_WIRE_MAX_PAGES;
}

#endif /* MB_WIRE_H */
