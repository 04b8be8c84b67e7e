/*
 * ops.c - the FUSE low-level operations of track_fs.
 *
 * track_fs is free software; you can redistribute it and/or modify it
 * under the terms of the GNU General Public License version 2 as
 * published by the Free Software Foundation (see COPYING.GPL-2).
 *
 * Invariants:
 * - Each backing inode seen by the kernel has one struct tfs_inode, found
 *   by (st_dev, st_ino) in the table; the kernel's lookup count is kept in
 *   nlookup and the struct lives until it drops to zero (FORGET).  The
 *   root is static and never forgotten.
 * - Every change that can allocate pages (write, truncate, fallocate,
 *   symlink) runs under the inode's lock between tfs_charge_begin() with an
 *   upper bound of the new pages and tfs_charge_end() with the change of
 *   st_blocks really seen, so the charge of an inode always equals its
 *   st_blocks * 512 as last observed.
 * - A file or directory known to the kernel loses its charge (pages and
 *   extended attributes) when the kernel forgets it after its last link
 *   went: until then someone may hold it (open, an O_PATH descriptor that
 *   sends no OPEN, a current directory) and its memory with it.  One the
 *   kernel never looked up loses it at the unlink.  statfs waits a moment
 *   for the FORGET of what just lost its last link or its last opener, so
 *   that df right after rm or close sees it gone (orphans_settle).
 *   Extended attributes (name length plus value size) are charged when
 *   set.
 * - While a file is open for writing (nwrite > 0) its reserve covers the
 *   holes below its size (round_up(size) - st_blocks * 512), so the pages a
 *   shared mapping writes back are already paid for: opening for writing
 *   and every change that makes new holes (a truncate that grows the file,
 *   a write or fallocate past the end, a punched hole) take that quota
 *   first, and are refused with ENOSPC if the broker does not grant it.
 * - Every charge is also booked to the owner of the inode (uid.c), which
 *   may refuse it when the owner is at its limit.
 * - Writes are never cached by the kernel (no writeback cache), so a
 *   refused charge reaches the writer as ENOSPC from write(2) itself.
 */
#define FUSE_USE_VERSION 35
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "mb_clock.h"
#include "mb_log.h"
#include "mb_thread.h"
#include "tfs.h"

#define TFS_PAGE 4096ULL
#define TFS_BLOCK_UNIT 512
#define TFS_HASH_MIN 1024
#define TFS_PROC_PATH 64
#define TFS_XATTR_MAX 65536
#define TFS_MINCORE_WINDOW (1U << 20)
#define TFS_RFD_FAILED (-2)
/* in->eof: what is known of pages past the end of the file. */
#define TFS_EOF_UNKNOWN 0
#define TFS_EOF_CLEAN 1
#define TFS_EOF_PAST 2

static struct tfs_inode tfs_root;
static double tfs_timeout;
static int tfs_splice;
static unsigned tfs_max_write;
static int tfs_is_root;

static pthread_mutex_t tbl_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tfs_inode **tbl;
static size_t tbl_size, tbl_count;

/*
 * Orphans: inodes without links and without openers that the kernel has
 * not forgotten yet, in the order they became orphans.  Their FORGET
 * usually comes at once (after the unlink or the last release); statfs
 * waits, TFS_ORPHAN_SETTLE_MS at most, while one that became an orphan
 * less than that long before it was asked is left, so that what it shows
 * after rm or close is what the files use.  One an O_PATH descriptor or a
 * current directory holds stays charged, and is not waited for once it is
 * older.
 */
#define TFS_ORPHAN_SETTLE_MS 100
static struct {
	pthread_mutex_t lock;
	pthread_cond_t gone;
	struct tfs_inode *head, *tail;	/* oldest, newest */
} orph = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL };

struct tfs_dir {
	DIR *dp;
	off_t off;
	struct dirent *entry;
	uid_t uid;	/* whom its descriptor is counted for (uid.c) */
};

static uint64_t round_up(uint64_t v)
{
	return (v + TFS_PAGE - 1) & ~(TFS_PAGE - 1);
}

static uint64_t round_down(uint64_t v)
{
	return v & ~(TFS_PAGE - 1);
}

static int64_t st_bytes(const struct stat *st)
{
	return (int64_t)st->st_blocks * TFS_BLOCK_UNIT;
}

static struct tfs_inode *ino_of(fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &tfs_root;
	return (struct tfs_inode *)(uintptr_t)ino;
}

/* fi->fh of an open file: its descriptor in the low half, and in the high
 * half the user it is counted for (uid.c). */
static int fh_fd(const struct fuse_file_info *fi)
{
	return (int)(uint32_t)fi->fh;
}

static void fh_close(const struct fuse_file_info *fi)
{
	close(fh_fd(fi));
	tfs_uid_fd_put((uid_t)(fi->fh >> 32), 1);
}

/* Whom a request's new file will belong to (descriptors count for the
 * requester, fuse_req_ctx's uid, whoever owns the file). */
static uid_t req_uid(fuse_req_t req)
{
	return tfs_is_root ? fuse_req_ctx(req)->uid : geteuid();
}

static void proc_path(char *buf, int fd)
{
	snprintf(buf, TFS_PROC_PATH, "/proc/self/fd/%d", fd);
}

static size_t tbl_hash(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ULL ^ (uint64_t)dev;

	return (size_t)(h ^ (h >> 29)) & (tbl_size - 1);
}

static int tbl_grow(void)
{
	size_t nsize = tbl_size ? tbl_size * 2 : TFS_HASH_MIN, i, old = tbl_size;
	struct tfs_inode **ntbl = calloc(nsize, sizeof(*ntbl)), **otbl = tbl;

	if (ntbl == NULL)
		return -1;
	tbl = ntbl;
	tbl_size = nsize;
	for (i = 0; i < old; i++) {
		struct tfs_inode *in = otbl[i], *next;

		for (; in != NULL; in = next) {
			size_t h = tbl_hash(in->dev, in->ino);

			next = in->hnext;
			in->hnext = tbl[h];
			tbl[h] = in;
		}
	}
	free(otbl);
	return 0;
}

/* Under tbl_lock. */
static struct tfs_inode *tbl_find(dev_t dev, ino_t ino)
{
	struct tfs_inode *in;

	if (dev == tfs_root.dev && ino == tfs_root.ino)
		return &tfs_root;
	for (in = tbl[tbl_hash(dev, ino)]; in != NULL; in = in->hnext)
		if (in->dev == dev && in->ino == ino)
			return in;
	return NULL;
}

static void tbl_remove(struct tfs_inode *in)
{
	struct tfs_inode **pp = &tbl[tbl_hash(in->dev, in->ino)];

	for (; *pp != NULL; pp = &(*pp)->hnext) {
		if (*pp == in) {
			*pp = in->hnext;
			tbl_count--;
			return;
		}
	}
}

