#!/bin/sh
# gmalloc treats the broker's deny state as a refusal: a program of an
# unprivileged user gets NULL (Python: MemoryError) while the device is
# past the deny mark, stays connected, and allocates again once the
# device is back to normal (the broker is not given up as for a
# permanent error).  On notify, a program that holds quota above its use
# (kept by the release hysteresis) gives it back.
. "$top_srcdir/tests/gmalloc/gmlib.sh"
need_root
need_cmd python3
command -v setpriv >/dev/null || skip "needs setpriv"
MBUTIL="$top_builddir/libmbclient/mbutil"
chmod 755 "$TEST_TMP"
MI="$TEST_TMP/meminfo"
WAIT_LOG="$TEST_TMP/out $TEST_TMP/err"
fake_meminfo "$MI" 100
start_broker 512M -o socket_mode=0666 -o device=meminfo -o device_meminfo="$MI" \
	-o device_poll=20ms -o deny_high=80% -o deny_low=70% -o notify_high=50% -o notify_low=40%
wait_until "normal" mem_state_is normal
# The program starts in normal state, then allocates 64 MiB at each signal.
cat >"$TEST_TMP/alloc.py" <<'PY'
import os, sys, time
def attempt(go):
    while not os.path.exists(go):
        time.sleep(0.02)
    try:
        b = bytearray(64 << 20)
        return "ok %d" % len(b)
    except MemoryError:
        return "refused"
print("started", flush=True)
print(attempt(sys.argv[1] + "1"), flush=True)
print(attempt(sys.argv[1] + "2"), flush=True)
PY
GMALLOC_BROKER=on GMALLOC_LIMIT=1G setpriv --reuid=65534 --regid=65534 --clear-groups \
	env LD_PRELOAD="$GMLIB" python3 "$TEST_TMP/alloc.py" "$TEST_TMP/go" \
	>"$TEST_TMP/out" 2>"$TEST_TMP/err" &
P=$!
at_exit "kill $P 2>/dev/null"
wait_until "the program" grep -q started "$TEST_TMP/out"
fake_meminfo "$MI" 900
wait_until "deny" mem_state_is deny
touch "$TEST_TMP/go1"
lines_ge() { [ "$(wc -l <"$TEST_TMP/out")" -ge "$1" ]; }
wait_until "the first attempt" lines_ge 2
[ "$(sed -n 2p "$TEST_TMP/out")" = refused ] || fail "64 MiB allocated in deny state: $(cat "$TEST_TMP/out" "$TEST_TMP/err")"
grep -q "refused: LOWMEM" "$TEST_TMP/mbserver.log" || fail "the broker did not refuse with LOWMEM"
fake_meminfo "$MI" 100
wait_until "normal" mem_state_is normal
touch "$TEST_TMP/go2"
wait $P || fail "python3 failed: $(cat "$TEST_TMP/err")"
[ "$(sed -n 3p "$TEST_TMP/out")" = "ok $((64 << 20))" ] || fail "no memory after deny ended: $(cat "$TEST_TMP/out" "$TEST_TMP/err")"
if grep -q "fixed limit" "$TEST_TMP/err"; then fail "gmalloc gave the broker up: $(cat "$TEST_TMP/err")"; fi
fake_meminfo "$MI" 100
wait_until "normal" mem_state_is normal

cat >"$TEST_TMP/churn.py" <<'PY'
import os, sys, time
b = bytearray(64 << 20)
del b
print("freed", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
for i in range(32):
    x = bytearray(2 << 20)
    del x
print("churned", flush=True)
while not os.path.exists(sys.argv[1] + "end"):
    time.sleep(0.02)
PY
GMALLOC_BROKER=on GMALLOC_LIMIT=1G GMALLOC_QUOTA_STEP=1M GMALLOC_QUOTA_RELEASE=512M \
	LD_PRELOAD="$GMLIB" python3 "$TEST_TMP/churn.py" "$TEST_TMP/go3" >"$TEST_TMP/out" 2>"$TEST_TMP/err" &
C=$!
at_exit "kill $C 2>/dev/null"
wait_until "the first free" grep -q freed "$TEST_TMP/out"
held() { "$top_builddir/libmbclient/mbstatus" --json | sed -n "s/.*\"pid\":$C,[^}]*\"balance\":\([0-9]*\),.*/\1/p"; }
[ "$(held)" -ge 16384 ] || fail "the hysteresis did not keep the quota: $(held) pages"
fake_meminfo "$MI" 600
wait_until "notify" mem_state_is notify
touch "$TEST_TMP/go3"
wait_until "the churn" grep -q churned "$TEST_TMP/out"
[ "$(held)" -lt 4096 ] || fail "quota kept after notify: $(held) pages"
touch "$TEST_TMP/go3end"
wait $C || fail "python3 failed: $(cat "$TEST_TMP/err")"
echo ok
