# tests of anrmalloc
EXTRA_DIST += tests/anrmalloc/anrmalloc_broker.sh tests/anrmalloc/anrmalloc_symbols.sh
if HAVE_CHECK
check_PROGRAMS += tests/anrmalloc/test_anrmalloc tests/anrmalloc/test_anrmalloc_broker \
	tests/anrmalloc/test_anrmalloc_defects tests/anrmalloc/test_anrmalloc_pi \
	tests/anrmalloc/test_anrmalloc_records tests/anrmalloc/test_anrmalloc_prt
UNIT_TESTS += tests/anrmalloc/test_anrmalloc tests/anrmalloc/test_anrmalloc_defects \
	tests/anrmalloc/test_anrmalloc_records
TESTS += tests/anrmalloc/test_anrmalloc tests/anrmalloc/test_anrmalloc_defects \
	tests/anrmalloc/test_anrmalloc_records \
	tests/anrmalloc/test_anrmalloc_pi tests/anrmalloc/test_anrmalloc_prt \
	tests/anrmalloc/anrmalloc_broker.sh \
	tests/anrmalloc/anrmalloc_symbols.sh

tests_anrmalloc_test_anrmalloc_SOURCES = tests/anrmalloc/test_anrmalloc.c \
	tests/testlib/mbt_anrheap.h tests/testlib/mbt_threads.h
tests_anrmalloc_test_anrmalloc_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
tests_anrmalloc_test_anrmalloc_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(PTHREAD_CFLAGS)
tests_anrmalloc_test_anrmalloc_LDADD = anrmalloc/libanrmalloc_impl.la \
	common/libmbcommon.la $(CHECK_LIBS) $(PTHREAD_LIBS) -ldl

# Regression tests of the layer's defects, and priority inheritance (needs
# SCHED_FIFO, else skipped): both on the implementation library.
ANRMALLOC_UNIT_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
ANRMALLOC_UNIT_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(PTHREAD_CFLAGS)
ANRMALLOC_UNIT_LDADD = anrmalloc/libanrmalloc_impl.la common/libmbcommon.la \
	$(CHECK_LIBS) $(PTHREAD_LIBS)
tests_anrmalloc_test_anrmalloc_defects_SOURCES = tests/anrmalloc/test_anrmalloc_defects.c \
	tests/testlib/mbt_anrheap.h tests/testlib/mbt_check.h
tests_anrmalloc_test_anrmalloc_defects_CPPFLAGS = $(ANRMALLOC_UNIT_CPPFLAGS)
tests_anrmalloc_test_anrmalloc_defects_CFLAGS = $(ANRMALLOC_UNIT_CFLAGS)
tests_anrmalloc_test_anrmalloc_defects_LDADD = $(ANRMALLOC_UNIT_LDADD)
tests_anrmalloc_test_anrmalloc_pi_SOURCES = tests/anrmalloc/test_anrmalloc_pi.c \
	tests/testlib/mbt_check.h
tests_anrmalloc_test_anrmalloc_pi_CPPFLAGS = $(ANRMALLOC_UNIT_CPPFLAGS)
tests_anrmalloc_test_anrmalloc_pi_CFLAGS = $(ANRMALLOC_UNIT_CFLAGS)
tests_anrmalloc_test_anrmalloc_pi_LDADD = $(ANRMALLOC_UNIT_LDADD)
# page_return_thread: a seccomp filter proves the calls make no madvise
# (not a unit test: no sanitizer or valgrind under the filter).
tests_anrmalloc_test_anrmalloc_prt_SOURCES = tests/anrmalloc/test_anrmalloc_prt.c \
	tests/testlib/mbt_check.h tests/testlib/mbt_seccomp.c tests/testlib/mbt_seccomp.h
tests_anrmalloc_test_anrmalloc_prt_CPPFLAGS = $(ANRMALLOC_UNIT_CPPFLAGS)
tests_anrmalloc_test_anrmalloc_prt_CFLAGS = $(ANRMALLOC_UNIT_CFLAGS)
tests_anrmalloc_test_anrmalloc_prt_LDADD = $(ANRMALLOC_UNIT_LDADD)
# The side table and the plain path (counts lock calls: needs -ldl).
tests_anrmalloc_test_anrmalloc_records_SOURCES = tests/anrmalloc/test_anrmalloc_records.c \
	tests/testlib/mbt_check.h
tests_anrmalloc_test_anrmalloc_records_CPPFLAGS = $(ANRMALLOC_UNIT_CPPFLAGS)
tests_anrmalloc_test_anrmalloc_records_CFLAGS = $(ANRMALLOC_UNIT_CFLAGS)
tests_anrmalloc_test_anrmalloc_records_LDADD = $(ANRMALLOC_UNIT_LDADD) -ldl

tests_anrmalloc_test_anrmalloc_broker_SOURCES = tests/anrmalloc/test_anrmalloc_broker.c \
	tests/testlib/mbt_threads.h
tests_anrmalloc_test_anrmalloc_broker_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
tests_anrmalloc_test_anrmalloc_broker_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(PTHREAD_CFLAGS)
tests_anrmalloc_test_anrmalloc_broker_LDADD = anrmalloc/libanrmalloc.la \
	libmbclient/libmbclient.la common/libmbcommon.la $(CHECK_LIBS) $(PTHREAD_LIBS)
endif
