/*
 * libmbclient against a real mbserver: each test starts the broker on a
 * private socket in its own temporary directory.
 *
 * The program also replaces malloc and friends with counting wrappers
 * around glibc's allocator: every allocation anywhere in the process goes
 * through them, so the "no heap" test sees any allocation libmbclient (or
 * what it calls) would make on the calling thread.
 */
#include <config.h>

#include "mbclient.h"
#include "mbt_server.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- counting allocator ------------------------------------------------ */

/* AddressSanitizer owns malloc: there the counting test is left out. */
#if defined(__SANITIZE_ADDRESS__)
#define COUNT_HEAP 0
#else
#define COUNT_HEAP 1
#endif

#if COUNT_HEAP

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static __thread volatile int heap_armed;
static __thread volatile unsigned long heap_calls;

static void heap_note(void)
{
	if (heap_armed)
		heap_calls++;
}

__attribute__((visibility("default"))) void *malloc(size_t n)
{
	heap_note();
	return __libc_malloc(n);
}

__attribute__((visibility("default"))) void *calloc(size_t a, size_t b)
{
	heap_note();
	return __libc_calloc(a, b);
}

__attribute__((visibility("default"))) void *realloc(void *p, size_t n)
{
	heap_note();
	return __libc_realloc(p, n);
}

__attribute__((visibility("default"))) void free(void *p)
{
	if (p)
		heap_note();
	__libc_free(p);
}

__attribute__((visibility("default"))) void *memalign(size_t a, size_t n)
{
	heap_note();
	return __libc_memalign(a, n);
}

__attribute__((visibility("default"))) void *aligned_alloc(size_t a, size_t n)
{
	heap_note();
	return __libc_memalign(a, n);
}

__attribute__((visibility("default"))) int posix_memalign(void **out, size_t a, size_t n)
{
	heap_note();
	void *p = __libc_memalign(a, n);
	if (p == NULL)
		return ENOMEM;
	*out = p;
	return 0;
}
#endif

/* ---- broker process ---------------------------------------------------- */

struct broker {
	char dir[64];
	char sock[128];
	char log[128];
	pid_t pid;
};

static struct broker B;

