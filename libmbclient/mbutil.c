/*
 * mbutil - ask the memory broker for quota, hold it, return it and query it
 * from a shell.  The commands on one command line run in order on one
 * connection, so "mbutil request 64M return 16M query" is meaningful; the
 * broker takes back whatever is still held when mbutil exits.
 */
#include <config.h>

#include "mbclient.h"
#include "mb_size.h"
#include "mb_wire.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Exit statuses. */
#define EX_OK 0
#define EX_ERROR 1    /* broker unreachable, refused, protocol error */
#define EX_USAGE 2
#define EX_SHORT 3    /* granted less than asked, or RESERVE denied */

#define SIZE_TEXT 32
#define NS_PER_MS 1000000LL

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

struct util {
	mb_client c;
	const char *sock;
	enum mb_client_kind kind;
	const char *source_amount;
	int timeout_ms;
	int quiet;
	unsigned flags;
	int opened;
	uint64_t page_size;
	uint64_t total;
	uint64_t source_pages;
	uint64_t shared;  /* pages given back on the broker's request */
	uint64_t repaid;
	uint64_t holding; /* hold: pages held, declared again after a reconnect */
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: mbutil [OPTION]... COMMAND [ARG]... [COMMAND [ARG]...]...\n"
		"Ask the memory broker for quota, hold it, return it and query it.\n"
		"Commands run in order on one connection; what is still held at exit\n"
		"goes back to the broker.\n"
		"\n"
		"Commands:\n"
		"  request AMOUNT          ask for AMOUNT (may be granted in part)\n"
		"  reserve AMOUNT          ask for all of AMOUNT or nothing\n"
		"  return AMOUNT           give back AMOUNT of what is held\n"
		"  hold AMOUNT [DURATION]  request AMOUNT (0: nothing more; RESERVE with\n"
		"                          --reserve), then hold until SIGINT/SIGTERM or for\n"
		"                          DURATION (\"500ms\", \"5s\", \"1m\"), answering the\n"
		"                          broker's give-back queries (bidi, source)\n"
		"  query                   print total, pool, page size and what is held\n"
		"  memstate                print the device, its watermark state and marks\n"
		"  mark NAME VALUE         set a watermark at run time (root or a privileged\n"
		"                          user): NAME notify_high, notify_low, deny_high,\n"
		"                          deny_low or headroom; VALUE \"90%%\", \"512M\" or \"off\"\n"
		"  events DURATION         print the memory events that arrive for DURATION\n"
		"\n"
		"AMOUNT: pages (\"100\" or \"100p\"), bytes with a unit (\"512K\", \"64M\", \"1G\"),\n"
		"or a percentage of the broker's total (\"25%%\").  Bytes round up to pages.\n"
		"\n"
		"Options:\n"
		"  -s, --socket PATH       broker socket (default: $%s or %s)\n"
		"  -t, --timeout MS        deadline of request/reserve in milliseconds\n"
		"  -k, --kind KIND         sink (default), bidi or source\n"
		"      --source AMOUNT     pages a source owns and lends (implies --kind source)\n"
		"  -r, --reserve           hold uses RESERVE instead of REQUEST\n"
		"  -e, --expendable        register as expendable: the broker may signal\n"
		"                          this process as a last resort in deny state\n"
		"  -q, --quiet             print nothing but errors\n"
		"  -h, --help              show this help and exit\n"
		"  -V, --version           show the version and exit\n"
		"\n"
		"Exit status: 0 on success, 1 on an error (broker unreachable, refused),\n"
		"2 on a usage error, 3 when less than asked was granted or a reserve was denied.\n",
		MB_SOCKET_ENV, MB_DEFAULT_SOCKET);
}

static void size_text(char *buf, uint64_t pages, uint64_t page_size)
{
	mb_format_size(buf, SIZE_TEXT, pages * page_size);
}

/* Give back what is held when the broker asks: a bidi mbutil is cooperative. */
static uint64_t give_back(void *arg, enum mb_client_urgency urg, uint64_t pages)
{
	struct util *u = arg;
	/* A bidi client gives what it holds; a source lends its own too. */
	int64_t held = mb_balance(&u->c) + (int64_t)u->source_pages;
	uint64_t have = held > 0 ? (uint64_t)held : 0;
	uint64_t give = pages < have ? pages : have;
	u->shared += give;
	if (!u->quiet)
		printf("share: asked %llu pages (%s), giving %llu\n",
		       (unsigned long long)pages,
		       urg == MB_URGENCY_RESERVE ? "reserve" : "request",
		       (unsigned long long)give);
	fflush(stdout);
	return give;
}

