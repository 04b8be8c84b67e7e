/*
 * gm_config.c - gmalloc's config table and how it is read.
 *
 * Order: built-in defaults, then one file (GMALLOC_CONF if set, else
 * SYSCONFDIR/gmalloc.conf), then GMALLOC_<KEY> variables, so the
 * environment wins.  A bad line or variable is reported in one line that
 * names it and the key keeps the value it had.  In a setuid or setgid
 * program (AT_SECURE) the caller's environment is not trusted: GMALLOC_CONF
 * and GMALLOC_<KEY> are ignored and only the system file is read.  This
 * runs inside the first
 * malloc call: no heap, no stdio, no getenv (the environment pointer is
 * passed in because libc may not have published it yet).
 */
#include "config.h"

#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/auxv.h>

#include "gm_internal.h"
#include "mb_log.h"
#include "mb_size.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

#define GM_CONF_DEFAULT_PATH SYSCONFDIR "/gmalloc.conf"
#define GM_ENV_PREFIX "GMALLOC_"
#define GM_ENV_CONF "GMALLOC_CONF"
#define GM_MIN_QUOTA_STEP 4096

/* GMALLOC_ variables that are not keys of the table. */
static const char *const gm_env_not_keys[] = { GM_ENV_CONF, NULL };

static const char *const on_limit_choices[] = { "null", "abort", NULL };
static const char *const urgency_choices[] = { "request", "request-then-reserve", NULL };
static const char *const bad_free_choices[] = { "abort", "report", "ignore", NULL };
static const char *const prt_choices[] = { "off", "on", "auto", NULL };

#define OFF(f) offsetof(struct gm_config, f)

const struct mb_conf_key gm_conf_table[] = {
	{ "limit", MB_CONF_SIZE, OFF(limit), 0, "0",
	  "fixed maximum of memory in blocks handed out (touched or not) and free pages kept (bytes, K/M/G, or % of RAM); 0: no limit", NULL },
	{ "reserve", MB_CONF_SIZE, OFF(reserve), 0, "0",
	  "address space reserved once for the heap (never committed up front); "
	  "0: 8 times RAM, 1G to 32G; cut to fit RLIMIT_AS", NULL },
	{ "free_low", MB_CONF_SIZE, OFF(free_low), 0, "256K",
	  "free resident memory kept when pages are given back", NULL },
	{ "free_high", MB_CONF_SIZE, OFF(free_high), 0, "1M",
	  "free pages go back to the kernel when free resident memory passes this "
	  "(while the heap shrinks, both marks count a quarter)", NULL },
	{ "page_return_thread", MB_CONF_ENUM, OFF(page_return_thread), 0, "auto",
	  "a thread of gmalloc's gives free pages back, so that no malloc or free calls madvise for it: "
	  "never, from the first allocation, or from the program's first pthread_create", prt_choices },
	{ "idle_return", MB_CONF_DURATION, OFF(idle_return), 0, "1s",
	  "with the page-return thread: once no page has been handed out or given back for this long, "
	  "every free page goes back, those under free_low too; 0: never", NULL },
	{ "on_limit", MB_CONF_ENUM, OFF(on_limit), 0, "null",
	  "at the limit: return NULL with ENOMEM, or print a report and abort", on_limit_choices },
	{ "broker", MB_CONF_BOOL, OFF(broker), 0, "off",
	  "ask the membroker daemon for quota when the budget runs out", NULL },
	{ "broker_socket", MB_CONF_STRING, OFF(broker_socket), GM_SOCKET_MAX, "",
	  "broker socket; empty: $MEMBROKER_SOCKET or the default path", NULL },
	{ "broker_timeout", MB_CONF_DURATION, OFF(broker_timeout), 0, "250ms",
	  "deadline of every broker call; past it the fixed limit applies until the broker answers again", NULL },
	{ "quota_step", MB_CONF_SIZE, OFF(quota_step), 0, "1M",
	  "quota is requested from the broker in multiples of this", NULL },
	{ "quota_release", MB_CONF_SIZE, OFF(quota_release), 0, "4M",
	  "quota held above resident use by more than this goes back to the broker", NULL },
	{ "urgency", MB_CONF_ENUM, OFF(urgency), 0, "request",
	  "how quota is asked for: REQUEST only, or REQUEST then RESERVE for the rest", urgency_choices },
	{ "reserve_timeout", MB_CONF_DURATION, OFF(reserve_timeout), 0, "10s",
	  "how long a RESERVE may wait for the broker; 0: for ever", NULL },
	{ "bad_free", MB_CONF_ENUM, OFF(bad_free), 0, "abort",
	  "free of a pointer that is not a live block: report and abort, report only, or ignore", bad_free_choices },
	{ "trash", MB_CONF_BOOL, OFF(trash), 0, "off",
	  "fill freed memory with a pattern", NULL },
	{ "guard", MB_CONF_BOOL, OFF(guard), 0, "off",
	  "guard words after each block, checked when it is freed or resized", NULL },
	{ "backtrace_depth", MB_CONF_U64, OFF(backtrace_depth), 0, "0",
	  "call-stack frames kept with each block and listed by call site in the report (0: off, at most 16)", NULL },
	{ "report_at_exit", MB_CONF_BOOL, OFF(report_at_exit), 0, "off",
	  "write the heap report to stderr when the program exits", NULL },
	{ "report_signal", MB_CONF_STRING, OFF(report_signal), GM_SIGNAL_MAX, "0",
	  "signal (number or name, e.g. USR2) that writes the report to stderr; 0: none", NULL },
	{ "log_level", MB_CONF_LOGLEVEL, OFF(log_level), 0, "warning",
	  "messages up to this level go to stderr (err, warning, notice, info, debug)", NULL },
	MB_CONF_END
};

