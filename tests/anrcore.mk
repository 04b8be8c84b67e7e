# tests of anrcore
if HAVE_CHECK
check_PROGRAMS += tests/test_anrcore
UNIT_TESTS += tests/test_anrcore
TESTS += tests/test_anrcore
tests_test_anrcore_SOURCES = tests/anrcore/test_anrcore.c tests/anrcore/fastcheck.h
tests_test_anrcore_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/anrcore
tests_test_anrcore_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(PTHREAD_CFLAGS)
tests_test_anrcore_LDADD = anrcore/libanrcore.la $(CHECK_LIBS) $(PTHREAD_LIBS) -ldl
endif

# The no-map-change proof: a seccomp filter that kills on mmap and friends
# around a two-thread workload.  A plain program (no Check: its runner
# allocates), in TESTS only: sanitizer and valgrind runtimes map memory.
check_PROGRAMS += tests/anrcore_nomap
TESTS += tests/anrcore_nomap
tests_anrcore_nomap_SOURCES = tests/anrcore/nomap.c tests/testlib/mbt_seccomp.c \
	tests/testlib/mbt_seccomp.h
tests_anrcore_nomap_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/anrcore -I$(top_srcdir)/tests/testlib
tests_anrcore_nomap_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS)
tests_anrcore_nomap_LDADD = anrcore/libanrcore.la $(PTHREAD_LIBS)

# Valgrind sees the heap's blocks as it sees glibc's (runs valgrind itself).
check_PROGRAMS += tests/anrcore_vgdemo
tests_anrcore_vgdemo_SOURCES = tests/anrcore/vgdemo.c
tests_anrcore_vgdemo_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/anrcore
tests_anrcore_vgdemo_LDADD = anrcore/libanrcore.la
TESTS += tests/anrcore_valgrind.sh
EXTRA_DIST += tests/anrcore_valgrind.sh