/* After a reconnect (a restarted broker): what the hold still holds. */
static uint64_t claim_held(void *arg)
{
	struct util *u = arg;
	return u->holding;
}

static void on_repay(void *arg, uint64_t pages)
{
	struct util *u = arg;
	u->repaid += pages;
	if (!u->quiet)
		printf("repay: %llu pages came back\n", (unsigned long long)pages);
	fflush(stdout);
}

static int fail(const char *what, int r)
{
	fprintf(stderr, "mbutil: %s: %s\n", what, mb_strerror(r));
	return EX_ERROR;
}

/* Amount in pages: "100", "100p", "64M", "25%". */
static int parse_amount(struct util *u, const char *s, uint64_t *pages)
{
	size_t n = strlen(s);
	if (n == 0)
		return -1;
	if (s[n - 1] == 'p' || s[n - 1] == 'P' || strspn(s, "0123456789") == n) {
		char num[32];
		size_t len = s[n - 1] == 'p' || s[n - 1] == 'P' ? n - 1 : n;
		if (len == 0 || len >= sizeof(num))
			return -1;
		memcpy(num, s, len);
		num[len] = '\0';
		return mb_parse_u64(num, pages) < 0 || !mb_wire_count_ok(*pages) ? -1 : 0;
	}
	uint64_t bytes;
	uint64_t base = u->total * u->page_size;
	if (mb_parse_size(s, base, &bytes) < 0)
		return -1;
	*pages = bytes / u->page_size + (bytes % u->page_size != 0);
	return mb_wire_count_ok(*pages) ? 0 : -1;
}

static void on_event(void *arg, unsigned event, int64_t pool, uint64_t total,
		     uint64_t value);

static int ensure_open(struct util *u)
{
	if (u->opened)
		return 0;
	struct mb_options o = {
		.socket_path = u->sock, .kind = u->kind, .name = "mbutil",
		.share = give_back, .repay = on_repay, .event = on_event, .arg = u,
		.flags = u->flags,
	};
	if (u->kind == MB_CLIENT_SINK)
		o.share = NULL;
	if (u->kind == MB_CLIENT_SINK || u->kind == MB_CLIENT_BIDI)
		o.claim = claim_held;
	if (u->kind == MB_CLIENT_SOURCE) {
		/* A source's amount in bytes needs the page size: ask first. */
		mb_client probe;
		struct mb_options po = { .socket_path = u->sock, .kind = MB_CLIENT_OBSERVER,
					 .name = "mbutil" };
		int r = mb_open(&probe, &po);
		if (r == MB_OK) {
			u->page_size = mb_page_size(&probe);
			struct mb_info info;
			if (mb_query(&probe, &info) == MB_OK)
				u->total = info.total;
		}
		mb_close(&probe);
		if (r != MB_OK)
			return fail("connect", r);
		if (parse_amount(u, u->source_amount, &o.source_pages) < 0) {
			fprintf(stderr, "mbutil: bad amount '%s'\n", u->source_amount);
			return EX_USAGE;
		}
		u->source_pages = o.source_pages;
	}
	int r = mb_open(&u->c, &o);
	if (r != MB_OK) {
		mb_close(&u->c);
		return fail("connect", r);
	}
	u->opened = 1;
	u->page_size = mb_page_size(&u->c);
	struct mb_info info;
	r = mb_query(&u->c, &info);
	if (r != MB_OK)
		return fail("query", r);
	u->total = info.total;
	return 0;
}

static int cmd_ask(struct util *u, const char *verb, const char *arg, int reserve)
{
	uint64_t pages, got = 0;
	if (parse_amount(u, arg, &pages) < 0) {
		fprintf(stderr, "mbutil: bad amount '%s'\n", arg);
		return EX_USAGE;
	}
	int r = reserve ? mb_reserve(&u->c, pages, u->timeout_ms, &got) :
		mb_request(&u->c, pages, u->timeout_ms, &got);
	char a[SIZE_TEXT], b[SIZE_TEXT];
	size_text(a, got, u->page_size);
	size_text(b, pages, u->page_size);
	if (r == MB_EDENIED || (r == MB_OK && got < pages)) {
		if (!u->quiet)
			printf("%s: granted %llu of %llu pages (%s of %s)%s\n", verb,
			       (unsigned long long)got, (unsigned long long)pages, a, b,
			       r == MB_EDENIED ? ": denied" : "");
		return EX_SHORT;
	}
	if (r != MB_OK)
		return fail(verb, r);
	if (!u->quiet)
		printf("%s: granted %llu of %llu pages (%s of %s)\n", verb,
		       (unsigned long long)got, (unsigned long long)pages, a, b);
	return EX_OK;
}

