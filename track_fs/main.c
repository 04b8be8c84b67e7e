/*
 * main.c - track_fs: a FUSE file system over a tmpfs directory that
 * charges the pages its files use to the membroker quota broker.
 *
 * track_fs is free software; you can redistribute it and/or modify it
 * under the terms of the GNU General Public License version 2 as
 * published by the Free Software Foundation (see COPYING.GPL-2).
 */
#define FUSE_USE_VERSION 35
#define _GNU_SOURCE

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <syslog.h>
#include <unistd.h>

#include "mb_log.h"
#include "mb_size.h"
#include "tfs.h"

#define TFS_CONF_FILE SYSCONFDIR "/track_fs.conf"
#define TFS_ENV_PREFIX "TRACK_FS_"
#define TFS_TMPFS_MAGIC 0x01021994
#define TFS_MAX_WRITE_MIN 4096ULL
#define TFS_MAX_WRITE_MAX (1ULL << 20)
#define TFS_OPTS_MAX 4096
#define TFS_FD_RESERVE_MIN 64

/* One key=value from the command line, applied after the config file. */
struct setting {
	char *key;
	char *value;
};

struct cmdline {
	struct setting *set;
	size_t nset;
	char *config;
	const char *pos[2];
	int npos;
	int foreground;
	int debug;
	int single;
	char fuse_opts[TFS_OPTS_MAX];
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: track_fs [options] [SOURCE] MOUNTPOINT\n"
"\n"
"Mounts a FUSE file system on MOUNTPOINT whose files live in a tmpfs\n"
"directory (SOURCE, -o backing=DIR, or MOUNTPOINT itself) and whose data\n"
"is charged to the membroker quota broker.\n"
"\n"
"  -h, --help          this text\n"
"  -V, --version       print the version\n"
"  -f                  stay in the foreground\n"
"  -d                  foreground with FUSE debugging\n"
"  -s                  single-threaded\n"
"  -o OPT[,OPT...]     a key=value of the table below, or a FUSE mount\n"
"                      option (allow_other, ro, ...)\n"
"  --config FILE       settings file (default " TFS_CONF_FILE " if present)\n"
"  --KEY=VALUE         any key of the table below\n"
"\n"
"Order: defaults, settings file, TRACK_FS_KEY environment variables,\n"
"command line.\n"
"\n"
"Settings (file, -o key=value or --key=value):\n");
	fflush(f);
}

static int add_setting(struct cmdline *cl, const char *key, size_t klen,
		       const char *value)
{
	struct setting *n = realloc(cl->set, (cl->nset + 1) * sizeof(*n));
	size_t i;

	if (n == NULL)
		return -1;
	cl->set = n;
	n[cl->nset].key = strndup(key, klen);
	n[cl->nset].value = strdup(value);
	if (n[cl->nset].key == NULL || n[cl->nset].value == NULL)
		return -1;
	for (i = 0; i < klen; i++)
		if (n[cl->nset].key[i] == '-')
			n[cl->nset].key[i] = '_';
	cl->nset++;
	return 0;
}

/* Options that fstab and mount(8) pass along but mean nothing here. */
static int ignored_opt(const char *o)
{
	static const char *const names[] = { "defaults", "auto", "noauto",
		"nofail", "_netdev", "user", "users", "nouser", "owner", NULL };
	int i;

	if (strncmp(o, "x-", 2) == 0 || strncmp(o, "comment=", 8) == 0)
		return 1;
	for (i = 0; names[i] != NULL; i++)
		if (strcmp(o, names[i]) == 0)
			return 1;
	return 0;
}

static int add_fuse_opt(struct cmdline *cl, const char *o, size_t len)
{
	size_t have = strlen(cl->fuse_opts);

	if (have + len + 2 > sizeof(cl->fuse_opts)) {
		fprintf(stderr, "track_fs: too many mount options\n");
		return -1;
	}
	if (have > 0)
		cl->fuse_opts[have++] = ',';
	memcpy(cl->fuse_opts + have, o, len);
	cl->fuse_opts[have + len] = '\0';
	return 0;
}

