/*
 * gb_client - a bidi client with real memory, for the give-back tests and
 * bench/watermarks: it takes SIZE of quota, maps and touches as much, then
 * answers the broker's give-back queries from its poll loop.
 *
 *   gb_client honest|liar SIZE SECONDS
 *
 * honest frees the pages it gives back (MADV_DONTNEED); liar says it gave
 * them and keeps every page resident.  Each answer is printed as
 * "gave PAGES" with the monotonic time in microseconds.
 */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "mbclient.h"
#include "mb_size.h"

struct gb {
	mb_client c;
	int liar;
	unsigned char *mem;
	uint64_t pages, page_size;
};

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t give(void *arg, enum mb_client_urgency urg, uint64_t pages)
{
	struct gb *g = arg;
	uint64_t t = now_us();
	(void)urg;
	if (pages > g->pages)
		pages = g->pages;
	g->pages -= pages;
	if (!g->liar)
		madvise(g->mem + g->pages * g->page_size, pages * g->page_size, MADV_DONTNEED);
	printf("asked %llu at %llu, gave %llu at %llu\n", (unsigned long long)pages,
	       (unsigned long long)t, (unsigned long long)pages,
	       (unsigned long long)now_us());
	fflush(stdout);
	return pages;
}

int main(int argc, char **argv)
{
	static struct gb g;
	uint64_t bytes, secs;
	if (argc != 4 || mb_parse_size(argv[2], 0, &bytes) != 0 ||
	    mb_parse_u64(argv[3], &secs) != 0) {
		fprintf(stderr, "usage: gb_client honest|liar SIZE SECONDS\n");
		return 2;
	}
	g.liar = strcmp(argv[1], "liar") == 0;
	struct mb_options o = { .kind = MB_CLIENT_BIDI, .name = argv[1], .share = give,
				.arg = &g };
	int r = mb_open(&g.c, &o);
	if (r != MB_OK) {
		fprintf(stderr, "gb_client: %s\n", mb_strerror(r));
		return 1;
	}
	g.page_size = mb_page_size(&g.c);
	uint64_t want = bytes / g.page_size, got = 0;
	r = mb_request(&g.c, want, 0, &got);
	if (r != MB_OK || got != want) {
		fprintf(stderr, "gb_client: granted %llu of %llu: %s\n", (unsigned long long)got,
			(unsigned long long)want, mb_strerror(r));
		return 1;
	}
	g.mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g.mem == MAP_FAILED)
		return 1;
	memset(g.mem, 0x5a, bytes);
	g.pages = want;
	printf("ready %llu pages\n", (unsigned long long)want);
	fflush(stdout);
	uint64_t end = now_us() + secs * 1000000;
	while (now_us() < end) {
		struct pollfd p = { .fd = mb_fd(&g.c), .events = POLLIN };
		if (p.fd < 0)
			return 1;
		if (poll(&p, 1, 100) > 0 && mb_dispatch(&g.c, 0) < 0)
			break;
	}
	mb_close(&g.c);
	return 0;
}
