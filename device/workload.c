/* workload.c - schedule, options and progress log of the device workloads. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "workload.h"

enum { OPT_SEED = 1000, OPT_SECONDS, OPT_SIZE, OPT_GAP, OPT_HOLD, OPT_REPORT,
       OPT_DIR, OPT_BROKER, OPT_NO_BROKER, OPT_HELP };

static void usage(const char *name, int code)
{
	fprintf(code ? stderr : stdout,
		"usage: %s [--seed N] [--seconds S] [--size MIN:MAX] [--gap MIN:MAX]\n"
		"          [--hold MIN:MAX] [--report FILE] [--dir DIR] [--[no-]broker]\n"
		"  sizes in MiB, times in seconds\n", name);
	exit(code);
}

static void parse_range(const char *name, const char *s, double *lo, double *hi)
{
	char *end;

	*lo = strtod(s, &end);
	if (*end == ':')
		*hi = strtod(end + 1, &end);
	else
		*hi = *lo;
	if (*end || *lo < 0 || *hi < *lo)
		usage(name, 2);
}

void wl_parse(struct workload *w, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "seconds", required_argument, NULL, OPT_SECONDS },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "gap", required_argument, NULL, OPT_GAP },
		{ "hold", required_argument, NULL, OPT_HOLD },
		{ "report", required_argument, NULL, OPT_REPORT },
		{ "dir", required_argument, NULL, OPT_DIR },
		{ "broker", no_argument, NULL, OPT_BROKER },
		{ "no-broker", no_argument, NULL, OPT_NO_BROKER },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	double lo, hi;
	char *end;
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_SEED:
			w->seed = strtoull(optarg, &end, 0);
			if (*end)
				usage(w->name, 2);
			break;
		case OPT_SECONDS:
			w->seconds = strtod(optarg, &end);
			if (*end || w->seconds <= 0)
				usage(w->name, 2);
			break;
		case OPT_SIZE:
			parse_range(w->name, optarg, &lo, &hi);
			w->size_min = (size_t)(lo * WL_MIB);
			w->size_max = (size_t)(hi * WL_MIB);
			break;
		case OPT_GAP: parse_range(w->name, optarg, &w->gap_min, &w->gap_max); break;
		case OPT_HOLD: parse_range(w->name, optarg, &w->hold_min, &w->hold_max); break;
		case OPT_REPORT: w->report = optarg; break;
		case OPT_DIR: w->dir = optarg; break;
		case OPT_BROKER: w->broker = 1; break;
		case OPT_NO_BROKER: w->broker = 0; break;
		case OPT_HELP: usage(w->name, 0); break;
		default: usage(w->name, 2);
		}
	}
	if (optind != argc)
		usage(w->name, 2);

	/* Each workload draws from its own stream: the seed mixed with its name. */
	w->rng = w->seed ^ 0x9e3779b97f4a7c15ull;
	for (const char *p = w->name; *p; p++)
		w->rng = (w->rng ^ (unsigned char)*p) * 0x100000001b3ull;
	w->report_fd = -1;
	if (w->report) {
		w->report_fd = open(w->report, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (w->report_fd < 0) {
			fprintf(stderr, "%s: %s: %s\n", w->name, w->report, strerror(errno));
			exit(1);
		}
	}
	w->start = wl_now();
}

/* splitmix64: small, fast and the same everywhere. */
static uint64_t next64(struct workload *w)
{
	uint64_t z = (w->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

double wl_uniform(struct workload *w, double lo, double hi)
{
	return lo + (hi - lo) * (double)(next64(w) >> 11) / (double)(1ull << 53);
}

uint64_t wl_below(struct workload *w, uint64_t n)
{
	return n ? next64(w) % n : 0;
}

int wl_next_job(struct workload *w, struct wl_job *job)
{
	w->last_arrival += wl_uniform(w, w->gap_min, w->gap_max);
	if (w->last_arrival >= w->seconds)
		return 0;
	job->arrive = w->last_arrival;
	job->size = (size_t)wl_uniform(w, (double)w->size_min, (double)w->size_max);
	job->hold = wl_uniform(w, w->hold_min, w->hold_max);
	return 1;
}

double wl_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double wl_elapsed(const struct workload *w)
{
	return wl_now() - w->start;
}

void wl_sleep(double seconds)
{
	struct timespec ts;

	if (seconds <= 0)
		return;
	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

void wl_sleep_until(const struct workload *w, double at)
{
	wl_sleep(at - wl_elapsed(w));
}

static void log_line(struct workload *w, const char *line, int n)
{
	if (w->report_fd >= 0 && n > 0)
		(void)!write(w->report_fd, line, (size_t)n);
}

void wl_done(struct workload *w, uint64_t units_total)
{
	char line[64];

	log_line(w, line, snprintf(line, sizeof(line), "%.0f %llu\n",
				   wl_elapsed(w) * 1000.0,
				   (unsigned long long)units_total));
}

void wl_stat(struct workload *w, const char *key, double value)
{
	char line[128];

	log_line(w, line, snprintf(line, sizeof(line), "stat %s %.6g\n", key, value));
}

void wl_end(struct workload *w, uint64_t units_total)
{
	char line[64];

	log_line(w, line, snprintf(line, sizeof(line), "end %.0f %llu\n",
				   wl_elapsed(w) * 1000.0,
				   (unsigned long long)units_total));
}

void wl_fill(void *buf, size_t len, unsigned seed)
{
	unsigned char *p = buf;
	size_t page = 4096;

	/* A band at a time, as a renderer writes rows: every page is touched. */
	for (size_t off = 0; off < len; off += page) {
		size_t n = len - off < page ? len - off : page;

		memset(p + off, (int)((seed + off / page) & 0xff), n);
	}
}
