/*
 * fuzz_trackfs.c - libFuzzer harness of track_fs's accounting
 * (track_fs/charge.c) against a real broker.
 *
 * charge.c needs no FUSE: it is driven here through its own interface
 * (tfs.h) as ops.c drives it, with inodes that exist only as struct
 * tfs_inode.  Its quota comes from a real mbserver started on a private
 * socket for the whole run (FUZZ_MBSERVER names the binary; the default
 * is ../mbserver/mbserver next to this program).  tfs_serve_yield(), the
 * hand-over of the FUSE request loop in main.c, has no loop to hand over
 * here and does nothing.
 *
 * The input is a script: charged changes (begin with an estimate in one
 * of the three modes, then end with what the change really used, into
 * the inode's reserve or not), last-link removals, reserve trims and
 * drops, changes seen outside a charged call, usage queries, and changes
 * of the live settings (step, hysteresis, urgency, broker-down mode, cap).
 * After every step the accounting must agree with the harness's own
 * count and with the broker:
 *   used     = sum of the inodes' charged blocks + outside changes
 *   reserved = sum of the inodes' reserves (nothing is in flight)
 *   held     = the balance the broker shows for track_fs, in bytes
 *   used + reserved <= held while the broker is up, unless something
 *              the accounting cannot refuse (page writeback, an outside
 *              change, a change beyond its estimate) went over.
 * At the end of each input every inode is removed, and then nothing may
 * be used or reserved, and no more than the hysteresis may be held.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fz_input.h"
#include "mb_conf.h"
#include "mb_log.h"
#include "mbclient.h"
#include "tfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Checks name the failed condition and the accounting's state. */
#define FZ_TCHECK(c) do { if (!(c)) fz_fail(#c, __LINE__); } while (0)
#define FZ_INODES 8
#define FZ_TOTAL "64M"
#define FZ_CHUNK 65536
/* No file system holds more than this (1 PiB): an inode's blocks, and the
 * blocks changed outside charged calls, stay within it, as st_blocks of a
 * real tmpfs do. */
#define FZ_MAX_BYTES (INT64_C(1) << 50)

static struct tfs_conf cf;
static char dir_path[64];
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static pid_t broker_pid;
static mb_client observer;
static struct tfs_inode inodes[FZ_INODES];
static int64_t outside;  /* changes booked with tfs_charge_adjust() */
static int over;         /* something this input did may exceed held */

void tfs_serve_yield(void)
{
}

static void fz_fail(const char *what, int line)
{
	struct tfs_usage u;
	tfs_charge_usage(&u, 0);
	fprintf(stderr, "fuzz_trackfs:%d: %s fails: used %lu reserved %lu held %lu up %d\n",
		line, what, (unsigned long)u.used, (unsigned long)u.reserved,
		(unsigned long)u.held, u.broker_up);
	abort();
}

static void stop_broker(void)
{
	/* track_fs lets go first, so that it does not see its broker die. */
	tfs_charge_fini();
	mb_close(&observer);
	if (broker_pid > 0) {
		kill(broker_pid, SIGTERM);
		waitpid(broker_pid, NULL, 0);
	}
	unlink(sock_path);
	rmdir(dir_path);
}