static int parse_o(struct cmdline *cl, const char *arg)
{
	char *copy = strdup(arg), *save = NULL, *o;
	int rc = 0;

	if (copy == NULL)
		return -1;
	for (o = strtok_r(copy, ",", &save); o != NULL && rc == 0;
	     o = strtok_r(NULL, ",", &save)) {
		const char *eq = strchr(o, '=');
		size_t klen = eq ? (size_t)(eq - o) : strlen(o);
		char key[MB_CONF_MAX_LINE];

		if (klen >= sizeof(key) || ignored_opt(o))
			continue;
		memcpy(key, o, klen);
		key[klen] = '\0';
		if (strcmp(key, "config") == 0 && eq != NULL) {
			free(cl->config);
			cl->config = strdup(eq + 1);
			if (cl->config == NULL)
				rc = -1;
		}
		else if (mb_conf_find(tfs_conf_keys, key) != NULL)
			rc = add_setting(cl, o, klen, eq ? eq + 1 : "yes");
		else
			rc = add_fuse_opt(cl, o, strlen(o));
	}
	free(copy);
	return rc;
}

/* 0 to go on, 1 to exit successfully, -1 on a usage error. */
static int parse_args(int argc, char **argv, struct cmdline *cl)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			mb_conf_help(tfs_conf_keys, STDOUT_FILENO);
			return 1;
		} else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			printf("%s\n", PACKAGE_STRING);
			return 1;
		} else if (strcmp(a, "-f") == 0) {
			cl->foreground = 1;
		} else if (strcmp(a, "-d") == 0) {
			cl->foreground = 1;
			cl->debug = 1;
		} else if (strcmp(a, "-s") == 0) {
			cl->single = 1;
		} else if (strncmp(a, "-o", 2) == 0) {
			const char *o = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);

			if (o == NULL || parse_o(cl, o) != 0)
				return -1;
		} else if (strncmp(a, "--", 2) == 0 && a[2] != '\0') {
			const char *k = a + 2, *eq = strchr(k, '=');
			size_t klen = eq ? (size_t)(eq - k) : strlen(k);
			const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);

			if (v == NULL) {
				fprintf(stderr, "track_fs: %s needs a value\n", a);
				return -1;
			}
			if (klen == 6 && strncmp(k, "config", 6) == 0) {
				free(cl->config);
				cl->config = strdup(v);
				if (cl->config == NULL)
					return -1;
			} else if (add_setting(cl, k, klen, v) != 0)
				return -1;
		} else if (a[0] == '-' && a[1] != '\0') {
			fprintf(stderr, "track_fs: unknown option %s\n", a);
			return -1;
		} else if (cl->npos < 2) {
			cl->pos[cl->npos++] = a;
		} else {
			fprintf(stderr, "track_fs: too many arguments\n");
			return -1;
		}
	}
	if (cl->npos == 0) {
		fprintf(stderr, "track_fs: no mount point given (see --help)\n");
		return -1;
	}
	return 0;
}

static void cmdline_free(struct cmdline *cl)
{
	size_t i;

	for (i = 0; i < cl->nset; i++) {
		free(cl->set[i].key);
		free(cl->set[i].value);
	}
	free(cl->set);
	free(cl->config);
	cl->set = NULL;
	cl->nset = 0;
	cl->config = NULL;
}

/* uid_limit in bytes; a percentage is of `total`.  0 or -EINVAL. */
static int uid_limit_of(const struct tfs_conf *cf, uint64_t total,
			uint64_t *out)
{
	uint64_t v;
	int rc = mb_parse_size(cf->uid_limit, total, &v);

	if (rc == 0 && out != NULL)
		*out = v;
	return rc;
}

/*
 * The per-user limit: a percentage is of the broker's total as seen at
 * mount (of the cap while the broker is unreachable in cap mode).
 */
static void set_uid_limit(const struct tfs_conf *cf)
{
	struct tfs_usage u;
	uint64_t lim = 0, base;
	char sz[32];

	tfs_charge_usage(&u, 1);
	base = u.broker_up ? u.total : cf->cap;
	if (uid_limit_of(cf, base ? base : 1, &lim) != 0)
		lim = 0;
	tfs_uid_set_limit(lim);
	if (lim > 0) {
		mb_format_size(sz, sizeof(sz), lim);
		mb_log(MB_LOG_INFO, "each user's files may cost up to %s (root "
		       "exempt)", sz);
	}
}

/* uid_fds as a count; a percentage is of `nofile`.  0 or -EINVAL. */
static int uid_fds_of(const struct tfs_conf *cf, uint64_t nofile,
		      uint64_t *out)
{
	const char *pct = strchr(cf->uid_fds, '%');
	uint64_t v;
	int rc;

	if (pct != NULL && pct[1] == '\0') {
		rc = mb_parse_hundredths(cf->uid_fds, &v);
		if (rc == 0 && v > 10000)
			rc = -EINVAL;
		v = rc != 0 ? 0 : nofile > UINT64_MAX / 10000 ?
			nofile / 10000 * v : nofile * v / 10000;
	} else {
		rc = mb_parse_u64(cf->uid_fds, &v);
	}
	if (rc == 0 && out != NULL)
		*out = v;
	return rc;
}

