/*
 * mbstatus - show the memory broker's pool and its clients.
 */
#include <config.h>

#include "mbclient.h"
#include "mb_size.h"
#include "mb_wire.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 2
#define DEFAULT_WATCH_MS 1000
#define SIZE_TEXT 32

struct rows {
	struct mb_status_client *r;
	size_t n, cap;
	int oom;
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: mbstatus [OPTION]...\n"
		"Show the memory broker's pool, total and one row per client.\n"
		"\n"
		"  -s, --socket PATH      broker socket (default: $%s or %s)\n"
		"  -j, --json             print one JSON object instead of a table\n"
		"  -w, --watch[=INTERVAL] repeat every INTERVAL (default 1s; \"250ms\", \"2s\")\n"
		"  -h, --help             show this help and exit\n"
		"  -V, --version          show the version and exit\n"
		"\n"
		"Exit status: 0 on success, 1 if the broker cannot be reached, 2 on a usage error.\n",
		MB_SOCKET_ENV, MB_DEFAULT_SOCKET);
}

static int collect(void *arg, const struct mb_status_client *row)
{
	struct rows *rs = arg;
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 64;
		struct mb_status_client *r = realloc(rs->r, cap * sizeof(*r));
		if (r == NULL) {
			rs->oom = 1;
			return 1;
		}
		rs->r = r;
		rs->cap = cap;
	}
	rs->r[rs->n++] = *row;
	return 0;
}

static const char *kind_name(enum mb_client_kind k)
{
	switch (k) {
	case MB_CLIENT_SINK: return "sink";
	case MB_CLIENT_BIDI: return "bidi";
	case MB_CLIENT_SOURCE: return "source";
	case MB_CLIENT_OBSERVER: return "observer";
	}
	return "?";
}

static const char *req_name(int t)
{
	return t == 1 ? "request" : t == 2 ? "reserve" : NULL;
}

static const char *urg_name(int u)
{
	return u == MB_URGENCY_REQUEST ? "request" : u == MB_URGENCY_RESERVE ? "reserve" : NULL;
}

static void bytes_text(char *buf, int64_t pages, uint64_t page_size)
{
	uint64_t mag = pages < 0 ? (uint64_t)-(pages + 1) + 1 : (uint64_t)pages;
	size_t off = 0;
	if (pages < 0)
		buf[off++] = '-';
	mb_format_size(buf + off, SIZE_TEXT - off, mag * page_size);
}

/* JSON string.  The broker sends printable ASCII, but this does not rely
 * on it: quotes and backslashes are escaped, every other byte outside
 * printable ASCII becomes \u00XX, so the output is always valid JSON. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p > 0x7e)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

/* A table cell shows printable ASCII only. */
static void printable(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			*s = '?';
}

static const char *const level_names[] = { "normal", "notify", "deny" };
static const char *const source_names[] = { "none", "meminfo", "cgroup-v1", "cgroup-v2" };
static const char *const mark_names[MB_MARK_COUNT] = {
	"notify_high", "notify_low", "deny_high", "deny_low", "headroom"
};

static const char *level_name(int l)
{
	return l >= 0 && l <= MB_MEM_LEVEL_DENY ? level_names[l] : "?";
}

static const char *source_name(int s)
{
	return s >= 0 && s <= 3 ? source_names[s] : "?";
}

/* Private memory past overuse_percent of the grant. */
static int overuse(const struct mb_status_client *r, const struct mb_memstate *ms,
		   uint64_t page_size)
{
	if (!ms || !r->private_known || r->balance <= 0 ||
	    (r->kind != MB_CLIENT_SINK && r->kind != MB_CLIENT_BIDI))
		return 0;
	return r->private_bytes / 100 > (uint64_t)r->balance * page_size / 100 *
		ms->overuse_percent / 100;
}

static void json_u64(FILE *f, const char *key, uint64_t v)
{
	if (v == UINT64_MAX)
		fprintf(f, ",\"%s\":null", key);
	else
		fprintf(f, ",\"%s\":%llu", key, (unsigned long long)v);
}