static void broker_spawn(struct broker *b, const char *total, const char *const *extra)
{
	ck_assert_msg(getenv("top_builddir") != NULL,
		      "top_builddir not set: run through make check");
	const char *args[32] = { "--config", "/dev/null", "--socket", b->sock,
				 "--total", total, "--log-level", "info" };
	int n = 8;
	for (int i = 0; extra && extra[i] && n < 30; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	unlink(b->sock);
	b->pid = mbt_spawn_server(args, b->log, 0, -1);
	ck_assert_int_ge(b->pid, 0);
	int rc = mbt_wait_server(b->pid, b->sock);
	if (rc == -1)
		ck_abort_msg("mbserver exited at start (see %s)", b->log);
	if (rc != 0)
		ck_abort_msg("mbserver did not create its socket");
}

static void broker_start(const char *total, const char *const *extra)
{
	memset(&B, 0, sizeof(B));
	strcpy(B.dir, "/tmp/mbcbroker.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(B.dir));
	snprintf(B.sock, sizeof(B.sock), "%s/mb.sock", B.dir);
	snprintf(B.log, sizeof(B.log), "%s/mbserver.log", B.dir);
	broker_spawn(&B, total, extra);
}

static void broker_kill(int sig)
{
	if (B.pid > 0) {
		kill(B.pid, sig);
		waitpid(B.pid, NULL, 0);
		B.pid = 0;
	}
}

static void broker_stop(void)
{
	broker_kill(SIGTERM);
	unlink(B.sock);
	unlink(B.log);
	rmdir(B.dir);
}

/* ---- helpers ----------------------------------------------------------- */


struct giver {
	uint64_t give;          /* most pages to give per query */
	unsigned calls;
	uint64_t asked, given;
	enum mb_client_urgency urg;
	uint64_t repaid;
};

static uint64_t give_back(void *arg, enum mb_client_urgency urg, uint64_t pages)
{
	struct giver *g = arg;
	g->calls++;
	g->urg = urg;
	g->asked += pages;
	uint64_t n = pages < g->give ? pages : g->give;
	g->give -= n;
	g->given += n;
	return n;
}

static void on_repay(void *arg, uint64_t pages)
{
	struct giver *g = arg;
	g->repaid += pages;
}

static void open_as(mb_client *c, enum mb_client_kind kind, struct giver *g,
		    uint64_t source_pages)
{
	struct mb_options o = {
		.socket_path = B.sock, .kind = kind, .name = "cbtest",
		.connect_timeout_ms = 5000, /* loaded test machines */
		.source_pages = source_pages,
	};
	if (kind == MB_CLIENT_BIDI || kind == MB_CLIENT_SOURCE) {
		o.share = give_back;
		o.repay = on_repay;
		o.arg = g;
	}
	ck_assert_int_eq(mb_open(c, &o), MB_OK);
}

static int64_t pool_of(mb_client *c)
{
	struct mb_info i;
	ck_assert_int_eq(mb_query(c, &i), MB_OK);
	return i.pool;
}

struct asker {
	mb_client *c;
	int reserve;
	uint64_t pages;
	int timeout_ms;
	int rc;
	uint64_t granted;
	pthread_t th;
};

static void *asker_main(void *arg)
{
	struct asker *a = arg;
	a->rc = a->reserve ? mb_reserve(a->c, a->pages, a->timeout_ms, &a->granted) :
		mb_request(a->c, a->pages, a->timeout_ms, &a->granted);
	return NULL;
}

static void asker_start(struct asker *a)
{
	ck_assert_int_eq(pthread_create(&a->th, NULL, asker_main, a), 0);
}

struct seek {
	uint64_t id;
	int found;
	struct mb_status_client row;
};

static int find_row(void *arg, const struct mb_status_client *row)
{
	struct seek *s = arg;
	if (row->id == s->id) {
		s->found = 1;
		s->row = *row;
	}
	return 0;
}

static uint64_t id_of(mb_client *c)
{
	struct mb_info i;
	ck_assert_int_eq(mb_query(c, &i), MB_OK);
	return i.client_id;
}

/* Wait (through an observer) until client id has an open share query. */
static void wait_share_open(mb_client *obs, uint64_t id)
{
	for (int i = 0; i < 1000; i++) {
		struct seek s = { .id = id };
		ck_assert_int_eq(mb_status(obs, NULL, find_row, &s), MB_OK);
		if (s.found && s.row.share_urgency >= 0)
			return;
		usleep(5000);
	}
	ck_abort_msg("no share query reached client %llu", (unsigned long long)id);
}

/* Wait until client id has a pending request. */
static void wait_pending(mb_client *obs, uint64_t id)
{
	for (int i = 0; i < 1000; i++) {
		struct seek s = { .id = id };
		ck_assert_int_eq(mb_status(obs, NULL, find_row, &s), MB_OK);
		if (s.found && s.row.req_type != 0)
			return;
		usleep(5000);
	}
	ck_abort_msg("client %llu has no pending request", (unsigned long long)id);
}

static void observer(mb_client *c)
{
	struct mb_options o = { .socket_path = B.sock, .kind = MB_CLIENT_OBSERVER,
				.name = "observer" };
	ck_assert_int_eq(mb_open(c, &o), MB_OK);
}

/* ---- tests ------------------------------------------------------------- */

START_TEST(open_query_close)
{
	broker_start("100p", NULL);
	mb_client c;
	open_as(&c, MB_CLIENT_SINK, NULL, 0);
	ck_assert_uint_eq(mb_page_size(&c), (uint64_t)sysconf(_SC_PAGESIZE));
	struct mb_info i;
	ck_assert_int_eq(mb_query(&c, &i), MB_OK);
	ck_assert_uint_eq(i.total, 100);
	ck_assert_int_eq(i.pool, 100);
	ck_assert_int_eq(i.balance, 0);
	ck_assert_uint_eq(i.clients, 1);
	ck_assert_uint_ne(i.client_id, 0);
	ck_assert_int_eq(mb_close(&c), MB_OK);
	broker_stop();
}
END_TEST

START_TEST(request_reserve_return)
{
	broker_start("100p", NULL);
	mb_client a, b;
	open_as(&a, MB_CLIENT_SINK, NULL, 0);
	open_as(&b, MB_CLIENT_SINK, NULL, 0);
	uint64_t g;
	ck_assert_int_eq(mb_request(&a, 60, 0, &g), MB_OK);
	ck_assert_uint_eq(g, 60);
	/* Partial: only 40 left and nobody to ask. */
	ck_assert_int_eq(mb_request(&b, 60, 0, &g), MB_OK);
	ck_assert_uint_eq(g, 40);
	ck_assert_int_eq(mb_balance(&b), 40);
	ck_assert_int_eq(pool_of(&a), 0);
	/* All or nothing: denied, and nothing moves. */
	ck_assert_int_eq(mb_reserve(&a, 10, -1, &g), MB_EDENIED);
	ck_assert_uint_eq(g, 0);
	ck_assert_int_eq(mb_balance(&a), 60);
	ck_assert_int_eq(mb_return(&a, 25), MB_OK);
	ck_assert_int_eq(mb_balance(&a), 35);
	ck_assert_int_eq(pool_of(&b), 25);
	ck_assert_int_eq(mb_reserve(&b, 25, 0, &g), MB_OK);
	ck_assert_uint_eq(g, 25);
	ck_assert_int_eq(mb_balance(&b), 65);
	/* Over-return is refused and changes nothing. */
	ck_assert_int_eq(mb_return(&a, 36), MB_EOVERRETURN);
	ck_assert_int_eq(mb_balance(&a), 35);
	struct mb_info i;
	ck_assert_int_eq(mb_query(&a, &i), MB_OK);
	ck_assert_int_eq(i.balance, 35);
	ck_assert_int_eq(i.pool, 0);
	ck_assert_int_eq(mb_close(&a), MB_OK);
	/* Closing gave a's 35 pages back. */
	ck_assert_int_eq(pool_of(&b), 35);
	ck_assert_int_eq(mb_close(&b), MB_OK);
	broker_stop();
}
END_TEST

START_TEST(giveback_in_blocking_call)
{
	broker_start("100p", NULL);
	mb_client bidi, sink, obs;
	struct giver gv = { .give = 1000 };
	open_as(&bidi, MB_CLIENT_BIDI, &gv, 0);
	open_as(&sink, MB_CLIENT_SINK, NULL, 0);
	observer(&obs);
	uint64_t g;
	ck_assert_int_eq(mb_request(&bidi, 70, 0, &g), MB_OK);
	ck_assert_uint_eq(g, 70);
	uint64_t bidi_id = id_of(&bidi);
	struct asker a = { .c = &sink, .reserve = 1, .pages = 50, .timeout_ms = -1 };
	asker_start(&a);
	wait_share_open(&obs, bidi_id);
	/* A blocking call on the bidi handle answers the query on its way. */
	struct mb_info i;
	ck_assert_int_eq(mb_query(&bidi, &i), MB_OK);
	pthread_join(a.th, NULL);
	ck_assert_int_eq(a.rc, MB_OK);
	ck_assert_uint_eq(a.granted, 50);
	ck_assert_uint_ge(gv.calls, 1);
	ck_assert_uint_eq(gv.given, 20);
	ck_assert_int_eq(gv.urg, MB_URGENCY_RESERVE);
	ck_assert_int_eq(mb_balance(&bidi), 50);
	mb_close(&obs);
	mb_close(&sink);
	mb_close(&bidi);
	broker_stop();
}
END_TEST

START_TEST(giveback_through_dispatch)
{
	broker_start("100p", NULL);
	mb_client bidi, sink;
	struct giver gv = { .give = 1000 };
	open_as(&bidi, MB_CLIENT_BIDI, &gv, 0);
	open_as(&sink, MB_CLIENT_SINK, NULL, 0);
	uint64_t g;
	ck_assert_int_eq(mb_request(&bidi, 100, 0, &g), MB_OK);
	struct asker a = { .c = &sink, .reserve = 0, .pages = 30, .timeout_ms = 0 };
	asker_start(&a);
	/* An event loop: poll the fd, dispatch. */
	while (gv.calls == 0) {
		struct pollfd p = { .fd = mb_fd(&bidi), .events = POLLIN };
		ck_assert_int_eq(poll(&p, 1, 10000), 1);
		int n = mb_dispatch(&bidi, 0);
		ck_assert(n >= 1 || n == MB_EAGAIN);
	}
	pthread_join(a.th, NULL);
	ck_assert_int_eq(a.rc, MB_OK);
	ck_assert_uint_eq(a.granted, 30);
	ck_assert_int_eq(gv.urg, MB_URGENCY_REQUEST);
	ck_assert_int_eq(mb_balance(&bidi), 70);
	ck_assert_int_eq(mb_dispatch(&bidi, 0), MB_EAGAIN);
	mb_close(&sink);
	mb_close(&bidi);
	broker_stop();
}
END_TEST

START_TEST(source_lends_and_is_repaid)
{
	/* A broker owning nothing lets its sources declare source_max. */
	static const char *const src_max[] = { "--set", "source_max=1M", NULL };
	broker_start("0", src_max);
	mb_client src, sink;
	struct giver gv = { .give = 1000 };
	open_as(&src, MB_CLIENT_SOURCE, &gv, 40);
	open_as(&sink, MB_CLIENT_SINK, NULL, 0);
	struct mb_info i;
	ck_assert_int_eq(mb_query(&sink, &i), MB_OK);
	ck_assert_uint_eq(i.total, 40);
	struct asker a = { .c = &sink, .pages = 30 };
	asker_start(&a);
	while (gv.calls == 0)
		ck_assert_int_ge(mb_dispatch(&src, -1), 1);
	pthread_join(a.th, NULL);
	ck_assert_int_eq(a.rc, MB_OK);
	ck_assert_uint_eq(a.granted, 30);
	ck_assert_int_eq(mb_balance(&src), -30);
	/* The sink returns: the source is paid back first. */
	ck_assert_int_eq(mb_return(&sink, 30), MB_OK);
	while (gv.repaid < 30)
		ck_assert_int_ge(mb_dispatch(&src, -1), 1);
	ck_assert_uint_eq(gv.repaid, 30);
	ck_assert_int_eq(mb_balance(&src), 0);
	mb_close(&sink);
	mb_close(&src);
	broker_stop();
}
END_TEST

/* A bidi client that holds everything and never reads its socket keeps a
 * RESERVE waiting (the share deadline is long). */
static const char *const slow_share[] = { "--set", "share_deadline=60s", NULL };

START_TEST(cancel_from_another_thread)
{
	broker_start("100p", slow_share);
	mb_client mute, sink, obs;
	struct giver gv = { 0 };
	open_as(&mute, MB_CLIENT_BIDI, &gv, 0);
	open_as(&sink, MB_CLIENT_SINK, NULL, 0);
	observer(&obs);
	uint64_t g;
	ck_assert_int_eq(mb_request(&mute, 100, 0, &g), MB_OK);
	uint64_t sink_id = id_of(&sink);
	struct asker a = { .c = &sink, .reserve = 1, .pages = 10, .timeout_ms = -1 };
	asker_start(&a);
	wait_pending(&obs, sink_id);
	ck_assert_int_eq(mb_cancel(&sink), MB_OK);
	pthread_join(a.th, NULL);
	ck_assert_int_eq(a.rc, MB_ECANCELED);
	ck_assert_uint_eq(a.granted, 0);
	/* The handle goes on working, and nothing pends any more. */
	ck_assert_int_eq(mb_cancel(&sink), MB_EAGAIN);
	ck_assert_int_eq(pool_of(&sink), 0);
	mb_close(&obs);
	mb_close(&sink);
	mb_close(&mute);
	broker_stop();
}
END_TEST

START_TEST(timeouts)
{
	broker_start("100p", slow_share);
	mb_client mute, sink;
	struct giver gv = { 0 };
	open_as(&mute, MB_CLIENT_BIDI, &gv, 0);
	open_as(&sink, MB_CLIENT_SINK, NULL, 0);
	uint64_t g = 1;
	ck_assert_int_eq(mb_request(&mute, 90, 0, &g), MB_OK);
	/* REQUEST: the deadline ends it with what it has. */
	ck_assert_int_eq(mb_request(&sink, 20, 200, &g), MB_OK);
	ck_assert_uint_eq(g, 10);
	/* RESERVE: the deadline fails it, all or nothing. */
	ck_assert_int_eq(mb_reserve(&sink, 20, 200, &g), MB_ETIMEDOUT);
	ck_assert_uint_eq(g, 0);
	ck_assert_int_eq(mb_balance(&sink), 10);
	ck_assert_int_eq(mb_is_open(&sink), 1);
	mb_close(&sink);
	mb_close(&mute);
	broker_stop();
}
END_TEST

START_TEST(server_lost_then_reconnect)
{
	broker_start("100p", NULL);
	mb_client c;
	open_as(&c, MB_CLIENT_SINK, NULL, 0);
	uint64_t g;
	ck_assert_int_eq(mb_request(&c, 10, 0, &g), MB_OK);
	broker_kill(SIGKILL);
	struct mb_info i;
	ck_assert_int_eq(mb_query(&c, &i), MB_ECONNLOST);
	ck_assert_int_eq(mb_is_open(&c), 0);
	ck_assert_int_eq(mb_balance(&c), 0);
	/* Nobody listens: the next call cannot connect. */
	ck_assert_int_eq(mb_query(&c, &i), MB_ECONNECT);
	broker_spawn(&B, "50p", NULL);
	ck_assert_int_eq(mb_query(&c, &i), MB_OK);
	ck_assert_uint_eq(i.total, 50);
	ck_assert_int_eq(i.balance, 0);
	ck_assert_int_eq(mb_request(&c, 10, 0, &g), MB_OK);
	ck_assert_uint_eq(g, 10);
	mb_close(&c);
	broker_stop();
}
END_TEST

/* Defect 2: a stopped broker costs a call its deadline, never a hang. */
START_TEST(stopped_broker_deadlines)
{
	broker_start("100p", NULL);
	mb_client c;
	struct mb_options o = {
		.socket_path = B.sock, .kind = MB_CLIENT_SINK, .name = "stopped",
		/* long enough for a loaded machine's first answers */
		.connect_timeout_ms = 1000, .call_timeout_ms = 1000,
	};
	ck_assert_int_eq(mb_open(&c, &o), MB_OK);
	uint64_t g;
	ck_assert_int_eq(mb_request(&c, 5, 200, &g), MB_OK);
	ck_assert_int_eq(kill(B.pid, SIGSTOP), 0);
	ck_assert_int_eq(mb_request(&c, 5, 200, &g), MB_ETIMEDOUT);
	ck_assert_int_eq(mb_is_open(&c), 0);
	ck_assert_int_eq(mb_request(&c, 5, 0, &g), MB_ECONNECT); /* HELLO unanswered */
	struct mb_info i;
	ck_assert_int_eq(mb_query(&c, &i), MB_ECONNECT);
	ck_assert_int_eq(kill(B.pid, SIGCONT), 0);
	/* Running again: the next calls reconnect (a loaded machine may need
	 * more than one connect timeout to catch up). */
	int r = MB_ECONNECT;
	for (int k = 0; k < 20 && r != MB_OK; k++)
		r = mb_query(&c, &i);
	ck_assert_int_eq(r, MB_OK);
	mb_close(&c);
	broker_stop();
}
END_TEST

/* MB_OPEN_NO_AUTOCONNECT: with the connection down, calls return
 * MB_ENOTCONN at once instead of connecting; mb_reconnect() connects. */
START_TEST(no_autoconnect_leaves_connecting_to_reconnect)
{
	broker_start("100p", NULL);
	mb_client c;
	struct mb_options o = {
		.socket_path = B.sock, .kind = MB_CLIENT_SINK, .name = "noauto",
		.connect_timeout_ms = 5000, .flags = MB_OPEN_NO_AUTOCONNECT,
	};
	ck_assert_int_eq(mb_open(&c, &o), MB_OK);
	uint64_t g;
	ck_assert_int_eq(mb_request(&c, 10, 0, &g), MB_OK);
	broker_kill(SIGKILL);
	struct mb_info i;
	ck_assert_int_eq(mb_query(&c, &i), MB_ECONNLOST);
	broker_spawn(&B, "50p", NULL);
	/* A broker listens again; the calls still do not connect. */
	ck_assert_int_eq(mb_request(&c, 10, 0, &g), MB_ENOTCONN);
	ck_assert_int_eq(mb_return(&c, 1), MB_ENOTCONN);
	ck_assert_int_eq(mb_query(&c, &i), MB_ENOTCONN);
	ck_assert_int_eq(mb_fd(&c), MB_ENOTCONN);
	int r = MB_EAGAIN;
	for (int k = 0; k < 200 && r == MB_EAGAIN; k++) {
		r = mb_reconnect(&c);
		if (r == MB_EAGAIN)
			usleep(10000); /* the reconnect timer */
	}
	ck_assert_int_eq(r, MB_OK);
	ck_assert_int_eq(mb_query(&c, &i), MB_OK);
	ck_assert_uint_eq(i.total, 50);
	mb_close(&c);
	broker_stop();
}
END_TEST

static void *reconnect_main(void *arg)
{
	return (void *)(intptr_t)mb_reconnect(arg);
}

/* A connection shows (mb_fd, mb_is_open) only once HELLO and CLAIM are
 * done.  It showed during the handshake, so another thread that checked
 * mb_fd() before a call waited for a HELLO the stopped broker never
 * answered, as if the connection were up. */
START_TEST(handshake_is_not_a_connection)
{
	broker_start("100p", NULL);
	mb_client c;
	struct mb_options o = {
		.socket_path = B.sock, .kind = MB_CLIENT_SINK, .name = "handshake",
		.connect_timeout_ms = 1500, .call_timeout_ms = 1000,
		.flags = MB_OPEN_NO_AUTOCONNECT,
	};
	ck_assert_int_eq(mb_open(&c, &o), MB_OK);
	uint64_t g;
	ck_assert_int_eq(kill(B.pid, SIGSTOP), 0);
	ck_assert_int_eq(mb_request(&c, 5, 100, &g), MB_ETIMEDOUT);
	ck_assert_int_eq(mb_fd(&c), MB_ENOTCONN);
	pthread_t t;
	void *r;
	ck_assert_int_eq(pthread_create(&t, NULL, reconnect_main, &c), 0);
	/* the other thread is in the handshake now, for 1.5 s */
	usleep(400000);
	ck_assert_int_eq(mb_fd(&c), MB_ENOTCONN);
	ck_assert_int_eq(mb_is_open(&c), 0);
	pthread_join(t, &r);
	ck_assert_int_eq((int)(intptr_t)r, MB_ECONNECT);
	ck_assert_int_eq(kill(B.pid, SIGCONT), 0);
	mb_close(&c);
	broker_stop();
}
END_TEST

static uint64_t held_pages;

static uint64_t claim_held(void *arg)
{
	(void)arg;
	return held_pages;
}

static int64_t row_balance(mb_client *obs, uint64_t id, int64_t pid)
{
	struct seek s = { .id = id };
	ck_assert_int_eq(mb_status(obs, NULL, find_row, &s), MB_OK);
	ck_assert_msg(s.found, "no status row for client %llu", (unsigned long long)id);
	ck_assert_int_eq(s.row.pid, pid);
	return s.row.balance;
}

/* Defect 6: an idle holder reconnects to a restarted broker and claims. */
START_TEST(restart_then_claim)
{
	broker_start("100p", NULL);
	mb_client h;
	struct giver gv = { 0 };
	struct mb_options o = {
		.socket_path = B.sock, .kind = MB_CLIENT_BIDI, .name = "holder",
		.connect_timeout_ms = 5000, .share = give_back, .arg = &gv,
		.claim = claim_held,
	};
	held_pages = 0;
	ck_assert_int_eq(mb_open(&h, &o), MB_OK);
	uint64_t g;
	ck_assert_int_eq(mb_request(&h, 40, 0, &g), MB_OK);
	held_pages = 40;
	broker_kill(SIGKILL);
	broker_spawn(&B, "100p", NULL);
	/* The holder's loop: poll the connection, or the reconnect timer. */
	int connected = 0;
	for (int i = 0; i < 200 && !connected; i++) {
		int fd = mb_fd(&h);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int ms = mb_reconnect_ms(&h);
		poll(&p, fd >= 0 ? 1 : 0, fd >= 0 ? 50 : ms);
		if (fd >= 0) {
			(void)mb_dispatch(&h, 0);
		} else if (mb_reconnect(&h) == MB_OK) {
			connected = 1;
		}
	}
	ck_assert_msg(connected, "the holder did not reconnect");
	ck_assert_int_eq(mb_balance(&h), 40);
	mb_client obs, sink;
	observer(&obs);
	ck_assert_int_eq(row_balance(&obs, id_of(&h), getpid()), 40);
	/* A sink gets what is left, not the holder's pages. */
	open_as(&sink, MB_CLIENT_SINK, NULL, 0);
	ck_assert_int_eq(mb_request(&sink, 100, 2000, &g), MB_OK);
	ck_assert_uint_eq(g, 60);
	mb_close(&sink);
	mb_close(&h);
	ck_assert_int_eq(pool_of(&obs), 100);
	mb_close(&obs);
	broker_stop();
}
END_TEST

/* A KEEP client killed holding pages finds them again when it restarts. */
START_TEST(kept_for_a_killed_client)
{
	broker_start("100p", NULL);
	struct mb_options o = {
		.socket_path = B.sock, .kind = MB_CLIENT_SINK, .name = "keeper",
		.connect_timeout_ms = 5000, .flags = MB_OPEN_KEEP,
	};
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		mb_client k;
		uint64_t g = 0;
		if (mb_open(&k, &o) != MB_OK || mb_request(&k, 30, 0, &g) != MB_OK || g != 30)
			_exit(1);
		_exit(0); /* dies holding 30 pages */
	}
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	mb_client obs;
	observer(&obs);
	/* Out of the pool, shown as a row with no pid, until it comes back. */
	for (int i = 0; i < 500 && pool_of(&obs) != 70; i++)
		usleep(10000);
	ck_assert_int_eq(pool_of(&obs), 70);
	ck_assert_int_eq(row_balance(&obs, 0, 0), 30);
	mb_client k;
	ck_assert_int_eq(mb_open(&k, &o), MB_OK);
	ck_assert_int_eq(mb_balance(&k), 30);
	ck_assert_int_eq(mb_return(&k, 30), MB_OK);
	ck_assert_int_eq(pool_of(&obs), 100);
	mb_close(&k);
	mb_close(&obs);
	broker_stop();
}
END_TEST

START_TEST(fork_child_and_parent)
{
	broker_start("100p", NULL);
	mb_client c;
	open_as(&c, MB_CLIENT_SINK, NULL, 0);
	uint64_t g;
	ck_assert_int_eq(mb_request(&c, 10, 0, &g), MB_OK);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct mb_info i;
		int ok = mb_request(&c, 1, 0, &g) == MB_ENOTCONN &&
			 mb_query(&c, &i) == MB_ENOTCONN &&
			 mb_return(&c, 1) == MB_ENOTCONN &&
			 mb_close(&c) == MB_OK;
		/* The child can become a client of its own. */
		mb_client own;
		struct mb_options o = { .socket_path = B.sock, .kind = MB_CLIENT_SINK };
		ok = ok && mb_open(&own, &o) == MB_OK &&
		     mb_request(&own, 5, 0, &g) == MB_OK && g == 5 &&
		     mb_query(&own, &i) == MB_OK && i.clients == 2 &&
		     mb_close(&own) == MB_OK;
		_exit(ok ? 0 : 1);
	}
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* The parent's connection and balance are intact. */
	struct mb_info i;
	ck_assert_int_eq(mb_query(&c, &i), MB_OK);
	ck_assert_int_eq(i.balance, 10);
	ck_assert_int_eq(i.pool, 90);
	ck_assert_uint_eq(i.clients, 1);
	ck_assert_int_eq(mb_return(&c, 10), MB_OK);
	mb_close(&c);
	broker_stop();
}
END_TEST

