/*
 * mb_thread.c - starting a thread of a library's own, named, with every
 * signal blocked (see mb_thread.h).
 */
#include "config.h"

#include "mb_thread.h"

#include <signal.h>

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
