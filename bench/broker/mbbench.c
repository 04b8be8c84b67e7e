/*
 * mbbench - load driver for bench/broker/run.sh.
 *
 *   mbbench rt SOCKET CLIENTS ITERS
 *       Open CLIENTS sink connections, then run ITERS REQUEST(1)+RETURN(1)
 *       pairs, round-robin over all connections.  Each call is one round
 *       trip; its latency is recorded.
 *   mbbench giveback SOCKET ITERS
 *       A bidi client (its own thread, poll + mb_dispatch) holds the whole
 *       pool; a sink makes ITERS REQUEST(1) calls, each served by a share
 *       query to the bidi client.  The broker must have ITERS pages.
 *   mbbench pingpong ITERS
 *       The ceiling: a forked peer on a Unix socket pair answers a frame
 *       of a REQUEST's size with one of a GRANT's size, blocking I/O.
 *
 * Output, one line: "<mode> clients=N iters=N rate=R/s p50=Xus p99=Yus",
 * where rate counts round trips per second.
 */
#include <config.h>

#include "mbclient.h"
#include "mb_wire.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S 1000000000LL
#define FD_MARGIN 64

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *mode, long clients, long n, int64_t *lat,
		   int64_t elapsed)
{
	qsort(lat, (size_t)n, sizeof(*lat), cmp_i64);
	double rate = (double)n * NS_PER_S / (double)elapsed;
	printf("%s clients=%ld iters=%ld rate=%.0f/s p50=%.1fus p99=%.1fus\n", mode,
	       clients, n, rate, lat[n / 2] / 1000.0, lat[n * 99 / 100] / 1000.0);
}

static void die(const char *what, int r)
{
	fprintf(stderr, "mbbench: %s: %s\n", what, mb_strerror(r));
	exit(1);
}

