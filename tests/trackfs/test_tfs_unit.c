/*
 * test_tfs_unit.c - unit tests of track_fs's settings table, the walk that
 * measures a backing directory, and the charge accounting while the broker
 * is unreachable (deny and cap).  No mount, no broker.
 *
 * Part of track_fs; GPL-2.0 (see COPYING.GPL-2).
 */
#define _GNU_SOURCE

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "mb_conf.h"
#include "mb_log.h"
#include "tfs.h"

#define KiB 1024ULL
#define MiB (1024ULL * 1024ULL)

static char tmpdir[PATH_MAX / 2];

/* The serving loop is not part of these tests. */
void tfs_serve_yield(void)
{
}

static void mk_tmp(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/tfsunit.XXXXXX", base ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void rm_tmp(void)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static void write_file(const char *name, size_t len, off_t at)
{
	char path[PATH_MAX + 64], buf[4096];
	int fd;
	size_t done = 0;

	memset(buf, 'q', sizeof(buf));
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	while (done < len) {
		size_t n = len - done < sizeof(buf) ? len - done : sizeof(buf);

		ck_assert_int_eq(pwrite(fd, buf, n, at + (off_t)done), (ssize_t)n);
		done += n;
	}
	close(fd);
}

static uint64_t blocks_of(const char *name)
{
	char path[PATH_MAX + 64];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	ck_assert_int_eq(lstat(path, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

static void conf_for(struct tfs_conf *cf, int down_mode, const char *cap)
{
	char err[MB_CONF_ERR_MAX];

	memset(cf, 0, sizeof(*cf));
	ck_assert_int_eq(mb_conf_defaults(tfs_conf_keys, cf), 0);
	snprintf(cf->broker_socket, sizeof(cf->broker_socket),
		 "%s/no-broker.sock", tmpdir);
	cf->on_broker_down = down_mode;
	ck_assert_int_eq(mb_conf_set(tfs_conf_keys, cf, "cap", cap, err,
				     sizeof(err)), 0);
	ck_assert_int_eq(mb_conf_set(tfs_conf_keys, cf, "retry_interval", "1h",
				     err, sizeof(err)), 0);
}

START_TEST(conf_table)
{
	struct tfs_conf cf;
	char err[MB_CONF_ERR_MAX];
	int i, j;

	memset(&cf, 0, sizeof(cf));
	ck_assert_int_eq(mb_conf_defaults(tfs_conf_keys, &cf), 0);
	ck_assert_uint_eq(cf.step, MiB);
	ck_assert_uint_eq(cf.release_hysteresis, 4 * MiB);
	ck_assert_int_eq(cf.charge, 1);
	ck_assert_int_eq(cf.on_broker_down, TFS_DOWN_DENY);
	ck_assert_uint_eq(cf.broker_timeout, 250);
	ck_assert_uint_eq(cf.retry_interval, 250);
	for (i = 0; tfs_conf_keys[i].name != NULL; i++) {
		ck_assert_ptr_nonnull(tfs_conf_keys[i].help);
		for (j = i + 1; tfs_conf_keys[j].name != NULL; j++)
			ck_assert_str_ne(tfs_conf_keys[i].name, tfs_conf_keys[j].name);
	}
	ck_assert_int_eq(mb_conf_set(tfs_conf_keys, &cf, "urgency", "reserve",
				     err, sizeof(err)), 0);
	ck_assert_int_eq(cf.urgency, TFS_URG_RESERVE);
	ck_assert_int_eq(mb_conf_set(tfs_conf_keys, &cf, "on_broker_down",
				     "maybe", err, sizeof(err)), -1);
	ck_assert_int_eq(mb_conf_set(tfs_conf_keys, &cf, "step", "-1",
				     err, sizeof(err)), -1);
	ck_assert_int_eq(cf.step, MiB);
}
END_TEST

START_TEST(walk_counts_links_once)
{
	uint64_t got, want;
	char a[PATH_MAX + 64], b[PATH_MAX + 64];
	int fd;

	mk_tmp();
	write_file("dense", 3 * 4096 + 10, 0);
	write_file("sparse", 4096, 10 * (off_t)MiB);
	snprintf(a, sizeof(a), "%s/sub", tmpdir);
	ck_assert_int_eq(mkdir(a, 0755), 0);
	write_file("sub/inner", 5000, 0);
	snprintf(a, sizeof(a), "%s/dense", tmpdir);
	snprintf(b, sizeof(b), "%s/sub/dense.link", tmpdir);
	ck_assert_int_eq(link(a, b), 0);
	want = blocks_of("dense") + blocks_of("sparse") + blocks_of("sub/inner");
	ck_assert_uint_lt(blocks_of("sparse"), MiB);
	fd = open(tmpdir, O_PATH | O_DIRECTORY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(tfs_walk_usage(fd, &got), 0);
	ck_assert_uint_eq(got, want);
	close(fd);
	rm_tmp();
}
END_TEST

/*
 * A tree as deep as a user can make in a second is walked: the walk keeps
 * its open directories on the heap, not on the stack.  It recursed once
 * per level with a path buffer in each frame, and a tree some 1,900
 * levels deep crashed it (track_fs then crashed at every mount).  The
 * walk holds a descriptor per level: the soft limit is raised as
 * track_fs raises it.
 */
START_TEST(walk_survives_deep_trees)
{
	enum { DEPTH = 3000 };
	struct rlimit rl;
	struct stat st;
	uint64_t got;
	int fd, d;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < DEPTH + 100)
		return; /* cannot hold a descriptor per level here */
	rl.rlim_cur = rl.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	mk_tmp();
	d = open(tmpdir, O_PATH | O_DIRECTORY);
	ck_assert_int_ge(d, 0);
	for (int i = 0; i < DEPTH; i++) {
		int n;

		ck_assert_int_eq(mkdirat(d, "d", 0755), 0);
		n = openat(d, "d", O_PATH | O_DIRECTORY);
		ck_assert_int_ge(n, 0);
		close(d);
		d = n;
	}
	fd = openat(d, "bottom", O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "x", 1), 1);
	ck_assert_int_eq(fsync(fd), 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	close(fd);
	close(d);
	fd = open(tmpdir, O_PATH | O_DIRECTORY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(tfs_walk_usage(fd, &got), 0);
	ck_assert_uint_eq(got, (uint64_t)st.st_blocks * 512); /* the file at the bottom */
	close(fd);
	rm_tmp();
}
END_TEST

/* Extended attributes count as name length plus value size, once per
 * inode, directories' included; each file's cost goes to its owner. */
START_TEST(walk_counts_xattrs)
{
	char a[PATH_MAX + 64], val[300];
	uint64_t got, want;
	int64_t before = tfs_uid_cost(geteuid());
	int fd;

	mk_tmp();
	write_file("f", 4096, 0);
	snprintf(a, sizeof(a), "%s/f", tmpdir);
	memset(val, 'x', sizeof(val));
	if (setxattr(a, "user.t", val, sizeof(val), 0) != 0) {
		rm_tmp();
		return;		/* TMPDIR without user xattrs: nothing to count */
	}
	snprintf(a, sizeof(a), "%s/d", tmpdir);
	ck_assert_int_eq(mkdir(a, 0755), 0);
	ck_assert_int_eq(setxattr(a, "user.dd", val, 10, 0), 0);
	snprintf(a, sizeof(a), "%s/f", tmpdir);
	ck_assert_uint_eq(tfs_xattr_usage(a, 0), strlen("user.t") + sizeof(val));
	want = blocks_of("f") + strlen("user.t") + sizeof(val) + strlen("user.dd") + 10;
	fd = open(tmpdir, O_PATH | O_DIRECTORY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(tfs_walk_usage(fd, &got), 0);
	ck_assert_uint_eq(got, want);
	ck_assert_int_eq(tfs_uid_cost(geteuid()) - before, (int64_t)want);
	close(fd);
	rm_tmp();
}
END_TEST

/* The per-owner limit: pending changes count, root and writeback pass. */
START_TEST(uid_limit)
{
	uid_t u = 4242, v;

	tfs_uid_set_limit(MiB);
	ck_assert_int_eq(tfs_uid_begin(u, 512 * KiB, 0), 0);
	ck_assert_int_eq(tfs_uid_begin(u, 600 * KiB, 0), -ENOSPC);
	tfs_uid_end(u, 512 * KiB, 512 * KiB);
	ck_assert_int_eq(tfs_uid_cost(u), (int64_t)(512 * KiB));
	ck_assert_int_eq(tfs_uid_begin(u, 600 * KiB, 0), -ENOSPC);
	ck_assert_int_eq(tfs_uid_begin(u, 512 * KiB, 0), 0);
	tfs_uid_end(u, 512 * KiB, 0);
	ck_assert_int_eq(tfs_uid_begin(0, 64 * MiB, 0), 0);
	tfs_uid_end(0, 64 * MiB, 64 * MiB);
	ck_assert_int_eq(tfs_uid_begin(u, 600 * KiB, 1), 0);
	tfs_uid_end(u, 600 * KiB, 600 * KiB);
	ck_assert_int_eq(tfs_uid_begin(u, 1, 0), -ENOSPC);
	tfs_uid_adjust(u, -(int64_t)(1112 * KiB));
	ck_assert_int_eq(tfs_uid_cost(u), 0);
	/* Many owners: the table grows and keeps every figure. */
	for (v = 10000; v < 12000; v++)
		tfs_uid_adjust(v, (int64_t)v);
	for (v = 10000; v < 12000; v++)
		ck_assert_int_eq(tfs_uid_cost(v), (int64_t)v);
	tfs_uid_log();
	tfs_uid_set_limit(0);
	ck_assert_int_eq(tfs_uid_begin(u, 64 * MiB, 0), 0);
	tfs_uid_end(u, 64 * MiB, 0);
	tfs_uid_fini();
	ck_assert_int_eq(tfs_uid_cost(10001), 0);
}
END_TEST

/* Descriptors: one user's share, all users' together, root and self exempt,
 * n at a time or none, and what is put back is room again. */
START_TEST(uid_fd_limits)
{
	uid_t a = 4242, b = 4343, self = 777;
	int i;

	tfs_uid_set_fd_limits(3, 5, self);
	ck_assert_int_eq(tfs_uid_fd_take(a, 2), 0);
	ck_assert_int_eq(tfs_uid_fd_take(a, 1), 0);
	ck_assert_int_eq(tfs_uid_fd_take(a, 1), -ENFILE);
	/* Two at once past the users' total: neither is taken. */
	ck_assert_int_eq(tfs_uid_fd_take(b, 1), 0);
	ck_assert_int_eq(tfs_uid_fd_take(b, 2), -ENFILE);
	ck_assert_int_eq(tfs_uid_fd_take(b, 1), 0);
	/* Users together at 5: b is under its share, and still refused. */
	ck_assert_int_eq(tfs_uid_fd_take(b, 1), -ENFILE);
	for (i = 0; i < 100; i++) {
		ck_assert_int_eq(tfs_uid_fd_take(0, 1), 0);
		ck_assert_int_eq(tfs_uid_fd_take(self, 2), 0);
	}
	tfs_uid_fd_put(a, 1);
	ck_assert_int_eq(tfs_uid_fd_take(b, 1), 0);
	ck_assert_int_eq(tfs_uid_fd_take(a, 1), -ENFILE);
	tfs_uid_fd_put(b, 3);
	tfs_uid_fd_put(b, 3);	/* more than held: stays at 0 */
	ck_assert_int_eq(tfs_uid_fd_take(a, 1), 0);
	ck_assert_int_eq(tfs_uid_fd_take(b, 2), 0);
	ck_assert_int_eq(tfs_uid_fd_take(b, 1), -ENFILE);
	tfs_uid_set_fd_limits(0, 0, self);
	ck_assert_int_eq(tfs_uid_fd_take(a, 1000), 0);
	tfs_uid_log();
	tfs_uid_fini();
}
END_TEST

START_TEST(deny_without_broker)
{
	struct tfs_conf cf;
	struct tfs_usage u;
	char err[MB_CONF_ERR_MAX];

	mk_tmp();
	conf_for(&cf, TFS_DOWN_DENY, "1M");
	/* Nothing in use: the mount may go ahead, new data is refused. */
	ck_assert_int_eq(tfs_charge_init(&cf, 0, err, sizeof(err)), 0);
	ck_assert_int_eq(tfs_charge_begin(NULL, 4096, 0), -ENOSPC);
	/* Freeing and overwriting need nothing. */
	ck_assert_int_eq(tfs_charge_begin(NULL, 0, 0), 0);
	/* Page writeback is never refused. */
	ck_assert_int_eq(tfs_charge_begin(NULL, 4096, 1), 0);
	tfs_charge_end(NULL, 4096, 4096, 0);
	tfs_charge_usage(&u, 1);
	ck_assert_uint_eq(u.used, 4096);
	ck_assert_int_eq(u.broker_up, 0);
	ck_assert_uint_eq(u.held + u.available, 0);
	tfs_charge_fini();
	rm_tmp();
}
END_TEST

START_TEST(deny_refuses_existing_files)
{
	struct tfs_conf cf;
	char err[MB_CONF_ERR_MAX];

	mk_tmp();
	conf_for(&cf, TFS_DOWN_DENY, "1M");
	ck_assert_int_eq(tfs_charge_init(&cf, 8192, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "unreachable"));
	rm_tmp();
}
END_TEST

START_TEST(cap_without_broker)
{
	struct tfs_conf cf;
	struct tfs_inode in;
	struct tfs_usage u;
	char err[MB_CONF_ERR_MAX];

	mk_tmp();
	conf_for(&cf, TFS_DOWN_CAP, "1M");
	ck_assert_int_eq(tfs_charge_init(&cf, 256 * KiB, err, sizeof(err)), 0);
	memset(&in, 0, sizeof(in));
	in.blocks = 256 * KiB;
	ck_assert_int_eq(tfs_charge_begin(&in, 512 * KiB, 0), 0);
	/* Only part of the bound was used. */
	tfs_charge_end(&in, 512 * KiB, 128 * KiB, 0);
	ck_assert_int_eq(in.blocks, 384 * KiB);
	ck_assert_int_eq(tfs_charge_begin(&in, 700 * KiB, 0), -ENOSPC);
	ck_assert_int_eq(tfs_charge_begin(&in, 640 * KiB, 0), 0);
	tfs_charge_end(&in, 640 * KiB, 640 * KiB, 0);
	tfs_charge_usage(&u, 1);
	ck_assert_uint_eq(u.used, MiB);
	ck_assert_uint_eq(u.available, MiB);
	ck_assert_int_eq(tfs_charge_begin(&in, 4096, 0), -ENOSPC);
	/* The last link goes: everything comes back. */
	tfs_charge_credit(&in);
	ck_assert_int_eq(in.blocks, 0);
	tfs_charge_usage(&u, 0);
	ck_assert_uint_eq(u.used, 0);
	ck_assert_int_eq(tfs_charge_begin(&in, MiB, 0), 0);
	tfs_charge_end(&in, MiB, 0, 0);
	tfs_charge_fini();
	rm_tmp();
}
END_TEST

START_TEST(cap_refuses_existing_files_over_it)
{
	struct tfs_conf cf;
	char err[MB_CONF_ERR_MAX];

	mk_tmp();
	conf_for(&cf, TFS_DOWN_CAP, "64K");
	ck_assert_int_eq(tfs_charge_init(&cf, 128 * KiB, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "cap"));
	rm_tmp();
}
END_TEST

START_TEST(inode_reserve)
{
	struct tfs_conf cf;
	struct tfs_inode in;
	struct tfs_usage u;
	char err[MB_CONF_ERR_MAX];

	mk_tmp();
	conf_for(&cf, TFS_DOWN_CAP, "1M");
	ck_assert_int_eq(tfs_charge_init(&cf, 0, err, sizeof(err)), 0);
	memset(&in, 0, sizeof(in));
	/* A truncate that grew an open file keeps its bound as a reserve. */
	ck_assert_int_eq(tfs_charge_begin(&in, 512 * KiB, 0), 0);
	tfs_charge_end(&in, 512 * KiB, 0, 1);
	ck_assert_uint_eq(in.resv, 512 * KiB);
	tfs_charge_usage(&u, 0);
	ck_assert_uint_eq(u.reserved, 512 * KiB);
	/* Another file cannot take what is set aside. */
	ck_assert_int_eq(tfs_charge_begin(NULL, 600 * KiB, 0), -ENOSPC);
	/* The file's own writes draw on it. */
	ck_assert_int_eq(tfs_charge_begin(&in, 256 * KiB, 0), 0);
	ck_assert_uint_eq(in.resv, 256 * KiB);
	tfs_charge_end(&in, 256 * KiB, 256 * KiB, 0);
	tfs_charge_trim_resv(&in, 64 * KiB);
	ck_assert_uint_eq(in.resv, 64 * KiB);
	tfs_charge_drop_resv(&in);
	ck_assert_uint_eq(in.resv, 0);
	tfs_charge_usage(&u, 0);
	ck_assert_uint_eq(u.reserved, 0);
	ck_assert_uint_eq(u.used, 256 * KiB);
	tfs_charge_fini();
	rm_tmp();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("track_fs");
	TCase *tc = tcase_create("unit");
	SRunner *sr;
	int failed;

	mb_log_init("test_tfs_unit", STDERR_FILENO, MB_LOG_ERR);
	tcase_add_test(tc, conf_table);
	tcase_add_test(tc, walk_counts_links_once);
	tcase_add_test(tc, walk_counts_xattrs);
	tcase_add_test(tc, walk_survives_deep_trees);
	tcase_add_test(tc, uid_limit);
	tcase_add_test(tc, uid_fd_limits);
	tcase_add_test(tc, deny_without_broker);
	tcase_add_test(tc, deny_refuses_existing_files);
	tcase_add_test(tc, cap_without_broker);
	tcase_add_test(tc, cap_refuses_existing_files_over_it);
	tcase_add_test(tc, inode_reserve);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