int tfs_ops_init(int rootfd, const struct tfs_conf *cf)
{
	struct stat st;

	if (fstatat(rootfd, "", &st, AT_EMPTY_PATH) == -1)
		return -errno;
	tfs_root.fd = rootfd;
	tfs_root.rfd = -1;
	tfs_root.dev = st.st_dev;
	tfs_root.ino = st.st_ino;
	tfs_root.uid = st.st_uid;
	tfs_root.nlookup = 2;
	pthread_mutex_init(&tfs_root.lock, NULL);
	tfs_timeout = (double)cf->cache_timeout / 1000.0;
	tfs_splice = cf->splice;
	tfs_max_write = (unsigned)cf->max_write;
	tfs_is_root = geteuid() == 0;
	if (tbl_grow() == -1)
		return -ENOMEM;
	return 0;
}

static int writable(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY;
}

/* What an inode costs its owner, xattrs aside.  Under in->lock. */
static int64_t footprint(const struct tfs_inode *in)
{
	return in->blocks + (int64_t)in->resv;
}

/* Holes below the size: what the reserve of a file open for writing covers.
 * Pages preallocated past the end (FALLOC_FL_KEEP_SIZE) make it smaller. */
static uint64_t hole_room(const struct stat *st)
{
	uint64_t size = round_up((uint64_t)st->st_size);
	uint64_t b = (uint64_t)st_bytes(st);

	return size > b ? size - b : 0;
}

static uint64_t inode_xattrs(struct tfs_inode *in)
{
	char path[TFS_PROC_PATH];

	proc_path(path, in->fd);
	return tfs_xattr_usage(path, 1);
}

/* A charged change of one inode in progress. */
struct change {
	uint64_t bytes;		/* bound charged to the quota */
	uint64_t upend;		/* pending in the owner's account */
	int64_t fp;		/* footprint before */
};

/*
 * Before a change of `in` under its lock: `below` bytes of pages it may
 * allocate in holes below the end (taken from the inode's reserve first)
 * and `rest` more (past the end, or new holes to reserve).  Checks the
 * owner's limit, then the quota; 0 or -ENOSPC.
 */
static int change_begin(struct tfs_inode *in, uint64_t below, uint64_t rest,
			int mode, struct change *c)
{
	uint64_t take = in->resv < below ? in->resv : below, stash = 0;
	int rc;

	c->fp = footprint(in);
	c->bytes = below + rest;
	c->upend = c->bytes - take;
	if (tfs_uid_begin(in->uid, c->upend, mode == TFS_CHARGE_FORCE) != 0)
		return -ENOSPC;
	/* Only holes being filled use the reserve, not pages past the end. */
	if (in->resv > below) {
		stash = in->resv - below;
		in->resv = below;
	}
	rc = tfs_charge_begin(in, c->bytes, mode);
	in->resv += stash;
	if (rc != 0)
		tfs_uid_end(in->uid, c->upend, 0);
	return rc;
}

/*
 * After the change: book what st_blocks shows (st NULL: nothing seen), keep
 * the unused part as the reserve while the file is open for writing, cut
 * it to the holes, and book the owner's difference.
 */
static void change_end(struct tfs_inode *in, const struct stat *st,
		       const struct change *c)
{
	int64_t delta = st != NULL ? st_bytes(st) - in->blocks : 0;

	tfs_charge_end(in, c->bytes, delta, in->nwrite > 0);
	if (st != NULL)
		tfs_charge_trim_resv(in, in->nwrite > 0 ? hole_room(st) : 0);
	tfs_uid_end(in->uid, c->upend, footprint(in) - c->fp);
}

/* Give back everything an inode costs (last link gone, forgotten). */
static void credit_inode(struct tfs_inode *in)
{
	int64_t fp = footprint(in), x = (int64_t)inode_xattrs(in);

	tfs_charge_drop_resv(in);
	tfs_charge_credit(in);
	tfs_charge_adjust(-x);
	tfs_uid_adjust(in->uid, footprint(in) - fp - x);
}

/* Give back the xattrs of a directory that is gone. */
static void dir_gone(const struct stat *st, uint64_t xattrs)
{
	if (xattrs == 0)
		return;
	tfs_charge_adjust(-(int64_t)xattrs);
	tfs_uid_adjust(st->st_uid, -(int64_t)xattrs);
}

/* in has lost its last link and its last opener: an orphan until the
 * kernel forgets it (or opens it again).  Under in->lock. */
static void orphan_mark(struct tfs_inode *in)
{
	if (in->orphan)
		return;
	in->orphan = 1;
	pthread_mutex_lock(&orph.lock);
	in->orphan_ms = mb_clock_ms();
	in->onext = NULL;
	in->oprev = orph.tail;
	if (orph.tail != NULL)
		orph.tail->onext = in;
	else
		orph.head = in;
	orph.tail = in;
	pthread_mutex_unlock(&orph.lock);
}

/* Opened again, or forgotten.  Under in->lock, or with in unreachable. */
static void orphan_clear(struct tfs_inode *in)
{
	if (!in->orphan)
		return;
	in->orphan = 0;
	pthread_mutex_lock(&orph.lock);
	if (in->oprev != NULL)
		in->oprev->onext = in->onext;
	else
		orph.head = in->onext;
	if (in->onext != NULL)
		in->onext->oprev = in->oprev;
	else
		orph.tail = in->oprev;
	pthread_cond_broadcast(&orph.gone);
	pthread_mutex_unlock(&orph.lock);
}

/*
 * Wait for the FORGET of the orphans that became ones less than
 * TFS_ORPHAN_SETTLE_MS before this call, for that long at most (statfs).
 * The newest orphan left says whether one is that recent.  Another thread
 * reads the requests meanwhile.
 */
static void orphans_settle(void)
{
	uint64_t start = mb_clock_ms(), end = start + TFS_ORPHAN_SETTLE_MS;
	int handed = 0;

	pthread_mutex_lock(&orph.lock);
	while (orph.tail != NULL &&
	       orph.tail->orphan_ms + TFS_ORPHAN_SETTLE_MS > start) {
		if (mb_clock_ms() >= end)
			break;
		if (!handed) {
			/* The FORGET must be read by another thread. */
			pthread_mutex_unlock(&orph.lock);
			tfs_serve_yield();
			handed = 1;
			pthread_mutex_lock(&orph.lock);
			continue;
		}
		mb_cond_wait_by(&orph.gone, &orph.lock, end);
	}
	pthread_mutex_unlock(&orph.lock);
}

/*
 * A file opened for writing: its reserve grows to cover the holes below
 * its size.  0 or ENOSPC (the open is then refused).  Under in->lock.
 */
static int reserve_holes(struct tfs_inode *in, int fd)
{
	struct stat st;
	struct change c;
	uint64_t room;

	if (!tfs_charge_enabled() || fstat(fd, &st) == -1)
		return 0;
	room = hole_room(&st);
	if (room <= in->resv)
		return 0;
	if (change_begin(in, 0, room - in->resv, TFS_CHARGE_HARD, &c) != 0)
		return ENOSPC;
	change_end(in, &st, &c);
	return 0;
}

