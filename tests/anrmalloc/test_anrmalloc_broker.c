/*
 * anr_malloc against a real mbserver (started by anrmalloc_broker.sh,
 * which exports MEMBROKER_SOCKET and ANRM_TOTAL, the broker's total).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include "anrmalloc/anrmalloc.h"
#include "libmbclient/mbclient.h"
#include "mb_log.h"
#include "mb_size.h"
#include "tests/testlib/mbt_threads.h"

#define MIB (1024u * 1024u)
#define OBJECT (1 * MIB)
#define MAX_OBJECTS 64
#define SINK_TIMEOUT_MS 10000
#define POOL_WAIT_STEPS 500
#define POOL_WAIT_US 10000

struct cache {
	anr_heap_t *h;
	void *obj[MAX_OBJECTS];
	int n;
	int give_back_calls;
	size_t evicted;
};

static size_t cache_need(void *arg, anr_heap_t *h, size_t bytes,
			 enum anr_need_reason why, unsigned round)
{
	struct cache *c = arg;
	size_t freed = 0;

	/* An allocation lets the heap ask the broker first. */
	if (why == ANR_NEED_ALLOC && round == 0)
		return 0;
	if (why == ANR_NEED_GIVE_BACK)
		c->give_back_calls++;
	while (c->n > 0 && freed < bytes) {
		void *o = c->obj[--c->n];
		freed += anr_malloc_usable_size(h, o);
		anr_malloc_free(h, o);
	}
	c->evicted += freed;
	return freed;
}

static void open_client(mb_client *c, enum mb_client_kind kind);

/* A previous test's (or process's) quota comes back to the pool when the
 * broker has handled its departure: wait for that before counting. */
static void wait_pool_full(void)
{
	struct mb_info in;
	mb_client obs;

	open_client(&obs, MB_CLIENT_OBSERVER);
	for (int i = 0; i < POOL_WAIT_STEPS; i++) {
		ck_assert_int_eq(mb_query(&obs, &in), 0);
		if (in.pool == (int64_t)in.total)
			break;
		usleep(POOL_WAIT_US);
	}
	ck_assert_int_eq(in.pool, (int64_t)in.total);
	mb_close(&obs);
}

/* A heap with the broker, whose calls have timeout_ms each. */
static anr_heap_t *broker_heap_within(int thread, uint64_t timeout_ms)
{
	struct anr_malloc_config cfg;
	anr_heap_t *h;

	anr_config_init(&cfg);
	cfg.broker_timeout = timeout_ms;
	snprintf(cfg.name, sizeof(cfg.name), "anrm-test");
	cfg.reserve = 256 * MIB;
	cfg.budget = 64 * 1024;
	cfg.free_low = 0;
	cfg.free_high = 0;
	cfg.broker = 1;
	cfg.broker_thread = thread;
	cfg.broker_chunk = 1 * MIB;
	cfg.on_error = ANR_ERROR_REPORT;
	wait_pool_full();
	h = anr_heap_create(&cfg);
	ck_assert_msg(h != NULL, "heap with broker: %s", strerror(errno));
	return h;
}

/* The broker's deadline is 10 s: a loaded machine may answer after the
 * default 250 ms, and the heap would then take the broker for lost; these
 * tests assert quota, not speed (the stopped broker's sets its own). */
static anr_heap_t *broker_heap(int thread)
{
	return broker_heap_within(thread, 10000);
}

static void fill(struct cache *c, int n)
{
	for (int i = 0; i < n; i++) {
		c->obj[c->n] = anr_malloc(c->h, OBJECT);
		ck_assert_msg(c->obj[c->n] != NULL, "object %d", i);
		memset(c->obj[c->n], i, OBJECT);
		c->n++;
	}
}

static uint64_t total_bytes(void)
{
	uint64_t t = 0;
	const char *s = getenv("ANRM_TOTAL");

	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(mb_parse_size(s, 0, &t), 0);
	return t;
}

