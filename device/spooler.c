/*
 * spooler - writes spool files into a directory and deletes them once
 * "printed", as a print spooler does with /tmp.  With the suite the
 * directory is a track_fs mount; without it, a plain tmpfs.
 *
 * Each job writes one file of the job's size in chunks, keeps it for the
 * hold time and unlinks it.  A write that fails with ENOSPC is retried
 * after a short wait (the data written so far stays); other errors end the
 * program.  Work: files spooled.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "workload.h"

#define CHUNK (256u << 10)
#define ENOSPC_WAIT 0.05 /* seconds before a refused write is tried again */

static unsigned char chunk[CHUNK];

int main(int argc, char **argv)
{
	struct workload w = {
		.name = "spooler", .seed = 1, .seconds = 60,
		.size_min = 8 * WL_MIB, .size_max = 40 * WL_MIB,
		.gap_min = 1.0, .gap_max = 3.0, .hold_min = 0.5, .hold_max = 1.5,
	};
	uint64_t files = 0, enospc = 0;
	double waited = 0;
	struct wl_job job;
	char path[4096];

	wl_parse(&w, argc, argv);
	if (w.dir == NULL) {
		fprintf(stderr, "spooler: --dir is required\n");
		return 2;
	}
	while (wl_next_job(&w, &job)) {
		size_t done = 0;
		int fd;

		wl_sleep_until(&w, job.arrive);
		snprintf(path, sizeof(path), "%s/job-%llu.spl", w.dir,
			 (unsigned long long)files);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0) {
			fprintf(stderr, "spooler: %s: %s\n", path, strerror(errno));
			return 1;
		}
		while (done < job.size) {
			size_t n = job.size - done < CHUNK ? job.size - done : CHUNK;
			ssize_t k;

			wl_fill(chunk, n, (unsigned)(files + done));
			k = write(fd, chunk, n);
			if (k > 0) {
				done += (size_t)k;
			} else if (k < 0 && errno == ENOSPC) {
				enospc++;
				waited += ENOSPC_WAIT;
				wl_sleep(ENOSPC_WAIT);
			} else if (k < 0 && errno != EINTR) {
				fprintf(stderr, "spooler: write %s: %s\n", path, strerror(errno));
				return 1;
			}
		}
		close(fd);
		wl_sleep(job.hold);
		unlink(path);
		wl_done(&w, ++files);
	}
	wl_stat(&w, "enospc", (double)enospc);
	wl_stat(&w, "wait_total_s", waited);
	wl_end(&w, files);
	printf("spooler: %llu files, %llu writes refused with ENOSPC\n",
	       (unsigned long long)files, (unsigned long long)enospc);
	return 0;
}
