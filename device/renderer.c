/*
 * renderer - renders "pages" into big buffers, in spikes, as a printer's
 * raster engine does.  It is an ordinary malloc program: the scenario runs
 * it on glibc or under LD_PRELOAD=libgmalloc.so with the broker.
 *
 * Each job mallocs one page buffer (the job's size), fills it band by band,
 * keeps it while the page "prints" (the hold time) and frees it.  A refused
 * malloc is not fatal: the renderer hands back what it does not use
 * (malloc_trim), waits and tries again; a page that cannot get memory within
 * --patience seconds is dropped and counted.  Work: pages rendered.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workload.h"

#define RETRY_WAIT 0.05 /* seconds between attempts at a refused page */
#define PATIENCE 30.0   /* seconds a page may wait for memory before it is dropped */

int main(int argc, char **argv)
{
	struct workload w = {
		.name = "renderer", .seed = 1, .seconds = 60,
		.size_min = 24 * WL_MIB, .size_max = 72 * WL_MIB,
		.gap_min = 1.0, .gap_max = 2.5, .hold_min = 0.4, .hold_max = 1.2,
	};
	double waited_total = 0, wait_max = 0;
	uint64_t pages = 0, refusals = 0, dropped = 0;
	struct wl_job job;

	wl_parse(&w, argc, argv);
	while (wl_next_job(&w, &job)) {
		double asked;
		void *buf;

		wl_sleep_until(&w, job.arrive);
		asked = wl_elapsed(&w);
		while ((buf = malloc(job.size)) == NULL) {
			refusals++;
			malloc_trim(0);
			if (wl_elapsed(&w) - asked > PATIENCE)
				break;
			wl_sleep(RETRY_WAIT);
		}
		if (wl_elapsed(&w) - asked > wait_max)
			wait_max = wl_elapsed(&w) - asked;
		waited_total += wl_elapsed(&w) - asked;
		if (buf == NULL) {
			dropped++;
			continue;
		}
		wl_fill(buf, job.size, (unsigned)pages);
		wl_sleep(job.hold);
		free(buf);
		wl_done(&w, ++pages);
	}
	wl_stat(&w, "refused_mallocs", (double)refusals);
	wl_stat(&w, "dropped", (double)dropped);
	wl_stat(&w, "wait_total_s", waited_total);
	wl_stat(&w, "wait_max_s", wait_max);
	wl_end(&w, pages);
	printf("renderer: %llu pages, %llu refused mallocs, %llu dropped, waited %.2f s\n",
	       (unsigned long long)pages, (unsigned long long)refusals,
	       (unsigned long long)dropped, waited_total);
	return 0;
}
