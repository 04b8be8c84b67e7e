/*
 * rss_driver.c - RSS after free.  Allocates about 512 MiB in mixed sizes
 * (log-uniform 16 B .. 64 KiB, plus 64 blocks of 1 MiB), touching every
 * byte, frees 99% of the blocks in random order, and prints VmRSS from
 * /proc/self/status right after the frees and again after a pause.  The
 * allocator under test is whatever LD_PRELOAD puts in front of glibc.
 *
 * Output, one line:  peak=<MiB> live=<MiB> after=<MiB> later=<MiB> blocks=<n>
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static void *blk[MAX_BLOCKS];
static size_t len[MAX_BLOCKS];
static int order[MAX_BLOCKS];

int main(void)
{
	size_t total = 0, live = 0;
	int n = 0;
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
	sleep(PAUSE_S);
	double later = vmrss_mib();
	printf("peak=%.1f live=%.1f after=%.1f later=%.1f blocks=%d\n", peak,
	       (double)live / (1 << 20), after, later, n);
	for (int i = 0; i < keep; i++)
		free(blk[order[i]]);
	return 0;
}
