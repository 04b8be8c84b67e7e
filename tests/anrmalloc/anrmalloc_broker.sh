#!/bin/sh
# anr_malloc with a real mbserver.  First two processes: the cache_holder
# demo fills most of the pool, mbutil (a plain sink) reserves more than is
# left, the broker makes the holder give back, the sink is served.  Then
# the Check suite: give-back served by the helper thread and by the
# application's loop, refused quota, initial quota, and last a lost broker.
. "$top_srcdir/tests/lib.sh"

MBSERVER="$top_builddir/mbserver/mbserver"
HOLDER="$top_builddir/anrmalloc/examples/cache_holder"
PROG="$top_builddir/tests/anrmalloc/test_anrmalloc_broker"
MBUTIL="$top_builddir/libmbclient/mbutil"
[ -x "$MBSERVER" ] || skip "mbserver is not built"
[ -x "$HOLDER" ] || skip "cache_holder is not built"
[ -x "$PROG" ] || skip "test_anrmalloc_broker is not built"
[ -x "$MBUTIL" ] || skip "mbutil is not built"

mk_tmpdir
start_broker 32M
ANRM_TOTAL=32M; export ANRM_TOTAL

"$HOLDER" --cache 24M --object 256K --seconds 30 --name holder \
	>"$TEST_TMP/holder.log" 2>&1 &
HOLDER_PID=$!
at_exit "kill $HOLDER_PID 2>/dev/null; wait $HOLDER_PID 2>/dev/null"
i=0
until grep -q "cache filled" "$TEST_TMP/holder.log"; do
	i=$((i + 1))
	[ $i -gt 200 ] && { cat "$TEST_TMP/holder.log"; fail "holder did not fill its cache"; }
	kill -0 $HOLDER_PID 2>/dev/null || { cat "$TEST_TMP/holder.log"; fail "holder exited"; }
	sleep 0.05
done

# 24M of 32M are held: 16M is more than the pool has.
"$MBUTIL" --timeout 10000 reserve 16M >"$TEST_TMP/sink.log" 2>&1 || {
	cat "$TEST_TMP/sink.log" "$TEST_TMP/holder.log" "$TEST_TMP/mbserver.log"
	fail "the sink was not served"
}
cat "$TEST_TMP/sink.log"
grep -q "granted 4096 of 4096 pages" "$TEST_TMP/sink.log" || fail "sink: $(cat "$TEST_TMP/sink.log")"
grep -q "evicted .* for the broker" "$TEST_TMP/holder.log" || {
	cat "$TEST_TMP/holder.log"; fail "the holder did not give back"
}

kill -TERM $HOLDER_PID
wait $HOLDER_PID
rc=$?
cat "$TEST_TMP/holder.log"
[ $rc -eq 0 ] || fail "holder exited with $rc"
grep -q "give-back requests" "$TEST_TMP/holder.log" || fail "no summary from the holder"
echo "PASS: give-back between two processes"

# The Check suite; its last test kills this broker on purpose.
ANRM_BROKER_PID=$BROKER_PID; export ANRM_BROKER_PID
"$PROG" || { cat "$TEST_TMP/mbserver.log"; fail "broker suite"; }
