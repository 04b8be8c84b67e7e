/*
 * Unit tests of the shared internal library: amounts, config table and
 * file parsing, the log formatter, the wire codec, and locks taken by a
 * deadline.
 */
#include "mb_clock.h"
#include "mb_conf.h"
#include "mb_log.h"
#include "mb_size.h"
#include "mb_thread.h"
#include "mb_wire.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MiB (UINT64_C(1) << 20)

START_TEST(size_units)
{
	uint64_t v;
	ck_assert_int_eq(mb_parse_size("4096", 0, &v), 0);
	ck_assert_uint_eq(v, 4096);
	ck_assert_int_eq(mb_parse_size("512M", 0, &v), 0);
	ck_assert_uint_eq(v, 512 * MiB);
	ck_assert_int_eq(mb_parse_size("512 MiB", 0, &v), 0);
	ck_assert_uint_eq(v, 512 * MiB);
	ck_assert_int_eq(mb_parse_size("2g", 0, &v), 0);
	ck_assert_uint_eq(v, 2048 * MiB);
	ck_assert_int_eq(mb_parse_size("1KB", 0, &v), 0);
	ck_assert_uint_eq(v, 1024);
	ck_assert_int_eq(mb_parse_size("3p", 0, &v), 0);
	ck_assert_uint_eq(v, 3 * (uint64_t)sysconf(_SC_PAGESIZE));
}
END_TEST

START_TEST(size_relative)
{
	uint64_t v;
	ck_assert_int_eq(mb_parse_size("80%", 1000 * MiB, &v), 0);
	ck_assert_uint_eq(v, 800 * MiB);
	ck_assert_int_eq(mb_parse_size("12.5%", 800, &v), 0);
	ck_assert_uint_eq(v, 100);
	ck_assert_int_eq(mb_parse_size("all-except 64M", 1024 * MiB, &v), 0);
	ck_assert_uint_eq(v, 960 * MiB);
	/* No base, too much, more than 100 percent. */
	ck_assert_int_eq(mb_parse_size("80%", 0, &v), -EINVAL);
	ck_assert_int_eq(mb_parse_size("all-except 2G", 1024 * MiB, &v), -ERANGE);
	ck_assert_int_eq(mb_parse_size("101%", 1024, &v), -ERANGE);
	/* Only these forms need the base (the config parser reads MemTotal
	 * for them alone). */
	ck_assert(mb_size_relative("80%"));
	ck_assert(mb_size_relative(" all-except 64M"));
	ck_assert(!mb_size_relative("512M"));
	ck_assert(!mb_size_relative("3p"));
	ck_assert(!mb_size_relative(NULL));
}
END_TEST

