/*
 * mb_wire.c - encode and decode membroker frames (see mb_wire.h).
 * Pure functions: no allocation, no I/O, safe inside malloc.
 */
#include "mb_wire.h"

#include <string.h>

struct wire_type {
	const char *name;
	int words;
};

static const struct wire_type wire_types[MB_MSG_TYPE_MAX] = {
	[MB_MSG_HELLO] = { "HELLO", MB_W_HELLO_COUNT },
	[MB_MSG_REQUEST] = { "REQUEST", MB_W_REQ_COUNT },
	[MB_MSG_RESERVE] = { "RESERVE", MB_W_REQ_COUNT },
	[MB_MSG_RETURN] = { "RETURN", MB_W_RET_COUNT },
	[MB_MSG_CANCEL] = { "CANCEL", MB_W_CANCEL_COUNT },
	[MB_MSG_QUERY] = { "QUERY", MB_W_QUERY_COUNT },
	[MB_MSG_STATUS] = { "STATUS", MB_W_STATUS_COUNT },
	[MB_MSG_TERMINATE] = { "TERMINATE", MB_W_TERM_COUNT },
	[MB_MSG_SUBSCRIBE] = { "SUBSCRIBE", MB_W_SUB_COUNT },
	[MB_MSG_SHARE_ANSWER] = { "SHARE_ANSWER", MB_W_ANS_COUNT },
	[MB_MSG_CLAIM] = { "CLAIM", MB_W_CLAIM_COUNT },
	[MB_MSG_CONTROL] = { "CONTROL", MB_W_CTL_COUNT },
	[MB_MSG_HELLO_ACK] = { "HELLO_ACK", MB_W_ACK_COUNT },
	[MB_MSG_GRANT] = { "GRANT", MB_W_GRANT_COUNT },
	[MB_MSG_RETURN_ACK] = { "RETURN_ACK", MB_W_RETACK_COUNT },
	[MB_MSG_CANCEL_ACK] = { "CANCEL_ACK", MB_W_CANACK_COUNT },
	[MB_MSG_QUERY_REPLY] = { "QUERY_REPLY", MB_W_QR_COUNT },
	[MB_MSG_STATUS_HEAD] = { "STATUS_HEAD", MB_W_SH_COUNT },
	[MB_MSG_STATUS_CLIENT] = { "STATUS_CLIENT", MB_W_SC_COUNT },
	[MB_MSG_STATUS_END] = { "STATUS_END", MB_W_SE_COUNT },
	[MB_MSG_TERMINATE_ACK] = { "TERMINATE_ACK", MB_W_TERMACK_COUNT },
	[MB_MSG_SUBSCRIBE_ACK] = { "SUBSCRIBE_ACK", MB_W_SUBACK_COUNT },
	[MB_MSG_ERROR] = { "ERROR", MB_W_ERR_COUNT },
	[MB_MSG_CLAIM_ACK] = { "CLAIM_ACK", MB_W_CLAIMACK_COUNT },
	[MB_MSG_CONTROL_ACK] = { "CONTROL_ACK", MB_W_CA_COUNT },
	[MB_MSG_SHARE_QUERY] = { "SHARE_QUERY", MB_W_SQ_COUNT },
	[MB_MSG_REPAY] = { "REPAY", MB_W_REPAY_COUNT },
	[MB_MSG_EVENT] = { "EVENT", MB_W_EV_COUNT },
};

_Static_assert(MB_W_SC_COUNT <= MB_WIRE_MAX_WORDS, "STATUS_CLIENT too long");
_Static_assert(MB_W_CA_COUNT <= MB_WIRE_MAX_WORDS, "CONTROL_ACK too long");
_Static_assert(MB_W_HELLO_COUNT <= MB_WIRE_MAX_WORDS, "HELLO too long");

static const char *const status_names[MB_ST_COUNT] = {
	[MB_ST_OK] = "OK",
	[MB_ST_PROTO] = "PROTO",
	[MB_ST_VERSION] = "VERSION",
	[MB_ST_INVAL] = "INVAL",
	[MB_ST_BUSY] = "BUSY",
	[MB_ST_PERM] = "PERM",
	[MB_ST_DENIED] = "DENIED",
	[MB_ST_TIMEDOUT] = "TIMEDOUT",
	[MB_ST_CANCELED] = "CANCELED",
	[MB_ST_OVERRETURN] = "OVERRETURN",
	[MB_ST_CAP] = "CAP",
	[MB_ST_NOTREG] = "NOTREG",
	[MB_ST_SHUTDOWN] = "SHUTDOWN",
	[MB_ST_NOREQ] = "NOREQ",
	[MB_ST_UNKNOWN] = "UNKNOWN",
	[MB_ST_UIDCAP] = "UIDCAP",
	[MB_ST_CLAIM_PARTIAL] = "CLAIM_PARTIAL",
	[MB_ST_LOWMEM] = "LOWMEM",
};

