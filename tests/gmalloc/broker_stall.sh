#!/bin/sh
# A broker that stops answering never freezes a program under gmalloc: with
# mbserver SIGSTOPped in the middle of a run, a preloaded python3 gets no
# answer within broker_timeout, goes on under the fixed limit and finishes;
# once the broker runs again it reconnects by itself and declares (CLAIM)
# what it has resident.  A program started while the broker is stopped
# finishes too.  Each wait has a generous bound; no timing is asserted.
. "$top_srcdir/tests/gmalloc/gmlib.sh"
# The deadline this test is about (gmalloc's default).
GMALLOC_BROKER_TIMEOUT=250ms
need_cmd python3
MBSTATUS="$top_builddir/libmbclient/mbstatus"
[ -x "$MBSTATUS" ] || skip "mbstatus not built"

start_broker 512M
at_exit "kill -CONT $BROKER_PID 2>/dev/null"

cat >"$TEST_TMP/stall.py" <<'PY'
import os, sys, time
d = sys.argv[1]
def wait_for(name):
    while not os.path.exists(os.path.join(d, name)):
        time.sleep(0.02)
a = [bytearray(1 << 20) for _ in range(8)]
open(os.path.join(d, "ready"), "w").close()
wait_for("go")
# The broker is stopped: this needs quota it cannot give.
b = [bytearray(1 << 20) for _ in range(48)]
print(len(a) + len(b), flush=True)
open(os.path.join(d, "grown"), "w").close()
# Keep allocating and freeing until told to stop: the broker comes back.
end = time.time() + 30
while not os.path.exists(os.path.join(d, "stop")) and time.time() < end:
    c = [bytearray(1 << 16) for _ in range(64)]
    del c
    time.sleep(0.01)
PY

GMALLOC_BROKER=yes GMALLOC_LIMIT=256M GMALLOC_LOG_LEVEL=notice GMALLOC_REPORT_AT_EXIT=on \
	timeout 60 env LD_PRELOAD="$GMLIB" python3 "$TEST_TMP/stall.py" "$TEST_TMP" >"$TEST_TMP/got" 2>"$TEST_TMP/err" &
py=$!
i=0
while [ ! -e "$TEST_TMP/ready" ]; do
	i=$((i + 1)); [ $i -gt 1000 ] && fail "python3 did not start"
	sleep 0.02
done
kill -STOP "$BROKER_PID"
touch "$TEST_TMP/go"
i=0
while [ ! -e "$TEST_TMP/grown" ]; do
	i=$((i + 1))
	[ $i -gt 1000 ] && { cat "$TEST_TMP/err"; fail "python3 blocked in malloc while the broker was stopped"; }
	kill -0 $py 2>/dev/null || break
	sleep 0.02
done
[ "$(head -n 1 "$TEST_TMP/got")" = 56 ] || { cat "$TEST_TMP/err"; fail "python3 printed $(cat "$TEST_TMP/got")"; }
grep -q "broker connection lost (timed out): fixed limit until it answers" "$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "no warning about the silent broker"; }

# The broker runs again: the program reconnects without any new need.
kill -CONT "$BROKER_PID"
i=0
until "$MBSTATUS" | grep -Eq 'python3[^ ]* +sink +[1-9][0-9]* '; do
	i=$((i + 1)); [ $i -gt 500 ] && { "$MBSTATUS"; cat "$TEST_TMP/err"; fail "python3 did not come back"; }
	sleep 0.02
done
touch "$TEST_TMP/stop"
wait $py || { cat "$TEST_TMP/err"; fail "python3 failed"; }
grep -q 'broker answers again' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "no reconnection"; }
grep -q 'claims [1-9][0-9]* pages: [1-9][0-9]* accepted' "$TEST_TMP/mbserver.log" ||
	{ cat "$TEST_TMP/mbserver.log"; fail "the broker saw no claim"; }

# Started while the broker is stopped: the handshake times out, the fixed
# limit applies, and the program finishes.
kill -STOP "$BROKER_PID"
printf 'x = [bytearray(1 << 20) for _ in range(40)]\nprint(len(x))\n' >"$TEST_TMP/small.py"
GMALLOC_BROKER=yes GMALLOC_LIMIT=256M timeout 60 env LD_PRELOAD="$GMLIB" python3 "$TEST_TMP/small.py" \
	>"$TEST_TMP/got2" 2>"$TEST_TMP/err2"
rc=$?
[ $rc = 124 ] && fail "python3 blocked while the broker was stopped"
[ $rc = 0 ] && [ "$(cat "$TEST_TMP/got2")" = 40 ] || { cat "$TEST_TMP/err2"; fail "python3 failed ($rc)"; }
kill -CONT "$BROKER_PID"
echo "broker stall ok"