static int cmd_return(struct util *u, const char *arg)
{
	uint64_t pages;
	if (parse_amount(u, arg, &pages) < 0) {
		fprintf(stderr, "mbutil: bad amount '%s'\n", arg);
		return EX_USAGE;
	}
	int r = mb_return(&u->c, pages);
	if (r != MB_OK)
		return fail("return", r);
	if (!u->quiet) {
		char a[SIZE_TEXT];
		size_text(a, pages, u->page_size);
		printf("return: %llu pages (%s), holding %lld\n", (unsigned long long)pages,
		       a, (long long)mb_balance(&u->c));
	}
	return EX_OK;
}

static int cmd_query(struct util *u)
{
	struct mb_info info;
	int r = mb_query(&u->c, &info);
	if (r != MB_OK)
		return fail("query", r);
	if (u->quiet)
		return EX_OK;
	char t[SIZE_TEXT], p[SIZE_TEXT], h[SIZE_TEXT];
	size_text(t, info.total, info.page_size);
	mb_format_size(p, sizeof(p), (uint64_t)(info.pool < 0 ? -info.pool : info.pool) *
		       info.page_size);
	mb_format_size(h, sizeof(h), (uint64_t)(info.balance < 0 ? -info.balance :
						 info.balance) * info.page_size);
	printf("total:     %llu pages (%s)\n", (unsigned long long)info.total, t);
	printf("pool:      %lld pages (%s%s)\n", (long long)info.pool,
	       info.pool < 0 ? "-" : "", p);
	printf("held:      %lld pages (%s%s)\n", (long long)info.balance,
	       info.balance < 0 ? "-" : "", h);
	printf("page size: %llu\n", (unsigned long long)info.page_size);
	printf("clients:   %llu\n", (unsigned long long)info.clients);
	return EX_OK;
}

static const char *const mark_names[MB_MARK_COUNT] = {
	"notify_high", "notify_low", "deny_high", "deny_low", "headroom"
};
static const char *const level_names[] = { "normal", "notify", "deny" };

static void print_memstate(const struct mb_memstate *ms)
{
	char t[SIZE_TEXT], u[SIZE_TEXT];
	mb_format_size(t, sizeof(t), ms->device_total);
	mb_format_size(u, sizeof(u), ms->device_used);
	printf("state:     %s\n", ms->level <= MB_MEM_LEVEL_DENY ? level_names[ms->level] : "?");
	printf("device:    %llu of %llu bytes used (%s of %s)\n",
	       (unsigned long long)ms->device_used, (unsigned long long)ms->device_total, u, t);
	for (int i = 0; i < MB_MARK_COUNT; i++) {
		if (ms->mark[i] == MB_MARK_UNSET)
			printf("%-11s off\n", mark_names[i]);
		else
			printf("%-11s %llu\n", mark_names[i], (unsigned long long)ms->mark[i]);
	}
	printf("lendable:  %llu pages\n", (unsigned long long)ms->lendable);
	printf("lent:      %llu pages\n", (unsigned long long)ms->lent);
	printf("rate:      %lld pages/s\n", (long long)ms->rate);
	if (ms->estimate_ms == UINT64_MAX)
		printf("estimate:  -\n");
	else
		printf("estimate:  %llu ms\n", (unsigned long long)ms->estimate_ms);
}

static int cmd_memstate(struct util *u)
{
	struct mb_memstate ms;
	int r = mb_memstate(&u->c, &ms);
	if (r != MB_OK)
		return fail("memstate", r);
	if (!u->quiet)
		print_memstate(&ms);
	return EX_OK;
}

static int cmd_mark(struct util *u, const char *name, const char *value)
{
	int mark = -1;
	for (int i = 0; i < MB_MARK_COUNT; i++)
		if (strcmp(name, mark_names[i]) == 0)
			mark = i;
	size_t n = strlen(value);
	uint64_t v = 0;
	enum mb_mark_unit unit = MB_MARK_BYTES;
	int bad = mark < 0 || n == 0;
	if (!bad && strcmp(value, "off") == 0)
		unit = MB_MARK_OFF;
	else if (!bad && value[n - 1] == '%')
		bad = mb_parse_hundredths(value, &v) < 0, unit = MB_MARK_PERCENT;
	else if (!bad)
		bad = mb_parse_size(value, 0, &v) < 0;
	if (bad) {
		fprintf(stderr, "mbutil: mark NAME VALUE: bad '%s %s'\n", name, value);
		return EX_USAGE;
	}
	struct mb_memstate ms;
	int r = mb_set_mark(&u->c, (enum mb_mark)mark, unit, v, &ms);
	if (r != MB_OK)
		return fail("mark", r);
	if (!u->quiet)
		print_memstate(&ms);
	return EX_OK;
}

