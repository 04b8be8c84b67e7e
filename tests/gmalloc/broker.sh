#!/bin/sh
# gmalloc with a real mbserver: quota asked for in steps and returned with
# hysteresis (medium blocks freed on the short way too), the broker's total enforced, all quota back after exit,
# forked children connecting on their own, and the fixed limit (with one
# warning) when no broker answers.
. "$top_srcdir/tests/gmalloc/gmlib.sh"
need_cmd python3
MBSERVER="$top_builddir/mbserver/mbserver"
MBSTATUS="$top_builddir/libmbclient/mbstatus"
[ -x "$MBSERVER" ] || skip "mbserver not built"
[ -x "$MBSTATUS" ] || skip "mbstatus not built"

# pool_back: after the clients exit, the broker holds all its quota again.
pool_back() {
	i=0
	while :; do
		q=$("$MBSTATUS" | head -n 1) || fail "mbstatus failed"
		set -- $q
		[ "$1" = pool ] && [ "$3" = of ] || fail "unexpected mbstatus output: $q"
		[ "$2" = "$4" ] && return 0
		i=$((i + 1)); [ $i -gt 400 ] && fail "quota not back after exit: $q"
		sleep 0.05
	done
}

start_broker 512M
cat >"$TEST_TMP/work.py" <<'PY'
big = [str(i) * 4 for i in range(400000)]
n = sum(len(x) for x in big)
del big
d = {i: i * i for i in range(200000)}
print(n, sum(d.values()))
PY
python3 "$TEST_TMP/work.py" >"$TEST_TMP/want"
GMALLOC_BROKER=on GMALLOC_LIMIT=256M GMALLOC_QUOTA_STEP=1M GMALLOC_QUOTA_RELEASE=4M \
GMALLOC_REPORT_AT_EXIT=on pre python3 "$TEST_TMP/work.py" >"$TEST_TMP/got" 2>"$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "python3 under gmalloc with the broker failed"; }
cmp -s "$TEST_TMP/want" "$TEST_TMP/got" || fail "output differs"
grep -q 'broker connected' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "not connected"; }
grep -q 'requests [1-9]' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "no quota requests"; }
grep -q 'returns [1-9]' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "no quota returned after the frees"; }
grep -q 'registered as sink' "$TEST_TMP/mbserver.log" || { cat "$TEST_TMP/mbserver.log"; fail "broker saw no sink"; }
# The broker writes the line when it handles the disconnect, which may
# come after python3's exit: once the pool is whole again it has.
pool_back
grep -q '(python3, pid [0-9]*) leaves holding [1-9]' "$TEST_TMP/mbserver.log" ||
	{ cat "$TEST_TMP/mbserver.log"; fail "the broker granted python3 nothing"; }

# Medium blocks freed on gmalloc's short way (kept runs of the thread)
# still give quota back: 80 MB allocated, all freed, and the program holds
# little more than its thread's kept runs and the release margin.
rm -f "$TEST_TMP/ready" "$TEST_TMP/go"
GMALLOC_BROKER=on GMALLOC_LIMIT=256M GMALLOC_QUOTA_STEP=1M GMALLOC_QUOTA_RELEASE=4M \
	pre "$FAMILY" medium "$TEST_TMP" >"$TEST_TMP/out" 2>"$TEST_TMP/err" &
med=$!
i=0
while [ ! -e "$TEST_TMP/ready" ]; do
	i=$((i + 1)); [ $i -gt 500 ] && { touch "$TEST_TMP/go"; fail "gm_family medium did not get ready"; }
	kill -0 $med 2>/dev/null || { cat "$TEST_TMP/err"; fail "gm_family medium died"; }
	sleep 0.02
done
"$MBSTATUS" >"$TEST_TMP/status" || { touch "$TEST_TMP/go"; fail "mbstatus failed"; }
touch "$TEST_TMP/go"
wait $med || { cat "$TEST_TMP/err"; fail "gm_family medium failed"; }
held=$(awk '$3 == "gm_family" && $4 == "sink" { print $5 }' "$TEST_TMP/status")
page=$(awk 'NR == 1 { for (i = 1; i < NF; i++) if ($i == "page") print $(i + 1) }' "$TEST_TMP/status")
[ -n "$held" ] && [ -n "$page" ] || { cat "$TEST_TMP/status"; fail "gm_family not in mbstatus"; }
[ $((held * page)) -le $((16 * 1048576)) ] ||
	{ cat "$TEST_TMP/status"; fail "after freeing 80 MB of medium blocks gm_family still holds $held pages"; }
rm -f "$TEST_TMP/ready" "$TEST_TMP/go"
pool_back

