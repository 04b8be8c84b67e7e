/*
 * mbt_seccomp.h - tests that prove a system call is never made: a seccomp
 * filter that kills the process (SIGSYS) when it is.
 */
#ifndef MBT_SECCOMP_H
#define MBT_SECCOMP_H

#include <stddef.h>

/* Install a filter that kills the process when one of the n system calls
 * in nrs is made, by any thread (all_threads) or by the calling thread and
 * the threads it creates afterwards.  0, or -1 when this system or build
 * has no seccomp filters (the caller then skips). */
int mbt_deny_syscalls(const long *nrs, size_t n, int all_threads);

/* Built with AddressSanitizer, whose runtime makes system calls of its
 * own (mmap, madvise) in any thread: such tests skip. */
#if defined(__SANITIZE_ADDRESS__)
#define MBT_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MBT_SANITIZED 1
#endif
#endif

#endif