static void start_broker(const char *argv0)
{
	char def[4096];
	const char *bin = getenv("FUZZ_MBSERVER");
	if (bin == NULL) {
		const char *slash = strrchr(argv0, '/');
		int n = slash ? (int)(slash - argv0) : 1;
		snprintf(def, sizeof(def), "%.*s/../mbserver/mbserver", n, slash ? argv0 : ".");
		bin = def;
	}
	const char *tmp = getenv("TMPDIR");
	snprintf(dir_path, sizeof(dir_path), "%s/fztfs.XXXXXX",
		 tmp && strlen(tmp) < 32 ? tmp : "/tmp");
	if (mkdtemp(dir_path) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(sock_path, sizeof(sock_path), "%s/mb.sock", dir_path);
	pid_t parent = getpid();
	broker_pid = fork();
	if (broker_pid == 0) {
		/* A crash ends the harness without atexit(): the broker goes
		 * with it all the same. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		execl(bin, bin, "--config", "/dev/null", "--socket", sock_path,
		      "--total", FZ_TOTAL, "--log-level",
		      getenv("FZ_VERBOSE") ? "debug" : "err", (char *)NULL);
		fprintf(stderr, "fuzz_trackfs: cannot run %s (set FUZZ_MBSERVER)\n", bin);
		_exit(127);
	}
	atexit(stop_broker);
	struct mb_options o;
	memset(&o, 0, sizeof(o));
	o.socket_path = sock_path;
	o.kind = MB_CLIENT_OBSERVER;
	o.name = "fuzz-observer";
	for (int i = 0; i < 500; i++) {
		if (mb_open(&observer, &o) == 0)
			return;
		mb_close(&observer);
		if (waitpid(broker_pid, NULL, WNOHANG) == broker_pid) {
			broker_pid = 0;
			break;
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "fuzz_trackfs: the broker %s did not start\n", bin);
	exit(1);
}

static int find_row(void *arg, const struct mb_status_client *row)
{
	int64_t *bal = arg;
	if (strcmp(row->comm, "fuzz-trackfs") == 0)
		*bal = row->balance;
	return 0;
}

/* The broker's view: what track_fs holds, in bytes (-1: not registered). */
static int64_t broker_held(void)
{
	int64_t bal = -1;
	struct mb_status_head head;
	FZ_TCHECK(mb_status(&observer, &head, find_row, &bal) == 0);
	return bal < 0 ? bal : bal * (int64_t)head.page_size;
}

static void check(void)
{
	struct tfs_usage u;
	int64_t blocks = 0;
	uint64_t resv = 0;
	for (int i = 0; i < FZ_INODES; i++) {
		blocks += inodes[i].blocks;
		resv += inodes[i].resv;
	}
	tfs_charge_usage(&u, 0);
	FZ_TCHECK((int64_t)u.used == (blocks + outside > 0 ? blocks + outside : 0));
	FZ_TCHECK(u.reserved == resv);
	if (!u.broker_up) {
		FZ_TCHECK(u.held == 0);
		return;
	}
	FZ_TCHECK(broker_held() == (int64_t)u.held);
	if (!over)
		FZ_TCHECK(u.used + u.reserved <= u.held);
}

static uint64_t amount(struct fz_in *in)
{
	uint8_t k = fz_byte(in);
	uint64_t v = fz_num(in);
	if (k < 0xe0)
		return v * FZ_CHUNK;    /* up to ~15 MiB, a quarter of the quota */
	return v;                   /* anything, to the 64-bit edges */
}

/* One charged change of inode in (NULL: a new name, no inode yet). */
static void change(struct fz_in *in, struct tfs_inode *ino)
{
	uint8_t k = fz_byte(in);
	int mode = k % 3;
	int keep = (k >> 2) & 1;
	uint64_t est = amount(in);
	uint8_t use = fz_byte(in);
	if (est > (uint64_t)FZ_MAX_BYTES)
		est = (uint64_t)FZ_MAX_BYTES;
	if (tfs_charge_begin(ino, est, mode) != 0) {
		FZ_TCHECK(mode != TFS_CHARGE_FORCE);
		return;
	}
	int64_t delta;
	int64_t had = ino ? ino->blocks : 0;
	if (use < 0xc0)
		delta = (int64_t)(est / 0xc0 * use);        /* within the estimate */
	else if (use < 0xe0)
		delta = -(int64_t)(had / 0x20 * (use - 0xc0)); /* freed blocks */
	else
		delta = (int64_t)(est + (uint64_t)(use - 0xdf) * FZ_CHUNK); /* beyond it */
	if (had + delta > FZ_MAX_BYTES)
		delta = FZ_MAX_BYTES - had;
	if (delta > (int64_t)est || mode == TFS_CHARGE_FORCE)
		over = 1;
	if (ino == NULL) {
		/* A change without an inode (a create) books its blocks to
		 * the file system as a whole. */
		if (delta < 0 || outside + delta > FZ_MAX_BYTES)
			delta = 0;
		tfs_charge_end(NULL, est, delta, 0);
		outside += delta;
		return;
	}
	tfs_charge_end(ino, est, delta, keep);
}

/* The last link goes: the inode's charge and reserve come back. */
static void remove_inode(struct tfs_inode *ino)
{
	tfs_charge_drop_resv(ino);
	tfs_charge_credit(ino);
	FZ_TCHECK(ino->blocks == 0 && ino->resv == 0);
	memset(ino, 0, sizeof(*ino));
}

static void settings(struct fz_in *in)
{
	uint8_t k = fz_byte(in);
	cf.step = (uint64_t)fz_byte(in) * 16384;
	cf.release_hysteresis = (uint64_t)fz_byte(in) * 65536;
	cf.urgency = k & 1 ? TFS_URG_RESERVE : TFS_URG_REQUEST;
	cf.on_broker_down = k & 2 ? TFS_DOWN_CAP : TFS_DOWN_DENY;
	cf.cap = amount(in);
}

static void defaults(void)
{
	char err[MB_CONF_ERR_MAX];
	mb_conf_defaults(tfs_conf_keys, &cf);
	mb_conf_set(tfs_conf_keys, &cf, "broker_socket", sock_path, err, sizeof(err));
	mb_conf_set(tfs_conf_keys, &cf, "client_name", "fuzz-trackfs", err, sizeof(err));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	mb_set_log(-1, 3);
	mb_log_init("fuzz_trackfs", 2, getenv("FZ_VERBOSE") ? MB_LOG_DEBUG : MB_LOG_ERR);
	start_broker((*argv)[0]);
	(void)argc;
	defaults();
	char err[256];
	if (tfs_charge_init(&cf, 0, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_trackfs: %s\n", err);
		exit(1);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	defaults();
	memset(inodes, 0, sizeof(inodes));
	outside = 0;
	over = 0;
	check();
	while (fz_more(&in)) {
		uint8_t op = fz_byte(&in);
		struct tfs_inode *ino = &inodes[(op >> 3) % FZ_INODES];
		switch (op % 8) {
		case 0: case 1: case 2:
			change(&in, ino);
			break;
		case 3:
			change(&in, NULL);
			break;
		case 4:
			remove_inode(ino);
			break;
		case 5:
			tfs_charge_trim_resv(ino, amount(&in));
			break;
		case 6: {
			int64_t d = (int64_t)(amount(&in) % (UINT64_C(1) << 40));
			if (fz_byte(&in) & 1)
				d = -d;
			if (outside + d > FZ_MAX_BYTES)
				d = 0;
			if (d > 0)
				over = 1;
			tfs_charge_adjust(d);
			outside += d;
			break;
		}
		case 7:
			settings(&in);
			break;
		}
		check();
	}
	/* Every file goes: nothing stays charged, spare quota goes back. */
	for (int i = 0; i < FZ_INODES; i++)
		remove_inode(&inodes[i]);
	tfs_charge_adjust(-outside);
	outside = 0;
	defaults();
	tfs_charge_adjust(0);
	check();
	struct tfs_usage u;
	tfs_charge_usage(&u, 0);
	FZ_TCHECK(u.used == 0 && u.reserved == 0);
	FZ_TCHECK(u.held <= cf.release_hysteresis);
	return 0;
}