# Forked children (gm_family forks five while threads allocate) start with
# no quota and connect on their own.
before=$(grep -c 'registered as sink' "$TEST_TMP/mbserver.log")
GMALLOC_BROKER=on pre "$FAMILY" family >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "family under the broker failed"; }
grep -qx 'family ok' "$TEST_TMP/out" || fail "family not ok under the broker"
[ $(($(grep -c 'registered as sink' "$TEST_TMP/mbserver.log") - before)) -ge 6 ] ||
	{ cat "$TEST_TMP/mbserver.log"; fail "children did not connect"; }
pool_back

# The broker dies and comes back while a program holds quota: the program
# notices the lost connection and goes on (reconnected, or at its limit).
cat >"$TEST_TMP/wait.py" <<'PY'
import os, sys, time
a = [bytearray(1 << 20) for _ in range(8)]
open(sys.argv[1] + "/ready", "w").close()
while not os.path.exists(sys.argv[1] + "/go"):
    time.sleep(0.02)
b = [bytearray(1 << 20) for _ in range(32)]
print(len(a) + len(b))
PY
GMALLOC_BROKER=on GMALLOC_LIMIT=256M GMALLOC_REPORT_AT_EXIT=on \
	pre python3 "$TEST_TMP/wait.py" "$TEST_TMP" >"$TEST_TMP/got" 2>"$TEST_TMP/err" &
py=$!
i=0
while [ ! -e "$TEST_TMP/ready" ]; do
	i=$((i + 1)); [ $i -gt 500 ] && fail "python3 did not start"
	sleep 0.02
done
# The broker sees the running program's quota.
"$MBSTATUS" >"$TEST_TMP/status" || fail "mbstatus failed"
grep -Eq 'python3[^ ]* +sink +[1-9][0-9]* ' "$TEST_TMP/status" || { cat "$TEST_TMP/status"; fail "no quota held by python3"; }
kill "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null || true; rm -f "$MEMBROKER_SOCKET"
start_broker 512M
touch "$TEST_TMP/go"
wait $py || { cat "$TEST_TMP/err"; fail "python3 died with the broker"; }
[ "$(cat "$TEST_TMP/got")" = 40 ] || fail "python3 printed $(cat "$TEST_TMP/got")"
grep -q 'connections lost [1-9]' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "the lost connection went unnoticed"; }
grep -v "^ " "$TEST_TMP/err"
pool_back

# The broker's total is what the heap gets, below a larger fixed limit.
kill "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null || true; rm -f "$MEMBROKER_SOCKET"
start_broker 16M
GMALLOC_BROKER=on GMALLOC_LIMIT=64M pre "$FAMILY" fill >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "fill under the broker failed"; }
read -r _ mib _ _ err <"$TEST_TMP/out"
[ "$err" = 12 ] || fail "errno $err, expected ENOMEM: $(cat "$TEST_TMP/out")"
[ "$mib" -ge 8 ] && [ "$mib" -le 16 ] || fail "allocated $mib MiB from a 16 MiB broker"
pool_back
# The same with RESERVE after REQUEST: it waits, is denied, and malloc fails.
GMALLOC_BROKER=on GMALLOC_LIMIT=64M GMALLOC_URGENCY=request-then-reserve GMALLOC_RESERVE_TIMEOUT=500ms \
GMALLOC_REPORT_AT_EXIT=on pre "$FAMILY" fill >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "fill with request-then-reserve failed"; }
read -r _ mib _ _ err <"$TEST_TMP/out"
[ "$err" = 12 ] && [ "$mib" -ge 8 ] && [ "$mib" -le 16 ] || fail "request-then-reserve: $(cat "$TEST_TMP/out")"
grep -q 'reserves [1-9]' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "no RESERVE was sent"; }
pool_back

# No broker: one warning, and the fixed limit applies (the refusal at the
# limit is said in a line of its own).
GMALLOC_BROKER=on GMALLOC_BROKER_SOCKET="$TEST_TMP/none.sock" GMALLOC_LIMIT=32M \
	pre "$FAMILY" fill >"$TEST_TMP/out" 2>"$TEST_TMP/err" || fail "fill without broker failed"
grep -v 'out of memory: .* malloc returns NULL' "$TEST_TMP/err" >"$TEST_TMP/err.broker"
[ "$(wc -l <"$TEST_TMP/err.broker")" -eq 1 ] || { cat "$TEST_TMP/err"; fail "expected one warning"; }
grep -q 'broker at .*none.sock: connect: .*fixed limit 32.0 MiB applies' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "no warning"; }
read -r _ mib _ _ err <"$TEST_TMP/out"
[ "$mib" -ge 24 ] && [ "$mib" -le 32 ] && [ "$err" = 12 ] || fail "without broker: $(cat "$TEST_TMP/out")"
echo "broker ok"