/*
 * The descriptors held for users other than root and track_fs's own: one
 * user's share (uid_fds), and all of theirs together leave a reserve of an
 * eighth of the limit, at least TFS_FD_RESERVE_MIN.
 */
static void set_fd_limits(const struct tfs_conf *cf)
{
	struct rlimit rl;
	uint64_t nofile = 1024, reserve, all, one = 0;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		nofile = rl.rlim_cur;
	reserve = nofile / 8 > TFS_FD_RESERVE_MIN ? nofile / 8 : TFS_FD_RESERVE_MIN;
	all = nofile > reserve ? nofile - reserve : 1;
	if (uid_fds_of(cf, nofile, &one) != 0)
		one = 0;
	if (one > all)
		one = all;
	tfs_uid_set_fd_limits(one, all, geteuid());
	mb_log(all < TFS_FD_RESERVE_MIN ? MB_LOG_WARNING : MB_LOG_INFO,
	       "descriptors: %llu of %llu for users other than root, %llu for "
	       "one of them%s", (unsigned long long)all,
	       (unsigned long long)nofile, (unsigned long long)one,
	       all < TFS_FD_RESERVE_MIN ? " (raise RLIMIT_NOFILE)" : "");
}

static int apply_settings(struct cmdline *cl, struct tfs_conf *cf)
{
	char err[MB_CONF_ERR_MAX];
	const char *path = cl->config ? cl->config : TFS_CONF_FILE;
	size_t i;
	int rc;

	rc = mb_conf_load(tfs_conf_keys, cf, path);
	if (rc < 0 && (cl->config != NULL || rc != -ENOENT)) {
		fprintf(stderr, "track_fs: %s: %s\n", path, strerror(-rc));
		return -1;
	}
	if (rc > 0) {
		fprintf(stderr, "track_fs: %s: %d bad line(s)\n", path, rc);
		return -1;
	}
	if (mb_conf_env(tfs_conf_keys, cf, TFS_ENV_PREFIX, environ, NULL) != 0)
		return -1;
	for (i = 0; i < cl->nset; i++) {
		if (mb_conf_set(tfs_conf_keys, cf, cl->set[i].key,
				cl->set[i].value, err, sizeof(err)) != 0) {
			fprintf(stderr, "track_fs: %s\n", err);
			return -1;
		}
	}
	if (cf->max_write < TFS_MAX_WRITE_MIN || cf->max_write > TFS_MAX_WRITE_MAX) {
		fprintf(stderr, "track_fs: max_write must be between 4K and 1M\n");
		return -1;
	}
	if (cf->threads == 0) {
		fprintf(stderr, "track_fs: threads must be at least 1\n");
		return -1;
	}
	if (uid_limit_of(cf, 1ULL << 40, NULL) != 0) {
		fprintf(stderr, "track_fs: uid_limit: '%s' is neither a size nor "
			"a percentage\n", cf->uid_limit);
		return -1;
	}
	if (uid_fds_of(cf, 1024, NULL) != 0) {
		fprintf(stderr, "track_fs: uid_fds: '%s' is neither a count nor "
			"a percentage up to 100%%\n", cf->uid_fds);
		return -1;
	}
	return 0;
}

static void syslog_sink(int level, const char *line, size_t len)
{
	syslog(level, "%.*s", (int)len, line);
}

/*
 * Fork before anything else: the broker connection must belong to the
 * process that serves the mount.  The parent waits for one status byte so
 * that a failed mount is its exit status too.
 */
static int background(int *notify)
{
	int p[2];
	pid_t pid;
	char status = 1;

	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	pid = fork();
	if (pid == -1)
		return -1;
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &status, 1) != 1)
			status = 1;
		_exit(status);
	}
	close(p[0]);
	*notify = p[1];
	if (setsid() == -1)
		return -1;
	return 0;
}

