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
 *
 * Idle return (anrc_config.idle_return_ms): while free pages are kept, the
 * helper's wait has a deadline; when it passes with no span handed out or
 * given back since the helper last looked, the helper gives back every
 * free page, those under the low mark too, in the same slices (it stops
 * as soon as a span moves), and the marks start afresh, as after an
 * explicit trim.  With no free page kept it waits without a deadline
 * until a span is given back (anrc_pages_put arms the wake), so an idle
 * program's helper does not wake at all.
 *
 * Return all (anrc_return_all_by_helper): a call that learns memory is
 * low (gmalloc's free path, on the broker's notify) sets a flag and posts
 * the helper, which flushes the caches of kept runs and empty slabs and
 * gives back every free page as in an idle return: the call itself does
 * no madvise and no flush.
 */
#include "config.h"

#include "anrcore_internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)

/* Post the helper, once until it takes the post. */
static void
returner_wake(struct anrc_heap *h)
{
	if (__atomic_exchange_n(&h->helper_posted, 1, __ATOMIC_ACQ_REL) == 0)
		sem_post(&h->helper_sem);
}

int
anrc_returner_wake_and_unlock(struct anrc_heap *h)
{
	if (!LOAD(h->helper_on) || !(h->trim_wanted || h->idle_kick))
		return 0;
	h->idle_kick = 0;
	/* The credit of this call's own frees (pages.c) goes to the helper,
	 * which gives back that much beyond its slice, as this call would
	 * have: without it the helper stopped under the (grown) high mark,
	 * and up to 32 MiB of a large free stayed resident. */
	h->helper_credit += h->trim_credit;
	h->trim_credit = 0;
	anrc_unlock_telling(h);
	returner_wake(h);
	return 1;
}

int
anrc_return_all_by_helper(struct anrc_heap *h)
{
	if (!LOAD(h->helper_on))
		return 0;
	__atomic_store_n(&h->return_all, 1, __ATOMIC_RELEASE);
	returner_wake(h);
	return 1;
}

void
anrc_set_idle_return(struct anrc_heap *h, unsigned ms)
{
	__atomic_store_n(&h->idle_ms, ms, __ATOMIC_RELAXED);
	/* a helper waiting without a deadline looks again */
	if (LOAD(h->helper_on))
		returner_wake(h);
}

/* Wait for a post, or for ms at most (0: no deadline): 1 when the time
 * has passed. */
static int
helper_wait(struct anrc_heap *h, unsigned ms)
{
	struct timespec ts;

	if (ms != 0 && clock_gettime(CLOCK_REALTIME, &ts) == 0) {
		ts.tv_sec += ms / 1000;
		ts.tv_nsec += (long)(ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		for (;;) {
			if (sem_timedwait(&h->helper_sem, &ts) == 0)
				return 0;
			if (errno == ETIMEDOUT)
				return 1;
			if (errno != EINTR)
				break;
		}
	}
	while (sem_wait(&h->helper_sem) != 0 && errno == EINTR)
		;
	return 0;
}

/* The rounds of page return the calls asked for, or of the idle return
 * (locked). */
static void
helper_rounds(struct anrc_heap *h, uint64_t seen)
{
	while (h->trim_wanted && !h->trimming) {
		size_t before = h->dirty_pages;

		h->trim_credit = h->helper_credit;
		h->helper_credit = 0;
		anrc_return_pages_and_unlock_here(h);
		anrc_lock_and_drain(h);
		if (!h->trim_idle)
			continue;
		/* A span moved, or nothing went back: the program is no
		 * longer idle, or madvise fails; the marks stay. */
		if (h->page_moves != seen || h->dirty_pages >= before)
			h->trim_idle = 0;
		else if (h->dirty_pages > 0)
			h->trim_wanted = 1;
	}
	if (h->trim_idle) {
		h->trim_idle = 0;
		anrc_marks_afresh(h);
	}
}

/* The helper's next wait, in ms (0: no deadline), locked: with free pages
 * kept, the idle period (idle ms); else a pass over slab holes when one is
 * due; else none, and the next span given back posts it (idle_armed). */
static unsigned
next_wait(struct anrc_heap *h, unsigned idle)
{
	unsigned ms = 0;

	if (idle != 0 && h->dirty_pages > 0)
		ms = idle;
	else if (anrc_holes_due(h))
		ms = ANR_HOLE_PASS_MS;
	h->idle_armed = ms == 0 && idle != 0;
	return ms;
}

int
anrc_return_helper_run(struct anrc_heap *h)
{
	int expected = 0;
	unsigned wait_ms, idle;
	uint64_t seen;

	if (!__atomic_compare_exchange_n(&h->helper_on, &expected, 1, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		return -1;
	/* The first wait as after a round.  Before, it had no deadline and
	 * nothing armed, so free pages under the high mark waited for a
	 * round of page return. */
	pthread_mutex_lock(&h->lock);
	seen = h->page_moves;
	wait_ms = next_wait(h, __atomic_load_n(&h->idle_ms, __ATOMIC_RELAXED));
	pthread_mutex_unlock(&h->lock);
	for (;;) {
		int quiet = helper_wait(h, wait_ms);

		if (LOAD(h->helper_stop))
			break;
		__atomic_store_n(&h->helper_posted, 0, __ATOMIC_RELEASE);
		anrc_lock_and_drain(h);
		h->idle_armed = 0;
		/* quiet: no span moved for the whole wait */
		quiet = quiet && h->page_moves == seen;
		idle = __atomic_load_n(&h->idle_ms, __ATOMIC_RELAXED);
		int all = __atomic_exchange_n(&h->return_all, 0, __ATOMIC_ACQ_REL);
		if (all) {
			anrc_flush_caches_locked(h);
			/* the flushes moved spans: what moves from now on stops it */
			seen = h->page_moves;
		}
		if (((quiet && idle != 0) || all) && h->dirty_pages > 0 && !h->trimming) {
			h->trim_idle = 1;
			h->trim_wanted = 1;
		}
		helper_rounds(h, seen);
		/* After the rounds, the holes of the threads' slabs. */
		anrc_holes_give_back(h, quiet);
		seen = h->page_moves;
		wait_ms = next_wait(h, idle);
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
	h->trim_idle = h->idle_armed = h->idle_kick = h->return_all = 0;
	h->helper_credit = 0;
	sem_init(&h->helper_sem, 0, 0);
	anrc_holes_init(h, 1);
}
