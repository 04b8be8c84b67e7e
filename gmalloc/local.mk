# gmalloc: libgmalloc.so, the malloc replacement for unmodified programs
# (LD_PRELOAD).  The core, the shared library and the broker client are
# linked in; only the malloc family and gmalloc_* are exported.  The
# broker client's source is compiled in too rather than libmbclient.so
# linked: loading a second library cost every preloaded process about
# 0.15 ms at start (mbclient.c keeps no global state, so a program that
# links libmbclient.so itself has two independent copies).
lib_LTLIBRARIES += gmalloc/libgmalloc.la
include_HEADERS += gmalloc/gmalloc.h
dist_man_MANS += man/gmalloc.3
dist_sysconf_DATA += conf/gmalloc.conf
EXTRA_DIST += gmalloc/libgmalloc.map

gmalloc_libgmalloc_la_SOURCES = \
	gmalloc/gmalloc.c gmalloc/gmalloc.h gmalloc/gm_internal.h \
	gmalloc/gm_init.c gmalloc/gm_config.c gmalloc/gm_broker.c \
	gmalloc/gm_report.c gmalloc/gm_trailer.c libmbclient/mbclient.c
gmalloc_libgmalloc_la_CPPFLAGS = $(AM_CPPFLAGS) \
	-I$(top_srcdir)/anrcore -I$(top_srcdir)/libmbclient
# The compiler must not turn code inside the allocator into calls of the
# allocator (e.g. malloc + memset into calloc).
gmalloc_libgmalloc_la_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS) \
	-fno-builtin-malloc -fno-builtin-calloc -fno-builtin-realloc -fno-builtin-free
# libgcc's unwinder (call stacks) is linked in: every preloaded process
# loaded libgcc_s.so for it at start, about 0.1 ms (bench/alloc/run.sh's
# real programs start dozens of processes); the version script keeps its
# symbols inside.
gmalloc_libgmalloc_la_LDFLAGS = -avoid-version -module -no-undefined -Wc,-static-libgcc \
	-Wl,--version-script=$(top_srcdir)/gmalloc/libgmalloc.map -Wl,-z,nodelete
# libanrcore.la brings common/libmbcommon.la with it (both are convenience
# libraries, so naming it again would link it twice).
gmalloc_libgmalloc_la_LIBADD = anrcore/libanrcore.la $(PTHREAD_LIBS)
EXTRA_gmalloc_libgmalloc_la_DEPENDENCIES = gmalloc/libgmalloc.map

# The allocator benchmark (bench/alloc/run.sh; not part of make check).
EXTRA_DIST += bench/alloc/run.sh bench/alloc/rss_driver.c bench/alloc/pairs.c
