# device: the simulated swapless device (device/run.sh, run by ./demo.sh).
# Its workload programs are built with the suite but not installed.
noinst_LTLIBRARIES += device/libworkload.la
device_libworkload_la_SOURCES = device/workload.c device/workload.h

noinst_PROGRAMS += device/renderer device/spooler device/hog device/cache_worker
device_renderer_SOURCES = device/renderer.c
device_renderer_LDADD = device/libworkload.la
device_spooler_SOURCES = device/spooler.c
device_spooler_LDADD = device/libworkload.la
device_hog_SOURCES = device/hog.c
device_hog_LDADD = device/libworkload.la
device_cache_worker_SOURCES = device/cache_worker.c
device_cache_worker_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
device_cache_worker_LDADD = device/libworkload.la anrmalloc/libanrmalloc.la \
	libmbclient/libmbclient.la common/libmbcommon.la

dist_noinst_SCRIPTS += device/run.sh device/pyjob.py device/report.py
EXTRA_DIST += device/timeline.gp doc/device-timeline.png
