/*
 * mb_log.c - async-signal-safe log writer (see mb_log.h).
 */
#include "mb_log.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static const char *log_ident = "";
static int log_fd = 2;
static int log_level = MB_LOG_NOTICE;
static mb_log_sink_fn log_sink;

void mb_log_init(const char *ident, int fd, int level)
{
	log_ident = ident ? ident : "";
	log_fd = fd;
	log_level = level;
}

void mb_log_set_level(int level)
{
	log_level = level;
}

int mb_log_get_level(void)
{
	return log_level;
}

void mb_log_set_sink(mb_log_sink_fn sink)
{
	log_sink = sink;
}

struct out {
	char *buf;
	size_t cap;
	size_t len;
};

static void out_char(struct out *o, char c)
{
	if (o->len + 1 < o->cap)
		o->buf[o->len++] = c;
}

static void out_pad(struct out *o, char c, int n)
{
	while (n-- > 0)
		out_char(o, c);
}

static void out_field(struct out *o, const char *s, size_t n, int width,
		      int left, char pad)
{
	int fill = width > (int)n ? width - (int)n : 0;
	if (!left) {
		/* Zero padding goes after a sign. */
		if (pad == '0' && n > 0 && s[0] == '-') {
			out_char(o, '-');
			s++;
			n--;
		}
		out_pad(o, pad, fill);
	}
	for (size_t i = 0; i < n; i++)
		out_char(o, s[i]);
	if (left)
		out_pad(o, ' ', fill);
}

static size_t utoa(char *tmp, uintmax_t v, unsigned base, int upper)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char rev[32];
	size_t n = 0;
	do {
		rev[n++] = digits[v % base];
		v /= base;
	} while (v != 0);
	for (size_t i = 0; i < n; i++)
		tmp[i] = rev[n - 1 - i];
	return n;
}

size_t mb_vformat(char *buf, size_t cap, const char *fmt, va_list ap)
{
	struct out o = { buf, cap, 0 };
	char tmp[40];

	for (const char *p = fmt; *p; p++) {
		if (*p != '%') {
			out_char(&o, *p);
			continue;
		}
		const char *start = p++;
		int left = 0, width = 0, prec = -1;
		char pad = ' ';
		for (;; p++) {
			if (*p == '-')
				left = 1;
			else if (*p == '0')
				pad = '0';
			else
				break;
		}
		if (*p == '*') {
			width = va_arg(ap, int);
			p++;
		} else {
			while (*p >= '0' && *p <= '9')
				width = width * 10 + (*p++ - '0');
		}
		if (*p == '.') {
			p++;
			prec = 0;
			if (*p == '*') {
				prec = va_arg(ap, int);
				p++;
			} else {
				while (*p >= '0' && *p <= '9')
					prec = prec * 10 + (*p++ - '0');
			}
		}
		int lng = 0; /* 0 int, 1 long, 2 long long, 3 size_t, 4 intmax */
		if (*p == 'l') {
			lng = 1;
			if (*++p == 'l') {
				lng = 2;
				p++;
			}
		} else if (*p == 'z') {
			lng = 3;
			p++;
		} else if (*p == 'j') {
			lng = 4;
			p++;
		}
		switch (*p) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			size_t n = 0;
			while (s[n] && (prec < 0 || n < (size_t)prec))
				n++;
			out_field(&o, s, n, width, left, ' ');
			break;
		}
		case 'c':
			tmp[0] = (char)va_arg(ap, int);
			out_field(&o, tmp, 1, width, left, ' ');
			break;
		case 'd':
		case 'i': {
			intmax_t v;
			switch (lng) {
			case 1: v = va_arg(ap, long); break;
			case 2: v = va_arg(ap, long long); break;
			case 3: v = va_arg(ap, ssize_t); break;
			case 4: v = va_arg(ap, intmax_t); break;
			default: v = va_arg(ap, int); break;
			}
			size_t n = 0;
			uintmax_t mag = v < 0 ? (uintmax_t)0 - (uintmax_t)v : (uintmax_t)v;
			if (v < 0)
				tmp[n++] = '-';
			n += utoa(tmp + n, mag, 10, 0);
			out_field(&o, tmp, n, width, left, pad);
			break;
		}
		case 'u':
		case 'o':
		case 'x':
		case 'X': {
			uintmax_t v;
			switch (lng) {
			case 1: v = va_arg(ap, unsigned long); break;
			case 2: v = va_arg(ap, unsigned long long); break;
			case 3: v = va_arg(ap, size_t); break;
			case 4: v = va_arg(ap, uintmax_t); break;
			default: v = va_arg(ap, unsigned); break;
			}
			unsigned base = *p == 'u' ? 10 : *p == 'o' ? 8 : 16;
			size_t n = utoa(tmp, v, base, *p == 'X');
			out_field(&o, tmp, n, width, left, pad);
			break;
		}
		case 'p': {
			uintptr_t v = (uintptr_t)va_arg(ap, void *);
			tmp[0] = '0';
			tmp[1] = 'x';
			size_t n = 2 + utoa(tmp + 2, v, 16, 0);
			out_field(&o, tmp, n, width, left, ' ');
			break;
		}
		case '%':
			out_char(&o, '%');
			break;
		default:
			/* Unknown conversion: print it as written. */
			for (const char *q = start; q <= p && *q; q++)
				out_char(&o, *q);
			if (!*p)
				p--;
			break;
		}
	}
	if (cap > 0)
		buf[o.len] = '\0';
	return o.len;
}

size_t mb_format(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t n = mb_vformat(buf, cap, fmt, ap);
	va_end(ap);
	return n;
}

int mb_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static const char *const level_names[] = {
	[MB_LOG_ERR] = "err",
	[MB_LOG_WARNING] = "warning",
	[MB_LOG_NOTICE] = "notice",
	[MB_LOG_INFO] = "info",
	[MB_LOG_DEBUG] = "debug",
};

const char *mb_log_level_name(int level)
{
	if (level < MB_LOG_ERR || level > MB_LOG_DEBUG)
		return "?";
	return level_names[level];
}

int mb_log_level_parse(const char *name)
{
	if (!name)
		return -1;
	if (name[0] >= '3' && name[0] <= '7' && name[1] == '\0')
		return name[0] - '0';
	for (int l = MB_LOG_ERR; l <= MB_LOG_DEBUG; l++)
		if (strcmp(name, level_names[l]) == 0)
			return l;
	if (strcmp(name, "error") == 0)
		return MB_LOG_ERR;
	if (strcmp(name, "warn") == 0)
		return MB_LOG_WARNING;
	return -1;
}

void mb_vlog(int level, const char *fmt, va_list ap)
{
	if (level > log_level || (log_fd < 0 && !log_sink))
		return;
	int saved = errno;
	char line[MB_LOG_LINE_MAX];
	size_t n = 0;
	if (log_ident[0])
		n = mb_format(line, sizeof(line) - 1, "%s: ", log_ident);
	if (level <= MB_LOG_WARNING)
		n += mb_format(line + n, sizeof(line) - 1 - n, "%s: ",
			       mb_log_level_name(level));
	n += mb_vformat(line + n, sizeof(line) - 1 - n, fmt, ap);
	line[n++] = '\n';
	if (log_sink)
		log_sink(level, line, n);
	else
		(void)mb_write_all(log_fd, line, n);
	errno = saved;
}

void mb_log(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mb_vlog(level, fmt, ap);
	va_end(ap);
}
