/*
 * server.c - the mbserver daemon around the broker state machine.
 *
 * One thread, one epoll set, level-triggered.  Every socket is
 * non-blocking.  Each connection has a fixed input buffer (frames are
 * decoded as soon as they are complete, so a partial frame only waits for
 * its own sender) and an output queue: frames the broker sends are queued
 * and written when the socket takes them.  Past OUT_SOFT bytes queued the
 * connection is not read any more (a client that does not read cannot make
 * the broker queue without end); past the hard limit it is dropped.  A
 * connection the broker closes gets CLOSE_GRACE_MS to take its last frames.
 *
 * Connections freed during one loop round are parked until the round ends,
 * so an epoll event that still names them finds them marked dead.
 *
 * Fair service: a connection gets at most FRAMES_PER_TURN frames handled
 * per loop round; one with more complete frames waiting goes on the
 * backlog and gets its next share in the next round, after every other
 * ready connection had its turn (round robin), so a flood of STATUS
 * requests delays only its sender.  Memory: the reply buffers of all
 * connections together stay within output_budget; when a reply does not
 * fit, the connection with the most unread replies is dropped (it is the
 * one that does not read), never buffered without limit.
 */
#include "config.h"
#include "server.h"
#include "broker.h"
#include "policy.h"
#include "mb_clock.h"
#include "mb_log.h"
#include "mb_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#define IN_CAP 4096
#define OUT_SOFT (64 * 1024)
#define OUT_HARD_MIN (1024 * 1024)
#define OUT_SHRINK (256 * 1024)
#define CLOSE_GRACE_MS 1000
#define ACCEPT_PAUSE_MS 100
#define MAX_EVENTS 256
#define MAX_WAIT_MS 60000
#define LISTEN_BACKLOG 4096
#define SD_LISTEN_FDS_START 3
#define FRAMES_PER_TURN 16
#define LIVENESS_MS 1000
#define LOCK_SUFFIX ".lock"

struct conn {
	int fd;
	int dead;
	int closing;
	int overflow;
	pid_t pid;
	int on_flush;
	int on_backlog;
	int buried;
	uint32_t mask; /* epoll interest registered */
	uint64_t close_by;
	struct bclient *bc;
	struct conn *prev, *next; /* all live connections */
	struct conn *fnext;       /* flush list or graveyard */
	struct conn *bnext;       /* backlog */
	unsigned char *out;
	size_t outoff, outlen, outcap;
	size_t inlen;
	unsigned char in[IN_CAP];
};

struct server {
	const struct server_opts *opts;
	struct mbs_conf cf;
	struct mbs_resolved res;
	struct broker *b;
	struct policy *pol;
	int ep, lfd, sfd, reserve_fd;
	int activated;
	int listening;
	int stop;
	uint64_t accept_resume;
	uint64_t nconns;
	uint64_t nclosing; /* connections waiting to flush before closing */
	uint64_t now;
	struct conn *conns;
	struct conn *flush;
	struct conn *grave;
	struct conn *backlog;
	size_t out_alloc;         /* reply buffers of live connections */
	uint64_t next_liveness;
	int lock_fd;
	uint64_t emfile_logged;
};

/* epoll cookies for the two non-connection descriptors. */
static int listen_tag, signal_tag;

/* ---- systemd notification (no libsystemd) ----------------------------- */

static void sd_notify_msg(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !path[0])
		return;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	if (n >= sizeof(sa.sun_path) || (path[0] != '/' && path[0] != '@'))
		return;
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
		mb_log(MB_LOG_WARNING, "cannot notify the service manager (%s)", strerror(errno));
	close(fd);
}

/* ---- logging ----------------------------------------------------------- */

static void syslog_sink(int level, const char *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\n')
		len--;
	syslog(level, "%.*s", (int)len, line);
}

/* journald reads a "<level>" prefix on each line of a stream it owns. */
static void journal_sink(int level, const char *line, size_t len)
{
	char buf[MB_LOG_LINE_MAX + 8];
	size_t n = mb_format(buf, sizeof(buf), "<%d>%.*s", level, (int)len, line);
	if (n > 0 && buf[n - 1] != '\n' && n < sizeof(buf) - 1)
		buf[n++] = '\n';
	mb_write_all(2, buf, n);
}

