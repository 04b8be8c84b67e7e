/*
 * spawn.c - what an allocator adds to a process's start (bench/alloc/core.sh).
 *
 * usage: spawn N PROGRAM [ARGS...]
 * Starts PROGRAM N times, one after the other (posix_spawn, then waitpid),
 * with this process's environment (LD_PRELOAD included), and prints the
 * mean wall time of one start-to-exit in microseconds.  With "spawn N
 * spawn 0" PROGRAM is this program itself, which then only mallocs and
 * frees one block: the loader's work, the allocator's set-up and its first
 * page faults.  With "spawn N spawn 0 sizes" it mallocs, writes and frees
 * 64 blocks of 16 to 2,347 bytes, as a small program's first allocations
 * reach most size classes: an allocator that gives each class pages of
 * its own first writes that many pages.
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

int
main(int argc, char **argv)
{
	struct timespec a, b;
	long n;

	if (argc < 2)
		return 2;
	n = atol(argv[1]);
	if (n == 0 && argc > 2 && strcmp(argv[2], "sizes") == 0) {
		char *p[64];
		int missing = 0;

		for (int i = 0; i < 64; i++) {
			p[i] = malloc(16 + (size_t)i * 37);
			if (p[i] != NULL)
				memset(p[i], i, 16 + (size_t)i * 37);
			missing += p[i] == NULL;
		}
		for (int i = 0; i < 64; i++)
			free(p[i]);
		return missing != 0;
	}
	if (n == 0) {
		/* the child: one malloc and free */
		char *volatile p = malloc(100);
		free(p);
		return p == NULL;
	}
	if (argc < 3)
		return 2;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		pid_t pid;
		int st;
		if (posix_spawn(&pid, argv[2], NULL, NULL, argv + 2, environ) != 0 ||
		    waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "spawn: %s failed\n", argv[2]);
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.1f\n", ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / 1e3 / (double)n);
	return 0;
}
