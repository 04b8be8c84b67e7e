#!/bin/sh
# Valgrind sees the blocks of an anrcore heap: an overrun, a read after
# free and a leak in tests/anrcore_vgdemo are reported, and a clean run of
# the same program reports nothing.
. "$top_srcdir/tests/lib.sh"
command -v valgrind >/dev/null || skip "valgrind is not installed"
grep -q HAVE_VALGRIND_MEMCHECK_H "$top_builddir/config.h" || skip "built without valgrind/memcheck.h"
mk_tmpdir
prog="$top_builddir/tests/anrcore_vgdemo"
"$prog" probe || skip "built with a sanitizer"
vg() {
	"$top_builddir/libtool" --mode=execute valgrind --leak-check=full \
		--show-leak-kinds=definite "$@"
}

vg "$prog" >"$TEST_TMP/out" 2>"$TEST_TMP/bad.log"
for want in "Invalid write of size 1" "Invalid read of size 1" \
	    "200 bytes in 1 blocks are definitely lost"; do
	grep -q "$want" "$TEST_TMP/bad.log" || { cat "$TEST_TMP/bad.log"; fail "valgrind did not report: $want"; }
done

vg --error-exitcode=99 --errors-for-leak-kinds=definite "$prog" clean \
	>"$TEST_TMP/out" 2>"$TEST_TMP/clean.log" || { cat "$TEST_TMP/clean.log"; fail "clean run reported errors"; }
grep -q "ERROR SUMMARY: 0 errors" "$TEST_TMP/clean.log" || { cat "$TEST_TMP/clean.log"; fail "clean run not clean"; }
[ "$(cat "$TEST_TMP/out")" = 1 ] || fail "realloc lost the contents"
echo "PASS: memcheck sees overrun, use after free and leak of heap blocks"
