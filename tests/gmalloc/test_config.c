/*
 * test_config.c - gmalloc's config table: defaults, file and environment
 * precedence, bad lines named by file:line or variable, signals, key
 * relations, and every key documented in the man page.
 */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gm_internal.h"
#include "mb_addr.h"
#include "mb_log.h"

static char logbuf[8192];
static size_t loglen;
static int loglines;

static void sink(int level, const char *line, size_t len)
{
	(void)level;
	if (loglen + len < sizeof(logbuf)) {
		memcpy(logbuf + loglen, line, len);
		loglen += len;
		logbuf[loglen] = '\0';
	}
	loglines++;
}

static void setup(void)
{
	loglen = 0;
	loglines = 0;
	logbuf[0] = '\0';
	mb_log_init("gmalloc", -1, MB_LOG_DEBUG);
	mb_log_set_sink(sink);
}

static void teardown(void)
{
	mb_log_set_sink(NULL);
}

/* A config file in a private temp dir; returns its path in buf. */
static void write_conf(char *buf, size_t cap, const char *text)
{
	snprintf(buf, cap, "%s/gmconfXXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	int fd = mkstemp(buf);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

START_TEST(defaults_parse)
{
	struct gm_config cfg;
	ck_assert_int_eq(mb_conf_defaults(gm_conf_table, &cfg), 0);
	char *env[] = { "GMALLOC_CONF=/dev/null", NULL };
	ck_assert_int_eq(gm_config_read(&cfg, env), 0);
	ck_assert_uint_eq(cfg.limit, 0);
	ck_assert_uint_eq(cfg.reserve, 0);
	ck_assert_uint_eq(cfg.free_low, 256 << 10);
	ck_assert_uint_eq(cfg.free_high, 1 << 20);
	ck_assert_int_eq(cfg.on_limit, GM_ON_LIMIT_NULL);
	ck_assert_int_eq(cfg.broker, 0);
	/* Well under a second: a silent broker must not freeze malloc. */
	ck_assert_uint_eq(cfg.broker_timeout, 250);
	ck_assert_int_eq(cfg.bad_free, ANR_BAD_FREE_ABORT);
	ck_assert_str_eq(cfg.report_signal, "0");
	ck_assert_int_eq(cfg.log_level, MB_LOG_WARNING);
	ck_assert_int_eq(loglines, 0);
}
END_TEST

START_TEST(file_then_env)
{
	char path[256], var[300];
	struct gm_config cfg;
	write_conf(path, sizeof(path),
		   "# comment\n"
		   "limit = 64M\n"
		   "on_limit = abort   # trailing comment\n"
		   "broker = on\n"
		   "quota_step = 2M\n"
		   "bad_free = report\n"
		   "report_signal = USR2\n");
	snprintf(var, sizeof(var), "GMALLOC_CONF=%s", path);
	char *env[] = { var, "GMALLOC_LIMIT=128M", "GMALLOC_BAD_FREE=ignore", NULL };
	ck_assert_int_eq(gm_config_read(&cfg, env), 0);
	ck_assert_uint_eq(cfg.limit, 128 << 20);     /* environment wins */
	ck_assert_int_eq(cfg.on_limit, GM_ON_LIMIT_ABORT);
	ck_assert_int_eq(cfg.broker, 1);
	ck_assert_uint_eq(cfg.quota_step, 2 << 20);
	ck_assert_int_eq(cfg.bad_free, ANR_BAD_FREE_IGNORE);
	ck_assert_int_eq(gm_signal_parse(cfg.report_signal), SIGUSR2);
	ck_assert_int_eq(loglines, 0);
	unlink(path);
}
END_TEST

START_TEST(bad_file_line_named)
{
	char path[256], var[300], want[300];
	struct gm_config cfg;
	write_conf(path, sizeof(path),
		   "limit = 16M\n"
		   "limit = lots\n"
		   "no_such_key = 1\n"
		   "free_high 3M\n"
		   "urgency = sometimes\n");
	snprintf(var, sizeof(var), "GMALLOC_CONF=%s", path);
	char *env[] = { var, NULL };
	ck_assert_int_eq(gm_config_read(&cfg, env), 4);
	ck_assert_int_eq(loglines, 4);
	ck_assert_uint_eq(cfg.limit, 16 << 20);      /* bad value keeps the last good */
	ck_assert_uint_eq(cfg.free_high, 1 << 20);   /* default */
	ck_assert_int_eq(cfg.urgency, GM_URGENCY_REQUEST);
	snprintf(want, sizeof(want), "%s:2: limit", path);
	ck_assert_msg(strstr(logbuf, want), "missing '%s' in: %s", want, logbuf);
	snprintf(want, sizeof(want), "%s:3: unknown key 'no_such_key'", path);
	ck_assert_msg(strstr(logbuf, want), "missing '%s' in: %s", want, logbuf);
	snprintf(want, sizeof(want), "%s:4:", path);
	ck_assert_msg(strstr(logbuf, want), "missing '%s' in: %s", want, logbuf);
	snprintf(want, sizeof(want), "%s:5: urgency", path);
	ck_assert_msg(strstr(logbuf, want), "missing '%s' in: %s", want, logbuf);
	unlink(path);
}
END_TEST

START_TEST(bad_env_named)
{
	struct gm_config cfg;
	char *env[] = { "GMALLOC_CONF=/dev/null", "GMALLOC_LIMIT=12X",
			"GMALLOC_LIMTI=5M", "GMALLOC_REPORT_SIGNAL=KILL",
			"GMALLOC_TRASH=on", NULL };
	ck_assert_int_eq(gm_config_read(&cfg, env), 3);
	ck_assert_uint_eq(cfg.limit, 0);
	ck_assert_int_eq(cfg.trash, 1);
	ck_assert_str_eq(cfg.report_signal, "0");
	ck_assert_msg(strstr(logbuf, "GMALLOC_LIMIT: limit"), "%s", logbuf);
	ck_assert_msg(strstr(logbuf, "GMALLOC_LIMTI: unknown key"), "%s", logbuf);
	ck_assert_msg(strstr(logbuf, "GMALLOC_REPORT_SIGNAL: report_signal"), "%s", logbuf);
}
END_TEST

START_TEST(missing_file_reported)
{
	struct gm_config cfg;
	char *env[] = { "GMALLOC_CONF=/nonexistent/gmalloc.conf", NULL };
	ck_assert_int_eq(gm_config_read(&cfg, env), 1);
	ck_assert_int_eq(loglines, 1);
	ck_assert_msg(strstr(logbuf, "GMALLOC_CONF=/nonexistent/gmalloc.conf"), "%s", logbuf);
	ck_assert_uint_eq(cfg.reserve, 0);
}
END_TEST

START_TEST(relations_fixed)
{
	struct gm_config cfg;
	char *env[] = { "GMALLOC_CONF=/dev/null", "GMALLOC_FREE_LOW=8M",
			"GMALLOC_FREE_HIGH=2M", "GMALLOC_QUOTA_STEP=8M",
			"GMALLOC_QUOTA_RELEASE=1M", "GMALLOC_LIMIT=64G",
			"GMALLOC_RESERVE=1G", NULL };
	ck_assert_int_eq(gm_config_read(&cfg, env), 2);
	ck_assert_uint_eq(cfg.free_low, cfg.free_high);
	ck_assert_uint_eq(cfg.quota_release, cfg.quota_step);
	ck_assert_uint_eq(cfg.reserve, cfg.limit);
}
END_TEST

/* Broker deadlines: 0 would leave a need for quota no time at all (every
 * allocation that needed quota failed unasked), and past 24 hours
 * libmbclient refuses the call (gmalloc then gave the broker up for
 * good); both are brought back in range, with a warning each. */
START_TEST(broker_deadlines_in_range)
{
	struct gm_config cfg;
	char *env[] = { "GMALLOC_CONF=/dev/null", "GMALLOC_BROKER_TIMEOUT=0",
			"GMALLOC_RESERVE_TIMEOUT=100000000ms", NULL };
	ck_assert_int_eq(gm_config_read(&cfg, env), 2);
	ck_assert_uint_eq(cfg.broker_timeout, 250);
	ck_assert_uint_eq(cfg.reserve_timeout, GM_TIMEOUT_MAX_MS);
	char *env2[] = { "GMALLOC_CONF=/dev/null", "GMALLOC_BROKER_TIMEOUT=90000000ms", NULL };
	ck_assert_int_eq(gm_config_read(&cfg, env2), 1);
	ck_assert_uint_eq(cfg.broker_timeout, GM_TIMEOUT_MAX_MS);
}
END_TEST

/* The reservation rule under RLIMIT_AS (mb_addr.h), as gmalloc(3) states
 * it. */
START_TEST(reserve_rule)
{
	const uint64_t M = 1 << 20, G = (uint64_t)1 << 30;

	/* No limit: what was asked. */
	ck_assert_uint_eq(mb_addr_fit(32 * G, 0, 5 * M), 32 * G);
	/* Plenty of room: an eighth is left. */
	ck_assert_uint_eq(mb_addr_fit(32 * G, 3 * G + 8 * M, 8 * M), 3 * G - 3 * G / 8);
	/* Less: 64 MiB are left. */
	ck_assert_uint_eq(mb_addr_fit(32 * G, 260 * M, 4 * M), 192 * M);
	/* Little: half the room. */
	ck_assert_uint_eq(mb_addr_fit(32 * G, 104 * M, 4 * M), 50 * M);
	/* Asked for less than fits: unchanged. */
	ck_assert_uint_eq(mb_addr_fit(16 * M, 104 * M, 4 * M), 16 * M);
	/* Mapped past the limit: nothing. */
	ck_assert_uint_eq(mb_addr_fit(32 * G, 4 * M, 8 * M), 0);
}
END_TEST

START_TEST(signals)
{
	ck_assert_int_eq(gm_signal_parse("0"), 0);
	ck_assert_int_eq(gm_signal_parse("USR1"), SIGUSR1);
	ck_assert_int_eq(gm_signal_parse("SIGUSR2"), SIGUSR2);
	ck_assert_int_eq(gm_signal_parse("10"), 10);
	ck_assert_int_eq(gm_signal_parse("KILL"), -1);
	ck_assert_int_eq(gm_signal_parse("9"), -1);
	ck_assert_int_eq(gm_signal_parse("SEGV"), -1);
	ck_assert_int_eq(gm_signal_parse("99999"), -1);
	ck_assert_int_eq(gm_signal_parse(""), -1);
}
END_TEST

/* Every key of the table appears in the man page as a tagged item. */
START_TEST(man_page_lists_every_key)
{
	char path[1024];
	static char text[65536];
	const char *src = getenv("top_srcdir");
	snprintf(path, sizeof(path), "%s/man/gmalloc.3", src ? src : ".");
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	for (const struct mb_conf_key *k = gm_conf_table; k->name; k++) {
		char want[128];
		snprintf(want, sizeof(want), ".TP\n.B %s\n", k->name);
		ck_assert_msg(strstr(text, want), "key %s is not documented in %s",
			      k->name, path);
	}
	static const char *const funcs[] = { "malloc", "free", "calloc", "realloc",
		"reallocarray", "posix_memalign", "aligned_alloc", "memalign",
		"valloc", "pvalloc", "malloc_usable_size", "malloc_trim",
		"mallinfo", "mallinfo2", "mallopt", "malloc_stats", "malloc_info",
		"cfree", "__libc_malloc", "__libc_free", NULL };
	for (int i = 0; funcs[i]; i++) {
		char want[128];
		snprintf(want, sizeof(want), ".BR %s ", funcs[i]);
		ck_assert_msg(strstr(text, want), "function %s is not documented", funcs[i]);
	}
}
END_TEST

/* The shipped example names every key too. */
START_TEST(example_conf_lists_every_key)
{
	char path[1024];
	static char text[16384];
	const char *src = getenv("top_srcdir");
	snprintf(path, sizeof(path), "%s/conf/gmalloc.conf", src ? src : ".");
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	for (const struct mb_conf_key *k = gm_conf_table; k->name; k++) {
		char want[128];
		snprintf(want, sizeof(want), "#%s = ", k->name);
		ck_assert_msg(strstr(text, want), "key %s missing from %s", k->name, path);
	}
	/* Uncommented, the example parses without a single complaint. */
	struct gm_config cfg;
	char *plain = text;
	for (char *p = plain; (p = strstr(p, "\n#")) != NULL; p++)
		if (p[2] >= 'a' && p[2] <= 'z')
			p[1] = ' ';
	mb_conf_defaults(gm_conf_table, &cfg);
	ck_assert_int_eq(mb_conf_parse_text(gm_conf_table, &cfg, "example", plain,
					    strlen(plain)), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gmalloc-config");
	TCase *tc = tcase_create("config");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, defaults_parse);
	tcase_add_test(tc, file_then_env);
	tcase_add_test(tc, bad_file_line_named);
	tcase_add_test(tc, bad_env_named);
	tcase_add_test(tc, missing_file_reported);
	tcase_add_test(tc, relations_fixed);
	tcase_add_test(tc, broker_deadlines_in_range);
	tcase_add_test(tc, signals);
	tcase_add_test(tc, reserve_rule);
	tcase_add_test(tc, man_page_lists_every_key);
	tcase_add_test(tc, example_conf_lists_every_key);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