/* The balance the broker itself shows for this process's bidi client. */
struct find {
	int64_t balance;
	int found;
};

static int find_row(void *arg, const struct mb_status_client *row)
{
	struct find *f = arg;

	if (row->pid == (int64_t)getpid() && row->kind == MB_CLIENT_BIDI) {
		f->balance = row->balance;
		f->found = 1;
	}
	return 0;
}

static int64_t broker_sees(mb_client *obs)
{
	struct mb_status_head head;
	struct find f = { 0, 0 };

	ck_assert_int_eq(mb_status(obs, &head, find_row, &f), 0);
	ck_assert(f.found);
	return f.balance;
}

static void open_client(mb_client *c, enum mb_client_kind kind)
{
	struct mb_options o;
	int rc;

	memset(&o, 0, sizeof(o));
	o.kind = kind;
	o.name = kind == MB_CLIENT_SINK ? "anrm-sink" : "anrm-observer";
	rc = mb_open(c, &o);
	ck_assert_msg(rc == 0, "mb_open: %s", mb_strerror(rc));
}

struct sink {
	uint64_t bytes, granted;
	int rc, done;
};

static void *sink_main(void *arg)
{
	struct sink *s = arg;
	mb_client c;
	uint64_t pages;

	open_client(&c, MB_CLIENT_SINK);
	pages = s->bytes / mb_page_size(&c);
	s->rc = mb_reserve(&c, pages, SINK_TIMEOUT_MS, &s->granted);
	s->granted *= mb_page_size(&c);
	mb_close(&c);
	__atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * A fork child of a heap with quota: the connection, the quota and the
 * helper thread stay the parent's.  The child's heap is not connected,
 * its budget is its own, and destroying it neither waits for the
 * parent's thread nor stops it (their stop pipe is shared).
 */
static void fork_child_destroys_its_copy(anr_heap_t *h)
{
	struct anr_malloc_stats st;
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		alarm(5); /* a child that has not finished by then hangs */
		anr_heap_stats(h, &st);
		if (anr_broker_fd(h) >= 0 || st.broker_balance != 0 || st.budget > 64 * 1024)
			_exit(2);
		anr_heap_destroy(h);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child: status %d (2: its heap still had the parent's broker)", status);
}

/* Fill most of the pool, then a sink asks for more than is left (first
 * forking a child that destroys its copy of the heap, with fork_first). */
static void give_back_scenario(int thread, int fork_first)
{
	struct cache c = { 0 };
	struct anr_malloc_stats st;
	uint64_t total = total_bytes();
	int objects = (int)(total * 3 / 4 / OBJECT);
	struct sink s = { 0 };
	mb_client obs;
	int64_t before, after;
	pthread_t t;

	c.h = broker_heap(thread);
	anr_add_need_callback(c.h, cache_need, &c);
	fill(&c, objects);
	anr_heap_stats(c.h, &st);
	ck_assert_uint_ge(st.broker_requests, 1);
	ck_assert_uint_ge(st.broker_granted_bytes, (uint64_t)objects * OBJECT - 64 * 1024);
	ck_assert_int_eq(c.give_back_calls, 0);
	open_client(&obs, MB_CLIENT_OBSERVER);
	before = broker_sees(&obs);
	ck_assert_int_eq(before, st.broker_balance);
	ck_assert_int_gt(before, 0);
	if (fork_first) {
		fork_child_destroys_its_copy(c.h);
		ck_assert_int_eq(broker_sees(&obs), before);
	}

	/* Half the pool: more than the broker has left. */
	s.bytes = total / 2;
	ck_assert_int_eq(pthread_create(&t, NULL, sink_main, &s), 0);
	if (!thread) {
		/* The application's own loop serves the broker. */
		while (!__atomic_load_n(&s.done, __ATOMIC_ACQUIRE)) {
			struct pollfd p = { anr_broker_fd(c.h), POLLIN, 0 };
			ck_assert_int_ge(p.fd, 0);
			if (poll(&p, 1, 50) > 0)
				ck_assert_int_ge(anr_broker_dispatch(c.h), 0);
		}
	}
	pthread_join(t, NULL);
	ck_assert_msg(s.rc == 0, "sink: %s", mb_strerror(s.rc));
	ck_assert_uint_eq(s.granted, s.bytes);
	ck_assert_int_ge(c.give_back_calls, 1);
	ck_assert_uint_gt(c.evicted, 0);
	ck_assert_int_lt(c.n, objects);
	anr_heap_stats(c.h, &st);
	ck_assert_uint_ge(st.give_back_requests, 1);
	ck_assert_uint_gt(st.given_back_bytes, 0);
	after = broker_sees(&obs);
	ck_assert_int_eq(after, st.broker_balance);
	ck_assert_int_lt(after, before);
	ck_assert_uint_le(st.budget, 64 * 1024 + (uint64_t)after * 4096 + 4096);
	mb_close(&obs);
	while (c.n > 0)
		anr_malloc_free(c.h, c.obj[--c.n]);
	anr_heap_destroy(c.h);
}

START_TEST(give_back_from_helper_thread)
{
	give_back_scenario(1, 0);
}
END_TEST

START_TEST(give_back_from_helper_thread_after_a_fork)
{
	give_back_scenario(1, 1);
}
END_TEST

START_TEST(give_back_from_own_loop)
{
	give_back_scenario(0, 0);
}
END_TEST

static void *heap_with_broker_thread(void)
{
	return broker_heap(1);
}

static void destroy_heap(void *h)
{
	anr_heap_destroy(h);
}

START_TEST(broker_thread_is_named)
{
	anr_heap_t *h = broker_heap(1);

	ck_assert_msg(mbt_thread_named("anrm-broker"), "no thread named anrm-broker");
	anr_heap_destroy(h);
}
END_TEST

/* The broker thread takes no signal (as heap_threads_take_no_signal in
 * test_anrmalloc.c): before, the child died of SIGUSR1. */
START_TEST(broker_thread_takes_no_signal)
{
	int status = mbt_signal_in_child(heap_with_broker_thread, destroy_heap);

	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the signal did not reach the program's wait (status %#x)", status);
}
END_TEST

START_TEST(quota_refused_is_oom)
{
	struct cache c = { 0 };
	uint64_t total = total_bytes();
	void *p;

	c.h = broker_heap(1);
	/* More than the broker manages: the request cannot be met. */
	p = anr_malloc(c.h, (size_t)total + 8 * MIB);
	ck_assert_ptr_null(p);
	ck_assert_int_eq(anr_oom_get(c.h, NULL), 1);
	anr_oom_clear(c.h);
	/* Quota not used goes back. */
	fill(&c, 4);
	while (c.n > 0)
		anr_malloc_free(c.h, c.obj[--c.n]);
	ck_assert_uint_gt(anr_broker_return_unused(c.h), 0);
	anr_heap_destroy(c.h);
}
END_TEST

START_TEST(initial_quota_reserved)
{
	struct anr_malloc_config cfg;
	struct anr_malloc_stats st;
	anr_heap_t *h;

	anr_config_init(&cfg);
	cfg.reserve = 64 * MIB;
	cfg.budget = 64 * 1024;
	cfg.broker = 1;
	cfg.broker_initial = 2 * MIB;
	cfg.broker_timeout = 10000; /* as broker_heap's */
	wait_pool_full();
	h = anr_heap_create(&cfg);
	ck_assert_ptr_nonnull(h);
	anr_heap_stats(h, &st);
	ck_assert_int_eq(st.broker_balance, 2 * MIB / 4096);
	ck_assert_uint_eq(st.budget, 64 * 1024 + 2 * MIB);
	anr_heap_destroy(h);

	/* Budget 0 with a broker: only what the broker grants. */
	cfg.budget = 0;
	wait_pool_full();
	h = anr_heap_create(&cfg);
	ck_assert_ptr_nonnull(h);
	anr_heap_stats(h, &st);
	ck_assert_uint_eq(st.budget, 4096 + 2 * MIB);
	anr_heap_destroy(h);
}
END_TEST

#define OWN (64 * 1024u) /* broker_heap's own budget */

/* The budget is the heap's own plus the broker's pages, always. */
static void assert_budget_parts(anr_heap_t *h, size_t own)
{
	struct anr_malloc_stats st;

	anr_heap_stats(h, &st);
	ck_assert_msg(st.budget == own + (uint64_t)st.broker_balance * 4096,
		      "budget %zu, own %zu + %lld broker pages", st.budget, own,
		      (long long)st.broker_balance);
}

/*
 * anr_give_back while connected: the broker's pages go first, back to
 * the broker.  It lowered the budget but kept the pages, so the broker
 * still counted them held, anr_broker_return_unused found nothing to
 * return, and when the broker asked, the heap gave its own budget away:
 * a sink was refused while the heap kept one page of budget.
 */
START_TEST(give_back_returns_broker_pages_first)
{
	struct cache c = { 0 };
	struct anr_malloc_stats st;
	struct sink s = { 0 };
	mb_client obs;
	int64_t before;
	pthread_t t;

	c.h = broker_heap(1);
	fill(&c, 4);
	while (c.n > 0)
		anr_malloc_free(c.h, c.obj[--c.n]);
	open_client(&obs, MB_CLIENT_OBSERVER);
	anr_heap_stats(c.h, &st);
	before = broker_sees(&obs);
	ck_assert_int_eq(before, st.broker_balance);
	ck_assert_int_ge(before, 4 * MIB / 4096);
	assert_budget_parts(c.h, OWN);

	ck_assert_uint_eq(anr_give_back(c.h, 3 * MIB), 3 * MIB);
	anr_heap_stats(c.h, &st);
	ck_assert_int_eq(st.broker_balance, before - 3 * MIB / 4096);
	ck_assert_int_eq(broker_sees(&obs), st.broker_balance);
	assert_budget_parts(c.h, OWN);

	/* The rest is unused: it goes back too, the own budget stays. */
	ck_assert_uint_eq(anr_broker_return_unused(c.h),
			  (uint64_t)st.broker_balance * 4096);
	anr_heap_stats(c.h, &st);
	ck_assert_int_eq(st.broker_balance, 0);
	ck_assert_int_eq(broker_sees(&obs), 0);
	assert_budget_parts(c.h, OWN);

	/* Held quota again, then a sink takes the whole pool: the heap gives
	 * every broker page and keeps its own budget. */
	fill(&c, 2);
	while (c.n > 0)
		anr_malloc_free(c.h, c.obj[--c.n]);
	ck_assert_uint_eq(anr_give_back(c.h, 4096), 4096);
	s.bytes = total_bytes();
	ck_assert_int_eq(pthread_create(&t, NULL, sink_main, &s), 0);
	pthread_join(t, NULL);
	ck_assert_msg(s.rc == 0, "sink: %s", mb_strerror(s.rc));
	ck_assert_uint_eq(s.granted, s.bytes);
	anr_heap_stats(c.h, &st);
	ck_assert_int_eq(st.broker_balance, 0);
	ck_assert_uint_eq(st.budget, OWN);
	mb_close(&obs);
	anr_heap_destroy(c.h);
}
END_TEST

struct nested {
	struct cache c;
	int calls, dispatched;
	size_t returned, given;
};

/* A give-back callback that calls the heap's broker functions. */
static size_t nested_need(void *arg, anr_heap_t *h, size_t bytes,
			  enum anr_need_reason why, unsigned round)
{
	struct nested *n = arg;

	if (why != ANR_NEED_GIVE_BACK)
		return 0;
	n->calls++;
	n->returned += anr_broker_return_unused(h);
	n->given += anr_give_back(h, bytes);
	n->dispatched = anr_broker_dispatch(h);
	return cache_need(&n->c, h, bytes, why, round);
}

/*
 * The broker's functions from a give-back callback the broker caused: the
 * thread serving the broker holds the connection.  anr_broker_return_unused
 * waited for it a whole broker_timeout (60 s here: past the test's
 * timeout) and returned nothing; now they return at once, and the answer
 * to the broker gives the pages back.
 */
START_TEST(broker_calls_inside_a_give_back)
{
	struct nested n = { { 0 }, 0, 0, 0, 0 };
	struct anr_malloc_stats st;
	struct sink s = { 0 };
	uint64_t total = total_bytes();
	pthread_t t;

	n.c.h = broker_heap_within(1, 60000);
	anr_add_need_callback(n.c.h, nested_need, &n);
	fill(&n.c, (int)(total * 3 / 4 / OBJECT));
	s.bytes = total / 2;
	ck_assert_int_eq(pthread_create(&t, NULL, sink_main, &s), 0);
	pthread_join(t, NULL);
	ck_assert_msg(s.rc == 0, "sink: %s", mb_strerror(s.rc));
	ck_assert_int_ge(n.calls, 1);
	ck_assert_uint_eq(n.returned, 0);
	ck_assert_uint_eq(n.given, 0);
	ck_assert_int_eq(n.dispatched, MB_EBUSY);
	anr_heap_stats(n.c.h, &st);
	ck_assert_uint_gt(st.given_back_bytes, 0);
	assert_budget_parts(n.c.h, OWN);
	anr_remove_need_callback(n.c.h, nested_need, &n);
	while (n.c.n > 0)
		anr_malloc_free(n.c.h, n.c.obj[--n.c.n]);
	anr_heap_destroy(n.c.h);
}
END_TEST

/*
 * A fork child connects for itself and claims what it has resident
 * beyond its own budget: the budget counts the claim at once.  It did
 * only at the next sync, so the child's first allocations past its own
 * budget asked the broker for pages it held already.
 */
START_TEST(connect_counts_the_claim)
{
	struct cache c = { 0 };
	int status;
	pid_t pid;

	c.h = broker_heap(0);
	fill(&c, 4);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct anr_malloc_stats st;

		alarm(10);
		if (anr_broker_connect(c.h, NULL) != 0)
			_exit(2);
		anr_heap_stats(c.h, &st);
		if (st.broker_balance < (int64_t)((4 * MIB - OWN) / 4096))
			_exit(3);
		if (st.budget != OWN + (uint64_t)st.broker_balance * 4096)
			_exit(4);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child: status %#x (3: nothing claimed, 4: the claim not in the budget)",
		      status);
	while (c.n > 0)
		anr_malloc_free(c.h, c.obj[--c.n]);
	anr_heap_destroy(c.h);
}
END_TEST

/* A second client that holds the rest of the pool and gives it back
 * slowly when the broker asks: a request from the heap waits for it. */
struct holder {
	mb_client c;
	pthread_t t;
	int stop;
};

static uint64_t slow_share(void *arg, enum mb_client_urgency u, uint64_t pages)
{
	(void)arg;
	(void)u;
	usleep(300000);
	return pages;
}

static void *holder_main(void *arg)
{
	struct holder *z = arg;

	while (!__atomic_load_n(&z->stop, __ATOMIC_ACQUIRE))
		(void)mb_dispatch(&z->c, 100);
	return NULL;
}

static void holder_start(struct holder *z)
{
	struct mb_options o;
	struct mb_info in;
	uint64_t got = 0;

	memset(&o, 0, sizeof(o));
	o.kind = MB_CLIENT_BIDI;
	o.name = "anrm-holder";
	o.share = slow_share;
	o.arg = z;
	ck_assert_int_eq(mb_open(&z->c, &o), 0);
	ck_assert_int_eq(mb_query(&z->c, &in), 0);
	ck_assert_int_eq(mb_reserve(&z->c, (uint64_t)in.pool, SINK_TIMEOUT_MS, &got), 0);
	ck_assert_int_eq(pthread_create(&z->t, NULL, holder_main, z), 0);
}

static void holder_stop(struct holder *z)
{
	__atomic_store_n(&z->stop, 1, __ATOMIC_RELEASE);
	pthread_join(z->t, NULL);
	mb_close(&z->c);
}

static anr_heap_t *grant_heap;

static void *give_back_main(void *arg)
{
	(void)arg;
	usleep(100000); /* while the allocation's request waits */
	return (void *)(uintptr_t)anr_give_back(grant_heap, 8192);
}

/*
 * A grant that arrives while another thread's anr_give_back has pages on
 * their way back to the broker counts in the budget.  It did not (the
 * sync waited for the RETURN), so the allocation's retry was still short:
 * it asked again for every round and took four times the quota, or, with
 * one round, failed with its grant in hand.
 */
START_TEST(grant_counts_while_a_return_waits)
{
	struct cache c = { 0 };
	struct anr_malloc_stats st0, st;
	struct holder z = { .stop = 0 };
	pthread_t t;
	void *p, *given;

	c.h = grant_heap = broker_heap(1);
	fill(&c, 4);
	holder_start(&z);
	anr_heap_stats(c.h, &st0);
	ck_assert_int_eq(pthread_create(&t, NULL, give_back_main, NULL), 0);
	/* within one broker_chunk: one request covers it */
	p = anr_malloc(c.h, 512 * 1024);
	pthread_join(t, &given);
	ck_assert_ptr_nonnull(p);
	anr_heap_stats(c.h, &st);
	ck_assert_uint_eq(st.broker_requests - st0.broker_requests, 1);
	ck_assert_uint_le(st.broker_granted_bytes - st0.broker_granted_bytes, 1 * MIB);
	assert_budget_parts(c.h, OWN);
	anr_malloc_free(c.h, p);
	holder_stop(&z);
	while (c.n > 0)
		anr_malloc_free(c.h, c.obj[--c.n]);
	anr_heap_destroy(c.h);
}
END_TEST

/* Ordinary requests and returns from one thread while the helper thread
 * serves the broker: the helper finds the handle busy now and then, which
 * is no error.  It warned "broker: timed out" each time (hundreds of lines
 * in a few thousand calls) and spun while the holder's call lasted. */
START_TEST(helper_thread_waits_its_turn_quietly)
{
	char path[] = "/tmp/anrm-log.XXXXXX";
	struct cache c = { 0 };
	char buf[4096];
	int fd, saved, warnings = 0, carry = 0;
	ssize_t n;

	c.h = broker_heap(1);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	saved = dup(2);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_eq(dup2(fd, 2), 2);
	for (int i = 0; i < 1000; i++) {
		void *p = anr_malloc(c.h, 2 * MIB);

		if (p == NULL)
			break;
		anr_malloc_free(c.h, p);
		(void)anr_broker_return_unused(c.h);
	}
	ck_assert_int_eq(dup2(saved, 2), 2);
	close(saved);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	/* Count the warnings; a line may straddle two reads. */
	while ((n = read(fd, buf + carry, sizeof(buf) - 1 - (size_t)carry)) > 0) {
		char *line = buf, *nl;

		buf[carry + n] = 0;
		while ((nl = strchr(line, '\n')) != NULL) {
			*nl = 0;
			if (strstr(line, "broker: timed out"))
				warnings++;
			line = nl + 1;
		}
		carry = (int)strlen(line);
		memmove(buf, line, (size_t)carry);
	}
	close(fd);
	ck_assert_int_eq(warnings, 0);
	anr_heap_destroy(c.h);
}
END_TEST

static anr_heap_t *gc_heap;
static void *gc_roots[MAX_OBJECTS];
static int gc_nroots, gc_marks;
static void *gc_got;

/* A mark callback that allocates (a root table that grows while marking). */
static void growing_roots(void *arg, anr_heap_t *h)
{
	(void)arg;
	gc_marks++;
	for (int i = 0; i < gc_nroots; i++)
		anr_gc_mark(h, gc_roots[i]);
	gc_got = anr_malloc(h, 512 * 1024);
	if (gc_got != NULL)
		anr_malloc_free(h, gc_got);
}

/*
 * gc_on_give_back: the collection runs in the thread answering the
 * broker, and a mark callback there allocates past the budget.  The
 * allocation asked the broker on the handle its own thread holds and
 * waited out the whole deadline (here 60 s, past the sink's); now it fails
 * at once without asking, and the broker is answered.
 */
START_TEST(allocation_while_answering_the_broker)
{
	struct anr_malloc_config cfg;
	struct anr_malloc_stats st0, st;
	struct sink s = { 0 };
	uint64_t total = total_bytes();
	struct mb_info in;
	mb_client obs;
	pthread_t t;

	anr_config_init(&cfg);
	snprintf(cfg.name, sizeof(cfg.name), "anrm-test");
	cfg.broker_timeout = 60000;
	cfg.reserve = 256 * MIB;
	cfg.budget = OWN;
	cfg.free_low = 0;
	cfg.free_high = 0;
	cfg.broker = 1;
	cfg.broker_thread = 1;
	cfg.broker_chunk = 1 * MIB;
	cfg.gc_on_give_back = 1;
	wait_pool_full();
	gc_heap = anr_heap_create(&cfg);
	ck_assert_ptr_nonnull(gc_heap);
	gc_nroots = (int)(total * 3 / 4 / OBJECT);
	for (int i = 0; i < gc_nroots; i++) {
		gc_roots[i] = anr_malloc(gc_heap, OBJECT);
		ck_assert_ptr_nonnull(gc_roots[i]);
		memset(gc_roots[i], 1, OBJECT);
	}
	/* one more block, unmarked: the collection frees it for the broker */
	ck_assert_ptr_nonnull(anr_malloc(gc_heap, OBJECT));
	ck_assert_int_eq(anr_add_mark_callback(gc_heap, growing_roots, NULL), 0);
	anr_heap_stats(gc_heap, &st0);
	/* more than the pool has left, less than the collection frees */
	open_client(&obs, MB_CLIENT_OBSERVER);
	ck_assert_int_eq(mb_query(&obs, &in), 0);
	mb_close(&obs);
	s.bytes = (uint64_t)in.pool * in.page_size + 512 * 1024;
	ck_assert_int_eq(pthread_create(&t, NULL, sink_main, &s), 0);
	pthread_join(t, NULL);
	ck_assert_int_ge(gc_marks, 1);
	ck_assert_ptr_null(gc_got);
	anr_heap_stats(gc_heap, &st);
	ck_assert_uint_eq(st.broker_requests, st0.broker_requests);
	ck_assert_uint_gt(st.gc_freed_blocks, 0);
	ck_assert_msg(s.rc == 0, "sink: %s", mb_strerror(s.rc));
	assert_budget_parts(gc_heap, OWN);
	anr_remove_mark_callback(gc_heap, growing_roots, NULL);
	for (int i = 0; i < gc_nroots; i++)
		anr_malloc_free(gc_heap, gc_roots[i]);
	anr_heap_destroy(gc_heap);
}
END_TEST

/* A stopped broker costs an allocation broker_timeout, never a hang, and
 * only the first: the later ones find the connection down. */
START_TEST(stopped_broker_costs_a_deadline)
{
	struct cache c = { 0 };
	struct anr_malloc_stats st;
	struct timespec t0, t1;
	const char *pid = getenv("ANRM_BROKER_PID");
	uint64_t asked;
	pid_t bp;
	void *p;

	ck_assert_ptr_nonnull(pid);
	bp = (pid_t)atol(pid);
	c.h = broker_heap_within(0, 250);
	fill(&c, 2);
	ck_assert_int_eq(kill(bp, SIGSTOP), 0);
	/* Past the budget: the broker is asked, says nothing, the heap is
	 * left with what it has.  (The test's own timeout catches a hang.) */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	p = anr_malloc(c.h, 8 * MIB);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_ptr_null(p);
	anr_heap_stats(c.h, &st);
	asked = st.broker_requests;
	/* The connection is down: later allocations do not ask (nor wait to
	 * reconnect); they asked again, and waited, every time. */
	ck_assert_int_eq(anr_broker_fd(c.h), -1);
	for (int i = 0; i < 5; i++) {
		ck_assert_ptr_null(anr_malloc(c.h, 8 * MIB));
		anr_oom_clear(c.h);
	}
	anr_heap_stats(c.h, &st);
	ck_assert_int_eq(kill(bp, SIGCONT), 0);
	ck_assert_uint_eq(st.broker_requests, asked);
	printf("stopped broker: the first allocation past the budget waited %.0f ms "
	       "(broker_timeout 250 ms)\n",
	       (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	/* The broker runs again: the heap reconnects and is served. */
	for (int i = 0; i < 500 && anr_broker_dispatch(c.h) == MB_ENOTCONN; i++)
		usleep(10000);
	ck_assert_int_ge(anr_broker_fd(c.h), 0);
	p = anr_malloc(c.h, 2 * MIB);
	ck_assert_ptr_nonnull(p);
	anr_malloc_free(c.h, p);
	while (c.n > 0)
		anr_malloc_free(c.h, c.obj[--c.n]);
	anr_heap_destroy(c.h);
}
END_TEST

/* Last: it kills the broker (ANRM_BROKER_PID). */
START_TEST(lost_broker_takes_budget_back)
{
	struct cache c = { 0 };
	struct anr_malloc_stats st;
	const char *pid = getenv("ANRM_BROKER_PID");
	int i;

	ck_assert_ptr_nonnull(pid);
	c.h = broker_heap(1);
	fill(&c, 4);
	anr_heap_stats(c.h, &st);
	ck_assert_uint_ge(st.budget, 4 * MIB);
	ck_assert_int_eq(kill((pid_t)atol(pid), SIGKILL), 0);
	/* The helper thread notices the lost connection. */
	for (i = 0; i < 500; i++) {
		anr_heap_stats(c.h, &st);
		if (st.budget < 1 * MIB)
			break;
		usleep(10000);
	}
	ck_assert_uint_lt(st.budget, 1 * MIB);
	ck_assert_int_eq(st.broker_balance, 0);
	/* Nothing more can come from a broker that is gone. */
	ck_assert_ptr_null(anr_malloc(c.h, 2 * MIB));
	ck_assert_int_eq(anr_oom_get(c.h, NULL), 1);
	while (c.n > 0)
		anr_malloc_free(c.h, c.obj[--c.n]);
	anr_heap_destroy(c.h);
}
END_TEST

int main(void)
{
	SRunner *sr;
	Suite *s;
	TCase *tc;
	int failed;

	s = suite_create("anrmalloc-broker");
	tc = tcase_create("broker");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, give_back_from_helper_thread);
	tcase_add_test(tc, give_back_from_own_loop);
	tcase_add_test(tc, give_back_from_helper_thread_after_a_fork);
	tcase_add_test(tc, broker_thread_takes_no_signal);
	tcase_add_test(tc, broker_thread_is_named);
	tcase_add_test(tc, quota_refused_is_oom);
	tcase_add_test(tc, initial_quota_reserved);
	tcase_add_test(tc, give_back_returns_broker_pages_first);
	tcase_add_test(tc, broker_calls_inside_a_give_back);
	tcase_add_test(tc, connect_counts_the_claim);
	tcase_add_test(tc, grant_counts_while_a_return_waits);
	tcase_add_test(tc, helper_thread_waits_its_turn_quietly);
	tcase_add_test(tc, allocation_while_answering_the_broker);
	tcase_add_test(tc, stopped_broker_costs_a_deadline);
	tcase_add_test(tc, lost_broker_takes_budget_back);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
