/*
 * mb_conf.c - table-driven config parsing (see mb_conf.h).
 */
#include "mb_conf.h"
#include "mb_log.h"
#include "mb_size.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define FIELD(cfg, key, type) ((type *)(void *)((char *)(cfg) + (key)->offset))

static const char *const type_names[] = {
	[MB_CONF_SIZE] = "size",
	[MB_CONF_U64] = "number",
	[MB_CONF_BOOL] = "bool",
	[MB_CONF_STRING] = "string",
	[MB_CONF_ENUM] = "choice",
	[MB_CONF_DURATION] = "duration",
	[MB_CONF_LOGLEVEL] = "level",
	[MB_CONF_MODE] = "mode",
};

const struct mb_conf_key *mb_conf_find(const struct mb_conf_key *table,
				       const char *name)
{
	for (const struct mb_conf_key *k = table; k->name; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

static const char *errtext(int rc)
{
	return rc == -ERANGE ? "out of range" : "invalid";
}

/* MemTotal is read once, when a relative amount first needs it (a process
 * that starts under gmalloc reads its defaults here). */
static uint64_t memtotal(void)
{
	static uint64_t cached;
	if (cached == 0)
		cached = mb_meminfo_total(NULL);
	return cached;
}

int mb_conf_set(const struct mb_conf_key *table, void *cfg, const char *name,
		const char *value, char *err, size_t errcap)
{
	const struct mb_conf_key *k = mb_conf_find(table, name);
	if (!k) {
		mb_format(err, errcap, "unknown key '%s'", name);
		return -1;
	}
	int rc = 0;
	switch (k->type) {
	case MB_CONF_SIZE: {
		uint64_t v;
		rc = mb_parse_size(value, mb_size_relative(value) ? memtotal() : 0, &v);
		if (!rc)
			*FIELD(cfg, k, uint64_t) = v;
		break;
	}
	case MB_CONF_U64: {
		uint64_t v;
		rc = mb_parse_u64(value, &v);
		if (!rc && k->size != 0 && v > k->size) {
			mb_format(err, errcap, "%s: %s is above the largest value, %zu",
				  name, value, k->size);
			return -1;
		}
		if (!rc)
			*FIELD(cfg, k, uint64_t) = v;
		break;
	}
	case MB_CONF_BOOL: {
		int v;
		rc = mb_parse_bool(value, &v);
		if (!rc)
			*FIELD(cfg, k, int) = v;
		break;
	}
	case MB_CONF_STRING: {
		size_t n = strlen(value);
		if (n >= k->size) {
			mb_format(err, errcap, "%s: value longer than %zu characters",
				  name, k->size - 1);
			return -1;
		}
		memcpy(FIELD(cfg, k, char), value, n + 1);
		break;
	}
	case MB_CONF_ENUM: {
		rc = -EINVAL;
		for (int i = 0; k->choices && k->choices[i]; i++) {
			if (strcmp(k->choices[i], value) == 0) {
				*FIELD(cfg, k, int) = i;
				rc = 0;
				break;
			}
		}
		break;
	}
	case MB_CONF_DURATION: {
		uint64_t v;
		rc = mb_parse_duration_ms(value, &v);
		/* Callers pass durations as int milliseconds (poll, the
		 * client's deadlines): a longer one would turn negative. */
		if (!rc && v > INT32_MAX) {
			mb_format(err, errcap, "%s: %s is longer than %ld ms (24 days)",
				  name, value, (long)INT32_MAX);
			return -1;
		}
		if (!rc)
			*FIELD(cfg, k, uint64_t) = v;
		break;
	}
	case MB_CONF_LOGLEVEL: {
		int v = mb_log_level_parse(value);
		if (v < 0)
			rc = -EINVAL;
		else
			*FIELD(cfg, k, int) = v;
		break;
	}
	case MB_CONF_MODE: {
		unsigned v;
		rc = mb_parse_mode(value, &v);
		if (!rc)
			*FIELD(cfg, k, unsigned) = v;
		break;
	}
	}
	if (rc) {
		mb_format(err, errcap, "%s: %s %s '%s'", name, errtext(rc),
			  type_names[k->type], value);
		return -1;
	}
	return 0;
}

int mb_conf_defaults(const struct mb_conf_key *table, void *cfg)
{
	int bad = 0;
	char err[MB_CONF_ERR_MAX];
	for (const struct mb_conf_key *k = table; k->name; k++)
		if (mb_conf_set(table, cfg, k->name, k->def ? k->def : "", err,
				sizeof(err)) != 0)
			bad++;
	return bad;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\r')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

/* Parse one line in place; 0 if fine or empty, -1 with err set. */
static int parse_line(const struct mb_conf_key *table, void *cfg, char *line,
		      char *err, size_t errcap)
{
	char *s = trim(line);
	if (*s == '\0' || *s == '#')
		return 0;
	char *eq = strchr(s, '=');
	if (!eq) {
		mb_format(err, errcap, "expected 'key = value'");
		return -1;
	}
	*eq = '\0';
	char *key = trim(s);
	char *val = trim(eq + 1);
	if (*key == '\0') {
		mb_format(err, errcap, "missing key before '='");
		return -1;
	}
	if (*val == '"') {
		char *close = strchr(val + 1, '"');
		if (!close) {
			mb_format(err, errcap, "%s: unterminated quote", key);
			return -1;
		}
		*close = '\0';
		if (*trim(close + 1) != '\0' && *trim(close + 1) != '#') {
			mb_format(err, errcap, "%s: text after closing quote", key);
			return -1;
		}
		val++;
	} else {
		/* A comment starts at a '#' that follows white space. */
		for (char *p = val; *p; p++) {
			if (*p == '#' && (p == val || p[-1] == ' ' || p[-1] == '\t')) {
				*p = '\0';
				break;
			}
		}
		val = trim(val);
	}
	return mb_conf_set(table, cfg, key, val, err, errcap);
}

struct line_reader {
	char line[MB_CONF_MAX_LINE + 1];
	size_t len;
	int overlong;
	unsigned lineno;
	int bad;
	const char *origin;
	const struct mb_conf_key *table;
	void *cfg;
};

static void reader_end_line(struct line_reader *r)
{
	char err[MB_CONF_ERR_MAX];
	r->lineno++;
	if (r->overlong) {
		mb_log(MB_LOG_WARNING, "%s:%u: line longer than %d characters",
		       r->origin, r->lineno, MB_CONF_MAX_LINE);
		r->bad++;
	} else {
		r->line[r->len] = '\0';
		if (memchr(r->line, '\0', r->len) != NULL) {
			mb_log(MB_LOG_WARNING, "%s:%u: NUL byte in line",
			       r->origin, r->lineno);
			r->bad++;
		} else if (parse_line(r->table, r->cfg, r->line, err, sizeof(err))) {
			mb_log(MB_LOG_WARNING, "%s:%u: %s", r->origin, r->lineno, err);
			r->bad++;
		}
	}
	r->len = 0;
	r->overlong = 0;
}

static void reader_feed(struct line_reader *r, const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (buf[i] == '\n') {
			reader_end_line(r);
		} else if (r->len < MB_CONF_MAX_LINE) {
			r->line[r->len++] = buf[i];
		} else {
			r->overlong = 1;
		}
	}
}

static void reader_init(struct line_reader *r, const struct mb_conf_key *table,
			void *cfg, const char *origin)
{
	r->len = 0;
	r->overlong = 0;
	r->lineno = 0;
	r->bad = 0;
	r->origin = origin;
	r->table = table;
	r->cfg = cfg;
}

static int reader_finish(struct line_reader *r)
{
	if (r->len > 0 || r->overlong)
		reader_end_line(r);
	return r->bad;
}

int mb_conf_parse_text(const struct mb_conf_key *table, void *cfg,
		       const char *origin, const char *text, size_t len)
{
	struct line_reader r;
	reader_init(&r, table, cfg, origin);
	reader_feed(&r, text, len);
	return reader_finish(&r);
}

int mb_conf_load(const struct mb_conf_key *table, void *cfg, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct line_reader r;
	char buf[1024];
	reader_init(&r, table, cfg, path);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			mb_log(MB_LOG_WARNING, "%s: read error after line %u: %s",
			       path, r.lineno, e == EISDIR ? "is a directory" : "I/O error");
			close(fd);
			return r.bad + 1;
		}
		if (n == 0)
			break;
		reader_feed(&r, buf, (size_t)n);
	}
	close(fd);
	return reader_finish(&r);
}

