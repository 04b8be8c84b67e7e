#!/bin/sh
# A preloaded program under valgrind's memcheck: gmalloc tells memcheck
# about its blocks, so a leak is reported as it would be with glibc, and
# a clean run has no errors.  By default memcheck would replace gmalloc's
# malloc with its own; somalloc=nouserintercepts keeps gmalloc in place
# (gm_family checks that every block it gets is gmalloc's).
. "$top_srcdir/tests/gmalloc/gmlib.sh"
need_cmd valgrind

vg() {
	LD_PRELOAD="$GMLIB" valgrind --leak-check=full --show-leak-kinds=definite \
		--errors-for-leak-kinds=definite --error-exitcode=99 \
		--soname-synonyms=somalloc=nouserintercepts "$@"
}

vg "$FAMILY" churn 8 >"$TEST_TMP/out" 2>"$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "churn under memcheck reported errors"; }
grep -qx 'churn done' "$TEST_TMP/out" || fail "churn did not finish"
grep -q 'ERROR SUMMARY: 0 errors' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "errors under memcheck"; }

# Trailers (guard words and the stack kept in every block) and the
# call-site report: no errors either.
GMALLOC_BACKTRACE_DEPTH=4 GMALLOC_GUARD=on vg "$FAMILY" sites >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "sites with backtrace_depth 4 under memcheck reported errors"; }
grep -q '^  100000 bytes in 1000 blocks$' "$TEST_TMP/out" || { cat "$TEST_TMP/out"; fail "no call-site report under memcheck"; }
grep -q 'ERROR SUMMARY: 0 errors' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "errors under memcheck (backtrace_depth 4)"; }

if vg "$FAMILY" leak >"$TEST_TMP/out" 2>"$TEST_TMP/err"; then
	cat "$TEST_TMP/err"; fail "the leak was not reported"
fi
grep -q 'definitely lost: 1,234 bytes in 1 blocks' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "leak of 1234 bytes not found"; }

# A write one byte past a block is an invalid write.
if vg "$FAMILY" overflow >"$TEST_TMP/out" 2>"$TEST_TMP/err"; then
	cat "$TEST_TMP/err"; fail "the overrun was not reported"
fi
grep -q 'Invalid write of size 1' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "no invalid write"; }
grep -q '0 bytes after a block of size 40 alloc' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "the block of 40 bytes not named"; }
echo "valgrind ok"
