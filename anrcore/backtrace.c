/*
 * backtrace.c - call stacks for the debug features of gmalloc and
 * anr_malloc, and where a code address lies (object file and offset).
 *
 * Capture uses the DWARF unwinder of libgcc (_Unwind_Backtrace): no frame
 * pointers are needed, and with glibc >= 2.35 and GCC >= 12 finding the
 * unwind table of an address (_dl_find_object) takes no lock and makes no
 * allocation.  The unwinder may still call malloc on its own (a program
 * that registered unwind tables with __register_frame has them sorted on
 * first use): a thread that re-enters capture while it is unwinding gets
 * an empty stack instead of recursing.
 *
 * Naming reads /proc/self/maps with open/read on a caller-provided table:
 * no heap, no stdio, no loader lock, so a report written from a signal
 * handler that interrupted malloc or dlopen can name frames too.
 */
#include "config.h"

#include <elf.h>
#include <errno.h>
#include <link.h>
#include <fcntl.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>
#include <unwind.h>

#include "anrcore.h"
#include "mb_log.h"

/* Frames of the allocator itself that may come before the caller's. */
#define ANR_BT_SLACK 8

struct bt_walk {
	uintptr_t *out;
	size_t n, max, want;
	size_t first;          /* index of the caller's frame, or max */
	uintptr_t caller;
};

static __thread int anrc_bt_busy __attribute__((tls_model("initial-exec")));

static _Unwind_Reason_Code bt_step(struct _Unwind_Context *ctx, void *arg)
{
	struct bt_walk *w = arg;
	uintptr_t ip = _Unwind_GetIP(ctx);

	if (ip == 0 || w->n >= w->max)
		return _URC_END_OF_STACK;
	if (ip == w->caller && w->first == w->max)
		w->first = w->n;
	w->out[w->n++] = ip;
	/* Each frame costs a table lookup: stop once the caller's are in. */
	if (w->first != w->max && w->n - w->first >= w->want)
		return _URC_END_OF_STACK;
	return _URC_NO_REASON;
}

size_t
anrc_backtrace(uintptr_t *out, size_t depth, const void *caller)
{
	uintptr_t tmp[ANR_BT_MAX + ANR_BT_SLACK];
	struct bt_walk w;
	size_t n = 0;

	if (depth > ANR_BT_MAX)
		depth = ANR_BT_MAX;
	if (depth == 0)
		return 0;
	if (!anrc_bt_busy) {
		anrc_bt_busy = 1;
		w.out = tmp;
		w.n = 0;
		w.max = depth + ANR_BT_SLACK;
		w.want = depth;
		w.first = w.max;
		w.caller = (uintptr_t)caller;
		_Unwind_Backtrace(bt_step, &w);
		anrc_bt_busy = 0;
		if (w.first < w.n) {
			n = w.n - w.first;
			if (n > depth)
				n = depth;
			memcpy(out, tmp + w.first, n * sizeof(out[0]));
		}
	}
	/* The unwinder lost the caller (code without unwind tables) or was
	 * busy: the caller alone is still worth keeping. */
	if (n == 0 && caller) {
		out[0] = (uintptr_t)caller;
		n = 1;
	}
	for (size_t i = n; i < depth; i++)
		out[i] = 0;
	return n;
}

/* ---- naming code addresses ---- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parse hex digits at *s; returns -1 if there were none. */
static int parse_hex(const char **s, const char *end, uintptr_t *v)
{
	const char *p = *s;
	uintptr_t x = 0;
	int d;

	while (p < end && (d = hexval(*p)) >= 0) {
		if (x >> (sizeof(x) * 8 - 4))
			return -1;
		x = (x << 4) | (uintptr_t)d;
		p++;
	}
	if (p == *s)
		return -1;
	*s = p;
	*v = x;
	return 0;
}

static void skip_field(const char **s, const char *end)
{
	while (*s < end && **s != ' ')
		(*s)++;
	while (*s < end && **s == ' ')
		(*s)++;
}

/*
 * The main executable may be position-dependent (ET_EXEC, loaded at its
 * link addresses): its load bias comes from its program headers, found
 * through the auxiliary vector, so no mapped file is ever read.
 */
