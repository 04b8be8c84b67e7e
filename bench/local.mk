# bench: build rules (paths relative to the top of the tree)

# bench/watermarks: the reaction-time driver of bench/watermarks/run.sh.
noinst_PROGRAMS += bench/watermarks/wmbench
bench_watermarks_wmbench_SOURCES = bench/watermarks/wmbench.c
bench_watermarks_wmbench_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/libmbclient
bench_watermarks_wmbench_LDADD = libmbclient/libmbclient.la common/libmbcommon.la
EXTRA_DIST += bench/watermarks/run.sh

# bench/broker/audit.sh: a client's round trip while the audit reads a
# process with many mappings and connections.
noinst_PROGRAMS += bench/broker/auditbench
bench_broker_auditbench_SOURCES = bench/broker/auditbench.c
bench_broker_auditbench_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/libmbclient
bench_broker_auditbench_LDADD = libmbclient/libmbclient.la common/libmbcommon.la
EXTRA_DIST += bench/broker/audit.sh

# bench/alloc/suite.sh: workloads, the real-time thread and the worst case
# per call, against the peer allocators (programs built by the script).
EXTRA_DIST += bench/alloc/suite.sh bench/alloc/workloads.c bench/alloc/rt.c \
	bench/alloc/worst.c bench/alloc/steps.c bench/count_locks.h bench/alloc/spawn.c \
	bench/alloc/bench_clock.h bench/alloc/cold.c
# the rest of bench/alloc (run.sh and its programs are listed in gmalloc/local.mk)
EXTRA_DIST += bench/alloc/peers.sh bench/alloc/core.sh bench/alloc/pair_loop.c \
	bench/alloc/churn.c