struct count_rows {
	unsigned rows, mine;
	pid_t pid;
};

static int count_row(void *arg, const struct mb_status_client *row)
{
	struct count_rows *cr = arg;
	cr->rows++;
	if (row->pid == cr->pid && strcmp(row->comm, "cbtest") == 0)
		cr->mine++;
	return 0;
}

START_TEST(two_handles_two_clients)
{
	broker_start("100p", NULL);
	mb_client a, b;
	open_as(&a, MB_CLIENT_SINK, NULL, 0);
	open_as(&b, MB_CLIENT_SINK, NULL, 0);
	ck_assert_uint_ne(id_of(&a), id_of(&b));
	uint64_t g;
	ck_assert_int_eq(mb_request(&a, 30, 0, &g), MB_OK);
	ck_assert_int_eq(mb_request(&b, 20, 0, &g), MB_OK);
	struct mb_status_head h;
	struct count_rows cr = { .pid = getpid() };
	ck_assert_int_eq(mb_status(&a, &h, count_row, &cr), MB_OK);
	ck_assert_uint_eq(h.clients, 2);
	ck_assert_uint_eq(cr.rows, 2);
	ck_assert_uint_eq(cr.mine, 2);
	ck_assert_int_eq(h.pool, 50);
	/* b cannot return what a holds. */
	ck_assert_int_eq(mb_return(&b, 30), MB_EOVERRETURN);
	mb_close(&a);
	ck_assert_int_eq(pool_of(&b), 80);
	mb_close(&b);
	broker_stop();
}
END_TEST

