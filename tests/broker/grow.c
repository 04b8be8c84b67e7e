/*
 * grow - a plain process, no broker client: maps SIZE of anonymous memory
 * in STEP pieces, touching each, then stays for SECONDS.  Prints "grown"
 * when all of it is resident.  Memory taken outside the broker, for the
 * device tests and the watermark bench.
 *
 *   grow SIZE STEP SECONDS
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mb_size.h"

#define STEP_PAUSE_US 10000

int main(int argc, char **argv)
{
	uint64_t size, step, secs;
	if (argc != 4 || mb_parse_size(argv[1], 0, &size) != 0 ||
	    mb_parse_size(argv[2], 0, &step) != 0 || step == 0 ||
	    mb_parse_u64(argv[3], &secs) != 0) {
		fprintf(stderr, "usage: grow SIZE STEP SECONDS\n");
		return 2;
	}
	for (uint64_t done = 0; done < size; done += step) {
		uint64_t n = size - done < step ? size - done : step;
		char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			perror("grow: mmap");
			return 1;
		}
		memset(p, 0x33, n);
		usleep(STEP_PAUSE_US);
	}
	printf("grown\n");
	fflush(stdout);
	sleep((unsigned)secs);
	return 0;
}
