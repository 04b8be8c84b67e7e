# tests of track_fs: real FUSE mounts against a real mbserver (root and
# /dev/fuse needed; each test skips with its reason otherwise).
TRACKFS_TESTS = tests/trackfs/trackfs_conf.sh tests/trackfs/trackfs_posix.sh \
	tests/trackfs/trackfs_quota.sh tests/trackfs/trackfs_cycles.sh \
	tests/trackfs/trackfs_crash.sh tests/trackfs/trackfs_integrity.sh \
	tests/trackfs/trackfs_down.sh tests/trackfs/trackfs_prealloc.sh \
	tests/trackfs/trackfs_mmap_xattr.sh tests/trackfs/trackfs_uid.sh \
	tests/trackfs/trackfs_cost.sh tests/trackfs/trackfs_ledger.sh \
	tests/trackfs/trackfs_lowmem.sh tests/trackfs/trackfs_signals.sh \
	tests/trackfs/trackfs_fds.sh tests/trackfs/trackfs_stall.sh \
	tests/trackfs/trackfs_exit.sh
EXTRA_DIST += $(TRACKFS_TESTS) tests/trackfs/lib_tfs.sh tests/trackfs/tfs_grow.py
if HAVE_FUSE
TESTS += $(TRACKFS_TESTS)
check_PROGRAMS += tests/trackfs/tfs_balance
tests_trackfs_tfs_balance_SOURCES = tests/trackfs/tfs_balance.c
tests_trackfs_tfs_balance_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/libmbclient
tests_trackfs_tfs_balance_LDADD = libmbclient/libmbclient.la
endif

# Settings table, directory walk and the accounting without a broker: also
# runs under ASan+UBSan and valgrind.
if HAVE_CHECK
check_PROGRAMS += tests/trackfs/test_tfs_unit
UNIT_TESTS += tests/trackfs/test_tfs_unit
TESTS += tests/trackfs/test_tfs_unit
tests_trackfs_test_tfs_unit_SOURCES = tests/trackfs/test_tfs_unit.c \
	track_fs/charge.c track_fs/walk.c track_fs/uid.c track_fs/conf.c track_fs/tfs.h
tests_trackfs_test_tfs_unit_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/libmbclient \
	-I$(top_srcdir)/track_fs
tests_trackfs_test_tfs_unit_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(PTHREAD_CFLAGS)
tests_trackfs_test_tfs_unit_LDADD = libmbclient/libmbclient.la common/libmbcommon.la \
	$(CHECK_LIBS) $(PTHREAD_LIBS)
endif
