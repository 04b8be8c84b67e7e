/*
 * wmbench - reaction time of the watermarks: from the moment the device
 * figure crosses notify_high to the give-back query arriving, and to the
 * pages being back (freed with MADV_DONTNEED and answered).
 *
 *   wmbench SOCKET MEMINFO CROSSINGS SIZE
 *
 * It is a bidi client holding SIZE of touched memory.  Each crossing
 * rewrites the meminfo file the broker reads (device = meminfo) from 10% to
 * 60% used, times the query and the answer, then goes back to 10% and waits
 * for the broker to say normal before it takes its quota back.  The broker
 * must run with notify_high 50% and notify_low 40% of a 1 GiB MemTotal.
 * Prints one line per crossing: "query_us=N back_us=N".
 */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "mbclient.h"
#include "mb_size.h"

#define WAIT_MS 10000
#define RANDOM_PHASE_US 200000

struct bench {
	mb_client c;
	unsigned char *mem;
	uint64_t pages, page_size;
	uint64_t t_query, t_back;
};

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t give(void *arg, enum mb_client_urgency urg, uint64_t pages)
{
	struct bench *b = arg;
	(void)urg;
	b->t_query = now_us();
	if (pages > b->pages)
		pages = b->pages;
	b->pages -= pages;
	madvise(b->mem + b->pages * b->page_size, pages * b->page_size, MADV_DONTNEED);
	b->t_back = now_us();
	return pages;
}

static int set_used(const char *path, unsigned used_mib)
{
	char tmp[512];
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	fprintf(f, "MemTotal: 1048576 kB\nMemAvailable: %u kB\nCommitted_AS: 1000 kB\n",
		(1024 - used_mib) * 1024);
	if (fclose(f) != 0)
		return -1;
	return rename(tmp, path);
}

int main(int argc, char **argv)
{
	static struct bench b;
	uint64_t n, size;
	if (argc != 5 || mb_parse_u64(argv[3], &n) != 0 || mb_parse_size(argv[4], 0, &size) != 0) {
		fprintf(stderr, "usage: wmbench SOCKET MEMINFO CROSSINGS SIZE\n");
		return 2;
	}
	struct mb_options o = { .socket_path = argv[1], .kind = MB_CLIENT_BIDI,
				.name = "wmbench", .share = give, .arg = &b };
	if (set_used(argv[2], 100) != 0 || mb_open(&b.c, &o) != MB_OK) {
		fprintf(stderr, "wmbench: cannot start\n");
		return 1;
	}
	b.page_size = mb_page_size(&b.c);
	srand((unsigned)now_us());
	uint64_t want = size / b.page_size;
	b.mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b.mem == MAP_FAILED)
		return 1;
	for (uint64_t i = 0; i < n; i++) {
		/* Normal again, then take the quota back and touch the memory. */
		struct mb_memstate ms;
		uint64_t until = now_us() + WAIT_MS * 1000;
		do {
			if (mb_memstate(&b.c, &ms) != MB_OK || now_us() > until) {
				fprintf(stderr, "wmbench: the broker stays in notify\n");
				return 1;
			}
			if (ms.level != MB_MEM_LEVEL_NORMAL || ms.device_used > 200u << 20)
				usleep(5000);
		} while (ms.level != MB_MEM_LEVEL_NORMAL || ms.device_used > 200u << 20);
		uint64_t got = 0;
		if (mb_request(&b.c, want - b.pages, 0, &got) != MB_OK)
			return 1;
		b.pages += got;
		memset(b.mem, 0x5a, b.pages * b.page_size);
		b.t_query = b.t_back = 0;
		/* A random phase against the broker's poll. */
		usleep((useconds_t)(rand() % RANDOM_PHASE_US));
		uint64_t t0 = now_us();
		if (set_used(argv[2], 600) != 0)
			return 1;
		while (b.t_back == 0) {
			if (now_us() > t0 + WAIT_MS * 1000ull) {
				fprintf(stderr, "wmbench: no give-back query\n");
				return 1;
			}
			struct pollfd p = { .fd = mb_fd(&b.c), .events = POLLIN };
			if (poll(&p, 1, 100) > 0 && mb_dispatch(&b.c, 0) < 0)
				return 1;
		}
		printf("query_us=%llu back_us=%llu\n", (unsigned long long)(b.t_query - t0),
		       (unsigned long long)(b.t_back - t0));
		fflush(stdout);
		if (set_used(argv[2], 100) != 0)
			return 1;
	}
	mb_close(&b.c);
	return 0;
}
