/*
 * auditbench - the two sides of bench/broker/audit.sh.
 *
 *   auditbench hold N MAPS SECONDS   one process with MAPS separate
 *                                    mappings holds N registered sink
 *                                    connections for SECONDS
 *   auditbench bidi N MAPS SECONDS   the same with N bidi connections,
 *                                    each holding one page and answering
 *                                    every give-back query (it gives the
 *                                    page back, then takes one again)
 *   auditbench query SECONDS         one QUERY every 50 ms: median, p90
 *                                    and max of the round trips (ms)
 *
 * The broker's audit and its give-back check read /proc/PID/smaps_rollup
 * of its clients; a process with many mappings takes milliseconds to read.  The socket comes from
 * $MEMBROKER_SOCKET.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "mbclient.h"

#define HOLD_MAX 1000
#define QUERY_MAX 10000

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static uint64_t give_all(void *arg, enum mb_client_urgency urg, uint64_t pages)
{
	(void)arg;
	(void)urg;
	return pages;
}

static int hold(int n, long maps, int secs, int bidi)
{
	static mb_client cs[HOLD_MAX];
	static struct pollfd pf[HOLD_MAX];
	if (n > HOLD_MAX)
		n = HOLD_MAX;
	if (maps > 0) {
		/* every other page read-only: maps separate mappings */
		size_t len = (size_t)maps * 4096;
		char *b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (b == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		memset(b, 1, len);
		for (long i = 0; i < maps; i += 2)
			mprotect(b + (size_t)i * 4096, 4096, PROT_READ);
	}
	for (int i = 0; i < n; i++) {
		struct mb_options o = { .kind = bidi ? MB_CLIENT_BIDI : MB_CLIENT_SINK,
					.name = "holder", .share = bidi ? give_all : NULL };
		int r = mb_open(&cs[i], &o);
		uint64_t got = 0;
		if (r == MB_OK && bidi)
			r = mb_request(&cs[i], 1, 1000, &got);
		if (r != MB_OK) {
			fprintf(stderr, "auditbench: connection %d: %s\n", i, mb_strerror(r));
			return 1;
		}
		pf[i].fd = mb_fd(&cs[i]);
		pf[i].events = POLLIN;
	}
	printf("ready\n");
	fflush(stdout);
	if (!bidi) {
		sleep((unsigned)secs);
		return 0;
	}
	double end = now_ms() + secs * 1000.0;
	while (now_ms() < end) {
		if (poll(pf, (nfds_t)n, 100) <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			uint64_t got = 0;
			if (!(pf[i].revents & POLLIN))
				continue;
			(void)mb_dispatch(&cs[i], 0);
			if (mb_balance(&cs[i]) == 0)
				(void)mb_request(&cs[i], 1, 1000, &got);
		}
	}
	return 0;
}

static int query(int secs)
{
	static double lat[QUERY_MAX];
	int n = 0, failed = 0;
	mb_client c;
	struct mb_options o = { .kind = MB_CLIENT_SINK, .name = "asker", .call_timeout_ms = 10000 };
	double t0 = now_ms();
	int r = mb_open(&c, &o);
	if (r != MB_OK) {
		/* the row says it: a client with the default deadlines could
		 * not even connect */
		printf("no connection after %.0f ms: %s\n", now_ms() - t0, mb_strerror(r));
		return 1;
	}
	t0 = now_ms();
	while (now_ms() - t0 < secs * 1000.0 && n < QUERY_MAX) {
		struct mb_info info;
		double t = now_ms();
		failed += mb_query(&c, &info) != MB_OK;
		lat[n++] = now_ms() - t;
		usleep(50000);
	}
	qsort(lat, (size_t)n, sizeof(lat[0]), cmp);
	printf("queries %d failed %d median %.2f p90 %.2f max %.2f\n", n, failed, lat[n / 2],
	       lat[n * 9 / 10], lat[n - 1]);
	mb_close(&c);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "hold") == 0)
		return hold(atoi(argv[2]), atol(argv[3]), atoi(argv[4]), 0);
	if (argc == 5 && strcmp(argv[1], "bidi") == 0)
		return hold(atoi(argv[2]), atol(argv[3]), atoi(argv[4]), 1);
	if (argc == 3 && strcmp(argv[1], "query") == 0)
		return query(atoi(argv[2]));
	fprintf(stderr, "usage: auditbench hold|bidi N MAPS SECONDS | query SECONDS\n");
	return 2;
}
