#!/bin/sh
# A need for quota has one deadline (broker_timeout, plus reserve_timeout
# with request-then-reserve), its wait for another thread's call and the
# core's calls after a partial grant included.  Two threads short of
# quota at once wait for the broker no longer than one.  With the pool empty, thread a's RESERVE waits
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
[ "$1" -ge 2500 ] || fail "the first RESERVE waited $1 ms, not its 3 s"
[ "$2" -le 2500 ] || fail "the second RESERVE waited $2 ms after the first one's 3 s: \
its thread waited for the broker twice as long"

# One thread, one allocation: the REQUEST brings part of the need (the
# pool's 4 MiB), the RESERVE for the rest waits its 3 s and fails.  The
# part brought counts as progress and the core asks again, still within
# the need's one deadline, now passed: no second REQUEST and RESERVE.
# Before, each call of the hook had a deadline of its own, and this
# malloc asked twice as long.
kill -CONT "$HOLD"; kill "$HOLD"; wait "$HOLD" 2>/dev/null
wait_until "the pool back" sh -c "\"$top_builddir/libmbclient/mbstatus\" | head -n 1 | grep -q '^pool 4096 of'"
"$MBUTIL" --kind bidi hold 12M 120s >"$TEST_TMP/hold2.out" 2>&1 &
HOLD=$!
at_exit "kill -CONT $HOLD 2>/dev/null; kill $HOLD 2>/dev/null"
wait_until "the second holder" grep -q holding "$TEST_TMP/hold2.out"
kill -STOP "$HOLD"
n0=$(grep -c 'RESERVE .* pages after' "$TEST_TMP/mbserver.log")
GMALLOC_BROKER=on GMALLOC_LIMIT=64M GMALLOC_BROKER_TIMEOUT=500ms \
GMALLOC_URGENCY=request-then-reserve GMALLOC_RESERVE_TIMEOUT=3s \
	pre "$FAMILY" table 8 8 >"$TEST_TMP/out2" 2>"$TEST_TMP/err2" ||
	{ cat "$TEST_TMP/out2" "$TEST_TMP/err2"; fail "table failed"; }
# (gm_family table asks twice: the second malloc is a need of its own)
grep -q "table refused errno 12 twice" "$TEST_TMP/out2" || { cat "$TEST_TMP/out2"; fail "the 8 MiB table was not refused"; }
n1=$(grep -c 'RESERVE .* pages after' "$TEST_TMP/mbserver.log")
grep 'REQUEST .* pages after\|RESERVE .* pages after' "$TEST_TMP/mbserver.log" | tail -n 4
[ $((n1 - n0)) -eq 2 ] || fail "$((n1 - n0)) RESERVEs for two allocations: each call of the hook had a deadline of its own"
