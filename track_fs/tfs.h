/*
 * tfs.h - track_fs internals shared by its modules.
 *
 * track_fs is free software; you can redistribute it and/or modify it
 * under the terms of the GNU General Public License version 2 as
 * published by the Free Software Foundation (see COPYING.GPL-2).
 */
#ifndef TFS_H
#define TFS_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "mb_conf.h"

#define TFS_NAME_MAX 64

enum tfs_urgency { TFS_URG_REQUEST = 0, TFS_URG_RESERVE = 1 };
enum tfs_down { TFS_DOWN_DENY = 0, TFS_DOWN_CAP = 1 };
/* What moves by splice(2): nothing, the data of read replies, or also
 * the data of write requests. */
enum tfs_splice { TFS_SPLICE_NO = 0, TFS_SPLICE_READ = 1, TFS_SPLICE_ALL = 2 };

/* Every setting, filled from the one table in conf.c. */
struct tfs_conf {
	char backing[PATH_MAX];
	char broker_socket[PATH_MAX];
	char client_name[TFS_NAME_MAX];
	uint64_t step;
	uint64_t release_hysteresis;
	int urgency;
	int on_broker_down;
	uint64_t cap;
	uint64_t broker_timeout;   /* ms */
	uint64_t retry_interval;   /* ms */
	uint64_t threads;
	uint64_t cache_timeout;    /* ms */
	uint64_t max_write;
	int charge;
	int splice;
	int log_level;
	char uid_limit[32];        /* size or percent of the broker total */
	char uid_fds[32];          /* count or percent of RLIMIT_NOFILE */
};

extern const struct mb_conf_key tfs_conf_keys[];

/*
 * One backing inode.  The FUSE node id is the address of this struct (the
 * root uses FUSE_ROOT_ID).  `blocks` is what the accounting has charged for
 * the inode (st_blocks * 512 when last seen); `resv` is quota set aside for
 * the holes below the file's size while it is open for writing (nwrite > 0),
 * so that shared-mapping writes into them are covered.  `uid` is the owner
 * whose per-user account the inode's blocks, reserve and xattrs are in.
 */
struct tfs_inode {
	struct tfs_inode *hnext;
	int fd;                 /* O_PATH */
	int rfd;                /* read-only, for mincore; -1; under lock */
	int eof;                /* pages past the end? TFS_EOF_*; under lock */
	dev_t dev;
	ino_t ino;
	uint64_t nlookup;       /* under the table lock */
	pthread_mutex_t lock;   /* serialises charged changes of this inode */
	uint64_t nopen;         /* under lock */
	uint64_t nwrite;        /* opens with write access; under lock */
	uid_t uid;              /* under lock */
	int64_t blocks;         /* bytes charged; under lock */
	uint64_t resv;          /* under lock */
	uid_t fd_uid;           /* whom fd is counted for (uid.c) */
	uid_t rfd_uid;          /* whom rfd is counted for, while open */
	int orphan;             /* no link, no opener, not forgotten; under lock */
	uint64_t orphan_ms;     /* when it became one; the orphans' lock */
	struct tfs_inode *onext, *oprev; /* the orphans, oldest first; same lock */
};

/* charge.c: quota held from the broker against the bytes in use. */
int tfs_charge_init(const struct tfs_conf *cf, uint64_t initial_used,
		    char *err, size_t errcap);
void tfs_charge_fini(void);
/*
 * Make `bytes` more available before a change; 0 or -ENOSPC.
 * HARD asks the broker with the configured urgency; SOFT (a reserve that is
 * nice to have) never goes beyond REQUEST; FORCE (page writeback, which
 * cannot be refused) never fails: the change goes ahead in debt.
 */
enum tfs_charge_mode { TFS_CHARGE_HARD = 0, TFS_CHARGE_FORCE = 1,
		       TFS_CHARGE_SOFT = 2 };
int tfs_charge_begin(struct tfs_inode *in, uint64_t bytes, int mode);
/* After the change: drop the pending `bytes` and book `delta` for the inode.
 * keep_resv moves the unused pending part into the inode's reserve. */
void tfs_charge_end(struct tfs_inode *in, uint64_t bytes, int64_t delta,
		    int keep_resv);
/* Give back an inode's whole charge (last link gone, forgotten). */
void tfs_charge_credit(struct tfs_inode *in);
/* Cut an inode's reserve down to limit bytes. */
void tfs_charge_trim_resv(struct tfs_inode *in, uint64_t limit);
/* Bytes freed in an inode become its reserve (a hole punched in a file
 * open for writing): the quota held and the owner's cost do not change. */
void tfs_charge_blocks_to_resv(struct tfs_inode *in, uint64_t bytes);
/* Drop an inode's reserve (last close). */
void tfs_charge_drop_resv(struct tfs_inode *in);
/* Book a change of blocks seen outside a charged call. */
void tfs_charge_adjust(int64_t delta);
struct tfs_usage {
	uint64_t used, reserved, held, available, total;
	int broker_up;
};
void tfs_charge_usage(struct tfs_usage *u, int ask_broker);
int tfs_charge_enabled(void);

/* walk.c: bytes of blocks and xattrs under a directory, hard links counted
 * once; each file's cost is also booked to its owner (tfs_uid_adjust). */
int tfs_walk_usage(int dirfd, uint64_t *bytes);
/* Bytes of a file's extended attributes as charged: the length of each
 * name plus the size of its value.  follow: resolve a last component that
 * is a link (a /proc/self/fd path) instead of reading the link's own. */
uint64_t tfs_xattr_usage(const char *path, int follow);

/* uid.c: per-owner accounting and limit (0: none; root is never limited). */
void tfs_uid_set_limit(uint64_t limit);
/* Before a change that may cost uid `bytes` more: 0, or -ENOSPC over the
 * limit (force: never refused). */
int tfs_uid_begin(uid_t uid, uint64_t bytes, int force);
/* After it: drop the pending bytes and book delta. */
void tfs_uid_end(uid_t uid, uint64_t bytes, int64_t delta);
void tfs_uid_adjust(uid_t uid, int64_t delta);
int64_t tfs_uid_cost(uid_t uid);
/* Descriptors held for users (see uid.c): per_user for one, all_users for
 * all but root and self together (0: no limit). */
void tfs_uid_set_fd_limits(uint64_t per_user, uint64_t all_users, uid_t self);
/* n more descriptors for uid: 0, or -ENFILE over a limit (none taken). */
int tfs_uid_fd_take(uid_t uid, unsigned n);
void tfs_uid_fd_put(uid_t uid, unsigned n);
/* Every owner's figure to the log. */
void tfs_uid_log(void);
void tfs_uid_fini(void);

/* main.c: hand the reading of requests to another thread before blocking. */
void tfs_serve_yield(void);

/* ops.c */
struct fuse_lowlevel_ops;
extern const struct fuse_lowlevel_ops tfs_ops;
int tfs_ops_init(int rootfd, const struct tfs_conf *cf);
void tfs_ops_fini(void);

#endif /* TFS_H */