/* After the session: whatever the kernel did not forget. */
void tfs_ops_fini(void)
{
	size_t i;

	for (i = 0; i < tbl_size; i++) {
		struct tfs_inode *in = tbl[i], *next;

		for (; in != NULL; in = next) {
			next = in->hnext;
			close(in->fd);
			if (in->rfd >= 0)
				close(in->rfd);
			pthread_mutex_destroy(&in->lock);
			free(in);
		}
	}
	free(tbl);
	tbl = NULL;
	tbl_size = tbl_count = 0;
	close(tfs_root.fd);
}

/*
 * Find or add the inode of `name` in parent; takes one lookup reference.
 * A new one keeps a descriptor counted for uid, the requester (uid.c):
 * ENFILE when uid is at its limit.  prepaid: the creator of the file took
 * that count before making it; it is given back if the inode is not new,
 * or on failure.
 */
static int do_lookup(struct tfs_inode *parent, const char *name,
		     struct fuse_entry_param *e, uid_t uid, int prepaid)
{
	struct tfs_inode *in = NULL;
	struct stat st;
	int fd, err = 0;

	memset(e, 0, sizeof(*e));
	e->attr_timeout = tfs_timeout;
	e->entry_timeout = tfs_timeout;
	fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		err = errno;
		goto fail;
	}
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1) {
		err = errno;
		goto fail;
	}
	pthread_mutex_lock(&tbl_lock);
	in = tbl_find(st.st_dev, st.st_ino);
	if (in != NULL) {
		in->nlookup++;
		pthread_mutex_unlock(&tbl_lock);
		close(fd);
		if (prepaid)
			tfs_uid_fd_put(uid, 1);
	} else {
		int took = prepaid;

		if (tbl_count >= tbl_size && tbl_grow() == -1)
			err = ENOMEM;
		else if (!took && tfs_uid_fd_take(uid, 1) != 0)
			err = ENFILE;
		else {
			took = 1;
			in = calloc(1, sizeof(*in));
			if (in == NULL)
				err = ENOMEM;
		}
		if (err != 0) {
			pthread_mutex_unlock(&tbl_lock);
			close(fd);
			if (took)
				tfs_uid_fd_put(uid, 1);
			return err;
		}
		in->fd = fd;
		in->fd_uid = uid;
		in->rfd = -1;
		in->dev = st.st_dev;
		in->ino = st.st_ino;
		in->nlookup = 1;
		in->blocks = st_bytes(&st);
		in->uid = st.st_uid;
		pthread_mutex_init(&in->lock, NULL);
		size_t h = tbl_hash(in->dev, in->ino);
		in->hnext = tbl[h];
		tbl[h] = in;
		tbl_count++;
		pthread_mutex_unlock(&tbl_lock);
	}
	e->ino = in == &tfs_root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)in;
	e->attr = st;
	return 0;
fail:
	if (fd != -1)
		close(fd);
	if (prepaid)
		tfs_uid_fd_put(uid, 1);
	return err;
}

static void forget_one(fuse_ino_t ino, uint64_t n)
{
	struct tfs_inode *in = ino_of(ino);
	struct stat st;

	pthread_mutex_lock(&tbl_lock);
	if (n > in->nlookup) {
		mb_log(MB_LOG_ERR, "forget of %llu on a count of %llu",
		       (unsigned long long)n, (unsigned long long)in->nlookup);
		n = in->nlookup;
	}
	in->nlookup -= n;
	if (in->nlookup > 0 || in == &tfs_root) {
		pthread_mutex_unlock(&tbl_lock);
		return;
	}
	tbl_remove(in);
	pthread_mutex_unlock(&tbl_lock);
	/* No one can reach it any more: without links, what it costs goes
	 * with the descriptor closed below. */
	if (fstat(in->fd, &st) == 0 && st.st_nlink == 0) {
		if (S_ISDIR(st.st_mode))
			dir_gone(&st, inode_xattrs(in));
		else
			credit_inode(in);
	}
	orphan_clear(in);
	close(in->fd);
	tfs_uid_fd_put(in->fd_uid, 1);
	if (in->rfd >= 0) {
		close(in->rfd);
		tfs_uid_fd_put(in->rfd_uid, 1);
	}
	pthread_mutex_destroy(&in->lock);
	free(in);
}

/* A new node belongs to the caller, not to the daemon. */
static void set_owner(struct tfs_inode *parent, fuse_req_t req, int dirfd,
		      const char *name, int fd)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct stat pst;
	gid_t gid = ctx->gid;

	if (!tfs_is_root || (ctx->uid == 0 && ctx->gid == 0))
		return;
	if (fstatat(parent->fd, "", &pst, AT_EMPTY_PATH) == 0 &&
	    (pst.st_mode & S_ISGID))
		gid = pst.st_gid;
	if (fd >= 0) {
		if (fchown(fd, ctx->uid, gid) == -1)
			mb_log(MB_LOG_WARNING, "chown: %s", strerror(errno));
	} else if (fchownat(dirfd, name, ctx->uid, gid, AT_SYMLINK_NOFOLLOW) == -1) {
		mb_log(MB_LOG_WARNING, "chown %s: %s", name, strerror(errno));
	}
}

/*
 * Pages of [start, end) in the file's page cache that hold data, which for
 * tmpfs are allocated pages (preallocated pages not yet written, and pages
 * in swap out of the swap cache, read as absent: an overestimate of what a
 * change allocates, never an underestimate).  mincore(2) on a read-only
 * shared mapping of a window at a time: the cost follows the range, where
 * SEEK_HOLE walks on to the next hole, through the whole of a dense file.
 * -1 if the file cannot be mapped (then SEEK_DATA is used); a failed open
 * is not retried before the last close.  Under in->lock.
 */
static int64_t resident(struct tfs_inode *in, uint64_t start, uint64_t end)
{
	unsigned char vec[TFS_MINCORE_WINDOW / TFS_PAGE];
	uint64_t pos, n = 0;
	size_t i;

	if (in->rfd == TFS_RFD_FAILED)
		return -1;
	if (in->rfd < 0) {
		char path[TFS_PROC_PATH];

		if (tfs_uid_fd_take(in->fd_uid, 1) != 0) {
			in->rfd = TFS_RFD_FAILED;
			return -1;
		}
		proc_path(path, in->fd);
		in->rfd = open(path, O_RDONLY | O_CLOEXEC);
		if (in->rfd < 0) {
			tfs_uid_fd_put(in->fd_uid, 1);
			in->rfd = TFS_RFD_FAILED;
			return -1;
		}
		in->rfd_uid = in->fd_uid;
	}
	for (pos = start; pos < end; pos += TFS_MINCORE_WINDOW) {
		size_t len = end - pos < TFS_MINCORE_WINDOW ?
			(size_t)(end - pos) : TFS_MINCORE_WINDOW;
		void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, in->rfd,
			       (off_t)pos);

		if (m == MAP_FAILED)
			return -1;
		if (mincore(m, len, vec) != 0) {
			munmap(m, len);
			return -1;
		}
		munmap(m, len);
		for (i = 0; i < len / TFS_PAGE; i++)
			n += vec[i] & 1;
	}
	return (int64_t)(n * TFS_PAGE);
}

