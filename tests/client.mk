# tests of libmbclient, mbstatus and mbutil
if HAVE_CHECK
# Scripted peer, no broker: also runs under ASan+UBSan and valgrind.
check_PROGRAMS += tests/test_client_unit
UNIT_TESTS += tests/test_client_unit
TESTS += tests/test_client_unit
tests_test_client_unit_SOURCES = tests/client/test_client_unit.c
tests_test_client_unit_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/libmbclient
tests_test_client_unit_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(PTHREAD_CFLAGS)
tests_test_client_unit_LDADD = libmbclient/libmbclient.la common/libmbcommon.la \
	$(CHECK_LIBS) $(PTHREAD_LIBS)

# Against a real mbserver (TESTS only: it replaces malloc with a counter).
check_PROGRAMS += tests/test_client_broker
TESTS += tests/test_client_broker
tests_test_client_broker_SOURCES = tests/client/test_client_broker.c
tests_test_client_broker_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests/testlib -I$(top_srcdir)/libmbclient
tests_test_client_broker_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(PTHREAD_CFLAGS)
tests_test_client_broker_LDADD = tests/testlib/libmbtest.la libmbclient/libmbclient.la $(CHECK_LIBS) $(PTHREAD_LIBS)
endif

# Real programs: the tools against a real mbserver, the library's exports.
TESTS += tests/client/mbtools.sh tests/client/exports.sh tests/client/manpages.sh \
	tests/client/header.sh
EXTRA_DIST += tests/client/mbtools.sh tests/client/exports.sh tests/client/manpages.sh \
	tests/client/header.sh
