/*
 * mb_log.h - an async-signal-safe, allocation-free log writer.
 *
 * Used by every component, including code that runs inside malloc: it
 * formats into a stack buffer with its own printf subset and emits the line
 * with one write(2).  No stdio, no heap, no locks.
 *
 * Supported conversions: %s %c %d %i %u %o %x %X %p %% with the length
 * modifiers l, ll, z and j, the flags '-' and '0', a field width and, for
 * %s, a precision (also as ".*").  Anything else prints literally.
 */
#ifndef MB_LOG_H
#define MB_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

/* Levels use syslog's numbering so that they pass straight to syslog(3). */
enum mb_log_level {
	MB_LOG_ERR = 3,
	MB_LOG_WARNING = 4,
	MB_LOG_NOTICE = 5,
	MB_LOG_INFO = 6,
	MB_LOG_DEBUG = 7,
};

#define MB_LOG_LINE_MAX 512

/* A sink receives each complete line (with its newline) instead of the fd. */
typedef void (*mb_log_sink_fn)(int level, const char *line, size_t len);

/* Program name prefix, destination fd (-1: discard) and the highest level
 * that is written.  Defaults: "", fd 2, MB_LOG_NOTICE. */
void mb_log_init(const char *ident, int fd, int level);
void mb_log_set_level(int level);
int mb_log_get_level(void);
void mb_log_set_sink(mb_log_sink_fn sink);

void mb_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void mb_vlog(int level, const char *fmt, va_list ap);

/* snprintf subset with the conversions above; always NUL-terminates when
 * cap > 0 and returns the length written (truncated output is cut). */
size_t mb_format(char *buf, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
size_t mb_vformat(char *buf, size_t cap, const char *fmt, va_list ap);

/* write(2) until done, retrying EINTR; 0 or -errno. */
int mb_write_all(int fd, const void *buf, size_t len);

/* "err", "warning", "notice", "info", "debug" (or 3..7); -1 if unknown. */
int mb_log_level_parse(const char *name);
const char *mb_log_level_name(int level);

#endif /* MB_LOG_H */
