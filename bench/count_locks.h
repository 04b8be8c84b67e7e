/*
 * count_locks.h - counting the pthread mutex calls an allocator makes,
 * for bench programs built with -DCOUNT_LOCKS (and -rdynamic when the
 * allocator is preloaded, so that its calls bind to these definitions,
 * which stand in front of libc's).  Calls are counted while
 * count_locks_on is set; count_locks_ops is the total.
 */
#ifndef BENCH_COUNT_LOCKS_H
#define BENCH_COUNT_LOCKS_H
#ifdef COUNT_LOCKS
#include <dlfcn.h>
#include <pthread.h>

static long count_locks_ops;
static int count_locks_on;

#define COUNT_LOCKS_WRAP(name)                                                \
	int name(pthread_mutex_t *m)                                          \
	{                                                                     \
		static int (*real)(pthread_mutex_t *);                        \
		if (real == NULL)                                             \
			real = (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT, #name); \
		if (__atomic_load_n(&count_locks_on, __ATOMIC_RELAXED))       \
			__atomic_add_fetch(&count_locks_ops, 1, __ATOMIC_RELAXED); \
		return real(m);                                               \
	}
COUNT_LOCKS_WRAP(pthread_mutex_lock)
COUNT_LOCKS_WRAP(pthread_mutex_trylock)
COUNT_LOCKS_WRAP(pthread_mutex_unlock)
#endif
#endif
