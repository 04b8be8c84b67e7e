/*
 * gmalloc.h - extensions of libgmalloc, the preloadable malloc.
 *
 * A program does not need this header: LD_PRELOAD=libgmalloc.so replaces
 * the malloc family of an unmodified program.  A program that knows it may
 * run under gmalloc can find these with dlsym(RTLD_DEFAULT, "gmalloc_...").
 */
#ifndef GMALLOC_H
#define GMALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Write the heap and broker report to fd (async-signal-safe). */
void gmalloc_report(int fd);
/* Non-zero if p lies in gmalloc's heap (or its start-up arena). */
int gmalloc_owns(const void *p);
/* Statistics in bytes; any pointer may be NULL. */
void gmalloc_stats(size_t *in_use, size_t *resident, size_t *budget,
		   size_t *quota_held);

#ifdef __cplusplus
}
#endif

#endif /* GMALLOC_H */
