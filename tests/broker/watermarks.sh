#!/bin/sh
# The device view and the watermarks of a real mbserver, driven through a
# fake meminfo: crossing and leaving each mark (with the decay), the events
# subscribers get, the decision log, mbstatus, run-time marks, give-back
# asked with an amount and a deadline and checked against the client's
# private memory (an honest client and one that lies), escalation.
. "$top_srcdir/tests/lib.sh"
MBUTIL="$top_builddir/libmbclient/mbutil"
MBSTATUS="$top_builddir/libmbclient/mbstatus"
GB="$top_builddir/tests/broker/gb_client"
mk_tmpdir
MI="$TEST_TMP/meminfo"
LOG="$TEST_TMP/mbserver.log"
WAIT_LOG=$LOG

used_is() { "$MBUTIL" memstate | grep -q "^device: *$(($1 * 1048576)) of"; }
logged() { grep -q -- "$1" "$LOG"; }

fake_meminfo "$MI" 100
PSI="$TEST_TMP/pressure"
pressure() { printf 'some avg10=%s avg60=0.00 avg300=0.00 total=1\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n' "$1" >"$PSI"; }
pressure 0.00
start_broker 256M -o device=meminfo -o device_meminfo="$MI" -o device_poll=20ms \
	-o notify_high=50% -o notify_low=40% -o deny_high=80% -o deny_low=70% \
	-o share_deadline=1s -o giveback_retry=30s -o audit_interval=100ms \
	-o escalate_command="echo \"\$MB_REASON\" >$TEST_TMP/escalated" -o escalate_after=300ms \
	-o escalate_signal=TERM -o early_horizon=3s -o rate_window=200ms \
	-o device_psi="$PSI" -o psi_notify=20%
wait_until "the first sample" used_is 100
mem_state_is normal || fail "not normal at 100 MiB"

"$MBUTIL" events 60s >"$TEST_TMP/events" &
EV=$!
at_exit "kill $EV 2>/dev/null"
wait_until "the subscription" grep -q listening "$TEST_TMP/events"

# Notify at 50%, with the decay: still notify between the marks.
fake_meminfo "$MI" 600
wait_until "notify" mem_state_is notify
wait_until "the notify event" grep -q "event: mem-notify" "$TEST_TMP/events"
logged "decision: normal -> notify: device uses 600.0 MiB of 1.0 GiB (mark 512.0 MiB, lent 0 B, psi some 0.00%)" ||
	fail "no decision line for notify"
fake_meminfo "$MI" 450
wait_until "a sample at 450 MiB" used_is 450
mem_state_is notify || fail "left notify above the low mark"
fake_meminfo "$MI" 400
wait_until "normal" mem_state_is normal
wait_until "the ok event" grep -q "event: mem-ok" "$TEST_TMP/events"

# Deny at 80%: a root client is still served; the state shows everywhere.
fake_meminfo "$MI" 900
wait_until "deny" mem_state_is deny
wait_until "the deny event" grep -q "event: mem-deny" "$TEST_TMP/events"
"$MBUTIL" request 1M >/dev/null || fail "root refused in deny state"
"$MBSTATUS" | grep -q "^device deny (meminfo): 900.0 MiB used of 1.0 GiB" || fail "mbstatus: $("$MBSTATUS")"
"$MBSTATUS" --json | grep -q '"device":{"state":"deny","source":"meminfo","total":1073741824,"used":943718400' ||
	fail "mbstatus --json: $("$MBSTATUS" --json)"
# The pool follows the device: 1 GiB less 900 MiB used outside is 124 MiB.
"$MBUTIL" memstate | grep -q "^lendable: *31744 pages" || fail "lendable: $("$MBUTIL" memstate)"

# Escalation: deny lasts and a privileged RESERVE cannot be met.  Of two
# clients, only the one registered as expendable may be signalled.
"$MBUTIL" --kind bidi hold 2M 60s >/dev/null 2>&1 &
KEEP=$!
at_exit "kill $KEEP 2>/dev/null"
"$MBUTIL" --expendable hold 1M 60s >/dev/null 2>&1 &
EXP=$!
at_exit "kill $EXP 2>/dev/null"
holds() { "$MBSTATUS" --json | grep -q "\"pid\":$1,[^}]*\"balance\":$2,"; }
wait_until "the expendable holder" holds "$EXP" 256
wait_until "the other holder" holds "$KEEP" 512
gone() { ! kill -0 "$EXP" 2>/dev/null; }
# The bidi holder is stopped: the RESERVE waits for its answer until
# share_deadline, over many device polls, holding the pool meanwhile; pages
# lent but not used must not make the device look roomier (regression: the
# pool grew by what the RESERVE held and fed it).
kill -STOP "$KEEP"
"$MBUTIL" reserve 200M >/dev/null 2>&1 && { kill -CONT "$KEEP"; cat "$LOG"; fail "a reserve past the device was granted"; }
kill -CONT "$KEEP"
"$MBUTIL" memstate | grep -q "^lendable: *31744 pages" || fail "lendable after the reserve: $("$MBUTIL" memstate)"
wait_until "escalation" test -s "$TEST_TMP/escalated"
grep -q "^deny for [0-9]* ms: device uses 900.0 MiB of 1.0 GiB (deny_high 819.1 MiB), a privileged RESERVE could not be met" \
	"$TEST_TMP/escalated" || fail "escalation reason: $(cat "$TEST_TMP/escalated")"
