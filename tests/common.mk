# tests of the shared internal library
if HAVE_CHECK
check_PROGRAMS += tests/test_common
UNIT_TESTS += tests/test_common
TESTS += tests/test_common
tests_test_common_SOURCES = tests/common/test_common.c
tests_test_common_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_test_common_LDADD = common/libmbcommon.la $(CHECK_LIBS) $(PTHREAD_LIBS)
endif