/* Is stderr the stream systemd named in JOURNAL_STREAM ("dev:ino")? */
static int stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	struct stat st;
	char want[64];
	if (!js || fstat(2, &st) != 0)
		return 0;
	mb_format(want, sizeof(want), "%lu:%lu", (unsigned long)st.st_dev,
		  (unsigned long)st.st_ino);
	return strcmp(js, want) == 0;
}

static void apply_log(const struct mbs_conf *cf)
{
	if (cf->log_target == MBS_LOG_SYSLOG) {
		openlog("mbserver", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		mb_log_init("", -1, cf->log_level);
		mb_log_set_sink(syslog_sink);
	} else if (cf->log_target == MBS_LOG_JOURNAL ||
		   (cf->log_target == MBS_LOG_STDERR && stderr_is_journal())) {
		mb_log_init("", -1, cf->log_level);
		mb_log_set_sink(journal_sink);
	} else {
		mb_log_set_sink(NULL);
		mb_log_init("mbserver", 2, cf->log_level);
	}
}

/* ---- connections ------------------------------------------------------- */

static void set_mask(struct server *s, struct conn *c, uint32_t mask)
{
	if (c->dead || mask == c->mask)
		return;
	struct epoll_event ev = { .events = mask, .data.ptr = c };
	if (epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->mask = mask;
	else
		mb_log(MB_LOG_WARNING, "epoll_ctl: %s", strerror(errno));
}

static void want_flush(struct server *s, struct conn *c)
{
	if (c->on_flush || c->dead)
		return;
	c->on_flush = 1;
	c->fnext = s->flush;
	s->flush = c;
}

/* A dead connection is freed when the round ends and no list holds it. */
static void maybe_bury(struct server *s, struct conn *c)
{
	if (!c->dead || c->on_flush || c->on_backlog || c->buried)
		return;
	c->buried = 1;
	c->fnext = s->grave;
	s->grave = c;
}

static void want_backlog(struct server *s, struct conn *c)
{
	if (c->on_backlog || c->dead)
		return;
	c->on_backlog = 1;
	c->bnext = s->backlog;
	s->backlog = c;
}

/* Free c's reply buffer; what it still held is dropped. */
static void out_free(struct server *s, struct conn *c)
{
	s->out_alloc -= c->outcap;
	free(c->out);
	c->out = NULL;
	c->outcap = 0;
	c->outoff = c->outlen = 0;
}

static void destroy(struct server *s, struct conn *c)
{
	if (c->dead)
		return;
	c->dead = 1;
	if (c->closing)
		s->nclosing--;
	epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	struct bclient *bc = c->bc;
	c->bc = NULL;
	if (bc)
		broker_disconnect(s->b, bc, s->now);
	if (!c->overflow)
		out_free(s, c);
	else
		free(c->out); /* already taken off out_alloc */
	c->out = NULL;
	/* It may still sit on the flush list or the backlog: park it and free
	 * it when the round is over. */
	maybe_bury(s, c);
}

static size_t out_hard(const struct server *s)
{
	/* Enough for a full STATUS with every connection listed, twice. */
	size_t hard = OUT_HARD_MIN + 2 * (size_t)s->nconns * MB_WIRE_MAX_FRAME;
	return hard < s->cf.output_budget ? hard : (size_t)s->cf.output_budget;
}

/* Mark c to be dropped: it gets no more frames and its buffer no longer
 * counts against the budget (it is freed before the round ends). */
static void overflow(struct server *s, struct conn *c, const char *why)
{
	mb_log(MB_LOG_NOTICE, "client %lu (pid %d) %s: disconnecting",
	       (unsigned long)broker_client_id(c->bc), (int)c->pid, why);
	c->overflow = 1;
	s->out_alloc -= c->outcap;
	want_flush(s, c);
}

/* Make room for `grow` more bytes of reply buffers for c: drop the
 * connections with the most unread replies while that is not c.  0 when
 * the room is there, -1 when c itself is the one to drop. */
static int out_room(struct server *s, struct conn *c, size_t grow)
{
	if (s->out_alloc + grow > s->cf.output_budget) {
		/* Buffers kept by connections with nothing queued go first. */
		for (struct conn *o = s->conns; o; o = o->next)
			if (o != c && !o->dead && !o->overflow && o->outoff == o->outlen &&
			    o->outcap)
				out_free(s, o);
	}
	while (s->out_alloc + grow > s->cf.output_budget) {
		struct conn *v = NULL, *o;
		for (o = s->conns; o; o = o->next)
			if (!o->dead && !o->overflow && (!v || o->outlen - o->outoff >
							 v->outlen - v->outoff))
				v = o;
		if (!v || v == c || v->outlen - v->outoff <= c->outlen - c->outoff)
			return -1;
		overflow(s, v, "has the most unread replies with the output budget full");
	}
	return 0;
}

static void cb_send(void *ctx, struct bclient *bc, const struct mb_msg *m)
{
	struct server *s = ctx;
	struct conn *c = broker_client_user(bc);
	if (!c || c->dead || c->overflow)
		return;
	size_t queued = c->outlen - c->outoff;
	if (queued + MB_WIRE_MAX_FRAME > out_hard(s)) {
		overflow(s, c, "does not read its replies");
		return;
	}
	if (c->outlen + MB_WIRE_MAX_FRAME > c->outcap) {
		if (c->outoff > 0) {
			memmove(c->out, c->out + c->outoff, queued);
			c->outlen = queued;
			c->outoff = 0;
		}
		if (c->outlen + MB_WIRE_MAX_FRAME > c->outcap) {
			size_t ncap = c->outcap ? c->outcap * 2 : 1024;
			if (out_room(s, c, ncap - c->outcap) != 0) {
				overflow(s, c, "does not read its replies with the output budget full");
				return;
			}
			unsigned char *n = realloc(c->out, ncap);
			if (!n) {
				overflow(s, c, "cannot have a reply queued (out of memory)");
				return;
			}
			s->out_alloc += ncap - c->outcap;
			c->out = n;
			c->outcap = ncap;
		}
	}
	int len = mb_wire_encode(m, c->out + c->outlen, c->outcap - c->outlen);
	if (len < 0) {
		mb_log(MB_LOG_ERR, "cannot encode a %s frame", mb_wire_type_name(m->type));
		return;
	}
	c->outlen += (size_t)len;
	want_flush(s, c);
}

/* Stop reading; close once the queued frames are out or the grace ends. */
static void start_closing(struct server *s, struct conn *c)
{
	if (c->dead || c->closing)
		return;
	c->closing = 1;
	c->close_by = s->now + CLOSE_GRACE_MS;
	s->nclosing++;
	want_flush(s, c);
}

static void cb_close(void *ctx, struct bclient *bc)
{
	struct conn *c = broker_client_user(bc);
	if (c)
		start_closing(ctx, c);
}

static unsigned cb_admit(void *ctx, struct bclient *bc, unsigned type, uint64_t pages)
{
	return policy_admit(((struct server *)ctx)->pol, bc, type, pages);
}

static void cb_control(void *ctx, struct bclient *bc, const struct mb_msg *m,
		       struct mb_msg *reply)
{
	struct server *s = ctx;
	policy_control(s->pol, s->b, bc, m, reply);
}

static void cb_answered(void *ctx, struct bclient *bc, uint64_t asked, uint64_t given,
			int timedout)
{
	policy_answered(((struct server *)ctx)->pol, bc, asked, given, timedout);
}

static const struct broker_ops server_ops = {
	.send = cb_send, .close = cb_close,
	.admit = cb_admit, .control = cb_control, .answered = cb_answered,
};

/* A complete (or malformed) frame waits in the input buffer. */
static int has_frame(const struct conn *c)
{
	struct mb_msg m;
	return c->inlen > 0 && mb_wire_decode(c->in, c->inlen, &m) != 0;
}

/* Write what is queued; update the epoll interest; finish a close. */
static void flush_conn(struct server *s, struct conn *c)
{
	if (c->dead)
		return;
	if (c->overflow) {
		destroy(s, c);
		return;
	}
	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			c->outoff += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		destroy(s, c); /* EPIPE, ECONNRESET: the peer is gone */
		return;
	}
	if (c->outoff == c->outlen) {
		c->outoff = c->outlen = 0;
		if (c->outcap > OUT_SHRINK)
			out_free(s, c);
		if (c->closing) {
			destroy(s, c);
			return;
		}
	}
	uint32_t mask = 0;
	int can_take = !c->closing && c->outlen - c->outoff < OUT_SOFT;
	if (can_take && has_frame(c))
		want_backlog(s, c); /* frames left over from its last turn */
	if (can_take && c->inlen < IN_CAP)
		mask |= EPOLLIN;
	if (c->outlen > c->outoff)
		mask |= EPOLLOUT;
	set_mask(s, c, mask);
}

static void run_flush(struct server *s)
{
	while (s->flush) {
		struct conn *c = s->flush;
		s->flush = c->fnext;
		c->on_flush = 0;
		if (c->dead) {
			maybe_bury(s, c);
			continue;
		}
		flush_conn(s, c);
	}
}

static void bury(struct server *s)
{
	/* The backlog can name connections that died this round. */
	for (struct conn *c = s->backlog, **pp = &s->backlog; c; c = *pp) {
		if (c->dead) {
			*pp = c->bnext;
			c->on_backlog = 0;
			maybe_bury(s, c);
		} else {
			pp = &c->bnext;
		}
	}
	while (s->grave) {
		struct conn *c = s->grave;
		s->grave = c->fnext;
		free(c);
	}
}

/* Handle up to FRAMES_PER_TURN complete frames, fewer when the replies
 * queued reach OUT_SOFT; what is left waits for the connection's next
 * turn (flush_conn puts it on the backlog). */
static void parse_input(struct server *s, struct conn *c)
{
	size_t off = 0;
	for (int n = 0; n < FRAMES_PER_TURN && !c->dead && !c->closing && off < c->inlen &&
	     c->outlen - c->outoff < OUT_SOFT; n++) {
		struct mb_msg m;
		int rc = mb_wire_decode(c->in + off, c->inlen - off, &m);
		if (rc == 0)
			break;
		if (rc < 0) {
			unsigned type = c->inlen - off >= 8 ?
				(unsigned)(c->in[off + 6] | c->in[off + 7] << 8) : 0;
			broker_bad_frame(s->b, c->bc, (unsigned)-rc, type, s->now);
			c->inlen = 0;
			return;
		}
		broker_message(s->b, c->bc, &m, s->now);
		off += (size_t)rc;
	}
	if (c->dead || c->closing) {
		c->inlen = 0;
		return;
	}
	memmove(c->in, c->in + off, c->inlen - off);
	c->inlen -= off;
	want_flush(s, c); /* recompute its epoll interest and its backlog */
}

/* One turn for every connection that had frames left over. */
static void run_backlog(struct server *s)
{
	struct conn *list = s->backlog;
	s->backlog = NULL;
	while (list) {
		struct conn *c = list;
		list = c->bnext;
		c->on_backlog = 0;
		if (c->dead) {
			maybe_bury(s, c);
			continue;
		}
		if (!c->closing)
			parse_input(s, c);
		/* Connections dropped for the output budget free their buffers
		 * now, before the next one queues replies. */
		run_flush(s);
	}
}

static void handle_input(struct server *s, struct conn *c)
{
	if (c->inlen >= IN_CAP)
		return; /* its buffer waits for its next turn */
	for (;;) {
		ssize_t n = read(c->fd, c->in + c->inlen, IN_CAP - c->inlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			if (n == 0 && c->inlen > 0)
				mb_log(MB_LOG_NOTICE, "client %lu closed in the middle of a frame",
				       (unsigned long)broker_client_id(c->bc));
			/* A peer that only shut its writing side still gets the
			 * replies already queued for it. */
			if (n == 0 && c->outlen > c->outoff)
				start_closing(s, c);
			else
				destroy(s, c);
			return;
		}
		c->inlen += (size_t)n;
		parse_input(s, c);
		/* One buffer per wake-up: others get their turn; level-triggered
		 * epoll brings us back for the rest. */
		return;
	}
}

/*
 * The name and start time of a connecting process, from one read of
 * /proc/PID/stat: the name is between the first '(' and the last ')' (it
 * may hold anything, parentheses included), the start time is field 22
 * (clock ticks after boot).  The name is left empty and 0 returned for
 * what cannot be read.
 */
static uint64_t read_proc(pid_t pid, char *comm, size_t cap)
{
	char path[64], buf[1024];
	comm[0] = '\0';
	if (pid <= 0)
		return 0;
	mb_format(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *open_paren = strchr(buf, '('), *p = strrchr(buf, ')');
	if (open_paren == NULL || p == NULL || p < open_paren)
		return 0;
	size_t len = (size_t)(p - open_paren - 1);
	if (len > cap - 1)
		len = cap - 1;
	memcpy(comm, open_paren + 1, len);
	comm[len] = '\0';
	/* after the name: fields 3 to 22 */
	for (int field = 2; p != NULL && field < 22; field++)
		p = strchr(p + 1, ' ');
	return p != NULL ? strtoull(p + 1, NULL, 10) : 0;
}

static void pause_accept(struct server *s)
{
	if (!s->listening)
		return;
	epoll_ctl(s->ep, EPOLL_CTL_DEL, s->lfd, NULL);
	s->listening = 0;
	s->accept_resume = s->now + ACCEPT_PAUSE_MS;
}

static void resume_accept(struct server *s)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &listen_tag };
	if (s->listening)
		return;
	if (epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &ev) == 0)
		s->listening = 1;
}

