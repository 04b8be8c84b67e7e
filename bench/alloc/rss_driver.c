/*
 * rss_driver.c - RSS after free.  Allocates about 512 MiB in mixed sizes
 * (log-uniform 16 B .. 64 KiB, plus 64 blocks of 1 MiB), touching every
 * byte, frees 99% of the blocks in random order, and prints VmRSS from
 * /proc/self/status right after the frees and again after a pause.  The
 * allocator under test is whatever LD_PRELOAD puts in front of glibc.
 *
 * Output, one line:
 *   base=<MiB> peak=<MiB> live=<MiB> pages=<MiB> own=<MiB> after=<MiB> later=<MiB> blocks=<n>
 * base is VmRSS before the first allocation; pages is the size of the
 * distinct pages the live blocks touch, the least any allocator that does
 * not move blocks can keep resident for them.  The driver's own arrays
 * (20 bytes a block) are written after base is read: own is their size,
 * so that base + own + pages is the least RSS any such allocator can
 * show after the frees.
 * With RSS_DRIVER_SIGNAL set, the driver raises SIGUSR1 right after the
 * frees (gmalloc with report_signal = USR1 then reports its heap there).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>

#define TOTAL ((size_t)512 << 20)
#define BIG_BLOCKS 64
#define BIG_SIZE ((size_t)1 << 20)
#define MAX_BLOCKS 200000
#define KEEP_ONE_IN 100
#define PAUSE_S 2

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static double vmrss_mib(void)
{
	char line[256];
	double kib = -1;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %lf kB", &kib) == 1)
			break;
	fclose(f);
	return kib / 1024.0;
}

static int cmp_page(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return x < y ? -1 : x > y;
}

static uintptr_t pagelist[MAX_BLOCKS * 4];

/* Distinct pages under the first `keep` blocks of `order`. */
static double live_pages_mib(void **b, const size_t *l, const int *ord, int keep)
{
	size_t n = 0, uniq = 0;
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	for (int i = 0; i < keep; i++) {
		uintptr_t s = (uintptr_t)b[ord[i]], e = s + l[ord[i]] - 1;
		for (uintptr_t p = s / page; p <= e / page && n < sizeof(pagelist) / sizeof(pagelist[0]); p++)
			pagelist[n++] = p;
	}
	qsort(pagelist, n, sizeof(pagelist[0]), cmp_page);
	for (size_t i = 0; i < n; i++)
		uniq += i == 0 || pagelist[i] != pagelist[i - 1];
	return (double)(uniq * page) / (1 << 20);
}

static void *blk[MAX_BLOCKS];
static size_t len[MAX_BLOCKS];
static int order[MAX_BLOCKS];

int main(void)
{
	size_t total = 0, live = 0;
	int n = 0;
	double base = vmrss_mib();
	while (total < TOTAL - BIG_BLOCKS * BIG_SIZE && n < MAX_BLOCKS) {
		unsigned bits = 4 + (unsigned)(next() % 12);  /* 16 B .. 32 KiB */
		size_t sz = ((size_t)1 << bits) + (size_t)(next() % ((size_t)1 << bits));
		len[n] = sz;
		blk[n] = malloc(sz);
		if (!blk[n]) {
			fprintf(stderr, "malloc(%zu) failed\n", sz);
			return 1;
		}
		memset(blk[n], n & 0xff, sz);
		total += sz;
		n++;
	}
	for (int i = 0; i < BIG_BLOCKS && n < MAX_BLOCKS; i++, n++) {
		len[n] = BIG_SIZE;
		blk[n] = malloc(BIG_SIZE);
		if (!blk[n])
			return 1;
		memset(blk[n], 1, BIG_SIZE);
		total += BIG_SIZE;
	}
	double peak = vmrss_mib();
	for (int i = 0; i < n; i++)
		order[i] = i;
	for (int i = n - 1; i > 0; i--) {
		int j = (int)(next() % (uint64_t)(i + 1));
		int t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	/* The first 1% of the shuffled order stays live. */
	int keep = n / KEEP_ONE_IN;
	for (int i = 0; i < keep; i++)
		live += len[order[i]];
	for (int i = keep; i < n; i++)
		free(blk[order[i]]);
	double after = vmrss_mib();
	if (getenv("RSS_DRIVER_SIGNAL"))
		raise(SIGUSR1);
	sleep(PAUSE_S);
	double later = vmrss_mib();
	double pages = live_pages_mib(blk, len, order, keep);
	double own = (double)n * (sizeof(blk[0]) + sizeof(len[0]) + sizeof(order[0])) / (1 << 20);
	printf("base=%.1f peak=%.1f live=%.1f pages=%.1f own=%.1f after=%.1f later=%.1f blocks=%d\n",
	       base, peak, (double)live / (1 << 20), pages, own, after, later, n);
	for (int i = 0; i < keep; i++)
		free(blk[order[i]]);
	return 0;
}
