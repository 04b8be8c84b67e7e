#!/bin/sh
# conf/membroker.init under busybox sh with busybox start-stop-daemon, on a
# private socket and pid file: start reports a broker that could not start
# (another one answers, bad config, exits at once) with a failure status and
# no "OK"; stop really stops the broker, and fails while one it did not
# start keeps running.
. "$top_srcdir/tests/lib.sh"
command -v busybox >/dev/null || skip "needs busybox"
busybox start-stop-daemon --help >/dev/null 2>&1 || skip "busybox without start-stop-daemon"
MBSERVER="$top_builddir/mbserver/mbserver"
MBSTATUS="$top_builddir/libmbclient/mbstatus"
[ -x "$MBSERVER" ] && [ -x "$MBSTATUS" ] || skip "mbserver or mbstatus not built"
mk_tmpdir
abs() { (cd "$(dirname "$1")" && echo "$(pwd)/$(basename "$1")"); }
MBSERVER=$(abs "$MBSERVER")
MBSTATUS=$(abs "$MBSTATUS")
# The socket's directory has the letters OK in its name, as a random
# temporary name may: a message that names the socket must not count as
# the status word "OK".
mkdir "$TEST_TMP/OK"
SOCK="$TEST_TMP/OK/mb.sock"
PIDFILE="$TEST_TMP/mb.pid"
CONF="$TEST_TMP/membroker.conf"
printf 'total = 8M\nsocket = %s\n' "$SOCK" >"$CONF"
# The busybox applets the script uses come first in PATH.
BB="$TEST_TMP/bb"
mkdir "$BB"
for a in start-stop-daemon sleep sed cat rm; do ln -s "$(command -v busybox)" "$BB/$a"; done
sed -e "s|@sbindir@/mbserver|$MBSERVER|g" -e "s|@bindir@/mbstatus|$MBSTATUS|g" \
    -e "s|@sysconfdir@/membroker.conf|$CONF|g" -e "s|/run/membroker.pid|$PIDFILE|g" \
    "$top_srcdir/conf/membroker.init" >"$TEST_TMP/membroker"
# Whatever a failed check leaves running is stopped at exit.
at_exit 'for f in "$PIDFILE" "$TEST_TMP/saved.pid"; do [ -r "$f" ] && kill "$(cat "$f")" 2>/dev/null; done'

# run ACTION: the script under busybox sh; sets RC and OUT.
run() {
	OUT=$(PATH="$BB:$PATH" busybox sh "$TEST_TMP/membroker" "$1" 2>&1)
	RC=$?
	echo "membroker $1 -> $RC: $OUT"
}
# said_ok: the script's status word for the action was OK.
said_ok() { printf '%s\n' "$OUT" | grep -q ': OK$'; }
answers() { "$MBSTATUS" --socket "$SOCK" >/dev/null 2>&1; }
gone() {
	i=0
	while kill -0 "$1" 2>/dev/null; do
		i=$((i + 1)); [ $i -gt 50 ] && return 1
		sleep 0.1
	done
}

run start
[ $RC = 0 ] || fail "start: status $RC"
said_ok || fail "start: no OK status in '$OUT'"
answers || fail "start said $RC but no broker answers"
PID=$(cat "$PIDFILE") || fail "no pid file"
at_exit "kill $PID 2>/dev/null"
kill -0 "$PID" || fail "pid $PID not running"
run status
[ $RC = 0 ] || fail "status of a running broker: $RC"
run start
[ $RC = 0 ] || fail "start while running: $RC"
[ "$(cat "$PIDFILE")" = "$PID" ] || fail "pid file changed by a second start"

# A second instance while a broker the script does not know answers.
mv "$PIDFILE" "$TEST_TMP/saved.pid"
run start
[ $RC != 0 ] || fail "second instance: start reported success"
! said_ok || fail "second instance: start printed OK"
kill -0 "$PID" || fail "the running broker died"
mv "$TEST_TMP/saved.pid" "$PIDFILE"

run stop
[ $RC = 0 ] || fail "stop: status $RC"
gone "$PID" || fail "stop printed '$OUT' but pid $PID still runs"
answers && fail "a broker still answers after stop"
[ -e "$PIDFILE" ] && fail "pid file left after stop"
run stop
[ $RC = 0 ] || fail "stop when stopped: $RC"
run status
[ $RC = 3 ] || fail "status when stopped: $RC"

# stop while a broker not started by the script runs: it is not stopped,
# so stop must not claim it is.
"$MBSERVER" --config "$CONF" >"$TEST_TMP/other.log" 2>&1 &
OTHER=$!
at_exit "kill $OTHER 2>/dev/null"
i=0; until answers; do i=$((i + 1)); [ $i -gt 100 ] && fail "other broker did not start"; sleep 0.05; done
run stop
[ $RC != 0 ] || fail "stop reported success while pid $OTHER keeps running"
! said_ok || fail "stop printed OK while pid $OTHER keeps running"
kill "$OTHER"; wait "$OTHER" 2>/dev/null

# A broker that exits at once (its socket path is under a regular file).
printf 'total = 8M\nsocket = %s\n' "$CONF/mb.sock" >"$CONF"
run start
[ $RC != 0 ] || fail "start of a broker that exits at once reported success"
! said_ok || fail "start printed OK for a broker that exited"
# A configuration with errors.
printf 'total = lots\n' >"$CONF"
run start
[ $RC != 0 ] || fail "start with a bad configuration reported success"
[ -e "$PIDFILE" ] && fail "pid file left by failed starts"
echo PASS
