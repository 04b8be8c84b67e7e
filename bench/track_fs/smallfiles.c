/*
 * smallfiles.c - create, write 4 KiB, close and unlink small files in a
 * directory for a given time; prints files per second.
 * Part of the track_fs benchmark; GPL-2.0 (see COPYING.GPL-2).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FILE_BYTES 4096
#define NAMES 64

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static char buf[FILE_BYTES];
	char path[4096];
	double secs, t0, t;
	unsigned long n = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: smallfiles DIR SECONDS\n");
		return 2;
	}
	secs = atof(argv[2]);
	memset(buf, 'x', sizeof(buf));
	t0 = now();
	do {
		int i;

		for (i = 0; i < NAMES; i++, n++) {
			int fd;

			snprintf(path, sizeof(path), "%s/f%d", argv[1], i);
			fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd == -1 || write(fd, buf, sizeof(buf)) != FILE_BYTES ||
			    close(fd) != 0 || unlink(path) != 0) {
				perror(path);
				return 1;
			}
		}
		t = now();
	} while (t - t0 < secs);
	printf("%.0f\n", (double)n / (t - t0));
	return 0;
}
