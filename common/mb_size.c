/*
 * mb_size.c - amount, number and duration parsing (see mb_size.h).
 */
#include "mb_size.h"
#include "mb_log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static const char *skip_ws(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

static int at_end(const char *s)
{
	return *skip_ws(s) == '\0';
}

static int lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* Digits into v; returns the end, or NULL on overflow or no digits. */
static const char *parse_digits(const char *s, uint64_t *v)
{
	uint64_t acc = 0;
	const char *p = s;
	while (*p >= '0' && *p <= '9') {
		unsigned d = (unsigned)(*p - '0');
		if (acc > (UINT64_MAX - d) / 10)
			return NULL;
		acc = acc * 10 + d;
		p++;
	}
	if (p == s)
		return NULL;
	*v = acc;
	return p;
}

int mb_parse_u64(const char *s, uint64_t *out)
{
	if (!s)
		return -EINVAL;
	s = skip_ws(s);
	uint64_t v = 0;
	const char *p;
	if (s[0] == '0' && lower(s[1]) == 'x') {
		p = s + 2;
		if (!*p)
			return -EINVAL;
		for (; *p; p++) {
			int c = lower(*p), d;
			if (c >= '0' && c <= '9')
				d = c - '0';
			else if (c >= 'a' && c <= 'f')
				d = c - 'a' + 10;
			else
				break;
			if (v >> 60)
				return -ERANGE;
			v = v * 16 + (unsigned)d;
		}
	} else {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		p = parse_digits(s, &v);
		if (!p)
			return -ERANGE;
	}
	if (!at_end(p))
		return -EINVAL;
	*out = v;
	return 0;
}

static int mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
	if (a != 0 && b > UINT64_MAX / a)
		return -ERANGE;
	*out = a * b;
	return 0;
}

/* An absolute amount with an optional unit. */
static int parse_amount(const char *s, uint64_t *out)
{
	uint64_t v;
	s = skip_ws(s);
	if (*s < '0' || *s > '9')
		return -EINVAL;
	const char *p = parse_digits(s, &v);
	if (!p)
		return -ERANGE;
	p = skip_ws(p);
	uint64_t mult = 1;
	int binary = 1; /* a K/M/G/T unit, which may be followed by "B" or "iB" */
	switch (lower(*p)) {
	case '\0': binary = 0; break;
	case 'b': mult = 1; binary = 0; p++; break;
	case 'k': mult = UINT64_C(1) << 10; p++; break;
	case 'm': mult = UINT64_C(1) << 20; p++; break;
	case 'g': mult = UINT64_C(1) << 30; p++; break;
	case 't': mult = UINT64_C(1) << 40; p++; break;
	case 'p': {
		long ps = sysconf(_SC_PAGESIZE);
		mult = ps > 0 ? (uint64_t)ps : 4096;
		binary = 0;
		p++;
		break;
	}
	default:
		return -EINVAL;
	}
	if (binary) {
		/* Accept K, KB, KiB (any case). */
		if (lower(p[0]) == 'i' && lower(p[1]) == 'b')
			p += 2;
		else if (lower(p[0]) == 'b')
			p++;
	}
	if (!at_end(p))
		return -EINVAL;
	return mul_ok(v, mult, out);
}

static int parse_percent(const char *s, uint64_t base, uint64_t *out)
{
	uint64_t whole, frac = 0, scale = 1;
	const char *p = parse_digits(skip_ws(s), &whole);
	if (!p)
		return -EINVAL;
	if (*p == '.') {
		p++;
		const char *q = p;
		while (*p >= '0' && *p <= '9' && scale < 1000000) {
			frac = frac * 10 + (uint64_t)(*p - '0');
			scale *= 10;
			p++;
		}
		if (p == q)
			return -EINVAL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	p = skip_ws(p);
	if (*p != '%' || !at_end(p + 1))
		return -EINVAL;
	if (base == 0)
		return -EINVAL;
	if (whole > 100 || (whole == 100 && frac > 0))
		return -ERANGE;
	/* base * (whole + frac/scale) / 100 without overflow: base < 2^64 and
	 * the factor is at most 100, so split base. */
	uint64_t per = whole * scale + frac; /* <= 100 * 10^6 */
	uint64_t hi = base / (100 * scale), lo = base % (100 * scale);
	*out = hi * per + (lo * per) / (100 * scale);
	return 0;
}

static const char allx[] = "all-except";

int mb_size_relative(const char *s)
{
	return s && (strncmp(skip_ws(s), allx, sizeof(allx) - 1) == 0 || strchr(s, '%'));
}

int mb_parse_size(const char *s, uint64_t base, uint64_t *out)
{
	if (!s)
		return -EINVAL;
	s = skip_ws(s);
	if (strncmp(s, allx, sizeof(allx) - 1) == 0) {
		uint64_t keep;
		const char *rest = s + sizeof(allx) - 1;
		if (*rest != ' ' && *rest != '\t')
			return -EINVAL;
		int rc = parse_amount(rest, &keep);
		if (rc)
			return rc;
		if (base == 0)
			return -EINVAL;
		if (keep > base)
			return -ERANGE;
		*out = base - keep;
		return 0;
	}
	if (strchr(s, '%'))
		return parse_percent(s, base, out);
	return parse_amount(s, out);
}

int mb_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -EINVAL;
}