#define SHARED_THREADS 4
#define SHARED_ROUNDS 300

struct shared_use {
	mb_client *c;
	int bad;
};

static void *shared_main(void *arg)
{
	struct shared_use *u = arg;
	for (int i = 0; i < SHARED_ROUNDS; i++) {
		uint64_t g;
		struct mb_info info;
		if (mb_request(u->c, 2, 0, &g) != MB_OK || g != 2 ||
		    mb_query(u->c, &info) != MB_OK || mb_return(u->c, 2) != MB_OK)
			u->bad++;
	}
	return NULL;
}

START_TEST(threads_share_a_handle)
{
	broker_start("100p", NULL);
	mb_client c;
	open_as(&c, MB_CLIENT_SINK, NULL, 0);
	pthread_t th[SHARED_THREADS];
	struct shared_use u[SHARED_THREADS];
	for (int i = 0; i < SHARED_THREADS; i++) {
		u[i] = (struct shared_use){ .c = &c };
		ck_assert_int_eq(pthread_create(&th[i], NULL, shared_main, &u[i]), 0);
	}
	for (int i = 0; i < SHARED_THREADS; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(u[i].bad, 0);
	}
	struct mb_info info;
	ck_assert_int_eq(mb_query(&c, &info), MB_OK);
	ck_assert_int_eq(info.balance, 0);
	ck_assert_int_eq(info.pool, 100);
	ck_assert_uint_eq(info.clients, 1);
	mb_close(&c);
	broker_stop();
}
END_TEST

