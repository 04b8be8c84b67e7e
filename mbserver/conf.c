/*
 * conf.c - mbserver's config table and its resolution (see conf.h).
 */
#include "config.h"
#include "conf.h"
#include "mb_log.h"
#include "mb_size.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>

#define F(field) offsetof(struct mbs_conf, field)
#define S(field) sizeof(((struct mbs_conf *)0)->field)

static const char *const log_targets[] = { "stderr", "syslog", "journal", NULL };
static const char *const device_modes[] = { "none", "meminfo", "cgroup", NULL };
static const char *const measures[] = { "used", "committed", NULL };

#define MARK(i) (offsetof(struct mbs_conf, marks) + (i) * sizeof(((struct mbs_conf *)0)->marks[0]))
#define MARK_SIZE sizeof(((struct mbs_conf *)0)->marks[0])

const struct mb_conf_key mbs_conf_table[] = {
	{ "total", MB_CONF_SIZE, F(total), 0, "0",
	  "quota the broker owns: bytes with a unit, a percent of MemTotal, or \"all-except N\"", NULL },
	{ "socket", MB_CONF_STRING, F(socket), S(socket), MBS_DEFAULT_SOCKET,
	  "path of the listening Unix socket", NULL },
	{ "socket_mode", MB_CONF_MODE, F(socket_mode), 0, "0660",
	  "file mode of the socket", NULL },
	{ "socket_group", MB_CONF_STRING, F(socket_group), S(socket_group), "",
	  "group owning the socket (name or number; empty: unchanged)", NULL },
	{ "allow_uids", MB_CONF_STRING, F(allow_uids), S(allow_uids), "",
	  "users allowed to register, comma separated names or numbers (empty and no allow_gids: all)", NULL },
	{ "allow_gids", MB_CONF_STRING, F(allow_gids), S(allow_gids), "",
	  "groups allowed to register, comma separated names or numbers", NULL },
	{ "client_cap", MB_CONF_SIZE, F(client_cap), 0, "0",
	  "most quota one client may hold (0: no cap)", NULL },
	{ "source_uids", MB_CONF_STRING, F(source_uids), S(source_uids), "",
	  "users who may register as sources and lend declared pages, besides root (empty: root only)", NULL },
	{ "source_max", MB_CONF_SIZE, F(source_max), 0, "0",
	  "most pages one source may declare (0: the broker's own total)", NULL },
	{ "uid_cap", MB_CONF_SIZE, F(uid_cap), 0, "0",
	  "most quota all clients of one user may hold together; root exempt (0: no cap)", NULL },
	{ "uid_connections", MB_CONF_U64, F(uid_connections), 0, "256",
	  "most connections one user may have open; root exempt (0: no limit)", NULL },
	{ "handshake_timeout", MB_CONF_DURATION, F(handshake_timeout), 0, "5s",
	  "a connection that sends no frame within this time is closed (0: never)", NULL },
	{ "idle_timeout", MB_CONF_DURATION, F(idle_timeout), 0, "60s",
	  "an unregistered connection silent this long is closed (0: never)", NULL },
	{ "output_budget", MB_CONF_SIZE, F(output_budget), 0, "32M",
	  "replies queued for all clients together; past it the largest unread queue is dropped", NULL },
	{ "request_deadline", MB_CONF_DURATION, F(request_deadline), 0, "2s",
	  "longest wait of a REQUEST, and its default deadline", NULL },
	{ "share_deadline", MB_CONF_DURATION, F(share_deadline), 0, "1s",
	  "time a bidi client has to answer a give-back query; silence counts as a denial", NULL },
	{ "claim_grace", MB_CONF_DURATION, F(claim_grace), 0, "30s",
	  "how long the balance of a client that asked to keep it waits for its return (0: not kept)", NULL },
	{ "pool_low", MB_CONF_SIZE, F(pool_low), 0, "0",
	  "pool at or below this amount raises the pool-low event", NULL },
	{ "log_level", MB_CONF_LOGLEVEL, F(log_level), 0, "notice",
	  "highest level logged: err, warning, notice, info, debug", NULL },
	{ "log_target", MB_CONF_ENUM, F(log_target), 0, "stderr",
	  "where logs go: stderr (with journald priority prefixes when stderr is the journal), syslog, or journal (always prefixed)", log_targets },
	{ "device", MB_CONF_ENUM, F(device), 0, "none",
	  "view of the device: none, meminfo (the machine) or cgroup (the memory cgroup)", device_modes },
	{ "device_meminfo", MB_CONF_STRING, F(device_meminfo), S(device_meminfo), "/proc/meminfo",
	  "meminfo file read for the machine's figures", NULL },
	{ "device_cgroup", MB_CONF_STRING, F(device_cgroup), S(device_cgroup), "",
	  "memory cgroup directory (v1 or v2) for device = cgroup; empty: the broker's own", NULL },
	{ "device_psi", MB_CONF_STRING, F(device_psi), S(device_psi), "/proc/pressure/memory",
	  "memory pressure (PSI) file, read where the kernel allows; empty: none", NULL },
	{ "psi_notify", MB_CONF_STRING, F(psi_notify), S(psi_notify), "",
	  "also notify when the \"some\" stall of the last 10 s reaches this percent; empty: off", NULL },
	{ "device_poll", MB_CONF_DURATION, F(device_poll), 0, "100ms",
	  "interval between two readings of the device", NULL },
	{ "device_measure", MB_CONF_ENUM, F(device_measure), 0, "used",
	  "figure compared with the marks: used (not available) or committed (Committed_AS)", measures },
	{ "notify_high", MB_CONF_STRING, MARK(MB_CTL_NOTIFY_HIGH), MARK_SIZE, "",
	  "notify when the device uses this much: percent of the device or an amount; empty: off", NULL },
	{ "notify_low", MB_CONF_STRING, MARK(MB_CTL_NOTIFY_LOW), MARK_SIZE, "",
	  "notify ends under this mark (the decay); empty: notify_high", NULL },
	{ "deny_high", MB_CONF_STRING, MARK(MB_CTL_DENY_HIGH), MARK_SIZE, "",
	  "refuse unprivileged requests when the device uses this much; empty: off", NULL },
	{ "deny_low", MB_CONF_STRING, MARK(MB_CTL_DENY_LOW), MARK_SIZE, "",
	  "deny ends under this mark; empty: deny_high", NULL },
	{ "headroom", MB_CONF_STRING, MARK(MB_CTL_HEADROOM), MARK_SIZE, "",
	  "memory of the device never lent: percent of the device or an amount", NULL },
	{ "privileged_uids", MB_CONF_STRING, F(privileged_uids), S(privileged_uids), "",
	  "users served in deny state and allowed to change marks (uid 0 always is)", NULL },
	{ "privileged_gids", MB_CONF_STRING, F(privileged_gids), S(privileged_gids), "",
	  "groups served in deny state and allowed to change marks", NULL },
	{ "giveback_retry", MB_CONF_DURATION, F(giveback_retry), 0, "1s",
	  "while the device stays above the mark, ask again this often", NULL },
	{ "giveback_honour", MB_CONF_U64, F(giveback_honour), 0, "50",
	  "percent of the pages a client says it gave back that its private memory must show", NULL },
	{ "early_horizon", MB_CONF_DURATION, F(early_horizon), 0, "0",
	  "notify early when deny is estimated nearer than this (0: off)", NULL },
	{ "rate_window", MB_CONF_DURATION, F(rate_window), 0, "1s",
	  "smoothing window of the lending rate behind the estimate", NULL },
	{ "audit_interval", MB_CONF_DURATION, F(audit_interval), 0, "1s",
	  "interval between two readings of each client's private memory (0: never, and the pool does not follow the device)", NULL },
	{ "overuse_percent", MB_CONF_U64, F(overuse_percent), 0, "150",
	  "a client whose private memory passes this percent of its grant is flagged", NULL },
	{ "escalate_command", MB_CONF_STRING, F(escalate_command), S(escalate_command), "",
	  "command run (sh -c) when deny lasts and a privileged RESERVE finds the pool short; empty: never", NULL },
	{ "escalate_signal", MB_CONF_STRING, F(escalate_signal), S(escalate_signal), "",
	  "signal (TERM, KILL, INT, HUP, USR1, USR2 or a number) sent as a last resort to the "
	  "largest client registered as expendable; empty: never", NULL },
	{ "escalate_after", MB_CONF_DURATION, F(escalate_after), 0, "5s",
	  "how long deny must last before escalation, and its least interval", NULL },
	MB_CONF_END
};

