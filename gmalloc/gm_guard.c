/*
 * gm_guard.c - guard words after each block (guard = on).
 *
 * A guarded block asks the core for GM_GUARD_OVERHEAD more bytes.  The
 * last 16 bytes of the usable block hold the requested size and a canary,
 * both mixed with the block address so a copied block does not look
 * valid; the bytes between the requested size and them hold a fill
 * pattern.  free and realloc check all of it: a write past the end of the
 * block is reported with the block's address and size, then abort().
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "gm_internal.h"
#include "mb_log.h"

#define GM_GUARD_FILL 0xfd
#define GM_GUARD_SIZE_KEY 0x5bd1e9955bd1e995ULL
#define GM_GUARD_CANARY 0xc0ffee0ddba11ad5ULL

void gm_guard_set(void *p, size_t size, size_t usable)
{
	unsigned char *b = p;
	uint64_t words[2];
	size_t tail = usable - GM_GUARD_OVERHEAD;
	memset(b + size, GM_GUARD_FILL, tail - size);
	words[0] = (uint64_t)size ^ GM_GUARD_SIZE_KEY ^ (uint64_t)(uintptr_t)p;
	words[1] = GM_GUARD_CANARY ^ (uint64_t)(uintptr_t)p;
	memcpy(b + tail, words, sizeof(words));
}

static void gm_guard_fail(const void *p, size_t size, const char *what)
{
	mb_log(MB_LOG_ERR, "guard words of block %p (%zu bytes) %s: write past its end",
	       p, size, what);
	abort();
}

size_t gm_guard_check(void *p, size_t usable)
{
	const unsigned char *b = p;
	uint64_t words[2];
	if (usable < GM_GUARD_OVERHEAD)
		gm_guard_fail(p, usable, "missing");
	size_t tail = usable - GM_GUARD_OVERHEAD;
	memcpy(words, b + tail, sizeof(words));
	uint64_t size = words[0] ^ GM_GUARD_SIZE_KEY ^ (uint64_t)(uintptr_t)p;
	if (words[1] != (GM_GUARD_CANARY ^ (uint64_t)(uintptr_t)p) || size > tail)
		gm_guard_fail(p, tail, "overwritten");
	for (size_t i = (size_t)size; i < tail; i++)
		if (b[i] != GM_GUARD_FILL)
			gm_guard_fail(p, (size_t)size, "overwritten");
	return (size_t)size;
}
