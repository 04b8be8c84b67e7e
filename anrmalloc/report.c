/*
 * report.c - the heap report, heap verification and the debug socket.
 *
 * The report never holds the heap lock for long: it copies the recorder
 * and the block table in chunks of AM_CHUNK entries into stack buffers,
 * drops the lock, then formats and writes.  A slow reader of the debug
 * socket therefore only slows the low-priority thread that serves it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "am_internal.h"
#include "mb_log.h"
#include "mb_size.h"
#include "mb_thread.h"

#define API __attribute__((visibility("default")))
#define AM_OUT_BUF 4096
#define AM_SEND_TIMEOUT_S 2
#define AM_LOWEST_NICE 19
#define AM_LISTEN_BACKLOG 4
#define AM_SOCKET_MODE 0600
#define AM_ACCEPT_BACKOFF_MS 100

/* A small buffered writer; sockets get MSG_NOSIGNAL so a reader that
 * goes away cannot kill the process with SIGPIPE. */
struct am_out {
	int fd, err, sock;
	size_t len;
	char buf[AM_OUT_BUF];
};

static void am_out_flush(struct am_out *o)
{
	size_t off = 0;

	while (off < o->len && !o->err) {
		ssize_t n = o->sock ?
			send(o->fd, o->buf + off, o->len - off, MSG_NOSIGNAL) :
			write(o->fd, o->buf + off, o->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			o->err = errno ? errno : EIO;
		else
			off += (size_t)n;
	}
	o->len = 0;
}

static void am_out_line(struct am_out *o, const char *line, size_t n)
{
	if (o->len + n > sizeof(o->buf))
		am_out_flush(o);
	if (n > sizeof(o->buf))
		n = sizeof(o->buf);
	memcpy(o->buf + o->len, line, n);
	o->len += n;
}

__attribute__((format(printf, 2, 3)))
static void am_outf(struct am_out *o, const char *fmt, ...)
{
	char line[MB_LOG_LINE_MAX];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = mb_vformat(line, sizeof(line), fmt, ap);
	va_end(ap);
	am_out_line(o, line, n);
}

static void am_out_open(struct am_out *o, int fd)
{
	struct stat st;

	o->fd = fd;
	o->err = 0;
	o->len = 0;
	o->sock = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

static void am_report_stats(struct anr_malloc_heap *h, struct am_out *o)
{
	struct anr_malloc_stats s;
	char a[32], b[32], c[32], d[32];

	anr_heap_stats(h, &s);
	mb_format_size(a, sizeof(a), s.budget);
	mb_format_size(b, sizeof(b), s.resident);
	mb_format_size(c, sizeof(c), s.in_use);
	mb_format_size(d, sizeof(d), s.reserved);
	am_outf(o, "== heap %s (pid %d)\n", h->cfg.name, (int)getpid());
	am_outf(o, "budget %s resident %s in_use %s reserved %s\n", a, b, c, d);
	am_outf(o, "live_blocks %zu live_bytes %zu peak_in_use %zu free_resident %zu\n",
		s.live_blocks, s.live_bytes, s.peak_in_use, s.free_resident);
	am_outf(o, "allocs %llu frees %llu reallocs %llu failures %llu\n",
		(unsigned long long)s.allocs, (unsigned long long)s.frees,
		(unsigned long long)s.reallocs, (unsigned long long)s.failures);
	am_outf(o, "need_calls %llu give_back_requests %llu given_back_bytes %llu\n",
		(unsigned long long)s.need_calls,
		(unsigned long long)s.give_back_requests,
		(unsigned long long)s.given_back_bytes);
	am_outf(o, "broker_requests %llu broker_granted_bytes %llu broker_balance %lld\n",
		(unsigned long long)s.broker_requests,
		(unsigned long long)s.broker_granted_bytes,
		(long long)s.broker_balance);
	am_outf(o, "gc_runs %llu gc_freed_blocks %llu gc_freed_bytes %llu\n",
		(unsigned long long)s.gc_runs,
		(unsigned long long)s.gc_freed_blocks,
		(unsigned long long)s.gc_freed_bytes);
	am_outf(o, "guard_errors %llu bad_frees %llu deferred_frees %llu "
		"oom_events %llu oom %d\n",
		(unsigned long long)s.guard_errors,
		(unsigned long long)s.bad_frees,
		(unsigned long long)s.deferred_frees,
		(unsigned long long)s.oom_events, anr_oom_get(h, NULL));
	am_outf(o, "madvise_calls %llu madvised_bytes %llu\n",
		(unsigned long long)s.madvise_calls,
		(unsigned long long)s.madvised_bytes);
}

static const char *am_op_name(uint32_t kind)
{
	switch (kind) {
	case ANR_OP_MALLOC: return "malloc";
	case ANR_OP_FREE: return "free";
	case ANR_OP_REALLOC: return "realloc";
	case ANR_OP_MEMALIGN: return "memalign";
	case ANR_OP_FAIL: return "fail";
	default: return "?";
	}
}

static void am_report_recorder(struct anr_malloc_heap *h, struct am_out *o)
{
	struct anr_op ops[AM_CHUNK];
	uint64_t pos, first;

	am_lock(h);
	pos = h->ring_pos;
	first = pos > h->ring_n ? pos - h->ring_n : 0;
	am_unlock(h);
	am_outf(o, "== recorder (%zu slots, %llu operations)\n", h->ring_n,
		(unsigned long long)pos);
	while (first < pos) {
		size_t n = 0;

		am_lock(h);
		/* Entries overwritten since the snapshot are skipped. */
		if (h->ring_pos > h->ring_n && first < h->ring_pos - h->ring_n)
			first = h->ring_pos - h->ring_n;
		while (n < AM_CHUNK && first + n < pos)
			ops[n] = h->ring[(first + n) % h->ring_n], n++;
		am_unlock(h);
		for (size_t i = 0; i < n; i++)
			am_outf(o, "op #%llu %s tid=%u ptr=%p old=%p size=%zu caller=%p\n",
				(unsigned long long)ops[i].seq,
				am_op_name(ops[i].kind), ops[i].tid, ops[i].ptr,
				ops[i].old, ops[i].size, ops[i].caller);
		first += n;
	}
}

void am_row_fill(const struct anr_malloc_heap *h, uint32_t slot, struct am_row *r)
{
	const struct am_slot *s = &h->slots[slot];
	const uintptr_t *f;
	size_t nf = am_frames(h, slot, &f);

	r->base = s->base;
	r->user = AM_USER(s);
	r->size = s->size;
	r->seq = s->seq;
	r->caller = s->caller;
	r->file = s->file;
	r->func = s->func;
	r->line = s->line;
	r->tid = s->tid;
	r->dinfo = s->dinfo_len;
	r->nframes = nf < AM_REPORT_FRAMES ? nf : AM_REPORT_FRAMES;
	memcpy(r->frames, f, r->nframes * sizeof(f[0]));
}

static size_t am_copy_rows(struct anr_malloc_heap *h, size_t *i,
			   struct am_row *rows)
{
	size_t n = 0;

	am_lock(h);
	for (; *i < h->slots_hw && n < AM_CHUNK; (*i)++) {
		struct am_slot *s = &h->slots[*i];

		if (s->state != AM_SLOT_LIVE)
			continue;
		am_row_fill(h, (uint32_t)*i, &rows[n]);
		n++;
	}
	am_unlock(h);
	return n;
}

/* Mapped files, to name stack frames: one table for all reports. */
static pthread_mutex_t am_map_lock = PTHREAD_MUTEX_INITIALIZER;
static struct anrc_modmap am_map;

const struct anrc_modmap *am_map_acquire(void)
{
	pthread_mutex_lock(&am_map_lock);
	return anrc_modmap_load(&am_map) == 0 ? &am_map : NULL;
}

void am_map_release(void)
{
	pthread_mutex_unlock(&am_map_lock);
}

/* In a fork child: a report of another thread of the parent held the
 * table (its load or its writes) and ended with that thread; each use
 * loads the table again. */
void am_map_fork_child(void)
{
	pthread_mutex_init(&am_map_lock, NULL);
}

void am_frame_lines(int fd, struct am_out *o, const struct anrc_modmap *map,
		    const uintptr_t *frames, size_t n)
{
	char line[MB_LOG_LINE_MAX];

	for (size_t f = 0; f < n; f++) {
		size_t m = mb_format(line, sizeof(line), "    #%zu ", f);
		m += anrc_where(map, frames[f], line + m, sizeof(line) - m - 1);
		line[m++] = '\n';
		if (o)
			am_out_line(o, line, m);
		else
			(void)mb_write_all(fd, line, m);
	}
}

static void am_report_blocks(struct anr_malloc_heap *h, struct am_out *o)
{
	struct am_row rows[AM_CHUNK];
	size_t i = 0, n, total = 0;
	const struct anrc_modmap *map = NULL;

	if (h->cfg.stack_depth)
		map = am_map_acquire();
	am_outf(o, "== live blocks\n");
	if (!h->track) {
		am_outf(o, "== no block records (track_blocks = no)\n");
		if (map)
			am_map_release();
		return;
	}
	while ((n = am_copy_rows(h, &i, rows)) != 0) {
		for (size_t k = 0; k < n; k++) {
			struct am_row *r = &rows[k];
			char line[MB_LOG_LINE_MAX];
			size_t m;

			m = mb_format(line, sizeof(line),
				      "block %p size=%zu alloc=#%llu tid=%u caller=%p",
				      r->user, r->size, (unsigned long long)r->seq,
				      r->tid, r->caller);
			if (r->file)
				m += mb_format(line + m, sizeof(line) - m,
					       " at %s:%d (%s)", r->file, r->line,
					       r->func ? r->func : "?");
			if (r->dinfo)
				m += mb_format(line + m, sizeof(line) - m,
					       " debug_info=%u", r->dinfo);
			m += mb_format(line + m, sizeof(line) - m, "\n");
			am_out_line(o, line, m);
			am_frame_lines(-1, o, map, r->frames, r->nframes);
		}
		total += n;
		if (o->err)
			break;
	}
	if (h->cfg.stack_depth)
		am_map_release();
	am_outf(o, "== %zu live blocks\n", total);
}

API int anr_heap_report(anr_heap_t *h, int fd, unsigned what)
{
	struct am_out o;

	am_out_open(&o, fd);
	if (what & ANR_REPORT_STATS)
		am_report_stats(h, &o);
	if ((what & ANR_REPORT_RECORDER) && h->ring_n)
		am_report_recorder(h, &o);
	if (what & ANR_REPORT_BLOCKS)
		am_report_blocks(h, &o);
	am_out_flush(&o);
	if (o.err) {
		errno = o.err;
		return -1;
	}
	return 0;
}

/* ---- verification ---- */

static int am_verify_slot(struct anr_malloc_heap *h, size_t i)
{
	struct am_slot *s = &h->slots[i];

	if (s->state != AM_SLOT_LIVE)
		return 0;
	if (!anrc_owns(h->core, s->base) || am_find_locked(h, AM_USER(s)) != i) {
		mb_log(MB_LOG_ERR, "anrmalloc %s: verify: record %zu: block %p is "
		       "not found by its pointer", h->cfg.name, i, s->base);
		return 1;
	}
	if (!am_guards_ok(h, s)) {
		h->guard_errors++;
		mb_log(MB_LOG_ERR, "anrmalloc %s: verify: guard word damaged: "
		       "block %p size %zu allocated by %p %s:%d", h->cfg.name,
		       AM_USER(s), (size_t)s->size, s->caller,
		       s->file ? s->file : "?", s->line);
		return 1;
	}
	return 0;
}

API int anr_verify(anr_heap_t *h)
{
	struct am_drained d;
	int bad = 0;

	for (size_t i = 0; h->track; i += AM_CHUNK) {
		d.n = 0;
		am_lock(h);
		if (i == 0)
			am_drain_locked(h, &d);
		if (i >= h->slots_hw) {
			am_unlock(h);
			am_drained_free(h, &d);
			break;
		}
		for (size_t j = i; j < i + AM_CHUNK && j < h->slots_hw; j++)
			bad += am_verify_slot(h, j);
		am_unlock(h);
		am_drained_free(h, &d);
	}
	if (anrc_check(h->core) != 0)
		bad++;
	return bad;
}

/* ---- debug socket ---- */

static void am_lower_priority(void)
{
	struct sched_param sp = { 0 };

	/* SCHED_IDLE runs only when nothing else wants the CPU; if the
	 * system refuses it, the lowest nice value of the thread. */
	if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0)
		setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), AM_LOWEST_NICE);
}

