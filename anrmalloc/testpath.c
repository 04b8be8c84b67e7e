/*
 * testpath.c - a path for the unit tests only (hidden, not exported by
 * libanrmalloc.so): read bytes of the heap that are not live, to see what
 * the core left in a freed block.  Reading freed memory is what every
 * checker rightly reports, so the read is done with ASan instrumentation
 * off and valgrind's error reporting suspended.
 */
#include "config.h"

#include <stddef.h>

#ifdef HAVE_VALGRIND_MEMCHECK_H
#include <valgrind/memcheck.h>
#endif

#include "am_internal.h"

size_t am_test_peek(anr_heap_t *h, const void *p, void *buf, size_t n);

__attribute__((no_sanitize_address, noinline))
size_t am_test_peek(anr_heap_t *h, const void *p, void *buf, size_t n)
{
	const volatile unsigned char *src = p;
	unsigned char *dst = buf;

	if (!anrc_owns(h->core, p) || !anrc_owns(h->core, (const char *)p + n - 1))
		return 0;
#ifdef HAVE_VALGRIND_MEMCHECK_H
	VALGRIND_DISABLE_ERROR_REPORTING;
#endif
	for (size_t i = 0; i < n; i++)
		dst[i] = src[i];
#ifdef HAVE_VALGRIND_MEMCHECK_H
	VALGRIND_ENABLE_ERROR_REPORTING;
	VALGRIND_MAKE_MEM_DEFINED(buf, n);
#endif
	return n;
}

/* Hold the heap lock (the core's) as a slow lock holder would (the
 * deferred-free test). */
void am_test_lock(anr_heap_t *h);
void am_test_unlock(anr_heap_t *h);

void am_test_lock(anr_heap_t *h)
{
	am_lock(h);
}

void am_test_unlock(anr_heap_t *h)
{
	am_unlock(h);
}

/* Hold the core's lock, the one every allocation takes first (the
 * priority-inheritance test). */
void am_test_core_lock(anr_heap_t *h);
void am_test_core_unlock(anr_heap_t *h);

void am_test_core_lock(anr_heap_t *h)
{
	anrc_fork_prepare(h->core);
}

void am_test_core_unlock(anr_heap_t *h)
{
	anrc_fork_parent(h->core);
}
