/*
 * mb_conf.h - one table per component describes every config key; the
 * file parser, the environment reader, --help and the man page all come
 * from (or are checked against) that table.
 *
 * File syntax, one setting per line:
 *     # comment
 *     key = value        # trailing comment after white space
 *     key = "value with # in it"
 * Keys are case-sensitive.  A bad line (unknown key, bad value, no '=',
 * too long) is reported as "path:line: message" through mb_log and does not
 * stop the parse; the key keeps its previous value.  No heap allocation, no
 * stdio: gmalloc parses its config inside malloc.
 */
#ifndef MB_CONF_H
#define MB_CONF_H

#include <stddef.h>
#include <stdint.h>

#define MB_CONF_MAX_LINE 1024
#define MB_CONF_ERR_MAX 160

enum mb_conf_type {
	MB_CONF_SIZE,     /* uint64_t bytes; mb_parse_size with MemTotal as base */
	MB_CONF_U64,      /* uint64_t, at most size when size is not 0 */
	MB_CONF_BOOL,     /* int, 0 or 1 */
	MB_CONF_STRING,   /* char[size] */
	MB_CONF_ENUM,     /* int, index into choices */
	MB_CONF_DURATION, /* uint64_t milliseconds, at most INT32_MAX */
	MB_CONF_LOGLEVEL, /* int, MB_LOG_* */
	MB_CONF_MODE,     /* unsigned, octal file mode */
};

struct mb_conf_key {
	const char *name;
	enum mb_conf_type type;
	size_t offset;              /* of the field in the component's struct */
	size_t size;                /* MB_CONF_STRING: buffer size; MB_CONF_U64: largest value (0: any) */
	const char *def;            /* default, as text; parsed by mb_conf_defaults */
	const char *help;           /* one line for --help and the man page */
	const char *const *choices; /* MB_CONF_ENUM: NULL-terminated */
};

/* A table ends with an entry whose name is NULL. */
#define MB_CONF_END { NULL, MB_CONF_U64, 0, 0, NULL, NULL, NULL }

const struct mb_conf_key *mb_conf_find(const struct mb_conf_key *table,
				       const char *name);

/* Set one key from text.  0, or -1 with a message in err. */
int mb_conf_set(const struct mb_conf_key *table, void *cfg, const char *name,
		const char *value, char *err, size_t errcap);

/* Apply every default; returns the number of defaults that did not parse
 * (a bug in the table, asserted by tests). */
int mb_conf_defaults(const struct mb_conf_key *table, void *cfg);

/*
 * Parse a file.  Returns the number of bad lines (each reported with
 * path:line), or -errno if the file cannot be opened (not reported: the
 * caller decides whether a missing file matters).
 */
int mb_conf_load(const struct mb_conf_key *table, void *cfg, const char *path);

/* Parse text already in memory (tests, fuzzing); origin names it in messages. */
int mb_conf_parse_text(const struct mb_conf_key *table, void *cfg,
		       const char *origin, const char *text, size_t len);

/*
 * Apply PREFIX_KEY environment variables: key "free_high" with prefix
 * "GMALLOC_" is GMALLOC_FREE_HIGH.  Bad values, and PREFIX_ variables that
 * name no key (a typo must not pass silently), are reported naming the
 * variable.  not_keys lists the full names of PREFIX_ variables the caller
 * reads itself (e.g. "GMALLOC_CONF"); NULL-terminated, or NULL for none.
 * Returns the number of bad variables.
 */
int mb_conf_env(const struct mb_conf_key *table, void *cfg, const char *prefix,
		char *const *envp, const char *const *not_keys);

/* Print the table to fd: one key per line with type, default and help. */
void mb_conf_help(const struct mb_conf_key *table, int fd);

/* Render the current value of a key as text (for status and reports). */
size_t mb_conf_format(const struct mb_conf_key *key, const void *cfg,
		      char *buf, size_t cap);

#endif /* MB_CONF_H */
