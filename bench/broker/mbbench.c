/*
 * mbbench - load driver for bench/broker/run.sh.
 *
 * A pair is a REQUEST(1) and its GRANT, then a RETURN(1) and its
 * RETURN_ACK: two round trips.  Every rate below counts pairs per second
 * and every latency is that of a whole pair.
 *
 *   mbbench rt SOCKET ITERS
 *       One client (libmbclient) makes ITERS pairs, one after the other.
 *   mbbench load SOCKET CLIENTS SECONDS PAIRS_PER_CLIENT_PER_S
 *       CLIENTS raw connections driven by one epoll loop.  With a rate
 *       (open loop) every client starts a pair on a fixed schedule, the
 *       clients spread evenly over the period; latency runs from the
 *       scheduled start, so a late reply delays what follows and is
 *       counted (no coordinated omission).  With rate 0 (closed loop)
 *       every client starts its next pair as soon as the last one ends.
 *       The first fifth of the time is warm-up and not counted.
 *   mbbench echo SOCKET
 *       The peer for the closed loop: an epoll server on SOCKET that
 *       answers HELLO, REQUEST and RETURN with frames of the broker's
 *       sizes and does nothing else (the ceiling for the same clients).
 *   mbbench giveback SOCKET ITERS
 *       A bidi client (its own thread, poll + mb_dispatch) holds the whole
 *       pool; a sink makes ITERS REQUEST(1) calls, each served by a share
 *       query to the bidi client.  The broker must have ITERS pages.
 *   mbbench pingpong ITERS
 *       A forked peer on a Unix socket pair answers frames of a REQUEST's
 *       and a RETURN's size with frames of a GRANT's and a RETURN_ACK's
 *       size, blocking I/O: ITERS pairs of two round trips.
 *
 * Output, one line: "<mode> clients=N pairs=N rate=R/s p50=Xus p99=Yus".
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
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
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
	printf("%s clients=%ld pairs=%ld rate=%.0f/s p50=%.1fus p99=%.1fus\n", mode,
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

static int bench_rt(const char *sock, long iters)
{
	mb_client c;
	int64_t *lat = calloc((size_t)iters, sizeof(*lat));
	if (!lat)
		return 1;
	struct mb_options o = { .socket_path = sock, .kind = MB_CLIENT_SINK,
				.name = "mbbench", .connect_timeout_ms = 10000 };
	int r = mb_open(&c, &o);
	if (r < 0)
		die("open", r);
	uint64_t g;
	for (int i = 0; i < 1000; i++) /* warm-up */
		if (mb_request(&c, 1, 0, &g) < 0 || mb_return(&c, g) < 0)
			die("warm-up", MB_EPROTO);
	int64_t start = now_ns();
	for (long i = 0; i < iters; i++) {
		int64_t t0 = now_ns();
		r = mb_request(&c, 1, 0, &g);
		if (r < 0 || g != 1)
			die("request", r < 0 ? r : MB_EDENIED);
		if ((r = mb_return(&c, 1)) < 0)
			die("return", r);
		lat[i] = now_ns() - t0;
	}
	int64_t elapsed = now_ns() - start;
	report("rt", 1, iters, lat, elapsed);
	mb_close(&c);
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
	report("giveback", 2, iters, lat, elapsed); /* pairs here: REQUEST + share query */
	mb_close(&sink);
	mb_close(&b.c);
	free(lat);
	return 0;
}

#define REQ_FRAME (MB_WIRE_HDR_SIZE + 8 * MB_W_REQ_COUNT)
#define GRANT_FRAME (MB_WIRE_HDR_SIZE + 8 * MB_W_GRANT_COUNT)
#define RET_FRAME (MB_WIRE_HDR_SIZE + 8 * MB_W_RET_COUNT)
#define RETACK_FRAME (MB_WIRE_HDR_SIZE + 8 * MB_W_RETACK_COUNT)

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
		unsigned char buf[GRANT_FRAME + RETACK_FRAME];
		memset(buf, 0, sizeof(buf));
		while (full_io(sv[1], buf, REQ_FRAME, 1) == 0 &&
		       full_io(sv[1], buf, GRANT_FRAME, 0) == 0 &&
		       full_io(sv[1], buf, RET_FRAME, 1) == 0 &&
		       full_io(sv[1], buf, RETACK_FRAME, 0) == 0)
			;
		_exit(0);
	}
	close(sv[1]);
	int64_t *lat = calloc((size_t)iters, sizeof(*lat));
	if (!lat)
		return 1;
	unsigned char buf[GRANT_FRAME + RETACK_FRAME];
	memset(buf, 0, sizeof(buf));
	int64_t start = now_ns();
	for (long i = 0; i < iters; i++) {
		int64_t t0 = now_ns();
		if (full_io(sv[0], buf, REQ_FRAME, 0) < 0 ||
		    full_io(sv[0], buf, GRANT_FRAME, 1) < 0 ||
		    full_io(sv[0], buf, RET_FRAME, 0) < 0 ||
		    full_io(sv[0], buf, RETACK_FRAME, 1) < 0)
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

/* ---- many clients: one epoll loop ------------------------------------- */

#define LOAD_QUEUE 64    /* scheduled pairs a late client may owe */
#define LOAD_EVENTS 256

enum { LC_IDLE, LC_GRANT, LC_ACK };

struct lc {
	int fd;
	int state;
	uint32_t seq;
	int64_t t0;                  /* scheduled (open) or actual (closed) start */
	int64_t owed[LOAD_QUEUE];    /* open loop: scheduled starts not begun */
	unsigned oh, on;
	size_t inlen;
	unsigned char in[4 * MB_WIRE_MAX_FRAME];
};

static int raw_connect(const char *sock)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("mbbench: connect");
		exit(1);
	}
	return fd;
}

