/*
 * walk.c - what the files already in the backing directory occupy, so
 * that a mount (or a restart after a crash) reserves it first.
 *
 * track_fs is free software; you can redistribute it and/or modify it
 * under the terms of the GNU General Public License version 2 as
 * published by the Free Software Foundation (see COPYING.GPL-2).
 */
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "mb_log.h"
#include "tfs.h"

#define WALK_SET_MIN 256
#define WALK_BLOCK 512
#define WALK_PROC_PATH (PATH_MAX + 64)

uint64_t tfs_xattr_usage(const char *path, int follow)
{
	ssize_t (*list)(const char *, char *, size_t) = follow ? listxattr :
		llistxattr;
	ssize_t (*get)(const char *, const char *, void *, size_t) = follow ?
		getxattr : lgetxattr;
	ssize_t len = list(path, NULL, 0), i;
	uint64_t sum = 0;
	char *names;

	if (len <= 0)
		return 0;
	names = malloc((size_t)len + 1);
	if (names == NULL)
		return 0;
	len = list(path, names, (size_t)len);
	for (i = 0; i < len;) {
		size_t n = strnlen(names + i, (size_t)(len - i));
		ssize_t v = get(path, names + i, NULL, 0);

		if (v >= 0)
			sum += n + (uint64_t)v;
		i += (ssize_t)n + 1;
	}
	free(names);
	return sum;
}

/* Inodes with more than one link, so that each is counted once. */
struct walk_set {
	struct { dev_t dev; ino_t ino; } *slot;
	size_t size, count;
};

static size_t set_hash(const struct walk_set *s, dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ULL ^ (uint64_t)dev;

	return (size_t)(h ^ (h >> 31)) & (s->size - 1);
}

/* 1 if newly added, 0 if seen, -1 without memory. */
static int set_add(struct walk_set *s, dev_t dev, ino_t ino)
{
	size_t i;

	if ((s->count + 1) * 2 > s->size) {
		struct walk_set n = { NULL, s->size ? s->size * 2 : WALK_SET_MIN, 0 };

		n.slot = calloc(n.size, sizeof(*n.slot));
		if (n.slot == NULL)
			return -1;
		for (i = 0; i < s->size; i++)
			if (s->slot[i].ino != 0)
				set_add(&n, s->slot[i].dev, s->slot[i].ino);
		free(s->slot);
		*s = n;
	}
	for (i = set_hash(s, dev, ino); s->slot[i].ino != 0;
	     i = (i + 1) & (s->size - 1))
		if (s->slot[i].dev == dev && s->slot[i].ino == ino)
			return 0;
	s->slot[i].dev = dev;
	s->slot[i].ino = ino;
	s->count++;
	return 1;
}

/* The charge of one entry of the directory open as fd: a subdirectory's
 * xattrs (its pages are not charged), a file's blocks and xattrs, once
 * per inode.  *sub gets a subdirectory to walk (O_PATH), else -1. */
static int walk_entry(int fd, const char *name, dev_t dev, struct walk_set *set,
		      uint64_t *sum, int *sub)
{
	struct stat st;
	char path[WALK_PROC_PATH];
	uint64_t cost;

	*sub = -1;
	if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return errno == ENOENT ? 0 : -errno;
	if (st.st_dev != dev)
		return 0;	/* another file system mounted inside */
	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", fd, name);
	if (S_ISDIR(st.st_mode)) {
		cost = tfs_xattr_usage(path, 0);
		*sum += cost;
		tfs_uid_adjust(st.st_uid, (int64_t)cost);
		*sub = openat(fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		return *sub == -1 ? -errno : 0;
	}
	if (st.st_nlink > 1) {
		int added = set_add(set, st.st_dev, st.st_ino);

		if (added < 0)
			return -ENOMEM;
		if (added == 0)
			return 0;
	}
	cost = (uint64_t)st.st_blocks * WALK_BLOCK + tfs_xattr_usage(path, 0);
	*sum += cost;
	tfs_uid_adjust(st.st_uid, (int64_t)cost);
	return 0;
}

/* Open the directory at dirfd (an O_PATH descriptor or the root) for
 * reading; NULL with errno set. */
static DIR *walk_open(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dp;

	if (fd == -1)
		return NULL;
	dp = fdopendir(fd);
	if (dp == NULL) {
		int e = errno;

		close(fd);
		errno = e;
	}
	return dp;
}

/*
 * Depth first, without recursion: the open directories form a stack on
 * the heap (one descriptor each), so a tree as deep as a user can make
 * it costs no stack.  (The walk recursed once per level, with a path
 * buffer in each frame: a tree some 1,900 levels deep, which any user
 * makes in a second, overflowed the stack, and track_fs crashed at every
 * later mount.)  A tree deeper than the descriptors allow fails the
 * walk with EMFILE, said by the caller.
 */
static int walk_tree(int rootfd, dev_t dev, struct walk_set *set, uint64_t *sum)
{
	size_t depth = 0, cap = 16;
	DIR **stack = malloc(cap * sizeof(*stack));
	int rc = 0;

	if (stack == NULL)
		return -ENOMEM;
	if ((stack[0] = walk_open(rootfd)) == NULL)
		rc = -errno;
	else
		depth = 1;
	while (rc == 0 && depth > 0) {
		DIR *dp = stack[depth - 1];
		struct dirent *de;
		int sub = -1;

		errno = 0;
		de = readdir(dp);
		if (de == NULL) {
			if (errno != 0)
				rc = -errno;
			closedir(dp);
			depth--;
			continue;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		rc = walk_entry(dirfd(dp), de->d_name, dev, set, sum, &sub);
		if (rc != 0 || sub == -1)
			continue;
		if (depth == cap) {
			DIR **n = realloc(stack, 2 * cap * sizeof(*stack));

			if (n == NULL) {
				close(sub);
				rc = -ENOMEM;
				break;
			}
			stack = n;
			cap *= 2;
		}
		stack[depth] = walk_open(sub);
		if (stack[depth] == NULL)
			rc = -errno;
		else
			depth++;
		close(sub);
	}
	while (depth > 0)
		closedir(stack[--depth]);
	free(stack);
	return rc;
}

int tfs_walk_usage(int dirfd, uint64_t *bytes)
{
	struct walk_set set = { NULL, 0, 0 };
	struct stat st;
	int rc;

	*bytes = 0;
	if (fstatat(dirfd, "", &st, AT_EMPTY_PATH) == -1)
		return -errno;
	rc = walk_tree(dirfd, st.st_dev, &set, bytes);
	free(set.slot);
	return rc;
}
