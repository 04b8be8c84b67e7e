# bench: build rules (paths relative to the top of the tree)

# bench/watermarks: the reaction-time driver of bench/watermarks/run.sh.
noinst_PROGRAMS += bench/watermarks/wmbench
bench_watermarks_wmbench_SOURCES = bench/watermarks/wmbench.c
bench_watermarks_wmbench_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/libmbclient
bench_watermarks_wmbench_LDADD = libmbclient/libmbclient.la common/libmbcommon.la
EXTRA_DIST += bench/watermarks/run.sh
