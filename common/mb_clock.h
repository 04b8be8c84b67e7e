/*
 * mb_clock.h - the monotonic clock, read the one way every component
 * needs it: deadlines, budgets, idle periods.  No heap, no stdio;
 * clock_gettime is async-signal-safe.
 */
#ifndef MB_CLOCK_H
#define MB_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t mb_clock_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CLOCK_MONOTONIC in milliseconds. */
static inline uint64_t mb_clock_ms(void)
{
	return mb_clock_ns() / 1000000u;
}

#endif /* MB_CLOCK_H */