int mbs_conf_load(struct mbs_conf *cf, const char *path, int missing_ok,
		  char *const *overrides, int noverrides)
{
	int bad = 0;
	memset(cf, 0, sizeof(*cf));
	if (mb_conf_defaults(mbs_conf_table, cf) != 0) {
		mb_log(MB_LOG_ERR, "built-in defaults do not parse");
		bad++;
	}
	if (path && path[0]) {
		int rc = mb_conf_load(mbs_conf_table, cf, path);
		if (rc == -ENOENT && missing_ok) {
			mb_log(MB_LOG_INFO, "%s: not found, using defaults", path);
		} else if (rc < 0) {
			mb_log(MB_LOG_ERR, "%s: cannot read (%s)", path, strerror(-rc));
			bad++;
		} else {
			bad += rc;
		}
	}
	for (int i = 0; i < noverrides; i++) {
		char key[64], err[MB_CONF_ERR_MAX];
		const char *eq = strchr(overrides[i], '=');
		size_t n = eq ? (size_t)(eq - overrides[i]) : 0;
		if (!eq || n == 0 || n >= sizeof(key)) {
			mb_log(MB_LOG_ERR, "option '%s': expected key=value", overrides[i]);
			bad++;
			continue;
		}
		memcpy(key, overrides[i], n);
		key[n] = '\0';
		if (mb_conf_set(mbs_conf_table, cf, key, eq + 1, err, sizeof(err)) != 0) {
			mb_log(MB_LOG_ERR, "command line: %s", err);
			bad++;
		}
	}
	return bad;
}