struct gm_signame {
	const char *name;
	int sig;
};

/* Signals a report may be bound to: not the ones the kernel uses to stop
 * or kill, and not those that mean a fault. */
static const struct gm_signame gm_signames[] = {
	{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT },
	{ "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "PIPE", SIGPIPE },
	{ "ALRM", SIGALRM }, { "TERM", SIGTERM }, { "CHLD", SIGCHLD },
	{ "CONT", SIGCONT }, { "TSTP", SIGTSTP }, { "TTIN", SIGTTIN },
	{ "TTOU", SIGTTOU }, { "URG", SIGURG }, { "XCPU", SIGXCPU },
	{ "XFSZ", SIGXFSZ }, { "VTALRM", SIGVTALRM }, { "PROF", SIGPROF },
	{ "WINCH", SIGWINCH }, { "IO", SIGIO }, { "PWR", SIGPWR },
	{ NULL, 0 }
};

static int gm_signal_allowed(int sig)
{
	for (const struct gm_signame *s = gm_signames; s->name; s++)
		if (s->sig == sig)
			return 1;
	return sig >= SIGRTMIN && sig <= SIGRTMAX;
}

int gm_signal_parse(const char *s)
{
	uint64_t n;
	if (mb_parse_u64(s, &n) == 0) {
		if (n == 0)
			return 0;
		if (n > (uint64_t)SIGRTMAX || !gm_signal_allowed((int)n))
			return -1;
		return (int)n;
	}
	if (strncmp(s, "SIG", 3) == 0)
		s += 3;
	for (const struct gm_signame *p = gm_signames; p->name; p++)
		if (strcmp(p->name, s) == 0)
			return p->sig;
	return -1;
}

static const char *env_get(char *const *envp, const char *name)
{
	size_t n = strlen(name);
	if (!envp)
		return NULL;
	for (char *const *e = envp; *e; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

/* A report_signal value is only text in the table; check it after each
 * source so the message names where the bad value came from. */
static int check_signal(struct gm_config *cfg, const char *origin)
{
	if (gm_signal_parse(cfg->report_signal) >= 0)
		return 0;
	mb_log(MB_LOG_WARNING, "%s: report_signal: not a usable signal '%s', using 0",
	       origin, cfg->report_signal);
	memcpy(cfg->report_signal, "0", 2);
	return 1;
}

/* Relations between keys that no single value can break. */
static int check_relations(struct gm_config *cfg)
{
	int bad = 0;
	if (cfg->free_low > cfg->free_high) {
		mb_log(MB_LOG_WARNING, "free_low is above free_high: using free_low = free_high");
		cfg->free_low = cfg->free_high;
		bad++;
	}
	if (cfg->quota_step < GM_MIN_QUOTA_STEP) {
		mb_log(MB_LOG_WARNING, "quota_step below %d bytes: using %d",
		       GM_MIN_QUOTA_STEP, GM_MIN_QUOTA_STEP);
		cfg->quota_step = GM_MIN_QUOTA_STEP;
		bad++;
	}
	if (cfg->quota_release < cfg->quota_step) {
		mb_log(MB_LOG_WARNING, "quota_release is below quota_step: using quota_release = quota_step");
		cfg->quota_release = cfg->quota_step;
		bad++;
	}
	if (cfg->broker_timeout == 0) {
		mb_log(MB_LOG_WARNING, "broker_timeout 0: using 250ms (every broker call needs a deadline)");
		cfg->broker_timeout = 250;
		bad++;
	}
	if (cfg->broker_timeout > GM_TIMEOUT_MAX_MS) {
		mb_log(MB_LOG_WARNING, "broker_timeout above 24h: using 24h");
		cfg->broker_timeout = GM_TIMEOUT_MAX_MS;
		bad++;
	}
	if (cfg->reserve_timeout > GM_TIMEOUT_MAX_MS) {
		mb_log(MB_LOG_WARNING, "reserve_timeout above 24h: using 24h");
		cfg->reserve_timeout = GM_TIMEOUT_MAX_MS;
		bad++;
	}
	if (cfg->backtrace_depth > GM_BT_MAX) {
		mb_log(MB_LOG_WARNING, "backtrace_depth above %d: using %d", GM_BT_MAX, GM_BT_MAX);
		cfg->backtrace_depth = GM_BT_MAX;
		bad++;
	}
	if (cfg->reserve != 0 && cfg->limit > cfg->reserve) {
		/* Address space is cheap; the limit is what the user meant. */
		mb_log(MB_LOG_INFO, "reserve raised to the limit");
		cfg->reserve = cfg->limit;
	}
	return bad;
}

int gm_config_read(struct gm_config *cfg, char *const *envp)
{
	int bad = 0;
	memset(cfg, 0, sizeof(*cfg));
	if (mb_conf_defaults(gm_conf_table, cfg) != 0)
		bad++;
	/* A setuid or setgid program: the caller's environment is not ours. */
	int secure = getauxval(AT_SECURE) != 0;
	if (secure)
		envp = NULL;
	const char *path = env_get(envp, GM_ENV_CONF);
	int explicit_path = path && path[0];
	if (!explicit_path)
		path = GM_CONF_DEFAULT_PATH;
	int rc = mb_conf_load(gm_conf_table, cfg, path);
	if (rc < 0 && explicit_path) {
		mb_log(MB_LOG_WARNING, "%s=%s: cannot read the file, using defaults",
		       GM_ENV_CONF, path);
		bad++;
	} else if (rc > 0) {
		bad += rc;
	}
	if (rc >= 0)
		bad += check_signal(cfg, path);
	/* Unknown GMALLOC_ variables are reported too: a typo in a limit
	 * must not pass silently. */
	bad += mb_conf_env(gm_conf_table, cfg, GM_ENV_PREFIX, envp, gm_env_not_keys);
	bad += check_signal(cfg, "environment GMALLOC_REPORT_SIGNAL");
	bad += check_relations(cfg);
	return bad;
}
