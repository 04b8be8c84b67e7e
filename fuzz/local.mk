# fuzz: libFuzzer harnesses, built only when the compiler links
# -fsanitize=fuzzer (configure: HAVE_FUZZER, FUZZ_CFLAGS; in practice clang).
# Each harness compiles the code it drives itself, with coverage and
# ASan+UBSan, so the rest of the tree keeps its own flags.
#   make check-fuzz     a short run of each harness (fuzz/short-run.sh),
#                       after replaying the seeds and every kept crash
#   bench/fuzz/run.sh   longer runs
FUZZ_COMMON = common/mb_wire.c common/mb_log.c common/mb_size.c common/mb_conf.c
FUZZ_TESTS = fuzz/wire.sh fuzz/broker.sh fuzz/conf.sh fuzz/client.sh fuzz/trackfs.sh
EXTRA_DIST += fuzz/fz_input.h fuzz/short-run.sh $(FUZZ_TESTS) fuzz/corpus fuzz/regress \
	fuzz/fuzz_wire.c fuzz/fuzz_broker.c fuzz/fuzz_conf.c fuzz/fuzz_client.c \
	fuzz/fuzz_trackfs.c fuzz/seeds.py bench/fuzz/run.sh

if HAVE_FUZZER
noinst_PROGRAMS += fuzz/fuzz_wire fuzz/fuzz_broker fuzz/fuzz_conf fuzz/fuzz_client
FUZZ_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/fuzz

fuzz_fuzz_wire_SOURCES = fuzz/fuzz_wire.c fuzz/fz_input.h common/mb_wire.c
fuzz_fuzz_wire_CPPFLAGS = $(FUZZ_CPPFLAGS)
fuzz_fuzz_wire_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
fuzz_fuzz_wire_LDFLAGS = $(FUZZ_CFLAGS)

fuzz_fuzz_broker_SOURCES = fuzz/fuzz_broker.c fuzz/fz_input.h mbserver/broker.c $(FUZZ_COMMON)
fuzz_fuzz_broker_CPPFLAGS = $(FUZZ_CPPFLAGS) -I$(top_srcdir)/mbserver
fuzz_fuzz_broker_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
fuzz_fuzz_broker_LDFLAGS = $(FUZZ_CFLAGS)

fuzz_fuzz_conf_SOURCES = fuzz/fuzz_conf.c fuzz/fz_input.h mbserver/conf.c mbserver/watermark.c \
	track_fs/conf.c \
	$(FUZZ_COMMON)
fuzz_fuzz_conf_CPPFLAGS = $(FUZZ_CPPFLAGS) -I$(top_srcdir)/mbserver -I$(top_srcdir)/track_fs
fuzz_fuzz_conf_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
fuzz_fuzz_conf_LDFLAGS = $(FUZZ_CFLAGS)

fuzz_fuzz_client_SOURCES = fuzz/fuzz_client.c fuzz/fz_input.h libmbclient/mbclient.c \
	common/mb_thread.c \
	$(FUZZ_COMMON)
fuzz_fuzz_client_CPPFLAGS = $(FUZZ_CPPFLAGS) -I$(top_srcdir)/libmbclient
fuzz_fuzz_client_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS) $(PTHREAD_CFLAGS)
fuzz_fuzz_client_LDFLAGS = $(FUZZ_CFLAGS) $(PTHREAD_LIBS)

# track_fs's accounting (charge.c) needs no FUSE, but a real broker.
noinst_PROGRAMS += fuzz/fuzz_trackfs
fuzz_fuzz_trackfs_SOURCES = fuzz/fuzz_trackfs.c fuzz/fz_input.h track_fs/charge.c track_fs/conf.c \
	common/mb_thread.c \
	libmbclient/mbclient.c $(FUZZ_COMMON)
fuzz_fuzz_trackfs_CPPFLAGS = $(FUZZ_CPPFLAGS) -I$(top_srcdir)/libmbclient -I$(top_srcdir)/track_fs
fuzz_fuzz_trackfs_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS) $(PTHREAD_CFLAGS)
fuzz_fuzz_trackfs_LDFLAGS = $(FUZZ_CFLAGS) $(PTHREAD_LIBS)
# In a fuzzer build, make check runs them too.
TESTS += $(FUZZ_TESTS)
FUZZ_BINARIES = fuzz/fuzz_wire fuzz/fuzz_broker fuzz/fuzz_conf fuzz/fuzz_client \
	fuzz/fuzz_trackfs mbserver/mbserver
endif

# Runs only the fuzz tests (without a fuzzer they report SKIP and why).
check-fuzz: $(FUZZ_BINARIES)
	$(MAKE) $(AM_MAKEFLAGS) check-TESTS TESTS="$(FUZZ_TESTS)" \
		check_PROGRAMS= check_LTLIBRARIES=

.PHONY: check-fuzz