static int exe_bias(uintptr_t *bias)
{
	const ElfW(Phdr) *ph = (const ElfW(Phdr) *)getauxval(AT_PHDR);
	unsigned long n = getauxval(AT_PHNUM);

	for (unsigned long i = 0; ph && i < n; i++)
		if (ph[i].p_type == PT_PHDR) {
			*bias = (uintptr_t)ph - ph[i].p_vaddr;
			return 0;
		}
	return -1;
}

/*
 * The base a file is loaded at: addresses in the file (what nm prints and
 * addr2line takes) are ip - base.  A shared object or a PIE is linked at
 * 0, so its base is the start of its mapping at file offset 0; the main
 * executable's is its load bias.
 */
static uintptr_t file_base(const struct anrc_modmap *m, const char *path, size_t len,
			   uintptr_t start, uintptr_t off)
{
	if (m->first_len != len || memcmp(m->first_path, path, len) != 0)
		return start - off;
	if (m->exe_known && m->exe_phdr >= m->first_start && m->exe_phdr < m->first_end)
		return m->exe_bias;
	return m->first_start;
}

/*
 * One line of /proc/self/maps:
 *   start-end perms offset dev inode   path
 * The mapping at offset 0 of each file is remembered (it gives the base);
 * executable mappings backed by a file are kept.
 */
static void maps_line(struct anrc_modmap *m, const char *s, const char *end)
{
	uintptr_t start, stop, off;
	const char *perms;
	struct anrc_module *mod;
	size_t len;
	int exec;

	if (parse_hex(&s, end, &start) != 0 || s >= end || *s++ != '-' ||
	    parse_hex(&s, end, &stop) != 0)
		return;
	while (s < end && *s == ' ')
		s++;
	perms = s;
	if (end - perms < 4)
		return;
	exec = perms[2] == 'x';
	skip_field(&s, end);
	if (parse_hex(&s, end, &off) != 0)
		return;
	while (s < end && *s == ' ')
		s++;
	skip_field(&s, end); /* dev */
	skip_field(&s, end); /* inode */
	if (s >= end || *s != '/')
		return; /* anonymous, [vdso], [stack] ... */
	len = (size_t)(end - s);
	if (off == 0 && perms[0] == 'r' && len <= sizeof(m->first_path)) {
		memcpy(m->first_path, s, len);
		m->first_len = len;
		m->first_start = start;
		m->first_end = stop;
	}
	if (!exec)
		return;
	if (m->n >= ANR_MODMAP_MAX || m->pool_used + len + 1 > sizeof(m->pool)) {
		m->truncated = 1;
		return;
	}
	mod = &m->mod[m->n++];
	mod->start = start;
	mod->end = stop;
	mod->base = file_base(m, s, len, start, off);
	mod->path = (uint32_t)m->pool_used;
	memcpy(m->pool + m->pool_used, s, len);
	m->pool[m->pool_used + len] = '\0';
	m->pool_used += len + 1;
}

int
anrc_modmap_load(struct anrc_modmap *m)
{
	char buf[4096];
	size_t have = 0;
	int fd;

	m->n = 0;
	m->pool_used = 0;
	m->truncated = 0;
	m->first_len = 0;
	m->exe_known = exe_bias(&m->exe_bias) == 0;
	m->exe_phdr = (uintptr_t)getauxval(AT_PHDR);
	do
		fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t r = read(fd, buf + have, sizeof(buf) - have);
		char *nl, *start;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		have += (size_t)r;
		start = buf;
		while ((nl = memchr(start, '\n', have - (size_t)(start - buf))) != NULL) {
			maps_line(m, start, nl);
			start = nl + 1;
		}
		have -= (size_t)(start - buf);
		memmove(buf, start, have);
		if (have == sizeof(buf))
			have = 0; /* a line longer than the buffer: skip it */
	}
	if (have)
		maps_line(m, buf, buf + have);
	close(fd);
	return 0;
}

size_t
anrc_where(const struct anrc_modmap *m, uintptr_t ip, char *buf, size_t len)
{
	for (size_t i = 0; m && i < m->n; i++) {
		const struct anrc_module *mod = &m->mod[i];
		if (ip >= mod->start && ip < mod->end)
			return mb_format(buf, len, "%s+0x%lx", m->pool + mod->path,
					 (unsigned long)(ip - mod->base));
	}
	return mb_format(buf, len, "0x%lx", (unsigned long)ip);
}
