#!/bin/sh
# bench/broker/audit.sh [BUILDDIR [MBSERVER...]] - a client's QUERY round trip
# while one process with many mappings holds many connections.
#
# The broker's audit (device=meminfo, audit_interval 1 s) reads each
# client's /proc/PID/smaps_rollup in the daemon's one thread.  One process
# with MAPS mappings (default 60000, a read of milliseconds) holds CONNS
# connections (default 250); meanwhile another client sends a QUERY every
# 50 ms for SECONDS (default 8) and reports the median, p90 and max round
# trip in ms.  Then the same without the holder, the floor.  Each MBSERVER
# given (default BUILDDIR's) runs in turn, ROUNDS times (default 2): pass
# an older build's mbserver to compare.  The broker runs with
# uid_connections = 0, so that one user may hold CONNS connections.
#
# With GIVEBACK=1 the connections are bidi clients holding a page each,
# and once they are up the device goes past notify_high: each give-back
# decision (every giveback_retry, 1 s) asks them all, and the broker
# reads their process's private memory to check the answers.
set -eu
B=$(cd "${1:-build}" && pwd)
[ $# -gt 0 ] && shift
SERVERS=${*:-$B/mbserver/mbserver}
CONNS=${CONNS:-250}
MAPS=${MAPS:-60000}
SECONDS_=${SECONDS:-8}
ROUNDS=${ROUNDS:-2}
HOLD=hold
[ "${GIVEBACK:-0}" = 1 ] && HOLD=bidi
BENCH="$B/bench/broker/auditbench"
[ -x "$BENCH" ] || { echo "build first: make -C $B bench/broker/auditbench"; exit 1; }

one() { # SERVER CONNS MAPS
	d=$(mktemp -d "${TMPDIR:-/tmp}/auditbench.XXXXXX")
	printf 'MemTotal: 1048576 kB\nMemAvailable: 943718 kB\n' >"$d/meminfo"
	MEMBROKER_SOCKET="$d/mb.sock"
	export MEMBROKER_SOCKET
	"$1" --config /dev/null --socket "$d/mb.sock" --total 256M -o device=meminfo \
		-o device_meminfo="$d/meminfo" -o audit_interval=1s -o uid_connections=0 \
		-o notify_high=50% -o notify_low=40% -o giveback_retry=1s \
		>"$d/log" 2>&1 &
	s=$!
	i=0
	until [ -S "$d/mb.sock" ] || [ $i -gt 100 ]; do sleep 0.05; i=$((i + 1)); done
	h=
	if [ "$2" -gt 0 ]; then
		"$BENCH" "$HOLD" "$2" "$3" $((SECONDS_ + 5)) >"$d/hold" &
		h=$!
		i=0
		until grep -q ready "$d/hold" 2>/dev/null || [ $i -gt 600 ]; do sleep 0.1; i=$((i + 1)); done
		[ "$HOLD" = bidi ] && printf 'MemTotal: 1048576 kB\nMemAvailable: 434176 kB\n' >"$d/meminfo"
	fi
	"$BENCH" query "$SECONDS_" || true
	[ -n "$h" ] && kill "$h" 2>/dev/null
	kill "$s" 2>/dev/null
	wait 2>/dev/null || true
	rm -rf "$d"
}

what="holds $CONNS connections"
[ "$HOLD" = bidi ] && what="holds $CONNS bidi connections asked to give back every second"
echo "== QUERY round trips (ms) while one process with $MAPS mappings $what"
r=1
while [ "$r" -le "$ROUNDS" ]; do
	for srv in $SERVERS; do
		echo "$srv: $(one "$srv" "$CONNS" "$MAPS")"
		echo "$srv, no holder: $(one "$srv" 0 0)"
	done
	r=$((r + 1))
done