struct events {
	unsigned n, last;
	uint64_t total;
};

static void on_event(void *arg, unsigned ev, int64_t pool, uint64_t total,
		     uint64_t value)
{
	struct events *e = arg;
	(void)pool;
	(void)value;
	e->n++;
	e->last = ev;
	e->total = total;
}

/* A sink whose events go to ev, subscribed to total changes. */
static void open_subscribed(mb_client *c, struct events *ev)
{
	struct mb_options o = { .socket_path = B.sock, .kind = MB_CLIENT_SINK,
				.event = on_event, .arg = ev };
	ck_assert_int_eq(mb_open(c, &o), MB_OK);
	ck_assert_int_eq(mb_subscribe(c, MB_EVENT_TOTAL_CHANGED), MB_OK);
}

START_TEST(subscribe_events)
{
	broker_start("100p", NULL);
	mb_client c, src;
	struct events ev = { 0 };
	open_subscribed(&c, &ev);
	ck_assert_int_eq(mb_subscribe(&c, 1u << 30), MB_EINVAL);
	struct giver gv = { 0 };
	open_as(&src, MB_CLIENT_SOURCE, &gv, 20);
	while (ev.n == 0)
		ck_assert_int_ge(mb_dispatch(&c, 5000), 1);
	ck_assert_uint_eq(ev.last, MB_EVENT_TOTAL_CHANGED);
	ck_assert_uint_eq(ev.total, 120);
	mb_close(&src);
	mb_close(&c);
	broker_stop();
}
END_TEST