/* Out of descriptors: take the pending connection with the reserve fd and
 * close it, so the client sees a refusal instead of hanging in the queue. */
static void shed_connection(struct server *s)
{
	if (s->now - s->emfile_logged >= 1000 || s->emfile_logged == 0) {
		mb_log(MB_LOG_WARNING, "out of file descriptors at %lu connections: "
		       "refusing new ones", (unsigned long)s->nconns);
		s->emfile_logged = s->now;
	}
	if (s->reserve_fd < 0) {
		pause_accept(s);
		return;
	}
	close(s->reserve_fd);
	int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		close(fd);
	s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (s->reserve_fd < 0 || fd < 0)
		pause_accept(s);
}

static void handle_accept(struct server *s)
{
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EMFILE || errno == ENFILE) {
				shed_connection(s);
				if (!s->listening)
					return;
				continue;
			}
			mb_log(MB_LOG_WARNING, "accept: %s", strerror(errno));
			pause_accept(s);
			return;
		}
		struct ucred cred;
		socklen_t len = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
			mb_log(MB_LOG_WARNING, "SO_PEERCRED: %s", strerror(errno));
			close(fd);
			continue;
		}
		struct conn *c = calloc(1, sizeof(*c));
		struct broker_peer peer = { .pid = cred.pid, .uid = cred.uid, .gid = cred.gid };
		peer.start = read_proc(cred.pid, peer.comm, sizeof(peer.comm));
		if (c)
			c->bc = broker_connect(s->b, &peer, c, s->now);
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		if (!c || !c->bc || epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
			mb_log(MB_LOG_ERR, "cannot take a connection from pid %d", (int)cred.pid);
			if (c && c->bc)
				broker_disconnect(s->b, c->bc, s->now);
			free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->pid = cred.pid;
		c->mask = EPOLLIN;
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		s->nconns++;
		mb_log(MB_LOG_DEBUG, "connection from pid %d uid %u", (int)cred.pid,
		       (unsigned)cred.uid);
		broker_admit(s->b, c->bc, s->now);
	}
}

