# anrcore: the allocator core, an internal PIC library linked into
# libgmalloc.so and libanrmalloc.so.  It knows nothing of the broker.
# Call stacks use libgcc's unwinder (_Unwind_Backtrace: from libgcc_s, or
# linked in, as libgmalloc.so does).
noinst_LTLIBRARIES += anrcore/libanrcore.la
anrcore_libanrcore_la_SOURCES = \
	anrcore/anrcore.h anrcore/anrcore_internal.h anrcore/theap_fast.h anrcore/vg.h \
	anrcore/heap.c anrcore/bitmap.c anrcore/pages.c anrcore/release.c anrcore/spans.c anrcore/slab.c \
	anrcore/stats.c anrcore/report.c anrcore/walk.c anrcore/check.c anrcore/backtrace.c \
	anrcore/theap.c anrcore/runcache.c anrcore/returner.c anrcore/layer.c
anrcore_libanrcore_la_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS)
anrcore_libanrcore_la_LIBADD = common/libmbcommon.la $(PTHREAD_LIBS)