/*
 * Bytes of pages in [off, off + len) that tmpfs has not allocated yet: the
 * upper bound charged before a write or fallocate; *below gets the part
 * below the end of the file (holes the change may fill).  st_blocks cannot
 * tell when pages were preallocated past the end (fallocate with
 * FALLOC_FL_KEEP_SIZE).  Without mincore, holes below the end are found
 * with SEEK_DATA/SEEK_HOLE (which also take unwritten preallocated pages
 * for holes).  Every page past the end is taken as new.
 */
/*
 * 1 if the file has no page past its end, so that blocks covering its
 * size mean no hole below it.  Learnt once per inode with one SEEK_HOLE
 * (when the blocks cover the size and no hole is found below the end, no
 * page can be past it); a truncate that shrinks the file frees every page
 * past its new end, and only a fallocate with FALLOC_FL_KEEP_SIZE past the
 * end puts pages there.  Under in->lock.
 */
static int clean_end(struct tfs_inode *in, int fd, const struct stat *st)
{
	off_t h;

	if (in->eof != TFS_EOF_UNKNOWN)
		return in->eof == TFS_EOF_CLEAN;
	if ((uint64_t)st_bytes(st) > round_up((uint64_t)st->st_size)) {
		in->eof = TFS_EOF_PAST;
		return 0;
	}
	if ((uint64_t)st_bytes(st) < round_up((uint64_t)st->st_size))
		return 0;	/* holes below: tells nothing about past the end */
	if (st->st_blocks == 0) {
		in->eof = TFS_EOF_CLEAN;	/* no page at all */
		return 1;
	}
	h = lseek(fd, 0, SEEK_HOLE);
	in->eof = h != -1 && h >= st->st_size ? TFS_EOF_CLEAN : TFS_EOF_PAST;
	return in->eof == TFS_EOF_CLEAN;
}

static uint64_t unallocated(struct tfs_inode *in, int fd,
			    const struct stat *st, uint64_t off, uint64_t len,
			    uint64_t *below)
{
	uint64_t start = round_down(off), end = round_up(off + len);
	uint64_t alloc_end = round_up((uint64_t)st->st_size), pos, from;
	uint64_t mid = end < alloc_end ? end : alloc_end, holes = 0;
	int64_t r = 0;

	*below = 0;
	if (len == 0)
		return 0;
	/* The usual case: a dense file, nothing past its end. */
	if ((uint64_t)st_bytes(st) == alloc_end && clean_end(in, fd, st))
		mid = start > mid ? mid : start;
	if (start < mid && (r = resident(in, start, mid)) >= 0) {
		holes = mid - start - (uint64_t)r;
	} else {
		for (pos = start; pos < mid;) {
			off_t d = lseek(fd, (off_t)pos, SEEK_DATA), h;

			if (d == -1 || (uint64_t)d >= mid) {
				holes += mid - pos;
				break;
			}
			holes += round_down((uint64_t)d) - pos;
			h = lseek(fd, d, SEEK_HOLE);
			if (h == -1)
				break;
			pos = round_up((uint64_t)h);
		}
	}
	*below = holes;
	/* Past the end only unwritten preallocated pages can be: new. */
	if (end > alloc_end) {
		from = start > alloc_end ? start : alloc_end;
		holes += end - from;
	}
	return holes;
}

/* Holes a change starting at off leaves between the end and off. */
static uint64_t gap_before(const struct stat *st, uint64_t off)
{
	uint64_t alloc_end = round_up((uint64_t)st->st_size);

	return round_down(off) > alloc_end ? round_down(off) - alloc_end : 0;
}

static void tfs_init(void *userdata, struct fuse_conn_info *conn)
{
	/* Write-through keeps ENOSPC on the write(2) that caused it. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* The kernel clears set-id bits itself; the daemon writes as root. */
	conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
	/* SPLICE_WRITE/MOVE carry read replies, SPLICE_READ write requests. */
	conn->want &= ~(FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE |
			FUSE_CAP_SPLICE_READ);
	if (tfs_splice >= TFS_SPLICE_READ)
		conn->want |= conn->capable & (FUSE_CAP_SPLICE_WRITE |
					       FUSE_CAP_SPLICE_MOVE);
	if (tfs_splice >= TFS_SPLICE_ALL)
		conn->want |= conn->capable & FUSE_CAP_SPLICE_READ;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	conn->max_write = tfs_max_write;
}

/* Answer a lookup; if the requester is gone, the kernel took no reference
 * and no FORGET will come for it. */
static void reply_entry(fuse_req_t req, const struct fuse_entry_param *e)
{
	if (fuse_reply_entry(req, e) != 0)
		forget_one(e->ino, 1);
}

static void tfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int err = do_lookup(ino_of(parent), name, &e, fuse_req_ctx(req)->uid, 0);

	if (err == ENOENT) {
		memset(&e, 0, sizeof(e));
		e.entry_timeout = tfs_timeout;
		fuse_reply_entry(req, &e);
	} else if (err != 0) {
		fuse_reply_err(req, err);
	} else {
		reply_entry(req, &e);
	}
}

static void tfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_one(ino, nlookup);
	fuse_reply_none(req);
}

static void tfs_forget_multi(fuse_req_t req, size_t count,
			     struct fuse_forget_data *forgets)
{
	size_t i;

