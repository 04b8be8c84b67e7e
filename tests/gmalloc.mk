# tests of gmalloc: the config table (unit test), then real programs run
# unmodified under LD_PRELOAD=libgmalloc.so (integration tests).
if HAVE_CHECK
check_PROGRAMS += tests/test_gmalloc_config
UNIT_TESTS += tests/test_gmalloc_config
TESTS += tests/test_gmalloc_config
tests_test_gmalloc_config_SOURCES = tests/gmalloc/test_config.c gmalloc/gm_config.c
tests_test_gmalloc_config_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/gmalloc \
	-I$(top_srcdir)/anrcore -I$(top_srcdir)/libmbclient
tests_test_gmalloc_config_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_test_gmalloc_config_LDADD = common/libmbcommon.la $(CHECK_LIBS)
endif

# Linked against glibc only: the shell tests preload libgmalloc.so into it.
check_PROGRAMS += tests/gmalloc/gm_family
tests_gmalloc_gm_family_SOURCES = tests/gmalloc/gm_family.c tests/testlib/mbt_seccomp.c \
	tests/testlib/mbt_seccomp.h tests/testlib/mbt_threads.h
tests_gmalloc_gm_family_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests/testlib
tests_gmalloc_gm_family_LDADD = -ldl $(PTHREAD_LIBS)
tests_gmalloc_gm_family_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS) -fno-builtin

# Linked with libgmalloc and libanrmalloc, without libtool's wrapper
# (-no-install), so that setuid.sh can make a setuid copy of it.
check_PROGRAMS += tests/gmalloc/gm_secure
tests_gmalloc_gm_secure_SOURCES = tests/gmalloc/gm_secure.c
tests_gmalloc_gm_secure_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
tests_gmalloc_gm_secure_LDADD = gmalloc/libgmalloc.la anrmalloc/libanrmalloc.la
tests_gmalloc_gm_secure_LDFLAGS = -no-install

GMALLOC_SH_TESTS = \
	tests/gmalloc/exports.sh \
	tests/gmalloc/family.sh \
	tests/gmalloc/nomap.sh \
	tests/gmalloc/page_return_thread.sh \
	tests/gmalloc/config.sh \
	tests/gmalloc/limit.sh \
	tests/gmalloc/limit_counts.sh \
	tests/gmalloc/rlimit.sh \
	tests/gmalloc/guard.sh \
	tests/gmalloc/canary.sh \
	tests/gmalloc/setuid.sh \
	tests/gmalloc/backtrace.sh \
	tests/gmalloc/python.sh \
	tests/gmalloc/sqlite.sh \
	tests/gmalloc/gcc.sh \
	tests/gmalloc/git.sh \
	tests/gmalloc/stress.sh \
	tests/gmalloc/broker.sh \
	tests/gmalloc/broker_stall.sh \
	tests/gmalloc/broker_threads.sh \
	tests/gmalloc/lowmem.sh \
	tests/gmalloc/valgrind.sh
TESTS += $(GMALLOC_SH_TESTS)
EXTRA_DIST += $(GMALLOC_SH_TESTS) tests/gmalloc/gmlib.sh

