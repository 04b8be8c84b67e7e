/*
 * tfs_balance.c - print the quota (in bytes) the broker counts for the
 * client with the given pid; 0 if that client is not connected.
 *
 * Part of the track_fs tests; GPL-2.0 (see COPYING.GPL-2).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbclient.h"

struct want {
	long long pid;
	long long balance;
	int found;
};

static int row(void *arg, const struct mb_status_client *r)
{
	struct want *w = arg;

	if (r->pid == w->pid) {
		w->balance = r->balance;
		w->found = 1;
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static mb_client c;
	struct mb_options opt;
	struct mb_status_head head;
	struct want w = { 0, 0, 0 };
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: tfs_balance PID\n");
		return 2;
	}
	w.pid = strtoll(argv[1], NULL, 10);
	memset(&opt, 0, sizeof(opt));
	opt.kind = MB_CLIENT_OBSERVER;
	opt.name = "tfs_balance";
	rc = mb_open(&c, &opt);
	if (rc != 0) {
		fprintf(stderr, "tfs_balance: %s\n", mb_strerror(rc));
		return 1;
	}
	rc = mb_status(&c, &head, row, &w);
	if (rc != 0) {
		fprintf(stderr, "tfs_balance: %s\n", mb_strerror(rc));
		mb_close(&c);
		return 1;
	}
	printf("%lld\n", w.found ? w.balance * (long long)head.page_size : 0LL);
	mb_close(&c);
	return 0;
}