	for (i = 0; i < count; i++)
		forget_one(forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static int inode_stat(struct tfs_inode *in, struct fuse_file_info *fi,
		      struct stat *st)
{
	int rc;

	if (fi != NULL)
		rc = fstat(fh_fd(fi), st);
	else
		rc = fstatat(in->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
	return rc == -1 ? errno : 0;
}

static void tfs_getattr(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct stat st;
	int err = inode_stat(ino_of(ino), fi, &st);

	if (err != 0)
		fuse_reply_err(req, err);
	else
		fuse_reply_attr(req, &st, tfs_timeout);
}

/*
 * Change the size.  Growing allocates nothing in tmpfs (the new part is a
 * hole), so it costs nothing, except while the file is open for writing:
 * then the new holes join the reserve first (refused with ENOSPC).
 */
static int charged_truncate(struct tfs_inode *in, struct fuse_file_info *fi,
			    off_t size)
{
	struct stat st;
	struct change c;
	char path[TFS_PROC_PATH];
	uint64_t grow = 0;
	int err, rc;

	pthread_mutex_lock(&in->lock);
	err = inode_stat(in, fi, &st);
	if (err != 0)
		goto out;
	if (in->nwrite > 0 && (uint64_t)size > round_up((uint64_t)st.st_size))
		grow = round_up((uint64_t)size) - round_up((uint64_t)st.st_size);
	if (change_begin(in, 0, grow, TFS_CHARGE_HARD, &c) != 0) {
		err = ENOSPC;
		goto out;
	}
	if (fi != NULL) {
		rc = ftruncate(fh_fd(fi), size);
	} else {
		proc_path(path, in->fd);
		rc = truncate(path, size);
	}
	err = rc == -1 ? errno : 0;
	if (err == 0 && size < st.st_size)
		in->eof = TFS_EOF_CLEAN;	/* tmpfs freed all past the end */
	change_end(in, inode_stat(in, fi, &st) == 0 ? &st : NULL, &c);
out:
	pthread_mutex_unlock(&in->lock);
	return err;
}

/* A new owner takes the inode's cost over. */
static void change_owner(struct tfs_inode *in, uid_t uid)
{
	int64_t cost;

	pthread_mutex_lock(&in->lock);
	if (uid != in->uid) {
		cost = footprint(in) + (int64_t)inode_xattrs(in);
		tfs_uid_adjust(in->uid, -cost);
		tfs_uid_adjust(uid, cost);
		in->uid = uid;
	}
	pthread_mutex_unlock(&in->lock);
}

static void tfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			int valid, struct fuse_file_info *fi)
{
	struct tfs_inode *in = ino_of(ino);
	char path[TFS_PROC_PATH];
	int err = 0;

	proc_path(path, in->fd);
	if (valid & FUSE_SET_ATTR_MODE) {
		int rc = fi != NULL ? fchmod(fh_fd(fi), attr->st_mode) :
			chmod(path, attr->st_mode);

		if (rc == -1) {
			err = errno;
			goto out;
		}
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

		if (fchownat(in->fd, "", uid, gid,
			     AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1) {
			err = errno;
			goto out;
		}
		if (valid & FUSE_SET_ATTR_UID)
			change_owner(in, uid);
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		err = charged_truncate(in, fi, attr->st_size);
		if (err != 0)
			goto out;
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec tv[2];
		int rc;

		tv[0].tv_sec = 0;
		tv[1].tv_sec = 0;
		tv[0].tv_nsec = UTIME_OMIT;
		tv[1].tv_nsec = UTIME_OMIT;
		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		if (fi != NULL)
			rc = futimens(fh_fd(fi), tv);
		else
			rc = utimensat(AT_FDCWD, path, tv, 0);
		if (rc == -1) {
			err = errno;
			goto out;
		}
	}
out:
	if (err != 0)
		fuse_reply_err(req, err);
	else
		tfs_getattr(req, ino, fi);
}

static void tfs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	ssize_t n = readlinkat(ino_of(ino)->fd, "", buf, sizeof(buf));

	if (n == -1)
		fuse_reply_err(req, errno);
	else if (n == (ssize_t)sizeof(buf))
		fuse_reply_err(req, ENAMETOOLONG);
	else {
		buf[n] = '\0';
		fuse_reply_readlink(req, buf);
	}
}

/* Before making a file: take the count of the n descriptors it will cost
 * its creator (uid.c), or answer ENFILE; -1 then. */
static int fd_take_new(fuse_req_t req, unsigned n)
{
	if (tfs_uid_fd_take(fuse_req_ctx(req)->uid, n) == 0)
		return 0;
	fuse_reply_err(req, ENFILE);
	return -1;
}

/* The file was not made: give the count back and answer err. */
static void fd_put_new(fuse_req_t req, int err)
{
	tfs_uid_fd_put(fuse_req_ctx(req)->uid, 1);
	fuse_reply_err(req, err);
}

/* Common tail of mknod, mkdir and symlink (each took the new inode's
 * descriptor count first, fd_take_new): own it, look it up, reply. */
static void reply_new(fuse_req_t req, struct tfs_inode *parent,
		      const char *name)
{
	struct fuse_entry_param e;
	int err;

	set_owner(parent, req, parent->fd, name, -1);
	err = do_lookup(parent, name, &e, fuse_req_ctx(req)->uid, 1);
	if (err != 0)
		fuse_reply_err(req, err);
	else
		reply_entry(req, &e);
}

static void tfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, dev_t rdev)
{
	struct tfs_inode *p = ino_of(parent);

	if (fd_take_new(req, 1) != 0)
		return;
	if (mknodat(p->fd, name, mode, rdev) == -1) {
		fd_put_new(req, errno);
		return;
	}
	reply_new(req, p, name);
}

static void tfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode)
{
	struct tfs_inode *p = ino_of(parent);

	if (fd_take_new(req, 1) != 0)
		return;
	if (mkdirat(p->fd, name, mode) == -1) {
		fd_put_new(req, errno);
		return;
	}
	reply_new(req, p, name);
}

static void tfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			const char *name)
{
	struct tfs_inode *p = ino_of(parent);
	struct stat st;
	uint64_t est = round_up(strlen(link) + 1);
	uid_t uid = req_uid(req);
	int err = 0;

	if (fd_take_new(req, 1) != 0)
		return;
	/* A long target takes a page of tmpfs; the caller will own it. */
	if (tfs_uid_begin(uid, est, 0) != 0) {
		fd_put_new(req, ENOSPC);
		return;
	}
	if (tfs_charge_begin(NULL, est, TFS_CHARGE_HARD) != 0) {
		tfs_uid_end(uid, est, 0);
		fd_put_new(req, ENOSPC);
		return;
	}
	if (symlinkat(link, p->fd, name) == -1)
		err = errno;
	if (err == 0 && fstatat(p->fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		tfs_charge_end(NULL, est, st_bytes(&st), 0);
		tfs_uid_end(uid, est, st_bytes(&st));
	} else {
		tfs_charge_end(NULL, est, 0, 0);
		tfs_uid_end(uid, est, 0);
	}
	if (err != 0) {
		fd_put_new(req, err);
		return;
	}
	reply_new(req, p, name);
}

static void tfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		     const char *newname)
{
	struct tfs_inode *in = ino_of(ino), *np = ino_of(newparent);
	struct fuse_entry_param e;
	int err;

	if (linkat(in->fd, "", np->fd, newname, AT_EMPTY_PATH) == -1) {
		char path[TFS_PROC_PATH];

		proc_path(path, in->fd);
		if (linkat(AT_FDCWD, path, np->fd, newname,
			   AT_SYMLINK_FOLLOW) == -1) {
			fuse_reply_err(req, errno);
			return;
		}
	}
	err = do_lookup(np, newname, &e, fuse_req_ctx(req)->uid, 0);
	if (err != 0)
		fuse_reply_err(req, err);
	else
		reply_entry(req, &e);
}

/*
 * The node about to lose a link: its table entry if the kernel knows it,
 * else its stat.  After the removal, a node with no link left and no opener
 * gives its charge back.
 */
struct victim {
	int known;
	int dir;		/* a directory: only its xattrs were charged */
	struct stat st;
	uint64_t xattrs;	/* of a node unknown to the kernel */
	struct tfs_inode *in;
};

/* The charged xattrs of `name` in dir (the name itself, not followed). */
static uint64_t name_xattrs(struct tfs_inode *dir, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dir->fd, name);
	return tfs_xattr_usage(path, 0);
}