static void json_device(FILE *f, const struct mb_memstate *ms)
{
	fprintf(f, ",\"device\":{\"state\":\"%s\",\"source\":\"%s\"",
		level_name(ms->level), source_name(ms->source));
	json_u64(f, "total", ms->device_total);
	json_u64(f, "used", ms->device_used);
	for (int i = 0; i < MB_MARK_COUNT; i++)
		json_u64(f, mark_names[i], ms->mark[i]);
	json_u64(f, "lendable_pages", ms->lendable);
	json_u64(f, "lent_pages", ms->lent);
	fprintf(f, ",\"rate_pages_per_s\":%lld", (long long)ms->rate);
	json_u64(f, "estimate_ms", ms->estimate_ms);
	json_u64(f, "overuse_percent", ms->overuse_percent);
	json_u64(f, "poll_ms", ms->poll_ms);
	fputc('}', f);
}

static void print_json(FILE *f, const struct mb_status_head *h, const struct rows *rs,
		       const struct mb_memstate *ms)
{
	fprintf(f, "{\"pool\":%lld,\"total\":%llu,\"initial\":%llu,\"page_size\":%llu,"
		"\"clients\":%llu,\"queued\":%llu,\"uptime_ms\":%llu,\"rows\":[",
		(long long)h->pool, (unsigned long long)h->total,
		(unsigned long long)h->initial, (unsigned long long)h->page_size,
		(unsigned long long)h->clients, (unsigned long long)h->queued,
		(unsigned long long)h->uptime_ms);
	for (size_t i = 0; i < rs->n; i++) {
		const struct mb_status_client *r = &rs->r[i];
		fprintf(f, "%s{\"id\":%llu,\"pid\":%lld,\"uid\":%llu,\"command\":",
			i ? "," : "", (unsigned long long)r->id, (long long)r->pid,
			(unsigned long long)r->uid);
		json_str(f, r->comm);
		fprintf(f, ",\"kind\":\"%s\",\"balance\":%lld,\"source_pages\":%llu,\"request\":",
			kind_name(r->kind), (long long)r->balance,
			(unsigned long long)r->source_pages);
		if (req_name(r->req_type))
			fprintf(f, "{\"type\":\"%s\",\"pages\":%llu,\"acquired\":%llu,\"age_ms\":%llu}",
				req_name(r->req_type), (unsigned long long)r->req_pages,
				(unsigned long long)r->req_acquired,
				(unsigned long long)r->req_age_ms);
		else
			fputs("null", f);
		fputs(",\"share\":", f);
		if (urg_name(r->share_urgency))
			fprintf(f, "{\"urgency\":\"%s\",\"pages\":%llu,\"age_ms\":%llu}",
				urg_name(r->share_urgency), (unsigned long long)r->share_pages,
				(unsigned long long)r->share_age_ms);
		else
			fputs("null", f);
		if (r->private_known)
			fprintf(f, ",\"private_bytes\":%llu", (unsigned long long)r->private_bytes);
		else
			fputs(",\"private_bytes\":null", f);
		fprintf(f, ",\"overuse\":%s,\"dishonoured\":%s}",
			overuse(r, ms, h->page_size) ? "true" : "false",
			r->dishonoured ? "true" : "false");
	}
	fputc(']', f);
	if (ms)
		json_device(f, ms);
	fputs("}\n", f);
}

#define NCOLS 9
static const char *const col_head[NCOLS] = {
	"ID", "PID", "COMMAND", "KIND", "BALANCE", "BYTES", "PRIVATE", "REQUEST", "SHARE QUERY"
};
#define CELL 64