/* ---- listening socket -------------------------------------------------- */

static int activated_socket(void)
{
	const char *pid = getenv("LISTEN_PID");
	const char *fds = getenv("LISTEN_FDS");
	if (!pid || !fds || atol(pid) != (long)getpid() || atoi(fds) < 1)
		return -1;
	int fd = SD_LISTEN_FDS_START;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
		mb_log(MB_LOG_ERR, "LISTEN_FDS is set but fd %d is not a socket", fd);
		return -2;
	}
	if (atoi(fds) > 1)
		mb_log(MB_LOG_WARNING, "%s sockets passed; only fd %d is used", fds, fd);
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return fd;
}

static int fill_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path)) {
		mb_log(MB_LOG_ERR, "%s: socket path too long", path);
		return -1;
	}
	strcpy(sa->sun_path, path);
	return 0;
}

/* Is a live server on path?  1 yes, 0 no (stale or absent), -1 error. */
static int probe_live(const char *path)
{
	struct sockaddr_un sa;
	struct stat st;
	if (fill_addr(&sa, path) != 0)
		return -1;
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		mb_log(MB_LOG_ERR, "%s exists and is not a socket", path);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	close(fd);
	if (rc == 0 || e == EAGAIN)
		return 1; /* EAGAIN: a listener whose backlog is full */
	if (e == ECONNREFUSED)
		return 0;
	mb_log(MB_LOG_ERR, "%s: cannot probe the socket (%s)", path, strerror(e));
	return -1;
}