static void victim_get(struct tfs_inode *dir, const char *name,
		       struct victim *v)
{
	memset(v, 0, sizeof(*v));
	if (fstatat(dir->fd, name, &v->st, AT_SYMLINK_NOFOLLOW) == -1)
		return;
	v->known = 1;
	v->dir = S_ISDIR(v->st.st_mode);
	pthread_mutex_lock(&tbl_lock);
	v->in = tbl_find(v->st.st_dev, v->st.st_ino);
	if (v->in != NULL)
		v->in->nlookup++;	/* held across the removal */
	pthread_mutex_unlock(&tbl_lock);
	if (v->in == NULL && (v->dir || v->st.st_nlink <= 1))
		v->xattrs = name_xattrs(dir, name);
}

static void victim_settle(struct victim *v, int removed)
{
	struct stat st;

	if (!v->known)
		return;
	if (v->in == NULL) {
		/* Unknown to the kernel, hence not open: blocks unchanged. */
		if (removed && v->dir) {
			dir_gone(&v->st, v->xattrs);
		} else if (removed && v->st.st_nlink <= 1) {
			int64_t cost = st_bytes(&v->st) + (int64_t)v->xattrs;

			tfs_charge_adjust(-cost);
			tfs_uid_adjust(v->st.st_uid, -cost);
		}
		return;
	}
	if (removed) {
		pthread_mutex_lock(&v->in->lock);
		if (fstatat(v->in->fd, "", &st, AT_EMPTY_PATH) == 0 &&
		    st.st_nlink == 0 && v->in->nopen == 0)
			orphan_mark(v->in);
		pthread_mutex_unlock(&v->in->lock);
	}
	forget_one((fuse_ino_t)(uintptr_t)v->in, 1);
}

static void tfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct tfs_inode *p = ino_of(parent);
	struct victim v;
	int err = 0;

	victim_get(p, name, &v);
	if (unlinkat(p->fd, name, 0) == -1)
		err = errno;
	victim_settle(&v, err == 0);
	fuse_reply_err(req, err);
}

static void tfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct tfs_inode *p = ino_of(parent);
	struct victim v;
	int err = 0;

	/* A directory's xattrs were charged; its pages never are. */
	victim_get(p, name, &v);
	if (unlinkat(p->fd, name, AT_REMOVEDIR) == -1)
		err = errno;
	victim_settle(&v, err == 0);
	fuse_reply_err(req, err);
}

static void tfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		       fuse_ino_t newparent, const char *newname,
		       unsigned int flags)
{
	struct tfs_inode *p = ino_of(parent), *np = ino_of(newparent);
	struct victim v;
	int err = 0;

	memset(&v, 0, sizeof(v));
	if (!(flags & (RENAME_EXCHANGE | RENAME_NOREPLACE)))
		victim_get(np, newname, &v);
	if (renameat2(p->fd, name, np->fd, newname, flags) == -1)
		err = errno;
	victim_settle(&v, err == 0);
	fuse_reply_err(req, err);
}

static int reopen(struct tfs_inode *in, int flags)
{
	char path[TFS_PROC_PATH];

	proc_path(path, in->fd);
	return open(path, (flags & ~O_NOFOLLOW) | O_CLOEXEC);
}

/*
 * A new opener: after O_TRUNC book what the truncation gave back; for
 * writing, reserve the holes.  0 or ENOSPC (nothing counted then).
 */
static int opened(struct tfs_inode *in, struct fuse_file_info *fi, int fd,
		  uid_t uid)
{
	struct stat st;
	struct change c;
	int err = 0;

	pthread_mutex_lock(&in->lock);
	/* Opened again (through /proc/PID/fd of an O_PATH descriptor):
	 * no orphan while open. */
	orphan_clear(in);
	if ((fi->flags & O_TRUNC) && fstat(fd, &st) == 0 &&
	    change_begin(in, 0, 0, TFS_CHARGE_HARD, &c) == 0) {
		if (st.st_blocks == 0)
			in->eof = TFS_EOF_CLEAN;
		change_end(in, &st, &c);
	}
	if (writable(fi->flags)) {
		in->nwrite++;
		err = reserve_holes(in, fd);
		if (err != 0)
			in->nwrite--;
	}
	if (err == 0)
		in->nopen++;
	pthread_mutex_unlock(&in->lock);
	fi->fh = (uint64_t)(uint32_t)fd | (uint64_t)uid << 32;
	fi->keep_cache = 1;
	fi->noflush = 1;
	return err;
}

/* Undo opened() for an opener that is gone before it got the file. */
static void unopened(struct tfs_inode *in, struct fuse_file_info *fi)
{
	pthread_mutex_lock(&in->lock);
	in->nopen--;
	if (writable(fi->flags) && --in->nwrite == 0 && in->resv > 0) {
		int64_t fp = footprint(in);

		tfs_charge_drop_resv(in);
		tfs_uid_adjust(in->uid, footprint(in) - fp);
	}
	pthread_mutex_unlock(&in->lock);
}

static void tfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tfs_inode *in = ino_of(ino);
	uid_t uid = fuse_req_ctx(req)->uid;
	int fd, err;

	if (tfs_uid_fd_take(uid, 1) != 0) {
		fuse_reply_err(req, ENFILE);
		return;
	}
	fd = reopen(in, fi->flags);
	if (fd == -1) {
		err = errno;
		tfs_uid_fd_put(uid, 1);
		fuse_reply_err(req, err);
		return;
	}
	err = opened(in, fi, fd, uid);
	if (err != 0) {
		fh_close(fi);
		fuse_reply_err(req, err);
		return;
	}
	if (fuse_reply_open(req, fi) != 0) {
		/* The opener is gone; no release will come. */
		unopened(in, fi);
		fh_close(fi);
	}
}

static void tfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode, struct fuse_file_info *fi)
{
	struct tfs_inode *p = ino_of(parent), *in;
	struct fuse_entry_param e;
	uid_t uid = fuse_req_ctx(req)->uid;
	int fd, err;

	/* The new file's descriptor and the open's, both the creator's. */
	if (fd_take_new(req, 2) != 0)
		return;
	fd = openat(p->fd, name, (fi->flags | O_CREAT) & ~O_NOFOLLOW, mode);
	if (fd == -1) {
		err = errno;
		tfs_uid_fd_put(uid, 2);
		fuse_reply_err(req, err);
		return;
	}
	set_owner(p, req, -1, NULL, fd);
	err = do_lookup(p, name, &e, uid, 1);
	if (err != 0) {
		close(fd);
		tfs_uid_fd_put(uid, 1);
		fuse_reply_err(req, err);
		return;
	}
	in = ino_of(e.ino);
	err = opened(in, fi, fd, uid);
	if (err != 0) {
		fh_close(fi);
		forget_one(e.ino, 1);
		fuse_reply_err(req, err);
		return;
	}
	if (fuse_reply_create(req, &e, fi) != 0) {
		/* The creator is gone: no release and no forget will come. */
		unopened(in, fi);
		fh_close(fi);
		forget_one(e.ino, 1);
	}
}

