/*
 * fz_input.h - reading a fuzzer's input as a script of small decisions.
 *
 * Every harness consumes its input front to back.  A byte is a choice
 * (which event, which client); a number is read so that small values and
 * the edges of the protocol are cheap to reach: one byte below 0xf0 is
 * itself, 0xf0..0xf7 are the largest page counts and the 64-bit edges, and
 * 0xf8..0xff are followed by 8 raw bytes.  Past the end every read gives 0,
 * so no harness has to check lengths.
 */
#ifndef FZ_INPUT_H
#define FZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mb_wire.h"

/* A broken promise: say which, then abort() so that libFuzzer keeps the
 * input.  (Harness code, outside the libraries: stdio is fine here.) */
#define FZ_CHECK(c) do { \
	if (!(c)) { \
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
		abort(); \
	} \
} while (0)

struct fz_in {
	const uint8_t *p;
	size_t n;
};

static inline int fz_more(const struct fz_in *in)
{
	return in->n > 0;
}

static inline uint8_t fz_byte(struct fz_in *in)
{
	if (in->n == 0)
		return 0;
	in->n--;
	return *in->p++;
}

static inline uint64_t fz_raw64(struct fz_in *in)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)fz_byte(in) << (8 * i);
	return v;
}

static inline uint64_t fz_num(struct fz_in *in)
{
	static const uint64_t edges[8] = {
		MB_WIRE_MAX_PAGES, MB_WIRE_MAX_PAGES + 1, MB_WIRE_MAX_PAGES - 1,
		UINT64_MAX, (uint64_t)INT64_MAX, (uint64_t)INT64_MAX + 1,
		UINT32_MAX, (uint64_t)UINT32_MAX + 1,
	};
	uint8_t b = fz_byte(in);
	if (b < 0xf0)
		return b;
	if (b < 0xf8)
		return edges[b - 0xf0];
	return fz_raw64(in);
}

/* Up to max bytes of the input, as they are (fewer at the end). */
static inline size_t fz_bytes(struct fz_in *in, void *out, size_t max)
{
	size_t k = max < in->n ? max : in->n;
	memcpy(out, in->p, k);
	in->p += k;
	in->n -= k;
	return k;
}

#endif /* FZ_INPUT_H */
