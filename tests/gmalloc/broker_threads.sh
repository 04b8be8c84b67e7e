#!/bin/sh
# Two threads short of quota at once wait for the broker no longer than
# one: a need for quota has one deadline (broker_timeout, plus
# reserve_timeout with request-then-reserve), its wait for the other
# thread's call included.  With the pool empty, thread a's RESERVE waits
# its whole reserve_timeout (3 s) and fails; thread b, which began 1.5 s
# later and waited for a's call, asks only for what is left of its own
# time.  Before, b's RESERVE waited a full 3 s of its own after a's, so
# the second thread waited twice as long as the first.  The figures
# asserted are the broker's (how long each RESERVE waited there): no
# timing of the test's own.
. "$top_srcdir/tests/gmalloc/gmlib.sh"

MBUTIL="$top_builddir/libmbclient/mbutil"
[ -x "$MBUTIL" ] || skip "mbutil not built"

# A stopped bidi client holds 4 MiB: a RESERVE waits for its share (until
# share_deadline, long after the test) or its own deadline.
start_broker 16M -o share_deadline=60s
"$MBUTIL" --kind bidi hold 4M 120s >"$TEST_TMP/hold.out" 2>&1 &
HOLD=$!
at_exit "kill -CONT $HOLD 2>/dev/null; kill $HOLD 2>/dev/null"
wait_until "the holder" grep -q holding "$TEST_TMP/hold.out"
kill -STOP "$HOLD"
# 11 MiB kept takes the rest of the pool (quota comes in 1 MiB steps).
GMALLOC_BROKER=on GMALLOC_LIMIT=64M GMALLOC_BROKER_TIMEOUT=500ms \
GMALLOC_URGENCY=request-then-reserve GMALLOC_RESERVE_TIMEOUT=3s GMALLOC_REPORT_AT_EXIT=on \
	pre "$FAMILY" two_needs 11 2 1500 >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	{ cat "$TEST_TMP/out" "$TEST_TMP/err"; fail "two_needs failed"; }
[ "$(cat "$TEST_TMP/out")" = "a null b null" ] ||
	{ cat "$TEST_TMP/out" "$TEST_TMP/err"; fail "expected both allocations refused"; }
grep 'RESERVE .* pages after [0-9]* ms' "$TEST_TMP/mbserver.log" >"$TEST_TMP/reserves"
cat "$TEST_TMP/reserves"
[ "$(wc -l <"$TEST_TMP/reserves")" -eq 2 ] || { cat "$TEST_TMP/mbserver.log"; fail "expected two RESERVEs"; }
set -- $(sed -n 's/.* after \([0-9]*\) ms.*/\1/p' "$TEST_TMP/reserves")
[ "$1" -ge 2900 ] || fail "the first RESERVE waited $1 ms, not its 3 s"
[ "$2" -le 2500 ] || fail "the second RESERVE waited $2 ms after the first one's 3 s: \
its thread waited for the broker twice as long"