static void tfs_release(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct tfs_inode *in = ino_of(ino);
	struct stat st;

	pthread_mutex_lock(&in->lock);
	if (in->nopen > 0)
		in->nopen--;
	if (writable(fi->flags) && in->nwrite > 0)
		in->nwrite--;
	if (in->nwrite == 0 && in->resv > 0) {
		int64_t fp = footprint(in);

		tfs_charge_drop_resv(in);
		tfs_uid_adjust(in->uid, footprint(in) - fp);
	}
	if (in->nopen == 0 && in->rfd != -1) {
		if (in->rfd >= 0) {
			close(in->rfd);
			tfs_uid_fd_put(in->rfd_uid, 1);
		}
		in->rfd = -1;
	}
	if (in->nopen == 0 && fstat(fh_fd(fi), &st) == 0 &&
	    st.st_nlink == 0)
		orphan_mark(in);
	pthread_mutex_unlock(&in->lock);
	fh_close(fi);
	fuse_reply_err(req, 0);
}

static void tfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void tfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		      struct fuse_file_info *fi)
{
	int rc = datasync ? fdatasync(fh_fd(fi)) : fsync(fh_fd(fi));

	fuse_reply_err(req, rc == -1 ? errno : 0);
}

static void tfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = fh_fd(fi);
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, tfs_splice >= TFS_SPLICE_READ ?
			FUSE_BUF_SPLICE_MOVE : FUSE_BUF_NO_SPLICE);
}

static void tfs_write_buf(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_bufvec *in_buf, off_t off,
			  struct fuse_file_info *fi)
{
	struct tfs_inode *in = ino_of(ino);
	size_t size = fuse_buf_size(in_buf);
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(size);
	struct stat st;
	struct change c;
	uint64_t est, below, gap;
	ssize_t n;

	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = fh_fd(fi);
	out.buf[0].pos = off;
	if (!tfs_charge_enabled()) {
		n = fuse_buf_copy(&out, in_buf, tfs_splice >= TFS_SPLICE_ALL ?
				  0 : FUSE_BUF_NO_SPLICE);
		goto reply;
	}
	pthread_mutex_lock(&in->lock);
	if (fstat(fh_fd(fi), &st) == -1) {
		pthread_mutex_unlock(&in->lock);
		fuse_reply_err(req, errno);
		return;
	}
	est = unallocated(in, fh_fd(fi), &st, (uint64_t)off, size, &below);
	/* A write past the end leaves holes to reserve in between. */
	gap = in->nwrite > 0 ? gap_before(&st, (uint64_t)off) : 0;
	if (change_begin(in, below, est - below + gap, fi->writepage ?
			 TFS_CHARGE_FORCE : TFS_CHARGE_HARD, &c) != 0) {
		pthread_mutex_unlock(&in->lock);
		fuse_reply_err(req, ENOSPC);
		return;
	}
	n = fuse_buf_copy(&out, in_buf, tfs_splice >= TFS_SPLICE_ALL ?
				  0 : FUSE_BUF_NO_SPLICE);
	change_end(in, fstat(fh_fd(fi), &st) == 0 ? &st : NULL, &c);
	pthread_mutex_unlock(&in->lock);
reply:
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void tfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
			  off_t off, off_t len, struct fuse_file_info *fi)
{
	struct tfs_inode *in = ino_of(ino);
	struct stat st;
	struct change c;
	uint64_t est = 0, below = 0, more = 0;
	int err = 0, keep = 0;

	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	pthread_mutex_lock(&in->lock);
	if (fstat(fh_fd(fi), &st) == -1) {
		err = errno;
		goto out;
	}
	if ((mode & FALLOC_FL_KEEP_SIZE) && !(mode & FALLOC_FL_PUNCH_HOLE) &&
	    (uint64_t)off + (uint64_t)len > (uint64_t)st.st_size)
		in->eof = TFS_EOF_PAST;
	if (!(mode & FALLOC_FL_PUNCH_HOLE)) {
		est = unallocated(in, fh_fd(fi), &st, (uint64_t)off,
				  (uint64_t)len, &below);
		if (in->nwrite > 0 && !(mode & FALLOC_FL_KEEP_SIZE))
			more = gap_before(&st, (uint64_t)off);
	} else if (in->nwrite > 0) {
		/*
		 * The punched pages become holes of a file open for writing,
		 * which its writeback may fill again unrefused: what the
		 * punch frees stays charged, as the file's reserve (nothing
		 * asked of the broker or the owner's limit; a punch is never
		 * refused).  Before, the reserve was asked afresh, and when
		 * the owner was at its limit the punch went on without one:
		 * writeback into the holes then passed uid_limit and the
		 * quota.
		 */
		keep = 1;
	}
	if (change_begin(in, below, est - below + more, TFS_CHARGE_HARD, &c) != 0) {
		err = ENOSPC;
		goto out;
	}
	if (fallocate(fh_fd(fi), mode, off, len) == -1)
		err = errno;
	if (fstat(fh_fd(fi), &st) == 0) {
		if (keep && st_bytes(&st) < in->blocks)
			tfs_charge_blocks_to_resv(in, (uint64_t)(in->blocks - st_bytes(&st)));
		change_end(in, &st, &c);
	} else {
		change_end(in, NULL, &c);
	}
out:
	pthread_mutex_unlock(&in->lock);
	fuse_reply_err(req, err);
}

static void tfs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		      struct fuse_file_info *fi)
{
	off_t r = lseek(fh_fd(fi), off, whence);

	if (r == -1)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, r);
}

static void tfs_opendir(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct tfs_dir *d;
	uid_t uid = fuse_req_ctx(req)->uid;
	int fd;

	if (tfs_uid_fd_take(uid, 1) != 0) {
		fuse_reply_err(req, ENFILE);
		return;
	}
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		tfs_uid_fd_put(uid, 1);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	d->uid = uid;
	fd = openat(ino_of(ino)->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1 || (d->dp = fdopendir(fd)) == NULL) {
		int err = errno;

		if (fd != -1)
			close(fd);
		free(d);
		tfs_uid_fd_put(uid, 1);
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	fi->keep_cache = 0;
	if (fuse_reply_open(req, fi) != 0) {
		closedir(d->dp);
		free(d);
		tfs_uid_fd_put(uid, 1);
	}
}

static int is_dot(const char *name)
{
	return name[0] == '.' &&
		(name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, int plus)
{
	struct tfs_dir *d = (struct tfs_dir *)(uintptr_t)fi->fh;
	char *buf = malloc(size), *p = buf;
	size_t rem = size;
	int err = 0;

	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (off != d->off) {
		seekdir(d->dp, off);
		d->entry = NULL;
		d->off = off;
	}
	for (;;) {
		struct fuse_entry_param e;
		size_t n;

		if (d->entry == NULL) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (d->entry == NULL) {
				err = errno;
				break;
			}
		}
		off_t next = d->entry->d_off;
		const char *name = d->entry->d_name;

		if (plus && !is_dot(name)) {
			err = do_lookup(ino_of(ino), name, &e,
					fuse_req_ctx(req)->uid, 0);
			if (err == ENOENT) {
				/* Removed since readdir saw it. */
				err = 0;
				d->entry = NULL;
				d->off = next;
				continue;
			}
			if (err != 0 && err != ENFILE)
				break;
		}
		if (plus && !is_dot(name) && err == 0) {
			n = fuse_add_direntry_plus(req, p, rem, name, &e, next);
			if (n > rem) {
				forget_one(e.ino, 1);
				break;
			}
		} else if (plus) {
			/* A dot, or an owner at its descriptors' limit: the
			 * name without attributes, for a lookup later. */
			err = 0;
			memset(&e, 0, sizeof(e));
			e.attr.st_ino = d->entry->d_ino;
			e.attr.st_mode = (mode_t)d->entry->d_type << 12;
			n = fuse_add_direntry_plus(req, p, rem, name, &e, next);
			if (n > rem)
				break;
		} else {
			struct stat st;

			memset(&st, 0, sizeof(st));
			st.st_ino = d->entry->d_ino;
			st.st_mode = (mode_t)d->entry->d_type << 12;
			n = fuse_add_direntry(req, p, rem, name, &st, next);
			if (n > rem)
				break;
		}
		p += n;
		rem -= n;
		d->entry = NULL;
		d->off = next;
	}
	/* An error after some entries is reported on the next call. */
	if (err != 0 && p == buf)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

static void tfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 0);
}