static void *am_debug_main(void *arg)
{
	struct anr_malloc_heap *h = arg;

	am_lower_priority();
	for (;;) {
		struct pollfd p[2] = {
			{ h->dbg_fd, POLLIN, 0 },
			{ h->dbg_stop[0], POLLIN, 0 },
		};
		struct timeval tv = { AM_SEND_TIMEOUT_S, 0 };
		int c;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		c = accept4(h->dbg_fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			/* Out of descriptors, say: do not spin on it. */
			poll(&p[1], 1, AM_ACCEPT_BACKOFF_MS);
			continue;
		}
		/* A reader that stops reading cannot hold the thread. */
		setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		anr_heap_report(h, c, ANR_REPORT_ALL);
		close(c);
	}
	return NULL;
}

static int am_debug_listen(const char *path)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	/* Only a stale socket is replaced, never another kind of file. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* The report shows addresses: only the owner may connect. */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    chmod(path, AM_SOCKET_MODE) != 0 ||
	    listen(fd, AM_LISTEN_BACKLOG) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

API int anr_debug_socket_start(anr_heap_t *h, const char *path)
{
	if (h->dbg_on)
		return 0;
	h->dbg_fd = am_debug_listen(path);
	if (h->dbg_fd < 0) {
		mb_log(MB_LOG_ERR, "anrmalloc %s: debug socket %s: %s",
		       h->cfg.name, path, strerror(errno));
		return -1;
	}
	if (pipe2(h->dbg_stop, O_CLOEXEC) != 0)
		goto fail;
	memcpy(h->dbg_path, path, strlen(path) + 1);
	if (mb_thread_start(&h->dbg_thread, NULL, "anrm-debug", am_debug_main, h) != 0) {
		errno = EAGAIN;
		goto fail;
	}
	h->dbg_on = 1;
	return 0;
fail:
	close(h->dbg_fd);
	unlink(path);
	h->dbg_fd = -1;
	if (h->dbg_stop[0] >= 0)
		am_close_pipe(h->dbg_stop);
	return -1;
}

/* The thread did not come with the fork and the socket file is the
 * parent's: close the child's copies of the descriptors, wait for nothing
 * and remove nothing (a byte on the shared stop pipe would stop the
 * parent's thread). */
void am_debug_fork_child(struct anr_malloc_heap *h)
{
	if (!h->dbg_on)
		return;
	am_close_pipe(h->dbg_stop);
	close(h->dbg_fd);
	h->dbg_fd = -1;
	h->dbg_on = 0;
}

API void anr_debug_socket_stop(anr_heap_t *h)
{
	char c = 0;

	if (!h->dbg_on)
		return;
	if (write(h->dbg_stop[1], &c, 1) != 1)
		mb_log(MB_LOG_WARNING, "anrmalloc: cannot stop the debug thread");
	pthread_join(h->dbg_thread, NULL);
	am_close_pipe(h->dbg_stop);
	close(h->dbg_fd);
	h->dbg_fd = -1;
	unlink(h->dbg_path);
	h->dbg_on = 0;
}