START_TEST(size_bad)
{
	uint64_t v = 7;
	const char *bad[] = { "", "-1", "M", "12Q", "12M junk", "1.5G", "all-except",
			      "all-exceptX 4M", "%", "abc" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(mb_parse_size(bad[i], 1024, &v) == -EINVAL,
			      "'%s' accepted", bad[i]);
	ck_assert_int_eq(mb_parse_size("99999999999999999999", 0, &v), -ERANGE);
	ck_assert_int_eq(mb_parse_size("17179869184G", 0, &v), -ERANGE);
	ck_assert_uint_eq(v, 7); /* failures leave the output alone */
}
END_TEST

START_TEST(numbers_and_durations)
{
	uint64_t v;
	int b;
	unsigned m;
	ck_assert_int_eq(mb_parse_u64("0x10", &v), 0);
	ck_assert_uint_eq(v, 16);
	ck_assert_int_eq(mb_parse_u64("18446744073709551615", &v), 0);
	ck_assert_uint_eq(v, UINT64_MAX);
	ck_assert_int_eq(mb_parse_u64("18446744073709551616", &v), -ERANGE);
	ck_assert_int_eq(mb_parse_u64("-3", &v), -EINVAL);
	ck_assert_int_eq(mb_parse_duration_ms("250ms", &v), 0);
	ck_assert_uint_eq(v, 250);
	ck_assert_int_eq(mb_parse_duration_ms("2s", &v), 0);
	ck_assert_uint_eq(v, 2000);
	ck_assert_int_eq(mb_parse_duration_ms("3 fortnights", &v), -EINVAL);
	ck_assert_int_eq(mb_parse_bool("on", &b), 0);
	ck_assert_int_eq(b, 1);
	ck_assert_int_eq(mb_parse_bool("nope", &b), -EINVAL);
	ck_assert_int_eq(mb_parse_mode("0660", &m), 0);
	ck_assert_uint_eq(m, 0660);
	ck_assert_int_eq(mb_parse_mode("0668", &m), -EINVAL);
}
END_TEST

START_TEST(meminfo_fixture)
{
	char path[] = "/tmp/mbtest-meminfo.XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	const char text[] = "MemTotal:        2048 kB\nMemFree:  1024 kB\nMemAvailable: 1536 kB\n";
	ck_assert_int_eq(write(fd, text, sizeof(text) - 1), (int)sizeof(text) - 1);
	close(fd);
	ck_assert_uint_eq(mb_meminfo_total(path), 2048 * 1024);
	ck_assert_uint_eq(mb_meminfo_field(path, "MemAvailable"), 1536 * 1024);
	ck_assert_uint_eq(mb_meminfo_field(path, "Missing"), 0);
	unlink(path);
	ck_assert_uint_gt(mb_meminfo_total(NULL), 0);
}
END_TEST

START_TEST(format_subset)
{
	char buf[128];
	mb_format(buf, sizeof(buf), "%s|%5d|%-4u|%04x|%ld|%zu|%c|%%|%.3s|%lo",
		  "ab", -42, 7u, 0xbeu, -9000000000L, (size_t)12, 'z', "abcdef", 8UL);
	ck_assert_str_eq(buf, "ab|  -42|7   |00be|-9000000000|12|z|%|abc|10");
	mb_format(buf, sizeof(buf), "%05d %p", -3, (void *)0x10);
	ck_assert_str_eq(buf, "-0003 0x10");
	/* Truncation always terminates. */
	size_t n = mb_format(buf, 5, "%s", "abcdefgh");
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(buf, "abcd");
	char sz[32];
	mb_format_size(sz, sizeof(sz), 512 * MiB);
	ck_assert_str_eq(sz, "512.0 MiB");
}
END_TEST

static char captured[4096];
static size_t captured_len;
static void capture(int level, const char *line, size_t len)
{
	(void)level;
	if (captured_len + len < sizeof(captured)) {
		memcpy(captured + captured_len, line, len);
		captured_len += len;
		captured[captured_len] = '\0';
	}
}

START_TEST(log_levels)
{
	captured_len = 0;
	captured[0] = '\0';
	mb_log_init("prog", 2, MB_LOG_INFO);
	mb_log_set_sink(capture);
	mb_log(MB_LOG_DEBUG, "hidden %d", 1);
	mb_log(MB_LOG_WARNING, "shown %d", 2);
	mb_log_set_sink(NULL);
	ck_assert_str_eq(captured, "prog: warning: shown 2\n");
	ck_assert_int_eq(mb_log_level_parse("debug"), MB_LOG_DEBUG);
	ck_assert_int_eq(mb_log_level_parse("loud"), -1);
}
END_TEST

struct demo_cfg {
	uint64_t total;
	uint64_t deadline;
	int verbose;
	char path[16];
	int mode;
	unsigned perm;
	int level;
	uint64_t count;
	uint64_t depth;
};

static const char *const demo_modes[] = { "null", "abort", NULL };

static const struct mb_conf_key demo_keys[] = {
	{ "total", MB_CONF_SIZE, offsetof(struct demo_cfg, total), 0, "64M", "pool", NULL },
	{ "deadline", MB_CONF_DURATION, offsetof(struct demo_cfg, deadline), 0, "1s", "wait", NULL },
	{ "verbose", MB_CONF_BOOL, offsetof(struct demo_cfg, verbose), 0, "no", "talk", NULL },
	{ "path", MB_CONF_STRING, offsetof(struct demo_cfg, path), 16, "/run/x", "where", NULL },
	{ "on_limit", MB_CONF_ENUM, offsetof(struct demo_cfg, mode), 0, "null", "what", demo_modes },
	{ "mode", MB_CONF_MODE, offsetof(struct demo_cfg, perm), 0, "0660", "perm", NULL },
	{ "log_level", MB_CONF_LOGLEVEL, offsetof(struct demo_cfg, level), 0, "notice", "lvl", NULL },
	{ "count", MB_CONF_U64, offsetof(struct demo_cfg, count), 0, "3", "n", NULL },
	{ "depth", MB_CONF_U64, offsetof(struct demo_cfg, depth), 64, "0", "at most 64", NULL },
	MB_CONF_END
};

START_TEST(conf_defaults_and_text)
{
	struct demo_cfg c;
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(mb_conf_defaults(demo_keys, &c), 0);
	ck_assert_uint_eq(c.total, 64 * MiB);
	ck_assert_uint_eq(c.deadline, 1000);
	ck_assert_str_eq(c.path, "/run/x");
	ck_assert_uint_eq(c.perm, 0660);

	captured_len = 0;
	captured[0] = '\0';
	mb_log_init("t", 2, MB_LOG_INFO);
	mb_log_set_sink(capture);
	const char text[] =
		"# comment\n"
		"\n"
		"total = 128M   # trailing comment\n"
		"verbose=yes\n"
		"path = \"/a # b\"\n"
		"bogus = 1\n"                 /* line 6: unknown key */
		"count = -4\n"                /* line 7: bad value */
		"no equals sign\n"            /* line 8 */
		"path = 0123456789abcdefXYZ\n" /* line 9: too long for the buffer */
		"on_limit = abort\n"
		"depth = 65\n"                /* line 11: above its key's largest */
		"depth = 64\n"
		"deadline = 2147484s\n"        /* line 13: past 2^31 ms */
		"deadline = 250ms";           /* no final newline */
	int bad = mb_conf_parse_text(demo_keys, &c, "demo.conf", text, sizeof(text) - 1);
	mb_log_set_sink(NULL);
	ck_assert_int_eq(bad, 6);
	ck_assert_uint_eq(c.depth, 64);
	ck_assert_uint_eq(c.total, 128 * MiB);
	ck_assert_int_eq(c.verbose, 1);
	ck_assert_str_eq(c.path, "/a # b");
	ck_assert_uint_eq(c.count, 3); /* the bad value kept the old one */
	ck_assert_int_eq(c.mode, 1);
	ck_assert_uint_eq(c.deadline, 250);
	ck_assert_ptr_nonnull(strstr(captured, "demo.conf:6: unknown key 'bogus'"));
	ck_assert_ptr_nonnull(strstr(captured, "demo.conf:7: count: invalid number '-4'"));
	ck_assert_ptr_nonnull(strstr(captured, "demo.conf:8: expected 'key = value'"));
	ck_assert_ptr_nonnull(strstr(captured, "demo.conf:9: path: value longer"));
	ck_assert_ptr_nonnull(strstr(captured, "demo.conf:11: depth: 65 is above the largest value, 64"));
	ck_assert_ptr_nonnull(strstr(captured, "demo.conf:13: deadline: 2147484s is longer than"));
}
END_TEST

START_TEST(conf_file_and_env)
{
	struct demo_cfg c;
	mb_conf_defaults(demo_keys, &c);
	ck_assert_int_eq(mb_conf_load(demo_keys, &c, "/nonexistent/x.conf"), -ENOENT);

	char path[] = "/tmp/mbtest-conf.XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	/* A line longer than the reader's buffer is one error, not several. */
	char big[3000];
	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(write(fd, "count = 9\n", 10), 10);
	ck_assert_int_eq(write(fd, big, sizeof(big)), (int)sizeof(big));
	ck_assert_int_eq(write(fd, "\nverbose = on\n", 14), 14);
	close(fd);
	mb_log_init("t", -1, MB_LOG_INFO);
	ck_assert_int_eq(mb_conf_load(demo_keys, &c, path), 1);
	ck_assert_uint_eq(c.count, 9);
	ck_assert_int_eq(c.verbose, 1);
	unlink(path);

	char *envp[] = { "DEMO_TOTAL=1G", "DEMO_CONF=/x", "DEMO_COUNT=many",
			 "OTHER_COUNT=5", NULL };
	static const char *const not_keys[] = { "DEMO_CONF", NULL };
	ck_assert_int_eq(mb_conf_env(demo_keys, &c, "DEMO_", envp, not_keys), 1);
	ck_assert_uint_eq(c.total, 1024 * MiB);
	ck_assert_uint_eq(c.count, 9);
	/* A variable under the prefix that names no key is reported. */
	captured_len = 0;
	captured[0] = '\0';
	mb_log_init("t", 2, MB_LOG_INFO);
	mb_log_set_sink(capture);
	char *typo[] = { "DEMO_TOTL=2G", "DEMO_CONF=/x", NULL };
	int bad = mb_conf_env(demo_keys, &c, "DEMO_", typo, not_keys);
	mb_log_set_sink(NULL);
	ck_assert_int_eq(bad, 1);
	ck_assert_uint_eq(c.total, 1024 * MiB);
	ck_assert_ptr_nonnull(strstr(captured, "environment DEMO_TOTL: unknown key"));
	ck_assert_ptr_null(strstr(captured, "DEMO_CONF"));
	mb_log_init("t", 2, MB_LOG_NOTICE);
}
END_TEST

START_TEST(wire_roundtrip)
{
	struct mb_msg m, d;
	unsigned char buf[MB_WIRE_MAX_FRAME];
	for (unsigned t = 0; t < MB_MSG_TYPE_MAX; t++) {
		if (mb_wire_payload_words(t) < 0)
			continue;
		mb_msg_init(&m, t, 0xdeadbeef);
		for (unsigned i = 0; i < m.nwords; i++)
			m.w[i] = UINT64_C(0x0102030405060708) * (i + 1);
		int n = mb_wire_encode(&m, buf, sizeof(buf));
		ck_assert_int_eq(n, MB_WIRE_HDR_SIZE + 8 * (int)m.nwords);
		/* Every prefix asks for more; the whole frame decodes. */
		for (int k = 0; k < n; k++)
			ck_assert_int_eq(mb_wire_decode(buf, (size_t)k, &d), 0);
		ck_assert_int_eq(mb_wire_decode(buf, (size_t)n, &d), n);
		ck_assert_uint_eq(d.type, t);
		ck_assert_uint_eq(d.seq, 0xdeadbeef);
		ck_assert_mem_eq(d.w, m.w, 8 * m.nwords);
		ck_assert_str_ne(mb_wire_type_name(t), "?");
	}
}
END_TEST

START_TEST(wire_malformed)
{
	struct mb_msg m, d;
	unsigned char buf[MB_WIRE_MAX_FRAME];
	mb_msg_init(&m, MB_MSG_REQUEST, 1);
	int n = mb_wire_encode(&m, buf, sizeof(buf));

	unsigned char bad[MB_WIRE_MAX_FRAME];
	memcpy(bad, buf, (size_t)n);
	bad[0] ^= 1; /* magic: refused after 4 bytes */
	ck_assert_int_eq(mb_wire_decode(bad, 4, &d), -MB_ST_PROTO);
	memcpy(bad, buf, (size_t)n);
	bad[4] = 9; /* version */
	ck_assert_int_eq(mb_wire_decode(bad, 6, &d), -MB_ST_VERSION);
	memcpy(bad, buf, (size_t)n);
	bad[6] = 200; /* type */
	ck_assert_int_eq(mb_wire_decode(bad, 8, &d), -MB_ST_UNKNOWN);
	memcpy(bad, buf, (size_t)n);
	bad[12] = 0xf8; bad[13] = 0xff; bad[14] = 0xff; bad[15] = 0x7f; /* huge len */
	ck_assert_int_eq(mb_wire_decode(bad, MB_WIRE_HDR_SIZE, &d), -MB_ST_PROTO);
	memcpy(bad, buf, (size_t)n);
	bad[12] = 8; /* wrong len for the type */
	ck_assert_int_eq(mb_wire_decode(bad, MB_WIRE_HDR_SIZE, &d), -MB_ST_PROTO);
	/* Unknown type cannot be encoded. */
	mb_msg_init(&m, 200, 1);
	ck_assert_int_eq(mb_wire_encode(&m, buf, sizeof(buf)), -1);
	/* A buffer too small is refused. */
	mb_msg_init(&m, MB_MSG_HELLO, 1);
	ck_assert_int_eq(mb_wire_encode(&m, buf, 20), -1);
}
END_TEST

START_TEST(wire_comm)
{
	uint64_t w[MB_WIRE_COMM_WORDS];
	char out[MB_WIRE_COMM_WORDS * 8 + 1];
	mb_wire_put_comm(w, "a-very-long-command-name");
	mb_wire_get_comm(w, out);
	ck_assert_str_eq(out, "a-very-long-comm");
	mb_wire_put_comm(w, "bad\x01name");
	mb_wire_get_comm(w, out);
	ck_assert_str_eq(out, "bad?name");
	ck_assert(mb_wire_count_ok(MB_WIRE_MAX_PAGES));
	ck_assert(!mb_wire_count_ok(UINT64_MAX));
}
END_TEST

/* Random bytes never crash the decoder and never claim more than given. */
START_TEST(wire_fuzz_smoke)
{
	unsigned char buf[MB_WIRE_MAX_FRAME + 8];
	struct mb_msg d;
	unsigned seed = 12345;
	for (int iter = 0; iter < 200000; iter++) {
		size_t len = (size_t)(rand_r(&seed) % sizeof(buf));
		for (size_t i = 0; i < len; i++)
			buf[i] = (unsigned char)rand_r(&seed);
		if (iter & 1) { /* valid header prefix, random rest */
			buf[0] = 0x4d; buf[1] = 0x42; buf[2] = 0x52; buf[3] = 0x4b;
			buf[4] = 1; buf[5] = 0;
		}
		int rc = mb_wire_decode(buf, len, &d);
		ck_assert_int_le(rc, (int)len);
		if (rc > 0)
			ck_assert_uint_le(d.nwords, MB_WIRE_MAX_WORDS);
	}
}
END_TEST

struct waiter {
	pthread_mutex_t *m;
	int64_t *waited;
	int rc;
};

static void *lock_by_main(void *arg)
{
	struct waiter *w = arg;
	w->rc = mb_mutex_lock_by(w->m, (int64_t)mb_clock_ns() + 20 * 1000000, w->waited);
	if (w->rc == 0)
		pthread_mutex_unlock(w->m);
	return NULL;
}

/*
 * A lock taken by a deadline: a caller that times out leaves the wait
 * figure alone (it belongs to the holder, as libmbclient's handle does:
 * zeroing it before the lock was taken made the holder send the server
 * its whole timeout); one that gets the lock after a wait says so.
 */
START_TEST(lock_by_deadline)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	int64_t held_wait = 12345;
	struct waiter w = { &m, &held_wait, -1 };
	pthread_t t;

	ck_assert_int_eq(mb_mutex_lock_by(&m, -1, &held_wait), 0);
	ck_assert_int_eq(held_wait, 0); /* free: no wait */
	held_wait = 12345;
	ck_assert_int_eq(pthread_create(&t, NULL, lock_by_main, &w), 0);
	pthread_join(t, NULL);
	ck_assert_int_eq(w.rc, ETIMEDOUT);
	ck_assert_int_eq(held_wait, 12345);
	pthread_mutex_unlock(&m);
	/* Free again: taken at once. */
	ck_assert_int_eq(mb_mutex_lock_by(&m, 0, NULL), 0);
	pthread_mutex_unlock(&m);
}
END_TEST

