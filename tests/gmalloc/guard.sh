#!/bin/sh
# guard = on: a write one byte past a block is caught at free.
. "$top_srcdir/tests/gmalloc/gmlib.sh"

GMALLOC_GUARD=off pre "$FAMILY" overflow >"$TEST_TMP/out" 2>"$TEST_TMP/err" || fail "overflow without guard failed"
if GMALLOC_GUARD=on pre "$FAMILY" overflow >"$TEST_TMP/out" 2>"$TEST_TMP/err"; then
	fail "overflow not detected"
fi
grep -q 'guard words of block .* overwritten' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "no guard report"; }
echo "guard ok"