static void make_parent(const char *path)
{
	char dir[MBS_PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (!slash || slash == path || (size_t)(slash - path) >= sizeof(dir))
		return;
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	if (mkdir(dir, 0755) == 0)
		mb_log(MB_LOG_INFO, "created %s", dir);
}

static void set_socket_perms(struct server *s)
{
	const char *path = s->cf.socket;
	if (chmod(path, s->cf.socket_mode) != 0)
		mb_log(MB_LOG_WARNING, "chmod %s: %s", path, strerror(errno));
	if (s->res.socket_gid != (gid_t)-1 && chown(path, (uid_t)-1, s->res.socket_gid) != 0)
		mb_log(MB_LOG_WARNING, "chown %s: %s", path, strerror(errno));
}

/*
 * Take the lock file beside the socket, held for the life of the process:
 * of two brokers started at the same moment on one path, the second stops
 * here instead of racing the first through probe, unlink and bind.  The
 * file is never removed (removing it would let a third broker lock a new
 * file while the first still holds the old one).
 */
static int take_lock(struct server *s)
{
	char lock[MBS_PATH_MAX + sizeof(LOCK_SUFFIX)];
	mb_format(lock, sizeof(lock), "%s%s", s->cf.socket, LOCK_SUFFIX);
	make_parent(s->cf.socket);
	int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		mb_log(MB_LOG_ERR, "cannot open the lock file %s: %s", lock, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		if (e == EWOULDBLOCK)
			mb_log(MB_LOG_ERR, "another broker is already listening on %s "
			       "(it holds %s)", s->cf.socket, lock);
		else
			mb_log(MB_LOG_ERR, "cannot lock %s: %s", lock, strerror(e));
		close(fd);
		return -1;
	}
	s->lock_fd = fd;
	return 0;
}

static int bind_socket(struct server *s)
{
	const char *path = s->cf.socket;
	struct sockaddr_un sa;
	if (take_lock(s) != 0)
		return -1;
	int live = probe_live(path);
	if (live < 0)
		return -1;
	if (live > 0) {
		mb_log(MB_LOG_ERR, "another broker is already listening on %s", path);
		return -1;
	}
	if (fill_addr(&sa, path) != 0)
		return -1;
	if (unlink(path) == 0)
		mb_log(MB_LOG_NOTICE, "removed stale socket %s", path);
	make_parent(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		mb_log(MB_LOG_ERR, "socket: %s", strerror(errno));
		return -1;
	}
	mode_t old = umask((mode_t)(~s->cf.socket_mode & 0777));
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	umask(old);
	if (rc != 0) {
		mb_log(MB_LOG_ERR, "bind %s: %s%s", path, strerror(e),
		       e == EADDRINUSE ? " (another broker started meanwhile)" : "");
		close(fd);
		return -1;
	}
	if (listen(fd, LISTEN_BACKLOG) != 0) {
		mb_log(MB_LOG_ERR, "listen: %s", strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	s->lfd = fd;
	set_socket_perms(s);
	return 0;
}

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		mb_log(MB_LOG_WARNING, "cannot raise the descriptor limit (%s)", strerror(errno));
}

/* ---- configuration ----------------------------------------------------- */

static int load_config(const struct server_opts *o, struct mbs_conf *cf,
		       struct mbs_resolved *res, uint64_t page_size)
{
	int bad = mbs_conf_load(cf, o->config_path, o->config_missing_ok,
				o->overrides, o->noverrides);
	if (bad > 0) {
		mb_log(MB_LOG_ERR, "%d error%s in the configuration", bad, bad == 1 ? "" : "s");
		return -1;
	}
	return mbs_conf_resolve(cf, page_size, res);
}

static void reload(struct server *s)
{
	struct mbs_conf cf;
	struct mbs_resolved res;
	sd_notify_msg("RELOADING=1");
	mb_log(MB_LOG_NOTICE, "reloading %s", s->opts->config_path ? s->opts->config_path : "(none)");
	if (load_config(s->opts, &cf, &res, s->res.bc.page_size) != 0) {
		mb_log(MB_LOG_ERR, "reload failed: keeping the current configuration");
		sd_notify_msg("READY=1");
		return;
	}
	if (strcmp(cf.socket, s->cf.socket) != 0) {
		mb_log(MB_LOG_NOTICE, "a new socket path takes effect at the next start");
		memcpy(cf.socket, s->cf.socket, sizeof(cf.socket));
	}
	s->cf = cf;
	s->res = res;
	s->res.bc.uids = s->res.uids;
	s->res.bc.gids = s->res.gids;
	s->res.bc.source_uids = s->res.source_uids;
	apply_log(&s->cf);
	if (!s->activated)
		set_socket_perms(s);
	broker_reconfigure(s->b, &s->res.bc, s->now);
	policy_reconfigure(s->pol, &s->cf, &s->res);
	mb_log(MB_LOG_NOTICE, "configuration reloaded: total %lu pages",
	       (unsigned long)broker_total(s->b));
	sd_notify_msg("READY=1");
}

/* ---- main loop --------------------------------------------------------- */

static void handle_signals(struct server *s)
{
	struct signalfd_siginfo si;
	for (;;) {
		ssize_t n = read(s->sfd, &si, sizeof(si));
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(si))
			return;
		if (si.ssi_signo == SIGHUP) {
			reload(s);
		} else {
			mb_log(MB_LOG_NOTICE, "signal %u: shutting down", si.ssi_signo);
			s->stop = 1;
		}
	}
}

static int wait_timeout(struct server *s)
{
	uint64_t next = broker_next_deadline(s->b);
	if (policy_next_deadline(s->pol) < next)
		next = policy_next_deadline(s->pol);
	for (struct conn *c = s->nclosing ? s->conns : NULL; c; c = c->next)
		if (c->closing && c->close_by < next)
			next = c->close_by;
	if (!s->listening && s->accept_resume < next)
		next = s->accept_resume;
	if (s->nconns && s->next_liveness < next)
		next = s->next_liveness;
	if (next == UINT64_MAX)
		return MAX_WAIT_MS;
	if (next <= s->now)
		return 0;
	return next - s->now > MAX_WAIT_MS ? MAX_WAIT_MS : (int)(next - s->now);
}

/*
 * A connection outlives its process when a child forked after connecting
 * keeps the descriptor: the socket never reaches EOF and the pages would
 * stay with the dead process.  Every LIVENESS_MS the pids of registered
 * peers are checked; a connection whose process is gone is closed.
 */
static void check_peers(struct server *s)
{
	struct conn *c, *nx;
	s->next_liveness = s->now + LIVENESS_MS;
	for (c = s->conns; c; c = nx) {
		nx = c->next;
		if (c->dead || c->closing || c->pid <= 0 || !broker_client_registered(c->bc))
			continue;
		if (kill(c->pid, 0) != 0 && errno == ESRCH) {
			mb_log(MB_LOG_NOTICE, "client %lu: pid %d has exited but its connection "
			       "is still open (inherited by a child): closing it",
			       (unsigned long)broker_client_id(c->bc), (int)c->pid);
			destroy(s, c);
		}
	}
}

static void expire(struct server *s)
{
	if (s->nconns && s->now >= s->next_liveness)
		check_peers(s);
	policy_tick(s->pol, s->b, s->now);
	if (broker_next_deadline(s->b) <= s->now)
		broker_tick(s->b, s->now);
	struct conn *c, *nx;
	for (c = s->nclosing ? s->conns : NULL; c; c = nx) {
		nx = c->next;
		if (c->closing && c->close_by <= s->now)
			destroy(s, c);
	}
	if (!s->listening && s->accept_resume <= s->now)
		resume_accept(s);
}

static void loop(struct server *s)
{
	struct epoll_event evs[MAX_EVENTS];
	while (!s->stop) {
		s->now = mb_clock_ms();
		int n = epoll_wait(s->ep, evs, MAX_EVENTS, s->backlog ? 0 : wait_timeout(s));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			mb_log(MB_LOG_ERR, "epoll_wait: %s", strerror(errno));
			n = 0;
		}
		s->now = mb_clock_ms();
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			if (p == &listen_tag) {
				handle_accept(s);
			} else if (p == &signal_tag) {
				handle_signals(s);
			} else {
				struct conn *c = p;
				if (c->dead)
					continue;
				if (evs[i].events & EPOLLOUT)
					want_flush(s, c);
				if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
					if (c->closing) {
						/* Drained by the flush below or the grace timer. */
						if (evs[i].events & (EPOLLHUP | EPOLLERR))
							destroy(s, c);
					} else {
						handle_input(s, c);
					}
				}
			}
			run_flush(s);
		}
		run_backlog(s);
		run_flush(s);
		expire(s);
		run_flush(s);
		bury(s);
	}
}