static int listed(const char *const *names, const char *var, size_t n)
{
	for (; names && *names; names++)
		if (strlen(*names) == n && strncmp(*names, var, n) == 0)
			return 1;
	return 0;
}

int mb_conf_env(const struct mb_conf_key *table, void *cfg, const char *prefix,
		char *const *envp, const char *const *not_keys)
{
	int bad = 0;
	size_t plen = strlen(prefix);
	char err[MB_CONF_ERR_MAX];
	char name[64];
	if (!envp)
		return 0;
	for (char *const *e = envp; *e; e++) {
		const char *var = *e;
		if (strncmp(var, prefix, plen) != 0)
			continue;
		const char *eq = strchr(var, '=');
		if (!eq)
			continue;
		size_t vlen = (size_t)(eq - var);
		if (listed(not_keys, var, vlen))
			continue;
		size_t n = vlen - plen;
		if (n >= sizeof(name)) {
			mb_log(MB_LOG_WARNING, "environment %.*s: unknown key", (int)vlen, var);
			bad++;
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			char c = var[plen + i];
			name[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
		}
		name[n] = '\0';
		if (!mb_conf_find(table, name)) {
			mb_log(MB_LOG_WARNING, "environment %.*s: unknown key", (int)vlen, var);
			bad++;
			continue;
		}
		if (mb_conf_set(table, cfg, name, eq + 1, err, sizeof(err))) {
			mb_log(MB_LOG_WARNING, "environment %.*s: %s", (int)vlen, var, err);
			bad++;
		}
	}
	return bad;
}

void mb_conf_help(const struct mb_conf_key *table, int fd)
{
	char line[MB_LOG_LINE_MAX];
	for (const struct mb_conf_key *k = table; k->name; k++) {
		size_t n = mb_format(line, sizeof(line), "  %-20s %-8s default: %s\n",
				     k->name, type_names[k->type],
				     (k->def && k->def[0]) ? k->def : "(none)");
		(void)mb_write_all(fd, line, n);
		n = mb_format(line, sizeof(line), "  %-20s %s\n", "", k->help);
		(void)mb_write_all(fd, line, n);
		if (k->type == MB_CONF_ENUM && k->choices) {
			n = mb_format(line, sizeof(line), "  %-20s one of:", "");
			for (int i = 0; k->choices[i]; i++)
				n += mb_format(line + n, sizeof(line) - n, " %s", k->choices[i]);
			n += mb_format(line + n, sizeof(line) - n, "\n");
			(void)mb_write_all(fd, line, n);
		}
	}
}

size_t mb_conf_format(const struct mb_conf_key *k, const void *cfg, char *buf,
		      size_t cap)
{
	void *c = (void *)(uintptr_t)cfg;
	switch (k->type) {
	case MB_CONF_SIZE:
		return mb_format_size(buf, cap, *FIELD(c, k, uint64_t));
	case MB_CONF_U64:
		return mb_format(buf, cap, "%lu", (unsigned long)*FIELD(c, k, uint64_t));
	case MB_CONF_DURATION:
		return mb_format(buf, cap, "%lums", (unsigned long)*FIELD(c, k, uint64_t));
	case MB_CONF_BOOL:
		return mb_format(buf, cap, "%s", *FIELD(c, k, int) ? "yes" : "no");
	case MB_CONF_STRING:
		return mb_format(buf, cap, "%s", FIELD(c, k, char));
	case MB_CONF_ENUM:
		return mb_format(buf, cap, "%s", k->choices[*FIELD(c, k, int)]);
	case MB_CONF_LOGLEVEL:
		return mb_format(buf, cap, "%s", mb_log_level_name(*FIELD(c, k, int)));
	case MB_CONF_MODE:
		return mb_format(buf, cap, "%04o", *FIELD(c, k, unsigned));
	}
	return 0;
}