static void tfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			    off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 1);
}

static void tfs_releasedir(fuse_req_t req, fuse_ino_t ino,
			   struct fuse_file_info *fi)
{
	struct tfs_dir *d = (struct tfs_dir *)(uintptr_t)fi->fh;

	closedir(d->dp);
	tfs_uid_fd_put(d->uid, 1);
	free(d);
	fuse_reply_err(req, 0);
}

static void tfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			 struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

/* statfs: size and free space are the quota, files come from tmpfs. */
static void tfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	struct tfs_usage u;
	uint64_t total, busy;

	if (fstatvfs(tfs_root.fd, &sv) == -1) {
		fuse_reply_err(req, errno);
		return;
	}
	if (!tfs_charge_enabled()) {
		fuse_reply_statfs(req, &sv);
		return;
	}
	orphans_settle();
	tfs_charge_usage(&u, 1);
	busy = u.used + u.reserved;
	total = u.held + u.available;
	if (total < busy)
		total = busy;
	sv.f_bsize = TFS_PAGE;
	sv.f_frsize = TFS_PAGE;
	sv.f_blocks = round_up(total) / TFS_PAGE;
	sv.f_bfree = sv.f_blocks - round_up(busy) / TFS_PAGE;
	sv.f_bavail = sv.f_bfree;
	fuse_reply_statfs(req, &sv);
}

/*
 * Extended attributes live in kernel memory: each is charged its name
 * length plus its value size, to the quota and to the file's owner.
 */
static void tfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			 const char *value, size_t size, int flags)
{
	struct tfs_inode *in = ino_of(ino);
	char path[TFS_PROC_PATH];
	ssize_t old;
	uint64_t was, now = strlen(name) + size, more;
	int err = 0;

	proc_path(path, in->fd);
	pthread_mutex_lock(&in->lock);
	old = getxattr(path, name, NULL, 0);
	was = old >= 0 ? strlen(name) + (uint64_t)old : 0;
	more = now > was ? now - was : 0;
	if (tfs_uid_begin(in->uid, more, 0) != 0) {
		err = ENOSPC;
		goto out;
	}
	if (tfs_charge_begin(NULL, more, TFS_CHARGE_HARD) != 0) {
		tfs_uid_end(in->uid, more, 0);
		err = ENOSPC;
		goto out;
	}
	if (setxattr(path, name, value, size, flags) == -1)
		err = errno;
	tfs_charge_end(NULL, more, err == 0 ? (int64_t)now - (int64_t)was : 0, 0);
	tfs_uid_end(in->uid, more, err == 0 ? (int64_t)now - (int64_t)was : 0);
out:
	pthread_mutex_unlock(&in->lock);
	fuse_reply_err(req, err);
}

static void reply_xattr(fuse_req_t req, size_t size, ssize_t n, char *buf)
{
	if (n == -1)
		fuse_reply_err(req, errno);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

static void tfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			 size_t size)
{
	char path[TFS_PROC_PATH], *buf = NULL;
	ssize_t n;

	if (size > TFS_XATTR_MAX)
		size = TFS_XATTR_MAX;
	if (size > 0 && (buf = malloc(size)) == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	proc_path(path, ino_of(ino)->fd);
	n = getxattr(path, name, buf, size);
	reply_xattr(req, size, n, buf);
	free(buf);
}

static void tfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char path[TFS_PROC_PATH], *buf = NULL;
	ssize_t n;

	if (size > TFS_XATTR_MAX)
		size = TFS_XATTR_MAX;
	if (size > 0 && (buf = malloc(size)) == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	proc_path(path, ino_of(ino)->fd);
	n = listxattr(path, buf, size);
	reply_xattr(req, size, n, buf);
	free(buf);
}

static void tfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct tfs_inode *in = ino_of(ino);
	char path[TFS_PROC_PATH];
	ssize_t old;
	int err = 0;

	proc_path(path, in->fd);
	pthread_mutex_lock(&in->lock);
	old = getxattr(path, name, NULL, 0);
	if (removexattr(path, name) == -1)
		err = errno;
	else if (old >= 0) {
		int64_t was = (int64_t)(strlen(name) + (uint64_t)old);

		tfs_charge_adjust(-was);
		tfs_uid_adjust(in->uid, -was);
	}
	pthread_mutex_unlock(&in->lock);
	fuse_reply_err(req, err);
}

const struct fuse_lowlevel_ops tfs_ops = {
	.init = tfs_init,
	.lookup = tfs_lookup,
	.forget = tfs_forget,
	.forget_multi = tfs_forget_multi,
	.getattr = tfs_getattr,
	.setattr = tfs_setattr,
	.readlink = tfs_readlink,
	.mknod = tfs_mknod,
	.mkdir = tfs_mkdir,
	.symlink = tfs_symlink,
	.link = tfs_link,
	.unlink = tfs_unlink,
	.rmdir = tfs_rmdir,
	.rename = tfs_rename,
	.open = tfs_open,
	.create = tfs_create,
	.release = tfs_release,
	.flush = tfs_flush,
	.fsync = tfs_fsync,
	.read = tfs_read,
	.write_buf = tfs_write_buf,
	.fallocate = tfs_fallocate,
	.lseek = tfs_lseek,
	.opendir = tfs_opendir,
	.readdir = tfs_readdir,
	.readdirplus = tfs_readdirplus,
	.releasedir = tfs_releasedir,
	.fsyncdir = tfs_fsyncdir,
	.statfs = tfs_statfs,
	.setxattr = tfs_setxattr,
	.getxattr = tfs_getxattr,
	.listxattr = tfs_listxattr,
	.removexattr = tfs_removexattr,
};
