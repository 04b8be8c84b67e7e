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

# The device view, the watermark policy and the broker's policy hooks.
if HAVE_CHECK
check_PROGRAMS += tests/test_watermark
UNIT_TESTS += tests/test_watermark
TESTS += tests/test_watermark
tests_test_watermark_SOURCES = tests/broker/test_watermark.c \
	mbserver/broker.c mbserver/broker.h mbserver/device.c mbserver/device.h \
	mbserver/watermark.c mbserver/watermark.h
tests_test_watermark_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/mbserver -DMB_BROKER_DEBUG
tests_test_watermark_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_test_watermark_LDADD = common/libmbcommon.la $(CHECK_LIBS)
endif

# A bidi client with real memory that gives back honestly or lies.
check_PROGRAMS += tests/broker/gb_client
tests_broker_gb_client_SOURCES = tests/broker/gb_client.c
tests_broker_gb_client_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/libmbclient
tests_broker_gb_client_LDADD = libmbclient/libmbclient.la common/libmbcommon.la
TESTS += tests/broker/watermarks.sh tests/broker/watermarks_priv.sh tests/broker/escalate_wait.sh
EXTRA_DIST += tests/broker/watermarks.sh tests/broker/watermarks_priv.sh \
	tests/broker/escalate_wait.sh

# A real memory cgroup v1 as the device (root; skipped otherwise).
check_PROGRAMS += tests/broker/grow
tests_broker_grow_SOURCES = tests/broker/grow.c
tests_broker_grow_LDADD = common/libmbcommon.la
TESTS += tests/broker/watermarks_cgroup.sh
EXTRA_DIST += tests/broker/watermarks_cgroup.sh
