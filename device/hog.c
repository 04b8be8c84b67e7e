/*
 * hog - the rest of the system: a plain process that knows nothing of the
 * broker and grows for a while.  It touches one more MiB at even steps
 * during the first half of the run until it holds the top of --size, keeps
 * it, and rewrites a MiB of it every step so the memory stays in use.
 * Work: MiB touched.
 */
#include <stdio.h>
#include <stdlib.h>

#include "workload.h"

#define GROW_SHARE 0.5 /* part of the run during which it grows */

int main(int argc, char **argv)
{
	struct workload w = {
		.name = "hog", .seed = 1, .seconds = 60,
		.size_min = 32 * WL_MIB, .size_max = 32 * WL_MIB,
	};
	unsigned char *mem;
	size_t mib, held = 0;
	uint64_t units = 0;
	double step;

	wl_parse(&w, argc, argv);
	mib = w.size_max / WL_MIB;
	if (mib == 0)
		mib = 1;
	mem = malloc(mib * WL_MIB);
	if (mem == NULL) {
		perror("hog");
		return 1;
	}
	step = w.seconds * GROW_SHARE / (double)mib;
	for (double t = step; t < w.seconds; t += step) {
		wl_sleep_until(&w, t);
		if (held < mib)
			held++;
		wl_fill(mem + (units % held) * WL_MIB, WL_MIB, (unsigned)units);
		wl_done(&w, ++units);
	}
	wl_stat(&w, "held_mib", (double)held);
	wl_end(&w, units);
	printf("hog: held %zu MiB\n", held);
	free(mem);
	return 0;
}