static void raise_fd_limit(long need)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)need) {
		rl.rlim_cur = rl.rlim_max < (rlim_t)need ? rl.rlim_max : (rlim_t)need;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int bench_rt(const char *sock, long clients, long iters)
{
	raise_fd_limit(clients + FD_MARGIN);
	mb_client *c = calloc((size_t)clients, sizeof(*c));
	int64_t *lat = calloc((size_t)iters * 2, sizeof(*lat));
	if (!c || !lat)
		return 1;
	struct mb_options o = { .socket_path = sock, .kind = MB_CLIENT_SINK,
				.name = "mbbench", .connect_timeout_ms = 10000 };
	for (long i = 0; i < clients; i++) {
		int r = mb_open(&c[i], &o);
		if (r < 0)
			die("open", r);
	}
	/* Warm up every connection once. */
	for (long i = 0; i < clients; i++) {
		uint64_t g;
		if (mb_request(&c[i], 1, 0, &g) < 0 || mb_return(&c[i], g) < 0)
			die("warm-up", MB_EPROTO);
	}
	int64_t start = now_ns();
	for (long i = 0; i < iters; i++) {
		mb_client *h = &c[i % clients];
		uint64_t g;
		int64_t t0 = now_ns();
		int r = mb_request(h, 1, 0, &g);
		int64_t t1 = now_ns();
		if (r < 0 || g != 1)
			die("request", r < 0 ? r : MB_EDENIED);
		r = mb_return(h, 1);
		int64_t t2 = now_ns();
		if (r < 0)
			die("return", r);
		lat[2 * i] = t1 - t0;
		lat[2 * i + 1] = t2 - t1;
	}
	int64_t elapsed = now_ns() - start;
	report("rt", clients, iters * 2, lat, elapsed);
	for (long i = 0; i < clients; i++)
		mb_close(&c[i]);
	free(c);
	free(lat);
	return 0;
}

struct bidi {
	mb_client c;
	volatile int stop;
	uint64_t given;
};

static uint64_t give(void *arg, enum mb_client_urgency u, uint64_t pages)
{
	struct bidi *b = arg;
	(void)u;
	b->given += pages;
	return pages;
}

static void *bidi_main(void *arg)
{
	struct bidi *b = arg;
	while (!b->stop) {
		struct pollfd p = { .fd = mb_fd(&b->c), .events = POLLIN };
		if (poll(&p, 1, 100) > 0) {
			int r = mb_dispatch(&b->c, 0);
			if (r < 0 && r != MB_EAGAIN)
				die("dispatch", r);
		}
	}
	return NULL;
}

static int bench_giveback(const char *sock, long iters)
{
	static struct bidi b;
	mb_client sink;
	int64_t *lat = calloc((size_t)iters, sizeof(*lat));
	if (!lat)
		return 1;
	struct mb_options ob = { .socket_path = sock, .kind = MB_CLIENT_BIDI,
				 .name = "mbbench-bidi", .share = give, .arg = &b };
	struct mb_options os = { .socket_path = sock, .kind = MB_CLIENT_SINK,
				 .name = "mbbench" };
	int r = mb_open(&b.c, &ob);
	if (r < 0)
		die("open bidi", r);
	if ((r = mb_open(&sink, &os)) < 0)
		die("open sink", r);
	struct mb_info info;
	if ((r = mb_query(&b.c, &info)) < 0)
		die("query", r);
	if (info.pool < iters) {
		fprintf(stderr, "mbbench: the broker needs at least %ld pages\n", iters);
		return 1;
	}
	uint64_t g;
	if ((r = mb_request(&b.c, (uint64_t)info.pool, 0, &g)) < 0)
		die("bidi request", r);
	pthread_t th;
	pthread_create(&th, NULL, bidi_main, &b);
	int64_t start = now_ns();
	for (long i = 0; i < iters; i++) {
		int64_t t0 = now_ns();
		r = mb_request(&sink, 1, 0, &g);
		lat[i] = now_ns() - t0;
		if (r < 0 || g != 1)
			die("give-back request", r < 0 ? r : MB_EDENIED);
	}
	int64_t elapsed = now_ns() - start;
	b.stop = 1;
	pthread_join(th, NULL);
	report("giveback", 2, iters, lat, elapsed);
	mb_close(&sink);
	mb_close(&b.c);
	free(lat);
	return 0;
}

#define REQ_FRAME (MB_WIRE_HDR_SIZE + 8 * MB_W_REQ_COUNT)
#define GRANT_FRAME (MB_WIRE_HDR_SIZE + 8 * MB_W_GRANT_COUNT)

static int full_io(int fd, void *buf, size_t len, int rd)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = rd ? read(fd, (char *)buf + off, len - off) :
			write(fd, (char *)buf + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

static int bench_pingpong(long iters)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		unsigned char in[REQ_FRAME], out[GRANT_FRAME];
		memset(out, 0, sizeof(out));
		while (full_io(sv[1], in, sizeof(in), 1) == 0)
			if (full_io(sv[1], out, sizeof(out), 0) < 0)
				break;
		_exit(0);
	}
	close(sv[1]);
	int64_t *lat = calloc((size_t)iters, sizeof(*lat));
	if (!lat)
		return 1;
	unsigned char req[REQ_FRAME], rep[GRANT_FRAME];
	memset(req, 0, sizeof(req));
	int64_t start = now_ns();
	for (long i = 0; i < iters; i++) {
		int64_t t0 = now_ns();
		if (full_io(sv[0], req, sizeof(req), 0) < 0 ||
		    full_io(sv[0], rep, sizeof(rep), 1) < 0)
			return 1;
		lat[i] = now_ns() - t0;
	}
	int64_t elapsed = now_ns() - start;
	close(sv[0]);
	waitpid(pid, NULL, 0);
	report("pingpong", 1, iters, lat, elapsed);
	free(lat);
	return 0;
}

static long num(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v <= 0) {
		fprintf(stderr, "mbbench: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 5 && strcmp(argv[1], "rt") == 0)
		return bench_rt(argv[2], num(argv[3]), num(argv[4]));
	if (argc == 4 && strcmp(argv[1], "giveback") == 0)
		return bench_giveback(argv[2], num(argv[3]));
	if (argc == 3 && strcmp(argv[1], "pingpong") == 0)
		return bench_pingpong(num(argv[2]));
	fprintf(stderr, "usage: mbbench rt SOCKET CLIENTS ITERS\n"
			"       mbbench giveback SOCKET ITERS\n"
			"       mbbench pingpong ITERS\n");
	return 2;
}