/* Split a comma or space separated list; calls fn for each item. */
static int each_item(const char *list, const char *what,
		     int (*fn)(const char *item, void *arg), void *arg)
{
	char item[64];
	const char *p = list;
	while (*p) {
		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		size_t n = strcspn(p, ", \t");
		if (n >= sizeof(item)) {
			mb_log(MB_LOG_ERR, "%s: item too long", what);
			return -1;
		}
		memcpy(item, p, n);
		item[n] = '\0';
		if (fn(item, arg) != 0) {
			mb_log(MB_LOG_ERR, "%s: unknown or invalid '%s'", what, item);
			return -1;
		}
		p += n;
	}
	return 0;
}

struct idlist {
	unsigned *ids;
	size_t n;
	int group;
};

static int lookup_id(const char *item, int group, unsigned *out)
{
	uint64_t v;
	if (mb_parse_u64(item, &v) == 0) {
		if (v >= (uint64_t)(unsigned)-1)
			return -1;
		*out = (unsigned)v;
		return 0;
	}
	if (group) {
		struct group *g = getgrnam(item);
		if (!g)
			return -1;
		*out = g->gr_gid;
	} else {
		struct passwd *pw = getpwnam(item);
		if (!pw)
			return -1;
		*out = pw->pw_uid;
	}
	return 0;
}

static int add_id(const char *item, void *arg)
{
	struct idlist *l = arg;
	if (l->n >= MBS_MAX_IDS)
		return -1;
	return lookup_id(item, l->group, &l->ids[l->n++]);
}

static int parse_signal(const char *text, int *sig)
{
	static const struct { const char *name; int sig; } names[] = {
		{ "TERM", SIGTERM }, { "KILL", SIGKILL }, { "INT", SIGINT },
		{ "HUP", SIGHUP }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 },
	};
	uint64_t v;
	*sig = 0;
	if (!text[0])
		return 0;
	if (strncmp(text, "SIG", 3) == 0)
		text += 3;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(text, names[i].name) == 0) {
			*sig = names[i].sig;
			return 0;
		}
	if (mb_parse_u64(text, &v) != 0 || v == 0 || v > (uint64_t)SIGRTMAX)
		return -1;
	*sig = (int)v;
	return 0;
}

static const char *const mark_keys[MB_CTL_MARK_COUNT] = {
	"notify_high", "notify_low", "deny_high", "deny_low", "headroom"
};