static void send_frame(int fd, unsigned type, uint32_t seq, uint64_t w0, uint64_t w1)
{
	struct mb_msg m;
	unsigned char buf[MB_WIRE_MAX_FRAME];
	mb_msg_init(&m, type, seq);
	m.w[0] = w0;
	m.w[1] = w1;
	int n = mb_wire_encode(&m, buf, sizeof(buf));
	/* Frames are tiny and each client has at most one in flight: the
	 * socket buffer always takes them whole. */
	if (n < 0 || send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n) {
		perror("mbbench: send");
		exit(1);
	}
}

static void lc_start(struct lc *c, int64_t t0)
{
	c->t0 = t0;
	c->state = LC_GRANT;
	send_frame(c->fd, MB_MSG_REQUEST, ++c->seq, 1, 0);
}

/* Read what c's socket holds and hand each complete frame to fn.  -1 at
 * EOF, on a read error or a malformed frame, or fn's first nonzero result;
 * else 0. */
static int lc_read(struct lc *c, int (*fn)(struct lc *c, const struct mb_msg *m, void *arg),
		   void *arg)
{
	ssize_t r = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
	if (r <= 0)
		return -1;
	c->inlen += (size_t)r;
	size_t off = 0;
	struct mb_msg m;
	int used, rc = 0;
	while (rc == 0 && (used = mb_wire_decode(c->in + off, c->inlen - off, &m)) > 0) {
		off += (size_t)used;
		rc = fn(c, &m, arg);
	}
	if (rc == 0 && used < 0)
		rc = -1;
	memmove(c->in, c->in + off, c->inlen - off);
	c->inlen -= off;
	return rc;
}

struct load {
	long per_s;
	int64_t count_from;
	int64_t *lat;
	size_t cap, n;
};

/* One reply to a load client: the next step of its pair. */
static int load_frame(struct lc *c, const struct mb_msg *m, void *arg)
{
	struct load *L = arg;
	if (m->w[0] != MB_ST_OK) {
		fprintf(stderr, "mbbench: %s %s\n", mb_wire_type_name(m->type),
			mb_wire_status_name((unsigned)m->w[0]));
		return -1;
	}
	if (c->state == LC_GRANT && m->type == MB_MSG_GRANT) {
		c->state = LC_ACK;
		send_frame(c->fd, MB_MSG_RETURN, ++c->seq, 1, 0);
	} else if (c->state == LC_ACK && m->type == MB_MSG_RETURN_ACK) {
		int64_t t = now_ns();
		if (c->t0 >= L->count_from && L->n < L->cap)
			L->lat[L->n++] = t - c->t0;
		c->state = LC_IDLE;
		if (!L->per_s) {
			lc_start(c, t);
		} else if (c->on) {
			int64_t at = c->owed[c->oh];
			c->oh = (c->oh + 1) % LOAD_QUEUE;
			c->on--;
			lc_start(c, at);
		}
	}
	return 0;
}

/* The echo peer's answer: a reply of the broker's size, status OK. */
static int echo_frame(struct lc *c, const struct mb_msg *m, void *arg)
{
	(void)arg;
	unsigned rt = m->type == MB_MSG_HELLO ? MB_MSG_HELLO_ACK :
		m->type == MB_MSG_REQUEST ? MB_MSG_GRANT : MB_MSG_RETURN_ACK;
	send_frame(c->fd, rt, m->seq, MB_ST_OK, m->type == MB_MSG_REQUEST);
	return 0;
}

static int64_t sched_at(int64_t start, long j, long clients, int64_t period)
{
	return start + (int64_t)(j / clients) * period + (j % clients) * period / clients;
}