int mb_wire_payload_words(unsigned type)
{
	if (type >= MB_MSG_TYPE_MAX || wire_types[type].name == NULL)
		return -1;
	return wire_types[type].words;
}

const char *mb_wire_type_name(unsigned type)
{
	if (type >= MB_MSG_TYPE_MAX || wire_types[type].name == NULL)
		return "?";
	return wire_types[type].name;
}

const char *mb_wire_status_name(unsigned status)
{
	if (status >= MB_ST_COUNT || status_names[status] == NULL)
		return "?";
	return status_names[status];
}

static void put_le(unsigned char *p, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

void mb_msg_init(struct mb_msg *m, unsigned type, uint32_t seq)
{
	memset(m, 0, sizeof(*m));
	m->type = (uint16_t)type;
	m->seq = seq;
	int words = mb_wire_payload_words(type);
	m->nwords = words < 0 ? 0 : (uint32_t)words;
}

int mb_wire_encode(const struct mb_msg *m, unsigned char *buf, size_t cap)
{
	int words = mb_wire_payload_words(m->type);
	if (words < 0)
		return -1;
	size_t len = MB_WIRE_HDR_SIZE + (size_t)words * 8;
	if (cap < len)
		return -1;
	put_le(buf, MB_WIRE_MAGIC, 4);
	put_le(buf + 4, MB_WIRE_VERSION, 2);
	put_le(buf + 6, m->type, 2);
	put_le(buf + 8, m->seq, 4);
	put_le(buf + 12, (uint64_t)words * 8, 4);
	for (int i = 0; i < words; i++)
		put_le(buf + MB_WIRE_HDR_SIZE + 8 * i, m->w[i], 8);
	return (int)len;
}

int mb_wire_decode(const unsigned char *buf, size_t len, struct mb_msg *m)
{
	/* Validate each header field as soon as its bytes are in, so that a
	 * peer sending garbage is refused without waiting for more. */
	if (len >= 4 && get_le(buf, 4) != MB_WIRE_MAGIC)
		return -MB_ST_PROTO;
	if (len >= 6 && get_le(buf + 4, 2) != MB_WIRE_VERSION)
		return -MB_ST_VERSION;
	if (len >= 8 && mb_wire_payload_words((unsigned)get_le(buf + 6, 2)) < 0)
		return -MB_ST_UNKNOWN;
	if (len < MB_WIRE_HDR_SIZE)
		return 0;
	unsigned type = (unsigned)get_le(buf + 6, 2);
	uint64_t plen = get_le(buf + 12, 4);
	int words = mb_wire_payload_words(type);
	if (plen != (uint64_t)words * 8)
		return -MB_ST_PROTO;
	if (len < MB_WIRE_HDR_SIZE + plen)
		return 0;
	m->type = (uint16_t)type;
	m->seq = (uint32_t)get_le(buf + 8, 4);
	m->nwords = (uint32_t)words;
	for (int i = 0; i < MB_WIRE_MAX_WORDS; i++)
		m->w[i] = i < words ? get_le(buf + MB_WIRE_HDR_SIZE + 8 * i, 8) : 0;
	return (int)(MB_WIRE_HDR_SIZE + plen);
}

void mb_wire_put_comm(uint64_t *words, const char *comm)
{
	unsigned char bytes[MB_WIRE_COMM_WORDS * 8] = { 0 };
	for (size_t i = 0; comm && comm[i] && i < sizeof(bytes); i++)
		bytes[i] = (unsigned char)comm[i];
	for (int i = 0; i < MB_WIRE_COMM_WORDS; i++)
		words[i] = get_le(bytes + 8 * i, 8);
}

void mb_wire_get_comm(const uint64_t *words, char out[MB_WIRE_COMM_WORDS * 8 + 1])
{
	for (int i = 0; i < MB_WIRE_COMM_WORDS; i++)
		put_le((unsigned char *)out + 8 * i, words[i], 8);
	out[MB_WIRE_COMM_WORDS * 8] = '\0';
	/* Keep printable ASCII only: the name comes from an untrusted peer. */
	for (int i = 0; out[i]; i++)
		if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] > 0x7e)
			out[i] = '?';
}
