/*
 * uid.c - what each user's files cost, and the per-user limit.
 *
 * track_fs is free software; you can redistribute it and/or modify it
 * under the terms of the GNU General Public License version 2 as
 * published by the Free Software Foundation (see COPYING.GPL-2).
 *
 * A file costs its owner (st_uid) the bytes it is charged for: its pages,
 * its extended attributes and the reserve it holds while open for writing.
 * A change may start only while the owner's cost, plus the changes of that
 * owner in flight, plus its own bound stays within the limit; root (uid 0)
 * is never limited.  Page writeback (FORCE) is booked, never refused.  The
 * table is open addressing on the uid, grown at half full, under one lock.
 *
 * The same table counts the descriptors track_fs holds for each user, the
 * one whose request made track_fs open it: one per file or directory new
 * to track_fs they looked up or made (until the kernel forgets it), one per
 * open (until its release), one per file being measured with mincore
 * (counted for the one who looked the file up first).  Counted for the
 * owner, a user who lists another's directory would lock the owner out.  Every descriptor comes from one per-process
 * limit, so without a bound a user who creates empty files, or opens
 * many, leaves every other user's lookups and opens failing with EMFILE.
 * Root and track_fs's own user are exempt; the other users together keep
 * out of a reserve (an eighth of the limit, at least 64) that stays free
 * for those two and for track_fs itself.
 */
#include <errno.h>
#include <stdlib.h>

#include "mb_log.h"
#include "mb_size.h"
#include "tfs.h"

#define UID_SLOTS_MIN 64

struct uid_slot {
	uid_t uid;
	int in_use;
	int64_t bytes;		/* cost of the files this uid owns */
	uint64_t pending;	/* bounds of its changes in flight */
	uint64_t fds;		/* descriptors held for it */
};

static struct {
	pthread_mutex_t lock;
	struct uid_slot *slot;
	size_t size, count;
	uint64_t limit;
	uint64_t fd_user;	/* descriptors for one user at most (0: none) */
	uint64_t fd_users;	/* for all limited users together at most */
	uint64_t fd_held;	/* held for limited users */
	uid_t self;		/* track_fs's own user, exempt */
} ut = { .lock = PTHREAD_MUTEX_INITIALIZER };

static size_t uid_hash(uid_t uid, size_t size)
{
	uint64_t h = (uint64_t)uid * 0x9e3779b97f4a7c15ULL;

	return (size_t)(h >> 32) & (size - 1);
}

static int uid_grow(void)
{
	size_t nsize = ut.size ? ut.size * 2 : UID_SLOTS_MIN, i;
	struct uid_slot *n = calloc(nsize, sizeof(*n));

	if (n == NULL)
		return -1;
	for (i = 0; i < ut.size; i++) {
		size_t j;

		if (!ut.slot[i].in_use)
			continue;
		for (j = uid_hash(ut.slot[i].uid, nsize); n[j].in_use;
		     j = (j + 1) & (nsize - 1))
			;
		n[j] = ut.slot[i];
	}
	free(ut.slot);
	ut.slot = n;
	ut.size = nsize;
	return 0;
}

/* The slot of uid, added if new; NULL without memory.  Under the lock. */
static struct uid_slot *uid_find(uid_t uid)
{
	size_t i;

	if ((ut.count + 1) * 2 > ut.size && uid_grow() != 0) {
		if (ut.size == 0 || ut.count + 1 >= ut.size)
			return NULL;
	}
	for (i = uid_hash(uid, ut.size); ut.slot[i].in_use;
	     i = (i + 1) & (ut.size - 1))
		if (ut.slot[i].uid == uid)
			return &ut.slot[i];
	ut.slot[i].in_use = 1;
	ut.slot[i].uid = uid;
	ut.count++;
	return &ut.slot[i];
}

void tfs_uid_set_limit(uint64_t limit)
{
	pthread_mutex_lock(&ut.lock);
	ut.limit = limit;
	pthread_mutex_unlock(&ut.lock);
}

void tfs_uid_set_fd_limits(uint64_t per_user, uint64_t all_users, uid_t self)
{
	pthread_mutex_lock(&ut.lock);
	ut.fd_user = per_user;
	ut.fd_users = all_users;
	ut.self = self;
	pthread_mutex_unlock(&ut.lock);
}

static int fd_exempt(uid_t uid)
{
	return uid == 0 || uid == ut.self;
}

/* Room for n more descriptors of uid (slot s)?  Under the lock. */
static int fd_room(const struct uid_slot *s, uid_t uid, uint64_t n)
{
	if (fd_exempt(uid))
		return 1;
	if (ut.fd_users > 0 && ut.fd_held + n > ut.fd_users)
		return 0;
	return ut.fd_user == 0 || (s != NULL ? s->fds : 0) + n <= ut.fd_user;
}