/*
 * A call on a handle that another thread's mb_dispatch(-1) holds keeps its
 * own deadline (it once waited for the handle's lock without one, for as
 * long as the dispatch found nothing to read: here for ever).
 */
struct dispatcher {
	mb_client *c;
	int rc;
	volatile int in;
	pthread_t th;
};

static void *dispatcher_main(void *arg)
{
	struct dispatcher *d = arg;
	d->in = 1;
	d->rc = mb_dispatch(d->c, -1);
	return NULL;
}

START_TEST(call_waits_for_the_handle_by_its_deadline)
{
	broker_start("100p", NULL);
	mb_client c, src;
	struct events ev = { 0 };
	open_subscribed(&c, &ev);
	struct dispatcher d = { .c = &c };
	ck_assert_int_eq(pthread_create(&d.th, NULL, dispatcher_main, &d), 0);
	while (!d.in)
		usleep(1000);
	/* Until the dispatch holds the handle a request goes through; then
	 * it must come back by its deadline, the connection kept. */
	int rc = MB_OK;
	for (int i = 0; i < 2000 && rc == MB_OK; i++) {
		uint64_t g = 0;
		rc = mb_request(&c, 1, 50, &g);
		if (rc == MB_OK) {
			ck_assert_uint_eq(g, 1);
			ck_assert_int_eq(mb_return(&c, 1), MB_OK);
			usleep(1000);
		}
	}
	ck_assert_int_eq(rc, MB_ETIMEDOUT);
	ck_assert_int_eq(mb_query(&c, &(struct mb_info){ 0 }), MB_ETIMEDOUT);
	/* A source joining changes the total: the dispatch gets its event. */
	struct giver gv = { 0 };
	open_as(&src, MB_CLIENT_SOURCE, &gv, 20);
	pthread_join(d.th, NULL);
	ck_assert_int_ge(d.rc, 1);
	ck_assert_uint_eq(ev.last, MB_EVENT_TOTAL_CHANGED);
	uint64_t g = 0;
	ck_assert_int_eq(mb_request(&c, 5, 0, &g), MB_OK);
	ck_assert_uint_eq(g, 5);
	ck_assert_int_eq(mb_return(&c, 5), MB_OK);
	mb_close(&src);
	mb_close(&c);
	broker_stop();
}
END_TEST