static int resolve_policy(const struct mbs_conf *cf, uint64_t page_size,
			  struct mbs_resolved *out)
{
	struct idlist u = { (unsigned *)out->priv_uids, 0, 0 };
	struct idlist g = { (unsigned *)out->priv_gids, 0, 1 };
	if (each_item(cf->privileged_uids, "privileged_uids", add_id, &u) != 0 ||
	    each_item(cf->privileged_gids, "privileged_gids", add_id, &g) != 0)
		return -1;
	out->npriv_uids = u.n;
	out->npriv_gids = g.n;
	struct wm_config *w = &out->wm;
	for (unsigned i = 0; i < MB_CTL_MARK_COUNT; i++) {
		if (wm_parse_mark(cf->marks[i], &w->mark[i]) != 0) {
			mb_log(MB_LOG_ERR, "%s: '%s' is neither a percent nor an amount",
			       mark_keys[i], cf->marks[i]);
			return -1;
		}
	}
	if (parse_signal(cf->escalate_signal, &out->escalate_signal) != 0) {
		mb_log(MB_LOG_ERR, "escalate_signal: unknown signal '%s'", cf->escalate_signal);
		return -1;
	}
	if (cf->giveback_honour > 100 || cf->overuse_percent == 0) {
		mb_log(MB_LOG_ERR, "giveback_honour must be 0..100, overuse_percent above 0");
		return -1;
	}
	if (cf->device != DEVICE_NONE && cf->device_poll == 0) {
		mb_log(MB_LOG_ERR, "device_poll: must be above 0");
		return -1;
	}
	w->psi_notify = 0;
	if (cf->psi_notify[0] && (mb_parse_hundredths(cf->psi_notify, &w->psi_notify) != 0 ||
				  w->psi_notify > 10000)) {
		mb_log(MB_LOG_ERR, "psi_notify: '%s' is not a percent from 0 to 100", cf->psi_notify);
		return -1;
	}
	w->committed = cf->device_measure == 1;
	w->page_size = page_size;
	w->horizon_ms = cf->early_horizon;
	w->rate_window_ms = cf->rate_window;
	w->retry_ms = cf->giveback_retry;
	return 0;
}

int mbs_conf_resolve(const struct mbs_conf *cf, uint64_t page_size,
		     struct mbs_resolved *out)
{
	_Static_assert(sizeof(uid_t) == sizeof(unsigned), "uid_t size");
	_Static_assert(sizeof(gid_t) == sizeof(unsigned), "gid_t size");
	memset(out, 0, sizeof(*out));
	struct idlist u = { (unsigned *)out->uids, 0, 0 };
	struct idlist g = { (unsigned *)out->gids, 0, 1 };
	struct idlist su = { (unsigned *)out->source_uids, 0, 0 };
	if (each_item(cf->allow_uids, "allow_uids", add_id, &u) != 0 ||
	    each_item(cf->allow_gids, "allow_gids", add_id, &g) != 0 ||
	    each_item(cf->source_uids, "source_uids", add_id, &su) != 0)
		return -1;
	out->socket_gid = (gid_t)-1;
	if (cf->socket_group[0]) {
		unsigned gid;
		if (lookup_id(cf->socket_group, 1, &gid) != 0) {
			mb_log(MB_LOG_ERR, "socket_group: unknown group '%s'", cf->socket_group);
			return -1;
		}
		out->socket_gid = gid;
	}
	if (cf->socket[0] == '\0') {
		mb_log(MB_LOG_ERR, "socket: empty path");
		return -1;
	}
	struct broker_config *bc = &out->bc;
	bc->page_size = page_size;
	bc->initial = cf->total / page_size;
	if (bc->initial > MB_WIRE_MAX_PAGES) {
		mb_log(MB_LOG_ERR, "total: more than %lu pages", (unsigned long)MB_WIRE_MAX_PAGES);
		return -1;
	}
	bc->cap = cf->client_cap / page_size;
	if (cf->client_cap && bc->cap == 0) {
		mb_log(MB_LOG_ERR, "client_cap: less than one page");
		return -1;
	}
	bc->source_max = cf->source_max ? cf->source_max / page_size : bc->initial;
	bc->source_uids = out->source_uids;
	bc->nsource_uids = su.n;
	bc->uid_cap = cf->uid_cap / page_size;
	if (cf->uid_cap && bc->uid_cap == 0) {
		mb_log(MB_LOG_ERR, "uid_cap: less than one page");
		return -1;
	}
	bc->uid_connections = cf->uid_connections;
	bc->handshake_ms = cf->handshake_timeout;
	bc->idle_ms = cf->idle_timeout;
	if (cf->output_budget < MBS_OUTPUT_BUDGET_MIN) {
		mb_log(MB_LOG_ERR, "output_budget: less than %u bytes", MBS_OUTPUT_BUDGET_MIN);
		return -1;
	}
	bc->request_deadline_ms = cf->request_deadline;
	bc->share_deadline_ms = cf->share_deadline;
	bc->claim_grace_ms = cf->claim_grace;
	bc->pool_low = cf->pool_low / page_size;
	if (resolve_policy(cf, page_size, out) != 0)
		return -1;
	bc->uids = out->uids;
	bc->nuids = u.n;
	bc->gids = out->gids;
	bc->ngids = g.n;
	return 0;
}
