# tests: each component keeps its test rules in tests/<component>.mk.
# UNIT_TESTS are the Check programs that also run under ASan+UBSan and
# valgrind (check-unit, check-valgrind); TESTS is everything make check runs.
EXTRA_DIST += tests/valgrind.sh tests/lib.sh tests/valgrind.supp

# Starting a real mbserver from a C test: one helper for every suite.
if HAVE_CHECK
check_LTLIBRARIES += tests/testlib/libmbtest.la
tests_testlib_libmbtest_la_SOURCES = tests/testlib/mbt_server.c tests/testlib/mbt_server.h
endif

include tests/common.mk
include tests/broker.mk
include tests/client.mk
include tests/anrcore.mk
include tests/gmalloc.mk
include tests/anrmalloc.mk
include tests/trackfs.mk
include tests/device.mk
include tests/chaos.mk

check-unit:
	$(MAKE) $(AM_MAKEFLAGS) check TESTS="$(UNIT_TESTS)"

check-valgrind:
	$(MAKE) $(AM_MAKEFLAGS) check TESTS="$(UNIT_TESTS)" \
		LOG_COMPILER="$(abs_top_srcdir)/tests/valgrind.sh"

.PHONY: check-unit check-valgrind