#if COUNT_HEAP
START_TEST(no_heap_allocation)
{
	broker_start("100p", NULL);
	/* The counter works. */
	heap_armed = 1;
	void *volatile probe = malloc(16);
	free(probe);
	heap_armed = 0;
	ck_assert_uint_eq(heap_calls, 2);
	heap_calls = 0;

	static mb_client bidi, sink;
	static struct giver gv = { .give = 1000 };
	struct mb_info i;
	struct mb_status_head h;
	uint64_t g;
	heap_armed = 1;
	struct mb_options ob = { .socket_path = B.sock, .kind = MB_CLIENT_BIDI,
				 .share = give_back, .repay = on_repay, .arg = &gv };
	struct mb_options os = { .socket_path = B.sock, .kind = MB_CLIENT_SINK };
	int ok = mb_open(&bidi, &ob) == MB_OK && mb_open(&sink, &os) == MB_OK &&
		 mb_request(&bidi, 100, 0, &g) == MB_OK &&
		 mb_reserve(&sink, 1, 0, &g) == MB_EDENIED; /* bidi not dispatching */
	heap_armed = 0;
	ck_assert_msg(ok, "setup calls failed");
	ck_assert_uint_eq(heap_calls, 0);

	/* A request that the bidi handle serves through dispatch. */
	struct asker a = { .c = &sink, .pages = 10 };
	asker_start(&a);
	heap_armed = 1;
	int n = 0;
	while (gv.calls < 2) {
		n = mb_dispatch(&bidi, 1000);
		if (n < 0 && n != MB_EAGAIN)
			break;
		n = 0;
	}
	ok = mb_query(&bidi, &i) == MB_OK && mb_return(&bidi, 5) == MB_OK &&
	     mb_status(&bidi, &h, NULL, NULL) == MB_OK &&
	     mb_cancel(&bidi) == MB_EAGAIN && mb_fd(&bidi) >= 0 &&
	     mb_strerror(MB_EPROTO) != NULL;
	heap_armed = 0;
	pthread_join(a.th, NULL);
	ck_assert_msg(ok && n >= 0, "calls failed");
	ck_assert_int_eq(a.rc, MB_OK);
	ck_assert_uint_eq(heap_calls, 0);

	/* Losing the server and reconnecting. */
	broker_kill(SIGKILL);
	heap_armed = 1;
	int lost = mb_query(&sink, &i);
	heap_armed = 0;
	broker_spawn(&B, "100p", NULL);
	heap_armed = 1;
	int back = mb_request(&sink, 3, 0, &g);
	int c1 = mb_close(&sink), c2 = mb_close(&bidi);
	heap_armed = 0;
	ck_assert_int_eq(lost, MB_ECONNLOST);
	ck_assert_int_eq(back, MB_OK);
	ck_assert_int_eq(c1, MB_OK);
	ck_assert_int_eq(c2, MB_OK);
	ck_assert_uint_eq(heap_calls, 0);
	broker_stop();
}
END_TEST
#endif

