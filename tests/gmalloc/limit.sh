#!/bin/sh
# The fixed limit: on_limit=null returns NULL with ENOMEM near the limit,
# on_limit=abort prints the report and aborts.
. "$top_srcdir/tests/gmalloc/gmlib.sh"

GMALLOC_LIMIT=32M pre "$FAMILY" fill >"$TEST_TMP/out" 2>"$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "fill failed"; }
read -r _ mib _ _ err <"$TEST_TMP/out"
[ "$err" = 12 ] || fail "errno $err, expected ENOMEM (12): $(cat "$TEST_TMP/out")"
[ "$mib" -ge 24 ] && [ "$mib" -le 32 ] || fail "allocated $mib MiB under a 32 MiB limit"

if GMALLOC_LIMIT=32M GMALLOC_ON_LIMIT=abort pre "$FAMILY" fill >"$TEST_TMP/out" 2>"$TEST_TMP/err"; then
	fail "on_limit=abort did not abort"
fi
grep -q 'out of memory at the limit' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "no limit message"; }
check_report "$TEST_TMP/err"
grep -q '^allocated' "$TEST_TMP/out" && fail "fill returned instead of aborting"

# A request the reservation could never hold is not "the limit": NULL.
GMALLOC_LIMIT=256M GMALLOC_ON_LIMIT=abort pre "$FAMILY" family >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "family under on_limit=abort failed"; }
echo "limit ok: $mib MiB"
