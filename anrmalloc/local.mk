# anrmalloc: build rules (paths relative to the top of the tree)
#
# libanrmalloc_impl.la holds every object (the unit tests link it to reach
# test-only paths); libanrmalloc.la is the installed library and exports
# only the anr_* API.
noinst_LTLIBRARIES += anrmalloc/libanrmalloc_impl.la
anrmalloc_libanrmalloc_impl_la_SOURCES = \
	anrmalloc/am_internal.h anrmalloc/anrmalloc.h \
	anrmalloc/heap.c anrmalloc/alloc.c anrmalloc/records.c anrmalloc/gc.c \
	anrmalloc/broker.c anrmalloc/report.c anrmalloc/testpath.c
anrmalloc_libanrmalloc_impl_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
anrmalloc_libanrmalloc_impl_la_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS)
# libanrcore.la already carries common/libmbcommon.la.
anrmalloc_libanrmalloc_impl_la_LIBADD = anrcore/libanrcore.la \
	libmbclient/libmbclient.la $(PTHREAD_LIBS)

lib_LTLIBRARIES += anrmalloc/libanrmalloc.la
anrmalloc_libanrmalloc_la_SOURCES =
anrmalloc_libanrmalloc_la_LIBADD = anrmalloc/libanrmalloc_impl.la
anrmalloc_libanrmalloc_la_LDFLAGS = -version-info 1:0:0 \
	-export-symbols-regex '$(ANRMALLOC_EXPORTS)' $(PTHREAD_LIBS)
# The public API only: the core's own anr_* calls stay inside.
ANRMALLOC_EXPORTS = ^anr_(malloc|free|realloc|calloc|memalign|config_|heap_|add_|remove_|set_oom|set_debug|get_debug|oom_|gc_|leak_|broker_|give_back|check_block|block_info|verify|recorder_|debug_)
include_HEADERS += anrmalloc/anrmalloc.h
pkgconfig_DATA += anrmalloc/libanrmalloc.pc
EXTRA_DIST += anrmalloc/libanrmalloc.pc.in conf/anrmalloc.conf
dist_man_MANS += man/anrmalloc.3

noinst_PROGRAMS += anrmalloc/examples/cache_holder
anrmalloc_examples_cache_holder_SOURCES = anrmalloc/examples/cache_holder.c
anrmalloc_examples_cache_holder_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
anrmalloc_examples_cache_holder_LDADD = anrmalloc/libanrmalloc.la \
	libmbclient/libmbclient.la common/libmbcommon.la

# The layer's cost against glibc (bench/anrmalloc/run.sh; not part of make check).
EXTRA_DIST += bench/anrmalloc/run.sh bench/anrmalloc/churn.c \
	bench/anrmalloc/pairs.sh bench/anrmalloc/pairs.c