static Suite *suite(void)
{
	Suite *s = suite_create("libmbclient+mbserver");
	TCase *t = tcase_create("broker");
	tcase_set_timeout(t, 30);
	tcase_add_test(t, open_query_close);
	tcase_add_test(t, request_reserve_return);
	tcase_add_test(t, giveback_in_blocking_call);
	tcase_add_test(t, giveback_through_dispatch);
	tcase_add_test(t, source_lends_and_is_repaid);
	tcase_add_test(t, cancel_from_another_thread);
	tcase_add_test(t, timeouts);
	tcase_add_test(t, server_lost_then_reconnect);
	tcase_add_test(t, stopped_broker_deadlines);
	tcase_add_test(t, no_autoconnect_leaves_connecting_to_reconnect);
	tcase_add_test(t, handshake_is_not_a_connection);
	tcase_add_test(t, restart_then_claim);
	tcase_add_test(t, kept_for_a_killed_client);
	tcase_add_test(t, fork_child_and_parent);
	tcase_add_test(t, two_handles_two_clients);
	tcase_add_test(t, subscribe_events);
	tcase_add_test(t, threads_share_a_handle);
	tcase_add_test(t, call_waits_for_the_handle_by_its_deadline);
#if COUNT_HEAP
	tcase_add_test(t, no_heap_allocation);
#else
	fputs("no_heap_allocation left out: built with AddressSanitizer\n", stderr);
#endif
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	SRunner *r = srunner_create(suite());
	srunner_set_fork_status(r, CK_FORK);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