logged "decision: escalation: running 'echo" || fail "escalation not logged"
wait_until "the expendable client to go" gone
logged "decision: escalation: signal 15 to client [0-9]* (mbutil, pid $EXP) holding 256 pages, registered as expendable: deny for" ||
	fail "signal not logged"
kill -0 "$KEEP" 2>/dev/null || fail "a client that is not expendable was signalled"
kill "$KEEP"

# Run-time marks: deny moves above the device figure (both marks: under
# deny_low alone the decay would keep deny).
"$MBUTIL" mark deny_high 95% >/dev/null || fail "mark deny_high"
mem_state_is deny || fail "deny left above deny_low"
"$MBUTIL" mark deny_low 90% >/dev/null || fail "mark deny_low"
wait_until "notify after the mark moved" mem_state_is notify
logged "decision: deny_high set to 95% by uid 0" || fail "mark change not logged"
"$MBUTIL" mark deny_high 105% | grep -q "^deny_high *1127428915\$" || fail "a mark above 100%"
"$MBUTIL" mark notify_high lots >/dev/null 2>&1; [ $? = 2 ] || fail "a bad mark value was accepted"
fake_meminfo "$MI" 100
wait_until "normal again" mem_state_is normal

# Give-back with an amount, a deadline and a check.  crossing MODE: a
# bidi client holding 16 MiB, then notify; GB_PID is the client, $CHECK
# the check's log line.
crossing() {
	"$GB" "$1" 16M 60 >"$TEST_TMP/$1" 2>&1 &
	GB_PID=$!
	at_exit "kill $GB_PID 2>/dev/null"
	wait_until "the $1 client" grep -q ready "$TEST_TMP/$1"
	fake_meminfo "$MI" 600
	wait_until "the $1 client's check" logged "give-back check: client [0-9]* ($1, pid $GB_PID) said it gave 4096 of 4096 pages"
	CHECK=$(grep "give-back check: client [0-9]* ($1" "$LOG" | tail -n 1)
}
crossing honest
logged "decision: give-back asked: client [0-9]* (honest, pid [0-9]*) holds 4096 pages, asked 4096 pages within 1000 ms" ||
	fail "no give-back line with amount and deadline"
case $CHECK in *": honoured") ;; *) fail "honest client not honoured: $CHECK" ;; esac
kill $GB_PID
fake_meminfo "$MI" 100
wait_until "normal again" mem_state_is normal

crossing liar
case $CHECK in *"NOT honoured"*) ;; *) fail "the liar passed the check: $CHECK" ;; esac
"$MBSTATUS" | grep " liar " | grep -q "DISHONOURED" || fail "liar not flagged: $("$MBSTATUS")"
"$MBSTATUS" --json | grep -q '"command":"liar".*"dishonoured":true' || fail "liar not flagged in JSON"
kill $GB_PID

# Early warning: 200 MiB lent at once puts deny (719 MiB away) under a
# second at that rate, inside the 3 s horizon: notify starts before any mark.
fake_meminfo "$MI" 100
wait_until "normal before the burst" mem_state_is normal
"$MBUTIL" hold 200M 3s >/dev/null 2>&1 &
HOLD=$!
at_exit "kill $HOLD 2>/dev/null"
wait_until "the early warning event" grep -q "event: mem-early" "$TEST_TMP/events"
logged "decision: normal -> notify (early): device uses 100.0 MiB" || fail "no early notify decision"
logged "decision: early warning: deny in about [0-9]* ms at [0-9]* pages/s (horizon 3000 ms)" ||
	fail "no estimate in the log"
kill $HOLD
wait_until "normal after the burst" mem_state_is normal

# Stall, where the kernel reports it, is an extra signal for notify.
pressure 25.50
wait_until "notify on stall" mem_state_is notify
logged "decision: normal -> notify (stall): device uses 100.0 MiB of 1.0 GiB (mark 512.0 MiB, lent 0 B, psi some 25.50%)" ||
	fail "no stall decision: $(grep "decision: normal -> notify" "$LOG" | tail -n 1)"
pressure 1.00
wait_until "normal after the stall" mem_state_is normal
echo "ok"