static void print_device(FILE *f, const struct mb_memstate *ms, uint64_t page_size)
{
	char t[SIZE_TEXT], u[SIZE_TEXT], m[MB_MARK_COUNT][SIZE_TEXT];
	mb_format_size(t, sizeof(t), ms->device_total);
	mb_format_size(u, sizeof(u), ms->device_used);
	for (int i = 0; i < MB_MARK_COUNT; i++) {
		if (ms->mark[i] == MB_MARK_UNSET)
			snprintf(m[i], SIZE_TEXT, "off");
		else
			mb_format_size(m[i], SIZE_TEXT, ms->mark[i]);
	}
	fprintf(f, "device %s (%s): %s used of %s; notify %s/%s, deny %s/%s, headroom %s\n",
		level_name(ms->level), source_name(ms->source), u, t, m[0], m[1], m[2], m[3], m[4]);
	char l[SIZE_TEXT];
	mb_format_size(l, sizeof(l), ms->lendable * page_size);
	fprintf(f, "lendable %llu pages (%s), lent %llu, rate %lld pages/s, deny in ",
		(unsigned long long)ms->lendable, l, (unsigned long long)ms->lent,
		(long long)ms->rate);
	if (ms->estimate_ms == UINT64_MAX)
		fputs("- (not growing)\n", f);
	else
		fprintf(f, "%llu.%03llu s\n", (unsigned long long)(ms->estimate_ms / 1000),
			(unsigned long long)(ms->estimate_ms % 1000));
}

static void print_table(FILE *f, const struct mb_status_head *h, const struct rows *rs,
			const struct mb_memstate *ms)
{
	char pool[SIZE_TEXT], total[SIZE_TEXT];
	bytes_text(pool, h->pool, h->page_size);
	bytes_text(total, (int64_t)h->total, h->page_size);
	fprintf(f, "pool %lld of %llu pages (%s of %s), page %llu B, %llu clients, "
		"%llu queued, up %llu.%03llu s\n",
		(long long)h->pool, (unsigned long long)h->total, pool, total,
		(unsigned long long)h->page_size, (unsigned long long)h->clients,
		(unsigned long long)h->queued,
		(unsigned long long)(h->uptime_ms / 1000),
		(unsigned long long)(h->uptime_ms % 1000));
	if (ms && ms->poll_ms)
		print_device(f, ms, h->page_size);
	fputc('\n', f);

	size_t n = rs->n;
	char (*cell)[NCOLS][CELL] = calloc(n ? n : 1, sizeof(*cell));
	if (cell == NULL) {
		fputs("mbstatus: out of memory\n", stderr);
		return;
	}
	size_t width[NCOLS];
	for (int c = 0; c < NCOLS; c++)
		width[c] = strlen(col_head[c]);
	for (size_t i = 0; i < n; i++) {
		const struct mb_status_client *r = &rs->r[i];
		char b[SIZE_TEXT];
		snprintf(cell[i][0], CELL, "%llu", (unsigned long long)r->id);
		snprintf(cell[i][1], CELL, "%lld", (long long)r->pid);
		snprintf(cell[i][2], CELL, "%s", r->comm);
		printable(cell[i][2]);
		if (r->kind == MB_CLIENT_SOURCE)
			snprintf(cell[i][3], CELL, "source(%llu)",
				 (unsigned long long)r->source_pages);
		else
			snprintf(cell[i][3], CELL, "%s", kind_name(r->kind));
		snprintf(cell[i][4], CELL, "%lld", (long long)r->balance);
		bytes_text(b, r->balance, h->page_size);
		snprintf(cell[i][5], CELL, "%s", b);
		if (r->private_known) {
			mb_format_size(b, sizeof(b), r->private_bytes);
			snprintf(cell[i][6], CELL, "%s%s%s", b,
				 overuse(r, ms, h->page_size) ? " OVERUSE" : "",
				 r->dishonoured ? " DISHONOURED" : "");
		} else {
			snprintf(cell[i][6], CELL, "-%s", r->dishonoured ? " DISHONOURED" : "");
		}
		if (req_name(r->req_type))
			snprintf(cell[i][7], CELL, "%s %llu/%llu %llums", req_name(r->req_type),
				 (unsigned long long)r->req_acquired,
				 (unsigned long long)r->req_pages,
				 (unsigned long long)r->req_age_ms);
		else
			snprintf(cell[i][7], CELL, "-");
		if (urg_name(r->share_urgency))
			snprintf(cell[i][8], CELL, "%s %llu %llums", urg_name(r->share_urgency),
				 (unsigned long long)r->share_pages,
				 (unsigned long long)r->share_age_ms);
		else
			snprintf(cell[i][8], CELL, "-");
		for (int c = 0; c < NCOLS; c++)
			if (strlen(cell[i][c]) > width[c])
				width[c] = strlen(cell[i][c]);
	}
	/* Numbers right-aligned, text left-aligned. */
	static const int right[NCOLS] = { 1, 1, 0, 0, 1, 1, 1, 0, 0 };
	/* The last column is not padded: no trailing blanks. */
	for (int c = 0; c < NCOLS; c++)
		fprintf(f, "%s%*s", c ? "  " : "",
			c == NCOLS - 1 ? 0 : right[c] ? (int)width[c] : -(int)width[c],
			col_head[c]);
	fputc('\n', f);
	for (size_t i = 0; i < n; i++) {
		for (int c = 0; c < NCOLS; c++)
			fprintf(f, "%s%*s", c ? "  " : "",
				c == NCOLS - 1 ? 0 : right[c] ? (int)width[c] : -(int)width[c],
				cell[i][c]);
		fputc('\n', f);
	}
	free(cell);
}