static void detach(int notify)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	char ok = 0;

	if (fd != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	if (write(notify, &ok, 1) != 1)
		mb_log(MB_LOG_WARNING, "cannot tell the parent we are up");
	close(notify);
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int open_backing(struct tfs_conf *cf, const char *mnt)
{
	struct statfs sf;
	int fd;

	if (cf->backing[0] == '\0') {
		if (strlen(mnt) >= sizeof(cf->backing))
			return -1;
		strcpy(cf->backing, mnt);
	}
	/* Opened before the mount, so it may be the mount point itself. */
	fd = open(cf->backing, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1) {
		fprintf(stderr, "track_fs: backing directory %s: %s\n",
			cf->backing, strerror(errno));
		return -1;
	}
	if (fstatfs(fd, &sf) == 0 && sf.f_type != TFS_TMPFS_MAGIC)
		mb_log(MB_LOG_WARNING, "%s is not on tmpfs; its pages are "
		       "charged all the same", cf->backing);
	return fd;
}

/*
 * Serving: a pool of threads of which exactly one, the leader, reads the
 * device, then answers what it read itself and reads again.  A single
 * stream of requests is thus served by one hot thread, as fast as a
 * single-threaded loop; a thread about to block on the broker hands the
 * reading over first (tfs_serve_yield), so a slow or stopped broker never
 * holds up requests that do not need it.  (Threads all blocked in read(2)
 * are woken in turn by the kernel, the coldest first, which costs more
 * than most requests on a small machine.)
 *
 * The termination signals are blocked in every thread; the main thread
 * waits for them, or for the workers to report that the session ended.
 * SIGUSR2 writes each user's usage to the log.
 */
#define TFS_SIG_DONE SIGUSR1
#define TFS_SIG_REPORT SIGUSR2

static struct {
	pthread_mutex_t lock;
	pthread_cond_t follow;
	struct fuse_session *se;
	pthread_t main;
	int have_leader;
	int error;
} srv = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0, 0 };

static __thread int srv_is_leader;

void tfs_serve_yield(void)
{
	if (!srv_is_leader)
		return;
	srv_is_leader = 0;
	pthread_mutex_lock(&srv.lock);
	srv.have_leader = 0;
	pthread_cond_signal(&srv.follow);
	pthread_mutex_unlock(&srv.lock);
}

static void srv_end(int error)
{
	pthread_mutex_lock(&srv.lock);
	if (error)
		srv.error = 1;
	fuse_session_exit(srv.se);
	pthread_cond_broadcast(&srv.follow);
	pthread_mutex_unlock(&srv.lock);
	pthread_kill(srv.main, TFS_SIG_DONE);
}

static void *worker(void *arg)
{
	struct fuse_buf buf;
	int rc;

	memset(&buf, 0, sizeof(buf));
	for (;;) {
		if (!srv_is_leader) {
			pthread_mutex_lock(&srv.lock);
			while (srv.have_leader && !fuse_session_exited(srv.se))
				pthread_cond_wait(&srv.follow, &srv.lock);
			srv.have_leader = 1;
			pthread_mutex_unlock(&srv.lock);
			srv_is_leader = 1;
		}
		if (fuse_session_exited(srv.se))
			break;
		rc = fuse_session_receive_buf(srv.se, &buf);
		if (rc == -EINTR || rc == -EAGAIN)
			continue;
		if (rc <= 0) {
			srv_end(rc < 0 && rc != -ENODEV);
			break;
		}
		fuse_session_process_buf(srv.se, &buf);
	}
	if (srv_is_leader) {
		srv_is_leader = 0;
		pthread_mutex_lock(&srv.lock);
		srv.have_leader = 0;
		pthread_cond_broadcast(&srv.follow);
		pthread_mutex_unlock(&srv.lock);
	}
	free(buf.mem);
	return arg;
}

