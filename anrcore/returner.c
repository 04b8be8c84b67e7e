/*
 * returner.c - giving free pages back from a helper thread.
 *
 * Without a helper, the thread whose call leaves free pages above the
 * high mark gives a slice of them back itself after the lock is released
 * (pages.c): a free of an 8 MiB block can spend half a millisecond or
 * more in madvise.  A program that cannot afford that in any of its
 * threads runs anrc_return_helper_run() in a thread of its own (gmalloc
 * does with page_return_thread = on): the calls then only note that
 * pages are due, post a semaphore once (an atomic flag keeps the posts
 * from piling up) and return; the helper takes the lock and gives back,
 * round after round of the same bounded slices, until the free pages are
 * under the mark again; then it looks through every thread's slabs for
 * pages no object uses (theap.c's holes), which the calls then leave to
 * it.  sem_post neither allocates nor maps.
 */
#include "config.h"

#include "anrcore_internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)

int
anrc_returner_wake_and_unlock(struct anrc_heap *h)
{
	if (!LOAD(h->helper_on) || !h->trim_wanted)
		return 0;
	/* The credit of this call's own frees (pages.c) goes to the helper,
	 * which gives back that much beyond its slice, as this call would
	 * have: without it the helper stopped under the (grown) high mark,
	 * and up to 32 MiB of a large free stayed resident. */
	h->helper_credit += h->trim_credit;
	h->trim_credit = 0;
	pthread_mutex_unlock(&h->lock);
	if (__atomic_exchange_n(&h->helper_posted, 1, __ATOMIC_ACQ_REL) == 0)
		sem_post(&h->helper_sem);
	return 1;
}

int
anrc_return_helper_run(struct anrc_heap *h)
{
	int expected = 0;

	if (!__atomic_compare_exchange_n(&h->helper_on, &expected, 1, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		return -1;
	for (;;) {
		while (sem_wait(&h->helper_sem) != 0 && errno == EINTR)
			;
		if (LOAD(h->helper_stop))
			break;
		__atomic_store_n(&h->helper_posted, 0, __ATOMIC_RELEASE);
		anrc_lock_and_drain(h);
		while (h->trim_wanted && !h->trimming) {
			h->trim_credit = h->helper_credit;
			h->helper_credit = 0;
			anrc_return_pages_and_unlock_here(h);
			anrc_lock_and_drain(h);
		}
		/* After the rounds, the holes of the threads' slabs. */
		anrc_holes_give_back(h);
		anrc_return_pages_and_unlock_here(h);
	}
	__atomic_store_n(&h->helper_on, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&h->helper_stop, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&h->helper_posted, 0, __ATOMIC_RELEASE);
	/* What was noted meanwhile goes back at the next call's unlock. */
	return 0;
}

void *
anrc_return_helper_thread(void *heap)
{
	/* SCHED_BATCH: woken by a free, it does not preempt the thread that
	 * woke it (which would then wait the madvise out after all). */
	struct sched_param sp = { .sched_priority = 0 };

	pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
	anrc_return_helper_run(heap);
	return NULL;
}

void
anrc_return_helper_stop(struct anrc_heap *h)
{
	/* Posted even before the helper is on: a thread just created to run
	 * it then takes the post and returns at once, and the caller that
	 * joins it does not wait for ever. */
	__atomic_store_n(&h->helper_stop, 1, __ATOMIC_RELEASE);
	sem_post(&h->helper_sem);
}

void
anrc_returner_fork_child(struct anrc_heap *h)
{
	/* The helper thread did not survive: the child's calls give back. */
	h->helper_on = h->helper_stop = h->helper_posted = 0;
	h->helper_credit = 0;
	sem_init(&h->helper_sem, 0, 0);
	anrc_holes_init(h, 1);
}
