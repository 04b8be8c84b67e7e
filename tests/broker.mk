# tests of broker
if HAVE_CHECK
check_PROGRAMS += tests/test_broker
UNIT_TESTS += tests/test_broker
TESTS += tests/test_broker
tests_test_broker_SOURCES = tests/broker/test_broker.c \
	mbserver/broker.c mbserver/broker.h
tests_test_broker_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/mbserver -DMB_BROKER_DEBUG
tests_test_broker_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_test_broker_LDADD = common/libmbcommon.la $(CHECK_LIBS)
endif

# A real mbserver over real sockets (not under ASan/valgrind).
if HAVE_CHECK
check_PROGRAMS += tests/test_broker_sock
TESTS += tests/test_broker_sock
tests_test_broker_sock_SOURCES = tests/broker/test_broker_sock.c
tests_test_broker_sock_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests/testlib
tests_test_broker_sock_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_test_broker_sock_LDADD = tests/testlib/libmbtest.la common/libmbcommon.la $(CHECK_LIBS)
endif
# The same file, its tests that need root; skipped (77) without root.
if HAVE_CHECK
check_PROGRAMS += tests/test_broker_root
TESTS += tests/test_broker_root
tests_test_broker_root_SOURCES = tests/broker/test_broker_sock.c
tests_test_broker_root_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests/testlib -DMBT_AS_ROOT
# The other tests of the file are not built into it: not "unused".
tests_test_broker_root_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) -Wno-unused-function -Wno-unused-variable
tests_test_broker_root_LDADD = tests/testlib/libmbtest.la common/libmbcommon.la $(CHECK_LIBS)
endif
TESTS += tests/broker/conf_keys.sh
EXTRA_DIST += tests/broker/conf_keys.sh