static const char *event_name(unsigned ev)
{
	switch (ev) {
	case MB_EVENT_POOL_LOW: return "pool-low";
	case MB_EVENT_POOL_OK: return "pool-ok";
	case MB_EVENT_TOTAL_CHANGED: return "total-changed";
	case MB_EVENT_MEM_NOTIFY: return "mem-notify";
	case MB_EVENT_MEM_DENY: return "mem-deny";
	case MB_EVENT_MEM_OK: return "mem-ok";
	case MB_EVENT_MEM_EARLY: return "mem-early";
	default: return "?";
	}
}

static void on_event(void *arg, unsigned event, int64_t pool, uint64_t total, uint64_t value)
{
	struct util *u = arg;
	if (!u->quiet)
		printf("event: %s value %llu pool %lld total %llu\n", event_name(event),
		       (unsigned long long)value, (long long)pool, (unsigned long long)total);
	fflush(stdout);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / NS_PER_MS;
}

/* Until a signal or the deadline (-1: none), answer the broker and print
 * what it sends. */
static int wait_loop(struct util *u, int64_t deadline, const char *what)
{
	while (!stop_flag) {
		int ms = -1;
		if (deadline >= 0) {
			int64_t left = deadline - now_ms();
			if (left <= 0)
				break;
			ms = (int)left;
		}
		int fd = mb_fd(&u->c);
		if (fd < 0) {
			/* The broker went away: come back to it when it returns
			 * and declare what is held. */
			int wait = mb_reconnect_ms(&u->c);
			if (ms >= 0 && ms < wait)
				wait = ms;
			struct timespec ts = { wait / 1000, (long)(wait % 1000) * NS_PER_MS };
			if (wait > 0)
				nanosleep(&ts, NULL);
			if (mb_reconnect(&u->c) == MB_OK && !u->quiet) {
				printf("reconnected: holding %lld pages\n",
				       (long long)mb_balance(&u->c));
				fflush(stdout);
			}
			continue;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int n = poll(&p, 1, ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			continue;
		int64_t before = mb_balance(&u->c);
		int r = mb_dispatch(&u->c, 0);
		if (r == MB_ECONNLOST || r == MB_ESHUTDOWN || r == MB_ETIMEDOUT) {
			u->holding = before > 0 ? (uint64_t)before : 0;
			if (!u->quiet)
				fprintf(stderr, "mbutil: hold: %s: reconnecting\n", mb_strerror(r));
			continue;
		}
		if (r < 0 && r != MB_EAGAIN)
			return fail(what, r);
	}
	return EX_OK;
}

static int hold_loop(struct util *u, int64_t deadline)
{
	if (!u->quiet) {
		printf("holding %lld pages%s\n", (long long)mb_balance(&u->c),
		       deadline < 0 ? " until signalled" : "");
		fflush(stdout);
	}
	return wait_loop(u, deadline, "hold");
}

static int is_command(const char *s)
{
	static const char *const cmds[] = { "request", "reserve", "return", "hold",
					    "query", "memstate", "mark", "events", NULL };
	for (int i = 0; cmds[i]; i++)
		if (strcmp(s, cmds[i]) == 0)
			return 1;
	return 0;
}

static int run(struct util *u, int reserve_hold, int argc, char **argv)
{
	int status = EX_OK;
	for (int i = 0; i < argc; i++) {
		const char *cmd = argv[i];
		if (!is_command(cmd)) {
			fprintf(stderr, "mbutil: unknown command '%s'\n", cmd);
			return EX_USAGE;
		}
		int r = ensure_open(u);
		if (r != 0)
			return r;
		if (strcmp(cmd, "query") == 0) {
			r = cmd_query(u);
		} else if (strcmp(cmd, "memstate") == 0) {
			r = cmd_memstate(u);
		} else if (strcmp(cmd, "mark") == 0) {
			if (i + 2 >= argc) {
				fprintf(stderr, "mbutil: mark needs NAME and VALUE\n");
				return EX_USAGE;
			}
			r = cmd_mark(u, argv[i + 1], argv[i + 2]);
			i += 2;
		} else if (strcmp(cmd, "events") == 0) {
			uint64_t dur;
			if (i + 1 >= argc || mb_parse_duration_ms(argv[i + 1], &dur) < 0) {
				fprintf(stderr, "mbutil: events needs a duration\n");
				return EX_USAGE;
			}
			i++;
			r = mb_subscribe(&u->c, MB_EVENT_MEM_NOTIFY | MB_EVENT_MEM_DENY |
					 MB_EVENT_MEM_OK | MB_EVENT_MEM_EARLY);
			if (r != MB_OK)
				return fail("events", r);
			if (!u->quiet)
				printf("listening\n");
			r = wait_loop(u, now_ms() + (int64_t)dur, "events");
		} else if (strcmp(cmd, "hold") == 0) {
			int64_t deadline = -1;
			if (i + 1 >= argc) {
				fprintf(stderr, "mbutil: hold needs an amount (0: what is held)\n");
				return EX_USAGE;
			}
			r = EX_OK;
			const char *amount = argv[++i];
			if (strcmp(amount, "0") != 0)
				r = cmd_ask(u, reserve_hold ? "reserve" : "request", amount,
					    reserve_hold);
			if (r == EX_USAGE || r == EX_ERROR)
				return r;
			if (i + 1 < argc && !is_command(argv[i + 1])) {
				uint64_t dur;
				if (mb_parse_duration_ms(argv[++i], &dur) < 0) {
					fprintf(stderr, "mbutil: bad duration '%s'\n", argv[i]);
					return EX_USAGE;
				}
				deadline = now_ms() + (int64_t)dur;
			}
			int h = hold_loop(u, deadline);
			if (h != EX_OK)
				r = h;
		} else {
			if (i + 1 >= argc) {
				fprintf(stderr, "mbutil: %s needs an amount\n", cmd);
				return EX_USAGE;
			}
			const char *arg = argv[++i];
			if (strcmp(cmd, "return") == 0)
				r = cmd_return(u, arg);
			else
				r = cmd_ask(u, cmd, arg, strcmp(cmd, "reserve") == 0);
		}
		if (r == EX_USAGE || r == EX_ERROR)
			return r;
		if (r != EX_OK)
			status = r;
	}
	return status;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "kind", required_argument, NULL, 'k' },
		{ "source", required_argument, NULL, 'S' },
		{ "reserve", no_argument, NULL, 'r' },
		{ "expendable", no_argument, NULL, 'e' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	static struct util u = { .kind = MB_CLIENT_SINK };
	int reserve_hold = 0, ch;
	/* "+": options end at the first command. */
	while ((ch = getopt_long(argc, argv, "+s:t:k:reqhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			u.sock = optarg;
			break;
		case 't': {
			uint64_t ms;
			if (mb_parse_duration_ms(optarg, &ms) < 0 || ms > INT32_MAX) {
				fprintf(stderr, "mbutil: bad timeout '%s'\n", optarg);
				return EX_USAGE;
			}
			u.timeout_ms = ms == 0 ? 0 : (int)ms;
			break;
		}
		case 'k':
			if (strcmp(optarg, "sink") == 0)
				u.kind = MB_CLIENT_SINK;
			else if (strcmp(optarg, "bidi") == 0)
				u.kind = MB_CLIENT_BIDI;
			else if (strcmp(optarg, "source") == 0)
				u.kind = MB_CLIENT_SOURCE;
			else {
				fprintf(stderr, "mbutil: bad kind '%s'\n", optarg);
				return EX_USAGE;
			}
			break;
		case 'S':
			u.source_amount = optarg;
			u.kind = MB_CLIENT_SOURCE;
			break;
		case 'r':
			reserve_hold = 1;
			break;
		case 'e':
			u.flags |= MB_OPEN_EXPENDABLE;
			break;
		case 'q':
			u.quiet = 1;
			break;
		case 'h':
			usage(stdout);
			return EX_OK;
		case 'V':
			printf("mbutil (%s)\n", PACKAGE_STRING);
			return EX_OK;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EX_USAGE;
	}
	if (u.kind == MB_CLIENT_SOURCE && u.source_amount == NULL) {
		fprintf(stderr, "mbutil: a source needs --source AMOUNT\n");
		return EX_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);

	int status = run(&u, reserve_hold, argc - optind, argv + optind);
	if (u.opened) {
		int r = mb_close(&u.c);
		if (r != MB_OK && status == EX_OK)
			status = fail("close", r);
	}
	return status;
}
