#!/bin/sh
# Every replaced function in a normally linked program under LD_PRELOAD:
# alignment, contents, overflow and alignment errors, glibc paths (strdup,
# stdio, __libc_*) all served by gmalloc, threads and fork.
. "$top_srcdir/tests/gmalloc/gmlib.sh"

pre "$FAMILY" family >"$TEST_TMP/out" 2>"$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "gm_family failed"; }
grep -qx 'family ok' "$TEST_TMP/out" || fail "no success line"
# malloc_stats wrote the report to stderr; nothing else may be there.
check_report "$TEST_TMP/err"

# The same with trash fill and every block guarded.
GMALLOC_TRASH=on GMALLOC_GUARD=on pre "$FAMILY" family >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "gm_family failed with trash and guard"; }
grep -qx 'family ok' "$TEST_TMP/out" || fail "no success line (guard)"

# A free of a pointer gmalloc never made: one line and abort by default,
# a report with bad_free=report, silence with ignore; never glibc's free.
if pre "$FAMILY" badfree >"$TEST_TMP/out" 2>"$TEST_TMP/err"; then
	fail "bad free did not abort"
fi
grep -q '^gmalloc: ' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "bad free not reported"; }
GMALLOC_BAD_FREE=report pre "$FAMILY" badfree >"$TEST_TMP/out" 2>"$TEST_TMP/err" || fail "bad_free=report aborted"
grep -qx 'survived bad free' "$TEST_TMP/out" || fail "no survival line"
[ "$(wc -l <"$TEST_TMP/err")" -eq 1 ] || { cat "$TEST_TMP/err"; fail "expected one report line"; }
GMALLOC_BAD_FREE=ignore pre "$FAMILY" badfree >"$TEST_TMP/out" 2>"$TEST_TMP/err" || fail "bad_free=ignore aborted"
[ ! -s "$TEST_TMP/err" ] || { cat "$TEST_TMP/err"; fail "bad_free=ignore printed"; }
# A double free and a free inside a live block, of small blocks (the
# inlined fast path): one report line each, nothing written.
GMALLOC_BAD_FREE=report pre "$FAMILY" refree >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	{ cat "$TEST_TMP/out" "$TEST_TMP/err"; fail "refree failed"; }
grep -qx 'survived refree' "$TEST_TMP/out" || fail "no refree survival line"
[ "$(wc -l <"$TEST_TMP/err")" -eq 2 ] || { cat "$TEST_TMP/err"; fail "expected two report lines"; }
echo "family ok"
