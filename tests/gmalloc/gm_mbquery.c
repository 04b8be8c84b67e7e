/*
 * gm_mbquery.c - prints the broker's pool and total as an observer
 * client: "pool=<pages> total=<pages> clients=<n> page=<bytes>".
 * The gmalloc broker test uses it to see all quota back after exit.
 */
#include <stdio.h>
#include <string.h>

#include "mbclient.h"

int main(void)
{
	mb_client c;
	struct mb_options opt;
	struct mb_info info;
	memset(&opt, 0, sizeof(opt));
	opt.kind = MB_CLIENT_OBSERVER;
	opt.name = "gm_mbquery";
	int rc = mb_open(&c, &opt);
	if (rc != 0) {
		fprintf(stderr, "gm_mbquery: cannot open: %s\n", mb_strerror(rc));
		return 1;
	}
	rc = mb_query(&c, &info);
	if (rc != 0) {
		fprintf(stderr, "gm_mbquery: query: %s\n", mb_strerror(rc));
		mb_close(&c);
		return 1;
	}
	printf("pool=%lld total=%llu clients=%llu page=%llu\n", (long long)info.pool,
	       (unsigned long long)info.total, (unsigned long long)info.clients,
	       (unsigned long long)info.page_size);
	mb_close(&c);
	return 0;
}
