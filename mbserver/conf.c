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
#include <stddef.h>
#include <string.h>

#define F(field) offsetof(struct mbs_conf, field)
#define S(field) sizeof(((struct mbs_conf *)0)->field)

static const char *const log_targets[] = { "stderr", "syslog", "journal", NULL };

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
	bc->uids = out->uids;
	bc->nuids = u.n;
	bc->gids = out->gids;
	bc->ngids = g.n;
	return 0;
}