static int bench_load(const char *sock, long clients, long seconds, long per_s)
{
	raise_fd_limit(clients + FD_MARGIN);
	struct lc *cl = calloc((size_t)clients, sizeof(*cl));
	size_t cap = (size_t)(per_s ? clients * per_s * seconds + clients :
			      4000000);
	int64_t *lat = calloc(cap, sizeof(*lat));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (!cl || !lat || ep < 0)
		return 1;
	for (long i = 0; i < clients; i++) {
		cl[i].fd = raw_connect(sock);
		struct mb_msg m;
		mb_msg_init(&m, MB_MSG_HELLO, 0);
		m.w[MB_W_HELLO_VERSION] = MB_WIRE_VERSION;
		unsigned char buf[MB_WIRE_MAX_FRAME];
		int n = mb_wire_encode(&m, buf, sizeof(buf));
		if (send(cl[i].fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
			return 1;
	}
	for (long i = 0; i < clients; i++) { /* HELLO_ACK, blocking */
		unsigned char buf[MB_WIRE_HDR_SIZE + 8 * MB_W_ACK_COUNT];
		if (full_io(cl[i].fd, buf, sizeof(buf), 1) < 0) {
			fprintf(stderr, "mbbench: no HELLO_ACK\n");
			return 1;
		}
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)i };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, cl[i].fd, &ev) != 0)
			return 1;
	}
	/* The schedule is in tens of microseconds: no timer slack. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
	int64_t period = per_s ? NS_PER_S / per_s : 0;
	int64_t start = now_ns();
	int64_t count_from = start + seconds * NS_PER_S / 5;
	int64_t end = start + seconds * NS_PER_S;
	long next = 0, dropped = 0;
	struct load L = { per_s, count_from, lat, cap, 0 };
	if (!per_s)
		for (long i = 0; i < clients; i++)
			lc_start(&cl[i], start);
	struct epoll_event evs[LOAD_EVENTS];
	for (;;) {
		int64_t now = now_ns();
		if (now >= end)
			break;
		while (per_s && sched_at(start, next, clients, period) <= now) {
			struct lc *c = &cl[next % clients];
			int64_t at = sched_at(start, next, clients, period);
			next++;
			if (c->state == LC_IDLE)
				lc_start(c, at);
			else if (c->on < LOAD_QUEUE)
				c->owed[(c->oh + c->on++) % LOAD_QUEUE] = at;
			else
				dropped++;
		}
		int64_t wake = per_s ? sched_at(start, next, clients, period) : end;
		if (wake > end)
			wake = end;
		int64_t wait = wake - now_ns();
		struct timespec ts = { wait > 0 ? wait / NS_PER_S : 0, wait > 0 ? wait % NS_PER_S : 0 };
		int k = epoll_pwait2(ep, evs, LOAD_EVENTS, &ts, NULL);
		for (int e = 0; e < k; e++) {
			if (lc_read(&cl[evs[e].data.u64], load_frame, &L) != 0) {
				fprintf(stderr, "mbbench: connection lost or bad reply\n");
				return 1;
			}
		}
	}
	if (L.n == 0) {
		fprintf(stderr, "mbbench: no pair completed\n");
		return 1;
	}
	report(per_s ? "open" : "closed", clients, (long)L.n, lat, end - count_from);
	if (dropped)
		fprintf(stderr, "mbbench: %ld scheduled pairs dropped (client too late)\n", dropped);
	for (long i = 0; i < clients; i++)
		close(cl[i].fd);
	free(cl);
	free(lat);
	return 0;
}

/* The echo peer: same frames, no brokering. */
static int bench_echo(const char *sock)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	unlink(sock);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, 4096) != 0) {
		perror("mbbench: echo socket");
		return 1;
	}
	raise_fd_limit(1 << 16);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	struct epoll_event evs[LOAD_EVENTS];
	for (;;) {
		int k = epoll_wait(ep, evs, LOAD_EVENTS, -1);
		for (int e = 0; e < k; e++) {
			if (evs[e].data.ptr == NULL) {
				int fd;
				while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
					struct lc *c = calloc(1, sizeof(*c));
					c->fd = fd;
					struct epoll_event cev = { .events = EPOLLIN, .data.ptr = c };
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
				}
				continue;
			}
			struct lc *c = evs[e].data.ptr;
			if (lc_read(c, echo_frame, NULL) != 0) {
				close(c->fd);
				free(c);
			}
		}
	}
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
	if (argc == 4 && strcmp(argv[1], "rt") == 0)
		return bench_rt(argv[2], num(argv[3]));
	if (argc == 6 && strcmp(argv[1], "load") == 0)
		return bench_load(argv[2], num(argv[3]), num(argv[4]),
				  strcmp(argv[5], "0") == 0 ? 0 : num(argv[5]));
	if (argc == 3 && strcmp(argv[1], "echo") == 0)
		return bench_echo(argv[2]);
	if (argc == 4 && strcmp(argv[1], "giveback") == 0)
		return bench_giveback(argv[2], num(argv[3]));
	if (argc == 3 && strcmp(argv[1], "pingpong") == 0)
		return bench_pingpong(num(argv[2]));
	fprintf(stderr, "usage: mbbench rt SOCKET ITERS\n"
			"       mbbench load SOCKET CLIENTS SECONDS PAIRS_PER_CLIENT_PER_S (0: closed loop)\n"
			"       mbbench echo SOCKET\n"
			"       mbbench giveback SOCKET ITERS\n"
			"       mbbench pingpong ITERS\n");
	return 2;
}