struct signaller {
	pthread_mutex_t *m;
	pthread_cond_t *c;
	int *flag;
};

static void *signal_main(void *arg)
{
	struct signaller *g = arg;

	pthread_mutex_lock(g->m);
	*g->flag = 1;
	pthread_cond_signal(g->c);
	pthread_mutex_unlock(g->m);
	return NULL;
}

/* A wait by a deadline ends at it, not before, unless woken. */
START_TEST(cond_wait_by_deadline)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t c = PTHREAD_COND_INITIALIZER;
	int flag = 0, rc = 0;
	struct signaller g = { &m, &c, &flag };
	uint64_t deadline;
	pthread_t t;

	pthread_mutex_lock(&m);
	deadline = mb_clock_ms() + 20;
	while (rc == 0 && !flag)
		rc = mb_cond_wait_by(&c, &m, deadline);
	ck_assert_int_eq(rc, ETIMEDOUT);
	ck_assert_uint_ge(mb_clock_ms(), deadline);
	/* Woken long before a far deadline. */
	ck_assert_int_eq(pthread_create(&t, NULL, signal_main, &g), 0);
	deadline = mb_clock_ms() + 600000;
	rc = 0;
	while (rc == 0 && !flag)
		rc = mb_cond_wait_by(&c, &m, deadline);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(flag, 1);
	pthread_mutex_unlock(&m);
	pthread_join(t, NULL);
	/* A deadline already past: at once. */
	pthread_mutex_lock(&m);
	ck_assert_int_eq(mb_cond_wait_by(&c, &m, mb_clock_ms() - 1), ETIMEDOUT);
	pthread_mutex_unlock(&m);
}
END_TEST

static Suite *common_suite(void)
{
	Suite *s = suite_create("common");
	TCase *tc = tcase_create("size");
	tcase_add_test(tc, size_units);
	tcase_add_test(tc, size_relative);
	tcase_add_test(tc, size_bad);
	tcase_add_test(tc, numbers_and_durations);
	tcase_add_test(tc, meminfo_fixture);
	suite_add_tcase(s, tc);
	tc = tcase_create("log");
	tcase_add_test(tc, format_subset);
	tcase_add_test(tc, log_levels);
	suite_add_tcase(s, tc);
	tc = tcase_create("conf");
	tcase_add_test(tc, conf_defaults_and_text);
	tcase_add_test(tc, conf_file_and_env);
	suite_add_tcase(s, tc);
	tc = tcase_create("wire");
	tcase_add_test(tc, wire_roundtrip);
	tcase_add_test(tc, wire_malformed);
	tcase_add_test(tc, wire_comm);
	tcase_add_test(tc, wire_fuzz_smoke);
	suite_add_tcase(s, tc);
	tc = tcase_create("thread");
	tcase_add_test(tc, lock_by_deadline);
	tcase_add_test(tc, cond_wait_by_deadline);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(common_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