static void shutdown_all(struct server *s)
{
	s->now = mb_clock_ms();
	broker_shutdown(s->b, s->now);
	run_flush(s);
	while (s->conns)
		destroy(s, s->conns);
	run_flush(s);
	bury(s);
}

int server_main(const struct server_opts *opts)
{
	struct server sv;
	struct server *s = &sv;
	memset(s, 0, sizeof(*s));
	s->opts = opts;
	s->lfd = s->sfd = s->ep = s->reserve_fd = s->lock_fd = -1;
	long ps = sysconf(_SC_PAGESIZE);
	if (load_config(opts, &s->cf, &s->res, ps > 0 ? (uint64_t)ps : 4096) != 0)
		return 1;
	apply_log(&s->cf);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0 ||
	    (s->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
		mb_log(MB_LOG_ERR, "signalfd: %s", strerror(errno));
		return 1;
	}
	int afd = activated_socket();
	if (afd == -2)
		return 1;
	if (afd >= 0) {
		s->lfd = afd;
		s->activated = 1;
		mb_log(MB_LOG_INFO, "using the socket passed by the service manager");
	} else if (bind_socket(s) != 0) {
		return 1;
	}
	s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	s->now = mb_clock_ms();
	s->b = broker_new(&s->res.bc, &server_ops, s, s->now);
	s->pol = policy_new(&s->cf, &s->res);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &signal_tag };
	if (s->ep < 0 || !s->b || !s->pol || epoll_ctl(s->ep, EPOLL_CTL_ADD, s->sfd, &ev) != 0) {
		mb_log(MB_LOG_ERR, "cannot set up the event loop (%s)", strerror(errno));
		if (!s->activated)
			unlink(s->cf.socket);
		return 1;
	}
	resume_accept(s);
	if (!s->listening) {
		mb_log(MB_LOG_ERR, "cannot watch the listening socket (%s)", strerror(errno));
		if (!s->activated)
			unlink(s->cf.socket);
		return 1;
	}
	if (s->res.bc.initial == 0)
		mb_log(MB_LOG_NOTICE, "the broker owns no pages: only sources can lend%s",
		       s->res.bc.source_max ? "" : ", and none may declare any until "
		       "source_max is set");
	mb_log(MB_LOG_NOTICE, "%s listening on %s: total %lu pages of %lu bytes",
	       PACKAGE_STRING, s->activated ? "(activated socket)" : s->cf.socket,
	       (unsigned long)broker_total(s->b), (unsigned long)s->res.bc.page_size);
	sd_notify_msg("READY=1");

	loop(s);

	sd_notify_msg("STOPPING=1");
	shutdown_all(s);
	close(s->lfd);
	if (!s->activated && unlink(s->cf.socket) != 0)
		mb_log(MB_LOG_WARNING, "unlink %s: %s", s->cf.socket, strerror(errno));
	broker_free(s->b);
	policy_free(s->pol);
	close(s->ep);
	close(s->sfd);
	if (s->reserve_fd >= 0)
		close(s->reserve_fd);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	mb_log(MB_LOG_NOTICE, "stopped");
	return 0;
}
