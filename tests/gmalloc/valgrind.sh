#!/bin/sh
# A preloaded program under valgrind's memcheck: gmalloc tells memcheck
# about its blocks, so a leak is reported as it would be with glibc, and
# a clean run has no errors.
. "$top_srcdir/tests/gmalloc/gmlib.sh"
need_cmd valgrind

vg() {
	LD_PRELOAD="$GMLIB" valgrind --leak-check=full --show-leak-kinds=definite \
		--errors-for-leak-kinds=definite --error-exitcode=99 "$@"
}

vg "$FAMILY" churn 8 >"$TEST_TMP/out" 2>"$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "churn under memcheck reported errors"; }
grep -qx 'churn done' "$TEST_TMP/out" || fail "churn did not finish"
grep -q 'ERROR SUMMARY: 0 errors' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "errors under memcheck"; }

if vg "$FAMILY" leak >"$TEST_TMP/out" 2>"$TEST_TMP/err"; then
	cat "$TEST_TMP/err"; fail "the leak was not reported"
fi
grep -q 'definitely lost: 1,234 bytes in 1 blocks' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "leak of 1234 bytes not found"; }
echo "valgrind ok"