static int show(mb_client *c, int json, int clear)
{
	struct mb_status_head h;
	struct rows rs = { 0 };
	int r = mb_status(c, &h, collect, &rs);
	if (r == MB_OK && rs.oom)
		r = MB_ESYS;
	if (r != MB_OK) {
		fprintf(stderr, "mbstatus: %s\n", mb_strerror(r));
		free(rs.r);
		return 1;
	}
	/* A broker without the device view (or an older one) has no memstate. */
	struct mb_memstate msb;
	const struct mb_memstate *ms = mb_memstate(c, &msb) == MB_OK ? &msb : NULL;
	if (clear)
		fputs("\033[H\033[2J", stdout);
	if (json)
		print_json(stdout, &h, &rs, ms);
	else
		print_table(stdout, &h, &rs, ms);
	fflush(stdout);
	free(rs.r);
	return 0;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	while (!stop_flag && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "watch", optional_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *sock = NULL;
	int json = 0, watch = 0;
	uint64_t interval = DEFAULT_WATCH_MS;
	int ch;
	while ((ch = getopt_long(argc, argv, "s:jw::hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			sock = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'w':
			watch = 1;
			/* Accept "--watch 2s" as well as "--watch=2s". */
			if (optarg == NULL && optind < argc && argv[optind][0] >= '0' &&
			    argv[optind][0] <= '9')
				optarg = argv[optind++];
			if (optarg) {
				uint64_t ms;
				if (mb_parse_duration_ms(optarg, &ms) < 0) {
					/* A bare number is seconds, like watch(1). */
					if (mb_parse_u64(optarg, &ms) < 0 || ms == 0) {
						fprintf(stderr, "mbstatus: bad interval '%s'\n", optarg);
						return EXIT_USAGE;
					}
					ms *= 1000;
				} else if (strspn(optarg, "0123456789") == strlen(optarg)) {
					ms *= 1000;
				}
				if (ms == 0) {
					fprintf(stderr, "mbstatus: bad interval '%s'\n", optarg);
					return EXIT_USAGE;
				}
				interval = ms;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("mbstatus (%s)\n", PACKAGE_STRING);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mbstatus: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	mb_client c;
	struct mb_options o = {
		.socket_path = sock, .kind = MB_CLIENT_OBSERVER, .name = "mbstatus",
	};
	int r = mb_open(&c, &o);
	if (r != MB_OK && !watch) {
		fprintf(stderr, "mbstatus: %s: %s\n",
			sock ? sock : getenv(MB_SOCKET_ENV) ? getenv(MB_SOCKET_ENV) :
			MB_DEFAULT_SOCKET, mb_strerror(r));
		mb_close(&c);
		return 1;
	}
	int status = 0;
	do {
		/* In watch mode a missing broker is shown and retried. */
		status = show(&c, json, watch && !json && isatty(STDOUT_FILENO));
		if (watch)
			sleep_ms(interval);
	} while (watch && !stop_flag);
	mb_close(&c);
	return watch ? 0 : status;
}
