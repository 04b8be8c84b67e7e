#!/bin/sh
# bench/broker/run.sh [BUILDDIR] - broker pairs against their ceilings.
#
# A pair is REQUEST(1)+GRANT then RETURN(1)+RETURN_ACK: every rate counts
# pairs per second and every latency is a whole pair.  Each round runs,
# interleaved, on this machine:
#   - raw Unix-socket ping-pong with the pair's four frame sizes (ceiling of
#     one client);
#   - one libmbclient client against a real mbserver on a private socket;
#   - CLIENTS (default 1000) active raw clients, open loop: each starts
#     RATE (default 10) pairs a second on a fixed schedule: p50/p99;
#   - the same clients, closed loop (as fast as they can) against mbserver
#     and against an epoll echo server answering the same frames:
#     throughput; and the echo server in open loop, the latency floor of
#     this machine and driver;
#   - the give-back pair: a REQUEST served by a share query to a bidi
#     client answering from its own thread.
# Figures are medians over ROUNDS rounds (default 5).
# Environment: ROUNDS, ITERS (pairs of the one-client runs, default
# 20000), CLIENTS, RATE, SECONDS (length of each load run, default 5).
set -eu
B=$(cd "${1:-build}" && pwd)
ROUNDS=${ROUNDS:-5}
ITERS=${ITERS:-20000}
CLIENTS=${CLIENTS:-1000}
PER_S=${RATE:-10}
SECONDS_=${SECONDS:-5}
BENCH="$B/bench/broker/mbbench"
SERVER="$B/mbserver/mbserver"
[ -x "$BENCH" ] || { echo "build first: make -C $B bench/broker/mbbench"; exit 1; }
[ -x "$SERVER" ] || { echo "no $SERVER"; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/mbbench.XXXXXX")
SPID=
EPID=
cleanup() {
	[ -n "$SPID" ] && kill "$SPID" 2>/dev/null
	[ -n "$EPID" ] && kill "$EPID" 2>/dev/null
	wait 2>/dev/null; rm -rf "$T"
}
trap cleanup EXIT INT TERM
ulimit -n $((CLIENTS * 2 + 256)) 2>/dev/null || ulimit -n 4096 2>/dev/null || true

wait_sock() {
	i=0
	while [ ! -S "$1" ]; do
		i=$((i + 1)); [ $i -gt 200 ] && { cat "$T/server.log"; exit 1; }; sleep 0.05
	done
}
start_server() { # start_server TOTAL
	"$SERVER" --config /dev/null --socket "$T/mb.sock" --total "$1" \
		--set uid_connections=0 --log-level warning >>"$T/server.log" 2>&1 &
	SPID=$!
	wait_sock "$T/mb.sock"
}
stop_server() { kill "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=; rm -f "$T/mb.sock"; }
start_echo() {
	"$BENCH" echo "$T/echo.sock" >>"$T/server.log" 2>&1 &
	EPID=$!
	wait_sock "$T/echo.sock"
}
stop_echo() { kill "$EPID"; wait "$EPID" 2>/dev/null || true; EPID=; rm -f "$T/echo.sock"; }

# field LINE NAME -> value of NAME=value (units stripped)
field() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=\([0-9.]*\).*/\1/p"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# one NAME CMD...: one run, its line appended to $T/NAME
one() { n=$1; shift; "$@" >>"$T/$n"; }
# show NAME LABEL: medians into RATE P50 P99
show() {
	RATE=$(while read -r l; do field "$l" rate; done <"$T/$1" | median)
	P50=$(while read -r l; do field "$l" p50; done <"$T/$1" | median)
	P99=$(while read -r l; do field "$l" p99; done <"$T/$1" | median)
	printf '%-40s %12s %10s %10s\n' "$2" "$RATE" "$P50" "$P99"
}

echo "machine: $(nproc) cpus, $(uname -sr); $ROUNDS rounds, medians"
r=0
while [ $r -lt "$ROUNDS" ]; do
	one pp "$BENCH" pingpong "$ITERS"
	start_server 4096p
	one rt1 "$BENCH" rt "$T/mb.sock" "$ITERS"
	one open "$BENCH" load "$T/mb.sock" "$CLIENTS" "$SECONDS_" "$PER_S"
	one closed "$BENCH" load "$T/mb.sock" "$CLIENTS" "$SECONDS_" 0
	stop_server
	start_echo
	one echo "$BENCH" load "$T/echo.sock" "$CLIENTS" "$SECONDS_" 0
	one echo_open "$BENCH" load "$T/echo.sock" "$CLIENTS" "$SECONDS_" "$PER_S"
	stop_echo
	start_server "$((ITERS / 4))p"
	one gb "$BENCH" giveback "$T/mb.sock" "$((ITERS / 4))"
	stop_server
	r=$((r + 1))
done

printf '%-40s %12s %10s %10s\n' "" "pairs/s" "p50 us" "p99 us"
show pp "raw unix ping-pong (1 client)"; PP=$RATE
show rt1 "mbserver, 1 client"; R1=$RATE; P50_1=$P50
show open "mbserver, $CLIENTS clients, open $PER_S/s each"; OPEN_P99=$P99
show echo_open "epoll echo, $CLIENTS clients, open $PER_S/s each"; ECHO_P99=$P99
show closed "mbserver, $CLIENTS clients, closed loop"; CL=$RATE
show echo "epoll echo, $CLIENTS clients, closed loop"; EC=$RATE
show gb "give-back via bidi client"; GB_P50=$P50

echo
awk -v r1="$R1" -v pp="$PP" -v p99="$OPEN_P99" -v cl="$CL" -v ec="$EC" -v ep99="$ECHO_P99" \
    -v gb="$GB_P50" -v p1="$P50_1" -v n="$CLIENTS" 'BEGIN {
	printf "1 client / raw ping-pong pairs:          %.0f%% (aim >= 40%%)\n", 100 * r1 / pp
	printf "open loop, %d clients, p99:            %.0f us (aim < 1000 us; echo server: %.0f us)\n", n, p99, ep99
	printf "closed loop / echo server throughput:    %.0f%% (aim >= 50%%)\n", 100 * cl / ec
	printf "give-back p50 / plain pair p50:          %.2fx\n", gb / p1
}'
