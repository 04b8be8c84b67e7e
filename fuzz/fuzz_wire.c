/*
 * fuzz_wire.c - libFuzzer harness of the frame decoder (common/mb_wire.c).
 *
 * The input is a byte stream as a receiver sees it.  Frames are decoded
 * one after another, as the server and the client library do, and for
 * each the harness checks what mb_wire.h promises:
 *  - the decoder never claims more bytes than it was given, and a decoded
 *    frame has exactly the words of its type;
 *  - re-encoding a decoded frame gives back the very bytes consumed;
 *  - every prefix of the stream gives "need more" (0) or the same verdict
 *    as the whole, never a frame: the receiver cannot be made to wait for
 *    bytes after a header it should have refused, nor accept a frame early;
 *  - names of types and statuses, and command names, are always strings.
 * Then the tail of the input is read as a message to encode, which must
 * decode back to itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fz_input.h"
#include "mb_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void check_names(const struct mb_msg *m)
{
	FZ_CHECK(strlen(mb_wire_type_name(m->type)) > 0);
	FZ_CHECK(strlen(mb_wire_status_name((unsigned)m->w[0])) > 0);
	char comm[MB_WIRE_COMM_WORDS * 8 + 1];
	memset(comm, 'x', sizeof(comm));
	mb_wire_get_comm(&m->w[0], comm);
	FZ_CHECK(memchr(comm, '\0', sizeof(comm)) != NULL);
}

/* One frame (or verdict) at the start of buf. */
static int check_one(const uint8_t *buf, size_t len)
{
	struct mb_msg m;
	int r = mb_wire_decode(buf, len, &m);
	FZ_CHECK(r <= 0 || (size_t)r <= len);
	FZ_CHECK(r < 0 ? r == -MB_ST_PROTO || r == -MB_ST_VERSION ||
			 r == -MB_ST_UNKNOWN : 1);
	/* Every prefix: never a frame, and no other error than the whole's. */
	size_t upto = r > 0 ? (size_t)r : len;
	if (upto > MB_WIRE_MAX_FRAME + 1)
		upto = MB_WIRE_MAX_FRAME + 1;
	for (size_t k = 0; k < upto; k++) {
		struct mb_msg p;
		int q = mb_wire_decode(buf, k, &p);
		FZ_CHECK(q <= 0);
		FZ_CHECK(q == 0 || q == r);
	}
	if (r <= 0)
		return r;
	FZ_CHECK(mb_wire_payload_words(m.type) >= 0);
	FZ_CHECK(m.nwords == (uint32_t)mb_wire_payload_words(m.type));
	FZ_CHECK((size_t)r == MB_WIRE_HDR_SIZE + 8 * (size_t)m.nwords);
	unsigned char out[MB_WIRE_MAX_FRAME];
	int e = mb_wire_encode(&m, out, sizeof(out));
	FZ_CHECK(e == r);
	FZ_CHECK(memcmp(out, buf, (size_t)r) == 0);
	check_names(&m);
	return r;
}

/* A message built from the input encodes to a frame that decodes to it. */
static void check_encode(struct fz_in *in)
{
	struct mb_msg m;
	unsigned type = fz_byte(in);
	if (fz_byte(in) & 1)
		type |= (unsigned)fz_byte(in) << 8;
	mb_msg_init(&m, type, (uint32_t)fz_raw64(in));
	for (int i = 0; i < MB_WIRE_MAX_WORDS; i++)
		m.w[i] = fz_num(in);
	unsigned char buf[MB_WIRE_MAX_FRAME];
	int e = mb_wire_encode(&m, buf, sizeof(buf));
	if (mb_wire_payload_words(type) < 0) {
		FZ_CHECK(e < 0);
		return;
	}
	FZ_CHECK(e == MB_WIRE_HDR_SIZE + 8 * mb_wire_payload_words(type));
	struct mb_msg d;
	FZ_CHECK(mb_wire_decode(buf, (size_t)e, &d) == e);
	FZ_CHECK(d.type == type && d.seq == m.seq);
	FZ_CHECK(d.nwords == (uint32_t)mb_wire_payload_words(type));
	FZ_CHECK(memcmp(d.w, m.w, 8 * d.nwords) == 0);
	/* One byte short is "need more", never a frame or an error. */
	FZ_CHECK(mb_wire_decode(buf, (size_t)e - 1, &d) == 0);
	check_names(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	while (off < size) {
		int r = check_one(data + off, size - off);
		if (r <= 0)
			break;
		off += (size_t)r;
	}
	struct fz_in in = { data + off, size - off };
	check_encode(&in);
	return 0;
}
