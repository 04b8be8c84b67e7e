#!/bin/sh
# The trailer canary is keyed with a secret drawn per process: two
# processes get different secrets, and a trailer rewritten as a fixed
# constant XOR the address (what an overflow could forge without reading
# the heap) is caught at free.
. "$top_srcdir/tests/gmalloc/gmlib.sh"

for i in 1 2; do
	GMALLOC_GUARD=on pre "$FAMILY" canary >"$TEST_TMP/c$i" 2>"$TEST_TMP/err" ||
		{ cat "$TEST_TMP/err"; fail "canary run $i failed"; }
	grep -q '^canary secret [0-9a-f]\{16\}$' "$TEST_TMP/c$i" || fail "no secret printed: $(cat "$TEST_TMP/c$i")"
done
cmp -s "$TEST_TMP/c1" "$TEST_TMP/c2" && fail "two processes share the canary secret: $(cat "$TEST_TMP/c1")"

if GMALLOC_GUARD=on pre "$FAMILY" forge >"$TEST_TMP/out" 2>"$TEST_TMP/err"; then
	fail "forged trailer accepted: $(cat "$TEST_TMP/out")"
fi
grep -q 'guard words of block .* overwritten' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "no report of the forged trailer"; }
echo "canary ok: $(cat "$TEST_TMP/c1") / $(cat "$TEST_TMP/c2")"
