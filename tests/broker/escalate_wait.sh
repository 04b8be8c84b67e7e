#!/bin/sh
# Escalation for a privileged RESERVE that keeps waiting: the RESERVE comes
# as soon as deny begins, and the broker is then late for its device polls
# (stopped for longer than escalate_after).  Deny lasts and the RESERVE
# still waits, so the escalation command runs.  Before, the RESERVE counted
# at its admission only: by the first poll that found deny old enough it
# was "too old", and nothing escalated however long it waited.
. "$top_srcdir/tests/lib.sh"
MBUTIL="$top_builddir/libmbclient/mbutil"
[ -x "$MBUTIL" ] || skip "mbutil not built"
mk_tmpdir
MI="$TEST_TMP/meminfo"
LOG="$TEST_TMP/mbserver.log"
WAIT_LOG=$LOG
fake_meminfo "$MI" 100
# The caller is privileged (root, or listed); the stopped holder makes the
# RESERVE wait for its share until share_deadline, long after the stall.
start_broker 64M -o device=meminfo -o device_meminfo="$MI" -o device_poll=20ms \
	-o deny_high=80% -o deny_low=70% -o privileged_uids="$(id -u)" \
	-o share_deadline=30s -o escalate_after=3s \
	-o escalate_command="echo \"\$MB_REASON\" >$TEST_TMP/escalated"
"$MBUTIL" --kind bidi hold 60M 120s >"$TEST_TMP/hold.out" 2>&1 &
HOLD=$!
at_exit "kill -CONT $HOLD 2>/dev/null; kill $HOLD 2>/dev/null"
wait_until "the holder" grep -q holding "$TEST_TMP/hold.out"
kill -STOP "$HOLD"
fake_meminfo "$MI" 900
wait_until "deny" mem_state_is deny
"$MBUTIL" --timeout 60000 reserve 32M >"$TEST_TMP/reserve.out" 2>&1 &
RES=$!
at_exit "kill $RES 2>/dev/null"
wait_until "the RESERVE's admission" grep -q "decision: deny: privileged RESERVE of 8192 pages" "$LOG"
kill -STOP "$BROKER_PID"
at_exit "kill -CONT $BROKER_PID 2>/dev/null"
sleep 4 # the broker misses its polls for longer than escalate_after
kill -CONT "$BROKER_PID"
wait_until "escalation" test -s "$TEST_TMP/escalated"
grep -q "a privileged RESERVE could not be met" "$TEST_TMP/escalated" ||
	fail "escalation reason: $(cat "$TEST_TMP/escalated")"
kill -0 "$RES" 2>/dev/null || fail "the RESERVE ended: $(cat "$TEST_TMP/reserve.out")"
echo PASS
