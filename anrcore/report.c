/*
 * report.c - the heap report: the statistics as text, per-class slabs and
 * the longest free run, written with the async-signal-safe formatter (a
 * report may be asked for from a signal handler).
 */
#include "config.h"

#include "anrcore_internal.h"

#include "mb_log.h"

#include <pthread.h>
#include <string.h>

static void
line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
line(int fd, const char *fmt, ...)
{
	char buf[MB_LOG_LINE_MAX];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = mb_vformat(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	(void)mb_write_all(fd, buf, n);
}

#define KiB(x) ((x) >> 10)

/* Slabs per class and the longest free run, gathered under the lock and
 * written after it (a reader that stops reading must not hold up every
 * allocation); skipped if the heap is busy. */
static void
report_detail(struct anrc_heap *h, int fd)
{
	size_t longest = 0, slabs[ANR_NCLASSES], live[ANR_NCLASSES];

	if (pthread_mutex_trylock(&h->lock) != 0)
		return;
	for (unsigned z = 0; z < ANR_ZONES; z++) {
		if (h->fl_map[z] != 0) {
			unsigned fl = 31u - (unsigned)__builtin_clz(h->fl_map[z]);
			unsigned sl = 31u - (unsigned)__builtin_clz(h->sl_map[z][fl]);
			size_t n = (size_t)h->pm[h->free_head[z][fl][sl]].npages << h->page_shift;
			if (n > longest)
				longest = n;
		}
	}
	for (unsigned c = 0; c < ANR_NCLASSES; c++) {
		anrc_theap_class_counts(h, c, &slabs[c], &live[c]);
		slabs[c] += h->class_slabs[c];
		live[c] += h->class_live[c];
	}
	pthread_mutex_unlock(&h->lock);
	line(fd, "  longest free run %zu KiB\n", KiB(longest));
	for (unsigned c = 0; c < ANR_NCLASSES; c++) {
		const struct anrc_class *k = &h->cls[c];
		if (slabs[c] == 0)
			continue;
		line(fd, "  class %5u B: %zu slabs of %u pages, %zu of %zu objects live\n",
		     k->size, slabs[c], k->npages, live[c], slabs[c] * k->nobjs);
	}
}

void
anrc_report(struct anrc_heap *h, int fd)
{
	struct anrc_stats st;
	/* A report may be asked for from a signal handler: never wait. */
	int locked = pthread_mutex_trylock(&h->lock) == 0;

	anrc_fill_stats(h, &st);
	if (locked)
		pthread_mutex_unlock(&h->lock);
	line(fd, "%s heap report%s\n", h->name,
	     locked ? "" : " (heap busy: figures may be inconsistent)");
	line(fd, "  in use         %10zu KiB (peak %zu KiB)\n", KiB(st.in_use),
	     KiB(st.peak_in_use));
	line(fd, "  resident       %10zu KiB (peak %zu KiB)\n", KiB(st.resident),
	     KiB(st.peak_resident));
	line(fd, "  free resident  %10zu KiB (marks %zu..%zu KiB)\n",
	     KiB(st.free_resident), KiB(h->free_low), KiB(h->free_high));
	line(fd, "  free in slabs  %10zu KiB (%zu KiB of it given back)\n", KiB(st.slab_free),
	     KiB(st.slab_holes));
	line(fd, "  metadata resident %7zu KiB\n", KiB(anrc_meta_resident(h)));
	line(fd, "  budget         %10zu KiB\n", KiB(st.budget));
	line(fd, "  address used   %10zu KiB of %zu KiB reserved (metadata %zu KiB)\n",
	     KiB(st.address_used), KiB(st.reserved), KiB(st.metadata));
	line(fd, "  allocs %llu frees %llu deferred frees %llu bad frees %llu\n",
	     (unsigned long long)st.allocs, (unsigned long long)st.frees,
	     (unsigned long long)st.deferred_frees, (unsigned long long)st.bad_frees);
	if (locked)
		report_detail(h, fd);
	line(fd, "  hook calls %llu failures %llu madvise calls %llu (%zu KiB given back;"
	     " %llu more gave back %zu KiB of metadata)\n",
	     (unsigned long long)st.hook_calls, (unsigned long long)st.failures,
	     (unsigned long long)st.madvise_calls, KiB(st.madvised_bytes),
	     (unsigned long long)st.meta_madvise_calls,
	     KiB(__atomic_load_n(&h->meta_madvised, __ATOMIC_RELAXED)));
}
