/*
 * mb_thread.c - starting a thread of a library's own, named, with every
 * signal blocked; taking a lock by a deadline (see mb_thread.h).
 */
#include "config.h"

#include "mb_thread.h"

#include <errno.h>
#include <signal.h>
#include <time.h>

#include "mb_clock.h"

int
mb_thread_start(pthread_t *t, mb_thread_create_fn create, const char *name,
		void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int blocked, rc;

	if (create == NULL)
		create = pthread_create;
	/* The new thread inherits the mask of the thread that creates it;
	 * blocking here, not in fn, leaves no moment at which a signal could
	 * reach it unblocked.  A signal for this thread that comes meanwhile
	 * waits and is delivered when the old mask is back. */
	sigfillset(&all);
	blocked = pthread_sigmask(SIG_SETMASK, &all, &old) == 0;
	rc = create(t, NULL, fn, arg);
	if (blocked)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* Written to /proc/self/task/TID/comm: no allocation. */
	if (rc == 0)
		pthread_setname_np(*t, name);
	return rc;
}

int
mb_mutex_lock_by(pthread_mutex_t *m, int64_t deadline, int64_t *waited_ns)
{
	struct timespec ts;
	uint64_t t0;
	int e;

	/* *waited_ns may be shared by the lock's holders: written only
	 * once the lock is ours. */
	if (pthread_mutex_trylock(m) == 0) {
		if (waited_ns != NULL)
			*waited_ns = 0;
		return 0;
	}
	t0 = mb_clock_ns();
	if (deadline < 0) {
		e = pthread_mutex_lock(m);
	} else {
		ts.tv_sec = (time_t)(deadline / 1000000000);
		ts.tv_nsec = (long)(deadline % 1000000000);
		while ((e = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts)) == EINTR)
			;
	}
	if (e == 0 && waited_ns != NULL)
		*waited_ns = (int64_t)(mb_clock_ns() - t0);
	return e;
}

int
mb_cond_wait_by(pthread_cond_t *c, pthread_mutex_t *m, uint64_t deadline_ms)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(deadline_ms / 1000);
	ts.tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
	return pthread_cond_clockwait(c, m, CLOCK_MONOTONIC, &ts);
}
