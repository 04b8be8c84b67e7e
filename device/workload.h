/*
 * workload.h - what the simulated device's workload programs share: the
 * command line, a job schedule drawn from the seed, and the progress log
 * the scenario script reads.
 *
 * A workload runs jobs that arrive on a schedule (like print jobs reaching
 * a printer): job i arrives at a time drawn from the seed, needs an amount
 * of memory drawn from [size_min, size_max] and keeps it for a hold time.
 * A job that starts late (memory was not there at once) starts as soon as
 * it can; the schedule does not move.  The same seed gives the same jobs in
 * every run, with or without the broker.
 *
 * The progress log (--report FILE) gets one line per unit of work done,
 * "elapsed_ms units", and a final line starting with "end"; a counter line
 * "stat KEY VALUE" reports anything else (refusals, waits, ENOSPC).  Lines
 * are written with single write(2) calls on an O_APPEND descriptor, so a
 * process killed at any moment leaves a log that reads well up to its last
 * unit.
 */
#ifndef DEVICE_WORKLOAD_H
#define DEVICE_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#define WL_MIB ((size_t)1 << 20)

struct wl_job {
	double arrive;  /* seconds after the start */
	size_t size;    /* bytes */
	double hold;    /* seconds the job keeps its memory */
};

struct workload {
	const char *name;
	uint64_t seed;
	double seconds;             /* jobs arrive during this long */
	size_t size_min, size_max;  /* bytes */
	double gap_min, gap_max;    /* seconds between arrivals */
	double hold_min, hold_max;  /* seconds */
	const char *report;         /* progress log path, or NULL */
	const char *dir;            /* working directory (spool), or NULL */
	int broker;                 /* the program's own broker use (anr_malloc) */
	int report_fd;
	double start;
	double last_arrival;
	uint64_t rng;
};

/*
 * Parse the common options into w (defaults already set by the caller):
 *   --seed N --seconds S --size MIN:MAX (MiB) --gap MIN:MAX --hold MIN:MAX
 *   --report FILE --dir DIR --broker/--no-broker
 * Exits with status 2 on a usage error.
 */
void wl_parse(struct workload *w, int argc, char **argv);

/* Draw the next job; 0 once arrivals pass w->seconds. */
int wl_next_job(struct workload *w, struct wl_job *job);

/* Uniform draws from the workload's own stream (seed and name). */
double wl_uniform(struct workload *w, double lo, double hi);
uint64_t wl_below(struct workload *w, uint64_t n);

double wl_now(void);                       /* monotonic seconds */
double wl_elapsed(const struct workload *w);
void wl_sleep(double seconds);
void wl_sleep_until(const struct workload *w, double at);

/* Progress log: one unit (or n) done; a named counter; the end line. */
void wl_done(struct workload *w, uint64_t units_total);
void wl_stat(struct workload *w, const char *key, double value);
void wl_end(struct workload *w, uint64_t units_total);

/* Touch every page of a buffer with a pattern (the job's real work). */
void wl_fill(void *buf, size_t len, unsigned seed);

#endif