int tfs_uid_fd_take(uid_t uid, unsigned n)
{
	struct uid_slot *s;
	int rc = 0;

	pthread_mutex_lock(&ut.lock);
	s = uid_find(uid);
	if (!fd_room(s, uid, n)) {
		rc = -ENFILE;
	} else {
		if (s != NULL)
			s->fds += n;
		if (!fd_exempt(uid))
			ut.fd_held += n;
	}
	pthread_mutex_unlock(&ut.lock);
	return rc;
}

void tfs_uid_fd_put(uid_t uid, unsigned n)
{
	struct uid_slot *s;

	uint64_t d = n;

	pthread_mutex_lock(&ut.lock);
	s = uid_find(uid);
	if (s != NULL) {
		/* Never more than the user holds, nor from the others' total. */
		d = n < s->fds ? n : s->fds;
		s->fds -= d;
	}
	if (!fd_exempt(uid))
		ut.fd_held -= d < ut.fd_held ? d : ut.fd_held;
	pthread_mutex_unlock(&ut.lock);
}

int tfs_uid_begin(uid_t uid, uint64_t bytes, int force)
{
	struct uid_slot *s;
	int rc = 0;

	if (bytes == 0)
		return 0;
	pthread_mutex_lock(&ut.lock);
	s = uid_find(uid);
	if (s == NULL) {
		rc = force ? 0 : -ENOSPC;
		goto out;
	}
	if (!force && uid != 0 && ut.limit > 0) {
		uint64_t cost = (uint64_t)(s->bytes > 0 ? s->bytes : 0) + s->pending;

		if (cost + bytes > ut.limit || cost + bytes < cost) {
			rc = -ENOSPC;
			goto out;
		}
	}
	s->pending += bytes;
out:
	pthread_mutex_unlock(&ut.lock);
	return rc;
}

void tfs_uid_end(uid_t uid, uint64_t bytes, int64_t delta)
{
	struct uid_slot *s;

	if (bytes == 0 && delta == 0)
		return;
	pthread_mutex_lock(&ut.lock);
	s = uid_find(uid);
	if (s != NULL) {
		s->pending -= bytes < s->pending ? bytes : s->pending;
		s->bytes += delta;
	} else {
		mb_log(MB_LOG_WARNING, "no memory to account uid %u",
		       (unsigned)uid);
	}
	pthread_mutex_unlock(&ut.lock);
}

void tfs_uid_adjust(uid_t uid, int64_t delta)
{
	tfs_uid_end(uid, 0, delta);
}

int64_t tfs_uid_cost(uid_t uid)
{
	int64_t b = 0;
	size_t i;

	pthread_mutex_lock(&ut.lock);
	for (i = 0; ut.size > 0 && i < ut.size; i++)
		if (ut.slot[i].in_use && ut.slot[i].uid == uid)
			b = ut.slot[i].bytes;
	pthread_mutex_unlock(&ut.lock);
	return b;
}

void tfs_uid_log(void)
{
	char lim[32], sz[32];
	size_t i;

	pthread_mutex_lock(&ut.lock);
	if (ut.limit > 0)
		mb_format_size(lim, sizeof(lim), ut.limit);
	mb_log(MB_LOG_NOTICE, "usage by uid (limit %s, root exempt; descriptors "
	       "%llu per user, %llu of %llu for all users held):",
	       ut.limit > 0 ? lim : "none", (unsigned long long)ut.fd_user,
	       (unsigned long long)ut.fd_held, (unsigned long long)ut.fd_users);
	for (i = 0; i < ut.size; i++) {
		const struct uid_slot *s = &ut.slot[i];

		if (!s->in_use || (s->bytes == 0 && s->pending == 0 && s->fds == 0))
			continue;
		mb_format_size(sz, sizeof(sz), s->bytes > 0 ? (uint64_t)s->bytes : 0);
		mb_log(MB_LOG_NOTICE, "uid %u: %lld bytes (%s), %llu descriptors%s",
		       (unsigned)s->uid, (long long)s->bytes, sz,
		       (unsigned long long)s->fds, ut.limit > 0 && s->uid != 0 &&
		       s->bytes > 0 && (uint64_t)s->bytes >= ut.limit ?
		       ", at its limit" : "");
	}
	pthread_mutex_unlock(&ut.lock);
}

void tfs_uid_fini(void)
{
	pthread_mutex_lock(&ut.lock);
	free(ut.slot);
	ut.slot = NULL;
	ut.size = ut.count = 0;
	pthread_mutex_unlock(&ut.lock);
}