static int serve(struct fuse_session *se, unsigned nthreads)
{
	pthread_t *tids = calloc(nthreads, sizeof(*tids));
	sigset_t set;
	unsigned i, started = 0;
	int sig;

	if (tids == NULL)
		return 1;
	srv.se = se;
	srv.main = pthread_self();
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, TFS_SIG_DONE);
	sigaddset(&set, TFS_SIG_REPORT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (i = 0; i < nthreads; i++) {
		if (pthread_create(&tids[i], NULL, worker, NULL) != 0)
			break;
		started++;
	}
	if (started == 0) {
		free(tids);
		return 1;
	}
	if (started < nthreads)
		mb_log(MB_LOG_WARNING, "only %u worker threads", started);
	while (!fuse_session_exited(se)) {
		if (sigwait(&set, &sig) != 0)
			break;
		if (sig == TFS_SIG_REPORT) {
			tfs_uid_log();
			continue;
		}
		if (sig != TFS_SIG_DONE)
			mb_log(MB_LOG_NOTICE, "signal %d: unmounting", sig);
		pthread_mutex_lock(&srv.lock);
		fuse_session_exit(se);
		pthread_cond_broadcast(&srv.follow);
		pthread_mutex_unlock(&srv.lock);
	}
	/* Ends the leader's read with ENODEV. */
	fuse_session_unmount(se);
	for (i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	return srv.error;
}

static int run(struct tfs_conf *cf, struct cmdline *cl, const char *mnt,
	       int notify)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se = NULL;
	char opts[TFS_OPTS_MAX + 2 * PATH_MAX], err[MB_CONF_ERR_MAX], sz[32];
	uint64_t used = 0;
	int rootfd, rc;

	rootfd = open_backing(cf, mnt);
	if (rootfd == -1)
		return 1;
	if (cf->charge) {
		rc = tfs_walk_usage(rootfd, &used);
		if (rc != 0) {
			fprintf(stderr, "track_fs: cannot measure %s: %s\n",
				cf->backing, strerror(-rc));
			return 1;
		}
	}
	if (tfs_charge_init(cf, used, err, sizeof(err)) != 0) {
		fprintf(stderr, "track_fs: cannot mount on %s: %s\n", mnt, err);
		return 1;
	}
	mb_format_size(sz, sizeof(sz), used);
	mb_log(MB_LOG_INFO, "%s holds %s at start", cf->backing, sz);
	if (cf->charge)
		set_uid_limit(cf);
	set_fd_limits(cf);
	if (tfs_ops_init(rootfd, cf) != 0) {
		fprintf(stderr, "track_fs: out of memory\n");
		goto fail;
	}
	/* A comma would split the option list. */
	snprintf(opts, sizeof(opts), "fsname=%s,subtype=track_fs,"
		 "default_permissions%s%s%s",
		 strchr(cf->backing, ',') ? "track_fs" : cf->backing,
		 geteuid() == 0 ? ",allow_other" : "",
		 cl->fuse_opts[0] ? "," : "", cl->fuse_opts);
	if (fuse_opt_add_arg(&args, "track_fs") != 0 ||
	    fuse_opt_add_arg(&args, "-o") != 0 ||
	    fuse_opt_add_arg(&args, opts) != 0 ||
	    (cl->debug && fuse_opt_add_arg(&args, "-d") != 0))
		goto fail;
	se = fuse_session_new(&args, &tfs_ops, sizeof(tfs_ops), NULL);
	if (se == NULL)
		goto fail;
	if (fuse_session_mount(se, mnt) != 0) {
		fprintf(stderr, "track_fs: cannot mount on %s\n", mnt);
		goto fail;
	}
	if (notify >= 0) {
		mb_log_set_sink(syslog_sink);
		detach(notify);
	}
	rc = serve(se, cl->single ? 1 : (unsigned)cf->threads);
	fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	tfs_ops_fini();
	tfs_charge_fini();
	tfs_uid_fini();
	return rc == 0 ? 0 : 1;

fail:
	if (se != NULL)
		fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	tfs_charge_fini();
	return 1;
}

int main(int argc, char **argv)
{
	struct cmdline cl;
	struct tfs_conf cf;
	char mnt[PATH_MAX];
	int rc, notify = -1;

	memset(&cl, 0, sizeof(cl));
	memset(&cf, 0, sizeof(cf));
	mb_log_init("track_fs", STDERR_FILENO, MB_LOG_NOTICE);
	if (mb_conf_defaults(tfs_conf_keys, &cf) != 0)
		return 1;
	rc = parse_args(argc, argv, &cl);
	if (rc == 0)
		rc = apply_settings(&cl, &cf) != 0 ? -1 : 0;
	cmdline_free(&cl);
	if (rc != 0)
		return rc > 0 ? 0 : 2;
	mb_log_set_level(cl.debug ? MB_LOG_DEBUG : cf.log_level);
	if (cl.npos == 2 && cf.backing[0] == '\0' &&
	    strcmp(cl.pos[0], "none") != 0 && strcmp(cl.pos[0], "track_fs") != 0) {
		if (strlen(cl.pos[0]) >= sizeof(cf.backing)) {
			fprintf(stderr, "track_fs: source path too long\n");
			return 2;
		}
		strcpy(cf.backing, cl.pos[0]);
	}
	if (realpath(cl.pos[cl.npos - 1], mnt) == NULL) {
		fprintf(stderr, "track_fs: mount point %s: %s\n",
			cl.pos[cl.npos - 1], strerror(errno));
		return 1;
	}
	/* Modes arrive with the caller's umask applied already. */
	umask(0);
	raise_nofile();
	if (!cl.foreground && background(&notify) != 0) {
		fprintf(stderr, "track_fs: cannot go to the background: %s\n",
			strerror(errno));
		return 1;
	}
	return run(&cf, &cl, mnt, notify);
}
