/*
 * vg.h - memcheck client requests, compiled in when valgrind's header is
 * available and active only when the heap asked for them and the program
 * runs under valgrind.
 */
#ifndef ANRCORE_VG_H
#define ANRCORE_VG_H

#ifdef HAVE_VALGRIND_MEMCHECK_H
#include <valgrind/memcheck.h>
#define ANR_VG_RUNNING() (RUNNING_ON_VALGRIND != 0)
#define ANR_VG_ALLOC(h, p, n, z) \
	do { if ((h)->vg) VALGRIND_MALLOCLIKE_BLOCK((p), (n), 0, (z)); } while (0)
#define ANR_VG_FREE(h, p) \
	do { if ((h)->vg) VALGRIND_FREELIKE_BLOCK((p), 0); } while (0)
#define ANR_VG_NOACCESS(h, p, n) \
	do { if ((h)->vg) VALGRIND_MAKE_MEM_NOACCESS((p), (n)); } while (0)
#define ANR_VG_UNDEFINED(h, p, n) \
	do { if ((h)->vg) VALGRIND_MAKE_MEM_UNDEFINED((p), (n)); } while (0)
#define ANR_VG_QUIET_BEGIN(h) \
	do { if ((h)->vg) VALGRIND_DISABLE_ERROR_REPORTING; } while (0)
#define ANR_VG_QUIET_END(h) \
	do { if ((h)->vg) VALGRIND_ENABLE_ERROR_REPORTING; } while (0)
#else
#define ANR_VG_RUNNING() 0
#define ANR_VG_ALLOC(h, p, n, z) do { } while (0)
#define ANR_VG_FREE(h, p) do { } while (0)
#define ANR_VG_NOACCESS(h, p, n) do { } while (0)
#define ANR_VG_UNDEFINED(h, p, n) do { } while (0)
#define ANR_VG_QUIET_BEGIN(h) do { } while (0)
#define ANR_VG_QUIET_END(h) do { } while (0)
#endif

#endif /* ANRCORE_VG_H */