int mb_parse_duration_ms(const char *s, uint64_t *out)
{
	if (!s)
		return -EINVAL;
	uint64_t v;
	const char *p = parse_digits(skip_ws(s), &v);
	if (!p)
		return *skip_ws(s) >= '0' && *skip_ws(s) <= '9' ? -ERANGE : -EINVAL;
	p = skip_ws(p);
	uint64_t mult;
	if (*p == '\0' || strcmp(p, "ms") == 0)
		mult = 1;
	else if (strcmp(p, "s") == 0)
		mult = 1000;
	else if (strcmp(p, "m") == 0 || strcmp(p, "min") == 0)
		mult = 60000;
	else if (strcmp(p, "h") == 0)
		mult = 3600000;
	else
		return -EINVAL;
	return mul_ok(v, mult, out);
}

int mb_parse_mode(const char *s, unsigned *out)
{
	if (!s || !*s)
		return -EINVAL;
	unsigned v = 0;
	const char *p = skip_ws(s);
	if (!*p)
		return -EINVAL;
	for (; *p >= '0' && *p <= '7'; p++) {
		v = v * 8 + (unsigned)(*p - '0');
		if (v > 07777)
			return -ERANGE;
	}
	if (!at_end(p))
		return -EINVAL;
	*out = v;
	return 0;
}

int mb_meminfo_text(const char *text, const char *key, uint64_t *bytes)
{
	size_t klen = strlen(key);
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			uint64_t kb;
			const char *p = parse_digits(skip_ws(line + klen + 1), &kb);
			if (!p)
				return -EINVAL;
			p = skip_ws(p);
			if (strncmp(p, "kB", 2) == 0)
				return mul_ok(kb, 1024, bytes) ? -ERANGE : 0;
			*bytes = kb;
			return 0;
		}
		line = nl ? nl + 1 : NULL;
	}
	return -ENOENT;
}

uint64_t mb_meminfo_field(const char *path, const char *key)
{
	char buf[4096];
	int fd = open(path ? path : "/proc/meminfo", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf) - 1)
			break;
	}
	close(fd);
	buf[len] = '\0';
	uint64_t bytes;
	return mb_meminfo_text(buf, key, &bytes) == 0 ? bytes : 0;
}

uint64_t mb_meminfo_total(const char *path)
{
	return mb_meminfo_field(path, "MemTotal");
}

size_t mb_format_size(char *buf, size_t cap, uint64_t bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	unsigned u = 0;
	uint64_t whole = bytes, rem = 0;
	while (whole >= 1024 && u < 6) {
		rem = whole % 1024;
		whole /= 1024;
		u++;
	}
	if (u == 0)
		return mb_format(buf, cap, "%lu B", (unsigned long)bytes);
	unsigned tenth = (unsigned)(rem * 10 / 1024);
	return mb_format(buf, cap, "%lu.%u %s", (unsigned long)whole, tenth, units[u]);
}

int mb_parse_hundredths(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	int frac = -1, digits = 0;
	for (; *s && *s != '%'; s++) {
		if (*s == '.' && frac < 0) {
			frac = 0;
			continue;
		}
		if (*s < '0' || *s > '9' || frac >= 2 || v > UINT64_MAX / 1000)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
		digits++;
		if (frac >= 0)
			frac++;
	}
	if (*s != '%' || s[1] != '\0' || digits == 0 || frac == 0)
		return -EINVAL;
	for (int k = frac < 0 ? 0 : frac; k < 2; k++)
		v *= 10;
	*out = v;
	return 0;
}
