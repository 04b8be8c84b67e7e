#!/bin/sh
# LOG_COMPILER for check-valgrind: runs one unit-test program under memcheck.
# Any error or any definite/indirect leak fails the test.  Check runs each
# test in a forked child by default; valgrind follows the children.
# Valgrind runs one thread at a time: tests whose threads wait for each
# other get fair scheduling and three times Check's timeout.
top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}
CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-3}; export CK_TIMEOUT_MULTIPLIER
exec "$top_builddir/libtool" --mode=execute valgrind \
	--quiet --fair-sched=yes --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
	--track-origins=yes --child-silent-after-fork=no \
	--suppressions="$top_srcdir/tests/valgrind.supp" "$@"
