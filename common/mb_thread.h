/*
 * mb_thread.h - starting a thread of a library's own, and taking a lock
 * or waiting for a condition by a deadline.
 *
 * A thread that a library starts inside a program (gmalloc's and
 * anr_malloc's page-return thread, anr_malloc's broker and debug threads,
 * track_fs's give-back dispatcher) must never be the one a signal sent to
 * the process is delivered to: the kernel gives such a signal to any
 * thread that does not block it, so a thread of ours with an open mask
 * could take a SIGUSR1 the program blocks everywhere and waits for with
 * sigwait(3) (the default action then ends the process), or run a handler
 * the program meant for its own threads.  These threads are started with
 * every signal blocked, and named, so that ps -L, top -H and
 * /proc/PID/task/TID/comm tell them from the program's own.
 */
#ifndef MB_THREAD_H
#define MB_THREAD_H

#include <pthread.h>
#include <stdint.h>

/* pthread_create's type: gmalloc passes libc's own, since the
 * pthread_create that libgmalloc.so exports is its wrapper. */
typedef int (*mb_thread_create_fn)(pthread_t *, const pthread_attr_t *,
				   void *(*)(void *), void *);

/* pthread_create(t, NULL, fn, arg) through create (NULL: pthread_create)
 * with every signal blocked in the new thread (the caller's mask is as it
 * was on return), then the thread named name (at most 15 bytes; a name
 * that cannot be set is left as it is).  Returns 0 or pthread_create's
 * error number. */
int mb_thread_start(pthread_t *t, mb_thread_create_fn create, const char *name,
		    void *(*fn)(void *), void *arg);

/* Lock m, waiting no later than deadline (CLOCK_MONOTONIC ns; negative:
 * no deadline).  Returns 0, ETIMEDOUT once the deadline has passed, or
 * pthread_mutex_clocklock's error.  Once the lock is taken, *waited_ns
 * (when not NULL) gets the time spent waiting, 0 when the lock was free;
 * on failure it is not written (it may belong to the holder). */
int mb_mutex_lock_by(pthread_mutex_t *m, int64_t deadline, int64_t *waited_ns);

/* pthread_cond_wait(c, m) until deadline_ms (CLOCK_MONOTONIC ms, as
 * mb_clock_ms).  0 when woken (the caller looks at its condition again),
 * ETIMEDOUT once the deadline has passed. */
int mb_cond_wait_by(pthread_cond_t *c, pthread_mutex_t *m, uint64_t deadline_ms);

#endif
