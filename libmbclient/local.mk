# libmbclient: the client library, mbstatus and mbutil.
lib_LTLIBRARIES += libmbclient/libmbclient.la
include_HEADERS += libmbclient/mbclient.h
pkgconfig_DATA += libmbclient/libmbclient.pc
EXTRA_DIST += libmbclient/libmbclient.pc.in libmbclient/libmbclient.sym

libmbclient_libmbclient_la_SOURCES = libmbclient/mbclient.c libmbclient/mbclient.h
libmbclient_libmbclient_la_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS)
libmbclient_libmbclient_la_LIBADD = common/libmbcommon.la $(PTHREAD_LIBS)
# current:revision:age of the library interface
libmbclient_libmbclient_la_LDFLAGS = -version-info 2:0:0 -no-undefined \
	-export-symbols $(top_srcdir)/libmbclient/libmbclient.sym

bin_PROGRAMS += libmbclient/mbstatus libmbclient/mbutil
libmbclient_mbstatus_SOURCES = libmbclient/mbstatus.c
libmbclient_mbstatus_LDADD = libmbclient/libmbclient.la common/libmbcommon.la
libmbclient_mbutil_SOURCES = libmbclient/mbutil.c
libmbclient_mbutil_LDADD = libmbclient/libmbclient.la common/libmbcommon.la

dist_man_MANS += man/libmbclient.3 man/mbstatus.1 man/mbutil.1

# bench/broker: the load driver of bench/broker/run.sh (not part of make check).
noinst_PROGRAMS += bench/broker/mbbench
bench_broker_mbbench_SOURCES = bench/broker/mbbench.c
bench_broker_mbbench_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/libmbclient
bench_broker_mbbench_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS)
bench_broker_mbbench_LDADD = libmbclient/libmbclient.la common/libmbcommon.la $(PTHREAD_LIBS)
EXTRA_DIST += bench/broker/run.sh
